//! The mesh core on real Envoy: injection gives 2/2 pods, the a → b → c chain runs through the
//! sidecars, and the ingress gateway routes to service-a.

use crate::mesh_support;
use crate::pod_addresses;

use kube::ResourceExt;
use mesh_support::{MeshCluster, NS};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_are_injected_and_the_chain_runs_through_envoy() {
    let _pods = pod_addresses::shared().await;
    let c = MeshCluster::workshop(false).await;
    let a = c.pod(NS, "service-a").await;
    let spec = a.spec.clone().unwrap();
    let inits = spec.init_containers.clone().unwrap_or_default();
    assert!(
        inits
            .iter()
            .any(|i| i.name == "istio-proxy" && i.restart_policy.as_deref() == Some("Always")),
        "native sidecar injected: {inits:?}"
    );
    let (status, body) = c.get(NS, &a.name_any(), 8080, "/").await.expect("request");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        v["upstream_calls"]["http://service-b"]["code"], 200,
        "{body}"
    );
    assert_eq!(
        v["upstream_calls"]["http://service-c"]["code"], 200,
        "{body}"
    );
    // Through Envoy, with mTLS between the sidecars.
    let b = c.pod(NS, "service-b").await;
    assert!(
        stat(
            &a,
            "cluster.outbound|80||service-b.istioinaction.svc.cluster.local.upstream_rq_total"
        )
        .await
            >= 1
    );
    assert!(
        stat(
            &b,
            "listener.${ip}_15006.ssl.handshake"
                .replace(
                    "${ip}",
                    b.status.as_ref().unwrap().pod_ip.as_deref().unwrap()
                )
                .as_str()
        )
        .await
            >= 1
    );
    let log = c.logs(NS, &a.name_any(), "istio-proxy").await;
    assert!(log.contains("Envoy proxy is ready"), "{log}");
    c.sandbox.shutdown().await;
}

