//! Host names as Istio reads them: short names resolve in the namespace of the object that
//! names them, wildcards match suffixes, and a Service answers to every name a pod's DNS
//! search path gives it (and to its ClusterIP), with and without the port.

use std::net::Ipv4Addr;

/// `name.namespace.svc.cluster.local`.
pub(crate) fn fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.{}", crate::mesh::TRUST_DOMAIN)
}

/// A host as written in a VirtualService or DestinationRule in `namespace`: a short name
/// (no dot) is that namespace's Service; anything with a dot (or `*`) is taken as written,
/// as Istio does.
pub(crate) fn resolve(host: &str, namespace: &str) -> String {
    if host == "*" || host.contains('.') {
        host.to_string()
    } else {
        fqdn(host, namespace)
    }
}

/// Whether `pattern` (`*`, `*.suffix` or a name) covers `host`.
pub(crate) fn matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern == host,
    }
}

/// The `domains` of the virtual host of Service `name` in `namespace` on `port`, as seen from
/// a proxy in `proxy_namespace`: the FQDN and its shorter forms (the short name only in the
/// same namespace), the ClusterIP, each with and without `:port`.
pub(crate) fn service_domains(
    name: &str,
    namespace: &str,
    cluster_ip: Option<Ipv4Addr>,
    port: u16,
    proxy_namespace: &str,
) -> Vec<String> {
    let mut names = vec![
        fqdn(name, namespace),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}"),
    ];
    if namespace == proxy_namespace {
        names.push(name.to_string());
    }
    if let Some(ip) = cluster_ip {
        names.push(ip.to_string());
    }
    let mut out = Vec::new();
    for n in names {
        out.push(format!("{n}:{port}"));
        out.push(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_objects_namespace() {
        assert_eq!(
            resolve("service-c", "istioinaction"),
            "service-c.istioinaction.svc.cluster.local"
        );
        assert_eq!(
            resolve("service-c.istioinaction.svc.cluster.local", "x"),
            "service-c.istioinaction.svc.cluster.local"
        );
        assert_eq!(resolve("*", "x"), "*");
    }

    #[test]
    fn wildcards_match_suffixes() {
        assert!(matches("*", "a.b"));
        assert!(matches(
            "*.istioinaction.svc.cluster.local",
            "service-a.istioinaction.svc.cluster.local"
        ));
        assert!(!matches(
            "*.default.svc.cluster.local",
            "service-a.istioinaction.svc.cluster.local"
        ));
        assert!(matches("a.b", "a.b") && !matches("a.b", "a.c"));
    }

    #[test]
    fn domains_cover_the_dns_search_path() {
        let ip = Some("127.2.0.9".parse().unwrap());
        let same = service_domains("service-b", "istioinaction", ip, 80, "istioinaction");
        for d in [
            "service-b",
            "service-b:80",
            "service-b.istioinaction",
            "service-b.istioinaction.svc.cluster.local:80",
            "127.2.0.9:80",
        ] {
            assert!(same.contains(&d.to_string()), "{d} in {same:?}");
        }
        let other = service_domains("service-b", "istioinaction", ip, 80, "default");
        assert!(!other.contains(&"service-b".to_string()));
    }
}
