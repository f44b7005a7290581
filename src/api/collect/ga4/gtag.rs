//! gtag.js hits: `GET`/`POST /g/collect`.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{to_hit, validate_event, Common, Ga4Event, Pairs};
use crate::api::collect::{client, read_body};
use crate::api::{ApiError, AppState};
use crate::domain::{HitRequest, PropertyId, Protocol};
use crate::services::collector::count_outcome;
use crate::services::{Collector, PropertyRecord};

/// Hits in one gtag.js `POST` (one per line). gtag.js sends far fewer; a body of more is refused
/// whole with `400 too_many_hits`, so a request is always one atomic append of a bounded size.
pub const MAX_GTAG_HITS: usize = 100;

/// gtag.js: `GET`/`POST /g/collect?v=2&tid=…&cid=…&en=…&dl=…`; a `POST` body may hold several
/// hits, one query string per line, each merged over the URL's parameters. The valid hits of a
/// request are appended together: `204` means all of them are in the log, `503` that none is.
/// Invalid lines are left out; when no line is valid the first one's error is the answer.
pub async fn gtag_collect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, crate::api::collect::MAX_BODY).await?;
    let shared: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let lines: Vec<Vec<(String, String)>> = match std::str::from_utf8(&body).map(str::trim) {
        Ok(text) if !text.is_empty() => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                url::form_urlencoded::parse(l.trim().as_bytes())
                    .into_owned()
                    .collect()
            })
            .collect(),
        Ok(_) => vec![vec![]],
        Err(_) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the body must be text",
            ))
        }
    };
    if lines.len() > MAX_GTAG_HITS {
        return Err(ApiError::bad_request(
            "too_many_hits",
            format!("a request may carry at most {MAX_GTAG_HITS} hits"),
        ));
    }
    let tid = lines
        .iter()
        .flatten()
        .chain(shared.iter())
        .find(|(k, _)| k == "tid")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| ApiError::bad_request("missing_field", "parameter `tid` is required"))?;
    let property = state
        .properties
        .by_measurement_id(&tid)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_measurement_id",
                format!("no property has measurement id `{tid}`"),
            )
        })?;
    let client = client(&req, &state.trusted_proxies);
    let mut hits = Vec::with_capacity(lines.len());
    let mut first_error = None;
    for line in &lines {
        match gtag_hit(line, &shared, &property) {
            Ok(hit) => hits.push(hit),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if hits.is_empty() {
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    let result = state
        .collector
        .record_all(Protocol::Ga4, hits, client)
        .await;
    count_outcome(Protocol::Ga4, result.as_ref().map(|r| r.events));
    result?;
    Ok(HttpResponse::NoContent().finish())
}

/// One gtag.js line (its parameters over the URL's) as a hit for the properties that accept it.
fn gtag_hit(
    line: &[(String, String)],
    shared: &[(String, String)],
    property: &Arc<PropertyRecord>,
) -> Result<(Vec<PropertyId>, HitRequest), ApiError> {
    let get = |key: &str| {
        line.iter()
            .chain(shared.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let mut params: Vec<(String, Value)> = Vec::new();
    for (k, v) in line.iter().chain(shared.iter()) {
        let entry = if let Some(name) = k.strip_prefix("ep.") {
            (name.to_owned(), json!(v))
        } else if let Some(name) = k.strip_prefix("epn.") {
            let number = v
                .parse::<i64>()
                .map(|n| json!(n))
                .or_else(|_| v.parse::<f64>().map(|n| json!(n)));
            (name.to_owned(), number.unwrap_or_else(|_| json!(v)))
        } else {
            continue;
        };
        if !params.iter().any(|(k, _)| *k == entry.0) {
            params.push(entry);
        }
    }
    for (param, key) in [
        ("page_location", "dl"),
        ("page_referrer", "dr"),
        ("page_title", "dt"),
        ("language", "ul"),
        ("screen_resolution", "sr"),
        ("session_id", "sid"),
        ("engagement_time_msec", "_et"),
    ] {
        if let Some(v) = get(key).filter(|v| !v.is_empty()) {
            params.push((param.to_owned(), json!(v)));
        }
    }
    let event = Ga4Event {
        name: json!(get("en").unwrap_or_else(|| "page_view".into())),
        params: Some(Pairs(params)),
    };
    if let Some(problem) = validate_event(&event, "event", false).into_iter().next() {
        return Err(ApiError::bad_request("invalid_event", problem.description));
    }
    let common = Common {
        client_id: get("cid"),
        user_id: get("uid"),
        ..Common::default()
    };
    let hit = to_hit(&event, &common);
    let targets = Collector::browser_targets(std::slice::from_ref(property), hit.url.as_deref())?;
    Ok((targets, hit))
}
