//! The suite must be able to fail. Each case breaks one claim's manifest (or mechanism) in a
//! copy of the workshop's files and runs that claim's scenarios on the sandbox through
//! `HAPPY_MANIFESTS` — the override users have — expecting them to fail, as a claim (an
//! environment failure, such as a pod that never got ready, proves nothing about the check).
//! The sandbox cases instead break a premise of the suite in the sandbox itself through one of
//! its test-only knobs (e.g. the container runtime pulling the workshop's Docker schema-1
//! image, or Istio installed with another profile than the workshop's), and expect the
//! scenario that re-checks that premise, or states that claim, to fail. Each case has a control:
//! the very same run (same scenarios, a fresh sandbox, a copy of the manifests) without the
//! breakage, which must pass, so a failure cannot come from the harness or the sandbox; a
//! case's verdict counts only once its control has passed. `cargo test --test runs -- negative
//! C16` runs the cases naming C16.
//!
//! Every run happens in a child process of the `runs` binary (marked
//! by `HAPPY_NEGATIVE_CHILD`) that runs the suite exactly as `cargo test --test happy` does,
//! with its own report directory.
//!
//! The runs are independent, so up to `HAPPY_NEGATIVE_JOBS` of them go at once. Nothing is
//! shared between them: each child starts its own sandbox (API server on a random port, its own
//! temporary state directory with the kubeconfig and Envoy's and Prometheus's files; pod and
//! ClusterIP addresses are claimed machine-wide by `happy_sandbox::net::addr`, so concurrent
//! sandboxes never get the same one; every Envoy listens on its pod's address and runs with
//! `--disable-hot-restart`, so no shared memory), reads the manifests from its own copy and
//! writes its own report directory; on the sandbox nothing is downloaded into
//! `HAPPY_CACHE_DIR` when Envoy is installed; the children exec this binary directly, so no
//! cargo lock is involved. The assertion limits are the suite's own: a broken case fails when
//! its check does on any cluster — at its full limit, so a check that converged late would
//! still be seen passing, or as soon as its outcome can no longer change (the access-log entries
//! and counters of requests that have ended: `retry::eventually_or_decided`).

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Instant;

use happy_istio::report::{self, Summary};

pub(crate) const CHILD_VAR: &str = "HAPPY_NEGATIVE_CHILD";

/// The timeout table's telemetry limit, and the value the runs get here (see `start`).
const METRICS_LIMIT_VAR: &str = "HAPPY_TIMEOUT_METRICS";
const SANDBOX_METRICS_LIMIT: &str = "30s";

/// One deliberate breakage: in `file`, `from` (which must occur) becomes `to`.
struct Breakage {
    claim: &'static str,
    what: &'static str,
    file: &'static str,
    from: &'static str,
    to: &'static str,
}

