//! GA4 Data API v1beta, wire-compatible with Google's client libraries (proto3 JSON over REST):
//!
//! - `POST /v1beta/properties/{id}:runReport`
//! - `POST /v1beta/properties/{id}:batchRunReports` (up to 5 requests)
//! - `POST /v1beta/properties/{id}:runRealtimeReport`
//! - `GET /v1beta/properties/{id}/metadata`
//!
//! `{id}` is the footfall property id. `Authorization: Bearer` carries the property's read key
//! (Google's clients send an OAuth access token there), one of its shared links or the admin
//! token. Errors use Google's envelope: `{"error": {"code", "message", "status"}}`. The names
//! GA4 reports use are mapped onto the one query model in [`catalog`].

mod catalog;
mod filters;
mod report;
mod request;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::{json, Map, Value};

use super::Site;
use crate::api::client::read;
use crate::api::{bearer, AppState};
use crate::query::engine::EngineError;
use crate::query::QueryError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1beta/properties/{call}", read(web::post().to(call)))
        .route("/v1beta/properties/{id}/metadata", web::get().to(metadata));
}

/// An error in Google's envelope.
#[derive(Debug)]
pub struct GaError {
    status: StatusCode,
    /// `INVALID_ARGUMENT`, `UNAUTHENTICATED`, …
    code: &'static str,
    message: String,
}

impl GaError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request is missing a valid bearer token (the property's read key).",
        )
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
}

impl std::fmt::Display for GaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for GaError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        response.json(json!({"error": {
            "code": self.status.as_u16(),
            "message": self.message,
            "status": self.code,
        }}))
    }
}

impl From<QueryError> for GaError {
    fn from(e: QueryError) -> Self {
        Self::invalid(e.to_string())
    }
}

impl From<sqlx::Error> for GaError {
    fn from(e: sqlx::Error) -> Self {
        let timeout =
            matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("57014"));
        tracing::warn!(cause = %e, "GA4 report refused with 503");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            if timeout {
                "The report took longer than the query timeout; retry later or narrow it."
            } else {
                "The read models are temporarily unavailable; retry later."
            },
        )
    }
}

impl From<EngineError> for GaError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(q) => q.into(),
            EngineError::Database(e) => e.into(),
        }
    }
}

/// The property `id`, if the bearer token opens it: its read key, one of its shared links, or the
/// admin token. Another property's read key is `403 PERMISSION_DENIED`; no token or an unknown one
/// `401 UNAUTHENTICATED`.
async fn authorize(req: &HttpRequest, state: &AppState, id: &str) -> Result<Site, GaError> {
    let token = bearer(req).ok_or_else(GaError::unauthenticated)?;
    if let Some(p) = state.properties.by_id(id).await? {
        if Site::opens(state, token, &p).await? {
            return Ok(Site::new(p));
        }
    }
    if state.is_admin(Some(token)) {
        return Err(GaError::not_found(format!("Property {id} does not exist.")));
    }
    if state.properties.is_read_key(token).await? {
        return Err(GaError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!("The read key does not give access to property {id}."),
        ));
    }
    Err(GaError::unauthenticated())
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, GaError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(GaError::invalid("The request body must be a JSON object.")),
        Err(e) => Err(GaError::invalid(format!("Invalid JSON payload: {e}"))),
    }
}

/// `POST /v1beta/properties/{id}:{method}`.
async fn call(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GaError> {
    let Some((id, method)) = path.rsplit_once(':') else {
        return Err(GaError::not_found("No such method."));
    };
    if !matches!(
        method,
        "runReport" | "batchRunReports" | "runRealtimeReport"
    ) {
        return Err(GaError::not_found(format!(
            "Method {method} is not supported; footfall answers runReport, batchRunReports, \
             runRealtimeReport and getMetadata."
        )));
    }
    let site = authorize(&req, &state, id).await?;
    let body = json_object(&body)?;
    let answer = match method {
        "batchRunReports" => {
            let requests = match body.get("requests") {
                Some(Value::Array(r)) if !r.is_empty() && r.len() <= 5 => r,
                _ => return Err(GaError::invalid("requests must hold 1 to 5 requests.")),
            };
            let mut reports = Vec::with_capacity(requests.len());
            for r in requests {
                let Value::Object(r) = r else {
                    return Err(GaError::invalid("Each request must be an object."));
                };
                reports.push(run_one(&state, &site, r, id, false).await?);
            }
            json!({"reports": reports, "kind": "analyticsData#batchRunReports"})
        }
        m => run_one(&state, &site, &body, id, m == "runRealtimeReport").await?,
    };
    Ok(HttpResponse::Ok().json(answer))
}

async fn run_one(
    state: &AppState,
    site: &Site,
    body: &Map<String, Value>,
    id: &str,
    realtime: bool,
) -> Result<Value, GaError> {
    // A request inside a batch may name its property; it must be the batch's.
    match body.get("property") {
        None | Some(Value::Null) => {}
        Some(Value::String(p)) if p.is_empty() || p.strip_prefix("properties/") == Some(id) => {}
        Some(_) => {
            return Err(GaError::invalid(format!(
                "property must be empty or properties/{id}"
            )))
        }
    }
    let spec = request::parse(body, site, realtime)?;
    report::run(state, site, &spec).await
}

/// `GET /v1beta/properties/{id}/metadata`: every dimension and metric footfall answers.
async fn metadata(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GaError> {
    let id = path.into_inner();
    authorize(&req, &state, &id).await?;
    let dimensions: Vec<Value> = catalog::DIMENSIONS
        .iter()
        .map(|d| {
            json!({"apiName": d.api, "uiName": d.ui, "description": d.description,
                   "category": d.category})
        })
        .collect();
    let metrics: Vec<Value> = catalog::METRICS
        .iter()
        .map(|m| {
            json!({"apiName": m.api, "uiName": m.ui, "description": m.description,
                   "type": m.ty, "category": m.category})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "name": format!("properties/{id}/metadata"),
        "dimensions": dimensions,
        "metrics": metrics,
    })))
}
