//! The fold of the `hits` projection, on batches of events built here.

use super::*;
use crate::domain::{
    Domain, Geo, PropertyCredentials, PropertyName, PropertyRegistered, Protocol, Timezone,
    VisitorKey,
};

fn pid() -> PropertyId {
    PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap()
}

fn keys() -> PropKeys {
    PropKeys::new(schema::DEFAULT_MAX_PROP_KEYS)
}

fn registered(tz: &str) -> Event {
    Event::PropertyRegistered(PropertyRegistered {
        property_id: pid(),
        domain: Domain::parse("shop.example").unwrap(),
        timezone: Timezone::parse(tz).unwrap(),
        name: PropertyName::parse("Shop").unwrap(),
        credentials: PropertyCredentials {
            measurement_id: "G-X".into(),
            api_secret: "s".into(),
            read_key: "r".into(),
        },
        session_timeout_minutes: None,
        registered_at: Utc::now(),
    })
}

fn hit(visitor: &str, at: &str, name: &str, url: &str) -> Event {
    Event::HitRecorded(Box::new(HitRecorded {
        property_id: pid(),
        occurred_at: at.parse().unwrap(),
        received_at: at.parse().unwrap(),
        name: name.into(),
        url: url.into(),
        referrer: None,
        title: None,
        user_agent: None,
        screen: None,
        language: None,
        visitor_key: VisitorKey::try_from(visitor.to_owned()).unwrap(),
        client_id: None,
        session_id: None,
        user_id: None,
        props: vec![("plan".into(), "pro".into())],
        revenue: None,
        interactive: true,
        hash_mode: false,
        engagement_ms: None,
        geo: Geo::default(),
        device: None,
        protocol: Protocol::Plausible,
    }))
}

fn numbered(events: Vec<Event>) -> Vec<(u64, Event)> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, e))
        .collect()
}

#[test]
fn a_partition_rolls_up_its_first_keys_only_and_once_full_admits_no_other() {
    let with_props = |props: &[(&str, &str)], at: &str| {
        let mut e = hit("01", at, "Signup", "https://shop.example/a");
        if let Event::HitRecorded(h) = &mut e {
            h.props = props
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
        }
        e
    };
    let events = numbered(vec![
        with_props(&[("plan", "pro")], "2026-03-01T10:00:00Z"),
        with_props(
            &[("tier", "gold"), ("color", "red")],
            "2026-03-01T10:01:00Z",
        ),
        with_props(&[("plan", "free"), ("size", "xl")], "2026-03-01T10:02:00Z"),
    ]);
    let mut cap = PropKeys::new(2);
    let d = fold(
        &events,
        &mut HashMap::new(),
        &mut cap,
        HashMap::new(),
        HashMap::new(),
    );
    let rolled: HashSet<&str> = d.days.keys().map(|(_, dim, _, _)| dim.as_ref()).collect();
    assert!(rolled.contains("prop:plan") && rolled.contains("prop:tier"));
    assert!(!rolled.contains("prop:color") && !rolled.contains("prop:size"));
    assert_eq!(d.props_refused, 2);
    assert_eq!(
        d.prop_keys,
        [
            (pid(), "plan".into()),
            (pid(), "tier".into()),
            (pid(), String::new())
        ]
    );
    // The hits keep every prop, for the enriched readers.
    assert!(d.hits[1].props.as_deref().unwrap().contains("color"));
    // A partition found full stays full, even with room made by a larger cap.
    cap.max = 10;
    let later = numbered(vec![with_props(&[("size", "s")], "2026-03-01T10:03:00Z")]);
    let d = fold(
        &later,
        &mut HashMap::new(),
        &mut cap,
        HashMap::new(),
        HashMap::new(),
    );
    assert_eq!((d.props_refused, d.prop_keys.len()), (1, 0));
}

#[test]
fn buckets_are_local_hours_even_for_half_hour_zones() {
    let events = numbered(vec![
        registered("Asia/Kolkata"),
        // 18:45 UTC is 00:15 the next day in Kolkata (+05:30).
        hit(
            "01",
            "2026-03-01T18:45:00Z",
            "pageview",
            "https://shop.example/a",
        ),
    ]);
    let d = fold(
        &events,
        &mut HashMap::new(),
        &mut keys(),
        HashMap::new(),
        HashMap::new(),
    );
    let local: NaiveDateTime = "2026-03-02T00:15:00".parse().unwrap();
    assert_eq!(d.hits[0].local_time, local);
    let (_, bucket) = d.hours.keys().next().unwrap();
    assert_eq!(
        *bucket,
        "2026-03-02T00:00:00".parse::<NaiveDateTime>().unwrap()
    );
    let days: Vec<(&str, String, String)> = d
        .days
        .keys()
        .map(|(_, dim, day, v)| (dim.as_ref(), day.to_string(), v.clone()))
        .collect();
    assert!(days.contains(&("page", "2026-03-02".into(), "/a".into())));
    assert!(days.contains(&("prop:plan", "2026-03-02".into(), "pro".into())));
}

