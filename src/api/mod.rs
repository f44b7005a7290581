//! Thin actix-web handlers: parse the request, call a service, map the result to a response.
//! `collect/` holds one adapter per collection protocol, `admin/` the operator's API.

pub mod admin;
mod assets;
pub mod client;
pub mod collect;
pub mod dashboard;
pub mod error;
pub mod graphql;
pub mod health;
mod openapi;
pub mod query;

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use ipnet::IpNet;
use sqlx::PgPool;

pub use error::ApiError;

use crate::config::Role;
use crate::eventlog::EventLog;
use crate::services::{Collector, Properties};

/// What the handlers share. One per process, cloned into every worker.
pub struct AppState {
    pub collector: Collector,
    pub imports: crate::services::Imports,
    pub properties: Properties,
    pub log: Arc<dyn EventLog>,
    /// The admin pool: the admin API, health, imports and exports.
    pub pool: PgPool,
    /// The query pool, with its statement timeout: reports.
    pub query_pool: PgPool,
    /// Report queries, with shared answers.
    pub reports: crate::query::cache::Reports,
    pub admin_token: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// Partitions of the rebuilds this node starts (`FOOTFALL_PROJECTION_PARTITIONS`).
    pub projection_partitions: i32,
}

impl AppState {
    /// Whether `token` is the admin token (compared in constant time).
    pub fn is_admin(&self, token: Option<&str>) -> bool {
        match (self.admin_token.as_deref(), token) {
            (Some(expected), Some(given)) => {
                constant_time_eq(expected.as_bytes(), given.as_bytes())
            }
            _ => false,
        }
    }
}

/// Registers the routes of the node's roles. Health and metrics are always served.
pub fn routes(cfg: &mut web::ServiceConfig, roles: &[Role]) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::bad_request("invalid_query", e.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad_request("invalid_path", e.to_string()).into()),
    )
    .app_data(
        web::JsonConfig::default()
            .limit(16 * 1024)
            .error_handler(|e, _| {
                use actix_web::error::JsonPayloadError;
                match e {
                    JsonPayloadError::OverflowKnownLength { limit, .. }
                    | JsonPayloadError::Overflow { limit } => {
                        ApiError::payload_too_large(limit).into()
                    }
                    JsonPayloadError::ContentType => ApiError::bad_request(
                        "unsupported_content_type",
                        "expected application/json",
                    )
                    .into(),
                    e => ApiError::bad_request("invalid_json", e.to_string()).into(),
                }
            }),
    );
    health::routes(cfg);
    openapi::routes(cfg);
    if roles.contains(&Role::Collect) {
        collect::routes(cfg);
    }
    if roles.contains(&Role::Query) {
        query::routes(cfg);
        graphql::routes(cfg);
        dashboard::routes(cfg);
    }
    if roles.contains(&Role::Admin) {
        admin::routes(cfg);
    }
}

/// The JSON 404 for unknown paths.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("not_found", "no such endpoint"))
}

/// Proof that the request carries `Authorization: Bearer <FOOTFALL_ADMIN_TOKEN>`.
pub struct AdminAuth;

impl FromRequest for AdminAuth {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let admin = req
            .app_data::<web::Data<AppState>>()
            .is_some_and(|s| s.is_admin(bearer(req)));
        ready(if admin {
            Ok(AdminAuth)
        } else {
            Err(ApiError::unauthorized())
        })
    }
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
