//! The rows the `hits` projection's fold produces and [`super::store`] writes: what one batch
//! changes in the read model.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::domain::session::{Session, SESSION_TIMEOUT};
use crate::domain::PropertyId;

/// What processing needs to know of a property (a `hit_properties` row).
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

/// The prop keys one partition rolls up, per property (see [`super::schema::HIT_PROP_KEYS`]): the
/// first `max` distinct keys of its hits.
#[derive(Debug, Clone, PartialEq)]
pub struct PropKeys {
    pub max: usize,
    pub by_property: HashMap<PropertyId, Admitted>,
}

/// One property's prop keys that a partition rolls up; `full` once it has refused one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admitted {
    pub keys: HashSet<String>,
    pub full: bool,
}

impl PropKeys {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            by_property: HashMap::new(),
        }
    }

    /// Whether `key`'s values are rolled up for `property`: it was admitted, or is now if there is
    /// room. What changes is added to `delta` (the key, or the mark of a full partition, and the
    /// refusal).
    pub fn admit(&mut self, property: PropertyId, key: &str, delta: &mut Delta) -> bool {
        let admitted = self.by_property.entry(property).or_default();
        if admitted.keys.contains(key) {
            return true;
        }
        if !admitted.full && admitted.keys.len() < self.max {
            admitted.keys.insert(key.to_owned());
            delta.prop_keys.push((property, key.to_owned()));
            return true;
        }
        if !admitted.full {
            admitted.full = true;
            delta
                .prop_keys
                .push((property, super::schema::PROP_KEYS_FULL.to_owned()));
        }
        delta.props_refused += 1;
        false
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

/// What a batch adds to one `rollup_hourly` row.
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

/// What a batch adds to one `rollup_daily` row.
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

/// A `rollup_hourly` row's key: the property and the local hour.
pub type HourKey = (PropertyId, NaiveDateTime);

/// A `rollup_daily` or `rollup_visits` row's key: the property, the dimension, the local day and
/// the dimension's value.
/// Dimension names are mostly constants; a prop's (`prop:<key>`) is owned, so that open-ended keys
/// cost memory only while a batch holds them.
pub type DayKey = (PropertyId, Cow<'static, str>, NaiveDate, String);

/// A `rollup_visits` row's key: the property, the group of visit attributes (one of
/// `schema::VISIT_ROLLUP_GROUPS`), the local day the visits started and the group's values, in
/// its order.
pub type VisitKey = (PropertyId, &'static str, NaiveDate, Vec<String>);

/// What a batch changes in the read models.
#[derive(Debug, Default, PartialEq)]
pub struct Delta {
    pub sites: Vec<(PropertyId, Site)>,
    pub hits: Vec<HitRow>,
    /// Final state of every session the batch touched, with its local start time.
    pub sessions: Vec<(PropertyId, Session, NaiveDateTime)>,
    /// The sessions among them that were stored before the batch (the others are new rows).
    pub continued: HashSet<SessionKey>,
    pub hours: BTreeMap<HourKey, HourDelta>,
    pub days: BTreeMap<DayKey, DayDelta>,
    pub visit_days: BTreeMap<VisitKey, VisitDelta>,
    /// Each visitor of the batch's latest visit after it.
    pub latest: HashMap<(PropertyId, i64), Session>,
    /// Properties whose read models the batch changes, with the position of their last event.
    pub changed: BTreeMap<PropertyId, i64>,
    /// Prop keys the batch admitted to the rollups, and marks of partitions it found full.
    pub prop_keys: Vec<(PropertyId, String)>,
    /// Props of the batch's hits whose keys were refused (kept only in `hits`).
    pub props_refused: u64,
}
