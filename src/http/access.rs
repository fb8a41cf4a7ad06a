//! Who may see which patients: care relationships (`records`, `admin`), grants of sensitive
//! categories (`admin`), break-the-glass (a clinician) and its review (`auditor`). MRNs and
//! reasons travel in bodies, never URLs; every call is audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::access::audit::{authorize, AuditEvent};
use crate::access::lookup::patient_by_mrn;
use crate::access::policy::{Action, Principal};
use crate::domain::{Outcome, PatientId, Role, UserId};
use crate::error::{AppError, AppResult};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::store::access::BreakGlassRow;
use crate::store::prelude::*;

/// The access routes' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    add_care,
    end_care,
    grant_category,
    revoke_category,
    break_glass,
    review_queue,
    review
))]
pub(super) struct ApiDoc;

/// Reason codes a break-the-glass request may give.
pub const BREAK_GLASS_REASONS: &[&str] = &[
    "emergency",
    "continuity-of-care",
    "patient-request",
    "public-health",
    "other",
];

async fn user_named(state: &AppState, name: &str) -> AppResult<(UserId, Role)> {
    match state.db.user_by_name(name.trim()).await? {
        Some((id, role, false)) => Ok((id, role)),
        _ => Err(AppError::invalid("user: no active user by that name")),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CareBody {
    user: String,
    mrn: String,
    issuer: Option<String>,
    starts_on: Option<NaiveDate>,
    ends_on: Option<NaiveDate>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CareRelationship {
    id: String,
    user_id: UserId,
    patient_id: PatientId,
    starts_on: NaiveDate,
    ends_on: Option<NaiveDate>,
}

/// `POST /care-relationships {user, mrn, starts_on?, ends_on?}`: the clinician `user` may see
/// the patient from `starts_on` (default today) to `ends_on` (inclusive; default open).
#[utoipa::path(post, path = "/care-relationships", tag = "access", request_body = CareBody,
    responses((status = 201, description = "The relationship", body = CareRelationship)))]
pub async fn add_care(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<CareBody>,
) -> AppResult<super::state::Created<CareRelationship>> {
    authorize(&state.db, &principal, Action::ManageCare, None).await?;
    let body = body.read()?;
    let (user, role) = user_named(&state, &body.user).await?;
    if role != Role::Clinician {
        return Err(AppError::invalid(
            "user: care relationships are for clinicians (other roles are not scoped by patient)",
        ));
    }
    let starts_on = body.starts_on.unwrap_or_else(|| Utc::now().date_naive());
    if body.ends_on.is_some_and(|end| end < starts_on) {
        return Err(AppError::invalid("ends_on must not be before starts_on"));
    }
    let patient = patient_by_mrn(
        &state,
        &principal,
        Action::ManageCare,
        (&body.mrn, body.issuer.as_deref()),
        None,
    )
    .await?
    .id;
    let id = state
        .db
        .insert_care_relationship(user, patient, starts_on, body.ends_on, principal.user_id)
        .await?;
    let detail = serde_json::json!({ "care_relationship": id, "user": user.to_string() });
    AuditEvent::new(&principal, Action::ManageCare)
        .patient(patient)
        .detail(detail)
        .record(&state.db)
        .await?;
    Ok(super::state::Created(
        state.link(&format!("/api/v1/care-relationships/{id}")),
        CareRelationship {
            id,
            user_id: user,
            patient_id: patient,
            starts_on,
            ends_on: body.ends_on,
        },
    ))
}

/// `DELETE /care-relationships/{id}`: ends the relationship; it no longer holds today.
#[utoipa::path(delete, path = "/care-relationships/{id}", tag = "access",
    responses((status = 200, description = "Ended today", body = Ended)))]
