//! The workshop's YAML files: loading them into typed-enough objects for server-side apply,
//! with errors that name the file, the document and what is wrong.
//!
//! A file is split into YAML documents at `---` marker lines (YAML forbids such a line
//! inside a document, so this is exact), which keeps each document's number and file line
//! numbers for error messages; each document is then parsed with serde-saphyr.

use std::path::{Path, PathBuf};

use kube::api::DynamicObject;
use kube::core::GroupVersionKind;

use crate::error::{Error, Result};

/// Environment variable overriding the manifest directory.
pub(crate) const MANIFESTS_VAR: &str = "HAPPY_MANIFESTS";

/// A directory of workshop manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDir {
    root: PathBuf,
}

impl ManifestDir {
    /// Manifests under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ManifestDir { root: root.into() }
    }

    /// `HAPPY_MANIFESTS` if set, else the crate's own `manifests/` directory.
    pub fn from_env() -> Self {
        match std::env::var_os(MANIFESTS_VAR) {
            Some(dir) if !dir.is_empty() => ManifestDir::new(dir),
            _ => ManifestDir::new(crate::repo_root().join("manifests")),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `file` in this directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    /// Loads every object of `file` (e.g. `services-a.yaml`). A file without any object is an
    /// error: applying nothing would make a step pass without doing what it says.
    pub fn load(&self, file: &str) -> Result<Vec<Manifest>> {
        let path = self.path(file);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::ManifestRead {
            path: path.clone(),
            source,
        })?;
        let manifests = parse_documents(&path, &text)?;
        if manifests.is_empty() {
            return Err(Error::Manifest {
                path,
                document: 1,
                message: "the file contains no Kubernetes object".into(),
            });
        }
        Ok(manifests)
    }
}

/// One object of a manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from.
    pub file: PathBuf,
    /// Its document number in the file, counting from 1 as `describe` prints it (empty
    /// documents count, so the number matches what a reader counts in the file).
    pub index: usize,
    /// The object, with `types` (apiVersion and kind) always set.
    pub object: DynamicObject,
}

impl Manifest {
    /// `Deployment service-a (manifests/services-a.yaml, document 3)`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} ({}, document {})",
            self.kind(),
            self.name(),
            self.file.display(),
            self.index
        )
    }

    /// `apiVersion`, e.g. `apps/v1`.
    pub fn api_version(&self) -> &str {
        self.object
            .types
            .as_ref()
            .map_or("", |t| t.api_version.as_str())
    }

    /// `kind`, e.g. `Deployment`.
    pub fn kind(&self) -> &str {
        self.object.types.as_ref().map_or("", |t| t.kind.as_str())
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, if the file names one.
    pub fn namespace(&self) -> Option<&str> {
        self.object.metadata.namespace.as_deref()
    }

    /// Group, version and kind.
    pub fn gvk(&self) -> GroupVersionKind {
        let (group, version) = split_api_version(self.api_version());
        GroupVersionKind::gvk(group, version, self.kind())
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// Parses every document of `text` (read from `file`); empty documents are skipped.
pub fn parse_documents(file: &Path, text: &str) -> Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for doc in split_documents(text) {
        if doc.is_blank() {
            continue;
        }
        let fail = |message: String| Error::Manifest {
            path: file.to_path_buf(),
            document: doc.number,
            message,
        };
        // Blank lines in front keep the parser's line numbers those of the file.
        let padded = format!("{}{}", "\n".repeat(doc.first_line - 1), doc.text);
        let value: serde_json::Value =
            serde_saphyr::from_str(&padded).map_err(|e| fail(yaml_error_message(&e)))?;
        if value.is_null() {
            continue;
        }
        let object = to_object(value).map_err(fail)?;
        manifests.push(Manifest {
            file: file.to_path_buf(),
            index: doc.number,
            object,
        });
    }
    Ok(manifests)
}

fn yaml_error_message(e: &serde_saphyr::Error) -> String {
    match e.location() {
        Some(loc) => format!(
            "malformed YAML at line {}, column {}: {e}",
            loc.line(),
            loc.column()
        ),
        None => format!("malformed YAML: {e}"),
    }
}

/// Checks what every object needs and converts it.
fn to_object(value: serde_json::Value) -> std::result::Result<DynamicObject, String> {
    let map = match &value {
        serde_json::Value::Object(map) => map,
        other => {
            return Err(format!(
                "expected a Kubernetes object (a mapping with apiVersion, kind and metadata), found {}",
                json_kind(other)
            ));
        }
    };
    let text_field = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    let mut missing = Vec::new();
    if !text_field(map.get("apiVersion")) {
        missing.push("apiVersion");
    }
    if !text_field(map.get("kind")) {
        missing.push("kind");
    }
    let metadata = map.get("metadata");
    if !text_field(metadata.and_then(|m| m.get("name"))) {
        missing.push("metadata.name");
    }
    if !missing.is_empty() {
        let what = match (
            map.get("kind").and_then(|k| k.as_str()),
            metadata
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str()),
        ) {
            (Some(kind), _) => format!(" (kind {kind})"),
            (None, Some(name)) => format!(" (name {name})"),
            _ => String::new(),
        };
        return Err(format!("missing or empty {}{what}", missing.join(", ")));
    }
    if let Some(ns) = metadata.and_then(|m| m.get("namespace"))
        && !ns.is_string()
    {
        return Err(format!(
            "metadata.namespace must be a string, found {}",
            json_kind(ns)
        ));
    }
    serde_json::from_value::<DynamicObject>(value).map_err(|e| format!("not a valid object: {e}"))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

/// One YAML document of a file.
#[derive(Debug, PartialEq, Eq)]
struct Document {
    /// 1-based document number.
    number: usize,
    /// 1-based file line of the document's first line.
    first_line: usize,
    text: String,
}

impl Document {
    /// Nothing but blank lines, comments and directives.
    fn is_blank(&self) -> bool {
        self.text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#') || l.starts_with('%')
        })
    }
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

