//! Image pulls as the sandbox's node does them: the model of containerd 2.3 on the kind node
//! the suite pins (kind v0.33.0's Kubernetes 1.35.8) behind a kubelet. An image either maps to
//! a built-in program (see [`super::program`]) or fails to pull with the message the kubelet
//! would put into the container's waiting state; a failed pull is retried with the kubelet's
//! back-off, the container alternating between `ErrImagePull` and `ImagePullBackOff` as it
//! does on a real node.
//!
//! Docker schema-1 images: containerd ≥ 2.1 refuses them. kind's node images build containerd
//! v2.2.0 at v0.31.0 and v2.3.4 on `main` when v0.33.0 was cut (kubernetes-sigs/kind
//! `images/base/Dockerfile`, `CONTAINERD_VERSION`), and kind's containerd config sets
//! `discard_unpacked_layers = true` (`images/base/files/etc/containerd/config.toml`), which
//! makes the CRI plugin fall back from the transfer service to `client.Pull` (containerd
//! `internal/cri/config/config.go` `CheckLocalImagePullConfigs`, v2.2.0 and v2.3.4). That pull
//! refuses the schema-1 manifest with `ErrNotImplemented` (containerd `client/pull.go`, the
//! same text in v2.2.0 and v2.3.4); the CRI plugin wraps it as `failed to pull and unpack
//! image %q` (`internal/cri/server/images/image_pull.go`), its gRPC layer maps not-implemented
//! to `Unimplemented` (`internal/cri/instrument`, `errgrpc.ToGRPC`), and the kubelet puts the
//! error's text into the waiting message (kubernetes `pkg/kubelet/images/image_manager.go`,
//! `imagePullResult.err.Error()`).
//!
//! Faults on purpose ([`super::faults`], `HAPPY_SANDBOX_FAULTS`) fail pulls with the texts the
//! same chain gives for an unhealthy registry or network; see [`fault_message`] for each.
//!
//! Test-only knob: `HAPPY_SANDBOX_PULL_SCHEMA1=1` makes the node pull schema-1 images as
//! containerd < 2.1 did, so a test can break the premise of the suite's deviation
//! `D-legacy-image` and see its re-check fail. Nothing else should set it.

use std::time::Duration;

use super::faults::PullFault;
use crate::program::split_image;

/// The test-only variable that lets schema-1 images pull (see the module docs).
pub const PULL_SCHEMA1_VAR: &str = "HAPPY_SANDBOX_PULL_SCHEMA1";

/// Images whose registry manifest is Docker schema 1
/// (`application/vnd.docker.distribution.manifest.v1+prettyjws`), as (repository, tag) after
/// Docker's defaults. radial/busyboxplus:curl: kubernetes/website#52702,
/// radial/core-busyboxplus#6.
const SCHEMA1_IMAGES: &[(&str, &str)] = &[("radial/busyboxplus", "curl")];

/// The kubelet's image pull back-off: 10 s, doubling, at most 300 s (kubernetes
/// `pkg/kubelet/kubelet.go`, recent releases: `flowcontrol.NewBackOff(imageBackOffPeriod,
/// MaxImageBackOff)` with 10 s and `MaxImageBackOff = 300 * time.Second`).
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// How long a container shows `ErrImagePull` before the kubelet's next sync of the pod finds
/// the image in back-off and reports `ImagePullBackOff` (a sync of the pod worker; seconds on
/// a real node).
pub const ERR_IMAGE_PULL_SHOWN: Duration = Duration::from_secs(1);

/// Whether this process lets schema-1 images pull (the test-only knob).
pub fn schema1_allowed_from_env() -> bool {
    std::env::var(PULL_SCHEMA1_VAR).is_ok_and(|v| v.trim() == "1")
}

/// The fully qualified reference containerd's CRI plugin names in its messages
/// (distribution/reference `ParseDockerRef`: `docker.io/`, `library/` and `:latest` added).
pub fn docker_ref(image: &str) -> String {
    let (repo, tag) = split_image(image);
    let first = repo.split('/').next().unwrap_or_default();
    let has_registry =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{full}:{tag}")
}

