//! Steps about what the mesh tells: application and sidecar logs, sidecar metrics, and what
//! Prometheus, Grafana and Kiali show.

use cucumber::{then, when};
use happy_istio::checks::addons::{
    KialiGraph, grafana_dashboard_path, grafana_dashboard_uid, grafana_row_has_panel, graph_path,
    graph_with_traffic, legacy_edge_plaintext, service_c_version_health,
};
use happy_istio::checks::{logs, metrics};
use happy_istio::evidence;
use happy_istio::probes::{ISTIO_ACCESS_LOG_FLUSH, Sample, parse_access_log_line};
use happy_istio::retry::{Convergence, Decided, eventually, eventually_or_decided};

use std::collections::BTreeMap;

use super::parameters::{Name, Names};
use super::readings::Before;
use super::world::{
    Env, Failure, HappyWorld, ISTIO_NAMESPACE, NAMESPACE, SIDECAR, Step, app_container, fail,
    pod_name,
};

/// The addons' Services in istio-system and their ports: istio/istio `samples/addons/`
/// (1.28.0 and 1.31.0-rc.0): `prometheus.yaml` Service `prometheus` port 9090 (targetPort
/// 9090); `grafana.yaml` Service `grafana` port 3000 (targetPort 3000), anonymous access with
/// role Admin (`GF_AUTH_ANONYMOUS_ENABLED`, `GF_AUTH_ANONYMOUS_ORG_ROLE`); `kiali.yaml` Service
/// `kiali` port 20001 (no targetPort: the same), `auth.strategy: anonymous`, `web_root: /kiali`.
const PROMETHEUS_SERVICE: (&str, u16) = ("prometheus", 9090);
/// See [`PROMETHEUS_SERVICE`].
const GRAFANA_SERVICE: (&str, u16) = ("grafana", 3000);
/// See [`PROMETHEUS_SERVICE`].
const KIALI_SERVICE: (&str, u16) = ("kiali", 20001);

/// The logs of one container of every pod of a deployment, concatenated.
async fn deployment_logs(
    env: &Env,
    deployment: &str,
    container: Option<&str>,
) -> Result<String, Failure> {
    let pods = env.cluster.deployment_pods(NAMESPACE, deployment).await?;
    if pods.is_empty() {
        fail!(
            environment,
            "deployment {NAMESPACE}/{deployment} has no pods"
        );
    }
    let mut all = String::new();
    for pod in &pods {
        let container = match container {
            Some(c) => c.to_string(),
            None => app_container(pod)?,
        };
        all.push_str(
            &env.cluster
                .container_logs(NAMESPACE, &pod_name(pod), &container)
                .await?,
        );
    }
    Ok(all)
}

/// Slower convergence for telemetry that is scraped or flushed periodically: the metrics
/// limit, and `consecutive` readings in a row that each show what is claimed (as every other
/// verdict needs: [`happy_istio::retry::eventually`]), so no single reading decides.
fn telemetry_policy(env: &Env) -> Convergence {
    Convergence {
        limit: env.timeouts.metrics,
        ..env.convergence()
    }
}

#[when(expr = "I read the logs of {names}")]
async fn read_logs(world: &mut HappyWorld, deployments: Names) -> Step {
    let env = world.env();
    for deployment in &deployments.0 {
        let deployment = deployment.as_str();
        let log = deployment_logs(&env, deployment, None).await?;
        world.logs.insert(deployment.to_string(), log);
    }
    Ok(())
}

#[then("every log shows the requests its service handled")]
async fn logs_show_requests(world: &mut HappyWorld) -> Step {
    if world.logs.is_empty() {
        fail!("no logs were read");
    }
    for (deployment, log) in &world.logs {
        if logs::handled_requests(log) == 0 {
            fail!(
                "{deployment}'s log shows no {:?} line, so it cannot speak for the requests it handled",
                logs::HANDLED_REQUEST
            );
        }
    }
    Ok(())
}

