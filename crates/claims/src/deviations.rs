//! Deviations: the one list of every place the suite departs from the workshop's text (what the
//! workshop says, what the suite does instead, why, and the upstream source), and which of them
//! are in force for a run.
//!
//! Every deviation is printed at the start of a run and written into every report (`run.json`,
//! JUnit properties; the scenarios it affects carry its id as a tag, so Cucumber output shows it
//! too). Each one can be switched off: `HAPPY_VERBATIM=<id>[,<id>…]` (or `all`) runs the
//! workshop's text as written instead; a deviation may also have its own value variable (the
//! legacy client's `HAPPY_LEGACY_IMAGE`), where the workshop's value means "off" and another
//! value means "on, with the user's replacement". A deviation whose premise can be observed is
//! re-checked on every run by a scenario tagged `@deviation @<id>` that tries the workshop's
//! original and expects it to fail for the stated reason: a deviation no longer needed fails
//! that scenario instead of being carried forever.
//!
//! Adding a deviation is adding one [`Deviation`] to [`DEVIATIONS`] (its `state` function says
//! how the settings switch it) and, when `recheck` is [`Recheck::Scenario`], one scenario.
//!
//! Considered and not listed, because what runs on the cluster and what is checked is the same:
//! the suite speaks to the API server through kube-rs instead of the reader's `kubectl` (the same
//! requests: server-side apply, `pods/exec`, `pods/portforward`, `pods/log`); it reads Grafana's
//! and Kiali's HTTP APIs instead of looking at their web pages (the same data the pages show).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cluster_kind::ClusterKind;

pub use crate::image_ref::{normalize_image, same_image};

/// The environment variable that switches deviations off (`all`, or ids separated by commas).
pub const VERBATIM_VAR: &str = "HAPPY_VERBATIM";

/// The workshop's legacy client image (`kubectl -n default run legacy
/// --image=radial/busyboxplus:curl -- tail -f /dev/null`).
pub const WORKSHOP_LEGACY_IMAGE: &str = "radial/busyboxplus:curl";

/// The legacy client image the suite runs instead: Istio's own sample client, pinned to the
/// version its samples use — istio/istio `samples/curl/curl.yaml` at 1.29.0, 1.30.0 and
/// 1.31.0-rc.0 (and master, 2026-08-22) says `image: docker.io/curlimages/curl:8.16.0`
/// (1.28.0 the same without `docker.io/`). No digest: none could be verified from here.
pub const SUITE_LEGACY_IMAGE: &str = "docker.io/curlimages/curl:8.16.0";

/// The command of Istio's sample client next to that image (`samples/curl/curl.yaml`, same
/// versions): it keeps the container alive for `kubectl exec … curl`.
pub(crate) const SUITE_LEGACY_COMMAND: &[&str] = &["/bin/sleep", "infinity"];

/// The container of the legacy pod whose image the deviation replaces (`kubectl run legacy`
/// names the container after the pod; `manifests/legacy.yaml` does the same).
pub const LEGACY_CONTAINER: &str = "legacy";

/// The Istio release the workshop installs (`curl -L https://istio.io/downloadIstio |
/// ISTIO_VERSION=1.12.2 …`).
pub const WORKSHOP_ISTIO_VERSION: &str = "1.12.2";

/// How the suite re-checks that a deviation is still needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// A scenario tagged `@deviation @<id>` tries the workshop's original on every run and fails
    /// when the original works.
    Scenario,
    /// Not re-checked by a scenario; the reason says why.
    NotRechecked(&'static str),
}

/// Whether a deviation is in force for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// The suite does what the deviation says.
    On,
    /// The suite departs from the workshop with a replacement the user chose.
    OnWith(String),
    /// Switched off: the workshop's text runs as written.
    Off,
}

/// What the run's settings say about the deviations, as plain values: the settings
/// (`crate::settings`) read them from the environment and convert themselves into this
/// (`Deviations::resolve(&settings)`), so the deviations depend on no way of reading them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches {
    /// `HAPPY_VERBATIM`: the ids of the deviations switched off (every switchable id for
    /// `all`).
    pub verbatim: Vec<String>,
    /// `HAPPY_LEGACY_IMAGE`: the legacy client's image, `None` for the deviation's own.
    pub legacy_image: Option<String>,
    /// `ISTIO_VERSION` as asked for: `latest`, `dev` or an exact version as it prints, `None`
    /// for the suite's pinned default.
    pub istio_version: Option<String>,
}

