//! Plausible Stats API v1 (legacy), as adapters over the same query model:
//! `GET /api/v1/stats/{realtime/visitors, aggregate, timeseries, breakdown}`.
//!
//! Parameters: `site_id`, `period` (`day`, `7d`, `28d`, `30d`, `91d`, `month`, `6mo`, `12mo`,
//! `year`, `all`, or `custom` with `date=YYYY-MM-DD,YYYY-MM-DD`), `date`, `metrics`
//! (comma-separated), `filters` (`event:page==/blog|/shop;event:name!=Signup`, with `~` for contains
//! and `*`/`**` wildcards), `property`, `interval` (`date`, `month`, `hour`), `limit`, `page`,
//! `compare=previous_period`, `with_imported=true` (add imported aggregates where the query
//! allows them).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{time_labels, Site};
use crate::api::{ApiError, AppState};
use crate::query::reads::Held;
use crate::query::{
    engine, DateRange, Dimension, Filter, Grain, Metric, Op, Query, QueryError, ResultRow,
};

#[derive(Deserialize)]
pub struct Params {
    pub(super) site_id: String,
    pub(super) period: Option<String>,
    date: Option<String>,
    metrics: Option<String>,
    filters: Option<String>,
    property: Option<String>,
    interval: Option<String>,
    limit: Option<usize>,
    page: Option<usize>,
    compare: Option<String>,
    /// Plausible's `with_imported=true`: add imported aggregates where the query allows.
    with_imported: Option<bool>,
}

impl Params {
    /// The authorised site and the requested range: what every v1 report starts with.
    async fn site_and_range(
        &self,
        req: &HttpRequest,
        state: &AppState,
    ) -> Result<(Site, DateRange), ApiError> {
        let site = Site::authorize(req, state, &self.site_id).await?;
        let range = self.range(&site)?;
        Ok((site, range))
    }

    pub(super) fn range(&self, site: &Site) -> Result<DateRange, QueryError> {
        let period = self.period.as_deref().unwrap_or("30d");
        if period == "custom" {
            let date = self
                .date
                .as_deref()
                .ok_or_else(|| QueryError::new("date", "is required for the custom period"))?;
            let (from, to) = date
                .split_once(',')
                .ok_or_else(|| QueryError::new("date", "must be YYYY-MM-DD,YYYY-MM-DD"))?;
            return site.explicit_range("date", from.trim(), to.trim());
        }
        let date = match &self.date {
            Some(d) => Some(
                d.parse::<NaiveDate>()
                    .map_err(|_| QueryError::new("date", "must be YYYY-MM-DD"))?,
            ),
            None => None,
        };
        site.period("period", period, date)
    }

    fn metrics(&self) -> Result<Vec<Metric>, QueryError> {
        self.metrics
            .as_deref()
            .unwrap_or("visitors")
            .split(',')
            .map(|m| {
                Metric::parse(m.trim()).ok_or_else(|| {
                    QueryError::new("metrics", format!("unknown metric `{}`", m.trim()))
                })
            })
            .collect()
    }

    fn filters(&self, range: &DateRange) -> Result<Option<Filter>, QueryError> {
        let Some(text) = self.filters.as_deref().filter(|f| !f.trim().is_empty()) else {
            return Ok(None);
        };
        let leaves = text
            .split(';')
            .map(|clause| filter(clause.trim(), range))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Filter::And(leaves)))
    }

    fn query(
        &self,
        site: &Site,
        range: DateRange,
        metrics: Vec<Metric>,
        dimensions: Vec<Dimension>,
    ) -> Result<Query, QueryError> {
        let limit = self.limit.unwrap_or(100);
        let page = self.page.unwrap_or(1).max(1);
        let q = Query {
            property_id: site.property.id,
            filters: self.filters(&range)?,
            range,
            metrics,
            dimensions,
            order_by: vec![],
            limit,
            // Past what validation accepts when it would overflow.
            offset: (page - 1).saturating_mul(limit),
            goals: site.property.goals.0.clone(),
            imports: self.with_imported.unwrap_or(false),
        };
        q.validate_page()?;
        Ok(q)
    }
}

