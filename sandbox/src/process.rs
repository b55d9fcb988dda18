//! Child processes that die with the sandbox: Envoy and Prometheus are started here so that,
//! on Linux, the kernel kills them (SIGKILL) when the sandbox's process ends in any way, even
//! SIGKILL, which no cleanup code sees.
//!
//! The parent-death signal (`prctl(PR_SET_PDEATHSIG)`, man 2 PR_SET_PDEATHSIG) fires when the
//! *thread* that forked the child ends, not the process. Tokio's blocking-pool threads end
//! after 10 s idle and a runtime's workers end with the runtime, so children are never forked
//! from them: every spawn is handed to one dedicated thread that lives as long as the process,
//! which forks inside the caller's runtime (so the child is reaped and awaited as usual).
//! Elsewhere than Linux the children are only killed on drop (`kill_on_drop`).

use std::io;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::process::{Child, Command};

type Reply = mpsc::Sender<io::Result<Child>>;

/// The spawner thread's queue: a command, the runtime to spawn it in, where to answer.
static SPAWNER: OnceLock<Mutex<mpsc::Sender<(Command, tokio::runtime::Handle, Reply)>>> =
    OnceLock::new();

fn spawner() -> io::Result<mpsc::Sender<(Command, tokio::runtime::Handle, Reply)>> {
    if let Some(s) = SPAWNER.get() {
        return Ok(s.lock().unwrap_or_else(PoisonError::into_inner).clone());
    }
    let (tx, rx) = mpsc::channel::<(Command, tokio::runtime::Handle, Reply)>();
    std::thread::Builder::new()
        .name("happy-sandbox-spawner".into())
        .spawn(move || {
            // Lives until the process ends: the channel's sender is in a static.
            while let Ok((mut cmd, handle, reply)) = rx.recv() {
                let _runtime = handle.enter();
                let _ = reply.send(cmd.spawn());
            }
        })?;
    let stored = SPAWNER.get_or_init(|| Mutex::new(tx));
    Ok(stored
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone())
}

/// Spawn `cmd` (in the current Tokio runtime) so that the child is killed when this process
/// ends, and when the returned handle is dropped.
pub(crate) fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    cmd.kill_on_drop(true);
    tie_to_parent(&mut cmd);
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|e| io::Error::other(format!("no Tokio runtime to spawn a child in: {e}")))?;
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()?
        .send((cmd, handle, reply_tx))
        .map_err(|_| io::Error::other("the sandbox's spawner thread has ended"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the sandbox's spawner thread did not answer"))?
}

#[cfg(target_os = "linux")]
fn tie_to_parent(cmd: &mut Command) {
    // SAFETY: `getpid` is async-signal-safe; it is read before the fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (prctl, getppid, raise), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would signal us.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn tie_to_parent(_cmd: &mut Command) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A tied child runs and is awaited like any other (that it dies with its parent is
    /// tested with real signals in `tests/it/cli.rs`).
    #[tokio::test]
    async fn a_tied_child_has_sigkill_as_its_parent_death_signal() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        let mut child = spawn_tied(cmd).expect("spawn sh");
        let status = child.wait().await.expect("wait");
        assert_eq!(status.code(), Some(3));
    }
}
