//! Evidence: what a step observed, kept with the step in the run's reports, so that a reader
//! sees what the cluster answered (the living documentation shows it beside the workshop's own
//! sample output) and whoever debugs a failed step sees what it saw.
//!
//! A step calls [`record`] with a label and the text as a reader would see it (the pod table as
//! `kubectl get pods` prints it, the access-log line that matched, the tally of a batch…). The
//! text is cleaned of secrets and terminal noise ([`redact`]) and cut to a size a report can
//! hold ([`bound`]) before it leaves the step, then sent as a `tracing` event with target
//! [`TARGET`]. The step runner (`happy_steps`) turns those events into cucumber's step logs:
//! Cucumber JSON keeps them as the step's `embeddings`, and the recorder copies them into
//! `run.json`, for failed steps too. Outside a run (no subscriber), recording costs nothing.

use serde::{Deserialize, Serialize};

/// The `tracing` target of evidence events; the runner lets only these through.
pub const TARGET: &str = "happy::evidence";

/// How an evidence event's message begins (then the label, a line break, the text): how the
/// runner tells evidence from any other log line, and how a reader of Cucumber JSON sees it.
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
        Evidence {
            label: bound(
                &redact(label.lines().next().unwrap_or_default()),
                1,
                MAX_LABEL_BYTES,
            ),
            text: bound(&redact(text), MAX_LINES, MAX_BYTES),
        }
    }

    /// The log message that carries it ([`MARKER`], the label, a line break, the text).
    pub fn to_message(&self) -> String {
        format!("{MARKER}{}\n{}", self.label, self.text)
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

/// Record what the step in progress observed: `label` says what it is, `text` is what was seen.
pub fn record(label: &str, text: &str) {
    let evidence = Evidence::new(label, text);
    tracing::info!(target: TARGET, "{}", evidence.to_message());
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
    let text = text.trim_end();
    let total_lines = text.lines().count();
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
    fn a_message_carries_its_evidence_and_only_evidence_is_read_back() {
        let e = Evidence::new("the pods", "NAME READY\nservice-a 2/2");
        assert_eq!(Evidence::from_message(&e.to_message()), Some(e));
        assert_eq!(Evidence::from_message("some other log line"), None);
        let empty = Evidence::new("curl's exit code", "");
        assert_eq!(Evidence::from_message(&empty.to_message()), Some(empty));
    }
}
