//! The runner of `sandbox/cli/workshop/commands.yaml`: the workshop's commands, in order, each
//! run with bash (the real kubectl, curl) in a directory holding the workshop's manifests, and
//! checked for what the workshop says it shows. Long-running commands run in the background
//! in their own process group and are ended by the runner (or by its `Drop`), so nothing is
//! left running after a failure.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The file, as parsed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Walkthrough {
    pub defaults: Defaults,
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defaults {
    /// The limit of an `until` step or a background's `ready` (`120s`, `2m`).
    pub within: String,
}

/// One entry: a workshop command and what it shows.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Step {
    pub section: String,
    /// The claim whose words the command's output shows (`C08`).
    pub claim: Option<String>,
    pub workshop: String,
    pub run: Option<String>,
    pub why: Option<String>,
    pub skip: Option<String>,
    pub sandbox: Option<String>,
    pub background: Option<String>,
    pub ready: Option<String>,
    pub output_of: Option<String>,
    pub stop: Option<String>,
    #[serde(default)]
    pub until: bool,
    pub within: Option<String>,
    pub shows: Option<String>,
    #[serde(default)]
    pub expect: Expect,
    pub not_yet: Option<String>,
}

/// What the test checks of a command's outcome.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expect {
    pub exit: Option<Exit>,
    #[serde(default)]
    pub contains: Vec<String>,
    #[serde(default)]
    pub not_contains: Vec<String>,
    #[serde(default)]
    pub matches: Vec<String>,
    pub lines: Option<Lines>,
}

/// One exit code, or the codes any of which is right (where the outcome depends on timing
/// the workshop does not control, said in the entry's `why`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Exit {
    One(i32),
    AnyOf(Vec<i32>),
}

