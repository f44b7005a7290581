//! A GA4 `RunReportRequest` or `RunRealtimeReportRequest` in proto3 JSON, read into a [`Report`]:
//! GA4's names resolved through the [`catalog`](super::catalog), its dimension filter translated
//! into the query model's [`Filter`], the rest kept for the adapter to apply to the rows.

use chrono::{Duration, NaiveDate};
use serde_json::{Map, Value};

use super::catalog::{self, DimKind, GaDimension, GaMetric, Realtime};
use super::GaError;
use crate::api::query::Site;
use crate::query::{DateRange, Filter, Op};

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

/// A condition on the rows' metric values (indexes into [`Report::metrics`]).
#[derive(Debug, Clone, PartialEq)]
pub enum MetricFilter {
    And(Vec<MetricFilter>),
    Or(Vec<MetricFilter>),
    Not(Box<MetricFilter>),
    Compare(usize, Comparison, f64),
    Between(usize, f64, f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl MetricFilter {
    pub fn holds(&self, values: &[f64]) -> bool {
        match self {
            Self::And(fs) => fs.iter().all(|f| f.holds(values)),
            Self::Or(fs) => fs.iter().any(|f| f.holds(values)),
            Self::Not(f) => !f.holds(values),
            Self::Compare(i, c, v) => {
                let x = values[*i];
                match c {
                    Comparison::Equal => x == *v,
                    Comparison::Less => x < *v,
                    Comparison::LessOrEqual => x <= *v,
                    Comparison::Greater => x > *v,
                    Comparison::GreaterOrEqual => x >= *v,
                }
            }
            Self::Between(i, from, to) => (*from..=*to).contains(&values[*i]),
        }
    }
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

fn invalid(message: impl Into<String>) -> GaError {
    GaError::invalid(message)
}

/// A field of an object, `None` when absent or null.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, GaError> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{what} must be an object")))
}

fn list<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a [Value], GaError> {
    match field(obj, name) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(format!("{name} must be a list"))),
    }
}

fn text<'a>(obj: &'a Map<String, Value>, name: &str, what: &str) -> Result<&'a str, GaError> {
    match field(obj, name) {
        Some(Value::String(s)) => Ok(s),
        None => Err(invalid(format!("{what}.{name} is required"))),
        Some(_) => Err(invalid(format!("{what}.{name} must be a string"))),
    }
}

fn boolean(obj: &Map<String, Value>, name: &str) -> Result<bool, GaError> {
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
fn double(v: &Value, what: &str) -> Result<f64, GaError> {
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
fn enumeration(
    obj: &Map<String, Value>,
    name: &str,
    values: &[(&'static str, i64)],
) -> Result<Option<&'static str>, GaError> {
    let found = match field(obj, name) {
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
            field(obj, name).map(Value::to_string).unwrap_or_default()
        ))),
    }
}

