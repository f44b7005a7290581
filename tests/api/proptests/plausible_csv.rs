//! Property test of the import of Plausible's CSV layout (`POST …/imports?format=plausible-csv`):
//! zips of table files whose headers are shuffled, partial or padded, whose labels are arbitrary
//! Unicode and whose counts and dates are numbers, garbage or empty, beside garbage files and
//! garbage bodies. The invariant: a refusal is `400 invalid_archive` with nothing appended; an
//! acceptance finishes `done`, counts every data row once (imported or invalid), and every row it
//! imported reaches the `imported` read model (nothing parked), where a query includes it.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::strategy::ValueTree;
use serde_json::json;

use super::reads::runner;
use super::strategies::nasty;
use crate::helpers::{eventually, spawn_app, ADMIN_TOKEN};
use footfall::domain::ImportedTable;
use footfall::import::csv::write_record;

/// A count field: a number, a negative one, garbage or empty.
fn count() -> BoxedStrategy<String> {
    prop_oneof![
        6 => (0i64..1_000_000).prop_map(|n| n.to_string()),
        1 => Just(String::new()),
        1 => Just("-3".to_owned()),
        1 => Just(i64::MAX.to_string()),
        1 => nasty(),
    ]
    .boxed()
}

fn date() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (0u32..60).prop_map(|d| (chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
            + chrono::Duration::days(d.into())).to_string()),
        1 => Just("0000-01-01".to_owned()),
        1 => nasty(),
    ]
    .boxed()
}

/// One table file: a header of some of the table's columns (and maybe a foreign one), in any
/// order, and rows of fields for it.
fn table_file() -> BoxedStrategy<(String, String)> {
    (0..ImportedTable::ALL.len(), any::<bool>())
        .prop_flat_map(|(t, extra)| {
            let table = ImportedTable::ALL[t];
            let mut columns: Vec<&'static str> = table.labels().iter().map(|(c, _)| *c).collect();
            columns.extend(table.counts().iter().map(|(c, _)| *c));
            if extra {
                columns.push("scroll_depth");
            }
            let n = columns.len();
            (
                Just(table),
                subsequence(columns, 0..=n).prop_shuffle(),
                vec(any::<u16>(), 0..12),
            )
        })
        .prop_flat_map(|(table, columns, rows)| {
            let mut header = columns.clone();
            header.insert(0, "date");
            let row = (date(), vec(prop_oneof![nasty(), count()], columns.len()));
            (Just(table), Just(header), vec(row, rows.len()))
        })
        .prop_map(|(table, header, rows)| {
            let mut text = String::new();
            write_record(&mut text, &header);
            for (date, mut fields) in rows {
                fields.insert(0, date);
                write_record(&mut text, &fields);
            }
            (format!("{}_20250101_20250301.csv", table.name()), text)
        })
        .boxed()
}

/// A zip of table files and maybe a foreign file, or a body that is no zip at all.
fn body() -> BoxedStrategy<Vec<u8>> {
    let file = prop_oneof![
        8 => table_file(),
        1 => (nasty(), nasty()).prop_map(|(name, content)| (format!("{name}.csv"), content)),
    ];
    prop_oneof![
        10 => vec(file, 1..4).prop_map(|files| {
            let files: Vec<(String, Vec<u8>)> =
                files.into_iter().map(|(n, c)| (n, c.into_bytes())).collect();
            footfall::import::zip::write(&files).unwrap()
        }),
        1 => nasty().prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..200),
    ]
    .boxed()
}

#[actix_web::test]
async fn proptest_plausible_csv_import() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    let id = property["id"].as_str().unwrap();
    let mut runner = runner("plausible-csv");
    let strategy = body();
    let (mut accepted, mut refused, mut rows) = (0, 0, 0i64);
    for _ in 0..40 {
        let input = strategy.new_tree(&mut runner).unwrap().current();
        let before = app.log_events().await;
        let res = app
            .request(
                "POST",
                &format!("/api/admin/properties/{id}/imports?format=plausible-csv"),
                Some(ADMIN_TOKEN),
                &[],
                Some(input.clone()),
            )
            .await;
        let shown = String::from_utf8_lossy(&input).into_owned();
        if res.status == 400 {
            assert_eq!(res.code(), "invalid_archive", "{shown:?}: {}", res.text);
            assert_eq!(app.log_events().await, before, "{shown:?}");
            refused += 1;
            continue;
        }
        assert_eq!(res.status, 202, "{shown:?}: {}", res.text);
        accepted += 1;
        let url = res.body["status_url"].as_str().unwrap().to_owned();
        let done = eventually(Duration::from_secs(30), "the import to finish", || {
            let (app, url) = (&app, url.clone());
            async move {
                let s = app.admin_get(&url).await;
                (s.body["state"] != "running").then_some(s.body)
            }
        })
        .await;
        assert_eq!(done["state"], "done", "{shown:?}: {done}");
        let (lines, invalid) = (
            done["lines"].as_i64().unwrap(),
            done["invalid"].as_i64().unwrap(),
        );
        assert!(invalid <= lines, "{shown:?}: {done}");
        app.wait_projected().await;
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM imported WHERE import_id = $1::uuid")
                .bind(done["id"].as_str().unwrap())
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(stored, lines - invalid, "{shown:?}: {done}");
        rows += stored;
    }
    let parked: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_parked")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(parked, 0, "an imported row could not be projected");
    // Whatever was imported, a query that includes it answers.
    let res = app
        .query(
            property["read_key"].as_str().unwrap(),
            &json!({"site_id": "shop.example", "date_range": ["2025-01-01", "2025-03-01"],
                    "metrics": ["visitors", "visits", "pageviews", "bounce_rate"],
                    "include": {"imports": true}}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    eprintln!("plausible-csv import: {accepted} accepted ({rows} rows stored), {refused} refused");
    assert!(accepted > 10 && refused > 0 && rows > 0);
}
