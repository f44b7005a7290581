//! Umami: `POST /api/send` with `{"type": "event", "payload": {"website": "<property id>",
//! "hostname", "url", "referrer", "title", "language", "screen", "name", "data"}}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{client, read_body, scalar_props, MAX_BODY};
use crate::api::{ApiError, AppState};
use crate::domain::hit::PAGEVIEW;
use crate::domain::{HitRequest, Protocol};
use crate::services::collector::count_outcome;
use crate::services::Collector;

pub async fn send(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, MAX_BODY).await?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}"))
    })?;
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("event");
    let payload = match value.get("payload") {
        Some(Value::Object(p)) => p,
        _ => {
            return Err(ApiError::bad_request(
                "missing_field",
                "field `payload` must be an object",
            ))
        }
    };
    if kind == "identify" {
        // Session data only: nothing to record.
        return Ok(HttpResponse::Ok().json(json!({"cache": ""})));
    }
    if kind != "event" {
        return Err(ApiError::bad_request(
            "invalid_field",
            "field `type` must be `event` or `identify`",
        ));
    }
    let website = text(payload, "website")?.ok_or_else(|| {
        ApiError::bad_request("missing_field", "field `payload.website` is required")
    })?;
    let property = state.properties.by_id(&website).await?.ok_or_else(|| {
        ApiError::bad_request("unknown_website", format!("no property has id `{website}`"))
    })?;
    let hit = parse(payload)?;
    let targets = Collector::browser_targets(std::slice::from_ref(&property), hit.url.as_deref())?;
    let result = state
        .collector
        .record(
            Protocol::Umami,
            targets,
            hit,
            client(&req, &state.trusted_proxies),
        )
        .await;
    count_outcome(Protocol::Umami, result.as_ref().copied());
    result?;
    // Umami answers with a cache token its tracker sends back; footfall needs none.
    Ok(HttpResponse::Ok().json(json!({"cache": ""})))
}

fn text(p: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            "invalid_field",
            format!("field `payload.{key}` must be a string"),
        )),
    }
}

/// Translates an Umami payload into the shared hit request.
pub fn parse(p: &Map<String, Value>) -> Result<HitRequest, ApiError> {
    let hostname = text(p, "hostname")?.unwrap_or_default();
    // Umami's `url` is the path (with query); some clients send an absolute URL.
    let url = text(p, "url")?.map(|u| {
        if u.starts_with("http://") || u.starts_with("https://") {
            u
        } else {
            format!("https://{hostname}{u}")
        }
    });
    let props = match p.get("data") {
        None | Some(Value::Null) => vec![],
        Some(Value::Object(data)) => scalar_props(data)?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "field `payload.data` must be an object",
            ))
        }
    };
    Ok(HitRequest {
        name: Some(text(p, "name")?.unwrap_or_else(|| PAGEVIEW.to_owned())),
        url,
        referrer: text(p, "referrer")?,
        title: text(p, "title")?,
        screen: text(p, "screen")?,
        language: text(p, "language")?,
        props,
        interactive: true,
        ..HitRequest::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umami_payloads_translate_into_the_shared_hit() {
        let p = json!({"website": "x", "hostname": "shop.example", "url": "/a?b=1", "referrer": "https://ref.example/",
                       "title": "A", "language": "en-US", "screen": "1920x1080", "name": "Signup", "data": {"plan": "pro", "n": 2}});
        let hit = parse(p.as_object().unwrap()).unwrap();
        assert_eq!(hit.url.as_deref(), Some("https://shop.example/a?b=1"));
        assert_eq!(hit.name.as_deref(), Some("Signup"));
        assert_eq!(
            hit.props,
            vec![
                ("n".to_owned(), "2".to_owned()),
                ("plan".to_owned(), "pro".to_owned())
            ]
        );
        let pageview = parse(
            json!({"hostname": "shop.example", "url": "/"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(pageview.name.as_deref(), Some("pageview"));
        assert_eq!(
            parse(json!({"url": 5}).as_object().unwrap())
                .unwrap_err()
                .code(),
            "invalid_field"
        );
    }
}
