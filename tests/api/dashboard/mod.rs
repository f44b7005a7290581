//! The dashboard, driven in Debian's headless Chromium through WebDriver against a real server
//! with known traffic: what the page shows, after filters, period changes, clicks and in
//! realtime; shared links; wrong keys; the admin view; screenshots at desktop and phone widths.

mod api;
pub(crate) mod webdriver;

use serde_json::{json, Value};

use crate::helpers::{hit_event, spawn_app, Seed, TestApp, ADMIN_TOKEN};
use webdriver::Browser;

/// Eight hits of six visitors on 2 and 3 November, in four countries, and two visitors now.
async fn shop_with_known_traffic(app: &TestApp) -> Value {
    let property = app.register("shop.example", "UTC").await;
    app.set_goals(&property, json!([{"event": "Signup"}])).await;
    let past = [
        (1, "2026-11-02T10:00:00Z", "pageview", "/", "GB"),
        (1, "2026-11-02T10:01:00Z", "pageview", "/pricing", "GB"),
        (2, "2026-11-02T11:00:00Z", "pageview", "/", "GB"),
        (3, "2026-11-03T09:00:00Z", "pageview", "/blog", "US"),
        (4, "2026-11-03T10:00:00Z", "pageview", "/", "US"),
        (4, "2026-11-03T10:02:00Z", "Signup", "/", "US"),
        (5, "2026-11-03T12:00:00Z", "pageview", "/pricing", "FR"),
        (6, "2026-11-03T13:00:00Z", "pageview", "/", "DE"),
    ];
    let now = chrono::Utc::now();
    let recent = [
        (7, (now - chrono::Duration::minutes(2)).to_rfc3339()),
        (8, (now - chrono::Duration::minutes(1)).to_rfc3339()),
    ];
    let mut hits: Vec<_> = past
        .iter()
        .map(|(visitor, at, name, path, country)| {
            let mut hit = hit_event(
                &property,
                &Seed {
                    visitor: *visitor,
                    at,
                    name,
                    url: &format!("https://shop.example{path}"),
                    props: &[("plan", "pro")],
                },
            );
            hit.geo.country = Some((*country).into());
            hit
        })
        .collect();
    hits.extend(recent.iter().map(|(visitor, at)| {
        hit_event(
            &property,
            &Seed {
                visitor: *visitor,
                at,
                name: "pageview",
                url: "https://shop.example/live",
                props: &[],
            },
        )
    }));
    app.seed(hits).await;
    app.wait_projected().await;
    property
}

/// The top stats as `metric → data-raw`.
async fn stats(browser: &Browser) -> Value {
    browser
        .js(
            "return Object.fromEntries([...document.querySelectorAll('[data-metric]')]
               .map(e => [e.dataset.metric, e.dataset.raw]))",
        )
        .await
}

/// A panel's rows as `[value, visitors]`, sorted (ties have no fixed order).
async fn rows(browser: &Browser, panel: &str) -> Vec<(String, String)> {
    let found = browser
        .js(&format!(
            "return [...document.querySelectorAll('[data-panel={panel}] [data-row]')]
               .map(r => [r.dataset.value, r.querySelector('[data-visitors]').textContent.trim()])"
        ))
        .await;
    let mut rows: Vec<(String, String)> = serde_json::from_value(found).unwrap();
    rows.sort();
    rows
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    v.sort();
    v
}