/// Whether the image's manifest is Docker schema 1.
pub fn is_schema1(image: &str) -> bool {
    SCHEMA1_IMAGES.contains(&split_image(image))
}

/// The waiting message of a container whose schema-1 image containerd 2.2/2.3 refused: the
/// kubelet's text of the CRI error (see the module docs for each layer).
pub fn schema1_refusal(image: &str) -> String {
    format!(
        "rpc error: code = Unimplemented desc = failed to pull and unpack image \"{}\": \
         not implemented: media type \"application/vnd.docker.distribution.manifest.v1+prettyjws\" \
         is no longer supported since containerd v2.1, please rebuild the image as \
         \"application/vnd.docker.distribution.manifest.v2+json\" or \
         \"application/vnd.oci.image.manifest.v1+json\"",
        docker_ref(image)
    )
}

/// The BackOff event's message while the image is in back-off (kubelet `image_manager.go`:
/// `Back-off pulling image %q`, with the image as the pod names it).
pub fn backoff_message(image: &str) -> String {
    format!("Back-off pulling image {image:?}")
}

/// The container's waiting message while the image is in back-off: the event's text followed
/// by the last pull error. The kubelet keeps the error of the last attempt (`prevPullErrMsg`,
/// stored as `"%s: %s"` of the `ErrImagePull` error and its message) and appends it with
/// `"%s: %s"` (kubernetes/kubernetes PR #127918 "Use image pull error in `message` during
/// back-off", merged 2024-10 for v1.32; `pkg/kubelet/images/image_manager.go` `pullImage`).
pub fn backoff_waiting_message(image: &str, last_error: &str) -> String {
    format!("{}: ErrImagePull: {last_error}", backoff_message(image))
}

/// The host containerd sends a reference's registry requests to: Docker Hub's API is
/// `registry-1.docker.io` (containerd v2.2.0 and v2.3.4 `core/remotes/docker/config/hosts.go`
/// and `core/remotes/docker/resolver.go`, `DefaultHost`); every other registry is its own host.
pub fn registry_host(reference: &str) -> &str {
    match reference.split('/').next().unwrap_or_default() {
        "docker.io" => "registry-1.docker.io",
        host => host,
    }
}

