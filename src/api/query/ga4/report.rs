//! Runs a [`Report`] through the one query model and writes GA4's response. The engine answers
//! each date range's groups; here they get GA4's names and value formats, the metric filter,
//! the order, the aggregations and the page.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde_json::{json, Value};

use super::catalog::{DimKind, GaMetric, MetricSource, Scale};
use super::request::{OrderBy, OrderType, Report};
use super::GaError;
use crate::api::query::{time_labels, Site};
use crate::api::AppState;
use crate::query::{DateRange, Dimension, Filter, Grain, Metric, Op, Query, ResultRow};

/// One row: its dimension values as GA4 writes them, its metric values, its range's index.
struct Row {
    dimensions: Vec<String>,
    values: Vec<f64>,
    range: usize,
}

/// Where a GA4 dimension's value comes from in the engine's row.
#[derive(Clone, Copy)]
enum Source {
    /// The time label (the query's first dimension).
    Time(DimKind),
    /// The engine's dimension at this index.
    Group(usize, DimKind),
}

/// The engine's side of a report: its dimensions and metrics, and where each GA4 one is.
struct Plan {
    grain: Option<Grain>,
    dimensions: Vec<Dimension>,
    sources: Vec<Source>,
    metrics: Vec<Metric>,
    key_events: bool,
}

impl Plan {
    fn of(report: &Report) -> Result<Self, GaError> {
        // The finest grain asked answers them all: `date` and `hour` together are read from
        // each hour's label; `hour` alone groups the hours of every day.
        let grain = report
            .dimensions
            .iter()
            .filter_map(|d| d.kind.grain())
            .min_by_key(|g| match g {
                Grain::Minute => 0,
                Grain::Hour => 1,
                Grain::HourOfDay => 2,
                _ => 3,
            });
        let with_date = report.dimensions.iter().any(|d| d.kind == DimKind::Date);
        let grain = match grain {
            Some(Grain::HourOfDay) if with_date => Some(Grain::Hour),
            g => g,
        };
        let mut dimensions: Vec<Dimension> = grain.map(Dimension::Time).into_iter().collect();
        let mut sources = Vec::new();
        for d in &report.dimensions {
            sources.push(match d.kind.dimension() {
                None => Source::Time(d.kind),
                Some(dim) => {
                    let i = dimensions
                        .iter()
                        .position(|x| *x == dim)
                        .unwrap_or_else(|| {
                            dimensions.push(dim);
                            dimensions.len() - 1
                        });
                    Source::Group(i, d.kind)
                }
            });
        }
        let mut metrics = Vec::new();
        for m in &report.metrics {
            if let MetricSource::Model(metric, _) = m.source {
                if !metrics.contains(&metric) {
                    metrics.push(metric);
                }
            }
        }
        // Name the GA4 fields the query model cannot combine.
        let event_dimension = report
            .dimensions
            .iter()
            .find(|d| d.kind.dimension().is_some_and(|x| x.is_event()));
        let per_visit = report
            .metrics
            .iter()
            .find(|m| matches!(m.source, MetricSource::Model(x, _) if x.is_per_visit()));
        if let (Some(d), Some(m)) = (event_dimension, per_visit) {
            return Err(GaError::invalid(format!(
                "The metric {} is per session and cannot be broken down by the event-scoped \
                 dimension {}",
                m.api, d.api
            )));
        }
        Ok(Self {
            grain,
            dimensions,
            sources,
            metrics,
            key_events: report
                .metrics
                .iter()
                .any(|m| m.source == MetricSource::KeyEvents),
        })
    }
}

