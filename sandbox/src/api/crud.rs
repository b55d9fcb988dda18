//! Resource requests: get, list (and hand-off to watch), create, replace, patch, delete and
//! deletecollection, the status and scale subresources, and hand-off to log / exec /
//! port-forward. Validation errors name the object and field at fault.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{Value, json};

use super::body::{Body, json_response};
use super::kubectl::{self, TableOutput};
use super::patch::{self, PatchKind, apply};
use super::query::{Query, selectors};
use super::router::Target;
use super::{ApiState, exec, portforward, validation, watch};
use crate::error::ApiError;
use crate::store::{ResourceType, UpdateMode, now};

const MAX_BODY: usize = 3 * 1024 * 1024;

pub(crate) async fn handle(
    state: &Arc<ApiState>,
    req: Request<Incoming>,
    target: Target,
) -> Result<Response<Body>, ApiError> {
    let query = Query::parse(req.uri().query());
    if query.get("dryRun").is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the happy-sandbox API server",
        ));
    }
    let content_type = header(&req, hyper::header::CONTENT_TYPE);
    if content_type.contains("protobuf") && req.method() == Method::POST && target.name.is_none() {
        let body = read_body(req).await?;
        let obj = kubectl::decode_protobuf(state, &body, &target.rt.plural)?;
        let created = create_value(state, &target, obj)?;
        return Ok(json_response(201, &created));
    }
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(format!(
            "the body content type {content_type:?} is not supported by the happy-sandbox; send JSON"
        )));
    }
    let method = req.method().clone();
    let sub = target.subresource.clone();
    if let Some(s) = &sub
        && !target.rt.subresources.contains(s)
    {
        return Err(ApiError::not_found(format!(
            "{} has no subresource {s:?}",
            target.rt.plural
        )));
    }
    match (method, target.name.is_some(), sub.as_deref()) {
        (Method::GET, false, None) => {
            let table = kubectl::table_output(state, &req, &query)?;
            if query.flag("watch") {
                watch::serve(state, &target, &query, table)
            } else {
                list(state, &target, &query, table)
            }
        }
        (Method::POST, false, None) => {
            let body = read_body(req).await?;
            create(state, &target, &body)
        }
        (Method::DELETE, false, None) => delete_collection(state, &target, &query),
        (Method::GET, true, None | Some("status")) => {
            get(state, &target, kubectl::table_output(state, &req, &query)?)
        }
        (Method::PUT, true, None | Some("status")) => {
            let body = read_body(req).await?;
            update(state, &target, &body)
        }
        (Method::PATCH, true, None | Some("status")) => {
            let ct = header(&req, hyper::header::CONTENT_TYPE);
            let body = read_body(req).await?;
            patch_object(state, &target, &query, &ct, &body)
        }
        (Method::DELETE, true, None) => {
            let body = read_body(req).await?;
            delete(state, &target, &query, &body)
        }
        (Method::GET, true, Some("log")) => exec::logs(state, &target, &query),
        (Method::GET | Method::POST, true, Some("exec")) => {
            exec::exec(state, req, &target, &query).await
        }
        (Method::GET | Method::POST, true, Some("portforward")) => {
            portforward::portforward(state, req, &target, &query).await
        }
        (method, true, Some("scale")) => {
            let ct = header(&req, hyper::header::CONTENT_TYPE);
            let body = read_body(req).await?;
            scale(state, &target, method, &ct, &body)
        }
        (method, _, sub) => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}{}",
            target.rt.plural,
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

pub(crate) fn header<B>(req: &Request<B>, name: hyper::header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let collected = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?
        .to_bytes();
    if collected.len() > MAX_BODY {
        return Err(ApiError::bad_request(format!(
            "request body of {} bytes is larger than the limit of {MAX_BODY}",
            collected.len()
        )));
    }
    Ok(collected)
}

/// JSON, or YAML (apply bodies); anything else is a 400 naming the parse error.
fn decode(bytes: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                ApiError::bad_request(format!("the request body is not JSON: {json_err}"))
            })?;
            serde_saphyr::from_str::<Value>(text).map_err(|yaml_err| {
                ApiError::bad_request(format!(
                    "the request body is neither JSON ({json_err}) nor YAML ({yaml_err})"
                ))
            })
        }
    }
}