const CASES: &[Breakage] = &[
    Breakage {
        claim: "C01",
        what: "service-a no longer calls service-c",
        file: "services-a.yaml",
        from: r#"value: "http://service-b,http://service-c""#,
        to: r#"value: "http://service-b""#,
    },
    Breakage {
        claim: "C02",
        // fake-service's UI_PATH (nicholasjackson/fake-service main.go, v0.26.x): the UI moves,
        // so /ui is answered by the request handler (JSON), not redirected to the page.
        what: "service-a serves its UI under /dashboard/, not /ui/",
        file: "services-a.yaml",
        from: "            - name: UPSTREAM_URIS\n",
        to: "            - name: UI_PATH\n              value: \"/dashboard/\"\n            - name: UPSTREAM_URIS\n",
    },
    Breakage {
        claim: "C03",
        what: "service-c v2 never fails",
        file: "services-c-v2.yaml",
        from: r#"value: "0.6""#,
        to: r#"value: "0""#,
    },
    Breakage {
        claim: "C04",
        // Upstream's image instead of the workshop's fork: upstream fake-service logs every
        // failed request at ERROR level ("Error handling request", error="Service error
        // automatically injected"; nicholasjackson/fake-service v0.26.2 logging/logger.go:113-128,
        // handlers/request_http.go:104-109), the fork does not; the sandbox runs either by
        // image (sandbox/src/runtime/program.rs).
        what: "service-c v2 runs upstream's nicholasjackson/fake-service image",
        file: "services-c-v2.yaml",
        from: "image: rinormaloku/happy-service:latest",
        to: "image: nicholasjackson/fake-service:v0.26.2",
    },
    Breakage {
        claim: "C06",
        // The pod label that opts a pod out of injection whatever its namespace says: istiod's
        // webhook decides with `injectRequired` (istio/istio pkg/kube/inject/inject.go), where
        // `sidecar.istio.io/inject: "false"` on the pod wins over `istio-injection=enabled`.
        what: "service-a's pods opt out of sidecar injection",
        file: "services-a.yaml",
        from: "      labels:\n        app: service-a\n        version: v1\n    spec:\n",
        to: "      labels:\n        app: service-a\n        version: v1\n        sidecar.istio.io/inject: \"false\"\n    spec:\n",
    },
    Breakage {
        claim: "C07",
        // `istioctl kube-inject` applies the same opt-out (istio/istio pkg/kube/inject/inject.go
        // `IntoObject`: `if !injectRequired(…)` → "Skipping injection because Deployment …
        // has sidecar injection disabled"): the Deployment comes back without a sidecar.
        what: "service-a's pod template opts out of sidecar injection",
        file: "services-a.yaml",
        from: "      labels:\n        app: service-a\n        version: v1\n    spec:\n",
        to: "      labels:\n        app: service-a\n        version: v1\n        sidecar.istio.io/inject: \"false\"\n    spec:\n",
    },
    Breakage {
        claim: "C08",
        what: "the gateway's VirtualService routes to service-b",
        file: "service-a-route.yaml",
        from: "host: service-a\n",
        to: "host: service-b\n",
    },
    Breakage {
        claim: "C09",
        // /ui still answers 301 to /ui/, but the route sends /ui/ to service-a's JSON: only a
        // check of the page the redirect leads to (not of the first answer) sees it.
        what: "the gateway's route rewrites /ui/ to /, so the redirect leads to JSON",
        file: "service-a-route.yaml",
        from: "  http:\n    - route:\n",
        to: "  http:\n    - match:\n        - uri:\n            prefix: /ui/\n      rewrite:\n        uri: /\n      route:\n        - destination:\n            host: service-a\n    - route:\n",
    },
    Breakage {
        claim: "C10",
        // Istio's Telemetry API, mesh-wide (the root namespace istio-system): the built-in
        // `envoy` file provider disabled. Without `providers` the entry would not turn the
        // demo profile's log off: istiod then falls back to mesh config's accessLogFile
        // (istio/istio@1.28.0 pilot/pkg/model/telemetry.go `mergeLogs`,
        // pilot/pkg/networking/core/accesslog.go `setHTTPAccessLog`; the sandbox models both,
        // sandbox/src/mesh/translate/telemetry_api.rs). The scenario applies
        // service-a-route.yaml; an object naming its namespace keeps it.
        what: "a Telemetry in istio-system turns the envoy access log off",
        file: "service-a-route.yaml",
        from: "host: service-a\n",
        to: "host: service-a\n---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: mesh-default\n  namespace: istio-system\nspec:\n  accessLogging:\n    - providers:\n        - name: envoy\n      disabled: true\n",
    },
    Breakage {
        claim: "C11",
        // Istio's Telemetry API, mesh-wide: every Prometheus metric disabled (an override
        // without `match` is ALL_METRICS; istiod then builds no stats filter,
        // pilot/pkg/model/telemetry.go `mergeMetrics`, `generateStatsConfig`, 1.28.0).
        what: "a Telemetry in istio-system turns the prometheus metrics off",
        file: "service-a-route.yaml",
        from: "host: service-a\n",
        to: "host: service-a\n---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: mesh-default\n  namespace: istio-system\nspec:\n  metrics:\n    - providers:\n        - name: prometheus\n      overrides:\n        - disabled: true\n",
    },
    Breakage {
        // C13's Prometheus scenario only: its Grafana sibling is skipped on the sandbox, and a
        // control run must not skip. (`claim` is used as the tag expression `@{claim}`.)
        claim: "C13 and @prometheus",
        what: "service-b fails every fifth request, so service-a's calls to it are not all 2xx",
        file: "services-b.yaml",
        from: "            - name: SERVICE_OWNER\n",
        to: "            - name: ERROR_RATE\n              value: \"0.2\"\n            - name: SERVICE_OWNER\n",
    },
    Breakage {
        claim: "C15",
        what: "the route sends service-c's traffic to v2",
        file: "service-c-route.yaml",
        from: "subset: version-v1",
        to: "subset: version-v2",
    },
    Breakage {
        claim: "C16",
        what: "the VirtualService has no mirror",
        file: "service-c-mirror.yaml",
        from: "      mirror:\n        host: service-c.istioinaction.svc.cluster.local\n        subset: version-v2\n      mirrorPercentage:\n        value: 100.0\n",
        to: "",
    },
    Breakage {
        claim: "C17",
        what: "a DestinationRule turns off TLS to service-c",
        file: "service-a-route.yaml",
        from: "host: service-a\n",
        to: "host: service-a\n---\napiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata:\n  name: service-c-plaintext\nspec:\n  host: service-c.istioinaction.svc.cluster.local\n  trafficPolicy:\n    tls:\n      mode: DISABLE\n",
    },
    Breakage {
        claim: "C18",
        // A workload-level policy (istio.io reference, PeerAuthentication: its `finance` example
        // selects `app: finance` with mode STRICT, "Connection is an mTLS tunnel (TLS with client
        // cert must be presented)"): service-a's sidecar refuses the legacy client's plaintext
        // call, as C19 shows for the namespace-wide policy.
        what: "a STRICT PeerAuthentication for service-a",
        file: "service-a-route.yaml",
        from: "host: service-a\n",
        to: "host: service-a\n---\napiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: service-a-strict\nspec:\n  selector:\n    matchLabels:\n      app: service-a\n  mtls:\n    mode: STRICT\n",
    },
    Breakage {
        claim: "C19",
        what: "PERMISSIVE instead of STRICT",
        file: "peer-auth-strict.yaml",
        from: "mode: STRICT",
        to: "mode: PERMISSIVE",
    },
    Breakage {
        claim: "C20",
        what: "an allow-nothing AuthorizationPolicy in istioinaction",
        file: "service-a-route.yaml",
        from: "host: service-a\n",
        to: "host: service-a\n---\napiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata:\n  name: allow-nothing\nspec: {}\n",
    },
    Breakage {
        claim: "C21",
        what: "service-c allows service-b instead of service-a",
        file: "service-a-to-c-auth-policy.yaml",
        from: "cluster.local/ns/istioinaction/sa/service-a",
        to: "cluster.local/ns/istioinaction/sa/service-b",
    },
];

