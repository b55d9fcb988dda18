//! What can be checked here of the GitHub workflows (.github/workflows/pr.yml, nightly.yml)
//! beyond the publish job (tests/it/publish_docs.rs): the pinned toolchain and runners, the
//! caches saved whatever the outcome, and the steps before the suite — the host's AppArmor
//! profile for tcpdump unloaded, the Docker Hub login when the repository has its secrets.
//! The shell of those steps is run here for real, as GitHub's runner runs a `run:` block
//! (`bash -e`), with stand-ins for `docker`, `sudo` and `apparmor_parser` on PATH that
//! record how they were called.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn workflow(name: &str) -> Value {
    let path = Path::new(ROOT).join(".github/workflows").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
}

fn steps(job: &Value) -> Vec<Value> {
    job["steps"].as_array().expect("a job with steps").clone()
}

fn uses_of<'a>(steps: &'a [Value], action: &str) -> Vec<(usize, &'a Value)> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
        .collect()
}

fn one_use<'a>(steps: &'a [Value], action: &str) -> (usize, &'a Value) {
    let found = uses_of(steps, action);
    assert_eq!(found.len(), 1, "one step uses {action}: {found:?}");
    found[0]
}

/// The step whose `run:` contains `needle`, and its position.
fn run_step<'a>(steps: &'a [Value], needle: &str) -> (usize, &'a Value) {
    let found: Vec<_> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s["run"].as_str().is_some_and(|r| r.contains(needle)))
        .collect();
    assert_eq!(found.len(), 1, "one step runs {needle:?}: {found:?}");
    found[0]
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string, got {value}"))
}

/// YAML's `true` (serde-saphyr reads it as a boolean) or the string GitHub passes on.
fn is_true(value: &Value) -> bool {
    value == &Value::Bool(true) || value == "true"
}

/// The pinned release: `channel = "…"` in rust-toolchain.toml.
fn pinned_channel() -> String {
    let toml = std::fs::read_to_string(Path::new(ROOT).join("rust-toolchain.toml"))
        .expect("rust-toolchain.toml");
    let channels: Vec<&str> = toml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|l| l.trim().strip_prefix('='))
        .map(|l| l.trim().trim_matches('"'))
        .collect();
    assert_eq!(channels.len(), 1, "one channel in rust-toolchain.toml");
    let channel = channels[0].to_string();
    let parts: Vec<&str> = channel.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "an exact release (MAJOR.MINOR.PATCH) is pinned, not {channel:?}"
    );
    channel
}

