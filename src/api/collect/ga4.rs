//! Google Analytics 4: the Measurement Protocol (`POST /mp/collect`, `POST /debug/mp/collect`)
//! and gtag.js hits (`GET`/`POST /g/collect`). Both carry GA4 events (a name and params), which
//! [`to_hit`] translates into the shared hit request; the limits are GA4's.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{client, read_body};
use crate::api::{ApiError, AppState};
use crate::domain::hit::{ENGAGEMENT, PAGEVIEW};
use crate::domain::{Geo, Hit, HitRequest, PropertyId, Protocol, ReportedDevice};
use crate::services::collector::count_outcome;
use crate::services::{Client, CollectError, Collector, PropertyRecord};

/// GA4 limits.
const MAX_EVENTS: usize = 25;
/// Hits in one gtag.js `POST` (one per line). gtag.js sends far fewer; a body of more is refused
/// whole with `400 too_many_hits`, so a request is always one atomic append of a bounded size.
pub const MAX_GTAG_HITS: usize = 100;
const MAX_PARAMS: usize = 25;
const MAX_USER_PROPERTIES: usize = 25;
const MAX_NAME: usize = 40;
const MAX_USER_PROPERTY_NAME: usize = 24;
const MAX_USER_PROPERTY_VALUE: usize = 36;
const MAX_VALUE: usize = 100;
/// The body must be smaller than 130 kB.
pub const MAX_BODY: usize = 130_000 - 1;
const RESERVED_NAMES: &[&str] = &[
    "ad_activeview",
    "ad_click",
    "ad_exposure",
    "ad_impression",
    "ad_query",
    "ad_reward",
    "adunit_exposure",
    "app_background",
    "app_clear_data",
    "app_exception",
    "app_install",
    "app_remove",
    "app_store_refund",
    "app_store_subscription_cancel",
    "app_store_subscription_convert",
    "app_store_subscription_renew",
    "app_update",
    "app_upgrade",
    "dynamic_link_app_open",
    "dynamic_link_app_update",
    "dynamic_link_first_open",
    "error",
    "first_open",
    "first_visit",
    "in_app_purchase",
    "notification_dismiss",
    "notification_foreground",
    "notification_open",
    "notification_receive",
    "os_update",
    "session_start",
    "session_start_with_rollout",
    "user_engagement",
];
const RESERVED_PREFIXES: &[&str] = &["_", "firebase_", "ga_", "google_", "gtag."];

/// Params whose values may be longer than 100 characters.
fn max_value_len(param: &str) -> usize {
    match param {
        "page_location" => 1000,
        "page_referrer" => 420,
        "page_title" => 300,
        _ => MAX_VALUE,
    }
}

