//! The `hits` projection: the analytics read models.
//!
//! - `hits`: one enriched row per hit, partitioned by local time (TimescaleDB hypertable when the
//!   extension exists, native range partitions, created on demand, otherwise). It answers the
//!   queries no rollup can.
//! - `sessions`: one row per visit.
//! - `rollup_hourly`: per property and local hour: counters, session counters (attributed to the
//!   hour the visit started) and a HyperLogLog sketch of visitors.
//! - `rollup_daily`: per property, local day and one breakdown dimension value (page, event name,
//!   hostname, custom prop): counters and a visitor sketch.
//! - `rollup_visits`: per property, local day a visit started and one visit attribute's value
//!   (source, channel, device, country, entry page, …): visit counters and a visitor sketch.
//! - `hit_properties`: each property's time zone, domain and session timeout, folded from
//!   `PropertyRegistered`, and the position of the last event applied for it (the version of its
//!   read models, which keys the query cache).
//!
//! Hits from bots and crawlers are left out of all of these, and counted per day and bot under
//! the `bot` dimension of `rollup_daily`, so merchants can see what was filtered.
//!
//! Buckets are in the property's time zone: a local hour aligns with local days, weeks and months
//! in every zone, +05:30 and DST included.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{decode_all, table, Generation, Projection, ProjectionError, ProjectionWriter};
use crate::domain::enrich::{is_bot, Client, Page, Visit};
use crate::domain::hit::{ENGAGEMENT, PAGEVIEW};
use crate::domain::session::{sessionize, Session, SessionHit, SESSION_TIMEOUT};
use crate::domain::{Event, HitRecorded, PropertyId};
use crate::eventlog::{RecordedEvent, StreamFilter};

pub const NAME: &str = "hits";

/// HyperLogLog parameters (log2m, regwidth, expthresh, sparseon): 2^14 registers, a standard error
/// of 1.04/√16384 ≈ 0.8 %, exact (explicit) for small counts. Every sketch must use the same ones.
pub const HLL_PARAMS: &str = "14, 5, -1, 1";

/// Breakdown dimensions kept in `rollup_daily`, besides `prop:<key>`.
pub const DIM_PAGE: &str = "page";
pub const DIM_NAME: &str = "name";
pub const DIM_HOSTNAME: &str = "hostname";
pub const DIM_PROP_PREFIX: &str = "prop:";
/// Hits from bots, by bot name: counted here and nowhere else.
pub const DIM_BOT: &str = "bot";

/// The visit attributes kept in `rollup_visits` (the ones dashboards break down by).
pub const VISIT_ROLLUP_DIMENSIONS: [&str; 13] = [
    "source",
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "device",
    "browser",
    "os",
    "country",
    "region",
    "city",
    "entry_page",
    "exit_page",
];

pub struct HitsProjection;

impl Projection for HitsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self) -> StreamFilter {
        StreamFilter::categories(&["property", "hits"])
    }

    /// Every row it writes belongs to one property (a property's registration, in its
    /// `property-<id>` stream, goes to the same partition as its `hits-<id>` stream).
    fn partitioned(&self) -> bool {
        true
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "hit_properties",
            "hits",
            "sessions",
            "rollup_hourly",
            "rollup_daily",
            "rollup_visits",
        ]
    }

    fn ddl(&self, g: Generation) -> Vec<String> {
        let (props, hits, sessions, hourly, daily, visits) = (
            table("hit_properties", g),
            table("hits", g),
            table("sessions", g),
            table("rollup_hourly", g),
            table("rollup_daily", g),
            table("rollup_visits", g),
        );
        let hit_columns = "property_id uuid NOT NULL, position bigint NOT NULL, \
            occurred_at timestamptz NOT NULL, local_time timestamp NOT NULL, visitor_key bigint NOT NULL, \
            session_id bigint NOT NULL, name text NOT NULL, pathname text NOT NULL, \
            hostname text NOT NULL, props jsonb, revenue_amount numeric, revenue_currency text";
        let visit_columns: String = Visit::COLUMNS
            .iter()
            .map(|c| format!("{c} text NOT NULL, "))
            .collect();
        vec![
            format!(
                "CREATE TABLE {props} (property_id uuid PRIMARY KEY, timezone text NOT NULL, \
                 domain text NOT NULL, session_timeout_minutes integer NOT NULL, \
                 last_position bigint NOT NULL DEFAULT 0)"
            ),
            format!(
                "DO $$ BEGIN
                   IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
                     CREATE TABLE {hits} ({hit_columns});
                     PERFORM create_hypertable('{hits}', 'local_time', chunk_time_interval => interval '7 days');
                   ELSE
                     CREATE TABLE {hits} ({hit_columns}) PARTITION BY RANGE (local_time);
                   END IF;
                 END $$"
            ),
            format!("CREATE INDEX ON {hits} (property_id, local_time)"),
            format!(
                "CREATE TABLE {sessions} (
                   property_id uuid NOT NULL, session_id bigint NOT NULL, visitor_key bigint NOT NULL,
                   started_at timestamptz NOT NULL, last_at timestamptz NOT NULL, start_local timestamp NOT NULL,
                   pageviews integer NOT NULL, events integer NOT NULL, interactive integer NOT NULL,
                   entry_page text NOT NULL, exit_page text NOT NULL, entry_at timestamptz NOT NULL,
                   exit_at timestamptz NOT NULL, conversions integer NOT NULL,
                   {visit_columns}
                   PRIMARY KEY (property_id, session_id))"
            ),
            format!("CREATE INDEX ON {sessions} (property_id, visitor_key, last_at DESC)"),
            format!("CREATE INDEX ON {sessions} (property_id, start_local)"),
            format!(
                "CREATE TABLE {hourly} (
                   property_id uuid NOT NULL, bucket timestamp NOT NULL, visitors hll NOT NULL,
                   pageviews bigint NOT NULL, events bigint NOT NULL, visits bigint NOT NULL,
                   bounces bigint NOT NULL, duration bigint NOT NULL, session_pageviews bigint NOT NULL,
                   engaged bigint NOT NULL, PRIMARY KEY (property_id, bucket))"
            ),
            format!(
                "CREATE TABLE {daily} (
                   property_id uuid NOT NULL, dimension text NOT NULL, day date NOT NULL, value text NOT NULL,
                   visitors hll NOT NULL, pageviews bigint NOT NULL, events bigint NOT NULL,
                   PRIMARY KEY (property_id, dimension, day, value))"
            ),
            format!(
                "CREATE TABLE {visits} (
                   property_id uuid NOT NULL, dimension text NOT NULL, day date NOT NULL, value text NOT NULL,
                   visitors hll NOT NULL, visits bigint NOT NULL, bounces bigint NOT NULL,
                   duration bigint NOT NULL, pageviews bigint NOT NULL, events bigint NOT NULL,
                   engaged bigint NOT NULL, PRIMARY KEY (property_id, dimension, day, value))"
            ),
        ]
    }

    /// 2: visit attributes and their rollup, bots, revenue, engaged sessions, per-property session
    /// timeouts. 3: control characters left out of decoded UTM values; devices that server-side
    /// payloads state.
    fn schema_version(&self) -> i32 {
        3
    }

    fn writer(&self, g: Generation) -> Box<dyn ProjectionWriter> {
        Box::new(Writer {
            g,
            sites: HashMap::new(),
            partitions: None,
            sessions: HashMap::new(),
        })
    }
}

