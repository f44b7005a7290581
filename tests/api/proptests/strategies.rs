//! Generic strategies: nasty text, JSON values, URLs, user agents, mutations of a whole body,
//! props and revenue, and the registered property a protocol targets.

use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// Strategies: nasty text.

/// Stand-ins for what only raw text can carry. In a JSON body each becomes the escapes beside it
/// (the first two: lone surrogates, which make the body invalid JSON); in a query string, the
/// percent-escapes (CESU-8 surrogates, an overlong NUL, NUL, a line feed).
const RAW: &[(char, &str, &str)] = &[
    ('\u{e000}', r"\ud800", "%ED%A0%80"),
    ('\u{e001}', r"\udfff\ud800\u0041", "%C0%80"),
    ('\u{e002}', r"\u0000", "%00"),
    ('\u{e003}', r"\ud83d\ude00", "%F0%9F%98%80"),
    ('\u{e004}', r"\u001f\u007f", "%0A"),
    ('\u{e005}', r"\u0000\u0000", "%ED%BF%BF"),
];
pub(super) const MARKERS: &[char] = &[
    '\u{e000}', '\u{e001}', '\u{e002}', '\u{e003}', '\u{e004}', '\u{e005}',
];

/// Literal fragments that break naive code: percent-escapes that decode to NUL, newlines,
/// overlong or surrogate UTF-8; bidi and zero-width characters; emoji sequences; quotes.
const NASTY: &[&str] = &[
    "%00",
    "%0A",
    "%0d%0a",
    "%C0%80",
    "%ED%A0%80",
    "%FF",
    "%",
    "%zz",
    "%2500",
    "+",
    "\u{202e}",
    "\u{200f}",
    "\u{61c}",
    "\u{2066}",
    "\u{200b}",
    "\u{200d}",
    "\u{feff}",
    "\u{2028}",
    "\u{2029}",
    "\u{fffd}",
    "\u{10ffff}",
    "\u{e0001}",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🇩🇪",
    "e\u{301}\u{301}",
    "Z̤͔ͧ̑̓ä͖̭̈̇",
    "日本語",
    "العربية",
    "עִבְרִית",
    "\"",
    "\\",
    "'",
    "`",
    "<script>alert(1)</script>",
    "{\"a\":1}",
    "[]",
    "null",
    "\\u0000",
    "\\ud800",
    "",
    " ",
    "\t",
    "\r\n",
    "../",
    "?",
    "#",
    "&",
    "=",
    "/",
    "//",
    ";",
    ",",
    "\u{a0}",
    "\u{3000}",
    "'; DROP TABLE events; --",
    "$1",
    "%s",
    "{{x}}",
];

pub(super) fn fragment() -> BoxedStrategy<String> {
    prop_oneof![
        120 => "[a-zA-Z0-9_-]{1,8}",
        80 => select(NASTY).prop_map(str::to_owned),
        48 => proptest::char::range('\u{0}', '\u{1f}').prop_map(String::from),
        24 => proptest::char::range('\u{7f}', '\u{9f}').prop_map(String::from),
        // NUL, a surrogate pair and controls as escapes: valid JSON.
        40 => select(&MARKERS[2..]).prop_map(String::from),
        // Lone surrogates: not valid JSON (a body with one is refused whole), so rarer.
        1 => select(&MARKERS[..2]).prop_map(String::from),
        48 => any::<char>().prop_map(String::from),
    ]
    .boxed()
}

/// One character repeated to near a documented limit (GA4 names 40, values 100, names 120,
/// short fields and prop keys 300, referrers 420, page titles 300, URLs and prop values 2,000,
/// a prop's key and value 2,400 bytes), in characters of 1 to 4 UTF-8 bytes.
fn long_text() -> BoxedStrategy<String> {
    (
        select(&['a', 'é', '€', '😀', '\u{200b}', '\u{0}'][..]),
        select(&[40usize, 100, 120, 300, 420, 1000, 2000, 2400][..]),
        -1i64..=1,
    )
        .prop_map(|(c, n, d)| std::iter::repeat_n(c, (n as i64 + d) as usize).collect())
        .boxed()
}

