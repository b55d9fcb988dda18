//! Faults on purpose: `HAPPY_SANDBOX_FAULTS` makes the sandbox's node fail or slow down image
//! pulls the way a real registry or network does, so the suite's handling of an unhealthy
//! cluster can be tested offline.
//!
//! Syntax: rules separated by `;`, each `pull:<image pattern>=<fault>`:
//! - the pattern is matched against the fully qualified reference containerd names
//!   ([`super::pull::docker_ref`]: `docker.io/rinormaloku/happy-service:latest`), `*` matching
//!   any run of characters (`/` and `:` included);
//! - the fault is `unreachable`, `ratelimit` or `notfound`, each optionally `:N` (only the
//!   first N pulls of matching images fail, later ones succeed), or `slow:SECONDS` (every pull
//!   of a matching image takes that long, then succeeds).
//!
//! Rules are tried in order; the first one that matches the image and is not spent (a `:N`
//! rule that has failed N pulls is spent) decides the pull. A pull no rule decides succeeds.
//! The failures' texts are containerd's and the kubelet's ([`super::pull`]).

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;

/// The variable the rules are read from at sandbox start.
pub const FAULTS_VAR: &str = "HAPPY_SANDBOX_FAULTS";

/// What a rule does to a pull.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PullFault {
    /// The registry cannot be reached: the dial fails.
    Unreachable,
    /// The registry answers HTTP 429 (Docker Hub's pull rate limit).
    RateLimit,
    /// The registry answers 404 for the manifest: the image does not exist.
    NotFound,
    /// The pull succeeds after this long.
    Slow(Duration),
}

/// One parsed rule.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// The pattern as written (`*` is the wildcard).
    pub pattern: String,
    /// What happens to a matching pull.
    pub fault: PullFault,
    /// `:N`: how many matching pulls fail before the rule is spent (`None`: all of them).
    pub limit: Option<u32>,
}

/// What the node's registry does with one pull.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PullDecision {
    /// The pull goes through, taking this long (zero unless a `slow` rule matched).
    Proceed(Duration),
    /// The pull fails with this fault.
    Fail(PullFault),
}

/// A malformed rule, named with what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{FAULTS_VAR}: rule {rule:?}: {problem}")]
pub struct FaultsError {
    /// The rule as written.
    pub rule: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The rules of one sandbox, with the count of pulls each `:N` rule has failed so far.
#[derive(Debug, Default)]
pub struct PullFaults {
    rules: Vec<FaultRule>,
    failed: Mutex<Vec<u32>>,
}

impl PullFaults {
    /// No faults: every pull succeeds at once.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parse `HAPPY_SANDBOX_FAULTS`'s syntax (see the module docs). Empty rules (a trailing
    /// `;`) are ignored.
    pub fn parse(spec: &str) -> Result<Self, FaultsError> {
        let rules = spec
            .split(';')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(parse_rule)
            .collect::<Result<Vec<_>, _>>()?;
        let failed = Mutex::new(vec![0; rules.len()]);
        Ok(Self { rules, failed })
    }