/// What processing needs to know of a property.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub tz: Tz,
    /// Referrers from this domain (and its subdomains) are internal.
    pub domain: String,
    pub session_timeout: Duration,
}

impl Default for Site {
    fn default() -> Self {
        Self {
            tz: chrono_tz::UTC,
            domain: String::new(),
            session_timeout: SESSION_TIMEOUT,
        }
    }
}

/// One enriched hit.
#[derive(Debug, Clone, PartialEq)]
pub struct HitRow {
    pub property_id: PropertyId,
    pub position: i64,
    pub occurred_at: DateTime<Utc>,
    pub local_time: NaiveDateTime,
    pub visitor_key: i64,
    pub session_id: i64,
    pub name: String,
    pub pathname: String,
    pub hostname: String,
    /// JSON object text, `None` without props.
    pub props: Option<String>,
    /// `(amount, currency)`.
    pub revenue: Option<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourDelta {
    pub pageviews: i64,
    pub events: i64,
    pub visits: i64,
    pub bounces: i64,
    pub duration: i64,
    pub session_pageviews: i64,
    pub engaged: i64,
    pub visitors: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayDelta {
    pub pageviews: i64,
    pub events: i64,
    pub visitors: Vec<i64>,
}

/// What visits contribute to one `rollup_visits` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitDelta {
    pub visits: i64,
    pub bounces: i64,
    pub duration: i64,
    pub pageviews: i64,
    pub events: i64,
    pub engaged: i64,
    pub visitors: Vec<i64>,
}

pub type SessionKey = (PropertyId, i64);

/// What a batch changes in the read models.
#[derive(Debug, Default, PartialEq)]
pub struct Delta {
    pub sites: Vec<(PropertyId, Site)>,
    pub hits: Vec<HitRow>,
    /// Final state of every session the batch touched, with its local start time.
    pub sessions: Vec<(PropertyId, Session, NaiveDateTime)>,
    pub hours: BTreeMap<(PropertyId, NaiveDateTime), HourDelta>,
    pub days: BTreeMap<(PropertyId, &'static str, NaiveDate, String), DayDelta>,
    pub visit_days: BTreeMap<(PropertyId, &'static str, NaiveDate, String), VisitDelta>,
    /// Each visitor of the batch's latest visit after it.
    pub latest: HashMap<(PropertyId, i64), Session>,
    /// Properties whose read models the batch changes, with the position of their last event.
    pub changed: BTreeMap<PropertyId, i64>,
}

fn local(at: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    at.with_timezone(&tz).naive_local()
}

fn hour_of(t: NaiveDateTime) -> NaiveDateTime {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// The visitor keys the batch's hits belong to, for loading their latest sessions.
pub fn visitors(events: &[(u64, Event)]) -> Vec<(PropertyId, i64)> {
    let mut keys: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::HitRecorded(h) => Some((h.property_id, h.visitor_key.as_u64() as i64)),
            _ => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The bot a user agent belongs to (its name, or `Other`), or `None` for people.
fn bot_name(user_agent: &str) -> Option<String> {
    is_bot(user_agent).then(|| {
        let name = Client::of(user_agent).browser;
        if name.is_empty() {
            "Other".to_owned()
        } else {
            name
        }
    })
}

/// Pure fold of a batch. `sites` holds every property's settings (registrations in the batch are
/// added to it); `latest` holds each visitor's latest session before the batch, and `earlier` the
/// other sessions that the batch's late hits (see [`late_hits`]) may belong to.
pub fn fold(
    events: &[(u64, Event)],
    sites: &mut HashMap<PropertyId, Site>,
    mut latest: HashMap<(PropertyId, i64), Session>,
    mut earlier: HashMap<(PropertyId, i64), Vec<Session>>,
) -> Delta {
    let mut delta = Delta::default();
    let mut before: HashMap<SessionKey, Option<Session>> = HashMap::new();
    let mut after: BTreeMap<SessionKey, Session> = BTreeMap::new();
    // User agents repeat: each is checked against the bot lists once per batch.
    let mut bots: HashMap<&str, Option<String>> = HashMap::new();

    for (position, event) in events {
        let hit: &HitRecorded = match event {
            Event::PropertyRegistered(p) => {
                let site = Site {
                    tz: p.timezone.tz(),
                    domain: p.domain.as_str().to_owned(),
                    session_timeout: p
                        .session_timeout_minutes
                        .map(|m| Duration::minutes(i64::from(m)))
                        .unwrap_or(SESSION_TIMEOUT),
                };
                sites.insert(p.property_id, site.clone());
                delta.sites.push((p.property_id, site));
                continue;
            }
            Event::HitRecorded(h) => h,
            Event::DomainClaimed(_) | Event::HostnamesAllowed(_) | Event::GoalsSet(_) => continue,
        };
        let pid = hit.property_id;
        delta.changed.insert(pid, *position as i64);
        let site = sites.get(&pid).cloned().unwrap_or_default();
        let tz = site.tz;
        let visitor = hit.visitor_key.as_u64() as i64;
        let local_time = local(hit.occurred_at, tz);
        let is_pageview = hit.name == PAGEVIEW;

        if let Some(ua) = hit.user_agent.as_deref() {
            let bot = bots.entry(ua).or_insert_with(|| bot_name(ua));
            if let Some(bot) = bot {
                if hit.name != ENGAGEMENT {
                    let d = delta
                        .days
                        .entry((pid, DIM_BOT, local_time.date(), bot.clone()))
                        .or_default();
                    d.events += 1;
                    d.pageviews += i64::from(is_pageview);
                    d.visitors.push(visitor);
                }
                continue;
            }
        }
        let page = Page::of(&hit.url, hit.hash_mode);

        let key = (pid, visitor);
        let late = hit.occurred_at < hit.received_at - site.session_timeout;
        let previous = visit_of_hit(&latest, &earlier, key, hit.occurred_at, late, &site);
        if hit.name == ENGAGEMENT {
            // An engagement ping only extends the visit it belongs to; it is not an event.
            if let Some(mut s) =
                previous.filter(|s| s.accepts(hit.occurred_at, site.session_timeout))
            {
                before.entry((pid, s.id)).or_insert_with(|| Some(s.clone()));
                s.extend_to(hit.occurred_at);
                after.insert((pid, s.id), s.clone());
                remember(&mut latest, &mut earlier, key, &s);
            }
            continue;
        }
        let session = sessionize(
            previous.clone(),
            visitor,
            SessionHit {
                position: *position as i64,
                at: hit.occurred_at,
                is_pageview,
                interactive: hit.interactive,
                conversion: hit.revenue.is_some(),
                page: &page.pathname,
            },
            site.session_timeout,
            || Visit::of(hit, &site.domain),
        );
        before
            .entry((pid, session.id))
            .or_insert_with(|| previous.filter(|p| p.id == session.id));
        after.insert((pid, session.id), session.clone());
        remember(&mut latest, &mut earlier, key, &session);

        let hour = delta.hours.entry((pid, hour_of(local_time))).or_default();
        hour.events += 1;
        hour.pageviews += i64::from(is_pageview);
        hour.visitors.push(visitor);

        let day = local_time.date();
        let mut dims: Vec<(&'static str, String)> = vec![
            (DIM_PAGE, page.pathname.clone()),
            (DIM_NAME, hit.name.clone()),
            (DIM_HOSTNAME, page.hostname.clone()),
        ];
        // Props keys are open-ended: their dimension names are interned once per key.
        for (k, v) in &hit.props {
            dims.push((prop_dimension(k), v.clone()));
        }
        for (dim, value) in dims {
            let d = delta.days.entry((pid, dim, day, value)).or_default();
            d.events += 1;
            d.pageviews += i64::from(is_pageview);
            d.visitors.push(visitor);
        }

        delta.hits.push(HitRow {
            property_id: pid,
            position: *position as i64,
            occurred_at: hit.occurred_at,
            local_time,
            visitor_key: visitor,
            session_id: session.id,
            name: hit.name.clone(),
            pathname: page.pathname,
            hostname: page.hostname,
            props: (!hit.props.is_empty()).then(|| props_json(&hit.props)),
            revenue: hit
                .revenue
                .as_ref()
                .map(|r| (r.amount.clone(), r.currency.clone())),
        });
    }

    // Sessions: move each touched session's contribution from its old state to its new one.
    for ((pid, _), new) in after {
        let tz = sites.get(&pid).map(|s| s.tz).unwrap_or(chrono_tz::UTC);
        if let Some(Some(old)) = before.get(&(pid, new.id)) {
            contribute(&mut delta.hours, pid, tz, old, -1);
        }
        contribute(&mut delta.hours, pid, tz, &new, 1);
        let old = before.get(&(pid, new.id)).and_then(Option::as_ref);
        contribute_visit(&mut delta.visit_days, pid, tz, old, &new);
        let start_local = local(new.started_at, tz);
        delta.sessions.push((pid, new, start_local));
    }
    delta.hours.retain(|_, h| *h != HourDelta::default());
    delta.visit_days.retain(|_, v| *v != VisitDelta::default());
    delta.latest = latest;
    delta
}

/// The visit a hit at `at` continues: the visitor's latest if it accepts the hit, else, for a
/// late hit (one that arrived over a session timeout after it happened), the latest of their
/// earlier visits that does; otherwise the latest, which it cannot continue.
///
/// Only late hits look at earlier visits, and the writer loads every earlier visit a late hit
/// could continue, so the answer does not depend on how the log is cut into batches: live
/// processing and a rebuild give the same visits.
fn visit_of_hit(
    latest: &HashMap<(PropertyId, i64), Session>,
    earlier: &HashMap<(PropertyId, i64), Vec<Session>>,
    key: (PropertyId, i64),
    at: DateTime<Utc>,
    late: bool,
    site: &Site,
) -> Option<Session> {
    let current = latest.get(&key);
    if !late || current.is_some_and(|s| s.accepts(at, site.session_timeout)) {
        return current.cloned();
    }
    earlier
        .get(&key)
        .and_then(|visits| {
            visits
                .iter()
                .filter(|s| s.accepts(at, site.session_timeout))
                .max_by_key(|s| (s.last_at, s.id))
        })
        .or(current)
        .cloned()
}

/// Records a visit's new state. A visitor's latest visit is the one with the greatest
/// `(last_at, id)`, whatever order hits are processed in (the table lookup orders the same way),
/// so batch boundaries cannot change results; visits the batch knows besides it stay candidates
/// for late hits.
fn remember(
    latest: &mut HashMap<(PropertyId, i64), Session>,
    earlier: &mut HashMap<(PropertyId, i64), Vec<Session>>,
    key: (PropertyId, i64),
    s: &Session,
) {
    let visits = earlier.entry(key).or_default();
    visits.retain(|v| v.id != s.id);
    visits.push(s.clone());
    let newer = latest
        .get(&key)
        .is_none_or(|cur| cur.id == s.id || (s.last_at, s.id) >= (cur.last_at, cur.id));
    if newer {
        latest.insert(key, s.clone());
    }
}

/// The hits of a batch that may be late for their property's session timeout (which is at least a
/// minute), for loading the earlier visits they may continue: `(property, visitor, when)`.
pub fn late_hits(events: &[(u64, Event)]) -> Vec<(PropertyId, i64, DateTime<Utc>)> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::HitRecorded(h) if h.occurred_at < h.received_at - Duration::minutes(1) => {
                Some((h.property_id, h.visitor_key.as_u64() as i64, h.occurred_at))
            }
            _ => None,
        })
        .collect()
}

fn contribute(
    hours: &mut BTreeMap<(PropertyId, NaiveDateTime), HourDelta>,
    pid: PropertyId,
    tz: Tz,
    s: &Session,
    sign: i64,
) {
    let h = hours
        .entry((pid, hour_of(local(s.started_at, tz))))
        .or_default();
    h.visits += sign;
    h.bounces += sign * i64::from(s.is_bounce());
    h.duration += sign * s.duration_secs();
    h.session_pageviews += sign * i64::from(s.pageviews);
    h.engaged += sign * i64::from(s.is_engaged());
}

/// Moves a visit's contribution to `rollup_visits` from its old state to its new one. Its visitor
/// is added to a row's sketch when the visit first counts there (sketches cannot subtract; a
/// visit whose attribution changes leaves its visitor in the old row's sketch).
fn contribute_visit(
    rows: &mut BTreeMap<(PropertyId, &'static str, NaiveDate, String), VisitDelta>,
    pid: PropertyId,
    tz: Tz,
    old: Option<&Session>,
    new: &Session,
) {
    let add = |v: &mut VisitDelta, s: &Session, sign: i64| {
        v.visits += sign;
        v.bounces += sign * i64::from(s.is_bounce());
        v.duration += sign * s.duration_secs();
        v.pageviews += sign * i64::from(s.pageviews);
        v.events += sign * i64::from(s.events);
        v.engaged += sign * i64::from(s.is_engaged());
    };
    let new_day = local(new.started_at, tz).date();
    for dim in VISIT_ROLLUP_DIMENSIONS {
        let new_key = (pid, dim, new_day, new.attribute(dim).to_owned());
        let moved = match old {
            Some(o) => {
                let old_key = (
                    pid,
                    dim,
                    local(o.started_at, tz).date(),
                    o.attribute(dim).to_owned(),
                );
                let moved = old_key != new_key;
                add(rows.entry(old_key).or_default(), o, -1);
                moved
            }
            None => true,
        };
        let row = rows.entry(new_key).or_default();
        add(row, new, 1);
        if moved {
            row.visitors.push(new.visitor_key);
        }
    }
}

fn props_json(props: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = props
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// `prop:<key>` as a `&'static str`, interned once per distinct key for the process's life.
fn prop_dimension(key: &str) -> &'static str {
    use std::sync::{Mutex, OnceLock};
    static INTERNED: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let name = format!("{DIM_PROP_PREFIX}{key}");
    let mut set = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = set.get(name.as_str()) {
        return existing;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    set.insert(leaked);
    leaked
}

struct Writer {
    g: Generation,
    sites: HashMap<PropertyId, Site>,
    /// Months whose partition exists; `None` until known whether `hits` is natively partitioned.
    partitions: Option<(bool, HashSet<(i32, u32)>)>,
    /// Each visitor's latest visit as this writer wrote it, so most batches need no lookup. It
    /// holds only committed state or state of the open batch: after any error the runner drops
    /// the writer.
    sessions: HashMap<(PropertyId, i64), Session>,
}

fn session_of(r: &sqlx::postgres::PgRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: r.try_get("session_id")?,
        visitor_key: r.try_get("visitor_key")?,
        started_at: r.try_get("started_at")?,
        last_at: r.try_get("last_at")?,
        pageviews: r.try_get("pageviews")?,
        events: r.try_get("events")?,
        interactive: r.try_get("interactive")?,
        entry_page: r.try_get("entry_page")?,
        exit_page: r.try_get("exit_page")?,
        entry_at: r.try_get("entry_at")?,
        exit_at: r.try_get("exit_at")?,
        conversions: r.try_get("conversions")?,
        visit: std::sync::Arc::new(visit_of(r)?),
    })
}

fn visit_of(r: &sqlx::postgres::PgRow) -> Result<Visit, sqlx::Error> {
    let mut values: [String; 20] = Default::default();
    for (v, c) in values.iter_mut().zip(Visit::COLUMNS) {
        *v = r.try_get(c)?;
    }
    Ok(Visit::from_values(values))
}

/// Visitors whose latest visit the writer remembers, at most.
const MAX_CACHED_VISITORS: usize = 1_000_000;

impl Writer {
    fn t(&self, base: &str) -> String {
        table(base, self.g)
    }

