//! Deployments and ReplicaSets. A Deployment owns one ReplicaSet per pod template (named and
//! labelled with `pod-template-hash`); a template change rolls out by scaling the new
//! ReplicaSet up and the old ones down within maxSurge / maxUnavailable, so a one-replica
//! Deployment never drops to zero ready pods. A ReplicaSet keeps `replicas` pods.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::events::record;
use super::pod::set_condition;
use super::{Cluster, delete_object, gr, next_event};
use crate::store::selectors::LabelSelector;
use crate::store::{GroupResource, StoreEvent};

fn deployments() -> GroupResource {
    gr("apps", "deployments")
}
fn replicasets() -> GroupResource {
    gr("apps", "replicasets")
}
fn pods() -> GroupResource {
    gr("", "pods")
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}
fn uid(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or_default()
}
fn replicas(o: &Value) -> i64 {
    o["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn controlled_by(o: &Value, owner_uid: &str) -> bool {
    o["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|r| {
            r.iter()
                .any(|x| x["uid"] == owner_uid && x["controller"] == true)
        })
}

fn owner_ref(owner: &Value, kind: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name(owner), "uid": uid(owner),
        "controller": true, "blockOwnerDeletion": true}])
}

/// Kubernetes' pod-template-hash: FNV-1a of the template, in the "safe" alphabet.
fn template_hash(template: &Value) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in template.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    for c in h.to_string().bytes() {
        out.push(ALPHABET[(c as usize) % ALPHABET.len()] as char);
    }
    out.chars().take(10).collect()
}

/// "25%" of `total`, rounded up (surge) or down (unavailable), or a plain number.
fn int_or_percent(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => {
            if round_up {
                (25 * total + 99) / 100
            } else {
                25 * total / 100
            }
        }
    }
}

fn status_int(o: &Value, field: &str) -> i64 {
    o["status"][field].as_i64().unwrap_or(0)
}

fn set_replicas(cluster: &Cluster, d: &Value, rs: &Value, to: i64) {
    let from = replicas(rs);
    if from == to {
        return;
    }
    let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
    if cluster
        .store
        .modify(&replicasets(), ns, name(rs), |o| {
            o["spec"]["replicas"] = json!(to);
            Ok(())
        })
        .is_ok()
    {
        let verb = if to > from { "up" } else { "down" };
        record(
            cluster,
            d,
            "Normal",
            "ScalingReplicaSet",
            &format!("Scaled {verb} replica set {} from {from} to {to}", name(rs)),
            "deployment-controller",
        );
    }
}

