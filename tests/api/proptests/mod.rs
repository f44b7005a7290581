//! Property-based tests: arbitrary Unicode and arbitrary JSON shapes thrown at every collection
//! protocol, mixed into otherwise valid requests for a registered property. The invariant is
//! "accepted ⇒ projectable":
//!
//! - a refusal is a 4xx with `{"error":{"code":…}}`, and nothing is appended to the log;
//! - an acceptance (2xx) appended its hits, and the `hits` projection folds them: after the batch,
//!   the live generations reach the log head, and the read model has a row for every hit;
//! - never a 5xx, never a dropped connection.
//!
//! The Measurement Protocol answers 204 even for invalid events (as GA4 does): there the log must
//! grow by exactly the number of events that `/debug/mp/collect` finds valid in the same body.
//!
//! How it runs. proptest's runner is synchronous and the app is async, so each test draws its
//! cases up front from the strategies with a seeded `TestRunner` (`new_tree`) and sends them in
//! sequence to one app. It keeps the value tree of the first failing case of each kind and, after
//! the batch, shrinks it with the loop proptest itself runs (`simplify` while it still fails,
//! `complicate` when it stops failing), each candidate sent to the same app: the report shows the
//! original and the minimal input.
//!
//! A hit that the projection cannot fold stalls the live projection for every later event (or,
//! with parking, is set aside in `projection_parked`, which counts as a failure too), so a case's
//! own projectability cannot be read off the live projection, and shrinking could not use it.
//! Each accepted case's events are therefore also replayed, as an oracle, through the `hits`
//! projection's writer into a scratch generation of its tables, in a transaction that is rolled
//! back. The invariant itself is checked on the live projection at the end of the batch.
//!
//! `FOOTFALL_PROPTEST_CASES` (default 200) and `FOOTFALL_PROPTEST_SEED` (a u64) change the run;
//! the seed is fixed otherwise, so a run is repeatable, and every failure prints its input.
//! `FOOTFALL_PROPTEST_VERBOSE=1` prints every case with its answer.

mod browser;
mod ga4;
mod imports;
mod live;
mod plausible_csv;
mod reads;
mod runner;
mod strategies;

use crate::helpers::spawn_app;

use browser::{plausible, tracker, umami};
use ga4::{gtag_get, gtag_post, measurement_protocol};
use runner::run;
use strategies::Target;

// ---------------------------------------------------------------------------------------------
// The tests: one per input path.

#[actix_web::test]
async fn proptest_plausible_events_api() {
    let app = spawn_app().await;
    app.register("shop.example", "UTC").await;
    // A second property, for the comma-separated `domain` lists.
    app.register("other.example", "UTC").await;
    run("plausible", &app, plausible()).await;
}

#[actix_web::test]
async fn proptest_footfall_tracker() {
    let app = spawn_app().await;
    app.register("shop.example", "UTC").await;
    run("tracker", &app, tracker()).await;
}

#[actix_web::test]
async fn proptest_umami() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    run("umami", &app, umami(&Target::of(&p))).await;
}

#[actix_web::test]
async fn proptest_gtag_get() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    run("gtag GET", &app, gtag_get(&Target::of(&p))).await;
}

#[actix_web::test]
async fn proptest_gtag_post() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    run("gtag POST", &app, gtag_post(&Target::of(&p))).await;
}

#[actix_web::test]
async fn proptest_measurement_protocol() {
    let app = spawn_app().await;
    let p = app.register("shop.example", "UTC").await;
    run(
        "measurement protocol",
        &app,
        measurement_protocol(&Target::of(&p)),
    )
    .await;
}
