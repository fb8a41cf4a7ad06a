//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same entry points
//! the fuzz targets call, on the stable toolchain: every input returns, none panics.

use std::path::PathBuf;

#[test]
fn the_fuzz_corpus_replays_without_a_crash() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for (target, run) in chartvault_ocr::fuzzing::TARGETS {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {} is missing: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let started = std::time::Instant::now();
            run(&data);
            let elapsed = started.elapsed();
            assert!(
                elapsed.as_secs() < 20,
                "{target}: {} took {elapsed:?}",
                path.display()
            );
            replayed += 1;
        }
    }
    assert!(replayed >= 8, "only {replayed} corpus inputs");
    println!("replayed {replayed} corpus inputs");
}

/// The small bombs of the fuzz corpus (`fuzz/seeds.py`: images declared 1×1, whose cap is
/// 1 MiB, with 4 MiB behind them) are refused as well: the replay of the corpus only checks
/// that nothing crashes.
#[test]
fn the_fuzz_corpus_bombs_are_refused() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pdf");
    let mut refused = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("regression-") && name.ends_with(".pdf")) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let error = chartvault_ocr::PdfFile::open(bytes, &chartvault_ocr::fuzzing::limits())
            .err()
            .unwrap_or_else(|| panic!("{name} opened"));
        println!("{name}: {error}");
        let message = error.to_string();
        assert!(
            message.contains("expands")
                || message.contains("/Columns")
                || message.contains("encrypt"),
            "{name}: {message}"
        );
        refused += 1;
    }
    assert!(refused >= 19, "only {refused} corpus bombs");
}
