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

/// A PDF of the given objects, numbered from 1 (1 is the catalog), with a correct xref table;
/// `trailer_extra` goes into the trailer's dictionary.
pub fn classic_pdf<B: AsRef<[u8]>>(objects: &[B], trailer_extra: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (index, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", index + 1).as_bytes());
        out.extend(body.as_ref());
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R {trailer_extra}>>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}