fn decode_object(bytes: &[u8], rt: &ResourceType) -> Result<Value, ApiError> {
    let v = decode(bytes)?;
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "the request body must be a {} object, got {}",
            rt.kind,
            short(&v)
        )));
    }
    Ok(v)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..60])
    } else {
        s
    }
}

fn gr(rt: &ResourceType) -> crate::store::GroupResource {
    rt.group_resource()
}

/// The object as served under the requested version.
fn present(rt: &ResourceType, mut obj: Value) -> Value {
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    obj
}

fn ns_of(target: &Target) -> &str {
    target.namespace.as_deref().unwrap_or_default()
}

fn name_of(target: &Target) -> &str {
    target.name.as_deref().unwrap_or_default()
}

fn get(
    state: &ApiState,
    target: &Target,
    table: Option<TableOutput>,
) -> Result<Response<Body>, ApiError> {
    let obj = state
        .cluster
        .store
        .get(&gr(&target.rt), ns_of(target), name_of(target))
        .ok_or_else(|| not_found(target))?;
    let obj = present(&target.rt, obj);
    if let Some(table) = table {
        let rv = state.cluster.store.resource_version();
        return Ok(json_response(
            200,
            &table.render(&target.rt.plural, &[obj], rv),
        ));
    }
    Ok(json_response(200, &obj))
}

fn not_found(target: &Target) -> ApiError {
    ApiError::from(crate::store::StoreError::NotFound {
        resource: gr(&target.rt),
        namespace: ns_of(target).to_string(),
        name: name_of(target).to_string(),
    })
}

fn list(
    state: &ApiState,
    target: &Target,
    query: &Query,
    table: Option<TableOutput>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query)?;
    let (items, rv) = state
        .cluster
        .store
        .list(&gr(&target.rt), target.namespace.as_deref());
    let items: Vec<Value> = items
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .map(|o| present(&target.rt, o))
        .collect();
    if let Some(table) = table {
        return Ok(json_response(
            200,
            &table.render(&target.rt.plural, &items, rv),
        ));
    }
    Ok(json_response(
        200,
        &json!({
            "kind": format!("{}List", target.rt.kind),
            "apiVersion": target.rt.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        }),
    ))
}

fn is_dns_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// DNS-1123 subdomain (most names) — namespaces and services need a DNS-1123 label.
fn check_name(rt: &ResourceType, name: &str) -> Result<(), String> {
    let label_only = matches!(rt.plural.as_str(), "namespaces" | "services");
    let max = if label_only { 63 } else { 253 };
    let ok_chars = name
        .chars()
        .all(|c| is_dns_label_char(c) || (!label_only && c == '.'));
    let ok_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > max || !ok_chars || !ok_ends {
        return Err(format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 {} must consist of lower case alphanumeric characters{}, and must start and end with an alphanumeric character",
            if label_only { "label" } else { "subdomain" },
            if label_only {
                " or '-'"
            } else {
                ", '-' or '.'"
            }
        ));
    }
    Ok(())
}

fn check_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

fn check_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253)
        && !name.is_empty()
        && check_label_value(name)
}

