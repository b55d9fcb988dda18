//! Istio's default Envoy access-log format, as its sidecars write it to the istio-proxy
//! container log:
//!
//! ```text
//! [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
//! %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
//! "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//! "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
//! %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
//! %REQUESTED_SERVER_NAME% %ROUTE_NAME%
//! ```
//!
//! Istio 1.22 writes `%UPSTREAM_CLUSTER%` where 1.23 on (proxies ≥ 1.23; pilot/pkg/model/
//! telemetry_logging.go at 1.23.0, commit 2d569b66563) write `%UPSTREAM_CLUSTER_RAW%`;
//! both are one unquoted token, so one parser reads every version. Envoy writes `-` for an
//! empty value and replaces whitespace in the response-code details, so only the quoted
//! fields can contain spaces.

/// How often a sidecar's Envoy writes its buffered access-log entries out: pilot-agent starts
/// Envoy with `--file-flush-interval-msec 1000` (istio/istio 1.28.0 `pkg/envoy/proxy.go` line
/// 140; from 1.29 on the same default, overridable by ProxyConfig `fileFlushInterval`,
/// `pkg/envoy/proxy.go` lines 131-134 on master), where Envoy alone would wait 10 s. An entry
/// is in the container log at most this long after its request ended.
pub const ISTIO_ACCESS_LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// One access-log line, field by field (`-` kept as written, except where noted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    /// `%START_TIME%`, e.g. `2020-11-25T21:26:18.409Z`.
    pub start_time: String,
    /// HTTP method, `-` for TCP.
    pub method: String,
    /// Request path, `-` for TCP.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2`, or `-` for TCP.
    pub protocol: String,
    /// HTTP status; `None` where Envoy wrote 0 (TCP, or no response at all).
    pub response_code: Option<u16>,
    /// Envoy's response flags, e.g. `-`, `UF`, `URX`.
    pub response_flags: String,
    /// e.g. `via_upstream`, `rbac_access_denied_matched_policy[none]`.
    pub response_code_details: String,
    /// Why Envoy terminated the connection, `-` if it did not.
    pub connection_termination_details: String,
    /// e.g. `-` or a TLS error.
    pub upstream_transport_failure_reason: String,
    /// Bytes received from the downstream.
    pub bytes_received: u64,
    /// Bytes sent to the downstream.
    pub bytes_sent: u64,
    /// Total duration in milliseconds.
    pub duration_ms: u64,
    /// `x-envoy-upstream-service-time` in milliseconds, `None` for `-`.
    pub upstream_service_time_ms: Option<u64>,
    /// `x-forwarded-for`.
    pub x_forwarded_for: String,
    /// `user-agent`.
    pub user_agent: String,
    /// `x-request-id`.
    pub request_id: String,
    /// `:authority` (Host).
    pub authority: String,
    /// The upstream's address, e.g. `10.44.1.27:80`.
    pub upstream_host: String,
    /// e.g. `outbound|80||service-b.istioinaction.svc.cluster.local` or `inbound|8080||`.
    pub upstream_cluster: String,
    /// Local address of the upstream connection.
    pub upstream_local_address: String,
    /// Local address of the downstream connection.
    pub downstream_local_address: String,
    /// The downstream peer's address.
    pub downstream_remote_address: String,
    /// SNI, e.g. `outbound_.80_._.service-a.istioinaction.svc.cluster.local`.
    pub requested_server_name: String,
    /// Route name, e.g. `default`.
    pub route_name: String,
}

impl AccessLogEntry {
    /// True for a line the inbound side of a sidecar wrote (`inbound|…` cluster).
    #[cfg(test)] // only the tests use it
    pub fn is_inbound(&self) -> bool {
        self.upstream_cluster.starts_with("inbound|")
    }

    /// True for a line the outbound side wrote (`outbound|…` cluster).
    #[cfg(test)] // only the tests use it
    pub fn is_outbound(&self) -> bool {
        self.upstream_cluster.starts_with("outbound|")
    }
}

const FIELDS: usize = 22;

