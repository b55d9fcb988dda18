//! Copies of the report fixtures under `tests/fixtures/docs/`, for the tests of the living
//! documentation (`docs`, `browser`, `publish_docs`), which relabel or rearrange them.

use std::path::{Path, PathBuf};

/// The recorded report directories (see `tests/fixtures/docs/README.md`).
pub fn docs_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docs")
}

/// Copies a directory tree (a report with its diagnostics bundle) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
        let target = to.join(entry.file_name());
        let is_dir = entry
            .file_type()
            .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()))
            .is_dir();
        if is_dir {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copying {}: {e}", entry.path().display()));
        }
    }
}