/// Cases whose check can only fail at its limit, because what it awaits converges with no
/// moment after which it is final (C19: a PeerAuthentication still reaching service-a's
/// sidecar; the assertion limit, 30 s, plus the run): the longest of the group.
const WAITS_OUT_ITS_LIMIT: &[&str] = &["C19"];

/// One deliberate breakage of the sandbox: the scenarios of the tag expression `tags` run with
/// `env` set (a test-only knob of happy-sandbox). `tag` names the case: a deviation's id
/// (whose re-check, `@deviation and @<id>`, must fail) or a claim's.
struct SandboxBreakage {
    tag: &'static str,
    tags: &'static str,
    what: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const SANDBOX_CASES: &[SandboxBreakage] = &[
    SandboxBreakage {
        tag: "D-legacy-image",
        tags: "@deviation and @D-legacy-image",
        what: "the runtime pulls the workshop's schema-1 image, so the deviation is not needed",
        // happy-sandbox's test-only knob (sandbox/src/runtime/pull.rs, PULL_SCHEMA1_VAR).
        env: &[("HAPPY_SANDBOX_PULL_SCHEMA1", "1")],
    },
    SandboxBreakage {
        tag: "C05",
        // The egress scenario only: its sibling (istiod and the ingress gateway) holds under
        // the default profile too.
        tags: "@C05 and @egress-gateway",
        // What a reader who left out `--set profile=demo` gets: istioctl's default profile
        // has no egress gateway (istio/istio@1.28.0 manifests/profiles/default.yaml lines
        // 19-21, `enabled: false`; demo.yaml lines 5-7 turn it on). happy-sandbox's test-only
        // knob (sandbox/src/mesh/install.rs, ISTIO_PROFILE_VAR) installs that instead.
        what: "Istio installed with the default profile, which has no egress gateway",
        env: &[("HAPPY_SANDBOX_ISTIO_PROFILE", "default")],
    },
    SandboxBreakage {
        tag: "C12",
        // The scenario the sandbox can run: it has Prometheus, not Grafana or Kiali.
        tags: "@C12 and @prometheus",
        // What a reader who applied one file of samples/addons instead of the directory gets
        // (`kubectl apply -f samples/addons/kiali.yaml`): no Prometheus Deployment.
        // happy-sandbox's test-only knob (sandbox/src/sandbox.rs, ADDON_FILES_VAR).
        what: "only kiali.yaml of samples/addons applied, so there is no Prometheus",
        env: &[("HAPPY_SANDBOX_ADDON_FILES", "kiali.yaml")],
    },
];

/// How many runs at once, when `HAPPY_NEGATIVE_JOBS` is unset: this many per core. A run is
/// mostly waiting (a broken case waits out its check's limit, 30 s or more, polling), so its
/// CPU use averages a fraction of a core (measured on 2 cores: 12 cases and the control one at
/// a time, 138 CPU-seconds over 457 s of wall). Not more: with 12 sandboxes at once (about ten
/// Envoys each) on a machine whose other users also run Envoys, sidecars aborted at start
/// (SIGABRT) and controls failed — plausibly the per-user limit of 128 inotify instances
/// (/proc/sys/fs/inotify/max_user_instances) that every Envoy draws on; not confirmed.
const JOBS_PER_CORE: usize = 3;

/// The variable that overrides how many runs go at once.
const JOBS_VAR: &str = "HAPPY_NEGATIVE_JOBS";

/// What one child run checks.
enum Kind<'a> {
    /// The tag expression's scenarios on the unbroken manifests (and sandbox): all must pass.
    Control(String),
    /// A claim's scenarios on a broken copy of the manifests: they must fail.
    Manifest(&'a Breakage),
    /// A deviation's re-check, or a claim's scenario, on a sandbox broken through its knob: it
    /// must fail.
    Sandbox(&'a SandboxBreakage),
}

struct Run<'a> {
    name: String,
    kind: Kind<'a>,
    /// For a case: the index of its control run, whose pass its verdict needs.
    control: Option<usize>,
}

/// Runs the cases whose names contain one of `filter` (all when it is empty).
pub(crate) fn main(filter: &[String]) -> ExitCode {
    if let Some(unknown) = WAITS_OUT_ITS_LIMIT
        .iter()
        .find(|claim| !CASES.iter().any(|c| c.claim == **claim))
    {
        println!("FAIL WAITS_OUT_ITS_LIMIT names {unknown:?}, which has no case in CASES");
        return ExitCode::FAILURE;
    }
    let selected = |n: &str| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str()));
    let mut runs: Vec<Run> = CASES
        .iter()
        .map(|c| Run {
            name: format!("{} — {}", c.claim, c.what),
            kind: Kind::Manifest(c),
            control: None,
        })
        .chain(SANDBOX_CASES.iter().map(|c| Run {
            name: format!("{} — {}", c.tag, c.what),
            kind: Kind::Sandbox(c),
            control: None,
        }))
        .filter(|r| selected(&r.name))
        .collect();
    if runs.is_empty() {
        println!("negative tests: none selected");
        return ExitCode::SUCCESS;
    }
    // The cases that can only fail at their check's full limit go first (a stable sort keeps
    // the others in claim order): started last, one of them would run on alone at the end.
    runs.sort_by_key(|r| match &r.kind {
        Kind::Manifest(c) => !WAITS_OUT_ITS_LIMIT.contains(&c.claim),
        _ => true,
    });
    let cases = runs.len();
    // Each case's control is the very same run (its tag expression, a fresh sandbox, a copy of
    // the manifests) without the breakage, so the pair differs in the breakage alone; cases of
    // the same scenarios share one. The broken cases go first in the queue: they are the long
    // ones (each waits out its check's limit), controls of passing scenarios are short.
    let mut controls: Vec<String> = Vec::new();
    for run in runs.iter_mut() {
        let tags = match &run.kind {
            Kind::Manifest(c) => format!("@{}", c.claim),
            Kind::Sandbox(c) => recheck_tags(c),
            Kind::Control(_) => continue,
        };
        let at = match controls.iter().position(|t| *t == tags) {
            Some(at) => at,
            None => {
                controls.push(tags);
                controls.len() - 1
            }
        };
        run.control = Some(cases + at);
    }
    runs.extend(controls.into_iter().map(|tags| Run {
        name: format!("control {tags}"),
        kind: Kind::Control(tags),
        control: None,
    }));
    let jobs = match jobs(std::env::var(JOBS_VAR).ok().as_deref(), runs.len()) {
        Ok(n) => n,
        Err(e) => {
            println!("FAIL {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            println!("FAIL cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    println!(
        "negative tests: {cases} case(s) and {} control run(s), {jobs} at a time ({JOBS_VAR})",
        runs.len() - cases
    );
    let outcome = runtime.block_on(run_all(&runs, jobs));
    let took = started.elapsed().as_secs_f64();
    match outcome {
        Finished::AllRan {
            missed,
            inconclusive,
            controls_failed,
        } => {
            println!(
                "\nnegative tests: {cases} case(s): {} caught their breakage, {missed} did not, \
                 {inconclusive} inconclusive; {controls_failed} control run(s) failed; {took:.1}s",
                cases - missed - inconclusive
            );
            if missed == 0 && inconclusive == 0 && controls_failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Finished::Signal(code) => {
            println!("\nnegative tests: stopped by a signal after {took:.1}s");
            ExitCode::from(code)
        }
    }
}

/// How many runs at once: `HAPPY_NEGATIVE_JOBS` when set (a whole number ≥ 1), else
/// [`JOBS_PER_CORE`] per core the machine offers; never more than there are runs.
fn jobs(var: Option<&str>, runs: usize) -> Result<usize, String> {
    let wanted = match var.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(format!(
                    "{JOBS_VAR}={v:?}: expected a whole number of runs at once, 1 or more"
                ));
            }
        },
        None => std::thread::available_parallelism().map_or(1, |n| n.get()) * JOBS_PER_CORE,
    };
    Ok(wanted.min(runs).max(1))
}

