//! Evidence: what a step observed, kept with the step in the run's reports, so that a reader
//! sees what the cluster answered (the living documentation shows it beside the workshop's own
//! sample output) and whoever debugs a failed step sees what it saw.
//!
//! A step calls [`record`] with a label and the text as a reader would see it (the pod table as
//! `kubectl get pods` prints it, the access-log line that matched, the tally of a batch…). The
//! text is cleaned of secrets and terminal noise ([`redact`]) and cut to a size a report can
//! hold ([`bound`]) before it leaves the step, and kept with the moment it was recorded while
//! the runner collects ([`collect`]). The runner's recorder (`happy_steps`) takes, at each
//! step's end, what was recorded between the step's start and end ([`take_between`], by
//! cucumber's own event times: scenarios run one at a time), hands it to Cucumber JSON as the
//! step's log (its `embeddings`) and copies it into `run.json`, for failed steps too. Outside a
//! run (nothing collecting), recording keeps nothing.
//!
//! Why not cucumber's `tracing` integration, which does the same attribution: its runner polls
//! for logs in a busy loop (cucumber 0.23 `runner/basic.rs`, `forward_logs`: `loop { …;
//! future::ready(()).then_yield().await }`) that kept a core busy for the whole run — the user
//! CPU of `--tags "@C01 or @C15 or @C16"` went from 16.5 s to 33 s for the same 23 s.

use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// How the log message that carries a piece of evidence in Cucumber JSON begins (then the
/// label, a line break, the text): how a reader of that report, or of `run.json` rebuilt from
/// it, tells evidence from any other log line.
pub const MARKER: &str = "[evidence] ";

/// At most this many lines of one piece of evidence are kept (a pod table, a batch's tally and
/// its bodies fit; a whole access log does not).
pub const MAX_LINES: usize = 60;

/// At most this many bytes of one piece of evidence are kept (cut at a character boundary).
pub const MAX_BYTES: usize = 6144;

/// At most this many bytes of a label (one line; a Prometheus query fits).
pub const MAX_LABEL_BYTES: usize = 400;

/// At most this many pieces of evidence are kept per step; more is a step recording in a loop.
pub const MAX_PER_STEP: usize = 8;

/// One piece of evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// What it is, in words: `the pods in istioinaction`, `the access-log line that matched`.
    pub label: String,
    /// What was observed, as a reader would see it, cleaned and bounded.
    pub text: String,
}

impl Evidence {
    /// Evidence with `label` and `text`, cleaned ([`redact`]) and bounded ([`bound`]).
    pub fn new(label: &str, text: &str) -> Evidence {
        // Redacting reads the whole text: a text far beyond what is kept is cut first (a PEM
        // block cut there still goes, `redact` removes an unterminated one too).
        let mut end = text.len().min(16 * MAX_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // The lines wholly in the part cut off, for the count of what was not kept.
        let beyond = text[end..].lines().count().saturating_sub(1);
        Evidence {
            label: bound(
                &redact(label.lines().next().unwrap_or_default()),
                1,
                MAX_LABEL_BYTES,
            ),
            text: bound_beyond(&redact(&text[..end]), MAX_LINES, MAX_BYTES, beyond),
        }
    }

    /// The log message that carries it ([`MARKER`], the label, a line break, the text, a line
    /// break: JUnit's writer puts a step's logs one after another in the scenario's output).
    pub fn to_message(&self) -> String {
        format!("{MARKER}{}\n{}\n", self.label, self.text)
    }

    /// The evidence a log message carries; `None` for any other message.
    pub fn from_message(message: &str) -> Option<Evidence> {
        let rest = message.strip_prefix(MARKER)?;
        let (label, text) = rest.split_once('\n').unwrap_or((rest, ""));
        Some(Evidence {
            label: label.to_string(),
            text: text.trim_end_matches('\n').to_string(),
        })
    }
}

/// At most this many pieces wait to be taken; beyond it the oldest go (a run whose recorder
/// stopped taking them must not grow without bound).
const MAX_WAITING: usize = 4096;

/// What was recorded and not yet taken, with when; `None` while nothing collects.
static WAITING: Mutex<Option<Vec<(SystemTime, Evidence)>>> = Mutex::new(None);

/// Keep what steps record from now on, until taken (the runner calls this once, at its start).
pub fn collect() {
    let mut waiting = WAITING.lock().unwrap_or_else(|p| p.into_inner());
    waiting.get_or_insert_with(Vec::new);
}

/// Record what the step in progress observed: `label` says what it is, `text` is what was seen.
/// Nothing is kept unless the runner collects.
pub fn record(label: &str, text: &str) {
    let at = SystemTime::now();
    let mut waiting = WAITING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(waiting) = waiting.as_mut() {
        if waiting.len() >= MAX_WAITING {
            waiting.remove(0);
        }
        waiting.push((at, Evidence::new(label, text)));
    }
}

/// What was recorded from `from` to `to` (both included), in order; whatever was recorded
/// before `to` is taken out (what came before `from` belonged to no step: it is dropped).
pub fn take_between(from: SystemTime, to: SystemTime) -> Vec<Evidence> {
    let mut waiting = WAITING.lock().unwrap_or_else(|p| p.into_inner());
    let Some(waiting) = waiting.as_mut() else {
        return Vec::new();
    };
    let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(waiting)
        .into_iter()
        .partition(|(at, _)| *at <= to);
    *waiting = kept;
    taken
        .into_iter()
        .filter(|(at, _)| *at >= from)
        .map(|(_, evidence)| evidence)
        .collect()
}

/// One step's evidence, in `run.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEvidence {
    /// The step as written (`Then some responses are 500 and some are 200`).
    pub step: String,
    /// Its line in the feature file.
    pub line: usize,
    pub evidence: Vec<Evidence>,
}

