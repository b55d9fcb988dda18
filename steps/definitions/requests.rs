//! Steps about HTTP requests to the application: where they go, and what the responses show.
//! The statistics behind "every" and "some" live in `happy_istio::checks::batch`.

use std::collections::BTreeMap;

use cucumber::{given, then, when};
use happy_istio::checks::batch::{
    BROWSER_REQUESTS_PER_LOAD, Expectation, converge, pod_route_holding_limit,
};
use happy_istio::checks::chain;
use happy_istio::probes::Sample;

use happy_istio::error::FailureClass;

use super::parameters::{Name, RequestPath, Url};
use super::world::{
    Env, Failure, HappyWorld, NAMESPACE, Route, SIDECAR, Step, Target, fail, pod_name,
};

/// The workload every request through the ingress gateway enters: the readings in [`Before`]
/// are of its sidecar.
pub const ENTRY: &str = "service-a";

/// Readings of a workload's sidecar taken just before a batch of requests: verdicts on
/// counters and logs judge the growth since then, i.e. the scenario's own requests, not what
/// earlier scenarios or a reused cluster left.
#[derive(Debug, Clone, Default)]
pub struct Before {
    /// The deployment whose sidecar was read.
    pub deployment: String,
    /// Its sidecar's metrics (:15020/stats/prometheus).
    pub metrics: Vec<Sample>,
    /// The number of lines of its istio-proxy log, per pod.
    pub log_lines: BTreeMap<String, usize>,
    /// How many requests the accepted batch sent (each passes `deployment` once).
    pub requests: usize,
}

impl Before {
    /// Read `deployment`'s sidecar metrics and istio-proxy log length now.
    pub async fn read(env: &Env, deployment: &str) -> Result<Before, Failure> {
        let metrics = env.sidecar_metrics(deployment).await?;
        let mut log_lines = BTreeMap::new();
        for pod in env.cluster.deployment_pods(NAMESPACE, deployment).await? {
            let name = pod_name(&pod);
            let log = env
                .cluster
                .container_logs(NAMESPACE, &name, SIDECAR)
                .await?;
            log_lines.insert(name, log.lines().count());
        }
        Ok(Before {
            deployment: deployment.to_string(),
            metrics,
            log_lines,
            requests: 0,
        })
    }

    /// The reading of `deployment`, or a failure saying that the step needs one.
    pub fn of<'a>(world: &'a HappyWorld, deployment: &str) -> Result<&'a Before, Failure> {
        world
            .before
            .as_ref()
            .filter(|b| b.deployment == deployment)
            .ok_or_else(|| {
                Failure::claim(format!(
                    "no reading of {deployment}'s sidecar was taken before the requests, so the \
                     scenario's own requests cannot be told from earlier ones: a step \
                     \"requests through the ingress gateway have …\" must come first"
                ))
            })
    }
}

/// Traffic a scenario sends, repeated while a view catches up (Kiali only shows edges with a
/// current rate above zero; the workshop keeps `watch -n 1 curl …` running for it).
#[derive(Debug, Clone)]
pub enum Traffic {
    /// One request to a target.
    Request(Target),
    /// One call from the legacy client.
    Legacy { url: String },
}

impl Traffic {
    /// Send it once; the outcome does not matter, only that traffic flows.
    pub async fn send_once(&self, env: &Env) {
        match self {
            Traffic::Request(target) => {
                let _ = target.send(env).await;
            }
            Traffic::Legacy { url } => {
                let (ns, pod, container) = super::security::LEGACY;
                let _ = env.curl_from_pod(ns, pod, container, url).await;
            }
        }
    }
}

#[when(regex = r"^I request (/\S*) through a port-forward to deploy/([a-z0-9-]+) on port (\d+)$")]
async fn request_port_forward(world: &mut HappyWorld, path: String, deployment: String, port: u16) {
    world.target = Some(Target {
        route: Route::PortForward { deployment, port },
        path,
        browser: false,
    });
}