fn reconcile_deployment(cluster: &Cluster, d: &Value) {
    if d["metadata"]["deletionTimestamp"].is_string() {
        return;
    }
    let ns = d["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let desired = replicas(d);
    let template = d["spec"]["template"].clone();
    let hash = template_hash(&template);
    let all_rs: Vec<Value> = cluster
        .store
        .list(&replicasets(), Some(&ns))
        .0
        .into_iter()
        .filter(|rs| controlled_by(rs, uid(d)))
        .collect();
    let new_rs = all_rs
        .iter()
        .find(|rs| rs["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
        .cloned();
    let old: Vec<Value> = all_rs
        .iter()
        .filter(|rs| rs["metadata"]["labels"]["pod-template-hash"] != hash.as_str())
        .cloned()
        .collect();
    let strategy = &d["spec"]["strategy"];
    let recreate = strategy["type"] == "Recreate";
    let max_surge = if recreate {
        0
    } else {
        int_or_percent(&strategy["rollingUpdate"]["maxSurge"], desired, true)
    };
    let mut max_unavailable = if recreate {
        desired
    } else {
        int_or_percent(&strategy["rollingUpdate"]["maxUnavailable"], desired, false)
    };
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let revision = all_rs
        .iter()
        .filter_map(|rs| {
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                .as_str()?
                .parse::<i64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    let new_rs = match new_rs {
        Some(rs) => rs,
        None => {
            let mut tpl = template.clone();
            tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let old_total: i64 = old.iter().map(replicas).sum();
            let start = if recreate && old_total > 0 {
                0
            } else {
                (desired + max_surge - old_total).clamp(0, desired)
            };
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": format!("{}-{hash}", name(d)), "namespace": ns,
                    "labels": tpl["metadata"]["labels"],
                    "annotations": {"deployment.kubernetes.io/revision": (revision + 1).to_string(),
                        "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        "deployment.kubernetes.io/max-replicas": (desired + max_surge).to_string()},
                    "ownerReferences": owner_ref(d, "Deployment"),
                },
                "spec": {"replicas": start, "selector": selector, "template": tpl},
            });
            match cluster.create(&replicasets(), rs) {
                Ok(rs) => {
                    if start > 0 {
                        record(
                            cluster,
                            d,
                            "Normal",
                            "ScalingReplicaSet",
                            &format!("Scaled up replica set {} from 0 to {start}", name(&rs)),
                            "deployment-controller",
                        );
                    }
                    rs
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot create the ReplicaSet of deployment {ns}/{}: {e}",
                        name(d)
                    );
                    return;
                }
            }
        }
    };
    // Scale up the new ReplicaSet within the surge budget.
    let old_total: i64 = old.iter().map(replicas).sum();
    let current_total = old_total + replicas(&new_rs);
    if replicas(&new_rs) > desired {
        set_replicas(cluster, d, &new_rs, desired);
    } else if replicas(&new_rs) < desired {
        let room = if recreate && old_total > 0 {
            0
        } else {
            desired + max_surge - current_total
        };
        let up = (desired - replicas(&new_rs)).min(room.max(0));
        if up > 0 {
            set_replicas(cluster, d, &new_rs, replicas(&new_rs) + up);
        }
    }
    // Scale old ReplicaSets down: their unready pods at once, ready ones while enough stay
    // available.
    let new_ready = status_int(&new_rs, "readyReplicas").min(replicas(&new_rs));
    let old_ready: i64 = old
        .iter()
        .map(|rs| status_int(rs, "readyReplicas").min(replicas(rs)))
        .sum();
    let min_available = desired - max_unavailable;
    let mut can_remove = (new_ready + old_ready - min_available).max(0);
    let mut old_sorted = old.clone();
    old_sorted.sort_by_key(|rs| {
        rs["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    for rs in &old_sorted {
        let r = replicas(rs);
        if r == 0 {
            continue;
        }
        let unready = (r - status_int(rs, "readyReplicas")).max(0);
        let ready_remove = (r - unready).min(can_remove);
        can_remove -= ready_remove;
        let target = if recreate {
            0
        } else {
            r - unready - ready_remove
        };
        set_replicas(cluster, d, rs, target.max(0));
    }
    update_deployment_status(cluster, d, &hash);
}

fn update_deployment_status(cluster: &Cluster, d: &Value, hash: &str) {
    let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
    let all_rs: Vec<Value> = cluster
        .store
        .list(&replicasets(), Some(ns))
        .0
        .into_iter()
        .filter(|rs| controlled_by(rs, uid(d)))
        .collect();
    let sum = |f: &str| all_rs.iter().map(|rs| status_int(rs, f)).sum::<i64>();
    let new_rs = all_rs
        .iter()
        .find(|rs| rs["metadata"]["labels"]["pod-template-hash"] == hash);
    let updated = new_rs.map(|rs| status_int(rs, "replicas")).unwrap_or(0);
    let total = sum("replicas");
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let desired = replicas(d);
    let max_unavailable = int_or_percent(
        &d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        desired,
        false,
    );
    let is_available = available >= desired - max_unavailable;
    let complete = updated == desired && total == desired && available == desired;
    let new_name = new_rs.map(name).unwrap_or_default().to_string();
    let generation = d["metadata"]["generation"].clone();
    let _ = cluster.store.modify(&deployments(), ns, name(d), |o| {
        let s = &mut o["status"];
        s["observedGeneration"] = generation;
        s["replicas"] = json!(total);
        s["updatedReplicas"] = json!(updated);
        s["readyReplicas"] = json!(ready);
        s["availableReplicas"] = json!(available);
        s["unavailableReplicas"] = json!((total - available).max(desired - available).max(0));
        for (k, v) in [
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("updatedReplicas", updated),
            ("replicas", total),
            ("unavailableReplicas", (desired - available).max(0)),
        ] {
            if v == 0
                && let Some(m) = s.as_object_mut()
            {
                m.remove(k);
            }
        }
        let conds = &mut s["conditions"];
        if is_available {
            set_condition(
                conds,
                "Available",
                true,
                Some("MinimumReplicasAvailable"),
                Some("Deployment has minimum availability."),
            );
        } else {
            set_condition(
                conds,
                "Available",
                false,
                Some("MinimumReplicasUnavailable"),
                Some("Deployment does not have minimum availability."),
            );
        }
        if complete {
            set_condition(
                conds,
                "Progressing",
                true,
                Some("NewReplicaSetAvailable"),
                Some(&format!(
                    "ReplicaSet {new_name:?} has successfully progressed."
                )),
            );
        } else {
            set_condition(
                conds,
                "Progressing",
                true,
                Some("ReplicaSetUpdated"),
                Some(&format!("ReplicaSet {new_name:?} is progressing.")),
            );
        }
        if let Some(list) = conds.as_array_mut() {
            for c in list.iter_mut() {
                if c["lastUpdateTime"].is_null() {
                    c["lastUpdateTime"] = c["lastTransitionTime"].clone();
                }
                if let Some(m) = c.as_object_mut() {
                    m.remove("lastProbeTime");
                }
            }
        }
        Ok(())
    });
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn reconcile_replicaset(cluster: &Cluster, rs: &Value) {
    let ns = rs["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let all: Vec<Value> = cluster
        .store
        .list(&pods(), Some(&ns))
        .0
        .into_iter()
        .filter(|p| controlled_by(p, uid(rs)))
        .collect();
    let mut live: Vec<&Value> = all
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    let want = if rs["metadata"]["deletionTimestamp"].is_string() {
        0
    } else {
        replicas(rs)
    };
    let have = live.len() as i64;
    if have < want {
        let tpl = &rs["spec"]["template"];
        for _ in have..want {
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": format!("{}-", name(rs)), "namespace": ns,
                    "labels": tpl["metadata"]["labels"], "annotations": tpl["metadata"]["annotations"],
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name(rs), "uid": uid(rs),
                        "controller": true, "blockOwnerDeletion": true}]},
                "spec": tpl["spec"],
            });
            let mut pod = pod;
            if pod["metadata"]["annotations"].is_null()
                && let Some(m) = pod["metadata"].as_object_mut()
            {
                m.remove("annotations");
            }
            match cluster.create(&pods(), pod) {
                Ok(p) => record(
                    cluster,
                    rs,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", name(&p)),
                    "replicaset-controller",
                ),
                Err(e) => {
                    record(
                        cluster,
                        rs,
                        "Warning",
                        "FailedCreate",
                        &format!("Error creating: {}", e.message),
                        "replicaset-controller",
                    );
                    break;
                }
            }
        }
    } else if have > want {
        // Unready and newest pods go first, as Kubernetes prefers.
        live.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
            )
        });
        for p in live.iter().take((have - want) as usize) {
            delete_object(cluster, &pods(), &ns, name(p));
            record(
                cluster,
                rs,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {}", name(p)),
                "replicaset-controller",
            );
        }
    }
    let live: Vec<&Value> = all
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    let ready = live.iter().filter(|p| is_ready(p)).count() as i64;
    let selector = LabelSelector::from_object(&rs["spec"]["selector"]);
    let labelled = live.iter().filter(|p| selector.matches(p)).count() as i64;
    let generation = rs["metadata"]["generation"].clone();
    let _ = cluster.store.modify(&replicasets(), &ns, name(rs), |o| {
        let s = &mut o["status"];
        s["replicas"] = json!(live.len());
        s["fullyLabeledReplicas"] = json!(labelled);
        s["readyReplicas"] = json!(ready);
        s["availableReplicas"] = json!(ready);
        s["observedGeneration"] = generation;
        Ok(())
    });
}

