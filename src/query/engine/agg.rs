//! The raw aggregates the readers fetch for each group, and the metric values computed from them.

use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::EngineError;
use crate::query::{Metric, QueryError};

/// Each group's dimension labels and aggregates, as a reader returns them.
pub(super) type Groups = Vec<(Vec<String>, Agg)>;

/// Raw aggregates of one group; absent ones are `None`.
#[derive(Debug, Clone, Default)]
pub(super) struct Agg {
    pub(super) visitors: Option<i64>,
    pub(super) pageviews: Option<i64>,
    pub(super) events: Option<i64>,
    pub(super) visits: Option<i64>,
    pub(super) bounces: Option<i64>,
    pub(super) duration: Option<i64>,
    pub(super) session_pageviews: Option<i64>,
    pub(super) engaged: Option<i64>,
    pub(super) revenue_hits: Option<i64>,
    pub(super) revenue: Option<f64>,
    /// The revenue's currency, when the group has exactly one.
    pub(super) currency: Option<String>,
}

/// Totals some metrics are shares of.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Totals {
    /// Visitors in the range and filters, for `percentage`.
    pub(super) visitors: i64,
    /// Visitors in the range and filters without goal conditions, for `conversion_rate`.
    pub(super) goal_population: i64,
}

const AGG_COLUMNS: [&str; 9] = [
    "visitors",
    "pageviews",
    "events",
    "visits",
    "bounces",
    "duration",
    "session_pageviews",
    "engaged",
    "revenue_hits",
];

impl Agg {
    fn read(row: &PgRow) -> Result<Self, sqlx::Error> {
        let get = |name: &str| -> Result<Option<i64>, sqlx::Error> {
            let col = format!("m_{name}");
            match row.try_get::<Option<i64>, _>(col.as_str()) {
                Ok(v) => Ok(v),
                Err(sqlx::Error::ColumnNotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        };
        Ok(Self {
            visitors: get(AGG_COLUMNS[0])?,
            pageviews: get(AGG_COLUMNS[1])?,
            events: get(AGG_COLUMNS[2])?,
            visits: get(AGG_COLUMNS[3])?,
            bounces: get(AGG_COLUMNS[4])?,
            duration: get(AGG_COLUMNS[5])?,
            session_pageviews: get(AGG_COLUMNS[6])?,
            engaged: get(AGG_COLUMNS[7])?,
            revenue_hits: get(AGG_COLUMNS[8])?,
            revenue: match row.try_get::<Option<f64>, _>("r_revenue") {
                Ok(v) => v,
                Err(sqlx::Error::ColumnNotFound(_)) => None,
                Err(e) => return Err(e),
            },
            currency: match row.try_get::<Option<String>, _>("r_currency") {
                Ok(v) => v,
                Err(sqlx::Error::ColumnNotFound(_)) => None,
                Err(e) => return Err(e),
            },
        })
    }

    pub(super) fn merge(&mut self, other: Agg) {
        let pick = |a: &mut Option<i64>, b: Option<i64>| {
            if b.is_some() {
                *a = b;
            }
        };
        pick(&mut self.visitors, other.visitors);
        pick(&mut self.pageviews, other.pageviews);
        pick(&mut self.events, other.events);
        pick(&mut self.visits, other.visits);
        pick(&mut self.bounces, other.bounces);
        pick(&mut self.duration, other.duration);
        pick(&mut self.session_pageviews, other.session_pageviews);
        pick(&mut self.engaged, other.engaged);
    }

    /// Adds another group's counts (imported aggregates to footfall's own: visitors are summed,
    /// not unioned, as imported visitors are counts).
    pub(super) fn add(&mut self, other: &Agg) {
        let add = |a: &mut Option<i64>, b: Option<i64>| {
            if let Some(b) = b {
                *a = Some(a.unwrap_or(0) + b);
            }
        };
        add(&mut self.visitors, other.visitors);
        add(&mut self.pageviews, other.pageviews);
        add(&mut self.events, other.events);
        add(&mut self.visits, other.visits);
        add(&mut self.bounces, other.bounces);
        add(&mut self.duration, other.duration);
        add(&mut self.session_pageviews, other.session_pageviews);
        add(&mut self.engaged, other.engaged);
    }

    pub(super) fn value(&self, m: Metric, totals: Totals) -> Value {
        let n = |v: Option<i64>| v.unwrap_or(0);
        let visits = n(self.visits);
        let ratio = |num: i64| {
            if visits == 0 {
                0.0
            } else {
                num as f64 / visits as f64
            }
        };
        match m {
            Metric::Visitors => json!(n(self.visitors)),
            Metric::Visits => json!(visits),
            Metric::Pageviews => json!(n(self.pageviews)),
            Metric::Events => json!(n(self.events)),
            Metric::ViewsPerVisit => {
                json!((ratio(n(self.session_pageviews)) * 100.0).round() / 100.0)
            }
            Metric::BounceRate => json!((ratio(n(self.bounces)) * 100.0).round() as i64),
            Metric::VisitDuration => json!(ratio(n(self.duration)).round() as i64),
            Metric::Percentage => json!(percent(n(self.visitors), totals.visitors)),
            Metric::ConversionRate => {
                json!(percent(n(self.visitors), totals.goal_population))
            }
            Metric::EngagedSessions => json!(n(self.engaged)),
            Metric::EngagementRate => json!(percent(n(self.engaged), visits)),
            Metric::TotalRevenue | Metric::AverageRevenue => {
                let sum = self.revenue.unwrap_or(0.0);
                let value = match (m, n(self.revenue_hits)) {
                    (Metric::AverageRevenue, 0) => 0.0,
                    (Metric::AverageRevenue, hits) => sum / hits as f64,
                    _ => sum,
                };
                json!({"value": (value * 100.0).round() / 100.0, "currency": self.currency})
            }
        }
    }
}

/// `part` per 100 of `whole`, to one decimal.
fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

/// Runs a reader's query: each row's labels `d0`, `d1`, … and its aggregates.
pub(super) async fn fetch(
    qb: &mut QueryBuilder<'_, Postgres>,
    db: &mut PgConnection,
    dims: usize,
) -> Result<Groups, EngineError> {
    let rows = qb.build().fetch_all(&mut *db).await.map_err(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("2201B") => {
            EngineError::Invalid(QueryError::new("filters", "invalid regular expression"))
        }
        _ => EngineError::Database(e),
    })?;
    rows.iter()
        .map(|r| {
            let labels = (0..dims)
                .map(|i| r.try_get::<String, _>(format!("d{i}").as_str()))
                .collect::<Result<_, _>>()?;
            Ok((labels, Agg::read(r)?))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(EngineError::from)
}
