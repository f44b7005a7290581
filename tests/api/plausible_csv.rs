//! Plausible's CSV layout, out and in: `GET /api/v1/export` writes a property's reports as the zip
//! Plausible exports, `POST …/imports?format=plausible-csv` and `footfall import plausible-csv` read
//! it (or Plausible's own files) as imported aggregates, and queries include them with
//! `include.imports`. The round trip: a fresh property that imports another's export answers the
//! daily totals and the main breakdowns exactly as the original does.

use serde_json::{json, Value};

use crate::helpers::{hit_event, spawn_app, Seed, TestApp, ADMIN_TOKEN};
use footfall::domain::{Geo, HitRecorded};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

fn geo(country: &str, region: &str, city: &str) -> Geo {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Geo {
        country: some(country),
        region: some(region),
        city: some(city),
        ..Geo::default()
    }
}

/// Three days of visits: twelve visitors, three of whom come back on another day, from several
/// sources, devices, places and pages, some converting.
fn traffic(property: &Value) -> Vec<HitRecorded> {
    let referrers = [
        Some("https://www.google.com/search?q=shoes"),
        Some("https://news.ycombinator.com/item?id=1"),
        None,
        Some("https://t.co/abc"),
    ];
    let agents = [FIREFOX, CHROME_ANDROID, SAFARI_IPHONE];
    let places = [
        geo("FR", "FR-IDF", "2988507"),
        geo("DE", "DE-BE", "2950159"),
        geo("US", "", ""),
        Geo::default(),
    ];
    let mut hits = Vec::new();
    let visits: Vec<(u64, u32)> = (1..=12u64)
        .map(|v| (v, (v % 3) as u32 + 1))
        .chain([(1, 3), (2, 1), (4, 2)])
        .collect();
    for (n, (v, day)) in visits.into_iter().enumerate() {
        let start = 9 * 3600 + 600 * n as i64;
        let at = |secs: i64| {
            let t = chrono::NaiveDate::from_ymd_opt(2026, 10, day)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                + chrono::Duration::seconds(start + secs);
            t.and_utc().to_rfc3339()
        };
        let utm = if v % 4 == 0 {
            "?utm_source=newsletter&utm_medium=email&utm_campaign=fall"
        } else {
            ""
        };
        let mut steps: Vec<(&str, String)> =
            vec![("pageview", format!("https://source.example/{utm}"))];
        if v % 2 == 0 {
            steps.push(("pageview", "https://source.example/pricing".into()));
        }
        if v % 3 == 0 {
            steps.push(("pageview", "https://blog.source.example/post".into()));
        }
        if v % 4 == 2 {
            steps.push(("Signup", "https://source.example/pricing".into()));
        }
        for (i, (name, url)) in steps.iter().enumerate() {
            let time = at(40 * i as i64);
            let mut h = hit_event(
                property,
                &Seed {
                    visitor: v,
                    at: &time,
                    name,
                    url,
                    props: &[],
                },
            );
            h.referrer = referrers[v as usize % 4].map(str::to_owned);
            h.user_agent = Some(agents[v as usize % 3].to_owned());
            h.geo = places[v as usize % 4].clone();
            hits.push(h);
        }
    }
    hits
}

/// A query's results as a sorted list (ties may be ordered differently by SQL and in memory).
async fn results(app: &TestApp, key: &str, site: &str, query: &Value, imports: bool) -> Value {
    let mut body = query.clone();
    body["site_id"] = json!(site);
    body["date_range"] = json!(["2026-10-01", "2026-10-03"]);
    body["include"] = json!({"imports": imports});
    let res = app.query(key, &body).await;
    assert_eq!(res.status, 200, "{body}: {}", res.text);
    let mut rows = res.body["results"].as_array().unwrap().clone();
    rows.sort_by_key(|r| r.to_string());
    json!({"results": rows, "imports_included": res.body["meta"]["imports_included"]})
}

