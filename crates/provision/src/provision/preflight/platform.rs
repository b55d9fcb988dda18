//! The judgments of preflight that depend on the host and its container engine rather than on
//! the suite's settings: podman's version against kind's, the engine's cgroup version against
//! the node's Kubernetes, the host's CPU architecture against the workshop's image, the first
//! kind command, and what a GitHub-hosted runner's memory means. Each takes what was read and
//! returns an [`Outcome`]; `crate::provision::preflight` does the reading.

use crate::istio::artifacts::Arch;
use crate::istio::support_window::KubeMinor;
use crate::provision::kind;

use super::Outcome;

/// The Kubernetes minor from which the kubelet refuses to start on cgroup v1 by default: the
/// kubelet configuration's `failCgroupV1` defaults to true from 1.35 (KEP-5573 "Remove cgroup
/// v1 support", beta in v1.35; kubernetes/kubernetes#134298 "[KEP-5573] Set failCgroupV1 to
/// true", `pkg/kubelet/apis/config/v1beta1/defaults.go` `obj.FailCgroupV1 = ptr.To(true)`),
/// and then exits with "kubelet is configured to not run on a host using cgroup v1". kind does
/// not set it back (no `failCgroupV1` in kubernetes-sigs/kind `pkg/` or `images/` on main of
/// 2026-08-21; its v0.31.0 release notes: "Kubernetes 1.35+ Cgroup v1 … kind node images at
/// those versions will also be dropping support"), nor does the suite's k3s.
pub(crate) const CGROUP_V1_REFUSED_FROM: KubeMinor = (1, 35);

/// A node image of the newest Kubernetes below [`CGROUP_V1_REFUSED_FROM`] built for the
/// pinned kind: kind v0.33.0's release notes, "Images pre-built for this release". Kubernetes
/// 1.34 is inside the window of Istio 1.29, 1.30 and 1.31.
pub(crate) const CGROUP_V1_NODE_IMAGE: &str =
    "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d";

