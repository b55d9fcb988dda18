//! How the suite starts and stops, driven from outside as a user (or CI) drives it: the real
//! `happy` test binary on the sandbox, real options, real signals — also through the nightly's
//! own step (`ci/nightly-run`) stopped as GitHub's runner stops it, and a kind run that stops
//! in preflight, each of which must leave a run.json saying how it ended. After each case nothing may
//! be left: no process descended from the run (this test process makes itself the child
//! subreaper, so an orphaned Envoy or Prometheus would become its child and be seen), no
//! temporary directory (each run gets its own `TMPDIR`, which must be empty afterwards), and
//! reports that belong to the run and parse.
//!
//! The cases run one at a time and alone in the binary (`crate::processes::alone`: they share
//! the subreaper's view of children, and kill every child left). Waits are for
//! lines the run prints, each bounded by a limit of the timeout table.
//!
//! `STOPPING_HAPPY_EXE=/path/to/happy-…` runs the cases against another build of the `happy`
//! target (to show a case failing before a fix); by default cargo builds this tree's.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use happy_istio::timeouts::Timeouts;

fn timeouts() -> Timeouts {
    Timeouts::from_env().expect("the timeout table reads")
}

/// The `happy` test binary, built by cargo if needed (never a stale copy from `target/`).
fn happy_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        if let Some(exe) = std::env::var_os("STOPPING_HAPPY_EXE") {
            return PathBuf::from(exe);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        for name in test_only_cargo_vars() {
            command.env_remove(name);
        }
        let out = command
            // `--workspace`, as `.ci/run` and `cargo test --workspace` build: dependencies'
            // features are unified over the selected packages (and their dev-dependencies), so
            // a narrower selection could be another build of some of them and of everything
            // above them.
            .args([
                "test",
                "--workspace",
                "--test",
                "happy",
                "--no-run",
                "--message-format=json",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo could not build the happy target"
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["target"]["name"] == "happy")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the happy executable")
    })
}

/// What cargo sets for a test process, not for a build: build scripts watch some of it (ring
/// reruns on CARGO_MANIFEST_DIR), and a changed value would rebuild the world. A build started
/// from a test goes without them.
fn test_only_cargo_vars() -> Vec<String> {
    std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .filter(|name| {
            [
                "CARGO_MANIFEST_",
                "CARGO_PKG_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|p| name.starts_with(p))
                || name == "CARGO_TARGET_TMPDIR"
                || name == "OUT_DIR"
        })
        .collect()
}

/// Make this process the subreaper of its descendants: orphans are reparented here.
fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER failed");
}

/// (pid, state, command line) of every process whose parent is this process.
fn own_children() -> Vec<(i32, char, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            let cmdline = std::fs::read(entry.path().join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            out.push((pid, state, cmdline));
        }
    }
    out
}

/// Processes whose command line mentions `needle` (e.g. a run's temporary directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            .is_none()
        {
            continue;
        }
        if let Ok(b) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&b).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(cmd);
            }
        }
    }
    out
}

#[derive(Debug)]
enum Line {
    Out(String),
    Err(String),
}

/// A run of the suite on the sandbox with its own TMPDIR and report directory.
struct Run {
    child: Child,
    lines: Receiver<Line>,
    seen: Vec<String>,
    tmp: tempfile::TempDir,
    report: PathBuf,
}

struct Spawn<'a> {
    args: &'a [&'a str],
    envs: Vec<(&'a str, String)>,
    /// Start with SIGINT ignored, as a background job of a non-interactive shell does.
    ignore_sigint: bool,
    report: Option<PathBuf>,
    /// Run this program (with `args`) instead of the happy binary.
    program: Option<PathBuf>,
    /// Start it in a process group of its own (led by it), so that the whole tree can be
    /// killed at once, as the runner kills a step, without this test.
    own_group: bool,
    /// Without the variables cargo sets only for a test process (it builds: see
    /// [`test_only_cargo_vars`]), and with this test's cargo first on PATH.
    as_a_build: bool,
}