/// The queries the round trip must answer identically: daily totals, and each main breakdown by
/// day. Over several days, imported visitors are the days' sum (they are counts, not sets), so
/// whole-range queries compare the other metrics.
fn round_trip_queries() -> Vec<Value> {
    let visit_metrics = json!([
        "visitors",
        "visits",
        "pageviews",
        "bounce_rate",
        "visit_duration"
    ]);
    let mut queries = vec![
        json!({"metrics": ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate",
                           "visit_duration", "events"], "dimensions": ["time:day"]}),
        json!({"metrics": ["visits", "pageviews", "bounce_rate", "visit_duration", "events"]}),
        json!({"metrics": ["visitors", "visits", "pageviews"], "dimensions": ["time:day", "event:page"]}),
        // A host's pageviews add up over its pages; its visitors would count a visitor per page.
        json!({"metrics": ["pageviews"], "dimensions": ["time:day", "event:hostname"]}),
        json!({"metrics": ["visitors", "events"], "dimensions": ["time:day", "event:name"]}),
        json!({"metrics": ["visits", "pageviews", "bounce_rate"], "dimensions": ["visit:source"]}),
        json!({"metrics": ["visitors", "visits"], "dimensions": ["time:day", "visit:device"],
               "filters": [["is", "visit:device", ["Desktop", "Mobile"]]]}),
    ];
    for dim in [
        "visit:source",
        "visit:referrer",
        "visit:utm_source",
        "visit:utm_medium",
        "visit:utm_campaign",
        "visit:device",
        "visit:browser",
        "visit:browser_version",
        "visit:os",
        "visit:os_version",
        "visit:country",
        "visit:region",
        "visit:city",
        "visit:entry_page",
        "visit:exit_page",
    ] {
        queries.push(json!({"metrics": visit_metrics, "dimensions": ["time:day", dim]}));
    }
    queries
}

