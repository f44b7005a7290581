//! Strategies for the GA4 protocols: gtag.js (`GET` and `POST /g/collect`) and the Measurement
//! Protocol.

use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

use super::runner::Case;
use super::strategies::{
    headers, json_text, json_value, mutate, mutation, nasty, page_url, query, query_text, texts,
    user_agent, Target, USER_AGENTS,
};

const GA4_NAMES: &[&str] = &[
    "page_view",
    "purchase",
    "sign_up",
    "scroll",
    "click",
    "user_engagement",
];
/// Invalid, or reserved for browsers (`first_visit`) or for Google (`ga_`, `_`).
const BAD_GA4_NAMES: &[&str] = &[
    "first_visit",
    "ga_custom",
    "_internal",
    "1bad",
    "Ünïcode",
    "a b",
];
const PARAM_NAMES: &[&str] = &[
    "page_location",
    "page_referrer",
    "page_title",
    "session_id",
    "engagement_time_msec",
    "currency",
    "value",
    "items",
    "language",
    "screen_resolution",
    "timestamp_micros",
    "campaign",
    "plan",
    "firebase_x",
    "ga_x",
];

fn ga4_name() -> BoxedStrategy<String> {
    prop_oneof![
        12 => select(GA4_NAMES).prop_map(str::to_owned),
        2 => select(BAD_GA4_NAMES).prop_map(str::to_owned),
        3 => "[a-z][a-z0-9_]{0,44}",
        1 => nasty(),
    ]
    .boxed()
}

fn param_key() -> BoxedStrategy<String> {
    prop_oneof![
        8 => select(PARAM_NAMES).prop_map(str::to_owned),
        6 => "[a-z][a-z0-9_]{0,12}",
        1 => nasty(),
    ]
    .boxed()
}

/// The parameters of one gtag.js hit: event name, page, referrer, title, language, screen,
/// session, engagement time, and event params (`ep.*` text, `epn.*` numbers).
fn gtag_hit() -> BoxedStrategy<Vec<(String, String)>> {
    (
        weighted(0.8, ga4_name()),
        weighted(0.95, page_url()),
        weighted(0.3, prop_oneof![page_url(), nasty()]),
        weighted(0.5, nasty()),
        weighted(
            0.3,
            prop_oneof![
                select(&["en-us", "de-DE"][..]).prop_map(str::to_owned),
                nasty()
            ],
        ),
        weighted(0.3, prop_oneof!["[0-9]{3,4}x[0-9]{3,4}", nasty()]),
        weighted(0.7, prop_oneof![3 => "[0-9]{1,10}", 1 => nasty()]),
        weighted(0.3, prop_oneof![3 => "[0-9]{1,6}", 1 => nasty()]),
        vec(
            (
                prop_oneof![12 => "[a-z][a-z0-9_]{0,9}", 2 => param_key(), 1 => nasty()],
                nasty(),
            ),
            0..4,
        ),
        vec(
            (
                param_key(),
                prop_oneof!["-?[0-9]{1,8}(\\.[0-9]{1,3})?", nasty()],
            ),
            0..2,
        ),
    )
        .prop_map(|(en, dl, dr, dt, ul, sr, sid, et, ep, epn)| {
            let mut v = Vec::new();
            for (k, x) in [
                ("en", en),
                ("dl", dl),
                ("dr", dr),
                ("dt", dt),
                ("ul", ul),
                ("sr", sr),
                ("sid", sid),
                ("_et", et),
            ] {
                if let Some(x) = x {
                    v.push((k.to_owned(), x));
                }
            }
            v.extend(ep.into_iter().map(|(k, x)| (format!("ep.{k}"), x)));
            v.extend(epn.into_iter().map(|(k, x)| (format!("epn.{k}"), x)));
            v
        })
        .boxed()
}

/// `tid`: mostly the property's measurement id.
fn tid(t: &Target) -> BoxedStrategy<Option<String>> {
    prop_oneof![
        14 => Just(Some(t.measurement_id.clone())),
        1 => Just(None),
        1 => Just(Some("G-UNKNOWN123".to_owned())),
        1 => nasty().prop_map(Some),
    ]
    .boxed()
}

