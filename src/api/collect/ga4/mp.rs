//! The Measurement Protocol: `POST /mp/collect` and `POST /debug/mp/collect`.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    as_text, message, micros, reserved, to_hit, valid_name, validate_event, Common, Ga4Event,
    Pairs, ValidationMessage, MAX_BODY, MAX_EVENTS, MAX_USER_PROPERTIES, MAX_USER_PROPERTY_NAME,
    MAX_USER_PROPERTY_VALUE,
};
use crate::api::collect::read_body;
use crate::api::{ApiError, AppState};
use crate::domain::{Geo, Hit, HitRequest, PropertyId, Protocol, ReportedDevice};
use crate::services::collector::count_outcome;
use crate::services::{Client, CollectError, PropertyRecord};

#[derive(Debug, Default, Deserialize)]
pub struct MpBody {
    #[serde(default)]
    client_id: Value,
    #[serde(default)]
    user_id: Value,
    #[serde(default)]
    timestamp_micros: Value,
    #[serde(default)]
    user_properties: Option<Pairs>,
    #[serde(default)]
    events: Option<Vec<Ga4Event>>,
    /// The visitor's browser, as the server that sends the request saw it.
    #[serde(default)]
    user_agent: Value,
    /// The visitor's address, for geo only (`user_location` wins).
    #[serde(default)]
    ip_override: Value,
    #[serde(default)]
    device: Value,
    #[serde(default)]
    user_location: Value,
}

#[derive(Deserialize)]
pub struct MpQuery {
    measurement_id: Option<String>,
    api_secret: Option<String>,
}

/// The property a Measurement Protocol request is for, if its secret matches.
async fn mp_property(
    state: &AppState,
    q: &MpQuery,
) -> Result<Option<Arc<PropertyRecord>>, ApiError> {
    let (Some(mid), Some(secret)) = (&q.measurement_id, &q.api_secret) else {
        return Ok(None);
    };
    let Some(p) = state.properties.by_measurement_id(mid).await? else {
        return Ok(None);
    };
    Ok(crate::api::constant_time_eq(p.api_secret.as_bytes(), secret.as_bytes()).then_some(p))
}

/// A Measurement Protocol body, checked.
#[derive(Default)]
struct MpCheck {
    /// The valid events, to record.
    hits: Vec<HitRequest>,
    messages: Vec<ValidationMessage>,
    /// The visitor, as the payload describes it: never the server that sent the request.
    visitor: Client,
    /// More than [`MAX_EVENTS`] events: the request is refused whole.
    too_many_events: bool,
}

/// The visitor's device as the payload's `device` object states it.
fn reported_device(device: &Value) -> Option<ReportedDevice> {
    let text = |k: &str| device.get(k).and_then(as_text);
    Some(ReportedDevice {
        category: text("category"),
        os: text("operating_system"),
        os_version: text("operating_system_version"),
        browser: text("browser"),
        browser_version: text("browser_version"),
        model: text("model"),
        brand: text("brand"),
    })
    .filter(|d| *d != ReportedDevice::default())
}

/// The visitor's location as the payload's `user_location` object states it.
fn reported_geo(location: &Value) -> Option<Geo> {
    let text = |k: &str| location.get(k).and_then(as_text);
    Some(Geo {
        country: text("country_id"),
        region: text("region_id"),
        city_name: text("city"),
        ..Geo::default()
    })
    .filter(|g| *g != Geo::default())
}