/// Checks shared by create, update and patch: kind, apiVersion, name, namespace, labels.
fn validate(
    rt: &ResourceType,
    obj: &mut Value,
    url_namespace: Option<&str>,
    url_name: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(kind) = obj["kind"].as_str()
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the body is a {kind:?} but the request is for {} ({})",
            rt.kind, rt.plural
        )));
    }
    if let Some(av) = obj["apiVersion"].as_str() {
        let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
        if group != rt.group {
            return Err(ApiError::bad_request(format!(
                "apiVersion {av:?} of the body does not belong to the group of {} ({:?})",
                rt.plural, rt.group
            )));
        }
    }
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let display = if name.is_empty() {
        obj["metadata"]["generateName"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    } else {
        name.clone()
    };
    if let Some(url_name) = url_name {
        if name.is_empty() {
            obj["metadata"]["name"] = json!(url_name);
        } else if name != url_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({url_name})"
            )));
        }
    } else if name.is_empty()
        && obj["metadata"]["generateName"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        return Err(ApiError::invalid(
            &rt.kind,
            "",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !name.is_empty() {
        check_name(rt, &name)
            .map_err(|m| ApiError::invalid(&rt.kind, &name, "metadata.name", m))?;
    }
    match (rt.namespaced, url_namespace) {
        (true, Some(ns)) => match obj["metadata"]["namespace"].as_str() {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the object {} {display:?} ({n}) does not match the namespace on the request ({ns})",
                    rt.kind
                )));
            }
            _ => obj["metadata"]["namespace"] = json!(ns),
        },
        (true, None) => {
            return Err(ApiError::bad_request(format!(
                "{} is namespaced: create it under /namespaces/NAMESPACE/{}",
                rt.kind, rt.plural
            )));
        }
        (false, _) => {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("namespace");
            }
        }
    }
    if let Some(labels) = obj["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            let Some(v) = v.as_str() else {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &display,
                    &format!("metadata.labels[{k}]"),
                    "label values must be strings",
                ));
            };
            if !check_label_key(k) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &display,
                    "metadata.labels",
                    format!("Invalid value: {k:?}: not a valid label key"),
                ));
            }
            if !check_label_value(v) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &display,
                    &format!("metadata.labels[{k}]"),
                    format!(
                        "Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn require_namespace(
    state: &ApiState,
    rt: &ResourceType,
    ns: Option<&str>,
) -> Result<(), ApiError> {
    if !rt.namespaced {
        return Ok(());
    }
    let ns = ns.unwrap_or_default();
    match state
        .cluster
        .store
        .get(&crate::controllers::gr("", "namespaces"), "", ns)
    {
        None => Err(ApiError::not_found(format!("namespaces {ns:?} not found"))),
        Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
            let mut e = ApiError::bad_request(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ));
            e.code = 403;
            e.reason = "Forbidden";
            Err(e)
        }
        Some(_) => Ok(()),
    }
}

pub(crate) fn create_value(
    state: &ApiState,
    target: &Target,
    mut obj: Value,
) -> Result<Value, ApiError> {
    validate(&target.rt, &mut obj, target.namespace.as_deref(), None)?;
    validation::validate_spec(&target.rt, &obj)?;
    require_namespace(state, &target.rt, target.namespace.as_deref())?;
    if let Some(m) = obj["metadata"].as_object_mut() {
        for f in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
        ] {
            m.remove(f);
        }
    }
    let created = state.cluster.create(&gr(&target.rt), obj)?;
    Ok(present(&target.rt, created))
}

fn create(state: &ApiState, target: &Target, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let obj = decode_object(body, &target.rt)?;
    let created = create_value(state, target, obj)?;
    Ok(json_response(201, &created))
}

fn update_mode(target: &Target) -> UpdateMode {
    match target.subresource.as_deref() {
        Some("status") => UpdateMode::StatusOnly,
        _ if target.rt.subresources.iter().any(|s| s == "status") => UpdateMode::KeepStatus,
        _ => UpdateMode::Full,
    }
}

fn store_update(state: &ApiState, target: &Target, mut obj: Value) -> Result<Value, ApiError> {
    let g = gr(&target.rt);
    let old = state
        .cluster
        .store
        .get(&g, ns_of(target), name_of(target))
        .ok_or_else(|| not_found(target))?;
    state.cluster.on_update(&g, &old, &mut obj)?;
    let updated = state.cluster.store.update(&g, obj, update_mode(target))?;
    Ok(present(&target.rt, updated))
}

fn update(state: &ApiState, target: &Target, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let mut obj = decode_object(body, &target.rt)?;
    validate(
        &target.rt,
        &mut obj,
        target.namespace.as_deref(),
        target.name.as_deref(),
    )?;
    validation::validate_spec(&target.rt, &obj)?;
    Ok(json_response(200, &store_update(state, target, obj)?))
}

