//! The claims registry: one entry per claim C01–C22, from the workshop's own words to what the
//! suite does about them — the scenarios that state the claim, the workshop's files they apply,
//! the functions that judge it, how many requests a statistical verdict takes and its error
//! bound, the upstream facts the check relies on (each with its source), the negative cases
//! that prove the check can fail, and the deviations its scenarios run with.
//!
//! It is the one hop from a claim to everything behind it, in the pattern of
//! [`crate::deviations`]: the living documentation renders it, and a reader (or a reviewer)
//! needs no document outside the repository. The workshop's text is quoted from
//! `docs/workshop-README.md`, a copy of rinormaloku/happy-istio's README as GitHub renders it.
//!
//! The tests below keep it in agreement with the rest of the repository: every claim tag of
//! `features/` has an entry and every entry a tagged scenario; the scenarios, manifests, check
//! functions and deviations named exist; the negative cases of `tests/runs/negative.rs` are the
//! ones listed; every quote occurs verbatim in the workshop's text, in the section named.
//!
//! Adding a claim is adding one [`Claim`] to [`CLAIMS`] and its scenario to `features/`.

/// Where every quote comes from; [`Quote::source`] names the section after it.
pub const WORKSHOP_README: &str = "rinormaloku/happy-istio README.md";

/// The repository's copy of the workshop's README (its first line says where it comes from).
pub const WORKSHOP_README_COPY: &str = "docs/workshop-README.md";

/// The repository's copy of the workshop's README, compiled in: the living documentation
/// renders its sections.
pub const WORKSHOP_README_TEXT: &str = include_str!("../../../docs/workshop-README.md");

/// The headings of the workshop's README, in order: a section runs to the next one. (The copy
/// is the text GitHub's page shows, so a heading is a line of its own with one of these texts.)
pub const WORKSHOP_HEADINGS: &[&str] = &[
    "Download kubectl",
    "Set up a kubernetes cluster",
    "Deploy workloads",
    "Services",
    "Install Istio",
    "Automatic sidecar injection",
    "Manual sidecar injection",
    "Istio Ingress Gateway",
    "Observability",
    "Access logs",
    "Metrics",
    "Kiali - the service mesh dashboard",
    "Traffic Management",
    "Mirroring traffic",
    "Security",
    "Reducing access",
    "Impersonating a service identity",
];

/// One section of the workshop's README.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkshopSection {
    /// Its heading (one of [`WORKSHOP_HEADINGS`]).
    pub heading: &'static str,
    /// Its text, the heading line first, up to the next heading.
    pub text: String,
}

/// The workshop's README cut into its sections, in order: each heading of [`WORKSHOP_HEADINGS`]
/// found (the first line at or after the previous heading that reads exactly so) starts one.
/// A heading not found is left out; the registry's test requires every one.
pub fn workshop_sections() -> Vec<WorkshopSection> {
    let text = WORKSHOP_README_TEXT
        .split_once('\n')
        .map_or(WORKSHOP_README_TEXT, |(_, rest)| rest);
    let lines: Vec<&str> = text.lines().collect();
    let mut starts = Vec::new();
    let mut from = 0;
    for heading in WORKSHOP_HEADINGS {
        if let Some(at) = lines[from..].iter().position(|l| l == heading) {
            starts.push((from + at, *heading));
            from += at + 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, (at, heading))| {
            let end = starts.get(i + 1).map_or(lines.len(), |(next, _)| *next);
            WorkshopSection {
                heading,
                text: lines[*at..end].join("\n"),
            }
        })
        .collect()
}

/// The heading of the section a quote's `source` names (`…, section Services` → `Services`).
pub fn quote_section(source: &str) -> Option<&'static str> {
    let heading = source
        .strip_prefix(WORKSHOP_README)?
        .strip_prefix(", section ")?;
    WORKSHOP_HEADINGS.iter().copied().find(|h| *h == heading)
}

/// The workshop's words a claim rests on, quoted exactly.
#[derive(Debug)]
pub struct Quote {
    /// `rinormaloku/happy-istio README.md, section <heading>`: the heading as the README
    /// prints it, a line of its own.
    pub source: &'static str,
    /// The words, verbatim (line breaks included).
    pub words: &'static str,
}

/// One fact about an upstream tool (Istio, Envoy, Kiali, fake-service, curl, tcpdump,
/// Kubernetes…) that a check relies on.
#[derive(Debug)]
pub struct UpstreamFact {
    /// The fact.
    pub fact: &'static str,
    /// Where it comes from: repository, file, tag (or a documentation URL).
    pub source: &'static str,
    /// Whether the source was read for this fact. `false` says the code states it but its
    /// source was not re-read (the source then says what is missing).
    pub confirmed: bool,
}

/// How many requests a statistical verdict takes, and its bound on a wrong verdict.
#[derive(Debug)]
pub struct Bound {
    /// The step whose verdict it is.
    pub step: &'static str,
    /// Requests (or calls, or page loads) one verdict is judged on.
    pub requests: u32,
    /// The function that sets that number (`checks::batch::request_batch`), or where the code
    /// states it.
    pub counted_by: &'static str,
    /// The probability, per request, of missing what would show the verdict wrong.
    pub miss: f64,
    /// The union-bound factor (2 when either of two outcomes may be missed).
    pub outcomes: u32,
    /// `outcomes · miss^requests`, rounded up: the probability of a wrong verdict.
    pub bound: f64,
    /// Why the numbers are what they are.
    pub why: &'static str,
}

