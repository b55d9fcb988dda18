//! One lock for the binary's tests and the processes they start. The stopping tests make this
//! process the subreaper of its descendants, then reap and kill every child it has and fail on
//! any that outlived their run; in a binary shared with other tests, that would take (and
//! count) their processes too. So every test takes the lock first: the stopping tests alone
//! ([`alone`]), every other test shared ([`shared`], [`shared_async`]). The lock is fair, so a
//! test never takes it twice (a helper never takes it); [`every_test_takes_the_lock_first`]
//! keeps it so.

use std::sync::LazyLock;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static PROCESSES: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

/// For a test that may start processes (or not): other such tests run beside it.
pub(crate) fn shared() -> RwLockReadGuard<'static, ()> {
    PROCESSES.blocking_read()
}

/// [`shared`], in an async test.
pub(crate) async fn shared_async() -> RwLockReadGuard<'static, ()> {
    PROCESSES.read().await
}

/// For a stopping test: no other test runs, so every child of this process is its own.
pub(crate) fn alone() -> RwLockWriteGuard<'static, ()> {
    PROCESSES.blocking_write()
}

#[test]
fn every_test_takes_the_lock_first() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut missing = Vec::new();
    let mut tests = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "processes.rs" || !name.ends_with(".rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let attr = line.trim();
            if attr != "#[test]" && !attr.starts_with("#[tokio::test") {
                continue;
            }
            tests += 1;
            // The first statement after the signature (which may span lines).
            let body = lines[i + 1..]
                .iter()
                .skip_while(|l| !l.trim_end().ends_with('{'))
                .nth(1)
                .map(|l| l.trim())
                .unwrap_or_default();
            let first_ok = body.starts_with("let _processes = crate::processes::shared();")
                || body.starts_with("let _processes = crate::processes::shared_async().await;")
                || body.starts_with("let _processes = crate::processes::alone();");
            if !first_ok {
                missing.push(format!("{name}:{}: {body}", i + 1));
            }
        }
    }
    assert!(tests > 40, "only {tests} tests found in {}", dir.display());
    assert!(
        missing.is_empty(),
        "tests that do not take the lock first:\n{}",
        missing.join("\n")
    );
}
