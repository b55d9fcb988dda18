//! curl as the workshop uses it from inside pods: exit codes mapped to what happened, and the
//! `-w '%{http_code}'` trailer that tells the status apart from the body.

use std::time::Duration;

use crate::error::{Error, Result};

/// What a curl run amounted to, from its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurlOutcome {
    /// Exit 0: a response was received (any HTTP status; curl without `-f`).
    Completed,
    /// Exit 6: the host name did not resolve.
    CouldNotResolveHost,
    /// Exit 7: the connection was refused or could not be made.
    CouldNotConnect,
    /// Exit 28: the operation timed out.
    TimedOut,
    /// Exit 52: the server closed the connection without replying.
    EmptyReply,
    /// Exit 56: failure receiving data, e.g. "Connection reset by peer" — what a non-mesh
    /// client sees under STRICT mTLS.
    ConnectionReset,
    /// Any other exit code.
    Other(i32),
}

/// Maps a curl exit code to its outcome.
pub fn curl_outcome(exit_code: i32) -> CurlOutcome {
    match exit_code {
        0 => CurlOutcome::Completed,
        6 => CurlOutcome::CouldNotResolveHost,
        7 => CurlOutcome::CouldNotConnect,
        28 => CurlOutcome::TimedOut,
        52 => CurlOutcome::EmptyReply,
        56 => CurlOutcome::ConnectionReset,
        other => CurlOutcome::Other(other),
    }
}

impl std::fmt::Display for CurlOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CurlOutcome::Completed => write!(f, "completed (exit 0)"),
            CurlOutcome::CouldNotResolveHost => write!(f, "could not resolve host (exit 6)"),
            CurlOutcome::CouldNotConnect => write!(f, "could not connect (exit 7)"),
            CurlOutcome::TimedOut => write!(f, "timed out (exit 28)"),
            CurlOutcome::EmptyReply => write!(f, "empty reply from server (exit 52)"),
            CurlOutcome::ConnectionReset => {
                write!(f, "failure receiving data / connection reset (exit 56)")
            }
            CurlOutcome::Other(code) => write!(f, "failed (exit {code})"),
        }
    }
}

/// The `-w` format [`curl_command`] appends: a newline, then the status code.
pub(crate) const WRITE_OUT: &str = "\n%{http_code}";

/// A curl command line for `exec`: silent but showing errors, bounded by `max_time`, printing
/// the body and then, on a line of its own, the HTTP status (`000` when there was none).
pub fn curl_command(url: &str, max_time: Duration) -> Vec<String> {
    let secs = max_time.as_secs().max(1);
    vec![
        "curl".into(),
        "-sS".into(),
        "--max-time".into(),
        secs.to_string(),
        "-w".into(),
        WRITE_OUT.into(),
        url.into(),
    ]
}

/// The outcome of a curl run made with [`curl_command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlResult {
    /// What the exit code says.
    pub outcome: CurlOutcome,
    /// The HTTP status, `None` when curl printed `000` (no response).
    pub http_code: Option<u16>,
    /// The response body (without the status trailer).
    pub body: String,
}

impl CurlResult {
    /// Splits stdout of a [`curl_command`] run into body and status.
    pub fn from_output(exit_code: i32, stdout: &str) -> Result<Self> {
        let (body, code) = match stdout.rfind('\n') {
            Some(i) => (&stdout[..i], &stdout[i + 1..]),
            None => ("", stdout),
        };
        Ok(CurlResult {
            outcome: curl_outcome(exit_code),
            http_code: parse_http_code(code)?,
            body: body.to_string(),
        })
    }
}

/// Parses curl's `%{http_code}`: three digits, `000` meaning "no response".
pub(crate) fn parse_http_code(text: &str) -> Result<Option<u16>> {
    let t = text.trim();
    let bad = || Error::Parse {
        what: "curl's %{http_code} output".into(),
        message: format!("expected three digits, got {t:?}"),
    };
    if t.len() != 3 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let code: u16 = t.parse().map_err(|_| bad())?;
    Ok((code != 0).then_some(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_outcomes() {
        assert_eq!(curl_outcome(0), CurlOutcome::Completed);
        assert_eq!(curl_outcome(6), CurlOutcome::CouldNotResolveHost);
        assert_eq!(curl_outcome(7), CurlOutcome::CouldNotConnect);
        assert_eq!(curl_outcome(28), CurlOutcome::TimedOut);
        assert_eq!(curl_outcome(52), CurlOutcome::EmptyReply);
        assert_eq!(curl_outcome(56), CurlOutcome::ConnectionReset);
        assert_eq!(curl_outcome(35), CurlOutcome::Other(35));
        assert_eq!(curl_outcome(126), CurlOutcome::Other(126));
        assert!(curl_outcome(56).to_string().contains("56"));
    }

    #[test]
    fn http_code_trailer() {
        assert_eq!(parse_http_code("200").unwrap(), Some(200));
        assert_eq!(parse_http_code("403\n").unwrap(), Some(403));
        assert_eq!(parse_http_code("000").unwrap(), None);
        for bad in ["", "20", "2000", "OK!", "-12"] {
            let err = parse_http_code(bad).unwrap_err().to_string();
            assert!(err.contains("http_code"), "{err}");
        }
    }

    #[test]
    fn splits_body_and_status() {
        let r = CurlResult::from_output(0, "RBAC: access denied\n403").unwrap();
        assert_eq!(r.outcome, CurlOutcome::Completed);
        assert_eq!(r.http_code, Some(403));
        assert_eq!(r.body, "RBAC: access denied");

        let json = "{\n  \"name\": \"service-a\"\n}\n\n200";
        let r = CurlResult::from_output(0, json).unwrap();
        assert_eq!(r.http_code, Some(200));
        assert_eq!(r.body, "{\n  \"name\": \"service-a\"\n}\n");

        // STRICT mTLS: reset, no response at all
        let r = CurlResult::from_output(56, "\n000").unwrap();
        assert_eq!(r.outcome, CurlOutcome::ConnectionReset);
        assert_eq!(r.http_code, None);
        assert_eq!(r.body, "");
        let r = CurlResult::from_output(56, "000").unwrap();
        assert_eq!(r.http_code, None);
    }

    #[test]
    fn command_line_matches_the_parser() {
        let cmd = curl_command(
            "http://service-a.istioinaction/",
            Duration::from_millis(10_500),
        );
        assert_eq!(cmd[0], "curl");
        assert!(cmd.windows(2).any(|w| w[0] == "--max-time" && w[1] == "10"));
        assert!(cmd.windows(2).any(|w| w[0] == "-w" && w[1] == WRITE_OUT));
        assert_eq!(
            cmd.last().map(String::as_str),
            Some("http://service-a.istioinaction/")
        );
    }
}
