//! Pods: the scheduler and the kubelet's status half. New pods are bound to the sandbox node
//! and handed to `Runtime::run_pod`; the runtime's `PodReport`s become `status` (phase, IPs,
//! conditions, container statuses); a pod marked for deletion stays `Terminating` while its
//! proxy drains (if it has one), is stopped through `Runtime::stop_pod`, and then removed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::events::record;
use super::{Cluster, NODE_NAME, gr, next_event};
use crate::cri::{ContainerReport, ContainerState, PodReport};
use crate::store::{EventType, StoreEvent, now};

const COMPONENT: &str = "kubelet";

fn ts(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| {
            jiff::Timestamp::from_second(t.as_second())
                .unwrap_or(t)
                .to_string()
        })
        .unwrap_or_else(|_| now())
}

/// Set a condition, keeping its transition time when the status did not change (so a
/// status write that changes nothing is a no-op for the store).
pub fn set_condition(
    conditions: &mut Value,
    ctype: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
) {
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let status_s = if status { "True" } else { "False" };
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    let mut c = json!({"type": ctype, "status": status_s, "lastProbeTime": null});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    match list.iter_mut().find(|x| x["type"] == ctype) {
        Some(existing) => {
            c["lastTransitionTime"] = if existing["status"] == status_s {
                existing["lastTransitionTime"].clone()
            } else {
                json!(now())
            };
            *existing = c;
        }
        None => {
            c["lastTransitionTime"] = json!(now());
            list.push(c);
        }
    }
}

fn container_status(c: &ContainerReport, old: Option<&Value>, pod_uid: &str) -> Value {
    let (state, ready, started) = match &c.state {
        ContainerState::Waiting { reason, message } => (
            json!({"waiting": {"reason": reason, "message": message}}),
            false,
            false,
        ),
        ContainerState::Running { started_at, ready } => (
            json!({"running": {"startedAt": ts(*started_at)}}),
            *ready,
            true,
        ),
        ContainerState::Terminated {
            exit_code,
            reason,
            message,
            finished_at,
        } => (
            json!({"terminated": {"exitCode": exit_code, "reason": reason, "message": message,
                "finishedAt": ts(*finished_at)}}),
            false,
            false,
        ),
    };
    let image = if c.image.contains('/') || c.image.contains('.') {
        c.image.clone()
    } else {
        format!("docker.io/library/{}", c.image)
    };
    let mut s = json!({
        "name": c.name,
        "image": image,
        "imageID": "",
        "ready": ready,
        "started": started,
        "restartCount": c.restart_count,
        "state": state,
    });
    if !matches!(c.state, ContainerState::Waiting { .. }) {
        s["imageID"] = json!(format!("{image}@sha256:happy-sandbox"));
        s["containerID"] = json!(format!("happy://{pod_uid}/{}", c.name));
    }
    if let Some(ContainerState::Terminated {
        exit_code,
        reason,
        message,
        finished_at,
    }) = &c.last_state
    {
        s["lastState"] = json!({"terminated": {"exitCode": exit_code, "reason": reason,
            "message": message, "finishedAt": ts(*finished_at)}});
    } else if let Some(last) = old.and_then(|o| o.get("lastState")) {
        s["lastState"] = last.clone();
    } else {
        s["lastState"] = json!({});
    }
    s
}

