//! The fake-service JSON chain: which service answered, and what its upstream calls answered.

use crate::cluster::HttpResponse;
use crate::probes::FakeServiceResponse;

use super::batch::excerpt;

fn parse(response: &HttpResponse) -> Result<FakeServiceResponse, String> {
    FakeServiceResponse::parse(&response.body).map_err(|e| {
        format!(
            "a {} response is not fake-service JSON ({e}): {}",
            response.status,
            excerpt(&response.body)
        )
    })
}

/// What a batch of responses shows, to tell whether successive batches agree: for each kind of
/// response, its status and what answered (see [`signature`]). With
/// service-c v2 deployed each request meets v2 with probability one half, so a batch of
/// [`super::batch::request_batch`] requests shows both kinds of answer except with probability
/// 2 · 0.5^31 < 1e-9: batches of one configuration agree, and a batch that differs shows a
/// configuration that changed.
pub fn shape(responses: &[HttpResponse]) -> std::collections::BTreeSet<String> {
    responses.iter().map(signature).collect()
}

/// One line saying what answered a response: its status, and for fake-service JSON the service
/// that answered with each upstream call's code (`200 service-a [http://service-b 200,
/// http://service-c 500]`); for any other body its first line; and the redirects a browser
/// followed to it. Timings and addresses in the JSON are left out: they differ on every
/// response of one configuration.
pub fn signature(response: &HttpResponse) -> String {
    let what = match FakeServiceResponse::parse(&response.body) {
        Ok(json) => {
            let calls: Vec<String> = json
                .upstream_calls
                .iter()
                .map(|(uri, call)| format!("{uri} {}", call.code))
                .collect();
            format!("{} [{}]", json.name, calls.join(", "))
        }
        Err(_) => excerpt(&response.body),
    };
    if response.redirects.is_empty() {
        format!("{} {what}", response.status)
    } else {
        format!(
            "{} {what} (reached by {})",
            response.status,
            crate::cluster::describe_chain(response)
        )
    }
}

/// The response's JSON names `service` as the one that answered, with the response's status
/// as its own `code`.
pub fn comes_from(response: &HttpResponse, service: &str) -> Result<(), String> {
    let json = parse(response)?;
    if json.name != service {
        return Err(format!(
            "a {} response came from {:?}, not {service:?}",
            response.status, json.name
        ));
    }
    if json.code != i32::from(response.status) {
        return Err(format!(
            "{service} answered HTTP {} but its JSON says code {}",
            response.status, json.code
        ));
    }
    Ok(())
}

