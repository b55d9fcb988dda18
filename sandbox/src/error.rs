//! API errors as Kubernetes `Status` objects: the HTTP code, a machine-readable reason and a
//! message that names the object at fault, as kubectl and kube-rs print them. The API server
//! answers them, and the controllers' admission (`controllers::Cluster::create`) returns them,
//! so they live below both.

use serde_json::{Value, json};

use crate::store::StoreError;

/// An error answer of the API server.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NotFound", message)
    }
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "Conflict", message)
    }
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
    /// 422 for an object that fails validation; `kind`/`name` go into details like the API
    /// server's `StatusReasonInvalid`.
    pub fn invalid(kind: &str, name: &str, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{kind} {name:?} is invalid: {field}: {message}"),
            details: Some(json!({
                "name": name, "kind": kind,
                "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
            })),
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object sent as the body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::NotFound { resource, name, .. } => {
                ApiError::not_found(format!("{resource} {name:?} not found")).with_details(
                    json!({"name": name, "group": resource.group, "kind": resource.resource}),
                )
            }
            StoreError::AlreadyExists { resource, name, .. } => {
                let mut e = ApiError::conflict(format!("{resource} {name:?} already exists"))
                    .with_details(
                        json!({"name": name, "group": resource.group, "kind": resource.resource}),
                    );
                e.reason = "AlreadyExists";
                e
            }
            StoreError::Conflict { resource, name, .. } => ApiError::conflict(message)
                .with_details(
                    json!({"name": name, "group": resource.group, "kind": resource.resource}),
                ),
            StoreError::Gone { .. } => ApiError::gone(message),
            StoreError::Invalid(m) => ApiError::new(422, "Invalid", m),
        }
    }
}
