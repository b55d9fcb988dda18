//! fake-service's configuration, read from the container's environment exactly as the Go
//! program reads its env vars (same names, same defaults).

use std::time::Duration;

use super::format::parse_go_duration;

/// fake-service's default `UI_PATH`.
pub(crate) const DEFAULT_UI_PATH: &str = "/ui/";

/// What a fake-service container was told to be.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Config {
    pub name: String,
    pub message: String,
    pub owner: String,
    pub upstream_uris: Vec<String>,
    pub upstream_workers: usize,
    pub listen_host: String,
    pub listen_port: u16,
    pub error_rate: f64,
    pub error_type: String,
    pub error_code: u16,
    pub error_delay: Duration,
    pub namespace: String,
    pub upstream_timeout: Duration,
    /// Where the UI is served: `UI_PATH`, default `/ui/` (nicholasjackson/fake-service
    /// `main.go` at v0.26.0–v0.26.2: `env.String("UI_PATH", false, "/ui/", …)`; before v0.26.0
    /// the path was the fixed `"/ui/"`).
    pub ui_path: String,
    /// Whether a failed request is logged at ERROR level, as upstream fake-service does and
    /// the workshop's fork does not: set from the image (see `runtime::program`), not the
    /// environment.
    pub log_errors: bool,
}

/// A variable fake-service cannot use, naming it and its value.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?}: {problem}")]
pub(crate) struct ConfigError {
    pub name: String,
    pub value: String,
    pub problem: String,
}

impl Config {
    /// Read the configuration from `(name, value)` pairs, later pairs winning as in a process
    /// environment.
    pub(crate) fn from_env<'a>(
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        let get = |key: &str| env.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let bad = |name: &str, value: &str, problem: &str| ConfigError {
            name: name.to_string(),
            value: value.to_string(),
            problem: problem.to_string(),
        };
        let listen = get("LISTEN_ADDR").unwrap_or("0.0.0.0:9090");
        let (listen_host, port) = listen
            .rsplit_once(':')
            .ok_or_else(|| bad("LISTEN_ADDR", listen, "expected host:port"))?;
        let listen_port: u16 = port.parse().map_err(|_| {
            bad(
                "LISTEN_ADDR",
                listen,
                "the port is not a number from 0 to 65535",
            )
        })?;
        let upstream_workers = match get("UPSTREAM_WORKERS") {
            None | Some("") => 1,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("UPSTREAM_WORKERS", v, "expected a positive integer"))?,
        };
        let error_rate = match get("ERROR_RATE") {
            None | Some("") => 0.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| bad("ERROR_RATE", v, "expected a decimal fraction such as 0.2"))?,
        };
        let error_code = match get("ERROR_CODE") {
            None | Some("") => 500,
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=999).contains(c))
                .ok_or_else(|| bad("ERROR_CODE", v, "expected an HTTP status code"))?,
        };
        let error_delay = match get("ERROR_DELAY") {
            None | Some("") => Duration::ZERO,
            Some(v) => parse_go_duration(v)
                .ok_or_else(|| bad("ERROR_DELAY", v, "expected a duration such as 100ms or 1s"))?,
        };
        let upstream_timeout = match get("HTTP_CLIENT_REQUEST_TIMEOUT") {
            None | Some("") => Duration::from_secs(30),
            Some(v) => parse_go_duration(v).ok_or_else(|| {
                bad(
                    "HTTP_CLIENT_REQUEST_TIMEOUT",
                    v,
                    "expected a duration such as 30s",
                )
            })?,
        };
        let ui_path = match get("UI_PATH") {
            None | Some("") => DEFAULT_UI_PATH.to_string(),
            Some(v) if !v.starts_with('/') => {
                return Err(bad("UI_PATH", v, "expected a path starting with /"));
            }
            // fake-service registers both the UI and its request handler on the mux; Go's
            // ServeMux panics on a second registration of "/".
            Some("/") => {
                return Err(bad(
                    "UI_PATH",
                    "/",
                    "the request handler is already registered at /; fake-service would panic \
                     (http: multiple registrations for /)",
                ));
            }
            Some(v) => v.to_string(),
        };
        Ok(Self {
            name: get("NAME").unwrap_or("Service").to_string(),
            message: get("MESSAGE").unwrap_or("Hello World").to_string(),
            owner: get("SERVICE_OWNER").unwrap_or("").to_string(),
            upstream_uris: get("UPSTREAM_URIS")
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            upstream_workers,
            listen_host: listen_host.to_string(),
            listen_port,
            error_rate,
            error_type: get("ERROR_TYPE").unwrap_or("http_error").to_string(),
            error_code,
            error_delay,
            namespace: get("KUBERNETES_NAMESPACE").unwrap_or("").to_string(),
            upstream_timeout,
            ui_path,
            log_errors: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_workshops_service_c_v2() {
        let c = Config::from_env([
            ("LISTEN_ADDR", "0.0.0.0:8080"),
            ("NAME", "service-c(v2)"),
            ("SERVICE_OWNER", "pam"),
            ("ERROR_TYPE", "http_error"),
            ("ERROR_RATE", "0.6"),
            ("ERROR_CODE", "500"),
        ])
        .unwrap();
        assert_eq!(c.listen_port, 8080);
        assert_eq!(c.listen_host, "0.0.0.0");
        assert_eq!(c.error_rate, 0.6);
        assert_eq!(c.message, "Hello World");
        assert_eq!(c.upstream_workers, 1);
        assert!(c.upstream_uris.is_empty());
    }

    #[test]
    fn splits_upstreams_and_names_bad_values() {
        let c =
            Config::from_env([("UPSTREAM_URIS", "http://service-b, http://service-c")]).unwrap();
        assert_eq!(c.upstream_uris, ["http://service-b", "http://service-c"]);
        assert_eq!(c.listen_port, 9090);
        let e = Config::from_env([("ERROR_RATE", "lots")]).unwrap_err();
        assert!(e.to_string().contains("ERROR_RATE"), "{e}");
        let e = Config::from_env([("LISTEN_ADDR", "8080")]).unwrap_err();
        assert!(e.to_string().contains("LISTEN_ADDR"), "{e}");
        assert_eq!(c.ui_path, "/ui/");
        let c = Config::from_env([("UI_PATH", "/dashboard/")]).unwrap();
        assert_eq!(c.ui_path, "/dashboard/");
        for bad in ["/", "ui/"] {
            let e = Config::from_env([("UI_PATH", bad)]).unwrap_err();
            assert!(e.to_string().contains("UI_PATH"), "{e}");
        }
    }
}
