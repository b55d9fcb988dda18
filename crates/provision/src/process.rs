//! Running external commands (kind, istioctl, docker): output captured, time bounded, and on
//! failure an error with the command line and the last lines of what it printed. A leaf of the
//! provisioning layer: the provisioners, the Istio toolchain, the preflight and the settings
//! (which resolve binaries on `PATH`) all run or find commands through it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::{Error, Result};

/// How many trailing lines of stderr an error carries.
const TAIL_LINES: usize = 20;

/// An external command to run once.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    env: Vec<(OsString, OsString)>,
    limit: Duration,
}

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl Cmd {
    /// `program`, which must finish within `limit`.
    pub(crate) fn new(program: impl Into<PathBuf>, limit: Duration) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            limit,
        }
    }

    /// Adds one argument.
    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Feeds `input` on stdin (otherwise stdin is empty).
    pub(crate) fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Sets an environment variable for the command.
    pub(crate) fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The command line as a shell would show it (for errors and logs).
    pub(crate) fn display(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|part| {
                let text = part.to_string_lossy();
                if !text.is_empty()
                    && text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
                {
                    text.into_owned()
                } else {
                    format!("'{}'", text.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command; a non-zero exit is an error carrying the tail of stderr.
    pub(crate) async fn run(&self) -> Result<Output> {
        let output = self.run_unchecked().await?;
        self.checked(output)
    }

    /// [`Cmd::run`], unless `abort` finishes first: then the command is killed and waited for
    /// (reaped, so it leaves neither an orphan nor a zombie) before `abort`'s error is
    /// returned. For a command whose failure something else sees sooner than it does (istioctl
    /// waiting out its readiness timeout for pods that can never start).
    pub(crate) async fn run_until(&self, abort: impl Future<Output = Error>) -> Result<Output> {
        let output = self.run_unchecked_until(abort).await?;
        self.checked(output)
    }

    /// A non-zero exit as an error carrying the tail of what it printed.
    fn checked(&self, output: Output) -> Result<Output> {
        if output.success() {
            Ok(output)
        } else {
            let outcome = match output.code {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            };
            // Some tools (kind) report failures on stdout; show that when stderr is empty.
            let text = if output.stderr.trim().is_empty() {
                &output.stdout
            } else {
                &output.stderr
            };
            Err(Error::Command {
                command: self.display(),
                outcome,
                stderr_tail: tail(text, TAIL_LINES),
            })
        }
    }

    /// Runs the command and returns its output whatever its exit code; only failing to start
    /// it or running out of time are errors.
    pub(crate) async fn run_unchecked(&self) -> Result<Output> {
        self.run_unchecked_until(std::future::pending()).await
    }

    async fn run_unchecked_until(&self, abort: impl Future<Output = Error>) -> Result<Output> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Should the caller drop this future (its own limit ran out), the child dies with it.
            .kill_on_drop(true);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|e| Error::Command {
            command: self.display(),
            outcome: format!("could not start: {e}"),
            stderr_tail: String::new(),
        })?;
        // Write stdin concurrently with reading the output so a large input and a chatty
        // command cannot block each other.
        let feeder = match (child.stdin.take(), self.stdin.clone()) {
            (Some(mut pipe), Some(bytes)) => Some(tokio::spawn(async move {
                let result = pipe.write_all(&bytes).await;
                drop(pipe);
                result
            })),
            _ => None,
        };
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let ended = {
            let finished = async { tokio::join!(child.wait(), read_all(stdout), read_all(stderr)) };
            tokio::select! {
                done = tokio::time::timeout(self.limit, finished) => match done {
                    Ok((status, out, err)) => Ended::Exited(status, out, err),
                    Err(_) => Ended::TimedOut,
                },
                error = abort => Ended::Aborted(error),
            }
        };
        if let Some(feeder) = feeder {
            feeder.abort();
        }
        let (status, stdout, stderr) = match ended {
            Ended::Exited(status, stdout, stderr) => (status, stdout, stderr),
            Ended::TimedOut => {
                kill_and_reap(&mut child).await;
                return Err(Error::Command {
                    command: self.display(),
                    outcome: format!("did not finish within {:?}", self.limit),
                    stderr_tail: String::new(),
                });
            }
            Ended::Aborted(error) => {
                kill_and_reap(&mut child).await;
                return Err(error);
            }
        };
        let status = status.map_err(|e| Error::Command {
            command: self.display(),
            outcome: format!("could not be waited for: {e}"),
            stderr_tail: String::new(),
        })?;
        Ok(Output {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}

/// How a run ended.
enum Ended {
    /// The command exited: its status, stdout and stderr.
    Exited(std::io::Result<std::process::ExitStatus>, Vec<u8>, Vec<u8>),
    /// Its limit ran out.
    TimedOut,
    /// The abort came first.
    Aborted(Error),
}

/// Everything a pipe gives until it closes (nothing when there is no pipe or it fails).
async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await;
    }
    bytes
}

/// SIGKILL, then wait for the exit, which reaps the child (tokio `Child::kill`).
async fn kill_and_reap(child: &mut tokio::process::Child) {
    if child.kill().await.is_err() {
        // Already exited (and perhaps reaped): waiting again collects it if it was not.
        let _ = child.wait().await;
    }
}

/// The last `lines` non-empty lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let kept: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// True for a file with an execute bit (any file on non-Unix systems).
pub fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn captures_output_and_feeds_stdin() {
        let out = Cmd::new("sh", LIMIT)
            .args(["-c", "cat; echo err >&2"])
            .stdin("hello")
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, "hello");
        assert_eq!(out.stderr, "err\n");
    }

    #[tokio::test]
    async fn failure_names_the_command_line_and_the_stderr_tail() {
        let script = "for i in $(seq 1 30); do echo line$i >&2; done; exit 3";
        let err = Cmd::new("sh", LIMIT)
            .args(["-c", script])
            .run()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`sh -c 'for i in"), "{text}");
        assert!(text.contains("exited with status 3"), "{text}");
        assert!(text.contains("line30") && text.contains("line11"), "{text}");
        assert!(!text.contains("line10\n"), "only the tail is kept: {text}");
    }

    #[tokio::test]
    async fn a_missing_program_says_it_could_not_start() {
        let err = Cmd::new("/nonexistent/kind", LIMIT)
            .arg("version")
            .run()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/kind version") && text.contains("could not start"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_limit_is_enforced() {
        let started = std::time::Instant::now();
        let err = Cmd::new("sleep", Duration::from_millis(200))
            .arg("30")
            .run()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("did not finish within 200ms"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    /// An abort ends the command at once: the child is killed and reaped (`kill -0` on a
    /// zombie would still succeed, so its failure proves the pid is gone), and the abort's
    /// error is the result.
    #[cfg(unix)]
    #[tokio::test]
    async fn an_abort_kills_and_reaps_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
        let started = std::time::Instant::now();
        let watched = pid_file.clone();
        let err = Cmd::new("sh", LIMIT)
            .args(["-c", &script])
            .run_until(async move {
                while !watched.is_file() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Error::Other("the watch saw a pod that cannot start".into())
            })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "the watch saw a pod that cannot start");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_string();
        let alive = std::process::Command::new("kill")
            .args(["-0", &pid])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "pid {pid} is still there (running or a zombie)");
    }

    #[tokio::test]
    async fn without_an_abort_run_until_is_run() {
        let out = Cmd::new("sh", LIMIT)
            .args(["-c", "echo done"])
            .run_until(std::future::pending())
            .await
            .unwrap();
        assert_eq!(out.stdout, "done\n");
        let err = Cmd::new("sh", LIMIT)
            .args(["-c", "exit 2"])
            .run_until(std::future::pending())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exited with status 2"), "{err}");
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let cmd = Cmd::new("istioctl", LIMIT).args([
            "install",
            "-y",
            "--set",
            "profile=demo",
            "a b",
            "it's",
        ]);
        assert_eq!(
            cmd.display(),
            r"istioctl install -y --set profile=demo 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 3), "");
    }
}
