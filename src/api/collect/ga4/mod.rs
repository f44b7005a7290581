//! Google Analytics 4: the Measurement Protocol (`POST /mp/collect`, `POST /debug/mp/collect`)
//! and gtag.js hits (`GET`/`POST /g/collect`). Both carry GA4 events (a name and params), which
//! [`to_hit`] translates into the shared hit request; the limits are GA4's.

use chrono::{DateTime, Utc};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::hit::{ENGAGEMENT, PAGEVIEW};
use crate::domain::{Geo, HitRequest, ReportedDevice};

mod gtag;
mod mp;
pub use gtag::{gtag_collect, MAX_GTAG_HITS};
pub use mp::{mp_collect, mp_debug, MpBody, MpQuery};

/// GA4 limits.
const MAX_EVENTS: usize = 25;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
