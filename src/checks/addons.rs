//! What the addons show: Grafana's dashboards and Kiali's traffic graph, and how to poll the
//! graph while traffic flows.
//!
//! Kiali facts the checks rely on (kiali/kiali, tags v2.17–v2.30, the versions Istio 1.28–1.31
//! ship in `samples/addons/kiali.yaml`):
//! - `GET /api/namespaces/graph` (`routing/routes.go`) under `web_root: /kiali`, anonymous
//!   access (`samples/addons/kiali.yaml`).
//! - The JSON (`graph/config/common/common.go`, `Config`/`NodeData`/`EdgeData`): nodes and edges
//!   under `elements`, each in `data`; node `nodeType` (`unknown` for traffic from outside the
//!   mesh, `graph/types.go`), `namespace`, `app`, `version`; edge `source`, `target`,
//!   `traffic.rates` a map of **strings** (`http`, `http5xx`, `httpPercentErr`, …, present only
//!   when above 0, `addEdgeTelemetry`), `isMTLS` the mTLS percentage as a string, present only
//!   when above 0 (`appender/security_policy.go`).
//! - Every traffic query ends in `> 0` (`graph/telemetry/istio/istio.go`): an edge exists only
//!   while `rate(istio_requests_total[duration])` is above 0, which needs two scrapes with an
//!   increase — so traffic must keep flowing while the graph is polled.
//! - From v2.21.0 the graph is cached and refreshed in the background (default 60 s);
//!   `refreshInterval=0` bypasses the cache for a request (`graph/options.go`: "Negative or zero
//!   means disable caching for this request"); older versions ignore the parameter.

use std::future::Future;

use serde::Deserialize;
use serde_json::Value;

use crate::probes::{Convergence, eventually};

/// The graph request of the claims: the workshop's versioned-app graph of `namespace` over the
/// last 10 minutes, no service nodes, with the appenders that keep idle "unknown" sources
/// (`deadNode`) and add `isMTLS` (`securityPolicy`), and no cache.
pub fn graph_path(namespace: &str) -> String {
    format!(
        "/kiali/api/namespaces/graph?namespaces={namespace}&graphType=versionedApp&duration=600s\
         &injectServiceNodes=false&appenders=deadNode,securityPolicy&refreshInterval=0"
    )
}

/// Fetch the graph until `check` holds, sending one unit of traffic before every fetch (the
/// workshop keeps `watch -n 1 curl …` running while looking at Kiali); the first fetch is
/// retried like any other (Kiali may still be starting). Bounded by `policy`.
pub async fn graph_with_traffic<S, SF, F, FF, C>(
    what: &str,
    policy: &Convergence,
    send: S,
    fetch: F,
    check: C,
) -> crate::Result<KialiGraph>
where
    S: Fn() -> SF,
    SF: Future<Output = ()>,
    F: Fn() -> FF,
    FF: Future<Output = Result<KialiGraph, String>>,
    C: Fn(&KialiGraph) -> Result<(), String>,
{
    let (send, fetch, check) = (&send, &fetch, &check);
    eventually(what, policy, || async move {
        send().await;
        let graph = fetch().await?;
        check(&graph)?;
        Ok(graph)
    })
    .await
}

/// Grafana's `/api/search` answer holds a dashboard with exactly this title.
pub fn grafana_has_dashboard(search_body: &str, title: &str) -> Result<bool, String> {
    let hits: Vec<Value> = serde_json::from_str(search_body)
        .map_err(|e| format!("Grafana's search answer is not a JSON list ({e})"))?;
    Ok(hits.iter().any(|h| {
        h.get("title").and_then(Value::as_str) == Some(title)
            && h.get("type").and_then(Value::as_str) != Some("dash-folder")
    }))
}

