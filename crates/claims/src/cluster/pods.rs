//! What the suite reads off pods and deployments without asking the cluster: readiness as
//! `kubectl get pods` shows it, sidecars (classic or native), and rollout completion.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodSpec};

/// The Ready condition is True.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod is being deleted.
pub fn pod_is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// `(ready, total)` as kubectl's READY column counts it ("2/2"): regular containers plus
/// native sidecars (init containers with `restartPolicy: Always`, which is how Istio 1.27+
/// injects istio-proxy on Kubernetes 1.33+).
pub fn ready_containers(pod: &Pod) -> (usize, usize) {
    let Some(spec) = &pod.spec else { return (0, 0) };
    let sidecars: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let total = spec.containers.len() + sidecars.len();
    let status = pod.status.as_ref();
    let ready_main = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().filter(|c| c.ready).count());
    let ready_sidecars = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter()
                .filter(|c| c.ready && sidecars.contains(&c.name.as_str()))
                .count()
        });
    (ready_main + ready_sidecars, total)
}

/// A container `name` runs beside the app: a regular container, or a restartable init
/// container (native sidecar).
pub fn sidecar_present(spec: &PodSpec, name: &str) -> bool {
    spec.containers.iter().any(|c| c.name == name)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
}

/// Every container name of the pod that has logs: regular containers, then init containers.
pub fn container_names(pod: &Pod) -> Vec<String> {
    let Some(spec) = &pod.spec else { return vec![] };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect()
}

/// `Ok` when the deployment's rollout is complete as its status tells (the controller saw
/// the latest spec; updated, ready and available replicas, and all replicas, equal the
/// desired count), else what is still missing.
pub fn rollout_complete(deployment: &Deployment) -> Result<(), String> {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = &deployment.status else {
        return Err("no status yet".into());
    };
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Err(format!(
            "the controller has not seen generation {generation} yet (observed {observed})"
        ));
    }
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Err(format!(
            "progress deadline exceeded: {}",
            c.message.as_deref().unwrap_or("")
        ));
    }
    let counts = [
        ("updated", status.updated_replicas.unwrap_or(0)),
        ("ready", status.ready_replicas.unwrap_or(0)),
        ("available", status.available_replicas.unwrap_or(0)),
        ("total", status.replicas.unwrap_or(0)),
    ];
    let off: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n != desired)
        .map(|(what, n)| format!("{what} {n}"))
        .collect();
    if off.is_empty() {
        Ok(())
    } else {
        Err(format!("{} of {desired} desired replicas", off.join(", ")))
    }
}

