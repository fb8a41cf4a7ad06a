//! Who may see what: every role (and clinicians with and without a care relationship, with
//! and without break-the-glass, with and without a sensitive-category grant) × every route
//! of the router × a patient in and out of scope → the status written out by hand below.
//! The routes come from the router's own table, so a route added without rows here fails.
//! After every call, the audit must hold an entry for that principal with the matching
//! outcome.

use chartvault::store::prelude::*;
use std::collections::BTreeMap;

use chartvault::domain::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// The principals, in the column order of the table.
const PRINCIPALS: [&str; 8] = [
    "admin",      // admin
    "rec",        // records
    "law",        // legal
    "aud",        // auditor
    "clin_none",  // clinician, no relationship with the patient
    "clin_care",  // clinician with a care relationship with patient IN
    "clin_bg",    // clinician off the list, with an active break-the-glass to patient IN
    "clin_grant", // clinician with a care relationship with IN and a grant of `hiv`
];

/// What a row is about: G = patient IN's general document, S = patient IN's `hiv`
/// document, O = patient OUT's general document (off every clinician's list), IN / OUT =
/// the patients themselves, `-` = no particular record.
type Row = (&'static str, &'static str, [u16; 8]);

#[rustfmt::skip]
const EXPECTED: &[Row] = &[
    //                                                          admin rec  law  aud  none care  bg grant
    ("GET /documents/{id}",                        "G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /documents/{id}",                        "S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /documents/{id}",                        "O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /documents/{id}/original",               "G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /documents/{id}/original",               "S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /documents/{id}/original",               "O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /documents/{id}/pages/{page}/image",     "G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /documents/{id}/pages/{page}/image",     "S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /documents/{id}/pages/{page}/image",     "O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /documents/{id}/pages/{page}/text",      "G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /documents/{id}/pages/{page}/text",      "S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /documents/{id}/pages/{page}/text",      "O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /documents/{id}/pages/{page}/words",     "G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /documents/{id}/pages/{page}/words",     "S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /documents/{id}/pages/{page}/words",     "O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    // FHIR: the same policy as the API's routes (a search answers an empty Bundle for a
    // patient out of scope, as /search answers nothing). The CapabilityStatement is public.
    ("GET /fhir/metadata",                         "-",   [200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/DocumentReference/{id}",           "G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /fhir/DocumentReference/{id}",           "S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /fhir/DocumentReference/{id}",           "O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /fhir/Binary/{id}",                      "G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /fhir/Binary/{id}",                      "S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /fhir/Binary/{id}",                      "O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /fhir/DocumentReference",                "IN",  [403, 200, 200, 403, 200, 200, 200, 200]),
    ("GET /fhir/DocumentReference",                "OUT", [403, 200, 200, 403, 200, 200, 200, 200]),
    ("POST /fhir/DocumentReference/_search",       "IN",  [403, 200, 200, 403, 200, 200, 200, 200]),
    ("POST /fhir/DocumentReference",               "IN",  [403, 201, 403, 403, 403, 403, 403, 403]),
    ("GET /fhir/Patient/{id}",                     "IN",  [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /fhir/Patient/{id}",                     "OUT", [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /fhir/Patient",                          "IN",  [403, 200, 200, 403, 200, 200, 200, 200]),
    ("POST /fhir/Patient/_search",                 "OUT", [403, 200, 200, 403, 200, 200, 200, 200]),
    // DICOMweb: retrieval as the API's reads (G, S, O are x-rays of their own); a search
    // answers only what the caller may read (nothing for a patient out of scope); a store
    // is an ingest.
    ("GET /dicom-web/studies/{study}",              "G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}",              "S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /dicom-web/studies/{study}",              "O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /dicom-web/studies/{study}/metadata",     "G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}/metadata",     "S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /dicom-web/studies/{study}/metadata",     "O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /dicom-web/studies/{study}/series/{series}","G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}","S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}","O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /dicom-web/studies/{study}/series/{series}/metadata","G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}/metadata","S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}/metadata","O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances/{instance}","G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances/{instance}","S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances/{instance}","O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata","G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata","S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata","O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered","G",   [403, 200, 200, 403, 404, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered","S",   [403, 404, 404, 403, 404, 404, 404, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered","O",   [403, 200, 200, 403, 404, 404, 404, 404]),
    ("GET /dicom-web/studies",                      "IN", [403, 200, 200, 403, 200, 200, 200, 200]),
    ("GET /dicom-web/studies",                      "OUT",[403, 200, 200, 403, 200, 200, 200, 200]),
    ("GET /dicom-web/series",                       "IN", [403, 200, 200, 403, 200, 200, 200, 200]),
    ("GET /dicom-web/instances",                    "OUT",[403, 200, 200, 403, 200, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}/series",       "G",  [403, 200, 200, 403, 200, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}/instances",    "O",  [403, 200, 200, 403, 200, 200, 200, 200]),
    ("GET /dicom-web/studies/{study}/series/{series}/instances","G",  [403, 200, 200, 403, 200, 200, 200, 200]),
    ("POST /dicom-web/studies",                     "IN",  [403, 200, 403, 403, 403, 403, 403, 403]),
    ("POST /dicom-web/studies/{study}",             "IN",  [403, 200, 403, 403, 403, 403, 403, 403]),
    ("POST /search",                               "IN",  [403, 200, 200, 403, 200, 200, 200, 200]),
    ("POST /search",                               "OUT", [403, 200, 200, 403, 200, 200, 200, 200]),
    ("POST /patients/lookup",                      "IN",  [403, 200, 200, 403, 404, 200, 200, 200]),
    ("POST /patients/lookup",                      "OUT", [403, 200, 200, 403, 404, 404, 404, 404]),
    ("POST /patients/search",                      "IN",  [403, 200, 200, 403, 200, 200, 200, 200]),
    ("POST /patients/search",                      "OUT", [403, 200, 200, 403, 200, 200, 200, 200]),
    ("POST /documents",                            "IN",  [403, 202, 403, 403, 403, 403, 403, 403]),
    // Only a failed document is retried: 409 for records on an indexed one.
    ("POST /documents/{id}/retry",                 "G",   [403, 409, 403, 403, 403, 403, 403, 403]),
    ("POST /care-relationships",                   "OUT", [201, 201, 403, 403, 403, 403, 403, 403]),
    ("DELETE /care-relationships/{id}",            "-",   [200, 200, 403, 403, 403, 403, 403, 403]),
    ("POST /category-grants",                      "-",   [201, 403, 403, 403, 403, 403, 403, 403]),
    ("DELETE /category-grants",                    "-",   [200, 403, 403, 403, 403, 403, 403, 403]),
    ("POST /category-grants/revoke",               "-",   [200, 403, 403, 403, 403, 403, 403, 403]),
    ("GET /break-glass/review",                    "-",   [403, 403, 403, 200, 403, 403, 403, 403]),
    ("POST /break-glass/{id}/review",              "-",   [403, 403, 403, 200, 403, 403, 403, 403]),
    ("GET /admin/keys",                            "-",   [200, 403, 403, 403, 403, 403, 403, 403]),
    ("POST /admin/keys/rotate",                    "-",   [200, 403, 403, 403, 403, 403, 403, 403]),
    ("POST /admin/keys/retire",                    "-",   [200, 403, 403, 403, 403, 403, 403, 403]),
    ("POST /audit/query",                          "IN",  [403, 403, 403, 200, 403, 403, 403, 403]),
    ("POST /disclosures",                          "IN",  [403, 201, 201, 201, 403, 403, 403, 403]),
    ("POST /disclosures/accounting",               "IN",  [403, 403, 403, 200, 403, 403, 403, 403]),
    ("GET /qa",                                    "-",   [403, 200, 403, 403, 403, 403, 403, 403]),
    ("GET /documents",                             "-",   [403, 200, 403, 403, 403, 403, 403, 403]),
    // A filed document is not in the queue: 409 for records.
    ("POST /qa/{id}",                              "G",   [403, 409, 403, 403, 403, 403, 403, 403]),
    ("GET /qa/{id}/pages/{page}/image",            "G",   [403, 404, 403, 403, 403, 403, 403, 403]),
    ("POST /batches",                              "-",   [403, 202, 403, 403, 403, 403, 403, 403]),
    ("GET /batches/{id}",                          "-",   [403, 200, 403, 403, 403, 403, 403, 403]),
    // Holds on G (the destructive rows below touch S and O only).
    ("POST /holds",                                "G",   [403, 403, 201, 403, 403, 403, 403, 403]),
    ("GET /holds",                                 "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("GET /holds/{id}",                            "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("POST /holds/{id}/release",                   "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    // Release requests: a patient's request for access to IN's records (G; S needs hiv);
    // exclusions and redactions name G.
    ("POST /releases",                             "-",   [403, 403, 201, 403, 403, 403, 403, 403]),
    ("GET /releases",                              "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("GET /releases/{id}",                         "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("POST /releases/{id}/attachments",            "-",   [403, 403, 201, 403, 403, 403, 403, 403]),
    ("POST /releases/{id}/exclusions",             "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("DELETE /releases/{id}/exclusions",           "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("POST /releases/{id}/exclusions/remove",      "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("POST /releases/{id}/redactions",             "-",   [403, 403, 201, 403, 403, 403, 403, 403]),
    ("DELETE /releases/{id}/redactions/{rid}",     "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("POST /releases/{id}/redaction-proposals",    "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("POST /releases/{id}/productions",            "-",   [403, 403, 201, 403, 403, 403, 403, 403]),
    ("GET /releases/{id}/productions/{pid}",       "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    ("GET /releases/{id}/productions/{pid}/manifest", "-", [403, 403, 200, 403, 403, 403, 403, 403]),
    ("POST /releases/{id}/extension",              "-",   [403, 403, 200, 403, 403, 403, 403, 403]),
    // No retention rule is configured: a run lists nothing and destroys nothing.
    ("POST /retention/runs",                       "-",   [403, 200, 403, 403, 403, 403, 403, 403]),
    ("GET /retention/certificates",                "-",   [403, 200, 200, 200, 403, 403, 403, 403]),
    // Changes the callers' scope: after the reads.
    ("POST /break-glass",                          "OUT", [403, 403, 403, 403, 201, 201, 201, 201]),
    // Re-files O (a new version; O is entered in error): after the reads.
    ("POST /documents/{id}/corrections",           "S",   [403, 404, 403, 403, 403, 403, 403, 403]),
    ("POST /documents/{id}/corrections",           "O",   [403, 201, 403, 403, 403, 403, 403, 403]),
    // Destroys: last. Records have no `hiv` grant, so S is out of their scope.
    ("DELETE /documents/{id}",                     "S",   [403, 404, 403, 403, 403, 403, 403, 403]),
    ("POST /documents/{id}/delete",                "S",   [403, 404, 403, 403, 403, 403, 403, 403]),
    ("DELETE /documents/{id}",                     "O",   [403, 200, 403, 403, 403, 403, 403, 403]),
];

struct World {
    tokens: BTreeMap<&'static str, String>,
    users: BTreeMap<&'static str, String>,
    docs: BTreeMap<&'static str, String>,
    mrns: BTreeMap<&'static str, &'static str>,
    /// The patients' ids (IN, OUT).
    patients: BTreeMap<&'static str, String>,
    /// The (study, series, SOP instance) UIDs of the x-rays beside G, S and O: the same
    /// patient and category each.
    xrays: BTreeMap<&'static str, (String, String, String)>,
}

fn scan(marker: &str, seed: u64) -> Vec<u8> {
    png_of(&scanned_page(
        &[
            "Ward round note",
            &format!("Marker {marker} and common sycamore"),
        ],
        0.0,
        seed,
    ))
}

async fn build_world(app: &TestApp) -> World {
    let config = app.config();
    let mut tokens = BTreeMap::new();
    tokens.insert("admin", app.admin.clone());
    tokens.insert("rec", app.records.clone());
    tokens.insert("law", app.legal.clone());
    tokens.insert("aud", app.auditor.clone());
    for name in ["clin_none", "clin_care", "clin_bg", "clin_grant", "dummy"] {
        let token = chartvault::cli::user_add(&config, name, Role::Clinician)
            .await
            .unwrap();
        if name != "dummy" {
            tokens.insert(name, token);
        }
    }
    let mut users = BTreeMap::new();
    for (name, real) in [
        ("admin", "admin"),
        ("rec", "rec"),
        ("law", "law"),
        ("aud", "aud"),
        ("clin_none", "clin_none"),
        ("clin_care", "clin_care"),
        ("clin_bg", "clin_bg"),
        ("clin_grant", "clin_grant"),
    ] {
        let (id, _, _) = app.state.db.user_by_name(real).await.unwrap().unwrap();
        users.insert(name, id.to_string());
    }
    let mrns = BTreeMap::from([("IN", "AC-IN-1"), ("OUT", "AC-OUT-2")]);
    let upload = |mrn: &'static str,
                  name: &'static str,
                  category: &'static str,
                  marker: &'static str,
                  seed| {
        let mut meta = metadata(mrn, name, "ward-note");
        meta["category"] = json!(category);
        async move {
            let response = app.upload_as(&app.records, scan(marker, seed), &meta).await;
            assert_eq!(response.status(), 202);
            let body: Value = response.json().await.unwrap();
            body["id"].as_str().unwrap().to_string()
        }
    };
    let g = upload(mrns["IN"], "Ines Inscope", "general", "alderwood", 61).await;
    let s = upload(mrns["IN"], "Ines Inscope", "hiv", "birchwood", 62).await;
    let o = upload(mrns["OUT"], "Otto Outscope", "general", "cedarwood", 63).await;
    // An x-ray beside each, stored as the API stores DICOM files.
    let mut xrays = BTreeMap::new();
    let mut xray_docs = Vec::new();
    for (n, (target, mrn, name, category)) in [
        ("G", mrns["IN"], "Ines Inscope", "general"),
        ("S", mrns["IN"], "Ines Inscope", "hiv"),
        ("O", mrns["OUT"], "Otto Outscope", "general"),
    ]
    .into_iter()
    .enumerate()
    {
        let uids = (
            format!("1.2.826.0.1.3680043.2.1125.61.{n}"),
            format!("1.2.826.0.1.3680043.2.1125.62.{n}"),
            format!("1.2.826.0.1.3680043.2.1125.63.{n}"),
        );
        let bytes = crate::dicom::xray_in(
            mrn,
            (&uids.0, &uids.1, &uids.2),
            "1.2.840.10008.1.2.1",
            None,
        );
        let mut meta = metadata(mrn, name, "x-ray");
        meta["category"] = json!(category);
        let response = app.upload_as(&app.records, bytes, &meta).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        xray_docs.push(body["id"].as_str().unwrap().to_string());
        xrays.insert(target, uids);
    }
    // (Through the database: no test principal may read S without the grant.)
    for id in [&g, &s, &o].into_iter().chain(&xray_docs) {
        let id: chartvault::domain::DocumentId = id.parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        loop {
            let doc = app.state.db.document(id).await.unwrap().unwrap();
            match doc.status {
                chartvault::domain::DocumentStatus::Indexed => break,
                chartvault::domain::DocumentStatus::Failed => panic!("{:?}", doc.failure_reason),
                _ => {}
            }
            assert!(std::time::Instant::now() < deadline, "not indexed in time");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    app.add_care("clin_care", mrns["IN"]).await;
    app.add_care("clin_grant", mrns["IN"]).await;
    let grant = app
        .post_json(
            &app.admin,
            "/api/v1/category-grants",
            &json!({ "user": "clin_grant", "category": "hiv" }),
        )
        .await;
    assert_eq!(grant.status(), 201);
    let glass = app
        .post_json(
            &tokens["clin_bg"],
            "/api/v1/break-glass",
            &json!({ "mrn": mrns["IN"], "reason_code": "emergency", "reason": "unconscious in the emergency department" }),
        )
        .await;
    assert_eq!(glass.status(), 201);
    let mut patients = BTreeMap::new();
    for (target, mrn) in &mrns {
        let chart: Value = app
            .post_json(
                &app.records,
                "/api/v1/patients/lookup",
                &json!({ "mrn": mrn }),
            )
            .await
            .json()
            .await
            .unwrap();
        patients.insert(
            *target,
            chart["patient"]["id"].as_str().unwrap().to_string(),
        );
    }
    World {
        tokens,
        users,
        docs: BTreeMap::from([("G", g), ("S", s), ("O", o)]),
        mrns,
        patients,
        xrays,
    }
}

/// Issues `route` for `target` as `principal`, preparing what the route needs.
async fn call(app: &TestApp, world: &World, route: &str, target: &str, principal: &str) -> u16 {
    let token = &world.tokens[principal];
    let (method, path) = route.split_once(' ').unwrap();
    if path.starts_with("/fhir/") {
        return call_fhir(app, world, (method, path), target, token).await;
    }
    if path.starts_with("/dicom-web/") {
        return call_dicomweb(app, world, (method, path), target, token).await;
    }
    let mut url_path = path.to_string();
    if let Some(doc) = world.docs.get(target) {
        url_path = url_path.replace("{id}", doc);
    }
    url_path = url_path.replace("{page}", "1");
    if route == "GET /documents" {
        url_path.push_str("?status=failed");
    }
    let mrn = world.mrns.get(target).copied().unwrap_or("AC-IN-1");
    let body = match path {
        "/search" => {
            Some(json!({ "query": if target == "IN" { "alderwood" } else { "cedarwood" } }))
        }
        "/patients/lookup" => Some(json!({ "mrn": mrn })),
        "/patients/search" => {
            Some(json!({ "name": if target == "IN" { "inscope" } else { "outscope" } }))
        }
        "/care-relationships" => Some(json!({ "user": "dummy", "mrn": mrn })),
        "/category-grants" if method == "POST" => {
            Some(json!({ "user": "dummy", "category": "hiv" }))
        }
        "/category-grants" | "/category-grants/revoke" => {
            let grant = app
                .post_json(
                    &app.admin,
                    "/api/v1/category-grants",
                    &json!({ "user": "dummy", "category": "hiv" }),
                )
                .await;
            assert_eq!(grant.status(), 201);
            Some(json!({ "user": "dummy", "category": "hiv" }))
        }
        "/care-relationships/{id}" => {
            let created = app.add_care("dummy", "AC-IN-1").await;
            url_path = url_path.replace("{id}", created["id"].as_str().unwrap());
            None
        }
        "/break-glass" => Some(
            json!({ "mrn": mrn, "reason_code": "continuity-of-care", "reason": "covering the night shift" }),
        ),
        "/break-glass/{id}/review" => {
            let queue: Value = app
                .get(&world.tokens["aud"], "/api/v1/break-glass/review")
                .await
                .json()
                .await
                .unwrap();
            // Once the auditor has reviewed it, the others try an id of no access.
            let id = queue["accesses"][0]["id"]
                .as_str()
                .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
            url_path = url_path.replace("{id}", &id);
            Some(json!({ "outcome": "appropriate", "note": "emergency confirmed" }))
        }
        "/admin/keys/retire" => Some(json!({ "version": 1 })),
        "/qa/{id}" => Some(json!({ "action": "accept" })),
        "/audit/query" => Some(json!({ "patient_mrn": mrn, "limit": 5 })),
        "/disclosures" => Some(json!({
            "mrn": mrn, "disclosed_at": "2026-11-20", "recipient_name": "County court",
            "recipient_address": "1 Court Street", "description": "discharge summary",
            "purpose": "subpoena", "document_ids": [],
        })),
        "/disclosures/accounting" => Some(json!({ "mrn": mrn })),
        "/documents/{id}" if method == "DELETE" => Some(json!({ "reason": "access test" })),
        "/documents/{id}/delete" => Some(json!({ "reason": "access test" })),
        "/documents/{id}/corrections" => {
            Some(json!({ "document_type": "corrected-note", "reason": "access test" }))
        }
        "/holds" if method == "POST" => Some(json!({
            "matter": "Access v. Test", "custodian": "Records custodian",
            "reason": "anticipated litigation", "document_ids": [world.docs["G"]],
        })),
        "/holds/{id}" | "/holds/{id}/release" => {
            // A hold of legal's own for each call (a released hold cannot be released again).
            let hold: Value = app
                .post_json(
                    &world.tokens["law"],
                    "/api/v1/holds",
                    &json!({
                        "matter": "Access v. Test", "custodian": "Records custodian",
                        "reason": "anticipated litigation", "document_ids": [world.docs["G"]],
                    }),
                )
                .await
                .json()
                .await
                .unwrap();
            url_path = url_path.replace("{id}", hold["id"].as_str().unwrap());
            path.ends_with("/release")
                .then(|| json!({ "reason": "the matter settled" }))
        }
        "/retention/runs" => Some(json!({ "apply": true })),
        "/releases" if method == "POST" => Some(release_body(mrn)),
        _ if path.starts_with("/releases/{id}") => {
            // A request of legal's own for each call (and its production, when named).
            let legal = &world.tokens["law"];
            let release: Value = app
                .post_json(legal, "/api/v1/releases", &release_body(world.mrns["IN"]))
                .await
                .json()
                .await
                .unwrap();
            let release = release["id"].as_str().unwrap().to_string();
            url_path = url_path.replace("{id}", &release);
            if path.contains("{pid}") {
                let produced: Value = app
                    .post_json(
                        legal,
                        &format!("/api/v1/releases/{release}/productions"),
                        &json!({}),
                    )
                    .await
                    .json()
                    .await
                    .unwrap();
                url_path =
                    url_path.replace("{pid}", produced["production"]["id"].as_str().unwrap());
            }
            let doc = world.docs.get("G").cloned().unwrap_or_default();
            if path.contains("{rid}") {
                let redaction: Value = app
                    .post_json(
                        legal,
                        &format!("/api/v1/releases/{release}/redactions"),
                        &json!({ "document_id": doc, "page": 1, "whole_page": true }),
                    )
                    .await
                    .json()
                    .await
                    .unwrap();
                url_path = url_path.replace("{rid}", redaction["id"].as_str().unwrap());
            }
            match path.rsplit('/').next().unwrap() {
                "exclusions" if method == "DELETE" => Some(json!({ "document_ids": [doc] })),
                "remove" => Some(json!({ "document_ids": [doc] })),
                "attachments" => {
                    let form = reqwest::multipart::Form::new()
                        .text("kind", "request")
                        .part(
                            "file",
                            reqwest::multipart::Part::bytes(scan("request", 66))
                                .file_name("request.png")
                                .mime_str("image/png")
                                .unwrap(),
                        );
                    return app
                        .http
                        .post(app.url(&format!("/api/v1{url_path}")))
                        .bearer_auth(token)
                        .multipart(form)
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16();
                }
                "exclusions" => Some(json!({ "document_ids": [doc], "reason": "not requested" })),
                "redactions" => Some(json!({ "document_id": doc, "page": 1, "whole_page": true })),
                "redaction-proposals" => Some(json!({ "text": "sycamore" })),
                "extension" => Some(json!({ "reason": "records off site" })),
                _ => None,
            }
        }
        _ => None,
    };
    if path == "/batches" || path == "/batches/{id}" {
        // One page with no cover sheet: a batch of one page range for the QA queue. The
        // same file every time, so records' second upload is the same batch.
        let batch = app.upload_batch_as(token, scan("hazel", 65)).await;
        if path == "/batches" {
            return batch.status().as_u16();
        }
        let id = match batch
            .json::<Value>()
            .await
            .ok()
            .and_then(|b| b["id"].as_str().map(str::to_string))
        {
            Some(id) => id,
            None => {
                let mine = app
                    .upload_batch_as(&world.tokens["rec"], scan("hazel", 65))
                    .await;
                mine.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
        };
        url_path = url_path.replace("{id}", &id);
    }
    if route == "POST /documents" {
        let meta = metadata(mrn, "Ines Inscope", "ward-note");
        return app
            .upload_as(token, scan("dogwood", 64), &meta)
            .await
            .status()
            .as_u16();
    }
    let mut request = app
        .http
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(&format!("/api/v1{url_path}")),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    } else if method == "POST" {
        request = request.json(&json!({}));
    }
    request.send().await.unwrap().status().as_u16()
}

/// Issues a FHIR route: a search names the target patient (by id, or by MRN for Patient).
async fn call_fhir(
    app: &TestApp,
    world: &World,
    (method, path): (&str, &str),
    target: &str,
    token: &str,
) -> u16 {
    let id = world
        .docs
        .get(target)
        .or_else(|| world.patients.get(target))
        .cloned()
        .unwrap_or_default();
    let patient = world.patients.get(target).cloned().unwrap_or_default();
    let identifier = format!(
        "urn:chartvault:mrn|{}",
        world.mrns.get(target).copied().unwrap_or("AC-IN-1")
    );
    let url = app.url(&path.replace("{id}", &id));
    let request = match path {
        "/fhir/DocumentReference" if method == "GET" => {
            app.http.get(url).query(&[("patient", &patient)])
        }
        "/fhir/DocumentReference/_search" => app.http.post(url).form(&[("patient", &patient)]),
        "/fhir/DocumentReference" if method == "POST" => {
            use base64::Engine;
            app.http.post(url).json(&json!({
                "resourceType": "DocumentReference",
                "status": "current",
                "subject": { "identifier": { "system": "urn:chartvault:mrn", "value": world.mrns[target] } },
                "type": { "text": "ward-note" },
                "content": [{ "attachment": {
                    "contentType": "image/png",
                    "data": base64::engine::general_purpose::STANDARD.encode(scan("elmwood", 67)),
                } }],
            }))
        }
        "/fhir/Patient" => app.http.get(url).query(&[("identifier", &identifier)]),
        "/fhir/Patient/_search" => app.http.post(url).form(&[("identifier", &identifier)]),
        _ => app
            .http
            .request(Method::from_bytes(method.as_bytes()).unwrap(), url),
    };
    request
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Issues a DICOMweb route: a retrieval names the target's x-ray, a search names the
/// target's patient (`PatientID`), a store sends a new x-ray of patient IN.
async fn call_dicomweb(
    app: &TestApp,
    world: &World,
    (method, path): (&str, &str),
    target: &str,
    token: &str,
) -> u16 {
    let (study, series, instance) = world.xrays.get(target).cloned().unwrap_or_else(|| {
        let g = &world.xrays["G"];
        (g.0.clone(), g.1.clone(), g.2.clone())
    });
    let url = app.url(
        &path
            .replace("{study}", &study)
            .replace("{series}", &series)
            .replace("{instance}", &instance),
    );
    let request = if method == "POST" {
        let sop = format!("2.25.{}", uuid::Uuid::new_v4().as_u128());
        let bytes = crate::dicom::xray_in(
            world.mrns["IN"],
            (&study, &series, &sop),
            "1.2.840.10008.1.2.1",
            None,
        );
        let mut body = b"--xray\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
        body.extend(bytes);
        body.extend(b"\r\n--xray--\r\n");
        app.http
            .post(url)
            .header(
                "content-type",
                "multipart/related; type=\"application/dicom\"; boundary=xray",
            )
            .body(body)
    } else if world.mrns.contains_key(target) {
        app.http
            .get(url)
            .query(&[("PatientID", world.mrns[target])])
    } else {
        app.http.get(url)
    };
    request
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A patient's request for access to their own records (no checklist item to satisfy).
fn release_body(mrn: &str) -> Value {
    json!({
        "legal_basis": "patient-access",
        "requester": { "name": "Ines Inscope" },
        "recipient": { "name": "Ines Inscope", "address": "1 Main Street" },
        "received_on": "2026-11-20",
        "patients": [mrn],
    })
}

fn outcome_fits(status: u16, outcome: &str) -> bool {
    match status {
        200..=299 => outcome == "ok" || outcome == "accepted",
        403 => outcome == "denied-role",
        404 => outcome == "denied-scope" || outcome == "not-found",
        409 | 410 => outcome == "refused",
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_and_scope_gets_the_status_written_down_for_every_route() {
    let app = spawn_app().await;
    let world = build_world(&app).await;

    // The table covers exactly the router's routes: the API's, FHIR's and DICOMweb's.
    let routes: Vec<String> = chartvault::http::routes::api_route_table()
        .into_iter()
        .map(|(method, path)| format!("{method} {path}"))
        .chain(
            chartvault::fhir::route_table()
                .into_iter()
                .map(|(method, path)| format!("{method} /fhir{path}")),
        )
        .chain(
            chartvault::dicomweb::route_table()
                .into_iter()
                .map(|(method, path)| format!("{method} /dicom-web{path}")),
        )
        .collect();
    for route in &routes {
        assert!(
            EXPECTED.iter().any(|(r, _, _)| r == route),
            "no expected statuses for {route}"
        );
    }
    for (route, _, _) in EXPECTED {
        assert!(routes.iter().any(|r| r == route), "{route} is not a route");
    }

    let mut unexpected = Vec::new();
    for (route, target, statuses) in EXPECTED {
        for (principal, expected) in PRINCIPALS.iter().zip(statuses) {
            let before = app
                .state
                .db
                .audit_rows(0)
                .await
                .unwrap()
                .last()
                .map_or(0, |r| r.seq);
            let status = call(&app, &world, route, target, principal).await;
            if status != *expected {
                unexpected.push(format!(
                    "{route} [{target}] as {principal}: {status}, expected {expected}"
                ));
                continue;
            }
            // The call left its trace: an entry for this principal with the fitting outcome
            // (the CapabilityStatement, public, says nothing of anyone).
            if *route == "GET /fhir/metadata" {
                continue;
            }
            let user = &world.users[principal];
            let rows = app.state.db.audit_rows(before).await.unwrap();
            assert!(
                rows.iter().any(|r| r.user_id.as_deref() == Some(user.as_str())
                    && outcome_fits(status, &r.outcome)),
                "{route} [{target}] as {principal} ({status}) left no fitting audit entry: {rows:?}"
            );
        }
    }
    assert!(
        unexpected.is_empty(),
        "unexpected statuses:\n{}",
        unexpected.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_returns_and_counts_only_what_the_caller_may_see() {
    let app = spawn_app().await;
    let world = build_world(&app).await;
    let total = |principal: &'static str, query: &'static str| {
        let token = world.tokens[principal].clone();
        let app = &app;
        async move {
            app.search(&token, json!({ "query": query })).await["total"]
                .as_u64()
                .unwrap()
        }
    };
    // "sycamore" is on every page: the totals count only visible pages.
    assert_eq!(
        total("rec", "sycamore").await,
        2,
        "records: G and O; S needs a grant"
    );
    assert_eq!(total("law", "sycamore").await, 2);
    assert_eq!(total("clin_none", "sycamore").await, 0);
    assert_eq!(total("clin_care", "sycamore").await, 1);
    assert_eq!(
        total("clin_bg", "sycamore").await,
        1,
        "break-glass never opens hiv"
    );
    assert_eq!(total("clin_grant", "sycamore").await, 2, "G and S");
    // A sensitive document's words return nothing without the grant, even as a phrase.
    for principal in ["rec", "law", "clin_care", "clin_bg", "clin_none"] {
        for query in ["birchwood", "\"marker birchwood\"", "birch*"] {
            assert_eq!(total(principal, query).await, 0, "{principal} {query}");
        }
    }
    assert_eq!(total("clin_grant", "\"marker birchwood\"").await, 1);
    // Patient OUT is off every clinician's list.
    for principal in ["clin_none", "clin_care", "clin_bg", "clin_grant"] {
        assert_eq!(total(principal, "cedarwood").await, 0, "{principal}");
    }
    // An MRN filter cannot widen the scope.
    let by_mrn = app
        .search(
            &world.tokens["clin_care"],
            json!({ "query": "cedarwood", "mrn": "AC-OUT-2" }),
        )
        .await;
    assert_eq!(by_mrn["total"], 0);
    // Name search is scoped the same way.
    let names: Value = app
        .post_json(
            &world.tokens["clin_none"],
            "/api/v1/patients/search",
            &json!({ "name": "inscope" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names["patients"], json!([]));
    let names: Value = app
        .post_json(
            &world.tokens["clin_care"],
            "/api/v1/patients/search",
            &json!({ "name": "inscope" }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names["patients"][0]["mrn"], "AC-IN-1");

    // Break-the-glass: the access is flagged in the audit and waits for review.
    let before = app
        .state
        .db
        .audit_rows(0)
        .await
        .unwrap()
        .last()
        .unwrap()
        .seq;
    let read = app
        .get(
            &world.tokens["clin_bg"],
            &format!("/api/v1/documents/{}/pages/1/text", world.docs["G"]),
        )
        .await;
    assert_eq!(read.status(), 200);
    let rows = app.state.db.audit_rows(before).await.unwrap();
    let flagged = rows
        .iter()
        .find(|r| {
            r.user_id.as_deref() == Some(world.users["clin_bg"].as_str()) && r.action == "read"
        })
        .expect("the read is audited");
    assert!(
        flagged
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("break_glass"),
        "{flagged:?}"
    );
    let care_read = app
        .get(
            &world.tokens["clin_care"],
            &format!("/api/v1/documents/{}/pages/1/text", world.docs["G"]),
        )
        .await;
    assert_eq!(care_read.status(), 200);
    let rows = app.state.db.audit_rows(before).await.unwrap();
    let unflagged = rows
        .iter()
        .find(|r| {
            r.user_id.as_deref() == Some(world.users["clin_care"].as_str()) && r.action == "read"
        })
        .unwrap();
    assert!(!unflagged
        .detail
        .as_deref()
        .unwrap_or("")
        .contains("break_glass"));
    let queue: Value = app
        .get(&world.tokens["aud"], "/api/v1/break-glass/review")
        .await
        .json()
        .await
        .unwrap();
    let accesses = queue["accesses"].as_array().unwrap();
    assert_eq!(accesses.len(), 1);
    assert_eq!(accesses[0]["reason_code"], "emergency");
    assert_eq!(accesses[0]["user_id"], world.users["clin_bg"].as_str());
    assert_eq!(
        accesses[0]["reason"],
        "unconscious in the emergency department"
    );

    // A care relationship that has ended no longer opens the patient.
    let rel = app.add_care("clin_none", "AC-IN-1").await;
    assert_eq!(total("clin_none", "alderwood").await, 1);
    let ended = app
        .http
        .delete(app.url(&format!(
            "/api/v1/care-relationships/{}",
            rel["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.records)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    assert_eq!(total("clin_none", "alderwood").await, 0);
    // Bad break-the-glass requests are refused with clear errors.
    for body in [
        json!({ "mrn": "AC-OUT-2", "reason_code": "curiosity", "reason": "just looking around" }),
        json!({ "mrn": "AC-OUT-2", "reason_code": "emergency", "reason": "" }),
    ] {
        let refused = app
            .post_json(&world.tokens["clin_none"], "/api/v1/break-glass", &body)
            .await;
        assert_eq!(refused.status(), 400, "{body}");
    }
}
