//! A GA4 `RunReportRequest` or `RunRealtimeReportRequest` in proto3 JSON, read into a [`Report`]:
//! GA4's names resolved through the [`catalog`](super::catalog), its filters read by
//! [`filters`](super::filters), the rest kept for the adapter to apply to the rows.

use chrono::{Duration, NaiveDate};
use serde_json::{Map, Value};

use super::catalog::{self, GaDimension, GaMetric, Realtime};
use super::filters::{self, MetricFilter};
use super::GaError;
use crate::api::query::Site;
use crate::query::{DateRange, Filter};

/// What a report asks, resolved.
pub struct Report {
    pub dimensions: Vec<&'static GaDimension>,
    pub metrics: Vec<&'static GaMetric>,
    /// Each range with its name (`date_range_0`, … unless named).
    pub ranges: Vec<(String, DateRange)>,
    pub dimension_filter: Option<Filter>,
    pub metric_filter: Option<MetricFilter>,
    pub order_bys: Vec<OrderBy>,
    pub limit: usize,
    pub offset: usize,
    pub totals: bool,
    pub minimums: bool,
    pub maximums: bool,
    pub keep_empty_rows: bool,
    pub realtime: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    Metric {
        index: usize,
        desc: bool,
    },
    Dimension {
        index: usize,
        kind: OrderType,
        desc: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderType {
    Alphanumeric,
    CaseInsensitive,
    Numeric,
}

pub const MAX_DIMENSIONS: usize = 9;
pub const MAX_METRICS: usize = 10;
pub const MAX_DATE_RANGES: usize = 4;
pub const DEFAULT_LIMIT: usize = 10_000;
/// More rows than this per request are never returned, whatever the `limit`.
pub const MAX_LIMIT: usize = 250_000;
/// The oldest minute a realtime report reaches, as GA4's standard properties.
pub const MAX_MINUTES_AGO: i64 = 29;

pub(super) fn invalid(message: impl Into<String>) -> GaError {
    GaError::invalid(message)
}

/// A field of an object, `None` when absent or null.
pub(super) fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

pub(super) fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, GaError> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{what} must be an object")))
}

pub(super) fn list<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a [Value], GaError> {
    match field(obj, name) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(format!("{name} must be a list"))),
    }
}

pub(super) fn text<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<&'a str, GaError> {
    match field(obj, name) {
        Some(Value::String(s)) => Ok(s),
        None => Err(invalid(format!("{what}.{name} is required"))),
        Some(_) => Err(invalid(format!("{what}.{name} must be a string"))),
    }
}

pub(super) fn boolean(obj: &Map<String, Value>, name: &str) -> Result<bool, GaError> {
    match field(obj, name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("{name} must be true or false"))),
    }
}

