//! The workshop's capture command through the real `kubectl`, as a reader types it (README,
//! chapter "Security"): `kubectl -n istioinaction exec deploy/service-a -c istio-proxy -- sudo
//! tcpdump -l --immediate-mode -vv -s 0 '<payload-only filter>'`. The sandbox's tcpdump is the
//! host's real one reading the pod's packets; these tests check what the reader sees — the
//! legacy client's plaintext HTTP, nothing readable between sidecars under STRICT mTLS,
//! tcpdump's own error for a bad filter — and that ending kubectl (Ctrl-C) leaves no tcpdump
//! running.

use crate::mesh_support;
use crate::pod_addresses;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use mesh_support::{LIMIT, MeshCluster, NS};
use tokio::io::AsyncReadExt;

/// The workshop's filter: only packets with a TCP payload.
const PAYLOAD_ONLY: &str = "(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)";

fn workshop_command(filter: &str) -> Vec<String> {
    [
        "-n",
        "istioinaction",
        "exec",
        "deploy/service-a",
        "-c",
        "istio-proxy",
        "--",
        "sudo",
        "tcpdump",
        "-l",
        "--immediate-mode",
        "-vv",
        "-s",
        "0",
        filter,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn tcpdump_installed() -> bool {
    ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"]
        .iter()
        .any(|p| Path::new(p).is_file())
}

/// The start both tests' filters share (the bad filter is the workshop's, cut short).
const FILTER_START: &str = "(((ip[2:2] - ((ip[0]&0xf)<<2))";

/// The tcpdump processes that are children of this test process and capture with the
/// workshop's filter: the sandbox runs tcpdump as this process's child, and other tests of this
/// binary (mesh_observability's `sudo tcpdump -c 20 tcp`) run theirs at the same time.
fn tcpdump_children() -> Vec<u32> {
    assert!(PAYLOAD_ONLY.starts_with(FILTER_START));
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid …; comm may hold spaces, so split after the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            comm == "tcpdump"
                && ppid == Some(me)
                && String::from_utf8_lossy(&cmdline).contains(FILTER_START)
        })
        .collect()
}

/// A running `kubectl exec … tcpdump`: its output so far, read as it comes.
struct Capture {
    child: tokio::process::Child,
    out: tokio::sync::watch::Receiver<String>,
    /// Its stderr, also read as it comes: kept whole if kubectl is slow to end.
    err: tokio::sync::watch::Receiver<String>,
}

/// Reads `stream` into a watched string until it ends.
fn collect(
    mut stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::sync::watch::Receiver<String> {
    let (tx, rx) = tokio::sync::watch::channel(String::new());
    tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tx.send_modify(|s| s.push_str(&String::from_utf8_lossy(&buf[..n])));
        }
    });
    rx
}

impl Capture {
    fn start(kubeconfig: &Path, args: &[String]) -> Self {
        let mut command = tokio::process::Command::new("kubectl");
        // SIGINT at its default, as in a terminal where a reader presses Ctrl-C: a process
        // started in the background by a non-interactive shell (bash runs asynchronous
        // commands with SIGINT ignored when job control is off) passes the ignored SIGINT on
        // through exec, and Go keeps it ignored (os/signal: "If the Go program is started
        // with either SIGHUP or SIGINT ignored … they will remain ignored"). Seen in CI
        // rehearsals: kubectl's SigIgn 0x80000002, and it never ended on SIGINT.
        // SAFETY: signal(2) only, between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = command
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl 1.32+ must be on PATH for this test");
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Self { child, out, err }
    }

    /// Send `traffic` until the output satisfies `done`; the output then.
    async fn until<F, Fut>(
        &mut self,
        what: &str,
        mut traffic: F,
        done: impl Fn(&str) -> bool,
    ) -> String
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let deadline = Instant::now() + LIMIT;
        loop {
            let now = self.out.borrow().clone();
            if done(&now) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {LIMIT:?}; tcpdump printed:\n{now}"
            );
            traffic().await;
        }
    }

    /// End kubectl as Ctrl-C does (SIGINT), and its stderr.
    async fn interrupt(mut self) -> String {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as i32, libc::SIGINT);
            }
        }
        let ended = tokio::time::timeout(LIMIT, self.child.wait()).await;
        // And its stderr read to the end (the reader drops its sender at end of file).
        let mut err = self.err.clone();
        let _ = tokio::time::timeout(LIMIT, async { while err.changed().await.is_ok() {} }).await;
        let err = err.borrow().clone();
        assert!(
            ended.is_ok(),
            "kubectl exec did not end within {LIMIT:?} of SIGINT; its stderr so far:\n{err}"
        );
        err
    }
}