/// One departure from the workshop's text.
#[derive(Debug)]
pub struct Deviation {
    /// Its id, also the tag of its re-check scenario and of the scenarios it affects
    /// (`D-legacy-image` → `@D-legacy-image`).
    pub id: &'static str,
    /// One line saying what it is.
    pub title: &'static str,
    /// The claims whose scenarios run with it.
    pub claims: &'static [&'static str],
    /// What the workshop says, quoted.
    pub workshop: &'static str,
    /// What the suite does instead.
    pub suite: &'static str,
    /// Why.
    pub why: &'static str,
    /// Upstream sources for the why: repository + file or issue, with versions.
    pub sources: &'static [&'static str],
    /// What a reader of the workshop types today instead of its command (shell lines): the
    /// living documentation shows it under each claim the deviation touches.
    pub reader_today: &'static str,
    /// How a user switches it off (for the output and the README), or why it cannot be yet.
    pub switch_off: &'static str,
    /// Whether `HAPPY_VERBATIM` can switch it off. One that cannot is refused when named and
    /// stays on under `all`, and the banner says so: never a setting accepted and ignored.
    pub switchable: bool,
    /// How the suite re-checks it.
    pub recheck: Recheck,
    /// Why its re-check scenario does not apply on a cluster kind (its premise is not that
    /// cluster's), or `None` where it does. A re-check that does not apply is skipped with
    /// the reason; the deviation itself stays in force.
    pub recheck_not_applicable: fn(ClusterKind) -> Option<&'static str>,
    /// Whether the run's settings keep it on (`HAPPY_VERBATIM` is applied before, by
    /// [`Deviations::resolve`]).
    pub state: fn(&Switches) -> State,
}

/// The deviations that change the whole run rather than how a claim is asked: the Istio
/// release installed. The living documentation states them once, in the run's column heading,
/// so that a cell's colour says something about its claim (a run on any current release would
/// otherwise make every cell "passed with a deviation").
pub const WHOLE_RUN: &[&str] = &["D-istio-version"];