fn shared_params(
    tid: Option<String>,
    cid: Option<String>,
    uid: Option<String>,
) -> Vec<(String, String)> {
    let mut q = vec![("v".to_owned(), "2".to_owned())];
    for (k, v) in [("tid", tid), ("cid", cid), ("uid", uid)] {
        if let Some(v) = v {
            q.push((k.to_owned(), v));
        }
    }
    q
}

fn client_id() -> BoxedStrategy<String> {
    prop_oneof![4 => "[0-9]{1,10}\\.[0-9]{1,10}", 1 => nasty()].boxed()
}

/// gtag.js, `GET /g/collect?v=2&tid=…&cid=…&en=…&dl=…`: everything in the query string.
pub(super) fn gtag_get(t: &Target) -> BoxedStrategy<Case> {
    (
        tid(t),
        weighted(0.9, client_id()),
        weighted(0.1, nasty()),
        gtag_hit(),
        user_agent(),
    )
        .prop_map(|(tid, cid, uid, hit, ua)| {
            let mut q = shared_params(tid, cid, uid);
            q.extend(hit);
            Case {
                method: "GET",
                path: format!("/g/collect?{}", query(&q)),
                headers: headers(None, &ua),
                body: None,
                may_record_nothing: false,
                mp: false,
            }
        })
        .boxed()
}

/// gtag.js, `POST /g/collect?v=2&tid=…&cid=…` with several hits in the body, one query string a
/// line (`\n` or `\r\n`, blank lines between), sometimes more lines than allowed, past the body
/// limit of 64 KiB, or not UTF-8.
pub(super) fn gtag_post(t: &Target) -> BoxedStrategy<Case> {
    let lines = prop_oneof![
        30 => vec((gtag_hit(), weighted(0.05, tid(t))), 1..6),
        1 => vec((gtag_hit(), Just(None)), 0..1),
        1 => vec((gtag_hit(), Just(None)), 101..103),
    ];
    (
        // First, so that shrinking keeps an oversized body while it removes the rest.
        prop_oneof![40 => Just(0usize), 1 => Just(64 * 1024 + 1)],
        tid(t),
        weighted(0.9, client_id()),
        lines,
        select(&["\n", "\r\n", "\n\n", "\r\n \r\n"][..]),
        prop_oneof![30 => Just(false), 1 => Just(true)],
        user_agent(),
    )
        .prop_map(|(pad, tid, cid, lines, sep, invalid_utf8, ua)| {
            let q = shared_params(tid, cid, None);
            let mut body: Vec<String> = lines
                .into_iter()
                .map(|(mut hit, tid)| {
                    if let Some(tid) = tid.flatten() {
                        hit.push(("tid".into(), tid));
                    }
                    query(&hit)
                })
                .collect();
            if pad > 0 {
                body.push(format!("en=page_view&ep.pad={}", "a".repeat(pad)));
            }
            let mut body = body.join(sep).into_bytes();
            if invalid_utf8 {
                body.insert(body.len() / 2, 0xc0);
            }
            Case {
                method: "POST",
                path: format!("/g/collect?{}", query(&q)),
                headers: headers(Some("text/plain;charset=UTF-8"), &ua),
                body: Some(body),
                may_record_nothing: false,
                mp: false,
            }
        })
        .boxed()
}

