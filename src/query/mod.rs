//! The one internal query model. The query APIs (Plausible Stats v2 and v1) are adapters that
//! build a [`Query`]; [`engine`] plans and runs it against the read models.

pub mod cache;
pub mod engine;
pub mod reads;
mod versions;

use chrono::{Datelike, Duration, Months, NaiveDate, NaiveDateTime};
use serde::Serialize;

pub use crate::domain::Goal;

/// A validation error that names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct QueryError {
    pub field: String,
    pub message: String,
}

impl QueryError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    Events,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Percentage,
    /// GA4: visits longer than 10 s, with 2+ pageviews, or with a conversion.
    EngagedSessions,
    /// Engaged sessions per 100 visits.
    EngagementRate,
    /// Converting visitors per 100 visitors (needs a goal dimension or filter).
    ConversionRate,
    TotalRevenue,
    AverageRevenue,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "visitors" => Self::Visitors,
            "visits" => Self::Visits,
            "pageviews" => Self::Pageviews,
            "events" => Self::Events,
            "views_per_visit" => Self::ViewsPerVisit,
            "bounce_rate" => Self::BounceRate,
            "visit_duration" => Self::VisitDuration,
            "percentage" => Self::Percentage,
            "engaged_sessions" => Self::EngagedSessions,
            "engagement_rate" => Self::EngagementRate,
            "conversion_rate" => Self::ConversionRate,
            "total_revenue" => Self::TotalRevenue,
            "average_revenue" => Self::AverageRevenue,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Visitors => "visitors",
            Self::Visits => "visits",
            Self::Pageviews => "pageviews",
            Self::Events => "events",
            Self::ViewsPerVisit => "views_per_visit",
            Self::BounceRate => "bounce_rate",
            Self::VisitDuration => "visit_duration",
            Self::Percentage => "percentage",
            Self::EngagedSessions => "engaged_sessions",
            Self::EngagementRate => "engagement_rate",
            Self::ConversionRate => "conversion_rate",
            Self::TotalRevenue => "total_revenue",
            Self::AverageRevenue => "average_revenue",
        }
    }

    /// Metrics computed from whole visits, which event dimensions cannot split.
    pub fn is_per_visit(&self) -> bool {
        matches!(
            self,
            Self::ViewsPerVisit
                | Self::BounceRate
                | Self::VisitDuration
                | Self::EngagedSessions
                | Self::EngagementRate
        )
    }

    pub fn is_revenue(&self) -> bool {
        matches!(self, Self::TotalRevenue | Self::AverageRevenue)
    }

    /// Metrics only the per-hit table can answer.
    pub fn needs_hits(&self) -> bool {
        matches!(
            self,
            Self::ConversionRate | Self::TotalRevenue | Self::AverageRevenue
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grain {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    /// The hour of the day, `00` to `23`, over every day of the range (GA4's `hour`).
    HourOfDay,
}

impl Grain {
    /// Finer than a day: the daily rollups cannot answer it.
    pub fn is_sub_day(&self) -> bool {
        matches!(self, Self::Minute | Self::Hour | Self::HourOfDay)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dimension {
    Time(Grain),
    Page,
    Name,
    Hostname,
    Prop(String),
    /// `event:goal`: the property's goals a hit completes.
    Goal,
    /// `visit:<column>`: an attribute of the hit's visit, a column of `sessions`.
    Visit(&'static str),
}

/// The `visit:*` dimensions: the visit's entry and exit pages and its attributes.
fn visit_column(name: &str) -> Option<&'static str> {
    crate::readmodel::schema::visit_dimensions().find(|c| *c == name)
}

impl Dimension {
    /// Parses a dimension; `time` picks a grain that suits the range.
    pub fn parse(s: &str, range: &DateRange) -> Option<Self> {
        Some(match s {
            "time" => Self::Time(range.auto_grain()),
            "time:minute" => Self::Time(Grain::Minute),
            "time:hour" => Self::Time(Grain::Hour),
            "time:day" => Self::Time(Grain::Day),
            "time:week" => Self::Time(Grain::Week),
            "time:month" => Self::Time(Grain::Month),
            "event:page" => Self::Page,
            "event:name" => Self::Name,
            "event:hostname" => Self::Hostname,
            "event:goal" => Self::Goal,
            _ => {
                if let Some(key) = s.strip_prefix("event:props:").filter(|k| !k.is_empty()) {
                    Self::Prop(key.to_owned())
                } else {
                    Self::Visit(visit_column(s.strip_prefix("visit:")?)?)
                }
            }
        })
    }

    pub fn is_time(&self) -> bool {
        matches!(self, Self::Time(_))
    }

    /// Dimensions that split a visit's hits (pages, event names, props, goals).
    pub fn is_event(&self) -> bool {
        !matches!(self, Self::Time(_) | Self::Visit(_))
    }

    /// The key of a prop dimension.
    pub fn prop_key(&self) -> Option<&str> {
        match self {
            Self::Prop(k) => Some(k),
            _ => None,
        }
    }

    /// The `rollup_daily` dimension it is kept under, if any.
    pub fn rollup_name(&self) -> Option<String> {
        use crate::readmodel::schema::{DIM_HOSTNAME, DIM_NAME, DIM_PAGE, DIM_PROP_PREFIX};
        match self {
            Self::Page => Some(DIM_PAGE.into()),
            Self::Name => Some(DIM_NAME.into()),
            Self::Hostname => Some(DIM_HOSTNAME.into()),
            Self::Prop(k) => Some(format!("{DIM_PROP_PREFIX}{k}")),
            Self::Time(_) | Self::Goal | Self::Visit(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Is,
    IsNot,
    Contains,
    ContainsNot,
    Matches,
    MatchesNot,
}

impl Op {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "is" => Self::Is,
            "is_not" => Self::IsNot,
            "contains" => Self::Contains,
            "contains_not" => Self::ContainsNot,
            "matches" => Self::Matches,
            "matches_not" => Self::MatchesNot,
            _ => return None,
        })
    }
}

impl Filter {
    /// Whether any leaf filters by a dimension that satisfies `pred`.
    pub fn any_dimension(&self, pred: &impl Fn(&Dimension) -> bool) -> bool {
        match self {
            Self::Leaf { dimension, .. } => pred(dimension),
            Self::And(fs) | Self::Or(fs) => fs.iter().any(|f| f.any_dimension(pred)),
            Self::Not(f) => f.any_dimension(pred),
        }
    }

    /// How many values the filter compares with, in all.
    pub fn value_count(&self) -> usize {
        match self {
            Self::Leaf { values, .. } => values.len(),
            Self::And(fs) | Self::Or(fs) => fs.iter().map(Self::value_count).sum(),
            Self::Not(f) => f.value_count(),
        }
    }

    /// Whether any leaf compares with a value that satisfies `pred`.
    pub fn any_value(&self, pred: &impl Fn(&str) -> bool) -> bool {
        match self {
            Self::Leaf { values, .. } => values.iter().any(|v| pred(v)),
            Self::And(fs) | Self::Or(fs) => fs.iter().any(|f| f.any_value(pred)),
            Self::Not(f) => f.any_value(pred),
        }
    }

    /// The filter without its goal conditions: the population conversion rates are out of.
    pub fn without_goals(&self) -> Option<Filter> {
        match self {
            Self::Leaf {
                dimension: Dimension::Goal,
                ..
            } => None,
            Self::And(fs) => Some(Self::And(
                fs.iter().filter_map(Filter::without_goals).collect(),
            )),
            f if f.any_dimension(&|d| *d == Dimension::Goal) => None,
            f => Some(f.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Leaf {
        op: Op,
        dimension: Dimension,
        values: Vec<String>,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

/// A range of local time in the property's zone: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub from: NaiveDateTime,
    pub to: NaiveDateTime,
}

impl DateRange {
    pub fn days(first: NaiveDate, last: NaiveDate) -> Self {
        Self {
            from: first.and_time(chrono::NaiveTime::MIN),
            to: (last + Duration::days(1)).and_time(chrono::NaiveTime::MIN),
        }
    }

    /// A named period relative to `today` (in the property's zone). `start` is the first day the
    /// property has data for (for `all`).
    pub fn named(name: &str, today: NaiveDate, start: NaiveDate) -> Option<Self> {
        let month_start = today.with_day(1)?;
        let months_back = |n: u32| month_start.checked_sub_months(Months::new(n));
        let month_end = month_start.checked_add_months(Months::new(1))? - Duration::days(1);
        Some(match name {
            "day" => Self::days(today, today),
            "7d" | "28d" | "30d" | "91d" => {
                let n: i64 = name.trim_end_matches('d').parse().ok()?;
                Self::days(today - Duration::days(n - 1), today)
            }
            "month" => Self::days(month_start, month_end),
            "month_to_date" => Self::days(month_start, today),
            "last_month" => Self::days(months_back(1)?, month_start - Duration::days(1)),
            "6mo" => Self::days(months_back(5)?, month_end),
            "12mo" => Self::days(months_back(11)?, month_end),
            "year" => Self::days(
                today.with_ordinal(1)?,
                NaiveDate::from_ymd_opt(today.year(), 12, 31)?,
            ),
            "all" => Self::days(start.min(today), today),
            _ => return None,
        })
    }

    /// The same length, just before (cut at the year 1, which no data precedes).
    pub fn previous(&self) -> Self {
        let floor = NaiveDate::MIN
            .with_year(1)
            .unwrap_or(NaiveDate::MIN)
            .and_time(chrono::NaiveTime::MIN);
        let from = self
            .from
            .checked_sub_signed(self.to - self.from)
            .map_or(floor, |from| from.max(floor));
        Self {
            from,
            to: self.from,
        }
    }

    pub fn is_day_aligned(&self) -> bool {
        self.from.time() == chrono::NaiveTime::MIN && self.to.time() == chrono::NaiveTime::MIN
    }

    pub fn is_hour_aligned(&self) -> bool {
        use chrono::Timelike;
        [self.from, self.to]
            .iter()
            .all(|t| t.minute() == 0 && t.second() == 0 && t.nanosecond() == 0)
    }

    pub fn auto_grain(&self) -> Grain {
        let days = (self.to - self.from).num_hours() as f64 / 24.0;
        if self.to - self.from <= Duration::hours(1) {
            Grain::Minute
        } else if days <= 1.0 {
            Grain::Hour
        } else if days <= 40.0 {
            Grain::Day
        } else if days <= 186.0 {
            Grain::Week
        } else {
            Grain::Month
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderKey {
    Metric(Metric),
    Dimension(Dimension),
}

#[derive(Debug, Clone)]
pub struct Query {
    pub property_id: uuid::Uuid,
    pub range: DateRange,
    pub metrics: Vec<Metric>,
    pub dimensions: Vec<Dimension>,
    pub filters: Option<Filter>,
    pub order_by: Vec<(OrderKey, Direction)>,
    pub limit: usize,
    pub offset: usize,
    /// The property's goals, for `event:goal`.
    pub goals: Vec<Goal>,
    /// Whether to add imported aggregates when the query allows (see
    /// [`engine::imported::table_for`]).
    pub imports: bool,
}

impl Query {
    /// The Plausible APIs' largest page.
    pub const MAX_LIMIT: usize = 10_000;
    /// The most rows the engine returns for one query.
    pub const MAX_ROWS: usize = 300_000;
    /// Deep enough for any report's pages; far below what the database's `OFFSET` can take.
    pub const MAX_OFFSET: usize = 10_000_000;
    /// The most values a query's filters may compare with, in all.
    pub const MAX_FILTER_VALUES: usize = 1_000;
    /// The longest filter value, in characters (a URL's limit at collection is 2,000).
    pub const MAX_FILTER_VALUE_CHARS: usize = 2_000;

    /// [`Self::validate`], with the Plausible APIs' page size.
    pub fn validate_page(&self) -> Result<(), QueryError> {
        if self.limit > Self::MAX_LIMIT {
            return Err(QueryError::new(
                "pagination.limit",
                format!("must be 1 to {}", Self::MAX_LIMIT),
            ));
        }
        self.validate()
    }

    /// Checks the combinations the read models cannot answer.
    pub fn validate(&self) -> Result<(), QueryError> {
        if self.metrics.is_empty() {
            return Err(QueryError::new(
                "metrics",
                "at least one metric is required",
            ));
        }
        if self.range.to <= self.range.from {
            return Err(QueryError::new(
                "date_range",
                "the range must end after it starts",
            ));
        }
        // PostgreSQL text cannot hold NUL, and collection removes it from everything it stores:
        // such a value could match nothing, and the database would refuse it.
        let nul = |s: &str| s.contains('\0');
        let nul_prop = |d: &Dimension| matches!(d, Dimension::Prop(k) if nul(k));
        if self.dimensions.iter().any(nul_prop) {
            return Err(QueryError::new(
                "dimensions",
                "a property key may not contain NUL (U+0000)",
            ));
        }
        if self
            .filters
            .as_ref()
            .is_some_and(|f| f.any_dimension(&nul_prop) || f.any_value(&nul))
        {
            return Err(QueryError::new(
                "filters",
                "filter keys and values may not contain NUL (U+0000)",
            ));
        }
        let event_dims = self.dimensions.iter().any(Dimension::is_event);
        if let Some(m) = self
            .metrics
            .iter()
            .find(|m| m.is_per_visit())
            .filter(|_| event_dims)
        {
            return Err(QueryError::new(
                "metrics",
                format!("`{}` cannot be broken down by an event dimension", m.name()),
            ));
        }
        let goal = self.dimensions.contains(&Dimension::Goal)
            || self
                .filters
                .as_ref()
                .is_some_and(|f| f.any_dimension(&|d| *d == Dimension::Goal));
        if self.metrics.contains(&Metric::ConversionRate) && !goal {
            return Err(QueryError::new(
                "metrics",
                "`conversion_rate` needs an event:goal dimension or filter",
            ));
        }
        let breakdown = self.dimensions.iter().any(|d| !d.is_time());
        if self.metrics.contains(&Metric::Percentage) && !breakdown {
            return Err(QueryError::new(
                "metrics",
                "`percentage` needs a non-time dimension",
            ));
        }
        if self.dimensions.iter().filter(|d| d.is_time()).count() > 1 {
            return Err(QueryError::new("dimensions", "at most one time dimension"));
        }
        if self.limit == 0 || self.limit > Self::MAX_ROWS {
            return Err(QueryError::new(
                "pagination.limit",
                format!("must be 1 to {}", Self::MAX_ROWS),
            ));
        }
        if let Some(f) = &self.filters {
            if f.value_count() > Self::MAX_FILTER_VALUES {
                return Err(QueryError::new(
                    "filters",
                    format!("at most {} values in all", Self::MAX_FILTER_VALUES),
                ));
            }
            if f.any_value(&|v| v.chars().count() > Self::MAX_FILTER_VALUE_CHARS) {
                return Err(QueryError::new(
                    "filters",
                    format!(
                        "a value or pattern is longer than {} characters",
                        Self::MAX_FILTER_VALUE_CHARS
                    ),
                ));
            }
        }
        if self.offset > Self::MAX_OFFSET {
            return Err(QueryError::new(
                "pagination.offset",
                format!("must be at most {}", Self::MAX_OFFSET),
            ));
        }
        // Dates outside these years would overflow the date arithmetic of periods and buckets
        // (`to` is exclusive: a range may end with 9999-12-31).
        let in_years = |t: &NaiveDateTime| (1..=9999).contains(&t.year());
        let end_of_9999 =
            NaiveDate::from_ymd_opt(10_000, 1, 1).map(|d| d.and_time(chrono::NaiveTime::MIN));
        if !in_years(&self.range.from)
            || !(in_years(&self.range.to) || Some(self.range.to) == end_of_9999)
        {
            return Err(QueryError::new(
                "date_range",
                "dates must be within the years 1 to 9999",
            ));
        }
        for (key, _) in &self.order_by {
            let known = match key {
                OrderKey::Metric(m) => self.metrics.contains(m),
                OrderKey::Dimension(d) => self.dimensions.contains(d),
            };
            if !known {
                return Err(QueryError::new(
                    "order_by",
                    "can only order by a queried metric or dimension",
                ));
            }
        }
        Ok(())
    }
}

/// A result row: dimension labels, then metric values, in the query's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    pub dimensions: Vec<String>,
    pub metrics: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn named_ranges_are_calendar_ranges_ending_today() {
        let today = d("2026-11-22");
        assert_eq!(
            DateRange::named("month_to_date", today, d("2020-01-01")),
            Some(DateRange::days(d("2026-11-01"), today))
        );
        assert_eq!(
            DateRange::named("last_month", today, d("2020-01-01")),
            Some(DateRange::days(d("2026-10-01"), d("2026-10-31")))
        );
        let r = DateRange::named("7d", today, d("2020-01-01")).unwrap();
        assert_eq!(r, DateRange::days(d("2026-11-16"), d("2026-11-22")));
        assert_eq!(
            DateRange::named("month", today, today).unwrap(),
            DateRange::days(d("2026-11-01"), d("2026-11-30"))
        );
        assert_eq!(
            DateRange::named("6mo", today, today).unwrap().from.date(),
            d("2026-06-01")
        );
        assert_eq!(
            DateRange::named("year", today, today).unwrap().to.date(),
            d("2027-01-01")
        );
        assert_eq!(
            DateRange::named("all", today, d("2026-10-02"))
                .unwrap()
                .from
                .date(),
            d("2026-10-02")
        );
        assert!(DateRange::named("3w", today, today).is_none());
    }

    #[test]
    fn the_previous_period_has_the_same_length() {
        let r = DateRange::days(d("2026-11-16"), d("2026-11-22"));
        assert_eq!(
            r.previous(),
            DateRange::days(d("2026-11-09"), d("2026-11-15"))
        );
    }

    #[test]
    fn visit_metrics_cannot_be_split_by_event_dimensions() {
        let range = DateRange::days(d("2026-11-01"), d("2026-11-02"));
        let q = Query {
            property_id: uuid::Uuid::nil(),
            range,
            metrics: vec![Metric::BounceRate],
            dimensions: vec![Dimension::Page],
            filters: None,
            order_by: vec![],
            limit: 10,
            offset: 0,
            goals: vec![],
            imports: false,
        };
        assert_eq!(q.validate().unwrap_err().field, "metrics");
        let ok = Query {
            dimensions: vec![Dimension::parse("time", &range).unwrap()],
            ..q
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.dimensions[0], Dimension::Time(Grain::Day));
    }
}
