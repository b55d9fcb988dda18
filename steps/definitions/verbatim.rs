//! How a run departs from the workshop, at the level of steps: which deviations are switched
//! off (the suite then does what the workshop's text does), the legacy client's image, and the
//! workshop's own way into the ingress gateway (its Service's LoadBalancer address).

use std::sync::OnceLock;

use happy_istio::cluster::{HttpResponse, http_get_over};
use happy_istio::deviations::{self, Deviations, LegacyClient, State};
use happy_istio::manifests::Manifest;
use happy_istio::settings::Settings;
use k8s_openapi::api::core::v1::Service;
use kube::Api;

use super::env::{Env, ISTIO_NAMESPACE};
use super::failure::{Failure, Step, fail};

/// The run's deviations, from the same settings the runner announced at start.
pub(crate) fn run_deviations() -> Result<Deviations, Failure> {
    let settings = Settings::from_env().map_err(Failure::from)?;
    Ok(Deviations::resolve(&settings))
}

/// Set the legacy client's container of a loaded `legacy.yaml` to what the run wants: the
/// deviation D-legacy-image's image and command, or the file as written when it is off.
pub(crate) fn set_legacy_client(manifests: &mut [Manifest], client: &LegacyClient) -> Step {
    for manifest in manifests.iter_mut().filter(|m| m.kind() == "Pod") {
        let what = manifest.describe();
        let containers = manifest.object.data["spec"]["containers"].as_array_mut();
        let Some(container) = containers.and_then(|cs| {
            cs.iter_mut()
                .find(|c| c["name"] == deviations::LEGACY_CONTAINER)
        }) else {
            fail!(
                "{what} has no container named {:?}, whose image the deviation D-legacy-image sets",
                deviations::LEGACY_CONTAINER
            );
        };
        container["image"] = serde_json::json!(client.image);
        if let Some(command) = &client.command {
            container["command"] = serde_json::json!(command);
        }
    }
    Ok(())
}

/// Whether D-ingress-address is switched off for this run: requests "through the ingress
/// gateway" then go to the Service's LoadBalancer address, as the workshop's curl does.
pub(crate) fn ingress_verbatim() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| {
        run_deviations()
            .ok()
            .and_then(|d| d.state("D-ingress-address").cloned())
            == Some(State::Off)
    })
}

/// Whether D-capture-command is switched off for this run: captures then run the workshop's
/// own tcpdump command in service-a's istio-proxy.
pub(crate) fn capture_verbatim() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| {
        run_deviations()
            .ok()
            .and_then(|d| d.state("D-capture-command").cloned())
            == Some(State::Off)
    })
}

/// The workshop's `$ISTIO_INGRESS_GW_IP`: `{.status.loadBalancer.ingress[*].ip}` of the
/// gateway's Service — every address, none when the cluster assigned none.
pub(crate) async fn workshop_ingress_addresses(env: &Env) -> happy_istio::Result<Vec<String>> {
    let api: Api<Service> = Api::namespaced(env.cluster.client().clone(), ISTIO_NAMESPACE);
    let what = format!("get service istio-ingressgateway in {ISTIO_NAMESPACE}");
    let svc = tokio::time::timeout(env.timeouts.request, api.get("istio-ingressgateway"))
        .await
        .map_err(|_| happy_istio::Error::Timeout {
            what: what.clone(),
            limit: env.timeouts.request,
            detail: None,
        })?
        .map_err(|e| happy_istio::Error::kube(what, e))?;
    Ok(svc
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect())
}

/// `curl -s $ISTIO_INGRESS_GW_IP<path>` from the machine running the suite: GET on port 80 of
/// the first LoadBalancer address, bounded by `request`.
pub(crate) async fn get_through_load_balancer(
    env: &Env,
    path: &str,
) -> happy_istio::Result<HttpResponse> {
    let addresses = workshop_ingress_addresses(env).await?;
    let target =
        format!("the ingress gateway's LoadBalancer address{path} (D-ingress-address is off)");
    let fail = |message: String| happy_istio::Error::Http {
        target: target.clone(),
        message,
    };
    let Some(ip) = addresses.first() else {
        return Err(fail(format!(
            "service istio-ingressgateway in {ISTIO_NAMESPACE} has no status.loadBalancer.ingress \
             IP, so the workshop's ISTIO_INGRESS_GW_IP is empty"
        )));
    };
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((ip.as_str(), 80))
            .await
            .map_err(|e| fail(format!("cannot connect to {ip}:80: {e}")))?;
        http_get_over(stream, ip, path).await.map_err(fail)
    };
    match tokio::time::timeout(env.timeouts.request, exchange).await {
        Ok(result) => result,
        Err(_) => Err(happy_istio::Error::Timeout {
            what: format!("HTTP GET http://{ip}{path}"),
            limit: env.timeouts.request,
            detail: None,
        }),
    }
}