/// Every deviation from the workshop's text. One entry per departure.
pub const DEVIATIONS: &[Deviation] = &[
    Deviation {
        id: "D-legacy-image",
        title: "the legacy client runs Istio's sample curl image, not radial/busyboxplus:curl",
        claims: &["C18", "C19", "C22"],
        workshop: "kubectl -n default run legacy --image=radial/busyboxplus:curl -- tail -f /dev/null",
        suite: "runs the same pod `legacy` (container `legacy`) in `default` with image \
                docker.io/curlimages/curl:8.16.0 and command [\"/bin/sleep\", \"infinity\"], \
                Istio's own sample client (samples/curl/curl.yaml)",
        why: "radial/busyboxplus:curl is stored as a Docker schema-1 manifest \
              (application/vnd.docker.distribution.manifest.v1+prettyjws), which containerd \
              refuses to pull since v2.1; the kind node image the suite pins (kind v0.33.0's \
              Kubernetes 1.35.8) runs containerd v2.3, so the pod stays in ErrImagePull/ImagePullBackOff and C18, C19 and C22 cannot run",
        sources: &[
            "containerd/containerd client/pull.go (v2.1.0 … v2.3.4): media type \
             \"application/vnd.docker.distribution.manifest.v1+prettyjws\" is no longer \
             supported since containerd v2.1",
            "containerd/containerd core/transfer/local/pull.go (v2.2.0): schema 1 image \
             manifests are no longer supported",
            "kubernetes-sigs/kind images/base/Dockerfile (v0.31.0: CONTAINERD_VERSION=\"v2.2.0\"; \
             main when v0.33.0 was cut, commit 1f1286d2: \"v2.3.4\")",
            "kubernetes/website#52702: radial/busyboxplus:curl in the tutorial is no longer \
             supported (2025-10)",
            "radial/core-busyboxplus#6 (2025-01)",
            "istio/istio samples/curl/curl.yaml (1.29.0 … 1.31.0-rc.0): \
             docker.io/curlimages/curl:8.16.0, command [\"/bin/sleep\", \"infinity\"]",
        ],
        reader_today: "kubectl -n default run legacy --image=docker.io/curlimages/curl:8.16.0 \
                       --command -- /bin/sleep infinity\n\
                       kubectl -n default exec legacy -- curl -s \
                       http://service-a.istioinaction.svc.cluster.local",
        switch_off: "HAPPY_LEGACY_IMAGE=radial/busyboxplus:curl (or HAPPY_VERBATIM=D-legacy-image) \
                     runs the workshop's pod as written; on containerd ≥ 2.1 it never starts",
        switchable: true,
        recheck: Recheck::Scenario,
        recheck_not_applicable: applies_everywhere,
        state: legacy_image_state,
    },
    Deviation {
        id: "D-istio-version",
        title: "the suite installs a current Istio release, not Istio 1.12.2",
        claims: &[
            "C05", "C06", "C07", "C08", "C09", "C10", "C11", "C12", "C13", "C14", "C15", "C16",
            "C17", "C18", "C19", "C20", "C21", "C22",
        ],
        workshop: "curl -L https://istio.io/downloadIstio | ISTIO_VERSION=1.12.2 TARGET_ARCH=x86_64 sh - \
                   … kubectl apply -f istio-1.12.2/samples/addons/",
        suite: "installs the release ISTIO_VERSION names (default: the pinned recent release) \
                with its istioctl, images from docker.io/istio (HAPPY_ISTIO_HUB), and applies \
                the addons the claims use, Prometheus, Grafana and Kiali, from its own \
                samples/addons/ (not Jaeger and Loki)",
        why: "the suite checks that the workshop's claims hold on the Istio releases people \
              install today (the nightly runs a matrix of recent minors); 1.12 is long out of \
              support and predates behaviour the claims meet on current releases (native \
              sidecars from 1.27, the mirror host without -shadow from 1.28)",
        sources: &[
            "istio/istio pkg/kube/inject/webhook.go (1.27.0): native sidecars on Kubernetes ≥ 1.33",
            "istio/istio pilot/pkg/features/pilot.go (1.28.0): DISABLE_SHADOW_HOST_SUFFIX=true",
        ],
        reader_today: "curl -L https://istio.io/downloadIstio | ISTIO_VERSION=<a current \
                       release> sh -\n\
                       istioctl install -y --set profile=demo \
                       --set values.global.proxy.privileged=true\n\
                       kubectl apply -f istio-<release>/samples/addons/prometheus.yaml \
                       -f istio-<release>/samples/addons/grafana.yaml \
                       -f istio-<release>/samples/addons/kiali.yaml",
        switch_off: "ISTIO_VERSION=1.12.2 (or HAPPY_VERBATIM=D-istio-version) installs the \
                     workshop's release",
        switchable: true,
        recheck: Recheck::NotRechecked(
            "not a workaround for something broken but the suite's purpose; each Istio version \
             the nightly runs is reported with its verdicts",
        ),
        recheck_not_applicable: applies_everywhere,
        state: istio_version_state,
    },
    Deviation {
        id: "D-ingress-address",
        title: "requests reach the ingress gateway through a port-forward, not its LoadBalancer IP",
        claims: &[
            "C08", "C09", "C10", "C11", "C13", "C14", "C15", "C16", "C17", "C21",
        ],
        workshop: "export ISTIO_INGRESS_GW_IP=$(kubectl get svc -n istio-system istio-ingressgateway \
                   -ojsonpath='{.status.loadBalancer.ingress[*].ip}') … \
                   watch -n 1 'curl -s $ISTIO_INGRESS_GW_IP || true'",
        suite: "sends each request through a port-forward to a Ready istio-ingressgateway pod, on \
                the port the Service's port 80 targets (on kind, HAPPY_KIND_HOST_PORT can also \
                publish the gateway's NodePort 30080 on 127.0.0.1, for a reader's browser)",
        why: "kind has no LoadBalancer implementation of its own: without Cloud Provider KIND \
              running on the host the Service's status.loadBalancer stays empty (EXTERNAL-IP \
              <pending>), ISTIO_INGRESS_GW_IP is empty and the workshop's curl reaches nothing; \
              where a load balancer does assign an address, it need not be reachable from the \
              machine running the suite",
        sources: &[
            "kubernetes-sigs/kind site/content/docs/user/loadbalancer.md (v0.31.0; unchanged on main of 2026-08-21): Services of \
             type LoadBalancer work through Cloud Provider KIND, a separate binary on the host",
        ],
        reader_today: "kubectl -n istio-system port-forward svc/istio-ingressgateway 8080:80\n\
                       curl localhost:8080        # and http://localhost:8080/ui in a browser",
        switch_off: "HAPPY_VERBATIM=D-ingress-address sends the requests to \
                     http://<the Service's LoadBalancer IP>:80 as the workshop's curl does",
        switchable: true,
        recheck: Recheck::Scenario,
        recheck_not_applicable: ingress_recheck_not_applicable,
        state: always_on,
    },
    Deviation {
        id: "D-capture-command",
        title: "the packet capture is a bounded tcpdump on the application port, not the workshop's open-ended one",
        claims: &["C17", "C18"],
        workshop: "kubectl -n istioinaction exec deploy/service-a -c istio-proxy -- sudo tcpdump -l \
                   --immediate-mode -vv -s 0 '(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)'",
        suite: "sudo tcpdump -l -nn -A -s 0 -i eth0 -c 20 tcp port 8080 in istio-proxy, for C18 \
                with `and host <legacy pod IP>`; C17 captures in service-c-v1's pod (inbound \
                traffic from service-a's sidecar), C18 in service-a's",
        why: "the workshop's capture never ends by itself: the reader stops it with Ctrl-C, and on a \
              real cluster ending kubectl exec does not end the command in the container (it stays, \
              blocked on its unread output, until the pod goes), so running it verbatim leaves a \
              tcpdump in service-a's sidecar after every capture; the suite's bounded one (-c) ends \
              by itself and holds the call it judges: on service-a port 8080 also carries its own \
              outbound mTLS to service-b and service-c (its endpoints are podIP:8080)",
        sources: &[
            "istio/istio docker/Dockerfile.base (1.28.0, 1.31.0-rc.0): the proxy image has \
             tcpdump and sudo (istio-proxy ALL=NOPASSWD); values.global.proxy.privileged=true \
             (the workshop's install) lets sudo escalate",
            "kubernetes/kubernetes#89031, kubernetes/kubectl#1076: the process of a killed \
             kubectl exec stays in the container",
            "the-tcpdump-group/tcpdump print-tcp.c, util-print.c txtproto_print (4.99): without \
             -A, -vv prints a payload only on ports 80 and 8080, as HTTP lines when it starts \
             with a request or status line (what the workshop's output shows)",
            "the workshop's README, chapter on mTLS: the capture command as quoted",
        ],
        reader_today: "kubectl -n istioinaction exec deploy/service-a -c istio-proxy -- \
                       sudo tcpdump -l -nn -A -s 0 -i eth0 -c 20 tcp port 8080",
        switch_off: "HAPPY_VERBATIM=D-capture-command runs the workshop's command as written in \
                     service-a's istio-proxy, reads its -vv output while the traffic runs and \
                     closes the exec as Ctrl-C does (on a real cluster the tcpdump then stays in \
                     the container until the pod is replaced)",
        switchable: true,
        recheck: Recheck::NotRechecked(
            "the workshop's command has no pass/fail outcome to observe: it runs until stopped; \
             HAPPY_VERBATIM=D-capture-command judges the claims on its output instead",
        ),
        recheck_not_applicable: applies_everywhere,
        state: always_on,
    },
];