/// One line per pod: name, READY column, phase, and why it is not ready.
pub fn describe_pods(pods: &[Pod]) -> String {
    if pods.is_empty() {
        return "no pods".into();
    }
    pods.iter()
        .map(|p| {
            let (ready, total) = ready_containers(p);
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("Unknown");
            let waiting: Vec<String> = p
                .status
                .as_ref()
                .into_iter()
                .flat_map(|s| {
                    s.container_statuses
                        .iter()
                        .flatten()
                        .chain(s.init_container_statuses.iter().flatten())
                })
                .filter_map(|c| {
                    let w = c.state.as_ref()?.waiting.as_ref()?;
                    Some(format!(
                        "{} waiting: {} {}",
                        c.name,
                        w.reason.as_deref().unwrap_or(""),
                        w.message.as_deref().unwrap_or("")
                    ))
                })
                .collect();
            let name = p.metadata.name.as_deref().unwrap_or("?");
            let terminating = if pod_is_terminating(p) {
                " Terminating"
            } else {
                ""
            };
            let extra = if waiting.is_empty() {
                String::new()
            } else {
                format!(" ({})", waiting.join("; ").trim())
            };
            format!("{name} {ready}/{total} {phase}{terminating}{extra}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn classic_sidecar_pod(proxy_ready: bool) -> Pod {
        pod(serde_json::json!({
            "metadata": {"name": "service-a-1"},
            "spec": {
                "initContainers": [{"name": "istio-init", "image": "proxyv2"}],
                "containers": [{"name": "service-a", "image": "happy"}, {"name": "istio-proxy", "image": "proxyv2"}]
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": if proxy_ready { "True" } else { "False" }}],
                "initContainerStatuses": [{"name": "istio-init", "ready": false, "restartCount": 0, "image": "", "imageID": ""}],
                "containerStatuses": [
                    {"name": "service-a", "ready": true, "restartCount": 0, "image": "", "imageID": ""},
                    {"name": "istio-proxy", "ready": proxy_ready, "restartCount": 0, "image": "", "imageID": ""}
                ]
            }
        }))
    }

    fn native_sidecar_pod() -> Pod {
        pod(serde_json::json!({
            "metadata": {"name": "service-a-2"},
            "spec": {
                "initContainers": [
                    {"name": "istio-init", "image": "proxyv2"},
                    {"name": "istio-proxy", "image": "proxyv2", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "service-a", "image": "happy"}]
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "istio-init", "ready": false, "restartCount": 0, "image": "", "imageID": ""},
                    {"name": "istio-proxy", "ready": true, "restartCount": 0, "image": "", "imageID": ""}
                ],
                "containerStatuses": [{"name": "service-a", "ready": true, "restartCount": 0, "image": "", "imageID": ""}]
            }
        }))
    }

    #[test]
    fn readiness() {
        assert!(pod_is_ready(&classic_sidecar_pod(true)));
        assert!(!pod_is_ready(&classic_sidecar_pod(false)));
        assert!(!pod_is_ready(&pod(
            serde_json::json!({"metadata": {"name": "x"}})
        )));
        assert_eq!(ready_containers(&classic_sidecar_pod(true)), (2, 2));
        assert_eq!(ready_containers(&classic_sidecar_pod(false)), (1, 2));
    }

    #[test]
    fn native_sidecars_count() {
        let p = native_sidecar_pod();
        assert_eq!(
            ready_containers(&p),
            (2, 2),
            "istio-init is not counted, istio-proxy is"
        );
        let spec = p.spec.as_ref().unwrap();
        assert!(sidecar_present(spec, "istio-proxy"));
        assert!(
            !sidecar_present(spec, "istio-init"),
            "a plain init container is no sidecar"
        );
        assert!(sidecar_present(
            classic_sidecar_pod(true).spec.as_ref().unwrap(),
            "istio-proxy"
        ));
        let plain = pod(
            serde_json::json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "service-a"}]}}),
        );
        assert!(!sidecar_present(
            plain.spec.as_ref().unwrap(),
            "istio-proxy"
        ));
        assert_eq!(
            container_names(&p),
            vec!["service-a", "istio-init", "istio-proxy"]
        );
    }

    fn deployment(generation: i64, observed: i64, counts: [i32; 4]) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "service-a", "generation": generation},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "service-a"}}, "template": {}},
            "status": {
                "observedGeneration": observed,
                "updatedReplicas": counts[0],
                "readyReplicas": counts[1],
                "availableReplicas": counts[2],
                "replicas": counts[3]
            }
        }))
        .unwrap()
    }

    #[test]
    fn rollout_completion() {
        assert_eq!(rollout_complete(&deployment(2, 2, [1, 1, 1, 1])), Ok(()));
        let stale = rollout_complete(&deployment(3, 2, [1, 1, 1, 1])).unwrap_err();
        assert!(stale.contains("generation 3"), "{stale}");
        let old_pod_left = rollout_complete(&deployment(2, 2, [1, 1, 1, 2])).unwrap_err();
        assert!(old_pod_left.contains("total 2"), "{old_pod_left}");
        let not_ready = rollout_complete(&deployment(2, 2, [1, 0, 0, 1])).unwrap_err();
        assert!(
            not_ready.contains("ready 0") && not_ready.contains("available 0"),
            "{not_ready}"
        );
        let mut no_status = deployment(1, 1, [1, 1, 1, 1]);
        no_status.status = None;
        assert!(rollout_complete(&no_status).is_err());
    }

    #[test]
    fn pod_descriptions() {
        let text = describe_pods(&[classic_sidecar_pod(false), native_sidecar_pod()]);
        assert_eq!(text, "service-a-1 1/2 Running, service-a-2 2/2 Running");
        assert_eq!(describe_pods(&[]), "no pods");
    }
}