/// `event:page==/a|/b`, `event:page!=/a`, `event:page~blog`, `event:page!~blog`; `*` and `**` are
/// wildcards in `==` and `!=`.
fn filter(clause: &str, range: &DateRange) -> Result<Filter, QueryError> {
    let (dim, op, values) = ["!=", "==", "!~", "~"]
        .iter()
        .find_map(|op| clause.split_once(op).map(|(d, v)| (d, *op, v)))
        .ok_or_else(|| QueryError::new("filters", format!("`{clause}` needs ==, !=, ~ or !~")))?;
    let dimension = Dimension::parse(dim.trim(), range)
        .filter(|d| !d.is_time())
        .ok_or_else(|| QueryError::new("filters", format!("unknown dimension `{}`", dim.trim())))?;
    let values: Vec<String> = values.split('|').map(|v| v.trim().to_owned()).collect();
    let wildcard = values.iter().any(|v| v.contains('*'));
    let op = match (op, wildcard) {
        ("==", false) => Op::Is,
        ("!=", false) => Op::IsNot,
        ("==", true) => Op::Matches,
        ("!=", true) => Op::MatchesNot,
        ("~", _) => Op::Contains,
        _ => Op::ContainsNot,
    };
    let values = if wildcard && matches!(op, Op::Matches | Op::MatchesNot) {
        values.iter().map(|v| glob_to_regex(v)).collect()
    } else {
        values
    };
    Ok(Filter::Leaf {
        op,
        dimension,
        values,
    })
}

/// `/blog/**` → `^/blog/.*$`; `/a/*/b` → `^/a/[^/]*/b$`.
fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str("[^/]*"),
            c if "\\.+?()[]{}|^$".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

fn metric_object(metrics: &[Metric], values: &[Value]) -> Map<String, Value> {
    metrics
        .iter()
        .zip(values)
        .map(|(m, v)| (m.name().to_owned(), v.clone()))
        .collect()
}

pub async fn realtime_visitors(
    req: HttpRequest,
    params: web::Query<Params>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = Site::authorize(&req, &state, &params.site_id).await?;
    Ok(HttpResponse::Ok().json(visitors_now(&state, &site).await?))
}

/// Visitors in the last 5 minutes (GraphQL's `realtimeVisitors` too).
pub async fn visitors_now(state: &AppState, site: &Site) -> Result<Value, ApiError> {
    let now = Utc::now().with_timezone(&site.tz).naive_local();
    let q = Query {
        property_id: site.property.id,
        range: DateRange {
            from: now - Duration::minutes(5),
            to: now + Duration::seconds(1),
        },
        metrics: vec![Metric::Visitors],
        dimensions: vec![],
        filters: None,
        order_by: vec![],
        limit: 1,
        offset: 0,
        goals: vec![],
        imports: false,
    };
    let rows = state.reports.run(&q).await?;
    Ok(rows.first().map_or(json!(0), |r| r.metrics[0].clone()))
}

pub async fn aggregate(
    req: HttpRequest,
    params: web::Query<Params>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (site, range) = params.site_and_range(&req, &state).await?;
    let metrics = params.metrics()?;
    let q = params.query(&site, range, metrics.clone(), vec![])?;
    let current = totals(&state, &q).await?;
    let previous = match params.compare.as_deref() {
        None => None,
        Some("previous_period") => Some(
            totals(
                &state,
                &Query {
                    range: range.previous(),
                    ..q.clone()
                },
            )
            .await?,
        ),
        Some(other) => {
            return Err(QueryError::new("compare", format!("unknown comparison `{other}`")).into())
        }
    };
    let results: Map<String, Value> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut entry = json!({"value": current[i]});
            if let Some(prev) = &previous {
                entry["change"] = change(&prev[i], &current[i]);
            }
            (m.name().to_owned(), entry)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"results": results})))
}

async fn totals(state: &AppState, q: &Query) -> Result<Vec<Value>, ApiError> {
    let rows = state.reports.run(q).await?;
    Ok(rows
        .into_iter()
        .next()
        .map_or_else(|| vec![json!(0); q.metrics.len()], |r| r.metrics))
}

/// Percent change, as an integer; `null` when there was nothing before.
fn change(before: &Value, now: &Value) -> Value {
    match (before.as_f64(), now.as_f64()) {
        (Some(b), Some(n)) if b != 0.0 => json!(((n - b) / b * 100.0).round() as i64),
        (Some(_), Some(0.0)) => json!(0),
        _ => Value::Null,
    }
}

