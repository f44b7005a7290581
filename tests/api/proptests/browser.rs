//! Strategies for the browser-side protocols: Plausible's Events API, footfall's own tracker,
//! and Umami.

use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

use super::runner::Case;
use super::strategies::{
    fragment, headers, json_text, json_value, mutate, mutation, nasty, page_url, props_object,
    revenue_value, text, texts, user_agent, Target, MARKERS, USER_AGENTS,
};

// ---------------------------------------------------------------------------------------------
// Strategies: one per protocol.

/// Plausible's Events API, `POST /api/event`: long or short field names, props as an object or a
/// JSON string, revenue, flags, and any of them of the wrong type.
pub(super) fn plausible() -> BoxedStrategy<Case> {
    let name = weighted(
        0.95,
        prop_oneof![
            32 => texts(&["pageview", "Signup", "engagement", "Outbound Link: Click"]),
            24 => nasty().prop_map(Value::String),
            1 => json_value(),
        ],
    );
    let url = weighted(
        0.97,
        prop_oneof![60 => page_url().prop_map(Value::String), 1 => json_value()],
    );
    let domain = prop_oneof![
        48 => texts(&["shop.example"]),
        6 => texts(&[
            "shop.example,other.example", "other.example, shop.example", " shop.example ",
            "SHOP.EXAMPLE", "unknown.example", "", "shop.example,,",
        ]),
        3 => nasty().prop_map(Value::String),
        1 => json_value(),
    ];
    let referrer = weighted(
        0.4,
        prop_oneof![40 => page_url().prop_map(Value::String), 1 => json_value()],
    );
    let props = weighted(
        0.6,
        prop_oneof![
            10 => props_object().prop_map(Value::Object),
            5 => props_object().prop_map(|o| Value::String(json_text(&Value::Object(o)))),
            1 => json_value(),
        ],
    );
    let revenue = weighted(0.15, revenue_value());
    let flag = prop_oneof![
        12 => any::<bool>().prop_map(Value::Bool),
        6 => select(&[0i64, 1, 2, -1][..]).prop_map(Value::from),
        1 => json_value(),
    ];
    let flags = (
        weighted(0.15, flag.clone()),
        weighted(0.15, flag),
        weighted(
            0.05,
            prop_oneof![6 => (0u32..100_000).prop_map(Value::from), 1 => json_value()],
        ),
    );
    let envelope = (any::<u8>(), any::<bool>(), user_agent(), mutation());
    (name, url, domain, referrer, props, revenue, flags, envelope)
        .prop_map(
            |(
                name,
                url,
                domain,
                referrer,
                props,
                revenue,
                (hash, interactive, engaged),
                (long, json_ct, ua, m),
            )| {
                let mut body = Map::new();
                let mut put = |bit: u8, long_name: &str, short: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        let key = if long & (1 << bit) != 0 {
                            long_name
                        } else {
                            short
                        };
                        body.insert(key.to_owned(), v);
                    }
                };
                put(0, "name", "n", name);
                put(1, "url", "u", url);
                put(2, "domain", "d", Some(domain));
                put(3, "referrer", "r", referrer);
                put(4, "props", "p", props);
                put(5, "revenue", "$", revenue);
                put(6, "hashMode", "h", hash);
                put(7, "interactive", "i", interactive);
                put(7, "engagement_time", "e", engaged);
                let text = json_text(&Value::Object(body));
                let ct = if json_ct {
                    "application/json"
                } else {
                    "text/plain"
                };
                Case {
                    method: "POST",
                    path: "/api/event".into(),
                    headers: headers(Some(ct), &ua),
                    body: Some(mutate(text, &m, 64 * 1024)),
                    may_record_nothing: false,
                    mp: false,
                }
            },
        )
        .boxed()
}

/// A URL as `location.href` or `a.href` gives it: normalised and percent-encoded by the browser
/// (the url crate follows the same WHATWG rules). Lone surrogates become U+FFFD first.
fn browser_url(raw: &str) -> String {
    let raw: String = raw
        .chars()
        .map(|c| if MARKERS.contains(&c) { '\u{fffd}' } else { c })
        .collect();
    url::Url::parse(&raw)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| "https://shop.example/".into())
}

