//! Steps about security: what crosses the wire (packet captures), the legacy client without a
//! sidecar, STRICT mTLS, and authorization policies.

use std::time::Instant;

use cucumber::{given, then, when};
use happy_istio::checks::batch::{Call, CallsShow, calls_until_answered, one_answer_batch};
use happy_istio::checks::{capture, metrics};
use happy_istio::cluster::ExecOutput;
use happy_istio::probes::CurlOutcome;
use happy_istio::retry::{eventually, settled};

use super::parameters::{Name, Port, RequestPath, Url};
use super::readings::observations_count_from;
use super::world::{
    Curl, Env, Failure, HappyWorld, LEGACY, NAMESPACE, Route, SIDECAR, Step, Target, fail, pod_name,
};

/// Packets a capture waits for: enough for a TCP handshake, a request and its response.
const CAPTURE_PACKETS: &str = "20";

/// The suite's capture: tcpdump inside the sidecar (privileged, hence sudo) on the pod's
/// interface — not `any`, whose loopback leg carries the sidecar's plaintext to the app — for
/// `-c 20` packets on `port`, and only to and from `host` when given.
///
/// The workshop runs `sudo tcpdump -l --immediate-mode -vv -s 0 '<payload-length filter>'` and
/// reads it by eye until interrupted; the suite needs a capture that ends by itself and that it
/// can read: `-c` bounds it, `-nn -A` prints addresses and payloads as text, `tcp port 8080`
/// keeps the application's port. For C18, `host <legacy pod IP>` keeps only the legacy client's
/// connection: on service-a's eth0 port 8080 also matches service-a's own outbound mTLS to the
/// service-b and service-c pods (endpoints are podIP:8080), which can fill the 20 packets before
/// the plaintext response comes. tcpdump's stderr is shown when it fails, so a capture that
/// cannot run (no capability, no tcpdump) says why.
fn tcpdump_command(port: u16, host: Option<&str>) -> Vec<String> {
    let mut filter = format!("tcp port {port}");
    if let Some(h) = host {
        filter.push_str(&format!(" and host {h}"));
    }
    [
        "sudo",
        "tcpdump",
        "-l",
        "-nn",
        "-A",
        "-s",
        "0",
        "-i",
        "eth0",
        "-c",
        CAPTURE_PACKETS,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(filter.split(' ').map(str::to_string))
    .collect()
}

/// The workshop's capture (README, chapter "Security"), as written after `kubectl -n
/// istioinaction exec deploy/service-a -c istio-proxy --`: every packet with a TCP payload,
/// printed with -vv, until stopped.
pub(crate) const WORKSHOP_CAPTURE: [&str; 8] = [
    "sudo",
    "tcpdump",
    "-l",
    "--immediate-mode",
    "-vv",
    "-s",
    "0",
    "(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
];

/// The workshop's capture, run as written (D-capture-command switched off) in service-a's
/// sidecar while `traffic` runs again and again, until its output satisfies `enough` or the
/// assertion limit passes; then the exec is closed as the reader's Ctrl-C closes it, and the
/// output so far is what the claim is judged on.
async fn workshop_capture_while<F, Fut>(
    env: &Env,
    mut traffic: F,
    enough: impl Fn(&str) -> bool,
) -> Result<String, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let pod = env.ready_pod(NAMESPACE, "service-a").await?;
    let name = pod_name(&pod);
    let running = env
        .cluster
        .exec_running(NAMESPACE, &name, SIDECAR, &WORKSHOP_CAPTURE)
        .await?;
    let deadline = Instant::now() + env.timeouts.assertion;
    loop {
        if let Some(exit) = running.exit() {
            let out = running.close();
            fail!(
                environment,
                "the workshop's tcpdump in service-a's {SIDECAR} ended by itself ({exit:?}): {}",
                out.stderr.trim()
            );
        }
        if enough(&running.stdout()) || Instant::now() > deadline {
            return Ok(running.close().stdout);
        }
        traffic().await;
    }
}

