//! The one reading of a run's `cucumber.json`: the part of cucumber-rs's JSON writer's shape
//! the suite uses (the slowest steps, the living documentation). cucumber-rs 0.23's writer
//! types (`cucumber::writer::json::{Feature, Element, Step, RunResult}`) are `Serialize` only,
//! so the reading is declared here, with those types' field names: a feature has `uri`,
//! `name` and `elements`; an element is a `background` or `scenario` (`type`) with `name`,
//! `line` and `steps`; a step has `keyword`, `line`, `name` and a `result` whose `status` is
//! passed, failed, skipped, ambiguous, undefined or pending, `duration` in nanoseconds and,
//! for failed or ambiguous steps, `error_message`.

use serde::Deserialize;

/// A feature file's results.
#[derive(Debug, Deserialize)]
pub struct Feature {
    /// The feature file's path, relative to where cucumber ran.
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub elements: Vec<Element>,
}

/// A Background's or a Scenario's results (a Background's are repeated before each scenario
/// they ran for).
#[derive(Debug, Deserialize)]
pub struct Element {
    /// `background` or `scenario`.
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub line: usize,
    #[serde(default)]
    pub steps: Vec<Step>,
}

impl Element {
    /// Whether these are a Background's steps.
    pub fn is_background(&self) -> bool {
        self.kind == "background"
    }
}

/// A step's result.
#[derive(Debug, Deserialize)]
pub struct Step {
    /// The keyword as written, with its trailing space (`Then `).
    #[serde(default)]
    pub keyword: String,
    #[serde(default)]
    pub line: usize,
    /// The step's text after the keyword.
    #[serde(default)]
    pub name: String,
    pub result: StepResult,
}

/// How a step ended.
#[derive(Debug, Deserialize)]
pub struct StepResult {
    pub status: String,
    /// Nanoseconds; a report that leaves it out still reads.
    #[serde(default)]
    pub duration: Option<u64>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// Whether a step's status says it did not pass for a reason of its own (a skipped step only
/// followed one that did not).
pub fn is_failure(status: &str) -> bool {
    matches!(status, "failed" | "undefined" | "ambiguous" | "pending")
}

/// Read a `cucumber.json`.
pub fn parse(text: &str) -> Result<Vec<Feature>, serde_json::Error> {
    serde_json::from_str(text)
}