pub async fn timeseries(
    req: HttpRequest,
    params: web::Query<Params>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (site, range) = params.site_and_range(&req, &state).await?;
    let grain = match params.interval.as_deref() {
        None if params.period.as_deref() == Some("day") => Grain::Hour,
        None | Some("date") | Some("day") => Grain::Day,
        Some("month") => Grain::Month,
        Some("hour") => Grain::Hour,
        Some("week") => Grain::Week,
        Some(other) => {
            return Err(QueryError::new("interval", format!("unknown interval `{other}`")).into())
        }
    };
    let metrics = params.metrics()?;
    let q = Query {
        limit: Query::MAX_LIMIT,
        offset: 0,
        ..params.query(&site, range, metrics.clone(), vec![Dimension::Time(grain)])?
    };
    let rows: std::collections::HashMap<String, ResultRow> = state
        .reports
        .run(&q)
        .await?
        .into_iter()
        .map(|r| (r.dimensions[0].clone(), r))
        .collect();
    // v1 lists every bucket, empty ones with zeros.
    let results: Vec<Value> = time_labels(&range, grain)
        .into_iter()
        .map(|label| {
            let values = rows
                .get(&label)
                .map_or_else(|| vec![json!(0); metrics.len()], |r| r.metrics.clone());
            let mut obj = metric_object(&metrics, &values);
            obj.insert("date".into(), json!(label));
            Value::Object(obj)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"results": results})))
}

pub async fn breakdown(
    req: HttpRequest,
    params: web::Query<Params>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (site, range) = params.site_and_range(&req, &state).await?;
    let property = params
        .property
        .as_deref()
        .ok_or_else(|| QueryError::new("property", "is required"))?;
    let dimension = Dimension::parse(property, &range)
        .filter(|d| !d.is_time())
        .ok_or_else(|| QueryError::new("property", format!("unknown property `{property}`")))?;
    let key = match &dimension {
        Dimension::Page => "page".to_owned(),
        Dimension::Name => "name".to_owned(),
        Dimension::Hostname => "hostname".to_owned(),
        Dimension::Prop(k) => k.clone(),
        Dimension::Goal => "goal".to_owned(),
        Dimension::Visit(column) => (*column).to_owned(),
        Dimension::Time(_) => "time".to_owned(),
    };
    let metrics = params.metrics()?;
    let q = params.query(&site, range, metrics.clone(), vec![dimension])?;
    let results: Vec<Value> = state
        .reports
        .run(&q)
        .await?
        .into_iter()
        .map(|r| {
            let mut obj = metric_object(&metrics, &r.metrics);
            obj.insert(key.clone(), json!(r.dimensions[0]));
            Value::Object(obj)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"results": results})))
}

/// `GET /api/v1/stats/bots`: the hits left out of every report because they came from bots and
/// crawlers, by bot, with `site_id`, `period` and `date` as the other endpoints.
pub async fn bots(
    req: HttpRequest,
    params: web::Query<Params>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (site, range) = params.site_and_range(&req, &state).await?;
    let rows = Held::read(&state.query_pool, async |db| {
        engine::bots(db, site.property.id, &range).await
    })
    .await?;
    let total: i64 = rows.iter().map(|(_, hits)| hits).sum();
    let results: Vec<Value> = rows
        .into_iter()
        .map(|(bot, hits)| json!({"bot": bot, "hits": hits}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"results": results, "total_hits": total})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_filters_translate_to_the_query_model() {
        let r = DateRange::days("2026-11-01".parse().unwrap(), "2026-11-02".parse().unwrap());
        assert_eq!(
            filter("event:page==/a|/b", &r).unwrap(),
            Filter::Leaf {
                op: Op::Is,
                dimension: Dimension::Page,
                values: vec!["/a".into(), "/b".into()]
            }
        );
        assert_eq!(
            filter("event:page!=/blog/**", &r).unwrap(),
            Filter::Leaf {
                op: Op::MatchesNot,
                dimension: Dimension::Page,
                values: vec!["^/blog/.*$".into()]
            }
        );
        assert_eq!(
            filter("event:props:plan~pro", &r).unwrap(),
            Filter::Leaf {
                op: Op::Contains,
                dimension: Dimension::Prop("plan".into()),
                values: vec!["pro".into()]
            }
        );
        assert_eq!(filter("time:day==x", &r).unwrap_err().field, "filters");
        assert_eq!(glob_to_regex("/a/*/b.html"), "^/a/[^/]*/b\\.html$");
    }
}
