//! The API server and controllers through kube-rs (the client the suite uses), on the fake
//! runtime: discovery, the workshop's apply / wait / restart / delete, server-side apply field
//! removal, watch, errors, exec, logs and port-forward; and what the kubectl protocols add.

use crate::common;
use crate::pod_addresses;

use std::time::Duration;

use common::{BAD_IMAGE, client, eventually, fake_sandbox, workshop_yaml};
use futures::{StreamExt, TryStreamExt};
use happy_sandbox::store::ResourceType;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Pod};
use kube::api::{
    Api, AttachParams, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    PostParams, WatchEvent, WatchParams,
};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(20);

/// Server-side apply every document of a YAML stream, as the suite does.
async fn apply_yaml(client: &Client, discovery: &Discovery, namespace: &str, yaml: &str) {
    for doc in yaml.split("\n---\n").chain(std::iter::empty()) {
        let obj: DynamicObject = serde_saphyr::from_str(doc).expect("workshop YAML parses");
        let gvk = obj
            .types
            .as_ref()
            .map(|t| kube::core::GroupVersionKind::try_from(t).unwrap())
            .unwrap();
        let (ar, caps) = discovery.resolve_gvk(&gvk).expect("kind is discoverable");
        let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
            Api::namespaced_with(client.clone(), namespace, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        api.patch(
            &obj.name_any(),
            &PatchParams::apply("happy").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {}: {e}", gvk.kind, obj.name_any()));
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .expect("namespace created");
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn ready_pods(pods: &Api<Pod>, selector: &str, want: usize) -> Vec<Pod> {
    eventually(&format!("{want} ready pods {selector}"), LIMIT, || async {
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .ok()?;
        let ready: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
            .collect();
        (ready.len() == want).then_some(ready)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_version() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, _rt) = fake_sandbox().await;
    let client = client(&sandbox).await;
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for (group, kind) in [
        ("", "Pod"),
        ("apps", "Deployment"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("", "Namespace"),
    ] {
        let found = discovery.groups().any(|g| {
            g.name() == group
                && g.recommended_resources()
                    .iter()
                    .any(|(ar, _)| ar.kind == kind)
        });
        assert!(found, "{group}/{kind} is discoverable");
    }
    // Built-in namespaces and their default ServiceAccounts exist.
    let nss: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    for want in ["default", "kube-system", "kube-public", "istio-system"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "istio-system");
    sas.get("default")
        .await
        .expect("default ServiceAccount in istio-system");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workshop_apply_wait_restart_delete() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, rt) = fake_sandbox().await;
    let client = client(&sandbox).await;
    create_namespace(&client, "istioinaction").await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for f in ["services-a.yaml", "services-b.yaml", "services-c-v1.yaml"] {
        apply_yaml(&client, &discovery, "istioinaction", &workshop_yaml(f)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "istioinaction");
    for app in ["service-a", "service-b", "service-c"] {
        ready_pods(&pods, &format!("app={app}"), 1).await;
    }
    // Deployment status as rollout status reads it.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "istioinaction");
    let d = eventually("service-a available", LIMIT, || async {
        let d = deploys.get("service-a").await.ok()?;
        let s = d.status.clone()?;
        (s.available_replicas == Some(1) && s.observed_generation == d.metadata.generation)
            .then_some(d)
    })
    .await;
    let conds = d.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Progressing"
                && c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    );
    // Services got ClusterIPs, endpoints and the runtime's forwarding.
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "istioinaction");
    eventually("service-a endpoints", LIMIT, || async {
        let e = eps.get("service-a").await.ok()?;
        let addrs = e.subsets?.first()?.addresses.clone()?;
        (addrs.len() == 1).then_some(())
    })
    .await;
    eventually("runtime knows service-a", LIMIT, || async {
        let services = rt.services.lock().unwrap();
        let v = services.get(&("istioinaction".to_string(), "service-a".to_string()))?;
        (v.endpoints.len() == 1 && v.endpoints[0].ready && v.ports[0].port == 80).then_some(())
    })
    .await;

    // Rollout restart: a new pod replaces the old one, and never zero ready pods.
    let old = ready_pods(&pods, "app=service-a", 1).await[0].name_any();
    deploys.restart("service-a").await.unwrap();
    let new = eventually(
        "a new service-a pod replaced the old one",
        LIMIT,
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=service-a"))
                .await
                .ok()?;
            let live: Vec<&Pod> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            (live.len() == 1 && live[0].name_any() != old && is_ready(live[0]))
                .then(|| live[0].name_any())
        },
    )
    .await;
    assert_ne!(new, old);
    eventually("old pod stopped in the runtime", LIMIT, || async {
        rt.stopped
            .lock()
            .unwrap()
            .iter()
            .any(|(_, n)| *n == old)
            .then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), "istioinaction");
    let evs = events.list(&ListParams::default()).await.unwrap().items;
    for reason in ["Scheduled", "ScalingReplicaSet", "Killing", "Started"] {
        assert!(
            evs.iter().any(|e| e.reason.as_deref() == Some(reason)),
            "an event {reason}"
        );
    }

    // Deleting the Deployment deletes its ReplicaSets and pods (garbage collection).
    deploys
        .delete("service-a", &DeleteParams::default())
        .await
        .unwrap();
    eventually("service-a pods gone", LIMIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=service-a"))
            .await
            .ok()?;
        list.items.is_empty().then_some(())
    })
    .await;
    // Deleting the namespace deletes everything in it, then the namespace.
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete("istioinaction", &DeleteParams::default())
        .await
        .unwrap();
    eventually("namespace gone", LIMIT, || async {
        matches!(nss.get("istioinaction").await, Err(kube::Error::Api(e)) if e.code == 404)
            .then_some(())
    })
    .await;
    // The runtime hears of the deletions through the controllers, just after the API does.
    eventually(
        "the runtime to run no pod and forward no service",
        LIMIT,
        || async {
            (rt.pods.lock().unwrap().is_empty() && rt.services.lock().unwrap().is_empty())
                .then_some(())
        },
    )
    .await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_removes_fields_the_manager_dropped() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, _rt) = fake_sandbox().await;
    for v in ["v1alpha3", "v1beta1", "v1"] {
        sandbox.register_resource(ResourceType::custom(
            "networking.istio.io",
            v,
            "VirtualService",
            "virtualservices",
            true,
            &["vs"],
        ));
    }
    let client = client(&sandbox).await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let gvk =
        kube::core::GroupVersionKind::gvk("networking.istio.io", "v1alpha3", "VirtualService");
    let (ar, _) = discovery
        .resolve_gvk(&gvk)
        .expect("VirtualService registered");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mirror = r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: service-c
spec:
  hosts:
  - service-c.istioinaction.svc.cluster.local
  gateways:
  - mesh
  http:
  - route:
    - destination:
        host: service-c.istioinaction.svc.cluster.local
        subset: version-v1
    mirror:
      host: service-c.istioinaction.svc.cluster.local
      subset: version-v2
    mirrorPercentage:
      value: 100.0
"#;
    let plain = mirror.split("    mirror:").next().unwrap();
    let pp = PatchParams::apply("happy").force();
    let obj: DynamicObject = serde_saphyr::from_str(mirror).unwrap();
    let applied = api
        .patch("service-c", &pp, &Patch::Apply(&obj))
        .await
        .unwrap();
    assert!(applied.data["spec"]["http"][0].get("mirror").is_some());
    let obj: DynamicObject = serde_saphyr::from_str(plain).unwrap();
    let applied = api
        .patch("service-c", &pp, &Patch::Apply(&obj))
        .await
        .unwrap();
    assert!(
        applied.data["spec"]["http"][0].get("mirror").is_none(),
        "{:?}",
        applied.data
    );
    assert!(
        applied.data["spec"]["http"][0]
            .get("mirrorPercentage")
            .is_none()
    );
    // The same object is served under every registered version.
    let v1 = discovery
        .resolve_gvk(&kube::core::GroupVersionKind::gvk(
            "networking.istio.io",
            "v1",
            "VirtualService",
        ))
        .unwrap()
        .0;
    let again: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &v1);
    assert_eq!(
        again
            .get("service-c")
            .await
            .unwrap()
            .types
            .unwrap()
            .api_version,
        "networking.istio.io/v1"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_and_honours_timeout() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, _rt) = fake_sandbox().await;
    let client = client(&sandbox).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .unwrap()
        .boxed();
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "watched", "labels": {"a": "b"}}, "data": {"k": "v"}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("watched", &DeleteParams::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(ev) = stream.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(c) => seen.push(format!("ADDED {}", c.name_any())),
            WatchEvent::Deleted(c) => seen.push(format!("DELETED {}", c.name_any())),
            WatchEvent::Modified(c) => seen.push(format!("MODIFIED {}", c.name_any())),
            _ => {}
        }
    }
    // The stream ended on its own: timeoutSeconds=2 was honoured.
    assert_eq!(seen, ["ADDED watched", "DELETED watched"]);

    // kube-rs' watcher (list + watch) sees objects created later.
    let mut w = kube::runtime::watcher(
        cms.clone(),
        kube::runtime::watcher::Config::default().labels("a=b"),
    )
    .boxed();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(ev) = w.try_next().await.unwrap() {
            if let kube::runtime::watcher::Event::Apply(c)
            | kube::runtime::watcher::Event::InitApply(c) = ev
                && c.name_any() == "watched"
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(found);
    sandbox.shutdown().await;
}

