//! The requests only `kubectl` makes: answered with the crate's `kubectl` feature, refused
//! without it.
//!
//! The suite reaches the sandbox through kube-rs, which asks for JSON, sends JSON and forwards
//! ports over WebSocket channels. A person following the workshop with kubectl against
//! `happy-sandbox up` needs more, and only that person does: Tables for `kubectl get`
//! (`table.rs`), protobuf bodies for `kubectl create namespace` (`protobuf.rs`), an OpenAPI
//! document for `kubectl apply` (`openapi.rs`) and SPDY for `kubectl port-forward`
//! (`spdy/`). Those are compiled only with the feature, which is on by default and off in the
//! suite's dependency (the root `Cargo.toml`). This module is the one switch: the handlers call
//! it the same way in both builds, and without the feature each such request gets a Kubernetes
//! `Status` saying so, with the code the API server gives the same kind of refusal (see each
//! function), never a silently poorer answer.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;

use super::ApiState;
use super::body::Body;
use super::query::Query;
use super::router::Target;
use crate::error::ApiError;
use crate::store::Registry;

/// What every refusal says: why, and how to get the build that answers.
#[cfg(any(not(feature = "kubectl"), test))]
const WITHOUT: &str = "this happy-sandbox was built without its `kubectl` feature \
    (`happy-sandbox up` has it; the suite's build does not)";

/// Whether an `Accept` header asks for a Table (`application/json;as=Table;v=v1;
/// g=meta.k8s.io`, as `kubectl get` sends first, with plain JSON last as a fallback).
pub(crate) fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
    })
}

/// A Table answer a get, list or watch was asked for. Without the feature no value of it
/// exists, so the handlers' Table branches cannot run.
#[cfg(feature = "kubectl")]
pub(crate) struct TableOutput {
    /// The `includeObject` query value.
    include_object: String,
}

/// A Table answer a get, list or watch was asked for. Without the feature no value of it
/// exists, so the handlers' Table branches cannot run.
#[cfg(not(feature = "kubectl"))]
pub(crate) enum TableOutput {}

impl TableOutput {
    /// `items` as a Table of `resource`s at `resource_version`.
    #[cfg(feature = "kubectl")]
    pub(crate) fn render(&self, resource: &str, items: &[Value], resource_version: u64) -> Value {
        super::table::table(resource, items, resource_version, &self.include_object)
    }

    /// `items` as a Table of `resource`s at `resource_version`.
    #[cfg(not(feature = "kubectl"))]
    pub(crate) fn render(
        &self,
        _resource: &str,
        _items: &[Value],
        _resource_version: u64,
    ) -> Value {
        match *self {}
    }
}

/// The Table a get, list or watch asks for, if it asks for one.
///
/// Without the feature a request for a Table is refused with 406 `NotAcceptable`, the API
/// server's answer when it cannot give any of the accepted forms (k8s.io/apiserver v0.33.0
/// `pkg/endpoints/handlers/negotiation/errors.go`, `errNotAcceptable`). kubectl also accepts
/// plain JSON, and the API server would fall back to it; the sandbox does not, because kubectl
/// then prints only NAME and AGE (k8s.io/cli-runtime v0.33.0 `pkg/printers/tableprinter.go`,
/// `defaultHandlerEntry`) and a reader would take that for the cluster's answer.
pub(crate) fn table_output<B>(
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
    #[cfg(feature = "kubectl")]
    {
        Ok(Some(TableOutput {
            include_object: query.get("includeObject").unwrap_or_default().to_string(),
        }))
    }
    #[cfg(not(feature = "kubectl"))]
    {
        let _ = query;
        Err(table_refused())
    }
}

#[cfg(any(not(feature = "kubectl"), test))]
fn table_refused() -> ApiError {
    ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json ({WITHOUT}, which \
         serves the Tables `kubectl get` prints)"
    ))
}

