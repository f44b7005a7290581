//! `POST /api/admin/properties` registers a property; `GET` lists them.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::api::{AdminAuth, ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    domain: String,
    #[serde(default = "utc")]
    timezone: String,
    name: Option<String>,
    /// Minutes without a hit that end a visit (default 30).
    session_timeout_minutes: Option<u32>,
}

fn utc() -> String {
    "UTC".into()
}

pub async fn register(
    _: AdminAuth,
    body: web::Json<RegisterBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let property = state
        .properties
        .register(
            &body.domain,
            &body.timezone,
            body.name.as_deref(),
            body.session_timeout_minutes,
        )
        .await?;
    Ok(HttpResponse::Created().json(property))
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// Return properties whose domain sorts after this one.
    after: Option<String>,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

pub async fn list(
    _: AdminAuth,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::check_page_limit(query.limit as usize)?;
    let properties = state
        .properties
        .list(query.after.as_deref(), query.limit)
        .await?;
    let next = (properties.len() == query.limit as usize)
        .then(|| properties.last().map(|p| p.domain.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({"properties": properties, "next_after": next})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostnamesBody {
    hostnames: Vec<String>,
}

/// `PUT /api/admin/properties/{id}/hostnames`: the hostnames besides the domain and its
/// subdomains that may send browser hits (`*.example.com` for all subdomains of example.com).
pub async fn set_hostnames(
    _: AdminAuth,
    id: web::Path<String>,
    body: web::Json<HostnamesBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let property = state
        .properties
        .allow_hostnames(property_id(&id)?, body.into_inner().hostnames)
        .await?;
    Ok(HttpResponse::Ok().json(property))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalsBody {
    goals: Vec<crate::domain::Goal>,
}

/// `PUT /api/admin/properties/{id}/goals`: the property's goals, each `{"event": "Signup"}` or
/// `{"page": "/thanks*"}`. Reports apply them to all hits, recorded before or after.
pub async fn set_goals(
    _: AdminAuth,
    id: web::Path<String>,
    body: web::Json<GoalsBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let property = state
        .properties
        .set_goals(property_id(&id)?, body.into_inner().goals)
        .await?;
    Ok(HttpResponse::Ok().json(property))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelsBody {
    funnels: Vec<crate::domain::Funnel>,
}

/// `PUT /api/admin/properties/{id}/funnels`: the property's funnels, each
/// `{"name": "Checkout", "steps": [{"page": "/cart"}, {"event": "Purchase"}]}` (2 to 8 steps).
pub async fn set_funnels(
    _: AdminAuth,
    id: web::Path<String>,
    body: web::Json<FunnelsBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let funnels = state
        .properties
        .set_funnels(property_id(&id)?, body.into_inner().funnels)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "funnels": funnels })))
}

/// `GET /api/admin/properties/{id}`: the property, with its funnels.
pub async fn get(
    _: AdminAuth,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found("property_not_found", "property is not registered");
    let property = state.properties.by_id(&id).await?.ok_or_else(not_found)?;
    let funnels = state.properties.funnels(property.id).await?;
    let mut body = serde_json::to_value(&*property).map_err(|e| ApiError::internal(&e))?;
    body["funnels"] = json!(funnels);
    Ok(HttpResponse::Ok().json(body))
}

/// A property id from the path; one that is not a UUID names no property.
pub(super) fn property_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id)
        .map_err(|_| ApiError::not_found("property_not_found", "property is not registered"))
}
