//! `kubectl port-forward` with the real kubectl binary (1.32 on this machine) against a started
//! sandbox, as a reader of the workshop runs it: to pod/…, deploy/… and svc/…, over the
//! WebSocket tunnel (kubectl's default since 1.31) and over SPDY
//! (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`), several ports in one command, concurrent
//! connections through one forward, the forward ending when its pod is deleted, and — with
//! sidecars — still working under STRICT mTLS.

use crate::mesh_support;
use crate::pod_addresses;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use happy_sandbox::Sandbox;
use kube::ResourceExt;
use mesh_support::{MeshCluster, NS, eventually, manifest};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long pods, forwards and curls may take.
const LIMIT: Duration = Duration::from_secs(60);

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    async fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .await
            .expect("kubectl 1.32+ must be on PATH for this test")
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// Which protocol kubectl is told to use.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    /// The default (`KUBECTL_PORT_FORWARD_WEBSOCKETS` unset): SPDY tunnelled through a
    /// WebSocket (`GET … 101`).
    WebSocket,
    /// `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`: `POST` with `Upgrade: SPDY/3.1`.
    Spdy,
}

/// A running `kubectl port-forward`; killed (by its own PID) when dropped, so a failing test
/// leaves nothing running.
struct PortForward {
    child: Child,
    /// The local ports kubectl listens on, in the order of the command's port arguments.
    ports: Vec<u16>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl PortForward {
    /// Start `kubectl port-forward TARGET PORTS…` (PORTS with local port 0) and wait for its
    /// "Forwarding from 127.0.0.1:N -> M" line for every port.
    async fn start(k: &Kubectl, protocol: Protocol, target: &str, ports: &[&str]) -> Self {
        // -v=6 logs each request with its status: which upgrade kubectl made shows there.
        let mut command = Command::new("kubectl");
        command
            .args(["-n", NS, "port-forward", "-v=6", target])
            .args(ports)
            .env("KUBECONFIG", &k.kubeconfig);
        match protocol {
            // As a reader runs it: the WebSocket tunnel is kubectl's default.
            Protocol::WebSocket => command.env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS"),
            Protocol::Spdy => command.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"),
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = err_lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        let mut out_lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut forwarding = Vec::new();
        let wanted = ports.len();
        let seen = tokio::time::timeout(LIMIT, async {
            while let Ok(Some(l)) = out_lines.next_line().await {
                if let Some(rest) = l.strip_prefix("Forwarding from 127.0.0.1:") {
                    let local: u16 = rest.split(' ').next().unwrap().parse().unwrap();
                    forwarding.push(local);
                    if forwarding.len() == wanted {
                        return true;
                    }
                }
            }
            false
        })
        .await;
        assert!(
            matches!(seen, Ok(true)),
            "kubectl port-forward {target} {ports:?} did not start listening: {}",
            stderr.lock().unwrap()
        );
        let sink = stdout.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = out_lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        let pf = PortForward {
            child,
            ports: forwarding,
            stdout,
            stderr,
        };
        pf.assert_protocol(protocol).await;
        pf
    }

    /// kubectl's request log (`-v=6`, client-go `round_trippers.go`) shows the upgrade it made:
    /// `verb="GET" url=…/portforward status="101 …"` for the WebSocket tunnel, `verb="POST"`
    /// for SPDY — and no other upgrade attempt before it.
    async fn assert_protocol(&self, protocol: Protocol) {
        let (want, not) = match protocol {
            Protocol::WebSocket => ("GET", "POST"),
            Protocol::Spdy => ("POST", "GET"),
        };
        let upgrade = |log: &str, verb: &str| {
            log.lines()
                .any(|l| l.contains(&format!("verb=\"{verb}\"")) && l.contains("/portforward\""))
        };
        let stderr = self.stderr.clone();
        let log = eventually(&format!("kubectl's {want} upgrade"), LIMIT, || {
            let log = stderr.lock().unwrap().clone();
            async move {
                let switched = log.lines().any(|l| {
                    l.contains(&format!("verb=\"{want}\""))
                        && l.contains("/portforward\"")
                        && l.contains("101 Switching Protocols")
                });
                if switched { Ok(log) } else { Err(log) }
            }
        })
        .await;
        assert!(
            !upgrade(&log, not),
            "{protocol:?}: an upgrade by {not} too:\n{log}"
        );
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("kubectl status")
    }
}

/// `curl -s http://127.0.0.1:PORT/`: service-a's JSON, or why not.
async fn curl(port: u16) -> Result<Value, String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .await
        .map_err(|e| format!("curl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    if !out.status.success() || code != "200" {
        return Err(format!(
            "curl exit {:?}, HTTP {code}: {body}",
            out.status.code()
        ));
    }
    serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))
}