/// The pods as `kubectl get pods` prints them (NAME, READY, STATUS, RESTARTS, AGE), for the
/// reports: what the workshop's reader sees. READY counts as [`ready_containers`]; STATUS is
/// the pod's reason or phase, a container's waiting or terminated reason when it has one, and
/// `Terminating` for a pod being deleted; RESTARTS sums the containers' restarts (native
/// sidecars included); AGE is [`human_age`] of the pod's creation. This follows `printPod` of
/// kubernetes/kubernetes `pkg/printers/internalversion/printers.go` (v1.35) in what the
/// workshop's pods show; its rarer cases (init containers still running, `SchedulingGated`) read
/// as the phase here.
pub fn pod_table(pods: &[Pod], namespace: &str, now: jiff::Timestamp) -> String {
    if pods.is_empty() {
        return format!("No resources found in {namespace} namespace.");
    }
    let mut rows = vec![[
        "NAME".to_string(),
        "READY".into(),
        "STATUS".into(),
        "RESTARTS".into(),
        "AGE".into(),
    ]];
    for pod in pods {
        let (ready, total) = ready_containers(pod);
        let status = pod.status.as_ref();
        let containers = || {
            status.into_iter().flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            })
        };
        let mut reason = status
            .and_then(|s| s.reason.clone().or_else(|| s.phase.clone()))
            .unwrap_or_else(|| "Unknown".into());
        for c in status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            let state = c.state.as_ref();
            if let Some(r) = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
                .or_else(|| {
                    state
                        .and_then(|s| s.terminated.as_ref())
                        .and_then(|t| t.reason.clone())
                })
            {
                reason = r;
            }
        }
        if pod_is_terminating(pod) {
            reason = "Terminating".into();
        }
        let restarts: i32 = containers().map(|c| c.restart_count).sum();
        let age = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| {
                let secs = now.as_second() - t.0.as_second();
                human_age(secs.max(0) as u64)
            })
            .unwrap_or_else(|| "<unknown>".into());
        rows.push([
            pod.metadata.name.clone().unwrap_or_default(),
            format!("{ready}/{total}"),
            reason,
            restarts.to_string(),
            age,
        ]);
    }
    // kubectl's columns: each as wide as its widest cell, three spaces apart.
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("   ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An age as kubectl prints it (`HumanDuration` of kubernetes/apimachinery
/// `pkg/util/duration/duration.go`): `45s`, `3m12s`, `25m`, `4h12m`, `30h`, `3d`.
pub fn human_age(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            rest => format!("{h}h{rest}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{d}d"),
            rest => format!("{d}d{rest}h"),
        }
    } else {
        format!("{d}d")
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        for (secs, age) in [
            (45, "45s"),
            (119, "119s"),
            (192, "3m12s"),
            (240, "4m"),
            (1500, "25m"),
            (4 * 3600 + 720, "4h12m"),
            (30 * 3600, "30h"),
            (3 * 86_400, "3d"),
            (3 * 86_400 + 5 * 3600, "3d5h"),
            (20 * 86_400, "20d"),
        ] {
            assert_eq!(human_age(secs), age, "{secs}s");
        }
    }

    #[test]
    fn the_table_has_kubectls_columns() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "service-a-6d8f7c9b5d-x2x7k",
                         "creationTimestamp": "2026-12-07T03:00:00Z"},
            "spec": {"containers": [{"name": "service-a"}, {"name": "istio-proxy"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "service-a", "ready": true, "restartCount": 1, "image": "", "imageID": "",
                 "state": {"running": {}}},
                {"name": "istio-proxy", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}}]}
        }))
        .unwrap();
        let now: jiff::Timestamp = "2026-12-07T03:01:30Z".parse().unwrap();
        assert_eq!(
            pod_table(&[pod], "istioinaction", now),
            "NAME                         READY   STATUS    RESTARTS   AGE\n\
             service-a-6d8f7c9b5d-x2x7k   2/2     Running   1          90s"
        );
        assert_eq!(
            pod_table(&[], "istioinaction", now),
            "No resources found in istioinaction namespace."
        );
    }
}
