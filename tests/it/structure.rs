//! The workspace's module graphs, read by `ci/module-cycles` (Python 3, standard library only;
//! it checks itself on its fixture crate first): no module cycle at any level in the library's
//! crates. Between crates Cargo forbids cycles itself: the claim path (`crates/claims`) uses no
//! other crate of the workspace, provisioning (`crates/provision`) builds on it, the reports
//! (`crates/report`) on both, and this crate (the tools' command lines) on all three. Within
//! the provisioning crate its own layers hold: the command runner, downloads and kind's pins
//! below the Istio toolchain and the settings, those below the provisioners. (The step layer
//! and the sandbox have structure tests of their own.)

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