pub async fn end_care(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<Ended>> {
    authorize(&state.db, &principal, Action::ManageCare, None).await?;
    let ended = state
        .db
        .end_care_relationship(&id, Utc::now().date_naive(), principal.user_id)
        .await?;
    let outcome = if ended {
        Outcome::Ok
    } else {
        Outcome::NotFound
    };
    let detail = serde_json::json!({ "care_relationship": id, "ended": ended });
    AuditEvent::new(&principal, Action::ManageCare)
        .outcome(outcome)
        .detail(detail)
        .record(&state.db)
        .await?;
    if !ended {
        return Err(AppError::not_found());
    }
    Ok(Json(Ended { id, ended: true }))
}

/// A care relationship ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ended {
    id: String,
    ended: bool,
}

/// A grant of a sensitive category (`revoked` once revoked).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CategoryGrant {
    user_id: UserId,
    category: crate::domain::Category,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    user: String,
    category: String,
}

fn sensitive_category(state: &AppState, raw: &str) -> AppResult<crate::domain::Category> {
    let category = crate::domain::Category::parse(raw).map_err(AppError::invalid)?;
    if !state.sensitive_categories.contains(&category) {
        return Err(AppError::invalid(
            "category: only sensitive categories are granted (see access.sensitive_categories)",
        ));
    }
    Ok(category)
}

/// `POST /category-grants {user, category}`: the user may see documents of that sensitive
/// category (within their patient scope).
#[utoipa::path(post, path = "/category-grants", tag = "access", request_body = GrantBody,
    responses((status = 201, description = "Granted", body = CategoryGrant)))]
pub async fn grant_category(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<GrantBody>,
) -> AppResult<(StatusCode, Json<CategoryGrant>)> {
    authorize(&state.db, &principal, Action::GrantCategory, None).await?;
    let body = body.read()?;
    let category = sensitive_category(&state, &body.category)?;
    let (user, _) = user_named(&state, &body.user).await?;
    state
        .db
        .grant_category(user, &category, principal.user_id)
        .await?;
    let detail =
        serde_json::json!({ "user": user.to_string(), "category": category, "granted": true });
    AuditEvent::new(&principal, Action::GrantCategory)
        .detail(detail)
        .record(&state.db)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CategoryGrant {
            user_id: user,
            category,
            revoked: None,
        }),
    ))
}

/// `DELETE /category-grants {user, category}`.
#[utoipa::path(delete, path = "/category-grants", tag = "access", request_body = GrantBody,
    responses((status = 200, description = "Revoked", body = CategoryGrant)))]