/// How the whole set of runs ended.
enum Finished {
    /// Every run ended: `missed` cases did not fail as they must; `inconclusive` cases prove
    /// nothing because their control failed (`controls_failed` of those).
    AllRan {
        missed: usize,
        inconclusive: usize,
        controls_failed: usize,
    },
    /// SIGINT, SIGTERM or SIGHUP: every run was stopped; the exit code to end with.
    Signal(u8),
}

/// One run's end, as the child reported it.
struct Ended {
    index: usize,
    took: f64,
    verdict: Result<String, String>,
}

/// What is known of a run's verdict.
#[derive(Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Passed,
    Failed,
}

/// Run every run, at most `jobs` at once, printing each one's result block as it ends; a
/// case's verdict is counted once its control has passed (a case whose control failed is
/// stopped, or counted inconclusive if it had ended).
/// Each child is its own process group, so a Ctrl-C at the terminal reaches this process only;
/// it then passes SIGTERM to every child (which tears its sandbox down, as the suite does on
/// SIGTERM) and waits for them, so nothing is left running.
async fn run_all(runs: &[Run<'_>], jobs: usize) -> Finished {
    use tokio::signal::unix::{SignalKind, signal};
    let mut signals = Vec::new();
    for (kind, code) in [
        (SignalKind::interrupt(), 130u8),
        (SignalKind::terminate(), 143),
        (SignalKind::hangup(), 129),
    ] {
        match signal(kind) {
            Ok(s) => signals.push((s, code)),
            Err(e) => println!("warning: cannot catch a signal ({e}); Ctrl-C ends this at once"),
        }
    }
    let caught = async {
        if signals.is_empty() {
            return std::future::pending().await;
        }
        let waits = signals
            .iter_mut()
            .map(|(s, code)| Box::pin(async move { s.recv().await.map(|_| *code) }));
        futures::future::select_all(waits).await.0
    };
    tokio::pin!(caught);

    let total = runs.len();
    let mut queue = (0..total).collect::<std::collections::VecDeque<_>>();
    let mut running: Vec<RunningChild> = Vec::new();
    let mut state = vec![State::Waiting; total];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Ended>();
    let mut done = 0;
    let mut signalled: Option<u8> = None;
    while !running.is_empty() || (signalled.is_none() && !queue.is_empty()) {
        while signalled.is_none() && running.len() < jobs {
            let Some(index) = queue.pop_front() else {
                break;
            };
            let run = &runs[index];
            println!("[start {}/{total}] {}", index + 1, run.name);
            let started = Instant::now();
            match start(run) {
                Ok(child) => {
                    running.push(RunningChild {
                        index,
                        pid: child.pid,
                    });
                    let tx = tx.clone();
                    // The task owns the child and its directory; the verdict comes back here.
                    tokio::spawn(async move {
                        let verdict = child.finish().await;
                        let _ = tx.send(Ended {
                            index,
                            took: started.elapsed().as_secs_f64(),
                            verdict,
                        });
                    });
                }
                Err(e) => {
                    running.push(RunningChild { index, pid: None });
                    let _ = tx.send(Ended {
                        index,
                        took: 0.0,
                        verdict: Err(e),
                    });
                }
            }
        }
        let ended = tokio::select! {
            code = &mut caught, if signalled.is_none() => {
                println!("negative tests: signal caught; stopping {} run(s)", running.len());
                terminate(running.iter());
                queue.clear();
                signalled = Some(code.unwrap_or(130));
                continue;
            }
            ended = rx.recv() => match ended {
                Some(e) => e,
                None => break,
            },
        };
        running.retain(|r| r.index != ended.index);
        done += 1;
        let run = &runs[ended.index];
        if signalled.is_some() {
            println!("stopped {} after {:.1}s", run.name, ended.took);
            continue;
        }
        if run.control.map(|c| state[c]) == Some(State::Failed) {
            println!(
                "inconclusive [{done}/{total}] {} after {:.1}s: its control run failed",
                run.name, ended.took
            );
            state[ended.index] = State::Failed;
            continue;
        }
        print_block(&run.name, &ended, done, total);
        state[ended.index] = if ended.verdict.is_ok() {
            State::Passed
        } else {
            State::Failed
        };
        match run.control.map(|c| state[c]) {
            Some(State::Waiting) => {
                println!("     (this verdict counts once its control run has passed)")
            }
            Some(State::Failed) => println!("     (inconclusive: its control run failed)"),
            Some(State::Passed) | None => {}
        }
        if matches!(run.kind, Kind::Control(_)) && ended.verdict.is_err() {
            // Its cases can prove nothing: stop those still going, skip those not started.
            let mine = |i: usize| runs[i].control == Some(ended.index);
            queue.retain(|&i| !mine(i));
            let stopping: Vec<&RunningChild> = running.iter().filter(|r| mine(r.index)).collect();
            if !stopping.is_empty() {
                println!(
                    "     stopping its {} case(s) still running: their verdicts cannot count",
                    stopping.len()
                );
            }
            terminate(stopping.into_iter());
        }
    }
    if let Some(code) = signalled {
        return Finished::Signal(code);
    }
    let (mut missed, mut inconclusive, mut controls_failed) = (0, 0, 0);
    for (i, run) in runs.iter().enumerate() {
        match (state[i], run.control.map(|c| state[c])) {
            (State::Failed, None) => controls_failed += 1,
            (State::Passed, None) => {}
            // Stopped, or never started, because its control failed; or its control failed
            // after it ended: it proves nothing either way.
            (_, Some(State::Failed)) | (State::Waiting, _) => inconclusive += 1,
            (State::Failed, Some(_)) => missed += 1,
            (State::Passed, Some(_)) => {}
        }
    }
    Finished::AllRan {
        missed,
        inconclusive,
        controls_failed,
    }
}

/// A child still running, by its process id (a process group of its own).
struct RunningChild {
    index: usize,
    pid: Option<u32>,
}

/// SIGTERM to each child: each ends its run as on Ctrl-C, tearing its sandbox down.
fn terminate<'a>(running: impl Iterator<Item = &'a RunningChild>) {
    for pid in running.filter_map(|r| r.pid) {
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        // SAFETY: kill(2) on a child of this process that has not been reaped yet (its task
        // reaps it only after it exits), so the pid cannot belong to another process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Print one run's result block: a line, and the failure's detail (the child's output) under it.
fn print_block(name: &str, ended: &Ended, done: usize, total: usize) {
    match &ended.verdict {
        Ok(verdict) => println!(
            "ok   [{done}/{total}] {name} in {:.1}s: {verdict}",
            ended.took
        ),
        Err(e) => {
            let mut lines = e.lines();
            println!(
                "FAIL [{done}/{total}] {name} in {:.1}s: {}",
                ended.took,
                lines.next().unwrap_or_default()
            );
            for line in lines {
                println!("     | {line}");
            }
        }
    }
}

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// Copy the workshop's manifests into `dir`, applying `breakage` if given.
fn copy_manifests(dir: &Path, breakage: Option<&Breakage>) -> Result<(), String> {
    let source = manifests_dir();
    let entries =
        std::fs::read_dir(&source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let mut broken = false;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let mut text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Some(b) = breakage.filter(|b| b.file == name) {
            if text.matches(b.from).count() != 1 {
                return Err(format!(
                    "{name} must contain {:?} exactly once for this breakage; the manifest changed",
                    b.from
                ));
            }
            text = text.replace(b.from, b.to);
            broken = true;
        }
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
    }
    match (breakage, broken) {
        (Some(b), false) => Err(format!("{} is not among the manifests", b.file)),
        _ => Ok(()),
    }
}

/// What a child's verdict is judged on, once it has ended.
enum Judge {
    /// Every one of the control's scenarios passed (at least one), none skipped or not run.
    Control { tags: String },
    /// The scenarios failed, each as a claim; `broken` says what was broken.
    Broken { broken: String },
}

/// A started child: its process, its own directory (manifests and reports), how to judge it.
struct Started {
    child: tokio::process::Child,
    pid: Option<u32>,
    dir: tempfile::TempDir,
    judge: Judge,
}

/// Prepare a run's directory and start its child: the suite on the sandbox, the run's tag
/// expression, the manifests in its directory, reports under it.
fn start(run: &Run) -> Result<Started, String> {
    let dir = tempfile::Builder::new()
        .prefix("happy-negative-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let (tags, env, judge): (String, &[(&str, &str)], Judge) = match &run.kind {
        Kind::Control(tags) => {
            copy_manifests(dir.path(), None)?;
            (tags.clone(), &[], Judge::Control { tags: tags.clone() })
        }
        Kind::Manifest(case) => {
            copy_manifests(dir.path(), Some(case))?;
            (
                format!("@{}", case.claim),
                &[],
                Judge::Broken {
                    broken: format!("with {} broken", case.file),
                },
            )
        }
        Kind::Sandbox(case) => {
            copy_manifests(dir.path(), None)?;
            let knobs: Vec<String> = case.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (
                recheck_tags(case),
                case.env,
                Judge::Broken {
                    broken: format!("with {}", knobs.join(" ")),
                },
            )
        }
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(exe);
    // The limit on waits for telemetry, for case and control alike, unless the user sets one:
    // the suite's default (90 s) allows for Istio's 15 s scrapes and a cluster under load, but
    // the sandbox's Prometheus scrapes every second (HAPPY_SANDBOX_SCRAPE_INTERVAL) and its
    // Envoys flush their access logs every second as Istio's do (sandbox/src/mesh/proxy.rs),
    // so a control that passes does so within a few seconds; a case whose series never
    // appears in Prometheus fails at the limit.
    if std::env::var_os(METRICS_LIMIT_VAR).is_none() {
        cmd.env(METRICS_LIMIT_VAR, SANDBOX_METRICS_LIMIT);
    }
    cmd.args(["--tags", &tags])
        .env(CHILD_VAR, "1")
        .env("HAPPY_CLUSTER", "sandbox")
        // The child's reports are read by this test, not by a person: no page.
        .env("HAPPY_DOCS", "off")
        .env("HAPPY_MANIFESTS", dir.path())
        .env("HAPPY_REPORT_DIR", dir.path().join("report"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at the terminal reaches this process, which stops
        // the children with SIGTERM one by one (see `run_all`), not everything at once.
        .process_group(0)
        .kill_on_drop(true);
    tie_to_this_process(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run the suite: {e}"))?;
    Ok(Started {
        pid: child.id(),
        child,
        dir,
        judge,
    })
}

/// The child gets SIGTERM when this process dies, however it dies (Linux's parent-death
/// signal; prctl(2) PR_SET_PDEATHSIG), so it tears its sandbox down instead of running on.
/// The signal follows the thread that spawned the child: this runtime has only the main thread.
fn tie_to_this_process(cmd: &mut tokio::process::Command) {
    // SAFETY: getpid is async-signal-safe; it is read before the fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe calls (prctl, getppid), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: nobody would signal us then.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the negative tests' runner has ended",
                ));
            }
            Ok(())
        });
    }
}

