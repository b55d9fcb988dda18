//! Response bodies: whole JSON documents, text, and streams fed from a channel (watch, logs).

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::Response;
use hyper::body::Frame;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ApiError;

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn response(code: u16, content_type: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

pub(crate) fn json_response(code: u16, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    response(code, "application/json", full(bytes))
}

pub(crate) fn text_response(code: u16, text: &str) -> Response<Body> {
    response(code, "text/plain", full(text.to_string()))
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// A streamed response: what is sent on the returned channel goes out as it comes; dropping
/// the sender ends the response.
pub(crate) fn stream_response(content_type: &str) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
            .map(|b| Ok::<_, std::io::Error>(Frame::data(b)));
    (
        tx,
        response(200, content_type, BodyExt::boxed(StreamBody::new(stream))),
    )
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}
