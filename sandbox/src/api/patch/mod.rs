//! The PATCH flavours the API server accepts: JSON patch, JSON merge patch, strategic merge
//! patch (as `kubectl apply`, `label` and `rollout restart` send it) and server-side apply.

pub(crate) mod apply;
pub(crate) mod keys;
pub(crate) mod strategic;

use serde_json::Value;

/// Which patch a request carries, from its Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub(crate) fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// A patch that cannot be applied, with the reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PatchError {
    #[error("the patch is not valid: {0}")]
    Malformed(String),
    #[error("the patch cannot be applied: {0}")]
    Failed(String),
}

/// Apply a non-apply patch to `current`. `builtin` selects merge keys for strategic merge.
pub(crate) fn patch(
    kind: PatchKind,
    current: &Value,
    body: &Value,
    builtin: bool,
) -> Result<Value, PatchError> {
    let mut doc = current.clone();
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_value(body.clone())
                .map_err(|e| PatchError::Malformed(e.to_string()))?;
            json_patch::patch(&mut doc, &p).map_err(|e| PatchError::Failed(e.to_string()))?;
        }
        PatchKind::Merge => {
            if !body.is_object() {
                return Err(PatchError::Malformed(
                    "a merge patch must be a JSON object".to_string(),
                ));
            }
            json_patch::merge(&mut doc, body);
        }
        PatchKind::Strategic => {
            if !body.is_object() {
                return Err(PatchError::Malformed(
                    "a strategic merge patch must be a JSON object".to_string(),
                ));
            }
            strategic::merge(&mut doc, body, builtin)?;
        }
        PatchKind::Apply => {
            return Err(PatchError::Malformed(
                "server-side apply goes through apply::apply".to_string(),
            ));
        }
    }
    Ok(doc)
}
