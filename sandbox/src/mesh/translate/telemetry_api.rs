//! Istio's Telemetry API (`telemetry.istio.io` Telemetry) as istiod applies it to one proxy:
//! whether its listeners write the access log on the container's stdout, and whether they count
//! `istio_requests_total` for the Prometheus provider. The rest of the Telemetry API (tracing,
//! filters, tag overrides, other providers' output) is reported as unsupported.
//!
//! Ported from istio/istio@1.28.0 `pilot/pkg/model/telemetry.go` (unchanged in 1.30.3):
//! * which Telemetries apply (`applicableTelemetries`): the root namespace's namespace-wide one
//!   (no selector), then the proxy's namespace's namespace-wide one, then those of its
//!   namespace whose `selector` matches it, later ones overriding earlier ones;
//! * access logging (`AccessLogging`, `mergeLogs`): with no Telemetry setting `accessLogging`
//!   and no `defaultProviders.accessLogging`, istiod falls back to mesh config's
//!   `accessLogFile` (`pilot/pkg/networking/core/accesslog.go` `setHTTPAccessLog`: "No
//!   Telemetry API configured, fall back to legacy mesh config setting" — also when the merged
//!   providers are empty); an entry without `providers` inherits its parent's, which on the
//!   demo profile are none (mesh config `defaultProviders` is empty, pkg/config/mesh/mesh.go
//!   `DefaultMeshConfig`, and the istio-discovery chart's configmap.yaml sets only
//!   `defaultProviders.metrics`). So `accessLogging: [{disabled: true}]` alone does **not**
//!   turn the demo profile's access log off; `[{providers: [{name: envoy}], disabled: true}]`
//!   does (`envoy` is the built-in file provider writing to /dev/stdout, mesh.go
//!   `ExtensionProviders`);
//! * metrics (`mergeMetrics`, `generateStatsConfig`): the providers default to
//!   `defaultProviders.metrics`, `[prometheus]` (istio-discovery configmap.yaml); an override
//!   whose `match` is absent or `ALL_METRICS` with `disabled: true` drops the stats filter for
//!   its mode (`CLIENT`, `SERVER`, both by default), a `REQUEST_COUNT` override drops
//!   `istio_requests_total`; a Telemetry naming only other providers leaves Prometheus out.
//!
//! The mode of a listener (istio `workloadMode`, `MetricsForClass`): a sidecar's inbound
//! listeners are `SERVER`, its outbound ones and a gateway's are `CLIENT`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::input::{MeshInput, ProxyInput, ProxyKind, Warning};
use crate::mesh::ROOT_NAMESPACE;
use crate::mesh::model::{selector_of, selects};

/// The demo profile's mesh config, as far as telemetry goes: `accessLogFile: /dev/stdout`
/// (istio/istio@1.28.0 manifests/helm-profiles/demo.yaml) and `defaultProviders.metrics:
/// [prometheus]` (manifests/charts/istio-control/istio-discovery/templates/configmap.yaml).
const MESH_ACCESS_LOG_FILE: &str = "/dev/stdout";
const DEFAULT_METRICS_PROVIDERS: &[&str] = &["prometheus"];
/// The built-in file access-log provider (pkg/config/mesh/mesh.go `ExtensionProviders`).
const ENVOY_PROVIDER: &str = "envoy";
const PROMETHEUS_PROVIDER: &str = "prometheus";

/// Istio's `WorkloadMode`, of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    Client,
    Server,
}

impl Mode {
    /// Whether a selector's `mode` (absent: `CLIENT_AND_SERVER`) covers this one.
    fn matched_by(self, mode: &Value) -> bool {
        match mode.as_str() {
            Some("CLIENT") => self == Mode::Client,
            Some("SERVER") => self == Mode::Server,
            _ => true,
        }
    }
}

/// What the Telemetries in scope leave on for one proxy and mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outputs {
    /// The text access log on the proxy's stdout.
    pub access_log: bool,
    /// `istio_requests_total` for the Prometheus provider.
    pub request_count: bool,
}