#[when(expr = "I request {path} through the ingress gateway")]
async fn request_ingress(world: &mut HappyWorld, path: RequestPath) {
    world.target = Some(Target {
        route: Route::IngressGateway,
        path: path.0,
        browser: false,
    });
}

/// What the workshop's reader does with "open localhost:8080/ui in your browser": the page
/// load follows redirects (fake-service answers `/ui` with 301 to `/ui/`), and the verdicts
/// judge the page the browser ends on.
#[when(
    regex = r"^I open (/\S*) in a browser through a port-forward to deploy/([a-z0-9-]+) on port (\d+)$"
)]
async fn open_port_forward(world: &mut HappyWorld, path: String, deployment: String, port: u16) {
    world.target = Some(Target {
        route: Route::PortForward { deployment, port },
        path,
        browser: true,
    });
}

#[when(expr = "I open {path} in a browser through the ingress gateway")]
async fn open_ingress(world: &mut HappyWorld, path: RequestPath) {
    world.target = Some(Target {
        route: Route::IngressGateway,
        path: path.0,
        browser: true,
    });
}

/// Converge on `expectation` for the scenario's target and keep the accepted batch.
pub async fn judge(
    world: &mut HappyWorld,
    target: Target,
    expectation: Expectation,
    once: bool,
) -> Step {
    let env = world.env();
    let what = format!(
        "{} requests for {} through {} ({expectation:?})",
        expectation.batch_size(),
        target.path,
        target.route
    );
    let policy = if once { env.once() } else { env.convergence() };
    // Straight to a pod, every request opens its own port-forward (fake-service closes each
    // connection): batches that hold may go on as long as their size needs. The gateway keeps
    // its connection open.
    let holding_limit = match target.route {
        Route::PortForward { .. } => pod_route_holding_limit(
            &policy,
            expectation,
            if target.browser {
                BROWSER_REQUESTS_PER_LOAD
            } else {
                1
            },
            env.timeouts.pod_request,
        ),
        Route::IngressGateway => policy.limit,
    };
    // Whether the last request could not even be made (no Ready pod to forward to, a
    // port-forward that did not open): then never converging is the environment failing,
    // not the claim; a wrong answer is the claim.
    let last_class = std::sync::Mutex::new(None);
    let record = |class: Option<FailureClass>| {
        *last_class.lock().unwrap_or_else(|p| p.into_inner()) = class;
    };
    // Each attempt resolves the route and opens its port-forward once; its requests share it.
    let open = || async {
        let opened = target.open(&env).await;
        record(opened.as_ref().err().map(happy_istio::Error::class));
        let opened = opened?;
        let (target, env, record) = (&target, &env, &record);
        Ok(move || {
            let opened = opened.clone();
            async move {
                let result = target.send_on(env, &opened).await;
                record(result.as_ref().err().map(happy_istio::Error::class));
                result
            }
        })
    };
    match converge(&what, &policy, holding_limit, expectation, &open).await {
        Ok(responses) => world.responses = responses,
        Err(e) => {
            let last = *last_class.lock().unwrap_or_else(|p| p.into_inner());
            return Err(match last {
                Some(FailureClass::Environment) => Failure::environment(e.to_string()),
                _ => e.into(),
            });
        }
    }
    if target.browser {
        show_redirects(&target, &world.responses);
    }
    Ok(())
}

/// Print the way the browser took to the accepted pages (the scenario's output): the claim is
/// about the page, and a redirect on the way is part of what the reader saw.
fn show_redirects(target: &Target, responses: &[happy_istio::cluster::HttpResponse]) {
    let mut chains: Vec<String> = responses
        .iter()
        .map(happy_istio::cluster::describe_chain)
        .collect();
    chains.sort();
    chains.dedup();
    for chain in chains {
        println!(
            "      browser: {} via {}: {chain} ({} of {} page loads)",
            target.path,
            target.route,
            responses
                .iter()
                .filter(|r| happy_istio::cluster::describe_chain(r) == chain)
                .count(),
            responses.len()
        );
    }
}

