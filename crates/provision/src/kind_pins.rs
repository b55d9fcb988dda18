//! The kind release and node image the suite pins. A leaf of the provisioning layer: the
//! settings offer the node image as `HAPPY_KIND_NODE_IMAGE`'s default, and the kind
//! provisioner and the preflight use both (`crate::provision::kind` re-exports them).

/// The kind release used unless `HAPPY_KIND_BINARY` names another: v0.33.0 (released late
/// August 2026; public pins of it appear from 2026-08-27), the first release that lists clusters on podman 6. podman 6.0 turned a
/// container's `.Labels` from a map into a slice, so the `{{index .Labels "…"}}` format of
/// `kind get clusters` fails ("cannot index slice/array with type string",
/// kubernetes-sigs/kind#4201, #4231); the fix, #4203 (commit 955ea974, "Handle podman 6.0.0
/// label change", `pkg/cluster/internal/providers/podman/provider.go` `ListClusters`), is in
/// neither v0.31.0 nor v0.32.0 (`git tag --contains 955ea974`) and was on `main` when v0.33.0
/// was cut from it.
pub const KIND_VERSION: &str = "v0.33.0";

/// The first kind release whose podman provider lists clusters on podman ≥ 6 (see
/// [`KIND_VERSION`]).
pub const KIND_PODMAN6_FIXED: (u64, u64) = (0, 33);

/// Kubernetes 1.35.8, one of the node images kind v0.33.0's release notes list under "Images
/// pre-built for this release" (github.com/kubernetes-sigs/kind/releases/tag/v0.33.0), pinned
/// by the digest the notes give. Not v0.33.0's default (`kindest/node:v1.37.0`): 1.35 is the
/// newest minor inside the Kubernetes window of every Istio minor the nightly tests (1.29:
/// 1.31–1.35; 1.30 and 1.31: 1.32–1.36, `crates/provision/src/istio/support_window.rs`). Passed as
/// `--image` so the Kubernetes under test does not depend on which kind runs. Its containerd
/// is kind's base image's: v2.3.4 on `main` when v0.33.0 was cut (`images/base/Dockerfile`
/// `CONTAINERD_VERSION`, commit 1f1286d2, base image `kindest/base:v20260820-69b56db7`).
pub const KIND_NODE_IMAGE: &str =
    "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0";
