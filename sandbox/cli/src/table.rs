//! `Table` answers (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`) so `kubectl get`
//! prints the columns a real cluster shows: pods, deployments, replicasets, services and
//! namespaces get their own, everything else NAME and AGE.

use serde_json::{Value, json};

fn col(name: &str, ty: &str, format: &str, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": 0})
}

/// "5s", "3m", "2h", "4d" like kubectl's `translateTimestampSince`.
fn age(obj: &Value) -> String {
    let Some(created) = obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    else {
        return "<unknown>".to_string();
    };
    let secs = (jiff::Timestamp::now().as_second() - created.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn name(obj: &Value) -> Value {
    obj["metadata"]["name"].clone()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Pod columns, READY counting native sidecars (restartable init containers) like kubectl.
fn pod_row(p: &Value) -> Vec<Value> {
    let empty = Vec::new();
    let containers = p["spec"]["containers"].as_array().unwrap_or(&empty);
    let sidecars: Vec<&str> = p["spec"]["initContainers"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter(|c| c["restartPolicy"] == "Always")
        .filter_map(|c| c["name"].as_str())
        .collect();
    let statuses = p["status"]["containerStatuses"]
        .as_array()
        .unwrap_or(&empty);
    let init_statuses = p["status"]["initContainerStatuses"]
        .as_array()
        .unwrap_or(&empty);
    let total = containers.len() + sidecars.len();
    let ready = statuses.iter().filter(|s| s["ready"] == true).count()
        + init_statuses
            .iter()
            .filter(|s| s["ready"] == true && sidecars.iter().any(|n| s["name"] == *n))
            .count();
    let restarts: i64 = statuses
        .iter()
        .chain(init_statuses)
        .map(|s| int(&s["restartCount"]))
        .sum();
    let mut status = p["status"]["phase"]
        .as_str()
        .unwrap_or("Pending")
        .to_string();
    for s in init_statuses.iter().chain(statuses) {
        if let Some(reason) = s["state"]["waiting"]["reason"].as_str()
            && reason != "ContainerCreating"
        {
            status = reason.to_string();
        } else if status == "Pending" && s["state"]["waiting"]["reason"] == "ContainerCreating" {
            status = "ContainerCreating".to_string();
        }
    }
    // STATUS is `Terminating` from the moment the pod has a deletionTimestamp until it is gone
    // (kubernetes pkg/printers/internalversion/printers.go `printPod`: `else if
    // pod.DeletionTimestamp != nil { reason = "Terminating" }`, 1.26–1.34).
    if p["metadata"]["deletionTimestamp"].is_string() {
        status = "Terminating".to_string();
    }
    vec![
        name(p),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(age(p)),
        p["status"]["podIP"]
            .clone()
            .as_str()
            .map_or(json!("<none>"), |s| json!(s)),
        p["spec"]["nodeName"]
            .as_str()
            .map_or(json!("<none>"), |s| json!(s)),
    ]
}

fn ports_text(svc: &Value) -> String {
    let empty = Vec::new();
    let ports: Vec<String> = svc["spec"]["ports"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(n) => format!("{}:{}/{}", int(&p["port"]), n, proto),
                None => format!("{}/{}", int(&p["port"]), proto),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    }
}

fn selector_text(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".to_string(),
    }
}

fn columns_and_row(resource: &str, obj: &Value) -> (Vec<Value>, Vec<Value>) {
    match resource {
        "pods" => (
            vec![
                col("Name", "string", "name", "Name of the pod"),
                col("Ready", "string", "", "Ready containers"),
                col("Status", "string", "", "Pod status"),
                col("Restarts", "string", "", "Container restarts"),
                col("Age", "string", "", "Time since creation"),
                json!({"name": "IP", "type": "string", "format": "", "description": "Pod IP", "priority": 1}),
                json!({"name": "Node", "type": "string", "format": "", "description": "Node", "priority": 1}),
            ],
            pod_row(obj),
        ),
        "deployments" => {
            let s = &obj["status"];
            (
                vec![
                    col("Name", "string", "name", "Name"),
                    col("Ready", "string", "", "Ready replicas"),
                    col("Up-to-date", "integer", "", "Updated replicas"),
                    col("Available", "integer", "", "Available replicas"),
                    col("Age", "string", "", "Age"),
                ],
                vec![
                    name(obj),
                    json!(format!(
                        "{}/{}",
                        int(&s["readyReplicas"]),
                        obj["spec"]["replicas"].as_i64().unwrap_or(1)
                    )),
                    json!(int(&s["updatedReplicas"])),
                    json!(int(&s["availableReplicas"])),
                    json!(age(obj)),
                ],
            )
        }
        "replicasets" => {
            let s = &obj["status"];
            (
                vec![
                    col("Name", "string", "name", "Name"),
                    col("Desired", "integer", "", "Desired"),
                    col("Current", "integer", "", "Current"),
                    col("Ready", "integer", "", "Ready"),
                    col("Age", "string", "", "Age"),
                ],
                vec![
                    name(obj),
                    json!(obj["spec"]["replicas"].as_i64().unwrap_or(1)),
                    json!(int(&s["replicas"])),
                    json!(int(&s["readyReplicas"])),
                    json!(age(obj)),
                ],
            )
        }
        "services" => {
            let external = obj["status"]["loadBalancer"]["ingress"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(|i| i["ip"].as_str())
                .map(String::from)
                .unwrap_or_else(|| {
                    if obj["spec"]["type"] == "LoadBalancer" {
                        "<pending>".to_string()
                    } else {
                        "<none>".to_string()
                    }
                });
            (
                vec![
                    col("Name", "string", "name", "Name"),
                    col("Type", "string", "", "Type"),
                    col("Cluster-IP", "string", "", "ClusterIP"),
                    col("External-IP", "string", "", "External IP"),
                    col("Port(s)", "string", "", "Ports"),
                    col("Age", "string", "", "Age"),
                    json!({"name": "Selector", "type": "string", "format": "", "description": "Selector", "priority": 1}),
                ],
                vec![
                    name(obj),
                    json!(obj["spec"]["type"].as_str().unwrap_or("ClusterIP")),
                    json!(obj["spec"]["clusterIP"].as_str().unwrap_or("<none>")),
                    json!(external),
                    json!(ports_text(obj)),
                    json!(age(obj)),
                    json!(selector_text(&obj["spec"]["selector"])),
                ],
            )
        }
        "namespaces" => (
            vec![
                col("Name", "string", "name", "Name"),
                col("Status", "string", "", "Phase"),
                col("Age", "string", "", "Age"),
            ],
            vec![
                name(obj),
                json!(obj["status"]["phase"].as_str().unwrap_or("Active")),
                json!(age(obj)),
            ],
        ),
        "events" => {
            let involved = &obj["involvedObject"];
            let last_seen = obj["lastTimestamp"]
                .as_str()
                .map(|t| age(&json!({"metadata": {"creationTimestamp": t}})))
                .unwrap_or_else(|| age(obj));
            // An aggregated event says how often and since when: `5s (x3 over 40s)`, the
            // interval kubectl shows for an event with `count` > 1 (kubectl
            // `pkg/describe/describe.go` `DescribeEvents`).
            let last_seen = match (obj["count"].as_i64(), obj["firstTimestamp"].as_str()) {
                (Some(n), Some(first)) if n > 1 => format!(
                    "{last_seen} (x{n} over {})",
                    age(&json!({"metadata": {"creationTimestamp": first}}))
                ),
                _ => last_seen,
            };
            (
                vec![
                    col("Last Seen", "string", "", "Last seen"),
                    col("Type", "string", "", "Type"),
                    col("Reason", "string", "", "Reason"),
                    col("Object", "string", "", "Involved object"),
                    col("Message", "string", "", "Message"),
                ],
                vec![
                    json!(last_seen),
                    obj["type"].clone(),
                    obj["reason"].clone(),
                    json!(format!(
                        "{}/{}",
                        involved["kind"].as_str().unwrap_or_default().to_lowercase(),
                        involved["name"].as_str().unwrap_or_default()
                    )),
                    obj["message"].clone(),
                ],
            )
        }
        _ => (
            vec![
                col("Name", "string", "name", "Name"),
                col("Age", "string", "", "Age"),
            ],
            vec![name(obj), json!(age(obj))],
        ),
    }
}

/// A Table of `items`. `include_object` is the `includeObject` query value.
pub(crate) fn table(
    resource: &str,
    items: &[Value],
    resource_version: u64,
    include_object: &str,
) -> Value {
    let columns = columns_and_row(resource, &json!({})).0;
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": columns_and_row(resource, o).1});
            match include_object {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"],
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ready_counts_native_sidecars() {
        let p = json!({"metadata": {"name": "a"},
            "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}]},
            "status": {"phase": "Running",
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0}],
                "initContainerStatuses": [{"name": "istio-proxy", "ready": true, "restartCount": 1}]}});
        let row = pod_row(&p);
        assert_eq!(row[1], "2/2");
        assert_eq!(row[2], "Running");
        assert_eq!(row[3], 1);
    }
}
