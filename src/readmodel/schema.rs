//! The read model's schema: table and column names, the dimension names of the rollups, the DDL of
//! a generation, and the domain's visit rules as SQL. The writer ([`super::store`]) and the
//! readers (`crate::query`) both take their names from here.

use crate::domain::enrich::Visit;
use crate::domain::session::{BOUNCE_MAX_PAGEVIEWS, ENGAGED_AFTER_SECS, ENGAGED_MIN_PAGEVIEWS};
use crate::projections::{table, Generation};

/// Each property's time zone, domain and session timeout.
pub const HIT_PROPERTIES: &str = "hit_properties";
/// Per property and partition, the position of the last event the partition applied for it; their
/// sum is the version of the property's read models (which keys the shared answers).
pub const HIT_VERSIONS: &str = "hit_versions";
/// One enriched row per hit.
pub const HITS: &str = "hits";
/// One row per visit.
pub const SESSIONS: &str = "sessions";
/// The key of [`SESSIONS`]: a visitor's visits are found by it.
pub const SESSIONS_KEY: [&str; 3] = ["property_id", "visitor_key", "session_id"];

/// Per property and local hour: counters, session counters (attributed to the hour the visit
/// started) and a visitor sketch.
pub const ROLLUP_HOURLY: Rollup<7> = Rollup {
    table: "rollup_hourly",
    keys: &[("property_id", "uuid"), ("bucket", "timestamp")],
    index: "property_id, bucket",
    counters: [
        "pageviews",
        "events",
        "visits",
        "bounces",
        "duration",
        "session_pageviews",
        "engaged",
    ],
};

/// Per property, local day and one breakdown dimension's value (see the `DIM_*` names).
pub const ROLLUP_DAILY: Rollup<2> = Rollup {
    table: "rollup_daily",
    keys: DAY_KEYS,
    index: DAY_INDEX,
    counters: ["pageviews", "events"],
};

/// Per property, local day a visit started, and the values of one of [`VISIT_ROLLUP_GROUPS`]' (its
/// name in `dimension`, its attributes in their columns; the other groups' are empty).
pub const ROLLUP_VISITS: Rollup<6> = Rollup {
    table: "rollup_visits",
    keys: &VISIT_KEYS,
    index: DAY_INDEX,
    counters: [
        "visits",
        "bounces",
        "duration",
        "pageviews",
        "events",
        "engaged",
    ],
};

/// [`ROLLUP_HOURLY`] pre-merged by day: per property and local day, the union of the day's hours,
/// with the day's version ([`HIT_DAYS`]) when it was written. The merger writes a day's row each
/// time it merges the day's hours; readers take it instead of the day's 24 hours only while its
/// version is current, so a late hit is never missed. A 30-day total or daily series unions 30
/// sketches instead of up to 720 (a busy hour's is 10 KB, stored out of line: most of what a cold
/// report reads).
pub const ROLLUP_DAYS: &str = "rollup_days";

/// [`ROLLUP_DAILY`] pre-merged by week: per property, week (`day` is its Monday) and dimension
/// value, the union of the week's days' rows, for the dimensions that had at least
/// [`WEEK_MIN_ROWS`] rows in those days (where reading thirty days of rows costs more than a few
/// milliseconds: the pages of a busy property), at least twice as many as their values. The
/// merger writes a week's rows from the days that are over in every time zone, again as each
/// further day is over until the week is, with the days' version ([`ROLLUP_WEEKS`]); readers take
/// a week's rows instead of its days' only while that version is current, so late hits or imports
/// into a past week are never missed (they read its days until it is merged again). A 30-day
/// breakdown reads four weeks, the current week's days so far and a few days of rows instead of
/// thirty days.
pub const ROLLUP_WEEKLY: Rollup<2> = Rollup {
    table: "rollup_weekly",
    ..ROLLUP_DAILY
};
pub const WEEK_MIN_ROWS: i64 = 1_000;

/// [`ROLLUP_VISITS`] pre-merged by week, as [`ROLLUP_WEEKLY`] is [`ROLLUP_DAILY`]: per property,
/// complete week and combination of a group's values, for the groups whose week's sketches take
/// at least [`WEEK_MIN_VISIT_BYTES`], in at least twice as many rows as combinations (not the
/// entry and exit pages of a shop of many products). A group's rows are few, but a busy property's
/// sketches are dense (10 KB each): reading thirty days of them is what a cold visit breakdown
/// spends its time on.
pub const ROLLUP_VISITS_WEEKLY: Rollup<6> = Rollup {
    table: "rollup_visits_weekly",
    ..ROLLUP_VISITS
};
pub const WEEK_MIN_VISIT_BYTES: i64 = 8_192;