/// Parses one line of the default format; anything else (Envoy's and istio-agent's own
/// logs, custom formats, truncated lines) gives `None`.
pub fn parse_access_log_line(line: &str) -> Option<AccessLogEntry> {
    let tokens = tokenize(line.trim())?;
    if tokens.len() != FIELDS {
        return None;
    }
    let start_time = tokens[0].strip_prefix('[')?.strip_suffix(']')?;
    let request = tokens[1].strip_prefix('"')?.strip_suffix('"')?;
    let mut parts = request.split(' ');
    let (method, path, protocol) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let quoted = |i: usize| -> Option<String> {
        tokens[i]
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .map(str::to_string)
    };
    let plain = |i: usize| -> Option<String> {
        (!tokens[i].starts_with('"') && !tokens[i].starts_with('[')).then(|| tokens[i].to_string())
    };
    let number = |i: usize| tokens[i].parse::<u64>().ok();
    Some(AccessLogEntry {
        start_time: start_time.to_string(),
        method: method.to_string(),
        path: path.to_string(),
        protocol: protocol.to_string(),
        response_code: match tokens[2].parse::<u16>().ok()? {
            0 => None,
            code => Some(code),
        },
        response_flags: plain(3)?,
        response_code_details: plain(4)?,
        connection_termination_details: plain(5)?,
        upstream_transport_failure_reason: quoted(6)?,
        bytes_received: number(7)?,
        bytes_sent: number(8)?,
        duration_ms: number(9)?,
        upstream_service_time_ms: match tokens[10] {
            "-" => None,
            t => Some(t.parse().ok()?),
        },
        x_forwarded_for: quoted(11)?,
        user_agent: quoted(12)?,
        request_id: quoted(13)?,
        authority: quoted(14)?,
        upstream_host: quoted(15)?,
        upstream_cluster: plain(16)?,
        upstream_local_address: plain(17)?,
        downstream_local_address: plain(18)?,
        downstream_remote_address: plain(19)?,
        requested_server_name: plain(20)?,
        route_name: plain(21)?,
    })
}

