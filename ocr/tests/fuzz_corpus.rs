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
