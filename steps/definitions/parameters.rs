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
pub struct RequestPath(pub String);

impl FromStr for RequestPath {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(RequestPath(s.to_string()))
    }
}