/// Run a capture in `deployment`'s sidecar while `traffic` runs again and again, until the
/// capture has its packets; bounded by the assertion limit.
async fn capture_while<F, Fut>(
    env: &Env,
    deployment: &str,
    port: u16,
    host: Option<&str>,
    mut traffic: F,
) -> Result<String, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let pod = env.ready_pod(NAMESPACE, deployment).await?;
    let name = pod_name(&pod);
    let command = tcpdump_command(port, host);
    let argv: Vec<&str> = command.iter().map(String::as_str).collect();
    let capture = env.cluster.exec(NAMESPACE, &name, SIDECAR, &argv);
    tokio::pin!(capture);
    let deadline = Instant::now() + env.timeouts.assertion;
    loop {
        tokio::select! {
            out = &mut capture => {
                let out: ExecOutput = out?;
                if out.exit_code != 0 {
                    fail!(environment, "tcpdump in {deployment}'s {SIDECAR} exited {}: {}", out.exit_code, out.stderr.trim());
                }
                return Ok(out.stdout);
            }
            _ = traffic() => {
                if Instant::now() > deadline {
                    fail!(environment, "tcpdump in {deployment}'s {SIDECAR} saw fewer than {CAPTURE_PACKETS} packets matching {:?} within {:?}", command.iter().skip(11).cloned().collect::<Vec<_>>().join(" "), env.timeouts.assertion);
                }
            }
        }
    }
}

/// What one capture shows, for deciding when captures agree.
#[derive(Debug, PartialEq)]
enum CaptureShows {
    NoPayload,
    Plaintext,
    OnlyCiphertext,
}

/// In words, as a failure message lists what captures showed.
impl std::fmt::Display for CaptureShows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaptureShows::NoPayload => "no payload",
            CaptureShows::Plaintext => "plaintext HTTP",
            CaptureShows::OnlyCiphertext => "only ciphertext",
        })
    }
}

fn capture_shows(out: &str) -> CaptureShows {
    if capture::packets_with_payload(out) == 0 {
        CaptureShows::NoPayload
    } else if capture::plaintext_http(out).is_some() {
        CaptureShows::Plaintext
    } else {
        CaptureShows::OnlyCiphertext
    }
}

#[when(
    expr = "I capture the traffic into {name}'s pod on port {port} while requesting {path} through the ingress gateway"
)]
async fn capture_ingress(
    world: &mut HappyWorld,
    deployment: Name,
    port: Port,
    path: RequestPath,
) -> Step {
    let (deployment, port, path) = (deployment.0, port.0, path.0);
    let env = world.env();
    let target = Target {
        route: Route::IngressGateway,
        path,
        browser: false,
    };
    let (env_ref, target_ref, deployment_ref) = (&env, &target, deployment.as_str());
    // One observation: the captured pod's sidecar metrics, then a capture while requesting.
    // Captures repeat until `consecutive` of them in a row, each begun after the last change
    // has had time to reach the sidecars, show the same thing (plaintext or not): one capture
    // taken while a DestinationRule is still on its way would judge the old configuration.
    let observe = || async move {
        let before = env_ref.sidecar_metrics(deployment_ref).await?;
        let traffic = || async move {
            let _ = target_ref.send(env_ref).await;
        };
        let out = if super::verbatim::capture_verbatim() {
            // As many packets on the application port as the suite's own capture takes.
            let wanted: usize = CAPTURE_PACKETS.parse().unwrap_or(20);
            workshop_capture_while(env_ref, traffic, |out| {
                capture::packets_on_port(out, port) >= wanted
            })
            .await?
        } else {
            capture_while(env_ref, deployment_ref, port, None, traffic).await?
        };
        Ok::<_, Failure>((before, out))
    };
    let streak = settled(
        &format!("captures into {deployment}'s pod to agree"),
        &env.timeouts.convergence(),
        observations_count_from(&env),
        observe,
        |(_, out)| capture_shows(out),
    )
    .await?;
    let first_baseline = streak.first().map(|(before, _)| before.clone());
    world.capture = streak.into_iter().last().map(|(_, out)| out);
    world.capture_baseline = first_baseline.map(|before| (deployment, before));
    Ok(())
}