/// service-a's own answer (its JSON names it), with its upstream calls answered.
fn assert_service_a(v: &Value) {
    assert_eq!(v["name"], "service-a", "{v}");
    assert_eq!(v["code"], 200, "{v}");
    assert_eq!(v["upstream_calls"]["http://service-b"]["code"], 200, "{v}");
}

async fn ready_pod_name(k: &Kubectl, app: &str) -> String {
    eventually(&format!("a ready {app} pod"), LIMIT, || async {
        let out = k
            .run(&[
                "-n",
                NS,
                "get",
                "pods",
                "-l",
                &format!("app={app}"),
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
            ])
            .await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let ready: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.len() == 2 && cols[1] == "True").then_some(cols[0])
            })
            .collect();
        match ready.as_slice() {
            [one] => Ok(one.to_string()),
            _ => Err(text),
        }
    })
    .await
}

/// Connect to `port` until kubectl exits (each failed connection may end it); its status.
async fn ended(pf: &mut PortForward, port: u16) -> ExitStatus {
    eventually("kubectl port-forward to end", LIMIT, || {
        let exited = pf.exited();
        async move {
            if let Some(s) = exited {
                return Ok(s);
            }
            let _ = curl(port).await;
            Err("still running".to_string())
        }
    })
    .await
}