fn split_documents(text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut current = Document {
        number: 1,
        first_line: 1,
        text: String::new(),
    };
    // Text before the first `---` is a document only if it has content.
    let mut leading = true;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if is_marker(line, "---") {
            let number = if leading && current.is_blank() {
                current.number
            } else {
                current.number + 1
            };
            if !(leading && current.is_blank()) {
                docs.push(current);
            }
            leading = false;
            // Content after the marker (`--- |`, `--- # note`) stays in place, columns kept.
            current = Document {
                number,
                first_line: line_no,
                text: format!("   {}\n", &line[3..]),
            };
        } else if is_marker(line, "...") {
            // An explicit document end; the next `---` starts the next document.
            current.text.push('\n');
        } else {
            current.text.push_str(line);
            current.text.push('\n');
        }
    }
    docs.push(current);
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Manifest>> {
        parse_documents(Path::new("manifests/test.yaml"), text)
    }

    const THREE: &str = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: service-a
---
apiVersion: v1
kind: Service
metadata:
  name: service-a
spec:
  ports:
    - port: 80
      targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: service-a
  labels: {app: service-a}
spec:
  replicas: 1
";

    #[test]
    fn documents_in_order_with_numbers() {
        let m = parse(THREE).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            m.iter().map(|m| (m.kind(), m.index)).collect::<Vec<_>>(),
            vec![("ServiceAccount", 1), ("Service", 2), ("Deployment", 3)]
        );
        assert_eq!(
            m[2].describe(),
            "Deployment service-a (manifests/test.yaml, document 3)"
        );
        assert_eq!(m[2].api_version(), "apps/v1");
        assert_eq!(
            m[2].gvk(),
            GroupVersionKind::gvk("apps", "v1", "Deployment")
        );
        assert_eq!(
            m[0].gvk(),
            GroupVersionKind::gvk("", "v1", "ServiceAccount")
        );
        assert_eq!(m[2].namespace(), None);
        assert_eq!(m[1].object.data["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(
            m[2].object.metadata.labels.as_ref().unwrap()["app"],
            "service-a"
        );
    }

    #[test]
    fn empty_documents_are_skipped_but_counted() {
        let text = format!("---\n# leading comment\n---\n{THREE}---\n...\n---\n");
        let m = parse(&text).unwrap();
        assert_eq!(
            m.iter().map(|m| m.index).collect::<Vec<_>>(),
            vec![2, 3, 4],
            "the comment-only document counts as document 1"
        );
        assert!(parse("").unwrap().is_empty());
        assert!(parse("---\n---\n# nothing\n").unwrap().is_empty());
        assert_eq!(parse(&format!("---\n{THREE}")).unwrap()[0].index, 1);
    }

    #[test]
    fn own_namespace_is_kept() {
        let m = parse(
            "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: istioinaction\nspec:\n  mtls:\n    mode: STRICT\n",
        )
        .unwrap();
        assert_eq!(m[0].namespace(), Some("istioinaction"));
        assert_eq!(m[0].gvk().group, "security.istio.io");
    }

    #[test]
    fn malformed_yaml_names_file_document_and_line() {
        let text =
            format!("{THREE}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n");
        let msg = parse(&text).unwrap_err().to_string();
        assert!(msg.contains("manifests/test.yaml"), "{msg}");
        assert!(msg.contains("document 4"), "{msg}");
        assert!(msg.contains("malformed YAML at line"), "{msg}");
        // the error is on or after the `name:` line (file line 26), never a document-relative line
        let line: usize = msg
            .split("at line ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!(line >= 26, "{msg}");
    }

    #[test]
    fn missing_fields_are_named() {
        for (text, expected) in [
            (
                "kind: Service\nmetadata:\n  name: a\n",
                "missing or empty apiVersion (kind Service)",
            ),
            (
                "apiVersion: v1\nmetadata:\n  name: a\n",
                "missing or empty kind (name a)",
            ),
            (
                "apiVersion: v1\nkind: Service\n",
                "missing or empty metadata.name (kind Service)",
            ),
            (
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: \"\"\n",
                "metadata.name",
            ),
            ("- a\n- b\n", "found a list"),
            ("just text\n", "found a string"),
            (
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  namespace: 3\n",
                "metadata.namespace must be a string",
            ),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains("manifests/test.yaml, document 1"), "{msg}");
            assert!(msg.contains(expected), "{text:?}: {msg}");
        }
    }

    #[test]
    fn workshop_manifests_load() {
        let dir = ManifestDir::new(crate::repo_root().join("manifests"));
        for (file, kinds) in [
            (
                "services-a.yaml",
                vec!["ServiceAccount", "Service", "Deployment"],
            ),
            ("services-c-v2.yaml", vec!["Deployment"]),
            ("peer-auth-strict.yaml", vec!["PeerAuthentication"]),
        ] {
            let m = dir.load(file).unwrap();
            assert_eq!(
                m.iter().map(Manifest::kind).collect::<Vec<_>>(),
                kinds,
                "{file}"
            );
        }
        let err = dir.load("no-such-file.yaml").unwrap_err().to_string();
        assert!(err.contains("no-such-file.yaml"), "{err}");
    }
}
