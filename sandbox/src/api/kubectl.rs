//! The requests only `kubectl` makes: answered by the [`KubectlProtocols`] a sandbox was started
//! with ([`SandboxOptions::kubectl`](crate::SandboxOptions)), refused without one.
//!
//! The suite reaches the sandbox through kube-rs, which asks for JSON, sends JSON and forwards
//! ports over WebSocket channels. A person following the workshop with kubectl against
//! `happy-sandbox up` needs more, and only that person does: Tables for `kubectl get`, protobuf
//! bodies for `kubectl create namespace`, an OpenAPI document for `kubectl apply` and SPDY for
//! `kubectl port-forward`. Those live in the crate `happy-sandbox-cli` (with the binary), which
//! the suite does not depend on, so the suite's build never compiles them. This module is the
//! one switch: the handlers call it the same way either way, and without the protocols each
//! such request gets a Kubernetes `Status` saying so, with the code the API server gives the
//! same kind of refusal (see each function), never a silently poorer answer.

use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;

use super::ApiState;
use super::body::Body;
use super::query::Query;
use super::router::Target;
use crate::controllers::Cluster;
use crate::cri::{Duplex, Runtime};
use crate::error::ApiError;
use crate::store::{GroupResource, Registry};

/// What only kubectl asks of an API server. `happy-sandbox-cli` has the implementation.
pub trait KubectlProtocols: Send + Sync + std::fmt::Debug {
    /// `items` (objects of `resource`, at `resource_version`) as the `meta.k8s.io/v1` Table
    /// `kubectl get` prints; `include_object` is the request's `includeObject` value.
    fn table(
        &self,
        resource: &str,
        items: &[Value],
        resource_version: u64,
        include_object: &str,
    ) -> Value;

    /// The object of a protobuf body, or why it cannot be read.
    fn decode_protobuf(&self, body: &[u8]) -> Result<Value, String>;

    /// The OpenAPI v3 document at `path` (`/openapi/v3` or `/openapi/v3/<group-version>`) for
    /// the resource types of `registry`, or `None` if there is none at that path.
    fn openapi(&self, registry: &Registry, path: &str) -> Option<Value>;

    /// Serve one SPDY/3.1 port-forward session on `io` (already upgraded, in either of
    /// kubectl's forms) to `pod`, until the session ends.
    fn serve_port_forward(
        &self,
        io: Pin<Box<dyn Duplex>>,
        pod: PortForwardPod,
    ) -> BoxFuture<'static, ()>;
}

/// The protocols a sandbox answers kubectl with, if any.
pub(crate) type Protocols = Option<Arc<dyn KubectlProtocols>>;

/// What every refusal says: why, and how to get a sandbox that answers.
const WITHOUT: &str = "this happy-sandbox was started without the kubectl protocols \
    (`happy-sandbox up` has them; the suite's sandbox does not)";

/// Whether an `Accept` header asks for a Table (`application/json;as=Table;v=v1;
/// g=meta.k8s.io`, as `kubectl get` sends first, with plain JSON last as a fallback).
pub(crate) fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
    })
}

/// A Table answer a get, list or watch was asked for. Only a sandbox with the protocols makes
/// one, so without them the handlers' Table branches cannot run.
pub(crate) struct TableOutput {
    protocols: Arc<dyn KubectlProtocols>,
    /// The `includeObject` query value.
    include_object: String,
}

impl TableOutput {
    /// `items` as a Table of `resource`s at `resource_version`.
    pub(crate) fn render(&self, resource: &str, items: &[Value], resource_version: u64) -> Value {
        self.protocols
            .table(resource, items, resource_version, &self.include_object)
    }
}

/// The Table a get, list or watch asks for, if it asks for one.
///
/// Without the protocols a request for a Table is refused with 406 `NotAcceptable`, the API
/// server's answer when it cannot give any of the accepted forms (k8s.io/apiserver v0.33.0
/// `pkg/endpoints/handlers/negotiation/errors.go`, `errNotAcceptable`). kubectl also accepts
/// plain JSON, and the API server would fall back to it; the sandbox does not, because kubectl
/// then prints only NAME and AGE (k8s.io/cli-runtime v0.33.0 `pkg/printers/tableprinter.go`,
/// `defaultHandlerEntry`) and a reader would take that for the cluster's answer.
pub(crate) fn table_output<B>(
    state: &ApiState,
    req: &Request<B>,
    query: &Query,
) -> Result<Option<TableOutput>, ApiError> {
    let accept = req
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !wants_table(accept) {
        return Ok(None);
    }
    match &state.kubectl {
        Some(protocols) => Ok(Some(TableOutput {
            protocols: protocols.clone(),
            include_object: query.get("includeObject").unwrap_or_default().to_string(),
        })),
        None => Err(table_refused()),
    }
}

fn table_refused() -> ApiError {
    ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json ({WITHOUT}, which \
         serve the Tables `kubectl get` prints)"
    ))
}

/// The object of a protobuf create body (`kubectl create namespace` sends one and does not
/// fall back to JSON).
///
/// Without the protocols it is refused with 415 `UnsupportedMediaType`, the API server's answer
/// to a body in a format it does not read (`errUnsupportedMediaType`, same file as above).
pub(crate) fn decode_protobuf(
    state: &ApiState,
    body: &[u8],
    resource: &str,
) -> Result<Value, ApiError> {
    match &state.kubectl {
        Some(protocols) => protocols.decode_protobuf(body).map_err(|m| {
            ApiError::unsupported_media_type(format!("cannot create {resource}: {m}"))
        }),
        None => Err(protobuf_refused(resource)),
    }
}