/// The table of a day rollup's pre-merged weeks, if it has one.
pub fn weekly_of(day_rollup: &str) -> Option<&'static str> {
    [
        (ROLLUP_DAILY.table, ROLLUP_WEEKLY.table),
        (ROLLUP_VISITS.table, ROLLUP_VISITS_WEEKLY.table),
    ]
    .into_iter()
    .find(|(d, _)| *d == day_rollup)
    .map(|(_, w)| w)
}

/// Per property and week of [`ROLLUP_WEEKLY`] and [`ROLLUP_VISITS_WEEKLY`]: how many of the
/// week's days from its Monday its rows hold (`days`: 7 once the week is over; fewer for the days
/// of the current week that are over, see [`super::merge::span_days`]), their version when the
/// rows were written (the sum of those days' [`HIT_DAYS`] positions over the partitions), and the
/// dimensions (and visit groups) it holds.
pub const ROLLUP_WEEKS: &str = "rollup_weeks";

/// The version of property `property`'s `days` days from `first` (SQL expressions) over `hit_days`
/// (that table, of a generation or its view): the sum of the positions of those days in every
/// partition, 0 for days without hits. A day's ([`ROLLUP_DAYS`]) or a week's ([`ROLLUP_WEEKS`]);
/// merger and readers compare versions by it alone.
pub fn version_sql(hit_days: &str, property: &str, first: &str, days: &str) -> String {
    format!(
        "(SELECT coalesce(sum(h.position), 0)::bigint FROM {hit_days} h \
         WHERE h.property_id = {property} AND h.day >= {first} AND h.day < {first} + {days})"
    )
}

pub const DAY_KEYS: &[(&str, &str)] = &[
    ("property_id", "uuid"),
    ("dimension", "text"),
    ("day", "date"),
    ("value", "text"),
];
const DAY_INDEX: &str = "property_id, dimension, day";

/// `rollup_visits`' keys: the property, the group, the day, then a column per attribute.
const VISIT_KEYS: [(&str, &str); 3 + VISIT_ROLLUP_DIMENSIONS.len()] = {
    let mut all = [("", ""); 3 + VISIT_ROLLUP_DIMENSIONS.len()];
    all[0] = ("property_id", "uuid");
    all[1] = ("dimension", "text");
    all[2] = ("day", "date");
    let mut i = 0;
    while i < VISIT_ROLLUP_DIMENSIONS.len() {
        all[3 + i] = (VISIT_ROLLUP_DIMENSIONS[i], "text");
        i += 1;
    }
    all
};

/// The `(property, day)` units of the rollups that batches have added rows to since they were
/// last merged, with the dimensions added to (see [`Rollup`]; [`HOURS`] for the hourly rollup's
/// rows of the day), per partition.
pub const ROLLUP_PENDING: &str = "rollup_pending";
/// The pending units' mark of the hourly rollup (no breakdown dimension is named so).
pub const HOURS: &str = "@hours";

/// Per property, local day and partition, the position of the last event that added a hit on that
/// day or changed a visit that started on it. Summed over the partitions, it versions the answers
/// kept per day (funnels).
pub const HIT_DAYS: &str = "hit_days";

/// Funnel answers kept per property, funnel (`key`: its steps and filters) and local day of the
/// visits' first step: a visitor sketch per step, and the day's version ([`HIT_DAYS`]) they were
/// computed at. A day whose version changed is computed again; one not computed for
/// [`FUNNEL_DAYS_KEPT`] is dropped (the merger prunes), so ad-hoc funnels and filters do not pile up.
pub const FUNNEL_DAYS: &str = "funnel_days";
pub const FUNNEL_DAYS_KEPT: &str = "30 days";

/// Per property and partition, the prop keys whose values the partition rolls up (into
/// `rollup_daily`, as `prop:<key>`): the first [`DEFAULT_MAX_PROP_KEYS`] (`FOOTFALL_MAX_PROP_KEYS`)
/// distinct keys of its hits, as GA4 caps custom dimensions. Other keys stay in `hits.props`,
/// where the enriched readers find them. A partition that has refused a key holds a
/// [`PROP_KEYS_FULL`] row and admits no key after it, so a key it rolls up has every one of its
/// hits there (see [`prop_rolled_up_sql`]).
pub const HIT_PROP_KEYS: &str = "hit_prop_keys";
/// The key of a [`HIT_PROP_KEYS`] row that marks a partition full (no prop key is empty).
pub const PROP_KEYS_FULL: &str = "";
pub const DEFAULT_MAX_PROP_KEYS: usize = 50;