/// The manifest URL containerd's resolver asks for a fully qualified `reference`
/// (`https://HOST/v2/NAME/manifests/TAG`, the distribution API; containerd v2.2.0
/// `core/remotes/docker/resolver.go` `Resolve`, `paths` "manifests").
pub fn manifest_url(reference: &str) -> String {
    let (name, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
    let path = name.split_once('/').map_or(name, |(_, p)| p);
    format!(
        "https://{}/v2/{path}/manifests/{tag}",
        registry_host(reference)
    )
}

/// The waiting message (and the `Failed to pull image` event's error) of a pull `fault` made
/// to fail, as the kubelet gets it from containerd on the pinned kind node. Every layer is
/// containerd v2.2.0's (kind v0.31) unless said otherwise, and the same text in v2.3.4 (kind
/// v0.33.0's, pinned): the messages below are unchanged between the two; v2.3 adds a retry of
/// transient transport errors (timeouts, EOF; `resolver.go` `doWithTransportRetries`, not a
/// refused connection) and redacts URL query parameters from CRI errors
/// (`internal/cri/util/sanitize.go`; manifest URLs have none):
/// - the CRI plugin: `failed to pull and unpack image %q: %w`
///   (`internal/cri/server/images/image_pull.go`, the `client.Pull` path kind's config takes);
/// - `client.Pull` → `fetch`: `failed to resolve reference %q: %w` (`client/pull.go`);
/// - the resolver sends `HEAD https://HOST/v2/NAME/manifests/TAG`
///   (`core/remotes/docker/resolver.go` `Resolve`):
///   - a 404 gives `fmt.Errorf("%s: %w", ref, errdefs.ErrNotFound)` → `REF: not found`;
///   - a 429 is retried up to 5 times at once (`retryRequest`), then gives
///     `unexpectedResponseErr` → `ErrUnexpectedStatus.Error()`, `unexpected status from HEAD
///     request to URL: 429 Too Many Requests` (`core/remotes/errors/errors.go`: the body is never
///     in the text, and a HEAD answer has none; Docker Hub answers a HEAD with 429 once the
///     limit is reached, as seen in rapidsai/ci-imgs#427, 2026-06-25, through the same
///     resolver);
///   - a failed dial gives `failed to do request: %w` around Go's `*url.Error` (`Head "URL":
///     …`) around the `*net.OpError` `dial tcp ADDR: connect: connection refused`
///     (Go `net/http` `urlErrorOp`, `net.OpError.Error`). 192.0.2.1 (TEST-NET-1, RFC 5737)
///     stands in for the registry's address. The sandbox models the refused connection, which
///     fails at once, not a dial that hangs until its timeout;
/// - the CRI's gRPC layer maps `errdefs.ErrNotFound` to `NotFound` and the rest to `Unknown`
///   (`internal/cri/instrument/instrumented_service.go`, `errgrpc.ToGRPC`, containerd/errdefs
///   v1.0.0), and the kubelet puts the gRPC error's text into the waiting message
///   (`image_manager.go`, `evalCRIPullErr` fallback `err.Error()`).
///
/// `Slow` never fails; its message is empty.
pub fn fault_message(image: &str, fault: PullFault) -> String {
    let reference = docker_ref(image);
    let url = manifest_url(&reference);
    let (code, cause) = match fault {
        PullFault::NotFound => ("NotFound", format!("{reference}: not found")),
        PullFault::RateLimit => (
            "Unknown",
            format!("unexpected status from HEAD request to {url}: 429 Too Many Requests"),
        ),
        PullFault::Unreachable => (
            "Unknown",
            format!(
                "failed to do request: Head {url:?}: dial tcp 192.0.2.1:443: connect: \
                 connection refused"
            ),
        ),
        PullFault::Slow(_) => return String::new(),
    };
    format!(
        "rpc error: code = {code} desc = failed to pull and unpack image {reference:?}: \
         failed to resolve reference {reference:?}: {cause}"
    )
}

/// Go's `time.Duration.String()` of `d` truncated to milliseconds, as the kubelet prints pull
/// times (`313ms`, `1.594s`, `1m5.2s`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (minutes, ms) = (ms / 60_000, ms % 60_000);
    let secs = format!("{}.{:03}", ms / 1000, ms % 1000);
    let secs = secs.trim_end_matches('0').trim_end_matches('.');
    if minutes == 0 {
        format!("{secs}s")
    } else {
        format!("{minutes}m{secs}s")
    }
}

/// The Pulled event's message after a pull (kubelet `image_manager.go` `pullImage`:
/// `Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.`). The
/// sandbox's images have no size, so the size sentence is left out rather than made up.
pub fn pulled_message(image: &str, took: Duration) -> String {
    let t = go_duration(took);
    format!("Successfully pulled image {image:?} in {t} ({t} including waiting)")
}

/// The Pulled event's message when the image is on the node and the pull policy does not ask
/// for a pull (kubelet `image_manager.go`: `Container image %q already present on machine`).
pub fn already_present_message(image: &str) -> String {
    format!("Container image {image:?} already present on machine")
}

/// Whether the kubelet pulls on every start: the container's `imagePullPolicy`, else the API
/// server's default (`Always` for `:latest` or no tag, `IfNotPresent` otherwise; kubernetes
/// `pkg/apis/core/v1/defaults.go` `SetDefaults_Container`).
pub fn pulls_always(image: &str, policy: Option<&str>) -> bool {
    match policy {
        Some(p) => p == "Always",
        None => {
            let no_digest = !image.contains('@');
            no_digest && split_image(image).1 == "latest"
        }
    }
}

