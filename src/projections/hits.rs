//! The `hits` projection: folds hits and property registrations into the analytics read model
//! (see [`crate::readmodel`] for its tables). The fold is pure; the writer loads the state it
//! starts from and writes its [`Delta`] through [`Store`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, Duration, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use super::{Generation, Projection, ProjectionWriter};
use crate::domain::enrich::{is_bot, Client, Page, Visit};
use crate::domain::hit::{ENGAGEMENT, PAGEVIEW};
use crate::domain::session::{sessionize, Session, SessionHit, SESSION_TIMEOUT};
use crate::domain::{Event, HitRecorded, PropertyId};
use crate::eventlog::{EventRef, StreamFilter};
use crate::readmodel::rows::{
    Delta, HitRow, HourDelta, HourKey, PropKeys, SessionKey, Site, VisitDelta, VisitKey,
};
use crate::readmodel::schema::{
    self, DIM_BOT, DIM_HOSTNAME, DIM_NAME, DIM_PAGE, DIM_PROP_PREFIX, VISIT_ROLLUP_GROUPS,
};
use crate::readmodel::store::Store;

pub const NAME: &str = "hits";

#[derive(Debug, Clone, Copy)]
pub struct HitsProjection {
    /// Prop keys a partition rolls up per property (`FOOTFALL_MAX_PROP_KEYS`).
    pub max_prop_keys: usize,
    /// The bytes of visits a partition's writer remembers at most.
    pub max_cached_visit_bytes: usize,
}

impl Default for HitsProjection {
    fn default() -> Self {
        Self {
            max_prop_keys: schema::DEFAULT_MAX_PROP_KEYS,
            max_cached_visit_bytes: 64 << 20,
        }
    }
}

impl Projection for HitsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self) -> StreamFilter {
        StreamFilter::categories(&["property", "hits"])
    }

    /// Partitioned by visitor, so that one big property's hits spread over every partition: a
    /// visitor's hits, and so their visits, are folded by one partition; property events by every
    /// partition (each keeps the settings it needs). What several partitions write for one
    /// property adds up: `hits` and `sessions` rows are per hit and per visit, the rollups' rows
    /// are added to or appended, and each partition records its own read-model version of the
    /// property (`hit_versions`).
    fn partitioned(&self) -> bool {
        true
    }

    fn partition_key(&self, e: &EventRef<'_>) -> Option<u64> {
        if e.event_type != Event::HIT_RECORDED {
            return None;
        }
        crate::domain::codec::peek_visitor_key(e.data)
            .filter(|_| e.schema_version == 2)
            .or_else(|| match e.decode() {
                Ok(Event::HitRecorded(h)) => Some(h.visitor_key.as_u64()),
                // Every partition parks an event no one can read.
                _ => None,
            })
    }

    fn tables(&self) -> &'static [&'static str] {
        schema::TABLES
    }

    fn ddl(&self, g: Generation) -> Vec<String> {
        schema::ddl(g)
    }

    /// 2: visit attributes and their rollup, bots, revenue, engaged sessions, per-property session
    /// timeouts. 3: control characters left out of decoded UTM values; devices that server-side
    /// payloads state. 4: the day rollups are appended and merged; partitions by visitor, each
    /// with its own read-model versions. 5: per-day versions (`hit_days`) and the funnel answers
    /// cached by day (`funnel_days`). 6: the prop keys rolled up are capped per property and
    /// partition (`hit_prop_keys`). 7: the hourly rollup is appended and merged too. 8: the visit
    /// rollup keeps groups of attributes together (`VISIT_ROLLUP_GROUPS`). 9: and the geography's
    /// names and the UTM term and content with them. 10: the daily rollup's weeks pre-merged
    /// (`rollup_weekly`, versioned in `rollup_weeks`); visits keyed by visitor first, without an
    /// index of their visitors. 11: the hourly rollup's days pre-merged (`rollup_days`, versioned
    /// by `hit_days`, which records every day a batch adds rollup rows to). 12: the visit rollup's
    /// weeks pre-merged (`rollup_visits_weekly`). 13: the current week's days pre-merged as they
    /// end (`rollup_weeks.days`).
    fn schema_version(&self) -> i32 {
        13
    }

    fn writer(&self, g: Generation, partition: i32) -> Box<dyn ProjectionWriter> {
        Box::new(writer::Writer::new(Store::new(g, partition), self))
    }
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