#[test]
fn a_visit_spanning_batches_moves_its_contribution() {
    let mut tz = HashMap::new();
    let first = numbered(vec![
        registered("UTC"),
        hit(
            "01",
            "2026-03-01T10:00:00Z",
            "pageview",
            "https://shop.example/a",
        ),
    ]);
    let d1 = fold(&first, &mut tz, &mut keys(), HashMap::new(), HashMap::new());
    let h1 = &d1.hours.values().next().unwrap();
    assert_eq!((h1.visits, h1.bounces, h1.duration), (1, 1, 0));

    // The next batch continues the visit: it is no bounce any more and lasts 10 minutes.
    let (_, session, _) = d1.sessions[0].clone();
    let second = vec![(
        3,
        hit(
            "01",
            "2026-03-01T10:10:00Z",
            "pageview",
            "https://shop.example/b",
        ),
    )];
    let d2 = fold(
        &second,
        &mut tz,
        &mut keys(),
        HashMap::from([((pid(), 1), session)]),
        HashMap::new(),
    );
    let h2 = &d2.hours.values().next().unwrap();
    assert_eq!(
        (h2.visits, h2.bounces, h2.duration, h2.pageviews),
        (0, -1, 600, 1)
    );
    assert_eq!(
        d2.hits[0].session_id, 2,
        "the session id is the position of its first hit"
    );
    assert_eq!(d2.sessions[0].1.exit_page, "/b");
}

fn received_late(event: Event, received: &str) -> Event {
    match event {
        Event::HitRecorded(mut h) => {
            h.received_at = received.parse().unwrap();
            Event::HitRecorded(h)
        }
        e => e,
    }
}

#[test]
fn a_late_hit_joins_the_earlier_visit_it_belongs_to() {
    let events = numbered(vec![
        registered("UTC"),
        hit(
            "01",
            "2026-03-01T10:00:00Z",
            "pageview",
            "https://shop.example/a",
        ),
        // 51 minutes later: a second visit, now the visitor's latest.
        hit(
            "01",
            "2026-03-01T10:51:00Z",
            "pageview",
            "https://shop.example/b",
        ),
        // Happened at 10:10, arrived at 11:00: it belongs to the first visit.
        received_late(
            hit(
                "01",
                "2026-03-01T10:10:00Z",
                "pageview",
                "https://shop.example/c",
            ),
            "2026-03-01T11:00:00Z",
        ),
    ]);
    let d = fold(
        &events,
        &mut HashMap::new(),
        &mut keys(),
        HashMap::new(),
        HashMap::new(),
    );
    assert_eq!(
        d.hits.iter().map(|h| h.session_id).collect::<Vec<_>>(),
        vec![2, 3, 2]
    );
    let visits: i64 = d.hours.values().map(|h| h.visits).sum();
    let bounces: i64 = d.hours.values().map(|h| h.bounces).sum();
    assert_eq!((visits, bounces), (2, 1));
    assert_eq!(d.latest[&(pid(), 1)].id, 3);

    // Cut into batches, with the first visit coming from the table, the answer is the same.
    let mut sites = HashMap::new();
    let first = fold(
        &events[..3],
        &mut sites,
        &mut keys(),
        HashMap::new(),
        HashMap::new(),
    );
    let stored: Vec<Session> = first.sessions.iter().map(|(_, s, _)| s.clone()).collect();
    let second = fold(
        &events[3..],
        &mut sites,
        &mut keys(),
        first.latest.clone(),
        HashMap::from([((pid(), 1), stored)]),
    );
    assert_eq!(second.hits[0].session_id, 2);
    assert_eq!(second.sessions[0].1.pageviews, 2);
}

#[test]
fn a_late_hit_that_starts_its_own_visit_does_not_become_the_latest() {
    let mut tz = HashMap::new();
    let events = numbered(vec![
        registered("UTC"),
        hit(
            "01",
            "2026-03-01T12:00:00Z",
            "pageview",
            "https://shop.example/a",
        ),
        // Backdated by two hours: a visit of its own.
        hit(
            "01",
            "2026-03-01T10:00:00Z",
            "pageview",
            "https://shop.example/late",
        ),
        // Continues the 12:00 visit, not the late one.
        hit(
            "01",
            "2026-03-01T12:10:00Z",
            "pageview",
            "https://shop.example/b",
        ),
    ]);
    let d = fold(
        &events,
        &mut tz,
        &mut keys(),
        HashMap::new(),
        HashMap::new(),
    );
    assert_eq!(
        d.hits.iter().map(|h| h.session_id).collect::<Vec<_>>(),
        vec![2, 3, 2]
    );
    assert_eq!(d.latest[&(pid(), 1)].id, 2);
    // Split across batches the same hits give the same visits.
    let mut tz = HashMap::new();
    let first = fold(
        &events[..3],
        &mut tz,
        &mut keys(),
        HashMap::new(),
        HashMap::new(),
    );
    let second = fold(
        &events[3..],
        &mut tz,
        &mut keys(),
        first.latest.clone(),
        HashMap::new(),
    );
    assert_eq!(second.hits[0].session_id, 2);
}

#[test]
fn the_same_events_fold_to_the_same_delta() {
    let events = numbered(vec![
        registered("Europe/Berlin"),
        hit(
            "01",
            "2026-03-29T00:30:00Z",
            "pageview",
            "https://shop.example/a",
        ),
        hit(
            "02",
            "2026-03-29T01:30:00Z",
            "Signup",
            "https://shop.example/a",
        ),
        hit(
            "01",
            "2026-03-29T02:30:00Z",
            "pageview",
            "https://shop.example/b",
        ),
    ]);
    let a = fold(
        &events,
        &mut HashMap::new(),
        &mut keys(),
        HashMap::new(),
        HashMap::new(),
    );
    let b = fold(
        &events,
        &mut HashMap::new(),
        &mut keys(),
        HashMap::new(),
        HashMap::new(),
    );
    assert_eq!(a, b);
    // Across the DST change (02:00 → 03:00 local), 00:30 UTC and 01:30 UTC are 01:30 and 03:30.
    let hours: Vec<String> = a
        .hours
        .keys()
        .map(|(_, h)| h.format("%H:%M").to_string())
        .collect();
    assert!(
        hours.contains(&"01:00".into()) && hours.contains(&"03:00".into()),
        "{hours:?}"
    );
}