/// The next back-off after `current`.
pub fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_images_as_containerd_does() {
        assert_eq!(
            docker_ref("radial/busyboxplus:curl"),
            "docker.io/radial/busyboxplus:curl"
        );
        assert_eq!(docker_ref("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(docker_ref("quay.io/a/b:1"), "quay.io/a/b:1");
    }

    #[test]
    fn only_the_known_schema1_images_are_refused() {
        assert!(is_schema1("radial/busyboxplus:curl"));
        assert!(is_schema1("docker.io/radial/busyboxplus:curl"));
        assert!(!is_schema1("docker.io/curlimages/curl:8.16.0"));
        let m = schema1_refusal("radial/busyboxplus:curl");
        assert!(m.contains("\"docker.io/radial/busyboxplus:curl\""), "{m}");
        assert!(
            m.contains("is no longer supported since containerd v2.1"),
            "{m}"
        );
        assert_eq!(
            backoff_message("radial/busyboxplus:curl"),
            "Back-off pulling image \"radial/busyboxplus:curl\""
        );
    }

    #[test]
    fn fault_messages_are_containerds_and_the_kubelets() {
        let img = "rinormaloku/happy-service:latest";
        assert_eq!(
            fault_message(img, PullFault::NotFound),
            "rpc error: code = NotFound desc = failed to pull and unpack image \
             \"docker.io/rinormaloku/happy-service:latest\": failed to resolve reference \
             \"docker.io/rinormaloku/happy-service:latest\": \
             docker.io/rinormaloku/happy-service:latest: not found"
        );
        assert_eq!(
            fault_message(img, PullFault::RateLimit),
            "rpc error: code = Unknown desc = failed to pull and unpack image \
             \"docker.io/rinormaloku/happy-service:latest\": failed to resolve reference \
             \"docker.io/rinormaloku/happy-service:latest\": unexpected status from HEAD \
             request to https://registry-1.docker.io/v2/rinormaloku/happy-service/manifests/latest: \
             429 Too Many Requests"
        );
        assert_eq!(
            fault_message("quay.io/kiali/kiali:v2.27", PullFault::Unreachable),
            "rpc error: code = Unknown desc = failed to pull and unpack image \
             \"quay.io/kiali/kiali:v2.27\": failed to resolve reference \
             \"quay.io/kiali/kiali:v2.27\": failed to do request: Head \
             \"https://quay.io/v2/kiali/kiali/manifests/v2.27\": dial tcp 192.0.2.1:443: \
             connect: connection refused"
        );
        assert_eq!(
            manifest_url("docker.io/library/nginx:latest"),
            "https://registry-1.docker.io/v2/library/nginx/manifests/latest"
        );
        assert_eq!(
            manifest_url("localhost:5000/a/b:1"),
            "https://localhost:5000/v2/a/b/manifests/1"
        );
        assert_eq!(
            backoff_waiting_message(img, "boom"),
            "Back-off pulling image \"rinormaloku/happy-service:latest\": ErrImagePull: boom"
        );
    }

    #[test]
    fn pull_times_print_as_go_durations() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_micros(313_900)), "313ms");
        assert_eq!(go_duration(Duration::from_millis(1594)), "1.594s");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_millis(65_200)), "1m5.2s");
        assert_eq!(
            pulled_message("nginx", Duration::from_millis(1500)),
            "Successfully pulled image \"nginx\" in 1.5s (1.5s including waiting)"
        );
        assert!(pulls_always("nginx", None));
        assert!(pulls_always("a/b:latest", None));
        assert!(!pulls_always("a/b:1", None));
        assert!(!pulls_always("a/b:latest", Some("IfNotPresent")));
        assert!(pulls_always("a/b:1", Some("Always")));
    }

    #[test]
    fn backoff_doubles_up_to_the_kubelets_maximum() {
        assert_eq!(next_backoff(BACKOFF_INITIAL), Duration::from_secs(20));
        assert_eq!(next_backoff(Duration::from_secs(200)), BACKOFF_MAX);
    }
}