/// Where screenshots go: `target/test-artifacts/`.
fn artifact(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[actix_web::test]
async fn the_dashboard_shows_the_traffic_and_follows_filters_periods_clicks_and_realtime() {
    let app = spawn_app().await;
    let property = shop_with_known_traffic(&app).await;
    let key = property["read_key"].as_str().unwrap();
    let browser = Browser::start(1280, 1800).await;
    let week = app.url("/dashboard/shop.example?period=custom&from=2026-11-01&to=2026-11-07");

    // The read key arrives once in the fragment, which the page keeps in sessionStorage and drops.
    browser.goto(&format!("{week}#key={key}")).await;
    browser.ready().await;
    let s = stats(&browser).await;
    assert_eq!(
        (&s["visitors"], &s["visits"], &s["pageviews"]),
        (&json!("6"), &json!("6"), &json!("7")),
        "{s}"
    );
    let api = app
        .query(
            key,
            &json!({"site_id": "shop.example", "date_range": ["2026-11-01", "2026-11-07"],
                    "metrics": ["views_per_visit", "bounce_rate", "visit_duration"]}),
        )
        .await;
    let m = &api.body["results"][0]["metrics"];
    for (i, name) in ["views_per_visit", "bounce_rate", "visit_duration"]
        .iter()
        .enumerate()
    {
        let shown: f64 = s[name].as_str().unwrap().parse().unwrap();
        assert_eq!(shown, m[i].as_f64().unwrap(), "{name}: {s} vs {m}");
    }
    let text = browser
        .js("return document.querySelector('[data-metric=pageviews]').textContent")
        .await;
    assert!(text.as_str().unwrap().contains('7'), "{text}");
    assert_eq!(
        browser.js("return location.hash").await,
        json!(""),
        "the key left the URL"
    );
    assert_eq!(
        rows(&browser, "pages").await,
        pairs(&[("/", "4"), ("/pricing", "2"), ("/blog", "1")])
    );
    assert_eq!(
        rows(&browser, "countries").await,
        pairs(&[("GB", "2"), ("US", "2"), ("FR", "1"), ("DE", "1")])
    );
    assert!(
        browser
            .js("return document.querySelector('[data-chart=main] canvas') !== null")
            .await
            == true
    );
    let desktop = browser.screenshot().await;
    assert_eq!(&desktop[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::write(artifact("dashboard-desktop.png"), &desktop).unwrap();

    // A filter from the URL.
    browser.goto(&format!("{week}&f=is,visit:country,GB")).await;
    browser.ready().await;
    let s = stats(&browser).await;
    assert_eq!(
        (&s["visitors"], &s["pageviews"]),
        (&json!("2"), &json!("3")),
        "{s}"
    );
    assert_eq!(
        rows(&browser, "pages").await,
        pairs(&[("/", "2"), ("/pricing", "1")])
    );
    let chips = browser
        .js("return document.querySelector('[data-filters]').textContent")
        .await;
    assert!(chips.as_str().unwrap().contains("GB"), "{chips}");

    // Clicking a row filters the whole dashboard; removing the chip undoes it.
    browser.goto(&week).await;
    browser.ready().await;
    browser
        .click("[data-panel=pages] [data-row][data-value='/pricing'] button")
        .await;
    browser
        .until(
            "the row's filter in the URL",
            "return decodeURIComponent(location.search).includes('f=is,event:page,/pricing')",
        )
        .await;
    browser.ready().await;
    assert_eq!(stats(&browser).await["visitors"], json!("2"));
    browser.click("[data-filter-remove]").await;
    browser
        .until(
            "the filter to go",
            "return !location.search.includes('f=') && document.querySelector('main[data-state=ready]') && \
             document.querySelector('[data-metric=visitors]').dataset.raw === '6'",
        )
        .await;

    // Clicking a stat graphs it.
    browser.click("[data-metric=pageviews]").await;
    browser
        .until(
            "metric=pageviews",
            "return location.search.includes('metric=pageviews') && \
             document.querySelector('[data-metric=pageviews]').getAttribute('aria-pressed') === 'true'",
        )
        .await;

    // The comparison with the previous period (empty: every count rose by 100 %).
    browser
        .goto(&format!("{week}&compare=previous_period"))
        .await;
    browser.ready().await;
    let change = browser
        .js("return document.querySelector('[data-metric=visitors] [data-change]')?.dataset.change")
        .await;
    assert_eq!(change, json!("100"));

    // A goal filter turns the stats into conversions.
    browser
        .goto(&format!("{week}&f=is,event:goal,Signup"))
        .await;
    browser.ready().await;
    let s = stats(&browser).await;
    assert_eq!(
        (&s["visitors"], &s["events"]),
        (&json!("1"), &json!("1")),
        "{s}"
    );
    let rate: f64 = s["conversion_rate"].as_str().unwrap().parse().unwrap();
    assert!((rate - 100.0 / 6.0).abs() < 0.1, "{s}");

    // Exports: one panel, and the whole dashboard.
    browser.goto(&week).await;
    browser.ready().await;
    let csv = browser
        .js_async("footfallExport('pages').then(arguments[0])")
        .await;
    let csv = csv.as_str().unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .starts_with("event:page,visitors"),
        "{csv}"
    );
    assert!(csv.lines().any(|l| l.starts_with("/pricing,2")), "{csv}");
    let all = browser
        .js_async("footfallExport('dashboard').then(arguments[0])")
        .await;
    let all = all.as_str().unwrap();
    assert!(
        all.starts_with("section,dimension,value,metric,number"),
        "{all}"
    );
    assert!(all.lines().any(|l| l == "top_stats,,,visitors,6"), "{all}");
    assert!(
        all.lines()
            .any(|l| l == "countries,visit:country,GB,visitors,2"),
        "{all}"
    );

    // Imported history (Plausible's CSV layout) joins the reports when the toggle asks for it.
    let zip = footfall::import::zip::write(&[
        (
            "imported_visitors_20261101_20261101.csv".into(),
            b"date,visitors,pageviews,bounces,visits,visit_duration\n2026-11-01,10,25,5,12,300\n"
                .to_vec(),
        ),
        (
            "imported_pages_20261101_20261101.csv".into(),
            b"date,hostname,page,visits,visitors,pageviews\n2026-11-01,shop.example,/,12,10,25\n"
                .to_vec(),
        ),
    ])
    .unwrap();
    let res = app
        .request(
            "POST",
            &format!(
                "/api/admin/properties/{}/imports?format=plausible-csv",
                property["id"].as_str().unwrap()
            ),
            Some(crate::helpers::ADMIN_TOKEN),
            &[],
            Some(zip),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    crate::helpers::eventually(std::time::Duration::from_secs(30), "the import", || {
        let (app, url) = (&app, res.body["status_url"].as_str().unwrap().to_owned());
        async move { (app.admin_get(&url).await.body["state"] == "done").then_some(()) }
    })
    .await;
    app.wait_projected().await;
    browser.goto(&week).await;
    browser.ready().await;
    assert_eq!(stats(&browser).await["visitors"], json!("6"));
    browser.click("[data-control=imports]").await;
    browser
        .until(
            "the imported visitors in the top stats",
            "return location.search.includes('imports=1') && \
             document.querySelector('main[data-state=ready]') && \
             document.querySelector('[data-metric=visitors]').dataset.raw === '16'",
        )
        .await;
    assert_eq!(
        rows(&browser, "pages").await[0],
        ("/".to_owned(), "14".to_owned())
    );

    // A period change with the picker: the last 30 minutes, and realtime updating by itself.
    browser
        .click("select[data-control=period] option[value=realtime]")
        .await;
    browser
        .until(
            "the realtime period",
            "return location.search.includes('period=realtime') && \
             document.querySelector('main[data-state=ready]') !== null",
        )
        .await;
    let s = stats(&browser).await;
    assert_eq!(s["visitors"], json!("2"), "{s}");
    assert_eq!(rows(&browser, "pages").await, pairs(&[("/live", "2")]));
    browser
        .until(
            "two current visitors",
            "return document.querySelector('[data-metric=current_visitors]')?.dataset.raw === '2'",
        )
        .await;
    let res = app
        .post_event(
            &json!({"n": "pageview", "u": "https://shop.example/live", "d": "shop.example"}),
            &[],
        )
        .await;
    assert_eq!(res.status, 202);
    browser
        .until(
            "the new visitor to show up without a reload",
            "return document.querySelector('[data-metric=current_visitors]')?.dataset.raw === '3' && \
             document.querySelector('[data-metric=visitors]')?.dataset.raw === '3'",
        )
        .await;

    // A phone's width.
    browser.goto(&week).await;
    browser.ready().await;
    browser
        .js("document.querySelector('[data-panel=pages]').scrollIntoView()")
        .await;
    browser.quit().await;
    let phone = Browser::start(390, 844).await;
    phone.goto(&format!("{week}#key={key}")).await;
    phone.ready().await;
    let widths = phone
        .js("return [window.innerWidth, document.documentElement.scrollWidth]")
        .await;
    assert_eq!(widths, json!([390, 390]), "no sideways scrolling");
    std::fs::write(artifact("dashboard-phone.png"), phone.screenshot().await).unwrap();
    phone.quit().await;
}

#[actix_web::test]
async fn shared_links_open_one_dashboard_until_revoked_and_wrong_keys_are_refused() {
    let app = spawn_app().await;
    let property = shop_with_known_traffic(&app).await;
    let other = app.register("other.example", "UTC").await;
    let id = property["id"].as_str().unwrap();
    let res = app
        .admin_post(
            &format!("/api/admin/properties/{id}/shared-links"),
            &json!({"name": "Board"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let link = res.body.clone();
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&app.url("/share/shop.example?auth=")),
        "{url}"
    );
    let token = link["token"].as_str().unwrap();
    // The token reads this property only.
    let q = |site: &str| json!({"site_id": site, "date_range": "7d", "metrics": ["visitors"]});
    assert_eq!(app.query(token, &q("shop.example")).await.status, 200);
    assert_eq!(app.query(token, &q("other.example")).await.status, 401);
    assert_eq!(app.admin_get("/api/admin/projections").await.status, 200);
    assert_eq!(
        app.get("/api/admin/projections", token).await.status,
        401,
        "a shared link is no admin token"
    );

    let browser = Browser::start(1280, 1200).await;
    browser
        .goto(&format!(
            "{url}&period=custom&from=2026-11-01&to=2026-11-07"
        ))
        .await;
    browser.ready().await;
    assert_eq!(stats(&browser).await["visitors"], json!("6"));
    assert_eq!(
        browser
            .js("return document.querySelector('form[data-login]') === null")
            .await,
        json!(true)
    );
    // Its state changes keep the token in the URL, so the view can be shared on.
    browser.click("[data-metric=pageviews]").await;
    browser
        .until(
            "the token to stay in the URL",
            "return location.search.includes('auth=') && location.search.includes('metric=pageviews')",
        )
        .await;

    let res = app
        .request(
            "DELETE",
            &format!(
                "/api/admin/properties/{id}/shared-links/{}",
                link["id"].as_str().unwrap()
            ),
            Some(ADMIN_TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    browser.goto(url).await;
    browser
        .until(
            "the revoked link to be refused",
            "return document.querySelector('[data-error=unauthorized]') !== null",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.querySelector('[data-metric=visitors]') === null")
            .await,
        json!(true)
    );
    assert_eq!(app.query(token, &q("shop.example")).await.status, 401);

    // A wrong key: refused, with the form to try another.
    browser
        .goto(&app.url("/dashboard/shop.example#key=not-the-key"))
        .await;
    browser
        .until(
            "the wrong key to be refused",
            "return document.querySelector('[data-error=unauthorized]') !== null && \
             document.querySelector('form[data-login]') !== null",
        )
        .await;
    // ...and the other property's key does not open this one either.
    browser
        .goto(&app.url(&format!(
            "/dashboard/shop.example#key={}",
            other["read_key"].as_str().unwrap()
        )))
        .await;
    browser
        .until(
            "another property's key to be refused",
            "return document.querySelector('[data-error=unauthorized]') !== null",
        )
        .await;

    // The admin token, typed into the login form, lists every property and opens the admin view.
    browser.goto(&app.url("/")).await;
    browser
        .until(
            "the login form at /dashboard",
            "return location.pathname === '/dashboard' && document.querySelector('form[data-login] input') !== null",
        )
        .await;
    browser
        .type_into("form[data-login] input", ADMIN_TOKEN)
        .await;
    browser.click("form[data-login] button[type=submit]").await;
    browser
        .until(
            "the list of properties",
            "return document.querySelector('a[href=\"/dashboard/shop.example\"]') !== null && \
             document.querySelector('a[href=\"/dashboard/other.example\"]') !== null",
        )
        .await;
    browser.goto(&app.url("/admin")).await;
    browser
        .until(
            "the projections in the admin view",
            "return document.querySelector('tr[data-projection=hits]') !== null",
        )
        .await;
    let text = browser.js("return document.body.textContent").await;
    assert!(text.as_str().unwrap().contains("other.example"));

    // Registering a property, and rebuilding a projection with its progress, from the admin view.
    browser
        .type_into("form[data-form=register] input[name=domain]", "new.example")
        .await;
    browser
        .type_into("form[data-form=register] input[name=name]", "New shop")
        .await;
    browser
        .click("form[data-form=register] button[type=submit]")
        .await;
    browser
        .until(
            "the registration to be confirmed",
            "return document.querySelector('[role=status]')?.textContent.includes('new.example')",
        )
        .await;
    let listed = app.admin_get("/api/admin/properties").await;
    assert!(listed.text.contains("\"new.example\""), "{}", listed.text);
    browser.click("[data-rebuild-button=hits]").await;
    browser
        .until(
            "generation 2 of hits, live, in the admin view",
            "const row = document.querySelector('tr[data-projection=hits]'); \
             return row && row.querySelectorAll('td')[0].textContent.trim() === '2' && \
                    row.textContent.includes('live') && !row.querySelector('[data-rebuild]')",
        )
        .await;
    assert_eq!(app.projection_status("hits").await["generation"], 2);

    // Funnels, edited from the admin view.
    browser
        .click("tr[data-property='shop.example'] button[aria-expanded]")
        .await;
    browser
        .until(
            "the funnels editor",
            "return document.querySelector('form[data-editor=funnels] textarea:not([disabled])') !== null",
        )
        .await;
    browser
        .type_into(
            "form[data-editor=funnels] textarea",
            "Checkout: / > /pricing > event: Signup",
        )
        .await;
    browser
        .click("form[data-editor=funnels] button[type=submit]")
        .await;
    browser
        .until(
            "the funnels to be saved",
            "return document.querySelector('form[data-editor=funnels] [role=status]') !== null",
        )
        .await;
    let shown = app.admin_get(&format!("/api/admin/properties/{id}")).await;
    assert_eq!(
        shown.body["funnels"],
        json!([{"name": "Checkout", "steps": [{"page": "/"}, {"page": "/pricing"}, {"event": "Signup"}]}]),
        "{}",
        shown.text
    );
    browser.quit().await;
}
