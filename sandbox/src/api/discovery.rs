//! Discovery documents (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`) in their
//! legacy form. Clients that ask for aggregated discovery get these as plain JSON and fall back,
//! as client-go and kube-rs do.

use serde_json::{Value, json};

use crate::store::{Registry, ResourceType};

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-happy-sandbox",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

pub(crate) fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn group(registry: &Registry, name: &str) -> Value {
    let groups = registry.groups();
    let versions = groups
        .iter()
        .find(|(g, _)| g == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut doc = group_doc(name, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    doc
}

fn verbs_for(_t: &ResourceType) -> Vec<&'static str> {
    vec![
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
}

fn sub_verbs(sub: &str) -> (&'static str, Vec<&'static str>) {
    match sub {
        "log" => ("Pod", vec!["get"]),
        "exec" | "portforward" => ("PodExecOptions", vec!["create", "get"]),
        "scale" => ("Scale", vec!["get", "patch", "update"]),
        "finalize" => ("Namespace", vec!["update"]),
        _ => ("", vec!["get", "patch", "update"]),
    }
}

pub(crate) fn resources(registry: &Registry, group: &str, version: &str) -> Value {
    let mut list = Vec::new();
    for t in registry
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": verbs_for(t),
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        list.push(r);
        for sub in &t.subresources {
            let (kind, verbs) = sub_verbs(sub);
            let kind = if kind.is_empty() {
                t.kind.as_str()
            } else {
                kind
            };
            let mut r = json!({
                "name": format!("{}/{}", t.plural, sub),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if sub == "scale" {
                r["group"] = json!("autoscaling");
                r["version"] = json!("v1");
            }
            list.push(r);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
}