    /// The rules in [`FAULTS_VAR`] (none when it is unset or empty).
    pub fn from_env() -> Result<Self, FaultsError> {
        match std::env::var(FAULTS_VAR) {
            Ok(spec) => Self::parse(&spec),
            Err(_) => Ok(Self::none()),
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// Decide one pull of `reference` (fully qualified, see the module docs); a failing `:N`
    /// rule counts the pull.
    pub fn decide(&self, reference: &str) -> PullDecision {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, rule) in self.rules.iter().enumerate() {
            if !wildcard_match(&rule.pattern, reference) {
                continue;
            }
            if rule.limit.is_some_and(|n| failed[i] >= n) {
                continue;
            }
            return match rule.fault {
                PullFault::Slow(d) => PullDecision::Proceed(d),
                fault => {
                    failed[i] += 1;
                    PullDecision::Fail(fault)
                }
            };
        }
        PullDecision::Proceed(Duration::ZERO)
    }
}

fn parse_rule(rule: &str) -> Result<FaultRule, FaultsError> {
    let bad = |problem: String| FaultsError {
        rule: rule.to_string(),
        problem,
    };
    let Some(body) = rule.strip_prefix("pull:") else {
        return Err(bad(
            "a rule must start with \"pull:\" (the only kind of fault there is), as in \
             pull:docker.io/rinormaloku/happy-service:*=ratelimit:2"
                .into(),
        ));
    };
    // The pattern may contain ':' (a tag) but not '='; the fault follows the last '='.
    let Some((pattern, fault)) = body.rsplit_once('=') else {
        return Err(bad(
            "missing \"=<fault>\" after the image pattern (faults: unreachable, ratelimit, \
             notfound, each optionally :N, or slow:SECONDS)"
                .into(),
        ));
    };
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Err(bad(
            "the image pattern is empty (use * to match every image)".into(),
        ));
    }
    if pattern.contains('=') {
        return Err(bad("the image pattern contains '='".into()));
    }
    if !could_be_qualified(pattern) {
        return Err(bad(format!(
            "the pattern {pattern:?} can never match: patterns are matched against fully \
             qualified references such as docker.io/rinormaloku/happy-service:latest (registry \
             first, tag last), so start it with the registry or with *"
        )));
    }
    let fault = fault.trim();
    let (name, arg) = match fault.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (fault, None),
    };
    let (fault, limit) = match name {
        "unreachable" | "ratelimit" | "notfound" => {
            let kind = match name {
                "unreachable" => PullFault::Unreachable,
                "ratelimit" => PullFault::RateLimit,
                _ => PullFault::NotFound,
            };
            let limit = match arg {
                None => None,
                Some(n) => match n.parse::<u32>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        return Err(bad(format!(
                            "{name}:{n}: the count after ':' must be a whole number of pulls \
                             ≥ 1 (how many matching pulls fail before pulls succeed)"
                        )));
                    }
                },
            };
            (kind, limit)
        }
        "slow" => {
            let Some(secs) = arg else {
                return Err(bad("slow needs a duration in seconds, as in slow:30".into()));
            };
            let d = secs
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
                .ok_or_else(|| {
                    bad(format!(
                        "slow:{secs}: the duration must be a number of seconds between 0 and \
                         86400"
                    ))
                })?;
            (PullFault::Slow(Duration::from_secs_f64(d)), None)
        }
        "" => {
            return Err(bad(
                "the fault after '=' is empty (faults: unreachable, ratelimit, notfound, each \
                 optionally :N, or slow:SECONDS)"
                    .into(),
            ));
        }
        other => {
            return Err(bad(format!(
                "unknown fault {other:?} (faults: unreachable, ratelimit, notfound, each \
                 optionally :N, or slow:SECONDS)"
            )));
        }
    };
    Ok(FaultRule {
        pattern: pattern.to_string(),
        fault,
        limit,
    })
}

/// Whether a pattern could match a fully qualified reference: it starts with `*`, or its
/// first path element is a registry host (has a `.` or a `:`, or is `localhost`), as every
/// reference [`super::pull::docker_ref`] gives does.
fn could_be_qualified(pattern: &str) -> bool {
    if pattern.starts_with('*') {
        return true;
    }
    let Some((first, _)) = pattern.split_once('/') else {
        // No '/': only a pattern with a wildcard in its first element can match.
        return pattern.contains('*');
    };
    first.contains('*') || first.contains('.') || first.contains(':') || first == "localhost"
}