    async fn load_sites(
        &mut self,
        tx: &mut PgConnection,
        events: &[(u64, Event)],
    ) -> Result<(), sqlx::Error> {
        let missing: Vec<Uuid> = events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::HitRecorded(h) if !self.sites.contains_key(&h.property_id) => {
                    Some(h.property_id.as_uuid())
                }
                _ => None,
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(&format!(
            "SELECT property_id, timezone, domain, session_timeout_minutes FROM {} WHERE property_id = ANY($1)",
            self.t("hit_properties")
        ))
        .bind(&missing)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let tz: String = r.try_get("timezone")?;
            let minutes: i32 = r.try_get("session_timeout_minutes")?;
            let site = Site {
                tz: tz.parse::<Tz>().unwrap_or(chrono_tz::UTC),
                domain: r.try_get("domain")?,
                session_timeout: Duration::minutes(i64::from(minutes)),
            };
            self.sites
                .insert(PropertyId::new(r.try_get("property_id")?), site);
        }
        Ok(())
    }

    async fn load_sessions(
        &self,
        tx: &mut PgConnection,
        keys: &[(PropertyId, i64)],
    ) -> Result<HashMap<(PropertyId, i64), Session>, sqlx::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let (pids, vks): (Vec<Uuid>, Vec<i64>) =
            keys.iter().map(|(p, v)| (p.as_uuid(), *v)).unzip();
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT ON (s.property_id, s.visitor_key) s.* FROM {} s \
             JOIN UNNEST($1::uuid[], $2::bigint[]) AS k(property_id, visitor_key) \
               ON s.property_id = k.property_id AND s.visitor_key = k.visitor_key \
             ORDER BY s.property_id, s.visitor_key, s.last_at DESC, s.session_id DESC",
            self.t("sessions")
        ))
        .bind(&pids)
        .bind(&vks)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let s = session_of(&r)?;
            out.insert(
                (PropertyId::new(r.try_get("property_id")?), s.visitor_key),
                s,
            );
        }
        Ok(out)
    }

    /// The visits late hits may belong to: their visitor's visits within the longest session
    /// timeout (a day) of the hit. A superset: the fold picks with the property's own timeout.
    async fn load_earlier_sessions(
        &self,
        tx: &mut PgConnection,
        late: &[(PropertyId, i64, DateTime<Utc>)],
    ) -> Result<HashMap<(PropertyId, i64), Vec<Session>>, sqlx::Error> {
        let mut out: HashMap<(PropertyId, i64), Vec<Session>> = HashMap::new();
        if late.is_empty() {
            return Ok(out);
        }
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT s.* FROM {} s \
             JOIN UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[]) AS k(property_id, visitor_key, at) \
               ON s.property_id = k.property_id AND s.visitor_key = k.visitor_key \
              AND s.last_at >= k.at - interval '1 day' AND s.started_at <= k.at + interval '1 day'",
            self.t("sessions")
        ))
        .bind(late.iter().map(|l| l.0.as_uuid()).collect::<Vec<_>>())
        .bind(late.iter().map(|l| l.1).collect::<Vec<_>>())
        .bind(late.iter().map(|l| l.2).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let s = session_of(&r)?;
            out.entry((PropertyId::new(r.try_get("property_id")?), s.visitor_key))
                .or_default()
                .push(s);
        }
        Ok(out)
    }

    /// Creates the monthly partitions the hits need (native partitioning only).
    async fn ensure_partitions(
        &mut self,
        tx: &mut PgConnection,
        hits: &[HitRow],
    ) -> Result<(), sqlx::Error> {
        let hits_table = self.t("hits");
        if self.partitions.is_none() {
            let partitioned: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid WHERE c.relname = $1)",
            )
            .bind(&hits_table)
            .fetch_one(&mut *tx)
            .await?;
            self.partitions = Some((partitioned, HashSet::new()));
        }
        let Some((true, known)) = &mut self.partitions else {
            return Ok(());
        };
        let months: HashSet<(i32, u32)> = hits
            .iter()
            .map(|h| (h.local_time.year(), h.local_time.month()))
            .collect();
        for (y, m) in months {
            if known.contains(&(y, m)) {
                continue;
            }
            let from = NaiveDate::from_ymd_opt(y, m, 1);
            let to = from.and_then(|d| d.checked_add_months(chrono::Months::new(1)));
            let (Some(from), Some(to)) = (from, to) else {
                continue;
            };
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {hits_table}_p{y:04}{m:02} PARTITION OF {hits_table} \
                 FOR VALUES FROM ('{from}') TO ('{to}')"
            ))
            .execute(&mut *tx)
            .await?;
            known.insert((y, m));
        }
        Ok(())
    }
}