#[when(
    expr = "I capture the traffic into {name}'s pod on port {port} while the legacy client calls {url}"
)]
async fn capture_legacy(world: &mut HappyWorld, deployment: Name, port: Port, url: Url) -> Step {
    let (deployment, port, url) = (deployment.0, port.0, url.0);
    let env = world.env();
    let legacy_ip = legacy_pod_ip(&env).await?;
    let name = format!("\"name\": \"{deployment}\"");
    let (env_ref, url_ref, deployment_ref, ip_ref, name_ref) = (
        &env,
        url.as_str(),
        deployment.as_str(),
        legacy_ip.as_str(),
        name.as_str(),
    );
    // One observation: a capture while the legacy client calls, with every call it made.
    // Captures repeat until `consecutive` in a row, each begun after the last change has had
    // time to reach the sidecars, agree on whether service-a's plaintext response is there and
    // every call completed: a PeerAuthentication still being removed resets calls for a while.
    let observe = || async move {
        let calls = std::cell::RefCell::new(Vec::new());
        let calls_ref = &calls;
        let traffic = || async move {
            let (ns, pod, container) = LEGACY;
            if let Ok(call) = env_ref.curl_from_pod(ns, pod, container, url_ref).await {
                calls_ref.borrow_mut().push(call);
            }
        };
        let out = if super::verbatim::capture_verbatim() {
            workshop_capture_while(env_ref, traffic, |out| {
                capture::plaintext_http(out).is_some() && out.contains(name_ref)
            })
            .await?
        } else {
            capture_while(env_ref, deployment_ref, port, Some(ip_ref), traffic).await?
        };
        Ok::<_, Failure>((out, calls.into_inner()))
    };
    let streak = settled(
        &format!("captures into {deployment}'s pod to agree"),
        &env.timeouts.convergence(),
        observations_count_from(&env),
        observe,
        |(out, calls)| {
            let plaintext = capture::plaintext_http(out).is_some() && out.contains(name_ref);
            let completed = calls
                .iter()
                .all(|c| c.result.outcome == CurlOutcome::Completed);
            format!(
                "{} in the capture, {}",
                if plaintext {
                    format!("{deployment_ref}'s response in plaintext")
                } else {
                    format!("no plaintext response from {deployment_ref}")
                },
                if completed {
                    "every call completed"
                } else {
                    "a call did not complete"
                }
            )
        },
    )
    .await?;
    let calls: Vec<Curl> = streak.iter().flat_map(|(_, calls)| calls.clone()).collect();
    world.capture = streak.into_iter().last().map(|(out, _)| out);
    // Every call must reach service-a's application: a reset or refusal here means the
    // plaintext path is closed, whatever the status of the other calls.
    if let Some(call) = calls
        .iter()
        .find(|c| c.result.outcome != CurlOutcome::Completed)
    {
        fail!(
            "a legacy client's call did not complete: {}",
            call.describe()
        );
    }
    // "The legacy client's call answers 200" converges like every verdict: batches of calls
    // that agree `consecutive` times in a row on a 200 (a 200 among the captured calls is one
    // observation, not a verdict; and a short capture may hold none: service-a answers 500
    // whenever its call to service-c meets v2).
    world.last_curl = Some(calls_answer(&env, LEGACY, url_ref, 200).await?);
    Ok(())
}

/// The legacy client pod's IP, for the capture's filter.
async fn legacy_pod_ip(env: &Env) -> Result<String, Failure> {
    let (ns, pod, _) = LEGACY;
    let pods = env.cluster.pods(ns, "").await?;
    pods.iter()
        .find(|p| p.metadata.name.as_deref() == Some(pod))
        .and_then(|p| p.status.as_ref()?.pod_ip.clone())
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| Failure::environment(format!("pod {ns}/{pod} has no IP (is it running?)")))
}

/// Whether a call was let through and answered `status`.
fn call_outcome(call: &Curl, status: u16) -> Call {
    if !let_through(call) {
        Call::Refused
    } else if call.result.http_code == Some(status) {
        Call::Answered
    } else {
        Call::Other
    }
}

