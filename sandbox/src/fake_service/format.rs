//! Text formats fake-service inherits from Go: `time.Duration.String()`, its response time
//! format, and hashicorp/go-hclog's plain log lines.

use std::time::{Duration, SystemTime};

fn civil(at: SystemTime) -> Option<(jiff::civil::DateTime, i32)> {
    let ts = jiff::Timestamp::try_from(at).ok()?;
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    Some((dt, dt.subsec_nanosecond()))
}

/// `start_time`/`end_time`: Go layout `2006-01-02T15:04:05.000000` (container time zone: UTC).
pub(crate) fn response_time(at: SystemTime) -> String {
    match civil(at) {
        Some((d, ns)) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            ns / 1_000
        ),
        None => String::new(),
    }
}

/// hclog's time stamp: Go layout `2006-01-02T15:04:05.000Z0700` in UTC.
pub(crate) fn log_time(at: SystemTime) -> String {
    match civil(at) {
        Some((d, ns)) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            ns / 1_000_000
        ),
        None => String::new(),
    }
}

/// `value` in units of `unit` nanoseconds, with Go's trimmed decimal fraction.
fn fraction(value: u128, unit: u128) -> String {
    let int = value / unit;
    let rem = value % unit;
    if rem == 0 {
        return int.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// Go's `time.Duration.String()`: `0s`, `750ns`, `1.5µs`, `2.345ms`, `1.2s`, `1m30s`, `1h0m0s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", fraction(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", fraction(ns, 1_000_000));
    }
    let hours = ns / 3_600_000_000_000;
    let minutes = (ns / 60_000_000_000) % 60;
    let seconds = ns % 60_000_000_000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fraction(seconds, 1_000_000_000));
    out.push('s');
    out
}

/// Parse a Go duration such as `100ms`, `1.5s`, `2m` (for `ERROR_DELAY`).
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Some(Duration::from_secs_f64(total))
}

/// One hclog INFO entry as go-hclog's plain format writes it: time, `[INFO] `, message, then
/// `key=value` pairs; values with spaces are Go-quoted, multi-line values go on their own
/// `  | `-prefixed lines.
pub(crate) fn hclog_info(at: SystemTime, message: &str, fields: &[(&str, &str)]) -> String {
    hclog(at, "[INFO]", message, fields)
}

/// One hclog ERROR entry (go-hclog pads the level to 7 characters: `[ERROR] `).
pub(crate) fn hclog_error(at: SystemTime, message: &str, fields: &[(&str, &str)]) -> String {
    hclog(at, "[ERROR]", message, fields)
}

fn hclog(at: SystemTime, level: &str, message: &str, fields: &[(&str, &str)]) -> String {
    let mut out = format!("{} {level:<7} {message}", log_time(at));
    if !fields.is_empty() {
        out.push(':');
    }
    for (key, value) in fields {
        out.push(' ');
        if value.contains('\n') {
            out.push_str("\n  ");
            out.push_str(key);
            out.push_str("=\n");
            for line in value.split('\n') {
                out.push_str("  | ");
                out.push_str(line);
                out.push('\n');
            }
            out.push_str("  ");
        } else if value.is_empty() {
            out.push_str(&format!("{key}=\"\""));
        } else if value.contains([' ', '\t']) {
            out.push_str(&format!("{key}={}", go_quote(value)));
        } else {
            out.push_str(&format!("{key}={value}"));
        }
    }
    out.push('\n');
    out
}

/// Go's `strconv.Quote` for the printable strings logs carry.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_matches_go() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(750)), "750ns");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_nanos(2_345_678)), "2.345678ms");
        assert_eq!(go_duration(Duration::from_millis(1_200)), "1.2s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("fast"), None);
    }

    #[test]
    fn times_use_go_layouts() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(response_time(at), "2023-11-14T22:13:20.123456");
        assert_eq!(log_time(at), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn hclog_error_lines_pad_the_level_as_go_hclog_does() {
        assert_eq!(
            hclog_error(
                SystemTime::UNIX_EPOCH,
                "Error handling request",
                &[("error", "Service error automatically injected")]
            ),
            "1970-01-01T00:00:00.000Z [ERROR] Error handling request: error=\"Service error automatically injected\"\n"
        );
    }

    #[test]
    fn hclog_lines() {
        let at = SystemTime::UNIX_EPOCH;
        assert_eq!(
            hclog_info(
                at,
                "Started service",
                &[("name", "service-a"), ("upstreamWorkers", "1")]
            ),
            "1970-01-01T00:00:00.000Z [INFO]  Started service: name=service-a upstreamWorkers=1\n"
        );
        assert_eq!(
            hclog_info(at, "Calling upstream service", &[("msg", "a b")]),
            "1970-01-01T00:00:00.000Z [INFO]  Calling upstream service: msg=\"a b\"\n"
        );
        let multi = hclog_info(
            at,
            "Handle inbound request",
            &[("request", "GET / HTTP/1.1\nHost: a")],
        );
        assert_eq!(
            multi,
            "1970-01-01T00:00:00.000Z [INFO]  Handle inbound request: \n  request=\n  | GET / HTTP/1.1\n  | Host: a\n  \n"
        );
    }
}
