//! Stopping the run: SIGINT, SIGTERM and SIGHUP are caught from the run's first moment and
//! counted. The first one stops the phase in progress at its boundary — provisioning is let
//! finish so that what it made can be torn down, the scenario in progress is abandoned and the
//! reports are written — and the run exits with 128 + the signal's number. A second one, while
//! the run is still cleaning up, exits at once ([`force_exit`]).

use std::future::Future;
use std::process::ExitCode;

use happy_istio::settings::{ClusterChoice, Settings};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::{RunError, say};

/// The signals that stop a run, with their numbers (signal(7)).
const STOPPING: [(&str, libc::c_int); 3] = [
    ("SIGINT", libc::SIGINT),
    ("SIGTERM", libc::SIGTERM),
    ("SIGHUP", libc::SIGHUP),
];

/// A signal the run caught, with the exit code it ends the run with (128 + its number, as a
/// shell reports a process a signal ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Caught {
    pub(super) name: &'static str,
    pub(super) code: u8,
}

impl Caught {
    fn new(name: &'static str, number: libc::c_int) -> Caught {
        // Signal numbers are below 32 on Linux; 128 + number fits a u8.
        let code = u8::try_from(128 + number).unwrap_or(u8::MAX);
        Caught { name, code }
    }
}

/// SIGINT, SIGTERM and SIGHUP, caught from the start of the run and counted.
pub(super) struct Signals {
    rx: watch::Receiver<Vec<Caught>>,
}

impl Signals {
    pub(super) fn install() -> Result<Signals, RunError> {
        let (tx, rx) = watch::channel(Vec::new());
        for (name, number) in STOPPING {
            let mut stream =
                signal(SignalKind::from_raw(number)).map_err(|source| RunError::CatchSignal {
                    signal: name,
                    source,
                })?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    tx.send_modify(|caught| caught.push(Caught::new(name, number)));
                }
            });
        }
        Ok(Signals { rx })
    }

    /// The first signal caught so far.
    pub(super) fn first(&self) -> Option<Caught> {
        self.rx.borrow().first().copied()
    }

    /// Resolves once `n` signals have been caught, with the `n`th.
    async fn nth(&self, n: usize) -> Caught {
        let mut rx = self.rx.clone();
        match rx.wait_for(|caught| caught.len() >= n).await {
            Ok(caught) => caught[n - 1],
            Err(_) => std::future::pending().await,
        }
    }

    /// `work` run to its end, unless the `n`th signal comes first: `Err` with that signal.
    /// A signal already caught wins over work that is ready too. The phases watch for the
    /// first signal (stop at the phase's boundary) and, while cleaning up, for the second.
    pub(super) async fn unless_nth<F: Future>(
        &self,
        n: usize,
        work: F,
    ) -> Result<F::Output, Caught> {
        tokio::select! {
            biased;
            caught = self.nth(n) => Err(caught),
            done = work => Ok(done),
        }
    }

    /// A signal caught while the run was being planned ends it before anything is made: it is
    /// said, and the exit code is the signal's.
    pub(super) fn stopped_before_start(&self) -> Option<ExitCode> {
        let caught = self.first()?;
        say(format!(
            "happy-istio: {} before anything was started; nothing to clean up",
            caught.name
        ));
        Some(ExitCode::from(caught.code))
    }
}

/// A second signal: leave at once. What can be cleaned up without waiting is: the process's own
/// children are killed, so no Envoy or Prometheus outlives the run, and then `owned` — the
/// provisioner's future or the teardown — is dropped, which removes what the process owns (the
/// sandbox's directory; a kind cluster being made). In that order: a child still running could
/// write into the directory while it is being removed and leave it behind. And first the
/// sandbox's runtime stops (re)starting containers: it would restart a killed Envoy at once, a
/// new child writing into the directory.
pub(super) fn force_exit<T>(caught: Caught, settings: &Settings, owned: T) -> ! {
    happy_istio::provision::sandbox::halt();
    let killed = kill_own_children();
    // A killed child finishes the system call it is in (Prometheus creating a file in its
    // data directory, say): removing the sandbox's directory while one still runs can leave
    // the directory behind. So wait until every killed child has stopped (gone, or a zombie
    // awaiting its reaper), polling within the timeout table's `delete`.
    let timeouts = happy_istio::timeouts::Timeouts::from_env().unwrap_or_default();
    let deadline = std::time::Instant::now() + timeouts.delete;
    while killed.iter().any(|pid| still_running(*pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(timeouts.poll_interval);
    }
    let killed = killed.len();
    drop(owned);
    say(format!(
        "happy-istio: {} again: exiting at once (killed {killed} child process(es)){}",
        caught.name,
        kept_note(settings)
    ));
    std::process::exit(caught.code.into())
}

/// What a forced exit may leave behind, to say so.
fn kept_note(settings: &Settings) -> String {
    match settings.cluster {
        ClusterChoice::Sandbox => String::new(),
        _ => format!(
            "; a cluster being made may be left (for kind: `kind delete cluster --name {}`)",
            settings.kind_cluster
        ),
    }
}

/// Whether process `pid` still runs: it exists and is not a zombie (`/proc/<pid>/stat`'s state,
/// proc_pid_stat(5)).
fn still_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s != "Z" && s != "X"))
        })
        .unwrap_or(false)
}