/// Converge on calls to `url` made by `make_call` answering `status` (a 2xx through service-a
/// or to service-c, which answer 500 whenever service-c v2 is met): batches of calls
/// ([`calls_until_answered`]: until one answers, one is refused, or [`one_answer_batch`] were
/// let through without an answer), each begun once the suite's last change has reached the
/// sidecars, until `consecutive` batches in a row agree; the call passes only if they agree
/// that it answers. A single 200 seen before a denying policy arrives is followed by refused
/// batches and decides nothing; a working path misses a whole batch with probability below
/// 1e-9 (the bound is stated at [`one_answer_batch`]). Returns the answering call of the last
/// batch.
async fn converge_on_answer<F, Fut>(
    env: &Env,
    what: &str,
    status: u16,
    make_call: F,
) -> Result<Curl, Failure>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Curl, Failure>>,
{
    let make_call = &make_call;
    let streak = settled(
        what,
        &env.convergence(),
        observations_count_from(env),
        || calls_until_answered(one_answer_batch(), make_call, |c| call_outcome(c, status)),
        |(shows, _)| *shows,
    )
    .await?;
    let Some((shows, calls)) = streak.into_iter().last() else {
        fail!("{what}: no batch of calls was made");
    };
    let last = calls
        .last()
        .map(|c| format!("{}: {}", c.describe(), c.result.body.trim()));
    match (shows, calls.into_iter().last()) {
        (CallsShow::Answered, Some(call)) => Ok(call),
        (CallsShow::Refused, _) => fail!(
            "{what}: the calls are not let through ({} batches in a row), the last: {}",
            env.timeouts.consecutive,
            last.unwrap_or_default()
        ),
        _ => fail!(
            "{what}: {} batches in a row of {} calls let through, none answering {status}; the last: {}",
            env.timeouts.consecutive,
            one_answer_batch(),
            last.unwrap_or_default()
        ),
    }
}

/// [`converge_on_answer`] for calls from the given pod and container.
async fn calls_answer(
    env: &Env,
    (ns, pod, container): (&str, &str, &str),
    url: &str,
    status: u16,
) -> Result<Curl, Failure> {
    converge_on_answer(
        env,
        &format!("calls from {ns}/{pod} to {url} to answer {status}"),
        status,
        || env.curl_from_pod(ns, pod, container, url),
    )
    .await
}

/// The evidence of a call: what the reader's `kubectl exec … -- curl` prints (the body, then
/// kubectl's own line when curl exits non-zero) and the status.
fn record_call(call: &super::env::Curl, from: &str, url: &str) {
    let mut text = call.result.body.trim().to_string();
    if !call.exec.stderr.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(call.exec.stderr.trim());
    }
    if call.exec.exit_code != 0 {
        text.push_str(&format!(
            "\ncommand terminated with exit code {}",
            call.exec.exit_code
        ));
    }
    text.push_str(&format!(
        "\n(HTTP status {}; curl {})",
        call.status(),
        call.result.outcome
    ));
    happy_istio::evidence::record(&format!("{from}: curl {url}"), &text);
}

/// The capture's lines that decided: tcpdump's packet lines (who sent what to whom, how long)
/// and the payload lines holding any of `shown` (the plaintext HTTP a reader would see), with
/// how many packets carried a payload. Ciphertext is left out: it reads as noise.
fn record_capture(out: &str, shown: &[&str]) {
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| {
            (l.contains(" > ") && l.contains("Flags [")) || shown.iter().any(|d| l.contains(d))
        })
        .take(24)
        .collect();
    happy_istio::evidence::record(
        &format!(
            "tcpdump -A: {} packets with a payload; their lines{}",
            capture::packets_with_payload(out),
            if shown.is_empty() {
                String::new()
            } else {
                format!(" and the payload lines with {}", shown.join(" or "))
            }
        ),
        &lines.join("\n"),
    );
}

#[then("the capture holds traffic but no plaintext HTTP")]
async fn capture_encrypted(world: &mut HappyWorld) -> Step {
    let Some(out) = &world.capture else {
        fail!("no capture was taken")
    };
    record_capture(out, &["HTTP/1.1", "GET / "]);
    if capture::packets_with_payload(out) == 0 {
        fail!(
            environment,
            "the capture holds no packet with a payload, so it proves nothing:\n{out}"
        );
    }
    if let Some(line) = capture::plaintext_http(out) {
        fail!("the capture shows plaintext HTTP between sidecars: {line}");
    }
    Ok(())
}

