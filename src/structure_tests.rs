//! The crate's module graph, read by `ci/module-cycles` (Python 3, standard library only; it
//! checks itself on its fixture crate first): no module cycle at any level, and the library's
//! layers ([`LAYERS`]) used only downwards, so that each layer can become a crate of its own
//! with no cycle between the crates. A new cycle, an upward edge, a new top-level module in no
//! layer or a new use of provisioning by the reports fails here.

use std::path::Path;
use std::process::Command;

/// The library's layers, bottom first, each with its top-level modules. A module may use its
/// own layer and the layers below, never one above.
/// - claims: the claim path, from a cluster's API to a verdict, and the facts it needs (the
///   cluster kinds, image references, the deviations from the workshop's text);
/// - provisioning: where the cluster and Istio come from (provisioners with their preflight,
///   downloads, the Istio toolchain, the run's settings, the command runner, kind's pins);
/// - reports: the run's reports, the living documentation, diagnostics bundles;
/// - tools: the command lines of the binaries, which may use anything.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "claims",
        &[
            "error",
            "cluster",
            "cluster_kind",
            "image_ref",
            "probes",
            "checks",
            "manifests",
            "deviations",
            "timeouts",
            "retry",
        ],
    ),
    (
        "provisioning",
        &[
            "process",
            "download",
            "kind_pins",
            "istio",
            "settings",
            "provision",
        ],
    ),
    ("reports", &["report", "docs", "diagnostics"]),
    ("tools", &["cli"]),
];

/// The reports layer's uses of the provisioning layer, which the layering allows but keeps to
/// these: a diagnostics bundle dumps each proxy's Envoy configuration with the run's istioctl
/// (`istio::Istioctl`, `istio::istioctl::proxy_config_args`), and the living documentation
/// orders its columns by Istio version with the toolchain's version grammar
/// (`istio::version::IstioVersion`, `istio::releases::UNRESOLVED_DEV`).
const REPORTS_ON_PROVISIONING: &str =
    "src: layer edge provisioning <- reports: diagnostics -> istio, docs -> istio";

fn module_cycles(args: &[&str]) -> (Option<i32>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("ci/module-cycles"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("python3 runs ci/module-cycles");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `--layers`' argument: `claims=error,cluster,…;provisioning=…`.
fn layers_spec() -> String {
    LAYERS
        .iter()
        .map(|(name, modules)| format!("{name}={}", modules.join(",")))
        .collect::<Vec<_>>()
        .join(";")
}

#[test]
fn module_cycles_passes_its_self_test() {
    let (code, text) = module_cycles(&["--self-test"]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn the_library_has_no_module_cycle() {
    let (code, text) = module_cycles(&["src"]);
    let found: Vec<&str> = text.lines().filter(|l| l.contains(": cycle in ")).collect();
    assert!(found.is_empty(), "{text}");
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn each_layer_uses_only_the_layers_below() {
    let (code, text) = module_cycles(&["--layers", &layers_spec(), "src"]);
    let violations: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(": layer violation: "))
        .collect();
    assert!(violations.is_empty(), "{text}");
    assert_eq!(code, Some(0), "{text}");
    // Every layer is read: the claims are used from each layer above them.
    for above in ["provisioning", "reports", "tools"] {
        let line = format!("src: layer edge claims <- {above}: ");
        assert!(text.lines().any(|l| l.starts_with(&line)), "{line}\n{text}");
    }
    let reports_on_provisioning: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("src: layer edge provisioning <- reports: "))
        .collect();
    assert_eq!(reports_on_provisioning, [REPORTS_ON_PROVISIONING], "{text}");
}
