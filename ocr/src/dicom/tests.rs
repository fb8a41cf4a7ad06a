//! Tests on the real CR fixtures (JPEG 2000) and on files written here with dicom-rs.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use dicom_core::smallvec::SmallVec;
use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::Transcode;

use super::*;

const RG1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/dicom/RG1_J2KI.dcm"
);
const RG3: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/dicom/RG3_J2KR.dcm"
);

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const RLE: &str = "1.2.840.10008.1.2.5";
const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
const DX_FOR_PRESENTATION: &str = "1.2.840.10008.5.1.4.1.1.1.1";

// ---------------------------------------------------------------------------------------
// Largest single allocation made by the current thread, to show that hostile lengths
// allocate nothing in proportion to what they claim. Counting only; memory comes from
// the system allocator.

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size)
        }
    });
}

// SAFETY: forwards every call to `System` unchanged; only records sizes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f`, returning its result, the largest allocation it made and how long it took.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    LARGEST.with(|l| l.set(0));
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    (out, LARGEST.with(|l| l.get()), elapsed)
}

// ---------------------------------------------------------------------------------------
// Building test files with dicom-rs.

fn el(tag: Tag, vr: VR, value: PrimitiveValue) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, value)
}

fn s(tag: Tag, vr: VR, text: &str) -> DataElement<InMemDicomObject> {
    el(tag, vr, PrimitiveValue::from(text))
}

fn us(tag: Tag, value: u16) -> DataElement<InMemDicomObject> {
    el(tag, VR::US, PrimitiveValue::from(value))
}

/// A DX image's attributes (no pixel data), with identity and study tags.
fn image_attributes(
    rows: u16,
    cols: u16,
    bits_allocated: u16,
    bits_stored: u16,
    photometric: &str,
) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        s(tags::SOP_CLASS_UID, VR::UI, DX_FOR_PRESENTATION),
        s(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.2.1125.1.1",
        ),
        s(tags::STUDY_DATE, VR::DA, "20240229"),
        s(tags::ACCESSION_NUMBER, VR::SH, "ACC123"),
        s(tags::MODALITY, VR::CS, "DX"),
        s(tags::STUDY_DESCRIPTION, VR::LO, "Chest radiograph"),
        s(tags::PATIENT_NAME, VR::PN, "Doe^Jane^Q^Dr^"),
        s(tags::PATIENT_ID, VR::LO, "MRN-0042"),
        s(tags::BODY_PART_EXAMINED, VR::CS, "CHEST"),
        s(tags::VIEW_POSITION, VR::CS, "PA"),
        s(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.2.1125.1.2",
        ),
        s(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.2.1125.1.3",
        ),
        us(tags::SAMPLES_PER_PIXEL, 1),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, cols),
        us(tags::BITS_ALLOCATED, bits_allocated),
        us(tags::BITS_STORED, bits_stored),
        us(tags::HIGH_BIT, bits_stored - 1),
        us(tags::PIXEL_REPRESENTATION, 0),
    ])
}

fn native16(values: &[u16]) -> DataElement<InMemDicomObject> {
    el(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(SmallVec::from_vec(values.to_vec())),
    )
}

fn native8(values: &[u8]) -> DataElement<InMemDicomObject> {
    el(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(SmallVec::from_vec(values.to_vec())),
    )
}

fn encapsulated(fragments: Vec<Vec<u8>>) -> DataElement<InMemDicomObject> {
    DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new(Vec::<u32>::new(), fragments),
    )
}

fn file_object(obj: InMemDicomObject, ts: &str) -> dicom_object::DefaultDicomObject {
    obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(ts)
            .media_storage_sop_class_uid(DX_FOR_PRESENTATION),
    )
    .expect("meta table")
}

fn write(file: &dicom_object::DefaultDicomObject) -> Vec<u8> {
    let mut out = Vec::new();
    file.write_all(&mut out).expect("write DICOM");
    out
}

fn to_file(obj: InMemDicomObject, ts: &str) -> Vec<u8> {
    write(&file_object(obj, ts))
}