async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> kube::Error {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body.as_bytes().to_vec())
        .unwrap();
    client
        .request_text(req)
        .await
        .expect_err("the request must fail")
}

fn code(e: &kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message.clone()),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_status_objects_with_the_right_codes() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, _rt) = fake_sandbox().await;
    let client = client(&sandbox).await;
    let cms_path = "/api/v1/namespaces/default/configmaps";
    let (c, m) = code(&raw(&client, "POST", cms_path, "application/json", "{not: [yaml").await);
    assert_eq!(c, 400, "{m}");
    let (c, m) = code(
        &raw(
            &client,
            "GET",
            "/apis/example.com/v1/namespaces/default/widgets",
            "application/json",
            "",
        )
        .await,
    );
    assert_eq!(c, 404, "{m}");
    let (c, _) = code(
        &raw(
            &client,
            "GET",
            "/api/v1/namespaces/default/gadgets",
            "application/json",
            "",
        )
        .await,
    );
    assert_eq!(c, 404);
    let (c, m) = code(
        &raw(
            &client,
            "POST",
            "/api/v1/namespaces/nowhere/configmaps",
            "application/json",
            r#"{"metadata":{"name":"x"}}"#,
        )
        .await,
    );
    assert_eq!(c, 404);
    assert!(m.contains("nowhere"), "{m}");
    let (c, m) = code(
        &raw(
            &client,
            "POST",
            cms_path,
            "application/json",
            r#"{"metadata":{"name":"x","labels":{"a":"not valid!"}}}"#,
        )
        .await,
    );
    assert_eq!(c, 422, "{m}");
    assert!(m.contains("\"x\"") && m.contains("metadata.labels"), "{m}");
    let (c, m) = code(
        &raw(
            &client,
            "POST",
            cms_path,
            "application/json",
            r#"{"metadata":{}}"#,
        )
        .await,
    );
    assert_eq!(c, 422, "{m}");

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c1"}, "data": {"a": "1"}})).unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    match cms.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
            assert!(s.message.contains("c1"), "{}", s.message);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let mut changed = created.clone();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("a".into(), "2".into());
    cms.replace("c1", &PostParams::default(), &changed)
        .await
        .unwrap();
    // The first version is stale now.
    match cms.replace("c1", &PostParams::default(), &created).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // Bad patches.
    let (c, _) = code(
        &raw(
            &client,
            "PATCH",
            &format!("{cms_path}/c1"),
            "application/merge-patch+json",
            "[1,2]",
        )
        .await,
    );
    assert_eq!(c, 400);
    let (c, _) = code(
        &raw(
            &client,
            "PATCH",
            &format!("{cms_path}/c1"),
            "application/json-patch+json",
            r#"[{"op":"test","path":"/data/a","value":"nope"}]"#,
        )
        .await,
    );
    assert_eq!(c, 422);
    let (c, _) = code(
        &raw(
            &client,
            "PATCH",
            &format!("{cms_path}/c1"),
            "application/json-patch+json",
            r#"{"op":"add"}"#,
        )
        .await,
    );
    assert_eq!(c, 400);
    let (c, _) = code(
        &raw(
            &client,
            "PATCH",
            &format!("{cms_path}/c1"),
            "text/plain",
            "x",
        )
        .await,
    );
    assert_eq!(c, 415);
    // Strategic merge: a label added, data merged.
    let patched = cms
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"l": "v"}}, "data": {"b": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.labels().get("l").map(String::as_str), Some("v"));
    assert_eq!(patched.data.unwrap().len(), 2);

    // No or a wrong token: 401.
    let text = std::fs::read_to_string(sandbox.kubeconfig_path()).unwrap();
    let bad = text.replace(sandbox.token(), "not-the-token");
    let kc = kube::config::Kubeconfig::from_yaml(&bad).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let bad_client = Client::try_from(config).unwrap();
    let e = Api::<ConfigMap>::namespaced(bad_client, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(code(&e).0, 401);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_logs_port_forward_and_image_errors() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, _rt) = fake_sandbox().await;
    let client = client(&sandbox).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "labels": {"x": "y"}},
        "spec": {"containers": [{"name": "main", "image": "radial/busyboxplus:curl"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    ready_pods(&pods, "x=y", 1).await;

    // exec: stdout, stderr and the exit code (status channel).
    let mut attached = pods
        .exec(
            "p",
            vec!["fake", "out-text", "err-text", "56"],
            &AttachParams::default().stderr(true),
        )
        .await
        .unwrap();
    let mut out = String::new();
    attached
        .stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let mut err = String::new();
    attached
        .stderr()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    let status = attached.take_status().unwrap().await.unwrap();
    assert_eq!((out.as_str(), err.as_str()), ("out-text", "err-text"));
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &status.details.unwrap().causes.unwrap()[0];
    assert_eq!(
        (cause.reason.as_deref(), cause.message.as_deref()),
        (Some("ExitCode"), Some("56"))
    );
    let mut ok = pods
        .exec("p", vec!["fake", "", "", "0"], &AttachParams::default())
        .await
        .unwrap();
    let status = ok.take_status().unwrap().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"));
    // stdin reaches the command (closing it ends `cat`).
    let mut cat = pods
        .exec("p", vec!["cat"], &AttachParams::default().stdin(true))
        .await
        .unwrap();
    let mut stdin = cat.stdin().unwrap();
    stdin.write_all(b"hello stdin").await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let mut echoed = String::new();
    cat.stdout()
        .unwrap()
        .read_to_string(&mut echoed)
        .await
        .unwrap();
    assert_eq!(echoed, "hello stdin");

    // logs, with tailLines.
    let all = pods.logs("p", &LogParams::default()).await.unwrap();
    assert_eq!(
        all,
        "first line of default/p/main\nsecond line of default/p/main\n"
    );
    let tail = pods
        .logs(
            "p",
            &LogParams {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "second line of default/p/main\n");
    let e = pods
        .logs(
            "p",
            &LogParams {
                container: Some("nope".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e).0, 400);

    // port-forward: bytes both ways.
    let mut pf = pods.portforward("p", &[8080]).await.unwrap();
    let mut stream = pf.take_stream(8080).unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut buf = vec![0u8; "port 8080: ping".len()];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(String::from_utf8(buf).unwrap(), "port 8080: ping");
    drop(stream);
    // A closed port reports on the error channel.
    let mut pf_bad = pods.portforward("p", &[1]).await.unwrap();
    let error = pf_bad.take_error(1).unwrap().await;
    assert!(error.is_some_and(|m| m.contains("port 1")));

    // A pod whose image the runtime cannot provide: ErrImagePull with its message, and events.
    let bad: Pod = serde_json::from_value(json!({"metadata": {"name": "bad"},
        "spec": {"containers": [{"name": "main", "image": BAD_IMAGE}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &bad).await.unwrap();
    let waiting = eventually("ErrImagePull", LIMIT, || async {
        let p = pods.get("bad").await.ok()?;
        let cs = p.status?.container_statuses?;
        cs[0]
            .state
            .clone()?
            .waiting
            .filter(|w| w.reason.as_deref() == Some("ErrImagePull"))
    })
    .await;
    assert!(waiting.message.unwrap().contains(BAD_IMAGE));
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let evs = events
        .list(&ListParams::default().fields("involvedObject.name=bad"))
        .await
        .unwrap()
        .items;
    assert!(evs.iter().any(|e| e.reason.as_deref() == Some("Failed") && e.type_.as_deref() == Some("Warning")));

    // Deleting a pod: Terminating, then gone once the runtime stopped it.
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    eventually("pod p gone", LIMIT, || async {
        matches!(pods.get("p").await, Err(kube::Error::Api(e)) if e.code == 404).then_some(())
    })
    .await;
    sandbox.shutdown().await;
}

/// A Deployment whose selector does not select its template's labels is refused as the real
/// API server refuses it (kubernetes/kubernetes pkg/apis/apps/validation/validation.go,
/// Kubernetes 1.33 wording), by create, server-side apply, replace and patch, and through
/// kubectl.
#[tokio::test]
async fn a_deployment_whose_selector_misses_its_template_is_invalid() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, _rt) = common::fake_sandbox_with(common::with_kubectl()).await;
    let client = client(&sandbox).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mismatched = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "website", "version": "v1"}},
                "spec": {"containers": [{"name": "web", "image": "nicholasjackson/fake-service:v0.26.2"}]}
            }
        }
    });
    let want = r#"Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"website", "version":"v1"}: `selector` does not match template `labels`"#;
    let expect_invalid = |e: kube::Error, how: &str| match e {
        kube::Error::Api(s) => {
            assert_eq!(
                (s.code, s.reason.as_str()),
                (422, "Invalid"),
                "{how}: {s:?}"
            );
            assert_eq!(s.message, want, "{how}");
        }
        other => panic!("{how}: {other}"),
    };
    let bad: Deployment = serde_json::from_value(mismatched.clone()).unwrap();
    expect_invalid(
        deployments
            .create(&PostParams::default(), &bad)
            .await
            .unwrap_err(),
        "create",
    );
    expect_invalid(
        deployments
            .patch(
                "web",
                &PatchParams::apply("happy").force(),
                &Patch::Apply(&mismatched),
            )
            .await
            .unwrap_err(),
        "server-side apply",
    );
    // A good one, then updates that break it.
    let mut good = mismatched.clone();
    good["spec"]["template"]["metadata"]["labels"] = json!({"app": "web"});
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(good).unwrap(),
        )
        .await
        .expect("a matching selector is accepted");
    let breaking = json!({"spec": {"template": {"metadata": {"labels": {"app": "website", "version": "v1"}}}}});
    let e = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&breaking))
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => assert_eq!(s.code, 422, "merge patch: {s:?}"),
        other => panic!("merge patch: {other}"),
    }
    let mut current = deployments.get("web").await.unwrap();
    current
        .spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .labels = Some([("app".to_string(), "other".to_string())].into());
    match deployments
        .replace("web", &PostParams::default(), &current)
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 422, "replace: {s:?}"),
        other => panic!("replace: {other:?}"),
    }

    // kubectl shows the API server's words (kubectl needs the kubectl protocols, which this
    // sandbox was started with, as `happy-sandbox up` starts it).
    {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("bad.yaml");
        let mut renamed = mismatched.clone();
        renamed["metadata"]["name"] = json!("web2");
        std::fs::write(&manifest, serde_json::to_string(&renamed).unwrap()).unwrap();
        let out = tokio::process::Command::new("kubectl")
            .args(["apply", "-f"])
            .arg(&manifest)
            .env("KUBECONFIG", sandbox.kubeconfig_path())
            .output()
            .await
            .expect("kubectl on PATH");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
        err.contains(r#"The Deployment "web2" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"website", "version":"v1"}: `selector` does not match template `labels`"#),
        "{err}"
    );
    }
}