/// Kill every process whose parent is this process (Linux: from `/proc`). Returns their pids.
fn kill_own_children() -> Vec<i32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if parent_in_stat(&stat) == Some(me) {
            // SAFETY: kill(2) with a pid read from /proc whose parent is this process.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed.push(pid);
            }
        }
    }
    killed
}

/// The parent pid in a `/proc/<pid>/stat` line: `pid (comm) state ppid …`, where comm may hold
/// spaces and parentheses (proc_pid_stat(5)).
fn parent_in_stat(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<u32>().ok())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_running_process_runs_and_a_reaped_or_zombie_one_does_not() {
        assert!(still_running(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Exited, not yet reaped: a zombie once it has run (its state `Z`).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while still_running(pid) {
            assert!(std::time::Instant::now() < deadline, "`true` did not exit");
            std::thread::yield_now();
        }
        child.wait().unwrap();
        assert!(!still_running(pid), "a reaped process is gone");
    }

    const SIGINT: Caught = Caught {
        name: "SIGINT",
        code: 130,
    };
    const SIGTERM: Caught = Caught {
        name: "SIGTERM",
        code: 143,
    };

    /// Signals fed by the test instead of the process's signal handlers.
    fn signals() -> (Signals, watch::Sender<Vec<Caught>>) {
        let (tx, rx) = watch::channel(Vec::new());
        (Signals { rx }, tx)
    }

    fn catch(tx: &watch::Sender<Vec<Caught>>, caught: Caught) {
        tx.send_modify(|all| all.push(caught));
    }

    #[test]
    fn each_signal_ends_the_run_with_128_plus_its_number() {
        let codes: Vec<_> = STOPPING
            .iter()
            .map(|&(name, number)| Caught::new(name, number))
            .collect();
        assert_eq!(
            codes,
            [
                SIGINT,
                SIGTERM,
                Caught {
                    name: "SIGHUP",
                    code: 129
                }
            ]
        );
    }

    #[tokio::test]
    async fn without_a_signal_the_work_runs_to_its_end() {
        let (signals, _tx) = signals();
        assert_eq!(signals.unless_nth(1, async { 7 }).await, Ok(7));
        assert_eq!(signals.first(), None);
        assert!(signals.stopped_before_start().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_signal_stops_the_phase_in_progress() {
        let (signals, tx) = signals();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            catch(&tx, SIGTERM);
            tx
        });
        let work = tokio::time::sleep(Duration::from_secs(3600));
        assert_eq!(signals.unless_nth(1, work).await, Err(SIGTERM));
        let _tx = sender.await.unwrap();
        assert_eq!(signals.first(), Some(SIGTERM));
        assert_eq!(
            signals.stopped_before_start(),
            Some(ExitCode::from(143)),
            "a signal during planning ends the run with its code"
        );
    }

    #[tokio::test]
    async fn a_signal_already_caught_wins_over_work_that_is_ready() {
        let (signals, tx) = signals();
        catch(&tx, SIGINT);
        assert_eq!(signals.unless_nth(1, async {}).await, Err(SIGINT));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_first_signal_the_cleanup_runs_to_its_end() {
        let (signals, tx) = signals();
        catch(&tx, SIGINT);
        let cleanup = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "torn down"
        };
        assert_eq!(signals.unless_nth(2, cleanup).await, Ok("torn down"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_stops_the_cleanup_at_once() {
        let (signals, tx) = signals();
        catch(&tx, SIGINT);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            catch(&tx, SIGTERM);
            tx
        });
        let started = tokio::time::Instant::now();
        let cleanup = tokio::time::sleep(Duration::from_secs(3600));
        assert_eq!(signals.unless_nth(2, cleanup).await, Err(SIGTERM));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "not the cleanup's hour"
        );
        let _tx = sender.await.unwrap();
        assert_eq!(signals.first(), Some(SIGINT), "the first stays the first");
    }

    #[test]
    fn the_parent_is_read_after_the_command_name_whatever_it_holds() {
        assert_eq!(parent_in_stat("42 (envoy) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat("42 (a) b (c) R 9 42 42 0"), Some(9));
        assert_eq!(parent_in_stat("42 (x"), None);
    }

    #[test]
    fn a_forced_exit_names_the_kind_cluster_it_may_leave() {
        let mut settings = Settings::from_lookup(|_| None).unwrap();
        settings.cluster = ClusterChoice::Sandbox;
        assert_eq!(kept_note(&settings), "");
        settings.cluster = ClusterChoice::Kind;
        settings.kind_cluster = "mine".to_string();
        assert!(
            kept_note(&settings).contains("kind delete cluster --name mine"),
            "{}",
            kept_note(&settings)
        );
    }
}