/// The Telemetries that apply to `proxy`, in istiod's order (later ones override).
fn applicable<'a>(mesh: &'a MeshInput, proxy: &ProxyInput) -> Vec<&'a Value> {
    let ns = proxy.meta.namespace.as_str();
    let namespace_wide = |namespace: &str| {
        // `mesh.telemetries` is oldest first: the first is the one istiod takes.
        mesh.telemetries.iter().find(|t| {
            t["metadata"]["namespace"].as_str() == Some(namespace)
                && selector_of(&t["spec"]["selector"]).is_empty()
                && t["spec"]["targetRefs"].is_null()
                && t["spec"]["targetRef"].is_null()
        })
    };
    let mut out: Vec<&Value> = Vec::new();
    out.extend(namespace_wide(ROOT_NAMESPACE));
    if ns != ROOT_NAMESPACE {
        out.extend(namespace_wide(ns));
    }
    out.extend(mesh.telemetries.iter().filter(|t| {
        let selector = selector_of(&t["spec"]["selector"]);
        t["metadata"]["namespace"].as_str() == Some(ns)
            && !selector.is_empty()
            && selects(&selector, &proxy.labels)
    }));
    out
}

fn provider_names(entry: &Value) -> Vec<String> {
    entry["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

fn entries<'a>(telemetries: &[&'a Value], field: &str) -> Vec<Vec<&'a Value>> {
    telemetries
        .iter()
        .filter_map(|t| t["spec"][field].as_array())
        .filter(|a| !a.is_empty())
        .map(|a| a.iter().collect())
        .collect()
}

/// `mergeLogs` and the fallback of `setHTTPAccessLog`, for the one log the sandbox writes.
fn access_log(logs: &[Vec<&Value>], mode: Mode) -> bool {
    // No default access-log providers on the demo profile (see the module comment).
    let mut in_scope: BTreeSet<String> = BTreeSet::new();
    for telemetry in logs {
        let names: BTreeSet<String> = telemetry
            .iter()
            .filter(|e| mode.matched_by(&e["match"]["mode"]))
            .flat_map(|e| provider_names(e))
            .collect();
        if !names.is_empty() {
            in_scope = names;
        }
    }
    let mut providers: BTreeMap<String, bool> = BTreeMap::new();
    let mut parent: Vec<String> = Vec::new();
    for telemetry in logs {
        for entry in telemetry {
            let mut names = provider_names(entry);
            if names.is_empty() {
                names = parent.clone();
            }
            parent = names.clone();
            for provider in names {
                if !in_scope.contains(&provider) || !mode.matched_by(&entry["match"]["mode"]) {
                    continue;
                }
                let disabled = entry["disabled"].as_bool() == Some(true);
                providers.insert(provider, !disabled);
            }
        }
    }
    // Only `envoy` writes to the container's stdout; other providers' logs go elsewhere, and
    // with none of them the mesh config's `accessLogFile` decides.
    match providers.get(ENVOY_PROVIDER) {
        Some(enabled) => *enabled,
        None if providers.is_empty() => !MESH_ACCESS_LOG_FILE.is_empty(),
        None => false,
    }
}

/// Whether an override's `match` selects every metric (`isAllMetrics`).
fn all_metrics(selector: &Value) -> bool {
    if selector["customMetric"].is_string() {
        return false;
    }
    matches!(selector["metric"].as_str(), None | Some("ALL_METRICS"))
}