/// footfall's own tracker (assets/footfall.js): `POST /api/event` as `text/plain`, the body
/// `JSON.stringify({n, u: location.href, d: data-domain, r: document.referrer || null, h?: 1,
/// p?: props, $?: revenue, i?: false})`. Names and props are whatever the merchant's code passes
/// to `footfall(name, {props, revenue})`; JSON.stringify writes lone surrogates as `\udxxx`.
pub(super) fn tracker() -> BoxedStrategy<Case> {
    let call = prop_oneof![
        5 => Just((text("pageview"), None, None, false)),
        2 => Just((text("engagement"), None, None, true)),
        4 => (
            prop_oneof![4 => nasty().prop_map(Value::String), 1 => texts(&["Signup", "Purchase"])],
            weighted(0.7, props_object().prop_map(Value::Object)),
            weighted(0.3, revenue_value()),
        )
            .prop_map(|(n, p, r)| (n, p, r, false)),
        1 => (select(&["Outbound Link: Click", "File Download"][..]), page_url()).prop_map(|(n, u)| {
            (text(n), Some(json!({"url": browser_url(&u)})), None, false)
        }),
    ];
    let domain = prop_oneof![
        10 => Just("shop.example".to_owned()),
        1 => Just("www.shop.example".to_owned()),
        1 => nasty(),
    ];
    (
        call,
        page_url(),
        domain,
        weighted(0.4, page_url()),
        weighted(0.2, Just(())),
        select(USER_AGENTS),
    )
        .prop_map(
            |((name, props, revenue, ping), href, domain, referrer, hash, ua)| {
                let mut b = Map::new();
                b.insert("n".into(), name);
                b.insert("u".into(), text(&browser_url(&href)));
                b.insert("d".into(), Value::String(domain));
                b.insert(
                    "r".into(),
                    referrer.map_or(Value::Null, |r| text(&browser_url(&r))),
                );
                if hash.is_some() {
                    b.insert("h".into(), json!(1));
                }
                if let Some(p) = props {
                    b.insert("p".into(), p);
                }
                if let Some(r) = revenue {
                    b.insert("$".into(), r);
                }
                if ping {
                    b.insert("i".into(), json!(false));
                }
                Case {
                    method: "POST",
                    path: "/api/event".into(),
                    headers: headers(Some("text/plain"), &Some(ua.as_bytes().to_vec())),
                    body: Some(json_text(&Value::Object(b)).into_bytes()),
                    may_record_nothing: false,
                    mp: false,
                }
            },
        )
        .boxed()
}

/// Umami, `POST /api/send`: `{"type": "event", "payload": {"website": <property id>, …}}`.
pub(super) fn umami(t: &Target) -> BoxedStrategy<Case> {
    let id = t.id.clone();
    let kind = weighted(
        0.9,
        prop_oneof![
            26 => texts(&["event"]),
            2 => texts(&["identify"]),
            1 => nasty().prop_map(Value::String),
            1 => json_value(),
        ],
    );
    let website = prop_oneof![
        30 => Just(0u8),
        1 => Just(1u8),
        3 => Just(2u8),
        1 => Just(3u8),
    ];
    let odd = (nasty(), json_value());
    let string_or =
        |p: f64, s: BoxedStrategy<Value>| weighted(p, prop_oneof![30 => s, 1 => json_value()]);
    let path = (vec(fragment(), 0..4), weighted(0.3, page_url())).prop_map(|(path, abs)| {
        abs.unwrap_or_else(|| {
            let u = browser_url(&format!("https://shop.example/{}", path.concat()));
            u.trim_start_matches("https://shop.example").to_owned()
        })
    });
    let fields = (
        string_or(
            0.9,
            prop_oneof![
                20 => texts(&["shop.example"]),
                2 => texts(&["www.shop.example", "evil.example", ""]),
                1 => nasty().prop_map(Value::String),
            ]
            .boxed(),
        ),
        string_or(
            0.95,
            prop_oneof![
                6 => path.prop_map(Value::String),
                1 => nasty().prop_map(Value::String),
            ]
            .boxed(),
        ),
        string_or(0.5, page_url().prop_map(Value::String).boxed()),
        string_or(0.6, nasty().prop_map(Value::String).boxed()),
        string_or(
            0.6,
            prop_oneof![3 => texts(&["en-US", "de"]), 1 => nasty().prop_map(Value::String)].boxed(),
        ),
        string_or(
            0.6,
            prop_oneof![3 => texts(&["1920x1080"]), 1 => nasty().prop_map(Value::String)].boxed(),
        ),
        string_or(
            0.4,
            prop_oneof![1 => texts(&["Signup"]), 3 => nasty().prop_map(Value::String)].boxed(),
        ),
        weighted(
            0.4,
            prop_oneof![6 => props_object().prop_map(Value::Object), 1 => json_value()],
        ),
    );
    let payload_is_object = prop_oneof![30 => Just(true), 1 => Just(false)];
    (
        kind,
        website,
        odd,
        fields,
        payload_is_object,
        user_agent(),
        mutation(),
    )
        .prop_map(
            move |(kind, website, (odd_text, odd_value), fields, is_object, ua, m)| {
                let (hostname, url, referrer, title, language, screen, name, data) = fields;
                let identify = kind.as_ref().is_some_and(|k| k == "identify");
                let website = match website {
                    0 => text(&id),
                    1 => text(&id.to_uppercase()),
                    2 => Value::String(odd_text),
                    _ => odd_value.clone(),
                };
                let mut p = Map::new();
                p.insert("website".into(), website);
                for (k, v) in [
                    ("hostname", hostname),
                    ("url", url),
                    ("referrer", referrer),
                    ("title", title),
                    ("language", language),
                    ("screen", screen),
                    ("name", name),
                    ("data", data),
                ] {
                    if let Some(v) = v {
                        p.insert(k.into(), v);
                    }
                }
                let mut body = Map::new();
                if let Some(k) = kind {
                    body.insert("type".into(), k);
                }
                let payload = if is_object {
                    Value::Object(p)
                } else {
                    odd_value
                };
                body.insert("payload".into(), payload);
                Case {
                    method: "POST",
                    path: "/api/send".into(),
                    headers: headers(Some("application/json"), &ua),
                    body: Some(mutate(json_text(&Value::Object(body)), &m, 64 * 1024)),
                    may_record_nothing: identify,
                    mp: false,
                }
            },
        )
        .boxed()
}