#[then("no log line mentions an error")]
async fn no_error_lines(world: &mut HappyWorld) -> Step {
    for (deployment, log) in &world.logs {
        let errors = logs::error_lines(log);
        evidence::record(
            &format!("kubectl logs deploy/{deployment} | grep -i error"),
            &if errors.is_empty() {
                format!(
                    "(nothing: {} lines read, {} of them {:?})",
                    log.lines().count(),
                    logs::handled_requests(log),
                    logs::HANDLED_REQUEST
                )
            } else {
                errors
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        );
    }
    for (deployment, log) in &world.logs {
        if let Some(line) = logs::error_lines(log).first() {
            fail!("{deployment}'s log mentions an error: {line}");
        }
    }
    Ok(())
}

#[when(expr = "I read the logs of {name}'s istio-proxy")]
async fn read_sidecar_logs(world: &mut HappyWorld, deployment: Name) -> Step {
    let deployment = deployment.0;
    let log = deployment_logs(&world.env(), &deployment, Some(SIDECAR)).await?;
    world.logs.insert(format!("{deployment}/{SIDECAR}"), log);
    Ok(())
}

/// The istio-proxy log lines of `deployment`'s pods written after `before` was read: per pod,
/// the lines past the count then (all of a pod that is new or whose log restarted).
async fn log_lines_since(env: &Env, deployment: &str, before: &Before) -> Result<String, Failure> {
    let pods = env.cluster.deployment_pods(NAMESPACE, deployment).await?;
    if pods.is_empty() {
        fail!("deployment {NAMESPACE}/{deployment} has no pods");
    }
    let mut new = String::new();
    for pod in &pods {
        let name = pod_name(pod);
        let log = env
            .cluster
            .container_logs(NAMESPACE, &name, SIDECAR)
            .await?;
        let lines: Vec<&str> = log.lines().collect();
        let skip = match before.log_lines.get(&name) {
            Some(n) if *n <= lines.len() => *n,
            _ => 0,
        };
        for line in &lines[skip..] {
            new.push_str(line);
            new.push('\n');
        }
    }
    Ok(new)
}

#[then(expr = "an access log entry of {name}'s istio-proxy has response code {int}")]
async fn access_log_has(world: &mut HappyWorld, deployment: Name, code: u16) -> Step {
    let deployment = deployment.0;
    let env = world.env();
    let key = format!("{deployment}/{SIDECAR}");
    if !world.logs.contains_key(&key) {
        fail!(
            "{key}'s log was not read: a step \"I read the logs of {deployment}'s istio-proxy\" must come first"
        );
    }
    // Only the entries of this scenario's requests count: the lines after the reading taken
    // before them (an entry from an earlier scenario proves nothing about this one).
    let before = world.before_of(&deployment)?.clone();
    let (env_ref, deployment_ref, before_ref) = (&env, deployment.as_str(), &before);
    // Envoy writes its access log out every ISTIO_ACCESS_LOG_FLUSH: read again until the entry
    // shows. The requests ended before this step began, so from a flush interval later (and
    // the table's allowance for a busy proxy, HAPPY_TIMEOUT_PROPAGATION) their entries are
    // written or never will be: readings from then on decide either way, and a sidecar that
    // logs nothing (access logs turned off) fails in seconds, not at the telemetry limit.
    let decided = Decided {
        from: tokio::time::Instant::now() + ISTIO_ACCESS_LOG_FLUSH + env.timeouts.propagation,
        why: format!(
            "Envoy had flushed its access log (every {ISTIO_ACCESS_LOG_FLUSH:?} under Istio) {:?} after the requests",
            ISTIO_ACCESS_LOG_FLUSH + env.timeouts.propagation
        ),
    };
    // The last reading, for the evidence when no entry shows.
    let last_reading = std::sync::Mutex::new(String::new());
    let last_ref = &last_reading;
    let matched = eventually_or_decided(
        &format!(
            "an access-log entry with response code {code} in {key}, written since the requests"
        ),
        &telemetry_policy(&env),
        &decided,
        || async move {
            let log = log_lines_since(env_ref, deployment_ref, before_ref)
                .await
                .map_err(|e| e.message)?;
            let entries: Vec<_> = log
                .lines()
                .filter_map(|line| Some((line, parse_access_log_line(line)?)))
                .collect();
            if let Some((line, _)) = entries.iter().find(|(_, e)| e.response_code == Some(code)) {
                Ok(line.to_string())
            } else {
                if let Ok(mut last) = last_ref.lock() {
                    *last = log
                        .lines()
                        .rev()
                        .take(10)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n");
                }
                Err(format!(
                    "{} access-log entries since the requests, none with response code {code}",
                    entries.len()
                ))
            }
        },
    )
    .await;
    match &matched {
        Ok(line) => evidence::record(
            &format!("kubectl logs deploy/{deployment} -c {SIDECAR}: an entry with {code}"),
            line,
        ),
        Err(_) => evidence::record(
            &format!(
                "kubectl logs deploy/{deployment} -c {SIDECAR}: its last lines since the requests"
            ),
            &last_reading.lock().map(|l| l.clone()).unwrap_or_default(),
        ),
    }
    matched?;
    Ok(())
}

#[when(expr = "I read the metrics of {name}'s istio-proxy on port 15020")]
async fn read_sidecar_metrics(world: &mut HappyWorld, deployment: Name) -> Step {
    let deployment = deployment.0;
    world.metrics = world.env().sidecar_metrics(&deployment).await?;
    world.metrics_of = Some(deployment);
    Ok(())
}

#[then(expr = "istio_requests_total has a series with response_code {int}")]
async fn series_with_code(world: &mut HappyWorld, code: String) -> Step {
    let Some(deployment) = world.metrics_of.clone() else {
        fail!("no sidecar metrics were read");
    };
    // The scenario's requests, not the counters' history: the series must have grown since
    // the reading taken before the requests.
    let before = world.before_of(&deployment)?.metrics.clone();
    let counts = |samples: &[Sample]| -> Result<(), String> {
        let labels = [("response_code", code.as_str())];
        let grown = metrics::requests_growth(&before, samples, &labels);
        if grown <= 0.0 {
            let series = metrics::requests_matching(samples, &labels).len();
            return Err(format!(
                "{} has {series} series with response_code=\"{code}\", none grown since the requests were sent",
                metrics::REQUESTS_TOTAL
            ));
        }
        Ok(())
    };
    // A proxy counts a request when its stream completes, which can be just after the client
    // has its answer: read again until the counter shows, in `consecutive` readings in a row
    // (the reading the When step took is not one of them: no single reading decides). The
    // requests ended before this step began, and pilot-agent's :15020 serves Envoy's counters
    // as they are at each reading (as for the mirrored copies, `traffic.rs`), so readings from
    // HAPPY_TIMEOUT_PROPAGATION on decide either way: a proxy that counts nothing (metrics
    // turned off) fails in seconds, not at the assertion limit.
    let env = world.env();
    let decided = Decided {
        from: tokio::time::Instant::now() + env.timeouts.propagation,
        why: format!(
            "the requests had ended {:?} before",
            env.timeouts.propagation
        ),
    };
    let (env_ref, deployment_ref, counts_ref) = (&env, deployment.as_str(), &counts);
    let last_reading = std::sync::Mutex::new(Vec::new());
    let last_ref = &last_reading;
    let read = eventually_or_decided(
        &format!("{deployment}'s istio-proxy to count response_code {code}"),
        &env.convergence(),
        &decided,
        || async move {
            let samples = env_ref
                .sidecar_metrics(deployment_ref)
                .await
                .map_err(|e| e.message)?;
            if let Ok(mut last) = last_ref.lock() {
                last.clone_from(&samples);
            }
            counts_ref(&samples).map(|()| samples)
        },
    )
    .await;
    let samples = match &read {
        Ok(samples) => samples.clone(),
        Err(_) => last_reading.lock().map(|l| l.clone()).unwrap_or_default(),
    };
    let lines: Vec<String> =
        metrics::requests_matching(&samples, &[("response_code", code.as_str())])
            .into_iter()
            .map(|sample| {
                let earlier = before
                    .iter()
                    .find(|b| b.name == sample.name && b.labels == sample.labels)
                    .map_or(0.0, |b| b.value);
                format!("{sample}\n  (before the requests: {earlier})")
            })
            .collect();
    evidence::record(
        &format!(
            "{}'s istio-proxy on :15020/stats/prometheus, {} with response_code=\"{code}\"",
            deployment,
            metrics::REQUESTS_TOTAL
        ),
        &if lines.is_empty() {
            format!(
                "no {} series with response_code=\"{code}\"",
                metrics::REQUESTS_TOTAL
            )
        } else {
            lines.join("\n")
        },
    );
    world.metrics = read?;
    Ok(())
}

/// Ask Prometheus (the addon) what `source`'s sidecar sent, as the workshop's dashboards sum it:
/// `sum by (destination_service_name, response_code) (istio_requests_total{reporter="source",…})`.
/// The query [`prometheus_requests`] asks Prometheus.
fn prometheus_requests_query(source: &str) -> String {
    format!(
        "sum by (destination_service_name, response_code) ({}{{reporter=\"source\",source_workload=\"{source}\",source_workload_namespace=\"{NAMESPACE}\"}})",
        metrics::REQUESTS_TOTAL
    )
}

async fn prometheus_requests(
    env: &Env,
    source: &str,
) -> Result<BTreeMap<(String, String), f64>, String> {
    let query = prometheus_requests_query(source);
    let path = format!("/api/v1/query?query={}", urlencode(&query));
    let response = env
        .cluster
        .http_get_service(
            ISTIO_NAMESPACE,
            PROMETHEUS_SERVICE.0,
            PROMETHEUS_SERVICE.1,
            &path,
        )
        .await
        .map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!(
            "Prometheus answered {}: {}",
            response.status,
            response.body.trim()
        ));
    }
    let samples = metrics::parse_query_vector(&response.body, metrics::REQUESTS_TOTAL)?;
    let mut counts = BTreeMap::new();
    for s in samples {
        let destination = s
            .labels
            .get("destination_service_name")
            .cloned()
            .unwrap_or_default();
        let code = s.labels.get("response_code").cloned().unwrap_or_default();
        *counts.entry((destination, code)).or_insert(0.0) += s.value;
    }
    Ok(counts)
}

