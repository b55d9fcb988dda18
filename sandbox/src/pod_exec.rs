//! `kubectl exec` in the sandbox: the commands provided are `curl`, in every container, and
//! `tcpdump` (also as `sudo tcpdump`) in a container named `istio-proxy` — Istio's proxy image
//! has it, and the workshop runs it there with privileges. curl is the host's real curl run
//! inside the pod's network — its connections go through a SOCKS5 server on the pod's egress
//! (`socks5h`, so names resolve in the pod's DNS view, `localhost` is the pod itself, and the
//! pod's address is the source). In the `istio-proxy` container curl's connections bypass
//! the pod's sidecar, as Istio's redirection excludes the proxy's own user; in every other
//! container they go through it. tcpdump is the host's real tcpdump reading what the pod's
//! recording point sees as a pcap stream ([`crate::mesh::tcpdump`]). Nothing else runs, never a shell: any other command ends with
//! exit code 126.
//!
//! curl reports every SOCKS refusal as exit 97; the session's own SOCKS server knows what really
//! happened (unknown host, refused), so the exit code and curl's message are turned back into
//! what curl prints without a proxy (6 "Could not resolve host", 7 "Failed to connect").
//! Resets (56) and timeouts (28) are curl's own already.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use futures::FutureExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::cri::{ExecExit, ExecRequest, ExecSession, RuntimeError};
use crate::net::PodNet;
use crate::net::egress::{EgressFailure, FailureLog};

/// curl's exit code for a proxy handshake failure.
const CURLE_PROXY: i32 = 97;
/// Exit code for a command the sandbox does not provide.
pub const NOT_PROVIDED: i32 = 126;

/// Where the host's curl is: `/usr/bin/curl`, else the first `curl` on PATH.
pub fn find_curl() -> Option<PathBuf> {
    let usual = Path::new("/usr/bin/curl");
    if usual.is_file() {
        return Some(usual.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("curl"))
        .find(|p| p.is_file())
}

fn is_curl(command: &str) -> bool {
    command == "curl" || (command.starts_with('/') && command.ends_with("/curl"))
}

fn is_tcpdump(command: &str) -> bool {
    command == "tcpdump" || (command.starts_with('/') && command.ends_with("/tcpdump"))
}

fn is_sudo(command: &str) -> bool {
    command == "sudo" || (command.starts_with('/') && command.ends_with("/sudo"))
}

/// The container that has tcpdump: Istio's proxy.
const PROXY_CONTAINER: &str = "istio-proxy";

/// An exec session that only prints `message` on stderr and exits with `code`.
fn refusal(request: &ExecRequest, message: String, code: i32) -> ExecSession {
    ExecSession {
        stdin: request.stdin.then(|| {
            Box::pin(tokio::io::sink()) as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>
        }),
        stdout: Box::pin(tokio::io::empty()),
        stderr: Box::pin(std::io::Cursor::new(message.into_bytes())),
        exit: futures::future::ready(ExecExit { code }).boxed(),
    }
}

/// Run `request` in the pod whose network is `net`; the command ends when `pod_cancel` fires or
/// the session's exit future is dropped.
pub fn exec_in_pod(
    net: Arc<PodNet>,
    request: ExecRequest,
    pod_cancel: CancellationToken,
) -> Result<ExecSession, RuntimeError> {
    let Some(command) = request.command.first() else {
        return Ok(refusal(
            &request,
            "happy-sandbox: exec needs a command; this sandbox provides only curl\n".into(),
            NOT_PROVIDED,
        ));
    };
    // `sudo tcpdump …` runs tcpdump as root: the proxy image lets its user 1337 sudo without a
    // password (istio/istio docker/Dockerfile.base: `istio-proxy ALL=NOPASSWD: ALL`), and the
    // workshop's privileged proxies allow the privilege escalation. Without sudo, tcpdump runs
    // as user 1337 and may not capture.
    let sudo = is_sudo(command) && request.command.get(1).is_some_and(|c| is_tcpdump(c));
    let words = if sudo {
        &request.command[1..]
    } else {
        &request.command[..]
    };
    if is_tcpdump(&words[0]) {
        if request.container != PROXY_CONTAINER {
            return Ok(refusal(
                &request,
                format!(
                    "happy-sandbox: \"tcpdump\" is not available in container {:?}: this sandbox \
                     provides tcpdump only in the {PROXY_CONTAINER} container (and curl everywhere)\n",
                    request.container
                ),
                NOT_PROVIDED,
            ));
        }
        return Ok(crate::mesh::tcpdump::run_tcpdump(
            &words[1..],
            net,
            request.stdin,
            sudo,
            pod_cancel,
        ));
    }
    if !is_curl(command) {
        return Ok(refusal(
            &request,
            format!(
                "happy-sandbox: {command:?} is not available: this sandbox provides only curl \
                 (and tcpdump in {PROXY_CONTAINER}; never a shell) inside containers\n"
            ),
            NOT_PROVIDED,
        ));
    }
    let Some(curl) = find_curl() else {
        return Ok(refusal(
            &request,
            "happy-sandbox: curl is not installed on this host (looked for /usr/bin/curl and \
             on PATH); install curl to exec it in pods\n"
                .into(),
            NOT_PROVIDED,
        ));
    };

    let session_cancel = pod_cancel.child_token();
    // Istio's redirection excludes the proxy's own user (UID 1337), so a curl in istio-proxy
    // leaves the pod directly (plaintext, no mTLS), while application containers go through
    // the sidecar.
    let socks = if request.container == PROXY_CONTAINER {
        net.session_socks_bypassing_sidecar(session_cancel.clone())
    } else {
        net.session_socks(session_cancel.clone())
    };
    let (socks, failures) = socks.map_err(|e| {
        RuntimeError::Other(format!(
            "exec curl in pod {}/{}: {e}",
            net.namespace(),
            net.name()
        ))
    })?;

    let mut cmd = tokio::process::Command::new(&curl);
    // -q first: ignore ~/.curlrc. --proxy and --noproxy '' beat any environment; the
    // environment is cleared as well so no host proxy setting leaks in.
    cmd.arg("-q")
        .arg("--proxy")
        .arg(format!("socks5h://{socks}"))
        .arg("--noproxy")
        .arg("")
        .args(&request.command[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(if request.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        RuntimeError::Other(format!(
            "exec {} in pod {}/{}: {e}",
            curl.display(),
            net.namespace(),
            net.name()
        ))
    })?;

    let stdin = child
        .stdin
        .take()
        .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| RuntimeError::Other("curl's stdout was not captured".into()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| RuntimeError::Other("curl's stderr was not captured".into()))?;

    let (mut err_writer, err_reader) = tokio::io::duplex(64 * 1024);
    let log = failures.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let out = translate_stderr_line(&line, &log);
            if err_writer.write_all(&out).await.is_err() {
                break;
            }
        }
        let _ = err_writer.shutdown().await;
    });

    let exit = async move {
        let status = tokio::select! {
            s = child.wait() => s.ok(),
            _ = pod_cancel.cancelled() => {
                let _ = child.kill().await;
                None
            }
        };
        session_cancel.cancel();
        // Killed by a signal (or by the pod stopping): 128 + SIGKILL, as a shell would report.
        let code = status.and_then(|s| s.code()).unwrap_or(137);
        ExecExit {
            code: translate_exit(code, failures.last().as_ref()),
        }
    }
    .boxed();

    Ok(ExecSession {
        stdin,
        stdout: Box::pin(stdout),
        stderr: Box::pin(err_reader),
        exit,
    })
}

