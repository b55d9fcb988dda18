//! The sandbox's etcd: one generic store of objects as `serde_json::Value`, keyed by resource
//! (group + plural), namespace and name, with a single resourceVersion counter and an event
//! stream that API watches and controllers subscribe to.

pub(crate) mod registry;
pub(crate) mod selectors;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use registry::{GroupResource, Registry, ResourceType};

/// How many past events a watch can resume from; older resourceVersions get 410 Gone.
const HISTORY: usize = 20_000;
/// How many events a slow subscriber may lag behind before it is dropped (it re-lists).
const CHANNEL: usize = 8_192;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, with the object as it is after the change (before it, for deletions).
#[derive(Clone, Debug)]
pub struct StoreEvent {
    pub kind: EventType,
    pub resource: GroupResource,
    pub object: Arc<Value>,
    pub rv: u64,
}

impl StoreEvent {
    pub fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// Store failures; the API layer maps them to `Status` codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{resource} {name:?} not found{}", in_ns(namespace))]
    NotFound {
        resource: GroupResource,
        namespace: String,
        name: String,
    },
    #[error("{resource} {name:?} already exists{}", in_ns(namespace))]
    AlreadyExists {
        resource: GroupResource,
        namespace: String,
        name: String,
    },
    #[error(
        "Operation cannot be fulfilled on {resource} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict {
        resource: GroupResource,
        namespace: String,
        name: String,
    },
    #[error("too old resource version: {requested} (oldest kept is {oldest})")]
    Gone { requested: u64, oldest: u64 },
    #[error("{0}")]
    Invalid(String),
}

fn in_ns(ns: &str) -> String {
    if ns.is_empty() {
        String::new()
    } else {
        format!(" in namespace {ns:?}")
    }
}

type ObjKey = (String, String);

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: HashMap<GroupResource, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<StoreEvent>,
}

/// The object store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<StoreEvent>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds).
pub fn now() -> String {
    let ts = jiff::Timestamp::now();
    jiff::Timestamp::from_second(ts.as_second())
        .unwrap_or(ts)
        .to_string()
}

/// A random UUID (version 4 layout), as Kubernetes uses for `metadata.uid`.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        h(0..4),
        h(4..6),
        &h(6..8)[1..],
        8 | (b[8] & 0x3),
        &h(8..10)[1..],
        h(10..16)
    )
}

/// A random suffix from Kubernetes' alphabet for generated names (no vowels, no confusables).
pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