/// The version in `podman --version` output (`podman version 6.0.0`, as kind reads it:
/// kubernetes-sigs/kind `pkg/cluster/internal/providers/podman/util.go` `getPodmanVersion`).
pub(crate) fn parse_podman_version(output: &str) -> Option<(u64, u64, u64)> {
    let line = output.lines().find(|l| !l.trim().is_empty())?;
    let word = line
        .trim()
        .strip_prefix("podman version ")?
        .split_whitespace()
        .next()?;
    let core = word.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// `(major, minor)` of a kind version as [`kind::parse_kind_version`] gives it (`v0.33.0`).
pub(crate) fn kind_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim_start_matches('v').split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether the kind that will run can list clusters on this podman. podman 6.0 turned a
/// container's `.Labels` into a slice, and kind before v0.33.0 lists clusters with
/// `{{index .Labels "io.x-k8s.kind.cluster"}}`, which podman 6 refuses (kubernetes-sigs/kind
/// #4201, #4231); #4203 (commit 955ea974) switched to `{{.Label "…"}}` on podman ≥ 5.
pub(crate) fn judge_podman_for_kind(
    podman: (u64, u64, u64),
    kind_version: Option<&str>,
) -> Outcome {
    let (major, minor, patch) = podman;
    let shown = format!("podman {major}.{minor}.{patch}");
    if major < 6 {
        return Outcome::Ok(shown);
    }
    match kind_version.and_then(kind_minor) {
        Some(found) if found >= kind::KIND_PODMAN6_FIXED => Outcome::Ok(format!(
            "{shown}; kind {} lists its clusters (kind#4203)",
            kind_version.unwrap_or_default()
        )),
        found => Outcome::problem(
            format!(
                "{shown} with kind {}: podman 6 turned a container's .Labels from a map into a \
                 list, and kind before v0.33.0 lists clusters with `{{{{index .Labels \
                 \"io.x-k8s.kind.cluster\"}}}}`, which podman 6 refuses (\"cannot index \
                 slice/array with type string\", kubernetes-sigs/kind#4201), so every kind \
                 command fails",
                match found {
                    Some(_) => kind_version.unwrap_or_default(),
                    None => "of unknown version",
                }
            ),
            format!(
                "unset HAPPY_KIND_BINARY to use the pinned kind {} (fixed by kind#4203), or \
                 point HAPPY_KIND_BINARY at kind ≥ v0.33.0; or use podman 5.x, or Docker",
                kind::KIND_VERSION
            ),
        ),
    }
}

/// The cgroup version an engine reports: Docker's and nerdctl's `CgroupVersion` (`"1"`,
/// `"2"`; moby `api/types/system/info.go`, read by kind's docker and nerdctl providers) or
/// podman's `host.cgroupVersion` (`"v1"`, `"v2"`; kind's podman provider `podmanInfo`).
pub(crate) fn parse_cgroup_version(text: &str) -> Option<u32> {
    match text.trim().trim_matches('"') {
        "1" | "v1" => Some(1),
        "2" | "v2" => Some(2),
        _ => None,
    }
}

/// Judges the engine's cgroup version against the Kubernetes the node will run; `fix` says
/// what to do on this cluster kind besides moving to cgroup v2.
pub(crate) fn judge_cgroup(version: Option<u32>, kube: Option<KubeMinor>, fix: &str) -> Outcome {
    match (version, kube) {
        (Some(2), _) => Outcome::Ok("cgroup v2".into()),
        (Some(1), Some(k)) if k >= CGROUP_V1_REFUSED_FROM => Outcome::problem(
            format!(
                "the container engine runs containers on cgroup v1, and the node's kubelet \
                 (Kubernetes {}.{}) refuses to start on cgroup v1 by default (failCgroupV1 is \
                 true from Kubernetes 1.35, KEP-5573): the node never becomes Ready",
                k.0, k.1
            ),
            format!(
                "boot the host (or the engine's VM) with cgroup v2 (kernel parameter \
                 systemd.unified_cgroup_hierarchy=1; every current distribution's default){fix}"
            ),
        ),
        (Some(1), _) => Outcome::Warning(
            "the container engine runs containers on cgroup v1, which Kubernetes no longer \
             supports from 1.35 (KEP-5573); move the host to cgroup v2"
                .into(),
        ),
        _ => Outcome::Warning(
            "the container engine did not say which cgroup version it runs; Kubernetes 1.35 \
             needs cgroup v2"
                .into(),
        ),
    }
}

/// The fix for cgroup v1 on kind: an older node image inside the Istio window.
pub(crate) fn kind_cgroup_v1_fix() -> String {
    format!(
        ", or run Kubernetes 1.34 with HAPPY_KIND_NODE_IMAGE={CGROUP_V1_NODE_IMAGE} (from kind \
         {}'s release notes; inside the window of Istio 1.29–1.31)",
        kind::KIND_VERSION
    )
}

/// A note for hosts whose CPU is not amd64. The workshop's own image,
/// `rinormaloku/happy-service:latest`, is from 2021; whether it has an arm64 variant could
/// not be read from here (no Docker Hub access, no public record of its manifest list found).
/// If it has none, an arm64 node runs it only through amd64 emulation (binfmt_misc with QEMU
/// or Rosetta), and without it every workshop pod fails with `exec format error`.
pub(crate) fn judge_architecture(arch: Arch) -> Option<Outcome> {
    (arch == Arch::Arm64).then(|| {
        Outcome::Warning(
            "this machine is arm64: the workshop's image rinormaloku/happy-service:latest may \
             be built for amd64 only (not confirmed); if so its pods need the engine to \
             emulate amd64 (binfmt_misc with QEMU or Rosetta; Docker Desktop brings it, other \
             engines and Linux hosts may need it set up), or they end with `exec format \
             error`"
                .into(),
        )
    })
}

/// Judges the outcome of `kind get clusters`, the first command kind runs for the suite.
pub(crate) fn judge_kind_list(result: Result<String, String>) -> Outcome {
    match result {
        Ok(stdout) => {
            let clusters = stdout
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.contains("No kind clusters found"))
                .count();
            Outcome::Ok(format!("`kind get clusters` works ({clusters} cluster(s))"))
        }
        Err(error) => Outcome::problem(
            format!("`kind get clusters`, the first command kind runs, failed: {error}"),
            match kind::list_failure_cause(&error) {
                Some(cause) => cause.to_string(),
                None => "run `kind get clusters` yourself and repair what it says (the engine, \
                         KIND_EXPERIMENTAL_PROVIDER, permissions on the engine's socket)"
                    .to_string(),
            },
        ),
    }
}

