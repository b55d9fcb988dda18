//! The workshop by hand: every command of `sandbox/cli/workshop/commands.yaml` (the workshop's
//! commands in the workshop's order), run with the real kubectl and curl against
//! `happy-sandbox up --istio --addons`, each checked for what the workshop says it shows.
//! Plus the runner's own tests: a wrong expectation fails it, naming the entry.

use crate::pod_addresses;
use crate::walkthrough;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use walkthrough::{Outcome, Runner, Walkthrough};

const BIN: &str = env!("CARGO_BIN_EXE_happy-sandbox");
const COMMANDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/workshop/commands.yaml");
/// How long `up --istio --addons` may take to print "Press Ctrl-C" (its own readiness
/// waits included; the first run may install Envoy from PyPI).
const UP_LIMIT: Duration = Duration::from_secs(300);
/// How long `up` may take to stop after SIGINT.
const STOP_LIMIT: Duration = Duration::from_secs(60);

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests")
}

fn load() -> Walkthrough {
    let text = std::fs::read_to_string(COMMANDS).expect("commands.yaml is readable");
    Walkthrough::parse(COMMANDS, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Print past the test harness's capture, so skips and "not yet" show in every run.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// The claims the suite's feature files tag their scenarios with (`@C08`).
fn tagged_claims() -> std::collections::BTreeSet<String> {
    let features = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../features");
    let mut tags = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&features).expect("features/ is readable") {
        let path = entry.expect("a features/ entry").path();
        if path.extension().is_some_and(|e| e == "feature") {
            let text = std::fs::read_to_string(&path).expect("a feature file is readable");
            for tag in text.split_whitespace().filter_map(|w| w.strip_prefix('@')) {
                let id = tag.strip_prefix('C').unwrap_or_default();
                if id.len() == 2 && id.bytes().all(|b| b.is_ascii_digit()) {
                    tags.insert(tag.to_string());
                }
            }
        }
    }
    tags
}

#[test]
fn each_claim_key_names_a_tagged_claim_and_every_claim_has_its_command() {
    let _pods = pod_addresses::shared_blocking();
    let w = load();
    let tagged = tagged_claims();
    assert_eq!(
        tagged.len(),
        22,
        "C01–C22 are tagged in features/: {tagged:?}"
    );
    let mut shown = std::collections::BTreeSet::new();
    for (i, s) in w.steps.iter().enumerate() {
        if let Some(claim) = &s.claim {
            assert!(
                tagged.contains(claim),
                "{}: claim {claim} is no scenario's tag in features/",
                s.describe(i)
            );
            shown.insert(claim.clone());
        }
    }
    // Every claim is something the workshop has its reader type or look at.
    let missing: Vec<_> = tagged.difference(&shown).collect();
    assert!(missing.is_empty(), "no entry shows {missing:?}");
}

#[test]
fn the_commands_file_parses_and_follows_the_workshop_order() {
    let _pods = pod_addresses::shared_blocking();
    let w = load();
    // Every workshop command the file names appears in the workshop, in that order, so the
    // file reads side by side with it (checked against the manifests' chapter order).
    let sections: Vec<&str> = w.steps.iter().map(|s| s.section.as_str()).collect();
    let first = |name: &str| {
        sections
            .iter()
            .position(|s| *s == name)
            .unwrap_or_else(|| panic!("no section {name:?}"))
    };
    let order = [
        "Deploy workloads",
        "Services",
        "Install Istio",
        "Automatic sidecar injection",
        "Manual sidecar injection",
        "Istio Ingress Gateway",
        "Access logs",
        "Metrics",
        "Traffic Management",
        "Mirroring traffic",
        "Security",
        "Reducing access",
    ];
    for pair in order.windows(2) {
        assert!(first(pair[0]) < first(pair[1]), "{pair:?} out of order");
    }
    // Each non-kubectl step of the workshop is listed with why it is not run as written.
    for s in &w.steps {
        let cmd = s.workshop.trim_start();
        if cmd.starts_with("istioctl") {
            assert!(
                s.skip.is_some() || s.run.is_some(),
                "{}: istioctl is not on the sandbox",
                s.describe(0)
            );
        }
    }
}

fn runner_in(dir: &Path) -> Runner {
    let mut r = Runner::new(
        dir,
        vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
    );
    r.poll = Duration::from_millis(10);
    r
}

#[test]
fn a_wrong_expectation_fails_the_runner_naming_the_entry() {
    let _pods = pod_addresses::shared_blocking();
    let text = r#"
defaults: {within: 1s}
steps:
  - section: Right
    workshop: echo hello
    expect: {contains: [hello], lines: {count: 1, each: '^hello$'}}
  - section: Deliberately wrong
    workshop: echo hello
    expect: {contains: [goodbye]}
  - section: Never reached
    workshop: echo never
"#;
    let w = Walkthrough::parse("inline.yaml", text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (done, err) = runner_in(dir.path()).run_all(&w).unwrap_err();
    assert_eq!(done.len(), 1, "the first entry passed, the third never ran");
    assert!(
        err.contains("entry 2 (Deliberately wrong: echo hello)"),
        "{err}"
    );
    assert!(err.contains("does not contain \"goodbye\""), "{err}");
}

#[test]
fn wrong_exit_codes_line_counts_and_waits_fail_too() {
    let _pods = pod_addresses::shared_blocking();
    let cases = [
        ("workshop: 'false'", "exit code 1, expected 0"),
        (
            "workshop: echo a; echo b\n    expect: {lines: {count: 1, each: '.'}}",
            "2 lines on stdout, expected 1",
        ),
        (
            "workshop: echo 500\n    until: true\n    within: 200ms\n    expect: {matches: ['^200$']}",
            "(still, after 0s)",
        ),
        (
            "workshop: echo x\n    output_of: nothing",
            "no background command \"nothing\"",
        ),
    ];
    for (entry, want) in cases {
        let text = format!("defaults: {{within: 1s}}\nsteps:\n  - section: S\n    {entry}\n");
        let w = Walkthrough::parse("inline.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap();
        let (_, err) = runner_in(dir.path()).run_all(&w).unwrap_err();
        assert!(err.contains("entry 1 (S:"), "{err}");
        assert!(err.contains(want), "{want} in {err}");
    }
}

#[test]
fn a_background_command_is_ended_with_its_process_group() {
    let _pods = pod_addresses::shared_blocking();
    let text = r#"
defaults: {within: 5s}
steps:
  - section: S
    workshop: sh -c 'echo $$ > child.pid; echo up; exec sleep 1000'
    background: loop
    ready: up
  - section: S
    workshop: (its output)
    output_of: loop
    expect: {contains: [up]}
"#;
    let w = Walkthrough::parse("inline.yaml", text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let mut r = runner_in(dir.path());
        r.run_all(&w).unwrap_or_else(|(_, e)| panic!("{e}"));
        // `r` drops here with the background still running.
    }
    let pid: i32 = std::fs::read_to_string(dir.path().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the background's child {pid} was ended");
}

#[test]
fn bad_entries_are_refused_naming_the_file_and_entry() {
    let _pods = pod_addresses::shared_blocking();
    let cases = [
        ("workshop: x\n    run: y", "`run` differs"),
        ("workshop: x\n    colour: red", "colour"),
        (
            "workshop: x\n    expect: {matches: ['(']}",
            "regular expression",
        ),
    ];
    for (entry, want) in cases {
        let text = format!("defaults: {{within: 1s}}\nsteps:\n  - section: S\n    {entry}\n");
        let err = Walkthrough::parse("inline.yaml", &text).unwrap_err();
        assert!(err.starts_with("inline.yaml: "), "{err}");
        assert!(err.contains(want), "{want} in {err}");
    }
}

/// `happy-sandbox up` as a child; SIGINT and a wait on drop, SIGKILL if it does not stop.
struct Up {
    child: Child,
    banner: String,
}

impl Up {
    fn start(kubeconfig: &Path) -> Up {
        let mut child = Command::new(BIN)
            .args(["up", "--istio", "--addons", "--kubeconfig"])
            .arg(kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .expect("happy-sandbox starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Nobody listens any more: keep draining so `up` never blocks.
                    continue;
                }
            }
        });
        let mut up = Up {
            child,
            banner: String::new(),
        };
        let deadline = std::time::Instant::now() + UP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    up.banner.push_str(&line);
                    up.banner.push('\n');
                    if line.contains("Press Ctrl-C") {
                        break;
                    }
                }
                Err(_) => panic!(
                    "happy-sandbox up did not come up within {}s:\n{}",
                    UP_LIMIT.as_secs(),
                    up.banner
                ),
            }
        }
        std::thread::spawn(move || while rx.recv().is_ok() {});
        up
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signalling the child we started.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = std::time::Instant::now() + STOP_LIMIT;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_workshop_by_hand_on_happy_sandbox_up() {
    let _pods = pod_addresses::shared_blocking();
    if let Some(reason) = happy_sandbox::mesh::envoy_unavailable_reason() {
        say(&format!("SKIPPED the workshop by hand: {reason}"));
        return;
    }
    for tool in ["kubectl", "curl", "bash"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found && tool == "kubectl" {
            // `kubectl --version` is not a flag; `kubectl version --client` is.
            let ok = Command::new("kubectl")
                .args(["version", "--client"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "the workshop by hand needs kubectl on PATH");
        } else {
            assert!(found, "the workshop by hand needs {tool} on PATH");
        }
    }
    // The workshop's port-forward takes localhost:8080; it must be free.
    if let Err(e) = std::net::TcpListener::bind("127.0.0.1:8080") {
        panic!(
            "the workshop's `kubectl port-forward deploy/service-a 8080` needs 127.0.0.1:8080, \
             which is taken ({e}); stop what listens there and run again"
        );
    }
    let w = load();
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("happy-sandbox.kubeconfig");
    let up = Up::start(&kubeconfig);
    // What `istioctl install` prints, each line once its component is ready.
    for line in [
        "✔ Istio core installed",
        "✔ Istiod installed",
        "✔ Ingress gateways installed",
        "✔ Egress gateways installed",
        "✔ Installation complete",
        "Addons installed and ready",
    ] {
        assert!(up.banner.contains(line), "{line:?} in:\n{}", up.banner);
    }
    let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut runner = Runner::new(
        &manifests(),
        vec![
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
            // kubectl's discovery cache goes here, not in the user's home.
            ("HOME".into(), home.path().display().to_string()),
            ("PATH".into(), path),
        ],
    );
    let result = runner.run_all(&w);
    let (reports, failure) = match result {
        Ok(r) => (r, None),
        Err((r, e)) => (r, Some(e)),
    };
    let mut summary = String::from("the workshop by hand on the sandbox:\n");
    for r in &reports {
        let what = match &r.outcome {
            Outcome::Passed => "ok".to_string(),
            Outcome::Started => "started in the background".to_string(),
            Outcome::Stopped => "ended".to_string(),
            Outcome::Skipped(why) => format!("not run: {why}"),
            Outcome::NotYet(why) => format!("NOT YET SUPPORTED: {why}"),
        };
        summary.push_str(&format!("  {} — {what}\n", r.step_text));
    }
    say(&summary);
    drop(runner);
    drop(up);
    if let Some(e) = failure {
        panic!("{e}");
    }
    assert!(
        !kubeconfig.exists(),
        "up removed its kubeconfig when it stopped"
    );
}
