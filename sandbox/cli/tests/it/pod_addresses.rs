//! The one lock every test of this binary holds, so that a test which proves a pod address
//! was freed sees no other test take it.
//!
//! Pod addresses are the host's: a sandbox's runtime hands out the lowest free 127.1.x.y whose
//! claim it can take (`src/net/addr.rs`), so an address one sandbox frees is at once the next
//! pod's of whichever sandbox of this process — or of a `happy-sandbox up` child — starts a
//! pod next, listening on the same ports. The tests run in parallel, each with sandboxes of its
//! own, so a test that stops a pod and then checks that nothing listens on its address, or
//! that its own next pod gets that address, holds this lock alone ([`alone`]) for as long as
//! that must hold; every other test shares it ([`shared`], [`shared_blocking`] in a plain
//! `#[test]`). Every test takes it as its first statement, whether or not it starts a sandbox:
//! one rule is easier to keep than a list of which tests take addresses, and
//! `every_test_holds_the_lock_first` below checks it on the sources.
//!
//! Each test takes it once (a fair lock: a second read queued behind a waiting writer would
//! never be granted); a test that needs it alone after sharing it drops its share first. The
//! helper modules (`common`, `mesh_support`, `runtime_support`, `walkthrough`) never take it:
//! the benches include them, and a helper that took it could take it twice.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static POD_ADDRESSES: RwLock<()> = RwLock::const_new(());

/// For a test that takes pod addresses (or none) and checks nothing about freed ones.
pub(crate) async fn shared() -> RwLockReadGuard<'static, ()> {
    POD_ADDRESSES.read().await
}

/// [`shared`] for a plain `#[test]` (outside any Tokio runtime); only workshop_by_hand's, a
/// kubectl module, are.
pub(crate) fn shared_blocking() -> RwLockReadGuard<'static, ()> {
    POD_ADDRESSES.blocking_read()
}

/// For a test that checks what becomes of an address it freed: no other test holds any part
/// of the lock, so no other sandbox of this process starts a pod, while this is held.
pub(crate) async fn alone() -> RwLockWriteGuard<'static, ()> {
    POD_ADDRESSES.write().await
}

/// The test modules of this binary, by file name, as [`every_test_holds_the_lock_first`]
/// reads them.
const SOURCES: &[(&str, &str)] = &[
    ("api.rs", include_str!("api.rs")),
    ("cli.rs", include_str!("cli.rs")),
    ("image_pulls.rs", include_str!("image_pulls.rs")),
    (
        "kubectl_port_forward.rs",
        include_str!("kubectl_port_forward.rs"),
    ),
    ("main.rs", include_str!("main.rs")),
    ("mesh_core.rs", include_str!("mesh_core.rs")),
    ("mesh_install.rs", include_str!("mesh_install.rs")),
    (
        "mesh_observability.rs",
        include_str!("mesh_observability.rs"),
    ),
    ("mesh_prometheus.rs", include_str!("mesh_prometheus.rs")),
    ("mesh_tcpdump.rs", include_str!("mesh_tcpdump.rs")),
    ("pod_addresses.rs", include_str!("pod_addresses.rs")),
    ("runtime_network.rs", include_str!("runtime_network.rs")),
    ("runtime_pods.rs", include_str!("runtime_pods.rs")),
    ("runtime_workshop.rs", include_str!("runtime_workshop.rs")),
    ("workshop.rs", include_str!("workshop.rs")),
    ("workshop_by_hand.rs", include_str!("workshop_by_hand.rs")),
];

/// The helper modules, which must not take the lock.
const HELPERS: &[(&str, &str)] = &[
    ("common/mod.rs", include_str!("common/mod.rs")),
    ("mesh_support/mod.rs", include_str!("mesh_support/mod.rs")),
    (
        "runtime_support/mod.rs",
        include_str!("runtime_support/mod.rs"),
    ),
    ("walkthrough/mod.rs", include_str!("walkthrough/mod.rs")),
];

/// Each test function of `source`: (name, its first statement), found from its `#[test]` or
/// `#[tokio::test…]` attribute; the signature is one line, as rustfmt writes these.
fn tests_of(source: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut lines = source.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "#[test]" && !line.starts_with("#[tokio::test") {
            continue;
        }
        let signature = lines
            .by_ref()
            .find(|l| l.starts_with("fn ") || l.starts_with("async fn "))
            .unwrap_or_default();
        let name = signature
            .trim_start_matches("async ")
            .trim_start_matches("fn ")
            .split('(')
            .next()
            .unwrap_or_default()
            .to_string();
        let first = lines
            .by_ref()
            .find(|l| !l.is_empty() && !l.starts_with("//"))
            .unwrap_or_default()
            .to_string();
        found.push((name, first));
    }
    found
}

#[tokio::test]
async fn every_test_holds_the_lock_first() {
    let _pods = shared().await;
    let mut missing = Vec::new();
    let mut count = 0;
    for (file, source) in SOURCES {
        for (name, first) in tests_of(source) {
            count += 1;
            let takes = ["shared().await;", "shared_blocking();", "alone().await;"]
                .iter()
                .any(|call| {
                    first.starts_with("let ")
                        && (first.ends_with(&format!("pod_addresses::{call}"))
                            || first.ends_with(&format!("= {call}")))
                });
            if !takes {
                missing.push(format!("{file}: {name} begins with `{first}`"));
            }
        }
    }
    // The binary's tests, this one included (the kubectl-only ones counted whatever the
    // features): a parser that found none would pass vacuously.
    assert!(count >= 61, "only {count} tests found in the sources");
    assert!(
        missing.is_empty(),
        "tests that do not take the pod-address lock as their first statement \
         (`let _pods = pod_addresses::shared().await;`, see tests/it/pod_addresses.rs):\n{}",
        missing.join("\n")
    );
    for (file, source) in HELPERS {
        assert!(
            !source.contains("pod_addresses::"),
            "{file} takes the pod-address lock: only tests may, once each"
        );
    }
}
