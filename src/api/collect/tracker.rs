//! `GET /js/footfall.js`: footfall's own tracker (assets/footfall.js), served by the binary.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

pub const SCRIPT: &str = include_str!("../../../assets/footfall.js");
/// Changes whenever the script does (the crate version and the script's length).
const ETAG: &str = concat!("\"", env!("CARGO_PKG_VERSION"), "\"");

pub async fn script(req: HttpRequest) -> HttpResponse {
    let etag = format!("{}-{}\"", ETAG.trim_end_matches('"'), SCRIPT.len());
    let cached = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str());
    let mut response = if cached {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((
            header::CONTENT_TYPE,
            "application/javascript; charset=utf-8",
        ))
        .insert_header((
            header::CACHE_CONTROL,
            "public, max-age=86400, stale-while-revalidate=604800",
        ))
        .insert_header((header::ETAG, etag))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    if cached {
        response.finish()
    } else {
        response.body(SCRIPT)
    }
}
