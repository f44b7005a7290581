use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use crate::domain::{Geo, HitRecorded, PropertyId, Protocol, ReportedDevice, Revenue, VisitorKey};

/// Any Unicode text (control characters, NUL, astral planes, empty), with short ASCII now and
/// then so that equal strings (duplicate prop keys) come up.
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        1 => "[a-c]{0,2}",
    ]
}

/// `None`, `Some("")` and `Some(text)`.
pub(crate) fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), Just(Some(String::new())), text().prop_map(Some)]
}

/// A text that is one of `known` half of the time.
fn known_or_text(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(known).prop_map(str::to_owned),
        text()
    ]
}

/// Any instant chrono can represent, at nanosecond precision, leap seconds included, with
/// today's instants and the ends of the range weighted in.
pub(crate) fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    let secs = prop_oneof![
        min..=max,
        1_600_000_000i64..1_900_000_000,
        -2i64..=2,
        Just(min),
        Just(max),
    ];
    let nanos = prop_oneof![
        4 => 0u32..1_000_000_000,
        1 => Just(0u32),
        1 => Just(999_999_999u32),
        1 => 1_000_000_000u32..2_000_000_000,
    ];
    (secs, nanos).prop_filter_map("in chrono's range", |(s, n)| {
        // A leap second (nanos ≥ 10⁹) is the 59th second of a minute; `min` starts a minute
        // and `max` ends one, so this stays in range.
        let s = if n >= 1_000_000_000 {
            s - s.rem_euclid(60) + 59
        } else {
            s
        };
        DateTime::from_timestamp(s, n)
    })
}

/// `(occurred_at, received_at)`: equal, a realistic distance apart, or unrelated.
pub(crate) fn times() -> impl Strategy<Value = (DateTime<Utc>, DateTime<Utc>)> {
    timestamp().prop_flat_map(|occ| {
        let near = (-300_000_000_000i64..259_200_000_000_000).prop_map(move |ns| {
            let rec = occ
                .checked_add_signed(Duration::nanoseconds(ns))
                .unwrap_or(occ);
            (occ, rec)
        });
        prop_oneof![
            Just((occ, occ)),
            near,
            timestamp().prop_map(move |rec| (occ, rec)),
        ]
    })
}

pub(crate) fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Plausible),
        Just(Protocol::Ga4),
        Just(Protocol::Umami),
        Just(Protocol::Footfall),
        Just(Protocol::AccessLog),
    ]
}

pub(crate) fn visitor_key() -> impl Strategy<Value = VisitorKey> {
    any::<u64>().prop_map(|k| VisitorKey::try_from(format!("{k:016x}")).unwrap())
}

/// Props in order, with duplicate keys and duplicate pairs.
pub(crate) fn props() -> impl Strategy<Value = Vec<(String, String)>> {
    (
        proptest::collection::vec((text(), text()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(mut props, dup)| {
            if let (true, Some(first)) = (dup, props.first().cloned()) {
                props.push(first);
            }
            props
        })
}

pub(crate) fn geo() -> impl Strategy<Value = Geo> {
    prop_oneof![
        Just(Geo::default()),
        (
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text()
        )
            .prop_map(|(a, b, c, d, e, f)| Geo {
                country: a,
                country_name: b,
                region: c,
                region_name: d,
                city: e,
                city_name: f,
            }),
    ]
}

pub(crate) fn device() -> impl Strategy<Value = Option<ReportedDevice>> {
    let category = prop_oneof![
        Just(None),
        known_or_text(&["desktop", "mobile", "tablet"]).prop_map(Some)
    ];
    proptest::option::of(
        (
            category,
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        )
            .prop_map(
                |(category, os, os_version, browser, browser_version, model, brand)| {
                    ReportedDevice {
                        category,
                        os,
                        os_version,
                        browser,
                        browser_version,
                        model,
                        brand,
                    }
                },
            ),
    )
}

/// Any `HitRecorded` the type can hold, valid for the domain or not.
pub(crate) fn hit_recorded() -> impl Strategy<Value = HitRecorded> {
    let ids = (any::<[u8; 16]>(), visitor_key(), protocol(), times());
    let texts = (
        known_or_text(&["pageview", "engagement"]),
        text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
    );
    let rest = (
        props(),
        proptest::option::of((text(), text())),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(prop_oneof![any::<u64>(), 0u64..100_000, Just(u64::MAX)]),
        geo(),
        device(),
    );
    (ids, texts, rest).prop_map(
        |(
            (id, visitor_key, protocol, (occurred_at, received_at)),
            (
                name,
                url,
                referrer,
                title,
                user_agent,
                screen,
                language,
                client_id,
                session_id,
                user_id,
            ),
            (props, revenue, interactive, hash_mode, engagement_ms, geo, device),
        )| HitRecorded {
            property_id: PropertyId::new(Uuid::from_bytes(id)),
            occurred_at,
            received_at,
            name,
            url,
            referrer,
            title,
            user_agent,
            screen,
            language,
            visitor_key,
            client_id,
            session_id,
            user_id,
            props,
            revenue: revenue.map(|(currency, amount)| Revenue { currency, amount }),
            interactive,
            hash_mode,
            engagement_ms,
            geo,
            device,
            protocol,
        },
    )
}