impl Started {
    /// Wait for the child and judge its run.
    async fn finish(self) -> Result<String, String> {
        let out = self
            .child
            .wait_with_output()
            .await
            .map_err(|e| format!("cannot wait for the suite: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let output = format!("{stdout}\n{stderr}");
        let summary = stdout
            .lines()
            .rev()
            .find_map(Summary::parse_line)
            .ok_or_else(|| format!("the run printed no summary line\n{output}"))?;
        match self.judge {
            Judge::Control { tags } => {
                if summary.failed != 0
                    || summary.skipped != 0
                    || summary.not_run != 0
                    || summary.passed == 0
                {
                    return Err(format!(
                        "the control run on the unbroken manifests did not pass ({summary}); \
                         nothing can be concluded\n{output}"
                    ));
                }
                let report = self.dir.path().join("report").join(report::RUN_FILE);
                control_evidence(&report, &tags).map_err(|e| format!("{e}\n{output}"))?;
                Ok(format!("{tags} on the unbroken manifests ({summary})"))
            }
            Judge::Broken { broken } => {
                if summary.failed == 0 {
                    return Err(format!(
                        "the scenario did not fail {broken} ({summary})\n{output}"
                    ));
                }
                let report = self.dir.path().join("report").join(report::RUN_FILE);
                let failures = claim_failures(&report)?;
                if let Some(other) = failures
                    .iter()
                    .find(|f| f.class != report::FailureClass::Claim)
                {
                    // The check must be what caught the breakage: an environment failure
                    // (a pod not ready, a timeout of the harness) proves nothing about it.
                    return Err(format!(
                        "{broken} the scenario failed, but not as a claim: {} failed as {}: {}\n{output}",
                        other.scenario,
                        other.class.as_str(),
                        other.message
                    ));
                }
                Ok(format!(
                    "{broken} it failed as a claim ({summary}): {}",
                    failures
                        .first()
                        .map(|f| first_line(&f.message))
                        .unwrap_or_default()
                ))
            }
        }
    }
}

/// What a control run's evidence must show, for the claims whose controls run these scenarios:
/// the workshop's own samples show the same (C01's chain from service-a, C11's series with
/// response_code="500", C21's denial).
const EVIDENCE_SHOWN: &[(&str, &[&str])] = &[
    (
        "@C01",
        &[
            "\"name\": \"service-a\"",
            "http://service-c",
            "HTTP/1.1 200 OK",
        ],
    ),
    ("@C06", &["2/2     Running"]),
    ("@C10", &["\"GET / HTTP/1.1\" 500"]),
    ("@C11", &["istio_requests_total{", "response_code=\"500\""]),
    ("@C19", &["command terminated with exit code 56"]),
    ("@C21", &["RBAC: access denied", "403"]),
];

/// A passing control's evidence (`run.json`): every scenario that passed recorded some, and
/// the texts [`EVIDENCE_SHOWN`] names for its tags are there. The evidence goes from the steps
/// through cucumber's logs to the report: this is where a real run proves it arrives.
fn control_evidence(path: &Path, tags: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the run's report {}: {e}", path.display()))?;
    let info: report::RunInfo = serde_json::from_str(&text)
        .map_err(|e| format!("cannot parse the run's report {}: {e}", path.display()))?;
    for passed in &info.passed {
        if !info.evidence.iter().any(|e| &e.scenario == passed) {
            return Err(format!(
                "{}: the scenario {passed} passed but recorded no evidence",
                path.display()
            ));
        }
    }
    let all: Vec<&str> = info
        .evidence
        .iter()
        .flat_map(|s| &s.steps)
        .flat_map(|s| &s.evidence)
        .map(|e| e.text.as_str())
        .collect();
    for (claim, texts) in EVIDENCE_SHOWN {
        if !tags.split_whitespace().any(|t| t == *claim) {
            continue;
        }
        for wanted in *texts {
            if !all.iter().any(|t| t.contains(wanted)) {
                return Err(format!(
                    "{}: the control {tags} recorded no evidence showing {wanted:?}",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// The failures recorded in a run's `run.json`; at least one, since the run failed.
fn claim_failures(path: &Path) -> Result<Vec<report::FailureRecord>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the run's report {}: {e}", path.display()))?;
    let info: report::RunInfo = serde_json::from_str(&text)
        .map_err(|e| format!("cannot parse the run's report {}: {e}", path.display()))?;
    if info.failures.is_empty() {
        return Err(format!(
            "{} records no failure although the run failed",
            path.display()
        ));
    }
    Ok(info.failures)
}

/// A message's first line, cut to a readable length.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    match line.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// The tag expression of a sandbox case's scenarios.
fn recheck_tags(case: &SandboxBreakage) -> String {
    case.tags.to_string()
}
