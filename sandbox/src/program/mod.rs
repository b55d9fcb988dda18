//! The contract between the pod runtime and the built-in programs that stand in for images:
//! what a program gets to run as one container ([`ContainerContext`], with its [`LogBuffer`]),
//! how it says which images it runs ([`Program`], [`split_image`]) and how it ends ([`Exit`]).
//! The programs (the fake-service, the mesh's proxy and Prometheus) use this contract, not the
//! runtime; the runtime ([`crate::runtime`]) keeps the registry of programs and runs them. This
//! module names neither side, so no module cycle runs through it.

pub mod logs;

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Container;
use tokio_util::sync::CancellationToken;

use crate::net::PodNet;
use logs::LogBuffer;

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
}