/// Judge Prometheus's view of the requests of this scenario: poll until Prometheus has scraped
/// past the baseline for every key and then them all (its counters grew by at least the batch,
/// for every destination: each request through the gateway makes service-a call service-b and
/// service-c once), then the success rate of that growth. The baseline is the sidecar's own
/// reading taken before the batch — the same counters Prometheus scrapes from :15020, so the
/// two are comparable once Prometheus has scraped after it; before that, a value below the
/// baseline is Prometheus lagging, never a reset ([`metrics::growth_past_baseline`]).
pub(crate) async fn prometheus_rate_of_batch(
    what: &str,
    policy: &Convergence,
    baseline: &BTreeMap<(String, String), f64>,
    requests: usize,
    destinations: &[&str],
    read: impl AsyncFn() -> Result<BTreeMap<(String, String), f64>, String>,
) -> happy_istio::Result<BTreeMap<String, (f64, f64)>> {
    let read = &read;
    eventually(what, policy, || async move {
        let now = read().await?;
        let grown = metrics::growth_past_baseline(baseline, &now).map_err(|lagging| {
            let lagging: Vec<String> = lagging
                .iter()
                .map(|(destination, code)| format!("{destination} with {code}"))
                .collect();
            format!(
                "Prometheus has not yet scraped past the sidecar's reading before the batch \
                 (it scrapes periodically): below it for {}",
                lagging.join(", ")
            )
        })?;
        let rates = metrics::success_rates_of(&grown);
        for destination in destinations {
            let count = rates.get(*destination).map_or(0.0, |(_, n)| *n);
            if count < requests as f64 {
                return Err(format!(
                    "Prometheus counts {count} of the {requests} requests to {destination} so far (it scrapes periodically)"
                ));
            }
        }
        Ok(rates)
    })
    .await
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[then(expr = "Prometheus shows a success rate below 100% from {name} to {name}")]
async fn prometheus_success_rate_below(
    world: &mut HappyWorld,
    source: Name,
    destination: Name,
) -> Step {
    prometheus_success_rate(world, true, source.0, destination.0).await
}

#[then(expr = "Prometheus shows a success rate of 100% from {name} to {name}")]
async fn prometheus_success_rate_full(
    world: &mut HappyWorld,
    source: Name,
    destination: Name,
) -> Step {
    prometheus_success_rate(world, false, source.0, destination.0).await
}

/// The success rate Prometheus computes for the scenario's requests from `source` to
/// `destination`: below 100% when `below`, else exactly 100%.
async fn prometheus_success_rate(
    world: &mut HappyWorld,
    below: bool,
    source: String,
    destination: String,
) -> Step {
    let env = world.env();
    // The requests of this scenario, not an earlier one's: Prometheus's growth since the sidecar's
    // reading before the batch, once every request of the batch is scraped.
    let before = world.before_of(&source)?;
    let baseline = metrics::sent_by_destination(&before.metrics, &source);
    let requests = before.requests;
    let (env_ref, source_ref) = (&env, source.as_str());
    let rates = prometheus_rate_of_batch(
        &format!(
            "Prometheus to count the scenario's {requests} requests from {source} to {destination}"
        ),
        &telemetry_policy(&env),
        &baseline,
        requests,
        &[destination.as_str()],
        async || prometheus_requests(env_ref, source_ref).await,
    )
    .await?;
    evidence::record(
        &format!(
            "Prometheus: {} (growth since the scenario's requests)",
            prometheus_requests_query(&source)
        ),
        &rates
            .iter()
            .map(|(to, (rate, count))| {
                format!("{to}: {count} requests, {:.1}% successful", rate * 100.0)
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let Some((rate, count)) = rates.get(&destination).copied() else {
        let seen: Vec<String> = rates
            .iter()
            .map(|(to, (rate, count))| format!("{to}: {count} at {:.1}% success", rate * 100.0))
            .collect();
        fail!(
            "Prometheus has no requests from {source} to {destination}; it has {}",
            if seen.is_empty() {
                "none from it at all".to_string()
            } else {
                seen.join(", ")
            }
        );
    };
    let holds = if below { rate < 1.0 } else { rate >= 1.0 };
    if !holds {
        fail!(
            "the success rate from {source} to {destination} over the scenario's {count} requests is {:.1}%, not {}",
            rate * 100.0,
            if below { "below 100%" } else { "100%" }
        );
    }
    Ok(())
}

/// GET a path of Grafana's API; the body when it answers 200.
async fn grafana_get(env: &Env, path: &str) -> Result<String, String> {
    let r = env
        .cluster
        .http_get_service(ISTIO_NAMESPACE, GRAFANA_SERVICE.0, GRAFANA_SERVICE.1, path)
        .await
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("Grafana answered {} to {path}", r.status));
    }
    Ok(r.body)
}

#[then(expr = "Grafana has a dashboard titled {string}")]
async fn grafana_dashboard(world: &mut HappyWorld, title: String) -> Step {
    let env = world.env();
    let path = format!("/api/search?query={}", urlencode(&title));
    let (env_ref, path_ref, title_ref) = (&env, path.as_str(), title.as_str());
    let uid = eventually(
        &format!("Grafana to list the dashboard {title:?}"),
        &telemetry_policy(&env),
        || async move {
            let body = grafana_get(env_ref, path_ref).await?;
            grafana_dashboard_uid(&body, title_ref)?
                .ok_or_else(|| format!("no dashboard titled {title_ref:?} in {}", body.trim()))
        },
    )
    .await?;
    evidence::record(
        &format!("Grafana: {path}"),
        &format!("a dashboard titled {title:?}, uid {uid}"),
    );
    world.grafana_dashboard = Some((title, uid));
    Ok(())
}

/// The workshop's row and panel on the dashboard found by title: Grafana's
/// `/api/dashboards/uid/<uid>` (see [`grafana_row_has_panel`]).
#[then(expr = "its row {string} has the panel {string}")]
async fn grafana_row_panel(world: &mut HappyWorld, row: String, panel: String) -> Step {
    let Some((title, uid)) = world.grafana_dashboard.clone() else {
        fail!(
            "no Grafana dashboard was found: a step \"Grafana has a dashboard titled …\" must come first"
        );
    };
    let env = world.env();
    let path = grafana_dashboard_path(&uid);
    let (env_ref, path_ref, row_ref, panel_ref) =
        (&env, path.as_str(), row.as_str(), panel.as_str());
    // A provisioned dashboard does not change while Grafana runs: a wrong layout fails after
    // `consecutive` readings, an unreachable Grafana at the limit.
    let verdict = eventually(
        &format!("Grafana to serve the dashboard {title:?} (uid {uid})"),
        &telemetry_policy(&env),
        || async move {
            let body = grafana_get(env_ref, path_ref).await?;
            Ok(grafana_row_has_panel(&body, row_ref, panel_ref))
        },
    )
    .await?;
    evidence::record(
        &format!("Grafana: {path}"),
        &match &verdict {
            Ok(()) => format!("row {row:?} holds the panel {panel:?}"),
            Err(e) => e.clone(),
        },
    );
    verdict.map_err(|e| Failure::claim(format!("Grafana's dashboard {title:?}: {e}")))
}

/// Kiali's graph over the time since `began` (the scenario's first request; see
/// [`happy_istio::checks::addons::graph_window`]).
async fn fetch_graph(env: &Env, began: tokio::time::Instant) -> Result<KialiGraph, String> {
    let r = env
        .cluster
        .http_get_service(
            ISTIO_NAMESPACE,
            KIALI_SERVICE.0,
            KIALI_SERVICE.1,
            &graph_path(NAMESPACE, began.elapsed()),
        )
        .await
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("Kiali answered {}: {}", r.status, r.body.trim()));
    }
    KialiGraph::parse(&r.body)
}