/// One raw request through the client (its TLS and token), answered as it comes: status,
/// headers and body.
async fn send(
    client: &Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .send(req.body(kube::client::Body::from(body)).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let (parts, body) = res.into_parts();
    let body = if parts.status == http::StatusCode::SWITCHING_PROTOCOLS {
        Vec::new()
    } else {
        body.collect_bytes().await.unwrap().to_vec()
    };
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A length-delimited protobuf field (every length here is under 128).
fn ld(field: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![(field << 3) | 2, u8::try_from(data.len()).unwrap()];
    v.extend_from_slice(data);
    v
}

/// The requests only kubectl makes (happy-sandbox `src/api/kubectl.rs`): a sandbox started
/// with the kubectl protocols (what `happy-sandbox up` has) answers them; one without (the
/// suite's) gives each a `Status` with the API server's code for that refusal and a message
/// naming what is missing, and the same requests in kube-rs's forms are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_only_requests_need_the_protocols() {
    let _pods = pod_addresses::shared().await;
    for with in [false, true] {
        let options = if with {
            common::with_kubectl()
        } else {
            happy_sandbox::SandboxOptions::default()
        };
        kubectl_only_requests(with, options).await;
    }
}

/// [`kubectl_only_requests_need_the_protocols`] on one sandbox: answered if `with`.
async fn kubectl_only_requests(with: bool, options: happy_sandbox::SandboxOptions) {
    let (sandbox, _rt) = common::fake_sandbox_with(options).await;
    let client = client(&sandbox).await;
    let refused =
        |what: &str, (code, _, body): &(u16, http::HeaderMap, String), want: u16, reason: &str| {
            let s: serde_json::Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("{what}: not a Status ({e}): {body}"));
            assert_eq!(
                (
                    *code,
                    s["kind"].as_str(),
                    s["code"].as_u64(),
                    s["reason"].as_str()
                ),
                (want, Some("Status"), Some(u64::from(want)), Some(reason)),
                "{what}: {body}"
            );
            let message = s["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("without the kubectl protocols"),
                "{what}: {message}"
            );
        };

    // `kubectl get namespaces`: a Table first, plain JSON as a fallback
    // (kubectl v0.33.0 pkg/cmd/get/get.go, transformRequests).
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let got = send(
        &client,
        "GET",
        "/api/v1/namespaces",
        &[("accept", table)],
        vec![],
    )
    .await;
    if with {
        assert_eq!(got.0, 200, "{}", got.2);
        let t: serde_json::Value = serde_json::from_str(&got.2).unwrap();
        assert_eq!(t["kind"], "Table", "{t}");
        assert!(t["rows"].as_array().is_some_and(|r| !r.is_empty()), "{t}");
    } else {
        refused("kubectl get namespaces", &got, 406, "NotAcceptable");
    }
    let got = send(
        &client,
        "GET",
        "/api/v1/namespaces/default",
        &[("accept", table)],
        vec![],
    )
    .await;
    if with {
        assert_eq!(got.0, 200, "{}", got.2);
        assert!(got.2.contains(r#""kind":"Table""#), "{}", got.2);
    } else {
        refused("kubectl get namespace default", &got, 406, "NotAcceptable");
    }
    // `kubectl get namespaces -w`: one Table per event.
    let got = send(
        &client,
        "GET",
        "/api/v1/namespaces?watch=1&timeoutSeconds=1",
        &[("accept", table)],
        vec![],
    )
    .await;
    if with {
        assert_eq!(got.0, 200, "{}", got.2);
        let first: serde_json::Value =
            serde_json::from_str(got.2.lines().next().unwrap_or_default()).unwrap();
        assert_eq!(first["object"]["kind"], "Table", "{first}");
    } else {
        refused("kubectl get namespaces -w", &got, 406, "NotAcceptable");
    }
    // kube-rs asks for JSON: a list either way.
    let got = send(
        &client,
        "GET",
        "/api/v1/namespaces",
        &[("accept", "application/json")],
        vec![],
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.2);
    assert!(got.2.contains(r#""kind":"NamespaceList""#), "{}", got.2);

    // `kubectl create namespace pb`: a protobuf body.
    let meta = ld(1, b"pb");
    let type_meta = [ld(1, b"v1"), ld(2, b"Namespace")].concat();
    let body = [b"k8s\0".to_vec(), ld(1, &type_meta), ld(2, &ld(1, &meta))].concat();
    let got = send(
        &client,
        "POST",
        "/api/v1/namespaces",
        &[("content-type", "application/vnd.kubernetes.protobuf")],
        body,
    )
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if with {
        assert_eq!(got.0, 201, "{}", got.2);
        namespaces.get("pb").await.expect("namespace pb created");
    } else {
        refused(
            "kubectl create namespace",
            &got,
            415,
            "UnsupportedMediaType",
        );
        assert!(namespaces.get_opt("pb").await.unwrap().is_none());
    }

    // `kubectl apply` reads /openapi/v3.
    let got = send(&client, "GET", "/openapi/v3", &[], vec![]).await;
    if with {
        assert_eq!(got.0, 200, "{}", got.2);
        assert!(got.2.contains("api/v1"), "{}", got.2);
    } else {
        refused("GET /openapi/v3", &got, 404, "NotFound");
    }

    // `kubectl port-forward`: SPDY/3.1 tunnelled in a WebSocket, then plain SPDY/3.1.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "pf"},
            "spec": {"containers": [{"name": "app", "image": "nicholasjackson/fake-service:v0.26.2"}]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let pf = "/api/v1/namespaces/default/pods/pf/portforward";
    let tunnel = send(
        &client,
        "GET",
        pf,
        &[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ],
        vec![],
    )
    .await;
    let spdy = send(
        &client,
        "POST",
        pf,
        &[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "portforward.k8s.io"),
        ],
        vec![],
    )
    .await;
    if with {
        assert_eq!(tunnel.0, 101, "{}", tunnel.2);
        assert_eq!(
            tunnel
                .1
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("SPDY/3.1+portforward.k8s.io")
        );
        assert_eq!(spdy.0, 101, "{}", spdy.2);
        assert_eq!(
            spdy.1
                .get("x-stream-protocol-version")
                .and_then(|v| v.to_str().ok()),
            Some("portforward.k8s.io")
        );
    } else {
        refused(
            "kubectl port-forward (tunnelled)",
            &tunnel,
            400,
            "BadRequest",
        );
        refused("kubectl port-forward (SPDY)", &spdy, 400, "BadRequest");
    }
    sandbox.shutdown().await;
}

/// A deleted pod stays `Terminating` while its proxy drains: listed with deletionTimestamp and
/// its grace period, not Ready, out of the Endpoints, in the EndpointSlice as terminating;
/// then it goes, which a watch (`kubectl wait --for=delete`) sees. A pod without a proxy goes
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_with_a_proxy_is_terminating_until_the_proxy_drained() {
    let _pods = pod_addresses::shared().await;
    let (sandbox, _rt) = fake_sandbox().await;
    let client = client(&sandbox).await;
    create_namespace(&client, "drain").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "drain");
    let pod = |name: &str, containers: serde_json::Value| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": containers},
        }))
        .unwrap()
    };
    let meshed = pod(
        "meshed",
        json!([{"name": "app", "image": "app:1"}, {"name": "istio-proxy", "image": "proxyv2:1"}]),
    );
    let plain = pod("plain", json!([{"name": "app", "image": "app:1"}]));
    for p in [&meshed, &plain] {
        pods.create(&PostParams::default(), p).await.unwrap();
    }
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "drain");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    ready_pods(&pods, "app=web", 2).await;

    pods.delete("meshed", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("plain", &DeleteParams::default())
        .await
        .unwrap();
    let listed = pods
        .get("meshed")
        .await
        .expect("still listed while draining");
    assert!(listed.metadata.deletion_timestamp.is_some());
    assert_eq!(listed.metadata.deletion_grace_period_seconds, Some(30));
    eventually("meshed not Ready while terminating", LIMIT, || async {
        let p = pods.get("meshed").await.ok()?;
        (!is_ready(&p)).then_some(())
    })
    .await;
    let slices: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "drain",
        &kube::discovery::ApiResource::erase::<k8s_openapi::api::discovery::v1::EndpointSlice>(&()),
    );
    eventually(
        "the EndpointSlice to keep meshed as terminating",
        LIMIT,
        || async {
            let list = slices.list(&ListParams::default()).await.ok()?;
            let eps = list.items.first()?.data["endpoints"].as_array()?.clone();
            eps.iter()
                .any(|e| {
                    e["targetRef"]["name"] == "meshed"
                        && e["conditions"]
                            == json!({"ready": false, "serving": false, "terminating": true})
                })
                .then_some(())
        },
    )
    .await;
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "drain");
    let e = eps.get("web").await.unwrap();
    let listed_ips = serde_json::to_string(&e.subsets).unwrap();
    assert!(
        !listed_ips.contains(&listed.status.unwrap().pod_ip.unwrap()),
        "Endpoints drop a terminating pod: {listed_ips}"
    );
    // `kubectl wait --for=delete`: a watch until the object is gone.
    let uid = listed.metadata.uid.clone().unwrap();
    tokio::time::timeout(
        LIMIT,
        kube::runtime::wait::await_condition(
            pods.clone(),
            "meshed",
            kube::runtime::wait::conditions::is_deleted(&uid),
        ),
    )
    .await
    .expect("meshed goes once the drain ends")
    .unwrap();
    assert!(matches!(pods.get("plain").await, Err(kube::Error::Api(e)) if e.code == 404));
    sandbox.shutdown().await;
}
