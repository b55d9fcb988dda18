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

use crate::retry::{Convergence, eventually};

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

    /// A versioned-app graph of istioinaction shaped as Kiali v2.17–v2.27 writes it
    /// (`graph/config/common/common.go`: `Config{timestamp, duration, graphType, elements}`,
    /// sha256 node and edge ids, `box` parent nodes, `healthData`, traffic rates as strings
    /// with `http5xx`/`httpPercentErr` only when above 0, `responses` by code, `isMTLS` only
    /// when above 0, the `unknown` source node of `graph/types.go`).
    const KIALI_GRAPH: &str = r#"{
      "timestamp": 1764579600,
      "duration": 600,
      "graphType": "versionedApp",
      "elements": {
        "nodes": [
          {"data": {"id": "4c0e2b8d9f3a6e17a5b2c8d1e0f9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0", "nodeType": "box", "cluster": "Kubernetes", "namespace": "istioinaction", "app": "service-c", "healthData": null, "isBox": "app"}},
          {"data": {"id": "9a1d3f5b7c9e1a3c5e7a9c1e3a5c7e9a1c3e5a7c9e1a3c5e7a9c1e3a5c7e9a1c", "parent": "4c0e2b8d9f3a6e17a5b2c8d1e0f9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0", "nodeType": "app", "cluster": "Kubernetes", "namespace": "istioinaction", "workload": "service-c-v1", "app": "service-c", "version": "v1", "destServices": [{"cluster": "Kubernetes", "namespace": "istioinaction", "name": "service-c"}], "traffic": [{"protocol": "http", "rates": {"httpIn": "0.52"}}], "healthData": null}},
          {"data": {"id": "b2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4", "parent": "4c0e2b8d9f3a6e17a5b2c8d1e0f9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0", "nodeType": "app", "cluster": "Kubernetes", "namespace": "istioinaction", "workload": "service-c-v2", "app": "service-c", "version": "v2", "traffic": [{"protocol": "http", "rates": {"httpIn": "0.48", "httpIn5xx": "0.48"}}], "healthData": null}},
          {"data": {"id": "d4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6", "nodeType": "app", "cluster": "Kubernetes", "namespace": "istioinaction", "workload": "service-a", "app": "service-a", "version": "v1", "traffic": [{"protocol": "http", "rates": {"httpIn": "1.00", "httpIn5xx": "0.48", "httpOut": "2.00"}}], "healthData": null}},
          {"data": {"id": "f6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8", "nodeType": "unknown", "cluster": "unknown", "namespace": "unknown", "workload": "unknown", "app": "unknown", "version": "unknown", "traffic": [{"protocol": "http", "rates": {"httpOut": "0.10"}}], "healthData": null, "isRoot": true}}
        ],
        "edges": [
          {"data": {"id": "0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7", "source": "d4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6", "target": "b2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4", "isMTLS": "100", "responseTime": "4", "throughput": "910", "traffic": {"protocol": "http", "rates": {"http": "0.48", "http5xx": "0.48", "httpPercentErr": "100.0", "httpPercentReq": "24.0"}, "responses": {"500": {"flags": {"-": "100.0"}, "hosts": {"service-c.istioinaction.svc.cluster.local": "100.0"}}}}}},
          {"data": {"id": "1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708", "source": "d4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6", "target": "9a1d3f5b7c9e1a3c5e7a9c1e3a5c7e9a1c3e5a7c9e1a3c5e7a9c1e3a5c7e9a1c", "isMTLS": "100", "responseTime": "3", "throughput": "1020", "traffic": {"protocol": "http", "rates": {"http": "0.52", "httpPercentReq": "26.0"}, "responses": {"200": {"flags": {"-": "100.0"}, "hosts": {"service-c.istioinaction.svc.cluster.local": "100.0"}}}}}},
          {"data": {"id": "2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819", "source": "f6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8", "target": "d4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6", "responseTime": "12", "throughput": "1800", "traffic": {"protocol": "http", "rates": {"http": "0.10", "httpPercentReq": "100.0"}, "responses": {"200": {"flags": {"-": "100.0"}, "hosts": {"service-a.istioinaction.svc.cluster.local": "100.0"}}}}}}
        ]
      }
    }"#;

    #[test]
    fn reads_an_upstream_shaped_graph() {
        let g = KialiGraph::parse(KIALI_GRAPH).unwrap();
        let v2 = g.app_nodes("istioinaction", "service-c", Some("v2"));
        assert_eq!(v2.len(), 1, "the box node has no version and is not v2");
        let into_v2 = g.edges_into(&v2);
        assert_eq!(http_rates(into_v2[0]), (0.48, 100.0));
        assert!(!is_plaintext(into_v2[0]));
        let v1 = g.app_nodes("istioinaction", "service-c", Some("v1"));
        assert_eq!(http_rates(g.edges_into(&v1)[0]), (0.52, 0.0));
        let unknown = g.unknown_nodes();
        assert_eq!(unknown.len(), 1);
        let a = g.app_nodes("istioinaction", "service-a", None);
        let legacy: Vec<_> = g
            .edges_into(&a)
            .into_iter()
            .filter(|e| unknown.contains(&e.source.as_str()))
            .collect();
        assert_eq!(legacy.len(), 1);
        assert!(is_plaintext(legacy[0]), "no isMTLS: no mutual TLS");
    }

    #[test]
    fn the_graph_request_bypasses_kialis_cache() {
        let p = graph_path("istioinaction");
        assert!(p.starts_with("/kiali/api/namespaces/graph?namespaces=istioinaction&"));
        for part in [
            "graphType=versionedApp",
            "duration=600s",
            "injectServiceNodes=false",
            "appenders=deadNode,securityPolicy",
            "refreshInterval=0",
        ] {
            assert!(p.contains(part), "{p} lacks {part}");
        }
    }

    /// A model of what Kiali shows at the addon's timing: Prometheus samples a counter every
    /// 15 s; an edge exists only while `rate()` over the samples in the window is above 0
    /// (two samples with an increase).
    struct FakeMesh {
        started: tokio::time::Instant,
        counter: std::cell::Cell<u64>,
        samples: std::cell::RefCell<Vec<(u64, u64)>>,
    }

    impl FakeMesh {
        const SCRAPE: u64 = 15;

        fn scrape_up_to_now(&self) {
            let now = self.started.elapsed().as_secs();
            let mut samples = self.samples.borrow_mut();
            let next = samples.last().map_or(0, |(t, _)| t + Self::SCRAPE);
            let mut t = next;
            while t <= now {
                samples.push((t, self.counter.get()));
                t += Self::SCRAPE;
            }
        }

        fn send(&self) {
            self.scrape_up_to_now();
            self.counter.set(self.counter.get() + 1);
        }

        fn graph(&self) -> KialiGraph {
            self.scrape_up_to_now();
            let samples = self.samples.borrow();
            let now = self.started.elapsed().as_secs();
            let window: Vec<_> = samples.iter().filter(|(t, _)| now - t <= 600).collect();
            let rate = match (window.first(), window.last()) {
                (Some(a), Some(b)) if b.0 > a.0 && b.1 > a.1 => {
                    (b.1 - a.1) as f64 / (b.0 - a.0) as f64
                }
                _ => 0.0,
            };
            let edges = if rate > 0.0 {
                format!(
                    r#"[{{"data":{{"id":"e","source":"a","target":"c2","traffic":{{"protocol":"http","rates":{{"http":"{rate:.2}","httpPercentErr":"100.0"}}}}}}}}]"#
                )
            } else {
                "[]".to_string()
            };
            KialiGraph::parse(&format!(
                r#"{{"elements":{{"nodes":[{{"data":{{"id":"a","nodeType":"app","namespace":"istioinaction","app":"service-a","version":"v1"}}}},{{"data":{{"id":"c2","nodeType":"app","namespace":"istioinaction","app":"service-c","version":"v2"}}}}],"edges":{edges}}}}}"#
            ))
            .unwrap()
        }
    }

    fn has_edge_into_v2(g: &KialiGraph) -> Result<(), String> {
        let v2 = g.app_nodes("istioinaction", "service-c", Some("v2"));
        if g.edges_into(&v2).iter().any(|e| http_rates(e).0 > 0.0) {
            Ok(())
        } else {
            Err("no traffic into v2 yet".into())
        }
    }

    fn kiali_limit() -> Convergence {
        Convergence {
            limit: std::time::Duration::from_secs(180),
            interval: std::time::Duration::from_secs(1),
            consecutive: 1,
        }
    }

    /// With traffic on every poll, the edge shows after two scrapes; with one burst into a new
    /// series and no traffic while polling, it never does (the series' first sample already
    /// holds its final value, so its rate stays 0): Kiali's graph asks Prometheus for
    /// `rate(...)` over the graph's duration, and `rate` needs two samples that differ.
    #[tokio::test(start_paused = true)]
    async fn polling_with_traffic_sees_the_edge_at_a_15s_scrape() {
        let mesh = FakeMesh {
            started: tokio::time::Instant::now(),
            counter: std::cell::Cell::new(0),
            samples: std::cell::RefCell::new(Vec::new()),
        };
        let graph = graph_with_traffic(
            "Kiali to show traffic into v2",
            &kiali_limit(),
            || async { mesh.send() },
            || async { Ok(mesh.graph()) },
            has_edge_into_v2,
        )
        .await
        .unwrap();
        has_edge_into_v2(&graph).unwrap();
        assert!(
            mesh.started.elapsed().as_secs() <= 31,
            "two scrapes are enough"
        );

        let burst = FakeMesh {
            started: tokio::time::Instant::now(),
            counter: std::cell::Cell::new(31),
            samples: std::cell::RefCell::new(Vec::new()),
        };
        let err = graph_with_traffic(
            "Kiali to show traffic into v2",
            &kiali_limit(),
            || async {},
            || async { Ok(burst.graph()) },
            has_edge_into_v2,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no traffic into v2"), "{err}");
    }
}