/// Kiali's limit: long enough for two Prometheus scrapes with traffic and Kiali's queries.
/// A verdict needs `consecutive` graphs in a row that show it; Kiali merely answering (the
/// When step, a precondition) needs one.
fn kiali_policy(env: &Env, verdict: bool) -> Convergence {
    Convergence {
        limit: env.timeouts.kiali,
        ..if verdict {
            env.convergence()
        } else {
            env.once()
        }
    }
}

/// Poll the graph until `check` holds (`consecutive` times in a row for a verdict), repeating
/// the scenario's traffic before every fetch.
async fn poll_graph(
    world: &HappyWorld,
    what: &str,
    verdict: bool,
    check: impl Fn(&KialiGraph) -> Result<(), String>,
) -> Result<KialiGraph, Failure> {
    let env = world.env();
    let traffic = world.traffic.clone();
    let Some(began) = world.traffic_began else {
        fail!(
            "the scenario sent no traffic for Kiali to show: a step that sends it (\"requests \
             through the ingress gateway have …\", \"the legacy client has called …\") must come first"
        );
    };
    let (env_ref, traffic_ref) = (&env, &traffic);
    Ok(graph_with_traffic(
        what,
        &kiali_policy(&env, verdict),
        || async move {
            if let Some(t) = traffic_ref {
                t.send_once(env_ref).await;
            }
        },
        || fetch_graph(env_ref, began),
        check,
    )
    .await?)
}

