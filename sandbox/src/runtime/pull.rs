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
//! Test-only knob: `HAPPY_SANDBOX_PULL_SCHEMA1=1` makes the node pull schema-1 images as
//! containerd < 2.1 did, so a test can break the premise of the suite's deviation
//! `D-legacy-image` and see its re-check fail. Nothing else should set it.

use std::time::Duration;

use super::program::split_image;

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

/// The waiting message while the image is in back-off (kubelet `image_manager.go`:
/// `Back-off pulling image %q`, with the image as the pod names it).
pub fn backoff_message(image: &str) -> String {
    format!("Back-off pulling image {image:?}")
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
    fn backoff_doubles_up_to_the_kubelets_maximum() {
        assert_eq!(next_backoff(BACKOFF_INITIAL), Duration::from_secs(20));
        assert_eq!(next_backoff(Duration::from_secs(200)), BACKOFF_MAX);
    }
}