/// Runs a report: GA4's `RunReportResponse` or `RunRealtimeReportResponse`.
pub async fn run(state: &AppState, site: &Site, report: &Report) -> Result<Value, GaError> {
    let plan = Plan::of(report)?;
    let now = chrono::Utc::now().with_timezone(&site.tz).naive_local();
    let several = report.ranges.len() > 1;
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    for (i, (_, range)) in report.ranges.iter().enumerate() {
        let found = groups(state, site, report, &plan, range, &plan.dimensions).await?;
        let mut range_rows: Vec<Row> = found
            .into_iter()
            .map(|(key, values)| Row {
                dimensions: plan.sources.iter().map(|s| label(*s, &key, now)).collect(),
                values,
                range: i,
            })
            .filter(|r| report.keep_empty_rows || r.values.iter().any(|v| *v != 0.0))
            .collect();
        if report.keep_empty_rows {
            fill_empty_times(&mut range_rows, report, &plan, range, i, now);
        }
        if report.totals {
            let whole = groups(state, site, report, &plan, range, &[]).await?;
            let values = whole.into_iter().next().map(|(_, v)| v);
            totals.push(values.unwrap_or_else(|| vec![0.0; report.metrics.len()]));
        }
        rows.extend(range_rows);
    }
    if let Some(f) = &report.metric_filter {
        rows.retain(|r| f.holds(&r.values));
    }
    sort(&mut rows, report);

    let name = |i: usize| report.ranges[i].0.clone();
    let dimension_values = |r: &Row| {
        let mut values: Vec<Value> = r.dimensions.iter().map(|d| json!({"value": d})).collect();
        if several {
            values.push(json!({"value": name(r.range)}));
        }
        values
    };
    let metric_values = |values: &[f64]| -> Vec<Value> {
        values
            .iter()
            .zip(&report.metrics)
            .map(|(v, m)| json!({"value": format_value(*v, m)}))
            .collect()
    };
    let reserved = |label: &str, range: usize, values: &[f64]| {
        let mut dims: Vec<Value> = report
            .dimensions
            .iter()
            .map(|_| json!({"value": label}))
            .collect();
        if several {
            dims.push(json!({"value": name(range)}));
        }
        json!({"dimensionValues": dims, "metricValues": metric_values(values)})
    };
    let extremes = |pick: fn(f64, f64) -> f64, label: &str| -> Vec<Value> {
        (0..report.ranges.len())
            .filter_map(|i| {
                let mut of_range = rows.iter().filter(|r| r.range == i);
                let first = of_range.next()?.values.clone();
                let values = of_range.fold(first, |acc, r| {
                    acc.iter()
                        .zip(&r.values)
                        .map(|(a, b)| pick(*a, *b))
                        .collect()
                });
                Some(reserved(label, i, &values))
            })
            .collect()
    };

    let mut dimension_headers: Vec<Value> = report
        .dimensions
        .iter()
        .map(|d| json!({"name": d.api}))
        .collect();
    if several {
        dimension_headers.push(json!({"name": "dateRange"}));
    }
    let metric_headers: Vec<Value> = report
        .metrics
        .iter()
        .map(|m| json!({"name": m.api, "type": m.ty}))
        .collect();
    let mut response = json!({
        "dimensionHeaders": dimension_headers,
        "metricHeaders": metric_headers,
        "rowCount": rows.len().to_string(),
        "kind": if report.realtime { "analyticsData#runRealtimeReport" } else { "analyticsData#runReport" },
    });
    let page: Vec<Value> = rows
        .iter()
        .skip(report.offset)
        .take(report.limit)
        .map(|r| json!({"dimensionValues": dimension_values(r), "metricValues": metric_values(&r.values)}))
        .collect();
    if !page.is_empty() {
        response["rows"] = json!(page);
    }
    if report.totals {
        let t: Vec<Value> = totals
            .iter()
            .enumerate()
            .map(|(i, v)| reserved("RESERVED_TOTAL", i, v))
            .collect();
        response["totals"] = json!(t);
    }
    if report.maximums {
        response["maximums"] = json!(extremes(f64::max, "RESERVED_MAX"));
    }
    if report.minimums {
        response["minimums"] = json!(extremes(f64::min, "RESERVED_MIN"));
    }
    if !report.realtime {
        response["metadata"] = json!({
            "currencyCode": CURRENCY,
            "timeZone": site.property.timezone,
        });
    }
    Ok(response)
}

/// The currency revenue is reported in: footfall adds amounts as they were sent.
const CURRENCY: &str = "USD";

/// Each group's GA4 metric values, by the engine's labels: the model's metrics, and key events
/// (events that complete a goal) from a second query with that condition.
async fn groups(
    state: &AppState,
    site: &Site,
    report: &Report,
    plan: &Plan,
    range: &DateRange,
    dimensions: &[Dimension],
) -> Result<BTreeMap<Vec<String>, Vec<f64>>, GaError> {
    let query = |metrics: Vec<Metric>, filters: Option<Filter>| Query {
        property_id: site.property.id,
        range: *range,
        metrics,
        dimensions: dimensions.to_vec(),
        filters,
        order_by: vec![],
        limit: Query::MAX_ROWS,
        offset: 0,
        goals: site.property.goals.0.clone(),
        imports: false,
    };
    let mut by_key: BTreeMap<Vec<String>, (Vec<Value>, f64)> = BTreeMap::new();
    let mut read = |rows: Vec<ResultRow>, key_events: bool| -> Result<(), GaError> {
        if rows.len() >= Query::MAX_ROWS {
            return Err(GaError::invalid(format!(
                "The report has {} rows or more; narrow it with a dimensionFilter",
                Query::MAX_ROWS
            )));
        }
        for r in rows {
            let entry = by_key.entry(r.dimensions).or_default();
            if key_events {
                entry.1 = r.metrics.first().and_then(Value::as_f64).unwrap_or(0.0);
            } else {
                entry.0 = r.metrics;
            }
        }
        Ok(())
    };
    if !plan.metrics.is_empty() {
        let q = query(plan.metrics.clone(), report.dimension_filter.clone());
        read(state.reports.run(&q).await?, false)?;
    }
    if plan.key_events && !site.property.goals.0.is_empty() {
        // An empty pattern matches every goal's label: the hit completes some goal.
        let goal = Filter::Leaf {
            op: Op::Matches,
            dimension: Dimension::Goal,
            values: vec![String::new()],
        };
        let filters = match report.dimension_filter.clone() {
            Some(f) => Filter::And(vec![f, goal]),
            None => goal,
        };
        let q = query(vec![Metric::Events], Some(filters));
        read(state.reports.run(&q).await?, true)?;
    }
    Ok(by_key
        .into_iter()
        .map(|(key, (model, key_events))| {
            let values = report
                .metrics
                .iter()
                .map(|m| match m.source {
                    MetricSource::KeyEvents => key_events,
                    MetricSource::Model(metric, scale) => {
                        let i = plan.metrics.iter().position(|x| *x == metric);
                        let v = i.and_then(|i| model.get(i)).map_or(0.0, number);
                        match scale {
                            Scale::Fraction => (v * 1000.0).round() / 100_000.0,
                            Scale::Count | Scale::Plain => v,
                        }
                    }
                })
                .collect();
            (key, values)
        })
        .collect())
}

