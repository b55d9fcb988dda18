//! The workspace's module graphs, read by `ci/module-cycles` (Python 3, standard library only;
//! it checks itself on its fixture crate first): no module cycle at any level in the library's
//! crates. Between crates Cargo forbids cycles itself: the claim path (`crates/claims`) uses no
//! other crate of the workspace, provisioning (`crates/provision`) builds on it, the reports
//! (`crates/report`) on both, and this crate (the tools' command lines) on all three. Within
//! the provisioning crate its own layers hold: the command runner, downloads and kind's pins
//! below the Istio toolchain and the settings, those below the provisioners. (The step layer
//! and the sandbox have structure tests of their own.) And the suite alone resolves its
//! dependencies as the workspace does, so neither build redoes the other's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The library crates' source directories, from the repository's root.
const CRATES: [&str; 4] = [
    "crates/claims/src",
    "crates/provision/src",
    "crates/report/src",
    "src",
];

/// The provisioning crate's layers, bottom first: a module may use its own layer and those
/// below, never one above. (`crate::cluster` and the other claim modules it re-exports from
/// happy-claims are not modules of this crate; its own `error` is, and uses none.)
const PROVISION_LAYERS: &str =
    "leaves=error,process,download,kind_pins;toolchain=istio,settings;provisioners=provision";

fn module_cycles(args: &[&str]) -> (Option<i32>, String) {
    let root = happy_istio::repo_root();
    let out = Command::new("python3")
        .arg(root.join("ci/module-cycles"))
        .args(args)
        .current_dir(Path::new(&root))
        .output()
        .expect("python3 runs ci/module-cycles");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn module_cycles_passes_its_self_test() {
    let _processes = crate::processes::shared();
    let (code, text) = module_cycles(&["--self-test"]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn the_library_crates_have_no_module_cycle() {
    let _processes = crate::processes::shared();
    let (code, text) = module_cycles(&CRATES);
    for dir in CRATES {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{dir}: 0 module cycle(s) in "))),
            "{dir}\n{text}"
        );
    }
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn the_provisioning_crate_uses_its_layers_downwards() {
    let _processes = crate::processes::shared();
    let (code, text) = module_cycles(&["--layers", PROVISION_LAYERS, "crates/provision/src"]);
    let violations: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(": layer violation: "))
        .collect();
    assert!(violations.is_empty(), "{text}");
    assert_eq!(code, Some(0), "{text}");
}

/// Every package the build of `selection` resolves, with its features, as `cargo tree` prints
/// them (normal, build and dev dependencies, as `cargo test` builds them). A package built for
/// the host too (for a build script or a proc macro) is printed with each set; `cargo tree`
/// splits those less finely than the build does, so the features are their union.
fn resolved_features(selection: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--prefix",
            "none",
            "-e",
            "normal,build,dev",
        ])
        .args(["-f", "{p} {f}"])
        .args(selection)
        .current_dir(happy_istio::repo_root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {selection:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_end_matches(" (*)");
        if let Some((package, features)) = line.rsplit_once(' ') {
            packages.entry(package.to_string()).or_default().extend(
                features
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(String::from),
            );
        }
    }
    packages
}

/// `cargo test --test happy` (the suite alone, as a user and the nightly's `ci/nightly-run`
/// build it) resolves every dependency with the features `cargo test --workspace` gives it.
/// Cargo unifies features over the selected packages and their dev-dependencies, so one
/// member's dependency with a feature the suite's graph lacks (happy-sandbox-cli's flate2 with
/// zlib-rs, once) makes each build redo the other's: about 40 s of compiling in CI, in
/// `stopping`'s nightly case, and for a user who runs both.
#[test]
fn the_suite_alone_resolves_its_dependencies_as_the_workspace_does() {
    let _processes = crate::processes::shared();
    let suite = resolved_features(&["-p", "happy-istio"]);
    let workspace = resolved_features(&["--workspace"]);
    assert!(suite.len() > 100, "{suite:?}");
    let differ: Vec<String> = suite
        .iter()
        .filter_map(|(package, features)| {
            let theirs = workspace.get(package)?;
            (theirs != features)
                .then(|| format!("{package}: suite {features:?}, workspace {theirs:?}"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "features differ (give the suite's dependency the workspace's features):\n{}",
        differ.join("\n")
    );
}
