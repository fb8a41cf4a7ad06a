//! The audit and accounting APIs: `POST /audit/query` (auditor), `POST /disclosures`
//! (records, legal, auditor) and `POST /disclosures/accounting` (auditor). MRNs travel in
//! bodies, never URLs; every call is itself audited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Months, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::access::audit::{authorize, AuditEvent};
use crate::access::policy::{Action, Principal};
use crate::domain::{DocumentId, UserId};
use crate::error::{AppError, AppResult};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::store::audit_log::AuditFilter;
use crate::store::disclosures::{Disclosure, DisclosureSource, NewDisclosure};
use crate::store::patients::Patient;
use crate::store::prelude::*;

const MAX_QUERY_LIMIT: i64 = 1000;
const MAX_TEXT: usize = 2000;
/// 45 CFR 164.528(a): an accounting covers the six years before the request.
const ACCOUNTING_MONTHS: u32 = 72;

/// This file's routes in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(query, record_disclosure, accounting))]
pub(super) struct ApiDoc;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQueryBody {
    patient_mrn: Option<String>,
    /// The issuer of `patient_mrn` (default: the archive's default issuer).
    patient_issuer: Option<String>,
    /// A user's name or id.
    user: Option<String>,
    /// `YYYY-MM-DD` or RFC 3339; inclusive.
    from: Option<String>,
    /// `YYYY-MM-DD` or RFC 3339; exclusive.
    to: Option<String>,
    action: Option<String>,
    #[serde(default)]
    break_glass_only: bool,
    limit: Option<i64>,
    after_seq: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditQueryResponse {
    entries: Vec<Value>,
    /// Pass as `after_seq` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after_seq: Option<i64>,
}

fn parse_bound(field: &str, raw: &str) -> AppResult<String> {
    let raw = raw.trim();
    let at = if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        date.and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
    } else {
        DateTime::parse_from_rfc3339(raw)
            .map_err(|_| AppError::invalid(format!("{field} must be YYYY-MM-DD or RFC 3339")))?
            .with_timezone(&Utc)
    };
    Ok(at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `POST /audit/query`: entries oldest first from `after_seq`, decrypted.
#[utoipa::path(post, path = "/audit/query", tag = "audit", request_body = AuditQueryBody,
    responses((status = 200, description = "Audit entries, opened", body = AuditQueryResponse)))]