/// GET `/` through the ingress gateway until it answers 200 (the Gateway and VirtualService
/// have reached the gateway's Envoy).
async fn gateway_converged(c: &MeshCluster) {
    mesh_support::eventually(
        "the ingress gateway to route to service-a",
        mesh_support::LIMIT,
        || async {
            match c.via_gateway("/").await {
                Ok((200, body)) if body.contains("\"name\": \"service-a\"") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_gateway_routes_to_service_a_and_v2_errors_show() {
    let _pods = pod_addresses::shared().await;
    let c = MeshCluster::workshop(true).await;
    c.apply(NS, "service-a-gateway.yaml").await;
    c.apply(NS, "service-a-route.yaml").await;
    gateway_converged(&c).await;
    // 30 requests: P(no 500 | half go to v2) = 0.5^30 < 1e-9.
    let mut codes = Vec::new();
    for _ in 0..30 {
        let (status, body) = c.via_gateway("/").await.expect("request");
        assert!(body.contains("service-a"), "{body}");
        codes.push(status);
    }
    assert!(codes.contains(&500) && codes.contains(&200), "{codes:?}");
    // The gateway passes fake-service's subtree redirect through; the page is at /ui/.
    let (status, body) = c.via_gateway("/ui").await.expect("UI");
    assert_eq!(status, 301, "{body}");
    assert!(body.contains("href=\"/ui/\""), "{body}");
    let (status, body) = c.via_gateway("/ui/").await.expect("UI");
    assert_eq!(status, 200);
    assert!(
        body.contains("<html") || body.to_lowercase().contains("<!doctype html"),
        "{body}"
    );
    c.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_to_v1_gives_only_v1_and_mirroring_reaches_v2() {
    let _pods = pod_addresses::shared().await;
    let c = MeshCluster::workshop(true).await;
    c.apply(NS, "service-a-gateway.yaml").await;
    c.apply(NS, "service-a-route.yaml").await;
    gateway_converged(&c).await;
    c.apply(NS, "service-c-dr.yaml").await;
    c.apply(NS, "service-c-route.yaml").await;
    // Converged once 30 consecutive requests succeed: before the route, each fails with
    // P ≈ 0.5 (v2), so a false "converged" has P ≤ 0.5^30 < 1e-9. Then 30 more must.
    mesh_support::eventually("the route to v1", mesh_support::LIMIT, || async {
        for _ in 0..30 {
            match c.via_gateway("/").await {
                Ok((200, _)) => {}
                other => return Err(format!("{other:?}")),
            }
        }
        Ok(())
    })
    .await;
    for i in 0..30 {
        let (status, body) = c.via_gateway("/").await.expect("request");
        assert_eq!(status, 200, "request {i}: {body}");
        assert!(
            body.contains("service-c(v1)") && !body.contains("service-c(v2)"),
            "{body}"
        );
    }

    let v2 = c.pod(NS, "service-c").await;
    let v2 = if v2.labels().get("version").map(String::as_str) == Some("v2") {
        v2
    } else {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(c.client.clone(), NS);
        api.list(&kube::api::ListParams::default().labels("app=service-c,version=v2"))
            .await
            .unwrap()
            .items
            .remove(0)
    };
    let inbound = "http.inbound_0.0.0.0_8080.downstream_rq_total";
    let before = stat(&v2, inbound).await;
    c.apply(NS, "service-c-mirror.yaml").await;
    // The mirror is in place once v2 starts receiving copies.
    mesh_support::eventually(
        "v2 to receive mirrored requests",
        mesh_support::LIMIT,
        || async {
            let (status, body) = c.via_gateway("/").await?;
            if status != 200 {
                return Err(format!("{status}: {body}"));
            }
            let now = stat(&v2, inbound).await;
            if now > before {
                Ok(())
            } else {
                Err(format!("v2 inbound requests still {now}"))
            }
        },
    )
    .await;
    let start = stat(&v2, inbound).await;
    for i in 0..30 {
        let (status, body) = c.via_gateway("/").await.expect("request");
        assert_eq!(status, 200, "request {i} while mirroring: {body}");
        assert!(!body.contains("service-c(v2)"), "{body}");
    }
    mesh_support::eventually(
        "v2 to count 30 mirrored requests",
        mesh_support::LIMIT,
        || async {
            let now = stat(&v2, inbound).await;
            if now >= start + 30 {
                Ok(())
            } else {
                Err(format!("{} of 30", now - start))
            }
        },
    )
    .await;
    c.sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mtls_rejects_the_plaintext_client_and_permissive_accepts_it() {
    let _pods = pod_addresses::shared().await;
    let c = MeshCluster::workshop(false).await;
    c.apply_legacy_client().await;
    c.wait_pods("default", 1).await;
    let url = "http://service-a.istioinaction.svc.cluster.local";
    let a = c.pod(NS, "service-a").await;
    let capture_start = c
        .sandbox
        .local_runtime()
        .unwrap()
        .capture(NS, &a.name_any())
        .unwrap()
        .len();
    let (code, out, err) = c
        .curl(
            "default",
            "legacy",
            "",
            &["-s", "-o", "/dev/null", "-w", "%{http_code}", url],
        )
        .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "200"),
        "PERMISSIVE accepts plaintext: {err}"
    );
    // The legacy client's call crossed the wire in plaintext; calls between sidecars did not.
    let records = c
        .sandbox
        .local_runtime()
        .unwrap()
        .capture(NS, &a.name_any())
        .unwrap();
    let text: Vec<String> = records[capture_start..]
        .iter()
        .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
        .collect();
    assert!(
        text.iter().any(|t| t.contains("HTTP/1.1 200")),
        "plaintext response captured"
    );
    // What the workshop's capture shows of that response: service-a's sidecar (an inbound
    // listener) names itself istio-envoy and adds its route's decorator operation.
    let response = text
        .iter()
        .find(|t| t.contains("HTTP/1.1 200"))
        .expect("captured above");
    for header in [
        "server: istio-envoy",
        "x-envoy-decorator-operation: service-a.istioinaction.svc.cluster.local:80/*",
    ] {
        assert!(response.contains(header), "{header} in {response}");
    }
    // A meshed client gets the response through its own sidecar's outbound listener, which
    // says `envoy` and strips the decorator header (Envoy's egress side).
    let b_name = c.pod(NS, "service-b").await.name_any();
    let (code, out, err) = c.curl(NS, &b_name, "", &["-s", "-i", url]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("server: envoy\r\n"), "{out}");
    assert!(!out.contains("x-envoy-decorator-operation"), "{out}");
    let b = c.pod(NS, "service-b").await;
    let b_capture = c
        .sandbox
        .local_runtime()
        .unwrap()
        .capture(NS, &b.name_any())
        .unwrap();
    assert!(
        !b_capture.is_empty(),
        "service-a's calls reached service-b's pod"
    );
    assert!(
        b_capture
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.bytes).contains("HTTP/1.1")),
        "no plaintext HTTP between sidecars"
    );
    // From a meshed app container, curl goes through the sidecar (so mTLS works under STRICT).
    c.apply(NS, "peer-auth-strict.yaml").await;
    mesh_support::eventually(
        "STRICT to reset the legacy client (exit 56) 3 times in a row",
        mesh_support::LIMIT,
        || async {
            for _ in 0..3 {
                let (code, out, err) = c
                    .curl(
                        "default",
                        "legacy",
                        "",
                        &["-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                    )
                    .await;
                if code != 56 {
                    return Err(format!("exit {code}, {out} {err}"));
                }
                assert_eq!(out, "000");
            }
            Ok(())
        },
    )
    .await;
    let (code, out, err) = c
        .curl(
            NS,
            &b.name_any(),
            "service-b",
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://service-a",
            ],
        )
        .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "200"),
        "meshed curl under STRICT: {err}"
    );
    c.delete(NS, "peer-auth-strict.yaml").await;
    mesh_support::eventually("PERMISSIVE again", mesh_support::LIMIT, || async {
        let (code, out, _) = c
            .curl(
                "default",
                "legacy",
                "",
                &["-s", "-o", "/dev/null", "-w", "%{http_code}", url],
            )
            .await;
        if code == 0 && out == "200" {
            Ok(())
        } else {
            Err(format!("exit {code} {out}"))
        }
    })
    .await;
    c.sandbox.shutdown().await;
}

/// One counter of Envoy's admin `/stats` of the proxy in `pod`.
async fn stat(pod: &k8s_openapi::api::core::v1::Pod, name: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let mut s = tokio::net::TcpStream::connect(format!("{ip}:15000"))
        .await
        .unwrap();
    s.write_all(
        format!("GET /stats?filter=^{name}$ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