/// What the suite knows of the machine it runs on from GitHub Actions' default variables
/// (`GITHUB_ACTIONS=true`; `RUNNER_ENVIRONMENT` is `github-hosted` or `self-hosted`, GitHub
/// docs "Variables reference", added by github/docs#33310).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// Not GitHub Actions (a laptop, another CI).
    Elsewhere,
    /// A GitHub-hosted runner.
    GithubHosted,
    /// A self-hosted GitHub Actions runner.
    SelfHosted,
}

impl Runner {
    /// Reads the two variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        if get("GITHUB_ACTIONS").as_deref() != Some("true") {
            return Runner::Elsewhere;
        }
        match get("RUNNER_ENVIRONMENT").as_deref() {
            Some("github-hosted") => Runner::GithubHosted,
            _ => Runner::SelfHosted,
        }
    }

    /// The fix for too little memory on this runner.
    pub fn memory_fix(self) -> String {
        match self {
            Runner::Elsewhere => {
                "give the engine (Docker Desktop, colima, podman machine, …) at least 8 GB of \
                 memory, or set HAPPY_PREFLIGHT=warn to try with less"
                    .into()
            }
            Runner::GithubHosted => {
                "this is a GitHub-hosted runner: the standard Linux runner of public \
                 repositories has 16 GB, that of private repositories 8 GB (GitHub docs \
                 \"GitHub-hosted runners reference\"; 7 GB in earlier years, which reads as \
                 less than 7 GiB here); run the workflow in a public repository or on a larger \
                 runner (`runs-on` a 4-core larger runner label), or set HAPPY_PREFLIGHT=warn \
                 in the workflow to try with less"
                    .into()
            }
            Runner::SelfHosted => {
                "this is a self-hosted GitHub Actions runner: give its machine at least 8 GB, \
                 or set HAPPY_PREFLIGHT=warn in the workflow to try with less"
                    .into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_versions_as_kind_reads_them() {
        assert_eq!(
            parse_podman_version("podman version 6.0.0\n"),
            Some((6, 0, 0))
        );
        assert_eq!(
            parse_podman_version("podman version 5.4.2-dev"),
            Some((5, 4, 2))
        );
        assert_eq!(parse_podman_version("Docker version 28.0.4"), None);
        assert_eq!(kind_minor("v0.33.0"), Some((0, 33)));
        assert_eq!(kind_minor("v0.32.0-alpha.12+abc"), Some((0, 32)));
        assert_eq!(kind_minor("nonsense"), None);
    }

    #[test]
    fn podman_6_is_refused_with_a_kind_older_than_v0_33() {
        assert!(matches!(
            judge_podman_for_kind((5, 6, 1), Some("v0.31.0")),
            Outcome::Ok(_)
        ));
        assert!(matches!(
            judge_podman_for_kind((6, 0, 0), Some(kind::KIND_VERSION)),
            Outcome::Ok(_)
        ));
        assert!(matches!(
            judge_podman_for_kind((6, 2, 0), Some("v0.34.1")),
            Outcome::Ok(_)
        ));
        for old in [Some("v0.32.0"), Some("v0.31.0"), None] {
            let Outcome::Problem { problem, fix } = judge_podman_for_kind((6, 1, 0), old) else {
                panic!("podman 6.1 with kind {old:?} must be a problem")
            };
            assert!(
                problem.contains("podman 6.1.0")
                    && problem.contains("kubernetes-sigs/kind#4201")
                    && problem.contains("cannot index slice/array"),
                "{problem}"
            );
            assert!(
                fix.contains("HAPPY_KIND_BINARY")
                    && fix.contains("v0.33.0")
                    && fix.contains("podman 5.x")
                    && fix.contains("Docker"),
                "{fix}"
            );
        }
    }

    #[test]
    fn cgroup_v1_is_a_problem_from_kubernetes_1_35() {
        assert_eq!(parse_cgroup_version("2\n"), Some(2));
        assert_eq!(parse_cgroup_version("v1"), Some(1));
        assert_eq!(parse_cgroup_version("\"v2\""), Some(2));
        assert_eq!(parse_cgroup_version(""), None);
        assert!(matches!(
            judge_cgroup(Some(2), Some((1, 35)), ""),
            Outcome::Ok(_)
        ));
        let Outcome::Problem { problem, fix } =
            judge_cgroup(Some(1), Some((1, 35)), &kind_cgroup_v1_fix())
        else {
            panic!("cgroup v1 under Kubernetes 1.35 must be a problem")
        };
        assert!(
            problem.contains("cgroup v1")
                && problem.contains("Kubernetes 1.35")
                && problem.contains("failCgroupV1")
                && problem.contains("KEP-5573"),
            "{problem}"
        );
        assert!(
            fix.contains("cgroup v2")
                && fix.contains(&format!("HAPPY_KIND_NODE_IMAGE={CGROUP_V1_NODE_IMAGE}")),
            "{fix}"
        );
        assert!(matches!(
            judge_cgroup(Some(1), Some((1, 34)), ""),
            Outcome::Warning(_)
        ));
        assert!(matches!(
            judge_cgroup(None, Some((1, 35)), ""),
            Outcome::Warning(_)
        ));
        // The fallback image is inside every tested Istio minor's window.
        let kube = crate::istio::support_window::parse_kube_minor(CGROUP_V1_NODE_IMAGE);
        assert_eq!(kube, Some((1, 34)));
        for istio in ["1.29.8", "1.30.5", "1.31.1"] {
            let v: crate::istio::IstioVersion = istio.parse().unwrap();
            assert!(
                matches!(
                    crate::istio::support_window::check(&v, (1, 34)),
                    crate::istio::support_window::Support::Supported(_)
                ),
                "{istio}"
            );
        }
    }

    #[test]
    fn arm64_hosts_get_a_note_about_the_workshop_image() {
        assert_eq!(judge_architecture(Arch::Amd64), None);
        let Some(Outcome::Warning(note)) = judge_architecture(Arch::Arm64) else {
            panic!("arm64 needs a note")
        };
        assert!(
            note.contains("rinormaloku/happy-service:latest") && note.contains("exec format error"),
            "{note}"
        );
    }

    #[test]
    fn the_first_kind_command_is_judged_with_its_output() {
        assert!(matches!(
            judge_kind_list(Ok("No kind clusters found.\n".into())),
            Outcome::Ok(text) if text.contains("0 cluster")
        ));
        assert!(matches!(
            judge_kind_list(Ok("happy-istio\nkind\n".into())),
            Outcome::Ok(text) if text.contains("2 cluster")
        ));
        // kubernetes-sigs/kind#4201, as kind v0.32.0 printed it on podman 6.0.0.
        let podman6 = "ERROR: failed to list clusters: command \"podman ps -a --filter \
                       label=io.x-k8s.kind.cluster --format '{{index .Labels \
                       \"io.x-k8s.kind.cluster\"}}'\" failed with error: exit status 125\n\
                       Command Output: Error: template: ps:1:13: executing \"ps\" at <index \
                       .Labels \"io.x-k8s.kind.cluster\">: error calling index: cannot index \
                       slice/array with type string";
        let Outcome::Problem { problem, fix } = judge_kind_list(Err(podman6.into())) else {
            panic!()
        };
        assert!(
            problem.contains("first command") && problem.contains("exit status 125"),
            "{problem}"
        );
        assert!(
            fix.contains("kind#4201") && fix.contains("v0.33.0"),
            "{fix}"
        );
        let Outcome::Problem { fix, .. } =
            judge_kind_list(Err("permission denied while trying to connect".into()))
        else {
            panic!()
        };
        assert!(fix.contains("kind get clusters"), "{fix}");
    }

    #[test]
    fn github_runners_are_told_apart() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Runner::from_lookup(env(&[])), Runner::Elsewhere);
        assert_eq!(
            Runner::from_lookup(env(&[
                ("GITHUB_ACTIONS", "true"),
                ("RUNNER_ENVIRONMENT", "github-hosted")
            ])),
            Runner::GithubHosted
        );
        assert_eq!(
            Runner::from_lookup(env(&[
                ("GITHUB_ACTIONS", "true"),
                ("RUNNER_ENVIRONMENT", "self-hosted")
            ])),
            Runner::SelfHosted
        );
        let fix = Runner::GithubHosted.memory_fix();
        assert!(
            fix.contains("private repositories 8 GB")
                && fix.contains("larger runner")
                && fix.contains("HAPPY_PREFLIGHT=warn"),
            "{fix}"
        );
        assert!(
            Runner::Elsewhere
                .memory_fix()
                .contains("HAPPY_PREFLIGHT=warn")
        );
    }
}
