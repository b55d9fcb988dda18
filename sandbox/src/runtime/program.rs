//! Images → programs. A container's image decides which built-in program runs as that
//! container: the workshop's happy-service image runs the Rust fake-service, the curl client
//! images (Istio's sample `curlimages/curl`, and the workshop's `radial/busyboxplus:curl` when
//! it can be pulled at all — see [`super::pull`]) idle until stopped (their use is
//! `kubectl exec … curl`), and any other image cannot be pulled. The mesh half registers more programs (e.g. for Istio's proxy image) the same way.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Container;
use tokio_util::sync::CancellationToken;

use super::logs::LogBuffer;
use crate::fake_service::{self, Config};
use crate::net::PodNet;

/// How a container's program ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    /// Kubernetes' reason: `Completed`, `Error`, …
    pub reason: String,
    pub message: String,
}

impl Exit {
    pub fn completed() -> Self {
        Self {
            code: 0,
            reason: "Completed".into(),
            message: String::new(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            reason: "Error".into(),
            message: message.into(),
        }
    }
}

/// Everything a program gets to run as one container.
pub struct ContainerContext {
    pub namespace: String,
    pub pod_name: String,
    pub container: Container,
    /// The container's environment with `valueFrom.fieldRef` already resolved.
    pub env: Vec<(String, String)>,
    pub net: Arc<PodNet>,
    pub log: Arc<LogBuffer>,
    /// Call once the program serves (listening, for a server): the container becomes ready
    /// unless it has a readiness probe, which then decides.
    pub ready: Box<dyn FnOnce() + Send>,
    /// Fires when the pod stops; the program must return soon after.
    pub cancel: CancellationToken,
}

/// A built-in program standing in for an image.
pub trait Program: Send + Sync + 'static {
    /// Whether this program runs `image`.
    fn matches(&self, image: &str) -> bool;
    /// The images it stands for, for the message shown when an image has no program.
    fn describe(&self) -> String;
    /// Run until done or cancelled.
    fn run(&self, ctx: ContainerContext) -> BoxFuture<'static, Exit>;
}

/// `docker.io/library/x:tag@sha256:…` → (`x`, `tag`): the repository without the default
/// registry, and the tag (`latest` when absent).
pub fn split_image(image: &str) -> (&str, &str) {
    let no_digest = image.split('@').next().unwrap_or(image);
    let (repo, tag) = match no_digest.rsplit_once(':') {
        // A colon before the last slash belongs to a registry host:port, not a tag.
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (no_digest, "latest"),
    };
    let repo = repo
        .strip_prefix("docker.io/")
        .or_else(|| repo.strip_prefix("index.docker.io/"))
        .unwrap_or(repo);
    let repo = repo.strip_prefix("library/").unwrap_or(repo);
    (repo, tag)
}

/// The workshop's app image (any tag) → fake-service.
pub struct FakeServiceProgram;

impl Program for FakeServiceProgram {
    fn matches(&self, image: &str) -> bool {
        let (repo, _) = split_image(image);
        repo == "rinormaloku/happy-service" || repo == "nicholasjackson/fake-service"
    }

    fn describe(&self) -> String {
        "rinormaloku/happy-service (any tag)".into()
    }

    fn run(&self, ctx: ContainerContext) -> BoxFuture<'static, Exit> {
        Box::pin(async move {
            let config =
                match Config::from_env(ctx.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                    Ok(c) => c,
                    Err(e) => {
                        let msg = format!("container {:?}: {e}", ctx.container.name);
                        ctx.log.write(&msg);
                        return Exit::failed(msg);
                    }
                };
            match fake_service::run(config, ctx.net, ctx.log.clone(), ctx.ready, ctx.cancel).await {
                Ok(()) => Exit::completed(),
                Err(e) => {
                    let msg = format!("container {:?}: {e}", ctx.container.name);
                    ctx.log.write(&msg);
                    Exit::failed(msg)
                }
            }
        })
    }
}

/// A curl client image → a container that does nothing until stopped (the workshop runs its
/// legacy client as `tail -f /dev/null`, Istio's sample as `/bin/sleep infinity`, and both are
/// used through `kubectl exec … curl`, which the sandbox runs with the host's curl).
pub struct IdleProgram;

impl Program for IdleProgram {
    fn matches(&self, image: &str) -> bool {
        let (repo, tag) = split_image(image);
        repo == "curlimages/curl" || (repo, tag) == ("radial/busyboxplus", "curl")
    }

    fn describe(&self) -> String {
        "curlimages/curl (any tag), radial/busyboxplus:curl".into()
    }

    fn run(&self, ctx: ContainerContext) -> BoxFuture<'static, Exit> {
        Box::pin(async move {
            (ctx.ready)();
            ctx.cancel.cancelled().await;
            Exit::completed()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_images() {
        assert_eq!(
            split_image("rinormaloku/happy-service:latest"),
            ("rinormaloku/happy-service", "latest")
        );
        assert_eq!(
            split_image("docker.io/radial/busyboxplus:curl"),
            ("radial/busyboxplus", "curl")
        );
        assert_eq!(split_image("nginx"), ("nginx", "latest"));
        assert_eq!(
            split_image("localhost:5000/app@sha256:abc"),
            ("localhost:5000/app", "latest")
        );
    }

    #[test]
    fn programs_match_the_workshops_images_only() {
        assert!(FakeServiceProgram.matches("rinormaloku/happy-service:v2"));
        assert!(FakeServiceProgram.matches("docker.io/rinormaloku/happy-service"));
        assert!(!FakeServiceProgram.matches("rinormaloku/other:latest"));
        assert!(IdleProgram.matches("radial/busyboxplus:curl"));
        assert!(IdleProgram.matches("docker.io/curlimages/curl:8.16.0"));
        assert!(!IdleProgram.matches("curlimages/other:8.16.0"));
        assert!(!IdleProgram.matches("radial/busyboxplus:latest"));
    }
}
