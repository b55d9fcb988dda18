//! Component benchmarks of the sandbox, in one bench binary (figures printed, nothing asserted:
//! speed is measured, not tested). Three groups, each a module beside this file:
//!
//! - `control_plane`: start to first API answer, server-side apply of the workshop to all pods
//!   Ready (env BENCH_TRIALS);
//! - `runtime_throughput`: requests per second through a port-forward to service-a, and memory
//!   (env BENCH_SECS, BENCH_CLIENTS);
//! - `mesh`: a VirtualService applied to the first request it routes, Envoy start to ready, and
//!   memory with every sidecar (needs envoy; env BENCH_TRIALS).
//!
//! Run: `cargo bench -p happy-sandbox-cli --bench sandbox` for every group, or name the groups:
//! `cargo bench -p happy-sandbox-cli --bench sandbox -- mesh control_plane`. With more than one
//! group, each runs in a child process of its own (this binary, given that group's name), so a
//! group's process figures — resident memory, CPU time, its Envoy children — are its own, as
//! when each group was a bench binary of its own.

#[path = "../../tests/it/common/mod.rs"]
mod common;
#[path = "../../tests/it/mesh_support/mod.rs"]
mod mesh_support;
#[path = "../../tests/it/runtime_support/mod.rs"]
mod runtime_support;

mod control_plane;
mod mesh;
mod runtime_throughput;

use std::process::{Command, ExitCode};

/// Every group, in the order they run when none is named.
const GROUPS: &[(&str, fn())] = &[
    ("control_plane", control_plane::run),
    ("runtime_throughput", runtime_throughput::run),
    ("mesh", mesh::run),
];

fn main() -> ExitCode {
    // `cargo bench` passes `--bench` (and `cargo test` may pass harness options): only the
    // words that are not options name groups.
    let asked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let known: Vec<&str> = GROUPS.iter().map(|(name, _)| *name).collect();
    if let Some(unknown) = asked.iter().find(|a| !known.contains(&a.as_str())) {
        eprintln!(
            "benches/sandbox: no group {unknown:?}; the groups are {}",
            known.join(", ")
        );
        return ExitCode::from(2);
    }
    let chosen: Vec<&(&str, fn())> = GROUPS
        .iter()
        .filter(|(name, _)| asked.is_empty() || asked.iter().any(|a| a == name))
        .collect();
    if let [(_, run)] = chosen.as_slice() {
        run();
        return ExitCode::SUCCESS;
    }
    let me = match std::env::current_exe() {
        Ok(me) => me,
        Err(e) => {
            eprintln!("benches/sandbox: cannot find this binary to run each group in: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = Vec::new();
    for (name, _) in chosen {
        println!("== {name}");
        match Command::new(&me).arg(name).status() {
            Ok(status) if status.success() => {}
            Ok(status) => failed.push(format!("{name} ({status})")),
            Err(e) => failed.push(format!("{name} (could not start: {e})")),
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("benches/sandbox: failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}
