//! VirtualService `http` rules → Envoy routes: matches on URI (exact, prefix, regex), headers,
//! method and authority; single and weighted destinations (with subsets); mirroring with
//! `mirrorPercentage`; timeouts and retries; and the default route to a Service that no
//! VirtualService covers. Istio's defaults are kept: no route timeout, its retry policy.

use serde_json::{Value, json};

use super::clusters::outbound_name;
use super::hosts;
use super::input::{MeshInput, Warning};

/// Istio's default retry policy on every route.
pub(crate) fn default_retry_policy() -> Value {
    json!({
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "num_retries": 2,
        "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
        "host_selection_retry_max_attempts": "5",
        "retriable_status_codes": [503],
    })
}

/// The route to `cluster` for every request (a Service without VirtualService).
pub(crate) fn default_route(cluster: &str, operation: &str) -> Value {
    json!({
        "name": "default",
        "match": {"prefix": "/"},
        "route": {"cluster": cluster, "timeout": "0s", "retry_policy": default_retry_policy(),
                  "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"}},
        "decorator": {"operation": operation},
    })
}

/// Where a VirtualService is being applied.
pub(crate) struct RouteContext<'a> {
    pub mesh: &'a MeshInput,
    /// The port of the listener (the Service port for sidecars, the server port for gateways).
    pub port: u16,
    /// The gateway (`ns/name`) being built, or `None` for the mesh (sidecars).
    pub gateway: Option<&'a str>,
    /// The proxy's labels, for `sourceLabels`.
    pub proxy_labels: &'a std::collections::BTreeMap<String, String>,
    /// The proxy's namespace, for `sourceNamespace`.
    pub proxy_namespace: &'a str,
    /// Whether mirrored requests keep their Host (Istio ≥ 1.28) instead of getting `-shadow`.
    pub mirror_without_shadow_suffix: bool,
}

/// A duration as Istio writes it (`1s`, `500ms`, `1m`, `1h`) → Envoy's seconds string.
fn duration(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        return None;
    };
    let secs = num.parse::<f64>().ok()? * scale;
    Some(format!("{secs:.3}s"))
}

/// A `StringMatch` → Envoy's `StringMatcher`.
fn string_matcher(m: &Value) -> Option<Value> {
    if let Some(v) = m["exact"].as_str() {
        Some(json!({"exact": v}))
    } else if let Some(v) = m["prefix"].as_str() {
        Some(json!({"prefix": v}))
    } else {
        m["regex"]
            .as_str()
            .map(|v| json!({"safe_regex": {"regex": v}}))
    }
}

/// The cluster a `Destination` names, as seen from a VirtualService in `vs_namespace`.
pub(crate) fn destination_cluster(
    dest: &Value,
    vs: &Value,
    ctx: &RouteContext<'_>,
    warnings: &mut Vec<Warning>,
) -> Option<String> {
    let vs_ns = vs["metadata"]["namespace"].as_str().unwrap_or_default();
    let Some(host) = dest["host"].as_str() else {
        warnings.push(Warning::about(vs, "a destination without host is ignored"));
        return None;
    };
    let fqdn = hosts::resolve(host, vs_ns);
    let subset = dest["subset"].as_str().unwrap_or_default();
    let Some(svc) = ctx.mesh.service_by_fqdn(&fqdn) else {
        warnings.push(Warning::about(
            vs,
            format!("destination host {host:?} ({fqdn}) is not a Service in the cluster (the sandbox has no ServiceEntry support); requests to it fail with 503"),
        ));
        return Some(outbound_name(ctx.port, subset, &fqdn));
    };
    let port = match dest["port"]["number"].as_u64() {
        Some(n) => u16::try_from(n).unwrap_or(ctx.port),
        None if svc.ports.len() == 1 => svc.ports[0].port,
        None if svc.ports.iter().any(|p| p.port == ctx.port) => ctx.port,
        None => {
            warnings.push(Warning::about(
                vs,
                format!("destination {host:?} has several ports; name one with port.number"),
            ));
            svc.ports.first().map_or(ctx.port, |p| p.port)
        }
    };
    if !subset.is_empty() {
        let defined = super::clusters::destination_rule_for(
            ctx.mesh,
            &fqdn,
            ctx.proxy_namespace,
            &svc.namespace,
        )
        .and_then(|dr| dr["spec"]["subsets"].as_array())
        .is_some_and(|subsets| subsets.iter().any(|s| s["name"] == subset));
        if !defined {
            warnings.push(Warning::about(
                vs,
                format!("subset {subset:?} of {fqdn} is not defined by any DestinationRule; requests routed to it fail with 503"),
            ));
        }
    }
    Some(outbound_name(port, subset, &fqdn))
}