impl Exit {
    fn allows(&self, code: i32) -> bool {
        match self {
            Exit::One(c) => *c == code,
            Exit::AnyOf(cs) => cs.contains(&code),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Lines {
    pub count: usize,
    pub each: String,
}

/// How an entry ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Passed,
    Started,
    Stopped,
    Skipped(String),
    NotYet(String),
}

impl Walkthrough {
    /// Parse and check the file: every entry is of one kind, names what it needs, and its
    /// regular expressions compile. Errors name the file and the entry.
    pub(crate) fn parse(file: &str, text: &str) -> Result<Self, String> {
        let w: Walkthrough =
            serde_saphyr::from_str(text).map_err(|e| format!("{file}: not a walkthrough: {e}"))?;
        parse_duration(&w.defaults.within).map_err(|e| format!("{file}: defaults.within: {e}"))?;
        for (i, s) in w.steps.iter().enumerate() {
            s.validate()
                .map_err(|e| format!("{file}: {}: {e}", s.describe(i)))?;
        }
        Ok(w)
    }
}

impl Step {
    /// What bash runs.
    pub(crate) fn command(&self) -> &str {
        self.run.as_deref().unwrap_or(&self.workshop)
    }

    /// `entry N (section: command)`, for messages.
    pub(crate) fn describe(&self, index: usize) -> String {
        match &self.claim {
            Some(claim) => format!(
                "entry {} ({}, {claim}: {})",
                index + 1,
                self.section,
                self.workshop
            ),
            None => format!("entry {} ({}: {})", index + 1, self.section, self.workshop),
        }
    }

    fn validate(&self) -> Result<(), String> {
        let kinds = [
            self.skip.is_some(),
            self.background.is_some(),
            self.output_of.is_some(),
            self.stop.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err("only one of skip, background, output_of, stop".into());
        }
        if self.run.is_some() && self.why.is_none() {
            return Err("`run` differs from the workshop's command: say `why`".into());
        }
        if self.background.is_some() && (self.until || self.has_expectations()) {
            return Err("a background command has `ready`, not `until`/`expect`".into());
        }
        if self.ready.is_some() && self.background.is_none() {
            return Err("`ready` belongs to a background command".into());
        }
        if let Some(w) = &self.within {
            parse_duration(w).map_err(|e| format!("within: {e}"))?;
        }
        for r in self
            .expect
            .matches
            .iter()
            .chain(self.expect.lines.iter().map(|l| &l.each))
        {
            regex(r)?;
        }
        Ok(())
    }

    fn has_expectations(&self) -> bool {
        let e = &self.expect;
        e.exit.is_some()
            || !e.contains.is_empty()
            || !e.not_contains.is_empty()
            || !e.matches.is_empty()
            || e.lines.is_some()
    }
}

fn regex(r: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(r)
        .multi_line(true)
        .build()
        .map_err(|e| format!("regular expression {r:?}: {e}"))
}

/// `120s`, `2m`, `500ms`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    happy_sandbox::mesh::prometheus::parse_duration(text)
}

/// Check one outcome against an expectation; the first unmet part, in words.
pub(crate) fn check(
    expect: &Expect,
    code: Option<i32>,
    stdout: &str,
    stderr: &str,
) -> Result<(), String> {
    let want = expect.exit.as_ref().unwrap_or(&Exit::One(0));
    if let Some(code) = code
        && !want.allows(code)
    {
        let want = match want {
            Exit::One(c) => c.to_string(),
            Exit::AnyOf(cs) => format!("one of {cs:?}"),
        };
        return Err(format!("exit code {code}, expected {want}"));
    }
    let both = format!("{stdout}\n{stderr}");
    for c in &expect.contains {
        if !both.contains(c.as_str()) {
            return Err(format!("the output does not contain {c:?}"));
        }
    }
    for c in &expect.not_contains {
        if both.contains(c.as_str()) {
            return Err(format!("the output contains {c:?}"));
        }
    }
    for r in &expect.matches {
        if !regex(r)?.is_match(stdout) {
            return Err(format!("stdout does not match {r:?}"));
        }
    }
    if let Some(l) = &expect.lines {
        let each = regex(&l.each)?;
        let lines: Vec<&str> = stdout.lines().collect();
        if lines.len() != l.count {
            return Err(format!(
                "{} lines on stdout, expected {}",
                lines.len(),
                l.count
            ));
        }
        if let Some(bad) = lines.iter().find(|line| !each.is_match(line)) {
            return Err(format!("the line {bad:?} does not match {:?}", l.each));
        }
    }
    Ok(())
}

/// A command running in the background, in its own process group; its stdout and stderr are
/// collected as they come. Dropping it ends the whole group.
pub(crate) struct Background {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Background {
    fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn end(&mut self) {
        let pgid = self.child.id() as i32;
        // SIGTERM to the group (bash, kubectl, curl…), then SIGKILL if it lingers.
        // SAFETY: kill(2) with a negative pid signals the process group we created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The leader went; make sure nothing of its group remains.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.end();
        }
    }
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// Where and how the commands run.
pub(crate) struct Runner {
    /// The working directory (the workshop's manifests are here).
    pub dir: PathBuf,
    /// Environment for every command (KUBECONFIG, HOME, PATH…).
    pub env: Vec<(String, String)>,
    /// Between two tries of an `until` step.
    pub poll: Duration,
    backgrounds: HashMap<String, Background>,
}

/// One entry's report line.
#[derive(Debug)]
pub(crate) struct Report {
    pub index: usize,
    pub step_text: String,
    pub outcome: Outcome,
}

impl Runner {
    pub(crate) fn new(dir: &Path, env: Vec<(String, String)>) -> Self {
        Runner {
            dir: dir.to_path_buf(),
            env,
            poll: Duration::from_millis(250),
            backgrounds: HashMap::new(),
        }
    }

    fn bash(&self, command: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg("-c").arg(command).current_dir(&self.dir);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c
    }

