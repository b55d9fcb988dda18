//! `happy-sandbox up`: writes a 0600 kubeconfig that kubectl can use, stops cleanly on SIGINT
//! and SIGTERM (nothing keeps listening), and fails clearly on a port in use or an unwritable
//! kubeconfig path.

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