/// Whether the rollups hold every hit of property `$1` with prop key `$2`: no partition has
/// refused keys without having admitted this one.
pub fn prop_rolled_up_sql() -> String {
    format!(
        "SELECT NOT EXISTS (SELECT 1 FROM {HIT_PROP_KEYS} f WHERE f.property_id = $1 \
           AND f.key = '{PROP_KEYS_FULL}' AND NOT EXISTS (SELECT 1 FROM {HIT_PROP_KEYS} k \
             WHERE k.property_id = $1 AND k.partition = f.partition AND k.key = $2))"
    )
}

/// Whether some partition has refused a prop key of property `$1` (then only the per-hit table
/// knows every key).
pub fn prop_keys_refused_sql() -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM {HIT_PROP_KEYS} WHERE property_id = $1 \
           AND key = '{PROP_KEYS_FULL}')"
    )
}

/// Every table of a generation, by base name (views of that name serve the live generation).
pub const TABLES: &[&str] = &[
    HIT_PROPERTIES,
    HIT_VERSIONS,
    HIT_DAYS,
    HIT_PROP_KEYS,
    FUNNEL_DAYS,
    HITS,
    SESSIONS,
    ROLLUP_HOURLY.table,
    ROLLUP_DAYS,
    ROLLUP_DAILY.table,
    ROLLUP_VISITS.table,
    ROLLUP_WEEKLY.table,
    ROLLUP_VISITS_WEEKLY.table,
    ROLLUP_WEEKS,
    ROLLUP_PENDING,
];

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

/// The columns of `sessions` that hold a visit's attributes, in the order of [`Visit::values`].
pub const VISIT_COLUMNS: [&str; 20] = Visit::COLUMNS;

/// A visit's entry and exit pages, kept in `sessions` beside its attributes.
pub const VISIT_PAGES: [&str; 2] = ["entry_page", "exit_page"];

/// The `visit:*` dimensions: the columns of `sessions` with the visit's pages and attributes.
pub fn visit_dimensions() -> impl Iterator<Item = &'static str> {
    VISIT_PAGES.into_iter().chain(VISIT_COLUMNS)
}

/// The visit attributes kept in `rollup_visits` (the ones dashboards break down by), in the order
/// of [`VISIT_ROLLUP_GROUPS`].
pub const VISIT_ROLLUP_DIMENSIONS: [&str; 18] = {
    let mut all = [""; 18];
    let (mut n, mut g) = (0, 0);
    while g < VISIT_ROLLUP_GROUPS.len() {
        let attributes = VISIT_ROLLUP_GROUPS[g].1;
        let mut i = 0;
        while i < attributes.len() {
            all[n] = attributes[i];
            n += 1;
            i += 1;
        }
        g += 1;
    }
    assert!(n == all.len(), "every grouped attribute, once");
    all
};

/// The groups of [`VISIT_ROLLUP_DIMENSIONS`] that `rollup_visits` keeps together: a row per
/// combination of a group's values, not per attribute value. Attributes that go together (a
/// source and its channel, a browser and its OS, a city and its country) combine into few more
/// rows than the most varied of them has values; entry and exit pages are as varied as the visits
/// when pages are (a shop of a million products), and the same when a visit sees one page. So a
/// visit costs four rows rather than one per attribute, and a breakdown by one attribute sums its
/// group's rows.
pub const VISIT_ROLLUP_GROUPS: [(&str, &[&str]); 4] = [
    // A visit without UTM tags (most) adds nothing to the combinations; tagged ones add a row
    // per term and content they come with.
    (
        "acquisition",
        &[
            "source",
            "channel",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
        ],
    ),
    ("technology", &["device", "browser", "os"]),
    // The names go with their codes: they add columns, not rows.
    (
        "location",
        &[
            "country",
            "region",
            "city",
            "country_name",
            "region_name",
            "city_name",
        ],
    ),
    ("pages", &["entry_page", "exit_page"]),
];

/// The group of [`VISIT_ROLLUP_GROUPS`] that keeps a visit attribute, if one does.
pub fn visit_rollup_group(attribute: &str) -> Option<&'static str> {
    VISIT_ROLLUP_GROUPS
        .iter()
        .find(|(_, attributes)| attributes.contains(&attribute))
        .map(|(group, _)| *group)
}

