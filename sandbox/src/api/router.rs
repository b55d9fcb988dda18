//! Turns a request path into what it addresses: a discovery document or a resource
//! (collection, object or subresource) of a registered type.

use std::sync::Arc;

use crate::store::{Registry, ResourceType};

use crate::error::ApiError;

/// What a path addresses.
#[derive(Debug)]
pub(crate) enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources { group: String, version: String },
    OpenApi,
    Resource(Target),
}

/// A resource request: a collection (no name), an object, or one of its subresources.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub rt: Arc<ResourceType>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub(crate) fn route(registry: &Registry, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_found = || {
        ApiError::not_found(format!(
            "the server could not find the requested resource ({path})"
        ))
    };
    match segs.as_slice() {
        ["version"] => Ok(Route::Version),
        ["healthz"] | ["readyz"] | ["livez"] => Ok(Route::Health),
        ["openapi", ..] => Ok(Route::OpenApi),
        ["api"] => Ok(Route::CoreVersions),
        ["apis"] => Ok(Route::Groups),
        ["api", "v1"] => Ok(Route::Resources {
            group: String::new(),
            version: "v1".to_string(),
        }),
        ["apis", g] => {
            if registry.groups().iter().any(|(name, _)| name == g) {
                Ok(Route::Group(g.to_string()))
            } else {
                Err(not_found())
            }
        }
        ["apis", g, v] => {
            if registry.has_group_version(g, v) {
                Ok(Route::Resources {
                    group: g.to_string(),
                    version: v.to_string(),
                })
            } else {
                Err(not_found())
            }
        }
        ["api", "v1", rest @ ..] => resource(registry, "", "v1", rest, path),
        ["apis", g, v, rest @ ..] => resource(registry, g, v, rest, path),
        _ => Err(not_found()),
    }
}

fn resource(
    registry: &Registry,
    group: &str,
    version: &str,
    rest: &[&str],
    path: &str,
) -> Result<Route, ApiError> {
    let lookup = |plural: &str| {
        registry.lookup(group, version, plural).ok_or_else(|| {
            let gv = if group.is_empty() {
                version.to_string()
            } else {
                format!("{group}/{version}")
            };
            ApiError::not_found(format!(
                "the server could not find the requested resource: no resource {plural:?} in {gv}"
            ))
        })
    };
    let target =
        |rt: Arc<ResourceType>, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
            Ok(Route::Resource(Target {
                rt,
                namespace: ns.map(String::from),
                name: name.map(String::from),
                subresource: sub.map(String::from),
            }))
        };
    let is_ns_sub = |s: &str| group.is_empty() && matches!(s, "status" | "finalize");
    match rest {
        ["namespaces", ns, sub] if is_ns_sub(sub) => {
            target(lookup("namespaces")?, None, Some(ns), Some(sub))
        }
        ["namespaces", ns, plural, tail @ ..] => {
            let rt = lookup(plural)?;
            if !rt.namespaced {
                return Err(ApiError::not_found(format!(
                    "{plural} is not a namespaced resource ({path})"
                )));
            }
            match tail {
                [] => target(rt, Some(ns), None, None),
                [name] => target(rt, Some(ns), Some(name), None),
                [name, sub] => target(rt, Some(ns), Some(name), Some(sub)),
                _ => Err(ApiError::not_found(format!("no such path {path}"))),
            }
        }
        [plural] => target(lookup(plural)?, None, None, None),
        [plural, name] | [plural, name, ..] => {
            let rt = lookup(plural)?;
            if rt.namespaced {
                return Err(ApiError::not_found(format!(
                    "{plural} is namespaced: use /namespaces/NAMESPACE/{plural}/{name} ({path})"
                )));
            }
            let sub = rest.get(2).copied();
            if rest.len() > 3 {
                return Err(ApiError::not_found(format!("no such path {path}")));
            }
            target(rt, None, Some(name), sub)
        }
        [] => Err(ApiError::not_found(format!("no such path {path}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = Registry::new();
        let Ok(Route::Resource(t)) = route(&r, "/api/v1/namespaces/default/pods/x/log") else {
            panic!()
        };
        assert_eq!(
            (
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            (Some("default"), Some("x"), Some("log"))
        );
        let Ok(Route::Resource(t)) = route(&r, "/api/v1/namespaces/default/status") else {
            panic!()
        };
        assert_eq!(t.rt.plural, "namespaces");
        let Ok(Route::Resource(t)) = route(&r, "/apis/apps/v1/deployments") else {
            panic!()
        };
        assert!(t.namespace.is_none());
        assert!(route(&r, "/apis/apps/v1/namespaces/x/widgets").is_err());
        assert!(route(&r, "/apis/nope/v1").is_err());
    }
}
