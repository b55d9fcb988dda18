//! The workshop's services on the sandbox runtime: the upstream chain, the v2 failures, the
//! logs, the UI — checked through port-forward as the suite's C01–C04 do.

use crate::pod_addresses;
use crate::runtime_support;

use runtime_support::{Cluster, NS, app_pod};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_a_answers_with_the_upstream_chain() {
    let _pods = pod_addresses::shared().await;
    let c = Cluster::workshop().await;
    for _ in 0..5 {
        let (status, body, headers) = c.get("service-a-1", 8080, "/").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["name"], "service-a");
        assert_eq!(v["owner"], "dave");
        assert_eq!(v["type"], "HTTP");
        assert_eq!(v["uri"], "/");
        assert_eq!(v["body"], "Hello from service-a");
        assert_eq!(v["code"], 200);
        assert_eq!(v["ip_addresses"][0], c.ips["service-a-1"].to_string());
        let b = &v["upstream_calls"]["http://service-b"];
        let cc = &v["upstream_calls"]["http://service-c"];
        assert_eq!(b["name"], "service-b");
        assert_eq!(b["code"], 200);
        assert_eq!(b["uri"], "http://service-b");
        assert_eq!(b["ip_addresses"][0], c.ips["service-b-1"].to_string());
        assert_eq!(cc["name"], "service-c(v1)");
        assert_eq!(cc["code"], 200);
        assert!(
            body.starts_with("{\n  \"name\": \"service-a\",\n  \"owner\": \"dave\",\n"),
            "{body}"
        );
        assert!(body.ends_with("\n  \"code\": 200\n}\n"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_health_and_ready_are_served() {
    let _pods = pod_addresses::shared().await;
    let c = Cluster::workshop().await;
    // fake-service registers its UI as the subtree "/ui/": Go's ServeMux answers /ui with
    // 301 to /ui/ (nicholasjackson/fake-service main.go; golang/go net/http ServeMux).
    let (status, body, headers) = c.get("service-a-1", 8080, "/ui").await;
    assert_eq!(status, 301, "{body}");
    assert_eq!(headers["location"], "/ui/");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(body, "<a href=\"/ui/\">Moved Permanently</a>.\n\n");
    let (status, body, headers) = c.get("service-a-1", 8080, "/ui/").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(body.contains("<html"), "{body}");
    // http.FileServer sends .../index.html back to the directory.
    let (status, body, headers) = c.get("service-a-1", 8080, "/ui/index.html").await;
    assert_eq!(status, 301, "{body}");
    assert_eq!(headers["location"], "./");
    assert!(body.is_empty(), "{body}");
    assert_eq!(c.get("service-a-1", 8080, "/ui/missing.js").await.0, 404);
    assert_eq!(c.get("service-a-1", 8080, "/health").await.0, 200);
    assert_eq!(c.get("service-b-1", 8080, "/ready").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_v2_about_half_the_requests_fail_with_the_partial_chain() {
    let _pods = pod_addresses::shared().await;
    let mut c = Cluster::workshop().await;
    c.add_v2().await;
    let (mut ok, mut failed) = (0, 0);
    // 40 requests: with v2 failing every request and two endpoints, a run with no 500 (or no
    // 200) would have probability 2 * 0.5^40 if picks were random; round robin alternates.
    for _ in 0..40 {
        let (status, body, _) = c.get("service-a-1", 8080, "/").await;
        let v: Value = serde_json::from_str(&body).expect("JSON");
        match status {
            200 => ok += 1,
            500 => {
                failed += 1;
                assert_eq!(v["code"], 500);
                assert_eq!(v["upstream_calls"]["http://service-b"]["code"], 200);
                let cc = &v["upstream_calls"]["http://service-c"];
                assert_eq!(cc["code"], 500);
                assert_eq!(cc["name"], "service-c(v2)");
                assert_eq!(
                    cc["error"],
                    "Error processing upstream request: http://service-c/, expected code 200, got 500"
                );
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(ok >= 10 && failed >= 10, "ok={ok} failed={failed}");

    // v2 alone fails every request.
    for _ in 0..10 {
        let (status, body, _) = c.get("service-c-v2-1", 8080, "/").await;
        assert_eq!(status, 500, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["error"], "Service error automatically injected");
        assert_eq!(v["name"], "service-c(v2)");
    }

    // C04: the logs tell of the requests and never of errors.
    for pod in [
        "service-a-1",
        "service-b-1",
        "service-c-v1-1",
        "service-c-v2-1",
    ] {
        let log = c.logs(pod).await;
        assert!(log.contains("Handle inbound request"), "{pod}: {log}");
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.to_ascii_lowercase().contains("error"))
            .collect();
        assert!(bad.is_empty(), "{pod} logs mention errors: {bad:?}");
    }
    let log = c.logs("service-a-1").await;
    assert!(
        log.contains("[INFO]  Started service: name=service-a"),
        "{log}"
    );
    assert!(
        log.contains("Calling upstream service: uri=http://service-b/ type=HTTP"),
        "{log}"
    );
    assert!(log.contains("  | x-request-id: req-1"), "{log}");
    let _ = NS;
}

/// Upstream's image logs the errors it serves, the fork's (above) does not: C04's negative case
/// swaps the image (nicholasjackson/fake-service v0.26.2 logging/logger.go:113-128).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_fake_service_logs_its_injected_errors() {
    let _pods = pod_addresses::shared().await;
    let mut c = Cluster::workshop().await;
    let mut pod = app_pod(
        "service-c-v2-1",
        "service-c",
        "v2",
        &[
            ("NAME", "service-c(v2)"),
            ("ERROR_TYPE", "http_error"),
            ("ERROR_RATE", "0.6"),
            ("ERROR_CODE", "500"),
        ],
    );
    pod.spec.as_mut().expect("spec").containers[0].image =
        Some("nicholasjackson/fake-service:v0.26.2".into());
    c.run(&pod);
    c.wait_ready("service-c-v2-1").await;
    let (status, body, _) = c.get("service-c-v2-1", 8080, "/").await;
    assert_eq!(status, 500, "{body}");
    let log = c.logs("service-c-v2-1").await;
    assert!(
        log.contains(
            "[ERROR] Error handling request: error=\"Service error automatically injected\""
        ),
        "{log}"
    );
    // The fork's pods beside it still log no error.
    let (status, _, _) = c.get("service-a-1", 8080, "/").await;
    assert_eq!(status, 200);
    let log = c.logs("service-a-1").await;
    assert!(!log.to_ascii_lowercase().contains("error"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_headers_reach_the_upstreams() {
    let _pods = pod_addresses::shared().await;
    let c = Cluster::workshop().await;
    let (status, _, _) = c.get("service-a-1", 8080, "/").await;
    assert_eq!(status, 200);
    let log = c.logs("service-b-1").await;
    assert!(log.contains("  | x-request-id: req-1"), "{log}");
}
