//! The analytics read model, which the `hits` projection writes and the query engine reads:
//!
//! - `hits`: one enriched row per hit, partitioned by local time (TimescaleDB hypertable when the
//!   extension exists, native range partitions, created on demand, otherwise). It answers the
//!   queries no rollup can.
//! - `sessions`: one row per visit.
//! - `rollup_hourly`: per property and local hour: counters, session counters (attributed to the
//!   hour the visit started) and a HyperLogLog sketch of visitors; `rollup_days`: the same per
//!   day, pre-merged from the hours.
//! - `rollup_daily`: per property, local day and one breakdown dimension value (page, event name,
//!   hostname, custom prop): counters and a visitor sketch.
//! - `rollup_visits`: per property, local day a visit started and the values of one group of visit
//!   attributes (acquisition: source, channel and UTM tags; technology: device, browser, OS;
//!   location: country, region, city; pages: the entry and exit pages): visit counters and a visitor
//!   sketch. A breakdown by one attribute sums its group's rows.
//! - `hit_properties`: each property's time zone, domain and session timeout, folded from
//!   `PropertyRegistered`; `hit_versions`: per property and projection partition, the position of
//!   the last event applied for it (their sum is the version of its read models, which keys the
//!   query cache).
//!
//! Hits from bots and crawlers are left out of all of these, and counted per day and bot under
//! the `bot` dimension of `rollup_daily`, so merchants can see what was filtered.
//!
//! Buckets are in the property's time zone: a local hour aligns with local days, weeks and months
//! in every zone, +05:30 and DST included.
//!
//! [`schema`] names the tables, columns and dimensions and holds the DDL; [`rows`] are what a
//! batch changes; [`store`] loads and writes them, the rollups through `append`, with sketches
//! built by [`hll`], and the append-only tables' rows with `COPY` (`copy`); [`merge`] compacts
//! the appended rollups.

mod append;
mod copy;
pub mod hll;
pub mod merge;
pub mod rows;
pub mod schema;
pub mod store;
