//! Helpers for the crate's unit tests.

use std::path::{Path, PathBuf};

use image::GrayImage;

use crate::{decode_page, Limits};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// A fixture page decoded by the crate's own decoder. Outside CI a missing fixture skips (None);
/// with CI=true it fails.
pub(crate) fn fixture_page(name: &str) -> Option<GrayImage> {
    let path = fixtures_dir().join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("fixture {} is missing in CI: {error}", path.display());
            }
            eprintln!("skipping: fixture {} is missing", path.display());
            return None;
        }
    };
    let format = crate::sniff(&bytes).expect("fixture format");
    let page = decode_page(std::io::Cursor::new(bytes), format, 0, &Limits::default())
        .expect("fixture decodes");
    Some(page.image)
}