/// Apply a runtime report to the pod's status; emits the container events a kubelet would.
fn apply_report(cluster: &Cluster, report: &PodReport) {
    let pods = gr("", "pods");
    if !report.events.is_empty()
        && let Some(pod) = cluster
            .store
            .get(&pods, &report.namespace, &report.name)
            .filter(|p| p["metadata"]["uid"] == report.uid.as_str())
    {
        for e in &report.events {
            record(
                cluster,
                &pod,
                &e.event_type,
                &e.reason,
                &e.message,
                COMPONENT,
            );
        }
    }
    let mut events: Vec<(String, String, String)> = Vec::new();
    let result = cluster
        .store
        .modify(&pods, &report.namespace, &report.name, |pod| {
            if pod["metadata"]["uid"] != report.uid.as_str() {
                return Err(crate::store::StoreError::Invalid("stale report".into()));
            }
            let uid = report.uid.clone();
            let spec_inits: Vec<Value> = pod["spec"]["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let sidecar = |name: &str| {
                spec_inits
                    .iter()
                    .any(|c| c["name"] == name && c["restartPolicy"] == "Always")
            };
            let old_statuses: Vec<Value> = ["containerStatuses", "initContainerStatuses"]
                .iter()
                .flat_map(|f| pod["status"][f].as_array().cloned().unwrap_or_default())
                .collect();
            let find_old = |name: &str| old_statuses.iter().find(|s| s["name"] == name);
            let mut main = Vec::new();
            let mut init = Vec::new();
            for c in &report.containers {
                let old = find_old(&c.name);
                let s = container_status(c, old, &uid);
                // Events on transitions only.
                let was_running = old.is_some_and(|o| o["state"].get("running").is_some());
                match &c.state {
                    ContainerState::Running { .. } if !was_running => {
                        events.push((
                            "Normal".into(),
                            "Created".into(),
                            format!("Created container: {}", c.name),
                        ));
                        events.push((
                            "Normal".into(),
                            "Started".into(),
                            format!("Started container {}", c.name),
                        ));
                    }
                    // The image manager's events (Pulling, Pulled, Failed "Failed to pull
                    // image …", BackOff) come from the runtime with the report; the pod
                    // sync's own error events follow a container into a pull error
                    // (kubernetes pkg/kubelet/kuberuntime/kuberuntime_container.go
                    // `startContainer`: Failed "Error: <reason>").
                    ContainerState::Waiting { reason, .. }
                        if (reason == "ErrImagePull" || reason == "ImagePullBackOff")
                            && old.is_none_or(|o| {
                                o["state"]["waiting"]["reason"] != reason.as_str()
                            }) =>
                    {
                        events.push((
                            "Warning".into(),
                            "Failed".into(),
                            format!("Error: {reason}"),
                        ));
                    }
                    _ => {}
                }
                if c.init { init.push(s) } else { main.push(s) }
            }
            let ready_of = |list: &[Value]| list.iter().all(|s| s["ready"] == true);
            let sidecars_ready = init
                .iter()
                .filter(|s| sidecar(s["name"].as_str().unwrap_or_default()))
                .all(|s| s["ready"] == true);
            let inits_done = init.iter().all(|s| {
                let name = s["name"].as_str().unwrap_or_default();
                if sidecar(name) {
                    s["started"] == true
                } else {
                    s["state"]["terminated"]["exitCode"] == 0
                }
            });
            let all_running =
                !main.is_empty() && main.iter().all(|s| s["state"].get("running").is_some());
            let all_terminated =
                !main.is_empty() && main.iter().all(|s| s["state"].get("terminated").is_some());
            let restart_always =
                pod["spec"]["restartPolicy"].as_str().unwrap_or("Always") == "Always";
            let phase = if all_running {
                "Running"
            } else if all_terminated && !restart_always {
                if main
                    .iter()
                    .all(|s| s["state"]["terminated"]["exitCode"] == 0)
                {
                    "Succeeded"
                } else {
                    "Failed"
                }
            } else if pod["status"]["phase"] == "Running" {
                "Running"
            } else {
                "Pending"
            };
            let containers_ready = !main.is_empty() && ready_of(&main) && sidecars_ready;
            let status = &mut pod["status"];
            status["phase"] = json!(phase);
            status["hostIP"] = json!("127.0.0.1");
            status["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
            status["podIP"] = json!(report.pod_ip.to_string());
            status["podIPs"] = json!([{"ip": report.pod_ip.to_string()}]);
            if status["startTime"].is_null() {
                status["startTime"] = json!(now());
            }
            status["containerStatuses"] = json!(main);
            if !init.is_empty() {
                status["initContainerStatuses"] = json!(init);
            }
            let not_ready: Vec<String> = main
                .iter()
                .chain(init.iter())
                .filter(|s| {
                    s["ready"] != true
                        && (s["state"].get("terminated").is_none()
                            || sidecar(s["name"].as_str().unwrap_or_default()))
                })
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect();
            let msg = format!("containers with unready status: [{}]", not_ready.join(" "));
            let conds = &mut status["conditions"];
            set_condition(conds, "PodReadyToStartContainers", true, None, None);
            set_condition(
                conds,
                "Initialized",
                inits_done,
                (!inits_done).then_some("ContainersNotInitialized"),
                None,
            );
            set_condition(
                conds,
                "Ready",
                containers_ready,
                (!containers_ready).then_some("ContainersNotReady"),
                (!containers_ready).then_some(msg.as_str()),
            );
            set_condition(
                conds,
                "ContainersReady",
                containers_ready,
                (!containers_ready).then_some("ContainersNotReady"),
                (!containers_ready).then_some(msg.as_str()),
            );
            set_condition(conds, "PodScheduled", true, None, None);
            Ok(())
        });
    if let Ok(pod) = result {
        for (t, reason, message) in events {
            record(cluster, &pod, &t, &reason, &message, COMPONENT);
        }
    }
}

/// Bind a new pod and start it in the runtime.
fn schedule(cluster: &Cluster, pod: &Value, reports: &mpsc::UnboundedSender<PodReport>) {
    let pods = gr("", "pods");
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Ok(bound) = cluster.store.modify(&pods, &ns, &name, |p| {
        if !p["spec"]["nodeName"].is_null() {
            return Err(crate::store::StoreError::Invalid("already bound".into()));
        }
        // The event being handled may be older than the pod: never start one being deleted.
        if p["metadata"]["deletionTimestamp"].is_string() {
            return Err(crate::store::StoreError::Invalid("being deleted".into()));
        }
        p["spec"]["nodeName"] = json!(NODE_NAME);
        set_condition(
            &mut p["status"]["conditions"],
            "PodScheduled",
            true,
            None,
            None,
        );
        Ok(())
    }) else {
        return;
    };
    record(
        cluster,
        &bound,
        "Normal",
        "Scheduled",
        &format!("Successfully assigned {ns}/{name} to {NODE_NAME}"),
        "default-scheduler",
    );
    let typed: k8s_openapi::api::core::v1::Pod = match serde_json::from_value(bound.clone()) {
        Ok(p) => p,
        Err(e) => {
            fail(
                cluster,
                &ns,
                &name,
                "InvalidPodSpec",
                &format!("the pod spec cannot be run: {e}"),
            );
            return;
        }
    };
    match cluster.runtime.run_pod(&typed, reports.clone()) {
        Ok(ip) => {
            let _ = cluster.store.modify(&pods, &ns, &name, |p| {
                p["status"]["podIP"] = json!(ip.to_string());
                p["status"]["podIPs"] = json!([{"ip": ip.to_string()}]);
                p["status"]["hostIP"] = json!("127.0.0.1");
                p["status"]["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
                if p["status"]["startTime"].is_null() {
                    p["status"]["startTime"] = json!(now());
                }
                Ok(())
            });
        }
        Err(e) => fail(
            cluster,
            &ns,
            &name,
            "FailedCreatePodSandBox",
            &e.to_string(),
        ),
    }
}

fn fail(cluster: &Cluster, ns: &str, name: &str, reason: &str, message: &str) {
    if let Ok(p) = cluster.store.modify(&gr("", "pods"), ns, name, |p| {
        p["status"]["phase"] = json!("Failed");
        p["status"]["reason"] = json!(reason);
        p["status"]["message"] = json!(message);
        Ok(())
    }) {
        record(cluster, &p, "Warning", reason, message, COMPONENT);
    }
}

/// Istio's `terminationDrainDuration` default (istio/istio pkg/config/mesh/mesh.go
/// `DefaultProxyConfig`, 5 s; 1.28–1.30).
pub const ISTIO_TERMINATION_DRAIN: Duration = Duration::from_secs(5);

/// How long a pod's proxy keeps it alive after SIGTERM: a pod running pilot-agent (a sidecar
/// or gateway `istio-proxy` container, classic or native) drains Envoy's listeners and exits
/// only after `terminationDrainDuration` (istio/istio pkg/envoy/agent.go `terminate`: without
/// EXIT_ON_ZERO_ACTIVE_CONNECTIONS, "Graceful termination period is 5s, starting…", then
/// abort; 1.28–1.30), or when the grace period ends and the kubelet sends SIGKILL
/// (Kubernetes docs, "Pod Lifecycle", termination of Pods). The workshop's apps (fake-service,
/// curl, `tail -f`) exit on SIGTERM at once, so a pod without a proxy goes at once.
fn proxy_drain(pod: &Value) -> Option<Duration> {
    let spec = &pod["spec"];
    let has_proxy = ["containers", "initContainers"].iter().any(|f| {
        spec[f].as_array().into_iter().flatten().any(|c| {
            c["name"] == "istio-proxy" && (*f == "containers" || c["restartPolicy"] == "Always")
        })
    });
    if !has_proxy {
        return None;
    }
    let grace = pod["metadata"]["deletionGracePeriodSeconds"]
        .as_u64()
        .map_or(ISTIO_TERMINATION_DRAIN, Duration::from_secs);
    Some(ISTIO_TERMINATION_DRAIN.min(grace)).filter(|d| !d.is_zero())
}

/// While the proxy drains, the app containers have exited (SIGTERM): the kubelet reports them
/// not ready, so the pod is not Ready and `kubectl get pods` shows `1/2 Terminating`.
fn mark_apps_not_ready(cluster: &Cluster, ns: &str, name: &str, uid: &str) {
    let _ = cluster.store.modify(&gr("", "pods"), ns, name, |p| {
        if p["metadata"]["uid"] != uid {
            return Err(crate::store::StoreError::Invalid("another pod".into()));
        }
        let mut exited = Vec::new();
        for s in p["status"]["containerStatuses"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if s["name"] != "istio-proxy" {
                s["ready"] = json!(false);
                exited.extend(s["name"].as_str().map(String::from));
            }
        }
        let msg = format!("containers with unready status: [{}]", exited.join(" "));
        for c in ["Ready", "ContainersReady"] {
            set_condition(
                &mut p["status"]["conditions"],
                c,
                false,
                Some("ContainersNotReady"),
                Some(&msg),
            );
        }
        Ok(())
    });
}

/// Stop a pod marked for deletion (after its proxy's drain, see [`proxy_drain`]), then remove
/// it. Until then it is listed with its deletionTimestamp (`Terminating`); endpoints dropped
/// it when it was marked.
fn terminate(
    cluster: &Arc<Cluster>,
    pod: &Value,
    stopping: &Arc<Mutex<HashSet<String>>>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !stopping
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(uid.clone())
    {
        return;
    }
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Bound per the pod as stored now, not per the (possibly older) event: a pod bound after
    // this event was emitted is running, and must be stopped.
    let bound = cluster
        .store
        .get(&gr("", "pods"), &ns, &name)
        .filter(|current| current["metadata"]["uid"] == pod["metadata"]["uid"])
        .map_or(!pod["spec"]["nodeName"].is_null(), |current| {
            !current["spec"]["nodeName"].is_null()
        });
    if bound {
        for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
            let cname = c["name"].as_str().unwrap_or_default();
            record(
                cluster,
                pod,
                "Normal",
                "Killing",
                &format!("Stopping container {cname}"),
                COMPONENT,
            );
        }
    }
    let cluster = cluster.clone();
    let stopping = stopping.clone();
    let drain = proxy_drain(pod).filter(|_| bound);
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        if let Some(drain) = drain {
            mark_apps_not_ready(&cluster, &ns, &name, &uid);
            // The sandbox stopping ends the drain (everything stops anyway).
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                () = shutdown.cancelled() => {}
            }
        }
        if bound {
            cluster.runtime.stop_pod(&ns, &name).await;
        }
        // The uid stays in `stopping`: the DELETED event that follows must not stop it again.
        let _ = cluster
            .store
            .delete(&gr("", "pods"), &ns, &name, Some(&uid));
        drop(stopping);
    });
}

