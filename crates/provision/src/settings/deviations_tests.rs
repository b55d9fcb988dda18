//! The deviations as the run's settings switch them, end to end: the variables a user sets
//! (`HAPPY_VERBATIM`, `HAPPY_LEGACY_IMAGE`, `ISTIO_VERSION`), read the way a run reads them,
//! then [`Deviations::resolve`]. The deviations' own tests are in happy-claims.

use std::collections::HashMap;

use crate::cluster_kind::ClusterKind;
use crate::deviations::*;
use crate::settings::Settings;

fn settings(vars: &[(&str, &str)]) -> crate::Result<Settings> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("HAPPY_CACHE_DIR".to_string(), "/tmp/c".to_string())])
        .collect();
    Settings::from_lookup(|name| map.get(name).cloned())
}

fn resolved(vars: &[(&str, &str)]) -> Deviations {
    Deviations::resolve(&settings(vars).expect("valid settings"))
}

#[test]
fn the_ingress_recheck_applies_where_its_premise_is_the_clusters() {
    // kind, the sandbox (a model of kind) and the suite's k3s (servicelb off) have no
    // LoadBalancer implementation: the re-check is real there.
    for kind in [ClusterKind::Kind, ClusterKind::Sandbox, ClusterKind::K3s] {
        assert!(rechecks_not_applicable(kind).is_empty(), "{kind}");
    }
    let existing = rechecks_not_applicable(ClusterKind::Existing);
    assert_eq!(existing.len(), 1);
    assert_eq!(existing[0].0, "D-ingress-address");
    assert!(
        existing[0].1.contains("premise") && existing[0].1.contains("LoadBalancer"),
        "{}",
        existing[0].1
    );
    let report = resolved(&[]).report();
    let ingress = report.iter().find(|d| d.id == "D-ingress-address").unwrap();
    assert_eq!(
        ingress.recheck,
        "scenario @deviation @D-ingress-address (not applicable on existing clusters)"
    );
}

#[test]
fn the_settings_table_names_every_deviation() {
    let docs = Settings::describe();
    let row = docs
        .iter()
        .find(|d| d.name == VERBATIM_VAR)
        .expect("documented");
    for d in DEVIATIONS {
        assert!(
            row.values.contains(d.id),
            "{VERBATIM_VAR}'s values lack {}",
            d.id
        );
    }
}

#[test]
fn everything_is_on_by_default() {
    let d = resolved(&[]);
    assert!(d.entries().iter().all(|(_, s)| *s == State::On));
    assert_eq!(
        d.legacy_client(),
        &LegacyClient {
            image: SUITE_LEGACY_IMAGE.into(),
            command: Some(vec!["/bin/sleep".into(), "infinity".into()]),
        }
    );
}

#[test]
fn the_workshops_image_switches_the_legacy_deviation_off() {
    for image in [
        "radial/busyboxplus:curl",
        "docker.io/radial/busyboxplus:curl",
        "index.docker.io/radial/busyboxplus:curl",
    ] {
        let d = resolved(&[("HAPPY_LEGACY_IMAGE", image)]);
        assert_eq!(d.state("D-legacy-image"), Some(&State::Off), "{image}");
        assert_eq!(
            d.legacy_client(),
            &LegacyClient {
                image: WORKSHOP_LEGACY_IMAGE.into(),
                command: None
            }
        );
    }
    let d = resolved(&[("HAPPY_VERBATIM", "D-legacy-image")]);
    assert_eq!(d.state("D-legacy-image"), Some(&State::Off));
    assert_eq!(d.state("D-istio-version"), Some(&State::On));
    assert_eq!(d.legacy_client().image, WORKSHOP_LEGACY_IMAGE);
}

#[test]
fn another_image_keeps_the_deviation_on_with_the_users_replacement() {
    let d = resolved(&[("HAPPY_LEGACY_IMAGE", "registry.local/curl:1")]);
    assert_eq!(
        d.state("D-legacy-image"),
        Some(&State::OnWith("registry.local/curl:1".into()))
    );
    assert_eq!(d.legacy_client().image, "registry.local/curl:1");
    assert!(d.legacy_client().command.is_some());
}

#[test]
fn verbatim_all_switches_everything_off_that_can_be() {
    let d = resolved(&[("HAPPY_VERBATIM", "all")]);
    for (dev, state) in d.entries() {
        let want = if dev.switchable {
            State::Off
        } else {
            State::On
        };
        assert_eq!(*state, want, "{}", dev.id);
    }
    // None stays on: every deviation can be switched off.
    assert!(!d.to_string().contains("cannot be switched off"));
    let d = resolved(&[("ISTIO_VERSION", "1.12.2")]);
    assert_eq!(d.state("D-istio-version"), Some(&State::Off));
    let d = resolved(&[("ISTIO_VERSION", "latest")]);
    assert_eq!(
        d.state("D-istio-version"),
        Some(&State::OnWith("latest".into()))
    );
}

#[test]
fn reports_show_every_deviation_and_its_state() {
    let on = resolved(&[]).report();
    assert_eq!(on.len(), DEVIATIONS.len());
    let legacy = on.iter().find(|i| i.id == "D-legacy-image").unwrap();
    assert_eq!(legacy.state, "on");
    assert!(
        legacy.detail.contains(SUITE_LEGACY_IMAGE),
        "{}",
        legacy.detail
    );
    assert_eq!(legacy.recheck, "scenario @deviation @D-legacy-image");
    assert_eq!(legacy.claims, ["C18", "C19", "C22"]);

    let off = resolved(&[("HAPPY_LEGACY_IMAGE", "radial/busyboxplus:curl")]).report();
    let legacy = off.iter().find(|i| i.id == "D-legacy-image").unwrap();
    assert_eq!(legacy.state, "off");
    assert!(
        legacy.detail.starts_with("switched off") && legacy.detail.contains("C18"),
        "{}",
        legacy.detail
    );

    let d = resolved(&[("HAPPY_VERBATIM", "D-ingress-address")]);
    assert_eq!(d.state("D-ingress-address"), Some(&State::Off));
    assert_eq!(d.state("D-legacy-image"), Some(&State::On));

    let banner = resolved(&[("HAPPY_VERBATIM", "D-legacy-image")]).to_string();
    assert!(banner.contains("OFF D-legacy-image"), "{banner}");
    assert!(banner.contains("ON  D-istio-version"), "{banner}");
    assert!(banner.contains("HAPPY_VERBATIM"), "{banner}");
}