/// A deviation only `HAPPY_VERBATIM` switches off.
fn always_on(_: &Switches) -> State {
    State::On
}

/// A re-check that applies on every cluster kind.
fn applies_everywhere(_: ClusterKind) -> Option<&'static str> {
    None
}

/// D-ingress-address's premise is kind's: no LoadBalancer implementation, so the Service's
/// address stays empty. The sandbox models that, and the suite's k3s has it too (its servicelb
/// is switched off, `crate::provision::k3s::server_args`). An existing cluster may well have a
/// load balancer (a cloud's, MetalLB, k3s' servicelb, Cloud Provider KIND) whose address
/// answers; that says nothing about the deviation, which the suite keeps on every cluster so
/// that the claims are checked the same way everywhere.
fn ingress_recheck_not_applicable(kind: ClusterKind) -> Option<&'static str> {
    (kind == ClusterKind::Existing).then_some(
        "D-ingress-address's premise is kind's, a cluster without a LoadBalancer \
         implementation; an existing cluster may have one (a cloud's, MetalLB, k3s' servicelb), \
         so its LoadBalancer IP answering would not mean the deviation is no longer needed",
    )
}

/// The deviation re-checks that do not apply on `kind`, as (deviation id, reason).
pub fn rechecks_not_applicable(kind: ClusterKind) -> Vec<(&'static str, &'static str)> {
    DEVIATIONS
        .iter()
        .filter(|d| d.recheck == Recheck::Scenario)
        .filter_map(|d| (d.recheck_not_applicable)(kind).map(|why| (d.id, why)))
        .collect()
}

fn legacy_image_state(switches: &Switches) -> State {
    match switches.legacy_image.as_deref() {
        None => State::On,
        Some(image) if same_image(image, WORKSHOP_LEGACY_IMAGE) => State::Off,
        Some(image) => State::OnWith(image.to_string()),
    }
}

fn istio_version_state(switches: &Switches) -> State {
    match switches.istio_version.as_deref() {
        None => State::On,
        Some(v) if v == WORKSHOP_ISTIO_VERSION => State::Off,
        Some(other) => State::OnWith(other.to_string()),
    }
}

/// The deviation with this id (ids compare case-insensitively).
pub fn find(id: &str) -> Option<&'static Deviation> {
    DEVIATIONS.iter().find(|d| d.id.eq_ignore_ascii_case(id))
}

/// Every deviation's id.
pub fn ids() -> Vec<&'static str> {
    DEVIATIONS.iter().map(|d| d.id).collect()
}

/// The legacy client's container as the run wants it: image and command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyClient {
    /// The image to run.
    pub image: String,
    /// The command, or `None` to keep the manifest's (the workshop's `tail -f /dev/null`).
    pub command: Option<Vec<String>>,
}