/// Each of `uris` appears in the response's `upstream_calls` and answered `code`.
pub fn upstream_calls_answered(
    response: &HttpResponse,
    uris: &[&str],
    code: u16,
) -> Result<(), String> {
    let json = parse(response)?;
    for uri in uris {
        match json.upstream_calls.get(*uri) {
            None => {
                let seen: Vec<&str> = json.upstream_calls.keys().map(String::as_str).collect();
                return Err(format!(
                    "{} made no call to {uri}; its upstream calls: {}",
                    json.name,
                    if seen.is_empty() {
                        "none".to_string()
                    } else {
                        seen.join(", ")
                    }
                ));
            }
            Some(call) if call.code != i32::from(code) => {
                return Err(format!(
                    "{}'s call to {uri} answered {}, not {code}",
                    json.name, call.code
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The response is an HTML page: `text/html` and an `<html` element or doctype.
pub fn is_html_page(response: &HttpResponse) -> Result<(), String> {
    let content_type = response
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.to_ascii_lowercase().starts_with("text/html") {
        return Err(format!(
            "content type is {content_type:?}, not text/html: {}",
            excerpt(&response.body)
        ));
    }
    let body = response.body.to_ascii_lowercase();
    if !(body.contains("<html") || body.contains("<!doctype html")) {
        return Err(format!("not an HTML page: {}", excerpt(&response.body)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_service(status: u16, c_code: u16) -> HttpResponse {
        json_response(
            status,
            &format!(
                r#"{{"name": "service-a", "code": {status}, "duration": "{status}µs",
                "upstream_calls": {{"http://service-c": {{"name": "service-c", "code": {c_code}}}}}}}"#
            ),
        )
    }

    #[test]
    fn a_batch_shape_names_each_kind_of_answer_once_and_nothing_that_varies() {
        let mixed = [
            fake_service(200, 200),
            fake_service(500, 500),
            fake_service(200, 200),
        ];
        let seen = shape(&mixed);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen.contains("200 service-a [http://service-c 200]"),
            "{seen:?}"
        );
        assert!(
            seen.contains("500 service-a [http://service-c 500]"),
            "{seen:?}"
        );
        // Another configuration shows another shape: v2 no longer answering.
        assert_ne!(shape(&[fake_service(200, 200)]), seen);
        let plain = json_response(503, "no healthy upstream");
        assert_eq!(
            shape(&[plain]).into_iter().collect::<Vec<_>>(),
            ["503 no healthy upstream"]
        );
    }

    fn json_response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: http::HeaderMap::new(),
            body: body.to_string(),
            redirects: Vec::new(),
        }
    }

    const CHAIN_OK: &str = r#"{
  "name": "service-a",
  "uri": "/",
  "type": "HTTP",
  "ip_addresses": ["10.244.0.7"],
  "start_time": "2024-01-01T00:00:00.000000",
  "end_time": "2024-01-01T00:00:00.010000",
  "duration": "10ms",
  "body": "Hello from service-a",
  "upstream_calls": {
    "http://service-b": {
      "name": "service-b", "uri": "http://service-b", "type": "HTTP",
      "ip_addresses": ["10.244.0.8"], "start_time": "", "end_time": "", "duration": "1ms",
      "body": "Hello World", "code": 200
    },
    "http://service-c": {
      "name": "service-c(v1)", "uri": "http://service-c", "type": "HTTP",
      "ip_addresses": ["10.244.0.9"], "start_time": "", "end_time": "", "duration": "1ms",
      "body": "Hello World", "code": 200
    }
  },
  "code": 200
}"#;

    #[test]
    fn a_whole_chain_passes() {
        let r = json_response(200, CHAIN_OK);
        comes_from(&r, "service-a").unwrap();
        upstream_calls_answered(&r, &["http://service-b", "http://service-c"], 200).unwrap();
    }

    #[test]
    fn a_missing_or_failed_call_fails() {
        let r = json_response(200, CHAIN_OK);
        // In words: the calls it made, not Rust's debug text of a list.
        assert_eq!(
            upstream_calls_answered(&r, &["http://service-d"], 200).unwrap_err(),
            "service-a made no call to http://service-d; its upstream calls: http://service-b, http://service-c"
        );
        assert!(upstream_calls_answered(&r, &["http://service-c"], 500).is_err());
        let failed = CHAIN_OK.replace(
            "\"body\": \"Hello World\", \"code\": 200\n    }\n  },",
            "\"body\": \"Hello World\", \"code\": 500\n    }\n  },",
        );
        let r = json_response(200, &failed);
        assert!(upstream_calls_answered(&r, &["http://service-c"], 200).is_err());
    }

    #[test]
    fn the_wrong_service_or_code_fails() {
        let r = json_response(200, CHAIN_OK);
        assert!(comes_from(&r, "service-b").is_err());
        let r = json_response(500, CHAIN_OK);
        assert!(
            comes_from(&r, "service-a").is_err(),
            "HTTP 500 with code 200 in JSON"
        );
        let r = json_response(
            503,
            "upstream connect error or disconnect/reset before headers",
        );
        assert!(comes_from(&r, "service-a").is_err());
    }

    #[test]
    fn html_needs_the_content_type_and_a_page() {
        let mut r = json_response(200, "<!DOCTYPE html><html><body>UI</body></html>");
        assert!(is_html_page(&r).is_err(), "no content type");
        r.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        is_html_page(&r).unwrap();
        r.body = CHAIN_OK.to_string();
        assert!(is_html_page(&r).is_err());
        // Go's http.Redirect answer (fake-service's /ui): text/html, but not a page.
        r.status = 301;
        r.body = "<a href=\"/ui/\">Moved Permanently</a>.\n\n".to_string();
        assert!(is_html_page(&r).is_err());
    }
}