/// A metric value of the engine as a number (revenue is `{"value", "currency"}`).
fn number(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.get("value").and_then(Value::as_f64))
        .unwrap_or(0.0)
}

/// A metric value as GA4 writes it: integers without a fraction, the rest as the shortest
/// decimal that reads back the same.
fn format_value(v: f64, m: &GaMetric) -> String {
    if m.ty == "TYPE_INTEGER" || v.fract() == 0.0 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v}")
    }
}

/// A GA4 dimension's value in an engine row.
fn label(source: Source, key: &[String], now: NaiveDateTime) -> String {
    match source {
        Source::Group(i, kind) => kind.output(key.get(i).map_or("", String::as_str)),
        Source::Time(kind) => {
            let t = key.first().map_or("", String::as_str);
            // Labels are `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`.
            let digits: String = t.chars().filter(char::is_ascii_digit).collect();
            match kind {
                DimKind::Date => digits.get(..8).unwrap_or_default().to_owned(),
                DimKind::DateHour => digits.get(..10).unwrap_or_default().to_owned(),
                // `HH` alone, or from a `YYYY-MM-DD HH:…` label.
                DimKind::Hour if digits.len() == 2 => digits,
                DimKind::Hour => digits.get(8..10).unwrap_or_default().to_owned(),
                _ => {
                    use chrono::Timelike;
                    let at = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S");
                    let minute = now.with_second(0).and_then(|n| n.with_nanosecond(0));
                    match (at, minute) {
                        (Ok(at), Some(minute)) => {
                            format!("{:02}", (minute - at).num_minutes().max(0))
                        }
                        _ => String::new(),
                    }
                }
            }
        }
    }
}

/// With `keepEmptyRows`, a report by time alone has a row for every date (or hour) of the range.
fn fill_empty_times(
    rows: &mut Vec<Row>,
    report: &Report,
    plan: &Plan,
    range: &DateRange,
    index: usize,
    now: NaiveDateTime,
) {
    let Some(grain @ (Grain::Day | Grain::Hour | Grain::HourOfDay)) = plan.grain else {
        return;
    };
    if plan.sources.iter().any(|s| matches!(s, Source::Group(..))) {
        return;
    }
    let present: std::collections::HashSet<Vec<String>> =
        rows.iter().map(|r| r.dimensions.clone()).collect();
    for t in time_labels(range, grain) {
        let dimensions: Vec<String> = plan
            .sources
            .iter()
            .map(|s| label(*s, std::slice::from_ref(&t), now))
            .collect();
        if !present.contains(&dimensions) {
            rows.push(Row {
                dimensions,
                values: vec![0.0; report.metrics.len()],
                range: index,
            });
        }
    }
}

/// GA4's `orderBys`; without them, by time if the report has a time dimension, else by the first
/// metric, largest first. Ties keep the dimensions' order, then the ranges'.
fn sort(rows: &mut [Row], report: &Report) {
    let default = if report.dimensions.iter().any(|d| d.kind.is_time()) {
        vec![]
    } else {
        vec![OrderBy::Metric {
            index: 0,
            desc: true,
        }]
    };
    let orders = if report.order_bys.is_empty() {
        &default
    } else {
        &report.order_bys
    };
    rows.sort_by(|a, b| {
        for o in orders {
            let (ord, desc) = match *o {
                OrderBy::Metric { index, desc } => {
                    (a.values[index].total_cmp(&b.values[index]), desc)
                }
                OrderBy::Dimension { index, kind, desc } => {
                    let (x, y) = (&a.dimensions[index], &b.dimensions[index]);
                    let ord = match kind {
                        OrderType::Alphanumeric => x.cmp(y),
                        OrderType::CaseInsensitive => x.to_lowercase().cmp(&y.to_lowercase()),
                        OrderType::Numeric => {
                            let n = |s: &str| s.parse::<f64>().unwrap_or(f64::NEG_INFINITY);
                            n(x).total_cmp(&n(y))
                        }
                    };
                    (ord, desc)
                }
            };
            let ord = if desc { ord.reverse() } else { ord };
            if ord.is_ne() {
                return ord;
            }
        }
        a.dimensions.cmp(&b.dimensions).then(a.range.cmp(&b.range))
    });
}