/// Whether a claim's verdict is statistical.
#[derive(Debug)]
pub enum Requests {
    /// One or more decisive observations; why no request count enters the verdict.
    NotStatistical(&'static str),
    /// The verdicts that rest on counts of requests.
    Statistical(&'static [Bound]),
}

/// How the suite shows that a claim's check can fail.
#[derive(Debug)]
pub enum Negative {
    /// A case of `tests/runs/negative.rs` naming this claim, by its `what`.
    Case(&'static str),
    /// No case yet: what is planned.
    Pending(&'static str),
    /// No case possible: why.
    Impossible(&'static str),
    /// A unit test beside the check that must fail on evidence shaped from upstream (a claim
    /// whose tool the sandbox cannot run, such as Kiali), by its path (`checks::addons::…`).
    Check(&'static str),
}

/// One claim of the workshop.
#[derive(Debug)]
pub struct Claim {
    /// `C01` … `C22`, also the scenarios' tag.
    pub id: &'static str,
    /// The feature file's stem (`04-observability`).
    pub chapter: &'static str,
    /// The claim in one line.
    pub statement: &'static str,
    /// The workshop's words it rests on.
    pub workshop_words: &'static [Quote],
    /// The sample output the workshop shows for it (verbatim), where it shows one.
    pub workshop_sample: Option<&'static str>,
    /// The scenarios (in `features/<chapter>.feature`) tagged with the claim.
    pub scenarios: &'static [&'static str],
    /// The workshop's files (under `manifests/`) the scenarios apply.
    pub manifests: &'static [&'static str],
    /// The functions that judge it: `checks::…`, `probes::…`, `cluster::…` in this crate,
    /// `steps::<file>::<fn>` in `steps/definitions/`.
    pub checks: &'static [&'static str],
    /// The request counts and the error bound.
    pub requests: Requests,
    /// The upstream facts the checks rely on.
    pub upstream_facts: &'static [UpstreamFact],
    /// Its negative case(s).
    pub negative: &'static [Negative],
    /// The deviations (`crate::deviations::DEVIATIONS`) its scenarios carry.
    pub deviations: &'static [&'static str],
}

/// The claim with this id.
pub fn find(id: &str) -> Option<&'static Claim> {
    CLAIMS.iter().find(|c| c.id.eq_ignore_ascii_case(id))
}

const fn quote(source: &'static str, words: &'static str) -> Quote {
    Quote { source, words }
}

const fn fact(fact: &'static str, source: &'static str) -> UpstreamFact {
    UpstreamFact {
        fact,
        source,
        confirmed: true,
    }
}

const fn unconfirmed(fact: &'static str, source: &'static str) -> UpstreamFact {
    UpstreamFact {
        fact,
        source,
        confirmed: false,
    }
}

// Sections of the workshop's README (headings as GitHub renders them).
const SERVICES: &str = "rinormaloku/happy-istio README.md, section Services";
const DEPLOY: &str = "rinormaloku/happy-istio README.md, section Deploy workloads";
const INSTALL: &str = "rinormaloku/happy-istio README.md, section Install Istio";
const AUTO_INJECTION: &str =
    "rinormaloku/happy-istio README.md, section Automatic sidecar injection";
const MANUAL_INJECTION: &str =
    "rinormaloku/happy-istio README.md, section Manual sidecar injection";
const INGRESS: &str = "rinormaloku/happy-istio README.md, section Istio Ingress Gateway";
const ACCESS_LOGS: &str = "rinormaloku/happy-istio README.md, section Access logs";
const METRICS: &str = "rinormaloku/happy-istio README.md, section Metrics";
const KIALI: &str = "rinormaloku/happy-istio README.md, section Kiali - the service mesh dashboard";
const TRAFFIC: &str = "rinormaloku/happy-istio README.md, section Traffic Management";
const MIRRORING: &str = "rinormaloku/happy-istio README.md, section Mirroring traffic";
const SECURITY: &str = "rinormaloku/happy-istio README.md, section Security";
const REDUCING: &str = "rinormaloku/happy-istio README.md, section Reducing access";
const IMPERSONATING: &str =
    "rinormaloku/happy-istio README.md, section Impersonating a service identity";

// The numbers of `checks::batch`: a batch of the workshop's request is `request_batch()` = 31
// requests, each meeting service-c v2 with probability one half.
const HALF: f64 = 0.5;
const BATCH: u32 = 31;

const EVERY_200_OF_BATCH: Bound = Bound {
    step: "every response is 200",
    requests: BATCH,
    counted_by: "checks::batch::request_batch",
    miss: HALF,
    outcomes: 1,
    bound: 4.7e-10,
    why: "a configuration that still fails at least half of the requests passes a batch of n \
          with probability at most 0.5^n; every settled batch (HAPPY_CONSECUTIVE of them, 3 by \
          default, agreeing in shape) is judged, so the bound only shrinks",
};

const BOTH_OF_BATCH: Bound = Bound {
    step: "some responses are 500 and some are 200",
    requests: BATCH,
    counted_by: "checks::batch::request_batch",
    miss: HALF,
    outcomes: 2,
    bound: 9.4e-10,
    why: "with service-c v2 an endpoint each request fails with probability one half, so a \
          correct system misses one of the two outcomes in n requests with probability at most \
          2 · 0.5^n (union bound)",
};

const BOTH_BEFORE: Bound = Bound {
    step: "requests … have succeeded with 200 and failed with 500",
    requests: BATCH,
    counted_by: "checks::batch::both_outcomes_batch",
    miss: HALF,
    outcomes: 2,
    bound: 9.4e-10,
    why: "the precondition that failures happened: a batch of n requests shows both a 500 and \
          a 200 except with probability 2 · 0.5^n, so a working system is not refused it",
};

const ONE_ANSWER: Bound = Bound {
    step: "a call … answers 200 (checks::batch::calls_until_answered)",
    requests: 30,
    counted_by: "checks::batch::one_answer_batch",
    miss: HALF,
    outcomes: 1,
    bound: 9.4e-10,
    why: "calls go one at a time, in batches, until one answers 200, one is refused, or n were \
          let through without an answer; each meets service-c v2 (a 500) with probability one \
          half, independently, so a working path misses a 200 in a whole batch with probability \
          at most 0.5^n, and it must miss HAPPY_CONSECUTIVE batches in a row to fail; a closed \
          path never answers, so it cannot pass",
};

// The manifests most scenarios apply: the workshop's four workloads (the chapters' Background),
// and with them the ingress gateway and its route (from the ingress chapter on).
const WORKLOADS: &[&str] = &[
    "services-a.yaml",
    "services-b.yaml",
    "services-c-v1.yaml",
    "services-c-v2.yaml",
];
const WORKLOADS_AND_INGRESS: &[&str] = &[
    "services-a.yaml",
    "services-b.yaml",
    "services-c-v1.yaml",
    "services-c-v2.yaml",
    "service-a-gateway.yaml",
    "service-a-route.yaml",
];

// Upstream facts more than one claim relies on.
const FAKE_SERVICE_CLOSES: UpstreamFact = fact(
    "fake-service answers every request with `Connection: close` (HTTP_SERVER_KEEP_ALIVES \
     defaults to false), so every request through a port-forward opens its own connection, and \
     every call service-a makes opens a new connection to its upstream",
    "nicholasjackson/fake-service main.go (v0.26.x)",
);
const FAKE_SERVICE_CHAIN: UpstreamFact = unconfirmed(
    "fake-service answers JSON with `name`, `code` and `upstream_calls` (keyed by upstream \
     URI, each a nested response); it calls its UPSTREAM_URIS in order and answers 500 when \
     any of them fails or answers non-2xx",
    "nicholasjackson/fake-service (the workshop's rinormaloku/happy-service is a fork): \
     stated by the suite's probes::fake_service and the sandbox's fake_service; the upstream \
     handler file was not re-read for this registry",
);
const V2_FAILS_ALL: UpstreamFact = unconfirmed(
    "fake-service's error injection is deterministic: the n-th request fails when \
     n % int(1/ERROR_RATE) == 0, so services-c-v2.yaml's ERROR_RATE 0.6 (int(1.66) = 1) fails \
     every request with ERROR_CODE 500",
    "nicholasjackson/fake-service error injection, as sandbox/src/fake_service/inject.rs \
     models it; the upstream file and tag were not re-read for this registry",
);
const UI_REDIRECT: UpstreamFact = fact(
    "fake-service registers its UI as the subtree `/ui/` (UI_PATH), so Go's ServeMux answers \
     `/ui` with `301 Moved Permanently`, `Location: /ui/`, and the file server serves \
     `index.html` as text/html there",
    "nicholasjackson/fake-service main.go `createHTTPServer` (v0.22.7–v0.26.2); golang/go \
     src/net/http/server.go (`redirectToPathSlash` before 1.22, `matchOrRedirect` from 1.22) \
     and fs.go `serveFile`",
);
const LEAST_REQUEST: UpstreamFact = fact(
    "Istio's default load balancer is LEAST_REQUEST since 1.14 and the workshop's \
     DestinationRule sets none; with equal weights Envoy's least-request balancer picks two \
     hosts at random and takes the one with fewer active requests, and it chooses a host per \
     request, not per downstream connection: with one request at a time each meets v2 with \
     probability one half, independently",
    "istio/istio 1.14.0 releasenotes/notes/new_lb_algorithm_default.yaml; istio/istio \
     1.28.0–1.30.3 pilot/pkg/networking/core/cluster_traffic_policy.go `defaultLBAlgorithm`; \
     envoyproxy/envoy v1.35.0 source/extensions/load_balancing_policies/least_request/\
     least_request_lb.h; Envoy docs intro/arch_overview/upstream/load_balancing/\
     load_balancers.rst and upstream/connection_pooling.rst (v1.18–v1.38)",
);
const PROPAGATION: UpstreamFact = fact(
    "istiod pushes a change once no other has come for PILOT_DEBOUNCE_AFTER (100 ms), or after \
     PILOT_DEBOUNCE_MAX (10 s) of steady changes; observations count only from \
     HAPPY_TIMEOUT_PROPAGATION after the suite's last change",
    "istio/istio pilot/pkg/features/tuning.go",
);
const KIND_NO_LB: UpstreamFact = fact(
    "kind has no LoadBalancer implementation of its own: without Cloud Provider KIND on the \
     host a Service's status.loadBalancer stays empty, so the workshop's ISTIO_INGRESS_GW_IP \
     is empty (deviation D-ingress-address)",
    "kubernetes-sigs/kind site/content/docs/user/loadbalancer.md (v0.31.0)",
);
const NATIVE_SIDECAR: UpstreamFact = fact(
    "from Istio 1.27 on Kubernetes ≥ 1.33 the injected istio-proxy is a native sidecar (an \
     init container with restartPolicy Always), not a regular container; both count as the \
     sidecar (cluster::pods::sidecar_present)",
    "istio/istio pkg/kube/inject/webhook.go (1.27.0)",
);
const INJECT_OPT_OUT: UpstreamFact = fact(
    "the pod label `sidecar.istio.io/inject: \"false\"` opts a pod out of injection whatever \
     its namespace's label says (`injectRequired`); `istioctl kube-inject` applies the same \
     rule (`IntoObject`: \"Skipping injection because Deployment … has sidecar injection \
     disabled\")",
    "istio/istio pkg/kube/inject/inject.go",
);
const ISTIO_STATS: UpstreamFact = fact(
    "Istio's stats filter counts every request in `istio_requests_total` with the labels \
     reporter, source_workload, destination_workload, destination_service_name, response_code, \
     connection_security_policy …; a sidecar's :15020/stats/prometheus merges Envoy's stats \
     (read live from the stats store on each request) with istio-agent's own",
    "istio/proxy source/extensions/filters/http/istio_stats/istio_stats.cc (`Context`); \
     envoyproxy/envoy source/server/admin/stats_handler.cc",
);
const STATS_RECORDED_AT_END: UpstreamFact = fact(
    "Istio's stats filter counts a request when its stream completes (the filter is an access \
     logger, and `istio_requests_total` grows in its `log()`), possibly just after the client \
     has its answer: counters are read again until they show it, and readings begun \
     HAPPY_TIMEOUT_PROPAGATION after the requests ended decide either way",
    "istio/proxy source/extensions/filters/http/istio_stats/istio_stats.cc (commit 00aaa6e79005): \
     `class IstioStatsFilter : … public AccessLog::Instance`, `log()` calls \
     `stream_.addCounter(context_.requests_total_, tags_)`",
);
const ACCESS_LOG_FLUSH: UpstreamFact = fact(
    "pilot-agent starts a sidecar's Envoy with `--file-flush-interval-msec 1000` (Envoy's own \
     default is 10 s): an access-log entry is in the container log within a second of its \
     request's end, so readings begun that long plus HAPPY_TIMEOUT_PROPAGATION after the \
     requests decide either way",
    "istio/istio pkg/envoy/proxy.go line 140 (1.28.0); lines 131-134 on master (1.29+), where \
     ProxyConfig `fileFlushInterval` can override it",
);
const ADDON_SERVICES: UpstreamFact = fact(
    "the addons are Deployments and Services `prometheus` (port 9090), `grafana` (port 3000, \
     anonymous access with role Admin) and `kiali` (port 20001, `auth.strategy: anonymous`, \
     `web_root: /kiali`) in istio-system",
    "istio/istio samples/addons/prometheus.yaml, grafana.yaml, kiali.yaml (1.28.0 and \
     1.31.0-rc.0)",
);
const SCRAPE_INTERVAL: UpstreamFact = fact(
    "the addon's Prometheus scrapes every 15 s, so a rate needs two scrapes with an increase \
     (HAPPY_TIMEOUT_METRICS and HAPPY_TIMEOUT_KIALI allow for them)",
    "istio/istio samples/addons/prometheus.yaml (1.28–1.31) `scrape_interval: 15s`",
);
const KIALI_GRAPH: UpstreamFact = fact(
    "Kiali's graph API `GET /api/namespaces/graph` answers nodes and edges under `elements`; \
     node `nodeType` is `unknown` for traffic from outside the mesh; edge `traffic.rates` is a \
     map of strings present only when above 0 (`http`, `httpPercentErr`, …) and `isMTLS` the \
     mTLS percentage, present only when above 0; every traffic query ends in `> 0`, so an edge \
     shows only while traffic flows; from v2.21.0 the graph is cached, `refreshInterval=0` \
     bypasses the cache",
    "kiali/kiali v2.17–v2.30: routing/routes.go, graph/config/common/common.go, \
     graph/types.go, graph/telemetry/istio/istio.go (`addEdgeTelemetry`), \
     graph/telemetry/istio/appender/security_policy.go, graph/options.go",
);
const PROXY_TCPDUMP: UpstreamFact = fact(
    "the proxy image has tcpdump and sudo (`istio-proxy ALL=NOPASSWD`), and \
     values.global.proxy.privileged=true (the workshop's install) lets sudo capture",
    "istio/istio docker/Dockerfile.base (1.28.0, 1.31.0-rc.0)",
);
const TCPDUMP_PRINTS: UpstreamFact = fact(
    "tcpdump ends each TCP line with `length N` (N the payload); with -A it prints the payload \
     as text; without -A, -vv prints a payload only on ports 80 and 8080, as HTTP lines when it \
     starts with a request or status line",
    "the-tcpdump-group/tcpdump print-tcp.c, util-print.c `txtproto_print` (4.99)",
);
const EXEC_LEFT_RUNNING: UpstreamFact = fact(
    "ending `kubectl exec` does not end the command in the container: the workshop's open-ended \
     tcpdump stays until the pod goes (deviation D-capture-command)",
    "kubernetes/kubernetes#89031, kubernetes/kubectl#1076",
);
const LEGACY_IMAGE: UpstreamFact = fact(
    "radial/busyboxplus:curl is a Docker schema-1 image, which containerd ≥ 2.1 refuses to \
     pull; Istio's sample client docker.io/curlimages/curl:8.16.0 runs instead (deviation \
     D-legacy-image)",
    "containerd/containerd client/pull.go (v2.1.0 … v2.3.4); istio/istio \
     samples/curl/curl.yaml (1.29.0 … 1.31.0-rc.0)",
);
const CURL_56: UpstreamFact = fact(
    "curl's exit code 56 is CURLE_RECV_ERROR, \"failure in receiving network data\": a \
     connection reset while curl waits for the answer",
    "curl/curl include/curl/curl.h `CURLE_RECV_ERROR, /* 56 - failure in receiving network \
     data */` (read in a copy of the header; the tag was not pinned)",
);
const RBAC_DENIED: UpstreamFact = unconfirmed(
    "a request an AuthorizationPolicy denies is answered by the destination's sidecar with \
     HTTP 403 and the body `RBAC: access denied` (Envoy's RBAC filter)",
    "envoyproxy/envoy source/extensions/filters/http/rbac/rbac_filter.cc: not re-read; the \
     body is also the workshop's sample output",
);
const DEFAULT_ALLOW: UpstreamFact = unconfirmed(
    "without any AuthorizationPolicy selecting a workload, Istio allows every request to it",
    "istio.io docs, Security > Authorization (\"If there are no ALLOW policies for the \
     workload, allow the request\"): not re-read for this registry",
);
const ACCESS_LOG_FORMAT: UpstreamFact = fact(
    "Istio's default text access-log format (meshConfig.accessLogFile) is `[%START_TIME%] \
     \"%REQ(:METHOD)% … %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% …`; from 1.23 it writes \
     %UPSTREAM_CLUSTER_RAW% where 1.22 wrote %UPSTREAM_CLUSTER%, both one unquoted token",
    "istio/istio pilot/pkg/model/telemetry_logging.go `EnvoyTextLogFormat` (1.23.0 commit \
     2d569b66563, 1.28.0, 1.31.0-rc.0)",
);
const MIRROR_HOST: UpstreamFact = fact(
    "from Istio 1.28 mirrored requests keep their Host (DISABLE_SHADOW_HOST_SUFFIX=true); \
     before, Envoy added `-shadow` to it",
    "istio/istio pilot/pkg/features/pilot.go (1.28.0)",
);
const PEER_AUTH_WORKLOAD: UpstreamFact = fact(
    "a PeerAuthentication with a workload selector and mode STRICT makes that workload's \
     sidecar require mTLS (\"Connection is an mTLS tunnel (TLS with client cert must be \
     presented)\"), as the namespace-wide one does",
    "istio.io reference, security.istio.io PeerAuthentication (its `finance` example)",
);

/// Every claim of the workshop. One entry per claim.
pub const CLAIMS: &[Claim] = &[
    Claim {
        id: "C01",
        chapter: "01-deploy",
        statement: "with services a, b and c-v1 applied every pod becomes Ready and service-a \
                    answers 200 with the whole chain: its calls to service-b and service-c \
                    each answering 200",
        workshop_words: &[
            quote(DEPLOY, "# Wait for services to become ready"),
            quote(
                SERVICES,
                "Access the app via your browser http://localhost:8080/ui, or using curl:",
            ),
            quote(
                SERVICES,
                "All services are based on the project nicholasjackson/fake-service, which \
                 makes it simple to build chains of calls through services.",
            ),
        ],
        workshop_sample: Some("HTTP/1.1 200 OK\nHTTP/1.1 200 OK\nHTTP/1.1 200 OK"),
        scenarios: &["The services become Ready and service-a answers with the whole chain"],
        manifests: &["services-a.yaml", "services-b.yaml", "services-c-v1.yaml"],
        checks: &[
            "cluster::Cluster::wait_pods_ready",
            "checks::chain::shape",
            "checks::batch::Expectation::judge",
            "checks::chain::comes_from",
            "checks::chain::upstream_calls_answered",
        ],
        requests: Requests::Statistical(&[EVERY_200_OF_BATCH]),
        upstream_facts: &[FAKE_SERVICE_CHAIN, FAKE_SERVICE_CLOSES],
        negative: &[Negative::Case("service-a no longer calls service-c")],
        deviations: &[],
    },
    Claim {
        id: "C02",
        chapter: "01-deploy",
        statement: "service-a serves its web UI: /ui, followed as a browser does, is a 200 HTML \
                    page",
        workshop_words: &[
            quote(
                SERVICES,
                "Access the app via your browser http://localhost:8080/ui, or using curl:",
            ),
            quote(
                SERVICES,
                "It has a UI to visualize the service call chain. In our instance you can \
                 access it at localhost:8080/ui",
            ),
        ],
        workshop_sample: None,
        scenarios: &["service-a serves its web UI at /ui"],
        manifests: &["services-a.yaml", "services-b.yaml", "services-c-v1.yaml"],
        checks: &[
            "checks::chain::shape",
            "checks::batch::Expectation::judge",
            "checks::chain::is_html_page",
        ],
        requests: Requests::Statistical(&[Bound {
            step: "every response is 200 (page loads)",
            ..EVERY_200_OF_BATCH
        }]),
        upstream_facts: &[UI_REDIRECT, FAKE_SERVICE_CLOSES],
        negative: &[Negative::Case(
            "service-a serves its UI under /dashboard/, not /ui/",
        )],
        deviations: &[],
    },
    Claim {
        id: "C03",
        chapter: "01-deploy",
        statement: "with service-c v2 deployed some requests to service-a fail with 500 and \
                    some succeed; every 500 is service-a's, whose call to service-c answered \
                    500",
        workshop_words: &[
            quote(
                SERVICES,
                "Now let us deploy v2 of service-c, this version will introduce some errors \
                 with the service",
            ),
            quote(SERVICES, "You will see that some requests fail:"),
        ],
        workshop_sample: Some(
            "HTTP/1.1 200 OK\nHTTP/1.1 200 OK\nHTTP/1.1 500 Internal Server Error",
        ),
        scenarios: &["With service-c v2 deployed, some requests fail with 500 and some succeed"],
        manifests: WORKLOADS,
        checks: &[
            "checks::chain::shape",
            "checks::batch::Expectation::judge",
            "checks::chain::comes_from",
            "checks::chain::upstream_calls_answered",
        ],
        requests: Requests::Statistical(&[BOTH_OF_BATCH]),
        upstream_facts: &[
            V2_FAILS_ALL,
            FAKE_SERVICE_CHAIN,
            FAKE_SERVICE_CLOSES,
            unconfirmed(
                "without Istio, service-a's connection to service-c's ClusterIP is balanced \
                 by kube-proxy over v1's and v2's endpoints, a new choice per connection (and \
                 fake-service opens one per call)",
                "kubernetes/kubernetes pkg/proxy (iptables/nftables modes): the probability \
                 one half per connection is assumed by checks::batch, not re-read",
            ),
        ],
        negative: &[Negative::Case("service-c v2 never fails")],
        deviations: &[],
    },
    Claim {
        id: "C04",
        chapter: "01-deploy",
        statement: "after requests have failed, the services' logs show the requests they \
                    handled but no line mentions an error",
        workshop_words: &[
            quote(
                SERVICES,
                "The application is not logging the needed information:",
            ),
            quote(SERVICES, "kubectl logs deploy/service-c-v2 | grep -i error"),
        ],
        workshop_sample: None,
        scenarios: &["The services' logs carry no error information"],
        manifests: WORKLOADS,
        checks: &[
            "checks::logs::handled_requests",
            "checks::logs::error_lines",
        ],
        requests: Requests::Statistical(&[BOTH_BEFORE]),
        upstream_facts: &[
            unconfirmed(
                "fake-service logs `Handle inbound request` for every request it handles, and \
                 the workshop's fork logs no error for an HTTP request it fails",
                "nicholasjackson/fake-service / rinormaloku/happy-service logging: stated by \
                 checks::logs and the sandbox; the upstream files were not re-read",
            ),
            V2_FAILS_ALL,
        ],
        negative: &[Negative::Case(
            "service-c v2 runs upstream's nicholasjackson/fake-service image",
        )],
        deviations: &[],
    },
    Claim {
        id: "C05",
        chapter: "02-install-and-injection",
        statement: "istioctl's demo profile runs istiod, the ingress gateway and the egress \
                    gateway, each Ready in istio-system",
        workshop_words: &[
            quote(
                INSTALL,
                "istioctl install -y --set profile=demo \\\n     --set \
                 values.global.proxy.privileged=true",
            ),
            quote(
                INGRESS,
                "Istio installs an ingress gateway through which traffic from the public \
                 network can be routed to services.",
            ),
        ],
        workshop_sample: Some(
            "✔ Istio core installed\n✔ Istiod installed\n✔ Ingress gateways installed\n✔ \
             Egress gateways installed\n✔ Installation complete",
        ),
        scenarios: &[
            "The demo profile runs istiod and the ingress gateway",
            "The demo profile's egress gateway runs beside them",
        ],
        manifests: &[],
        checks: &[
            "cluster::Cluster::wait_rollout",
            "cluster::pods::pod_is_ready",
        ],
        requests: Requests::NotStatistical(
            "each Deployment's rollout and a Ready pod decide; nothing is sampled",
        ),
        upstream_facts: &[fact(
            "the demo profile turns on the egress gateway, which the default profile leaves \
             off; both install istiod and istio-ingressgateway",
            "istio/istio@1.28.0 manifests/profiles/demo.yaml lines 5-7 (egressGateways \
             istio-egressgateway enabled: true), manifests/profiles/default.yaml lines 13-21 \
             (pilot and istio-ingressgateway enabled, istio-egressgateway enabled: false)",
        )],
        negative: &[Negative::Case(
            "Istio installed with the default profile, which has no egress gateway",
        )],
        deviations: &["D-istio-version"],
    },
    Claim {
        id: "C06",
        chapter: "02-install-and-injection",
        statement: "labelling istioinaction with istio-injection=enabled and restarting the \
                    deployments gives every pod an istio-proxy sidecar, Ready 2/2",
        workshop_words: &[
            quote(
                AUTO_INJECTION,
                "To enable automatic sidecar injection label the namespace with \
                 istio-injection=enabled",
            ),
            quote(
                AUTO_INJECTION,
                "In the column READY in the output we see the pods have 2 containers. One \
                 being the application container, and the other is the injected proxy.",
            ),
        ],
        workshop_sample: Some(
            "NAME                            READY   STATUS    RESTARTS   AGE\n\
             service-a-6c5d78f675-k5dqh      2/2     Running   0          18s\n\
             service-b-5c669f6df8-l5xnn      2/2     Running   0          18s\n\
             service-c-v1-79646f6d65-bvdkx   2/2     Running   0          18s\n\
             service-c-v2-64db666896-2nd7h   2/2     Running   0          18s",
        ),
        scenarios: &["Labelling the namespace and restarting the deployments injects the sidecars"],
        manifests: WORKLOADS,
        checks: &[
            "cluster::pods::sidecar_present",
            "cluster::pods::ready_containers",
            "steps::cluster::every_pod_ready_with",
        ],
        requests: Requests::NotStatistical("every pod's spec and status decide"),
        upstream_facts: &[NATIVE_SIDECAR, INJECT_OPT_OUT],
        negative: &[Negative::Case(
            "service-a's pods opt out of sidecar injection",
        )],
        deviations: &["D-istio-version"],
    },
    Claim {
        id: "C07",
        chapter: "02-install-and-injection",
        statement: "istioctl kube-inject of services-a.yaml yields a Deployment service-a with \
                    the istio-proxy sidecar",
        workshop_words: &[
            quote(
                MANUAL_INJECTION,
                "Using istioctl the sidecar can be injected manually.",
            ),
            quote(MANUAL_INJECTION, "istioctl kube-inject -f services-a.yaml"),
        ],
        // The workshop shows the output as a figure only.
        workshop_sample: None,
        scenarios: &["Manual injection adds the sidecar to service-a's Deployment"],
        manifests: &["services-a.yaml"],
        checks: &[
            "cluster::pods::sidecar_present",
            "steps::mesh::injected_has_sidecar",
        ],
        requests: Requests::NotStatistical("istioctl's output is parsed once"),
        upstream_facts: &[NATIVE_SIDECAR, INJECT_OPT_OUT],
        negative: &[Negative::Case(
            "service-a's pod template opts out of sidecar injection",
        )],
        deviations: &["D-istio-version"],
    },
    Claim {
        id: "C08",
        chapter: "03-ingress",
        statement: "with the Gateway and the VirtualService the ingress gateway routes to \
                    service-a, and v2's errors still show: some 500s, some 200s, all from \
                    service-a",
        workshop_words: &[
            quote(
                INGRESS,
                "Configure the routing of ingress traffic to service-a with the following \
                 virtual service:",
            ),
            quote(
                INGRESS,
                "Your services should resolve the queries, and we still see the errors.",
            ),
        ],
        workshop_sample: None,
        scenarios: &["The ingress gateway routes to service-a, and the v2 errors still show"],
        manifests: WORKLOADS_AND_INGRESS,
        checks: &[
            "checks::chain::shape",
            "checks::batch::Expectation::judge",
            "checks::chain::comes_from",
            "checks::chain::upstream_calls_answered",
        ],
        requests: Requests::Statistical(&[BOTH_OF_BATCH]),
        upstream_facts: &[LEAST_REQUEST, V2_FAILS_ALL, KIND_NO_LB, PROPAGATION],
        negative: &[Negative::Case(
            "the gateway's VirtualService routes to service-b",
        )],
        deviations: &["D-istio-version", "D-ingress-address"],
    },
    Claim {
        id: "C09",
        chapter: "03-ingress",
        statement: "the UI is reachable through the ingress gateway: /ui, followed as a browser \
                    does, is a 200 HTML page",
        workshop_words: &[
            quote(INGRESS, "You can also open the ui in the browser with,"),
            quote(INGRESS, "open \"http://$ISTIO_INGRESS_GW_IP/ui\""),
        ],
        workshop_sample: None,
        scenarios: &["The UI is reachable through the ingress gateway"],
        manifests: WORKLOADS_AND_INGRESS,
        checks: &[
            "checks::chain::shape",
            "checks::batch::Expectation::judge",
            "checks::chain::is_html_page",
        ],
        requests: Requests::Statistical(&[Bound {
            step: "every response is 200 (page loads)",
            ..EVERY_200_OF_BATCH
        }]),
        upstream_facts: &[UI_REDIRECT, KIND_NO_LB],
        negative: &[Negative::Case(
            "the gateway's route rewrites /ui/ to /, so the redirect leads to JSON",
        )],
        deviations: &["D-istio-version", "D-ingress-address"],
    },
    Claim {
        id: "C10",
        chapter: "04-observability",
        statement: "service-a's istio-proxy access log records the failed requests: an entry \
                    written since the scenario's requests has response code 500",
        workshop_words: &[
            quote(
                ACCESS_LOGS,
                "kubectl logs deploy/service-a -c istio-proxy | grep 500",
            ),
            quote(ACCESS_LOGS, "A sample log:"),
        ],
        workshop_sample: Some(
            "[2022-02-06T17:34:59.493Z] \"GET / HTTP/1.1\" 500 - via_upstream - \"-\" 0 1469 4 4 \
             \"10.244.0.21\" \"curl/7.74.0\" \"26299d2b-fd2a-9d58-bad5-da45e02a4dfc\" \
             \"localhost:8080\" \"10.244.0.22:8080\" inbound|8080|| 127.0.0.6:57437 \
             10.244.0.22:8080 10.244.0.21:0 \
             outbound_.80_._.service-a.istioinaction.svc.cluster.local default",
        ),
        scenarios: &["service-a's sidecar logs the failed requests"],
        manifests: WORKLOADS_AND_INGRESS,
        checks: &[
            "probes::access_log::parse_access_log_line",
            "retry::eventually_or_decided",
            "steps::telemetry::access_log_has",
        ],
        requests: Requests::Statistical(&[BOTH_BEFORE]),
        upstream_facts: &[ACCESS_LOG_FORMAT, ACCESS_LOG_FLUSH, V2_FAILS_ALL],
        negative: &[Negative::Case(
            "a Telemetry in istio-system turns the envoy access log off",
        )],
        deviations: &["D-istio-version", "D-ingress-address"],
    },
    Claim {
        id: "C11",
        chapter: "04-observability",
        statement: "service-a's sidecar counts the scenario's 200s and 500s: istio_requests_total \
                    series with response_code 200 and 500 grew since the requests",
        workshop_words: &[quote(
            METRICS,
            "In the output you will see that the response code for the successful requests is \
             response_code=\"200\", meanwhile, for the failed ones it is response_code=\"500\"",
        )],
        workshop_sample: None,
        scenarios: &["service-a's sidecar counts the 200s and the 500s"],
        manifests: WORKLOADS_AND_INGRESS,
        checks: &[
            "probes::prometheus::parse_prometheus",
            "checks::metrics::requests_growth",
            "retry::eventually_or_decided",
            "steps::telemetry::series_with_code",
        ],
        requests: Requests::Statistical(&[BOTH_BEFORE]),
        upstream_facts: &[ISTIO_STATS, STATS_RECORDED_AT_END],
        negative: &[Negative::Case(
            "a Telemetry in istio-system turns the prometheus metrics off",
        )],
        deviations: &["D-istio-version", "D-ingress-address"],
    },
    Claim {
        id: "C12",
        chapter: "04-observability",
        statement: "the addons come up: prometheus, grafana and kiali Ready in istio-system",
        workshop_words: &[
            quote(
                METRICS,
                "Istio provides some sample addons to visualize metrics. Lets deploy the addons.",
            ),
            quote(METRICS, "# wait for the pods to be ready"),
        ],
        workshop_sample: None,
        scenarios: &["Prometheus comes up", "Grafana and Kiali come up"],
        // The chapter's Background, which runs before these scenarios too.
        manifests: WORKLOADS_AND_INGRESS,
        checks: &[
            "steps::mesh::deployment_ready",
            "cluster::Cluster::wait_rollout",
            "cluster::pods::pod_is_ready",
        ],
        requests: Requests::NotStatistical("each Deployment's rollout and a Ready pod decide"),
        upstream_facts: &[ADDON_SERVICES],
        negative: &[Negative::Case(
            "only kiali.yaml of samples/addons applied, so there is no Prometheus",
        )],
        deviations: &["D-istio-version"],
    },
    Claim {
        id: "C13",
        chapter: "04-observability",
        statement: "metrics single out service-c: Prometheus shows a success rate below 100% \
                    from service-a to service-c and 100% to service-b, and Grafana offers the \
                    Istio Workload Dashboard",
        workshop_words: &[
            quote(
                METRICS,
                "If you navigate to \"Istio > Istio Workload Dashboard > Outbound Services\" and \
                 look into the \"Outgoing Success Rate (non-5xx responses) By Destination\" you \
                 will see which service is failing.",
            ),
            quote(METRICS, "It is service C where requests are failing!"),
        ],
        workshop_sample: None,
        scenarios: &[
            "Prometheus singles out service-c as the failing destination",
            "Grafana offers the Istio Workload Dashboard",
        ],
        manifests: WORKLOADS_AND_INGRESS,
        checks: &[
            "checks::metrics::sent_by_destination",
            "checks::metrics::growth",
            "checks::metrics::success_rates_of",
            "checks::metrics::parse_query_vector",
            "steps::telemetry::prometheus_rate_of_batch",
            "checks::addons::grafana_dashboard_uid",
            "checks::addons::grafana_row_has_panel",
        ],
        requests: Requests::Statistical(&[BOTH_BEFORE]),
        upstream_facts: &[
            ISTIO_STATS,
            ADDON_SERVICES,
            SCRAPE_INTERVAL,
            unconfirmed(
                "Istio's Grafana addon provisions the dashboard titled \"Istio Workload \
                 Dashboard\"",
                "istio/istio samples/addons/grafana.yaml (its dashboards ConfigMaps): not \
                 re-read for this registry; the workshop names it",
            ),
        ],
        negative: &[Negative::Case(
            "service-b fails every fifth request, so service-a's calls to it are not all 2xx",
        )],
        deviations: &["D-istio-version", "D-ingress-address"],
    },
    Claim {
        id: "C14",
        chapter: "04-observability",
        statement: "Kiali's versioned-app graph shows requests to service-c v2 failing and to \
                    v1 all succeeding",
        workshop_words: &[quote(
            KIALI,
            "Switch over to the graph view and observe which version of the service-c is \
             failing the requests? It is the version 2!",
        )],
        workshop_sample: None,
        scenarios: &["Kiali's versioned-app graph shows v2 of service-c failing and v1 healthy"],
        manifests: WORKLOADS_AND_INGRESS,
        checks: &[
            "checks::addons::graph_path",
            "checks::addons::graph_with_traffic",
            "checks::addons::http_rates",
            "steps::telemetry::graph_version_health",
        ],
        requests: Requests::Statistical(&[BOTH_BEFORE]),
        upstream_facts: &[KIALI_GRAPH, ADDON_SERVICES, SCRAPE_INTERVAL, V2_FAILS_ALL],
        negative: &[
            // Kiali does not run on the sandbox: the check itself, on graphs shaped from
            // kiali/kiali v2.29.0 graph/config/common/common.go.
            Negative::Check("checks::addons::c14_negative_v2_not_failing_fails"),
            Negative::Check("checks::addons::c14_negative_no_traffic_into_the_version_fails"),
            Negative::Check("checks::addons::c14_judges_only_service_a_v1s_edges"),
        ],
        deviations: &["D-istio-version", "D-ingress-address"],
    },
    Claim {
        id: "C15",
        chapter: "05-traffic",
        statement: "with the DestinationRule and the route to v1 every request through the \
                    gateway succeeds, with service-b and service-c each answering 200",
        workshop_words: &[
            quote(
                TRAFFIC,
                "we can redirect all traffic to the version v1 of service-c",
            ),
            quote(
                TRAFFIC,
                "If you refresh the web page localhost:8080/ui you will discover that all \
                 requests are served successfully!",
            ),
        ],
        workshop_sample: None,
        scenarios: &["With the DestinationRule and the route to v1, every request succeeds"],
        manifests: &[
            "services-a.yaml",
            "services-b.yaml",
            "services-c-v1.yaml",
            "services-c-v2.yaml",
            "service-a-gateway.yaml",
            "service-a-route.yaml",
            "service-c-dr.yaml",
            "service-c-route.yaml",
        ],
        checks: &[
            "checks::chain::shape",
            "checks::batch::Expectation::judge",
            "checks::chain::upstream_calls_answered",
        ],
        requests: Requests::Statistical(&[EVERY_200_OF_BATCH]),
        upstream_facts: &[LEAST_REQUEST, V2_FAILS_ALL, PROPAGATION, KIND_NO_LB],
        negative: &[Negative::Case("the route sends service-c's traffic to v2")],
        deviations: &["D-istio-version", "D-ingress-address"],
    },
    Claim {
        id: "C16",
        chapter: "05-traffic",
        statement: "with mirroring every request still succeeds, and service-c v2's sidecar \
                    receives a mirrored copy of every request",
        workshop_words: &[
            quote(
                MIRRORING,
                "This doesn't impact the client as the responses of the mirrored traffic are \
                 ignored.",
            ),
            quote(
                MIRRORING,
                "Validate in Kiali that all requests are resolved successfully, but traffic \
                 still reaches the erroneous subset.",
            ),
        ],
        workshop_sample: None,
        scenarios: &["With mirroring, every request still succeeds and v2 still receives traffic"],
        manifests: &[
            "services-a.yaml",
            "services-b.yaml",
            "services-c-v1.yaml",
            "services-c-v2.yaml",
            "service-a-gateway.yaml",
            "service-a-route.yaml",
            "service-c-dr.yaml",
            "service-c-mirror.yaml",
        ],
        checks: &[
            "checks::chain::shape",
            "checks::batch::Expectation::judge",
            "checks::metrics::received_by",
            "steps::traffic::mirrored",
        ],
        requests: Requests::Statistical(&[EVERY_200_OF_BATCH]),
        upstream_facts: &[
            MIRROR_HOST,
            ISTIO_STATS,
            STATS_RECORDED_AT_END,
            LEAST_REQUEST,
            V2_FAILS_ALL,
        ],
        negative: &[Negative::Case("the VirtualService has no mirror")],
        deviations: &["D-istio-version", "D-ingress-address"],
    },
    Claim {
        id: "C17",
        chapter: "06-security",
        statement: "traffic between meshed services is encrypted: a capture into service-c-v1's \
                    pod holds traffic but no plaintext HTTP, and its sidecar counts service-a's \
                    requests with connection_security_policy mutual_tls",
        workshop_words: &[quote(
            SECURITY,
            "Traffic between services that are part of the mesh are encrypted.",
        )],
        workshop_sample: Some(
            "10-244-0-23.service-b.istioinaction.svc.cluster.local.http-alt > \
             service-a-6c5d78f675-k5dqh.55988: Flags [P.], cksum 0x1b87 (incorrect -> 0x07ae), \
             seq 1:1357, ack 1361, win 251, options [nop,nop,TS val 3783808996 ecr 519646164], \
             length 1356: HTTP",
        ),
        scenarios: &["Traffic between meshed services is encrypted"],
        manifests: WORKLOADS_AND_INGRESS,
        checks: &[
            "checks::capture::packets_with_payload",
            "checks::capture::plaintext_http",
            "checks::metrics::security_policies_from",
            "steps::security::security_policy_metric",
        ],
        requests: Requests::NotStatistical(
            "captures repeat until HAPPY_CONSECUTIVE of them in a row agree on what they show; \
             one plaintext HTTP line decides, and the metric must grow only under mutual_tls",
        ),
        upstream_facts: &[
            PROXY_TCPDUMP,
            TCPDUMP_PRINTS,
            EXEC_LEFT_RUNNING,
            ISTIO_STATS,
            PROPAGATION,
        ],
        negative: &[Negative::Case(
            "a DestinationRule turns off TLS to service-c",
        )],
        deviations: &["D-istio-version", "D-ingress-address", "D-capture-command"],
    },
    Claim {
        id: "C18",
        chapter: "06-security",
        statement: "a legacy client without a sidecar can still call service-a (200), and a \
                    capture into service-a's pod shows service-a's response in plaintext",
        workshop_words: &[
            quote(
                SECURITY,
                "Meanwhile, if we send a request from a legacy workload the traffic is in clear \
                 text!",
            ),
            quote(
                SECURITY,
                "You will see the entire HTTP information in clear text:",
            ),
        ],
        workshop_sample: Some(
            " service-a-6c5d78f675-k5dqh.http-alt > 10.244.0.31.36682: Flags [P.], cksum 0x1d3f \
             (incorrect -> 0x51e0), seq 1:1789, ack 105, win 255, options [nop,nop,TS val \
             416275699 ecr 2043301135], length 1788: HTTP, length: 1788\n        HTTP/1.1 200 \
             OK\n        date: Sun, 06 Feb 2022 18:29:53 GMT\n        content-length: 1537\n        \
             content-type: text/plain; charset=utf-8\n        x-envoy-upstream-service-time: \
             4\n        server: istio-envoy\n        x-envoy-decorator-operation: \
             service-a.istioinaction.svc.cluster.local:80/*\n\n        {\n          \"name\": \
             \"service-a\",\n          \"owner\": \"dave\",\n          \"uri\": \"/\",\n          \
             \"type\": \"HTTP\",\n          \"ip_addresses\": [\n            \
             \"10.244.0.22\"\n          ],\n        # ...",
        ),
        scenarios: &["A legacy client without a sidecar can still call service-a, in plaintext"],
        manifests: &[
            "services-a.yaml",
            "services-b.yaml",
            "services-c-v1.yaml",
            "services-c-v2.yaml",
            "service-a-gateway.yaml",
            "service-a-route.yaml",
            "legacy.yaml",
        ],
        checks: &[
            "checks::capture::plaintext_http",
            "probes::curl::curl_outcome",
            "steps::security::capture_legacy",
            "steps::security::calls_answer",
            "checks::batch::calls_until_answered",
        ],
        requests: Requests::Statistical(&[ONE_ANSWER]),
        upstream_facts: &[
            PROXY_TCPDUMP,
            TCPDUMP_PRINTS,
            EXEC_LEFT_RUNNING,
            LEGACY_IMAGE,
            PEER_AUTH_WORKLOAD,
        ],
        negative: &[Negative::Case("a STRICT PeerAuthentication for service-a")],
        deviations: &["D-istio-version", "D-legacy-image", "D-capture-command"],
    },
    Claim {
        id: "C19",
        chapter: "06-security",
        statement: "with STRICT mTLS the legacy client's call to service-a is reset: curl exits \
                    56",
        workshop_words: &[
            quote(SECURITY, "It will be rejected with the following output:"),
            quote(
                SECURITY,
                "kubectl apply -n istioinaction  -f peer-auth-strict.yaml",
            ),
        ],
        workshop_sample: Some("command terminated with exit code 56"),
        scenarios: &["With STRICT mTLS the legacy client is rejected"],
        manifests: &[
            "services-a.yaml",
            "services-b.yaml",
            "services-c-v1.yaml",
            "services-c-v2.yaml",
            "service-a-gateway.yaml",
            "service-a-route.yaml",
            "legacy.yaml",
            "peer-auth-strict.yaml",
        ],
        checks: &[
            "probes::curl::curl_outcome",
            "steps::security::legacy_reset",
        ],
        requests: Requests::NotStatistical(
            "the reset must hold for HAPPY_CONSECUTIVE calls in a row, as every negative claim",
        ),
        upstream_facts: &[CURL_56, LEGACY_IMAGE],
        negative: &[Negative::Case("PERMISSIVE instead of STRICT")],
        deviations: &["D-istio-version", "D-legacy-image"],
    },
    Claim {
        id: "C20",
        chapter: "06-security",
        statement: "before any authorization policy service-b may call service-a and service-c: \
                    both calls answer 200",
        workshop_words: &[
            quote(
                REDUCING,
                "For example, in our mesh as of now, services are authorized to access all \
                 other services (even when not needed).",
            ),
            quote(REDUCING, "Try accessing service-a from service-b"),
        ],
        workshop_sample: None,
        scenarios: &["Before any authorization policy, service-b may call service-a and service-c"],
        manifests: WORKLOADS_AND_INGRESS,
        checks: &[
            "probes::curl::curl_outcome",
            "steps::security::call_from",
            "steps::security::let_through",
        ],
        requests: Requests::Statistical(&[Bound {
            step: "service-b's call to http://service-a answers 200",
            counted_by: "steps::security::call_from",
            ..ONE_ANSWER
        }]),
        upstream_facts: &[DEFAULT_ALLOW, V2_FAILS_ALL],
        negative: &[Negative::Case(
            "an allow-nothing AuthorizationPolicy in istioinaction",
        )],
        deviations: &["D-istio-version"],
    },
    Claim {
        id: "C21",
        chapter: "06-security",
        statement: "with the three authorization policies the application still works from the \
                    ingress, but service-c → service-a and service-b → service-c are denied \
                    with 403 \"RBAC: access denied\"",
        workshop_words: &[
            quote(
                IMPERSONATING,
                "Open the page localhost:8080/ui and verify that the services are working \
                 properly.",
            ),
            quote(
                IMPERSONATING,
                "Next, verify that you cannot access service-a from service-b and service-b \
                 cannot access service-c as well.",
            ),
            quote(IMPERSONATING, "Both queries return:"),
        ],
        workshop_sample: Some("RBAC: access denied"),
        scenarios: &[
            "With the three authorization policies only the application's own calls are allowed",
        ],
        manifests: &[
            "services-a.yaml",
            "services-b.yaml",
            "services-c-v1.yaml",
            "services-c-v2.yaml",
            "service-a-gateway.yaml",
            "service-a-route.yaml",
            "ingress-to-service-a-auth-policy.yaml",
            "service-a-to-b-auth-policy.yaml",
            "service-a-to-c-auth-policy.yaml",
        ],
        checks: &[
            "checks::batch::Expectation::judge",
            "steps::security::call_from",
        ],
        requests: Requests::Statistical(&[BOTH_OF_BATCH]),
        upstream_facts: &[RBAC_DENIED, LEAST_REQUEST, PROPAGATION, KIND_NO_LB],
        negative: &[Negative::Case(
            "service-c allows service-b instead of service-a",
        )],
        deviations: &["D-istio-version", "D-ingress-address"],
    },
    Claim {
        id: "C22",
        chapter: "06-security",
        statement: "Kiali shows the legacy client's traffic without mTLS: the edge from unknown \
                    to service-a is not mutual TLS",
        workshop_words: &[quote(
            SECURITY,
            "And if you check the Kiali dashboard you could see the traffic from \"unknown\" is \
             unencrypted(without lock icon)",
        )],
        workshop_sample: None,
        scenarios: &["Kiali shows the legacy client's traffic without mTLS"],
        manifests: &[
            "services-a.yaml",
            "services-b.yaml",
            "services-c-v1.yaml",
            "services-c-v2.yaml",
            "service-a-gateway.yaml",
            "service-a-route.yaml",
            "legacy.yaml",
        ],
        checks: &[
            "checks::addons::graph_path",
            "checks::addons::is_plaintext",
            "steps::telemetry::graph_legacy_plaintext",
        ],
        requests: Requests::Statistical(&[Bound {
            step: "the legacy client has called http://service-a.istioinaction.svc.cluster.local",
            ..ONE_ANSWER
        }]),
        upstream_facts: &[KIALI_GRAPH, ADDON_SERVICES, SCRAPE_INTERVAL, LEGACY_IMAGE],
        negative: &[
            // Kiali does not run on the sandbox: the check itself, on graphs shaped from
            // kiali/kiali v2.29.0 graph/config/common/common.go and appender/security_policy.go.
            Negative::Check("checks::addons::c22_negative_legacy_edge_mtls_fails"),
            Negative::Check("checks::addons::c22_negative_no_security_data_fails"),
        ],
        deviations: &["D-istio-version", "D-legacy-image"],
    },
];

#[cfg(test)]
mod tests;
