//! Container log buffers: the last lines a container wrote (bounded), with follow streams that
//! end when the container does — what `kubectl logs [-f] [--tail] [--timestamps]` reads — and,
//! once it has been restarted, its previous run's (`kubectl logs --previous`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::broadcast;

/// How many lines a container keeps.
pub const DEFAULT_LOG_LINES: usize = 10_000;

#[derive(Clone, Debug)]
struct Line {
    at: SystemTime,
    text: Arc<str>,
}

struct Inner {
    lines: VecDeque<Line>,
    /// The previous run's lines, once the container has been restarted.
    previous: Option<VecDeque<Line>>,
    /// Present while the container runs; dropping it ends every follower.
    live: Option<broadcast::Sender<Line>>,
}

/// One container's log.
pub struct LogBuffer {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(1024);
        Arc::new(Self {
            inner: Mutex::new(Inner {
                lines: VecDeque::new(),
                previous: None,
                live: Some(tx),
            }),
            capacity,
        })
    }

    /// Append `text`, one log line per `\n`-separated line (a trailing newline adds no empty
    /// line).
    pub fn write(&self, text: &str) {
        let at = SystemTime::now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for l in text.strip_suffix('\n').unwrap_or(text).split('\n') {
            let line = Line {
                at,
                text: Arc::from(l),
            };
            if let Some(tx) = &inner.live {
                // No followers is not a failure.
                let _ = tx.send(line.clone());
            }
            inner.lines.push_back(line);
            if inner.lines.len() > self.capacity {
                inner.lines.pop_front();
            }
        }
    }

    /// The container ended: followers get what is left, then their streams end.
    pub fn close(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .take();
    }

    /// The container starts again: what it wrote becomes the previous run's log, and the log
    /// starts empty, followed again. (Until then, as the kubelet does for a container waiting
    /// in back-off, a read gets the run that ended.)
    pub fn restart(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let lines = std::mem::take(&mut inner.lines);
        inner.previous = Some(lines);
        let (tx, _) = broadcast::channel(1024);
        inner.live = Some(tx);
    }

    /// The previous run's log (its last `tail` lines, all when `None`), if the container has
    /// been restarted.
    pub fn previous(
        &self,
        tail: Option<usize>,
        timestamps: bool,
    ) -> Option<Pin<Box<dyn Stream<Item = Bytes> + Send>>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let lines = inner.previous.as_ref()?;
        let skip = tail.map_or(0, |t| lines.len().saturating_sub(t));
        let backlog: Vec<Bytes> = lines
            .iter()
            .skip(skip)
            .map(|l| render(l, timestamps))
            .collect();
        Some(Box::pin(futures::stream::iter(backlog)))
    }

    /// All lines, as plain text (tests and diagnostics).
    pub fn text(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for l in &inner.lines {
            out.push_str(&l.text);
            out.push('\n');
        }
        out
    }

    /// The log as a stream of lines (each ending in `\n`): the last `tail` lines (all when
    /// `None`), then, with `follow`, new lines until the container ends.
    pub fn stream(
        &self,
        tail: Option<usize>,
        follow: bool,
        timestamps: bool,
    ) -> Pin<Box<dyn Stream<Item = Bytes> + Send>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = tail.map_or(0, |t| inner.lines.len().saturating_sub(t));
        let backlog: Vec<Bytes> = inner
            .lines
            .iter()
            .skip(skip)
            .map(|l| render(l, timestamps))
            .collect();
        // Subscribing under the same lock as the snapshot means no line is lost or repeated.
        let rx = if follow {
            inner.live.as_ref().map(|tx| tx.subscribe())
        } else {
            None
        };
        drop(inner);
        let backlog = futures::stream::iter(backlog);
        match rx {
            None => Box::pin(backlog),
            Some(rx) => {
                let live = futures::stream::unfold(rx, move |mut rx| async move {
                    loop {
                        match rx.recv().await {
                            Ok(line) => return Some((render(&line, timestamps), rx)),
                            // A slow follower skips what it missed rather than stalling the app.
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                });
                Box::pin(futures::StreamExt::chain(backlog, live))
            }
        }
    }
}

fn render(line: &Line, timestamps: bool) -> Bytes {
    if timestamps {
        let ts = jiff::Timestamp::try_from(line.at)
            .map(|t| format!("{t:.9}"))
            .unwrap_or_default();
        Bytes::from(format!("{ts} {}\n", line.text))
    } else {
        Bytes::from(format!("{}\n", line.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn collect(s: Pin<Box<dyn Stream<Item = Bytes> + Send>>) -> String {
        let parts: Vec<Bytes> = s.collect().await;
        parts
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[tokio::test]
    async fn tail_and_capacity() {
        let log = LogBuffer::new(3);
        log.write("a\nb\n");
        log.write("c\nd");
        assert_eq!(log.text(), "b\nc\nd\n");
        assert_eq!(collect(log.stream(Some(2), false, false)).await, "c\nd\n");
    }

    #[tokio::test]
    async fn follow_gets_new_lines_until_close() {
        let log = LogBuffer::new(100);
        log.write("old");
        let s = log.stream(None, true, false);
        let reader = tokio::spawn(collect(s));
        log.write("new");
        log.close();
        assert_eq!(reader.await.unwrap(), "old\nnew\n");
    }

    #[tokio::test]
    async fn a_restart_keeps_the_previous_run_and_starts_an_empty_followed_log() {
        let log = LogBuffer::new(10);
        assert!(log.previous(None, false).is_none(), "never restarted");
        log.write("first run\ncrashed");
        log.close();
        // In back-off the log is still the run that ended.
        assert_eq!(log.text(), "first run\ncrashed\n");
        log.restart();
        let follow = tokio::spawn(collect(log.stream(None, true, false)));
        log.write("second run");
        log.close();
        assert_eq!(follow.await.unwrap(), "second run\n");
        let previous = log.previous(Some(1), false).expect("restarted");
        assert_eq!(collect(previous).await, "crashed\n");
    }

    #[tokio::test]
    async fn timestamps_prefix_rfc3339() {
        let log = LogBuffer::new(10);
        log.write("x");
        let out = collect(log.stream(None, false, true)).await;
        assert!(out.ends_with("Z x\n"), "{out}");
        assert_eq!(out.split(' ').next().unwrap().len(), 30, "{out}");
    }
}
