//! `GET /api/admin/projections` (status) and `POST /api/admin/projections/{name}/rebuild`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::api::{AdminAuth, ApiError, AppState};
use crate::projections::by_name;
use crate::projections::generations::{self, RebuildError};

pub async fn list(_: AdminAuth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let head = state.log.head().await?.position;
    let projections = generations::status(&state.pool, head).await?;
    Ok(HttpResponse::Ok().json(json!({"projections": projections})))
}

pub async fn rebuild(
    _: AdminAuth,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let projection = by_name(&name).ok_or_else(|| {
        ApiError::not_found("projection_not_found", format!("no projection `{name}`"))
    })?;
    let generation = generations::start_rebuild(&state.pool, &*projection).await?;
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
