//! The run's reports under the report directory (`target/happy/` by default): cucumber writes
//! JUnit XML and Cucumber JSON; this module adds what a reader of a report needs to trust it —
//! which cluster kind ran it (a sandbox run says so), the Kubernetes and Istio versions — and
//! the summary line `N passed, N failed, N skipped`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File names inside the report directory.
pub const JUNIT_FILE: &str = "junit.xml";
pub const CUCUMBER_JSON_FILE: &str = "cucumber.json";
pub const RUN_FILE: &str = "run.json";

/// What the run ran on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `kind`, `k3s`, `existing` or `sandbox`.
    pub cluster_kind: String,
    pub cluster_name: String,
    pub kubernetes_version: String,
    /// The Istio version installed, or why none was.
    pub istio_version: String,
    /// A note the provisioner made, e.g. "auto chose the sandbox: no Docker daemon answered".
    pub note: Option<String>,
    /// Scenarios skipped because the cluster lacks a capability, with the reason.
    pub skipped: Vec<String>,
    /// Every departure from the workshop's text and whether this run kept it on
    /// (`crate::deviations`).
    #[serde(default)]
    pub deviations: Vec<DeviationInfo>,
}

/// One deviation from the workshop's text as a report records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationInfo {
    /// `D-legacy-image`.
    pub id: String,
    pub title: String,
    /// `on` or `off` (switched off by the user: the workshop's text ran as written).
    pub state: String,
    /// What that state means for this run.
    pub detail: String,
    /// The claims it affects.
    pub claims: Vec<String>,
    /// What the workshop says.
    pub workshop: String,
    /// What the suite does instead.
    pub suite: String,
    pub why: String,
    /// Upstream sources.
    pub sources: Vec<String>,
    /// How to switch it off.
    pub switch_off: String,
    /// How it is re-checked.
    pub recheck: String,
}

impl RunInfo {
    /// `(name, value)` pairs for the JUnit `<properties>` element.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let mut props = vec![
            ("cluster.kind", self.cluster_kind.clone()),
            ("cluster.name", self.cluster_name.clone()),
            ("kubernetes.version", self.kubernetes_version.clone()),
            ("istio.version", self.istio_version.clone()),
        ];
        if let Some(note) = &self.note {
            props.push(("cluster.note", note.clone()));
        }
        for d in &self.deviations {
            props.push(("deviation", format!("{} {}: {}", d.id, d.state, d.detail)));
        }
        props
    }
}

