//! The reader of imported aggregates (the `imported` read model), for queries that include them.
//!
//! Imported data is daily counts per table of Plausible's layout, so a query can include it when
//! one table holds every dimension it breaks down and filters by (none: `imported_visitors`), its
//! time grain is a day or coarser, and its metrics are counts or ratios of counts. Otherwise the
//! query answers from footfall's own data alone and says why (`imports_skip_reason`).

use sqlx::{PgConnection, QueryBuilder};

use super::agg::{fetch, Groups};
use super::sql::{push_filter, push_group_by, time_label};
use super::EngineError;
use crate::domain::ImportedTable;
use crate::projections::imported::{stored_name, COUNTS, TABLE};
use crate::query::{Dimension, Filter, Metric, Query};

/// Why a query leaves imported data out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A dimension, filter or metric no imported table holds.
    UnsupportedQuery,
    /// Finer than a day: imported data is daily.
    UnsupportedInterval,
}

impl SkipReason {
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedQuery => "unsupported_query",
            Self::UnsupportedInterval => "unsupported_interval",
        }
    }
}

/// The column of the imported tables (and of `hits`/`sessions`) a dimension reads.
fn column(d: &Dimension) -> Option<&'static str> {
    match d {
        Dimension::Page => Some("pathname"),
        Dimension::Hostname => Some("hostname"),
        Dimension::Name => Some("name"),
        Dimension::Visit(c) => Some(c),
        Dimension::Time(_) | Dimension::Prop(_) | Dimension::Goal => None,
    }
}

fn filter_dimensions<'a>(f: &'a Filter, out: &mut Vec<&'a Dimension>) {
    match f {
        Filter::Leaf { dimension, .. } => out.push(dimension),
        Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| filter_dimensions(f, out)),
        Filter::Not(f) => filter_dimensions(f, out),
    }
}

/// The imported table that answers `q`, or why none does.
pub fn table_for(q: &Query) -> Result<ImportedTable, SkipReason> {
    let fine = |d: &Dimension| matches!(d, Dimension::Time(g) if g.is_sub_day());
    if q.dimensions.iter().any(fine) || !q.range.is_day_aligned() {
        return Err(SkipReason::UnsupportedInterval);
    }
    let counted = |m: &Metric| {
        matches!(
            m,
            Metric::Visitors
                | Metric::Visits
                | Metric::Pageviews
                | Metric::Events
                | Metric::ViewsPerVisit
                | Metric::BounceRate
                | Metric::VisitDuration
                | Metric::Percentage
        )
    };
    if !q.metrics.iter().all(counted) {
        return Err(SkipReason::UnsupportedQuery);
    }
    let mut dims: Vec<&Dimension> = q.dimensions.iter().filter(|d| !d.is_time()).collect();
    if let Some(f) = &q.filters {
        filter_dimensions(f, &mut dims);
    }
    let columns = dims
        .iter()
        .map(|d| column(d))
        .collect::<Option<Vec<_>>>()
        .ok_or(SkipReason::UnsupportedQuery)?;
    let per_visit = q.metrics.iter().any(Metric::is_per_visit);
    ImportedTable::ALL
        .into_iter()
        .find(|t| {
            columns
                .iter()
                .all(|c| t.labels().iter().any(|(_, col)| col == c))
                && (t.is_visit_table() || !per_visit)
        })
        .ok_or(SkipReason::UnsupportedQuery)
}

/// `q`'s groups from the imported aggregates of `table` (see [`table_for`]).
pub(super) async fn imported(
    db: &mut PgConnection,
    q: &Query,
    table: ImportedTable,
) -> Result<Groups, EngineError> {
    let mut qb = QueryBuilder::new("SELECT ");
    for (i, d) in q.dimensions.iter().enumerate() {
        match d {
            Dimension::Time(g) => {
                qb.push(format!("{} AS d{i}, ", time_label(*g, "day::timestamp")))
            }
            d => qb.push(format!("{} AS d{i}, ", column(d).unwrap_or("''"))),
        };
    }
    qb.push(
        "sum(visitors)::bigint AS m_visitors, sum(visits)::bigint AS m_visits, \
         sum(pageviews)::bigint AS m_pageviews, sum(pageviews)::bigint AS m_session_pageviews, \
         sum(bounces)::bigint AS m_bounces, sum(visit_duration)::bigint AS m_duration, \
         sum(events)::bigint AS m_events FROM (",
    );
    push_rows(&mut qb, q, table);
    // The days' visitors of a table count its visits' visitors; custom events and the visitors
    // table add events and pageviews to the totals and to event names.
    match table {
        ImportedTable::Visitors => {
            qb.push(" UNION ALL SELECT day, 0, 0, 0, 0, 0, events FROM (");
            push_rows(&mut qb, q, ImportedTable::CustomEvents);
            qb.push(") c");
        }
        ImportedTable::CustomEvents => {
            qb.push(
                " UNION ALL SELECT day, 'pageview', '', '', visitors, visits, pageviews, bounces, \
                 visit_duration, pageviews FROM (",
            );
            push_rows(&mut qb, q, ImportedTable::Visitors);
            qb.push(") v");
        }
        _ => {}
    }
    qb.push(") imported WHERE TRUE");
    if let Some(f) = &q.filters {
        qb.push(" AND ");
        push_filter(&mut qb, f, &q.goals)?;
    }
    push_group_by(&mut qb, q.dimensions.len());
    fetch(&mut qb, db, q.dimensions.len()).await
}

