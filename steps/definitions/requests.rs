//! Steps about HTTP requests to the application. "I request …" and "I open …" send the
//! workshop's request in batches until the answers settle and keep the settled batches; the
//! Thens judge what was kept. The statistics behind "every" and "some" live in
//! `happy_istio::checks::batch`.

use cucumber::{given, then, when};
use happy_istio::checks::batch::{
    BROWSER_REQUESTS_PER_LOAD, Expectation, converge, pod_route_holding_limit, request_batch,
};
use happy_istio::checks::chain::{self, shape};

use happy_istio::cluster::HttpResponse;
use happy_istio::error::FailureClass;
use happy_istio::evidence;
use happy_istio::retry::settled;

use super::parameters::{Name, Port, RequestPath, Url};
use super::readings::{Before, ENTRY, SidecarCounts, Traffic, observations_count_from};
use super::world::{Failure, HappyWorld, Route, Step, Target, fail};

#[when(expr = "I request {path} through a port-forward to deploy\\/{name} on port {port}")]
async fn request_port_forward(
    world: &mut HappyWorld,
    path: RequestPath,
    deployment: Name,
    port: Port,
) -> Step {
    let target = Target {
        route: Route::PortForward {
            deployment: deployment.0,
            port: port.0,
        },
        path: path.0,
        browser: false,
    };
    request_until_settled(world, target).await
}

#[when(expr = "I request {path} through the ingress gateway")]
async fn request_ingress(world: &mut HappyWorld, path: RequestPath) -> Step {
    let target = Target {
        route: Route::IngressGateway,
        path: path.0,
        browser: false,
    };
    request_until_settled(world, target).await
}

/// What the workshop's reader does with "open localhost:8080/ui in your browser": the page
/// load follows redirects (fake-service answers `/ui` with 301 to `/ui/`), and the verdicts
/// judge the page the browser ends on.
#[when(
    expr = "I open {path} in a browser through a port-forward to deploy\\/{name} on port {port}"
)]
async fn open_port_forward(
    world: &mut HappyWorld,
    path: RequestPath,
    deployment: Name,
    port: Port,
) -> Step {
    let target = Target {
        route: Route::PortForward {
            deployment: deployment.0,
            port: port.0,
        },
        path: path.0,
        browser: true,
    };
    request_until_settled(world, target).await
}

#[when(expr = "I open {path} in a browser through the ingress gateway")]
async fn open_ingress(world: &mut HappyWorld, path: RequestPath) -> Step {
    let target = Target {
        route: Route::IngressGateway,
        path: path.0,
        browser: true,
    };
    request_until_settled(world, target).await
}

/// One batch of the workshop's request and the sidecar counters read just before it.
type Observed = (SidecarCounts, Vec<HttpResponse>);

/// Send the scenario's request in batches of [`request_batch`] until `consecutive` batches in a
/// row, each begun once the suite's last change has had time to reach the proxies, show the
/// same answers ([`shape`]); keep those batches for the verdicts that follow, with the sidecar
/// counters read just before the first of them. The Thens judge what was kept: a batch taken
/// while a change is still on its way is not one of them, because the next batches differ.
async fn request_until_settled(world: &mut HappyWorld, target: Target) -> Step {
    let env = world.env();
    let size = request_batch() as usize;
    let mut policy = env.convergence();
    // Straight to a pod, every request opens its own port-forward (fake-service closes each
    // connection): `consecutive` batches need up to their size in port-forwards.
    if let Route::PortForward { .. } = target.route {
        let per_load = if target.browser {
            BROWSER_REQUESTS_PER_LOAD
        } else {
            1
        };
        policy.limit = pod_route_holding_limit(
            &policy,
            Expectation::Both(500, 200),
            per_load,
            env.timeouts.pod_request,
        );
    }
    let what = format!(
        "the answers to batches of {size} requests for {} through {}",
        target.path, target.route
    );
    let (env_ref, target_ref) = (&env, &target);
    // A batch that cannot be sent is an observation too ("the request could not be made"):
    // it settles like any other, and then ends the step as the environment's failure.
    let observe = || async move {
        let sent = async {
            let counts = SidecarCounts::read(env_ref).await?;
            let opened = target_ref.open(env_ref).await?;
            let mut responses = Vec::with_capacity(size);
            while responses.len() < size {
                responses.push(target_ref.send_on(env_ref, &opened).await?);
            }
            Ok::<Observed, Failure>((counts, responses))
        };
        Ok::<_, Failure>(sent.await)
    };
    let says = |observed: &Result<Observed, Failure>| match observed {
        Ok((_, responses)) => shape(responses).into_iter().collect::<Vec<_>>().join("; "),
        Err(failure) => format!("the request could not be made: {failure}"),
    };
    let streak = settled(&what, &policy, observations_count_from(&env), observe, says).await?;
    let mut batches = Vec::with_capacity(streak.len());
    let mut counts_before = None;
    for observed in streak {
        let (counts, responses) = observed?;
        counts_before.get_or_insert(counts);
        batches.push(responses);
    }
    world.target = Some(target.clone());
    world.responses = batches.iter().flatten().cloned().collect();
    world.batches = batches;
    world.sidecar_counts_before = counts_before;
    if target.browser {
        show_redirects(&target, &world.responses);
    }
    record_answers(&target, &world.responses);
    Ok(())
}