/// The object of a protobuf create body (`kubectl create namespace` sends one and does not
/// fall back to JSON).
///
/// Without the feature it is refused with 415 `UnsupportedMediaType`, the API server's answer
/// to a body in a format it does not read (`errUnsupportedMediaType`, same file as above).
pub(crate) fn decode_protobuf(body: &[u8], resource: &str) -> Result<Value, ApiError> {
    #[cfg(feature = "kubectl")]
    {
        super::protobuf::decode(body)
            .map_err(|m| ApiError::unsupported_media_type(format!("cannot create {resource}: {m}")))
    }
    #[cfg(not(feature = "kubectl"))]
    {
        let _ = body;
        Err(protobuf_refused(resource))
    }
}

#[cfg(any(not(feature = "kubectl"), test))]
fn protobuf_refused(resource: &str) -> ApiError {
    ApiError::unsupported_media_type(format!(
        "cannot create {resource}: the body of the request was in an unknown format - accepted \
         media types include: application/json, application/yaml ({WITHOUT}, which reads the \
         protobuf `kubectl create namespace` sends)"
    ))
}

/// The OpenAPI v3 document at `path` (`/openapi/v3` or `/openapi/v3/<group-version>`).
///
/// Without the feature it is a 404 `NotFound`, as from an API server that serves no OpenAPI.
/// kubectl then tries `/openapi/v2` (404 too), and `kubectl apply` stops with "failed to
/// download openapi: …" and "if you choose to ignore these errors, turn validation off with
/// --validate=false" (k8s.io/cli-runtime v0.33.0 `pkg/resource/fallback_query_param_verifier.go`,
/// `query_param_verifier.go`, `visitor.go`).
pub(crate) fn openapi(registry: &Registry, path: &str) -> Result<Value, ApiError> {
    #[cfg(feature = "kubectl")]
    {
        let doc = match path.trim_end_matches('/') {
            "/openapi/v3" => Some(super::openapi::root(registry)),
            p => p
                .strip_prefix("/openapi/v3/")
                .and_then(|gv| super::openapi::group_version(registry, gv)),
        };
        doc.ok_or_else(|| {
            ApiError::not_found(format!(
                "the sandbox serves no OpenAPI document at {path} (only a minimal /openapi/v3)"
            ))
        })
    }
    #[cfg(not(feature = "kubectl"))]
    {
        let _ = registry;
        Err(openapi_refused(path))
    }
}

#[cfg(any(not(feature = "kubectl"), test))]
fn openapi_refused(path: &str) -> ApiError {
    ApiError::not_found(format!(
        "the sandbox serves no OpenAPI document at {path} ({WITHOUT}, which serves the minimal \
         /openapi/v3 `kubectl apply` reads)"
    ))
}

/// A port-forward to `pod` in one of kubectl's two forms: SPDY/3.1 tunnelled in a WebSocket
/// (`tunnelled`, kubectl 1.31+) or a plain SPDY/3.1 upgrade (its fallback, and older kubectl).
///
/// Without the feature both are refused with 400 `BadRequest`, what a server that does not
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
    #[cfg(feature = "kubectl")]
    {
        super::spdy::portforward::serve(state, req, target, pod, tunnelled)
    }
    #[cfg(not(feature = "kubectl"))]
    {
        let _ = (state, req, target, pod, tunnelled);
        Err(port_forward_refused())
    }
}

#[cfg(any(not(feature = "kubectl"), test))]
fn port_forward_refused() -> ApiError {
    ApiError::bad_request(format!(
        "unable to upgrade: {WITHOUT}, which speaks the SPDY/3.1 `kubectl port-forward` uses; \
         port-forward over WebSocket channels (v4.channel.k8s.io with the ports parameter, as \
         kube-rs sends it) works"
    ))
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

    /// The refusals of the build without the feature: a Kubernetes `Status` with the API
    /// server's code and reason for that kind of refusal, naming the feature. (Which requests
    /// get them is tested through the API server in both builds: tests/it/api.rs,
    /// `kubectl_only_requests_follow_the_feature`.)
    #[test]
    fn each_refusal_is_a_status_naming_the_feature() {
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
                message.contains("without its `kubectl` feature"),
                "{message}"
            );
        }
    }
}
