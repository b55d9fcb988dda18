//! Steps about HTTP requests to the application: where they go, and what the responses show.
//! The statistics behind "every" and "some" live in `happy_istio::checks::batch`.

use cucumber::{given, then, when};
use happy_istio::checks::batch::{
    BROWSER_REQUESTS_PER_LOAD, Expectation, converge, pod_route_holding_limit,
};
use happy_istio::checks::chain;

use happy_istio::error::FailureClass;

use super::parameters::{Name, Port, RequestPath, Url};
use super::readings::{Before, ENTRY, Traffic};
use super::world::{Failure, HappyWorld, Route, Step, Target, fail};

#[when(expr = "I request {path} through a port-forward to deploy\\/{name} on port {port}")]
async fn request_port_forward(
    world: &mut HappyWorld,
    path: RequestPath,
    deployment: Name,
    port: Port,
) {
    world.target = Some(Target {
        route: Route::PortForward {
            deployment: deployment.0,
            port: port.0,
        },
        path: path.0,
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
    expr = "I open {path} in a browser through a port-forward to deploy\\/{name} on port {port}"
)]
async fn open_port_forward(
    world: &mut HappyWorld,
    path: RequestPath,
    deployment: Name,
    port: Port,
) {
    world.target = Some(Target {
        route: Route::PortForward {
            deployment: deployment.0,
            port: port.0,
        },
        path: path.0,
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