/// GA4 Measurement Protocol, `POST /mp/collect?measurement_id=…&api_secret=…` (mostly the
/// property's, sometimes a wrong secret): client id, user id, timestamps near the 72-hour window,
/// user properties, the payload's device, location, address and user agent, and 0 to 27 events
/// whose names and params are valid, nasty or of the wrong type.
pub(super) fn measurement_protocol(t: &Target) -> BoxedStrategy<Case> {
    let (mid, secret) = (t.measurement_id.clone(), t.api_secret.clone());
    let params = prop_oneof![
        40 => vec(
            (
                param_key(),
                prop_oneof![
                    8 => nasty().prop_map(Value::String),
                    3 => page_url().prop_map(Value::String),
                    2 => any::<i64>().prop_map(Value::from),
                    1 => any::<f64>().prop_map(Value::from),
                    1 => texts(&["EUR", "usd", "EURO"]),
                    1 => any::<bool>().prop_map(Value::Bool),
                    1 => json_value(),
                ],
            ),
            0..6,
        )
        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        1 => json_value(),
    ];
    let event = prop_oneof![
        40 => (
            prop_oneof![30 => ga4_name().prop_map(Value::String), 1 => json_value()],
            weighted(0.9, params),
        )
            .prop_map(|(name, params)| {
                let mut e = Map::new();
                e.insert("name".into(), name);
                if let Some(p) = params {
                    e.insert("params".into(), p);
                }
                Value::Object(e)
            }),
        1 => json_value(),
    ];
    let events = prop_oneof![
        60 => vec(event.clone(), 1..4).prop_map(Value::Array),
        1 => Just(json!([])),
        1 => vec(event, 26..28).prop_map(Value::Array),
        1 => json_value(),
    ];
    // Seconds from now, in and out of the window of 72 hours back and 5 minutes ahead.
    let timestamp = prop_oneof![
        12 => select(&[0i64, -30, -3600, -71 * 3600, -73 * 3600, 600][..]).prop_map(Ok::<i64, Value>),
        1 => nasty().prop_map(|s| Err(Value::String(s))),
        1 => json_value().prop_map(Err),
    ];
    let visitor = (
        weighted(
            0.3,
            prop_oneof![4 => texts(USER_AGENTS), 1 => nasty().prop_map(Value::String)],
        ),
        weighted(
            0.15,
            prop_oneof![
                3 => vec((select(&["category", "operating_system", "browser", "browser_version", "model", "brand", "language", "screen_resolution"][..]), nasty()), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect())),
                1 => json_value(),
            ],
        ),
        weighted(
            0.1,
            prop_oneof![
                3 => (nasty(), nasty(), nasty()).prop_map(|(c, r, city)| json!({"country_id": c, "region_id": r, "city": city})),
                1 => Just(json!({"country_id": "DE", "region_id": "DE-BE", "city": "Berlin"})),
                1 => json_value(),
            ],
        ),
        weighted(
            0.1,
            prop_oneof![
                texts(&["203.0.113.9", "::1", "999.1.1.1"]),
                nasty().prop_map(Value::String)
            ],
        ),
    );
    let user_properties = weighted(
        0.15,
        prop_oneof![
            8 => vec((param_key(), prop_oneof![nasty().prop_map(Value::String), any::<i64>().prop_map(Value::from)]), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k, json!({"value": v}))).collect())),
            1 => json_value(),
        ],
    );
    let credentials = prop_oneof![30 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)];
    (
        weighted(
            0.95,
            prop_oneof![
                18 => client_id().prop_map(Value::String),
                1 => any::<i64>().prop_map(Value::from),
                1 => json_value(),
            ],
        ),
        weighted(
            0.2,
            prop_oneof![nasty().prop_map(Value::String), json_value()],
        ),
        weighted(0.2, timestamp),
        user_properties,
        visitor,
        events,
        credentials,
        user_agent(),
        mutation(),
    )
        .prop_map(
            move |(
                client_id,
                user_id,
                timestamp,
                user_properties,
                visitor,
                events,
                credentials,
                ua,
                m,
            )| {
                let mut b = Map::new();
                let (payload_ua, device, location, ip) = visitor;
                // Relative to now, when the case is sent (current() is called just before).
                let timestamp = timestamp.map(|t| match t {
                    Ok(seconds) => json!((chrono::Utc::now().timestamp() + seconds) * 1_000_000),
                    Err(v) => v,
                });
                for (k, v) in [
                    ("client_id", client_id),
                    ("user_id", user_id),
                    ("timestamp_micros", timestamp),
                    ("user_properties", user_properties),
                    ("user_agent", payload_ua),
                    ("device", device),
                    ("user_location", location),
                    ("ip_override", ip),
                    ("events", Some(events)),
                ] {
                    if let Some(v) = v {
                        b.insert(k.into(), v);
                    }
                }
                let (m_id, s) = match credentials {
                    0 => (mid.as_str(), secret.as_str()),
                    1 => (mid.as_str(), "wrong-secret"),
                    _ => ("G-UNKNOWN123", secret.as_str()),
                };
                Case {
                    method: "POST",
                    path: format!(
                        "/mp/collect?measurement_id={}&api_secret={}",
                        query_text(m_id),
                        query_text(s)
                    ),
                    headers: headers(Some("application/json"), &ua),
                    body: Some(mutate(json_text(&Value::Object(b)), &m, 130_000)),
                    may_record_nothing: false,
                    mp: true,
                }
            },
        )
        .boxed()
}
