//! DICOM x-rays through the whole service: the real JPEG 2000 CR fixtures and files the test
//! writes with dicom-rs are kept byte-exact, previewed, indexed beside the charts ("chest"
//! finds the report page and the x-ray), stored once per SOP Instance UID, and held for QA
//! when their PatientID is not the MRN they were uploaded under.

use dicom_core::smallvec::SmallVec;
use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde_json::{json, Value};

use crate::helpers::*;

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
const DX_FOR_PRESENTATION: &str = "1.2.840.10008.5.1.4.1.1.1.1";

fn text(tag: dicom_core::Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

fn short(tag: dicom_core::Tag, value: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(value))
}

/// A 64x64 DX hand x-ray, 12 bits in 16, MONOCHROME2, with a window: native pixel data, or
/// `pixel_data` as given.
pub(crate) fn hand_xray(
    patient_id: &str,
    sop_uid: &str,
    transfer_syntax: &str,
    pixel_data: Option<DataElement<InMemDicomObject>>,
) -> Vec<u8> {
    xray_in(
        patient_id,
        (
            "1.2.826.0.1.3680043.2.1125.9.2",
            "1.2.826.0.1.3680043.2.1125.9.3",
            sop_uid,
        ),
        transfer_syntax,
        pixel_data,
    )
}

/// [`hand_xray`] in a study and series of its own: (study, series, SOP instance) UIDs.
pub(crate) fn xray_in(
    patient_id: &str,
    (study, series, sop_uid): (&str, &str, &str),
    transfer_syntax: &str,
    pixel_data: Option<DataElement<InMemDicomObject>>,
) -> Vec<u8> {
    let mut obj = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, DX_FOR_PRESENTATION),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop_uid),
        text(tags::STUDY_DATE, VR::DA, "20190312"),
        text(tags::ACCESSION_NUMBER, VR::SH, "RAD7781"),
        text(tags::MODALITY, VR::CS, "DX"),
        text(tags::STUDY_DESCRIPTION, VR::LO, "Left hand two views"),
        text(tags::PATIENT_NAME, VR::PN, "Doe^Jane"),
        text(tags::PATIENT_ID, VR::LO, patient_id),
        text(tags::BODY_PART_EXAMINED, VR::CS, "HAND"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, study),
        text(tags::SERIES_INSTANCE_UID, VR::UI, series),
        short(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        short(tags::ROWS, 64),
        short(tags::COLUMNS, 64),
        short(tags::BITS_ALLOCATED, 16),
        short(tags::BITS_STORED, 12),
        short(tags::HIGH_BIT, 11),
        short(tags::PIXEL_REPRESENTATION, 0),
        text(tags::WINDOW_CENTER, VR::DS, "2048"),
        text(tags::WINDOW_WIDTH, VR::DS, "4096"),
    ]);
    let pixels = pixel_data.unwrap_or_else(|| {
        let values: Vec<u16> = (0..64 * 64).map(|i| ((i % 64) * 64) as u16).collect();
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(SmallVec::from_vec(values)),
        )
    });
    obj.put(pixels);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(transfer_syntax)
                .media_storage_sop_class_uid(DX_FOR_PRESENTATION),
        )
        .expect("meta table");
    let mut out = Vec::new();
    file.write_all(&mut out).expect("write DICOM");
    out
}

async fn upload_dicom(app: &TestApp, bytes: Vec<u8>, mrn: &str) -> Value {
    let response = app
        .upload_as(&app.records, bytes, &metadata(mrn, "Jane Doe", "x-ray"))
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status == 202 || status == 200, "{status}: {body}");
    body
}

