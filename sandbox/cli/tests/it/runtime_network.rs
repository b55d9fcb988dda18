//! The sandbox network seen from pods: exec'd curl with Service names and curl's own exit codes,
//! resets and refusals, the capture, ClusterIPs from the host, stopping pods, image errors.

use crate::pod_addresses;
use crate::runtime_support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use futures::future::BoxFuture;
use happy_sandbox::cri::{ContainerState, Runtime, RuntimeError, TargetPort};
use happy_sandbox::net::capture::Direction;
use happy_sandbox::program::{ContainerContext, Exit, Program};
use runtime_support::{CURL_IMAGE, Cluster, NS, simple_pod};
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// A test program: listens on 8080 and either resets every connection after its first bytes
/// or holds it open without answering.
struct Misbehaving {
    image: &'static str,
    reset: bool,
}

impl Program for Misbehaving {
    fn matches(&self, image: &str) -> bool {
        image == self.image
    }
    fn describe(&self) -> String {
        self.image.into()
    }
    fn run(&self, ctx: ContainerContext) -> BoxFuture<'static, Exit> {
        let reset = self.reset;
        Box::pin(async move {
            let mut listener = ctx.net.listen(8080).expect("listen");
            (ctx.ready)();
            let mut held = Vec::new();
            loop {
                let (mut s, _) = tokio::select! {
                    _ = ctx.cancel.cancelled() => return Exit::completed(),
                    a = listener.accept() => a.expect("accept"),
                };
                if reset {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    s.tcp().set_zero_linger().expect("linger");
                    drop(s);
                } else {
                    held.push(s);
                }
            }
        })
    }
}

