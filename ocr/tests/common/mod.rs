//! Shared helpers for the integration tests: locating the fixture scans and the tesseract
//! CLI, skipping outside CI when they are missing and failing in CI.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// `../../shared/fixtures` relative to this crate, or `None` (with a note) when it is
/// missing outside CI. Panics in CI.
pub fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "fixture folder {} is missing (required when CI=true)",
        dir.display()
    );
    eprintln!(
        "note: skipping, fixture folder {} is missing",
        dir.display()
    );
    None
}

/// The bytes of one fixture, or `None` when the folder is missing outside CI.
pub fn fixture_bytes(name: &str) -> Option<Vec<u8>> {
    let path = fixtures()?.join(name);
    Some(std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display())))
}

/// Whether the `tesseract` CLI can be run; `false` (with a note) outside CI, panics in CI.
pub fn tesseract_cli_available() -> bool {
    let found = std::process::Command::new("tesseract")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(!in_ci(), "the tesseract CLI is required when CI=true");
        eprintln!("note: skipping, the tesseract CLI is not installed");
    }
    found
}