/// The exit code curl would have given without the proxy in between.
pub fn translate_exit(code: i32, failure: Option<&EgressFailure>) -> i32 {
    match (code, failure) {
        (CURLE_PROXY, Some(EgressFailure::UnknownHost { .. })) => 6,
        (CURLE_PROXY, Some(EgressFailure::Refused { .. } | EgressFailure::Other { .. })) => 7,
        (code, _) => code,
    }
}

/// The message curl would have printed without the proxy in between.
fn translate_stderr_line(line: &[u8], failures: &FailureLog) -> Vec<u8> {
    if !line.starts_with(b"curl: (97)") {
        return line.to_vec();
    }
    match failures.last() {
        Some(EgressFailure::UnknownHost { host }) => {
            format!("curl: (6) Could not resolve host: {host}\n").into_bytes()
        }
        Some(EgressFailure::Refused { host, port } | EgressFailure::Other { host, port }) => {
            format!(
                "curl: (7) Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server\n"
            )
            .into_bytes()
        }
        None => line.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_curl_is_curl() {
        assert!(is_curl("curl"));
        assert!(is_curl("/usr/bin/curl"));
        assert!(!is_curl("sh"));
        assert!(!is_curl("/bin/sh"));
        assert!(!is_curl("curl.sh"));
        assert!(!is_curl("bin/curl"));
        assert!(is_tcpdump("tcpdump") && is_tcpdump("/usr/sbin/tcpdump"));
        assert!(is_sudo("sudo") && !is_sudo("sudoku"));
    }

    #[test]
    fn proxy_failures_become_curls_own_codes() {
        let unknown = EgressFailure::UnknownHost { host: "x".into() };
        let refused = EgressFailure::Refused {
            host: "x".into(),
            port: 80,
        };
        assert_eq!(translate_exit(97, Some(&unknown)), 6);
        assert_eq!(translate_exit(97, Some(&refused)), 7);
        assert_eq!(translate_exit(97, None), 97);
        assert_eq!(translate_exit(56, Some(&unknown)), 56);
        let log = FailureLog::default();
        log.set(unknown);
        assert_eq!(
            translate_stderr_line(
                b"curl: (97) Can't complete SOCKS5 connection to x. (4)\n",
                &log
            ),
            b"curl: (6) Could not resolve host: x\n"
        );
        assert_eq!(translate_stderr_line(b"other\n", &log), b"other\n");
    }
}
