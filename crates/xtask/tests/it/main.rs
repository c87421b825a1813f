//! Tests that keep the architecture as written: the crates' dependencies against the table in
//! ARCHITECTURE.md, and the behaviour suites' macros against the cases they define.

mod dependencies;
mod suites;

use std::path::PathBuf;

/// The workspace root: this crate lives in `crates/xtask`.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