/// `mergeMetrics` and `generateStatsConfig`, for `istio_requests_total` (`REQUEST_COUNT`).
fn request_count(metrics: &[&Value], mode: Mode) -> bool {
    let defaults: Vec<String> = DEFAULT_METRICS_PROVIDERS
        .iter()
        .map(|s| s.to_string())
        .collect();
    if metrics.is_empty() {
        return defaults.iter().any(|p| p == PROMETHEUS_PROVIDER);
    }
    let mut in_scope = defaults.clone();
    for entry in metrics {
        let names = provider_names(entry);
        if !names.is_empty() {
            in_scope = names;
        }
    }
    if !in_scope.iter().any(|p| p == PROMETHEUS_PROVIDER) {
        // No stats filter for Prometheus at all.
        return false;
    }
    let mut parent = defaults;
    let mut all_disabled = false;
    let mut count_disabled: Option<bool> = None;
    for entry in metrics {
        let mut names = provider_names(entry);
        if names.is_empty() {
            names = parent.clone();
        }
        parent = names.clone();
        if !names.iter().any(|p| p == PROMETHEUS_PROVIDER) {
            continue;
        }
        for o in entry["overrides"].as_array().into_iter().flatten() {
            let selector = &o["match"];
            if !mode.matched_by(&selector["mode"]) {
                continue;
            }
            if all_metrics(selector) && o["disabled"].as_bool() == Some(true) {
                all_disabled = true;
                continue;
            }
            // Any other override re-enables the filter for its modes ("root namespace
            // disables all, but then enables them by namespace scoped").
            all_disabled = false;
            let names_request_count =
                all_metrics(selector) || selector["metric"].as_str() == Some("REQUEST_COUNT");
            if let (true, Some(d)) = (names_request_count, o["disabled"].as_bool()) {
                count_disabled = Some(d);
            }
        }
    }
    !all_disabled && count_disabled != Some(true)
}

/// What the Telemetries leave on for `proxy`'s listeners of `mode`.
pub(crate) fn outputs(mesh: &MeshInput, proxy: &ProxyInput, mode: Mode) -> Outputs {
    let telemetries = applicable(mesh, proxy);
    let logs = entries(&telemetries, "accessLogging");
    let metrics: Vec<&Value> = entries(&telemetries, "metrics")
        .into_iter()
        .flatten()
        .collect();
    Outputs {
        access_log: access_log(&logs, mode),
        request_count: request_count(&metrics, mode),
    }
}

/// The listener's mode: a sidecar's inbound listener is `SERVER`, everything else `CLIENT`.
fn listener_mode(proxy: &ProxyInput, listener: &Value) -> Mode {
    if proxy.kind == ProxyKind::Sidecar && listener["traffic_direction"] == "INBOUND" {
        Mode::Server
    } else {
        Mode::Client
    }
}

/// Drop from every `access_log` list of `listeners` what the Telemetries turn off: the text
/// access log (`text_log`) and the stats log the agent counts `istio_requests_total` from.
pub(crate) fn apply(
    mesh: &MeshInput,
    proxy: &ProxyInput,
    listeners: &mut [Value],
    text_log: &Value,
) {
    let stats_path = Value::from(proxy.stats_log.to_string_lossy().to_string());
    for listener in listeners {
        let on = outputs(mesh, proxy, listener_mode(proxy, listener));
        if on.access_log && on.request_count {
            continue;
        }
        retain_logs(listener, &|log: &Value| {
            if log == text_log {
                on.access_log
            } else if log["typed_config"]["path"] == stats_path {
                on.request_count
            } else {
                true
            }
        });
    }
}

fn retain_logs(v: &mut Value, keep: &dyn Fn(&Value) -> bool) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "access_log"
                    && let Value::Array(logs) = child
                {
                    logs.retain(keep);
                } else {
                    retain_logs(child, keep);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| retain_logs(i, keep)),
        _ => {}
    }
}

/// The Telemetry fields the sandbox does not follow, each reported once.
pub(crate) fn unsupported(mesh: &MeshInput) -> Vec<Warning> {
    let mut out = Vec::new();
    for t in &mesh.telemetries {
        for key in t["spec"].as_object().into_iter().flatten().map(|(k, _)| k) {
            if !["selector", "accessLogging", "metrics"].contains(&key.as_str()) {
                out.push(Warning::about(
                    t,
                    format!("spec.{key} is not supported by the sandbox; ignored"),
                ));
            }
        }
        for e in t["spec"]["accessLogging"].as_array().into_iter().flatten() {
            if !e["filter"].is_null() {
                out.push(Warning::about(
                    t,
                    "accessLogging[].filter is not supported by the sandbox; every request is logged",
                ));
            }
        }
        for e in t["spec"]["metrics"].as_array().into_iter().flatten() {
            for o in e["overrides"].as_array().into_iter().flatten() {
                if !o["tagOverrides"].is_null() {
                    out.push(Warning::about(
                        t,
                        "metrics[].overrides[].tagOverrides is not supported by the sandbox; ignored",
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "telemetry_api_tests.rs"]
mod tests;