async fn wait_processed(app: &TestApp, id: &str) -> Value {
    app.wait_processed_within(id, std::time::Duration::from_secs(120))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chest_xray_is_found_beside_the_radiology_report() {
    let Some(bytes) = fixture("dicom/RG1_J2KI.dcm") else {
        return;
    };
    let info = chartvault_ocr::dicom_info(&bytes, &chartvault_ocr::Limits::default()).unwrap();
    let mrn = info
        .patient_id
        .clone()
        .expect("the fixture has a PatientID");
    let app = spawn_app().await;
    let report = scanned_page(
        &[
            "Radiology report",
            "PA chest radiograph: the lungs are clear",
            "No pleural effusion, heart size normal",
        ],
        0.0,
        5,
    );
    let report_id = app
        .upload(
            png_of(&report),
            &metadata(&mrn, "Jane Doe", "radiology-report"),
        )
        .await;
    app.wait_indexed(&report_id).await;

    let accepted = upload_dicom(&app, bytes.clone(), &mrn).await;
    assert_eq!(accepted["duplicate"], false);
    let id = accepted["id"].as_str().unwrap().to_string();
    let doc = wait_processed(&app, &id).await;
    assert_eq!(doc["status"], "indexed", "{doc}");
    assert_eq!(doc["content_type"], "application/dicom");
    assert_eq!(doc["pages"][0]["text_source"], "dicom");
    assert!(doc["notice"].is_null(), "{doc}");

    // One search finds the report page and the x-ray.
    let result = app
        .search(&app.clinician, json!({ "query": "chest", "mrn": mrn }))
        .await;
    let mut found: Vec<&str> = result["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["document_id"].as_str().unwrap())
        .collect();
    found.sort();
    let mut expected = vec![report_id.as_str(), id.as_str()];
    expected.sort();
    assert_eq!(found, expected, "{result}");
    // "x-ray" finds the study by its modality's plain name.
    let result = app
        .search(
            &app.clinician,
            json!({ "query": "radiography", "mrn": mrn }),
        )
        .await;
    assert_eq!(result["total"], 1, "{result}");

    // The preview is the file's own windowed, MONOCHROME1-inverted rendering.
    let png = app
        .get(
            &app.clinician,
            &format!("/api/v1/documents/{id}/pages/1/image"),
        )
        .await
        .bytes()
        .await
        .unwrap();
    let stored = image::load_from_memory(&png).unwrap().to_luma8();
    let expected =
        chartvault_ocr::dicom_preview(&bytes, &chartvault_ocr::Limits::default()).unwrap();
    assert_eq!(stored.dimensions(), expected.dimensions());
    assert!(stored == expected, "the stored preview is the rendering");

    // The original comes back byte for byte.
    let original = app
        .get(&app.records, &format!("/api/v1/documents/{id}/original"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(original, bytes);

    // A second copy of the instance is a duplicate, whatever it is filed under.
    for (mrn, insist) in [(mrn.as_str(), true), ("99999", false)] {
        let mut meta = metadata(mrn, "Jane Doe", "x-ray");
        meta["allow_duplicate"] = json!(insist);
        let response = app.upload_as(&app.records, bytes.clone(), &meta).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["duplicate"], true);
        assert_eq!(body["id"], id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xray_whose_patient_id_is_not_the_mrn_waits_for_qa() {
    let app = spawn_app().await;
    let bytes = hand_xray(
        "55555",
        "1.2.826.0.1.3680043.2.1125.9.1",
        EXPLICIT_VR_LE,
        None,
    );
    let accepted = upload_dicom(&app, bytes, "00321").await;
    let id = accepted["id"].as_str().unwrap().to_string();
    app.add_care("doc", "00321").await;
    let doc = wait_processed(&app, &id).await;
    assert_eq!(doc["status"], "qa", "{doc}");
    assert!(
        doc["qa_reason"].as_str().unwrap().contains("PatientID"),
        "{doc}"
    );
    assert!(!doc.to_string().contains("55555"), "no value in the reason");
    // The clinician treating the patient neither finds it nor opens it until it is resolved.
    let response = app
        .get(&app.clinician, &format!("/api/v1/documents/{id}"))
        .await;
    assert_eq!(response.status(), 404);
    let result = app
        .search(&app.clinician, json!({ "query": "hand", "mrn": "00321" }))
        .await;
    assert_eq!(result["total"], 0, "{result}");
    let result = app
        .search(&app.records, json!({ "query": "hand", "mrn": "00321" }))
        .await;
    assert_eq!(result["total"], 1, "records sees it: {result}");

    // Records works the queue: the x-ray belongs to patient 55555, filed there.
    let response = app.get(&app.clinician, "/api/v1/qa").await;
    assert_eq!(response.status(), 403);
    let queue: Value = app
        .get(&app.records, "/api/v1/qa")
        .await
        .json()
        .await
        .unwrap();
    let entries = queue["documents"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{queue}");
    assert_eq!(entries[0]["id"], id.as_str());
    assert_eq!(entries[0]["mrn"], "00321");
    let response = app
        .post_json(
            &app.records,
            &format!("/api/v1/qa/{id}"),
            &json!({ "action": "assign", "mrn": "55555", "name": "Jane Doe" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let doc: Value = app
        .get(&app.records, &format!("/api/v1/documents/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["status"], "indexed", "{doc}");
    assert!(doc["qa_reason"].is_null());
    // Found under the patient it belongs to, no longer under the other.
    app.add_care("doc", "55555").await;
    let result = app
        .search(&app.clinician, json!({ "query": "hand", "mrn": "55555" }))
        .await;
    assert_eq!(result["total"], 1, "{result}");
    let result = app
        .search(&app.records, json!({ "query": "hand", "mrn": "00321" }))
        .await;
    assert_eq!(result["total"], 0, "{result}");
    let queue: Value = app
        .get(&app.records, "/api/v1/qa")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queue["documents"].as_array().unwrap().len(), 0);
    // A second resolution finds nothing to resolve.
    let response = app
        .post_json(
            &app.records,
            &format!("/api/v1/qa/{id}"),
            &json!({ "action": "accept" }),
        )
        .await;
    assert_eq!(response.status(), 409);
    // Both the listing and the resolution are in the audit log.
    let audit: Value = app
        .post_json(
            &app.auditor,
            "/api/v1/audit/query",
            &json!({ "action": "review-qa", "limit": 50 }),
        )
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries.len() >= 3, "two listings and a resolution: {audit}");
    let assigned = entries
        .iter()
        .find(|e| {
            let detail = match &e["detail"] {
                Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
                other => other.clone(),
            };
            detail["resolution"] == "assign"
        })
        .unwrap_or_else(|| panic!("no assign entry: {audit}"));
    assert_eq!(assigned["document_id"], id.as_str());
    assert_eq!(assigned["outcome"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_xrays_are_indexed_and_undecodable_ones_kept_without_a_preview() {
    let app = spawn_app().await;
    let native = hand_xray(
        "00654",
        "1.2.826.0.1.3680043.2.1125.9.10",
        EXPLICIT_VR_LE,
        None,
    );
    let id = upload_dicom(&app, native, "00654").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.add_care("doc", "00654").await;
    let doc = wait_processed(&app, &id).await;
    assert_eq!(doc["status"], "indexed", "{doc}");
    assert_eq!(doc["pages"][0]["width"], 64);
    let result = app
        .search(&app.clinician, json!({ "query": "hand", "mrn": "00654" }))
        .await;
    assert_eq!(result["total"], 1, "{result}");
    let result = app
        .search(
            &app.clinician,
            json!({ "query": "RAD7781", "mrn": "00654" }),
        )
        .await;
    assert_eq!(result["total"], 1, "accession number: {result}");

    // JPEG-LS is not decoded: the file is stored and indexed, and says it has no preview.
    let jpeg_ls = DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new(Vec::<u32>::new(), vec![vec![0xFF, 0xD8, 0xFF, 0xF7, 0, 0]]),
    );
    let bytes = hand_xray(
        "00654",
        "1.2.826.0.1.3680043.2.1125.9.11",
        JPEG_LS_LOSSLESS,
        Some(jpeg_ls),
    );
    let id = upload_dicom(&app, bytes.clone(), "00654").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = wait_processed(&app, &id).await;
    assert_eq!(doc["status"], "indexed", "{doc}");
    let notice = doc["notice"].as_str().expect("a notice");
    assert!(notice.contains("without a preview"), "{notice}");
    assert!(notice.contains(JPEG_LS_LOSSLESS), "{notice}");
    let result = app
        .search(&app.clinician, json!({ "query": "hand", "mrn": "00654" }))
        .await;
    assert_eq!(result["total"], 2, "{result}");
    let original = app
        .get(&app.records, &format!("/api/v1/documents/{id}/original"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(original, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_dicom_files_are_refused_and_leave_nothing() {
    let app = spawn_app().await;
    let good = hand_xray(
        "00777",
        "1.2.826.0.1.3680043.2.1125.9.20",
        EXPLICIT_VR_LE,
        None,
    );
    let truncated = good[..400].to_vec();
    let mut absurd = good.clone();
    // Rows = 60000 and Columns = 60000: over the pixel limit.
    let rows_tag = [0x28u8, 0x00, 0x10, 0x00, b'U', b'S', 2, 0];
    let at = absurd.windows(8).position(|w| w == rows_tag).unwrap();
    absurd[at + 8..at + 10].copy_from_slice(&60000u16.to_le_bytes());
    absurd[at + 18..at + 20].copy_from_slice(&60000u16.to_le_bytes());
    for (what, bytes) in [("truncated", truncated), ("60000x60000", absurd)] {
        let before = files_under(&app.data_dir.join("blobs")).len();
        let response = app
            .upload_as(&app.records, bytes, &metadata("00777", "Jane Doe", "x-ray"))
            .await;
        assert_eq!(response.status(), 422, "{what}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("DICOM"),
            "{what}: {body}"
        );
        assert_eq!(
            files_under(&app.data_dir.join("blobs")).len(),
            before,
            "{what}"
        );
        let health = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert!(health.status().is_success());
    }
}
