//! Running a command in a container (`kubectl exec`) and reading its exit code from the
//! exec status channel; or leaving it running ([`RunningExec`]) to read its output as it comes
//! and end it as a reader does with Ctrl-C, for commands that never end by themselves (the
//! workshop's `tcpdump`).

use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, AttachedProcess};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Everything written to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossy UTF-8).
    pub stderr: String,
    /// The command's exit code.
    pub exit_code: i32,
}

/// The exit code the status channel reports: `Success` → 0, `NonZeroExitCode` → the
/// `ExitCode` cause; anything else (the command could not run at all) → its message.
pub fn exit_code_from_status(status: Option<&Status>) -> std::result::Result<i32, String> {
    let Some(status) = status else {
        return Err("the exec stream ended without a status".into());
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|causes| {
                causes
                    .iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse::<i32>().ok());
        return code.ok_or_else(|| {
            format!(
                "non-zero exit without an exit code: {}",
                status.message.as_deref().unwrap_or("")
            )
        });
    }
    Err(format!(
        "{} {}",
        status.reason.as_deref().unwrap_or("Failure"),
        status.message.as_deref().unwrap_or("")
    )
    .trim()
    .to_string())
}

/// Attaches to `command` in `container` of `pod`: stdout and stderr, no stdin, no TTY.
async fn attach(
    pods: &Api<Pod>,
    what: &str,
    pod: &str,
    container: &str,
    command: &[&str],
) -> Result<AttachedProcess> {
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    pods.exec(
        pod,
        command.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &params,
    )
    .await
    .map_err(|e| Error::kube(what, e))
}

/// Runs `command` in `container` of `pod` and collects its output; the caller bounds it.
pub(crate) async fn exec(
    pods: &Api<Pod>,
    what: &str,
    pod: &str,
    container: &str,
    command: &[&str],
) -> Result<ExecOutput> {
    let mut attached = attach(pods, what, pod, container, command).await?;
    let status = attached.take_status();
    let mut stdout = attached.stdout();
    let mut stderr = attached.stderr();
    // stdout and stderr are small pipes: both must be drained at once or the command blocks.
    let read_out = async {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            s.read_to_end(&mut buf).await?;
        }
        Ok::<_, std::io::Error>(buf)
    };
    let read_err = async {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            s.read_to_end(&mut buf).await?;
        }
        Ok::<_, std::io::Error>(buf)
    };
    let status = async {
        match status {
            Some(s) => s.await,
            None => None,
        }
    };
    let (out, err, status) = tokio::join!(read_out, read_err, status);
    let io = |e: std::io::Error| Error::Unexpected {
        what: what.to_string(),
        message: format!("reading the command's output: {e}"),
    };
    let (out, err) = (out.map_err(io)?, err.map_err(io)?);
    let stderr_text = String::from_utf8_lossy(&err).into_owned();
    let exit_code =
        exit_code_from_status(status.as_ref()).map_err(|message| Error::Unexpected {
            what: what.to_string(),
            message: if stderr_text.is_empty() {
                message
            } else {
                format!("{message}; stderr: {}", stderr_text.trim())
            },
        })?;
    // The command has ended; a failure to close the session cleanly changes nothing.
    let _ = attached.join().await;
    Ok(ExecOutput {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: stderr_text,
        exit_code,
    })
}

/// What a command left running has printed so far, and how it ended if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialOutput {
    /// Everything written to stdout so far (lossy UTF-8).
    pub stdout: String,
    /// Everything written to stderr so far (lossy UTF-8).
    pub stderr: String,
    /// The exit code, if the command ended by itself (or the reason it could not run).
    pub exit: Option<std::result::Result<i32, String>>,
}

/// A command running in a container whose output is collected as it comes. Dropping it, or
/// [`RunningExec::close`], closes the exec's streams and its connection, as kubectl does when
/// the reader presses Ctrl-C.
pub struct RunningExec {
    attached: AttachedProcess,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    status: Arc<Mutex<Option<Option<Status>>>>,
    tasks: Vec<JoinHandle<()>>,
}

fn collect(
    stream: Option<impl AsyncRead + Unpin + Send + 'static>,
    into: Arc<Mutex<Vec<u8>>>,
) -> Option<JoinHandle<()>> {
    let mut stream = stream?;
    Some(tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(&buf[..n]);
        }
    }))
}

impl RunningExec {
    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// How it ended, if it has.
    pub fn exit(&self) -> Option<std::result::Result<i32, String>> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|s| exit_code_from_status(s.as_ref()))
    }

    /// End the exec (close its streams and connection) and return what it printed.
    pub fn close(self) -> PartialOutput {
        let out = PartialOutput {
            stdout: self.stdout(),
            stderr: self.stderr(),
            exit: self.exit(),
        };
        drop(self);
        out
    }
}

impl Drop for RunningExec {
    fn drop(&mut self) {
        self.attached.abort();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts `command` in `container` of `pod` and leaves it running; the caller bounds the start.
pub(crate) async fn start(
    pods: &Api<Pod>,
    what: &str,
    pod: &str,
    container: &str,
    command: &[&str],
) -> Result<RunningExec> {
    let mut attached = attach(pods, what, pod, container, command).await?;
    let (stdout, stderr) = (Arc::default(), Arc::default());
    let status: Arc<Mutex<Option<Option<Status>>>> = Arc::default();
    let mut tasks: Vec<JoinHandle<()>> = [
        collect(attached.stdout(), Arc::clone(&stdout)),
        collect(attached.stderr(), Arc::clone(&stderr)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(ended) = attached.take_status() {
        let status = Arc::clone(&status);
        tasks.push(tokio::spawn(async move {
            let s = ended.await;
            *status.lock().unwrap_or_else(PoisonError::into_inner) = Some(s);
        }));
    }
    Ok(RunningExec {
        attached,
        stdout,
        stderr,
        status,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn success_is_zero() {
        let s = status(serde_json::json!({"metadata": {}, "status": "Success"}));
        assert_eq!(exit_code_from_status(Some(&s)), Ok(0));
    }

    #[test]
    fn non_zero_exit_code_is_read_from_the_cause() {
        // what the kubelet sends when curl exits 56
        let s = status(serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [curl -sS http://service-a], exit code 56",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "56"}]}
        }));
        assert_eq!(exit_code_from_status(Some(&s)), Ok(56));
    }

    #[test]
    fn anything_else_is_an_error() {
        let s = status(serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": "container not found (\"istio-proxy\")",
            "reason": "InternalError"
        }));
        let err = exit_code_from_status(Some(&s)).unwrap_err();
        assert!(err.contains("container not found"), "{err}");
        assert!(exit_code_from_status(None).is_err());
        let no_cause = status(
            serde_json::json!({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode"}),
        );
        assert!(exit_code_from_status(Some(&no_cause)).is_err());
    }
}
