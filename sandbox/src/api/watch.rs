//! Watches (`?watch=1`): newline-delimited `{"type","object"}` events from a resourceVersion
//! on, filtered by namespace and selectors, ending after `timeoutSeconds` or at shutdown.
//! `sendInitialEvents=true` (streaming lists) is answered with ADDED events and the
//! initial-events-end bookmark.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;
use super::body::{Body, stream_response};
use super::kubectl::TableOutput;
use super::query::{Query, selectors};
use super::router::Target;
use crate::error::ApiError;
use crate::store::StoreEvent;

/// Without `timeoutSeconds`, a watch lasts this long (the API server picks 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

pub(crate) fn serve(
    state: &Arc<ApiState>,
    target: &Target,
    query: &Query,
    table: Option<TableOutput>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query)?;
    let rt = target.rt.clone();
    let gr = rt.group_resource();
    let namespace = target.namespace.clone();
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let rv = query.get("resourceVersion").unwrap_or_default();
    let initial_events = query.flag("sendInitialEvents");
    let store = &state.cluster.store;
    // "" and "0" mean "from any point": start with the current objects as ADDED events.
    let (initial, replay, mut rx) = if rv.is_empty() || rv == "0" || initial_events {
        let (items, at, rx) = store.list_and_subscribe(&gr);
        (Some((items, at)), Vec::new(), rx)
    } else {
        let since: u64 = rv.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion {rv:?} is not a valid resource version"
            ))
        })?;
        let (replay, rx) = store.subscribe(Some(since))?;
        (None, replay, rx)
    };
    // kubectl get -w asks for Tables: each event then carries a one-row Table, the column
    // definitions only in the first.
    let first_table = std::sync::atomic::AtomicBool::new(true);
    let present = {
        let rt = rt.clone();
        move |o: &Value| {
            let mut o = o.clone();
            o["apiVersion"] = json!(rt.api_version());
            o["kind"] = json!(rt.kind);
            if let Some(table) = &table {
                let rv = o["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                let mut t = table.render(&rt.plural, &[o], rv);
                if !first_table.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    t["columnDefinitions"] = json!([]);
                }
                return t;
            }
            o
        }
    };
    let wanted = move |o: &Value| {
        namespace
            .as_deref()
            .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
            && labels.matches(o)
            && fields.matches(o)
    };
    let (tx, response) = stream_response("application/json");
    let shutdown = state.shutdown.clone();
    let (initial_at, initial_items) = match initial {
        Some((items, at)) => (at, items),
        None => (0, Vec::new()),
    };
    state.tasks.spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut last_sent = initial_at;
        for o in initial_items.iter().filter(|o| wanted(o)) {
            if tx.send(line("ADDED", &present(o))).await.is_err() {
                return;
            }
        }
        if initial_events {
            let bookmark = json!({
                "kind": rt.kind, "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": initial_at.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}},
            });
            if tx.send(line("BOOKMARK", &bookmark)).await.is_err() {
                return;
            }
        }
        let send_event = |ev: &StoreEvent, after: u64| {
            if ev.resource != gr || ev.rv <= after || !wanted(&ev.object) {
                return None;
            }
            Some(line(ev.kind.as_str(), &present(&ev.object)))
        };
        for ev in &replay {
            if let Some(l) = send_event(ev, last_sent)
                && tx.send(l).await.is_err()
            {
                return;
            }
        }
        if let Some(ev) = replay.last() {
            last_sent = last_sent.max(ev.rv);
        }
        loop {
            let ev = tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                ev = rx.recv() => ev,
            };
            match ev {
                Ok(ev) => {
                    let l = send_event(&ev, last_sent);
                    last_sent = last_sent.max(ev.rv);
                    if let Some(l) = l
                        && tx.send(l).await.is_err()
                    {
                        return;
                    }
                }
                // A watcher that fell too far behind ends; clients re-list and watch again.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            }
        }
    });
    Ok(response)
}