impl<'a> Spawn<'a> {
    fn new(args: &'a [&'a str]) -> Self {
        Spawn {
            args,
            envs: Vec::new(),
            ignore_sigint: false,
            report: None,
            program: None,
            own_group: false,
            as_a_build: false,
        }
    }

    fn start(self) -> Run {
        use std::os::unix::process::CommandExt as _;
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let report = self.report.unwrap_or_else(|| tmp.path().join("report"));
        let run_tmp = tmp.path().join("tmp");
        std::fs::create_dir_all(&run_tmp).unwrap();
        let mut command = Command::new(self.program.as_deref().unwrap_or_else(|| happy_exe()));
        if self.own_group {
            command.process_group(0);
        }
        if self.as_a_build {
            for name in test_only_cargo_vars() {
                command.env_remove(name);
            }
            if let Some(dir) = std::env::var_os("CARGO")
                .map(PathBuf::from)
                .and_then(|c| c.parent().map(Path::to_path_buf))
            {
                let path = std::env::var_os("PATH").unwrap_or_default();
                let mut dirs = vec![dir];
                dirs.extend(std::env::split_paths(&path));
                command.env("PATH", std::env::join_paths(dirs).expect("a PATH"));
            }
        }
        command
            .args(self.args)
            .env("HAPPY_CLUSTER", "sandbox")
            .env("TMPDIR", &run_tmp)
            .env("HAPPY_REPORT_DIR", &report)
            .envs(self.envs)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.ignore_sigint {
            // SAFETY: only async-signal-safe signal(2) between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("the happy binary starts");
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(Line::Out(line));
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(Line::Err(line));
            }
        });
        Run {
            child,
            lines: rx,
            seen: Vec::new(),
            tmp,
            report,
        }
    }
}

impl Run {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the child this test started.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0, "kill failed");
    }

    /// Wait for a line (stdout or stderr) containing `needle`.
    fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line::Out(l) | Line::Err(l)) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line {needle:?} within {limit:?}:\n{}", self.output())
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the run ended without printing {needle:?}:\n{}",
                    self.output()
                ),
            }
        }
    }

    /// Wait for the run to end; its exit code (None: killed by a signal) and all its output.
    fn finish(&mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        let interval = timeouts().poll_interval;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waitpid") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the run did not end within {limit:?}:\n{}", self.output());
            }
            std::thread::sleep(interval);
        };
        // The reader threads end with the pipes.
        while let Ok(Line::Out(l) | Line::Err(l)) = self.lines.recv_timeout(limit) {
            self.seen.push(l);
        }
        (status.code(), self.output())
    }

    fn output(&self) -> String {
        self.seen.join("\n")
    }

    /// Nothing of the run is left: no process, no temporary file.
    fn assert_nothing_left(&self, output: &str) {
        let tmp = self.tmp.path().join("tmp");
        let orphans: Vec<_> = own_children()
            .into_iter()
            .filter(|(_, state, _)| *state != 'Z')
            .collect();
        let mentioning = processes_mentioning(&tmp.display().to_string());
        // Reap dead orphans, then kill live ones so one failed case does not spill into the next.
        for (pid, _, _) in own_children() {
            // SAFETY: signals and waitpid on this process's own (adopted) children.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        assert!(
            orphans.is_empty() && mentioning.is_empty(),
            "processes outlived the run: {orphans:?} {mentioning:?}\n{output}"
        );
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}\n{output}");
    }

    fn read_report(&self, name: &str) -> String {
        std::fs::read_to_string(self.report.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", self.output()))
    }
}

/// The run id the run announced (`happy-istio: run ID: …`).
fn run_id(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("happy-istio: run "))
        .and_then(|rest| rest.split(':').next())
        .expect("the run announces its id")
        .to_string()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Every scenario in a Cucumber JSON report with the statuses of its steps.