/// `*` matches any run of characters (none included); every other character matches itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAPPY: &str = "docker.io/rinormaloku/happy-service:latest";

    #[test]
    fn parses_every_fault_and_count() {
        let f = PullFaults::parse(
            "pull:docker.io/rinormaloku/happy-service:*=ratelimit:2; pull:docker.io/istio/*=unreachable;\
             pull:*curl*=notfound:1;pull:quay.io/*=slow:1.5;",
        )
        .unwrap();
        let rules = f.rules();
        assert_eq!(rules.len(), 4);
        assert_eq!(
            rules[0],
            FaultRule {
                pattern: "docker.io/rinormaloku/happy-service:*".into(),
                fault: PullFault::RateLimit,
                limit: Some(2)
            }
        );
        assert_eq!(rules[1].fault, PullFault::Unreachable);
        assert_eq!(rules[1].limit, None);
        assert_eq!(rules[2].fault, PullFault::NotFound);
        assert_eq!(rules[2].limit, Some(1));
        assert_eq!(rules[3].fault, PullFault::Slow(Duration::from_millis(1500)));
        assert!(PullFaults::parse("").unwrap().rules().is_empty());
        assert!(PullFaults::parse(" ; ").unwrap().rules().is_empty());
    }

    #[test]
    fn bad_rules_are_named_with_what_is_wrong() {
        for (spec, rule, problem) in [
            (
                "push:docker.io/*=notfound",
                "push:docker.io/*=notfound",
                "must start with \"pull:\"",
            ),
            (
                "pull:docker.io/*",
                "pull:docker.io/*",
                "missing \"=<fault>\"",
            ),
            ("pull:=notfound", "pull:=notfound", "pattern is empty"),
            (
                "pull:docker.io/*=timeout",
                "pull:docker.io/*=timeout",
                "unknown fault \"timeout\"",
            ),
            (
                "pull:docker.io/*=",
                "pull:docker.io/*=",
                "fault after '=' is empty",
            ),
            (
                "pull:docker.io/*=notfound:0",
                "pull:docker.io/*=notfound:0",
                "whole number",
            ),
            (
                "pull:docker.io/*=ratelimit:x",
                "pull:docker.io/*=ratelimit:x",
                "whole number",
            ),
            (
                "pull:docker.io/*=slow",
                "pull:docker.io/*=slow",
                "slow needs a duration",
            ),
            (
                "pull:docker.io/*=slow:-1",
                "pull:docker.io/*=slow:-1",
                "number of seconds",
            ),
            (
                "pull:rinormaloku/happy-service:latest=notfound",
                "pull:rinormaloku/happy-service:latest=notfound",
                "can never match",
            ),
            ("pull:*=notfound;pull:x=y", "pull:x=y", "can never match"),
        ] {
            let e = PullFaults::parse(spec).unwrap_err();
            assert_eq!(e.rule, rule, "{spec}");
            let text = e.to_string();
            assert!(text.contains(problem), "{spec}: {text}");
            assert!(text.starts_with("HAPPY_SANDBOX_FAULTS: rule"), "{text}");
            assert!(text.contains(rule), "{text}");
        }
    }

    #[test]
    fn the_wildcard_matches_any_run_of_characters() {
        assert!(wildcard_match("*", HAPPY));
        assert!(wildcard_match(
            "docker.io/rinormaloku/happy-service:*",
            HAPPY
        ));
        assert!(wildcard_match("docker.io/*/happy-service:latest", HAPPY));
        assert!(wildcard_match("*happy*", HAPPY));
        assert!(wildcard_match(HAPPY, HAPPY));
        assert!(!wildcard_match("docker.io/istio/*", HAPPY));
        assert!(!wildcard_match(
            "docker.io/rinormaloku/happy-service:v2",
            HAPPY
        ));
        assert!(!wildcard_match("*happy-service", HAPPY));
        assert!(!wildcard_match("docker.io/*x*:latest", HAPPY));
        // A pattern longer than the text around its wildcard does not match.
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn a_counted_rule_fails_its_first_n_pulls_then_lets_pulls_through() {
        let f = PullFaults::parse("pull:docker.io/rinormaloku/*=ratelimit:2").unwrap();
        let other = "docker.io/curlimages/curl:8.16.0";
        assert_eq!(f.decide(other), PullDecision::Proceed(Duration::ZERO));
        assert_eq!(f.decide(HAPPY), PullDecision::Fail(PullFault::RateLimit));
        assert_eq!(
            f.decide("docker.io/rinormaloku/other:1"),
            PullDecision::Fail(PullFault::RateLimit)
        );
        assert_eq!(f.decide(HAPPY), PullDecision::Proceed(Duration::ZERO));
        assert_eq!(f.decide(HAPPY), PullDecision::Proceed(Duration::ZERO));
    }

    #[test]
    fn the_first_live_rule_decides_and_slow_pulls_succeed() {
        let f = PullFaults::parse(
            "pull:docker.io/rinormaloku/*=notfound:1;pull:docker.io/*=slow:3;pull:*=unreachable",
        )
        .unwrap();
        assert_eq!(f.decide(HAPPY), PullDecision::Fail(PullFault::NotFound));
        // The first rule is spent: the next matching one decides.
        assert_eq!(
            f.decide(HAPPY),
            PullDecision::Proceed(Duration::from_secs(3))
        );
        assert_eq!(
            f.decide("quay.io/kiali/kiali:v2.27"),
            PullDecision::Fail(PullFault::Unreachable)
        );
        // Unlimited rules never run out.
        for _ in 0..5 {
            assert_eq!(
                f.decide("ghcr.io/x/y:1"),
                PullDecision::Fail(PullFault::Unreachable)
            );
        }
    }
}
