//! QIDO-RS: the query a search names, the instances that match it, and the answer at the
//! study, series or instance level (PS3.18 10.6), built from the data sets the archive keeps
//! sealed for its DICOM documents.

use std::collections::BTreeMap;

use axum::extract::{self, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use serde_json::{json, Map, Value};

use super::instances::{as_filed, base_url, dicom_json, text, visible_instances, Uids};
use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{decide, Action, Principal, Resource};
use crate::domain::{DocumentId, PatientId};
use crate::error::{AppError, AppResult};
use crate::http::state::AppState;
use crate::store::prelude::*;

/// A search's level: what one answer item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Study,
    Series,
    Instance,
}

/// The query parameters of a search (attribute matches, paging).
#[derive(Debug, Default)]
pub struct Query {
    pub patient_id: Option<String>,
    pub issuer_of_patient_id: Option<String>,
    pub study_uids: Vec<String>,
    pub series_uids: Vec<String>,
    pub sop_uids: Vec<String>,
    pub accession_number: Option<String>,
    pub patient_name: Option<String>,
    /// Inclusive `YYYYMMDD` bounds.
    pub study_date: Option<(Option<String>, Option<String>)>,
    pub modality: Option<String>,
    pub modalities_in_study: Vec<String>,
    pub limit: usize,
    pub offset: usize,
}

/// The most one search answers.
pub const MAX_LIMIT: usize = 1000;

impl Query {
    /// Reads the query string's parameters, by keyword or tag (`PatientID`, `00100020`).
    /// Errors name the parameter, never its value.
    pub fn parse(params: &[(String, String)]) -> Result<Query, String> {
        let mut query = Query {
            limit: 100,
            ..Query::default()
        };
        for (key, value) in params {
            let value = value.trim();
            let list = || {
                value
                    .split([',', '\\'])
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            let text = || (!value.is_empty()).then(|| value.to_string());
            match key.as_str() {
                "PatientID" | "00100020" => query.patient_id = text(),
                "IssuerOfPatientID" | "00100021" => query.issuer_of_patient_id = text(),
                "PatientName" | "00100010" => query.patient_name = text(),
                "StudyInstanceUID" | "0020000D" => query.study_uids.extend(list()),
                "SeriesInstanceUID" | "0020000E" => query.series_uids.extend(list()),
                "SOPInstanceUID" | "00080018" => query.sop_uids.extend(list()),
                "AccessionNumber" | "00080050" => query.accession_number = text(),
                "Modality" | "00080060" => query.modality = text(),
                "ModalitiesInStudy" | "00080061" => query.modalities_in_study.extend(list()),
                "StudyDate" | "00080020" => {
                    query.study_date = Some(date_range(value).ok_or_else(|| {
                        "StudyDate must be a date (YYYYMMDD) or a range (YYYYMMDD-YYYYMMDD, \
                         -YYYYMMDD, YYYYMMDD-)"
                            .to_string()
                    })?)
                }
                "limit" => {
                    query.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| format!("limit must be a number from 1 to {MAX_LIMIT}"))?
                }
                "offset" => {
                    query.offset = value
                        .parse()
                        .map_err(|_| "offset must be a non-negative number".to_string())?
                }
                // Every attribute the archive has is answered; matching is always exact
                // (wildcards aside).
                "includefield" | "fuzzymatching" => {}
                other => {
                    return Err(format!(
                        "the search parameter {} is not supported (supported: PatientID, \
                         IssuerOfPatientID, PatientName, StudyInstanceUID, SeriesInstanceUID, \
                         SOPInstanceUID, AccessionNumber, StudyDate, Modality, \
                         ModalitiesInStudy, limit, offset, includefield)",
                        printable(other)
                    ))
                }
            }
        }
        Ok(query)
    }
}

/// A parameter name as an error may quote it (a name, not a value; bounded).
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .take(64)
        .collect()
}

