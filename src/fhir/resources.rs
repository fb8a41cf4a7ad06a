//! The archive's records as FHIR R4 resources (US Core shapes), the search parameters they
//! answer, and the CapabilityStatement that says so.

use chrono::NaiveDate;
use serde_json::{json, Value};

use crate::config::Config;
use crate::domain::{DocumentStatus, Mrn};
use crate::store::documents::Document;
use crate::store::patients::Patient;

/// The code system of the archive's document types (`DocumentReference.type`), beside the
/// LOINC code `fhir.type_codes` maps a type to.
pub const TYPE_SYSTEM: &str = "urn:chartvault:document-type";
/// The code system of the archive's categories (`DocumentReference.category`), beside US
/// Core's `clinical-note`.
pub const CATEGORY_SYSTEM: &str = "urn:chartvault:category";

const US_CORE_CATEGORY: &str =
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category";
const LOINC: &str = "http://loinc.org";

/// The identifier system of an MRN's issuer (see [`crate::config::PatientsConfig::fhir_system`]).
pub fn mrn_system(config: &Config, mrn: &Mrn) -> String {
    config.patients.fhir_system(mrn)
}

/// The MRN a token names (see [`crate::config::PatientsConfig::mrn_of_fhir_token`]).
pub fn mrn_of_token(config: &Config, token: &str) -> Option<Mrn> {
    config.patients.mrn_of_fhir_token(token)
}

/// A Patient.
pub fn patient(config: &Config, patient: &Patient) -> Value {
    let (given, family) = match patient.name.trim().rsplit_once(' ') {
        Some((given, family)) => (given.split_whitespace().collect::<Vec<_>>(), family),
        None => (Vec::new(), patient.name.trim()),
    };
    let mut resource = json!({
        "resourceType": "Patient",
        "id": patient.id.to_string(),
        "identifier": [{
            "use": "usual",
            "type": { "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                "code": "MR",
                "display": "Medical record number",
            }] },
            "system": mrn_system(config, &patient.mrn),
            "value": patient.mrn.as_str(),
        }],
        "name": [{ "text": patient.name, "family": family, "given": given }],
    });
    if let Some(birth) = patient.birth_date {
        resource["birthDate"] = json!(birth.to_string());
    }
    resource
}

/// A document's type as a CodeableConcept: the LOINC code it maps to (if any) and the
/// archive's own.
fn document_type(config: &Config, doc: &Document) -> Value {
    let mut coding = Vec::new();
    if let Some(loinc) = config.fhir.type_codes.get(&doc.document_type) {
        coding.push(json!({ "system": LOINC, "code": loinc }));
    }
    coding.push(json!({ "system": TYPE_SYSTEM, "code": doc.document_type }));
    json!({ "coding": coding, "text": doc.document_type })
}