/// A visit's duration in whole seconds, over a `sessions` row (as `Session::duration_secs`).
pub const SESSION_DURATION_SQL: &str = "floor(extract(epoch FROM last_at - started_at))";

/// `Session::is_bounce` over a `sessions` row, built from the constants the domain uses.
pub fn bounce_sql() -> String {
    format!("(pageviews <= {BOUNCE_MAX_PAGEVIEWS} AND interactive = 0)")
}

/// `Session::is_engaged` over a `sessions` row, built from the constants the domain uses.
pub fn engaged_sql() -> String {
    format!(
        "({SESSION_DURATION_SQL} > {ENGAGED_AFTER_SECS} OR pageviews >= {ENGAGED_MIN_PAGEVIEWS} \
         OR conversions > 0)"
    )
}

/// A rollup table: per key, counters that add up and a HyperLogLog sketch of the visitors.
///
/// A batch's rows are appended as rows of their own: a key may have several rows until merging
/// (see [`super::merge::merge_units`]) replaces them with one. Readers sum the counters and union
/// the sketches of a key's rows, so their answers are the same before and after. An append is a
/// plain insert, several times cheaper than an upsert; most keys of a high-cardinality dimension
/// are written once; and a busy hour's dense sketch (10 KB, stored out of line) is written once
/// per merge rather than rewritten by every batch.
#[derive(Debug, Clone, Copy)]
pub struct Rollup<const N: usize> {
    pub table: &'static str,
    /// The key columns with their types.
    pub keys: &'static [(&'static str, &'static str)],
    /// The columns of its index, which readers and merges look rows up by.
    pub index: &'static str,
    /// The `bigint` counter columns.
    pub counters: [&'static str; N],
}

impl<const N: usize> Rollup<N> {
    /// The key columns, comma-separated.
    pub fn key_list(&self) -> String {
        let names: Vec<&str> = self.keys.iter().map(|(c, _)| *c).collect();
        names.join(", ")
    }

    /// `, sum(<counter>)::bigint` for each counter, in order: a key's rows merged.
    pub fn counter_sums(&self) -> String {
        self.counters
            .iter()
            .map(|c| format!(", sum({c})::bigint"))
            .collect()
    }