/// `YYYYMMDD`, `YYYYMMDD-YYYYMMDD`, `-YYYYMMDD` or `YYYYMMDD-`.
fn date_range(value: &str) -> Option<(Option<String>, Option<String>)> {
    let date = |d: &str| -> Option<Option<String>> {
        let d = d.trim();
        if d.is_empty() {
            return Some(None);
        }
        chrono::NaiveDate::parse_from_str(d, "%Y%m%d").ok()?;
        Some(Some(d.to_string()))
    };
    let (from, to) = match value.split_once('-') {
        Some((from, to)) => (date(from)?, date(to)?),
        None => {
            let one = date(value)?;
            (one.clone(), one)
        }
    };
    (from.is_some() || to.is_some()).then_some((from, to))
}

/// Matches `value` against a DICOM pattern: `*` any run, `?` one character; case is
/// significant except for person names (`fold`).
fn wildcard(pattern: &str, value: &str, fold: bool) -> bool {
    let (pattern, value) = if fold {
        (pattern.to_lowercase(), value.to_lowercase())
    } else {
        (pattern.to_string(), value.to_string())
    };
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Query {
    /// Whether one instance's data set matches the instance-level parts of the query (the
    /// patient and `ModalitiesInStudy` are the caller's).
    pub fn matches(&self, metadata: &Value) -> bool {
        let in_list = |list: &[String], tag: &str| {
            list.is_empty() || text(metadata, tag).is_some_and(|v| list.iter().any(|l| l == v))
        };
        if !in_list(&self.study_uids, "0020000D")
            || !in_list(&self.series_uids, "0020000E")
            || !in_list(&self.sop_uids, "00080018")
        {
            return false;
        }
        if let Some(accession) = &self.accession_number {
            if !text(metadata, "00080050").is_some_and(|v| wildcard(accession, v, false)) {
                return false;
            }
        }
        if let Some(modality) = &self.modality {
            if text(metadata, "00080060") != Some(modality.as_str()) {
                return false;
            }
        }
        if let Some(name) = &self.patient_name {
            let stored = metadata["00100010"]["Value"][0]["Alphabetic"]
                .as_str()
                .unwrap_or("");
            if !wildcard(name, stored, true) {
                return false;
            }
        }
        if let Some((from, to)) = &self.study_date {
            let Some(date) = text(metadata, "00080020") else {
                return false;
            };
            if from.as_deref().is_some_and(|f| date < f) || to.as_deref().is_some_and(|t| date > t)
            {
                return false;
            }
        }
        true
    }
}

/// One instance as a search sees it: its data set, with the patient as the archive files
/// it (PatientID the MRN, IssuerOfPatientID its issuer's), and its retrieve URL's base.
#[derive(Debug, Clone)]
pub struct Found {
    pub metadata: Value,
    /// The study's URL (`.../studies/{uid}`).
    pub study_url: String,
}

/// Attributes answered at each level (PS3.18 Table 10.6.3-3 to -5, and a few more a viewer
/// shows).
const STUDY_TAGS: &[&str] = &[
    "00080005", // SpecificCharacterSet
    "00080020", // StudyDate
    "00080030", // StudyTime
    "00080050", // AccessionNumber
    "00080090", // ReferringPhysicianName
    "00081030", // StudyDescription
    "00100010", // PatientName
    "00100020", // PatientID
    "00100021", // IssuerOfPatientID
    "00100030", // PatientBirthDate
    "00100040", // PatientSex
    "0020000D", // StudyInstanceUID
    "00200010", // StudyID
];
const SERIES_TAGS: &[&str] = &[
    "00080060", // Modality
    "0008103E", // SeriesDescription
    "00180015", // BodyPartExamined
    "0020000E", // SeriesInstanceUID
    "00200011", // SeriesNumber
    "00400244", // PerformedProcedureStepStartDate
    "00400245", // PerformedProcedureStepStartTime
];
const INSTANCE_TAGS: &[&str] = &[
    "00080016", // SOPClassUID
    "00080018", // SOPInstanceUID
    "00083002", // AvailableTransferSyntaxUID
    "00185101", // ViewPosition
    "00200013", // InstanceNumber
    "00280008", // NumberOfFrames
    "00280010", // Rows
    "00280011", // Columns
    "00280100", // BitsAllocated
];

fn pick(metadata: &Value, tags: &[&str], into: &mut Map<String, Value>) {
    for tag in tags {
        if let Some(element) = metadata.get(*tag) {
            into.insert((*tag).to_string(), element.clone());
        }
    }
}

fn ui(value: &str) -> Value {
    json!({ "vr": "UI", "Value": [value] })
}

/// The answer of a search at `level` over the matching instances (of studies whose every
/// visible instance is in `all`, for the study's counts and modalities), newest study first,
/// then by UID; paged.
pub fn answer(level: Level, query: &Query, all: &[Found]) -> Vec<Value> {
    // Per study: its instances (for counts and modalities in study).
    let mut studies: BTreeMap<&str, Vec<&Found>> = BTreeMap::new();
    for found in all {
        studies
            .entry(text(&found.metadata, "0020000D").unwrap_or(""))
            .or_default()
            .push(found);
    }
    let modalities = |study: &str| -> Vec<String> {
        let mut m: Vec<String> = studies
            .get(study)
            .into_iter()
            .flatten()
            .filter_map(|f| text(&f.metadata, "00080060").map(str::to_string))
            .collect();
        m.sort();
        m.dedup();
        m
    };
    let matching: Vec<&Found> = all
        .iter()
        .filter(|f| query.matches(&f.metadata))
        .filter(|f| {
            query.modalities_in_study.is_empty() || {
                let have = modalities(text(&f.metadata, "0020000D").unwrap_or(""));
                query.modalities_in_study.iter().any(|m| have.contains(m))
            }
        })
        .collect();
    let mut items: Vec<(String, String, Value)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for found in &matching {
        let meta = &found.metadata;
        let study = text(meta, "0020000D").unwrap_or("").to_string();
        let series = text(meta, "0020000E").unwrap_or("").to_string();
        let sop = text(meta, "00080018").unwrap_or("").to_string();
        let key = match level {
            Level::Study => study.clone(),
            Level::Series => format!("{study}/{series}"),
            Level::Instance => format!("{study}/{series}/{sop}"),
        };
        if !seen.insert(key) {
            continue;
        }
        let mut item = Map::new();
        pick(meta, STUDY_TAGS, &mut item);
        let in_study = studies
            .get(study.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        match level {
            Level::Study => {
                let series_count = in_study
                    .iter()
                    .filter_map(|f| text(&f.metadata, "0020000E"))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                item.insert(
                    "00080061".into(),
                    json!({ "vr": "CS", "Value": modalities(&study) }),
                );
                item.insert(
                    "00201206".into(),
                    json!({ "vr": "IS", "Value": [series_count] }),
                );
                item.insert(
                    "00201208".into(),
                    json!({ "vr": "IS", "Value": [in_study.len()] }),
                );
                item.insert(
                    "00081190".into(),
                    json!({ "vr": "UR", "Value": [found.study_url] }),
                );
            }
            Level::Series => {
                pick(meta, SERIES_TAGS, &mut item);
                let count = in_study
                    .iter()
                    .filter(|f| text(&f.metadata, "0020000E") == Some(series.as_str()))
                    .count();
                item.insert("00201209".into(), json!({ "vr": "IS", "Value": [count] }));
                item.insert(
                    "00081190".into(),
                    json!({ "vr": "UR", "Value": [format!("{}/series/{series}", found.study_url)] }),
                );
            }
            Level::Instance => {
                pick(meta, SERIES_TAGS, &mut item);
                pick(meta, INSTANCE_TAGS, &mut item);
                item.insert(
                    "00081190".into(),
                    json!({ "vr": "UR", "Value": [format!(
                        "{}/series/{series}/instances/{sop}", found.study_url
                    )] }),
                );
            }
        }
        item.insert(
            "00080056".into(),
            json!({ "vr": "CS", "Value": ["ONLINE"] }),
        );
        if !item.contains_key("0020000D") {
            item.insert("0020000D".into(), ui(&study));
        }
        let date = text(meta, "00080020").unwrap_or("").to_string();
        items.push((date, format!("{study}/{series}/{sop}"), Value::Object(item)));
    }
    items.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    items
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|(_, _, item)| item)
        .collect()
}

// ------------------------------------------------------------------------------------------
// The search, as the route answers it.

type Params = Vec<(String, String)>;

/// A QIDO-RS route at `level`, within the study and series its path names.
pub(super) fn qido(level: Level) -> MethodRouter<AppState> {
    get(
        move |State(state): State<AppState>,
              principal: Principal,
              headers: HeaderMap,
              Path(uids): Path<Uids>,
              extract::Query(params): extract::Query<Params>| async move {
            search(&state, &principal, &headers, level, params, uids).await
        },
    )
}

/// The archive's patient of a search's `PatientID` (under `IssuerOfPatientID`): `Ok(None)`
/// when the search names none; `Ok(Some(None))` when it names one the caller cannot see
/// or who does not exist (the search then finds nothing).
async fn searched_patient(
    state: &AppState,
    principal: &Principal,
    query: &Query,
) -> AppResult<Option<Option<PatientId>>> {
    let Some(patient_id) = &query.patient_id else {
        return Ok(None);
    };
    let found = match state
        .config
        .patients
        .mrn_of_dicom(patient_id, query.issuer_of_patient_id.as_deref())
    {
        Ok(mrn) => state.db.patient_by_mrn(&mrn).await?,
        Err(_) => None,
    };
    Ok(Some(found.map(|p| p.id).filter(|id| {
        decide(
            principal,
            Action::LookupPatient,
            Some(&Resource::patient(*id)),
        )
        .is_allow()
    })))
}

async fn search(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    level: Level,
    params: Params,
    uids: Uids,
) -> AppResult<Response> {
    authorize(&state.db, principal, Action::Search, None).await?;
    let mut query = Query::parse(&params).map_err(AppError::invalid)?;
    if let Some(study) = uids.study {
        query.study_uids = vec![study];
    }
    if let Some(series) = uids.series {
        query.series_uids = vec![series];
    }
    let patient = searched_patient(state, principal, &query).await?;
    let (visible, _) = match &patient {
        Some(None) => (Vec::new(), 0),
        Some(Some(patient)) => visible_instances(state, principal, Some(*patient), None).await?,
        None => match query.study_uids.as_slice() {
            [one] => visible_instances(state, principal, None, Some(one)).await?,
            _ => visible_instances(state, principal, None, None).await?,
        },
    };
    let base = base_url(state, headers);
    let mut patients = Default::default();
    let mut found = Vec::with_capacity(visible.len());
    let mut documents: std::collections::BTreeMap<String, Vec<DocumentId>> = Default::default();
    for (doc, metadata) in visible {
        let metadata = as_filed(state, &mut patients, &doc, metadata).await?;
        let study_uid = text(&metadata, "0020000D").unwrap_or("").to_string();
        if query.matches(&metadata) {
            documents.entry(study_uid.clone()).or_default().push(doc.id);
        }
        found.push(Found {
            study_url: format!("{base}/studies/{study_uid}"),
            metadata,
        });
    }
    let items = answer(level, &query, &found);
    // The documents behind the answered items, for the audit.
    let answered: Vec<DocumentId> = items
        .iter()
        .filter_map(|item| text(item, "0020000D"))
        .flat_map(|s| documents.get(s).cloned().unwrap_or_default())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let what = match level {
        Level::Study => "search studies",
        Level::Series => "search series",
        Level::Instance => "search instances",
    };
    let mut audit = AuditEvent::new(principal, Action::Search)
        .detail(json!({ "dicomweb": what, "documents": answered }));
    if let Some(Some(patient)) = patient {
        audit = audit.patient(patient);
    }
    audit.record(&state.db).await?;
    Ok(dicom_json(StatusCode::OK, Value::Array(items)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(study: &str, series: &str, sop: &str, date: &str, modality: &str) -> Found {
        Found {
            metadata: json!({
                "0020000D": ui(study), "0020000E": ui(series), "00080018": ui(sop),
                "00080020": { "vr": "DA", "Value": [date] },
                "00080060": { "vr": "CS", "Value": [modality] },
                "00080050": { "vr": "SH", "Value": ["RAD7781"] },
                "00100010": { "vr": "PN", "Value": [{ "Alphabetic": "Doe^Jane" }] },
            }),
            study_url: format!("http://x/dicom-web/studies/{study}"),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn uids(items: &[Value], tag: &str) -> Vec<String> {
        items
            .iter()
            .map(|i| text(i, tag).unwrap().to_string())
            .collect()
    }

    #[test]
    fn studies_are_grouped_counted_and_filtered_by_date_range_and_modality() {
        let all = [
            instance("1.1", "1.1.1", "1.1.1.1", "20190312", "DX"),
            instance("1.1", "1.1.2", "1.1.2.1", "20190312", "CR"),
            instance("1.2", "1.2.1", "1.2.1.1", "20040826", "CR"),
        ];
        let q = Query::parse(&params(&[])).unwrap();
        let studies = answer(Level::Study, &q, &all);
        assert_eq!(uids(&studies, "0020000D"), ["1.1", "1.2"], "newest first");
        assert_eq!(studies[0]["00080061"]["Value"], json!(["CR", "DX"]));
        assert_eq!(studies[0]["00201206"]["Value"], json!([2]));
        assert_eq!(studies[0]["00201208"]["Value"], json!([2]));

        let q = Query::parse(&params(&[("StudyDate", "20040101-20041231")])).unwrap();
        assert_eq!(uids(&answer(Level::Study, &q, &all), "0020000D"), ["1.2"]);
        let q = Query::parse(&params(&[("StudyDate", "-20031231")])).unwrap();
        assert!(answer(Level::Study, &q, &all).is_empty());
        let q = Query::parse(&params(&[("00080020", "20190312-")])).unwrap();
        assert_eq!(uids(&answer(Level::Study, &q, &all), "0020000D"), ["1.1"]);

        // A study with a DX in it is found whole; the series search narrows to the DX.
        let q = Query::parse(&params(&[("ModalitiesInStudy", "DX")])).unwrap();
        assert_eq!(uids(&answer(Level::Study, &q, &all), "0020000D"), ["1.1"]);
        let q = Query::parse(&params(&[("Modality", "DX")])).unwrap();
        assert_eq!(
            uids(&answer(Level::Series, &q, &all), "0020000E"),
            ["1.1.1"]
        );

        let q = Query::parse(&params(&[("limit", "1"), ("offset", "1")])).unwrap();
        assert_eq!(
            uids(&answer(Level::Instance, &q, &all), "00080018"),
            ["1.1.2.1"]
        );
        let q = Query::parse(&params(&[
            ("PatientName", "doe*"),
            ("AccessionNumber", "RAD*"),
        ]))
        .unwrap();
        assert_eq!(answer(Level::Instance, &q, &all).len(), 3);
        let q = Query::parse(&params(&[("PatientName", "Roe*")])).unwrap();
        assert!(answer(Level::Instance, &q, &all).is_empty());
    }

    #[test]
    fn bad_parameters_are_named_without_their_values() {
        let error = Query::parse(&params(&[("StudyDate", "2019-03-12")])).unwrap_err();
        assert!(error.starts_with("StudyDate must be"), "{error}");
        let error = Query::parse(&params(&[("PatientBirthDate", "19500201")])).unwrap_err();
        assert!(
            error.contains("PatientBirthDate is not supported"),
            "{error}"
        );
        assert!(!error.contains("19500201"));
        assert!(Query::parse(&params(&[("limit", "0")])).is_err());
    }
}