#[async_trait]
impl ProjectionWriter for Writer {
    async fn apply(
        &mut self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let events = decode_all(events)?;
        self.load_sites(tx, &events).await?;
        let keys = visitors(&events);
        let missing: Vec<_> = keys
            .iter()
            .filter(|k| !self.sessions.contains_key(k))
            .copied()
            .collect();
        let mut latest = self.load_sessions(tx, &missing).await?;
        latest.extend(
            keys.iter()
                .filter_map(|k| self.sessions.get(k).map(|s| (*k, s.clone()))),
        );
        let earlier = self.load_earlier_sessions(tx, &late_hits(&events)).await?;
        // The fold is pure CPU work (tens of milliseconds for a large batch): it runs on the
        // blocking pool, so the actors and connections sharing this thread are not held up.
        let mut sites = std::mem::take(&mut self.sites);
        let (mut delta, sites) = tokio::task::spawn_blocking(move || {
            let delta = fold(&events, &mut sites, latest, earlier);
            (delta, sites)
        })
        .await?;
        self.sites = sites;
        self.ensure_partitions(tx, &delta.hits).await?;
        write(self, tx, &delta).await?;
        if self.sessions.len() + delta.latest.len() > MAX_CACHED_VISITORS {
            self.sessions.clear();
        }
        self.sessions.extend(std::mem::take(&mut delta.latest));
        Ok(())
    }
}