#[actix_web::test]
async fn an_export_imported_into_a_fresh_property_answers_the_same() {
    let app = spawn_app().await;
    let source = app.register("source.example", "UTC").await;
    app.seed(traffic(&source)).await;
    app.wait_projected().await;

    // The export: a zip of the ten tables, named as Plausible names them.
    let res = app
        .get(
            "/api/v1/export?site_id=source.example&period=custom&date=2026-10-01,2026-10-03",
            source["read_key"].as_str().unwrap(),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.headers.get("content-type").unwrap(), "application/zip");
    let zip = res.bytes.clone();
    // Another implementation reads it too: Python's `zipfile`, checking every entry's CRC.
    let path = std::env::temp_dir().join(format!("footfall-export-{}.zip", uuid::Uuid::new_v4()));
    std::fs::write(&path, &zip).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-t"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = footfall::import::zip::read(&zip, 1 << 20).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(names.contains(&"imported_visitors_20261001_20261003.csv"));
    let visitors = String::from_utf8(files[0].1.clone()).unwrap();
    assert!(
        visitors.starts_with("date,visitors,pageviews,bounces,visits,visit_duration\r\n"),
        "{visitors}"
    );
    // Day 1: visitors 3, 6, 9, 12 and the returning 2.
    assert!(visitors.contains("\r\n2026-10-01,5,"), "{visitors}");

    // Imported into a fresh property, over HTTP.
    let copy = app.register("copy.example", "UTC").await;
    let copy_id = copy["id"].as_str().unwrap();
    let done = app
        .import(copy_id, "plausible-csv", "export.zip", zip.clone())
        .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (done["files"].as_i64(), done["days"].as_i64()),
        (Some(10), Some(3)),
        "{done}"
    );
    assert_eq!(done["invalid"], 0, "{done}");
    app.wait_projected().await;

    let (source_key, copy_key) = (
        source["read_key"].as_str().unwrap(),
        copy["read_key"].as_str().unwrap(),
    );
    for q in round_trip_queries() {
        let original = results(&app, source_key, "source.example", &q, false).await;
        let imported = results(&app, copy_key, "copy.example", &q, true).await;
        assert_eq!(imported["imports_included"], true, "{q}: {imported}");
        assert!(!original["results"].as_array().unwrap().is_empty(), "{q}");
        assert_eq!(imported["results"], original["results"], "{q}");
    }
    // Without `include.imports`, the copy has no data of its own.
    let own = results(
        &app,
        copy_key,
        "copy.example",
        &round_trip_queries()[0],
        false,
    )
    .await;
    assert_eq!(own["results"], json!([]), "{own}");
    // A query no imported table answers says why it left them out.
    let res = app
        .query(
            copy_key,
            &json!({"site_id": "copy.example", "date_range": ["2026-10-01", "2026-10-03"],
                    "metrics": ["visitors"], "dimensions": ["visit:channel"],
                    "include": {"imports": true}}),
        )
        .await;
    assert_eq!(res.body["meta"]["imports_included"], false, "{}", res.text);
    assert_eq!(res.body["meta"]["imports_skip_reason"], "unsupported_query");

    // The same export again is the same import, and appends nothing.
    let events = app.log_events().await;
    let again = app
        .import(copy_id, "plausible-csv", "export.zip", zip.clone())
        .await;
    assert_eq!(
        (again["id"].clone(), again["state"].clone()),
        (done["id"].clone(), json!("done"))
    );
    assert_eq!(app.log_events().await, events);

    // Deleting the import takes it out of the reports.
    let import = done["id"].as_str().unwrap();
    let path = format!("/api/admin/properties/{copy_id}/imports/{import}");
    let res = app
        .request("DELETE", &path, Some(ADMIN_TOKEN), &[], None)
        .await;
    assert_eq!(
        (res.status, res.body["state"].clone()),
        (200, json!("deleted")),
        "{}",
        res.text
    );
    app.wait_projected().await;
    let gone = results(
        &app,
        copy_key,
        "copy.example",
        &round_trip_queries()[0],
        true,
    )
    .await;
    assert_eq!(gone, json!({"results": [], "imports_included": false}));
    assert_eq!(app.admin_get(&path).await.body["state"], "deleted");

    // Imported again after its deletion, it is a new import, and counts again.
    let back = app
        .import(copy_id, "plausible-csv", "export.zip", zip)
        .await;
    assert_ne!(back["id"], done["id"]);
    app.wait_projected().await;
    let q = &round_trip_queries()[0];
    assert_eq!(
        results(&app, copy_key, "copy.example", q, true).await["results"],
        results(&app, source_key, "source.example", q, false).await["results"]
    );
    // Imports of hits cannot be deleted this way; unknown ones are 404.
    let res = app
        .request(
            "DELETE",
            &format!(
                "/api/admin/properties/{copy_id}/imports/{}",
                uuid::Uuid::nil()
            ),
            Some(ADMIN_TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!((res.status, res.code()), (404, "import_not_found"));
}

/// Plausible's own files: an older layout (no `pageviews` or versions in the visit tables), the
/// columns in another order, a byte-order mark, quoted labels, imported from a folder by the
/// command line, a real process. Exact numbers from the files.
#[actix_web::test]
async fn plausible_files_import_from_a_folder_with_their_numbers() {
    let app = spawn_app().await;
    let property = app.register("legacy.example", "UTC").await;
    let dir = std::env::temp_dir().join(format!("footfall-csv-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        (
            "imported_visitors_20240101_20240102.csv",
            "\u{feff}date,visitors,pageviews,bounces,visits,visit_duration\n\
             2024-01-01,10,30,4,12,600\n2024-01-02,5,9,5,5,0\n",
        ),
        (
            "imported_browsers_20240101_20240102.csv",
            "visitors,date,browser,visits,visit_duration,bounces\n\
             7,2024-01-01,Firefox,8,500,2\n3,2024-01-01,\"Chrome, beta\",4,100,2\n5,2024-01-02,Firefox,5,0,5\n",
        ),
        (
            "imported_pages_20240101_20240102.csv",
            "date,hostname,page,visits,visitors,pageviews,exits,time_on_page\n\
             2024-01-01,legacy.example,/,10,9,20,7,100\n2024-01-01,legacy.example,/about,3,3,10,3,0\n\
             2024-01-02,legacy.example,/,5,5,9,5,0\n",
        ),
        (
            "imported_custom_events_20240101_20240102.csv",
            "date,name,link_url,path,visitors,events\n2024-01-02,Signup,,,2,3\n",
        ),
        ("README.txt", "not a table"),
    ];
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_footfall"))
        .args(["import", "plausible-csv", "--domain", "legacy.example"])
        .arg(&dir)
        .env("DATABASE_URL", &app.database_url)
        .env("FOOTFALL_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts = &report["counts"];
    assert_eq!(
        [
            &counts["files"],
            &counts["days"],
            &counts["lines"],
            &counts["pageviews"],
            &counts["other"]
        ],
        [&json!(4), &json!(2), &json!(9), &json!(39), &json!(1)],
        "{report}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    app.wait_projected().await;

    let key = property["read_key"].as_str().unwrap();
    let ask = |metrics: Value, dimensions: Value| {
        json!({"site_id": "legacy.example", "date_range": ["2024-01-01", "2024-01-02"],
               "metrics": metrics, "dimensions": dimensions, "include": {"imports": true}})
    };
    let rows = |res: crate::helpers::Response| res.body["results"].clone();
    // Totals: visitors are summed over the days; bounce rate 9/17, duration 600/17, 2 views a visit.
    let res = app
        .query(
            key,
            &ask(
                json!([
                    "visitors",
                    "visits",
                    "pageviews",
                    "bounce_rate",
                    "visit_duration",
                    "views_per_visit",
                    "events"
                ]),
                json!([]),
            ),
        )
        .await;
    assert_eq!(
        rows(res),
        json!([{"dimensions": [], "metrics": [15, 17, 39, 53, 35, 2.29, 42]}])
    );
    let res = app
        .query(
            key,
            &ask(json!(["visitors", "bounce_rate"]), json!(["visit:browser"])),
        )
        .await;
    assert_eq!(
        rows(res),
        json!([{"dimensions": ["Firefox"], "metrics": [12, 54]},
               {"dimensions": ["Chrome, beta"], "metrics": [3, 50]}])
    );
    let res = app
        .query(
            key,
            &ask(
                json!(["visitors", "pageviews"]),
                json!(["time:day", "event:page"]),
            ),
        )
        .await;
    assert_eq!(
        rows(res),
        json!([{"dimensions": ["2024-01-01", "/"], "metrics": [9, 20]},
               {"dimensions": ["2024-01-02", "/"], "metrics": [5, 9]},
               {"dimensions": ["2024-01-01", "/about"], "metrics": [3, 10]}])
    );
    let res = app
        .query(
            key,
            &ask(json!(["visitors", "events"]), json!(["event:name"])),
        )
        .await;
    assert_eq!(
        rows(res),
        json!([{"dimensions": ["pageview"], "metrics": [15, 39]},
               {"dimensions": ["Signup"], "metrics": [2, 3]}])
    );
    // Paged after the imported groups are added.
    let mut second = ask(json!(["visitors"]), json!(["event:name"]));
    second["pagination"] = json!({"limit": 1, "offset": 1});
    let res = app.query(key, &second).await;
    assert_eq!(
        rows(res),
        json!([{"dimensions": ["Signup"], "metrics": [2]}])
    );
}

#[actix_web::test]
async fn a_damaged_or_foreign_archive_is_refused_before_anything_is_appended() {
    let app = spawn_app().await;
    let property = app.register("shop.example", "UTC").await;
    let id = property["id"].as_str().unwrap();
    let before = app.log_events().await;
    let zip_of = |content: &[u8]| {
        footfall::import::zip::write(&[("imported_visitors.csv".into(), content.to_vec())]).unwrap()
    };
    let zip = zip_of(b"date,visitors\n2024-01-01,1\n");
    for (body, why) in [
        (
            zip_of(b"date,visitors\n\"2024-01-01,1\n"),
            "an unclosed quote",
        ),
        (
            b"just text".to_vec(),
            "no file of the layout (the body is one file named export.zip)",
        ),
        (zip[..zip.len() - 30].to_vec(), "a truncated zip"),
        (zip_of(b"device,visitors\n"), "a table without dates"),
    ] {
        let res = app
            .request(
                "POST",
                &format!(
                    "/api/admin/properties/{id}/imports?format=plausible-csv&source=export.zip"
                ),
                Some(ADMIN_TOKEN),
                &[],
                Some(body),
            )
            .await;
        assert_eq!(
            (res.status, res.code()),
            (400, "invalid_archive"),
            "{why}: {}",
            res.text
        );
    }
    assert_eq!(app.log_events().await, before);
}