#[then(expr = "the capture shows {name}'s response in plaintext")]
async fn capture_plaintext(world: &mut HappyWorld, service: Name) -> Step {
    let service = service.0;
    let Some(out) = &world.capture else {
        fail!("no capture was taken")
    };
    let name = format!("\"name\": \"{service}\"");
    record_capture(out, &["HTTP/1.1", &name]);
    if capture::plaintext_http(out).is_none() {
        fail!("the capture shows no plaintext HTTP:\n{out}");
    }
    if !out.contains(&name) {
        fail!("the capture shows no plaintext response from {service} (no {name}):\n{out}");
    }
    Ok(())
}

#[then(
    expr = "{name}'s istio-proxy reports the requests from {name} with connection_security_policy {word}"
)]
async fn security_policy_metric(
    world: &mut HappyWorld,
    deployment: Name,
    source: Name,
    policy: String,
) -> Step {
    let (deployment, source) = (deployment.0, source.0);
    let env = world.env();
    // The requests are those sent while the captures ran: the growth of the counters since
    // the first capture that counted, so earlier scenarios' requests cannot decide.
    let Some((captured, before)) = world.capture_baseline.clone() else {
        fail!("no capture was taken, so there are no requests to judge")
    };
    if captured != deployment {
        fail!("the capture was taken into {captured}'s pod, not {deployment}'s")
    }
    let before = metrics::security_policies_from(&before, &source);
    let (env_ref, deployment_ref, source_ref, policy_ref, before_ref) = (
        &env,
        deployment.as_str(),
        source.as_str(),
        policy.as_str(),
        &before,
    );
    // Counters reach the stats endpoint when a request completes, so the last request of a
    // capture may still be counting: read until the growth shows, within the assertion limit.
    let verdict = eventually(
        &format!("{deployment}'s sidecar to count the captured requests from {source}"),
        // `consecutive` readings in a row: no single reading decides.
        &env.convergence(),
        || async move {
            let samples = env_ref
                .sidecar_metrics(deployment_ref)
                .await
                .map_err(|f| f.message)?;
            let now = metrics::security_policies_from(&samples, source_ref);
            let grown = |p: &str| {
                now.get(p).copied().unwrap_or(0.0) - before_ref.get(p).copied().unwrap_or(0.0)
            };
            // Counters only grow: a request counted under another policy decides at once.
            if let Some(other) = now.keys().find(|p| *p != policy_ref && grown(p) > 0.0) {
                return Ok(Err(format!(
                    "{deployment_ref}'s sidecar counts {} requests from {source_ref} with \
                     connection_security_policy=\"{other}\" since the capture began",
                    grown(other)
                )));
            }
            if grown(policy_ref) <= 0.0 {
                return Err(format!(
                    "{deployment_ref}'s sidecar counts no request from {source_ref} with \
                     connection_security_policy=\"{policy_ref}\" since the capture began \
                     (now {now:?}, before {before_ref:?})"
                ));
            }
            Ok(Ok(()))
        },
    )
    .await?;
    verdict.map_err(Failure::claim)
}

#[then("the legacy client's call answers 200")]
async fn legacy_call_ok(world: &mut HappyWorld) -> Step {
    let Some(call) = &world.last_curl else {
        fail!("the legacy client made no call")
    };
    if call.result.outcome != CurlOutcome::Completed || call.result.http_code != Some(200) {
        fail!(
            "the legacy client's call did not answer 200: {}",
            call.describe()
        );
    }
    Ok(())
}

#[given(expr = "the legacy client has called {url}")]
async fn legacy_has_called(world: &mut HappyWorld, url: Url) -> Step {
    let env = world.env();
    let began = tokio::time::Instant::now();
    let call = calls_answer(&env, LEGACY, &url.0, 200).await?;
    record_call(&call, "the legacy client", &url.0);
    world.last_curl = Some(call);
    world.traffic = Some(super::readings::Traffic::Legacy { url: url.0 });
    world.traffic_began = Some(began);
    Ok(())
}

