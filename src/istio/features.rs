//! Version-dependent behaviour the workshop's claims depend on (tutorial-claims.md, "Version
//! differences"), as pure predicates so steps state claims that hold across versions.

use super::version::IstioVersion;

/// Mirrored requests carry the `-shadow` host suffix up to Istio 1.27; from 1.28 they do not.
pub fn mirror_host_has_shadow_suffix(istio: &IstioVersion) -> bool {
    !istio.at_least_minor(1, 28)
}

/// Sidecars are native sidecars (restartable init containers) from Istio 1.27 on Kubernetes
/// 1.33 or newer. `kubernetes` is `(major, minor)` of the API server.
pub fn native_sidecars(istio: &IstioVersion, kubernetes: (u64, u64)) -> bool {
    istio.at_least_minor(1, 27) && kubernetes >= (1, 33)
}

/// The envoy command operator the default *text* access-log format uses for the upstream
/// cluster: `%UPSTREAM_CLUSTER_RAW%` from Istio 1.23 on, `%UPSTREAM_CLUSTER%` before.
///
/// istio/istio `pilot/pkg/model/telemetry_logging.go`: at tag 1.22.0 `EnvoyTextLogFormat` has
/// `%UPSTREAM_CLUSTER%`; at tag 1.23.0 it has `%UPSTREAM_CLUSTER_RAW%` (commit 2d569b66563,
/// "[release-1.23] Use UPSTREAM_CLUSTER_RAW for access log format", #52410), chosen by
/// `fileAccessLogFormat` when the *proxy* is ≥1.23 (`versionGE123`; older proxies get
/// `LegacyEnvoyTextLogFormat`), unconditionally at 1.24.0. The JSON format's `upstream_cluster`
/// changed later, in 1.25.0 (commit 4900dbd2f28, #54224): this function is about the text
/// format, which the demo profile's `accessLogFile: /dev/stdout` uses.
pub fn access_log_upstream_cluster_field(istio: &IstioVersion) -> &'static str {
    if istio.at_least_minor(1, 23) {
        "UPSTREAM_CLUSTER_RAW"
    } else {
        "UPSTREAM_CLUSTER"
    }
}

/// `istioctl x wait` exists before 1.23 only (istio/istio `istioctl/pkg/wait/wait.go` at tag
/// 1.22.0; gone from `istioctl/cmd/root.go` at 1.23.0).
pub fn has_experimental_wait(istio: &IstioVersion) -> bool {
    !istio.at_least_minor(1, 23)
}

/// Parses a Kubernetes version as the API server reports it (`major` "1", `minor` "33+" on
/// some distributions) into `(major, minor)`.
pub fn kubernetes_minor(major: &str, minor: &str) -> Option<(u64, u64)> {
    let digits = |s: &str| -> Option<u64> {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        d.parse().ok()
    };
    Some((digits(major)?, digits(minor)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> IstioVersion {
        s.parse().unwrap()
    }

    #[test]
    fn shadow_suffix_up_to_1_27() {
        assert!(mirror_host_has_shadow_suffix(&v("1.27.9")));
        assert!(mirror_host_has_shadow_suffix(&v("1.22.0")));
        assert!(!mirror_host_has_shadow_suffix(&v("1.28.0")));
        assert!(!mirror_host_has_shadow_suffix(&v("1.28.0-beta.1")));
        assert!(!mirror_host_has_shadow_suffix(&v(
            "1.28-alpha.0123456789abcdef0123456789abcdef01234567"
        )));
        assert!(!mirror_host_has_shadow_suffix(&v(
            "1.32.0-alpha.86c9f01fd735fb01d8192f5bcaf0d424afb7f14c"
        )));
    }

    #[test]
    fn native_sidecars_need_both_versions() {
        assert!(native_sidecars(&v("1.27.0"), (1, 33)));
        assert!(native_sidecars(&v("1.31.1"), (1, 35)));
        assert!(!native_sidecars(&v("1.26.9"), (1, 35)));
        assert!(!native_sidecars(&v("1.28.0"), (1, 32)));
    }

    #[test]
    fn access_log_text_field_renamed_in_1_23() {
        assert_eq!(
            access_log_upstream_cluster_field(&v("1.22.8")),
            "UPSTREAM_CLUSTER"
        );
        assert_eq!(
            access_log_upstream_cluster_field(&v("1.23.0")),
            "UPSTREAM_CLUSTER_RAW"
        );
        assert_eq!(
            access_log_upstream_cluster_field(&v("1.31.1")),
            "UPSTREAM_CLUSTER_RAW"
        );
    }

    #[test]
    fn experimental_wait_removed_in_1_23() {
        assert!(has_experimental_wait(&v("1.22.8")));
        assert!(!has_experimental_wait(&v("1.23.0")));
    }

    #[test]
    fn kubernetes_versions() {
        assert_eq!(kubernetes_minor("1", "33"), Some((1, 33)));
        assert_eq!(kubernetes_minor("1", "30+"), Some((1, 30)));
        assert_eq!(kubernetes_minor("", "30"), None);
    }
}
