//! `/api/admin/properties/{id}/imports`: history imports over HTTP, for admins without a shell.
//!
//! `POST …/imports?format=combined|common|json&source=<name>` with the log as the body (plain or
//! gzipped) answers `202 {"id", "state", "status_url"}` at once; the import runs on this node.
//! `GET …/imports/{import id}` shows its progress and counts; `GET …/imports` lists them.

use std::io::Cursor;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::properties::property_id;
use crate::api::{AdminAuth, ApiError, AppState};
use crate::import::access_log::Format;
use crate::services::imports::{decompressed, Source};

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
    let format =
        Format::parse(params.format.as_deref().unwrap_or("combined")).ok_or_else(|| {
            ApiError::bad_request("invalid_format", "format must be combined, common or json")
        })?;
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
    let status_url = format!("{}/{import}", req.path().trim_end_matches('/'));
    Ok(HttpResponse::Accepted()
        .json(json!({"id": import, "state": "running", "status_url": status_url})))
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