#[test]
fn every_workflow_installs_the_pinned_toolchain() {
    let _processes = crate::processes::shared();
    let channel = pinned_channel();
    let pr = workflow("pr.yml");
    let nightly = workflow("nightly.yml");
    let jobs = [
        ("pr.yml ci", &pr["jobs"]["ci"]),
        ("nightly.yml resolve", &nightly["jobs"]["resolve"]),
        ("nightly.yml happy", &nightly["jobs"]["happy"]),
        ("nightly.yml publish", &nightly["jobs"]["publish"]),
    ];
    for (name, job) in jobs {
        let steps = steps(job);
        let (_, toolchain) = one_use(&steps, "dtolnay/rust-toolchain@");
        assert_eq!(
            text(&toolchain["uses"]),
            format!("dtolnay/rust-toolchain@{channel}"),
            "{name} installs the release rust-toolchain.toml pins"
        );
        if name != "nightly.yml publish" {
            let components = text(&toolchain["with"]["components"]);
            for component in ["rustfmt", "clippy"] {
                assert!(components.contains(component), "{name}: {components}");
            }
        }
    }
    let toml = std::fs::read_to_string(Path::new(ROOT).join("rust-toolchain.toml")).unwrap();
    assert!(
        toml.contains(r#"components = ["rustfmt", "clippy"]"#),
        "{toml}"
    );

    // .ci/run settles the toolchain before its first cargo command.
    let run = std::fs::read_to_string(Path::new(ROOT).join(".ci/run")).expect(".ci/run");
    let commands: Vec<&str> = run
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let pin = commands
        .iter()
        .position(|l| *l == "bash ci/pinned-toolchain")
        .expect(".ci/run runs ci/pinned-toolchain");
    let first_cargo = commands
        .iter()
        .position(|l| l.contains("cargo ") || l.contains("check-tls-provider"))
        .expect(".ci/run runs cargo");
    assert!(pin < first_cargo, "ci/pinned-toolchain runs before cargo");
}

#[test]
fn runners_are_pinned_beside_one_canary() {
    let _processes = crate::processes::shared();
    let pr = workflow("pr.yml");
    assert_eq!(pr["jobs"]["ci"]["runs-on"], "ubuntu-24.04");
    let nightly = workflow("nightly.yml");
    let jobs = &nightly["jobs"];
    assert_eq!(jobs["resolve"]["runs-on"], "ubuntu-24.04");

    let happy = &jobs["happy"];
    assert_eq!(happy["runs-on"], "${{ matrix.runner }}");
    let matrix = &happy["strategy"]["matrix"];
    assert_eq!(matrix["runner"], serde_json::json!(["ubuntu-24.04"]));
    assert_eq!(
        matrix["istio"],
        "${{ fromJSON(needs.resolve.outputs.matrix).istio }}"
    );
    assert_eq!(
        matrix["include"],
        "${{ fromJSON(needs.resolve.outputs.canary) }}"
    );
    assert_eq!(happy["continue-on-error"], "${{ matrix.canary == true }}");
    assert_eq!(
        jobs["resolve"]["outputs"]["canary"],
        "${{ steps.resolve.outputs.canary }}"
    );
    for (file, text) in [
        (
            "pr.yml",
            std::fs::read_to_string(Path::new(ROOT).join(".github/workflows/pr.yml")),
        ),
        (
            "nightly.yml",
            std::fs::read_to_string(Path::new(ROOT).join(".github/workflows/nightly.yml")),
        ),
    ] {
        let text = text.expect("workflow");
        let floating: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("runs-on:") && l.contains("-latest"))
            .collect();
        // The publish job is the publication's; its runner does not run the suite.
        let allowed = usize::from(file == "nightly.yml");
        assert!(floating.len() <= allowed, "{file}: {floating:?}");
    }

    // The canary's artifact stays out of the publication (download pattern `happy-istio-*`).
    let cell = steps(happy);
    let (_, upload) = one_use(&cell, "actions/upload-artifact@");
    assert_eq!(
        upload["with"]["name"],
        "${{ matrix.canary && format('canary-{0}-', matrix.runner) || '' }}happy-istio-${{ matrix.istio }}"
    );
    let publish = steps(&jobs["publish"]);
    let (_, download) = one_use(&publish, "actions/download-artifact@");
    assert_eq!(download["with"]["pattern"], "happy-istio-*");
}