fn cucumber_scenarios(report: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    report
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["elements"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["type"] == "scenario")
        .map(|e| {
            let statuses = e["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    s["result"]["status"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            (e["name"].as_str().unwrap_or_default().to_string(), statuses)
        })
        .collect()
}

const C01: &str = "The services become Ready and service-a answers with the whole chain";
const C02: &str = "service-a serves its web UI at /ui";

#[test]
fn options_are_read_before_anything_is_made() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["--help"],
            0,
            &[
                "--tags",
                "HAPPY_CLUSTER",
                "HAPPY_KEEP",
                "HAPPY_ENVOY",
                "HAPPY_TIMEOUT_ROLLOUT",
                "HAPPY_CONSECUTIVE",
            ],
        ),
        (&["--tagz", "@C01"], 2, &["--tagz"]),
        (&["--tags", "@C01 and"], 2, &["@C01 and"]),
        (
            &["-c", "4"],
            2,
            &["--concurrency 4", "one shared namespace"],
        ),
        (&["--tags", "@C99"], 1, &["--tags @C99 selects no scenario"]),
        (&["--name", "no such scenario"], 1, &["selects no scenario"]),
    ];
    for (args, want_code, want_text) in cases {
        let holder = tempfile::tempdir().unwrap();
        let report = holder.path().join("report");
        std::fs::create_dir_all(&report).unwrap();
        for f in ["run.json", "junit.xml", "cucumber.json"] {
            std::fs::write(report.join(f), "previous run").unwrap();
        }
        let mut spawn = Spawn::new(args);
        spawn.report = Some(report.clone());
        let mut run = spawn.start();
        let (code, output) = run.finish(t.request);
        assert_eq!(code, Some(*want_code), "{args:?}:\n{output}");
        for text in *want_text {
            assert!(output.contains(text), "{args:?}: no {text:?} in:\n{output}");
        }
        assert!(
            !output.contains("provisioning"),
            "{args:?} provisioned:\n{output}"
        );
        for f in ["run.json", "junit.xml", "cucumber.json"] {
            assert_eq!(
                std::fs::read_to_string(report.join(f)).unwrap(),
                "previous run",
                "{args:?} touched {f}"
            );
        }
        run.assert_nothing_left(&output);
    }
}

#[test]
fn sigint_at_the_first_moment_is_not_ignored() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    // As a background job of a script: SIGINT starts ignored, and must still stop the run.
    let mut spawn = Spawn::new(&["--tags", "@C02"]);
    spawn.ignore_sigint = true;
    let mut run = spawn.start();
    run.wait_for("happy-istio: run ", t.cluster_create);
    run.signal(libc::SIGINT);
    let (code, output) = run.finish(t.delete);
    assert_eq!(code, Some(130), "{output}");
    assert!(!output.contains("1 passed"), "the run went on:\n{output}");
    run.assert_nothing_left(&output);
}

#[test]
fn sigterm_while_provisioning_tears_down() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    let mut run = Spawn::new(&["--tags", "@C02"]).start();
    run.wait_for("provisioning the cluster", t.cluster_create);
    run.signal(libc::SIGTERM);
    let (code, output) = run.finish(t.delete);
    assert_eq!(code, Some(143), "{output}");
    run.assert_nothing_left(&output);
    // Whatever reports the run left are its own.
    if let Ok(text) = std::fs::read_to_string(run.report.join("run.json")) {
        let info = json(&text);
        assert_eq!(info["run_id"], run_id(&output).as_str());
        assert!(info["stopped"].as_str().unwrap().contains("SIGTERM"));
    }
}

