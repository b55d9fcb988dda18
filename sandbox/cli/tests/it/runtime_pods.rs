//! Pod-level behaviour of the sandbox runtime: readiness probes, exec with stdin, the per-pod
//! SOCKS egress used by outside processes, log follow, and fake-service's failing upstreams.

use crate::pod_addresses;
use crate::runtime_support;

use std::time::Duration;

use futures::StreamExt;
use happy_sandbox::cri::{ContainerState, ExecRequest, LogRequest, Runtime};
use runtime_support::{CURL_IMAGE, Cluster, NS, WAIT, app_pod, simple_pod};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with_probe(
    mut pod: k8s_openapi::api::core::v1::Pod,
    path: &str,
) -> k8s_openapi::api::core::v1::Pod {
    pod.spec.as_mut().unwrap().containers[0].readiness_probe = Some(
        serde_json::from_value(
            json!({"httpGet": {"path": path, "port": "http"}, "periodSeconds": 1}),
        )
        .unwrap(),
    );
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probes_decide_readiness() {
    let _pods = pod_addresses::shared().await;
    let mut c = Cluster::new();
    c.run(&with_probe(
        app_pod("probed", "probed", "v1", &[("NAME", "probed")]),
        "/ready",
    ));
    c.wait_ready("probed").await;

    c.run(&with_probe(
        app_pod("failing", "failing", "v1", &[("NAME", "failing")]),
        "/ui/missing",
    ));
    c.wait_for("failing", |r| {
        matches!(r.containers[0].state, ContainerState::Running { .. })
    })
    .await;
    // Wait until the kubelet-like prober has seen three 404s, then it must still be unready.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let probes =
            c.rt.capture(NS, "failing")
                .unwrap()
                .iter()
                .filter(|r| r.bytes.starts_with(b"HTTP/1.1 404"))
                .count();
        if probes >= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the probe never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.wait_for("failing", |_| true).await;
    let last = c.last["failing"].clone();
    assert!(
        matches!(
            last.containers[0].state,
            ContainerState::Running { ready: false, .. }
        ),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_passes_stdin_to_curl() {
    let _pods = pod_addresses::shared().await;
    let c = Cluster::workshop().await;
    let session =
        c.rt.exec(
            NS,
            "service-a-1",
            ExecRequest {
                container: "service-a".into(),
                command: vec!["curl".into(), "-sS".into(), "-K".into(), "-".into()],
                stdin: true,
                tty: false,
            },
        )
        .await
        .unwrap();
    let mut stdin = session.stdin.expect("stdin requested");
    stdin
        .write_all(b"url = \"http://service-b/health\"\n")
        .await
        .unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let mut out = String::new();
    let mut stdout = session.stdout;
    stdout.read_to_string(&mut out).await.unwrap();
    let code = tokio::time::timeout(WAIT, session.exit).await.unwrap().code;
    assert_eq!((code, out.as_str()), (0, "OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pods_socks_egress_serves_outside_processes() {
    let _pods = pod_addresses::shared().await;
    let c = Cluster::workshop().await;
    let socks = c.rt.pod_net(NS, "service-a-1").unwrap().socks_addr();
    let out = tokio::process::Command::new(happy_sandbox::pod_exec::find_curl().expect("curl"))
        .args(["-q", "-sS", "--noproxy", "", "--proxy"])
        .arg(format!("socks5h://{socks}"))
        .arg("http://service-c.istioinaction.svc/health")
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK");
    // The callee saw service-a's address.
    let a = c.ips["service-a-1"];
    assert!(
        c.rt.capture(NS, "service-c-v1-1")
            .unwrap()
            .iter()
            .any(|r| *r.peer.ip() == a)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstreams_give_500_with_the_failed_call() {
    let _pods = pod_addresses::shared().await;
    let mut c = Cluster::workshop().await;
    c.run(&app_pod(
        "front",
        "front",
        "v1",
        &[
            ("NAME", "front"),
            ("UPSTREAM_URIS", "http://service-b,http://nowhere:81"),
        ],
    ));
    c.wait_ready("front").await;
    let (status, body, _) = c.get("front", 8080, "/").await;
    assert_eq!(status, 500, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["upstream_calls"]["http://service-b"]["code"], 200);
    let bad = &v["upstream_calls"]["http://nowhere:81"];
    assert_eq!(bad["code"], -1);
    let err = bad["error"].as_str().unwrap();
    assert!(
        err.starts_with("Error communicating with upstream service: Get \"http://nowhere:81/\": dial tcp: lookup nowhere"),
        "{err}"
    );
    let log = c.logs("front").await;
    assert!(!log.to_ascii_lowercase().contains("error"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_until_the_pod_stops() {
    let _pods = pod_addresses::shared().await;
    let mut c = Cluster::new();
    c.run(&app_pod("svc", "svc", "v1", &[("NAME", "svc")]));
    c.wait_ready("svc").await;
    let mut follow =
        c.rt.logs(
            NS,
            "svc",
            LogRequest {
                follow: true,
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    let first = follow.next().await.unwrap();
    assert!(String::from_utf8_lossy(&first).contains("Started service"));
    assert_eq!(c.get("svc", 8080, "/").await.0, 200);
    let next = tokio::time::timeout(WAIT, follow.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&next).contains("Handle inbound request"),
        "{next:?}"
    );
    c.rt.stop_pod(NS, "svc").await;
    let rest: Vec<_> = tokio::time::timeout(WAIT, follow.collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(!rest.is_empty());

    c.run(&simple_pod(NS, "legacy", CURL_IMAGE));
    c.wait_ready("legacy").await;
}

/// Counts connections, then does what the default would.
struct Counting<T> {
    inner: T,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl happy_sandbox::net::inbound::InboundPath
    for Counting<happy_sandbox::net::inbound::DirectToApp>
{
    fn connect(
        &self,
        peer: std::net::SocketAddrV4,
        port: u16,
        app: Option<std::net::SocketAddr>,
    ) -> futures::future::BoxFuture<'static, std::io::Result<tokio::net::TcpStream>> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.connect(peer, port, app)
    }
}

impl happy_sandbox::net::egress::OutboundPath for Counting<happy_sandbox::net::egress::DirectPath> {
    fn connect(
        &self,
        source: std::net::Ipv4Addr,
        target: happy_sandbox::net::egress::OutboundTarget,
    ) -> futures::future::BoxFuture<'static, std::io::Result<tokio::net::TcpStream>> {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.connect(source, target)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_and_outbound_paths_are_switchable_per_pod() {
    let _pods = pod_addresses::shared().await;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let c = Cluster::workshop().await;
    let b = c.rt.pod_net(NS, "service-b-1").unwrap();
    let a = c.rt.pod_net(NS, "service-a-1").unwrap();
    assert!(b.app_address(8080).is_some());
    assert_eq!(b.open_ports(), [8080]);

    let inbound = Arc::new(AtomicUsize::new(0));
    b.set_inbound_path(Some(Arc::new(Counting {
        inner: happy_sandbox::net::inbound::DirectToApp,
        count: inbound.clone(),
    })));
    let outbound = Arc::new(AtomicUsize::new(0));
    a.set_outbound_path(Arc::new(Counting {
        inner: happy_sandbox::net::egress::DirectPath::new(c.rt.network().services().clone()),
        count: outbound.clone(),
    }));

    let captured_before = b.capture_snapshot().len();
    let (status, body, _) = c.get("service-a-1", 8080, "/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        inbound.load(Ordering::SeqCst),
        1,
        "service-b's inbound path"
    );
    assert_eq!(
        outbound.load(Ordering::SeqCst),
        2,
        "service-a's calls to b and c"
    );
    assert!(
        b.capture_snapshot().len() > captured_before,
        "still recorded"
    );

    // exec'd curl leaves through the same outbound path.
    let (code, _, err) = c
        .exec(
            NS,
            "service-a-1",
            &["curl", "-sS", "http://service-c/health"],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(outbound.load(Ordering::SeqCst), 3);

    b.set_inbound_path(None);
    assert_eq!(c.get("service-b-1", 8080, "/health").await.0, 200);
    assert_eq!(
        inbound.load(Ordering::SeqCst),
        1,
        "back to the app directly"
    );
}

/// The image of [`Crashing`].
const CRASHING_IMAGE: &str = "example.test/crashes:1";

/// A program that logs one line and exits 3, every time it runs.
struct Crashing;

impl happy_sandbox::program::Program for Crashing {
    fn matches(&self, image: &str) -> bool {
        image == CRASHING_IMAGE
    }
    fn describe(&self) -> String {
        CRASHING_IMAGE.into()
    }
    fn run(
        &self,
        ctx: happy_sandbox::program::ContainerContext,
    ) -> futures::future::BoxFuture<'static, happy_sandbox::program::Exit> {
        Box::pin(async move {
            ctx.log.write("crashing");
            happy_sandbox::program::Exit {
                code: 3,
                reason: "Error".into(),
                message: String::new(),
            }
        })
    }
}

/// A crashed container is restarted as the kubelet restarts it (kubernetes v1.33
/// `kuberuntime_manager.go`): the first time at once, then it waits in `CrashLoopBackOff`
/// (10 s, doubling), with `restartCount`, its last run as `lastState`, and logs that are its
/// last run's (`--previous`: the run before). Under `restartPolicy: Never` it stays ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_container_is_restarted_at_once_then_waits_in_crash_loop_back_off() {
    let _pods = pod_addresses::shared().await;
    let mut c = Cluster::new();
    c.rt.register_program(std::sync::Arc::new(Crashing));
    c.run(&simple_pod(NS, "crashes", CRASHING_IMAGE));
    let r = c
        .wait_for("crashes", |r| {
            matches!(&r.containers[0].state,
                ContainerState::Waiting { reason, .. } if reason == "CrashLoopBackOff")
        })
        .await;
    let container = &r.containers[0];
    assert_eq!(container.restart_count, 1, "{container:?}");
    let ContainerState::Waiting { message, .. } = &container.state else {
        unreachable!()
    };
    assert_eq!(
        message,
        &format!("back-off 10s restarting failed container=crashes pod=crashes_{NS}(uid-crashes)")
    );
    assert!(
        matches!(
            container.last_state,
            Some(ContainerState::Terminated { exit_code: 3, .. })
        ),
        "{container:?}"
    );
    assert_eq!(c.logs("crashes").await, "crashing\n", "the last run's log");
    let previous =
        c.rt.logs(
            NS,
            "crashes",
            LogRequest {
                previous: true,
                ..LogRequest::default()
            },
        )
        .expect("the run before");
    let previous: Vec<_> = previous.collect().await;
    assert_eq!(previous.concat(), b"crashing\n");

    let mut never = simple_pod(NS, "crashes-once", CRASHING_IMAGE);
    never.spec.as_mut().unwrap().restart_policy = Some("Never".into());
    c.run(&never);
    let r = c
        .wait_for("crashes-once", |r| {
            matches!(r.containers[0].state, ContainerState::Terminated { .. })
        })
        .await;
    assert_eq!(
        (r.containers[0].restart_count, &r.containers[0].last_state),
        (0, &None)
    );
    assert!(
        c.rt.logs(
            NS,
            "crashes-once",
            LogRequest {
                previous: true,
                ..LogRequest::default()
            }
        )
        .is_err(),
        "never restarted: no previous run"
    );
    c.rt.stop_pod(NS, "crashes").await;
    c.rt.stop_pod(NS, "crashes-once").await;
}