#[then(
    expr = "the legacy client's call to {url} fails with curl exit code 56, the connection reset"
)]
async fn legacy_reset(world: &mut HappyWorld, url: Url) -> Step {
    let url = url.0;
    let env = world.env();
    let (env_ref, url_ref) = (&env, url.as_str());
    let call = eventually(
        &format!("the legacy client's call to {url} to be reset"),
        &env.convergence(),
        || async move {
            let (ns, pod, container) = LEGACY;
            let call = env_ref
                .curl_from_pod(ns, pod, container, url_ref)
                .await
                .map_err(|e| e.message)?;
            match call.result.outcome {
                CurlOutcome::ConnectionReset => Ok(call),
                _ => Err(call.describe()),
            }
        },
    )
    .await?;
    record_call(&call, "the legacy client", &url);
    world.last_curl = Some(call);
    Ok(())
}

/// Converge on a call from a deployment's application container answering `status` (and,
/// when given, exactly `body`).
async fn call_from(
    world: &mut HappyWorld,
    from: &str,
    url: &str,
    status: u16,
    body: Option<&str>,
) -> Step {
    let env = world.env();
    let deployment = workload_of(from);
    let (env_ref, url_ref) = (&env, url);
    if (200..300).contains(&status) && body.is_none() {
        // Whether the call is let through and answers, from batches of calls that begin once
        // the last change (a deleted AuthorizationPolicy, say) has reached the sidecars and
        // agree `consecutive` times in a row: a single 2xx seen before a denying policy
        // arrives, or a denial seen before one is removed, must not decide.
        let call = converge_on_answer(
            &env,
            &format!("{from}'s calls to {url} to answer {status}"),
            status,
            || env_ref.curl_from(NAMESPACE, deployment, url_ref),
        )
        .await?;
        record_call(&call, from, url);
        world.last_curl = Some(call);
        return Ok(());
    }
    // A denial (or any exact answer with a body) must hold for the consecutive confirmations
    // every negative claim needs.
    let call = eventually(
        &format!(
            "{from}'s call to {url} to answer {status}{}",
            body.map(|b| format!(" {b:?}")).unwrap_or_default()
        ),
        &env.convergence(),
        || async move {
            let call = env_ref
                .curl_from(NAMESPACE, deployment, url_ref)
                .await
                .map_err(|e| e.message)?;
            if call.result.outcome != CurlOutcome::Completed
                || call.result.http_code != Some(status)
            {
                return Err(format!("{}: {}", call.describe(), call.result.body.trim()));
            }
            if let Some(expected) = body
                && call.result.body.trim() != expected
            {
                return Err(format!(
                    "status {status} with body {:?}, not {expected:?}",
                    call.result.body.trim()
                ));
            }
            Ok(call)
        },
    )
    .await?;
    record_call(&call, from, url);
    world.last_curl = Some(call);
    Ok(())
}

/// Whether a call was let through to the application: it completed and was not denied (403,
/// Envoy's RBAC answer). A reset (STRICT mTLS without a sidecar) or a refusal is not.
fn let_through(call: &Curl) -> bool {
    call.result.outcome == CurlOutcome::Completed && call.result.http_code != Some(403)
}

/// The deployment a reader execs into for a service: service-c has two; the workshop uses v1.
fn workload_of(service: &str) -> &str {
    match service {
        "service-c" => "service-c-v1",
        other => other,
    }
}

#[then(expr = "{name}'s call to {url} answers {int}")]
async fn call_answers(world: &mut HappyWorld, from: Name, url: Url, status: u16) -> Step {
    call_from(world, &from.0, &url.0, status, None).await
}

#[then(expr = "{name}'s call to {url} is denied with {int} {string}")]
async fn call_denied(
    world: &mut HappyWorld,
    from: Name,
    url: Url,
    status: u16,
    body: String,
) -> Step {
    call_from(world, &from.0, &url.0, status, Some(&body)).await
}