/// Whether a pull failure message names the schema-1 refusal. The wording differs by pull path,
/// and all of them say "no longer supported" next to the schema-1 media type or "schema 1":
/// - containerd `client/pull.go` (v2.1.0 … v2.3.4; the CRI plugin's pull when
///   `use_local_image_pull` is on, which kind's `discard_unpacked_layers = true` forces —
///   containerd `internal/cri/config/config.go` `CheckLocalImagePullConfigs`, kind
///   `images/base/files/etc/containerd/config.toml`, v0.31.0 and main of 2026-08-21): `not implemented: media type
///   "application/vnd.docker.distribution.manifest.v1+prettyjws" is no longer supported since
///   containerd v2.1, please rebuild the image as …`, wrapped by the CRI plugin as `failed to
///   pull and unpack image "docker.io/radial/busyboxplus:curl": …` and by gRPC as `rpc error:
///   code = Unimplemented desc = …` (errgrpc.ToGRPC maps ErrNotImplemented to Unimplemented);
/// - containerd `core/transfer/local/pull.go` (v2.2.0, the transfer service): `schema 1 image
///   manifests are no longer supported: invalid argument`;
/// - containerd `core/remotes/docker/resolver.go` (v2.2.0, manifest fetched by GET): `media
///   type … is no longer supported since containerd v2.0`.
///
/// Docker Desktop's engine reports containerd's first wording (kubernetes/website#52702).
pub(crate) fn names_schema1_refusal(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("no longer supported")
        && (lower.contains("application/vnd.docker.distribution.manifest.v1+prettyjws")
            || lower.contains("schema 1"))
}

/// Whether a pull failure message says the image is not in its registry any more:
/// - containerd v2.2.0 `core/remotes/docker/resolver.go`: a 404 on the manifest is
///   `REF: not found` (`errdefs.ErrNotFound`, gRPC `code = NotFound`);
/// - a registry's error body, printed by `core/remotes/docker/errcode.go`: `manifest unknown`,
///   `name unknown` (the distribution spec's MANIFEST_UNKNOWN, NAME_UNKNOWN);
/// - Docker Hub answers 401 for a repository that does not exist, which containerd reports as
///   `pull access denied, repository does not exist or may require authorization`
///   (`resolver.go`, `ErrInvalidAuthorization`).
pub(crate) fn names_missing_image(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        ": not found",
        "code = notfound",
        "manifest unknown",
        "name unknown",
        "repository does not exist",
    ]
    .iter()
    .any(|t| lower.contains(t))
}

/// What a re-check of D-legacy-image observed of the workshop's pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullVerdict {
    /// The pull failed for the stated reason; the message that says so.
    Refused(String),
    /// The image was pulled: the container runs or ran (the deviation is no longer needed).
    Pulled(String),
    /// The image is gone from its registry (not found, manifest unknown, or a repository that
    /// no longer exists): the workshop's pod still cannot run, for another reason than the
    /// stated one; the message that says so.
    Gone(String),
    /// Neither yet: what the pod shows so far.
    Pending(String),
}

/// Judge the workshop's legacy pod: its container's state and the pod's events. The kubelet
/// shows the runtime's error as the waiting message under `ErrImagePull` and in the event
/// `Failed to pull image …: <error>`; under `ImagePullBackOff` the message is `Back-off pulling
/// image …`, followed by the last error only since v1.32 (kubernetes
/// `pkg/kubelet/images/image_manager.go`, PR #127918), so both are read. A schema-1 refusal is
/// the stated reason; an image gone from its registry ([`names_missing_image`]) is another.
pub fn schema1_pull_verdict(
    pod: &k8s_openapi::api::core::v1::Pod,
    events: &[k8s_openapi::api::core::v1::Event],
) -> PullVerdict {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let status = statuses.iter().find(|c| c.name == LEGACY_CONTAINER);
    let state = status.and_then(|s| s.state.clone()).unwrap_or_default();
    if state.running.is_some() || state.terminated.is_some() {
        let image = status.map(|s| s.image.as_str()).unwrap_or_default();
        let what = if state.running.is_some() {
            "runs"
        } else {
            "ran and exited"
        };
        return PullVerdict::Pulled(format!(
            "the image {image} was pulled and container {LEGACY_CONTAINER} {what}"
        ));
    }
    let waiting = state.waiting.unwrap_or_default();
    let reason = waiting.reason.unwrap_or_default();
    let message = waiting.message.unwrap_or_default();
    let pull_failed = reason == "ErrImagePull" || reason == "ImagePullBackOff";
    let failed_events: Vec<String> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Failed"))
        .filter_map(|e| e.message.clone())
        .collect();
    if pull_failed {
        if names_schema1_refusal(&message) {
            return PullVerdict::Refused(format!("{reason}: {message}"));
        }
        if let Some(m) = failed_events.iter().find(|m| names_schema1_refusal(m)) {
            return PullVerdict::Refused(format!("{reason}; event Failed: {m}"));
        }
        if names_missing_image(&message) {
            return PullVerdict::Gone(format!("{reason}: {message}"));
        }
        if let Some(m) = failed_events.iter().find(|m| names_missing_image(m)) {
            return PullVerdict::Gone(format!("{reason}; event Failed: {m}"));
        }
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "no phase yet".into());
    let mut seen = format!("phase {phase}");
    if !reason.is_empty() {
        seen.push_str(&format!(", container waiting: {reason}"));
        if !message.is_empty() {
            seen.push_str(&format!(" ({message})"));
        }
    }
    if let Some(last) = failed_events.last() {
        seen.push_str(&format!("; last Failed event: {last}"));
    }
    PullVerdict::Pending(seen)
}