/// A DocumentReference, its content the original (a Binary) and the OCR text.
pub fn document_reference(config: &Config, base: &str, doc: &Document, patient: &Patient) -> Value {
    let status = match doc.status {
        DocumentStatus::EnteredInError => "entered-in-error",
        _ => "current",
    };
    // Its pages still being read: what it says may not be searchable yet.
    let doc_status = match doc.status {
        DocumentStatus::Accepted | DocumentStatus::Processing => "preliminary",
        _ => "final",
    };
    let mut resource = json!({
        "resourceType": "DocumentReference",
        "id": doc.id.to_string(),
        "identifier": [{ "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", doc.id) }],
        "status": status,
        "docStatus": doc_status,
        "type": document_type(config, doc),
        "category": [
            { "coding": [{ "system": US_CORE_CATEGORY, "code": "clinical-note", "display": "Clinical Note" }] },
            { "coding": [{ "system": CATEGORY_SYSTEM, "code": doc.category.as_str() }] },
        ],
        "subject": {
            "reference": format!("Patient/{}", patient.id),
            "identifier": { "system": mrn_system(config, &patient.mrn), "value": patient.mrn.as_str() },
        },
        "date": doc.created_at,
        "content": [
            { "attachment": {
                "contentType": doc.content_type,
                "size": doc.size_bytes,
                "url": format!("{base}/Binary/{}", doc.id),
                "title": format!("Scanned {} ({} pages)", doc.document_type, doc.page_count),
                "creation": doc.created_at,
            } },
            { "attachment": {
                "contentType": "text/plain",
                "url": format!("{base}/Binary/{}-text", doc.id),
                "title": "Recognised text (OCR)",
            } },
        ],
    });
    // FHIR's hash: base64 of the SHA-1 (not recorded yet for an older document until the
    // service filled it in).
    if let Some(sha1) = doc
        .sha1
        .as_deref()
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
    {
        use base64::Engine;
        resource["content"][0]["attachment"]["hash"] =
            json!(base64::engine::general_purpose::STANDARD.encode(sha1));
    }
    let mut context = serde_json::Map::new();
    if let Some(day) = doc.service_date {
        context.insert(
            "period".into(),
            json!({ "start": day.to_string(), "end": day.to_string() }),
        );
    }
    if let Some(visit) = &doc.encounter {
        context.insert(
            "encounter".into(),
            json!([{ "identifier": { "value": visit }, "display": format!("Visit {visit}") }]),
        );
    }
    if !context.is_empty() {
        resource["context"] = Value::Object(context);
    }
    if let Some(name) = &config.fhir.custodian {
        resource["custodian"] = json!({ "display": name });
    }
    if let Some(old) = doc.supersedes {
        resource["relatesTo"] = json!([{
            "code": "replaces",
            "target": { "reference": format!("DocumentReference/{old}") },
        }]);
    }
    resource
}

/// A `searchset` Bundle with its `self` and `next`/`previous` links (`(total, offset,
/// count)`: the matches, where this page starts, its size).
pub fn searchset(
    url: &str,
    params: &[(String, String)],
    (total, offset, count): (usize, usize, usize),
    resources: Vec<Value>,
) -> Value {
    let link = |offset: usize| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in params
            .iter()
            .filter(|(k, _)| k != "_offset" && k != "_count")
        {
            query.append_pair(name, value);
        }
        query.append_pair("_count", &count.to_string());
        query.append_pair("_offset", &offset.to_string());
        format!("{url}?{}", query.finish())
    };
    let mut links = vec![json!({ "relation": "self", "url": link(offset) })];
    if offset + count < total {
        links.push(json!({ "relation": "next", "url": link(offset + count) }));
    }
    if offset > 0 {
        links.push(json!({ "relation": "previous", "url": link(offset.saturating_sub(count)) }));
    }
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let full_url = format!(
                "{base}/{}/{}",
                resource["resourceType"].as_str().unwrap_or(""),
                resource["id"].as_str().unwrap_or("")
            );
            json!({ "fullUrl": full_url, "resource": resource, "search": { "mode": "match" } })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": entries,
    })
}

/// Who a new DocumentReference is about.
#[derive(Debug)]
pub enum Subject {
    /// `Patient/<id>`.
    Id(String),
    /// `system|value` of `subject.identifier`.
    Identifier(String),
}

/// A DocumentReference to create, as read from the request.
#[derive(Debug)]
pub struct NewDocumentReference {
    pub subject: Subject,
    pub document_type: String,
    pub category: crate::domain::Category,
    pub service_date: Option<NaiveDate>,
    pub encounter: Option<String>,
    pub data: Vec<u8>,
}

