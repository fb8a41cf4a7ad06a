//! DICOMweb at `/dicom-web`, driven by DICOMweb's own client (dicomweb-client) with
//! instances written and read back by pydicom (`tests/dicomweb/client.py`): the real CR
//! fixtures and generated x-rays stored (STOW-RS), found by patient, date, accession and
//! modality (QIDO-RS), retrieved byte for byte with their metadata and a rendered preview
//! (WADO-RS), a clinician kept to their care list. Then what a store request can get wrong,
//! each refused with the reason and nothing half-stored, and nothing of the instances
//! readable in the data directory.

use serde_json::{json, Value};

use crate::helpers::*;

const RELATED: &str =
    "multipart/related; type=\"application/dicom\"; boundary=\"cv-test-boundary\"";

/// A `multipart/related` body of `parts` (content type, bytes).
fn related(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (content_type, bytes) in parts {
        body.extend(format!("--cv-test-boundary\r\nContent-Type: {content_type}\r\n\r\n").bytes());
        body.extend_from_slice(bytes);
        body.extend(b"\r\n");
    }
    body.extend(b"--cv-test-boundary--\r\n");
    body
}

async fn stow(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .bearer_auth(&app.records)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn documents(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM documents")
        .fetch_one(&app.sql)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicomweb_clients_store_find_and_retrieve_instances_within_the_callers_scope() {
    let Some(python) = crate::hl7::python() else {
        return;
    };
    if fixture("dicom/RG1_J2KI.dcm").is_none() {
        return;
    }
    let app = spawn_app().await;
    // Patient DW-1 has a chart already, and is on the clinician's care list.
    let scan = png_of(&scanned_page(&["Radiology request", "Left hand"], 0.2, 5));
    app.upload(scan, &metadata("DW-1", "Dora Webb", "radiology-request"))
        .await;

    let fixtures =
        ["RG1_J2KI.dcm", "RG3_J2KR.dcm"].map(|name| fixtures_dir().join("dicom").join(name));
    let request = json!({
        "base": app.url("/dicom-web"),
        "token": app.records,
        "clinician": app.clinician,
        "fixtures": fixtures,
    });
    let out = crate::hl7::run_client(&python, "tests/dicomweb/client.py", &request);
    let study = out["study"].as_str().unwrap().to_string();

    // STOW-RS: all four stored; the same instance again is the stored one.
    assert_eq!(out["stored"], out["sent"]);
    assert_eq!(out["failed"], 0);
    assert_eq!(out["stored_again"], json!([out["first_xray"]]));
    // QIDO-RS.
    assert_eq!(out["studies_of_patient"], json!([study]));
    assert_eq!(
        out["study_counts"],
        json!([1, 2]),
        "one series, two instances"
    );
    assert_eq!(out["modalities"], json!(["DX"]));
    assert_eq!(out["patient_name"], "Webb^Dora");
    assert_eq!(out["studies_2004"], json!(out["fixture_studies"]));
    assert_eq!(out["studies_before_2000"], json!([]));
    assert_eq!(out["by_accession"], json!([study]));
    assert_eq!(out["cr_studies"], out["fixture_studies"]);
    assert_eq!(out["series"], json!([out["series_uid"]]));
    assert_eq!(out["instances"], out["xray_uids"]);
    assert_eq!(out["all_instances"], 4);
    assert_eq!(
        out["paged"],
        json!([1, 1, 1, 0]),
        "three studies, one a page"
    );
    // WADO-RS.
    assert_eq!(out["pixels_back"], true);
    assert_eq!(out["patient_back"], "DW-1");
    assert_eq!(out["fixture_pixels_back"], true);
    assert_eq!(out["fixture_syntax_back"], "1.2.840.10008.1.2.4.91");
    let byte_for_byte = out["byte_for_byte"].as_object().unwrap();
    assert_eq!(byte_for_byte.len(), 4, "each instance sent was read back");
    for (uid, parts) in byte_for_byte {
        assert_eq!(parts, &json!([true]), "{uid} comes back as it was sent");
    }
    assert_eq!(out["explicit_le_of_jpeg2000"], 406);
    assert_eq!(out["study_instances_back"], out["xray_uids"]);
    assert_eq!(out["series_instances_back"], 2);
    assert_eq!(out["metadata_has_pixels"], false);
    assert_eq!(out["metadata_readable"], "Left hand two views");
    assert_eq!(out["study_metadata"], 2);
    assert_eq!(out["rendered_jpeg"], true);
    // The clinician: their patient's study only; the CR patients' are not there.
    assert_eq!(out["clinician_studies_of_patient"], json!([study]));
    assert_eq!(out["clinician_all_studies"], json!([study]));
    assert_eq!(out["clinician_cr_patient"], json!([]));
    assert_eq!(out["clinician_retrieve_cr"], 404);
    assert_eq!(out["clinician_metadata_cr"], 404);
    assert_eq!(out["clinician_retrieve_own"], 200);
    assert_eq!(out["clinician_store"], 403);

    // Filed as documents of the patients their PatientIDs name, registered from the files.
    let lookup = app
        .post_json(
            &app.records,
            "/api/v1/patients/lookup",
            &json!({ "mrn": "9RG1" }),
        )
        .await;
    assert_eq!(lookup.status(), 200);
    let chart: Value = lookup.json().await.unwrap();
    assert_eq!(chart["patient"]["name"], "RG1 CompressedSamples");
    assert_eq!(chart["patient"]["birth_date"], "1940-03-05");
    let docs = chart["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{chart}");
    assert_eq!(docs[0]["document_type"], "diagnostic-imaging");
    assert_eq!(docs[0]["service_date"], "2004-08-26");

    // What a store request can get wrong: each instance refused says why; nothing of it is
    // kept.
    let before = documents(&app).await;
    let png = png_of(&scanned_page(&["not an x-ray"], 0.0, 6));
    let (status, body) = stow(
        &app,
        "/dicom-web/studies",
        RELATED,
        related(&[("application/dicom", &png)]),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let failed = &body["00081198"]["Value"][0];
    assert_eq!(failed["00081197"]["Value"][0], 0xC000, "{body}");
    assert!(
        failed["00000902"]["Value"][0]
            .as_str()
            .unwrap()
            .contains("DICOM"),
        "{body}"
    );

    let good = crate::dicom::hand_xray(
        "DW-1",
        "1.2.826.0.1.3680043.2.1125.77.1",
        "1.2.840.10008.1.2.1",
        None,
    );
    let truncated = good[..good.len() / 2].to_vec();
    let other = crate::dicom::hand_xray(
        "DW-1",
        "1.2.826.0.1.3680043.2.1125.77.2",
        "1.2.840.10008.1.2.1",
        None,
    );
    let (status, body) = stow(
        &app,
        "/dicom-web/studies",
        RELATED,
        related(&[
            ("application/dicom", &good),
            ("application/dicom", &truncated),
            ("application/dicom+json", b"{}"),
        ]),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["00081199"]["Value"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    let reasons: Vec<&Value> = body["00081198"]["Value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["00081197"]["Value"][0])
        .collect();
    assert_eq!(reasons, [&json!(0xC000), &json!(0xC000)], "{body}");
    // Stored into a study the instance is not of: refused, naming the instance.
    let (status, body) = stow(
        &app,
        "/dicom-web/studies/1.2.3.4",
        RELATED,
        related(&[("application/dicom", &other)]),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["00081198"]["Value"][0]["00081155"]["Value"][0],
        "1.2.826.0.1.3680043.2.1125.77.2"
    );
    assert_eq!(body["00081198"]["Value"][0]["00081197"]["Value"][0], 0x0110);
    let (status, body) = stow(
        &app,
        "/dicom-web/studies",
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(
        documents(&app).await,
        before + 1,
        "only the good instance was kept"
    );

    // An instance recorded before its data set was kept is found once the service has
    // recorded it.
    sqlx::query("DELETE FROM dicom_instances")
        .execute(&app.sql)
        .await
        .unwrap();
    let none: Value = app
        .get(&app.records, "/dicom-web/studies?PatientID=DW-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none, json!([]));
    let recorded = chartvault::ingest::dicom::backfill(&app.state)
        .await
        .unwrap();
    assert_eq!(recorded, 5);
    let again: Value = app
        .get(&app.records, "/dicom-web/studies?PatientID=DW-1")
        .await
        .json()
        .await
        .unwrap();
    let mut found: Vec<&str> = again
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["0020000D"]["Value"][0].as_str().unwrap())
        .collect();
    found.sort();
    let mut expected = vec![study.as_str(), "1.2.826.0.1.3680043.2.1125.9.2"];
    expected.sort();
    assert_eq!(found, expected);

    // Nothing of the instances is readable at rest: names, IDs, descriptions, accessions.
    let needles = [
        "Webb",
        "Dora",
        "CompressedSamples",
        "Left hand two views",
        "ACC-DW-1",
        "FUJI95706",
        "9RG1",
        "11RG3",
    ];
    for path in files_under(&app.data_dir) {
        let Some(bytes) = read_live(&path) else {
            continue;
        };
        for needle in needles {
            assert!(
                !contains_in_any_encoding(&bytes, needle),
                "{needle:?} is readable in {}",
                path.display()
            );
        }
    }
}
