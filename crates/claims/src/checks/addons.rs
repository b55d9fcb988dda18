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
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::retry::{Convergence, eventually};

/// The graph request of the claims: the workshop's versioned-app graph of `namespace` over
/// `window` (the time since the scenario's first request: [`graph_window`]), no service nodes,
/// with the appenders that keep idle "unknown" sources (`deadNode`) and add `isMTLS`
/// (`securityPolicy`), and no cache.
pub fn graph_path(namespace: &str, window: Duration) -> String {
    format!(
        "/kiali/api/namespaces/graph?namespaces={namespace}&graphType=versionedApp&duration={}s\
         &injectServiceNodes=false&appenders=deadNode,securityPolicy&refreshInterval=0",
        graph_window(window)
    )
}

/// The graph's `duration` in whole seconds for a scenario whose first request was `since`
/// ago: the time since then, rounded up, at least 1 s. Kiali reads the parameter with
/// Prometheus's `model.ParseDuration` (kiali/kiali v2.29.0 `graph/options.go`: `duration,
/// durationErr = model.ParseDuration(durationString)`, "Invalid duration" otherwise), whose
/// grammar takes whole numbers of units only (prometheus/common `model/time.go`: `durationRE`
/// `^(([0-9]+)y)?…(([0-9]+)s)?(([0-9]+)ms)?$`), and puts it into every traffic query as
/// `[<int seconds>s]` (v2.29.0 `graph/telemetry/istio/istio.go`: `int(duration.Seconds())`), so
/// whole seconds are what reaches Prometheus. Rates over this window see only samples scraped
/// since the scenario began: an earlier scenario's edges (C21's 403s from service-b, a reused
/// cluster's traffic) cannot decide this one's verdict. The window grows with every poll, so
/// the two scrapes `rate()` needs fit in it as soon as they exist.
pub fn graph_window(since: Duration) -> u64 {
    let whole = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    whole.max(1)
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

/// The uid of the dashboard with exactly this title in Grafana's `/api/search` answer (a JSON
/// list of hits with `title`, `type` and `uid`: Grafana docs, "Folder/Dashboard Search HTTP
/// API", https://grafana.com/docs/grafana/latest/developers/http_api/folder_dashboard_search/),
/// `None` when there is none. The workshop's dashboard has no fixed uid (istio/istio 1.29.6
/// `samples/addons/grafana.yaml`, ConfigMap `istio-services-grafana-dashboards`,
/// `istio-workload-dashboard.json` sets none), so Grafana generates one: the search is the way
/// to it.
pub fn grafana_dashboard_uid(search_body: &str, title: &str) -> Result<Option<String>, String> {
    let hits: Vec<Value> = serde_json::from_str(search_body)
        .map_err(|e| format!("Grafana's search answer is not a JSON list ({e})"))?;
    let Some(hit) = hits.iter().find(|h| {
        h.get("title").and_then(Value::as_str) == Some(title)
            && h.get("type").and_then(Value::as_str) != Some("dash-folder")
    }) else {
        return Ok(None);
    };
    let uid = hit
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| {
            !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .ok_or_else(|| format!("Grafana's search hit for {title:?} has no usable uid: {hit}"))?;
    Ok(Some(uid.to_string()))
}

/// Grafana's dashboard by uid: `GET /api/dashboards/uid/<uid>` answers `{"dashboard": {…},
/// "meta": {…}}` (Grafana docs, "Dashboard HTTP API", "Get dashboard by uid",
/// https://grafana.com/docs/grafana/latest/developers/http_api/dashboard/).
pub fn grafana_dashboard_path(uid: &str) -> String {
    format!("/api/dashboards/uid/{uid}")
}

/// The dashboard in a `/api/dashboards/uid/<uid>` answer has a row titled `row` holding a
/// panel titled `panel` — where the workshop sends the reader (row "Outbound Services", panel
/// "Outgoing Success Rate (non-5xx responses) By Destination" of the Istio Workload Dashboard:
/// istio/istio 1.29.6 `samples/addons/grafana.yaml`, `istio-workload-dashboard.json`, row id
/// 91 and panel id 71). Grafana's dashboard JSON keeps an expanded row's panels after it in
/// the top-level `panels` list (the row's own `panels` is empty, as in that file) and a
/// collapsed row's inside its `panels`; both are read. The error names what is missing.
pub fn grafana_row_has_panel(dashboard_body: &str, row: &str, panel: &str) -> Result<(), String> {
    let answer: Value = serde_json::from_str(dashboard_body)
        .map_err(|e| format!("Grafana's dashboard answer is not JSON ({e})"))?;
    let panels = answer
        .get("dashboard")
        .and_then(|d| d.get("panels"))
        .and_then(Value::as_array)
        .ok_or_else(|| "Grafana's dashboard answer has no dashboard.panels list".to_string())?;
    let title = |p: &Value| p.get("title").and_then(Value::as_str).map(str::to_string);
    let is_row = |p: &Value| p.get("type").and_then(Value::as_str) == Some("row");
    // (row title, panel titles under it), in order.
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for p in panels {
        if is_row(p) {
            let nested = p
                .get("panels")
                .and_then(Value::as_array)
                .map(|ps| ps.iter().filter_map(title).collect())
                .unwrap_or_default();
            rows.push((title(p).unwrap_or_default(), nested));
        } else if let (Some((_, under)), Some(t)) = (rows.last_mut(), title(p)) {
            under.push(t);
        }
    }
    let Some((_, under)) = rows.iter().find(|(t, _)| t == row) else {
        let names: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
        return Err(format!(
            "the dashboard has no row titled {row:?} (its rows: {names:?})"
        ));
    };
    if under.iter().any(|t| t == panel) {
        Ok(())
    } else {
        Err(format!(
            "the dashboard's row {row:?} has no panel titled {panel:?} (its panels: {under:?})"
        ))
    }
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
    /// Every edge as a line, for the reports: `service-a v1 → service-c v2: 0.50 requests/s
    /// with 60.0% errors, 100% mTLS` (a node without an app reads as its type).
    pub fn describe_edges(&self) -> String {
        let name = |id: &str| {
            self.elements
                .nodes
                .iter()
                .find(|n| n.data.id == id)
                .map_or_else(
                    || id.to_string(),
                    |n| match (&n.data.app, &n.data.version) {
                        (Some(app), Some(v)) if !v.is_empty() => format!("{app} {v}"),
                        (Some(app), _) => app.clone(),
                        _ => n.data.node_type.clone(),
                    },
                )
        };
        let mut lines: Vec<String> = self
            .elements
            .edges
            .iter()
            .map(|e| {
                let (rps, err) = http_rates(&e.data);
                format!(
                    "{} → {}: {rps:.2} requests/s with {err:.1}% errors, {}% mTLS",
                    name(&e.data.source),
                    name(&e.data.target),
                    mtls_percent(&e.data)
                )
            })
            .collect();
        lines.sort();
        if lines.is_empty() {
            "no edges".into()
        } else {
            lines.join("\n")
        }
    }

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

/// The workload whose calls the workshop watches in Kiali: service-a (label `version: v1`,
/// manifests/services-a.yaml) calling service-c v1 and v2 for every request it serves.
pub const WORKSHOP_SOURCE: (&str, &str) = ("service-a", "v1");

/// C14: in the versioned-app graph of `namespace`, service-a v1's HTTP edge into service-c
/// `version` carries traffic and has errors (`failing`) or none. Only edges whose source is
/// service-a v1 count — the workshop's traffic; another source's edge (service-b's denied
/// calls in C21, say) says nothing about what service-a sees.
pub fn service_c_version_health(
    g: &KialiGraph,
    namespace: &str,
    version: &str,
    failing: bool,
) -> Result<(), String> {
    let (app, source_version) = WORKSHOP_SOURCE;
    let sources = g.app_nodes(namespace, app, Some(source_version));
    if sources.is_empty() {
        return Err(format!("the graph has no node for {app} {source_version}"));
    }
    let targets = g.app_nodes(namespace, "service-c", Some(version));
    if targets.is_empty() {
        return Err(format!("the graph has no node for service-c {version}"));
    }
    let rates: Vec<(f64, f64)> = g
        .edges_into(&targets)
        .into_iter()
        .filter(|e| sources.contains(&e.source.as_str()))
        .map(http_rates)
        .filter(|(rps, _)| *rps > 0.0)
        .collect();
    if rates.is_empty() {
        return Err(format!(
            "no HTTP traffic from {app} {source_version} into service-c {version} in the graph"
        ));
    }
    let holds = if failing {
        rates.iter().all(|(_, err)| *err > 0.0)
    } else {
        rates.iter().all(|(_, err)| *err == 0.0)
    };
    if holds {
        Ok(())
    } else {
        let edges: Vec<String> = rates
            .iter()
            .map(|(rps, err)| format!("{rps:.2} requests/s with {err:.0}% errors"))
            .collect();
        Err(format!(
            "edges from {app} {source_version} into service-c {version}: {}",
            edges.join("; ")
        ))
    }
}

/// C22: in the versioned-app graph of `namespace`, the edge from Kiali's `unknown` node (the
/// legacy client, outside the mesh) into service-a carries no mutual TLS, and — the positive
/// control — service-a v1's edge to service-b, which each legacy call makes through
/// service-a's sidecar, is 100 % mutual TLS. Kiali's `securityPolicy` appender sets `isMTLS`
/// only when the mTLS rate is above 0 (kiali/kiali v2.29.0
/// `graph/telemetry/istio/appender/security_policy.go`: `if mtls > 0 { … = mtls / (mtls +
/// other) * 100 }`) and writes it with `%.0f` (`graph/config/common/common.go`,
/// `addEdgeTelemetry`), so an appender that reported nothing at all would make every edge look
/// plaintext; the control proves it reported.
pub fn legacy_edge_plaintext(g: &KialiGraph, namespace: &str) -> Result<(), String> {
    let unknown = g.unknown_nodes();
    let service_a = g.app_nodes(namespace, "service-a", None);
    let legacy: Vec<&Edge> = g
        .edges_into(&service_a)
        .into_iter()
        .filter(|e| unknown.contains(&e.source.as_str()))
        .collect();
    if legacy.is_empty() {
        return Err("the graph has no edge from unknown to service-a".into());
    }
    if let Some(e) = legacy.iter().find(|e| !is_plaintext(e)) {
        return Err(format!(
            "the edge from unknown to service-a has isMTLS {:?}",
            e.is_mtls
        ));
    }
    let (app, version) = WORKSHOP_SOURCE;
    let sources = g.app_nodes(namespace, app, Some(version));
    let service_b = g.app_nodes(namespace, "service-b", None);
    let control: Vec<&Edge> = g
        .edges_into(&service_b)
        .into_iter()
        .filter(|e| sources.contains(&e.source.as_str()))
        .collect();
    if control.is_empty() {
        return Err(format!(
            "the graph has no edge from {app} {version} to service-b, so it cannot show that \
             Kiali reported mutual TLS at all"
        ));
    }
    match control.iter().find(|e| mtls_percent(e) < 100.0) {
        Some(e) => Err(format!(
            "the edge from {app} {version} to service-b has isMTLS {:?}, not 100: Kiali's \
             security data cannot be trusted to tell the legacy edge apart",
            e.is_mtls
        )),
        None => Ok(()),
    }
}

/// An edge's mTLS share in percent (0 when absent).
pub fn mtls_percent(edge: &Edge) -> f64 {
    number(edge.is_mtls.as_ref())
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
        let body = r#"[{"uid":"a1B-2_c","title":"Istio Workload Dashboard","type":"dash-db"},{"uid":"x","title":"Istio Mesh Dashboard","type":"dash-db"}]"#;
        assert_eq!(
            grafana_dashboard_uid(body, "Istio Workload Dashboard").unwrap(),
            Some("a1B-2_c".to_string())
        );
        assert_eq!(
            grafana_dashboard_uid(body, "Istio Service Dashboard").unwrap(),
            None
        );
        assert!(grafana_dashboard_uid("{}", "x").is_err());
        // A uid that could not be put into a path as it is: a clear error, not a wrong URL.
        let odd = r#"[{"uid":"a/../b","title":"T","type":"dash-db"}]"#;
        assert!(grafana_dashboard_uid(odd, "T").is_err());
        assert_eq!(
            grafana_dashboard_path("a1B-2_c"),
            "/api/dashboards/uid/a1B-2_c"
        );
    }

    /// The Istio Workload Dashboard as `/api/dashboards/uid/<uid>` serves it: the panel list of
    /// istio/istio 1.29.6 `samples/addons/grafana.yaml` (ConfigMap
    /// `istio-services-grafana-dashboards`, `istio-workload-dashboard.json`: rows "General",
    /// "Inbound Workloads", "Outbound Services", expanded, each followed by its panels; ids and
    /// types as there; targets and field configs left out), inside Grafana's `{"dashboard",
    /// "meta"}` answer.
    fn workload_dashboard(outgoing_success_title: &str) -> String {
        let panels = [
            (95, "row", "General"),
            (12, "stat", "Incoming Request Volume"),
            (14, "stat", "Incoming Success Rate (non-5xx responses)"),
            (87, "timeseries", "Request Duration"),
            (93, "row", "Inbound Workloads"),
            (
                25,
                "timeseries",
                "Incoming Requests By Source And Response Code",
            ),
            (
                26,
                "timeseries",
                "Incoming Success Rate (non-5xx responses) By Source",
            ),
            (27, "timeseries", "Incoming Request Duration By Source"),
            (91, "row", "Outbound Services"),
            (
                70,
                "timeseries",
                "Outgoing Requests By Destination And Response Code",
            ),
            (71, "timeseries", outgoing_success_title),
            (72, "timeseries", "Outgoing Request Duration By Destination"),
            (76, "timeseries", "Bytes Sent on Outgoing TCP Connection"),
        ];
        let panels: Vec<Value> = panels
            .iter()
            .map(|(id, kind, title)| {
                let mut p = serde_json::json!({"id": id, "type": kind, "title": title,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": id}});
                if *kind == "row" {
                    p["collapsed"] = false.into();
                    p["panels"] = serde_json::json!([]);
                }
                p
            })
            .collect();
        serde_json::json!({
            "dashboard": {"editable": true, "panels": panels, "schemaVersion": 38,
                "title": "Istio Workload Dashboard", "uid": "a1B-2_c", "version": 1},
            "meta": {"type": "db", "slug": "istio-workload-dashboard", "provisioned": true}
        })
        .to_string()
    }

    const OUTBOUND: &str = "Outbound Services";
    const OUTGOING_SUCCESS: &str = "Outgoing Success Rate (non-5xx responses) By Destination";

    #[test]
    fn c13_grafana_finds_the_workshops_row_and_panel() {
        grafana_row_has_panel(
            &workload_dashboard(OUTGOING_SUCCESS),
            OUTBOUND,
            OUTGOING_SUCCESS,
        )
        .unwrap();
    }

    #[test]
    fn c13_negative_grafana_panel_renamed_fails() {
        let renamed = workload_dashboard("Outgoing Success Rate By Destination");
        let err = grafana_row_has_panel(&renamed, OUTBOUND, OUTGOING_SUCCESS).unwrap_err();
        assert!(
            err.contains(OUTGOING_SUCCESS) && err.contains(OUTBOUND),
            "{err}"
        );
        // The panel under another row is not the workshop's either.
        let err = grafana_row_has_panel(
            &workload_dashboard(OUTGOING_SUCCESS),
            "Inbound Workloads",
            OUTGOING_SUCCESS,
        )
        .unwrap_err();
        assert!(err.contains("Inbound Workloads"), "{err}");
        let no_row = workload_dashboard(OUTGOING_SUCCESS).replace(OUTBOUND, "Outbound");
        let err = grafana_row_has_panel(&no_row, OUTBOUND, OUTGOING_SUCCESS).unwrap_err();
        assert!(err.contains("no row titled"), "{err}");
        assert!(grafana_row_has_panel("[]", OUTBOUND, OUTGOING_SUCCESS).is_err());
    }

    #[test]
    fn c13_grafana_reads_a_collapsed_rows_nested_panels() {
        let body = serde_json::json!({"dashboard": {"panels": [
            {"type": "row", "title": OUTBOUND, "collapsed": true,
             "panels": [{"type": "timeseries", "title": OUTGOING_SUCCESS}]},
            {"type": "row", "title": "Other", "collapsed": true, "panels": []}
        ]}})
        .to_string();
        grafana_row_has_panel(&body, OUTBOUND, OUTGOING_SUCCESS).unwrap();
        assert!(grafana_row_has_panel(&body, "Other", OUTGOING_SUCCESS).is_err());
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
        let p = graph_path("istioinaction", Duration::from_millis(47_200));
        assert!(p.starts_with("/kiali/api/namespaces/graph?namespaces=istioinaction&"));
        for part in [
            "graphType=versionedApp",
            "duration=48s",
            "injectServiceNodes=false",
            "appenders=deadNode,securityPolicy",
            "refreshInterval=0",
        ] {
            assert!(p.contains(part), "{p} lacks {part}");
        }
    }

    #[test]
    fn the_graph_window_is_the_scenarios_time_in_whole_seconds() {
        assert_eq!(
            graph_window(Duration::ZERO),
            1,
            "never 0s: [0s] selects nothing"
        );
        assert_eq!(graph_window(Duration::from_millis(300)), 1);
        assert_eq!(graph_window(Duration::from_secs(30)), 30);
        assert_eq!(graph_window(Duration::from_millis(30_001)), 31);
        assert_eq!(graph_window(Duration::from_secs(600)), 600);
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

    // C14 and C22 cannot run on the sandbox (no Kiali): their negative cases live here, at the
    // level of the check, on graphs shaped from kiali/kiali v2.29.0
    // `graph/config/common/common.go` (`Config{timestamp, duration, graphType, elements}`,
    // `NodeData{id, nodeType, cluster, namespace, workload, app, version, healthData, isRoot}`,
    // `EdgeData{id, source, target, isMTLS, responseTime, throughput, traffic}`, traffic
    // `{protocol, rates, responses}` with rates as strings present only above 0 and
    // `httpPercentErr` = errors (`http4xx` + `http5xx`, `IsErr` rates of `graph/protocol.go`)
    // over `http`, `isMTLS` as `%.0f` only above 0) and `graph/types.go` (the `unknown` node).

    /// Node ids of the fixture: opaque strings, as Kiali's hashed ids are to the checks.
    const A: &str = "a9c1e3a5c7e9a1c3e5a7c9e1a3c5e7a9";
    const B: &str = "b2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2";
    const C1: &str = "c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4";
    const C2: &str = "d6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6";
    const UNKNOWN: &str = "e8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8";

    /// One edge: source, target, HTTP rps, 5xx rps, 4xx rps, isMTLS (None: absent).
    type FixtureEdge = (
        &'static str,
        &'static str,
        f64,
        f64,
        f64,
        Option<&'static str>,
    );

    /// A versioned-app graph of istioinaction with the workshop's workloads and these edges.
    fn kiali_graph(edges: &[FixtureEdge]) -> KialiGraph {
        let node = |id: &str, workload: &str, app: &str, version: &str| {
            serde_json::json!({"data": {"id": id, "nodeType": "app", "cluster": "Kubernetes",
                "namespace": "istioinaction", "workload": workload, "app": app,
                "version": version, "healthData": null}})
        };
        let rate = |v: f64| format!("{v:.2}");
        let edges: Vec<Value> = edges
            .iter()
            .enumerate()
            .map(|(i, (source, target, http, e5, e4, mtls))| {
                let mut rates = serde_json::Map::new();
                rates.insert("http".into(), rate(*http).into());
                if *e4 > 0.0 {
                    rates.insert("http4xx".into(), rate(*e4).into());
                }
                if *e5 > 0.0 {
                    rates.insert("http5xx".into(), rate(*e5).into());
                }
                if e4 + e5 > 0.0 {
                    rates.insert(
                        "httpPercentErr".into(),
                        format!("{:.1}", (e4 + e5) / http * 100.0).into(),
                    );
                }
                let mut data = serde_json::json!({"id": format!("e{i}"), "source": source,
                    "target": target, "responseTime": "4", "throughput": "900",
                    "traffic": {"protocol": "http", "rates": rates}});
                if let Some(m) = mtls {
                    data["isMTLS"] = (*m).into();
                }
                serde_json::json!({"data": data})
            })
            .collect();
        let body = serde_json::json!({
            "timestamp": 1764579600, "duration": 48, "graphType": "versionedApp",
            "elements": {
                "nodes": [
                    node(A, "service-a", "service-a", "v1"),
                    node(B, "service-b", "service-b", "v1"),
                    node(C1, "service-c-v1", "service-c", "v1"),
                    node(C2, "service-c-v2", "service-c", "v2"),
                    {"data": {"id": UNKNOWN, "nodeType": "unknown", "cluster": "unknown",
                        "namespace": "unknown", "workload": "unknown", "app": "unknown",
                        "version": "unknown", "healthData": null, "isRoot": true}}
                ],
                "edges": edges
            }
        });
        KialiGraph::parse(&body.to_string()).unwrap()
    }

    const NS: &str = "istioinaction";

    /// What the workshop's traffic gives: v2 fails every request, v1 none, all over mTLS.
    fn c14_graph_as_claimed() -> KialiGraph {
        kiali_graph(&[
            (A, B, 1.0, 0.0, 0.0, Some("100")),
            (A, C1, 0.52, 0.0, 0.0, Some("100")),
            (A, C2, 0.48, 0.48, 0.0, Some("100")),
        ])
    }

    #[test]
    fn c14_control_v2_failing_and_v1_succeeding_pass() {
        let g = c14_graph_as_claimed();
        service_c_version_health(&g, NS, "v2", true).unwrap();
        service_c_version_health(&g, NS, "v1", false).unwrap();
    }

    #[test]
    fn c14_negative_v2_not_failing_fails() {
        let g = kiali_graph(&[
            (A, B, 1.0, 0.0, 0.0, Some("100")),
            (A, C1, 0.52, 0.0, 0.0, Some("100")),
            (A, C2, 0.48, 0.0, 0.0, Some("100")),
        ]);
        let err = service_c_version_health(&g, NS, "v2", true).unwrap_err();
        assert!(err.contains("service-c v2"), "{err}");
        // And v1 failing is not "all succeeding".
        let g = kiali_graph(&[
            (A, C1, 0.52, 0.10, 0.0, Some("100")),
            (A, C2, 0.48, 0.48, 0.0, Some("100")),
        ]);
        assert!(service_c_version_health(&g, NS, "v1", false).is_err());
    }

    #[test]
    fn c14_negative_no_traffic_into_the_version_fails() {
        let g = kiali_graph(&[(A, C1, 0.52, 0.0, 0.0, Some("100"))]);
        let err = service_c_version_health(&g, NS, "v2", true).unwrap_err();
        assert!(err.contains("no HTTP traffic"), "{err}");
    }

    /// F4: another source's edge (service-b's calls to service-c v1 denied with 403 in C21)
    /// neither spoils "v1 all succeeding" nor makes "v2 failing" true.
    #[test]
    fn c14_judges_only_service_a_v1s_edges() {
        let g = kiali_graph(&[
            (A, C1, 0.52, 0.0, 0.0, Some("100")),
            (A, C2, 0.48, 0.48, 0.0, Some("100")),
            (B, C1, 0.20, 0.0, 0.20, Some("100")),
        ]);
        service_c_version_health(&g, NS, "v1", false).unwrap();
        let g = kiali_graph(&[
            (A, C1, 0.52, 0.0, 0.0, Some("100")),
            (A, C2, 0.48, 0.0, 0.0, Some("100")),
            (B, C2, 0.20, 0.20, 0.0, Some("100")),
        ]);
        assert!(service_c_version_health(&g, NS, "v2", true).is_err());
        // Without service-a's edge there is nothing to judge.
        let g = kiali_graph(&[(B, C2, 0.20, 0.20, 0.0, Some("100"))]);
        assert!(service_c_version_health(&g, NS, "v2", true).is_err());
    }

    /// What C22's scenario gives: the legacy client's plaintext call into service-a, and
    /// service-a's own mTLS calls to service-b and service-c.
    #[test]
    fn c22_control_plaintext_legacy_edge_with_mtls_reported_passes() {
        let g = kiali_graph(&[
            (UNKNOWN, A, 0.10, 0.05, 0.0, None),
            (A, B, 0.10, 0.0, 0.0, Some("100")),
            (A, C1, 0.05, 0.0, 0.0, Some("100")),
            (A, C2, 0.05, 0.05, 0.0, Some("100")),
        ]);
        legacy_edge_plaintext(&g, NS).unwrap();
    }

    #[test]
    fn the_edges_read_as_a_reader_sees_them_in_the_graph() {
        let g = kiali_graph(&[
            (UNKNOWN, A, 0.10, 0.05, 0.0, None),
            (A, C2, 0.05, 0.05, 0.0, Some("100")),
        ]);
        let text = g.describe_edges();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines.iter().any(
                |l| l.starts_with("service-a v1 → service-c v2: 0.05 requests/s")
                    && l.ends_with("100% mTLS")
            ),
            "{text}"
        );
        assert!(lines.iter().any(|l| l.ends_with("0% mTLS")), "{text}");
        assert_eq!(kiali_graph(&[]).describe_edges(), "no edges");
    }

    #[test]
    fn c22_negative_legacy_edge_mtls_fails() {
        let g = kiali_graph(&[
            (UNKNOWN, A, 0.10, 0.05, 0.0, Some("100")),
            (A, B, 0.10, 0.0, 0.0, Some("100")),
        ]);
        let err = legacy_edge_plaintext(&g, NS).unwrap_err();
        assert!(err.contains("unknown to service-a"), "{err}");
        // A partly mutual-TLS edge is not plaintext either.
        let g = kiali_graph(&[
            (UNKNOWN, A, 0.10, 0.0, 0.0, Some("40")),
            (A, B, 0.10, 0.0, 0.0, Some("100")),
        ]);
        assert!(legacy_edge_plaintext(&g, NS).is_err());
    }

    /// F8: an appender that reported nothing at all (no `isMTLS` anywhere) leaves the legacy
    /// edge looking plaintext; the positive control on service-a → service-b fails it.
    #[test]
    fn c22_negative_no_security_data_fails() {
        let g = kiali_graph(&[
            (UNKNOWN, A, 0.10, 0.05, 0.0, None),
            (A, B, 0.10, 0.0, 0.0, None),
            (A, C1, 0.05, 0.0, 0.0, None),
        ]);
        let err = legacy_edge_plaintext(&g, NS).unwrap_err();
        assert!(
            err.contains("service-b") && err.contains("not 100"),
            "{err}"
        );
        // No service-b edge at all: nothing proves the appender ran.
        let g = kiali_graph(&[(UNKNOWN, A, 0.10, 0.05, 0.0, None)]);
        let err = legacy_edge_plaintext(&g, NS).unwrap_err();
        assert!(
            err.contains("no edge from service-a v1 to service-b"),
            "{err}"
        );
        // No legacy edge: nothing to judge.
        let g = kiali_graph(&[(A, B, 0.10, 0.0, 0.0, Some("100"))]);
        assert!(legacy_edge_plaintext(&g, NS).is_err());
    }
}