async fn write(w: &Writer, tx: &mut PgConnection, d: &Delta) -> Result<(), sqlx::Error> {
    if !d.sites.is_empty() {
        let s = &d.sites;
        sqlx::query(&format!(
            "INSERT INTO {} (property_id, timezone, domain, session_timeout_minutes) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int[]) \
             ON CONFLICT (property_id) DO UPDATE SET timezone = EXCLUDED.timezone, domain = EXCLUDED.domain, \
               session_timeout_minutes = EXCLUDED.session_timeout_minutes",
            w.t("hit_properties")
        ))
        .bind(s.iter().map(|(p, _)| p.as_uuid()).collect::<Vec<_>>())
        .bind(s.iter().map(|(_, x)| x.tz.name()).collect::<Vec<_>>())
        .bind(s.iter().map(|(_, x)| x.domain.as_str()).collect::<Vec<_>>())
        .bind(
            s.iter()
                .map(|(_, x)| x.session_timeout.num_minutes() as i32)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }

    if !d.hits.is_empty() {
        let h = &d.hits;
        sqlx::query(&format!(
            "INSERT INTO {} (property_id, position, occurred_at, local_time, visitor_key, session_id, name, pathname, hostname, props, \
                             revenue_amount, revenue_currency) \
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[], $4::timestamp[], $5::bigint[], $6::bigint[], \
                                  $7::text[], $8::text[], $9::text[], $10::text[]::jsonb[], $11::text[]::numeric[], $12::text[])",
            w.t("hits")
        ))
        .bind(h.iter().map(|r| r.property_id.as_uuid()).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.position).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.local_time).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.visitor_key).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.session_id).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.pathname.as_str()).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.hostname.as_str()).collect::<Vec<_>>())
        .bind(h.iter().map(|r| r.props.as_deref()).collect::<Vec<_>>())
        .bind(
            h.iter()
                .map(|r| r.revenue.as_ref().map(|(a, _)| a.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            h.iter()
                .map(|r| r.revenue.as_ref().map(|(_, c)| c.as_str()))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }

    if !d.sessions.is_empty() {
        let s = &d.sessions;
        let visit_cols = Visit::COLUMNS.join(", ");
        let visit_params: String = (0..Visit::COLUMNS.len())
            .map(|i| format!(", ${}::text[]", i + 15))
            .collect();
        let visit_updates: String = Visit::COLUMNS
            .iter()
            .map(|c| format!(", {c} = EXCLUDED.{c}"))
            .collect();
        let sql = format!(
            "INSERT INTO {} (property_id, session_id, visitor_key, started_at, last_at, start_local, pageviews, events, \
                             interactive, entry_page, exit_page, conversions, entry_at, exit_at, {visit_cols}) \
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[], \
                                  $6::timestamp[], $7::int[], $8::int[], $9::int[], $10::text[], $11::text[], $12::int[], \
                                  $13::timestamptz[], $14::timestamptz[]{visit_params}) \
             ON CONFLICT (property_id, session_id) DO UPDATE SET started_at = EXCLUDED.started_at, \
               last_at = EXCLUDED.last_at, start_local = EXCLUDED.start_local, pageviews = EXCLUDED.pageviews, \
               events = EXCLUDED.events, interactive = EXCLUDED.interactive, entry_page = EXCLUDED.entry_page, \
               exit_page = EXCLUDED.exit_page, conversions = EXCLUDED.conversions, entry_at = EXCLUDED.entry_at, \
               exit_at = EXCLUDED.exit_at{visit_updates}",
            w.t("sessions")
        );
        let mut q = sqlx::query(&sql)
            .bind(s.iter().map(|(p, _, _)| p.as_uuid()).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, s, _)| s.id).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, s, _)| s.visitor_key).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, s, _)| s.started_at).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, s, _)| s.last_at).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, _, l)| *l).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, s, _)| s.pageviews).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, s, _)| s.events).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, s, _)| s.interactive).collect::<Vec<_>>())
            .bind(
                s.iter()
                    .map(|(_, s, _)| s.entry_page.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                s.iter()
                    .map(|(_, s, _)| s.exit_page.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(s.iter().map(|(_, s, _)| s.conversions).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, s, _)| s.entry_at).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, s, _)| s.exit_at).collect::<Vec<_>>());
        for i in 0..Visit::COLUMNS.len() {
            q = q.bind(
                s.iter()
                    .map(|(_, s, _)| s.visit.values()[i])
                    .collect::<Vec<_>>(),
            );
        }
        q.execute(&mut *tx).await?;
    }

    if !d.hours.is_empty() {
        let (idx, vks) = flatten_visitors(d.hours.values().map(|h| &h.visitors));
        sqlx::query(&format!(
            "INSERT INTO {t} AS r (property_id, bucket, visitors, pageviews, events, visits, bounces, duration, session_pageviews, engaged) \
             SELECT k.property_id, k.bucket, COALESCE(v.sketch, hll_empty({HLL_PARAMS})), k.pageviews, k.events, k.visits, \
                    k.bounces, k.duration, k.session_pageviews, k.engaged \
             FROM UNNEST($1::uuid[], $2::timestamp[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $11::bigint[]) \
                  WITH ORDINALITY AS k(property_id, bucket, pageviews, events, visits, bounces, duration, session_pageviews, engaged, idx) \
             LEFT JOIN (SELECT idx, hll_add_agg(hll_hash_bigint(vk), {HLL_PARAMS}) AS sketch \
                        FROM UNNEST($9::bigint[], $10::bigint[]) AS v(idx, vk) GROUP BY idx) v ON v.idx = k.idx \
             ON CONFLICT (property_id, bucket) DO UPDATE SET visitors = hll_union(r.visitors, EXCLUDED.visitors), \
               pageviews = r.pageviews + EXCLUDED.pageviews, events = r.events + EXCLUDED.events, \
               visits = r.visits + EXCLUDED.visits, bounces = r.bounces + EXCLUDED.bounces, \
               duration = r.duration + EXCLUDED.duration, session_pageviews = r.session_pageviews + EXCLUDED.session_pageviews, \
               engaged = r.engaged + EXCLUDED.engaged",
            t = w.t("rollup_hourly")
        ))
        .bind(d.hours.keys().map(|(p, _)| p.as_uuid()).collect::<Vec<_>>())
        .bind(d.hours.keys().map(|(_, b)| *b).collect::<Vec<_>>())
        .bind(d.hours.values().map(|h| h.pageviews).collect::<Vec<_>>())
        .bind(d.hours.values().map(|h| h.events).collect::<Vec<_>>())
        .bind(d.hours.values().map(|h| h.visits).collect::<Vec<_>>())
        .bind(d.hours.values().map(|h| h.bounces).collect::<Vec<_>>())
        .bind(d.hours.values().map(|h| h.duration).collect::<Vec<_>>())
        .bind(d.hours.values().map(|h| h.session_pageviews).collect::<Vec<_>>())
        .bind(&idx)
        .bind(&vks)
        .bind(d.hours.values().map(|h| h.engaged).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }

    if !d.days.is_empty() {
        let (idx, vks) = flatten_visitors(d.days.values().map(|h| &h.visitors));
        sqlx::query(&format!(
            "INSERT INTO {t} AS r (property_id, dimension, day, value, visitors, pageviews, events) \
             SELECT k.property_id, k.dimension, k.day, k.value, COALESCE(v.sketch, hll_empty({HLL_PARAMS})), k.pageviews, k.events \
             FROM UNNEST($1::uuid[], $2::text[], $3::date[], $4::text[], $5::bigint[], $6::bigint[]) \
                  WITH ORDINALITY AS k(property_id, dimension, day, value, pageviews, events, idx) \
             LEFT JOIN (SELECT idx, hll_add_agg(hll_hash_bigint(vk), {HLL_PARAMS}) AS sketch \
                        FROM UNNEST($7::bigint[], $8::bigint[]) AS v(idx, vk) GROUP BY idx) v ON v.idx = k.idx \
             ON CONFLICT (property_id, dimension, day, value) DO UPDATE SET visitors = hll_union(r.visitors, EXCLUDED.visitors), \
               pageviews = r.pageviews + EXCLUDED.pageviews, events = r.events + EXCLUDED.events",
            t = w.t("rollup_daily")
        ))
        .bind(d.days.keys().map(|(p, _, _, _)| p.as_uuid()).collect::<Vec<_>>())
        .bind(d.days.keys().map(|(_, dim, _, _)| *dim).collect::<Vec<_>>())
        .bind(d.days.keys().map(|(_, _, day, _)| *day).collect::<Vec<_>>())
        .bind(d.days.keys().map(|(_, _, _, v)| v.as_str()).collect::<Vec<_>>())
        .bind(d.days.values().map(|h| h.pageviews).collect::<Vec<_>>())
        .bind(d.days.values().map(|h| h.events).collect::<Vec<_>>())
        .bind(&idx)
        .bind(&vks)
        .execute(&mut *tx)
        .await?;
    }

    if !d.changed.is_empty() {
        sqlx::query(&format!(
            "UPDATE {} p SET last_position = c.position \
             FROM UNNEST($1::uuid[], $2::bigint[]) AS c(property_id, position) WHERE p.property_id = c.property_id",
            w.t("hit_properties")
        ))
        .bind(d.changed.keys().map(|p| p.as_uuid()).collect::<Vec<_>>())
        .bind(d.changed.values().copied().collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }

    if !d.visit_days.is_empty() {
        let v = &d.visit_days;
        let (idx, vks) = flatten_visitors(v.values().map(|h| &h.visitors));
        sqlx::query(&format!(
            "INSERT INTO {t} AS r (property_id, dimension, day, value, visitors, visits, bounces, duration, pageviews, events, engaged) \
             SELECT k.property_id, k.dimension, k.day, k.value, COALESCE(v.sketch, hll_empty({HLL_PARAMS})), k.visits, k.bounces, \
                    k.duration, k.pageviews, k.events, k.engaged \
             FROM UNNEST($1::uuid[], $2::text[], $3::date[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], \
                         $9::bigint[], $10::bigint[]) \
                  WITH ORDINALITY AS k(property_id, dimension, day, value, visits, bounces, duration, pageviews, events, engaged, idx) \
             LEFT JOIN (SELECT idx, hll_add_agg(hll_hash_bigint(vk), {HLL_PARAMS}) AS sketch \
                        FROM UNNEST($11::bigint[], $12::bigint[]) AS v(idx, vk) GROUP BY idx) v ON v.idx = k.idx \
             ON CONFLICT (property_id, dimension, day, value) DO UPDATE SET visitors = hll_union(r.visitors, EXCLUDED.visitors), \
               visits = r.visits + EXCLUDED.visits, bounces = r.bounces + EXCLUDED.bounces, \
               duration = r.duration + EXCLUDED.duration, pageviews = r.pageviews + EXCLUDED.pageviews, \
               events = r.events + EXCLUDED.events, engaged = r.engaged + EXCLUDED.engaged",
            t = w.t("rollup_visits")
        ))
        .bind(v.keys().map(|(p, _, _, _)| p.as_uuid()).collect::<Vec<_>>())
        .bind(v.keys().map(|(_, dim, _, _)| *dim).collect::<Vec<_>>())
        .bind(v.keys().map(|(_, _, day, _)| *day).collect::<Vec<_>>())
        .bind(v.keys().map(|(_, _, _, x)| x.as_str()).collect::<Vec<_>>())
        .bind(v.values().map(|h| h.visits).collect::<Vec<_>>())
        .bind(v.values().map(|h| h.bounces).collect::<Vec<_>>())
        .bind(v.values().map(|h| h.duration).collect::<Vec<_>>())
        .bind(v.values().map(|h| h.pageviews).collect::<Vec<_>>())
        .bind(v.values().map(|h| h.events).collect::<Vec<_>>())
        .bind(v.values().map(|h| h.engaged).collect::<Vec<_>>())
        .bind(&idx)
        .bind(&vks)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Row numbers (1-based, as `WITH ORDINALITY`) paired with each visitor key of that row.
fn flatten_visitors<'a>(rows: impl Iterator<Item = &'a Vec<i64>>) -> (Vec<i64>, Vec<i64>) {
    let mut idx = Vec::new();
    let mut vks = Vec::new();
    for (i, visitors) in rows.enumerate() {
        for v in visitors {
            idx.push(i as i64 + 1);
            vks.push(*v);
        }
    }
    (idx, vks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Domain, Geo, PropertyCredentials, PropertyName, PropertyRegistered, Protocol, Timezone,
        VisitorKey,
    };

    fn pid() -> PropertyId {
        PropertyId::parse("0190c7e6-5b8f-7000-8000-000000000001").unwrap()
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
        let d = fold(&events, &mut HashMap::new(), HashMap::new(), HashMap::new());
        let local: NaiveDateTime = "2026-03-02T00:15:00".parse().unwrap();
        assert_eq!(d.hits[0].local_time, local);
        let (_, bucket) = d.hours.keys().next().unwrap();
        assert_eq!(
            *bucket,
            "2026-03-02T00:00:00".parse::<NaiveDateTime>().unwrap()
        );
        let days: Vec<_> = d
            .days
            .keys()
            .map(|(_, dim, day, v)| (*dim, day.to_string(), v.clone()))
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
        let d1 = fold(&first, &mut tz, HashMap::new(), HashMap::new());
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
        let d = fold(&events, &mut HashMap::new(), HashMap::new(), HashMap::new());
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
        let first = fold(&events[..3], &mut sites, HashMap::new(), HashMap::new());
        let stored: Vec<Session> = first.sessions.iter().map(|(_, s, _)| s.clone()).collect();
        let second = fold(
            &events[3..],
            &mut sites,
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
        let d = fold(&events, &mut tz, HashMap::new(), HashMap::new());
        assert_eq!(
            d.hits.iter().map(|h| h.session_id).collect::<Vec<_>>(),
            vec![2, 3, 2]
        );
        assert_eq!(d.latest[&(pid(), 1)].id, 2);
        // Split across batches the same hits give the same visits.
        let mut tz = HashMap::new();
        let first = fold(&events[..3], &mut tz, HashMap::new(), HashMap::new());
        let second = fold(&events[3..], &mut tz, first.latest.clone(), HashMap::new());
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
        let a = fold(&events, &mut HashMap::new(), HashMap::new(), HashMap::new());
        let b = fold(&events, &mut HashMap::new(), HashMap::new(), HashMap::new());
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
}
