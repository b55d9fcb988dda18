//! Installing Istio on the sandbox: no Istio API before the install, the CRDs and the demo
//! profile's pods after it, manual injection, un-injection by label and restart, and
//! unsupported configuration reported as a Kubernetes Event.

use crate::mesh_support;
use crate::pod_addresses;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::discovery::Discovery;
use mesh_support::{LIMIT, MeshCluster, NS, eventually, require_envoy};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_apis_appear_with_the_install_and_the_demo_profile_runs() {
    let _pods = pod_addresses::shared().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    require_envoy().await;
    let sandbox = happy_sandbox::Sandbox::start(Default::default())
        .await
        .unwrap();
    let kc = kube::config::Kubeconfig::read_from(sandbox.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let groups = |d: &Discovery| d.groups().map(|g| g.name().to_string()).collect::<Vec<_>>();
    let before = Discovery::new(client.clone()).run().await.unwrap();
    assert!(
        !groups(&before).iter().any(|g| g.ends_with("istio.io")),
        "{:?}",
        groups(&before)
    );

    sandbox.install_istio().await.unwrap();
    sandbox
        .install_istio()
        .await
        .expect("install is idempotent");
    let after = Discovery::new(client.clone()).run().await.unwrap();
    for (group, version, kind) in [
        ("networking.istio.io", "v1alpha3", "VirtualService"),
        ("networking.istio.io", "v1", "Gateway"),
        ("networking.istio.io", "v1beta1", "DestinationRule"),
        ("security.istio.io", "v1beta1", "PeerAuthentication"),
        ("security.istio.io", "v1", "AuthorizationPolicy"),
    ] {
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        assert!(
            after.resolve_gvk(&gvk).is_some(),
            "{group}/{version} {kind} served"
        );
    }
    let c = MeshCluster {
        sandbox,
        client: client.clone(),
        discovery: after,
    };
    let pods = c.wait_pods("istio-system", 3).await;
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    for prefix in ["istiod-", "istio-ingressgateway-", "istio-egressgateway-"] {
        assert!(names.iter().any(|n| n.starts_with(prefix)), "{names:?}");
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "istio-system");
    let istiod = deployments.get("istiod").await.unwrap();
    let image = istiod.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert_eq!(
        image,
        format!(
            "docker.io/istio/pilot:{}",
            happy_sandbox::mesh::ISTIO_VERSION
        )
    );
    let svc: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "istio-system");
    let ingress = svc.get("istio-ingressgateway").await.unwrap();
    assert_eq!(ingress.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    // As on kind without Cloud Provider KIND: no load balancer assigns it an address
    // (EXTERNAL-IP <pending>; the suite's deviation D-ingress-address).
    assert!(
        ingress
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .is_none_or(|i| i.is_empty())
    );

    // C07: manual injection of services-a.yaml.
    let injected = c
        .sandbox
        .kube_inject(&mesh_support::manifest("services-a.yaml"))
        .unwrap();
    let docs: Vec<serde_json::Value> = injected
        .split("---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let inits = deploy["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap();
    assert!(
        inits.iter().any(|c| c["name"] == "istio-proxy"),
        "{injected}"
    );
    c.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlabelling_and_restarting_removes_the_sidecars_and_unsupported_fields_are_reported() {
    let _pods = pod_addresses::shared().await;
    let c = MeshCluster::workshop(false).await;

    // A field the sandbox does not follow: a warning Event on the VirtualService.
    let vs = "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n  name: service-b\nspec:\n  hosts: [service-b]\n  http:\n  - fault:\n      abort:\n        httpStatus: 500\n        percentage:\n          value: 0\n    route:\n    - destination:\n        host: service-b\n";
    c.apply_yaml(NS, "service-b fault", vs).await;
    let events: Api<Event> = Api::namespaced(c.client.clone(), NS);
    eventually("an Event about the unsupported fault field", LIMIT, || {
        let events = events.clone();
        async move {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|e| {
                    e.involved_object.kind.as_deref() == Some("VirtualService")
                        && e.involved_object.name.as_deref() == Some("service-b")
                        && e.message.as_deref().is_some_and(|m| m.contains("fault"))
                        && e.type_.as_deref() == Some("Warning")
                })
                .map(|_| ())
                .ok_or_else(|| "no Event yet".to_string())
        }
    })
    .await;

    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    namespaces
        .patch(
            NS,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"istio-injection": null}}})),
        )
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), NS);
    let restart = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}});
    for d in ["service-a", "service-b", "service-c-v1"] {
        deployments
            .patch(d, &PatchParams::default(), &Patch::Merge(&restart))
            .await
            .unwrap();
    }
    eventually("pods without sidecars", LIMIT, || async {
        let pods = c.wait_pods(NS, 3).await;
        let with: Vec<String> = pods
            .iter()
            .filter(|p| {
                let s = p.spec.as_ref().unwrap();
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|c| c.name == "istio-proxy")
            })
            .map(|p| p.name_any())
            .collect();
        if with.is_empty() {
            Ok(())
        } else {
            Err(format!("still meshed: {with:?}"))
        }
    })
    .await;
    c.wait_chain().await;
    c.sandbox.shutdown().await;
}

/// `Sandbox::install_istio_from(hub)`: istiod, both gateways and every injected sidecar name
/// that hub's images (as `istioctl install --set hub=<hub>` makes them), and they run when the
/// hub carries Istio's releases (a mirror laid out like docker.io/istio).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_names_its_hub_for_the_control_plane_and_the_sidecars() {
    let _pods = pod_addresses::shared().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    require_envoy().await;
    let sandbox = happy_sandbox::Sandbox::start(Default::default())
        .await
        .unwrap();
    let kc = kube::config::Kubeconfig::read_from(sandbox.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let hub = "localhost:5000/istio";
    sandbox.install_istio_from(hub).await.unwrap();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let c = MeshCluster {
        sandbox,
        client: client.clone(),
        discovery,
    };
    let version = happy_sandbox::mesh::ISTIO_VERSION;
    let pods = c.wait_pods("istio-system", 3).await;
    for pod in &pods {
        let image = pod.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap();
        let name = if pod.name_any().starts_with("istiod-") {
            "pilot"
        } else {
            "proxyv2"
        };
        assert_eq!(
            image,
            format!("{hub}/{name}:{version}"),
            "{}",
            pod.name_any()
        );
    }
    let injected = c
        .sandbox
        .kube_inject(&mesh_support::manifest("services-a.yaml"))
        .unwrap();
    assert!(
        injected.contains(&format!("image: {hub}/proxyv2:{version}")),
        "{injected}"
    );
    assert!(!injected.contains("docker.io/istio"), "{injected}");
    c.sandbox.shutdown().await;
}
