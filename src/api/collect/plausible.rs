//! The Plausible Events API: `POST /api/event`, as sent by Plausible's tracker script and server
//! SDKs. The body is JSON, sent as `application/json` or `text/plain`, with long or short field
//! names. `domain` may list several comma-separated domains; the hit is recorded for each.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::{client, read_body, scalar_props, MAX_BODY};
use crate::api::{ApiError, AppState};
use crate::domain::{HitRequest, Protocol};
use crate::services::collector::count_outcome;
use crate::services::Collector;

pub async fn event(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, MAX_BODY).await?;
    let (domains, hit) = parse(&body)?;
    let found = state.collector.resolve_domains(&domains).await?;
    let properties = Collector::browser_targets(&found, hit.url.as_deref())?;
    let client = client(&req, &state.trusted_proxies);
    let result = state
        .collector
        .record(Protocol::Plausible, properties, hit, client)
        .await;
    count_outcome(Protocol::Plausible, result.as_ref().copied());
    result?;
    // Plausible answers 202 with the text `ok`.
    Ok(HttpResponse::Accepted()
        .content_type("text/plain")
        .body("ok"))
}

/// Translates a Plausible body into the domains it names and the shared hit request.
pub fn parse(body: &[u8]) -> Result<(String, HitRequest), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}"))
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "body must be a JSON object",
        ));
    };
    let f = Fields(&obj);
    let domains = f.string("domain", "d")?.unwrap_or_default();
    if domains.trim().is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            "field `domain` is required",
        ));
    }
    let hit = HitRequest {
        name: f.string("name", "n")?,
        url: f.string("url", "u")?,
        referrer: f.string("referrer", "r")?,
        props: f.props()?,
        revenue: f.revenue()?,
        interactive: f.flag("interactive", "i")?.unwrap_or(true),
        hash_mode: f.flag("hashMode", "h")?.unwrap_or(false),
        // Plausible's engagement events carry the engaged time in `e` (milliseconds).
        engagement_ms: f
            .number("engagement_time", "e")?
            .map(|ms| ms.max(0.0) as u64),
        ..HitRequest::default()
    };
    Ok((domains, hit))
}

/// A Plausible body's fields, each under its long or its short name (the long one wins).
struct Fields<'a>(&'a Map<String, Value>);

fn wrong_type(field: &str, expected: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_field",
        format!("field `{field}` must be {expected}"),
    )
}

impl Fields<'_> {
    fn get(&self, long: &str, short: &str) -> Option<&Value> {
        self.0
            .get(long)
            .or_else(|| self.0.get(short))
            .filter(|v| !v.is_null())
    }

    fn string(&self, long: &str, short: &str) -> Result<Option<String>, ApiError> {
        match self.get(long, short) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong_type(long, "a string")),
        }
    }

    /// Plausible sends `h: 1` and `i: false`: booleans and 0/1 both count.
    fn flag(&self, long: &str, short: &str) -> Result<Option<bool>, ApiError> {
        match self.get(long, short) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => Ok(Some(n.as_f64().is_some_and(|n| n != 0.0))),
            Some(_) => Err(wrong_type(long, "a boolean")),
        }
    }

    fn number(&self, long: &str, short: &str) -> Result<Option<f64>, ApiError> {
        match self.get(long, short) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(wrong_type(long, "a number")),
        }
    }

    /// An object, or a string holding a JSON object (what the tracker sends).
    fn object(&self, long: &str, short: &str) -> Result<Option<Map<String, Value>>, ApiError> {
        match self.get(long, short) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o.clone())),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(o)) => Ok(Some(o)),
                Ok(Value::Null) => Ok(None),
                _ => Err(wrong_type(long, "an object or a JSON object string")),
            },
            Some(_) => Err(wrong_type(long, "an object or a JSON object string")),
        }
    }

    fn props(&self) -> Result<Vec<(String, String)>, ApiError> {
        match self.object("props", "p")? {
            Some(props) => scalar_props(&props),
            None => Ok(vec![]),
        }
    }

    fn revenue(&self) -> Result<Option<(String, String)>, ApiError> {
        let Some(revenue) = self.object("revenue", "$")? else {
            return Ok(None);
        };
        let currency = match revenue.get("currency") {
            Some(Value::String(c)) => c.clone(),
            _ => return Err(wrong_type("revenue.currency", "a string")),
        };
        let amount = match revenue.get("amount") {
            Some(Value::String(a)) => a.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(wrong_type("revenue.amount", "a number or a decimal string")),
        };
        Ok(Some((currency, amount)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_short_names_give_the_same_hit() {
        let long = br#"{"name":"Signup","url":"https://shop.example/a","domain":"shop.example",
            "referrer":"https://ref.example/","props":{"plan":"pro","seats":3,"trial":true},
            "revenue":{"currency":"EUR","amount":12.5},"hashMode":1,"interactive":false}"#;
        let short = br#"{"n":"Signup","u":"https://shop.example/a","d":"shop.example",
            "r":"https://ref.example/","p":"{\"plan\":\"pro\",\"seats\":3,\"trial\":true}",
            "$":"{\"currency\":\"EUR\",\"amount\":\"12.5\"}","h":1,"i":false}"#;
        let (d1, h1) = parse(long).unwrap();
        let (d2, h2) = parse(short).unwrap();
        assert_eq!(d1, "shop.example");
        assert_eq!(d1, d2);
        assert_eq!(h1.name, h2.name);
        assert_eq!(h1.props, h2.props);
        assert_eq!(
            h1.props,
            vec![
                ("plan".to_owned(), "pro".to_owned()),
                ("seats".to_owned(), "3".to_owned()),
                ("trial".to_owned(), "true".to_owned()),
            ]
        );
        assert_eq!(h1.revenue, Some(("EUR".into(), "12.5".into())));
        assert_eq!(h1.revenue, h2.revenue);
        assert!(h1.hash_mode && h2.hash_mode);
        assert!(!h1.interactive && !h2.interactive);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = parse(br#"{"name":5,"url":"https://a.example","domain":"a.example"}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_field");
        assert!(e.to_string().contains("`name`"));
        assert_eq!(parse(b"[1]").unwrap_err().code(), "invalid_json");
        assert_eq!(parse(b"{nope").unwrap_err().code(), "invalid_json");
        assert_eq!(
            parse(br#"{"name":"x","url":"https://a.example"}"#)
                .unwrap_err()
                .code(),
            "missing_field"
        );
        assert_eq!(
            parse(br#"{"n":"x","u":"https://a.example","d":"a.example","p":{"a":{"b":1}}}"#)
                .unwrap_err()
                .code(),
            "invalid_props"
        );
    }
}