const MATCH_TYPES: &[(&str, i64)] = &[
    ("MATCH_TYPE_UNSPECIFIED", 0),
    ("EXACT", 1),
    ("BEGINS_WITH", 2),
    ("ENDS_WITH", 3),
    ("CONTAINS", 4),
    ("FULL_REGEXP", 5),
    ("PARTIAL_REGEXP", 6),
];
const OPERATIONS: &[(&str, i64)] = &[
    ("OPERATION_UNSPECIFIED", 0),
    ("EQUAL", 1),
    ("LESS_THAN", 2),
    ("LESS_THAN_OR_EQUAL", 3),
    ("GREATER_THAN", 4),
    ("GREATER_THAN_OR_EQUAL", 5),
];
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
        Some(f) => Some(dimension_filter(f, "dimensionFilter")?),
    };
    let metric_filter = match field(body, "metricFilter") {
        None => None,
        Some(f) => Some(metric_filter(f, &metrics, "metricFilter")?),
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
        let wrapped = Map::from_iter([("metricAggregations".to_owned(), a.clone())]);
        match enumeration(&wrapped, "metricAggregations", AGGREGATIONS)? {
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

/// The pieces of a `FilterExpression`: exactly one of its fields.
enum Expression<'a> {
    And(&'a [Value]),
    Or(&'a [Value]),
    Not(&'a Value),
    Filter(&'a Map<String, Value>),
}

fn expression<'a>(v: &'a Value, at: &str) -> Result<Expression<'a>, GaError> {
    let obj = object(v, at)?;
    let group = |name: &str| -> Result<&'a [Value], GaError> {
        let g = object(&obj[name], &format!("{at}.{name}"))?;
        list(g, "expressions")
    };
    let present: Vec<&str> = ["andGroup", "orGroup", "notExpression", "filter"]
        .into_iter()
        .filter(|k| field(obj, k).is_some())
        .collect();
    match present.as_slice() {
        ["andGroup"] => Ok(Expression::And(group("andGroup")?)),
        ["orGroup"] => Ok(Expression::Or(group("orGroup")?)),
        ["notExpression"] => Ok(Expression::Not(&obj["notExpression"])),
        ["filter"] => Ok(Expression::Filter(object(&obj["filter"], at)?)),
        _ => Err(invalid(format!(
            "{at} must have exactly one of andGroup, orGroup, notExpression and filter"
        ))),
    }
}

/// The filter's one kind of condition: `stringFilter`, `inListFilter`, …
fn condition<'a>(
    f: &'a Map<String, Value>,
    at: &str,
) -> Result<(&'static str, &'a Map<String, Value>), GaError> {
    let kinds = [
        "stringFilter",
        "inListFilter",
        "numericFilter",
        "betweenFilter",
        "emptyFilter",
    ];
    let present: Vec<&'static str> = kinds
        .into_iter()
        .filter(|k| field(f, k).is_some())
        .collect();
    match present.as_slice() {
        [kind] => Ok((kind, object(&f[*kind], &format!("{at}.{kind}"))?)),
        _ => Err(invalid(format!(
            "{at} must have exactly one of {}",
            kinds.join(", ")
        ))),
    }
}

/// A `dimensionFilter` as the query model's filter.
fn dimension_filter(v: &Value, at: &str) -> Result<Filter, GaError> {
    let children = |items: &[Value]| -> Result<Vec<Filter>, GaError> {
        items
            .iter()
            .enumerate()
            .map(|(i, e)| dimension_filter(e, &format!("{at}[{i}]")))
            .collect()
    };
    Ok(match expression(v, at)? {
        Expression::And(items) => Filter::And(children(items)?),
        Expression::Or(items) => Filter::Or(children(items)?),
        Expression::Not(e) => Filter::Not(Box::new(dimension_filter(e, at)?)),
        Expression::Filter(f) => {
            let name = text(f, "fieldName", at)?;
            let dim = catalog::dimension(name)
                .ok_or_else(|| invalid(format!("Field {name} is not a valid dimension.")))?;
            let dimension = dim.kind.dimension().ok_or_else(|| {
                invalid(format!(
                    "{at}: the time dimension {name} cannot be filtered; use dateRanges"
                ))
            })?;
            let (kind, c) = condition(f, at)?;
            let leaf = |op: Op, values: Vec<String>| Filter::Leaf {
                op,
                dimension: dimension.clone(),
                values,
            };
            let case_sensitive = boolean(c, "caseSensitive")?;
            match kind {
                "stringFilter" => {
                    let value = match field(c, "value") {
                        None => "",
                        Some(Value::String(s)) => s.as_str(),
                        Some(_) => return Err(invalid(format!("{at}: value must be a string"))),
                    };
                    let match_type = enumeration(c, "matchType", MATCH_TYPES)?.unwrap_or("EXACT");
                    string_filter(dim.kind, match_type, value, case_sensitive, leaf)
                }
                "inListFilter" => {
                    let values = list(c, "values")?
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(|s| dim.kind.stored(s))
                                .ok_or_else(|| invalid(format!("{at}: values must be strings")))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    if case_sensitive {
                        leaf(Op::Is, values)
                    } else {
                        let any: Vec<String> = values.iter().map(|v| escape(v)).collect();
                        leaf(Op::Matches, vec![format!("(?i)^(?:{})$", any.join("|"))])
                    }
                }
                "emptyFilter" => leaf(Op::Is, vec![String::new()]),
                _ => {
                    return Err(invalid(format!(
                    "{at}: {kind} applies to metrics (metricFilter), not to the dimension {name}"
                )))
                }
            }
        }
    })
}

/// A `stringFilter` on a dimension: exact, case-sensitive comparisons stay equalities (which
/// indexes serve); the others become PostgreSQL regular expressions.
fn string_filter(
    kind: DimKind,
    match_type: &str,
    value: &str,
    case_sensitive: bool,
    leaf: impl Fn(Op, Vec<String>) -> Filter,
) -> Filter {
    let flags = if case_sensitive { "" } else { "(?i)" };
    match match_type {
        "EXACT" if case_sensitive => leaf(Op::Is, vec![kind.stored(value)]),
        "CONTAINS" if case_sensitive => leaf(Op::Contains, vec![value.to_owned()]),
        "EXACT" => leaf(
            Op::Matches,
            vec![format!("{flags}^{}$", escape(&kind.stored(value)))],
        ),
        "BEGINS_WITH" => leaf(Op::Matches, vec![format!("{flags}^{}", escape(value))]),
        "ENDS_WITH" => leaf(Op::Matches, vec![format!("{flags}{}$", escape(value))]),
        "CONTAINS" => leaf(Op::Matches, vec![format!("{flags}{}", escape(value))]),
        "FULL_REGEXP" => leaf(Op::Matches, vec![format!("{flags}^(?:{value})$")]),
        _ => leaf(Op::Matches, vec![format!("{flags}{value}")]),
    }
}

/// A literal inside a PostgreSQL regular expression.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `metricFilter` over the request's metrics.
fn metric_filter(v: &Value, metrics: &[&GaMetric], at: &str) -> Result<MetricFilter, GaError> {
    let children = |items: &[Value]| -> Result<Vec<MetricFilter>, GaError> {
        items
            .iter()
            .enumerate()
            .map(|(i, e)| metric_filter(e, metrics, &format!("{at}[{i}]")))
            .collect()
    };
    Ok(match expression(v, at)? {
        Expression::And(items) => MetricFilter::And(children(items)?),
        Expression::Or(items) => MetricFilter::Or(children(items)?),
        Expression::Not(e) => MetricFilter::Not(Box::new(metric_filter(e, metrics, at)?)),
        Expression::Filter(f) => {
            let name = text(f, "fieldName", at)?;
            let index = metric_index(metrics, name, at)?;
            let (kind, c) = condition(f, at)?;
            let number = |c: &Map<String, Value>, key: &str| -> Result<f64, GaError> {
                let value = field(c, key)
                    .and_then(Value::as_object)
                    .ok_or_else(|| invalid(format!("{at}.{key} is required")))?;
                match (field(value, "int64Value"), field(value, "doubleValue")) {
                    (Some(v), None) | (None, Some(v)) => double(v, &format!("{at}.{key}")),
                    _ => Err(invalid(format!(
                        "{at}.{key} must have one of int64Value and doubleValue"
                    ))),
                }
            };
            match kind {
                "numericFilter" => {
                    let op = match enumeration(c, "operation", OPERATIONS)? {
                        Some("EQUAL") => Comparison::Equal,
                        Some("LESS_THAN") => Comparison::Less,
                        Some("LESS_THAN_OR_EQUAL") => Comparison::LessOrEqual,
                        Some("GREATER_THAN") => Comparison::Greater,
                        Some("GREATER_THAN_OR_EQUAL") => Comparison::GreaterOrEqual,
                        _ => return Err(invalid(format!("{at}: operation is required"))),
                    };
                    MetricFilter::Compare(index, op, number(c, "value")?)
                }
                "betweenFilter" => {
                    MetricFilter::Between(index, number(c, "fromValue")?, number(c, "toValue")?)
                }
                _ => {
                    return Err(invalid(format!(
                        "{at}: {kind} applies to dimensions (dimensionFilter), not to the metric {name}"
                    )))
                }
            }
        }
    })
}

fn metric_index(metrics: &[&GaMetric], name: &str, at: &str) -> Result<usize, GaError> {
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
    fn string_filters_become_equalities_or_regular_expressions() {
        let leaf = |op: Op, values: Vec<String>| Filter::Leaf {
            op,
            dimension: crate::query::Dimension::Page,
            values,
        };
        let page = DimKind::Plain("event:page");
        assert_eq!(
            string_filter(page, "EXACT", "/a.b", true, leaf),
            leaf(Op::Is, vec!["/a.b".into()])
        );
        assert_eq!(
            string_filter(page, "EXACT", "/a.b", false, leaf),
            leaf(Op::Matches, vec!["(?i)^/a\\.b$".into()])
        );
        assert_eq!(
            string_filter(page, "BEGINS_WITH", "/p(1)", true, leaf),
            leaf(Op::Matches, vec!["^/p\\(1\\)".into()])
        );
        assert_eq!(
            string_filter(page, "FULL_REGEXP", "/a|/b", true, leaf),
            leaf(Op::Matches, vec!["^(?:/a|/b)$".into()])
        );
        assert_eq!(
            string_filter(DimKind::EventName, "EXACT", "page_view", true, leaf),
            leaf(Op::Is, vec!["pageview".into()])
        );
    }

    #[test]
    fn metric_filters_compare_the_rows_values() {
        let f = MetricFilter::Or(vec![
            MetricFilter::Compare(0, Comparison::GreaterOrEqual, 10.0),
            MetricFilter::Not(Box::new(MetricFilter::Between(1, 0.0, 0.5))),
        ]);
        assert!(f.holds(&[10.0, 0.1]));
        assert!(f.holds(&[1.0, 0.7]));
        assert!(!f.holds(&[9.0, 0.5]));
    }

    #[test]
    fn enums_are_read_by_name_and_by_number() {
        let obj = |v: Value| Map::from_iter([("matchType".to_owned(), v)]);
        let read = |v| enumeration(&obj(v), "matchType", MATCH_TYPES);
        assert_eq!(read(Value::from("CONTAINS")).unwrap(), Some("CONTAINS"));
        assert_eq!(read(Value::from(4)).unwrap(), Some("CONTAINS"));
        assert_eq!(read(Value::from(0)).unwrap(), None);
        assert!(read(Value::from(99)).is_err());
        assert!(read(Value::from("contains")).is_err());
    }
}
