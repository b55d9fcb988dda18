//! The suite's step layer, compiled once for every target that runs the suite: the step
//! definitions (`definitions`, by domain, with the World they share), the runner (`runner`:
//! plan, provision, execute, finish, under a signal watch) and [`entry::run_suite`], the
//! `happy` target's whole `main`.
//!
//! It may use the library (`happy_istio`) and cucumber; nothing uses it but the suite's test
//! targets (`happy`, `it`, `runs`).

pub mod definitions;
pub mod entry;
pub mod runner;

use std::path::{Path, PathBuf};

/// The repository's root: the features, manifests and `.git` are there (this crate is its
/// `steps/` directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

#[cfg(test)]
mod structure_tests {
    use std::process::Command;

    /// The step layer's module graph has no cycle at any level (`ci/module-cycles`, the same
    /// reader the library's and the sandbox's structure tests use): the shared modules of
    /// `definitions` sit below the World and the step modules, and the runner's phases depend
    /// one way.
    #[test]
    fn the_step_layer_has_no_module_cycle() {
        let root = super::repo_root();
        let out = Command::new("python3")
            .arg(root.join("ci/module-cycles"))
            .arg(root.join("steps"))
            .output()
            .expect("python3 runs ci/module-cycles");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(text.contains(" 0 module cycle(s) in "), "{text}");
    }
}