#[test]
fn sigterm_during_a_scenario_keeps_the_finished_ones_in_every_report() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    let mut run = Spawn::new(&["--tags", "@C01 or @C02"]).start();
    // C02 starts only once C01 has finished.
    run.wait_for(&format!("Scenario: {C02}"), t.cluster_create);
    run.signal(libc::SIGTERM);
    let (code, output) = run.finish(t.delete);
    assert_eq!(code, Some(143), "{output}");
    run.assert_nothing_left(&output);

    let info = json(&run.read_report("run.json"));
    assert_eq!(
        info["run_id"],
        run_id(&output).as_str(),
        "run.json is this run's"
    );
    assert_eq!(info["stopped"], "stopped by SIGTERM");
    assert_eq!(info["summary"]["passed"], 1, "{info}");
    assert_eq!(info["summary"]["not_run"], 1, "{info}");
    assert_eq!(info["summary"]["failed"], 0, "{info}");
    assert!(info["not_run"][0].as_str().unwrap().contains(C02), "{info}");

    let cucumber = json(&run.read_report("cucumber.json"));
    let scenarios = cucumber_scenarios(&cucumber);
    let c01 = scenarios
        .iter()
        .find(|(n, _)| n == C01)
        .expect("C01 finished and is reported");
    assert!(
        !c01.1.is_empty() && c01.1.iter().all(|s| s == "passed"),
        "{c01:?}"
    );
    let c02 = scenarios
        .iter()
        .find(|(n, _)| n == C02)
        .expect("C02 listed");
    assert_eq!(c02.1, ["skipped"], "C02 never ran: {c02:?}");

    let junit = run.read_report("junit.xml");
    assert!(
        junit.contains("<testsuites") && junit.trim_end().ends_with("</testsuites>"),
        "{junit}"
    );
    assert!(junit.contains(C01) && junit.contains(C02), "{junit}");
    assert!(junit.contains("cluster.kind"), "{junit}");
    assert!(
        junit.contains("not run: the run was stopped by SIGTERM"),
        "{junit}"
    );
}

#[test]
fn sighup_during_a_scenario_tears_down() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    let mut run = Spawn::new(&["--tags", "@C01"]).start();
    run.wait_for(&format!("Scenario: {C01}"), t.cluster_create);
    run.signal(libc::SIGHUP);
    let (code, output) = run.finish(t.delete);
    assert_eq!(code, Some(129), "{output}");
    run.assert_nothing_left(&output);
}

#[test]
fn a_second_signal_during_teardown_exits_at_once_and_leaves_nothing() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    // A meshed scenario: its Background starts Envoys (gateways and sidecars), the processes
    // that must not outlive a forced exit.
    let mut run = Spawn::new(&["--tags", "@C08"]).start();
    run.wait_for("sidecars are injected in istioinaction", t.cluster_create);
    run.signal(libc::SIGINT);
    run.wait_for("tearing down", t.delete);
    run.signal(libc::SIGINT);
    let (code, output) = run.finish(t.delete);
    assert_eq!(code, Some(130), "{output}");
    run.assert_nothing_left(&output);
    // The reports were written before teardown began.
    let info = json(&run.read_report("run.json"));
    assert_eq!(info["run_id"], run_id(&output).as_str());
}

/// A copy of the manifests in which service-a no longer calls service-c (negative.rs's C01
/// case): C01 fails, a claim failure, after its assertion limit.
fn broken_manifests(holder: &Path) -> PathBuf {
    let manifests = holder.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let (from, to) = (
        r#"value: "http://service-b,http://service-c""#,
        r#"value: "http://service-b""#,
    );
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == "services-a.yaml" {
            assert_eq!(
                text.matches(from).count(),
                1,
                "the breakage no longer applies"
            );
            text = text.replace(from, to);
        }
        std::fs::write(manifests.join(path.file_name().unwrap()), text).unwrap();
    }
    manifests
}

/// `--fail-fast` ends the run after C01 fails; C02, which never ran, is in every report as not
/// run, with the reason — not silently missing.
#[test]
fn fail_fast_reports_what_it_did_not_run() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    let holder = tempfile::tempdir().unwrap();
    let manifests = broken_manifests(holder.path());
    let mut spawn = Spawn::new(&["--tags", "@C01 or @C02", "--fail-fast"]);
    spawn.envs = vec![
        ("HAPPY_MANIFESTS", manifests.display().to_string()),
        ("HAPPY_TIMEOUT_ASSERTION", "3s".to_string()),
    ];
    let mut run = spawn.start();
    let (code, output) = run.finish(t.cluster_create);
    assert_eq!(code, Some(1), "{output}");
    run.assert_nothing_left(&output);
    assert!(
        output.contains("0 passed, 1 failed, 0 skipped, 1 not run"),
        "{output}"
    );
    let info = json(&run.read_report("run.json"));
    assert!(
        info["not_run"][0].as_str().unwrap().contains("--fail-fast"),
        "{info}"
    );
    let scenarios = cucumber_scenarios(&json(&run.read_report("cucumber.json")));
    assert_eq!(scenarios.len(), 2, "{scenarios:?}");
}