/// Kiali's graph (`/kiali/api/namespaces/graph`), the parts the claims read.
#[derive(Debug, Clone, Deserialize)]
pub struct KialiGraph {
    pub elements: Elements,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Elements {
    #[serde(default)]
    pub nodes: Vec<Element<Node>>,
    #[serde(default)]
    pub edges: Vec<Element<Edge>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Element<T> {
    pub data: T,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    #[serde(default)]
    pub node_type: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub traffic: Option<Traffic>,
    /// Percentage of mTLS traffic, as a string ("100") or a number; absent when none.
    #[serde(default, rename = "isMTLS")]
    pub is_mtls: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub rates: serde_json::Map<String, Value>,
}

fn number(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0.0),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// HTTP traffic on an edge: (requests per second, percent of errors).
pub fn http_rates(edge: &Edge) -> (f64, f64) {
    match &edge.traffic {
        Some(t) => (
            number(t.rates.get("http")),
            number(t.rates.get("httpPercentErr")),
        ),
        None => (0.0, 0.0),
    }
}

impl KialiGraph {
    /// Parse Kiali's graph JSON.
    pub fn parse(body: &str) -> Result<Self, String> {
        serde_json::from_str(body)
            .map_err(|e| format!("Kiali's graph is not the JSON expected ({e})"))
    }

    /// Ids of the versioned-app nodes of `app` at `version` in `namespace`.
    pub fn app_nodes(&self, namespace: &str, app: &str, version: Option<&str>) -> Vec<&str> {
        self.elements
            .nodes
            .iter()
            .map(|n| &n.data)
            .filter(|n| n.namespace == namespace && n.app.as_deref() == Some(app))
            .filter(|n| version.is_none() || n.version.as_deref() == version)
            .map(|n| n.id.as_str())
            .collect()
    }

    /// Ids of Kiali's "unknown" source nodes (traffic from outside the mesh).
    pub fn unknown_nodes(&self) -> Vec<&str> {
        self.elements
            .nodes
            .iter()
            .map(|n| &n.data)
            .filter(|n| n.node_type == "unknown")
            .map(|n| n.id.as_str())
            .collect()
    }

    /// Edges whose target is one of `targets`.
    pub fn edges_into<'a>(&'a self, targets: &[&str]) -> Vec<&'a Edge> {
        self.elements
            .edges
            .iter()
            .map(|e| &e.data)
            .filter(|e| targets.contains(&e.target.as_str()))
            .collect()
    }
}

/// An edge's mTLS share is absent or zero.
pub fn is_plaintext(edge: &Edge) -> bool {
    match &edge.is_mtls {
        None | Some(Value::Null) => true,
        v => number(v.as_ref()) == 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAPH: &str = r#"{"elements":{"nodes":[
        {"data":{"id":"n1","nodeType":"app","namespace":"istioinaction","app":"service-c","version":"v2"}},
        {"data":{"id":"n2","nodeType":"app","namespace":"istioinaction","app":"service-c","version":"v1"}},
        {"data":{"id":"n3","nodeType":"app","namespace":"istioinaction","app":"service-a","version":"v1"}},
        {"data":{"id":"n4","nodeType":"unknown","namespace":"unknown"}}],
      "edges":[
        {"data":{"id":"e1","source":"n3","target":"n1","traffic":{"protocol":"http","rates":{"http":"0.50","httpPercentErr":"100.0"}},"isMTLS":"100"}},
        {"data":{"id":"e2","source":"n3","target":"n2","traffic":{"protocol":"http","rates":{"http":"0.50"}},"isMTLS":"100"}},
        {"data":{"id":"e3","source":"n4","target":"n3","traffic":{"protocol":"http","rates":{"http":"0.10"}}}}]}}"#;

    #[test]
    fn reads_versions_rates_and_mtls() {
        let g = KialiGraph::parse(GRAPH).unwrap();
        let v2 = g.app_nodes("istioinaction", "service-c", Some("v2"));
        assert_eq!(v2, vec!["n1"]);
        let into_v2 = g.edges_into(&v2);
        assert_eq!(http_rates(into_v2[0]), (0.5, 100.0));
        let v1 = g.app_nodes("istioinaction", "service-c", Some("v1"));
        assert_eq!(http_rates(g.edges_into(&v1)[0]), (0.5, 0.0));
        let unknown = g.unknown_nodes();
        assert_eq!(unknown, vec!["n4"]);
        let a = g.app_nodes("istioinaction", "service-a", None);
        let legacy: Vec<_> = g
            .edges_into(&a)
            .into_iter()
            .filter(|e| unknown.contains(&e.source.as_str()))
            .collect();
        assert_eq!(legacy.len(), 1);
        assert!(is_plaintext(legacy[0]));
        assert!(!is_plaintext(into_v2[0]));
    }

    #[test]
    fn grafana_search_matches_the_exact_title() {
        let body = r#"[{"title":"Istio Workload Dashboard","type":"dash-db"},{"title":"Istio Mesh Dashboard","type":"dash-db"}]"#;
        assert!(grafana_has_dashboard(body, "Istio Workload Dashboard").unwrap());
        assert!(!grafana_has_dashboard(body, "Istio Service Dashboard").unwrap());
        assert!(grafana_has_dashboard("{}", "x").is_err());
    }
}
