//! Images → programs. A container's image decides which built-in program runs as that
//! container: the workshop's happy-service image runs the Rust fake-service, the curl client
//! images (Istio's sample `curlimages/curl`, and the workshop's `radial/busyboxplus:curl` when
//! it can be pulled at all — see [`super::pull`]) idle until stopped (their use is
//! `kubectl exec … curl`), and any other image cannot be pulled. The mesh half registers more
//! programs (e.g. for Istio's proxy image) the same way. The contract every program implements
//! is [`crate::program`]; this module is the runtime's set of built-in ones.

use futures::future::BoxFuture;

use crate::fake_service::{self, Config};
use crate::program::{ContainerContext, Exit, Program, split_image};

/// The workshop's app image (any tag) → fake-service: the fork's behaviour from
/// `rinormaloku/happy-service`, upstream's (failed requests logged at ERROR level) from
/// `nicholasjackson/fake-service`.
pub struct FakeServiceProgram;

/// Upstream's image: its fake-service logs the errors it serves (see `fake_service::server`).
const UPSTREAM_REPO: &str = "nicholasjackson/fake-service";

impl Program for FakeServiceProgram {
    fn matches(&self, image: &str) -> bool {
        let (repo, _) = split_image(image);
        repo == "rinormaloku/happy-service" || repo == UPSTREAM_REPO
    }

    fn describe(&self) -> String {
        "rinormaloku/happy-service, nicholasjackson/fake-service (any tag)".into()
    }

    fn run(&self, ctx: ContainerContext) -> BoxFuture<'static, Exit> {
        Box::pin(async move {
            let config =
                match Config::from_env(ctx.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                    Ok(c) => Config {
                        log_errors: split_image(ctx.container.image.as_deref().unwrap_or_default())
                            .0
                            == UPSTREAM_REPO,
                        ..c
                    },
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