/// Whether one `HTTPMatchRequest` can apply here at all (gateway, port, source), and its
/// Envoy `RouteMatch` if so.
fn route_match(
    m: &Value,
    vs: &Value,
    ctx: &RouteContext<'_>,
    warnings: &mut Vec<Warning>,
) -> Option<Value> {
    if let Some(port) = m["port"].as_u64()
        && port != u64::from(ctx.port)
    {
        return None;
    }
    if let Some(gws) = m["gateways"].as_array() {
        let here = ctx.gateway.unwrap_or("mesh");
        let vs_ns = vs["metadata"]["namespace"].as_str().unwrap_or_default();
        if !gws
            .iter()
            .filter_map(Value::as_str)
            .any(|g| gateway_ref_matches(g, vs_ns, here))
        {
            return None;
        }
    }
    if let Some(source) = m["sourceLabels"].as_object() {
        if ctx.gateway.is_some() {
            return None;
        }
        let ok = source
            .iter()
            .all(|(k, v)| ctx.proxy_labels.get(k).map(String::as_str) == v.as_str());
        if !ok {
            return None;
        }
    }
    if let Some(ns) = m["sourceNamespace"].as_str()
        && ns != ctx.proxy_namespace
    {
        return None;
    }
    let mut out = json!({});
    let uri = &m["uri"];
    if let Some(v) = uri["exact"].as_str() {
        out["path"] = json!(v);
    } else if let Some(v) = uri["prefix"].as_str() {
        out["prefix"] = json!(v);
    } else if let Some(v) = uri["regex"].as_str() {
        out["safe_regex"] = json!({"regex": v});
    } else {
        out["prefix"] = json!("/");
    }
    if m["ignoreUriCase"] == true {
        out["case_sensitive"] = json!(false);
    }
    let mut headers = Vec::new();
    if let Some(hs) = m["headers"].as_object() {
        for (name, sm) in hs {
            match string_matcher(sm) {
                Some(matcher) => headers.push(json!({"name": name, "string_match": matcher})),
                None => headers.push(json!({"name": name, "present_match": true})),
            }
        }
    }
    if let Some(hs) = m["withoutHeaders"].as_object() {
        for (name, sm) in hs {
            match string_matcher(sm) {
                Some(matcher) => headers
                    .push(json!({"name": name, "string_match": matcher, "invert_match": true})),
                None => {
                    headers.push(json!({"name": name, "present_match": true, "invert_match": true}))
                }
            }
        }
    }
    for (field, header) in [
        ("method", ":method"),
        ("authority", ":authority"),
        ("scheme", ":scheme"),
    ] {
        if let Some(matcher) = string_matcher(&m[field]) {
            headers.push(json!({"name": header, "string_match": matcher}));
        }
    }
    if !headers.is_empty() {
        out["headers"] = json!(headers);
    }
    for key in m.as_object().into_iter().flatten().map(|(k, _)| k.as_str()) {
        if !matches!(
            key,
            "name"
                | "uri"
                | "headers"
                | "withoutHeaders"
                | "method"
                | "authority"
                | "scheme"
                | "port"
                | "gateways"
                | "sourceLabels"
                | "sourceNamespace"
                | "ignoreUriCase"
        ) {
            warnings.push(Warning::about(
                vs,
                format!("http match field {key:?} is not supported by the sandbox; ignored"),
            ));
        }
    }
    Some(out)
}

/// Whether a VirtualService's gateway reference `g` (written in `vs_ns`) names `here`
/// (`ns/name` of a Gateway, or `mesh`).
pub(crate) fn gateway_ref_matches(g: &str, vs_ns: &str, here: &str) -> bool {
    if g == "mesh" || here == "mesh" {
        return g == here;
    }
    let full = if g.contains('/') {
        g.to_string()
    } else {
        format!("{vs_ns}/{g}")
    };
    full == here
}