/// Scenario outcomes of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    /// Read back a line printed by [`Summary`]'s `Display` (`N passed, N failed, N skipped`).
    pub fn parse_line(line: &str) -> Option<Summary> {
        let mut counts = line.trim().split(", ").map(|part| {
            let (n, word) = part.split_once(' ')?;
            Some((n.parse::<usize>().ok()?, word))
        });
        match (
            counts.next()??,
            counts.next()??,
            counts.next()??,
            counts.next(),
        ) {
            ((passed, "passed"), (failed, "failed"), (skipped, "skipped"), None) => Some(Summary {
                passed,
                failed,
                skipped,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

#[derive(Deserialize)]
struct JsonFeature {
    #[serde(default)]
    elements: Vec<JsonElement>,
}

#[derive(Deserialize)]
struct JsonElement {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    steps: Vec<JsonStep>,
}

#[derive(Deserialize)]
struct JsonStep {
    result: JsonResult,
}

#[derive(Deserialize)]
struct JsonResult {
    status: String,
}

/// Count scenarios by outcome from a Cucumber JSON report: failed if any step failed (or was
/// undefined, ambiguous or pending), skipped if otherwise any step was skipped, else passed.
/// The report writes each scenario's Background as its own element just before the scenario;
/// its steps count towards that scenario (a scenario whose Background failed has not passed).
pub fn summarize_cucumber_json(json: &str) -> Result<Summary, String> {
    let features: Vec<JsonFeature> = serde_json::from_str(json)
        .map_err(|e| format!("the Cucumber JSON report cannot be read ({e})"))?;
    let mut summary = Summary::default();
    let mut background: Vec<&str> = Vec::new();
    for element in features.iter().flat_map(|f| f.elements.iter()) {
        let steps = element.steps.iter().map(|s| s.result.status.as_str());
        if element.kind == "background" {
            background = steps.collect();
            continue;
        }
        let statuses: Vec<&str> = std::mem::take(&mut background)
            .into_iter()
            .chain(steps)
            .collect();
        if statuses
            .iter()
            .any(|s| matches!(*s, "failed" | "undefined" | "ambiguous" | "pending"))
        {
            summary.failed += 1;
        } else if statuses.contains(&"skipped") {
            summary.skipped += 1;
        } else {
            summary.passed += 1;
        }
    }
    Ok(summary)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Add `<properties>` describing the run to every `<testsuite>` of a JUnit report.
pub fn add_junit_properties(xml: &str, properties: &[(&str, String)]) -> String {
    let mut block = String::from("<properties>");
    for (name, value) in properties {
        block.push_str(&format!(
            "<property name=\"{}\" value=\"{}\"/>",
            xml_escape(name),
            xml_escape(value)
        ));
    }
    block.push_str("</properties>");
    let mut out = String::with_capacity(xml.len() + block.len() * 8);
    let mut rest = xml;
    while let Some(start) = rest
        .find("<testsuite ")
        .or_else(|| rest.find("<testsuite>"))
    {
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let tag_end = start + end + 1;
        out.push_str(&rest[..tag_end]);
        if !rest[start..tag_end].ends_with("/>") {
            out.push_str(&block);
        }
        rest = &rest[tag_end..];
    }
    out.push_str(rest);
    out
}

/// Finish the reports in `dir`: properties into the JUnit XML, `run.json` with the run info
/// and the summary. Returns the summary.
pub fn finish(dir: &Path, info: &RunInfo) -> Result<Summary, String> {
    let json_path = dir.join(CUCUMBER_JSON_FILE);
    let json = std::fs::read_to_string(&json_path)
        .map_err(|e| format!("cannot read {}: {e}", json_path.display()))?;
    let summary = summarize_cucumber_json(&json)?;
    let junit_path = dir.join(JUNIT_FILE);
    if let Ok(xml) = std::fs::read_to_string(&junit_path) {
        let xml = add_junit_properties(&xml, &info.properties());
        std::fs::write(&junit_path, xml)
            .map_err(|e| format!("cannot write {}: {e}", junit_path.display()))?;
    }
    #[derive(Serialize)]
    struct Run<'a> {
        #[serde(flatten)]
        info: &'a RunInfo,
        summary: Summary,
    }
    let run_path = dir.join(RUN_FILE);
    let text = serde_json::to_string_pretty(&Run { info, summary })
        .map_err(|e| format!("cannot encode the run info: {e}"))?;
    std::fs::write(&run_path, text)
        .map_err(|e| format!("cannot write {}: {e}", run_path.display()))?;
    Ok(summary)
}

/// The report files of a run in `dir`, for printing.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    [JUNIT_FILE, CUCUMBER_JSON_FILE, RUN_FILE]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"[{"uri":"features/01-deploy.feature","elements":[
      {"type":"background","steps":[{"result":{"status":"passed"}}]},
      {"type":"scenario","steps":[{"result":{"status":"passed"}},{"result":{"status":"passed"}}]},
      {"type":"scenario","steps":[{"result":{"status":"passed"}},{"result":{"status":"failed"}},{"result":{"status":"skipped"}}]},
      {"type":"scenario","steps":[{"result":{"status":"skipped"}},{"result":{"status":"skipped"}}]},
      {"type":"background","steps":[{"result":{"status":"failed"}}]},
      {"type":"scenario","steps":[]},
      {"type":"background","steps":[{"result":{"status":"skipped"}}]},
      {"type":"scenario","steps":[]},
      {"type":"scenario","steps":[{"result":{"status":"undefined"}}]}]}]"#;

    #[test]
    fn counts_scenarios_by_outcome() {
        let s = summarize_cucumber_json(REPORT).unwrap();
        assert_eq!(
            s,
            Summary {
                passed: 1,
                failed: 3,
                skipped: 2
            }
        );
        assert_eq!(s.to_string(), "1 passed, 3 failed, 2 skipped");
        assert_eq!(Summary::parse_line(&s.to_string()), Some(s));
        assert_eq!(Summary::parse_line("1 passed, 3 failed"), None);
        assert_eq!(
            Summary::parse_line("24 scenarios (4 passed, 20 skipped)"),
            None
        );
        assert!(summarize_cucumber_json("not json").is_err());
    }

    #[test]
    fn junit_gets_properties_in_every_suite() {
        let xml = r#"<?xml version="1.0"?><testsuites><testsuite id="0" name="a"><testcase name="x"/></testsuite><testsuite name="b"/></testsuites>"#;
        let info = RunInfo {
            cluster_kind: "sandbox".into(),
            istio_version: "none <yet>".into(),
            ..RunInfo::default()
        };
        let out = add_junit_properties(xml, &info.properties());
        assert_eq!(
            out.matches("<properties>").count(),
            1,
            "self-closed suites get none: {out}"
        );
        assert!(out.contains(r#"<property name="cluster.kind" value="sandbox"/>"#));
        assert!(out.contains("none &lt;yet&gt;"));
        assert!(!out.contains("name=\"deviation\""));
        let with = RunInfo {
            deviations: vec![DeviationInfo {
                id: "D-x".into(),
                state: "off".into(),
                detail: "switched off: <as written>".into(),
                ..DeviationInfo::default()
            }],
            ..info
        };
        let out = add_junit_properties(xml, &with.properties());
        assert!(
            out.contains(
                r#"<property name="deviation" value="D-x off: switched off: &lt;as written&gt;"/>"#
            ),
            "{out}"
        );
        assert!(out.starts_with(
            r#"<?xml version="1.0"?><testsuites><testsuite id="0" name="a"><properties>"#
        ));
    }
}