/// Two runs with failing scenarios in one report directory: each run's diagnostics are under
/// its own run id, and `run.json` lists as skipped only what the gate skipped of the selected
/// scenarios (none here: the filter leaves out every gated scenario).
#[test]
fn two_runs_keep_their_diagnostics_apart() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    let holder = tempfile::tempdir().unwrap();
    let report = holder.path().join("report");
    let manifests = broken_manifests(holder.path());
    let mut ids = BTreeSet::new();
    for _ in 0..2 {
        let mut spawn = Spawn::new(&["--tags", "@C01"]);
        spawn.report = Some(report.clone());
        spawn.envs = vec![
            ("HAPPY_MANIFESTS", manifests.display().to_string()),
            ("HAPPY_TIMEOUT_ASSERTION", "3s".to_string()),
        ];
        let mut run = spawn.start();
        let (code, output) = run.finish(t.cluster_create);
        assert_eq!(code, Some(1), "{output}");
        run.assert_nothing_left(&output);
        let info = json(&run.read_report("run.json"));
        let id = run_id(&output);
        assert_eq!(info["run_id"], id.as_str());
        // Filtered-out scenarios are not skipped ones; the failed one is counted as failed.
        assert_eq!(info["skipped"], serde_json::json!([]), "{info}");
        assert_eq!(info["summary"]["failed"], 1, "{info}");
        assert_eq!(info["summary"]["skipped"], 0, "{info}");
        assert_eq!(info["failures"][0]["class"], "claim", "{info}");
        let bundles: Vec<PathBuf> = std::fs::read_dir(report.join("diagnostics").join(&id))
            .unwrap_or_else(|e| panic!("no diagnostics for run {id}: {e}\n{output}"))
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(bundles.len(), 1, "{bundles:?}");
        assert!(
            bundles[0]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("01-"),
            "{bundles:?}"
        );
        let readme = std::fs::read_to_string(bundles[0].join("README.txt")).unwrap();
        assert!(readme.contains(C01), "{readme}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 2, "two runs, two ids: {ids:?}");
    let dirs: BTreeSet<String> = std::fs::read_dir(report.join("diagnostics"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs, ids, "one diagnostics directory per run, nothing else");
}

/// The nightly's step, stopped as GitHub's runner stops a cancelled or timed-out step:
/// `ci/nightly-run` (which builds the suite, then `exec`s it) in the background, then — once
/// at least one scenario has finished, as run.json shows — SIGINT to that process only, 7.5 s
/// later SIGTERM to it only, 2.5 s later SIGKILL to its whole process group (actions/runner
/// src/Runner.Sdk/ProcessInvoker.cs: CancelAndKillProcessTree, `_sigintTimeout` 7500 ms,
/// `_sigtermTimeout` 2500 ms, SendSignal `kill(_proc.Id, signal)`, then the kill). Those two
/// waits are the runner's own timers, modelled here as fixed waits. Within the 7.5 s the suite
/// must have written run.json saying it was stopped, with every scenario that had finished;
/// `ci/publish-docs` then shows that cell as stopped.
#[test]
fn the_nightly_step_stopped_as_githubs_runner_stops_it_leaves_its_report() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    // Built by cargo first, as ci/nightly-run will find it (and fresh then).
    happy_exe();
    let mut spawn = Spawn::new(&["ci/nightly-run"]);
    spawn.program = Some(PathBuf::from("bash"));
    spawn.own_group = true;
    spawn.as_a_build = true;
    let mut run = spawn.start();
    let pid = run.pid();
    let run_json = run.report.join("run.json");

    // Once a scenario has finished: what run.json says then must survive the stop.
    let read = |path: &Path| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    };
    let finished = |info: &serde_json::Value| -> BTreeSet<String> {
        let names = |key: &str| -> Vec<String> {
            info[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut all: BTreeSet<String> = names("passed").into_iter().collect();
        all.extend(names("skipped"));
        all.extend(
            info["failures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["scenario"].as_str().map(String::from)),
        );
        all
    };
    let limit = t.cluster_create + t.rollout;
    let deadline = Instant::now() + limit;
    let before = loop {
        if let Some(info) = read(&run_json)
            && !finished(&info).is_empty()
        {
            assert_eq!(info["state"], "in-progress", "{info}");
            break info;
        }
        if let Ok(Some(status)) = run.child.try_wait() {
            let (_, output) = run.finish(t.request);
            panic!("the step ended ({status}) before a scenario finished:\n{output}");
        }
        assert!(
            Instant::now() < deadline,
            "no scenario finished within {limit:?} (run.json: {:?})",
            read(&run_json)
        );
        std::thread::sleep(t.poll_interval);
    };
    let finished_before = finished(&before);

    // The runner's sequence: SIGINT to the step's process (the shell, which became the suite).
    let sigint = Instant::now();
    run.signal(libc::SIGINT);
    let runner_sigterm_after = Duration::from_millis(7500);
    let stopped_at = loop {
        if let Some(info) = read(&run_json)
            && info["state"] == "stopped"
        {
            break sigint.elapsed();
        }
        assert!(
            sigint.elapsed() < runner_sigterm_after,
            "run.json did not say stopped within the runner's 7.5 s after SIGINT: {:?}",
            read(&run_json)
        );
        std::thread::sleep(t.poll_interval);
    };
    println!("run.json said stopped {stopped_at:?} after SIGINT");
    // The runner's own timer: SIGTERM 7.5 s after SIGINT, to the step's process only, if it
    // is still there; then 2.5 s later the kill, here of the whole group.
    std::thread::sleep(runner_sigterm_after.saturating_sub(sigint.elapsed()));
    // SAFETY: kill(2) on the process this test started (a zombie at worst: not reaped yet).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: killpg(2) of the group this test made for the step (its leader is our child).
    unsafe { libc::killpg(pid, libc::SIGKILL) };
    let (code, output) = run.finish(t.delete);
    println!("the step ended with {code:?}");
    run.assert_nothing_left(&output);

    let info = json(&run.read_report("run.json"));
    assert_eq!(info["state"], "stopped", "{info}");
    assert_eq!(info["stopped"], "stopped by SIGINT", "{info}");
    assert_eq!(info["run_id"], before["run_id"], "the same run's report");
    let after = finished(&info);
    assert!(
        finished_before.is_subset(&after),
        "finished before the stop: {finished_before:?}; in the final run.json: {after:?}"
    );
    for name in &finished_before {
        let was = |v: &serde_json::Value| {
            (
                v["passed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p == name.as_str()),
                v["failures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["scenario"] == name.as_str()),
            )
        };
        assert_eq!(was(&before), was(&info), "{name} kept its outcome");
    }
    let summary = &info["summary"];
    assert!(summary["not_run"].as_u64().unwrap() > 0, "{info}");
    assert_eq!(
        summary["passed"].as_u64().unwrap()
            + summary["failed"].as_u64().unwrap()
            + summary["skipped"].as_u64().unwrap(),
        after.len() as u64,
        "{info}"
    );

    // The nightly's publish step renders the cell as stopped.
    let holder = tempfile::tempdir().unwrap();
    let artifacts = holder.path().join("artifacts");
    let cell = artifacts.join("happy-istio-sandbox");
    std::fs::create_dir_all(&cell).unwrap();
    for entry in std::fs::read_dir(&run.report).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, cell.join(path.file_name().unwrap())).unwrap();
        }
    }
    let site = holder.path().join("site");
    let summary_md = holder.path().join("summary.md");
    let published = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/publish-docs"))
        .arg("--artifacts")
        .arg(&artifacts)
        .arg("--previous-history")
        .arg(holder.path().join("no-history.json"))
        .arg("--out")
        .arg(&site)
        .arg("--summary")
        .arg(&summary_md)
        .args(["--happy-docs", env!("CARGO_BIN_EXE_happy-docs")])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let md = std::fs::read_to_string(&summary_md).unwrap();
    assert!(md.contains("**stopped by SIGINT**"), "{md}");
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(
        index.contains(r#"<span class="ended" data-state="stopped">stopped by SIGINT</span>"#),
        "the cell's column says it was stopped"
    );
    let history = json(&std::fs::read_to_string(site.join("history.json")).unwrap());
    assert_eq!(history["runs"][0]["ended"], "stopped by SIGINT");
}

/// A kind run on a machine whose container engine does not answer stops in preflight, before
/// anything is made — and leaves a run.json that says so: the environment's verdict with the
/// cause, every selected scenario not run, the Istio version asked for and the cluster kind.
/// The living documentation shows that run as a failed column, the environment's failure.
#[test]
fn a_preflight_failure_leaves_a_run_json_with_the_environments_verdict() {
    let _processes = crate::processes::alone();
    become_subreaper();
    let t = timeouts();
    let holder = tempfile::tempdir().unwrap();
    // No daemon answers here, whatever this machine has.
    let socket = holder.path().join("no-docker.sock");
    let mut spawn = Spawn::new(&["--tags", "@C01 or @C02"]);
    spawn.envs = vec![
        ("HAPPY_CLUSTER", "kind".to_string()),
        ("ISTIO_VERSION", "1.30.5".to_string()),
        ("DOCKER_HOST", format!("unix://{}", socket.display())),
        (
            "HAPPY_CACHE_DIR",
            holder.path().join("cache").display().to_string(),
        ),
    ];
    let started = Instant::now();
    let mut run = spawn.start();
    let (code, output) = run.finish(t.cluster_create);
    println!(
        "the kind run stopped in preflight after {:?}",
        started.elapsed()
    );
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("preflight"), "{output}");
    // The cluster is named once: "kind cluster: HAPPY_CLUSTER=kind needs …".
    assert!(!output.contains("kind cluster: kind cluster"), "{output}");
    run.assert_nothing_left(&output);

    let info = json(&run.read_report("run.json"));
    assert_eq!(info["run_id"], run_id(&output).as_str());
    assert_eq!(info["state"], "provisioning-failed", "{info}");
    assert_eq!(info["cluster_kind"], "kind");
    assert_eq!(info["istio_version"], "1.30.5");
    assert_eq!(info["verdict"]["class"], "environment", "{info}");
    let verdict = info["verdict"]["message"].as_str().unwrap();
    assert!(
        verdict.starts_with("provisioning failed: ") && verdict.contains("container engine"),
        "{verdict}"
    );
    assert_eq!(info["summary"]["not_run"], 2, "{info}");
    for (i, name) in [C01, C02].iter().enumerate() {
        let entry = info["not_run"][i].as_str().unwrap();
        assert!(
            entry.contains(name) && entry.contains("not run: provisioning failed: "),
            "{entry}"
        );
    }
    assert!(
        !run.report.join("cucumber.json").exists() && !run.report.join("junit.xml").exists(),
        "no scenario ran: no cucumber reports"
    );

    // happy-docs: a failed column, saying why and whose failure it was.
    let site = holder.path().join("site");
    let mut options = happy_istio::docs::Options::for_reports(vec![run.report.clone()]);
    options.out = Some(site.clone());
    happy_istio::docs::build(&options).unwrap();
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(
        index.contains(
            r#"<span class="ended" data-state="provisioning-failed">failed (environment failure): provisioning failed: "#
        ),
        "the column says it failed, why, and whose failure it was"
    );
    for claim in ["C01", "C02"] {
        let cell = format!(
            r#"data-claim="{claim}" data-run="{}" data-status="failed""#,
            run_id(&output)
        );
        assert!(index.contains(&cell), "{claim} failed on that run");
    }
    let history = json(&std::fs::read_to_string(site.join("history.json")).unwrap());
    assert_eq!(history["runs"][0]["line"], "1.30");
    assert_eq!(history["runs"][0]["claims"]["C01"]["status"], "failed");
}