pub async fn query(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<AuditQueryBody>,
) -> AppResult<Json<AuditQueryResponse>> {
    authorize(&state.db, &principal, Action::QueryAudit, None).await?;
    let body = body.read()?;
    let limit = body.limit.unwrap_or(100);
    if !(1..=MAX_QUERY_LIMIT).contains(&limit) {
        return Err(AppError::invalid(format!(
            "limit must be 1 to {MAX_QUERY_LIMIT}"
        )));
    }
    let mut filter = AuditFilter {
        from: body
            .from
            .as_deref()
            .map(|f| parse_bound("from", f))
            .transpose()?,
        to: body
            .to
            .as_deref()
            .map(|t| parse_bound("to", t))
            .transpose()?,
        action: body.action.clone(),
        break_glass_only: body.break_glass_only,
        after_seq: body.after_seq.unwrap_or(0).max(0),
        limit,
        ..AuditFilter::default()
    };
    // A filter that names nobody matches nothing (never everything).
    let mut matches_nobody = false;
    if let Some(raw) = &body.patient_mrn {
        let mrn = crate::access::lookup::parse_mrn(&state, raw, body.patient_issuer.as_deref())?;
        match state.db.patient_by_mrn(&mrn).await? {
            Some(patient) => filter.patient_id = Some(patient.id),
            None => matches_nobody = true,
        }
    }
    if let Some(user) = &body.user {
        let user = user.trim();
        match user.parse::<UserId>() {
            Ok(id) => filter.user_id = Some(id),
            Err(_) => match state.db.user_by_name(user).await? {
                Some((id, _, _)) => filter.user_id = Some(id),
                None => matches_nobody = true,
            },
        }
    }
    let rows = if matches_nobody {
        Vec::new()
    } else {
        state.db.audit_query(&filter).await?
    };
    let filters: Vec<&str> = [
        ("patient", body.patient_mrn.is_some()),
        ("user", body.user.is_some()),
        ("from", body.from.is_some()),
        ("to", body.to.is_some()),
        ("action", body.action.is_some()),
        ("break_glass_only", body.break_glass_only),
    ]
    .into_iter()
    .filter_map(|(name, used)| used.then_some(name))
    .collect();
    AuditEvent::new(&principal, Action::QueryAudit)
        .patient(filter.patient_id)
        .detail(json!({
            "filters": filters,
            "user_id": filter.user_id.map(|u| u.to_string()),
            "returned": rows.len(),
        }))
        .record(&state.db)
        .await?;
    let next_after_seq = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let entries = rows
        .into_iter()
        .map(|row| {
            let detail = row
                .detail
                .as_deref()
                .and_then(|d| serde_json::from_str::<Value>(d).ok());
            let mut value = serde_json::to_value(row).map_err(AppError::internal)?;
            value["detail"] = detail.unwrap_or(Value::Null);
            Ok(value)
        })
        .collect::<AppResult<Vec<Value>>>()?;
    Ok(Json(AuditQueryResponse {
        entries,
        next_after_seq,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisclosureBody {
    mrn: String,
    issuer: Option<String>,
    /// The date of the disclosure (`YYYY-MM-DD`), not in the future.
    disclosed_at: NaiveDate,
    recipient_name: String,
    recipient_address: Option<String>,
    /// What was disclosed.
    description: String,
    /// The purpose, or a copy or reference of the request / legal basis.
    purpose: String,
    #[serde(default)]
    document_ids: Vec<DocumentId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Recorded {
    id: String,
    patient_id: String,
    disclosed_at: NaiveDate,
    source: &'static str,
}

fn required_text(field: &str, value: &str) -> AppResult<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > MAX_TEXT {
        return Err(AppError::invalid(format!(
            "{field} must be 1 to {MAX_TEXT} characters"
        )));
    }
    Ok(value.to_string())
}

/// `POST /disclosures`: records a release made outside the system.
#[utoipa::path(post, path = "/disclosures", tag = "audit", request_body = DisclosureBody,
    responses((status = 201, description = "Recorded", body = Recorded)))]
pub async fn record_disclosure(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<DisclosureBody>,
) -> AppResult<(StatusCode, Json<Recorded>)> {
    authorize(&state.db, &principal, Action::RecordDisclosure, None).await?;
    let body = body.read()?;
    crate::access::lookup::parse_mrn(&state, &body.mrn, body.issuer.as_deref())?;
    if body.disclosed_at > Utc::now().date_naive() {
        return Err(AppError::invalid("disclosed_at must not be in the future"));
    }
    let recipient_name = required_text("recipient_name", &body.recipient_name)?;
    let recipient_address = body
        .recipient_address
        .as_deref()
        .map(|a| required_text("recipient_address", a))
        .transpose()?;
    let description = required_text("description", &body.description)?;
    let purpose = required_text("purpose", &body.purpose)?;
    if body.document_ids.len() > 1000 {
        return Err(AppError::invalid("at most 1000 document_ids"));
    }
    let patient = crate::access::lookup::patient_by_mrn(
        &state,
        &principal,
        Action::RecordDisclosure,
        (&body.mrn, body.issuer.as_deref()),
        None,
    )
    .await?;
    for id in &body.document_ids {
        let belongs = state
            .db
            .document(*id)
            .await?
            .is_some_and(|doc| doc.patient_id == patient.id);
        if !belongs {
            return Err(AppError::invalid(
                "document_ids must name documents of this patient",
            ));
        }
    }
    let id = state
        .db
        .insert_disclosure(&NewDisclosure {
            patient_id: patient.id,
            disclosed_at: body.disclosed_at,
            document_ids: body.document_ids.clone(),
            recipient_name,
            recipient_address,
            description,
            purpose,
            source: DisclosureSource::Manual,
            recorded_by: principal.user_id,
        })
        .await?;
    AuditEvent::new(&principal, Action::RecordDisclosure)
        .patient(patient.id)
        .detail(json!({ "disclosure": id, "documents": body.document_ids }))
        .record(&state.db)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Recorded {
            id,
            patient_id: patient.id.to_string(),
            disclosed_at: body.disclosed_at,
            source: DisclosureSource::Manual.as_str(),
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountingBody {
    mrn: String,
    issuer: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accounting {
    patient: Patient,
    /// The first day the accounting covers (six years before `period_end`).
    period_start: NaiveDate,
    period_end: NaiveDate,
    disclosures: Vec<Disclosure>,
}

/// `POST /disclosures/accounting {mrn}`: every disclosure of the patient in the last six
/// years, newest first, with date, recipient, address, description and purpose.
#[utoipa::path(post, path = "/disclosures/accounting", tag = "audit", request_body = AccountingBody,
    responses((status = 200, description = "The patient's accounting of disclosures", body = Accounting)))]
pub async fn accounting(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<AccountingBody>,
) -> AppResult<Json<Accounting>> {
    authorize(&state.db, &principal, Action::AccountDisclosures, None).await?;
    let body = body.read()?;
    let patient = crate::access::lookup::patient_by_mrn(
        &state,
        &principal,
        Action::AccountDisclosures,
        (&body.mrn, body.issuer.as_deref()),
        None,
    )
    .await?;
    let period_end = Utc::now().date_naive();
    let period_start = period_end
        .checked_sub_months(Months::new(ACCOUNTING_MONTHS))
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("date arithmetic out of range")))?;
    let disclosures = state
        .db
        .disclosures_of_patient(patient.id, period_start)
        .await?;
    AuditEvent::new(&principal, Action::AccountDisclosures)
        .patient(patient.id)
        .detail(json!({ "disclosures": disclosures.len() }))
        .record(&state.db)
        .await?;
    Ok(Json(Accounting {
        patient,
        period_start,
        period_end,
        disclosures,
    }))
}
