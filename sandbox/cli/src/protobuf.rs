//! Just enough of Kubernetes' protobuf encoding to accept what typed clients send for the
//! workshop: `kubectl create namespace` posts a Namespace as protobuf and does not fall back to
//! JSON. The envelope is `k8s\0` + `runtime.Unknown{typeMeta, raw}`; of the object, metadata's
//! name, generateName, namespace, labels and annotations are read. Anything else is refused
//! with a message asking for JSON.

use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// One protobuf field: its number and its value (varints as numbers, the rest as bytes).
enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
    Other,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => {
                varint(buf, &mut pos)?;
                Field::Varint
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                let f = Field::Bytes(&buf[pos..end]);
                pos = end;
                f
            }
            1 => {
                pos += 8;
                Field::Other
            }
            5 => {
                pos += 4;
                Field::Other
            }
            _ => return None,
        };
        out.push((number, field));
    }
    (pos == buf.len()).then_some(out)
}

fn string(f: &Field<'_>) -> Option<String> {
    match f {
        Field::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    }
}

fn map_entry(f: &Field<'_>) -> Option<(String, String)> {
    let Field::Bytes(b) = f else { return None };
    let entry = fields(b)?;
    let get = |n: u64| {
        entry
            .iter()
            .find(|(k, _)| *k == n)
            .and_then(|(_, v)| string(v))
    };
    Some((get(1)?, get(2).unwrap_or_default()))
}

fn object_meta(buf: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    for (n, f) in fields(buf)? {
        match n {
            1 => {
                meta.insert("name".into(), json!(string(&f)?));
            }
            2 => {
                meta.insert("generateName".into(), json!(string(&f)?));
            }
            3 => {
                meta.insert("namespace".into(), json!(string(&f)?));
            }
            11 => {
                let (k, v) = map_entry(&f)?;
                labels.insert(k, json!(v));
            }
            12 => {
                let (k, v) = map_entry(&f)?;
                annotations.insert(k, json!(v));
            }
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    Some(Value::Object(meta))
}

/// Decode a protobuf-encoded Namespace; `Err` says why it cannot be used.
pub(crate) fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("the body is not in Kubernetes' protobuf envelope")?;
    let unknown = fields(rest).ok_or("the protobuf envelope is malformed")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in &unknown {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm).ok_or("malformed typeMeta")? {
                    match tn {
                        1 => api_version = string(&tf).unwrap_or_default(),
                        2 => kind = string(&tf).unwrap_or_default(),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    if kind != "Namespace" || api_version != "v1" {
        return Err(format!(
            "the happy-sandbox reads protobuf only for v1 Namespace, not {api_version} {kind}; send JSON (for kubectl: use `kubectl apply -f` with YAML)"
        ));
    }
    let mut meta = json!({});
    for (n, f) in fields(raw).ok_or("the protobuf Namespace is malformed")? {
        if let (1, Field::Bytes(m)) = (n, f) {
            meta = object_meta(m).ok_or("the protobuf ObjectMeta is malformed")?;
        }
    }
    Ok(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, data.len() as u8];
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn decodes_a_namespace() {
        let mut meta = ld(1, b"istioinaction");
        meta.extend(ld(11, &[ld(1, b"a"), ld(2, b"b")].concat()));
        let ns = ld(1, &meta);
        let tm = [ld(1, b"v1"), ld(2, b"Namespace")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &ns)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["metadata"]["name"], "istioinaction");
        assert_eq!(v["metadata"]["labels"]["a"], "b");
        let tm = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        assert!(decode(&[MAGIC.to_vec(), ld(1, &tm)].concat()).is_err());
    }
}