/// One scenario's evidence, in `run.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioEvidence {
    /// `Feature — Scenario`.
    pub scenario: String,
    /// Its steps that recorded evidence, in order.
    pub steps: Vec<StepEvidence>,
}

/// `text` without what must not reach a report: terminal escape sequences and other control
/// characters (tabs and line breaks stay), carriage returns, PEM blocks (certificates and keys
/// an `openssl` or `istioctl proxy-config secret` output would print), bearer tokens and
/// `Authorization` headers, and JSON Web Tokens (a service account's token).
pub fn redact(text: &str) -> String {
    use std::sync::LazyLock;

    use regex::Regex;
    // Each pattern is a literal of this file: compiling it cannot fail.
    fn compile(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap_or_else(|e| unreachable!("evidence pattern {pattern}: {e}"))
    }
    static ANSI: LazyLock<Regex> =
        LazyLock::new(|| compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|.)"));
    static PEM: LazyLock<Regex> = LazyLock::new(|| {
        compile(r"(?s)-----BEGIN ([A-Z0-9 ]+)-----.*?(-----END [A-Z0-9 ]+-----|\z)")
    });
    static AUTHORIZATION: LazyLock<Regex> =
        LazyLock::new(|| compile(r"(?im)^(\s*[<>]?\s*(proxy-)?authorization\s*:).*$"));
    static BEARER: LazyLock<Regex> =
        LazyLock::new(|| compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"));
    static JWT: LazyLock<Regex> =
        LazyLock::new(|| compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"));

    let text = ANSI.replace_all(text, "");
    let text: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    let text = PEM.replace_all(&text, "-----BEGIN $1----- (removed from the report)");
    let text = AUTHORIZATION.replace_all(&text, "$1 (removed from the report)");
    let text = BEARER.replace_all(&text, "$1 (removed from the report)");
    JWT.replace_all(&text, "(a token, removed from the report)")
        .into_owned()
}

/// `text` cut to at most `max_lines` lines and `max_bytes` bytes (at a character boundary),
/// saying how much was left out; trailing blank lines are dropped.
pub fn bound(text: &str, max_lines: usize, max_bytes: usize) -> String {
    bound_beyond(text, max_lines, max_bytes, 0)
}

/// [`bound`] of a text that had `beyond` more lines, already cut off.
fn bound_beyond(text: &str, max_lines: usize, max_bytes: usize, beyond: usize) -> String {
    let text = text.trim_end();
    let total_lines = text.lines().count() + beyond;
    let mut kept = String::new();
    let mut lines = 0;
    let mut cut = false;
    for line in text.lines() {
        if lines == max_lines {
            cut = true;
            break;
        }
        let room = max_bytes.saturating_sub(kept.len() + usize::from(lines > 0));
        if line.len() > room {
            if lines > 0 {
                kept.push('\n');
            }
            let mut end = room;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            kept.push_str(&line[..end]);
            kept.push('…');
            lines += 1;
            cut = true;
            break;
        }
        if lines > 0 {
            kept.push('\n');
        }
        kept.push_str(line);
        lines += 1;
    }
    if cut {
        let left = total_lines - lines;
        if left > 0 {
            kept.push_str(&format!(
                "\n… ({left} more line{} not kept)",
                if left == 1 { "" } else { "s" }
            ));
        } else {
            kept.push_str(" (cut: the rest of the line was not kept)");
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(bound("a\nb\n\n", 3, 100), "a\nb");
        assert_eq!(bound("", 3, 100), "");
    }

    #[test]
    fn lines_beyond_the_limit_are_counted_not_kept() {
        let text: String = (1..=70).map(|i| format!("line {i}\n")).collect();
        let kept = bound(&text, MAX_LINES, MAX_BYTES);
        assert_eq!(kept.lines().count(), MAX_LINES + 1);
        assert!(kept.starts_with("line 1\nline 2\n"));
        assert!(
            kept.contains("line 60\n… (10 more lines not kept)"),
            "{kept}"
        );
        assert!(!kept.contains("line 61"));
    }

    #[test]
    fn bytes_are_cut_at_a_character_boundary() {
        // "é" is two bytes: a cut in its middle must step back.
        let text = "ab".to_string() + &"é".repeat(10) + "\nnext";
        assert_eq!(bound(&text, 10, 5), "abé…\n… (1 more line not kept)");
        let one_line = bound(&"x".repeat(10_000), 40, MAX_BYTES);
        assert!(one_line.starts_with(&"x".repeat(MAX_BYTES)));
        assert!(one_line.ends_with("… (cut: the rest of the line was not kept)"));
        assert!(one_line.len() <= MAX_BYTES + 60);
    }

    #[test]
    fn every_piece_is_bounded_on_creation() {
        let huge = "y".repeat(100_000) + "\n" + &"z\n".repeat(1000);
        let e = Evidence::new("a label\nwith a second line", &huge);
        assert_eq!(e.label, "a label");
        assert!(e.text.len() <= MAX_BYTES + 60, "{}", e.text.len());
    }

    #[test]
    fn a_text_far_beyond_the_bound_counts_every_line_left_out() {
        let text: String = (0..20_000).map(|i| format!("line {i:05}\n")).collect();
        let e = Evidence::new("a long log", &text);
        assert!(
            e.text
                .ends_with(&format!("… ({} more lines not kept)", 20_000 - MAX_LINES)),
            "{}",
            e.text.lines().last().unwrap_or_default()
        );
    }

    #[test]
    fn terminal_escapes_and_control_characters_are_removed() {
        let colored = "\x1b[1;31mERROR\x1b[0m done\r\n\x07bell\x1b]0;title\x07\tok";
        assert_eq!(redact(colored), "ERROR done\nbell\tok");
    }

    #[test]
    fn pem_blocks_are_removed() {
        let text = "cert:\n-----BEGIN CERTIFICATE-----\nMIIB\nabcd\n-----END CERTIFICATE-----\nafter\n\
                    -----BEGIN RSA PRIVATE KEY-----\nMIIE\n";
        let clean = redact(text);
        assert!(
            !clean.contains("MIIB") && !clean.contains("MIIE"),
            "{clean}"
        );
        assert!(clean.contains("-----BEGIN CERTIFICATE----- (removed from the report)\nafter"));
        assert!(clean.contains("-----BEGIN RSA PRIVATE KEY----- (removed from the report)"));
    }

    #[test]
    fn tokens_and_authorization_headers_are_removed() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJl";
        let text = format!(
            "> Authorization: Basic dXNlcjpwYXNz\ncurl -H 'x: Bearer abc.def-123'\ntoken: {jwt}\n\
             authorization : Bearer zzz"
        );
        let clean = redact(&text);
        for secret in ["dXNlcjpwYXNz", "abc.def-123", jwt, "zzz"] {
            assert!(!clean.contains(secret), "{secret} in {clean}");
        }
        assert!(clean.contains("> Authorization: (removed from the report)"));
        assert!(clean.contains("Bearer (removed from the report)"));
        assert!(clean.contains("token: (a token, removed from the report)"));
    }

    #[test]
    fn what_the_workshop_shows_is_kept() {
        // The evidence the workshop's readers compare: none of it may be mistaken for a secret.
        let text = "NAME                         READY   STATUS    RESTARTS   AGE\n\
                    service-a-6d8f7c9b5d-x2x7k   2/2     Running   0          1m\n\
                    istio_requests_total{response_code=\"500\",destination_workload=\"service-c-v2\"} 7\n\
                    RBAC: access denied\n\
                    [2026-12-07T03:00:00.000Z] \"GET / HTTP/1.1\" 500 - via_upstream - \"-\" 0 110 3 2";
        assert_eq!(redact(text), text);
    }

    #[test]
    fn what_is_recorded_is_taken_by_the_step_whose_time_it_was_recorded_in() {
        // The process's one collector: this test is the only one that records.
        collect();
        let before = SystemTime::now();
        record("first step", "a");
        let between = SystemTime::now();
        record("second step", "b");
        record("second step", "c");
        let after = SystemTime::now();
        let first = take_between(before, between);
        assert_eq!(
            first.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        // Taken once: the same window again is empty.
        assert!(take_between(before, between).is_empty());
        let second = take_between(between, after);
        assert_eq!(
            second.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        // What came before a step's start is no step's: dropped when a later step is taken.
        record("stray", "x");
        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        assert!(take_between(later, later).is_empty());
        assert!(
            take_between(before, later).is_empty(),
            "the stray piece was dropped"
        );
    }

    #[test]
    fn a_message_carries_its_evidence_and_only_evidence_is_read_back() {
        let e = Evidence::new("the pods", "NAME READY\nservice-a 2/2");
        assert_eq!(Evidence::from_message(&e.to_message()), Some(e));
        assert_eq!(Evidence::from_message("some other log line"), None);
        let empty = Evidence::new("curl's exit code", "");
        assert_eq!(Evidence::from_message(&empty.to_message()), Some(empty));
    }
}