/// Arbitrary Unicode, biased towards the nasty.
pub(super) fn nasty() -> BoxedStrategy<String> {
    prop_oneof![
        10 => vec(fragment(), 1..6).prop_map(|v| v.concat()),
        1 => any::<String>(),
        1 => long_text(),
    ]
    .boxed()
}

/// Any JSON value: wrong types, nesting, arrays where objects are expected.
pub(super) fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        nasty().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((nasty(), inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

pub(super) fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

pub(super) fn texts(options: &'static [&'static str]) -> BoxedStrategy<Value> {
    select(options).prop_map(text).boxed()
}

/// JSON text with the stand-ins replaced by their raw escapes.
pub(super) fn json_text(v: &Value) -> String {
    let mut s = serde_json::to_string(v).unwrap();
    for (c, escape, _) in RAW {
        if s.contains(*c) {
            s = s.replace(*c, escape);
        }
    }
    s
}

/// A query-string component: percent-encoded, with the stand-ins as raw percent-escapes.
pub(super) fn query_text(s: &str) -> String {
    let mut out = String::new();
    let mut plain = String::new();
    for c in s.chars() {
        match RAW.iter().find(|(m, _, _)| *m == c) {
            Some((_, _, pct)) => {
                out.extend(url::form_urlencoded::byte_serialize(plain.as_bytes()));
                plain.clear();
                out.push_str(pct);
            }
            None => plain.push(c),
        }
    }
    out.extend(url::form_urlencoded::byte_serialize(plain.as_bytes()));
    out
}

pub(super) fn query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_text(k), query_text(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A page URL: mostly on the property's domain or a subdomain, with nasty paths, UTM tags
/// (raw, or percent-encoded with raw escapes) and fragments; sometimes near 2,000 characters,
/// on another host, or not a URL at all.
pub(super) fn page_url() -> BoxedStrategy<String> {
    let host = prop_oneof![
        8 => Just("shop.example"),
        3 => select(&[
            "www.shop.example", "blog.shop.example", "SHOP.example", "shop.example:8443",
            "bücher.shop.example", "evil.example", "shop.example.evil.example", "127.0.0.1",
        ][..]),
    ];
    let utm = vec(
        (
            select(
                &[
                    "utm_source",
                    "utm_medium",
                    "utm_campaign",
                    "utm_content",
                    "utm_term",
                    "gclid",
                    "ref",
                ][..],
            ),
            any::<bool>(),
            nasty(),
        ),
        1..4,
    )
    .prop_map(|tags| {
        tags.iter()
            .map(|(k, encoded, v)| {
                if *encoded {
                    format!("{k}={}", query_text(v))
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    prop_oneof![
        10 => (
            select(&["https://", "http://"][..]),
            host,
            vec(fragment(), 0..4),
            weighted(0.4, utm),
            weighted(0.15, nasty()),
        )
            .prop_map(|(scheme, host, path, utm, hash)| {
                let mut u = format!("{scheme}{host}/{}", path.concat());
                if let Some(q) = utm {
                    u = format!("{u}?{q}");
                }
                if let Some(h) = hash {
                    u = format!("{u}#{h}");
                }
                u
            }),
        1 => select(&[1990usize, 1999, 2000, 2001, 2010][..]).prop_map(|n| {
            let base = "https://shop.example/";
            format!("{base}{}", "p".repeat(n - base.len()))
        }),
        1 => nasty(),
    ]
    .boxed()
}

pub(super) const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
];

/// A `User-Agent` header: browsers and bots, none, nasty bytes a header may carry (UTF-8 as
/// obs-text, tabs), or longer than the 512 characters kept.
pub(super) fn user_agent() -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        8 => select(USER_AGENTS).prop_map(|ua| Some(ua.as_bytes().to_vec())),
        1 => Just(None),
        1 => nasty().prop_map(|s| Some(
            s.bytes().filter(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t').collect()
        )),
        1 => (500usize..530).prop_map(|n| Some(format!("Mozilla/5.0 {}", "x".repeat(n)).into_bytes())),
    ]
    .boxed()
}

pub(super) fn headers(
    content_type: Option<&str>,
    ua: &Option<Vec<u8>>,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut h = Vec::new();
    if let Some(ct) = content_type {
        h.push(("Content-Type", ct.as_bytes().to_vec()));
    }
    if let Some(ua) = ua {
        h.push(("User-Agent", ua.clone()));
    }
    h
}

/// Damage done to a whole JSON body.
#[derive(Clone, Debug)]
pub(super) enum Mutation {
    None,
    /// Cut at this percentage of its length.
    Truncate(u8),
    /// Replaced by another JSON value.
    Replace(Value),
    /// Padded past the body limit.
    Oversize,
    /// An invalid UTF-8 byte inside the first string.
    InvalidUtf8,
    /// A byte-order mark in front.
    Bom,
    Trailing(String),
}

pub(super) fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        90 => Just(Mutation::None),
        1 => (0u8..100).prop_map(Mutation::Truncate),
        2 => json_value().prop_map(Mutation::Replace),
        1 => Just(Mutation::Oversize),
        1 => Just(Mutation::InvalidUtf8),
        1 => Just(Mutation::Bom),
        1 => nasty().prop_map(Mutation::Trailing),
    ]
    .boxed()
}

pub(super) fn mutate(text: String, m: &Mutation, limit: usize) -> Vec<u8> {
    match m {
        Mutation::None => text.into_bytes(),
        Mutation::Truncate(p) => {
            let mut bytes = text.into_bytes();
            bytes.truncate(bytes.len() * *p as usize / 100);
            bytes
        }
        Mutation::Replace(v) => json_text(v).into_bytes(),
        Mutation::Oversize => match text.strip_prefix('{') {
            Some(rest) => format!("{{\"pad\":\"{}\",{rest}", "a".repeat(limit)).into_bytes(),
            None => format!("{text}{}", " ".repeat(limit)).into_bytes(),
        },
        Mutation::InvalidUtf8 => {
            let mut bytes = text.into_bytes();
            let at = bytes.iter().position(|&b| b == b'"').map_or(0, |i| i + 1);
            bytes.insert(at, 0xff);
            bytes
        }
        Mutation::Bom => format!("\u{feff}{text}").into_bytes(),
        Mutation::Trailing(s) => format!("{text}{s}").into_bytes(),
    }
}

/// Custom props: mostly scalars with nasty keys and values; sometimes a nested value (refused),
/// sometimes around the limit of 30.
pub(super) fn props_object() -> BoxedStrategy<Map<String, Value>> {
    let key = prop_oneof![8 => "[a-z_]{1,10}", 3 => nasty()];
    let value = prop_oneof![
        20 => nasty().prop_map(Value::String),
        3 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        2 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => json_value(),
    ];
    let pair = (key, value);
    prop_oneof![
        10 => vec(pair.clone(), 0..6),
        1 => vec(pair, 28..33),
    ]
    .prop_map(|kv| kv.into_iter().collect())
    .boxed()
}

pub(super) fn revenue_value() -> BoxedStrategy<Value> {
    let currency = prop_oneof![
        12 => texts(&["EUR", "EUR", "usd", " gbp ", "JPY", "EURO", "€", ""]),
        1 => nasty().prop_map(Value::String),
        1 => json_value(),
    ];
    let amount = prop_oneof![
        8 => texts(&[
            "12.50", "0", "-1", "29", "999999999999999.999999", " 3.14 ", "1.", "1e5",
            "1234567890123456",
        ]),
        3 => (0.0..1e6f64).prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => nasty().prop_map(Value::String),
        1 => json_value(),
    ];
    let object = (currency, amount).prop_map(|(c, a)| json!({"currency": c, "amount": a}));
    prop_oneof![
        10 => object.clone(),
        4 => object.prop_map(|o| Value::String(json_text(&o))),
        1 => json_value(),
    ]
    .boxed()
}

/// What a protocol needs to know of the registered property.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) id: String,
    pub(super) measurement_id: String,
    pub(super) api_secret: String,
}

impl Target {
    pub(super) fn of(p: &Value) -> Self {
        Self {
            id: p["id"].as_str().unwrap().to_owned(),
            measurement_id: p["measurement_id"].as_str().unwrap().to_owned(),
            api_secret: p["api_secret"].as_str().unwrap().to_owned(),
        }
    }
}