/// The rows of one table in the range: `day`, its labels named as the columns they are, then the
/// counts.
fn push_rows(qb: &mut QueryBuilder<'_, sqlx::Postgres>, q: &Query, table: ImportedTable) {
    qb.push("SELECT day, ");
    for (i, (_, col)) in table.labels().iter().enumerate() {
        qb.push(format!("l{} AS {col}, ", i + 1));
    }
    qb.push(COUNTS.join(", "));
    qb.push(format!(" FROM {TABLE} WHERE property_id = "))
        .push_bind(q.property_id)
        .push(" AND tbl = ")
        .push_bind(stored_name(table))
        .push(" AND day >= ")
        .push_bind(q.range.from.date())
        .push(" AND day < ")
        .push_bind(q.range.to.date());
}

/// Whether the property has imported data in the range.
pub async fn any_in_range(db: &mut PgConnection, q: &Query) -> Result<bool, EngineError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE property_id = $1 AND tbl = 'visitors' \
         AND day >= $2 AND day < $3)"
    ))
    .bind(q.property_id)
    .bind(q.range.from.date())
    .bind(q.range.to.date())
    .fetch_one(&mut *db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{DateRange, Grain, Op};

    fn query(dimensions: Vec<Dimension>, metrics: Vec<Metric>, filters: Option<Filter>) -> Query {
        Query {
            property_id: uuid::Uuid::nil(),
            range: DateRange::days("2026-11-01".parse().unwrap(), "2026-11-30".parse().unwrap()),
            metrics,
            dimensions,
            filters,
            order_by: vec![],
            limit: 100,
            offset: 0,
            goals: vec![],
            imports: true,
        }
    }

    #[test]
    fn one_table_must_hold_every_dimension_and_filter() {
        use Metric::*;
        let day = Dimension::Time(Grain::Day);
        assert_eq!(
            table_for(&query(vec![day.clone()], vec![Visitors, BounceRate], None)),
            Ok(ImportedTable::Visitors)
        );
        assert_eq!(
            table_for(&query(
                vec![Dimension::Visit("utm_medium")],
                vec![Visits],
                None
            )),
            Ok(ImportedTable::Sources)
        );
        let country = Filter::Leaf {
            op: Op::Is,
            dimension: Dimension::Visit("country"),
            values: vec!["FR".into()],
        };
        assert_eq!(
            table_for(&query(
                vec![Dimension::Visit("city")],
                vec![Visitors],
                Some(country.clone())
            )),
            Ok(ImportedTable::Locations)
        );
        assert_eq!(
            table_for(&query(vec![Dimension::Page], vec![Visitors], Some(country))),
            Err(SkipReason::UnsupportedQuery)
        );
        assert_eq!(
            table_for(&query(
                vec![Dimension::Visit("channel")],
                vec![Visitors],
                None
            )),
            Err(SkipReason::UnsupportedQuery)
        );
        assert_eq!(
            table_for(&query(vec![], vec![EngagedSessions], None)),
            Err(SkipReason::UnsupportedQuery)
        );
        assert_eq!(
            table_for(&query(
                vec![Dimension::Time(Grain::Hour)],
                vec![Visitors],
                None
            )),
            Err(SkipReason::UnsupportedInterval)
        );
        // Pages hold no bounces.
        let page = Filter::Leaf {
            op: Op::Is,
            dimension: Dimension::Page,
            values: vec!["/".into()],
        };
        assert_eq!(
            table_for(&query(vec![], vec![BounceRate], Some(page))),
            Err(SkipReason::UnsupportedQuery)
        );
    }
}
