//! Typed parameters of the steps: lists of the workshop's files, workload names, URLs, paths.

use std::convert::Infallible;
use std::str::FromStr;

use cucumber::Parameter;

/// One or more manifest files, written as the workshop lists them:
/// `services-a.yaml, services-b.yaml and services-c-v1.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Parameter)]
#[param(
    name = "files",
    regex = r"[A-Za-z0-9][\w.-]*\.yaml(?:(?:, | and )[A-Za-z0-9][\w.-]*\.yaml)*"
)]
pub struct Files(pub Vec<String>);

impl FromStr for Files {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Files(
            s.split(", ")
                .flat_map(|part| part.split(" and "))
                .map(str::to_string)
                .collect(),
        ))
    }
}

/// A Kubernetes object name (DNS-1123 label): a namespace, deployment or service.
#[derive(Debug, Clone, PartialEq, Eq, Parameter)]
#[param(name = "name", regex = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")]
pub struct Name(pub String);

impl FromStr for Name {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Name(s.to_string()))
    }
}

/// Names of several workloads, written as the workshop lists them:
/// `service-a, service-b and service-c-v1`.
#[derive(Debug, Clone, PartialEq, Eq, Parameter)]
#[param(
    name = "names",
    regex = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:(?:, | and )[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)]
pub struct Names(pub Vec<String>);

impl FromStr for Names {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Names(
            s.split(", ")
                .flat_map(|part| part.split(" and "))
                .map(str::to_string)
                .collect(),
        ))
    }
}

/// A TCP port number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Parameter)]
#[param(name = "port", regex = r"\d{1,5}")]
pub struct Port(pub u16);

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(Port)
            .map_err(|e| format!("{s:?} is not a port: {e}"))
    }
}

/// An HTTP URL as a reader types it into curl.
#[derive(Debug, Clone, PartialEq, Eq, Parameter)]
#[param(name = "url", regex = r"https?://[^\s,]+")]
pub struct Url(pub String);

impl FromStr for Url {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Url(s.to_string()))
    }
}

/// A request path such as `/` or `/ui`.
#[derive(Debug, Clone, PartialEq, Eq, Parameter)]
#[param(name = "path", regex = r"/[^\s]*")]
pub(crate) struct RequestPath(pub String);

impl FromStr for RequestPath {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(RequestPath(s.to_string()))
    }
}