fn protobuf_refused(resource: &str) -> ApiError {
    ApiError::unsupported_media_type(format!(
        "cannot create {resource}: the body of the request was in an unknown format - accepted \
         media types include: application/json, application/yaml ({WITHOUT}, which read the \
         protobuf `kubectl create namespace` sends)"
    ))
}

/// The OpenAPI v3 document at `path` (`/openapi/v3` or `/openapi/v3/<group-version>`).
///
/// Without the protocols it is a 404 `NotFound`, as from an API server that serves no OpenAPI.
/// kubectl then tries `/openapi/v2` (404 too), and `kubectl apply` stops with "failed to
/// download openapi: …" and "if you choose to ignore these errors, turn validation off with
/// --validate=false" (k8s.io/cli-runtime v0.33.0 `pkg/resource/fallback_query_param_verifier.go`,
/// `query_param_verifier.go`, `visitor.go`).
pub(crate) fn openapi(
    state: &ApiState,
    registry: &Registry,
    path: &str,
) -> Result<Value, ApiError> {
    match &state.kubectl {
        Some(protocols) => protocols.openapi(registry, path).ok_or_else(|| {
            ApiError::not_found(format!(
                "the sandbox serves no OpenAPI document at {path} (only a minimal /openapi/v3)"
            ))
        }),
        None => Err(openapi_refused(path)),
    }
}

fn openapi_refused(path: &str) -> ApiError {
    ApiError::not_found(format!(
        "the sandbox serves no OpenAPI document at {path} ({WITHOUT}, which serve the minimal \
         /openapi/v3 `kubectl apply` reads)"
    ))
}

/// A port-forward to `pod` in one of kubectl's two forms: SPDY/3.1 tunnelled in a WebSocket
/// (`tunnelled`, kubectl 1.31+) or a plain SPDY/3.1 upgrade (its fallback, and older kubectl).
///
/// Without the protocols both are refused with 400 `BadRequest`, what a server that does not
/// take the SPDY upgrade answers (k8s.io/apimachinery v0.33.0
/// `pkg/util/httpstream/spdy/upgrade.go`, `UpgradeResponse`: "unable to upgrade: …"). A failed
/// tunnel upgrade makes kubectl fall back to SPDY, and a failed SPDY upgrade with a `Status`
/// body makes it print that `Status`'s message (`pkg/util/httpstream/spdy/roundtripper.go`,
/// `NewConnection`).
pub(crate) fn port_forward(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    target: &Target,
    pod: &Value,
    tunnelled: bool,
) -> Result<Response<Body>, ApiError> {
    match &state.kubectl {
        Some(protocols) => {
            let pod = PortForwardPod {
                runtime: state.cluster.runtime.clone(),
                cluster: state.cluster.clone(),
                gr: target.rt.group_resource(),
                uid: pod["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                namespace: target.namespace.clone().unwrap_or_default(),
                name: target.name.clone().unwrap_or_default(),
            };
            let protocols = protocols.clone();
            super::spdy::upgrade::serve(
                state,
                req,
                move |io| protocols.serve_port_forward(io, pod),
                tunnelled,
            )
        }
        None => Err(port_forward_refused()),
    }
}

fn port_forward_refused() -> ApiError {
    ApiError::bad_request(format!(
        "unable to upgrade: {WITHOUT}, which speak the SPDY/3.1 `kubectl port-forward` uses; \
         port-forward over WebSocket channels (v4.channel.k8s.io with the ports parameter, as \
         kube-rs sends it) works"
    ))
}

/// The pod a port-forward was opened for: what a SPDY session needs to reach its ports.
#[derive(Clone)]
pub struct PortForwardPod {
    runtime: Arc<dyn Runtime>,
    cluster: Arc<Cluster>,
    gr: GroupResource,
    namespace: String,
    name: String,
    uid: String,
}

impl PortForwardPod {
    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod's UID when the forward was opened.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// `namespace/name`.
    pub fn namespaced_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// A connection to `port` of the pod, as the runtime makes it (the pod's own port on its
    /// loopback). A forward is bound to the pod it was opened for (its UID, as the kubelet
    /// binds it to the pod's sandbox): a pod deleted, or recreated under the same name, is not
    /// reached.
    pub async fn connect(&self, port: u16) -> Result<Pin<Box<dyn Duplex>>, String> {
        let now = self
            .cluster
            .store
            .get(&self.gr, &self.namespace, &self.name);
        match now.as_ref().and_then(|p| p["metadata"]["uid"].as_str()) {
            Some(uid) if uid == self.uid => {}
            _ => {
                return Err(format!(
                    "pod {}/{} with uid {} no longer exists",
                    self.namespace, self.name, self.uid
                ));
            }
        }
        self.runtime
            .port_forward(&self.namespace, &self.name, port)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_what_kubectl_get_asks_for_first() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table(
            "application/vnd.kubernetes.protobuf,application/json"
        ));
    }

    /// The refusals without the protocols: a Kubernetes `Status` with the API server's code and
    /// reason for that kind of refusal, naming what is missing. (Which requests get them is
    /// tested through the API server, with and without the protocols: happy-sandbox-cli's
    /// tests/it/api.rs, `kubectl_only_requests_need_the_protocols`.)
    #[test]
    fn each_refusal_is_a_status_naming_the_protocols() {
        for (e, code, reason) in [
            (table_refused(), 406, "NotAcceptable"),
            (protobuf_refused("namespaces"), 415, "UnsupportedMediaType"),
            (openapi_refused("/openapi/v3"), 404, "NotFound"),
            (port_forward_refused(), 400, "BadRequest"),
        ] {
            let s = e.to_status();
            assert_eq!(
                (s["kind"].as_str(), s["code"].as_u64(), s["reason"].as_str()),
                (Some("Status"), Some(code), Some(reason)),
                "{s}"
            );
            let message = s["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("without the kubectl protocols"),
                "{message}"
            );
        }
    }
}
