//! `/api/admin/properties/{id}/shared-links`: links that open one dashboard read-only.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::properties::property_id;
use crate::api::{AdminAuth, ApiError, AppState};
use crate::services::SharedLinkRecord;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: Option<String>,
}

/// A link as the API shows it: with the absolute URL that opens the shared dashboard.
fn view(req: &HttpRequest, domain: &str, link: &SharedLinkRecord) -> Value {
    let info = req.connection_info();
    json!({
        "id": link.id,
        "name": link.name,
        "token": link.token,
        "url": format!("{}://{}/share/{domain}?auth={}", info.scheme(), info.host(), link.token),
        "created_at": link.created_at,
    })
}

async fn domain_of(state: &AppState, id: &str) -> Result<String, ApiError> {
    state
        .properties
        .by_id(id)
        .await?
        .map(|p| p.domain.clone())
        .ok_or_else(|| ApiError::not_found("property_not_found", "property is not registered"))
}

/// `POST`: `{"name": "Team"}` (optional) → `201` with the link and its URL.
pub async fn create(
    _: AdminAuth,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let property = property_id(&id)?;
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?
    };
    let domain = domain_of(&state, &id).await?;
    let link = state
        .properties
        .create_shared_link(property, body.name.as_deref())
        .await?;
    Ok(HttpResponse::Created().json(view(&req, &domain, &link)))
}

/// `GET`: the live links, oldest first.
pub async fn list(
    _: AdminAuth,
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let property = property_id(&id)?;
    let links = state.properties.shared_links(property).await?;
    let domain = domain_of(&state, &id).await?;
    let links: Vec<Value> = links.iter().map(|l| view(&req, &domain, l)).collect();
    Ok(HttpResponse::Ok().json(json!({ "shared_links": links })))
}

/// `DELETE …/{link_id}`: revokes the link → `204`; `404 shared_link_not_found`.
pub async fn revoke(
    _: AdminAuth,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, link_id) = path.into_inner();
    let link_id = uuid::Uuid::parse_str(&link_id)
        .map_err(|_| ApiError::not_found("shared_link_not_found", "no such shared link"))?;
    state
        .properties
        .revoke_shared_link(property_id(&id)?, link_id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
