//! A Rust fake-service: the workshop's `rinormaloku/happy-service` image (a fork of
//! nicholasjackson/fake-service) as a built-in program. It listens inside its pod (through the
//! pod's recording point), calls its upstreams through the pod's egress, and logs in hclog's
//! format like the Go original — minus any line about errors, as the workshop's fork does.

pub(crate) mod config;
pub(crate) mod format;
pub(crate) mod inject;
pub(crate) mod mux;
pub(crate) mod response;
pub(crate) mod server;
pub(crate) mod ui;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::net::{NetError, PodNet};
use crate::program::logs::LogBuffer;
pub(crate) use config::{Config, ConfigError};
use server::App;

/// Why fake-service could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FakeServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "LISTEN_ADDR host {host:?} is not an address of this pod (use 0.0.0.0, localhost or {pod_ip})"
    )]
    ForeignHost { host: String, pod_ip: String },
    #[error(transparent)]
    Listen(#[from] NetError),
}

/// Run fake-service in `net`'s pod until `cancel`: `on_listening` is called once the port is
/// open (that is when the container is ready).
pub(crate) async fn run(
    config: Config,
    net: Arc<PodNet>,
    log: Arc<LogBuffer>,
    on_listening: impl FnOnce(),
    cancel: CancellationToken,
) -> Result<(), FakeServiceError> {
    let pod_ip = net.ip().to_string();
    // Inside a pod, 0.0.0.0, localhost and the pod's address are all the pod.
    if !matches!(
        config.listen_host.as_str(),
        "" | "0.0.0.0" | "localhost" | "127.0.0.1" | "::" | "[::]"
    ) && config.listen_host != pod_ip
    {
        return Err(FakeServiceError::ForeignHost {
            host: config.listen_host.clone(),
            pod_ip,
        });
    }
    let mut listener = net.listen(config.listen_port)?;
    let app = Arc::new(App::new(config, net.clone(), log));
    app.info("Using seed", &[("seed", &seed())]);
    app.info("Adding handler for UI static files", &[]);
    let listen = format!("{}:{}", app.config.listen_host, app.config.listen_port);
    let workers = app.config.upstream_workers.to_string();
    let uris = app.config.upstream_uris.join(",");
    app.info(
        "Started service",
        &[
            ("name", &app.config.name),
            ("upstreamURIs", &uris),
            ("upstreamWorkers", &workers),
            ("listenAddress", &listen),
        ],
    );
    on_listening();
    let tracker = net.tracker().clone();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let app = app.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = server::serve_connection(app, stream) => {}
            }
        });
    }
    net.close_port(app.config.listen_port);
    Ok(())
}

/// fake-service logs its random seed (the Unix time at start by default).
fn seed() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .unwrap_or_default()
}
