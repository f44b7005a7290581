//! The GraphQL schema: `stats` takes a Plausible v2 query object as it is; `report` builds one from
//! typed arguments; `realtimeVisitors` and `properties` (admins) answer as their REST
//! counterparts. Every field answers through the same handlers as the REST APIs, so the numbers
//! are the same.

use async_graphql::{Context, Enum, EnumType, InputObject, Json, Object, SimpleObject};
use serde_json::{json, Value};

use super::{state_and_token, to_graphql, GqlResult};
use crate::api::query::{v1, v2, Site};
use crate::api::ApiError;

pub struct QueryRoot;

/// What every report-like field costs against the request's complexity budget.
pub const REPORT_COMPLEXITY: usize = 100;

/// A report's rows and metadata, as `POST /api/v2/query` answers.
#[derive(SimpleObject)]
pub struct StatsResult {
    results: Vec<Row>,
    /// `meta` of the v2 answer (time labels, imports, comparison range).
    meta: Option<Json<Value>>,
}

/// One row: dimension labels, then metric values, in the query's order.
#[derive(SimpleObject)]
pub struct Row {
    dimensions: Vec<String>,
    /// Numbers, or `{"value", "currency"}` for revenue.
    metrics: Vec<Json<Value>>,
    /// With `include.comparisons`: the same row in the previous period and the change.
    comparison: Option<Json<Value>>,
}