/// Validates a Measurement Protocol body: the hits to record, the messages, and the visitor.
fn check_mp(body: &[u8], property: Option<&PropertyRecord>) -> MpCheck {
    let mut messages = Vec::new();
    if property.is_none() {
        messages.push(message(
            "api_secret",
            "VALUE_INVALID",
            "Unknown measurement_id or wrong api_secret.",
        ));
    }
    let parsed: MpBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            messages.push(message(
                "",
                "VALUE_INVALID",
                format!("The body is not a valid JSON object: {e}"),
            ));
            return MpCheck {
                messages,
                ..MpCheck::default()
            };
        }
    };
    let too_many_events = parsed.events.as_ref().is_some_and(|e| e.len() > MAX_EVENTS);
    let client_id = as_text(&parsed.client_id);
    if client_id.is_none() {
        messages.push(message(
            "client_id",
            "VALUE_REQUIRED",
            "client_id is required.",
        ));
    }
    let user_props = parsed.user_properties.unwrap_or_default();
    if user_props.0.len() > MAX_USER_PROPERTIES {
        messages.push(message(
            "user_properties",
            "EXCEEDED_MAX_ENTITIES",
            "At most 25 user properties.",
        ));
    }
    for (i, (k, v)) in user_props.0.iter().enumerate() {
        let field = format!("user_properties.{k}");
        if user_props.0[..i].iter().any(|(o, _)| o == k) {
            messages.push(message(
                &field,
                "NAME_DUPLICATED",
                format!("User property {k} is given more than once."),
            ));
        }
        if !valid_name(k, MAX_USER_PROPERTY_NAME) || reserved(k) {
            messages.push(message(
                &field,
                "NAME_INVALID",
                format!("User property name {k} is invalid."),
            ));
        }
        let value = v.get("value").and_then(as_text).unwrap_or_default();
        if value.chars().count() > MAX_USER_PROPERTY_VALUE {
            messages.push(message(
                &field,
                "VALUE_OUT_OF_BOUNDS",
                "User property values are at most 36 characters.",
            ));
        }
    }
    let occurred_at = match &parsed.timestamp_micros {
        Value::Null => None,
        v => match micros(v) {
            Some(t) => Some(t),
            None => {
                messages.push(message(
                    "timestamp_micros",
                    "VALUE_INVALID",
                    "timestamp_micros must be an integer.",
                ));
                None
            }
        },
    };
    let events: Vec<Ga4Event> = match parsed.events {
        Some(items) if !items.is_empty() => {
            if items.len() > MAX_EVENTS {
                messages.push(message(
                    "events",
                    "EXCEEDED_MAX_ENTITIES",
                    format!("At most {MAX_EVENTS} events per request."),
                ));
            }
            items
        }
        _ => {
            messages.push(message(
                "events",
                "VALUE_REQUIRED",
                "At least one event is required.",
            ));
            vec![]
        }
    };
    let common = Common {
        client_id,
        user_id: as_text(&parsed.user_id),
        occurred_at,
        default_url: property.map(|p| format!("https://{}/", p.domain)),
        device: reported_device(&parsed.device),
        geo: reported_geo(&parsed.user_location),
        language: parsed.device.get("language").and_then(as_text),
        screen: parsed.device.get("screen_resolution").and_then(as_text),
    };
    let visitor = Client {
        ip: as_text(&parsed.ip_override).and_then(|ip| ip.trim().parse().ok()),
        user_agent: as_text(&parsed.user_agent),
    };
    let before = messages.len();
    let mut hits = Vec::new();
    let now = Utc::now();
    for (i, e) in events.iter().enumerate() {
        let path = format!("events[{i}]");
        let problems = validate_event(e, &path, true);
        if !problems.is_empty() {
            messages.extend(problems);
            continue;
        }
        // The rules collection applies, so that the debug endpoint and collection agree (with
        // no property, the request is dropped whole already).
        let hit = to_hit(e, &common);
        match Hit::parse(hit.clone(), now) {
            Err(problem) if property.is_some() => {
                messages.push(message(path, "VALUE_INVALID", problem.to_string()))
            }
            _ => hits.push(hit),
        }
    }
    // Request-level problems drop the whole request, as GA4 does.
    if before > 0 {
        hits.clear();
    }
    MpCheck {
        hits,
        messages,
        visitor,
        too_many_events,
    }
}

/// `POST /mp/collect`: records the valid events in one append and answers `204` (invalid ones are
/// dropped, as GA4 does); more than 25 events get `400 too_many_events`, and nothing is recorded.
/// The request's own address and `User-Agent` are the sending server's: the visitor is what the
/// payload says (`user_agent`, `device`, `user_location`, `ip_override`), or unknown.
pub async fn mp_collect(
    query: web::Query<MpQuery>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, MAX_BODY).await?;
    let property = mp_property(&state, &query).await?;
    let checked = check_mp(&body, property.as_deref());
    if checked.too_many_events {
        return Err(ApiError::bad_request(
            "too_many_events",
            format!("a request may carry at most {MAX_EVENTS} events"),
        ));
    }
    if let (Some(p), false) = (property, checked.hits.is_empty()) {
        let targets = vec![PropertyId::new(p.id)];
        let hits = checked
            .hits
            .into_iter()
            .map(|h| (targets.clone(), h))
            .collect();
        let result = state
            .collector
            .record_all(Protocol::Ga4, hits, checked.visitor)
            .await;
        count_outcome(Protocol::Ga4, result.as_ref().map(|r| r.events));
        match result {
            // Invalid events are dropped, as GA4 does; a 503 is the caller's to retry.
            Ok(_) | Err(CollectError::Invalid(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /debug/mp/collect`: validates and records nothing.
pub async fn mp_debug(
    query: web::Query<MpQuery>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, MAX_BODY).await?;
    let property = mp_property(&state, &query).await?;
    let messages = check_mp(&body, property.as_deref()).messages;
    Ok(HttpResponse::Ok().json(json!({"validationMessages": messages})))
}