pub async fn revoke_category(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<GrantBody>,
) -> AppResult<Json<CategoryGrant>> {
    authorize(&state.db, &principal, Action::GrantCategory, None).await?;
    let body = body.read()?;
    let category = sensitive_category(&state, &body.category)?;
    let (user, _) = user_named(&state, &body.user).await?;
    let revoked = state.db.revoke_category(user, &category).await?;
    let detail =
        serde_json::json!({ "user": user.to_string(), "category": category, "granted": false });
    let outcome = if revoked {
        Outcome::Ok
    } else {
        Outcome::NotFound
    };
    AuditEvent::new(&principal, Action::GrantCategory)
        .outcome(outcome)
        .detail(detail)
        .record(&state.db)
        .await?;
    if !revoked {
        return Err(AppError::not_found());
    }
    Ok(Json(CategoryGrant {
        user_id: user,
        category,
        revoked: Some(true),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassBody {
    mrn: String,
    issuer: Option<String>,
    reason_code: String,
    reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BreakGlassGrant {
    id: String,
    patient_id: PatientId,
    expires_at: String,
}

/// `POST /break-glass {mrn, reason_code, reason}`: a clinician's time-limited access to a
/// patient off their care list (never to sensitive categories). Every access under it is
/// flagged in the audit and the access waits in the privacy officer's review queue.
#[utoipa::path(post, path = "/break-glass", tag = "access", request_body = BreakGlassBody,
    responses((status = 201, description = "Access to the patient until `expires_at`", body = BreakGlassGrant)))]
pub async fn break_glass(
    State(state): State<AppState>,
    principal: Principal,
    body: ApiJson<BreakGlassBody>,
) -> AppResult<super::state::Created<BreakGlassGrant>> {
    authorize(&state.db, &principal, Action::BreakGlass, None).await?;
    let body = body.read()?;
    let reason_code = body.reason_code.trim().to_ascii_lowercase();
    if !BREAK_GLASS_REASONS.contains(&reason_code.as_str()) {
        return Err(AppError::invalid(format!(
            "reason_code must be one of: {}",
            BREAK_GLASS_REASONS.join(", ")
        )));
    }
    let reason = body.reason.trim();
    if reason.chars().count() < 5 || reason.chars().count() > 1000 {
        return Err(AppError::invalid("reason must be 5 to 1000 characters"));
    }
    let patient = patient_by_mrn(
        &state,
        &principal,
        Action::BreakGlass,
        (&body.mrn, body.issuer.as_deref()),
        None,
    )
    .await?
    .id;
    let minutes = i64::from(state.config.access.break_glass_minutes.max(1));
    let expires_at = Utc::now() + Duration::minutes(minutes);
    let row = state
        .db
        .insert_break_glass(principal.user_id, patient, &reason_code, reason, expires_at)
        .await?;
    let detail = serde_json::json!({
        "break_glass": row.id, "reason_code": reason_code, "expires_at": row.expires_at,
    });
    AuditEvent::new(&principal, Action::BreakGlass)
        .patient(patient)
        .detail(detail)
        .record(&state.db)
        .await?;
    Ok(super::state::Created(
        state.link(&format!("/api/v1/break-glass/{}", row.id)),
        BreakGlassGrant {
            id: row.id,
            patient_id: patient,
            expires_at: row.expires_at,
        },
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReviewQueue {
    accesses: Vec<BreakGlassRow>,
}

/// `GET /break-glass/review`: break-the-glass accesses not reviewed yet, oldest first (the
/// entries made under each are in the audit, flagged with its id).
#[utoipa::path(get, path = "/break-glass/review", tag = "access",
    responses((status = 200, description = "Accesses not reviewed yet, oldest first", body = ReviewQueue)))]
pub async fn review_queue(
    State(state): State<AppState>,
    principal: Principal,
) -> AppResult<Json<ReviewQueue>> {
    authorize(&state.db, &principal, Action::ReviewBreakGlass, None).await?;
    let accesses = state.db.break_glass_accesses(true).await?;
    let ids: Vec<&str> = accesses.iter().map(|a| a.id.as_str()).collect();
    AuditEvent::new(&principal, Action::ReviewBreakGlass)
        .detail(serde_json::json!({ "listed": ids }))
        .record(&state.db)
        .await?;
    Ok(Json(ReviewQueue { accesses }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    outcome: String,
    note: Option<String>,
}

/// `POST /break-glass/{id}/review {outcome: appropriate|inappropriate, note?}`.
#[utoipa::path(post, path = "/break-glass/{id}/review", tag = "access", request_body = ReviewBody,
    responses((status = 200, description = "Reviewed", body = Reviewed)))]
pub async fn review(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: ApiJson<ReviewBody>,
) -> AppResult<Json<Reviewed>> {
    authorize(&state.db, &principal, Action::ReviewBreakGlass, None).await?;
    let body = body.read()?;
    if !matches!(body.outcome.as_str(), "appropriate" | "inappropriate") {
        return Err(AppError::invalid(
            "outcome must be appropriate or inappropriate",
        ));
    }
    if body.note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(AppError::invalid("note must be at most 2000 characters"));
    }
    let reviewed = state
        .db
        .review_break_glass(&id, principal.user_id, &body.outcome, body.note.as_deref())
        .await?;
    let outcome = if reviewed {
        Outcome::Ok
    } else {
        Outcome::NotFound
    };
    let detail = serde_json::json!({ "break_glass": id, "review": body.outcome });
    AuditEvent::new(&principal, Action::ReviewBreakGlass)
        .outcome(outcome)
        .detail(detail)
        .record(&state.db)
        .await?;
    if !reviewed {
        return Err(AppError::not_found());
    }
    Ok(Json(Reviewed {
        id,
        outcome: body.outcome,
    }))
}

/// A break-the-glass access reviewed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Reviewed {
    id: String,
    /// `appropriate` or `inappropriate`.
    outcome: String,
}