#[when(expr = "I fetch Kiali's versioned-app graph of {name}")]
async fn kiali_graph(world: &mut HappyWorld, namespace: Name) -> Step {
    if namespace.0 != NAMESPACE {
        fail!(
            "the suite's Kiali checks read the workshop's namespace {NAMESPACE}, not {}",
            namespace.0
        );
    }
    // Kiali may still be starting or warming its caches: the first fetch is retried too.
    let graph = poll_graph(world, "Kiali to answer its graph", false, |_| Ok(())).await?;
    world.graph = Some(graph);
    Ok(())
}

/// Re-fetch Kiali's graph until `check` holds in `consecutive` graphs in a row: Kiali's rates
/// come from Prometheus, which scrapes periodically, and it shows only edges with a current
/// rate above 0, so the scenario's traffic keeps flowing meanwhile. The graph the When step
/// fetched is not one of them: no single graph decides.
async fn graph_eventually(
    world: &mut HappyWorld,
    what: &str,
    check: impl Fn(&KialiGraph) -> Result<(), String>,
) -> Step {
    let graph = poll_graph(world, what, true, check).await?;
    evidence::record(
        "Kiali's graph of istioinaction: the edges",
        &graph.describe_edges(),
    );
    world.graph = Some(graph);
    Ok(())
}

#[then(expr = "the graph shows requests to service-c {word} failing")]
async fn graph_version_failing(world: &mut HappyWorld, version: String) -> Step {
    graph_version_health(world, version, true).await
}

#[then(expr = "the graph shows requests to service-c {word} all succeeding")]
async fn graph_version_succeeding(world: &mut HappyWorld, version: String) -> Step {
    graph_version_health(world, version, false).await
}

/// Kiali's graph shows service-a's HTTP edge into service-c `version` with errors (`failing`)
/// or with none ([`service_c_version_health`]).
async fn graph_version_health(world: &mut HappyWorld, version: String, failing: bool) -> Step {
    let health = if failing { "failing" } else { "all succeeding" };
    graph_eventually(
        world,
        &format!("Kiali to show service-c {version} {health}"),
        |g| service_c_version_health(g, NAMESPACE, &version, failing),
    )
    .await
}

#[then("the graph's edge from unknown to service-a is not mutual TLS")]
async fn graph_legacy_plaintext(world: &mut HappyWorld) -> Step {
    graph_eventually(
        world,
        "Kiali to show the edge from unknown to service-a without mutual TLS, and service-a's to service-b with it",
        |g| legacy_edge_plaintext(g, NAMESPACE),
    )
    .await
}