fn patch_object(
    state: &ApiState,
    target: &Target,
    query: &Query,
    content_type: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let kind = PatchKind::from_content_type(content_type).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the patch content type {content_type:?} is not supported; use application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml"
        ))
    })?;
    let patch_body = decode(body)?;
    let g = gr(&target.rt);
    // A patch without a resourceVersion must not fail because someone else wrote in between:
    // retry on conflict a bounded number of times, like the API server's GuaranteedUpdate.
    for _ in 0..8 {
        let current = state.cluster.store.get(&g, ns_of(target), name_of(target));
        let mut next = match (kind, current.as_ref()) {
            (PatchKind::Apply, current) => {
                let manager = query
                    .get("fieldManager")
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "fieldManager is required for apply requests (server-side apply)",
                        )
                    })?;
                if !patch_body.is_object() {
                    return Err(ApiError::bad_request(format!(
                        "an apply patch must be an object, got {}",
                        short(&patch_body)
                    )));
                }
                if patch_body["apiVersion"].as_str().is_none_or(str::is_empty)
                    || patch_body["kind"].as_str().is_none_or(str::is_empty)
                {
                    return Err(ApiError::bad_request(format!(
                        "the apply patch for {} {:?} must set apiVersion and kind",
                        target.rt.kind,
                        name_of(target)
                    )));
                }
                let mut applied = patch_body.clone();
                validate(
                    &target.rt,
                    &mut applied,
                    target.namespace.as_deref(),
                    target.name.as_deref(),
                )?;
                let force = query.flag("force");
                let result = apply::apply(current, &applied, manager, target.rt.builtin, force)
                    .map_err(|e| {
                        ApiError::conflict(format!("{} {:?}: {e}", target.rt.kind, name_of(target)))
                    })?;
                if current.is_none() {
                    let created = create_value(state, target, result)?;
                    return Ok(json_response(201, &created));
                }
                result
            }
            (_, None) => return Err(not_found(target)),
            (kind, Some(current)) => patch::patch(kind, current, &patch_body, target.rt.builtin)
                .map_err(|e| {
                    let msg = format!("{} {:?}: {e}", target.rt.kind, name_of(target));
                    match e {
                        patch::PatchError::Malformed(_) => ApiError::bad_request(msg),
                        patch::PatchError::Failed(_) => ApiError::invalid(
                            &target.rt.kind,
                            name_of(target),
                            "patch",
                            e.to_string(),
                        ),
                    }
                })?,
        };
        validate(
            &target.rt,
            &mut next,
            target.namespace.as_deref(),
            target.name.as_deref(),
        )?;
        validation::validate_spec(&target.rt, &next)?;
        let explicit_rv = patch_body["metadata"]["resourceVersion"].is_string();
        if !explicit_rv && let Some(c) = &current {
            next["metadata"]["resourceVersion"] = c["metadata"]["resourceVersion"].clone();
        }
        match store_update(state, target, next) {
            Err(e) if e.code == 409 && !explicit_rv => continue,
            other => return Ok(json_response(200, &other?)),
        }
    }
    Err(ApiError::conflict(format!(
        "{} {:?} kept changing while the patch was applied; try again",
        target.rt.kind,
        name_of(target)
    )))
}

fn grace_period(query: &Query, options: &Value, obj: &Value) -> i64 {
    query
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse().ok())
        .or_else(|| options["gracePeriodSeconds"].as_i64())
        .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
}

/// Delete one object. Pods and namespaces are marked (deletionTimestamp) and finished by their
/// controllers once the runtime stopped the pod or the namespace is empty; everything else is
/// removed at once, its dependents by the garbage collector.
pub(crate) fn delete_value(
    state: &ApiState,
    target: &Target,
    query: &Query,
    options: &Value,
) -> Result<Value, ApiError> {
    let g = gr(&target.rt);
    let (ns, name) = (ns_of(target), name_of(target));
    let uid = options["preconditions"]["uid"].as_str();
    let current = state
        .cluster
        .store
        .get(&g, ns, name)
        .ok_or_else(|| not_found(target))?;
    if let Some(uid) = uid
        && current["metadata"]["uid"] != uid
    {
        return Err(ApiError::conflict(format!(
            "Precondition failed for {} {name:?}: UID in precondition: {uid}, UID in object meta: {}",
            target.rt.kind,
            current["metadata"]["uid"].as_str().unwrap_or_default()
        )));
    }
    let orphan = query.get("propagationPolicy") == Some("Orphan")
        || options["propagationPolicy"] == "Orphan"
        || options["orphanDependents"] == true;
    let graceful = match (g.group.as_str(), g.resource.as_str()) {
        ("", "pods") => true,
        ("", "namespaces") => {
            if matches!(name, "default" | "kube-system" | "kube-public") {
                let mut e = ApiError::bad_request(format!("namespace {name:?} may not be deleted"));
                e.code = 403;
                e.reason = "Forbidden";
                return Err(e);
            }
            true
        }
        _ => false,
    };
    if graceful {
        let grace = grace_period(query, options, &current);
        let marked = state.cluster.store.modify(&g, ns, name, |o| {
            if o["metadata"]["deletionTimestamp"].is_null() {
                o["metadata"]["deletionTimestamp"] = json!(now());
                o["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                if g.resource == "namespaces" {
                    o["status"]["phase"] = json!("Terminating");
                }
            }
            Ok(())
        })?;
        return Ok(present(&target.rt, marked));
    }
    if orphan {
        let _ = state.cluster.store.modify(&g, ns, name, |o| {
            o["metadata"]["annotations"]["happy-sandbox/orphan-dependents"] = json!("true");
            Ok(())
        });
    }
    let deleted = state.cluster.store.delete(&g, ns, name, None)?;
    Ok(present(&target.rt, deleted))
}

