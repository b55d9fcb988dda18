//! A container's environment as the kubelet builds it when it starts the container: literal
//! values, and `valueFrom.fieldRef` (the downward API) resolved against the pod (kubernetes
//! `pkg/kubelet/kubelet_pods.go`, `makeEnvironmentVariables` and
//! `podFieldSelectorRuntimeValue`), for the pod fields listed in [`container_env`].

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, Pod};

/// A container's env with `fieldRef`s resolved the way the kubelet does (the fields the
/// workshop uses; other sources have no value in the sandbox).
pub(crate) fn container_env(
    pod: &Pod,
    container: &Container,
    pod_ip: Ipv4Addr,
) -> Vec<(String, String)> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    container
        .env
        .iter()
        .flatten()
        .map(|e| {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                        Some("metadata.namespace") => meta.namespace.clone().unwrap_or_default(),
                        Some("metadata.name") => meta.name.clone().unwrap_or_default(),
                        Some("metadata.uid") => meta.uid.clone().unwrap_or_default(),
                        Some("status.podIP") => pod_ip.to_string(),
                        Some("spec.serviceAccountName") => spec
                            .and_then(|s| s.service_account_name.clone())
                            .unwrap_or_else(|| "default".into()),
                        Some("spec.nodeName") => {
                            spec.and_then(|s| s.node_name.clone()).unwrap_or_default()
                        }
                        _ => String::new(),
                    }
                }
                (None, None) => String::new(),
            };
            (e.name.clone(), value)
        })
        .collect()
}