impl StatsResult {
    fn of(answer: Value) -> Self {
        let rows = answer["results"].as_array().cloned().unwrap_or_default();
        let results = rows
            .into_iter()
            .map(|r| Row {
                dimensions: r["dimensions"]
                    .as_array()
                    .map(|d| {
                        d.iter()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                metrics: r["metrics"]
                    .as_array()
                    .map(|m| m.iter().cloned().map(Json).collect())
                    .unwrap_or_default(),
                comparison: r.get("comparison").cloned().map(Json),
            })
            .collect();
        Self {
            results,
            meta: Some(Json(answer["meta"].clone())),
        }
    }
}

/// The query model's metrics.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::query::Metric")]
pub enum MetricName {
    Visitors,
    Visits,
    Pageviews,
    Events,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Percentage,
    EngagedSessions,
    EngagementRate,
    ConversionRate,
    TotalRevenue,
    AverageRevenue,
}

/// The query model's dimensions (custom properties are `props`, by key).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum DimensionName {
    Time,
    TimeMinute,
    TimeHour,
    TimeDay,
    TimeWeek,
    TimeMonth,
    EventPage,
    EventName,
    EventHostname,
    EventGoal,
    VisitEntryPage,
    VisitExitPage,
    VisitSource,
    VisitReferrer,
    VisitChannel,
    VisitUtmSource,
    VisitUtmMedium,
    VisitUtmCampaign,
    VisitUtmContent,
    VisitUtmTerm,
    VisitClickId,
    VisitDevice,
    VisitBrowser,
    VisitBrowserVersion,
    VisitOs,
    VisitOsVersion,
    VisitCountry,
    VisitCountryName,
    VisitRegion,
    VisitRegionName,
    VisitCity,
    VisitCityName,
}

impl DimensionName {
    /// The v2 name: `TIME_DAY` is `time:day`, `VISIT_UTM_SOURCE` is `visit:utm_source`.
    pub fn v2_name(self) -> String {
        let upper = Self::items()
            .iter()
            .find(|i| i.value == self)
            .map_or("", |i| i.name);
        let lower = upper.to_lowercase();
        match lower.split_once('_') {
            Some((scope, rest)) => format!("{scope}:{rest}"),
            None => lower,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum FilterOp {
    Is,
    IsNot,
    Contains,
    ContainsNot,
    Matches,
    MatchesNot,
}

impl FilterOp {
    fn v2_name(self) -> &'static str {
        match self {
            Self::Is => "is",
            Self::IsNot => "is_not",
            Self::Contains => "contains",
            Self::ContainsNot => "contains_not",
            Self::Matches => "matches",
            Self::MatchesNot => "matches_not",
        }
    }
}

/// One condition; a report's filters must all hold. Either `dimension` or `prop` (a custom
/// property key).
#[derive(InputObject)]
pub struct FilterInput {
    op: FilterOp,
    dimension: Option<DimensionName>,
    prop: Option<String>,
    values: Vec<String>,
}

/// Order by a requested metric or dimension.
#[derive(InputObject)]
pub struct OrderInput {
    metric: Option<MetricName>,
    dimension: Option<DimensionName>,
    #[graphql(default)]
    desc: bool,
}

/// A property, for admins.
#[derive(SimpleObject)]
pub struct PropertyInfo {
    id: String,
    domain: String,
    name: String,
    timezone: String,
    registered_at: String,
}

fn invalid(field: &str, message: &str) -> async_graphql::Error {
    to_graphql(ApiError::bad_request(
        "invalid_query",
        format!("{field}: {message}"),
    ))
}

fn one_of(field: &str, dimension: Option<DimensionName>, prop: Option<&str>) -> GqlResult<String> {
    match (dimension, prop) {
        (Some(d), None) => Ok(d.v2_name()),
        (None, Some(p)) => Ok(format!("event:props:{p}")),
        _ => Err(invalid(field, "needs exactly one of dimension and prop")),
    }
}

#[Object]
impl QueryRoot {
    /// A Plausible Stats API v2 query object, exactly as `POST /api/v2/query` takes it
    /// (`site_id`, `metrics`, `date_range`, `dimensions`, `filters`, `order_by`, `pagination`,
    /// `include`).
    #[graphql(complexity = "REPORT_COMPLEXITY")]
    async fn stats(&self, ctx: &Context<'_>, query: Json<Value>) -> GqlResult<StatsResult> {
        let (state, token) = state_and_token(ctx);
        let Value::Object(obj) = query.0 else {
            return Err(invalid("query", "must be a v2 query object"));
        };
        let answer = v2::answer(state, token, obj).await.map_err(to_graphql)?;
        Ok(StatsResult::of(answer))
    }

    /// A report with typed arguments. `dateRange` is a period name (`day`, `7d`, `30d`, `month`,
    /// `realtime`, …) unless `from` and `to` (dates or ISO 8601 datetimes, both inclusive) are
    /// given. `props` adds breakdowns by custom property keys after `dimensions`.
    #[graphql(complexity = "REPORT_COMPLEXITY")]
    #[allow(clippy::too_many_arguments)]
    async fn report(
        &self,
        ctx: &Context<'_>,
        site_id: String,
        metrics: Vec<MetricName>,
        #[graphql(default)] dimensions: Vec<DimensionName>,
        #[graphql(default)] props: Vec<String>,
        #[graphql(default)] filters: Vec<FilterInput>,
        #[graphql(default)] order_by: Vec<OrderInput>,
        #[graphql(default_with = "String::from(\"30d\")")] date_range: String,
        from: Option<String>,
        to: Option<String>,
        #[graphql(default = 100)] limit: u32,
        #[graphql(default)] offset: u32,
    ) -> GqlResult<StatsResult> {
        let (state, token) = state_and_token(ctx);
        let range = match (from, to) {
            (Some(from), Some(to)) => json!([from, to]),
            (None, None) => json!(date_range),
            _ => return Err(invalid("from", "from and to go together")),
        };
        let metric_names: Vec<&str> = metrics
            .iter()
            .map(|m| crate::query::Metric::from(*m).name())
            .collect();
        let dimension_names: Vec<String> = dimensions
            .iter()
            .map(|d| d.v2_name())
            .chain(props.iter().map(|p| format!("event:props:{p}")))
            .collect();
        let filters = filters
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let dim = one_of(&format!("filters[{i}]"), f.dimension, f.prop.as_deref())?;
                Ok(json!([f.op.v2_name(), dim, f.values]))
            })
            .collect::<GqlResult<Vec<Value>>>()?;
        let order_by = order_by
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let key = match (o.metric, o.dimension) {
                    (Some(m), None) => crate::query::Metric::from(m).name().to_owned(),
                    (None, Some(d)) => d.v2_name(),
                    _ => {
                        return Err(invalid(
                            &format!("orderBy[{i}]"),
                            "needs exactly one of metric and dimension",
                        ))
                    }
                };
                Ok(json!([key, if o.desc { "desc" } else { "asc" }]))
            })
            .collect::<GqlResult<Vec<Value>>>()?;
        let query = json!({
            "site_id": site_id, "metrics": metric_names, "date_range": range,
            "dimensions": dimension_names, "filters": filters, "order_by": order_by,
            "pagination": {"limit": limit, "offset": offset},
        });
        let Value::Object(obj) = query else {
            unreachable!("a JSON object literal")
        };
        let answer = v2::answer(state, token, obj).await.map_err(to_graphql)?;
        Ok(StatsResult::of(answer))
    }

    /// Visitors in the last 5 minutes, as `GET /api/v1/stats/realtime/visitors`.
    #[graphql(complexity = 10)]
    async fn realtime_visitors(&self, ctx: &Context<'_>, site_id: String) -> GqlResult<i64> {
        let (state, token) = state_and_token(ctx);
        let site = Site::open(token, state, &site_id)
            .await
            .map_err(to_graphql)?;
        let visitors = v1::visitors_now(state, &site).await.map_err(to_graphql)?;
        Ok(visitors.as_i64().unwrap_or(0))
    }

    /// Properties ordered by domain, after the domain `after` (the admin token only).
    #[graphql(complexity = 10)]
    async fn properties(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] limit: u32,
        after: Option<String>,
    ) -> GqlResult<Vec<PropertyInfo>> {
        let (state, token) = state_and_token(ctx);
        if !state.is_admin(token) {
            return Err(to_graphql(ApiError::unauthorized()));
        }
        crate::api::admin::check_page_limit(limit as usize).map_err(to_graphql)?;
        let found = state
            .properties
            .list(after.as_deref(), limit)
            .await
            .map_err(|e| to_graphql(e.into()))?;
        Ok(found
            .into_iter()
            .map(|p| PropertyInfo {
                id: p.id.to_string(),
                domain: p.domain,
                name: p.name,
                timezone: p.timezone,
                registered_at: p.registered_at.to_rfc3339(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dimension_name_is_a_dimension_of_the_query_model() {
        let range = crate::query::DateRange::days(chrono::NaiveDate::MIN, chrono::NaiveDate::MIN);
        let names: Vec<String> = DimensionName::items()
            .iter()
            .map(|i| i.value.v2_name())
            .collect();
        for n in &names {
            assert!(
                crate::query::Dimension::parse(n, &range).is_some(),
                "{n} is not a dimension"
            );
        }
        // And every visit attribute has a name.
        for d in crate::readmodel::schema::visit_dimensions() {
            assert!(
                names.contains(&format!("visit:{d}")),
                "visit:{d} has no name"
            );
        }
        assert_eq!(DimensionName::VisitUtmSource.v2_name(), "visit:utm_source");
        assert_eq!(DimensionName::Time.v2_name(), "time");
    }
}