    /// Run a command to its end: (exit code, stdout, stderr).
    fn run_once(&self, command: &str) -> Result<(Option<i32>, String, String), String> {
        let out = self
            .bash(command)
            .output()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Run every entry in order; stop at the first that fails, with a message naming it.
    pub(crate) fn run_all(
        &mut self,
        w: &Walkthrough,
    ) -> Result<Vec<Report>, (Vec<Report>, String)> {
        let default = parse_duration(&w.defaults.within).map_err(|e| (Vec::new(), e))?;
        let mut reports = Vec::new();
        for (i, step) in w.steps.iter().enumerate() {
            let limit = match &step.within {
                Some(t) => parse_duration(t).map_err(|e| (Vec::new(), e))?,
                None => default,
            };
            match self.run_step(step, limit) {
                Ok(outcome) => reports.push(Report {
                    index: i,
                    step_text: step.describe(i),
                    outcome,
                }),
                Err(e) => {
                    let msg = format!("{}: {e}", step.describe(i));
                    return Err((reports, msg));
                }
            }
        }
        Ok(reports)
    }

    fn run_step(&mut self, step: &Step, limit: Duration) -> Result<Outcome, String> {
        if let Some(reason) = &step.not_yet {
            return Ok(Outcome::NotYet(reason.clone()));
        }
        if let Some(reason) = &step.skip {
            return Ok(Outcome::Skipped(match &step.sandbox {
                Some(s) => format!("{reason} (sandbox: {s})"),
                None => reason.clone(),
            }));
        }
        if let Some(name) = &step.stop {
            let mut bg = self
                .backgrounds
                .remove(name)
                .ok_or_else(|| format!("no background command {name:?} to stop"))?;
            bg.end();
            return Ok(Outcome::Stopped);
        }
        if let Some(name) = &step.background {
            return self.start_background(name, step, limit);
        }
        let deadline = Instant::now() + limit;
        loop {
            let (code, stdout, stderr) = match &step.output_of {
                Some(name) => {
                    let bg = self
                        .backgrounds
                        .get(name)
                        .ok_or_else(|| format!("no background command {name:?}"))?;
                    (None, bg.output(), String::new())
                }
                None => self.run_once(step.command())?,
            };
            match check(&step.expect, code, &stdout, &stderr) {
                Ok(()) => return Ok(Outcome::Passed),
                Err(problem) if !step.until || Instant::now() >= deadline => {
                    let waited = if step.until {
                        format!(" (still, after {}s)", limit.as_secs())
                    } else {
                        String::new()
                    };
                    return Err(format!(
                        "{problem}{waited}\n  ran: {}\n  --- stdout ---\n{}\n  --- stderr ---\n{}",
                        step.output_of
                            .as_ref()
                            .map_or(step.command().to_string(), |n| format!("(output of {n})")),
                        tail(&stdout),
                        tail(&stderr)
                    ));
                }
                Err(_) => std::thread::sleep(self.poll),
            }
        }
    }

    fn start_background(
        &mut self,
        name: &str,
        step: &Step,
        limit: Duration,
    ) -> Result<Outcome, String> {
        if self.backgrounds.contains_key(name) {
            return Err(format!("background command {name:?} is already running"));
        }
        let mut cmd = self.bash(step.command());
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start bash: {e}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(o) = child.stdout.take() {
            collect(o, output.clone());
        }
        if let Some(e) = child.stderr.take() {
            collect(e, output.clone());
        }
        let mut bg = Background { child, output };
        if let Some(ready) = &step.ready {
            let deadline = Instant::now() + limit;
            while !bg.output().contains(ready.as_str()) {
                if let Ok(Some(status)) = bg.child.try_wait() {
                    return Err(format!(
                        "ended ({status}) before printing {ready:?}:\n{}",
                        tail(&bg.output())
                    ));
                }
                if Instant::now() >= deadline {
                    let out = bg.output();
                    bg.end();
                    return Err(format!(
                        "did not print {ready:?} within {}s:\n{}",
                        limit.as_secs(),
                        tail(&out)
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.backgrounds.insert(name.to_string(), bg);
        Ok(Outcome::Started)
    }
}

/// The last 40 lines of a text.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(40);
    lines[from..].join("\n")
}