/// RLE Lossless (PS3.5 G) as literal runs only: valid, if not small.
fn rle_encode(samples: &[u8], bytes_per_sample: usize) -> Vec<u8> {
    let segments: Vec<Vec<u8>> = (0..bytes_per_sample)
        .map(|k| {
            // Segment 0 holds the most significant bytes.
            let byte = bytes_per_sample - 1 - k;
            let plane: Vec<u8> = samples
                .chunks_exact(bytes_per_sample)
                .map(|c| c[byte])
                .collect();
            let mut seg = Vec::new();
            for run in plane.chunks(128) {
                seg.push((run.len() - 1) as u8);
                seg.extend_from_slice(run);
            }
            if seg.len() % 2 == 1 {
                seg.push(0x80); // no-op
            }
            seg
        })
        .collect();
    let mut out = vec![0u8; 64];
    out[0..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
    let mut offset = 64u32;
    for (i, seg) in segments.iter().enumerate() {
        out[4 + 4 * i..8 + 4 * i].copy_from_slice(&offset.to_le_bytes());
        offset += seg.len() as u32;
    }
    for seg in segments {
        out.extend(seg);
    }
    out
}

fn pixels(img: &GrayImage) -> Vec<u8> {
    img.as_raw().clone()
}

/// Mean grey level of a region given as fractions of the width and height.
fn region_mean(img: &GrayImage, x: (f64, f64), y: (f64, f64)) -> f64 {
    let (w, h) = img.dimensions();
    let (x0, x1) = ((x.0 * w as f64) as u32, (x.1 * w as f64) as u32);
    let (y0, y1) = ((y.0 * h as f64) as u32, (y.1 * h as f64) as u32);
    let mut sum = 0u64;
    let mut n = 0u64;
    for yy in y0..y1 {
        for xx in x0..x1 {
            sum += u64::from(img.get_pixel(xx, yy).0[0]);
            n += 1;
        }
    }
    sum as f64 / n as f64
}

fn detail(err: &ScanError) -> String {
    err.to_string()
}

// ---------------------------------------------------------------------------------------
// The real CR x-rays.

fn check_fixture(path: &str, rows: u32, cols: u32, bits_stored: u16) -> (DicomInfo, GrayImage) {
    let bytes = std::fs::read(path).expect("fixture");
    let before = bytes.clone();
    assert!(is_dicom(&bytes));

    let info = dicom_info(&bytes, &Limits::default()).expect("info");
    assert_eq!(info.modality.as_deref(), Some("CR"));
    assert!(info.sop_instance_uid.starts_with("1.3.6.1.4.1.5962."));
    assert!(info
        .study_instance_uid
        .as_deref()
        .is_some_and(|u| !u.is_empty()));
    assert!(info
        .series_instance_uid
        .as_deref()
        .is_some_and(|u| !u.is_empty()));
    assert!(info.patient_id.is_some());
    assert!(info.patient_name.is_some());
    assert!(info.study_date.is_some());
    assert_eq!((info.rows, info.columns, info.frames), (rows, cols, 1));
    assert_eq!(info.photometric.as_deref(), Some("MONOCHROME1"));
    assert_eq!(info.bits_stored, bits_stored);
    assert!(info.has_pixel_data);

    let start = Instant::now();
    let (read_info, preview) = dicom_read(&bytes, &Limits::default()).expect("read");
    let elapsed = start.elapsed();
    let preview = preview.expect("preview");
    println!(
        "{}: {} ({}), {}x{} pixels, {} bits stored, preview {}x{} in {:?}; index_text: {:?}",
        path.rsplit('/').next().unwrap(),
        info.transfer_syntax,
        info.transfer_syntax_name,
        info.columns,
        info.rows,
        info.bits_stored,
        preview.width(),
        preview.height(),
        elapsed,
        info.index_text()
    );
    assert_eq!(read_info, info);
    assert!(cols.max(rows) <= DICOM_PREVIEW_MAX_SIDE);
    assert_eq!(preview.dimensions(), (cols, rows));
    assert_eq!(bytes, before, "the input is never changed");
    (info, preview)
}

#[test]
fn fixture_rg1_chest_pa_jpeg2000_lossy() {
    let (info, preview) = check_fixture(RG1, 1955, 1841, 15);
    assert_eq!(info.transfer_syntax, "1.2.840.10008.1.2.4.91");
    assert_eq!(info.body_part_examined.as_deref(), Some("CHEST"));
    assert_eq!(info.view_position.as_deref(), Some("PA"));
    assert_eq!(info.study_date.as_deref(), Some("2004-08-26"));
    let text = info.index_text();
    assert!(
        text.starts_with("CR computed radiography x-ray CHEST PA"),
        "{text}"
    );
    assert!(text.ends_with("2004-08-26"), "{text}");

    // Its data set as DICOM JSON: what DICOMweb serves as the instance's metadata.
    let meta = &info.metadata;
    assert_eq!(
        meta["00100020"],
        serde_json::json!({ "vr": "LO", "Value": ["9RG1"] })
    );
    assert_eq!(
        meta["00100010"]["Value"][0]["Alphabetic"],
        "CompressedSamples^RG1"
    );
    assert_eq!(meta["00080020"]["Value"][0], "20040826");
    assert_eq!(
        meta["00280010"],
        serde_json::json!({ "vr": "US", "Value": [1955] })
    );
    assert_eq!(meta["00083002"]["Value"][0], "1.2.840.10008.1.2.4.91");
    assert!(
        meta.get("7FE00010").is_none(),
        "no pixel data in the metadata"
    );

    // As a radiologist sees a chest PA: the mediastinum and spine (centre) are bright,
    // the lung fields either side of it darker. With MONOCHROME1 not inverted, it would
    // be the other way round.
    let rows = (0.30, 0.55);
    let mediastinum = region_mean(&preview, (0.47, 0.53), rows);
    let right_lung = region_mean(&preview, (0.20, 0.30), rows);
    let left_lung = region_mean(&preview, (0.70, 0.80), rows);
    println!("RG1 means: mediastinum {mediastinum:.1}, lungs {right_lung:.1} / {left_lung:.1}");
    assert!(
        mediastinum > right_lung + 40.0,
        "{mediastinum} vs {right_lung}"
    );
    assert!(
        mediastinum > left_lung + 40.0,
        "{mediastinum} vs {left_lung}"
    );
}

#[test]
fn fixture_rg3_leg_jpeg2000_lossless() {
    let (info, preview) = check_fixture(RG3, 1760, 1760, 10);
    assert_eq!(info.transfer_syntax, "1.2.840.10008.1.2.4.90");

    // A lower leg: the band of direct exposure beside the leg is black, the unexposed
    // plate outside the collimator white, the tibia brighter than the soft tissue.
    let direct_exposure = region_mean(&preview, (0.28, 0.33), (0.1, 0.5));
    let collimated = region_mean(&preview, (0.02, 0.18), (0.1, 0.9));
    let tibia = region_mean(&preview, (0.47, 0.50), (0.1, 0.4));
    let soft_tissue = region_mean(&preview, (0.38, 0.42), (0.1, 0.3));
    println!(
        "RG3 means: direct exposure {direct_exposure:.1}, collimated {collimated:.1}, \
         tibia {tibia:.1}, soft tissue {soft_tissue:.1}"
    );
    assert!(direct_exposure < 40.0, "{direct_exposure}");
    assert!(collimated > 215.0, "{collimated}");
    assert!(tibia > soft_tissue + 20.0, "{tibia} vs {soft_tissue}");
}

// ---------------------------------------------------------------------------------------
// Files written here.

#[test]
fn native_16bit_monochrome2_window_gives_exact_levels() {
    // 64 columns, value = column × 64 (12 bits stored), window 2048 / 1024 (LINEAR).
    let values: Vec<u16> = (0..2).flat_map(|_| (0..64u16).map(|x| x * 64)).collect();
    let mut obj = image_attributes(2, 64, 16, 12, "MONOCHROME2");
    obj.put(s(tags::WINDOW_CENTER, VR::DS, "2048"));
    obj.put(s(tags::WINDOW_WIDTH, VR::DS, "1024"));
    obj.put(native16(&values));
    let bytes = to_file(obj, EXPLICIT_LE);

    let (info, preview) = dicom_read(&bytes, &Limits::default()).unwrap();
    let preview = preview.unwrap();
    assert_eq!(preview.dimensions(), (64, 2));
    // Worked by hand from PS3.3 C.11.2.1.2.1 (c = 2048, w = 1024).
    for (column, expected) in [(0, 0), (24, 0), (25, 16), (32, 128), (39, 239), (40, 255)] {
        assert_eq!(
            preview.get_pixel(column, 1).0[0],
            expected,
            "column {column}"
        );
    }

    assert_eq!(info.transfer_syntax, EXPLICIT_LE);
    assert_eq!(info.transfer_syntax_name, "Explicit VR Little Endian");
    assert_eq!(info.sop_instance_uid, "1.2.826.0.1.3680043.2.1125.1.1");
    assert_eq!(info.patient_id.as_deref(), Some("MRN-0042"));
    assert_eq!(info.patient_name.as_deref(), Some("Doe^Jane^Q^Dr"));
    assert_eq!(
        info.patient_name_readable().as_deref(),
        Some("Dr Jane Q Doe")
    );
    assert_eq!(info.study_date.as_deref(), Some("2024-02-29"));
    assert_eq!(info.accession_number.as_deref(), Some("ACC123"));
    assert_eq!(
        info.index_text(),
        "DX digital radiography x-ray CHEST PA Chest radiograph ACC123 2024-02-29"
    );
    assert_eq!((info.rows, info.columns, info.frames), (2, 64, 1));
}

#[test]
fn native_monochrome1_with_rescale_is_inverted() {
    // Stored v → modality 2v − 1000, window 1000 / 2001, MONOCHROME1.
    let values = [0u16, 500, 1000, 1250, 1500, 2000, 4095];
    let mut obj = image_attributes(1, 7, 16, 12, "MONOCHROME1");
    obj.put(s(tags::RESCALE_SLOPE, VR::DS, "2"));
    obj.put(s(tags::RESCALE_INTERCEPT, VR::DS, "-1000"));
    obj.put(s(tags::WINDOW_CENTER, VR::DS, "1000\\40"));
    obj.put(s(tags::WINDOW_WIDTH, VR::DS, "2001\\400"));
    obj.put(native16(&values));
    let bytes = to_file(obj, EXPLICIT_LE);
    let preview = dicom_preview(&bytes, &Limits::default()).unwrap();
    assert_eq!(pixels(&preview), [255, 255, 127, 64, 0, 0, 0]);

    // The same samples as MONOCHROME2 are the exact complement (up to rounding).
    let mut obj = image_attributes(1, 7, 16, 12, "MONOCHROME2");
    obj.put(s(tags::RESCALE_SLOPE, VR::DS, "2"));
    obj.put(s(tags::RESCALE_INTERCEPT, VR::DS, "-1000"));
    obj.put(s(tags::WINDOW_CENTER, VR::DS, "1000"));
    obj.put(s(tags::WINDOW_WIDTH, VR::DS, "2001"));
    obj.put(native16(&values));
    let mono2 = dicom_preview(&to_file(obj, EXPLICIT_LE), &Limits::default()).unwrap();
    for (a, b) in pixels(&preview).iter().zip(pixels(&mono2)) {
        assert!((255 - i32::from(*a) - i32::from(b)).abs() <= 1);
    }
}

#[test]
fn native_8bit_without_window_uses_min_max() {
    let values: Vec<u8> = (0..=200u8).map(|v| v + 10).collect(); // 10 ..= 210
    let mut obj = image_attributes(1, 201, 8, 8, "MONOCHROME2");
    obj.put(native8(&values));
    let preview = dicom_preview(&to_file(obj, EXPLICIT_LE), &Limits::default()).unwrap();
    let got = pixels(&preview);
    assert_eq!(got[0], 0);
    assert_eq!(got[200], 255);
    assert_eq!(got[100], 128); // (110 − 10) / 200 × 255 = 127.5 → 128
    assert_eq!(got[40], 51); // 40 / 200 × 255 = 51
}

#[test]
fn a_meta_group_without_its_group_length_is_read_as_pydicom_writes_it() {
    let values: Vec<u8> = (0..=200u8).collect();
    let mut obj = image_attributes(1, 201, 8, 8, "MONOCHROME2");
    obj.put(s(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5"));
    obj.put(native8(&values));
    let with = to_file(obj, EXPLICIT_LE);
    // (0002,0000) UL, 4 bytes: the first element after "DICM".
    assert_eq!(&with[132..136], &[0x02, 0x00, 0x00, 0x00]);
    let mut without = with[..132].to_vec();
    without.extend_from_slice(&with[144..]);
    let limits = Limits::default();
    assert_eq!(
        dicom_info(&without, &limits).unwrap(),
        dicom_info(&with, &limits).unwrap()
    );
    assert_eq!(
        pixels(&dicom_preview(&without, &limits).unwrap()),
        pixels(&dicom_preview(&with, &limits).unwrap())
    );
    // A meta group that runs past the end is still refused, as malformed.
    let mut cut = without[..140].to_vec();
    cut.extend_from_slice(&[0xFF; 4]);
    assert!(dicom_info(&cut, &limits).is_err());
}

#[test]
fn a_data_set_of_countless_elements_keeps_bounded_metadata() {
    // 40 000 private text elements of 40 bytes: 1.6 MB of values, more JSON than is kept.
    let mut obj = image_attributes(1, 4, 8, 8, "MONOCHROME2");
    obj.put(s(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.6"));
    obj.put(s(tags::PATIENT_ID, VR::LO, "BIG-1"));
    for n in 0..40_000u32 {
        let tag = Tag(0x0009, 0x1000 + (n % 0xEFFF) as u16);
        let tag = if n < 0xEFFF {
            tag
        } else {
            Tag(0x0011, 0x1000 + (n - 0xEFFF) as u16)
        };
        obj.put(s(tag, VR::LO, &format!("{n:040}")));
    }
    obj.put(native8(&[1, 2, 3, 4]));
    let info = dicom_info(&to_file(obj, EXPLICIT_LE), &Limits::default()).unwrap();
    let json = info.metadata.to_string();
    assert!(
        json.len() <= super::json::METADATA_MAX_BYTES,
        "{} bytes",
        json.len()
    );
    assert_eq!(info.metadata["00100020"]["Value"][0], "BIG-1");
    assert_eq!(info.metadata["00080018"]["Value"][0], "1.2.3.4.6");
}

#[test]
fn native_signed_with_linear_exact_and_implicit_vr() {
    // Signed 16-bit, as CT stores it; Implicit VR Little Endian; LINEAR_EXACT.
    let values: Vec<i16> = vec![-1000, -500, 0, 250, 1000];
    let mut obj = image_attributes(1, 5, 16, 16, "MONOCHROME2");
    obj.put(us(tags::PIXEL_REPRESENTATION, 1));
    obj.put(s(tags::WINDOW_CENTER, VR::DS, "0"));
    obj.put(s(tags::WINDOW_WIDTH, VR::DS, "1000"));
    obj.put(s(tags::VOILUT_FUNCTION, VR::CS, "LINEAR_EXACT"));
    obj.put(el(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(values.iter().map(|v| *v as u16).collect()),
    ));
    let bytes = to_file(obj, IMPLICIT_LE);
    let (info, preview) = dicom_read(&bytes, &Limits::default()).unwrap();
    assert_eq!(info.transfer_syntax, IMPLICIT_LE);
    // (x − c) / w + 0.5, clamped: 0, 0, 0.5, 0.75, 1.
    assert_eq!(pixels(&preview.unwrap()), [0, 0, 128, 191, 255]);
}

#[test]
fn voi_lut_sequence_is_used_without_a_window() {
    let values = [0u16, 1, 2, 3, 7];
    let mut obj = image_attributes(1, 5, 16, 12, "MONOCHROME2");
    let item = InMemDicomObject::from_element_iter([
        el(
            tags::LUT_DESCRIPTOR,
            VR::US,
            PrimitiveValue::U16(SmallVec::from_vec(vec![4, 0, 8])),
        ),
        el(
            tags::LUT_DATA,
            VR::OW,
            PrimitiveValue::U16(SmallVec::from_vec(vec![0, 51, 102, 255])),
        ),
    ]);
    obj.put(DataElement::new(
        tags::VOILUT_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::from(vec![item]),
    ));
    obj.put(native16(&values));
    let preview = dicom_preview(&to_file(obj, EXPLICIT_LE), &Limits::default()).unwrap();
    assert_eq!(pixels(&preview), [0, 51, 102, 255, 255]);
}

fn gradient16(rows: u16, cols: u16) -> Vec<u16> {
    (0..rows)
        .flat_map(|y| (0..cols).map(move |x| (x * 37 + y * 11) % 4096))
        .collect()
}

#[test]
fn rle_lossless_16bit_and_8bit_decode_like_native() {
    let (rows, cols) = (16u16, 300u16);
    let values = gradient16(rows, cols);
    let le: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();

    let mut native = image_attributes(rows, cols, 16, 12, "MONOCHROME1");
    native.put(native16(&values));
    let expected = dicom_preview(&to_file(native, EXPLICIT_LE), &Limits::default()).unwrap();

    let mut rle = image_attributes(rows, cols, 16, 12, "MONOCHROME1");
    rle.put(encapsulated(vec![rle_encode(&le, 2)]));
    let bytes = to_file(rle, RLE);
    let (info, preview) = dicom_read(&bytes, &Limits::default()).unwrap();
    assert_eq!(info.transfer_syntax_name, "RLE Lossless");
    assert_eq!(pixels(&preview.unwrap()), pixels(&expected));

    let values8: Vec<u8> = (0..rows as usize * cols as usize)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut native = image_attributes(rows, cols, 8, 8, "MONOCHROME2");
    native.put(native8(&values8));
    let expected = dicom_preview(&to_file(native, EXPLICIT_LE), &Limits::default()).unwrap();
    let mut rle = image_attributes(rows, cols, 8, 8, "MONOCHROME2");
    rle.put(encapsulated(vec![rle_encode(&values8, 1)]));
    let preview = dicom_preview(&to_file(rle, RLE), &Limits::default()).unwrap();
    assert_eq!(pixels(&preview), pixels(&expected));
}

#[test]
fn jpeg_baseline_written_by_dicom_rs_decodes_close_to_native() {
    let (rows, cols) = (64u16, 96u16);
    let values: Vec<u8> = (0..rows)
        .flat_map(|y| (0..cols).map(move |x| (x * 2 + y) as u8))
        .collect();
    let mut obj = image_attributes(rows, cols, 8, 8, "MONOCHROME2");
    obj.put(s(tags::WINDOW_CENTER, VR::DS, "128"));
    obj.put(s(tags::WINDOW_WIDTH, VR::DS, "256"));
    obj.put(native8(&values));
    let mut file = file_object(obj, EXPLICIT_LE);
    let expected = dicom_preview(&write(&file), &Limits::default()).unwrap();

    file.transcode(&dicom_transfer_syntax_registry::entries::JPEG_BASELINE.erased())
        .expect("dicom-rs encodes JPEG baseline");
    let bytes = write(&file);
    let (info, preview) = dicom_read(&bytes, &Limits::default()).unwrap();
    assert_eq!(info.transfer_syntax, "1.2.840.10008.1.2.4.50");
    let preview = preview.unwrap();
    assert_eq!(preview.dimensions(), (96, 64));
    let diff: f64 = pixels(&preview)
        .iter()
        .zip(pixels(&expected))
        .map(|(a, b)| (f64::from(*a) - f64::from(b)).abs())
        .sum::<f64>()
        / f64::from(rows * cols);
    assert!(diff < 3.0, "mean absolute difference {diff}");
}

#[test]
fn deflated_data_set_is_read() {
    let values = gradient16(4, 8);
    let mut obj = image_attributes(4, 8, 16, 12, "MONOCHROME2");
    obj.put(native16(&values));
    let mut native = obj.clone();
    native.put(native16(&values));
    let expected = dicom_preview(&to_file(native, EXPLICIT_LE), &Limits::default()).unwrap();
    let bytes = to_file(obj, "1.2.840.10008.1.2.1.99");
    let (info, preview) = dicom_read(&bytes, &Limits::default()).unwrap();
    assert_eq!(
        info.transfer_syntax_name,
        "Deflated Explicit VR Little Endian"
    );
    assert_eq!(info.modality.as_deref(), Some("DX"));
    assert_eq!(pixels(&preview.unwrap()), pixels(&expected));
}

#[test]
fn large_image_is_downscaled_proportionally() {
    let (rows, cols) = (10u16, 3000u16);
    let mut obj = image_attributes(rows, cols, 8, 8, "MONOCHROME2");
    obj.put(native8(&vec![100u8; rows as usize * cols as usize]));
    let preview = dicom_preview(&to_file(obj, EXPLICIT_LE), &Limits::default()).unwrap();
    assert_eq!(preview.dimensions(), (DICOM_PREVIEW_MAX_SIDE, 7));
}

#[test]
fn rgb_is_rendered_as_luma() {
    let mut obj = image_attributes(1, 2, 8, 8, "RGB");
    obj.put(us(tags::SAMPLES_PER_PIXEL, 3));
    obj.put(us(tags::PLANAR_CONFIGURATION, 0));
    obj.put(native8(&[255, 0, 0, 255, 255, 255]));
    let preview = dicom_preview(&to_file(obj, EXPLICIT_LE), &Limits::default()).unwrap();
    assert_eq!(pixels(&preview), [76, 255]);
}

#[test]
fn file_without_pixel_data_is_indexed_without_preview() {
    let obj = InMemDicomObject::from_element_iter([
        s(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.88.11"),
        s(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5"),
        s(tags::MODALITY, VR::CS, "SR"),
    ]);
    let bytes = to_file(obj, EXPLICIT_LE);
    let (info, preview) = dicom_read(&bytes, &Limits::default()).unwrap();
    assert!(!info.has_pixel_data);
    assert_eq!((info.rows, info.columns, info.frames), (0, 0, 0));
    let err = preview.unwrap_err();
    assert!(matches!(err, ScanError::DicomNoPreview { .. }));
    assert!(detail(&err).contains("no pixel data"), "{err}");
}

#[test]
fn undecodable_transfer_syntax_gives_info_but_no_preview() {
    let mut obj = image_attributes(8, 8, 16, 12, "MONOCHROME2");
    obj.put(encapsulated(vec![vec![0xFF, 0xD8, 0xFF, 0xF7, 0, 0]]));
    let bytes = to_file(obj, JPEG_LS_LOSSLESS);
    let info = dicom_info(&bytes, &Limits::default()).expect("indexed");
    assert_eq!(info.sop_instance_uid, "1.2.826.0.1.3680043.2.1125.1.1");
    let err = dicom_preview(&bytes, &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::DicomNoPreview { .. }), "{err}");
    let message = detail(&err);
    assert!(message.contains(JPEG_LS_LOSSLESS), "{message}");
    assert!(message.contains("cannot decode"), "{message}");
    println!("{message}");
}

// ---------------------------------------------------------------------------------------
// Hostile input.

/// No PHI in an error: none of the test file's values appears in the message.
fn assert_no_phi(err: &ScanError) {
    let message = detail(err);
    for value in [
        "Doe",
        "Jane",
        "MRN-0042",
        "ACC123",
        "Chest radiograph",
        "20240229",
    ] {
        assert!(!message.contains(value), "{message}");
    }
}

fn small_file() -> Vec<u8> {
    let mut obj = image_attributes(4, 4, 16, 12, "MONOCHROME2");
    obj.put(native16(&gradient16(4, 4)));
    to_file(obj, EXPLICIT_LE)
}

#[test]
fn not_dicom_and_truncated() {
    assert!(!is_dicom(b"DICM"));
    assert!(!is_dicom(&[0u8; 200]));
    let mut fake = vec![0u8; 132];
    fake[128..132].copy_from_slice(b"DICM");
    assert!(is_dicom(&fake));

    assert!(matches!(
        dicom_info(&[], &Limits::default()),
        Err(ScanError::Empty)
    ));
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    let err = dicom_info(png, &Limits::default()).unwrap_err();
    assert!(detail(&err).contains("not a DICOM Part 10 file"), "{err}");
    let err = dicom_info(&vec![7u8; 4096], &Limits::default()).unwrap_err();
    assert!(detail(&err).contains("not a DICOM Part 10 file"), "{err}");
    // The marker alone, then nothing.
    let err = dicom_info(&fake, &Limits::default()).unwrap_err();
    assert!(detail(&err).contains("truncated"), "{err}");

    let bytes = small_file();
    for cut in [133, 150, 300, bytes.len() / 2, bytes.len() - 1] {
        let (result, largest, elapsed) = measured(|| dicom_read(&bytes[..cut], &Limits::default()));
        let err = result.expect_err("truncated");
        assert!(matches!(err, ScanError::Dicom { .. }), "{err}");
        assert_no_phi(&err);
        assert!(largest < 1 << 20, "{largest} bytes allocated at once");
        assert!(elapsed < Duration::from_secs(1));
    }

    let fixture = std::fs::read(RG1).unwrap();
    for cut in [1000, fixture.len() / 2, fixture.len() - 10] {
        let err = dicom_info(&fixture[..cut], &Limits::default()).unwrap_err();
        assert!(
            detail(&err).contains("truncated") || detail(&err).contains("remain"),
            "{err}"
        );
    }
}

/// The bytes of an explicit VR little endian element header with a 4-byte length.
fn long_header(group: u16, element: u16, vr: &[u8; 2], len: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(group.to_le_bytes());
    h.extend(element.to_le_bytes());
    h.extend(vr);
    h.extend([0, 0]);
    h.extend(len.to_le_bytes());
    h
}

#[test]
fn absurd_lengths_are_rejected_without_allocating() {
    let base = {
        let obj = image_attributes(4, 4, 16, 12, "MONOCHROME2");
        to_file(obj, EXPLICIT_LE)
    };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();

    // Pixel data claiming 0xFFFFFFF0 bytes on a short file.
    let mut top = base.clone();
    top.extend(long_header(0x7FE0, 0x0010, b"OW", 0xFFFF_FFF0));
    top.extend([0u8; 64]);
    cases.push(("top-level element", top));

    // The same inside a sequence item (defined-length sequence, undefined-length item).
    let mut nested = base.clone();
    nested.extend(long_header(0x0040, 0x0275, b"SQ", 0xFFFF_FFFF));
    nested.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    nested.extend(long_header(0x0040, 0xA160, b"UT", 0xFFFF_FFF0));
    nested.extend([b'x'; 32]);
    cases.push(("nested element", nested));

    // An item claiming more than its sequence.
    let mut item = base.clone();
    item.extend(long_header(0x0040, 0x0275, b"SQ", 16));
    item.extend([0xFE, 0xFF, 0x00, 0xE0, 0xF0, 0xFF, 0xFF, 0xFF]);
    item.extend([0u8; 8]);
    cases.push(("item", item));

    // A pixel data fragment claiming 0xFFFFFFF0.
    let mut fragment = base.clone();
    fragment.extend(long_header(0x7FE0, 0x0010, b"OB", 0xFFFF_FFFF));
    fragment.extend([0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
    fragment.extend([0xFE, 0xFF, 0x00, 0xE0, 0xF0, 0xFF, 0xFF, 0xFF]);
    fragment.extend([0u8; 16]);
    cases.push(("fragment", fragment));

    // The file meta group length itself.
    let mut meta = base.clone();
    let at = 132 + 8; // value of (0002,0000)
    meta[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    cases.push(("meta group length", meta));

    // Implicit VR: an element whose 4-byte length is absurd.
    let mut implicit = {
        let obj = InMemDicomObject::from_element_iter([s(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3")]);
        to_file(obj, IMPLICIT_LE)
    };
    implicit.extend([0x10, 0x00, 0x10, 0x00, 0xF0, 0xFF, 0xFF, 0xFF]);
    implicit.extend(b"Doe^Jane");
    cases.push(("implicit VR element", implicit));

    for (what, bytes) in cases {
        let (result, largest, elapsed) = measured(|| dicom_read(&bytes, &Limits::default()));
        let err = result.expect_err(what);
        println!("{what}: {err} (largest allocation {largest} bytes, {elapsed:?})");
        assert!(matches!(err, ScanError::Dicom { .. }), "{what}: {err}");
        assert_no_phi(&err);
        assert!(
            largest < 1 << 20,
            "{what}: {largest} bytes allocated at once"
        );
        assert!(elapsed < Duration::from_secs(1), "{what}: {elapsed:?}");
    }
}

#[test]
fn deep_nesting_is_rejected() {
    let mut bytes = to_file(
        InMemDicomObject::from_element_iter([s(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3")]),
        EXPLICIT_LE,
    );
    for _ in 0..100 {
        bytes.extend(long_header(0x0040, 0x0275, b"SQ", 0xFFFF_FFFF));
        bytes.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    }
    let err = dicom_info(&bytes, &Limits::default()).unwrap_err();
    assert!(detail(&err).contains("nested more than"), "{err}");
}

#[test]
fn absurd_rows_and_columns() {
    // 60000 × 60000 with 32 bytes of pixel data: over the limits, rejected from the header.
    let mut obj = image_attributes(60_000, 60_000, 16, 12, "MONOCHROME2");
    obj.put(native16(&[0u16; 16]));
    let bytes = to_file(obj, EXPLICIT_LE);
    let (result, largest, elapsed) = measured(|| dicom_info(&bytes, &Limits::default()));
    let err = result.unwrap_err();
    assert!(detail(&err).contains("60000x60000"), "{err}");
    assert!(largest < 1 << 20 && elapsed < Duration::from_secs(1));
    assert!(dicom_preview(&bytes, &Limits::default()).is_err());

    // With limits that let it through, the preview still fails cleanly: the pixel data is
    // far shorter than the header says, and nothing is allocated for the claimed size.
    let lax = Limits {
        max_pixels_per_page: u64::MAX,
        max_pages: 10,
        max_dimension: 65_535,
    };
    let (result, largest, elapsed) = measured(|| dicom_read(&bytes, &lax));
    let (_, preview) = result.unwrap();
    let err = preview.unwrap_err();
    println!("lax limits: {err}");
    assert!(detail(&err).contains("has 32 bytes where"), "{err}");
    assert!(largest < 1 << 20, "{largest}");
    assert!(elapsed < Duration::from_secs(1));

    // Absurd Number of Frames.
    let mut obj = image_attributes(4, 4, 16, 12, "MONOCHROME2");
    obj.put(s(tags::NUMBER_OF_FRAMES, VR::IS, "999999999"));
    obj.put(native16(&gradient16(4, 4)));
    let err = dicom_info(&to_file(obj, EXPLICIT_LE), &Limits::default()).unwrap_err();
    assert!(detail(&err).contains("999999999 frames"), "{err}");
}

/// Finds the value of a US element (explicit VR LE) in `bytes`.
fn find_us(bytes: &[u8], group: u16, element: u16) -> usize {
    let mut pattern = Vec::new();
    pattern.extend(group.to_le_bytes());
    pattern.extend(element.to_le_bytes());
    pattern.extend(b"US\x02\x00");
    bytes
        .windows(pattern.len())
        .position(|w| w == pattern)
        .expect("element")
        + pattern.len()
}

#[test]
fn jpeg2000_stream_disagreeing_with_rows_is_refused_before_decoding() {
    // RG1 with Rows patched to 60000: over the default limits; with lax limits, the
    // codestream's SIZ (1841x1955) disagrees, so openjp2 never runs.
    let mut bytes = std::fs::read(RG1).unwrap();
    let at = find_us(&bytes, 0x0028, 0x0010);
    bytes[at..at + 2].copy_from_slice(&60_000u16.to_le_bytes());
    assert!(dicom_info(&bytes, &Limits::default()).is_err());
    let lax = Limits {
        max_pixels_per_page: u64::MAX,
        max_pages: 10,
        max_dimension: 65_535,
    };
    let (result, largest, elapsed) = measured(|| dicom_read(&bytes, &lax));
    let err = result.unwrap().1.unwrap_err();
    println!("{err}");
    assert!(detail(&err).contains("1841x1955 pixels but the data set says 1841x60000"));
    // The parsed file (2 MB) is the largest thing held; nothing near 60000² × 2 bytes.
    assert!(largest < 8 << 20, "{largest}");
    assert!(elapsed < Duration::from_secs(1));
}

#[test]
fn corrupt_compressed_streams_do_not_panic() {
    // JPEG 2000: garbage after the main header.
    let mut bytes = std::fs::read(RG3).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 3..len / 3 + 4096] {
        *b = 0xA5;
    }
    let start = Instant::now();
    let result = dicom_read(&bytes, &Limits::default());
    println!(
        "corrupt JPEG 2000: {:?} in {:?}",
        result
            .as_ref()
            .map(|r| r.1.as_ref().map(|p| p.dimensions())),
        start.elapsed()
    );

    // RLE: segment offsets pointing past the fragment, and segments that decode short.
    let mut obj = image_attributes(16, 16, 8, 8, "MONOCHROME2");
    let mut bad = rle_encode(&[1u8; 8], 1); // 8 samples where 256 are needed
    bad.extend([0u8; 2]);
    obj.put(encapsulated(vec![bad]));
    let err = dicom_preview(&to_file(obj, RLE), &Limits::default()).unwrap_err();
    assert!(detail(&err).contains("decodes to fewer samples"), "{err}");

    let mut obj = image_attributes(16, 16, 8, 8, "MONOCHROME2");
    let mut bad = rle_encode(&[1u8; 256], 1);
    bad[4..8].copy_from_slice(&100_000u32.to_le_bytes());
    obj.put(encapsulated(vec![bad]));
    let err = dicom_preview(&to_file(obj, RLE), &Limits::default()).unwrap_err();
    assert!(detail(&err).contains("out of range"), "{err}");

    // JPEG: a frame header that disagrees, then one that is cut short.
    let mut obj = image_attributes(8, 8, 8, 8, "MONOCHROME2");
    obj.put(encapsulated(vec![vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0x10, 0, 0x10, 0, 1, 1, 0x11, 0,
    ]]));
    let err =
        dicom_preview(&to_file(obj, "1.2.840.10008.1.2.4.50"), &Limits::default()).unwrap_err();
    assert!(detail(&err).contains("4096x4096"), "{err}");
    let mut obj = image_attributes(8, 8, 8, 8, "MONOCHROME2");
    obj.put(encapsulated(vec![vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0,
    ]]));
    let err =
        dicom_preview(&to_file(obj, "1.2.840.10008.1.2.4.50"), &Limits::default()).unwrap_err();
    assert!(matches!(err, ScanError::DicomNoPreview { .. }), "{err}");
}

#[test]
fn random_corruption_never_panics() {
    // Deterministic byte flips over a small native file and over the fixture's header.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let small = small_file();
    let start = Instant::now();
    for _ in 0..2000 {
        let mut bytes = small.clone();
        for _ in 0..1 + next() % 4 {
            let at = 128 + (next() as usize % (bytes.len() - 128));
            bytes[at] = next() as u8;
        }
        let _ = dicom_read(&bytes, &Limits::default());
    }
    println!("2000 corrupted small files in {:?}", start.elapsed());

    let fixture = std::fs::read(RG3).unwrap();
    let header_end = 2048.min(fixture.len());
    let start = Instant::now();
    for _ in 0..200 {
        let mut bytes = fixture.clone();
        let at = 132 + (next() as usize % (header_end - 132));
        bytes[at] = next() as u8;
        // Metadata only: decoding 200 JPEG 2000 images would take minutes.
        let _ = dicom_info(&bytes, &Limits::default());
    }
    println!("200 corrupted fixture headers in {:?}", start.elapsed());
}

#[test]
fn missing_sop_instance_uid_is_rejected() {
    let obj = InMemDicomObject::from_element_iter([s(tags::MODALITY, VR::CS, "CR")]);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(EXPLICIT_LE)
                .media_storage_sop_class_uid(DX_FOR_PRESENTATION)
                .media_storage_sop_instance_uid(""),
        )
        .unwrap();
    let err = dicom_info(&write(&file), &Limits::default()).unwrap_err();
    assert!(detail(&err).contains("no SOP Instance UID"), "{err}");
}

#[test]
fn unknown_transfer_syntax_is_rejected() {
    // dicom-rs will not write one: patch the UID in the meta group (same length).
    let mut bytes = small_file();
    let uid = b"1.2.840.10008.1.2.1\0";
    let at = bytes.windows(uid.len()).position(|w| w == uid).unwrap();
    bytes[at..at + uid.len()].copy_from_slice(b"1.2.3.4.5.6.7.8.9.10");
    let err = dicom_info(&bytes, &Limits::default()).unwrap_err();
    assert!(
        detail(&err).contains("unknown transfer syntax 1.2.3.4.5.6.7.8.9.10"),
        "{err}"
    );
}

#[test]
fn dates_and_names() {
    assert_eq!(normalize_date("20240229").as_deref(), Some("2024-02-29"));
    assert_eq!(normalize_date("2004.08.26").as_deref(), Some("2004-08-26"));
    assert_eq!(normalize_date("20230229"), None);
    assert_eq!(normalize_date("20241301"), None);
    assert_eq!(normalize_date("2024"), None);
    let mut info = dicom_info(&small_file(), &Limits::default()).unwrap();
    info.patient_name = Some("Yamada^Tarou=山田^太郎=やまだ^たろう".into());
    assert_eq!(
        info.patient_name_readable().as_deref(),
        Some("Tarou Yamada")
    );
    info.patient_name = Some("^^^".into());
    assert_eq!(info.patient_name_readable(), None);
    assert_eq!(
        normalize_person_name("Doe^Jane^^^ ").as_deref(),
        Some("Doe^Jane")
    );
    assert_eq!(
        normalize_person_name("Doe^Jane=^=").as_deref(),
        Some("Doe^Jane")
    );
    assert_eq!(normalize_person_name("^^="), None);
}

/// Found by the `dicom` fuzz target: a UL of 2 bytes left dicom-rs 2 bytes off and it
/// zero-filled gigabytes. The walk refuses it first.
#[test]
fn a_binary_value_of_a_partial_length_is_refused_before_dicom_rs_reads_it() {
    let bytes = include_bytes!("../../../fuzz/corpus/dicom/regression-ul-of-2-bytes.dcm");
    let error = crate::dicom_info(bytes, &Limits::default()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("(0028,0102)")
            && message.contains("VR UL")
            && message.contains("multiple of 4"),
        "{message}"
    );
    assert!(crate::dicom_read(bytes, &Limits::default()).is_err());
}

/// Found by the `dicom` fuzz target: High Bit 65535 overflowed the shift computation (a
/// panic with overflow checks on, as in the dev profile the service runs with).
#[test]
fn a_high_bit_outside_the_allocated_bits_is_ignored() {
    let bytes = include_bytes!("../../../fuzz/corpus/dicom/regression-high-bit-65535.dcm");
    let outcome = std::panic::catch_unwind(|| crate::dicom_read(bytes, &Limits::default()));
    assert!(outcome.is_ok(), "reading it panicked");
}
