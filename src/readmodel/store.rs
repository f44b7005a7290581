//! Reads and writes one generation of the read model inside the runner's transaction: the state
//! the fold starts from (properties, each visitor's latest visit, the visits late hits may join),
//! and the upserts of a batch's [`Delta`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::append::write_rollup;
use super::copy::CopyRows;
use super::rows::{Admitted, Delta, HitRow, Site};
use super::schema::{
    HITS, HIT_DAYS, HIT_PROPERTIES, HIT_PROP_KEYS, HIT_VERSIONS, HOURS, PROP_KEYS_FULL,
    ROLLUP_DAILY, ROLLUP_HOURLY, ROLLUP_PENDING, ROLLUP_VISITS, SESSIONS, SESSIONS_KEY,
    VISIT_COLUMNS,
};
use crate::domain::enrich::Visit;
use crate::domain::session::Session;
use crate::domain::PropertyId;
use crate::projections::{table, Generation};

/// The read model of one generation, as one partition writes it.
pub struct Store {
    g: Generation,
    partition: i32,
    /// Months whose partition exists; `None` until known whether `hits` is natively partitioned.
    partitions: Option<(bool, HashSet<(i32, u32)>)>,
}

impl Store {
    pub fn new(g: Generation, partition: i32) -> Self {
        Self {
            g,
            partition,
            partitions: None,
        }
    }

    fn t(&self, base: &str) -> String {
        table(base, self.g)
    }

