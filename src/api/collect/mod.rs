//! Collection endpoints, one adapter per wire protocol. Each adapter only translates its protocol
//! into a [`HitRequest`](crate::domain::HitRequest) and calls the shared
//! [`Collector`](crate::services::Collector); what is shared between adapters lives here.

pub mod ga4;
pub mod plausible;
pub mod tracker;
pub mod umami;

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use ipnet::IpNet;

use super::ApiError;
use crate::services::Client;

/// Largest body a browser hit may have.
pub const MAX_BODY: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let options = || web::method(actix_web::http::Method::OPTIONS).to(preflight);
    cfg.service(
        web::resource("/api/event")
            .wrap(cors())
            .route(web::post().to(plausible::event))
            .route(options()),
    )
    .service(
        web::resource("/api/send")
            .wrap(cors())
            .route(web::post().to(umami::send))
            .route(options()),
    )
    .service(
        web::resource("/g/collect")
            .wrap(cors())
            .route(web::get().to(ga4::gtag_collect))
            .route(web::post().to(ga4::gtag_collect))
            .route(options()),
    )
    .route("/mp/collect", web::post().to(ga4::mp_collect))
    .route("/debug/mp/collect", web::post().to(ga4::mp_debug))
    .route("/js/footfall.js", web::get().to(tracker::script));
}

/// Browser trackers post from any origin, without credentials.
fn cors() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .add((header::ACCESS_CONTROL_EXPOSE_HEADERS, "Retry-After"))
}

async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "Content-Type"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}

/// Custom props as every protocol sends them: an object of scalars, each turned into text (null
/// values are dropped). Nested values are refused with `invalid_props`.
pub fn scalar_props(
    obj: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(String, String)>, ApiError> {
    use serde_json::Value;
    obj.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            _ => Err(ApiError::bad_request(
                "invalid_props",
                format!("prop `{k}` must be a string, number or boolean"),
            )),
        })
        .collect()
}

/// Reads the whole body, refusing more than `limit` bytes with `413` before reading it all.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => ApiError::payload_too_large(limit),
            e => ApiError::bad_request("invalid_body", e.to_string()),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The client's address and user agent. `X-Forwarded-For` is believed only when the connection
/// comes from a trusted proxy; then the client is the right-most address that is not itself a
/// trusted proxy.
pub fn client(req: &HttpRequest, trusted: &[IpNet]) -> Client {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = req.peer_addr().map(|a| a.ip());
    let ip = match peer {
        Some(peer) if is_trusted(&peer) => req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .or(Some(peer)),
        other => other,
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Client { ip, user_agent }
}