fn write_kubeconfig(dir: &Path, sandbox: &Sandbox) -> Kubectl {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(sandbox.kubeconfig_path(), &kubeconfig).unwrap();
    Kubectl { kubeconfig }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_to_pods_deployments_and_services() {
    let _pods = pod_addresses::shared().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::start(crate::common::with_kubectl())
        .await
        .expect("sandbox starts");
    let dir = tempfile::tempdir().unwrap();
    let k = write_kubeconfig(dir.path(), &sandbox);
    k.ok(&["create", "namespace", NS]).await;
    for f in ["services-a.yaml", "services-b.yaml", "services-c-v1.yaml"] {
        let path = dir.path().join(f);
        std::fs::write(&path, manifest(f)).unwrap();
        k.ok(&["-n", NS, "apply", "-f", path.to_str().unwrap()])
            .await;
    }
    k.ok(&[
        "-n",
        NS,
        "wait",
        "pods",
        "--all",
        "--for=condition=Ready",
        "--timeout=60s",
    ])
    .await;
    let pod = ready_pod_name(&k, "service-a").await;

    // Each target form, each protocol: kubectl resolves deploy/ and svc/ to a pod itself
    // (and svc port 80 to targetPort 8080).
    for protocol in [Protocol::WebSocket, Protocol::Spdy] {
        for (target, port) in [
            (format!("pod/{pod}"), ":8080"),
            ("deploy/service-a".to_string(), ":8080"),
            ("svc/service-a".to_string(), ":80"),
        ] {
            let pf = PortForward::start(&k, protocol, &target, &[port]).await;
            let v = curl(pf.ports[0])
                .await
                .unwrap_or_else(|e| panic!("{protocol:?} {target}: {e}"));
            assert_service_a(&v);
            assert!(
                pf.stdout
                    .lock()
                    .unwrap()
                    .contains(&format!("Handling connection for {}", pf.ports[0])),
                "kubectl saw the connection"
            );
        }
    }

    // Two ports in one command (as `8080 9090:8080`, with free local ports), and ten
    // concurrent connections through one forward, over both protocols.
    for protocol in [Protocol::WebSocket, Protocol::Spdy] {
        let pf = PortForward::start(&k, protocol, "deploy/service-a", &[":8080", ":8080"]).await;
        assert_eq!(pf.ports.len(), 2);
        assert_ne!(pf.ports[0], pf.ports[1]);
        for port in &pf.ports {
            assert_service_a(&curl(*port).await.unwrap());
        }
        let all = futures::future::join_all((0..10).map(|i| curl(pf.ports[i % 2]))).await;
        for (i, r) in all.into_iter().enumerate() {
            let v = r.unwrap_or_else(|e| panic!("{protocol:?} concurrent curl {i}: {e}"));
            assert_service_a(&v);
        }
    }

    // A port nothing listens on: the connection's error comes back on its error stream and
    // kubectl exits 1, as when containerd's dial is refused.
    for protocol in [Protocol::WebSocket, Protocol::Spdy] {
        let mut pf = PortForward::start(&k, protocol, "deploy/service-a", &[":9999"]).await;
        let port = pf.ports[0];
        let status = ended(&mut pf, port).await;
        let stderr = pf.stderr.lock().unwrap().clone();
        assert!(!status.success(), "{protocol:?}: kubectl exit {status}");
        assert!(
            stderr.contains("an error occurred forwarding")
                && stderr.contains("error forwarding port 9999 to pod")
                && stderr.contains("lost connection to pod"),
            "{protocol:?}: {stderr}"
        );
    }

    // Deleting the pod ends the forward as on a kind node: the next connection fails on the
    // error stream, kubectl prints it and exits 1 with "lost connection to pod".
    for protocol in [Protocol::WebSocket, Protocol::Spdy] {
        let pod = ready_pod_name(&k, "service-a").await;
        let mut pf = PortForward::start(&k, protocol, &format!("pod/{pod}"), &[":8080"]).await;
        assert_service_a(&curl(pf.ports[0]).await.unwrap());
        k.ok(&["-n", NS, "delete", "pod", &pod, "--wait=false"])
            .await;
        let port = pf.ports[0];
        // During a grace period the pod still answers; once it is gone the next
        // connection's error ends kubectl.
        let status = ended(&mut pf, port).await;
        let stderr = pf.stderr.lock().unwrap().clone();
        assert!(!status.success(), "{protocol:?}: kubectl exit {status}");
        assert!(
            stderr.contains("lost connection to pod")
                && stderr.contains("error forwarding port 8080 to pod"),
            "{protocol:?}: {stderr}"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_reaches_the_app_past_the_sidecar_under_strict_mtls() {
    let _pods = pod_addresses::shared().await;
    let c = MeshCluster::workshop_with(crate::common::with_kubectl(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let k = write_kubeconfig(dir.path(), &c.sandbox);
    let a = c.pod(NS, "service-a").await;
    let sidecar = a
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|i| i.iter().any(|c| c.name == "istio-proxy"));
    assert!(sidecar, "service-a has its sidecar: {}", a.name_any());

    // STRICT in effect: a plaintext client outside the mesh is refused (curl exit 56, reset).
    c.apply_legacy_client().await;
    c.wait_pods("default", 1).await;
    c.apply(NS, "peer-auth-strict.yaml").await;
    eventually(
        "STRICT to reset the legacy client's plaintext request",
        LIMIT,
        || async {
            let (code, out, err) = c
                .curl(
                    "default",
                    "legacy",
                    "",
                    &[
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "http://service-a.istioinaction",
                    ],
                )
                .await;
            if code == 56 {
                Ok(())
            } else {
                Err(format!("exit {code}: {out} {err}"))
            }
        },
    )
    .await;

    // port-forward still reaches service-a's own port 8080, and service-a's calls to b and c
    // still go through its sidecar with mTLS.
    for protocol in [Protocol::WebSocket, Protocol::Spdy] {
        for target in ["deploy/service-a", "svc/service-a"] {
            let port = if target.starts_with("svc/") {
                ":80"
            } else {
                ":8080"
            };
            let pf = PortForward::start(&k, protocol, target, &[port]).await;
            let v = curl(pf.ports[0])
                .await
                .unwrap_or_else(|e| panic!("{protocol:?} {target} under STRICT: {e}"));
            assert_service_a(&v);
            assert_eq!(v["upstream_calls"]["http://service-c"]["code"], 200, "{v}");
        }
    }
    c.sandbox.shutdown().await;
}