/// The part of an object whose change bumps `metadata.generation`: everything but metadata
/// and status.
fn spec_part(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Equal apart from resourceVersion and managedFields timestamps: an update that changes
/// nothing must not bump the version, or controllers would loop on their own writes.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(mf)) = m.get_mut("managedFields") {
                for e in mf {
                    if let Some(e) = e.as_object_mut() {
                        e.remove("time");
                    }
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

impl Store {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CHANNEL);
        Self {
            inner: Mutex::new(Inner::default()),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    fn emit(&self, inner: &mut Inner, kind: EventType, resource: &GroupResource, obj: Arc<Value>) {
        let ev = StoreEvent {
            kind,
            resource: resource.clone(),
            object: obj,
            rv: inner.rv,
        };
        inner.history.push_back(ev.clone());
        while inner.history.len() > HISTORY {
            inner.history.pop_front();
        }
        // No receivers is fine: nobody is watching yet.
        let _ = self.tx.send(ev);
    }

    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(gr)
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .map(|v| (**v).clone())
    }

    /// All objects of a resource, in one namespace or (with `None`) in all, and the
    /// resourceVersion the list is consistent with.
    pub fn list(&self, gr: &GroupResource, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .get(gr)
            .map(|m| {
                m.iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
                    .map(|(_, v)| (**v).clone())
                    .collect()
            })
            .unwrap_or_default();
        (items, inner.rv)
    }

    /// Every resource that holds objects in `namespace` (for namespace deletion and GC).
    pub fn resources(&self) -> Vec<GroupResource> {
        self.lock().objects.keys().cloned().collect()
    }

    /// Store a new object: sets name (from generateName), uid, resourceVersion,
    /// creationTimestamp and generation.
    pub fn create(&self, gr: &GroupResource, mut obj: Value) -> Result<Value, StoreError> {
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let mut inner = self.lock();
        let mut name = meta_str(&obj, "name").to_string();
        let namespace = meta_str(&obj, "namespace").to_string();
        if name.is_empty() {
            let prefix = meta_str(&obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(StoreError::Invalid(
                    "metadata.name or metadata.generateName is required".to_string(),
                ));
            }
            let taken = inner.objects.get(gr);
            name = loop {
                let candidate = format!("{prefix}{}", random_suffix(5));
                if !taken.is_some_and(|m| m.contains_key(&(namespace.clone(), candidate.clone()))) {
                    break candidate;
                }
            };
        }
        let key = (namespace.clone(), name.clone());
        if inner.objects.get(gr).is_some_and(|m| m.contains_key(&key)) {
            return Err(StoreError::AlreadyExists {
                resource: gr.clone(),
                namespace,
                name,
            });
        }
        inner.rv += 1;
        let rv = inner.rv;
        let meta = &mut obj["metadata"];
        meta["name"] = json!(name);
        meta["uid"] = json!(new_uid());
        meta["resourceVersion"] = json!(rv.to_string());
        meta["creationTimestamp"] = json!(now());
        if meta.get("generation").is_none() {
            meta["generation"] = json!(1);
        }
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
        }
        let obj = Arc::new(obj);
        inner
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key, obj.clone());
        self.emit(&mut inner, EventType::Added, gr, obj.clone());
        Ok((*obj).clone())
    }

    /// Replace an object. A non-empty `metadata.resourceVersion` in `obj` must match the
    /// stored one (optimistic concurrency). `status_only` keeps the stored spec and metadata
    /// and takes only `status` from `obj`; otherwise the stored status is kept only when
    /// `keep_status` is set (the main resource of a type with a status subresource).
    pub fn update(
        &self,
        gr: &GroupResource,
        obj: Value,
        mode: UpdateMode,
    ) -> Result<Value, StoreError> {
        let namespace = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let mut inner = self.lock();
        let key = (namespace.clone(), name.clone());
        let Some(old) = inner.objects.get(gr).and_then(|m| m.get(&key)).cloned() else {
            return Err(StoreError::NotFound {
                resource: gr.clone(),
                namespace,
                name,
            });
        };
        let want_rv = meta_str(&obj, "resourceVersion");
        if !want_rv.is_empty() && want_rv != meta_str(&old, "resourceVersion") {
            return Err(StoreError::Conflict {
                resource: gr.clone(),
                namespace,
                name,
            });
        }
        let new = merge_for_update(&old, obj, mode);
        self.commit(&mut inner, gr, key, &old, new)
    }

    /// Read-modify-write under the store lock, for controllers: no conflicts, and no event
    /// when `f` changes nothing. `f` may refuse with an error.
    pub fn modify<F>(
        &self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
        f: F,
    ) -> Result<Value, StoreError>
    where
        F: FnOnce(&mut Value) -> Result<(), StoreError>,
    {
        let mut inner = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let Some(old) = inner.objects.get(gr).and_then(|m| m.get(&key)).cloned() else {
            return Err(StoreError::NotFound {
                resource: gr.clone(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        };
        let mut new = (*old).clone();
        f(&mut new)?;
        let new = merge_for_update(&old, new, UpdateMode::Full);
        self.commit(&mut inner, gr, key, &old, new)
    }

    fn commit(
        &self,
        inner: &mut Inner,
        gr: &GroupResource,
        key: ObjKey,
        old: &Value,
        mut new: Value,
    ) -> Result<Value, StoreError> {
        if same_content(old, &new) {
            return Ok(old.clone());
        }
        if spec_part(old) != spec_part(&new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        inner.rv += 1;
        new["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        let obj = Arc::new(new);
        inner
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key, obj.clone());
        self.emit(inner, EventType::Modified, gr, obj.clone());
        Ok((*obj).clone())
    }

    /// Remove an object now. `uid`, when given, must match (a delete precondition).
    pub fn delete(
        &self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
        uid: Option<&str>,
    ) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let not_found = || StoreError::NotFound {
            resource: gr.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let objects = inner.objects.get_mut(gr).ok_or_else(not_found)?;
        let current = objects.get(&key).ok_or_else(not_found)?;
        if let Some(uid) = uid
            && meta_str(current, "uid") != uid
        {
            return Err(StoreError::Conflict {
                resource: gr.clone(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
        let removed = objects.remove(&key).ok_or_else(not_found)?;
        inner.rv += 1;
        let mut gone = (*removed).clone();
        gone["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        let gone = Arc::new(gone);
        self.emit(&mut inner, EventType::Deleted, gr, gone.clone());
        Ok((*gone).clone())
    }

    /// Subscribe to changes. With `since`, the events after that resourceVersion are returned
    /// first (410 Gone if they are no longer kept); subscribing and reading the history happen
    /// under one lock so no event is lost or doubled between them.
    pub fn subscribe(
        &self,
        since: Option<u64>,
    ) -> Result<(Vec<StoreEvent>, broadcast::Receiver<StoreEvent>), StoreError> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let Some(since) = since else {
            return Ok((Vec::new(), rx));
        };
        if since >= inner.rv {
            return Ok((Vec::new(), rx));
        }
        let oldest = inner.history.front().map(|e| e.rv).unwrap_or(inner.rv + 1);
        if since + 1 < oldest {
            return Err(StoreError::Gone {
                requested: since,
                oldest,
            });
        }
        let replay = inner
            .history
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        Ok((replay, rx))
    }

    /// A snapshot of one resource plus a subscription that starts right after it.
    pub fn list_and_subscribe(
        &self,
        gr: &GroupResource,
    ) -> (Vec<Value>, u64, broadcast::Receiver<StoreEvent>) {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let items = inner
            .objects
            .get(gr)
            .map(|m| m.values().map(|v| (**v).clone()).collect())
            .unwrap_or_default();
        (items, inner.rv, rx)
    }
}

/// How an update treats the parts of the stored object the request may not change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    /// Everything may change (controllers, types without a status subresource).
    Full,
    /// The main resource of a type with a status subresource: status is kept.
    KeepStatus,
    /// The status subresource: only status changes.
    StatusOnly,
}

fn merge_for_update(old: &Value, mut new: Value, mode: UpdateMode) -> Value {
    match mode {
        UpdateMode::Full => {}
        UpdateMode::KeepStatus => match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        },
        UpdateMode::StatusOnly => {
            let status = new.get("status").cloned();
            let mut keep = old.clone();
            match status {
                Some(s) => keep["status"] = s,
                None => {
                    if let Some(m) = keep.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new = keep;
        }
    }
    // Fields set at creation are the server's, whatever the client sends.
    for field in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
    ] {
        if field == "deletionTimestamp" && new["metadata"].get(field).is_some() {
            continue;
        }
        match old["metadata"].get(field) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"a": "1"}})
    }

    #[test]
    fn create_update_delete_with_versions() {
        let s = Store::new();
        let gr = GroupResource::new("", "configmaps");
        let a = s.create(&gr, cm("a")).unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert!(matches!(
            s.create(&gr, cm("a")),
            Err(StoreError::AlreadyExists { .. })
        ));
        let mut b = a.clone();
        b["data"]["a"] = json!("2");
        let b = s.update(&gr, b, UpdateMode::Full).unwrap();
        assert_eq!(b["metadata"]["generation"], 2);
        // A stale resourceVersion conflicts.
        assert!(matches!(
            s.update(&gr, a.clone(), UpdateMode::Full),
            Err(StoreError::Conflict { .. })
        ));
        // No change, no new version.
        let c = s.update(&gr, b.clone(), UpdateMode::Full).unwrap();
        assert_eq!(
            c["metadata"]["resourceVersion"],
            b["metadata"]["resourceVersion"]
        );
        let (replay, _rx) = s.subscribe(Some(1)).unwrap();
        assert_eq!(replay.len(), 1);
        s.delete(&gr, "default", "a", None).unwrap();
        assert!(s.get(&gr, "default", "a").is_none());
    }

    #[test]
    fn generate_name_and_uid() {
        let s = Store::new();
        let gr = GroupResource::new("", "pods");
        let o = s
            .create(
                &gr,
                json!({"metadata": {"generateName": "web-", "namespace": "x"}}),
            )
            .unwrap();
        let name = o["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(o["metadata"]["uid"].as_str().unwrap().len(), 36);
    }
}