/// One deviation from the workshop's text as a report records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationInfo {
    /// `D-legacy-image`.
    pub id: String,
    pub title: String,
    /// `on` or `off` (switched off by the user: the workshop's text ran as written).
    pub state: String,
    /// What that state means for this run.
    pub detail: String,
    /// The claims it affects.
    pub claims: Vec<String>,
    /// What the workshop says.
    pub workshop: String,
    /// What the suite does instead.
    pub suite: String,
    pub why: String,
    /// Upstream sources.
    pub sources: Vec<String>,
    /// How to switch it off.
    pub switch_off: String,
    /// How it is re-checked.
    pub recheck: String,
}

/// The deviations of one run, each with its state.
#[derive(Debug, Clone)]
pub struct Deviations {
    entries: Vec<(&'static Deviation, State)>,
    legacy: LegacyClient,
}

impl Deviations {
    /// The states the settings give: `HAPPY_VERBATIM` (already folded into the settings'
    /// values by `crate::settings::Settings`) or each deviation's own switch. Takes the
    /// settings themselves (`&Settings` converts into [`Switches`]) or the plain values.
    pub fn resolve(switches: impl Into<Switches>) -> Self {
        let switches: Switches = switches.into();
        let entries: Vec<(&'static Deviation, State)> = DEVIATIONS
            .iter()
            .map(|d| {
                let off = switches
                    .verbatim
                    .iter()
                    .any(|id| id.eq_ignore_ascii_case(d.id));
                (
                    d,
                    if off {
                        State::Off
                    } else {
                        (d.state)(&switches)
                    },
                )
            })
            .collect();
        let legacy_state = entries
            .iter()
            .find(|(d, _)| d.id == "D-legacy-image")
            .map_or(State::On, |(_, s)| s.clone());
        let legacy = match legacy_state {
            State::On => LegacyClient {
                image: SUITE_LEGACY_IMAGE.to_string(),
                command: Some(SUITE_LEGACY_COMMAND.iter().map(|s| s.to_string()).collect()),
            },
            State::OnWith(image) => LegacyClient {
                image,
                command: Some(SUITE_LEGACY_COMMAND.iter().map(|s| s.to_string()).collect()),
            },
            State::Off => LegacyClient {
                image: WORKSHOP_LEGACY_IMAGE.to_string(),
                command: None,
            },
        };
        Deviations { entries, legacy }
    }

    /// Each deviation with its state, in list order.
    pub fn entries(&self) -> &[(&'static Deviation, State)] {
        &self.entries
    }

    /// The state of the deviation with this id.
    pub fn state(&self, id: &str) -> Option<&State> {
        self.entries
            .iter()
            .find(|(d, _)| d.id.eq_ignore_ascii_case(id))
            .map(|(_, s)| s)
    }

    /// The legacy client's container as this run wants it.
    pub fn legacy_client(&self) -> &LegacyClient {
        &self.legacy
    }

    /// What the reports record: one entry per deviation.
    pub fn report(&self) -> Vec<DeviationInfo> {
        self.entries
            .iter()
            .map(|(d, s)| DeviationInfo {
                id: d.id.to_string(),
                title: d.title.to_string(),
                state: state_word(s).to_string(),
                detail: state_detail(d, s),
                claims: d.claims.iter().map(|c| c.to_string()).collect(),
                workshop: d.workshop.to_string(),
                suite: d.suite.to_string(),
                why: d.why.to_string(),
                sources: d.sources.iter().map(|s| s.to_string()).collect(),
                switch_off: d.switch_off.to_string(),
                recheck: match d.recheck {
                    Recheck::Scenario => {
                        let mut text = format!("scenario @deviation @{}", d.id);
                        let kinds = [
                            ClusterKind::Kind,
                            ClusterKind::K3s,
                            ClusterKind::Existing,
                            ClusterKind::Sandbox,
                        ];
                        let not_on: Vec<String> = kinds
                            .into_iter()
                            .filter(|k| (d.recheck_not_applicable)(*k).is_some())
                            .map(|k| k.to_string())
                            .collect();
                        if !not_on.is_empty() {
                            text.push_str(&format!(
                                " (not applicable on {} clusters)",
                                not_on.join(", ")
                            ));
                        }
                        text
                    }
                    Recheck::NotRechecked(why) => format!("not re-checked: {why}"),
                },
            })
            .collect()
    }
}

fn state_word(state: &State) -> &'static str {
    match state {
        State::On | State::OnWith(_) => "on",
        State::Off => "off",
    }
}

fn state_detail(d: &Deviation, state: &State) -> String {
    match state {
        State::On => format!("the suite {}", d.suite),
        State::OnWith(value) => format!(
            "the suite departs from the workshop with the user's replacement {value:?} \
             (the suite's own: {})",
            d.suite
        ),
        State::Off => format!(
            "switched off: the workshop's text runs as written ({}); expect {} to fail where \
             the reason still holds: {}",
            d.workshop,
            d.claims.join(", "),
            d.why
        ),
    }
}

/// The banner printed at the start of a run: one block per deviation.
impl fmt::Display for Deviations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "happy-istio: {} deviations from the workshop's text (README \"Deviations from the \
             workshop\"; {VERBATIM_VAR}=<id>,… or all runs the workshop's text instead):",
            self.entries.len()
        )?;
        for (d, s) in &self.entries {
            let word = match s {
                State::Off => "OFF",
                State::On | State::OnWith(_) => "ON ",
            };
            writeln!(f, "  {word} {} — {}", d.id, d.title)?;
            match s {
                State::On => {
                    writeln!(f, "      why: {}", d.why)?;
                    if !d.switchable {
                        writeln!(f, "      {}", d.switch_off)?;
                    }
                }
                State::OnWith(value) => writeln!(f, "      with the user's replacement: {value}")?,
                State::Off => writeln!(
                    f,
                    "      switched off: runs `{}` as written; {} may fail because {}",
                    d.workshop,
                    d.claims.join(", "),
                    d.why
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    // How the run's settings switch the deviations (HAPPY_VERBATIM, the value variables) is
    // tested end to end where the settings are read: happy-provision, settings/deviations_tests.rs.
    #[test]
    fn the_list_is_well_formed() {
        let ids: BTreeSet<&str> = DEVIATIONS.iter().map(|d| d.id).collect();
        assert_eq!(ids.len(), DEVIATIONS.len(), "ids are unique");
        for d in DEVIATIONS {
            assert!(
                d.id.starts_with("D-")
                    && d.id[2..]
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}: ids are D-<lower-case words>, usable as a tag",
                d.id
            );
            for (what, text) in [
                ("title", d.title),
                ("workshop", d.workshop),
                ("suite", d.suite),
                ("why", d.why),
                ("reader_today", d.reader_today),
                ("switch_off", d.switch_off),
            ] {
                assert!(!text.trim().is_empty(), "{}: {what} is empty", d.id);
            }
            assert!(!d.sources.is_empty(), "{}: no upstream source", d.id);
            assert!(!d.claims.is_empty(), "{}: affects no claim", d.id);
            for c in d.claims {
                let n: u32 = c[1..].parse().expect("Cnn");
                assert!(
                    c.starts_with('C') && c.len() == 3 && (1..=22).contains(&n),
                    "{c}"
                );
            }
            if let Recheck::NotRechecked(why) = d.recheck {
                assert!(
                    !why.trim().is_empty(),
                    "{}: say why it is not re-checked",
                    d.id
                );
            }
        }
    }

    #[test]
    fn the_workshop_quotes_are_the_workshops() {
        // Each quote names the value its switch compares against.
        let legacy = find("D-legacy-image").unwrap();
        assert!(legacy.workshop.contains(WORKSHOP_LEGACY_IMAGE));
        assert!(legacy.suite.contains(SUITE_LEGACY_IMAGE));
        let istio = find("d-istio-version").expect("ids compare case-insensitively");
        assert!(istio.workshop.contains(WORKSHOP_ISTIO_VERSION));
        // What a reader types today is what the suite runs: the same image, the same capture.
        assert!(legacy.reader_today.contains(SUITE_LEGACY_IMAGE));
        let capture = find("D-capture-command").unwrap();
        assert!(
            capture
                .reader_today
                .contains("sudo tcpdump -l -nn -A -s 0 -i eth0 -c 20 tcp port 8080")
                && capture
                    .suite
                    .contains("sudo tcpdump -l -nn -A -s 0 -i eth0 -c 20 tcp port 8080")
        );
    }

    #[test]
    fn image_names_normalise_like_docker_references() {
        assert!(same_image("nginx", "docker.io/library/nginx:latest"));
        assert!(same_image("curlimages/curl:8.16.0", SUITE_LEGACY_IMAGE));
        assert!(!same_image("radial/busyboxplus", "radial/busyboxplus:curl"));
        assert!(!same_image(
            "localhost:5000/radial/busyboxplus:curl",
            WORKSHOP_LEGACY_IMAGE
        ));
    }

    fn pod_with(state: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "legacy"},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "legacy", "image": "docker.io/radial/busyboxplus:curl", "imageID": "",
                "ready": false, "restartCount": 0, "state": state}]}
        }))
        .unwrap()
    }

    fn event(reason: &str, message: &str) -> k8s_openapi::api::core::v1::Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "legacy.1"}, "involvedObject": {"name": "legacy"},
            "reason": reason, "message": message
        }))
        .unwrap()
    }

    const REFUSAL: &str = "rpc error: code = Unimplemented desc = failed to pull and unpack \
        image \"docker.io/radial/busyboxplus:curl\": not implemented: media type \
        \"application/vnd.docker.distribution.manifest.v1+prettyjws\" is no longer supported \
        since containerd v2.1, please rebuild the image as …";

    #[test]
    fn the_pull_verdict_reads_the_waiting_state_and_the_events() {
        let err = pod_with(
            serde_json::json!({"waiting": {"reason": "ErrImagePull", "message": REFUSAL}}),
        );
        assert!(
            matches!(schema1_pull_verdict(&err, &[]), PullVerdict::Refused(m) if m.starts_with("ErrImagePull: rpc error"))
        );

        let backoff = pod_with(serde_json::json!({"waiting": {"reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"radial/busyboxplus:curl\""}}));
        assert!(matches!(
            schema1_pull_verdict(&backoff, &[]),
            PullVerdict::Pending(_)
        ));
        let events = [
            event("Pulling", "Pulling image \"radial/busyboxplus:curl\""),
            event(
                "Failed",
                &format!("Failed to pull image \"radial/busyboxplus:curl\": {REFUSAL}"),
            ),
        ];
        assert!(
            matches!(schema1_pull_verdict(&backoff, &events), PullVerdict::Refused(m) if m.contains("event Failed"))
        );

        // A pull that fails for another reason is not the stated reason.
        let other = pod_with(serde_json::json!({"waiting": {"reason": "ErrImagePull",
            "message": "rpc error: code = Unknown desc = failed to resolve reference: 429 Too Many Requests"}}));
        let PullVerdict::Pending(seen) = schema1_pull_verdict(&other, &[]) else {
            panic!()
        };
        assert!(seen.contains("429 Too Many Requests"), "{seen}");

        // The image gone from the registry: still needed, for another reason.
        for gone in [
            "rpc error: code = NotFound desc = failed to pull and unpack image \
             \"docker.io/radial/busyboxplus:curl\": failed to resolve reference \
             \"docker.io/radial/busyboxplus:curl\": docker.io/radial/busyboxplus:curl: not found",
            "rpc error: code = Unknown desc = failed to pull and unpack image \
             \"docker.io/radial/busyboxplus:curl\": failed to resolve reference \
             \"docker.io/radial/busyboxplus:curl\": pull access denied, repository does not \
             exist or may require authorization: server message: insufficient_scope: \
             authorization failed",
            "failed to resolve reference: unexpected status from GET request: 404 Not Found\n\
             manifest unknown: manifest unknown",
        ] {
            let p = pod_with(
                serde_json::json!({"waiting": {"reason": "ErrImagePull", "message": gone}}),
            );
            assert!(
                matches!(schema1_pull_verdict(&p, &[]), PullVerdict::Gone(m) if m.contains(gone)),
                "{gone}"
            );
            let events = [event(
                "Failed",
                &format!("Failed to pull image \"radial/busyboxplus:curl\": {gone}"),
            )];
            assert!(
                matches!(schema1_pull_verdict(&backoff, &events), PullVerdict::Gone(m) if m.contains("event Failed")),
                "{gone}"
            );
        }

        // A refusal message in events while the container runs does not count: it pulled.
        let running =
            pod_with(serde_json::json!({"running": {"startedAt": "2026-12-01T00:00:00Z"}}));
        assert!(
            matches!(schema1_pull_verdict(&running, &events), PullVerdict::Pulled(m) if m.contains("runs"))
        );
        let exited = pod_with(serde_json::json!({"terminated": {"exitCode": 0}}));
        assert!(matches!(
            schema1_pull_verdict(&exited, &[]),
            PullVerdict::Pulled(_)
        ));
        let fresh: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "legacy"}})).unwrap();
        assert_eq!(
            schema1_pull_verdict(&fresh, &[]),
            PullVerdict::Pending("phase no phase yet".into())
        );
    }

    #[test]
    fn recognises_containerds_schema1_refusals() {
        // containerd client/pull.go v2.2.0, as kubelet shows it (CRI wrap, gRPC status).
        let local = "rpc error: code = Unimplemented desc = failed to pull and unpack image \
            \"docker.io/radial/busyboxplus:curl\": not implemented: media type \
            \"application/vnd.docker.distribution.manifest.v1+prettyjws\" is no longer supported \
            since containerd v2.1, please rebuild the image as \
            \"application/vnd.docker.distribution.manifest.v2+json\" or \
            \"application/vnd.oci.image.manifest.v1+json\"";
        // containerd core/transfer/local/pull.go v2.2.0.
        let transfer = "rpc error: code = InvalidArgument desc = failed to pull and unpack image \
            \"docker.io/radial/busyboxplus:curl\": schema 1 image manifests are no longer \
            supported: invalid argument";
        assert!(names_schema1_refusal(local));
        assert!(names_schema1_refusal(transfer));
        for other in [
            "rpc error: code = NotFound desc = failed to pull and unpack image \
             \"docker.io/radial/busyboxplus:nope\": not found",
            "Back-off pulling image \"radial/busyboxplus:curl\"",
            "toomanyrequests: You have reached your unauthenticated pull rate limit",
        ] {
            assert!(!names_schema1_refusal(other), "{other}");
        }
    }
}