/// The evidence of a request step: the answers tallied by what answered them ([`signature`]),
/// and one response of each kind as the reader's curl would print it (for fake-service, the
/// JSON with its chain of upstream calls).
fn record_answers(target: &Target, responses: &[HttpResponse]) {
    let mut kinds: Vec<(String, usize, &HttpResponse)> = Vec::new();
    for response in responses {
        let kind = chain::signature(response);
        match kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, count, _)) => *count += 1,
            None => kinds.push((kind, 1, response)),
        }
    }
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    let tally: Vec<String> = kinds
        .iter()
        .map(|(kind, count, _)| format!("{count:>4} × {kind}"))
        .collect();
    evidence::record(
        &format!(
            "{} answers to {} through {}, by what answered",
            responses.len(),
            target.path,
            target.route
        ),
        &tally.join("\n"),
    );
    for (kind, _, response) in &kinds {
        let status = http::StatusCode::from_u16(response.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or_default();
        evidence::record(
            &format!("one response {kind}"),
            &format!(
                "HTTP/1.1 {} {status}\n{}",
                response.status,
                response.body.trim_end()
            ),
        );
    }
}

/// Converge on `expectation` for the scenario's target and keep the accepted batch.
async fn judge(
    world: &mut HappyWorld,
    target: Target,
    expectation: Expectation,
    once: bool,
) -> Step {
    let env = world.env();
    let what = format!(
        "{} requests for {} through {} ({expectation})",
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
        Ok(responses) => {
            world.batches = vec![responses.clone()];
            world.responses = responses;
        }
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

/// Every kept batch meets `expectation` (each batch is large enough for its bound).
fn judge_batches(world: &HappyWorld, expectation: Expectation) -> Step {
    if world.batches.is_empty() {
        return Err(Failure::claim(
            "no responses to judge: a step that sends requests (\"I request …\", \"I open …\") must come first",
        ));
    }
    let count = world.batches.len();
    for (i, batch) in world.batches.iter().enumerate() {
        expectation.judge(batch).map_err(|e| {
            format!(
                "batch {} of {count} ({} responses): {e}",
                i + 1,
                batch.len()
            )
        })?;
    }
    Ok(())
}

#[then(expr = "every response is {int}")]
async fn every_response(world: &mut HappyWorld, status: u16) -> Step {
    judge_batches(world, Expectation::Every(status))
}

#[then(expr = "some responses are {int} and some are {int}")]
async fn some_and_some(world: &mut HappyWorld, a: u16, b: u16) -> Step {
    judge_batches(world, Expectation::Both(a, b))
}

#[given(
    expr = "requests through a port-forward to deploy\\/{name} on port {port} have succeeded with 200 and failed with 500"
)]
async fn port_forward_failed(world: &mut HappyWorld, deployment: Name, port: Port) -> Step {
    let target = Target {
        route: Route::PortForward {
            deployment: deployment.0,
            port: port.0,
        },
        path: "/".into(),
        browser: false,
    };
    judge(world, target, Expectation::Both(500, 200), true).await
}

#[given("requests through the ingress gateway have succeeded with 200 and failed with 500")]
async fn ingress_failed(world: &mut HappyWorld) -> Step {
    let target = Target {
        route: Route::IngressGateway,
        path: "/".into(),
        browser: false,
    };
    let mut before = Before::read(&world.env(), ENTRY).await?;
    let began = tokio::time::Instant::now();
    judge(world, target.clone(), Expectation::Both(500, 200), true).await?;
    world.traffic_began = Some(began);
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
