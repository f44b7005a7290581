//! Property test of the access-log import (`POST /api/admin/properties/{id}/imports`): arbitrary
//! lines, well-formed ones with arbitrary Unicode in every field and garbage, in every format. The
//! invariant: the import finishes (never `failed`), accounts for every line exactly once, appends
//! exactly its pageviews, and every appended hit is projected (nothing parked).

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use serde_json::json;

use super::reads::runner;
use super::strategies::nasty;
use crate::helpers::{eventually, spawn_app, ADMIN_TOKEN};

/// A combined-format line with arbitrary fields, or garbage.
fn line() -> BoxedStrategy<String> {
    let well_formed = (
        prop_oneof![
            Just("203.0.113.7".to_owned()),
            Just("2001:db8::7".to_owned()),
            Just("host-1.example.net".to_owned()),
            nasty(),
        ],
        select(&["GET", "GET", "GET", "HEAD", "POST"][..]),
        prop_oneof![
            3 => nasty().prop_map(|p| format!("/{p}")),
            1 => Just("/img/a.png".to_owned()),
            1 => Just("https://shop.example/abs?x=1".to_owned()),
            1 => nasty(),
        ],
        select(&[200u16, 200, 204, 301, 304, 404, 500, 99, 700][..]),
        prop_oneof![Just("-".to_owned()), nasty()],
        prop_oneof![Just("-".to_owned()), Just("Googlebot/2.1".to_owned()), nasty()],
        select(&["+0000", "+1200", "-0930"][..]),
    )
        .prop_map(|(client, method, target, status, referrer, ua, offset)| {
            let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
            format!(
                "{client} - - [02/Nov/2026:10:00:00 {offset}] \"{method} {} HTTP/1.1\" {status} 10 \"{}\" \"{}\"",
                q(&target).replace(' ', "%20"),
                q(&referrer),
                q(&ua)
            )
        });
    prop_oneof![4 => well_formed, 1 => nasty()].boxed()
}

#[actix_web::test]
async fn proptest_access_log_import() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    let id = property["id"].as_str().unwrap();
    let mut runner = runner("access-log");
    let body = vec(line(), 1..25);
    let (mut pageviews, mut lines, mut bots) = (0i64, 0i64, 0i64);
    for case in 0..40 {
        let input: Vec<String> = body.new_tree(&mut runner).unwrap().current();
        // Each case a distinct file: its index as the first line's tail keeps contents apart.
        let text = format!("case {case}\n{}", input.join("\n"));
        let before = app.log_events().await as i64;
        let res = app
            .request(
                "POST",
                &format!("/api/admin/properties/{id}/imports"),
                Some(ADMIN_TOKEN),
                &[],
                Some(text.clone().into_bytes()),
            )
            .await;
        assert_eq!(res.status, 202, "{text:?}: {}", res.text);
        let url = res.body["status_url"].as_str().unwrap().to_owned();
        let done = eventually(Duration::from_secs(30), "the import to finish", || {
            let (app, url) = (&app, url.clone());
            async move {
                let s = app.admin_get(&url).await;
                (s.body["state"] != "running").then_some(s.body)
            }
        })
        .await;
        assert_eq!(done["state"], "done", "{text:?}: {done}");
        let count = |k: &str| done[k].as_i64().unwrap();
        let expected_lines = text.split('\n').count() as i64;
        assert_eq!(count("lines"), expected_lines, "{text:?}: {done}");
        let accounted: i64 = [
            "pageviews",
            "assets",
            "redirects",
            "errors",
            "other",
            "invalid",
        ]
        .iter()
        .map(|k| count(k))
        .sum();
        assert_eq!(accounted, count("lines"), "{text:?}: {done}");
        assert_eq!(
            app.log_events().await as i64 - before,
            count("pageviews"),
            "{text:?}: {done}"
        );
        pageviews += count("pageviews");
        bots += count("bots");
        lines += count("lines");
    }
    app.wait_projected().await;
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_parked")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0, "an imported hit could not be projected");
    let r = app
        .query(
            property["read_key"].as_str().unwrap(),
            &json!({"site_id": "shop.example", "date_range": ["2026-11-01", "2026-11-03"],
                    "metrics": ["pageviews"]}),
        )
        .await;
    eprintln!("access-log import: {lines} lines, {pageviews} pageviews, {bots} bots");
    assert!(pageviews > bots && bots > 0 && lines > pageviews);
    // The import's bots are the ones reports leave out: one classification for all traffic.
    assert_eq!(
        r.body["results"][0]["metrics"][0],
        json!(pageviews - bots),
        "{}",
        r.text
    );
}