/// An int64 field: proto3 JSON writes it as a string, and accepts a number too.
fn int64(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, GaError> {
    let bad = || invalid(format!("{name} must be an integer"));
    match field(obj, name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// A double field: a number, or a string (`"NaN"` and the infinities are refused).
pub(super) fn double(v: &Value, what: &str) -> Result<f64, GaError> {
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    x.filter(|x| x.is_finite())
        .ok_or_else(|| invalid(format!("{what} must be a finite number")))
}

/// An enum field, by name or by number (`$alt=json;enum-encoding=int`); `None` when absent or
/// `*_UNSPECIFIED`.
pub(super) fn enumeration(
    obj: &Map<String, Value>,
    name: &str,
    values: &[(&'static str, i64)],
) -> Result<Option<&'static str>, GaError> {
    enum_value(field(obj, name), name, values)
}

/// An enum value (of the field `name`), by name or by number.
fn enum_value(
    value: Option<&Value>,
    name: &str,
    values: &[(&'static str, i64)],
) -> Result<Option<&'static str>, GaError> {
    let found = match value {
        None => return Ok(None),
        Some(Value::String(s)) => values.iter().find(|(n, _)| n == s),
        Some(Value::Number(n)) => values.iter().find(|(_, i)| Some(*i) == n.as_i64()),
        Some(_) => None,
    };
    match found {
        Some((n, _)) if n.ends_with("_UNSPECIFIED") => Ok(None),
        Some((n, _)) => Ok(Some(n)),
        None => Err(invalid(format!(
            "{name}: unknown value {}",
            value.map(Value::to_string).unwrap_or_default()
        ))),
    }
}

const AGGREGATIONS: &[(&str, i64)] = &[
    ("METRIC_AGGREGATION_UNSPECIFIED", 0),
    ("TOTAL", 1),
    ("COUNT", 4),
    ("MINIMUM", 5),
    ("MAXIMUM", 6),
];
const ORDER_TYPES: &[(&str, i64)] = &[
    ("ORDER_TYPE_UNSPECIFIED", 0),
    ("ALPHANUMERIC", 1),
    ("CASE_INSENSITIVE_ALPHANUMERIC", 2),
    ("NUMERIC", 3),
];

/// Reads a report request. `realtime` selects `RunRealtimeReportRequest` (minute ranges, the
/// realtime names).
pub fn parse(body: &Map<String, Value>, site: &Site, realtime: bool) -> Result<Report, GaError> {
    let dimensions = list(body, "dimensions")?
        .iter()
        .map(|d| {
            let name = text(object(d, "a dimension")?, "name", "dimensions[]")?;
            let found = catalog::dimension(name)
                .ok_or_else(|| invalid(format!("Field {name} is not a valid dimension.")))?;
            let allowed = match found.realtime {
                Realtime::Both => true,
                Realtime::Only => realtime,
                Realtime::Never => !realtime,
            };
            if !allowed {
                let which = if realtime { "realtime" } else { "core" };
                return Err(invalid(format!(
                    "Field {name} is not a valid dimension for {which} reports."
                )));
            }
            Ok(found)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metrics = list(body, "metrics")?
        .iter()
        .map(|m| {
            let name = text(object(m, "a metric")?, "name", "metrics[]")?;
            let found = catalog::metric_named(name)
                .ok_or_else(|| invalid(format!("Field {name} is not a valid metric.")))?;
            if realtime && !found.realtime {
                return Err(invalid(format!(
                    "Field {name} is not a valid metric for realtime reports."
                )));
            }
            Ok(found)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if metrics.is_empty() {
        return Err(invalid("At least one metric is required."));
    }
    if dimensions.len() > MAX_DIMENSIONS {
        return Err(invalid(format!(
            "Requests are limited to {MAX_DIMENSIONS} dimensions."
        )));
    }
    if metrics.len() > MAX_METRICS {
        return Err(invalid(format!(
            "Requests are limited to {MAX_METRICS} metrics."
        )));
    }
    for (i, d) in dimensions.iter().enumerate() {
        if dimensions[..i].iter().any(|e| e.api == d.api) {
            return Err(invalid(format!("Field {} is requested twice.", d.api)));
        }
    }
    let ranges = if realtime {
        minute_ranges(body, site)?
    } else {
        date_ranges(body, site)?
    };
    let dimension_filter = match field(body, "dimensionFilter") {
        None => None,
        Some(f) => Some(filters::dimension_filter(f, "dimensionFilter")?),
    };
    let metric_filter = match field(body, "metricFilter") {
        None => None,
        Some(f) => Some(filters::metric_filter(f, &metrics, "metricFilter")?),
    };
    let order_bys = list(body, "orderBys")?
        .iter()
        .map(|o| order_by(object(o, "an orderBy")?, &dimensions, &metrics))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = match int64(body, "limit")? {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) if n < 0 => return Err(invalid("limit must be positive")),
        Some(n) => (n as u64).min(MAX_LIMIT as u64) as usize,
    };
    let offset = match int64(body, "offset")? {
        None => 0,
        Some(n) if n < 0 => return Err(invalid("offset must not be negative")),
        Some(n) => n as usize,
    };
    let mut aggregations = Vec::new();
    for a in list(body, "metricAggregations")? {
        match enum_value(Some(a), "metricAggregations", AGGREGATIONS)? {
            Some("COUNT") => {
                return Err(invalid(
                    "metricAggregations: COUNT is not supported; use TOTAL, MINIMUM or MAXIMUM",
                ))
            }
            Some(a) => aggregations.push(a),
            None => {}
        }
    }
    Ok(Report {
        dimensions,
        metrics,
        ranges,
        dimension_filter,
        metric_filter,
        order_bys,
        limit,
        offset,
        totals: aggregations.contains(&"TOTAL"),
        minimums: aggregations.contains(&"MINIMUM"),
        maximums: aggregations.contains(&"MAXIMUM"),
        keep_empty_rows: boolean(body, "keepEmptyRows")?,
        realtime,
    })
}

/// `dateRanges`: `YYYY-MM-DD`, `NdaysAgo`, `yesterday` or `today`, in the property's zone.
fn date_ranges(
    body: &Map<String, Value>,
    site: &Site,
) -> Result<Vec<(String, DateRange)>, GaError> {
    let items = list(body, "dateRanges")?;
    if items.is_empty() {
        return Err(invalid("At least one dateRange is required."));
    }
    if items.len() > MAX_DATE_RANGES {
        return Err(invalid(format!(
            "Requests are limited to {MAX_DATE_RANGES} dateRanges."
        )));
    }
    let today = site.today();
    let day = |s: &str| -> Result<NaiveDate, GaError> {
        let relative = match s {
            "today" => Some(0),
            "yesterday" => Some(1),
            _ => s
                .strip_suffix("daysAgo")
                .and_then(|n| n.parse::<u32>().ok()),
        };
        let parsed = match relative {
            Some(n) => today.checked_sub_signed(Duration::days(n.into())),
            None if s.len() == 10 => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
            None => None,
        };
        parsed.ok_or_else(|| {
            invalid(format!(
                "Invalid date '{s}': expected YYYY-MM-DD, NdaysAgo, yesterday or today"
            ))
        })
    };
    items
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = object(r, "a dateRange")?;
            let (start, end) = (
                day(text(r, "startDate", "dateRanges[]")?)?,
                day(text(r, "endDate", "dateRanges[]")?)?,
            );
            if end < start {
                return Err(invalid(format!(
                    "dateRanges[{i}]: endDate {end} is before startDate {start}"
                )));
            }
            Ok((range_name(r, i)?, DateRange::days(start, end)))
        })
        .collect()
}

/// `minuteRanges` of a realtime report: by default the last 30 minutes, the current one included.
fn minute_ranges(
    body: &Map<String, Value>,
    site: &Site,
) -> Result<Vec<(String, DateRange)>, GaError> {
    use chrono::Timelike;
    let now = chrono::Utc::now().with_timezone(&site.tz).naive_local();
    let minute = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let items = list(body, "minuteRanges")?;
    if items.len() > 2 {
        return Err(invalid("Requests are limited to 2 minuteRanges."));
    }
    let default = [Value::Object(Map::new())];
    let items = if items.is_empty() {
        &default[..]
    } else {
        items
    };
    items
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = object(r, "a minuteRange")?;
            let start = int64(r, "startMinutesAgo")?.unwrap_or(MAX_MINUTES_AGO);
            let end = int64(r, "endMinutesAgo")?.unwrap_or(0);
            if !(0..=MAX_MINUTES_AGO).contains(&start)
                || !(0..=MAX_MINUTES_AGO).contains(&end)
                || end > start
            {
                return Err(invalid(format!(
                    "minuteRanges[{i}]: startMinutesAgo and endMinutesAgo must be 0 to \
                     {MAX_MINUTES_AGO}, endMinutesAgo at most startMinutesAgo"
                )));
            }
            let range = DateRange {
                from: minute - Duration::minutes(start),
                to: minute - Duration::minutes(end) + Duration::minutes(1),
            };
            Ok((range_name(r, i)?, range))
        })
        .collect()
}

fn range_name(r: &Map<String, Value>, i: usize) -> Result<String, GaError> {
    match field(r, "name") {
        None => Ok(format!("date_range_{i}")),
        Some(Value::String(n)) if n.starts_with("date_range_") || n.starts_with("RESERVED_") => {
            Err(invalid(format!(
                "A range's name may not begin with date_range_ or RESERVED_: {n}"
            )))
        }
        Some(Value::String(n)) => Ok(n.clone()),
        Some(_) => Err(invalid("a range's name must be a string")),
    }
}

pub(super) fn metric_index(metrics: &[&GaMetric], name: &str, at: &str) -> Result<usize, GaError> {
    match metrics.iter().position(|m| m.api == name) {
        Some(i) => Ok(i),
        None if catalog::metric_named(name).is_some() => Err(invalid(format!(
            "{at}: {name} must be one of the request's metrics"
        ))),
        None => Err(invalid(format!("Field {name} is not a valid metric."))),
    }
}

fn order_by(
    o: &Map<String, Value>,
    dimensions: &[&GaDimension],
    metrics: &[&GaMetric],
) -> Result<OrderBy, GaError> {
    let desc = boolean(o, "desc")?;
    match (field(o, "metric"), field(o, "dimension")) {
        (Some(m), None) => {
            let name = text(object(m, "orderBys[].metric")?, "metricName", "orderBys[].metric")?;
            Ok(OrderBy::Metric {
                index: metric_index(metrics, name, "orderBys")?,
                desc,
            })
        }
        (None, Some(d)) => {
            let d = object(d, "orderBys[].dimension")?;
            let name = text(d, "dimensionName", "orderBys[].dimension")?;
            let index = dimensions
                .iter()
                .position(|x| x.api == name)
                .ok_or_else(|| {
                    invalid(format!(
                        "orderBys: {name} must be one of the request's dimensions"
                    ))
                })?;
            let kind = match enumeration(d, "orderType", ORDER_TYPES)? {
                Some("CASE_INSENSITIVE_ALPHANUMERIC") => OrderType::CaseInsensitive,
                Some("NUMERIC") => OrderType::Numeric,
                _ => OrderType::Alphanumeric,
            };
            Ok(OrderBy::Dimension { index, kind, desc })
        }
        _ => Err(invalid(
            "an orderBy must have exactly one of metric and dimension (pivot orders are not supported)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_read_by_name_and_by_number() {
        let read = |v: Value| enum_value(Some(&v), "matchType", AGGREGATIONS);
        assert_eq!(read(Value::from("MAXIMUM")).unwrap(), Some("MAXIMUM"));
        assert_eq!(read(Value::from(6)).unwrap(), Some("MAXIMUM"));
        assert_eq!(read(Value::from(0)).unwrap(), None);
        assert!(read(Value::from(99)).is_err());
        assert!(read(Value::from("maximum")).is_err());
    }
}
