//! Where a run's time went: the slowest steps, read from the Cucumber JSON report
//! ([`super::cucumber_json`]; cucumber records each step's `result.duration` in nanoseconds),
//! for the end of the run's output and for `run.json`. On a real cluster this is the first thing to look at when a run is slow.

use serde::{Deserialize, Serialize};

/// How many steps the summary lists.
pub const SLOWEST_SHOWN: usize = 10;

/// One step and how long it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// Seconds the step ran.
    pub seconds: f64,
    /// `Feature — Scenario` (a Background's steps count for the scenario they ran in).
    pub scenario: String,
    /// The step as written, keyword included (`Then every response is 200`).
    pub step: String,
}

/// The `n` slowest steps of a Cucumber JSON report, slowest first.
pub fn slowest_steps(cucumber_json: &str, n: usize) -> Result<Vec<StepTiming>, String> {
    let features = super::cucumber_json::parse(cucumber_json)
        .map_err(|e| format!("the Cucumber JSON report cannot be read ({e})"))?;
    let mut steps: Vec<StepTiming> = features
        .iter()
        .flat_map(|f| f.elements.iter().map(move |e| (f, e)))
        .flat_map(|(f, e)| {
            let scenario = if e.is_background() {
                format!("{} — {} (Background)", f.name, e.name)
            } else {
                format!("{} — {}", f.name, e.name)
            };
            e.steps.iter().filter_map(move |s| {
                Some(StepTiming {
                    seconds: s.result.duration? as f64 / 1e9,
                    scenario: scenario.clone(),
                    step: format!("{}{}", s.keyword, s.name),
                })
            })
        })
        .collect();
    steps.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    steps.truncate(n);
    Ok(steps)
}

/// The lines printed at the end of a run: a heading, then one line per step.
pub fn describe(steps: &[StepTiming]) -> Vec<String> {
    if steps.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!("slowest {} steps:", steps.len())];
    lines.extend(
        steps
            .iter()
            .map(|s| format!("  {:7.2} s  {}  ({})", s.seconds, s.step, s.scenario)),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"[{"name":"Deploy","elements":[
      {"type":"background","name":"Ready","steps":[
        {"keyword":"Given ","name":"the namespace","result":{"status":"passed","duration":2000000000}}]},
      {"type":"scenario","name":"Ready","steps":[
        {"keyword":"Then ","name":"every response is 200","result":{"status":"passed","duration":5500000000}},
        {"keyword":"And ","name":"skipped","result":{"status":"skipped"}}]}]},
      {"name":"Other","elements":[{"type":"scenario","name":"Fast","steps":[
        {"keyword":"When ","name":"quick","result":{"status":"passed","duration":1000}}]}]}]"#;

    #[test]
    fn slowest_first_with_scenario_and_background() {
        let steps = slowest_steps(REPORT, 10).unwrap();
        assert_eq!(steps.len(), 3, "a step without a duration is left out");
        assert_eq!(steps[0].step, "Then every response is 200");
        assert_eq!(steps[0].scenario, "Deploy — Ready");
        assert!((steps[0].seconds - 5.5).abs() < 1e-9);
        assert_eq!(steps[1].scenario, "Deploy — Ready (Background)");
        assert_eq!(steps[2].step, "When quick");
        assert_eq!(slowest_steps(REPORT, 1).unwrap().len(), 1);
        let lines = describe(&steps[..1]);
        assert_eq!(lines[0], "slowest 1 steps:");
        assert!(
            lines[1].contains("5.50 s  Then every response is 200  (Deploy — Ready)"),
            "{}",
            lines[1]
        );
        assert!(describe(&[]).is_empty());
    }

    #[test]
    fn an_unreadable_report_is_an_error() {
        assert!(
            slowest_steps("{", 10)
                .unwrap_err()
                .contains("Cucumber JSON")
        );
    }
}