fn handle(
    cluster: &Arc<Cluster>,
    pod: &Value,
    reports: &mpsc::UnboundedSender<PodReport>,
    stopping: &Arc<Mutex<HashSet<String>>>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        terminate(cluster, pod, stopping, tasks, shutdown);
    } else if pod["spec"]["nodeName"].is_null() {
        schedule(cluster, pod, reports);
    }
}

pub async fn run(cluster: Arc<Cluster>, shutdown: CancellationToken, tasks: TaskTracker) {
    let pods = gr("", "pods");
    let Ok((_, mut rx)) = cluster.store.subscribe(None) else {
        return;
    };
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<PodReport>();
    let stopping = Arc::new(Mutex::new(HashSet::new()));
    let resync = |cluster: &Arc<Cluster>| {
        for p in cluster.store.list(&pods, None).0 {
            handle(cluster, &p, &report_tx, &stopping, &tasks, &shutdown);
        }
    };
    resync(&cluster);
    loop {
        tokio::select! {
            report = report_rx.recv() => {
                if let Some(r) = report {
                    apply_report(&cluster, &r);
                }
            }
            ev = next_event(&mut rx, &shutdown) => match ev {
                None => break,
                Some(None) => resync(&cluster),
                Some(Some(ev)) => {
                    on_event(&cluster, &ev, &pods, &report_tx, &stopping, &tasks, &shutdown)
                }
            },
        }
    }
}

fn on_event(
    cluster: &Arc<Cluster>,
    ev: &StoreEvent,
    pods: &crate::store::GroupResource,
    reports: &mpsc::UnboundedSender<PodReport>,
    stopping: &Arc<Mutex<HashSet<String>>>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    if ev.resource != *pods {
        return;
    }
    match ev.kind {
        EventType::Added | EventType::Modified => {
            handle(cluster, &ev.object, reports, stopping, tasks, shutdown)
        }
        // Removed without going through termination (should not happen): make sure the
        // runtime lets go of it.
        EventType::Deleted => {
            let uid = ev.object["metadata"]["uid"].as_str().unwrap_or_default();
            let known = stopping
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(uid);
            if !known && !ev.object["spec"]["nodeName"].is_null() {
                let stop = cluster.runtime.stop_pod(ev.namespace(), ev.name());
                tasks.spawn(stop);
            }
        }
    }
}