/// The resolve step, run with a stand-in resolver: the matrix as before, and the canary is the
/// newest release on ubuntu-26.04 (none when the matrix has no release).
#[test]
fn the_resolve_step_names_the_canary() {
    let _processes = crate::processes::shared();
    let nightly = workflow("nightly.yml");
    let resolve = steps(&nightly["jobs"]["resolve"]);
    let (_, step) = run_step(&resolve, "ci/resolve-istio-versions");
    let script = text(&step["run"]);
    for (matrix, canary) in [
        (
            r#"{"istio":["1.31.1","1.30.5","1.29.8","1.32.0-alpha.0123456789abcdef0123456789abcdef01234567"]}"#,
            serde_json::json!([{"istio": "1.31.1", "runner": "ubuntu-26.04", "canary": true}]),
        ),
        (r#"{"istio":["dev"]}"#, serde_json::json!([])),
    ] {
        let step = Step::new();
        let ci = step.dir.join("ci");
        std::fs::create_dir_all(&ci).unwrap();
        std::fs::write(
            ci.join("resolve-istio-versions"),
            format!("echo '{matrix}'\n"),
        )
        .unwrap();
        let out = step.run(script, &[]);
        assert!(out.status.success(), "{}", step.log(&out));
        let outputs = step.outputs();
        assert!(outputs.contains(&format!("matrix={matrix}\n")), "{outputs}");
        let line = outputs
            .lines()
            .find_map(|l| l.strip_prefix("canary="))
            .unwrap_or_else(|| panic!("no canary output: {outputs}"));
        let parsed: Value = serde_json::from_str(line).expect("canary is JSON");
        assert_eq!(parsed, canary);
    }
}

#[test]
fn caches_are_saved_whatever_the_outcome() {
    let _processes = crate::processes::shared();
    let pr = workflow("pr.yml");
    let nightly = workflow("nightly.yml");
    for (name, job) in [
        ("pr.yml ci", &pr["jobs"]["ci"]),
        ("nightly.yml resolve", &nightly["jobs"]["resolve"]),
        ("nightly.yml happy", &nightly["jobs"]["happy"]),
    ] {
        let steps = steps(job);
        let (_, cache) = one_use(&steps, "Swatinem/rust-cache@v2");
        assert!(
            is_true(&cache["with"]["cache-on-failure"]),
            "{name}: rust-cache saves on failure too"
        );
    }
    let happy = &nightly["jobs"]["happy"];
    let cell = steps(happy);
    let (_, rust_cache) = one_use(&cell, "Swatinem/rust-cache@v2");
    assert_eq!(rust_cache["with"]["key"], "${{ matrix.runner }}");

    assert!(
        uses_of(&cell, "actions/cache@").is_empty(),
        "actions/cache saves only on success: restore and save are separate steps"
    );
    let (restore_at, restore) = one_use(&cell, "actions/cache/restore@v6");
    let (check_at, check) = run_step(&cell, "complete=true");
    let (save_at, save) = one_use(&cell, "actions/cache/save@v6");
    let (suite_at, _) = run_step(&cell, "ci/nightly-run");
    assert!(restore_at < suite_at && suite_at < check_at && check_at < save_at);
    assert_eq!(restore["id"], "istio-cache");
    let restore_if = text(&restore["if"]);
    assert!(restore_if.contains("matrix.istio != 'dev'") && restore_if.contains("-alpha."));
    let check_if = text(&check["if"]);
    for part in [
        "always()",
        "steps.istio-cache.outcome == 'success'",
        "steps.istio-cache.outputs.cache-hit != 'true'",
        "!matrix.canary",
    ] {
        assert!(check_if.contains(part), "{check_if}");
    }
    let save_if = text(&save["if"]);
    assert!(
        save_if.contains("always()")
            && save_if.contains(&format!(
                "steps.{}.outputs.complete == 'true'",
                text(&check["id"])
            )),
        "{save_if}"
    );
    assert_eq!(save["with"]["path"], restore["with"]["path"]);
    assert_eq!(
        save["with"]["key"],
        "${{ steps.istio-cache.outputs.cache-primary-key }}"
    );
    let paths = text(&restore["with"]["path"]);
    assert!(
        paths.contains("~/.cache/happy-istio/downloads")
            && paths.contains("~/.cache/happy-istio/istio")
    );

    // The check, run: half-written leftovers go, a release with its istioctl is saved, one
    // without is not.
    let script = text(&check["run"]);
    let version = "1.31.1";
    for complete in [true, false] {
        let step = Step::new();
        let cache = step.home.join(".cache/happy-istio");
        let downloads = cache.join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        std::fs::write(
            downloads.join(format!("istio-{version}-linux-amd64.tar.gz")),
            "x",
        )
        .unwrap();
        let partial = downloads.join(format!(".istio-{version}-linux-amd64.tar.gz.partial-4242"));
        std::fs::write(&partial, "half").unwrap();
        let staging = cache.join(format!("istio/.{version}.unpacking-4242"));
        std::fs::create_dir_all(staging.join("bin")).unwrap();
        if complete {
            let bin = cache.join(format!("istio/{version}/istio-{version}/bin"));
            std::fs::create_dir_all(&bin).unwrap();
            executable(&bin.join("istioctl"), "#!/bin/sh\n");
        }
        let out = step.run(script, &[("ISTIO_VERSION", version)]);
        assert!(out.status.success(), "{}", step.log(&out));
        assert!(!partial.exists() && !staging.exists(), "{}", step.log(&out));
        assert!(
            downloads
                .join(format!("istio-{version}-linux-amd64.tar.gz"))
                .is_file()
        );
        assert_eq!(
            step.outputs().contains("complete=true"),
            complete,
            "{}",
            step.log(&out)
        );
    }
}

#[test]
fn the_apparmor_profile_for_tcpdump_is_unloaded_before_the_suite() {
    let _processes = crate::processes::shared();
    let nightly = workflow("nightly.yml");
    let cell = steps(&nightly["jobs"]["happy"]);
    let (apparmor_at, apparmor) = run_step(&cell, "apparmor_parser -R");
    let (suite_at, _) = run_step(&cell, "ci/nightly-run");
    assert!(apparmor_at < suite_at, "unloaded before the suite");
    assert!(apparmor.get("if").is_none(), "on every cell");
    let script = text(&apparmor["run"]);
    assert!(
        script.contains("/etc/apparmor.d/usr.bin.tcpdump"),
        "{script}"
    );

    // Run: the profile is unloaded exactly when this machine has it; absent, nothing is.
    let step = Step::new();
    let out = step.run(script, &[]);
    assert!(out.status.success(), "{}", step.log(&out));
    let calls = step.calls();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for profile in [
        "/etc/apparmor.d/usr.bin.tcpdump",
        "/etc/apparmor.d/usr.sbin.tcpdump",
    ] {
        let unload = format!("sudo apparmor_parser -R {profile}");
        if Path::new(profile).exists() {
            assert!(calls.contains(&unload), "{calls}");
            assert!(stdout.contains(&format!("unloaded {profile}")), "{stdout}");
        } else {
            assert!(!calls.contains(&unload), "{calls}");
            assert!(stdout.contains(&format!("no {profile}")), "{stdout}");
        }
    }
    assert!(
        stdout.contains("still loaded"),
        "it says what is left: {stdout}"
    );
}

#[test]
fn docker_hub_is_logged_in_when_the_secrets_are_set() {
    let _processes = crate::processes::shared();
    let nightly = workflow("nightly.yml");
    let cell = steps(&nightly["jobs"]["happy"]);
    let (login_at, login) = run_step(&cell, "docker login");
    let (suite_at, suite) = run_step(&cell, "ci/nightly-run");
    assert!(login_at < suite_at, "logged in before the suite");
    assert_eq!(
        login["env"]["DOCKERHUB_USERNAME"],
        "${{ secrets.DOCKERHUB_USERNAME }}"
    );
    assert_eq!(
        login["env"]["DOCKERHUB_TOKEN"],
        "${{ secrets.DOCKERHUB_TOKEN }}"
    );
    // Secrets cannot be tested in `if:`; the step tests its environment, on every cell.
    assert!(login.get("if").is_none());
    // The suite step does not override what the login passes on through $GITHUB_ENV.
    assert!(suite["env"].get(REGISTRY_AUTH).is_none());
    let script = text(&login["run"]);

    // Without the secrets: anonymous, said as a notice, nothing passed on.
    let step = Step::new();
    let out = step.run(
        script,
        &[("DOCKERHUB_USERNAME", ""), ("DOCKERHUB_TOKEN", "")],
    );
    assert!(out.status.success(), "{}", step.log(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("::notice") && stdout.contains("anonymously"),
        "{stdout}"
    );
    assert_eq!(step.calls(), "", "docker is not called");
    assert_eq!(step.env_file(), "");

    // With them: the host's docker logs in (the token on stdin), and the kind node's
    // credentials are a plain `auths` config.json, named in HAPPY_KIND_REGISTRY_AUTH.
    let step = Step::new();
    let (user, token) = ("happyistio", "dckr_pat_0123456789");
    let out = step.run(
        script,
        &[("DOCKERHUB_USERNAME", user), ("DOCKERHUB_TOKEN", token)],
    );
    assert!(out.status.success(), "{}", step.log(&out));
    assert_eq!(
        step.calls(),
        format!("docker login --username {user} --password-stdin\n")
    );
    assert_eq!(step.stdin_of("docker"), token);
    let env = step.env_file();
    let config = env
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{REGISTRY_AUTH}=")))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{REGISTRY_AUTH} is passed on: {env:?}"));
    assert!(
        config.starts_with(&step.runner_temp),
        "{}",
        config.display()
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap())
        .expect("config.json is JSON");
    let auth = base64_encode(format!("{user}:{token}").as_bytes());
    assert_eq!(
        json,
        serde_json::json!({"auths": {"https://index.docker.io/v1/": {"auth": auth}}}),
        "a plain auths entry, no credsStore"
    );
    // The suite takes what the step writes: the check the kind provisioner and preflight make
    // (crates/provision/src/provision/registry_auth.rs), with Docker Hub covered.
    let checked = happy_istio::provision::registry_auth::check(&config)
        .unwrap_or_else(|refused| panic!("the suite refuses the step's file: {refused}"));
    assert!(checked.covers_docker_hub(), "{checked:?}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the runner's user reads it");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("::add-mask::{auth}")),
        "the encoded credentials are masked in the log: {stdout}"
    );
    assert!(!stdout.contains(token), "{stdout}");

    // Credentials Docker Hub refuses: a warning, and the cell goes on anonymously.
    let step = Step::new();
    let out = step.run_with_failing_docker(
        script,
        &[("DOCKERHUB_USERNAME", user), ("DOCKERHUB_TOKEN", token)],
    );
    assert!(out.status.success(), "{}", step.log(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("::warning") && stdout.contains("anonymously"),
        "{stdout}"
    );
    assert_eq!(step.env_file(), "");
}