#[then(expr = "every response is {int}")]
async fn every_response(world: &mut HappyWorld, status: u16) -> Step {
    let target = world.target()?;
    judge(world, target, Expectation::Every(status), false).await
}

#[then(expr = "some responses are {int} and some are {int}")]
async fn some_and_some(world: &mut HappyWorld, a: u16, b: u16) -> Step {
    let target = world.target()?;
    judge(world, target, Expectation::Both(a, b), false).await
}

#[given(
    regex = r"^requests through a port-forward to deploy/([a-z0-9-]+) on port (\d+) have failed with 500$"
)]
async fn port_forward_failed(world: &mut HappyWorld, deployment: String, port: u16) -> Step {
    let target = Target {
        route: Route::PortForward { deployment, port },
        path: "/".into(),
        browser: false,
    };
    judge(world, target, Expectation::Both(500, 200), true).await
}

#[given("requests through the ingress gateway have failed with 500")]
#[given("requests through the ingress gateway have succeeded with 200 and failed with 500")]
async fn ingress_failed(world: &mut HappyWorld) -> Step {
    let target = Target {
        route: Route::IngressGateway,
        path: "/".into(),
        browser: false,
    };
    let mut before = Before::read(&world.env(), ENTRY).await?;
    judge(world, target.clone(), Expectation::Both(500, 200), true).await?;
    before.requests = world.responses.len();
    world.before = Some(before);
    world.traffic = Some(Traffic::Request(target));
    Ok(())
}

fn accepted(world: &HappyWorld) -> Result<&[happy_istio::cluster::HttpResponse], Failure> {
    if world.responses.is_empty() {
        return Err(Failure::claim(
            "no responses to inspect: a step that sends requests must come first",
        ));
    }
    Ok(&world.responses)
}

#[then(expr = "every response comes from {name}")]
async fn every_from(world: &mut HappyWorld, service: Name) -> Step {
    for r in accepted(world)? {
        chain::comes_from(r, &service.0)?;
    }
    Ok(())
}

#[then(expr = "every {int} comes from {name}")]
async fn every_status_from(world: &mut HappyWorld, status: u16, service: Name) -> Step {
    let matching: Vec<_> = accepted(world)?
        .iter()
        .filter(|r| r.status == status)
        .collect();
    if matching.is_empty() {
        fail!("no response was {status}");
    }
    for r in matching {
        chain::comes_from(r, &service.0)?;
    }
    Ok(())
}

#[then(expr = "every response shows the calls to {url} and {url}, each answering {int}")]
async fn every_chain(world: &mut HappyWorld, first: Url, second: Url, code: u16) -> Step {
    for r in accepted(world)? {
        chain::upstream_calls_answered(r, &[&first.0, &second.0], code)?;
    }
    Ok(())
}

#[then(expr = "every {int} comes from {name}, whose call to {url} answered {int}")]
async fn every_failure_chain(
    world: &mut HappyWorld,
    status: u16,
    service: Name,
    uri: Url,
    code: u16,
) -> Step {
    let matching: Vec<_> = accepted(world)?
        .iter()
        .filter(|r| r.status == status)
        .collect();
    if matching.is_empty() {
        fail!("no response was {status}");
    }
    for r in matching {
        chain::comes_from(r, &service.0)?;
        chain::upstream_calls_answered(r, &[&uri.0], code)?;
    }
    Ok(())
}

#[then("every response is an HTML page")]
async fn every_html(world: &mut HappyWorld) -> Step {
    for r in accepted(world)? {
        chain::is_html_page(r).map_err(|e| {
            if r.redirects.is_empty() {
                e
            } else {
                format!(
                    "{e} (reached by {})",
                    happy_istio::cluster::describe_chain(r)
                )
            }
        })?;
    }
    Ok(())
}
