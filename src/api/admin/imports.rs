//! `/api/admin/properties/{id}/imports`: history imports over HTTP, for admins without a shell.
//!
//! `POST …/imports?format=combined|common|json&source=<name>` with the log as the body (plain or
//! gzipped) answers `202 {"id", "state", "status_url"}` at once; the import runs on this node.
//! With `format=plausible-csv` the body is a zip of Plausible's CSV export (or one of its CSV
//! files); it is read and checked before the `202`, so a damaged archive is a `400`.
//! `GET …/imports/{import id}` shows its progress and counts; `GET …/imports` lists them.
//! `DELETE …/imports/{import id}` deletes an import of aggregates from the reports.

use std::io::Cursor;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::properties::property_id;
use crate::api::{AdminAuth, ApiError, AppState};
use crate::domain::PropertyId;
use crate::import::access_log::Format;
use crate::services::imports::{decompressed, Archive, Source};
use crate::services::ImportError;

/// The largest log one request may carry; larger ones go through `footfall import`.
pub const MAX_BODY: usize = 512 * 1024 * 1024;

#[derive(Deserialize)]
pub struct ImportParams {
    format: Option<String>,
    source: Option<String>,
}

pub async fn start(
    _: AdminAuth,
    req: HttpRequest,
    id: web::Path<String>,
    params: web::Query<ImportParams>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let format = params.format.as_deref().unwrap_or("combined");
    let property = state
        .properties
        .by_id(&property_id(&id)?.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found("property_not_found", "property is not registered"))?;
    let body = crate::api::collect::read_body(payload, MAX_BODY).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the body must be the log",
        ));
    }
    let name = params.source.as_deref().unwrap_or("upload");
    let status_url = |import: uuid::Uuid| format!("{}/{import}", req.path().trim_end_matches('/'));
    if format == "plausible-csv" {
        let archive = Archive::from_bytes(name, &body)
            .map_err(|e| ApiError::bad_request("invalid_archive", e.to_string()))?;
        let import = state
            .imports
            .begin_aggregates(&property, &archive)
            .await
            .map_err(|e| ApiError::unavailable("unavailable", 5, &e))?;
        let imports = state.imports.clone();
        actix_web::rt::spawn(async move {
            if let Err(e) = imports
                .plausible_csv(import, &property, &archive, |_| {})
                .await
            {
                tracing::warn!(import = %import, error = %e, "import failed");
            }
        });
        return Ok(HttpResponse::Accepted()
            .json(json!({"id": import, "state": "running", "status_url": status_url(import)})));
    }
    let format = Format::parse(format).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_format",
            "format must be combined, common, json or plausible-csv",
        )
    })?;
    let source = decompressed(Cursor::new(&body))
        .and_then(|content| Source::read(name, content))
        .map_err(|e| ApiError::bad_request("invalid_body", format!("cannot read the log: {e}")))?;
    let import = state
        .imports
        .begin(&property, "access_log", &source)
        .await
        .map_err(|e| ApiError::unavailable("unavailable", 5, &e))?;
    let imports = state.imports.clone();
    actix_web::rt::spawn(async move {
        let outcome = match decompressed(Cursor::new(body)) {
            Ok(reader) => {
                imports
                    .access_log(import, &property, format, &source, reader, |_| {})
                    .await
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = outcome {
            tracing::warn!(import = %import, error = %e, "import failed");
        }
    });
    Ok(HttpResponse::Accepted()
        .json(json!({"id": import, "state": "running", "status_url": status_url(import)})))
}

pub async fn status(
    _: AdminAuth,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, import) = path.into_inner();
    let not_found = || ApiError::not_found("import_not_found", "no such import");
    let import = uuid::Uuid::parse_str(&import).map_err(|_| not_found())?;
    let status = state
        .imports
        .status(property_id(&id)?, import)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(status))
}

pub async fn list(
    _: AdminAuth,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let imports = state.imports.list(property_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(json!({ "imports": imports })))
}

/// Deletes an import of aggregates: `200 {"id", "state": "deleted"}` once the deletion is in the
/// log; reports leave the import out once it is projected. Imports of hits (access logs) cannot be
/// deleted (`409 import_not_deletable`), nor can a running import (`409 import_running`).
pub async fn delete(
    _: AdminAuth,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, import) = path.into_inner();
    let property = property_id(&id)?;
    let not_found = || ApiError::not_found("import_not_found", "no such import");
    let import = uuid::Uuid::parse_str(&import).map_err(|_| not_found())?;
    let status = state
        .imports
        .status(property, import)
        .await?
        .ok_or_else(not_found)?;
    if status.kind != "plausible_csv" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "import_not_deletable",
            "only imports of aggregates (plausible-csv) can be deleted",
        ));
    }
    if status.state == "running" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "import_running",
            "the import is still running",
        ));
    }
    state
        .imports
        .delete(PropertyId::new(property), import)
        .await
        .map_err(|e| match e {
            ImportError::Log(e) => e.into(),
            e => ApiError::unavailable("unavailable", 5, &e),
        })?;
    Ok(HttpResponse::Ok().json(json!({"id": import, "state": "deleted"})))
}
