//! Bearer-token authentication: the one token written to the kubeconfig, nothing else.

use hyper::Request;

use crate::error::ApiError;

pub(crate) fn check<B>(req: &Request<B>, token: &str) -> Result<(), ApiError> {
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

/// Compare without an early exit, so the token cannot be guessed byte by byte from timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
