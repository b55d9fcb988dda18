//! Where a scenario's requests go and how one is sent: a port-forward to a Deployment, or the
//! ingress gateway (its Service through a port-forward, or its LoadBalancer address when the
//! deviation D-ingress-address is switched off), as curl sends it or as a browser loads it.

use std::fmt;

use happy_istio::cluster::{Forward, HttpResponse};

use super::env::{Env, ISTIO_NAMESPACE, NAMESPACE};

/// Where a scenario's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `kubectl port-forward deploy/NAME PORT`.
    PortForward { deployment: String, port: u16 },
    /// The ingress gateway's Service, port 80.
    IngressGateway,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::PortForward { deployment, port } => {
                write!(f, "a port-forward to deploy/{deployment} on port {port}")
            }
            Route::IngressGateway => f.write_str("the ingress gateway"),
        }
    }
}

/// A request a scenario repeats: a route and a path, sent as curl sends it or loaded as a
/// browser loads it (following redirects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub route: Route,
    pub path: String,
    /// Follow redirects as a browser does ([`happy_istio::cluster::follow_redirects`]).
    pub browser: bool,
}

/// The page origin of the workshop's browser: both routes are port-forwards to local port
/// 8080 in the workshop (`kubectl port-forward deploy/service-a 8080`, `kubectl -n
/// istio-system port-forward svc/istio-ingressgateway 8080:80`).
fn browser_origin(route: &Route) -> String {
    match route {
        Route::PortForward { port, .. } => format!("http://localhost:{port}"),
        Route::IngressGateway => "http://localhost:8080".to_string(),
    }
}

/// A target's route, resolved once for a batch of requests (see
/// `happy_istio::checks::batch::converge` for why one connection may carry them all).
#[derive(Debug, Clone)]
pub enum Opened {
    /// A port-forward to the pod, reused by every request.
    Forward(Forward),
    /// D-ingress-address switched off: the workshop's LoadBalancer address, one connection per
    /// request (the address balances per connection, so a kept one would pin its choice).
    LoadBalancer,
}

impl Target {
    /// Resolve the route: the Deployment's or the gateway Service's Ready pod and its port.
    pub async fn open(&self, env: &Env) -> happy_istio::Result<Opened> {
        Ok(match &self.route {
            Route::PortForward { deployment, port } => Opened::Forward(
                env.cluster
                    .forward_to_deployment(NAMESPACE, deployment, *port)
                    .await?,
            ),
            Route::IngressGateway if super::verbatim::ingress_verbatim() => Opened::LoadBalancer,
            Route::IngressGateway => Opened::Forward(
                env.cluster
                    .forward_to_service(ISTIO_NAMESPACE, "istio-ingressgateway", 80)
                    .await?,
            ),
        })
    }

    /// Send one GET request on a route of its own.
    pub async fn send(&self, env: &Env) -> happy_istio::Result<HttpResponse> {
        let opened = self.open(env).await?;
        self.send_on(env, &opened).await
    }

    /// Send one GET request (a page load with its redirects, for a browser) on `opened`.
    pub async fn send_on(&self, env: &Env, opened: &Opened) -> happy_istio::Result<HttpResponse> {
        if !self.browser {
            return get(env, opened, &self.path).await;
        }
        let origin = browser_origin(&self.route);
        happy_istio::cluster::follow_redirects(&origin, &self.path, |path| async move {
            get(env, opened, &path).await
        })
        .await
        .map_err(|e| match e {
            // The first request's own failure keeps its kind (timeouts, API errors).
            happy_istio::cluster::RedirectError::Request { error, after } if after.is_empty() => {
                error
            }
            other => happy_istio::Error::Http {
                target: format!("{} via {}", self.path, self.route),
                message: other.to_string(),
            },
        })
    }
}

async fn get(env: &Env, opened: &Opened, path: &str) -> happy_istio::Result<HttpResponse> {
    match opened {
        Opened::Forward(forward) => forward.get(path).await,
        Opened::LoadBalancer => super::verbatim::get_through_load_balancer(env, path).await,
    }
}