impl NewDocumentReference {
    /// Reads the fields a new document needs; the error names the element, never a value.
    pub fn read(config: &Config, resource: &Value) -> Result<NewDocumentReference, String> {
        if resource["resourceType"] != "DocumentReference" {
            return Err("resourceType must be DocumentReference".into());
        }
        let subject = &resource["subject"];
        let subject = if let Some(reference) = subject["reference"].as_str() {
            Subject::Id(
                reference
                    .strip_prefix("Patient/")
                    .ok_or("subject.reference must be Patient/<id>")?
                    .to_string(),
            )
        } else if let Some(value) = subject["identifier"]["value"].as_str() {
            let system = subject["identifier"]["system"].as_str().unwrap_or("");
            Subject::Identifier(format!("{system}|{value}"))
        } else {
            return Err("subject needs a reference (Patient/<id>) or an identifier".into());
        };
        let codings = resource["type"]["coding"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let from_coding = codings.iter().find_map(|coding| {
            let code = coding["code"].as_str()?;
            match coding["system"].as_str() {
                Some(TYPE_SYSTEM) => Some(code.to_string()),
                Some(LOINC) => config
                    .fhir
                    .type_codes
                    .iter()
                    .find(|(_, loinc)| loinc.as_str() == code)
                    .map(|(ours, _)| ours.clone()),
                _ => None,
            }
        });
        let raw_type = from_coding
            .or_else(|| resource["type"]["text"].as_str().map(str::to_string))
            .ok_or(
                "type needs a coding of urn:chartvault:document-type, a mapped LOINC code, or text",
            )?;
        let document_type = crate::domain::parse_slug("type", &raw_type)?;
        let category = resource["category"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["coding"].as_array().cloned().unwrap_or_default())
            .find(|coding| coding["system"] == CATEGORY_SYSTEM)
            .and_then(|coding| coding["code"].as_str().map(str::to_string));
        let category = match category {
            Some(raw) => crate::domain::Category::parse(&raw)?,
            None => crate::domain::Category::general(),
        };
        let service_date = match resource["context"]["period"]["start"].as_str() {
            Some(start) => Some(
                start
                    .get(..10)
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .ok_or("context.period.start must be a date (YYYY-MM-DD)")?,
            ),
            None => None,
        };
        let encounter = resource["context"]["encounter"][0]["identifier"]["value"]
            .as_str()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty());
        if encounter.as_ref().is_some_and(|e| e.len() > 64) {
            return Err("context.encounter's identifier must be at most 64 characters".into());
        }
        let attachment = &resource["content"][0]["attachment"];
        let data = attachment["data"]
            .as_str()
            .ok_or("content[0].attachment.data (base64) is required: the original, inline")?;
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| "content[0].attachment.data is not base64")?;
        if data.is_empty() {
            return Err("content[0].attachment.data is empty".into());
        }
        Ok(NewDocumentReference {
            subject,
            document_type,
            category,
            service_date,
            encounter,
            data,
        })
    }
}

/// A token parameter's alternatives (`a,b`), each `(system, code)`.
fn tokens(raw: &str) -> Vec<(Option<String>, String)> {
    raw.split(',')
        .map(|token| match token.split_once('|') {
            Some((system, code)) => (
                Some(system.to_string()).filter(|s| !s.is_empty()),
                code.to_string(),
            ),
            None => (None, token.to_string()),
        })
        .collect()
}

/// The parameters of a DocumentReference search besides the patient: `_id`, `category`,
/// `type`, `status`, `date` (DocumentReference.date, when it was archived) and `period`
/// (the service date), each `date`/`period` repeatable with prefixes.
#[derive(Debug, Default)]
pub struct DocumentFilter {
    pub id: Option<Vec<String>>,
    category: Vec<Vec<(Option<String>, String)>>,
    document_type: Vec<Vec<(Option<String>, String)>>,
    status: Option<Vec<String>>,
    date: Vec<DateBound>,
    period: Vec<DateBound>,
}

/// Parameters a search may carry besides those it filters on.
const RESULT_PARAMETERS: [&str; 9] = [
    "_content",
    "_count",
    "_offset",
    "patient",
    "subject",
    "patient.identifier",
    "subject.identifier",
    "_format",
    "_total",
];

impl DocumentFilter {
    pub fn parse(params: &[(String, String)]) -> Result<DocumentFilter, String> {
        let mut filter = DocumentFilter::default();
        for (name, value) in params {
            match name.as_str() {
                "_id" => filter
                    .id
                    .get_or_insert_with(Vec::new)
                    .extend(value.split(',').map(str::to_string)),
                "category" => filter.category.push(tokens(value)),
                "type" => filter.document_type.push(tokens(value)),
                "status" => {
                    let statuses: Vec<String> = value.split(',').map(str::to_string).collect();
                    if let Some(bad) = statuses.iter().find(|s| {
                        !["current", "superseded", "entered-in-error"].contains(&s.as_str())
                    }) {
                        let _ = bad;
                        return Err("status is current, superseded or entered-in-error".to_string());
                    }
                    filter.status = Some(statuses);
                }
                "date" => filter.date.push(DateBound::parse(value)?),
                "period" => filter.period.push(DateBound::parse(value)?),
                other if RESULT_PARAMETERS.contains(&other) => {}
                other => {
                    return Err(format!(
                        "the search parameter {other} is not supported (see /fhir/metadata)"
                    ))
                }
            }
        }
        Ok(filter)
    }