/// An object's entries in order, duplicates kept (GA4 reports duplicated names).
#[derive(Debug, Clone, Default)]
pub struct Pairs(pub Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Pairs {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Ga4Event {
    #[serde(default)]
    pub name: Value,
    #[serde(default)]
    pub params: Option<Pairs>,
}

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

/// A GA4 validation message, as `/debug/mp/collect` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationMessage {
    pub field_path: String,
    pub description: String,
    pub validation_code: &'static str,
}

fn message(
    field_path: impl Into<String>,
    code: &'static str,
    description: impl Into<String>,
) -> ValidationMessage {
    ValidationMessage {
        field_path: field_path.into(),
        description: description.into(),
        validation_code: code,
    }
}

fn valid_name(name: &str, max: usize) -> bool {
    let mut chars = name.chars();
    name.len() <= max
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn reserved(name: &str) -> bool {
    RESERVED_NAMES.contains(&name) || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Checks one event against GA4's rules; `path` is its field path (`events[0]`).
pub fn validate_event(event: &Ga4Event, path: &str, server_side: bool) -> Vec<ValidationMessage> {
    let mut out = Vec::new();
    match event.name.as_str() {
        None => out.push(message(format!("{path}.name"), "VALUE_REQUIRED", "Event name is required.")),
        Some(n) if !valid_name(n, MAX_NAME) => out.push(message(
            format!("{path}.name"),
            "NAME_INVALID",
            format!("Event name {n} must start with a letter, use only letters, digits and underscores, and be at most {MAX_NAME} characters."),
        )),
        // Browsers (gtag.js) send GA's own automatic events; servers may not.
        Some(n) if server_side && reserved(n) => {
            out.push(message(format!("{path}.name"), "NAME_RESERVED", format!("Event name {n} is reserved.")))
        }
        Some(_) => {}
    }
    let params = event.params.as_ref().map(|p| p.0.as_slice()).unwrap_or(&[]);
    if params.len() > MAX_PARAMS {
        out.push(message(
            format!("{path}.params"),
            "EXCEEDED_MAX_ENTITIES",
            format!("An event can have at most {MAX_PARAMS} params."),
        ));
    }
    for (i, (k, v)) in params.iter().enumerate() {
        let field = format!("{path}.params.{k}");
        if params[..i].iter().any(|(other, _)| other == k) {
            out.push(message(
                &field,
                "NAME_DUPLICATED",
                format!("Param {k} is given more than once."),
            ));
        }
        if !valid_name(k, MAX_NAME) {
            out.push(message(
                &field,
                "NAME_INVALID",
                format!("Param name {k} is invalid."),
            ));
        } else if server_side && RESERVED_PREFIXES.iter().any(|p| k.starts_with(p)) {
            out.push(message(
                &field,
                "NAME_RESERVED",
                format!("Param name {k} is reserved."),
            ));
        }
        match v {
            Value::String(s) if s.chars().count() > max_value_len(k) => out.push(message(
                &field,
                "VALUE_OUT_OF_BOUNDS",
                format!("Param {k} is longer than {} characters.", max_value_len(k)),
            )),
            Value::Array(_) if k == "items" => {}
            Value::Array(_) | Value::Object(_) => out.push(message(
                &field,
                "VALUE_INVALID",
                format!("Param {k} must be a string or a number."),
            )),
            _ => {}
        }
    }
    out
}

/// What the request carries besides the event itself.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    /// The page when an event has no `page_location` (server-side events).
    pub default_url: Option<String>,
    /// The visitor's device and location, as a server-side payload states them.
    pub device: Option<ReportedDevice>,
    pub geo: Option<Geo>,
    /// `device.language` and `device.screen_resolution`, for events that do not give their own.
    pub language: Option<String>,
    pub screen: Option<String>,
}

/// Translates a GA4 event into the shared hit request.
pub fn to_hit(event: &Ga4Event, common: &Common) -> HitRequest {
    let params = event.params.clone().unwrap_or_default();
    let text = |k: &str| params.get(k).and_then(as_text);
    let name = match event.name.as_str() {
        Some("page_view") => PAGEVIEW.to_owned(),
        Some("user_engagement") => ENGAGEMENT.to_owned(),
        Some(n) => n.to_owned(),
        None => String::new(),
    };
    const MAPPED: &[&str] = &[
        "page_location",
        "page_referrer",
        "page_title",
        "language",
        "screen_resolution",
        "session_id",
        "engagement_time_msec",
        "currency",
        "value",
        "items",
        "session_number",
        "timestamp_micros",
    ];
    let props = params
        .0
        .iter()
        .filter(|(k, _)| !MAPPED.contains(&k.as_str()))
        .filter_map(|(k, v)| as_text(v).map(|v| (k.clone(), v)))
        .collect();
    let revenue = match (text("currency"), text("value")) {
        (Some(c), Some(v)) => Some((c, v)),
        _ => None,
    };
    let event_time = params.get("timestamp_micros").and_then(micros);
    HitRequest {
        name: Some(name),
        url: text("page_location").or_else(|| common.default_url.clone()),
        referrer: text("page_referrer"),
        title: text("page_title"),
        screen: text("screen_resolution").or_else(|| common.screen.clone()),
        language: text("language").or_else(|| common.language.clone()),
        props,
        revenue,
        interactive: true,
        hash_mode: false,
        engagement_ms: text("engagement_time_msec")
            .and_then(|t| t.parse::<f64>().ok())
            .map(|ms| ms.max(0.0) as u64),
        client_id: common.client_id.clone(),
        session_id: text("session_id"),
        user_id: common.user_id.clone(),
        occurred_at: event_time.or(common.occurred_at),
        device: common.device.clone(),
        geo: common.geo.clone(),
    }
}

fn micros(v: &Value) -> Option<DateTime<Utc>> {
    let n = as_text(v)?.parse::<i64>().ok()?;
    DateTime::from_timestamp_micros(n)
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

/// gtag.js: `GET`/`POST /g/collect?v=2&tid=…&cid=…&en=…&dl=…`; a `POST` body may hold several
/// hits, one query string per line, each merged over the URL's parameters. The valid hits of a
/// request are appended together: `204` means all of them are in the log, `503` that none is.
/// Invalid lines are left out; when no line is valid the first one's error is the answer.
pub async fn gtag_collect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, super::MAX_BODY).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(v: Value) -> Ga4Event {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ga4_names_and_limits_are_checked() {
        let codes = |v: Value| -> Vec<&'static str> {
            validate_event(&event(v), "events[0]", true)
                .into_iter()
                .map(|m| m.validation_code)
                .collect()
        };
        assert!(
            codes(json!({"name": "purchase", "params": {"value": 9.5, "currency": "EUR"}}))
                .is_empty()
        );
        assert_eq!(codes(json!({"name": "1bad"})), vec!["NAME_INVALID"]);
        assert_eq!(codes(json!({"name": "first_visit"})), vec!["NAME_RESERVED"]);
        assert_eq!(codes(json!({"name": "ga_thing"})), vec!["NAME_RESERVED"]);
        assert_eq!(codes(json!({"name": "x".repeat(41)})), vec!["NAME_INVALID"]);
        assert_eq!(codes(json!({})), vec!["VALUE_REQUIRED"]);
        assert_eq!(
            codes(json!({"name": "e", "params": {"p": "v".repeat(101)}})),
            vec!["VALUE_OUT_OF_BOUNDS"]
        );
        assert!(codes(json!({"name": "e", "params": {"page_location": format!("https://a.example/{}", "v".repeat(500))}})).is_empty());
        let many: serde_json::Map<String, Value> =
            (0..26).map(|i| (format!("p{i}"), json!(i))).collect();
        assert_eq!(
            codes(json!({"name": "e", "params": many})),
            vec!["EXCEEDED_MAX_ENTITIES"]
        );
        let dup: Ga4Event = serde_json::from_str(r#"{"name":"e","params":{"a":1,"a":2}}"#).unwrap();
        let codes: Vec<_> = validate_event(&dup, "events[0]", true)
            .into_iter()
            .map(|m| m.validation_code)
            .collect();
        assert_eq!(codes, vec!["NAME_DUPLICATED"]);
    }

    #[test]
    fn events_translate_into_the_shared_hit() {
        let e = event(json!({"name": "page_view", "params": {
            "page_location": "https://shop.example/a", "page_referrer": "https://google.com/",
            "page_title": "A", "session_id": 123, "engagement_time_msec": 1500, "plan": "pro", "qty": 2
        }}));
        let hit = to_hit(
            &e,
            &Common {
                client_id: Some("c1".into()),
                ..Common::default()
            },
        );
        assert_eq!(hit.name.as_deref(), Some("pageview"));
        assert_eq!(hit.url.as_deref(), Some("https://shop.example/a"));
        assert_eq!(hit.session_id.as_deref(), Some("123"));
        assert_eq!(hit.engagement_ms, Some(1500));
        assert_eq!(
            hit.props,
            vec![
                ("plan".to_owned(), "pro".to_owned()),
                ("qty".to_owned(), "2".to_owned())
            ]
        );
        let purchase = to_hit(
            &event(json!({"name": "purchase", "params": {"currency": "EUR", "value": 19.9}})),
            &Common::default(),
        );
        assert_eq!(purchase.revenue, Some(("EUR".into(), "19.9".into())));
        assert_eq!(
            to_hit(
                &event(json!({"name": "user_engagement"})),
                &Common::default()
            )
            .name
            .as_deref(),
            Some("engagement")
        );
    }
}