/// The variable through which the kind node gets registry credentials (the `platforms`
/// work: a docker config.json with `auths`).
const REGISTRY_AUTH: &str = "HAPPY_KIND_REGISTRY_AUTH";

/// A `run:` block's surroundings: a working directory, HOME, RUNNER_TEMP, the files behind
/// $GITHUB_OUTPUT and $GITHUB_ENV, and a bin directory of stand-ins that log their calls.
struct Step {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    home: PathBuf,
    runner_temp: PathBuf,
    bin: PathBuf,
    log: PathBuf,
}

impl Step {
    fn new() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let base = temp.path().to_path_buf();
        let step = Step {
            dir: base.join("work"),
            home: base.join("home"),
            runner_temp: base.join("runner-temp"),
            bin: base.join("bin"),
            log: base.join("calls.log"),
            _temp: temp,
        };
        for dir in [&step.dir, &step.home, &step.runner_temp, &step.bin] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&step.log, "").unwrap();
        // Each stand-in logs its command line and keeps its standard input.
        for name in ["docker", "sudo", "apparmor_parser"] {
            let body = match name {
                // sudo runs what it is given, as the runner's passwordless sudo does.
                "sudo" => format!(
                    "#!/bin/sh\necho \"sudo $*\" >> '{log}'\nexec \"$@\"\n",
                    log = step.log.display()
                ),
                _ => format!(
                    "#!/bin/sh\necho \"{name} $*\" >> '{log}'\ncat > '{stdin}'\nexit \"${{FAKE_EXIT:-0}}\"\n",
                    log = step.log.display(),
                    stdin = step.dir.join(format!("{name}.stdin")).display()
                ),
            };
            executable(&step.bin.join(name), &body);
        }
        step
    }

    fn run(&self, script: &str, env: &[(&str, &str)]) -> Output {
        self.run_env(script, env, "0")
    }

    fn run_with_failing_docker(&self, script: &str, env: &[(&str, &str)]) -> Output {
        self.run_env(script, env, "1")
    }

    fn run_env(&self, script: &str, env: &[(&str, &str)], fake_exit: &str) -> Output {
        assert!(
            !script.contains("${{"),
            "a step run here has no GitHub expression in its script"
        );
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command
            .arg("-e")
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("RUNNER_TEMP", &self.runner_temp)
            .env("GITHUB_OUTPUT", self.dir.join("github-output"))
            .env("GITHUB_ENV", self.dir.join("github-env"))
            .env("GITHUB_STEP_SUMMARY", self.dir.join("step-summary"))
            .env("FAKE_EXIT", fake_exit);
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("bash runs")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn outputs(&self) -> String {
        self.read("github-output")
    }

    fn env_file(&self) -> String {
        self.read("github-env")
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stdin_of(&self, name: &str) -> String {
        self.read(&format!("{name}.stdin"))
    }

    fn log(&self, out: &Output) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}\ncalls:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.calls()
        )
    }
}

fn executable(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// RFC 4648 base64 with padding, as coreutils' `base64 -w0` writes it.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc_4648() {
    let _processes = crate::processes::shared();
    // RFC 4648 section 10's test vectors.
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_encode(plain.as_bytes()), encoded);
    }
}
