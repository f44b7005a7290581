//! A report's filters: GA4's `dimensionFilter` translated into the query model's [`Filter`], and
//! its `metricFilter`, which the adapter applies to the rows' values.

use serde_json::{Map, Value};

use super::catalog::{self, DimKind, GaMetric};
use super::request::{
    boolean, double, enumeration, field, invalid, list, metric_index, object, text,
};
use super::GaError;
use crate::query::{Filter, Op};

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
pub(super) fn dimension_filter(v: &Value, at: &str) -> Result<Filter, GaError> {
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
pub(super) fn metric_filter(
    v: &Value,
    metrics: &[&GaMetric],
    at: &str,
) -> Result<MetricFilter, GaError> {
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
}