/// The routes of one VirtualService for this context.
pub(crate) fn virtual_service_routes(
    vs: &Value,
    ctx: &RouteContext<'_>,
    warnings: &mut Vec<Warning>,
) -> Vec<Value> {
    let mut routes = Vec::new();
    let spec = &vs["spec"];
    for key in spec
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
    {
        if matches!(key, "tcp" | "tls") {
            warnings.push(Warning::about(
                vs,
                format!("{key} routes are not supported by the sandbox; ignored"),
            ));
        } else if !matches!(key, "hosts" | "gateways" | "http" | "exportTo") {
            warnings.push(Warning::about(
                vs,
                format!("field {key:?} is not supported by the sandbox; ignored"),
            ));
        }
    }
    for (i, rule) in spec["http"].as_array().into_iter().flatten().enumerate() {
        let name = rule["name"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "{}.{}.{i}",
                    vs["metadata"]["name"].as_str().unwrap_or_default(),
                    vs["metadata"]["namespace"].as_str().unwrap_or_default()
                )
            });
        let action = match route_action(rule, vs, ctx, warnings) {
            Some(a) => a,
            None => continue,
        };
        let matches: Vec<Value> = match rule["match"].as_array() {
            Some(ms) if !ms.is_empty() => ms
                .iter()
                .filter_map(|m| route_match(m, vs, ctx, warnings))
                .collect(),
            _ => vec![json!({"prefix": "/"})],
        };
        for m in matches {
            routes.push(json!({
                "name": name,
                "match": m,
                "route": action,
                "decorator": {"operation": format!("{}/*", vs["metadata"]["name"].as_str().unwrap_or_default())},
            }));
        }
    }
    routes
}

fn route_action(
    rule: &Value,
    vs: &Value,
    ctx: &RouteContext<'_>,
    warnings: &mut Vec<Warning>,
) -> Option<Value> {
    for key in rule
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
    {
        if !matches!(
            key,
            "name"
                | "match"
                | "route"
                | "mirror"
                | "mirrorPercentage"
                | "mirror_percent"
                | "mirrorPercent"
                | "timeout"
                | "retries"
                | "rewrite"
        ) {
            warnings.push(Warning::about(
                vs,
                format!("http field {key:?} is not supported by the sandbox; ignored"),
            ));
        }
    }
    let dests: Vec<(String, u64)> = rule["route"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let c = destination_cluster(&r["destination"], vs, ctx, warnings)?;
            Some((c, r["weight"].as_u64().unwrap_or(0)))
        })
        .collect();
    if dests.is_empty() {
        warnings.push(Warning::about(vs, "an http rule without route is ignored"));
        return None;
    }
    let mut action = if dests.len() == 1 {
        json!({"cluster": dests[0].0})
    } else {
        let all_zero = dests.iter().all(|(_, w)| *w == 0);
        let clusters: Vec<Value> = dests
            .iter()
            .filter(|(_, w)| all_zero || *w > 0)
            .map(|(c, w)| json!({"name": c, "weight": if all_zero { 1 } else { *w }}))
            .collect();
        json!({"weighted_clusters": {"clusters": clusters}})
    };
    action["timeout"] = json!(duration(&rule["timeout"]).unwrap_or_else(|| "0s".into()));
    action["max_stream_duration"] =
        json!({"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"});
    action["retry_policy"] = match rule["retries"].as_object() {
        None => default_retry_policy(),
        Some(_) => {
            let r = &rule["retries"];
            let attempts = r["attempts"].as_u64().unwrap_or(2);
            if attempts == 0 {
                json!({"num_retries": 0})
            } else {
                let mut p = default_retry_policy();
                p["num_retries"] = json!(attempts);
                if let Some(on) = r["retryOn"].as_str() {
                    p["retry_on"] = json!(on);
                }
                if let Some(t) = duration(&r["perTryTimeout"]) {
                    p["per_try_timeout"] = json!(t);
                }
                p
            }
        }
    };
    if let Some(prefix) = rule["rewrite"]["uri"].as_str() {
        action["prefix_rewrite"] = json!(prefix);
    }
    if let Some(authority) = rule["rewrite"]["authority"].as_str() {
        action["host_rewrite_literal"] = json!(authority);
    }
    if !rule["mirror"].is_null()
        && let Some(cluster) = destination_cluster(&rule["mirror"], vs, ctx, warnings)
    {
        // Percent → parts per million, as Istio converts it.
        let percent = rule["mirrorPercentage"]["value"]
            .as_f64()
            .or_else(|| rule["mirror_percent"].as_f64())
            .or_else(|| rule["mirrorPercent"].as_f64())
            .unwrap_or(100.0)
            .clamp(0.0, 100.0);
        let mut mirror = json!({
            "cluster": cluster,
            "runtime_fraction": {"default_value": {"numerator": (percent * 10_000.0).round() as u64, "denominator": "MILLION"}},
            "trace_sampled": false,
        });
        if ctx.mirror_without_shadow_suffix {
            mirror["disable_shadow_host_suffix_append"] = json!(true);
        }
        action["request_mirror_policies"] = json!([mirror]);
    }
    Some(action)
}