/// The properties of the batch's hits that `wanted` picks, each once: those whose settings or
/// rolled-up prop keys the writer must load.
fn properties_of(events: &[(u64, Event)], wanted: impl Fn(&HitRecorded) -> bool) -> Vec<Uuid> {
    let unknown: HashSet<Uuid> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::HitRecorded(h) if wanted(h) => Some(h.property_id.as_uuid()),
            _ => None,
        })
        .collect();
    unknown.into_iter().collect()
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
/// added to it); `prop_keys` the prop keys rolled up for the properties of hits with props (keys
/// the batch admits are added to it); `latest` holds each visitor's latest session before the
/// batch, and `earlier` the other sessions that the batch's late hits (see [`late_hits`]) may
/// belong to.
pub fn fold(
    events: &[(u64, Event)],
    sites: &mut HashMap<PropertyId, Site>,
    prop_keys: &mut PropKeys,
    mut latest: HashMap<(PropertyId, i64), Session>,
    mut earlier: HashMap<(PropertyId, i64), Vec<Session>>,
) -> Delta {
    let mut delta = Delta {
        hits: Vec::with_capacity(events.len()),
        ..Delta::default()
    };
    let mut before: HashMap<SessionKey, Option<Session>> = HashMap::new();
    let mut after: BTreeMap<SessionKey, Session> = BTreeMap::new();
    // User agents repeat: each is checked against the bot lists, and parsed, once per batch.
    let mut bots: HashMap<&str, Option<String>> = HashMap::new();
    let mut clients: HashMap<&str, Client> = HashMap::new();
    // Only late hits look at earlier visits: a batch without any keeps none.
    let with_late = events
        .iter()
        .any(|(_, e)| matches!(e, Event::HitRecorded(h) if may_be_late(h)));

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
            Event::DomainClaimed(_)
            | Event::HostnamesAllowed(_)
            | Event::GoalsSet(_)
            | Event::FunnelsSet(_)
            | Event::SharedLinkCreated(_)
            | Event::SharedLinkRevoked(_)
            | Event::AggregatesImported(_)
            | Event::ImportDeleted(_) => continue,
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
                        .entry((pid, DIM_BOT.into(), local_time.date(), bot.clone()))
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
                remember(&mut latest, with_late.then_some(&mut earlier), key, &s);
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
            || {
                Visit::of(hit, &site.domain, |ua| {
                    clients.entry(ua).or_insert_with(|| Client::of(ua)).clone()
                })
            },
        );
        before
            .entry((pid, session.id))
            .or_insert_with(|| previous.filter(|p| p.id == session.id));
        after.insert((pid, session.id), session.clone());
        remember(
            &mut latest,
            with_late.then_some(&mut earlier),
            key,
            &session,
        );

        let hour = delta.hours.entry((pid, hour_of(local_time))).or_default();
        hour.events += 1;
        hour.pageviews += i64::from(is_pageview);
        hour.visitors.push(visitor);

        let day = local_time.date();
        let mut dims: Vec<(Cow<'static, str>, String)> = vec![
            (DIM_PAGE.into(), page.pathname.clone()),
            (DIM_NAME.into(), hit.name.clone()),
            (DIM_HOSTNAME.into(), page.hostname.clone()),
        ];
        for (k, v) in &hit.props {
            if prop_keys.admit(pid, k, &mut delta) {
                dims.push((format!("{DIM_PROP_PREFIX}{k}").into(), v.clone()));
            }
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
        if old.is_some() {
            delta.continued.insert((pid, new.id));
        }
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
/// for late hits, in `earlier` (given only to a batch that has any).
fn remember(
    latest: &mut HashMap<(PropertyId, i64), Session>,
    earlier: Option<&mut HashMap<(PropertyId, i64), Vec<Session>>>,
    key: (PropertyId, i64),
    s: &Session,
) {
    if let Some(earlier) = earlier {
        let visits = earlier.entry(key).or_default();
        visits.retain(|v| v.id != s.id);
        visits.push(s.clone());
    }
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
            Event::HitRecorded(h) if may_be_late(h) => {
                Some((h.property_id, h.visitor_key.as_u64() as i64, h.occurred_at))
            }
            _ => None,
        })
        .collect()
}

fn may_be_late(h: &HitRecorded) -> bool {
    h.occurred_at < h.received_at - Duration::minutes(1)
}

fn contribute(
    hours: &mut BTreeMap<HourKey, HourDelta>,
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

/// Where [`contribute_visit`] finds each attribute of each of [`VISIT_ROLLUP_GROUPS`] in
/// [`Session::attributes`]: resolved once rather than by name for every visit.
static GROUP_ATTRIBUTES: LazyLock<Vec<Vec<usize>>> = LazyLock::new(|| {
    VISIT_ROLLUP_GROUPS
        .iter()
        .map(|(_, attributes)| {
            let index = |a: &&str| Session::attribute_index(a).expect("a visit attribute");
            attributes.iter().map(index).collect()
        })
        .collect()
});

/// Moves a visit's contribution to `rollup_visits` from its old state to its new one, in each
/// group of attributes. Its visitor is added to a row's sketch when the visit first counts there
/// (sketches cannot subtract; a visit whose attribution changes leaves its visitor in the old
/// row's sketch).
fn contribute_visit(
    rows: &mut BTreeMap<VisitKey, VisitDelta>,
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
    let day = |s: &Session| local(s.started_at, tz).date();
    let (new_day, new_values) = (day(new), new.attributes());
    let old = old.map(|o| (o, day(o), o.attributes()));
    for ((group, _), indices) in VISIT_ROLLUP_GROUPS.iter().zip(GROUP_ATTRIBUTES.iter()) {
        let key = |day, values: &[&str]| -> VisitKey {
            let values = indices.iter().map(|&i| values[i].to_owned());
            (pid, group, day, values.collect())
        };
        let row = match &old {
            // The visit stays in its row: its change is added there.
            Some((o, old_day, old_values))
                if *old_day == new_day
                    && indices.iter().all(|&i| old_values[i] == new_values[i]) =>
            {
                let row = rows.entry(key(new_day, &new_values)).or_default();
                add(row, o, -1);
                row
            }
            // It moves to another row (or is new), with its visitor.
            moved => {
                if let Some((o, old_day, old_values)) = moved {
                    add(rows.entry(key(*old_day, old_values)).or_default(), o, -1);
                }
                let row = rows.entry(key(new_day, &new_values)).or_default();
                row.visitors.push(new.visitor_key);
                row
            }
        };
        add(row, new, 1);
    }
}

fn props_json(props: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = props
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

mod writer;

#[cfg(test)]
mod tests;