    /// Whether a document matches every parameter.
    pub fn matches(&self, config: &Config, doc: &Document) -> bool {
        if let Some(ids) = &self.id {
            if !ids.iter().any(|id| id.trim() == doc.id.to_string()) {
                return false;
            }
        }
        let category_ok = |alternatives: &Vec<(Option<String>, String)>| {
            alternatives
                .iter()
                .any(|(system, code)| match system.as_deref() {
                    Some(US_CORE_CATEGORY) => code == "clinical-note",
                    Some(CATEGORY_SYSTEM) => code.eq_ignore_ascii_case(doc.category.as_str()),
                    Some(_) => false,
                    None => {
                        code == "clinical-note" || code.eq_ignore_ascii_case(doc.category.as_str())
                    }
                })
        };
        if !self.category.iter().all(category_ok) {
            return false;
        }
        let loinc = config.fhir.type_codes.get(&doc.document_type);
        let type_ok = |alternatives: &Vec<(Option<String>, String)>| {
            alternatives
                .iter()
                .any(|(system, code)| match system.as_deref() {
                    Some(LOINC) => loinc.is_some_and(|l| l == code),
                    Some(TYPE_SYSTEM) => code.eq_ignore_ascii_case(&doc.document_type),
                    Some(_) => false,
                    None => {
                        code.eq_ignore_ascii_case(&doc.document_type)
                            || loinc.is_some_and(|l| l == code)
                    }
                })
        };
        if !self.document_type.iter().all(type_ok) {
            return false;
        }
        if let Some(statuses) = &self.status {
            let status = match doc.status {
                DocumentStatus::EnteredInError => "entered-in-error",
                _ => "current",
            };
            if !statuses.iter().any(|s| s == status) {
                return false;
            }
        }
        let archived: Option<NaiveDate> = chrono::DateTime::parse_from_rfc3339(&doc.created_at)
            .ok()
            .map(|t| t.date_naive());
        if !self
            .date
            .iter()
            .all(|bound| archived.is_some_and(|day| bound.admits(day)))
        {
            return false;
        }
        self.period
            .iter()
            .all(|bound| doc.service_date.is_some_and(|day| bound.admits(day)))
    }
}

/// What the server does: resources, interactions, search parameters; and the SMART
/// endpoints when an OIDC issuer is configured.
pub fn capability_statement(base: &str, oidc_issuer: Option<&str>) -> Value {
    let param = |name: &str, kind: &str, doc: &str| json!({ "name": name, "type": kind, "documentation": doc });
    let mut security = json!({
        "cors": false,
        "service": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
        }] }],
        "description": "Bearer tokens: the archive's API tokens, or OIDC / SMART v2 access \
            tokens (patient/, user/ and system/ scopes on DocumentReference, Binary and Patient).",
    });
    if let Some(issuer) = oidc_issuer {
        security["extension"] = json!([{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{ "url": "authorize", "valueUri": format!("{}/authorize", issuer.trim_end_matches('/')) },
                          { "url": "token", "valueUri": format!("{}/token", issuer.trim_end_matches('/')) }],
        }]);
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-07",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "software": { "name": "chartvault", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "chartvault scanned-record archive", "url": base },
        "rest": [{
            "mode": "server",
            "security": security,
            "resource": [
                {
                    "type": "DocumentReference",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }, { "code": "create" }],
                    "searchParam": [
                        param("_id", "token", "The document's id"),
                        param("patient", "reference", "Patient/<id>; or patient.identifier=<system>|<MRN>"),
                        param("category", "token", "clinical-note (every document) or the archive's category (urn:chartvault:category)"),
                        param("type", "token", "The document type (urn:chartvault:document-type) or its LOINC code"),
                        param("date", "date", "When the document was archived; eq, gt, lt, ge, le"),
                        param("period", "date", "The service date; eq, gt, lt, ge, le"),
                        param("status", "token", "current or entered-in-error"),
                        param("_content", "string", "This archive's addition: words on the scanned pages (OCR text), through its encrypted full-text index, scoped as every read; alone or with the other parameters"),
                        param("_count", "number", "Page size, 1 to 500 (default 50)"),
                    ],
                },
                {
                    "type": "Binary",
                    "interaction": [{ "code": "read" }],
                    "documentation": "Binary/<document id>: the original as scanned; Binary/<document id>-text: its recognised text",
                },
                {
                    "type": "Patient",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        param("_id", "token", "The patient's id"),
                        param("identifier", "token", "<system>|<MRN>"),
                        param("name", "string", "Words of the patient's name"),
                    ],
                },
            ],
        }],
    })
}