/// No tcpdump left behind once the exec ended (polled: the sandbox ends it asynchronously).
async fn no_tcpdump_left() {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = tcpdump_children();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "tcpdump still running: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workshops_tcpdump_shows_plaintext_then_nothing_readable_under_strict() {
    let _pods = pod_addresses::shared().await;
    if !tcpdump_installed() {
        eprintln!("SKIPPED: no tcpdump on this host (install Debian's tcpdump package)");
        return;
    }
    let c = MeshCluster::workshop_with(crate::common::with_kubectl(), false).await;
    c.apply_legacy_client().await;
    c.wait_pods("default", 1).await;
    let kubeconfig = c.sandbox.kubeconfig_path().to_path_buf();
    let url = "http://service-a.istioinaction.svc.cluster.local";

    // PERMISSIVE: the legacy client's call is on the wire in clear text, as the workshop shows.
    let mut capture = Capture::start(&kubeconfig, &workshop_command(PAYLOAD_ONLY));
    let shown = capture
        .until(
            "the legacy client's plaintext response",
            || async {
                let _ = c.curl("default", "legacy", "", &["-s", url]).await;
            },
            // A call may start before the capture does: wait for a whole exchange.
            |out| {
                out.contains("\tGET / HTTP/1.1")
                    && out.contains("\tHTTP/1.1 200 OK")
                    && out.contains("\"name\": \"service-a\"")
            },
        )
        .await;
    assert!(
        shown.contains(": HTTP, length: "),
        "tcpdump -vv's HTTP printer: {shown}"
    );
    assert!(
        shown.contains("\tGET / HTTP/1.1"),
        "the request too: {shown}"
    );
    assert!(shown.contains("cksum 0x"), "-vv's TCP details: {shown}");
    assert!(
        !shown.contains("Flags [S]") && !shown.contains("Flags [S.]"),
        "the payload-only filter drops the handshake: {shown}"
    );
    // The capture's tcpdump is seen as this process's child with the workshop's filter, so the
    // check that none is left after Ctrl-C can see one.
    assert!(
        !tcpdump_children().is_empty(),
        "the running capture's tcpdump"
    );
    let err = capture.interrupt().await;
    assert!(
        err.starts_with(
            "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes"
        ),
        "{err}"
    );
    no_tcpdump_left().await;

    // STRICT: service-b's calls to service-a (from its app container, through both sidecars)
    // are TLS: tcpdump sees them on port 8080 (its HTTP printer names the port's protocol) but
    // prints nothing of them as text.
    c.apply(NS, "peer-auth-strict.yaml").await;
    mesh_support::eventually("STRICT to reset the legacy client", LIMIT, || async {
        let (code, _, _) = c.curl("default", "legacy", "", &["-s", url]).await;
        if code == 56 {
            Ok(())
        } else {
            Err(format!("curl exit {code}"))
        }
    })
    .await;
    let a = c.pod(NS, "service-a").await;
    let b = c.pod(NS, "service-b").await;
    let mut capture = Capture::start(&kubeconfig, &workshop_command(PAYLOAD_ONLY));
    let shown = capture
        .until(
            "20 packets with a payload on service-a's port 8080",
            || async {
                let _ = c
                    .curl(NS, &b.name_any(), "service-b", &["-s", "http://service-a"])
                    .await;
            },
            |out| {
                out.lines()
                    .filter(|l| l.contains(".8080: Flags [") && l.ends_with(": HTTP"))
                    .count()
                    >= 20
            },
        )
        .await;
    assert!(
        !shown.contains("HTTP/1.1") && !shown.contains(", length: "),
        "nothing readable between sidecars in {}'s capture:\n{shown}",
        a.name_any()
    );
    assert!(
        !tcpdump_children().is_empty(),
        "the running capture's tcpdump"
    );
    capture.interrupt().await;
    no_tcpdump_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_filter_gets_tcpdumps_error_and_no_sudo_no_capture() {
    let _pods = pod_addresses::shared().await;
    if !tcpdump_installed() {
        eprintln!("SKIPPED: no tcpdump on this host (install Debian's tcpdump package)");
        return;
    }
    let c = MeshCluster::workshop_with(crate::common::with_kubectl(), false).await;
    let kubeconfig = c.sandbox.kubeconfig_path().to_path_buf();
    let run = |args: Vec<String>| {
        let kubeconfig = kubeconfig.clone();
        async move {
            tokio::process::Command::new("kubectl")
                .args(args)
                .env("KUBECONFIG", kubeconfig)
                .output()
                .await
                .expect("kubectl")
        }
    };
    let out = run(workshop_command(FILTER_START)).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("tcpdump: can't parse filter expression: syntax error"),
        "{err}"
    );
    assert!(err.contains("command terminated with exit code 1"), "{err}");
    let mut unprivileged = workshop_command(PAYLOAD_ONLY);
    unprivileged.retain(|a| a != "sudo");
    let out = run(unprivileged).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("eth0: You don't have permission"), "{err}");
    no_tcpdump_left().await;
}