    /// The settings of these properties (those registered so far).
    pub async fn load_sites(
        &self,
        tx: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<Vec<(PropertyId, Site)>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT property_id, timezone, domain, session_timeout_minutes FROM {} WHERE property_id = ANY($1)",
            self.t(HIT_PROPERTIES)
        ))
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut sites = Vec::with_capacity(rows.len());
        for r in rows {
            let tz: String = r.try_get("timezone")?;
            let minutes: i32 = r.try_get("session_timeout_minutes")?;
            let site = Site {
                tz: tz.parse::<Tz>().unwrap_or(chrono_tz::UTC),
                domain: r.try_get("domain")?,
                session_timeout: Duration::minutes(i64::from(minutes)),
            };
            sites.push((PropertyId::new(r.try_get("property_id")?), site));
        }
        Ok(sites)
    }

    /// The prop keys this partition rolls up for these properties (none yet for most).
    pub async fn load_prop_keys(
        &self,
        tx: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<Vec<(PropertyId, Admitted)>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, String)> = sqlx::query_as(&format!(
            "SELECT property_id, key FROM {} WHERE property_id = ANY($1) AND partition = $2",
            self.t(HIT_PROP_KEYS)
        ))
        .bind(ids)
        .bind(self.partition)
        .fetch_all(&mut *tx)
        .await?;
        let mut by_property: HashMap<Uuid, Admitted> =
            ids.iter().map(|id| (*id, Admitted::default())).collect();
        for (id, key) in rows {
            let admitted = by_property.entry(id).or_default();
            if key == PROP_KEYS_FULL {
                admitted.full = true;
            } else {
                admitted.keys.insert(key);
            }
        }
        Ok(by_property
            .into_iter()
            .map(|(id, a)| (PropertyId::new(id), a))
            .collect())
    }

    /// Each of these visitors' latest visit: the greatest `(last_at, session_id)`. Looked up by
    /// the key, visitor by visitor: as a join, a batch's thousands of visitors made the planner
    /// sort the whole table to merge them (a rebuild's tables have no statistics while it replays),
    /// which took 0.5 s a batch once it held 500,000 visits.
    pub async fn load_latest_sessions(
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
            "SELECT s.* FROM UNNEST($1::uuid[], $2::bigint[]) AS k(property_id, visitor_key) \
             CROSS JOIN LATERAL (SELECT * FROM {} s \
               WHERE s.property_id = k.property_id AND s.visitor_key = k.visitor_key \
               ORDER BY s.last_at DESC, s.session_id DESC LIMIT 1) s",
            self.t(SESSIONS)
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
    pub async fn load_earlier_sessions(
        &self,
        tx: &mut PgConnection,
        late: &[(PropertyId, i64, DateTime<Utc>)],
    ) -> Result<HashMap<(PropertyId, i64), Vec<Session>>, sqlx::Error> {
        let mut out: HashMap<(PropertyId, i64), Vec<Session>> = HashMap::new();
        if late.is_empty() {
            return Ok(out);
        }
        // Each visitor once, from a day before their earliest late hit to a day after their
        // latest: a visit between two of their hits' windows cannot take either hit, so the fold
        // picks the same one. Looked up by the key, visitor by visitor, for the reason given at
        // `load_latest_sessions` (Measurement Protocol hits sent with their own times, up to 72
        // hours back, can make thousands of a batch's hits late); `OFFSET 0` keeps the planner
        // from turning the lookups back into that join.
        let mut spans: BTreeMap<(Uuid, i64), (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
        for (pid, visitor, at) in late {
            let span = spans.entry((pid.as_uuid(), *visitor)).or_insert((*at, *at));
            *span = (span.0.min(*at), span.1.max(*at));
        }
        let rows = sqlx::query(&format!(
            "SELECT s.* FROM UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[], $4::timestamptz[]) \
               AS k(property_id, visitor_key, earliest, latest) \
             CROSS JOIN LATERAL (SELECT * FROM {} s \
               WHERE s.property_id = k.property_id AND s.visitor_key = k.visitor_key \
                 AND s.last_at >= k.earliest - interval '1 day' \
                 AND s.started_at <= k.latest + interval '1 day' OFFSET 0) s",
            self.t(SESSIONS)
        ))
        .bind(spans.keys().map(|k| k.0).collect::<Vec<_>>())
        .bind(spans.keys().map(|k| k.1).collect::<Vec<_>>())
        .bind(spans.values().map(|s| s.0).collect::<Vec<_>>())
        .bind(spans.values().map(|s| s.1).collect::<Vec<_>>())
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

    /// Writes what a batch changes: new partitions, then every table's rows. Partitions write
    /// rows of their own, except a property's settings (on its registration), which come last, in
    /// property order, so that partitions wait for each other briefly and never in a cycle.
    pub async fn write(&mut self, tx: &mut PgConnection, d: &Delta) -> Result<(), sqlx::Error> {
        self.ensure_partitions(tx, &d.hits).await?;
        self.insert_hits(tx, &d.hits).await?;
        self.upsert_sessions(tx, d).await?;
        write_rollup(tx, self.g, &ROLLUP_DAILY, &d.days).await?;
        write_rollup(tx, self.g, &ROLLUP_VISITS, &d.visit_days).await?;
        write_rollup(tx, self.g, &ROLLUP_HOURLY, &d.hours).await?;
        self.mark_applied(tx, &d.changed).await?;
        self.insert_prop_keys(tx, &d.prop_keys).await?;
        self.mark_days(tx, d).await?;
        self.mark_pending(tx, d).await?;
        self.upsert_sites(tx, &d.sites).await
    }

    /// Records the prop keys the batch admitted, and the partitions it found full.
    async fn insert_prop_keys(
        &self,
        tx: &mut PgConnection,
        keys: &[(PropertyId, String)],
    ) -> Result<(), sqlx::Error> {
        if keys.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "INSERT INTO {} (property_id, partition, key) \
             SELECT property_id, $3, key FROM UNNEST($1::uuid[], $2::text[]) AS u(property_id, key) \
             ON CONFLICT DO NOTHING",
            self.t(HIT_PROP_KEYS)
        ))
        .bind(keys.iter().map(|(p, _)| p.as_uuid()).collect::<Vec<_>>())
        .bind(keys.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>())
        .bind(self.partition)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Records, for each `(property, local day)` the batch added hits to or whose visits it
    /// touched started on (every day it adds rollup rows to), the position of the batch's last
    /// event for the property: the day's version (see [`HIT_DAYS`]).
    async fn mark_days(&self, tx: &mut PgConnection, d: &Delta) -> Result<(), sqlx::Error> {
        let days: std::collections::BTreeSet<(PropertyId, NaiveDate)> = d
            .sessions
            .iter()
            .map(|(p, _, start_local)| (*p, start_local.date()))
            .chain(d.days.keys().map(|(p, _, day, _)| (*p, *day)))
            .chain(d.visit_days.keys().map(|(p, _, day, _)| (*p, *day)))
            .chain(d.hours.keys().map(|(p, hour)| (*p, hour.date())))
            .collect();
        let (mut properties, mut dates, mut positions) = (vec![], vec![], vec![]);
        for (p, day) in days {
            if let Some(position) = d.changed.get(&p) {
                properties.push(p.as_uuid());
                dates.push(day);
                positions.push(*position);
            }
        }
        if properties.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "INSERT INTO {} (property_id, day, partition, position) \
             SELECT property_id, day, $4, position \
             FROM UNNEST($1::uuid[], $2::date[], $3::bigint[]) AS u(property_id, day, position) \
             ON CONFLICT (property_id, day, partition) DO UPDATE SET position = EXCLUDED.position",
            self.t(HIT_DAYS)
        ))
        .bind(properties)
        .bind(dates)
        .bind(positions)
        .bind(self.partition)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Records the `(property, day)` units the batch appended rollup rows to, and under which
    /// dimensions (or the hours of the day), for merging.
    async fn mark_pending(&self, tx: &mut PgConnection, d: &Delta) -> Result<(), sqlx::Error> {
        let days = d
            .days
            .keys()
            .map(|(p, dim, day, _)| (p, *day, dim.as_ref()));
        let visit_days = d
            .visit_days
            .keys()
            .map(|(p, group, day, _)| (p, *day, *group));
        let units: std::collections::BTreeSet<(Uuid, NaiveDate, &str)> = days
            .chain(visit_days)
            .map(|(p, day, dim)| (p.as_uuid(), day, dim))
            .chain(
                d.hours
                    .keys()
                    .map(|(p, hour)| (p.as_uuid(), hour.date(), HOURS)),
            )
            .collect();
        if units.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "INSERT INTO {} AS p (property_id, day, partition, dimensions, first_at, last_at) \
             SELECT property_id, day, $4, array_agg(dimension), now(), now() \
             FROM UNNEST($1::uuid[], $2::date[], $3::text[]) AS u(property_id, day, dimension) GROUP BY 1, 2 \
             ON CONFLICT (property_id, day, partition) DO UPDATE SET last_at = now(), \
               dimensions = ARRAY(SELECT DISTINCT unnest(p.dimensions || EXCLUDED.dimensions))",
            self.t(ROLLUP_PENDING)
        ))
        .bind(units.iter().map(|u| u.0).collect::<Vec<_>>())
        .bind(units.iter().map(|u| u.1).collect::<Vec<_>>())
        .bind(units.iter().map(|u| u.2).collect::<Vec<_>>())
        .bind(self.partition)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Creates the monthly partitions the hits need (native partitioning only).
    async fn ensure_partitions(
        &mut self,
        tx: &mut PgConnection,
        hits: &[HitRow],
    ) -> Result<(), sqlx::Error> {
        let hits_table = self.t(HITS);
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
        // In order, so runners that lock several new months lock them in the same order.
        let months: std::collections::BTreeSet<(i32, u32)> = hits
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
            let partition = format!("{hits_table}_p{y:04}{m:02}");
            // The runners of a partitioned projection may need the same month at once: the one
            // that comes second waits for the first's commit, then finds the table there (two
            // concurrent CREATEs would fail the second with a duplicate key).
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(&partition)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {partition} PARTITION OF {hits_table} \
                 FOR VALUES FROM ('{from}') TO ('{to}')"
            ))
            .execute(&mut *tx)
            .await?;
            known.insert((y, m));
        }
        Ok(())
    }

    /// Property settings, in property order (every partition folds the registrations).
    async fn upsert_sites(
        &self,
        tx: &mut PgConnection,
        s: &[(PropertyId, Site)],
    ) -> Result<(), sqlx::Error> {
        if s.is_empty() {
            return Ok(());
        }
        // The last registration of a property in the batch wins, as in the fold.
        let s: BTreeMap<PropertyId, &Site> = s.iter().map(|(p, site)| (*p, site)).collect();
        sqlx::query(&format!(
            "INSERT INTO {} (property_id, timezone, domain, session_timeout_minutes) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int[]) \
             ON CONFLICT (property_id) DO UPDATE SET timezone = EXCLUDED.timezone, domain = EXCLUDED.domain, \
               session_timeout_minutes = EXCLUDED.session_timeout_minutes",
            self.t(HIT_PROPERTIES)
        ))
        .bind(s.keys().map(|p| p.as_uuid()).collect::<Vec<_>>())
        .bind(s.values().map(|x| x.tz.name()).collect::<Vec<_>>())
        .bind(s.values().map(|x| x.domain.as_str()).collect::<Vec<_>>())
        .bind(
            s.values()
                .map(|x| x.session_timeout.num_minutes() as i32)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn insert_hits(&self, tx: &mut PgConnection, h: &[HitRow]) -> Result<(), sqlx::Error> {
        let mut copy = CopyRows::new();
        for r in h {
            let (amount, currency) = r.revenue.as_ref().map(|(a, c)| (a, c)).unzip();
            copy.row(12)
                .uuid(r.property_id.as_uuid())
                .int8(r.position)
                .timestamptz(r.occurred_at)
                .timestamp(r.local_time)
                .int8(r.visitor_key)
                .int8(r.session_id)
                .text(&r.name)
                .text(&r.pathname)
                .text(&r.hostname)
                .opt_jsonb(r.props.as_deref())
                .opt_numeric(amount.map(String::as_str))?
                .opt_text(currency.map(String::as_str));
        }
        copy.copy(
            tx,
            &self.t(HITS),
            "property_id, position, occurred_at, local_time, visitor_key, session_id, name, \
             pathname, hostname, props, revenue_amount, revenue_currency",
        )
        .await
    }

    /// Writes the batch's sessions: new ones with `COPY`, continued ones as upserts.
    async fn upsert_sessions(&self, tx: &mut PgConnection, d: &Delta) -> Result<(), sqlx::Error> {
        let (continued, new): (Vec<_>, Vec<_>) = d
            .sessions
            .iter()
            .partition(|(p, s, _)| d.continued.contains(&(*p, s.id)));
        let mut copy = CopyRows::new();
        for (p, s, start_local) in new {
            copy.row(14 + VISIT_COLUMNS.len())
                .uuid(p.as_uuid())
                .int8(s.id)
                .int8(s.visitor_key)
                .timestamptz(s.started_at)
                .timestamptz(s.last_at)
                .timestamp(*start_local)
                .int4(s.pageviews)
                .int4(s.events)
                .int4(s.interactive)
                .text(&s.entry_page)
                .text(&s.exit_page)
                .int4(s.conversions)
                .timestamptz(s.entry_at)
                .timestamptz(s.exit_at);
            for value in s.visit.values() {
                copy.text(value);
            }
        }
        copy.copy(tx, &self.t(SESSIONS), &session_columns()).await?;
        self.update_sessions(tx, &continued).await
    }

    /// Upserts visits stored before the batch.
    async fn update_sessions(
        &self,
        tx: &mut PgConnection,
        s: &[&(PropertyId, Session, chrono::NaiveDateTime)],
    ) -> Result<(), sqlx::Error> {
        if s.is_empty() {
            return Ok(());
        }
        let visit_params: String = (0..VISIT_COLUMNS.len())
            .map(|i| format!(", ${}::text[]", i + 15))
            .collect();
        // Every column but the key takes the batch's value.
        let columns = session_columns();
        let updates: Vec<String> = columns
            .split(", ")
            .filter(|c| !SESSIONS_KEY.contains(c))
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let sql = format!(
            "INSERT INTO {} ({columns}) \
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[], \
                                  $6::timestamp[], $7::int[], $8::int[], $9::int[], $10::text[], $11::text[], $12::int[], \
                                  $13::timestamptz[], $14::timestamptz[]{visit_params}) \
             ON CONFLICT ({}) DO UPDATE SET {}",
            self.t(SESSIONS),
            SESSIONS_KEY.join(", "),
            updates.join(", ")
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
        for i in 0..VISIT_COLUMNS.len() {
            q = q.bind(
                s.iter()
                    .map(|(_, s, _)| s.visit.values()[i])
                    .collect::<Vec<_>>(),
            );
        }
        q.execute(&mut *tx).await?;
        Ok(())
    }

    /// Whether this partition has applied any hit to this generation yet.
    pub async fn applied_any(&self, tx: &mut PgConnection) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE partition = $1)",
            self.t(HIT_VERSIONS)
        ))
        .bind(self.partition)
        .fetch_one(&mut *tx)
        .await
    }

    /// Records, for each property the batch changed, the position of the last event this
    /// partition applied for it: the property's read-model version is the sum over partitions.
    async fn mark_applied(
        &self,
        tx: &mut PgConnection,
        changed: &BTreeMap<PropertyId, i64>,
    ) -> Result<(), sqlx::Error> {
        if changed.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "INSERT INTO {} (property_id, partition, position) \
             SELECT property_id, $3, position FROM UNNEST($1::uuid[], $2::bigint[]) AS c(property_id, position) \
             ON CONFLICT (property_id, partition) DO UPDATE SET position = EXCLUDED.position",
            self.t(HIT_VERSIONS)
        ))
        .bind(changed.keys().map(|p| p.as_uuid()).collect::<Vec<_>>())
        .bind(changed.values().copied().collect::<Vec<_>>())
        .bind(self.partition)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// The columns of `sessions`, in the order its writes give them.
fn session_columns() -> String {
    format!(
        "property_id, session_id, visitor_key, started_at, last_at, start_local, pageviews, events, \
         interactive, entry_page, exit_page, conversions, entry_at, exit_at, {}",
        VISIT_COLUMNS.join(", ")
    )
}

fn session_of(r: &PgRow) -> Result<Session, sqlx::Error> {
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
        visit: Arc::new(visit_of(r)?),
    })
}

fn visit_of(r: &PgRow) -> Result<Visit, sqlx::Error> {
    let mut values: [String; 20] = Default::default();
    for (v, c) in values.iter_mut().zip(VISIT_COLUMNS) {
        *v = r.try_get(c)?;
    }
    Ok(Visit::from_values(values))
}