    /// Generation `g`'s table: the keys, the `visitors` sketch, then the counters; its index.
    fn ddl(&self, g: Generation) -> Vec<String> {
        let keys: String = self
            .keys
            .iter()
            .map(|(c, ty)| format!("{c} {ty} NOT NULL, "))
            .collect();
        let counters: Vec<String> = self
            .counters
            .iter()
            .map(|c| format!("{c} bigint NOT NULL"))
            .collect();
        let t = table(self.table, g);
        vec![
            format!(
                "CREATE TABLE {t} ({keys}visitors hll NOT NULL, {})",
                counters.join(", ")
            ),
            format!("CREATE INDEX ON {t} ({})", self.index),
        ]
    }
}

/// Generation `g`'s [`ROLLUP_DAYS`]: the hourly rollup's columns, keyed by day, and a version.
fn days_ddl(g: Generation) -> String {
    let counters: String = ROLLUP_HOURLY
        .counters
        .iter()
        .map(|c| format!(", {c} bigint NOT NULL"))
        .collect();
    format!(
        "CREATE TABLE {} (property_id uuid NOT NULL, day date NOT NULL, version bigint NOT NULL, \
         visitors hll NOT NULL{counters}, PRIMARY KEY (property_id, day))",
        table(ROLLUP_DAYS, g)
    )
}

/// DDL that creates generation `g`'s tables.
pub fn ddl(g: Generation) -> Vec<String> {
    let (props, hits, sessions) = (table(HIT_PROPERTIES, g), table(HITS, g), table(SESSIONS, g));
    let hit_columns = "property_id uuid NOT NULL, position bigint NOT NULL, \
        occurred_at timestamptz NOT NULL, local_time timestamp NOT NULL, visitor_key bigint NOT NULL, \
        session_id bigint NOT NULL, name text NOT NULL, pathname text NOT NULL, \
        hostname text NOT NULL, props jsonb, revenue_amount numeric, revenue_currency text";
    let visit_columns: String = VISIT_COLUMNS
        .iter()
        .map(|c| format!("{c} text NOT NULL, "))
        .collect();
    vec![
        format!(
            "CREATE TABLE {props} (property_id uuid PRIMARY KEY, timezone text NOT NULL, \
             domain text NOT NULL, session_timeout_minutes integer NOT NULL)"
        ),
        format!(
            "CREATE TABLE {} (property_id uuid NOT NULL, partition integer NOT NULL, \
             position bigint NOT NULL, PRIMARY KEY (property_id, partition))",
            table(HIT_VERSIONS, g)
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
               PRIMARY KEY ({sessions_key})) WITH (fillfactor = 85)",
            sessions_key = SESSIONS_KEY.join(", ")
        ),
        // A visit's row changes with each of its hits. No index covers a column that changes
        // then (`last_at`, the counters, the exit page), and the pages keep room, so those updates
        // are HOT: the row is rewritten in place and no index is touched. The key leads with the
        // visitor, so finding a visitor's visits (the fold's lookups) needs no index of its own:
        // it sorts their few visits.
        format!("CREATE INDEX ON {sessions} (property_id, start_local)"),
        format!(
            "CREATE TABLE {} (property_id uuid NOT NULL, day date NOT NULL, partition integer NOT NULL, \
             position bigint NOT NULL, PRIMARY KEY (property_id, day, partition))",
            table(HIT_DAYS, g)
        ),
        format!(
            "CREATE TABLE {} (property_id uuid NOT NULL, partition integer NOT NULL, \
             key text NOT NULL, PRIMARY KEY (property_id, partition, key))",
            table(HIT_PROP_KEYS, g)
        ),
        format!(
            "CREATE TABLE {} (property_id uuid NOT NULL, key bytea NOT NULL, day date NOT NULL, \
             version bigint NOT NULL, steps hll[] NOT NULL, computed_at timestamptz NOT NULL DEFAULT now(), \
             PRIMARY KEY (property_id, key, day))",
            table(FUNNEL_DAYS, g)
        ),
        format!(
            "CREATE TABLE {} (property_id uuid NOT NULL, week date NOT NULL, days smallint NOT NULL, \
             version bigint NOT NULL, dimensions text[] NOT NULL, PRIMARY KEY (property_id, week))",
            table(ROLLUP_WEEKS, g)
        ),
        format!(
            "CREATE TABLE {} (property_id uuid NOT NULL, day date NOT NULL, partition integer NOT NULL, \
             dimensions text[] NOT NULL, first_at timestamptz NOT NULL, last_at timestamptz NOT NULL, \
             PRIMARY KEY (property_id, day, partition))",
            table(ROLLUP_PENDING, g)
        ),
    ]
    .into_iter()
    .chain(ROLLUP_HOURLY.ddl(g))
    .chain([days_ddl(g)])
    .chain(ROLLUP_DAILY.ddl(g))
    .chain(ROLLUP_VISITS.ddl(g))
    .chain(ROLLUP_WEEKLY.ddl(g))
    .chain(ROLLUP_VISITS_WEEKLY.ddl(g))
    .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Duration};

    use super::*;
    use crate::domain::session::Session;

    fn session(pageviews: i32, interactive: i32, secs: i64, conversions: i32) -> Session {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Session {
            id: 1,
            visitor_key: 1,
            started_at: start,
            last_at: start + Duration::seconds(secs),
            pageviews,
            events: pageviews + interactive,
            interactive,
            entry_page: "/".into(),
            exit_page: "/".into(),
            entry_at: start,
            exit_at: start,
            conversions,
            visit: Arc::new(Visit::default()),
        }
    }

    /// Evaluates one of the rules' SQL on a session: the duration and the columns are replaced by
    /// the session's values, leaving `a <op> b` comparisons joined by AND and OR. Anything else
    /// fails the test, so a rule that outgrows this evaluator is noticed.
    fn eval(sql: &str, s: &Session) -> bool {
        let sql = sql.replace(SESSION_DURATION_SQL, &s.duration_secs().to_string());
        let value = |token: &str| -> i64 {
            match token {
                "pageviews" => i64::from(s.pageviews),
                "interactive" => i64::from(s.interactive),
                "conversions" => i64::from(s.conversions),
                n => n
                    .parse()
                    .unwrap_or_else(|_| panic!("unexpected `{n}` in {sql}")),
            }
        };
        let sql = sql.strip_prefix('(').and_then(|s| s.strip_suffix(')'));
        let sql = sql.unwrap_or_else(|| panic!("rules are parenthesised"));
        sql.split(" OR ").any(|any| {
            any.split(" AND ").all(|comparison| {
                let [a, op, b] = comparison.split_whitespace().collect::<Vec<_>>()[..] else {
                    panic!("unexpected `{comparison}`");
                };
                let (a, b) = (value(a), value(b));
                match op {
                    "<=" => a <= b,
                    ">=" => a >= b,
                    "<" => a < b,
                    ">" => a > b,
                    "=" => a == b,
                    _ => panic!("unexpected `{op}`"),
                }
            })
        })
    }

    #[test]
    fn the_sql_rules_agree_with_the_sessions_own() {
        let (bounce, engaged) = (bounce_sql(), engaged_sql());
        let (mut bounces, mut engagements, mut checked) = (0, 0, 0);
        // Around every threshold: 0-3 pageviews, 0-1 other interactions, 0-1 conversions, and
        // durations on both sides of the engaged threshold.
        for pageviews in 0..=3 {
            for interactive in 0..=1 {
                for secs in [0, ENGAGED_AFTER_SECS, ENGAGED_AFTER_SECS + 1, 600] {
                    for conversions in 0..=1 {
                        let s = session(pageviews, interactive, secs, conversions);
                        assert_eq!(eval(&bounce, &s), s.is_bounce(), "{s:?}");
                        assert_eq!(eval(&engaged, &s), s.is_engaged(), "{s:?}");
                        bounces += i32::from(s.is_bounce());
                        engagements += i32::from(s.is_engaged());
                        checked += 1;
                    }
                }
            }
        }
        // 4 × 2 × 4 × 2 sessions. Bounces: at most one pageview and no interaction, 2 × 4 × 2.
        // Not engaged: at most one pageview, at most 10 s and no conversion, 2 × 2 × 2.
        assert_eq!((checked, bounces, engagements), (64, 16, 64 - 8));
    }

    #[test]
    fn the_visit_rollup_keeps_visit_dimensions_in_groups() {
        for d in VISIT_ROLLUP_DIMENSIONS {
            assert!(visit_dimensions().any(|v| v == d), "{d}");
        }
        let grouped: Vec<&str> = VISIT_ROLLUP_GROUPS
            .iter()
            .flat_map(|(_, attributes)| attributes.iter().copied())
            .collect();
        assert_eq!(grouped, VISIT_ROLLUP_DIMENSIONS);
        assert_eq!(visit_rollup_group("browser"), Some("technology"));
        assert_eq!(visit_rollup_group("exit_page"), Some("pages"));
        assert_eq!(visit_rollup_group("browser_version"), None);
    }

    #[test]
    fn a_rollup_table_has_its_keys_a_sketch_and_its_counters() {
        assert_eq!(
            ROLLUP_HOURLY.ddl(3),
            [
                "CREATE TABLE rollup_hourly_g3 (property_id uuid NOT NULL, bucket timestamp NOT NULL, \
                 visitors hll NOT NULL, pageviews bigint NOT NULL, events bigint NOT NULL, \
                 visits bigint NOT NULL, bounces bigint NOT NULL, duration bigint NOT NULL, \
                 session_pageviews bigint NOT NULL, engaged bigint NOT NULL)",
                "CREATE INDEX ON rollup_hourly_g3 (property_id, bucket)"
            ]
        );
        assert_eq!(
            ROLLUP_DAILY.ddl(3),
            [
                "CREATE TABLE rollup_daily_g3 (property_id uuid NOT NULL, dimension text NOT NULL, \
                 day date NOT NULL, value text NOT NULL, visitors hll NOT NULL, \
                 pageviews bigint NOT NULL, events bigint NOT NULL)",
                "CREATE INDEX ON rollup_daily_g3 (property_id, dimension, day)"
            ]
        );
        assert_eq!(
            ROLLUP_VISITS.ddl(3)[0],
            "CREATE TABLE rollup_visits_g3 (property_id uuid NOT NULL, dimension text NOT NULL, \
             day date NOT NULL, source text NOT NULL, channel text NOT NULL, utm_source text NOT NULL, \
             utm_medium text NOT NULL, utm_campaign text NOT NULL, utm_term text NOT NULL, \
             utm_content text NOT NULL, device text NOT NULL, \
             browser text NOT NULL, os text NOT NULL, country text NOT NULL, region text NOT NULL, \
             city text NOT NULL, country_name text NOT NULL, region_name text NOT NULL, \
             city_name text NOT NULL, \
             entry_page text NOT NULL, exit_page text NOT NULL, \
             visitors hll NOT NULL, visits bigint NOT NULL, bounces bigint NOT NULL, \
             duration bigint NOT NULL, pageviews bigint NOT NULL, events bigint NOT NULL, \
             engaged bigint NOT NULL)"
        );
    }
}
