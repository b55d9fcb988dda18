//! `happy-sandbox up`: writes a 0600 kubeconfig that kubectl can use, stops cleanly on SIGINT
//! and SIGTERM (nothing keeps listening), and fails clearly on a port in use or an unwritable
//! kubeconfig path.

use crate::pod_addresses;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_happy-sandbox");
const LIMIT: Duration = Duration::from_secs(30);

/// Start `up` and wait (by reading its output, no sleeping) for the "export KUBECONFIG" line.
async fn start(kubeconfig: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("up")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("happy-sandbox starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("Press Ctrl-C") {
                return;
            }
        }
        panic!("happy-sandbox ended early:\n{seen}");
    })
    .await
    .expect("happy-sandbox comes up");
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, seen)
}

async fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("still running").to_string();
    let status = Command::new("kill")
        .args([sig, &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

fn port_of(banner: &str) -> u16 {
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("https://127.0.0.1:"))
        .expect("server URL printed");
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn up_serves_kubectl_and_stops_on_sigint_and_sigterm() {
    let _pods = pod_addresses::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("nested/kc.yaml");
    for sig in ["-INT", "-TERM"] {
        let (mut child, banner) = start(&kubeconfig, &[]).await;
        assert!(
            banner.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
            "{banner}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "kubeconfig mode");
        }
        let text = std::fs::read_to_string(&kubeconfig).unwrap();
        assert!(
            text.contains("certificate-authority-data:")
                && text.contains("token:")
                && text.contains("namespace: default"),
            "{text}"
        );
        let out = Command::new("kubectl")
            .args(["get", "namespaces", "-o", "name"])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .await
            .expect("kubectl on PATH");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/istio-system"));
        let port = port_of(&banner);
        signal(&child, sig).await;
        let status = tokio::time::timeout(LIMIT, child.wait())
            .await
            .expect("stops")
            .unwrap();
        assert!(status.success(), "{sig}: {status}");
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err(),
            "API still listening after {sig}"
        );
    }
}

#[tokio::test]
async fn port_in_use_and_unwritable_path_fail_clearly() {
    let _pods = pod_addresses::shared().await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["up", "--port", &port, "--kubeconfig"])
        .arg(dir.path().join("kc"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port) && err.contains("in use"), "{err}");

    // A path below a regular file cannot be written.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let out = Command::new(BIN)
        .args(["up", "--kubeconfig"])
        .arg(file.join("kc"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plain-file"), "{err}");

    let out = Command::new(BIN)
        .args(["up", "--port", "http"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));
}

/// Processes whose parent is `pid`, with their command lines (from /proc).
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces, so split after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            out.push((child, cmdline));
        }
    }
    out
}

/// Alive: present in /proc and not a zombie (an orphan whose new parent does not reap it is
/// dead all the same).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s != "Z"))
            .unwrap_or(false)
    })
}

/// Polls `check` every 100 ms until it holds or [`LIMIT`] passes.
async fn poll_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn temp_dirs_of(pid: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("happy-sandbox-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// `up --istio --addons` until its gateways' Envoys and Prometheus run; their pids.
async fn start_with_children(kubeconfig: &Path) -> (Child, Vec<(u32, String)>) {
    let (child, _) = start(kubeconfig, &["--istio", "--addons"]).await;
    let pid = child.id().expect("running");
    let mut seen = Vec::new();
    poll_until("Envoy and Prometheus children of happy-sandbox", || {
        seen = children_of(pid);
        seen.iter().any(|(_, c)| c.contains("envoy"))
            && seen.iter().any(|(_, c)| c.contains("prometheus"))
    })
    .await;
    let tied: Vec<(u32, String)> = seen
        .into_iter()
        .filter(|(_, c)| c.contains("envoy") || c.contains("prometheus"))
        .collect();
    assert!(!temp_dirs_of(pid).is_empty(), "the sandbox has a temp dir");
    (child, tied)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn every_signal_stops_the_children_and_removes_the_temp_dir() {
    let _pods = pod_addresses::shared().await;
    if happy_sandbox::mesh::envoy_unavailable_reason().is_some()
        || happy_sandbox::mesh::prometheus::unavailable_reason().is_some()
    {
        eprintln!("SKIPPED: needs envoy and prometheus");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc.yaml");
    // SIGINT, SIGTERM and SIGHUP tear down; SIGKILL leaves the children to the kernel
    // (parent-death signal) and the temp dir behind (nothing can run on SIGKILL); two quick
    // signals force the exit but still leave nothing.
    for sig in ["-INT", "-TERM", "-HUP", "-KILL", "-TERM -TERM"] {
        let (mut child, tied) = start_with_children(&kubeconfig).await;
        let pid = child.id().unwrap();
        for (i, s) in sig.split_whitespace().enumerate() {
            if i == 0 {
                signal(&child, s).await;
            } else {
                // The first may already have finished it: a failed kill is fine here.
                let _ = Command::new("kill")
                    .args([s, &pid.to_string()])
                    .status()
                    .await;
            }
        }
        let status = tokio::time::timeout(LIMIT, child.wait())
            .await
            .unwrap_or_else(|_| panic!("{sig}: happy-sandbox did not stop"))
            .unwrap();
        if sig == "-INT" || sig == "-TERM" || sig == "-HUP" {
            assert!(status.success(), "{sig}: {status}");
        }
        poll_until(&format!("{sig}: every Envoy and Prometheus gone"), || {
            tied.iter().all(|(p, _)| !alive(*p))
        })
        .await;
        if sig == "-KILL" {
            for d in temp_dirs_of(pid) {
                let _ = std::fs::remove_dir_all(d);
            }
            let _ = std::fs::remove_file(&kubeconfig);
        } else {
            assert_eq!(temp_dirs_of(pid), Vec::<std::path::PathBuf>::new(), "{sig}");
            assert!(!kubeconfig.exists(), "{sig}: kubeconfig left");
        }
    }
}

#[tokio::test]
async fn an_unusable_happy_envoy_is_refused_before_anything_starts() {
    let _pods = pod_addresses::shared().await;
    let dir = tempfile::tempdir().unwrap();
    for bad in ["/nonexistent/envoy", "/bin/false"] {
        // Bounded: a sandbox that accepted the setting would run until stopped.
        let out = tokio::time::timeout(
            LIMIT,
            Command::new(BIN)
                .args(["up", "--istio", "--kubeconfig"])
                .arg(dir.path().join("kc"))
                .env("HAPPY_ENVOY", bad)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("HAPPY_ENVOY={bad} was accepted: the sandbox kept running"))
        .unwrap();
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("HAPPY_ENVOY={bad}")), "{err}");
        assert!(
            !dir.path().join("kc").exists(),
            "nothing was started for {bad}"
        );
    }
}

#[tokio::test]
async fn a_malformed_fault_rule_is_refused_before_anything_starts() {
    let _pods = pod_addresses::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let rule = "pull:docker.io/istio/*=flaky";
    // Bounded: a sandbox that accepted the rule would run until stopped.
    let out = tokio::time::timeout(
        LIMIT,
        Command::new(BIN)
            .args(["up", "--kubeconfig"])
            .arg(dir.path().join("kc"))
            .env("HAPPY_SANDBOX_FAULTS", format!("pull:*=slow:1;{rule}"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the malformed rule was accepted: the sandbox kept running")
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in ["HAPPY_SANDBOX_FAULTS", rule, "unknown fault \"flaky\""] {
        assert!(err.contains(part), "{part:?} missing in {err}");
    }
    assert!(!dir.path().join("kc").exists(), "nothing was started");
}
