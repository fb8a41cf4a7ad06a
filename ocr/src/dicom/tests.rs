use super::*;

const RG1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/dicom/RG1_J2KI.dcm"
);

#[test]
fn probe_fixture() {
    let bytes = std::fs::read(RG1).unwrap();
    let t = std::time::Instant::now();
    let (info, preview) = dicom_read(&bytes, &Limits::default()).unwrap();
    println!(
        "{info:#?}\n{:?} in {:?}",
        preview.as_ref().map(|p| p.dimensions()),
        t.elapsed()
    );
}
