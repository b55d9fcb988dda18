//! The sandbox as a person runs it: the `happy-sandbox` binary (`up`, `kube-inject`; `main.rs`)
//! and the protocols only kubectl speaks, which the API server of `happy-sandbox up` answers
//! and the suite's sandbox does not need: Tables for `kubectl get` (`table.rs`), protobuf
//! bodies for `kubectl create namespace` (`protobuf.rs`), an OpenAPI document for
//! `kubectl apply` (`openapi.rs`) and SPDY/3.1 for `kubectl port-forward` (`spdy/`). The core
//! (`happy-sandbox`) calls them through [`KubectlProtocols`] and refuses those requests without
//! them; the suite depends on the core alone, so its build never compiles this crate.
//!
//! The crate's `tests/it` are the sandbox's integration tests: through kube-rs as the suite
//! reaches it, and through kubectl and the binary as a person does.

mod openapi;
mod protobuf;
mod spdy;
mod table;

use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use happy_sandbox::cri::Duplex;
use happy_sandbox::store::Registry;
use happy_sandbox::{KubectlProtocols, PortForwardPod};
use serde_json::Value;

/// The kubectl protocols, for [`happy_sandbox::SandboxOptions::kubectl`].
pub fn protocols() -> Arc<dyn KubectlProtocols> {
    Arc::new(Kubectl)
}

/// Every protocol only kubectl speaks.
#[derive(Debug)]
struct Kubectl;

impl KubectlProtocols for Kubectl {
    fn table(
        &self,
        resource: &str,
        items: &[Value],
        resource_version: u64,
        include_object: &str,
    ) -> Value {
        table::table(resource, items, resource_version, include_object)
    }

    fn decode_protobuf(&self, body: &[u8]) -> Result<Value, String> {
        protobuf::decode(body)
    }

    fn openapi(&self, registry: &Registry, path: &str) -> Option<Value> {
        match path.trim_end_matches('/') {
            "/openapi/v3" => Some(openapi::root(registry)),
            p => p
                .strip_prefix("/openapi/v3/")
                .and_then(|gv| openapi::group_version(registry, gv)),
        }
    }

    fn serve_port_forward(
        &self,
        io: Pin<Box<dyn Duplex>>,
        pod: PortForwardPod,
    ) -> BoxFuture<'static, ()> {
        spdy::portforward::serve(io, pod).boxed()
    }
}