async fn with_legacy() -> Cluster {
    let mut c = Cluster::workshop().await;
    c.run(&simple_pod("default", "legacy", CURL_IMAGE));
    c.wait_ready("legacy").await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_from_pods_reaches_services_by_name() {
    let _pods = pod_addresses::shared().await;
    let c = with_legacy().await;
    // The legacy client lives in `default`: it needs the full name.
    let (code, out, err) = c
        .exec(
            "default",
            "legacy",
            &[
                "curl",
                "-sS",
                "http://service-a.istioinaction.svc.cluster.local",
            ],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["name"], "service-a");
    assert_eq!(v["upstream_calls"]["http://service-c"]["code"], 200);

    // From service-b's pod the short name works (same namespace).
    let (code, out, err) = c
        .exec(
            NS,
            "service-b-1",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://service-a",
            ],
        )
        .await;
    assert_eq!((code, out.as_str()), (0, "200"), "{err}");

    // localhost is the pod itself.
    let (code, out, err) = c
        .exec(NS, "service-b-1", &["curl", "-sS", "localhost:8080/health"])
        .await;
    assert_eq!((code, out.as_str()), (0, "OK"), "{err}");

    // The app sees the calling pod's own address.
    let cap = c.rt.capture(NS, "service-a-1").expect("capture");
    let from_legacy: Vec<_> = cap
        .iter()
        .filter(|r| *r.peer.ip() == c.ips["legacy"] && r.port == 8080)
        .collect();
    let inbound: Vec<u8> = from_legacy
        .iter()
        .filter(|r| r.direction == Direction::In)
        .flat_map(|r| r.bytes.to_vec())
        .collect();
    let outbound: Vec<u8> = from_legacy
        .iter()
        .filter(|r| r.direction == Direction::Out)
        .flat_map(|r| r.bytes.to_vec())
        .collect();
    let inbound = String::from_utf8_lossy(&inbound);
    let outbound = String::from_utf8_lossy(&outbound);
    assert!(inbound.starts_with("GET / HTTP/1.1\r\n"), "{inbound}");
    assert!(
        inbound.contains("Host: service-a.istioinaction.svc.cluster.local"),
        "{inbound}"
    );
    assert!(outbound.starts_with("HTTP/1.1 200 OK\r\n"), "{outbound}");
    assert!(outbound.contains("\"name\": \"service-a\""), "{outbound}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_exit_codes_are_curls_own() {
    let _pods = pod_addresses::shared().await;
    let c = with_legacy().await;
    let (code, _, err) = c
        .exec("default", "legacy", &["curl", "-sS", "http://service-x"])
        .await;
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("Could not resolve host: service-x"), "{err}");

    // service-b is not in `default`.
    let (code, _, _) = c
        .exec("default", "legacy", &["curl", "-s", "http://service-b"])
        .await;
    assert_eq!(code, 6);

    // A Service without ready endpoints refuses, as kube-proxy's REJECT does.
    let ip = c.rt.allocate_cluster_ip().unwrap();
    let mut view = c.service_view("empty", ip, &[], TargetPort::Number(8080));
    view.namespace = "default".into();
    c.rt.update_service(view);
    let (code, _, err) = c
        .exec("default", "legacy", &["curl", "-sS", "http://empty"])
        .await;
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("Failed to connect to empty port 80"), "{err}");

    // Nothing but curl runs, never a shell.
    for cmd in [&["sh", "-c", "curl x"][..], &["/bin/bash"], &["ls", "/"]] {
        let (code, out, err) = c.exec("default", "legacy", cmd).await;
        assert_eq!(code, 126, "{cmd:?}");
        assert!(out.is_empty());
        assert!(err.contains("provides only curl"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_and_timeouts_reach_curl() {
    let _pods = pod_addresses::shared().await;
    let mut c = with_legacy().await;
    c.rt.register_program(Arc::new(Misbehaving {
        image: "test/resetter",
        reset: true,
    }));
    c.rt.register_program(Arc::new(Misbehaving {
        image: "test/blackhole",
        reset: false,
    }));
    let mut reset_pod = runtime_support::app_pod("resetter", "resetter", "v1", &[]);
    reset_pod.spec.as_mut().unwrap().containers[0].image = Some("test/resetter".into());
    let mut hole_pod = runtime_support::app_pod("blackhole", "blackhole", "v1", &[]);
    hole_pod.spec.as_mut().unwrap().containers[0].image = Some("test/blackhole".into());
    c.run(&reset_pod);
    c.run(&hole_pod);
    c.wait_ready("resetter").await;
    c.wait_ready("blackhole").await;
    c.service("resetter", &["resetter"]);
    c.service("blackhole", &["blackhole"]);

    // Through the egress, the ClusterIP and the recording point, an RST stays an RST.
    let (code, out, err) = c
        .exec(
            "default",
            "legacy",
            &[
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://resetter.istioinaction",
            ],
        )
        .await;
    assert_eq!(code, 56, "{err}");
    assert_eq!(out, "000");

    // An endpoint that never answers: curl's own timeout.
    let (code, _, err) = c
        .exec(
            NS,
            "service-a-1",
            &["curl", "-sS", "-m", "1", "http://blackhole"],
        )
        .await;
    assert_eq!(code, 28, "{err}");

    // A hanging curl is killed when its exec session is dropped.
    let session =
        c.rt.exec(
            NS,
            "service-a-1",
            happy_sandbox::cri::ExecRequest {
                container: String::new(),
                command: vec![
                    "curl".into(),
                    "-s".into(),
                    "http://blackhole/drop-test-7f3a".into(),
                ],
                stdin: false,
                tty: false,
            },
        )
        .await
        .unwrap();
    // Started, but its command line may not show at once: spawning returns as soon as the
    // child has let go of this process's memory in execve (std's spawn is vfork-like where it
    // uses posix_spawn), and the kernel sets the new program's arguments, which
    // /proc/PID/cmdline reads, only after that (torvalds/linux fs/binfmt_elf.c,
    // load_elf_binary: the old memory goes before create_elf_tables sets mm->arg_start and
    // arg_end). Seen here about once in 15 runs, visible within 200 ms: so wait for it, bounded.
    let deadline = std::time::Instant::now() + runtime_support::WAIT;
    while !curl_running("drop-test-7f3a") {
        assert!(
            std::time::Instant::now() < deadline,
            "curl should be running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(session);
    let deadline = std::time::Instant::now() + runtime_support::WAIT;
    while curl_running("drop-test-7f3a") {
        assert!(
            std::time::Instant::now() < deadline,
            "curl outlived its session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Whether a process whose command line contains `marker` exists (and is not a zombie).
fn curl_running(marker: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        String::from_utf8_lossy(&cmd).contains(marker) && !stat.contains(") Z ")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ips_forward_from_the_host_with_the_clients_address() {
    let _pods = pod_addresses::shared().await;
    let c = Cluster::workshop().await;
    let ip =
        c.rt.network()
            .services()
            .cluster_ip(NS, "service-b")
            .unwrap();
    let mut s = tokio::net::TcpStream::connect(SocketAddrV4::new(ip, 80))
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: service-b\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(got.ends_with("OK"), "{got}");
    let cap = c.rt.capture(NS, "service-b-1").unwrap();
    assert!(
        cap.iter().any(|r| *r.peer.ip() == Ipv4Addr::LOCALHOST),
        "peer should be the host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_pod_frees_the_address_and_ports() {
    // Alone from the start: another sandbox's pods would take the address this test frees,
    // and one that freed a lower address while this cluster started would make that the next
    // pod's rather than the stopped one's (pod_addresses.rs).
    let _pods = pod_addresses::alone().await;
    let mut c = Cluster::workshop().await;
    let ip = c.ips["service-b-1"];
    let pod_net = c.rt.pod_net(NS, "service-b-1").unwrap();
    let socks = pod_net.socks_addr();
    drop(pod_net);
    c.rt.stop_pod(NS, "service-b-1").await;
    let err = tokio::net::TcpStream::connect(SocketAddrV4::new(ip, 8080))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        tokio::net::TcpStream::connect(socks).await.is_err(),
        "SOCKS server still open"
    );
    assert!(matches!(
        c.rt.port_forward(NS, "service-b-1", 8080).await,
        Err(RuntimeError::PodNotFound { .. })
    ));
    // The last report says the container ended.
    let r = c
        .wait_for("service-b-1", |r| {
            matches!(r.containers[0].state, ContainerState::Terminated { .. })
        })
        .await;
    assert_eq!(r.pod_ip, ip);
    // The address is free again: the next pod gets it and can listen on the same port.
    let again = c.run(&runtime_support::app_pod(
        "service-b-2",
        "service-b",
        "v1",
        &[("NAME", "service-b")],
    ));
    assert_eq!(again, ip);
    c.wait_ready("service-b-2").await;
    assert_eq!(c.get("service-b-2", 8080, "/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_images_wait_with_err_image_pull_and_closed_ports_say_so() {
    let _pods = pod_addresses::shared().await;
    let mut c = Cluster::new();
    c.run(&simple_pod(NS, "nginx", "nginx:1.27"));
    let r = c
        .wait_for("nginx", |r| matches!(&r.containers[0].state, ContainerState::Waiting { reason, .. } if reason == "ErrImagePull"))
        .await;
    let ContainerState::Waiting { message, .. } = &r.containers[0].state else {
        unreachable!()
    };
    assert!(message.contains("nginx:1.27"), "{message}");
    assert!(message.contains("nginx:1.27: not found"), "{message}");
    assert!(message.contains("happy-sandbox's registry"), "{message}");
    // Like Kubernetes, no logs and no exec for a container that never started.
    let err =
        c.rt.logs(NS, "nginx", Default::default())
            .err()
            .expect("logs refused");
    // ErrImagePull, or ImagePullBackOff once the kubelet's next sync found it in back-off.
    let err = err.to_string();
    assert!(
        err.contains("waiting to start: ErrImagePull")
            || err.contains("waiting to start: ImagePullBackOff"),
        "{err}"
    );
    let refused =
        c.rt.exec(
            NS,
            "nginx",
            happy_sandbox::cri::ExecRequest {
                container: String::new(),
                command: vec!["curl".into()],
                stdin: false,
                tty: false,
            },
        )
        .await;
    assert!(refused.is_err(), "exec in a container that never started");

    c.run(&simple_pod(NS, "legacy", CURL_IMAGE));
    c.wait_ready("legacy").await;
    assert!(matches!(
        c.rt.port_forward(NS, "legacy", 8080).await,
        Err(RuntimeError::PortClosed { port: 8080, .. })
    ));
    assert!(matches!(
        c.rt.exec(
            NS,
            "legacy",
            happy_sandbox::cri::ExecRequest {
                container: "nope".into(),
                command: vec!["curl".into()],
                stdin: false,
                tty: false,
            }
        )
        .await,
        Err(RuntimeError::ContainerNotFound { .. })
    ));
    c.rt.shutdown().await;
}
