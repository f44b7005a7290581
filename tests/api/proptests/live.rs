//! The invariant on the live projection, checked after the batch.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use footfall::domain::enrich::is_bot;

use super::runner::{Case, Ctx};

/// After the batch: the live generations reach the log head, and the read model holds every
/// logged hit. Returns a summary of the read model and, if the invariant fails, what failed.
///
/// The numbers: every `HitRecorded` of the log is one of
/// - a hit from a bot (its user agent is a bot's, as the projection decides with `is_bot`): left
///   out of `hits`, counted in `rollup_daily` under the `bot` dimension (engagement pings from
///   bots are not counted at all);
/// - an engagement ping (name `engagement`, what Plausible's `engagement` and GA4's
///   `user_engagement` become): it extends its visit and has no row;
/// - any other hit: one row in `hits` (the view over the live generation's per-hit table), with
///   its log position.
pub(super) async fn live_check(
    ctx: &Ctx<'_>,
    spans: &[(i64, i64)],
    inputs: &[Case],
    stall_expected: bool,
) -> (String, Option<String>) {
    let pool = &ctx.app.pool;
    let head = ctx.head().await;
    // What `wait_projected` waits for, with a deadline of our own: a stalled projection is
    // reported with the case that stalled it instead of a timeout. When the oracle already found
    // a hit that cannot be folded, the stall is expected and not waited out for long.
    let until = Instant::now()
        + if stall_expected {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(30)
        };
    loop {
        let behind: Vec<(String, i32, i64)> = sqlx::query_as(
            "SELECT projection, generation, position FROM projection_generations \
             WHERE state = 'live' AND position < $1",
        )
        .bind(head)
        .fetch_all(pool)
        .await
        .unwrap();
        if behind.is_empty() {
            break;
        }
        if Instant::now() >= until {
            let mut out = String::new();
            for (projection, generation, checkpoint) in behind {
                // Positions are dense: the event the projection stays before is the next one.
                let next = checkpoint + 1;
                write!(
                    out,
                    "the live projection `{projection}` (generation {generation}) stays at \
                     position {checkpoint} of {head}: "
                )
                .unwrap();
                match spans.iter().position(|(b, a)| next > *b && next <= *a) {
                    Some(i) => writeln!(
                        out,
                        "it cannot apply the batch from position {next}, appended by case #{i}:\n{}",
                        inputs[i]
                    )
                    .unwrap(),
                    None => writeln!(out, "the next event is at position {next}").unwrap(),
                }
            }
            return (
                "read model: not checked, the projection is stalled".into(),
                Some(out),
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await; // poll interval, not a wait
    }

    let mut out = String::new();
    let case_of = |p: &i64| spans.iter().position(|(b, a)| p > b && p <= a);
    // A projection that cannot apply an event parks it and goes on (src/projections/parked.rs):
    // an accepted hit parked is an accepted hit not projected.
    let parked: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT projection, position, error FROM projection_parked ORDER BY position",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    if let Some((projection, p, error)) = parked.first() {
        write!(
            out,
            "{} events parked by the live projections (not projectable); the first, at position              {p}, by `{projection}`: {error}",
            parked.len()
        )
        .unwrap();
        match case_of(p) {
            Some(i) => writeln!(out, "\n  it came from case #{i}:\n{}", inputs[i]).unwrap(),
            None => writeln!(out).unwrap(),
        }
    }
    let log = footfall::eventlog::postgres::PgEventLog::new(pool.clone());
    let mut logged: Vec<(i64, footfall::domain::HitRecorded)> = Vec::new();
    let mut after = footfall::eventlog::Position::START;
    loop {
        use footfall::eventlog::EventLog;
        let events = log
            .read_all(
                after,
                10_000,
                &footfall::eventlog::StreamFilter::categories(&["hits"]),
            )
            .await
            .unwrap();
        let Some(last) = events.last() else { break };
        after = last.position;
        for e in &events {
            if let Ok(footfall::domain::Event::HitRecorded(h)) = e.decode() {
                logged.push((e.position.0 as i64, *h));
            }
        }
    }
    let (mut people, mut bots, mut pings, mut bot_pings) = (BTreeSet::new(), 0i64, 0, 0);
    for (position, hit) in &logged {
        let engagement = hit.name == "engagement";
        if hit.user_agent.as_deref().is_some_and(is_bot) {
            if engagement {
                bot_pings += 1;
            } else {
                bots += 1;
            }
        } else if engagement {
            pings += 1;
        } else {
            people.insert(*position);
        }
    }
    let rows: BTreeSet<i64> = sqlx::query_scalar::<_, i64>("SELECT position FROM hits")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let bot_rows: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(events), 0)::bigint FROM rollup_daily WHERE dimension = 'bot'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let summary = format!(
        "log: {} hits = {} people's hits + {bots} bots' hits + {pings} + {bot_pings} engagement \
         pings of people and bots; read model: {} rows in `hits`, {bot_rows} bot hits in \
         `rollup_daily`",
        logged.len(),
        people.len(),
        rows.len(),
    );
    if let Some(p) = people.difference(&rows).next() {
        let missing = people.difference(&rows).count();
        write!(
            out,
            "{missing} logged hits have no row in `hits`; the first, at position {p}"
        )
        .unwrap();
        match case_of(p) {
            Some(i) => writeln!(out, ", came from case #{i}:\n{}", inputs[i]).unwrap(),
            None => writeln!(out).unwrap(),
        }
    }
    if let Some(p) = rows.difference(&people).next() {
        writeln!(
            out,
            "`hits` has rows no logged hit accounts for, e.g. position {p}"
        )
        .unwrap();
    }
    if bot_rows != bots {
        writeln!(
            out,
            "{bots} bots' hits logged, but {bot_rows} counted in `rollup_daily`"
        )
        .unwrap();
    }
    (summary, (!out.is_empty()).then_some(out))
}