/// Reconcile everything in the namespace an event touched (cheap at workshop scale, and it
/// heals any event the controller did not look at).
fn reconcile_namespace(cluster: &Cluster, ns: &str) {
    for rs in cluster.store.list(&replicasets(), Some(ns)).0 {
        reconcile_replicaset(cluster, &rs);
    }
    for d in cluster.store.list(&deployments(), Some(ns)).0 {
        reconcile_deployment(cluster, &d);
    }
    // Deployment changes may have resized ReplicaSets: converge their pods now.
    for rs in cluster.store.list(&replicasets(), Some(ns)).0 {
        reconcile_replicaset(cluster, &rs);
    }
}

fn relevant(ev: &StoreEvent) -> bool {
    ev.resource == deployments() || ev.resource == replicasets() || ev.resource == pods()
}

pub(crate) async fn run(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let Ok((_, mut rx)) = cluster.store.subscribe(None) else {
        return;
    };
    let resync = |cluster: &Cluster| {
        let (namespaces, _) = cluster.store.list(&gr("", "namespaces"), None);
        for n in namespaces {
            reconcile_namespace(cluster, name(&n));
        }
    };
    resync(&cluster);
    while let Some(ev) = next_event(&mut rx, &shutdown).await {
        match ev {
            Some(ev) if relevant(&ev) => {
                // Coalesce a burst: drain what is already queued, then reconcile each
                // namespace once.
                let mut namespaces = vec![ev.namespace().to_string()];
                while let Ok(more) = rx.try_recv() {
                    if relevant(&more) && !namespaces.iter().any(|n| n == more.namespace()) {
                        namespaces.push(more.namespace().to_string());
                    }
                }
                for ns in namespaces {
                    reconcile_namespace(&cluster, &ns);
                }
            }
            Some(_) => {}
            None => resync(&cluster),
        }
    }
}