/// Splits on whitespace, keeping `[…]` and `"…"` (which may contain spaces) whole.
fn tokenize(line: &str) -> Option<Vec<&str>> {
    let mut tokens = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some(tokens);
        }
        let end = match rest.as_bytes()[0] {
            b'[' => rest.find(']')? + 1,
            b'"' => rest[1..].find('"')? + 2,
            _ => rest.find(char::is_whitespace).unwrap_or(rest.len()),
        };
        tokens.push(&rest[..end]);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From Istio's access-log task (curl → httpbin), identical in 1.22 (%UPSTREAM_CLUSTER%)
    // and 1.23+ (%UPSTREAM_CLUSTER_RAW%) for these requests.
    const DOCS_OUTBOUND: &str = r#"[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default"#;
    const DOCS_INBOUND: &str = r#"[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 3 1 "-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "127.0.0.1:80" inbound|8000|| 127.0.0.1:41854 10.44.1.27:80 10.44.1.23:37652 outbound_.8000_._.httpbin.foo.svc.cluster.local default"#;
    // service-a's sidecar after service-c(v2) failed (inbound, from the ingress gateway).
    const WORKSHOP_500: &str = r#"[2024-05-01T10:00:01.123Z] "GET / HTTP/1.1" 500 - via_upstream - "-" 0 1143 5 4 "10.244.0.1" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36" "0b7c6a9e-7c1f-9d5c-a4f4-3c3f4b3f6e10" "localhost:8080" "10.244.0.7:8080" inbound|8080|| 127.0.0.6:47257 10.244.0.7:8080 10.244.0.1:0 outbound_.80_._.service-a.istioinaction.svc.cluster.local default"#;
    const RBAC_DENIED: &str = r#"[2024-05-01T10:05:00.000Z] "GET / HTTP/1.1" 403 - rbac_access_denied_matched_policy[none] - "-" 0 19 0 - "-" "curl/8.5.0" "2c1b5d2e-0000-4000-8000-000000000001" "service-a.istioinaction.svc.cluster.local" "-" inbound|8080|| - 10.244.0.7:8080 10.244.0.8:51234 outbound_.80_._.service-a.istioinaction.svc.cluster.local -"#;
    const UPSTREAM_RESET: &str = r#"[2024-05-01T10:06:00.000Z] "GET / HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{connection_failure} - "TLS_error:_268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED" 0 91 10 - "-" "fake-service" "aa-bb" "service-c" "10.244.0.9:8080" outbound|80||service-c.istioinaction.svc.cluster.local - 10.96.12.4:80 10.244.0.7:40404 - default"#;
    const TCP: &str = r#"[2024-05-01T10:07:00.000Z] "- - -" 0 - - - "-" 1048 2398 34 - "-" "-" "-" "-" "10.244.0.9:9000" outbound|9000||tcp-echo.default.svc.cluster.local 10.244.0.7:40000 10.96.0.10:9000 10.244.0.7:39999 - -"#;

    #[test]
    fn docs_lines() {
        let out = parse_access_log_line(DOCS_OUTBOUND).unwrap();
        assert_eq!(out.start_time, "2020-11-25T21:26:18.409Z");
        assert_eq!(
            (
                out.method.as_str(),
                out.path.as_str(),
                out.protocol.as_str()
            ),
            ("GET", "/status/418", "HTTP/1.1")
        );
        assert_eq!(out.response_code, Some(418));
        assert_eq!(out.response_flags, "-");
        assert_eq!(out.response_code_details, "via_upstream");
        assert_eq!(out.connection_termination_details, "-");
        assert_eq!(out.upstream_transport_failure_reason, "-");
        assert_eq!(
            (out.bytes_received, out.bytes_sent, out.duration_ms),
            (0, 135, 4)
        );
        assert_eq!(out.upstream_service_time_ms, Some(4));
        assert_eq!(out.user_agent, "curl/7.73.0-DEV");
        assert_eq!(out.request_id, "84961386-6d84-929d-98bd-c5aee93b5c88");
        assert_eq!(out.authority, "httpbin:8000");
        assert_eq!(out.upstream_host, "10.44.1.27:80");
        assert_eq!(
            out.upstream_cluster,
            "outbound|8000||httpbin.foo.svc.cluster.local"
        );
        assert!(out.is_outbound() && !out.is_inbound());
        assert_eq!(out.upstream_local_address, "10.44.1.23:37652");
        assert_eq!(out.downstream_local_address, "10.0.45.184:8000");
        assert_eq!(out.downstream_remote_address, "10.44.1.23:46520");
        assert_eq!(out.requested_server_name, "-");
        assert_eq!(out.route_name, "default");

        let inb = parse_access_log_line(DOCS_INBOUND).unwrap();
        assert!(inb.is_inbound());
        assert_eq!(inb.upstream_cluster, "inbound|8000||");
        assert_eq!(
            inb.requested_server_name,
            "outbound_.8000_._.httpbin.foo.svc.cluster.local"
        );
        assert_eq!(inb.upstream_service_time_ms, Some(1));
    }

    #[test]
    fn workshop_lines() {
        let e = parse_access_log_line(WORKSHOP_500).unwrap();
        assert_eq!(e.response_code, Some(500));
        assert!(
            e.user_agent.contains("(KHTML, like Gecko)"),
            "quoted field with spaces"
        );
        assert_eq!(e.x_forwarded_for, "10.244.0.1");
        assert!(e.is_inbound());

        let d = parse_access_log_line(RBAC_DENIED).unwrap();
        assert_eq!(d.response_code, Some(403));
        assert_eq!(
            d.response_code_details,
            "rbac_access_denied_matched_policy[none]"
        );
        assert_eq!(d.upstream_service_time_ms, None);
        assert_eq!(d.upstream_host, "-");
        assert_eq!(d.route_name, "-");

        let r = parse_access_log_line(UPSTREAM_RESET).unwrap();
        assert_eq!(r.response_code, Some(503));
        assert_eq!(r.response_flags, "UF,URX");
        assert!(
            r.upstream_transport_failure_reason
                .contains("CERTIFICATE_VERIFY_FAILED")
        );

        let t = parse_access_log_line(TCP).unwrap();
        assert_eq!((t.method.as_str(), t.response_code), ("-", None));
        assert_eq!(t.bytes_sent, 2398);
    }

    #[test]
    fn other_lines_are_not_access_logs() {
        for line in [
            "",
            "2024-05-01T10:00:00.000000Z\tinfo\tEnvoy proxy is ready",
            "2024-05-01T10:00:00.000Z [INFO]  Handle inbound request: request=\"GET / HTTP/1.1\"",
            "[2024-05-01 10:00:00.000][15][warning][config] gRPC config stream closed",
            // truncated after the status
            r#"[2024-05-01T10:00:01.123Z] "GET / HTTP/1.1" 500 - via_upstream"#,
            // status not a number
            &DOCS_OUTBOUND.replace(" 418 - via", " abc - via"),
            // an unterminated quote
            r#"[2024-05-01T10:00:01.123Z] "GET / HTTP/1.1 500"#,
        ] {
            assert_eq!(parse_access_log_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn finds_the_500s_in_a_container_log() {
        let log = format!(
            "2024-05-01T09:59:59.000000Z\tinfo\tReadiness succeeded in 1.2s\n{DOCS_INBOUND}\n{WORKSHOP_500}\n{RBAC_DENIED}\n"
        );
        let codes: Vec<u16> = log
            .lines()
            .filter_map(parse_access_log_line)
            .filter_map(|e| e.response_code)
            .collect();
        assert_eq!(codes, vec![418, 500, 403]);
    }

    /// istio/istio `pilot/pkg/model/telemetry_logging.go`, `EnvoyTextLogFormat`, identical at
    /// 1.28.0 and 1.31.0-rc.0 (the default text format of `meshConfig.accessLogFile`).
    const ENVOY_TEXT_LOG_FORMAT: &str = concat!(
        "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% ",
        "%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% ",
        "%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ",
        "\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% ",
        "%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" ",
        "\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" ",
        "%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% ",
        "%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
    );

    /// A line made from Istio's own format string, operator by operator, as service-a's
    /// sidecar writes it for a request from the ingress gateway that service-c v2 failed.
    #[test]
    fn a_line_made_from_istios_format_string_parses_field_by_field() {
        let values = [
            ("%START_TIME%", "2026-12-01T09:00:00.123Z"),
            ("%REQ(:METHOD)%", "GET"),
            ("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "/"),
            ("%PROTOCOL%", "HTTP/1.1"),
            ("%RESPONSE_CODE%", "500"),
            ("%RESPONSE_FLAGS%", "-"),
            ("%RESPONSE_CODE_DETAILS%", "via_upstream"),
            ("%CONNECTION_TERMINATION_DETAILS%", "-"),
            ("%UPSTREAM_TRANSPORT_FAILURE_REASON%", "-"),
            ("%BYTES_RECEIVED%", "0"),
            ("%BYTES_SENT%", "1143"),
            ("%DURATION%", "5"),
            ("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "4"),
            ("%REQ(X-FORWARDED-FOR)%", "10.244.0.1"),
            ("%REQ(USER-AGENT)%", "happy-istio"),
            (
                "%REQ(X-REQUEST-ID)%",
                "0b7c6a9e-7c1f-9d5c-a4f4-3c3f4b3f6e10",
            ),
            ("%REQ(:AUTHORITY)%", "localhost:8080"),
            ("%UPSTREAM_HOST%", "10.244.0.7:8080"),
            ("%UPSTREAM_CLUSTER_RAW%", "inbound|8080||"),
            ("%UPSTREAM_LOCAL_ADDRESS%", "127.0.0.6:47257"),
            ("%DOWNSTREAM_LOCAL_ADDRESS%", "10.244.0.7:8080"),
            ("%DOWNSTREAM_REMOTE_ADDRESS%", "10.244.0.5:53012"),
            (
                "%REQUESTED_SERVER_NAME%",
                "outbound_.80_._.service-a.istioinaction.svc.cluster.local",
            ),
            ("%ROUTE_NAME%", "default"),
        ];
        let mut line = ENVOY_TEXT_LOG_FORMAT.to_string();
        for (operator, value) in values {
            assert!(
                line.contains(operator),
                "{operator} is not in Istio's format"
            );
            line = line.replacen(operator, value, 1);
        }
        assert!(!line.contains('%'), "an operator was left: {line}");
        let e = parse_access_log_line(&line).expect("Istio's default format parses");
        assert_eq!(e.start_time, "2026-12-01T09:00:00.123Z");
        assert_eq!((e.method.as_str(), e.path.as_str()), ("GET", "/"));
        assert_eq!(e.response_code, Some(500));
        assert_eq!(e.response_code_details, "via_upstream");
        assert_eq!(
            (e.bytes_received, e.bytes_sent, e.duration_ms),
            (0, 1143, 5)
        );
        assert_eq!(e.upstream_service_time_ms, Some(4));
        assert_eq!(e.user_agent, "happy-istio");
        assert_eq!(e.authority, "localhost:8080");
        assert!(e.is_inbound());
        assert_eq!(e.downstream_remote_address, "10.244.0.5:53012");
        assert_eq!(e.route_name, "default");
    }
}
