//! `GET /api/admin/projections` (status), `POST /api/admin/projections/{name}/rebuild`, and the
//! parked events: `GET …/{name}/parked`, `POST …/{name}/parked/replay`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::api::{AdminAuth, ApiError, AppState};
use crate::projections::generations::{self, RebuildError};
use crate::projections::{by_name, parked, Projection};

pub async fn list(_: AdminAuth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let head = state.log.head().await?.position;
    let projections = generations::status(&state.pool, head).await?;
    Ok(HttpResponse::Ok().json(json!({"projections": projections})))
}

fn projection(name: &str) -> Result<std::sync::Arc<dyn Projection>, ApiError> {
    by_name(name).ok_or_else(|| {
        ApiError::not_found("projection_not_found", format!("no projection `{name}`"))
    })
}

#[derive(serde::Deserialize)]
pub struct ParkedQuery {
    limit: Option<i64>,
}

/// The parked events of the live (and rebuilding) generation, oldest first: `?limit=` (1–1000,
/// default 100).
pub async fn parked(
    _: AdminAuth,
    name: web::Path<String>,
    query: web::Query<ParkedQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let projection = projection(&name)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let events = parked::list(&state.pool, projection.name(), limit).await?;
    Ok(HttpResponse::Ok().json(json!({"projection": *name, "parked": events})))
}

/// Asks the projection's runner to apply its parked events again (after a fix); `202` with how
/// many were asked for. Those that apply leave the parked list.
pub async fn replay_parked(
    _: AdminAuth,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let projection = projection(&name)?;
    let requested = parked::request_replay(&state.pool, projection.name()).await?;
    Ok(HttpResponse::Accepted().json(json!({"projection": *name, "requested": requested})))
}

pub async fn rebuild(
    _: AdminAuth,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let projection = projection(&name)?;
    let generation =
        generations::start_rebuild(&state.pool, &*projection, state.projection_partitions).await?;
    Ok(HttpResponse::Accepted()
        .json(json!({"projection": *name, "generation": generation, "state": "rebuilding"})))
}

impl From<RebuildError> for ApiError {
    fn from(e: RebuildError) -> Self {
        match e {
            RebuildError::AlreadyRunning(_) => ApiError::new(
                actix_web::http::StatusCode::CONFLICT,
                "rebuild_in_progress",
                e.to_string(),
            ),
            RebuildError::Database(e) => e.into(),
        }
    }
}