fn delete(
    state: &ApiState,
    target: &Target,
    query: &Query,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let options = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode(body)?
    };
    if options["dryRun"].as_array().is_some_and(|a| !a.is_empty()) {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the happy-sandbox API server",
        ));
    }
    Ok(json_response(
        200,
        &delete_value(state, target, query, &options)?,
    ))
}

fn delete_collection(
    state: &ApiState,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query)?;
    let (items, _) = state
        .cluster
        .store
        .list(&gr(&target.rt), target.namespace.as_deref());
    let mut deleted = Vec::new();
    for o in items
        .iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
    {
        let t = Target {
            namespace: o["metadata"]["namespace"].as_str().map(String::from),
            name: o["metadata"]["name"].as_str().map(String::from),
            ..target.clone()
        };
        match delete_value(state, &t, query, &json!({})) {
            Ok(v) => deleted.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        200,
        &json!({
            "kind": format!("{}List", target.rt.kind),
            "apiVersion": target.rt.api_version(),
            "metadata": {"resourceVersion": state.cluster.store.resource_version().to_string()},
            "items": deleted,
        }),
    ))
}

/// `deployments/scale` and `replicasets/scale` (autoscaling/v1 Scale).
fn scale(
    state: &ApiState,
    target: &Target,
    method: Method,
    content_type: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let g = gr(&target.rt);
    let (ns, name) = (ns_of(target), name_of(target));
    let obj = state
        .cluster
        .store
        .get(&g, ns, name)
        .ok_or_else(|| not_found(target))?;
    let as_scale = |o: &Value| {
        json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": name, "namespace": ns, "uid": o["metadata"]["uid"],
                "resourceVersion": o["metadata"]["resourceVersion"], "creationTimestamp": o["metadata"]["creationTimestamp"]},
            "spec": {"replicas": o["spec"]["replicas"].as_i64().unwrap_or(1)},
            "status": {"replicas": o["status"]["replicas"].as_i64().unwrap_or(0),
                "selector": o["spec"]["selector"]["matchLabels"].as_object().map(|m| m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))},
        })
    };
    let desired = match method {
        Method::GET => return Ok(json_response(200, &as_scale(&obj))),
        Method::PUT => decode(body)?,
        Method::PATCH => {
            let kind = PatchKind::from_content_type(content_type)
                .filter(|k| *k != PatchKind::Apply)
                .ok_or_else(|| {
                    ApiError::unsupported_media_type(format!(
                        "unsupported patch type {content_type:?} for scale"
                    ))
                })?;
            patch::patch(kind, &as_scale(&obj), &decode(body)?, true)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        other => {
            return Err(ApiError::method_not_allowed(format!(
                "{other} is not supported on scale"
            )));
        }
    };
    let replicas = desired["spec"]["replicas"]
        .as_i64()
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "Scale",
                name,
                "spec.replicas",
                "must be a non-negative integer",
            )
        })?;
    let updated = state.cluster.store.modify(&g, ns, name, |o| {
        o["spec"]["replicas"] = json!(replicas);
        Ok(())
    })?;
    Ok(json_response(200, &as_scale(&updated)))
}