/// A date parameter's bound: `ge2020-01-01`, `lt2021`, `eq2020-05` (FHIR prefixes; the
/// value a date, a month or a year, or a date-time whose date is taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DateBound {
    prefix: String,
    /// The first and last day the value covers.
    from: NaiveDate,
    to: NaiveDate,
}

impl DateBound {
    pub(crate) fn parse(raw: &str) -> Result<DateBound, String> {
        let raw = raw.trim();
        let (prefix, value) = match raw.get(..2) {
            Some(p @ ("eq" | "ne" | "gt" | "lt" | "ge" | "le" | "sa" | "eb" | "ap")) => {
                (p, &raw[2..])
            }
            _ => ("eq", raw),
        };
        if matches!(prefix, "sa" | "eb" | "ap" | "ne") {
            return Err(format!("the date prefix {prefix} is not supported"));
        }
        let bad = || {
            "a date parameter is YYYY, YYYY-MM or YYYY-MM-DD[Thh:mm:ss], with an optional prefix (eq, gt, lt, ge, le)".to_string()
        };
        let date_part = value.get(..10.min(value.len())).unwrap_or(value);
        let (from, to) = match date_part.len() {
            4 => {
                let year: i32 = date_part.parse().map_err(|_| bad())?;
                (
                    NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(bad)?,
                    NaiveDate::from_ymd_opt(year, 12, 31).ok_or_else(bad)?,
                )
            }
            7 => {
                let first = NaiveDate::parse_from_str(&format!("{date_part}-01"), "%Y-%m-%d")
                    .map_err(|_| bad())?;
                let next = first
                    .checked_add_months(chrono::Months::new(1))
                    .ok_or_else(bad)?;
                (first, next.pred_opt().ok_or_else(bad)?)
            }
            10 => {
                let day = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|_| bad())?;
                (day, day)
            }
            _ => return Err(bad()),
        };
        Ok(DateBound {
            prefix: prefix.to_string(),
            from,
            to,
        })
    }

    /// Whether a day satisfies the bound.
    pub(crate) fn admits(&self, day: NaiveDate) -> bool {
        match self.prefix.as_str() {
            "gt" => day > self.to,
            "lt" => day < self.from,
            "ge" => day >= self.from,
            "le" => day <= self.to,
            _ => day >= self.from && day <= self.to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_bounds_follow_fhir_prefixes_and_precision() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let year = DateBound::parse("2020").unwrap();
        assert!(year.admits(day("2020-12-31")) && !year.admits(day("2021-01-01")));
        assert!(DateBound::parse("ge2020-02")
            .unwrap()
            .admits(day("2020-02-01")));
        assert!(!DateBound::parse("gt2020-02")
            .unwrap()
            .admits(day("2020-02-29")));
        assert!(DateBound::parse("gt2020-02")
            .unwrap()
            .admits(day("2020-03-01")));
        assert!(DateBound::parse("lt2020-02-10T12:00:00Z")
            .unwrap()
            .admits(day("2020-02-09")));
        assert!(DateBound::parse("le2020-02-10")
            .unwrap()
            .admits(day("2020-02-10")));
        assert!(DateBound::parse("2020-13").is_err());
        assert!(DateBound::parse("ap2020").is_err());
    }
}
