//! `include.comparisons` of the v2 API: each result row beside the same row of the previous
//! period, and the change between them (as Plausible's v2 API answers it).

use serde_json::{json, Value};

use super::time_labels;
use crate::query::cache::Reports;
use crate::query::engine::EngineError;
use crate::query::{Dimension, Filter, Metric, Op, Query, ResultRow};

/// Metrics whose change is a difference in points, not a percentage.
fn in_points(m: Metric) -> bool {
    matches!(
        m,
        Metric::BounceRate | Metric::ConversionRate | Metric::EngagementRate | Metric::Percentage
    )
}

/// The previous period's query: the same length just before, restricted to the current rows'
/// breakdown values so that every row finds its counterpart whatever the paging.
pub fn previous_query(query: &Query, rows: &[ResultRow]) -> Query {
    let mut previous = query.clone();
    previous.range = query.range.previous();
    previous.offset = 0;
    previous.limit = Query::MAX_LIMIT;
    let restrictions: Vec<Filter> = query
        .dimensions
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.is_time())
        .map(|(i, d)| {
            let mut values: Vec<String> = rows.iter().map(|r| r.dimensions[i].clone()).collect();
            values.sort();
            values.dedup();
            Filter::Leaf {
                op: Op::Is,
                dimension: d.clone(),
                values,
            }
        })
        .collect();
    if !restrictions.is_empty() {
        let mut all = restrictions;
        all.extend(previous.filters.take());
        previous.filters = Some(Filter::And(all));
    }
    previous
}

/// Runs the previous period's query and adds `comparison` to every row.
pub async fn compare(
    reports: &Reports,
    query: &Query,
    rows: &[ResultRow],
) -> Result<Vec<Value>, EngineError> {
    let previous = previous_query(query, rows);
    let earlier = if rows.is_empty() {
        vec![]
    } else {
        reports.run(&previous).await?
    };
    Ok(attach(query, &previous, rows, &earlier))
}

/// Pairs rows by their breakdown values, with a time label standing for its offset in its range.
pub fn attach(
    query: &Query,
    previous: &Query,
    rows: &[ResultRow],
    earlier: &[ResultRow],
) -> Vec<Value> {
    let key = |q: &Query, row: &ResultRow| -> Vec<String> {
        q.dimensions
            .iter()
            .zip(&row.dimensions)
            .map(|(d, label)| match d {
                Dimension::Time(g) => time_labels(&q.range, *g)
                    .iter()
                    .position(|l| l == label)
                    .map_or_else(|| format!("?{label}"), |i| format!("#{i}")),
                _ => label.clone(),
            })
            .collect()
    };
    let by_key: std::collections::HashMap<Vec<String>, &ResultRow> =
        earlier.iter().map(|r| (key(previous, r), r)).collect();
    rows.iter()
        .map(|row| {
            let before = by_key.get(&key(query, row));
            let before_metrics: Vec<Value> = query
                .metrics
                .iter()
                .enumerate()
                .map(|(i, m)| match before {
                    Some(b) => b.metrics.get(i).cloned().unwrap_or(Value::Null),
                    None if m.is_revenue() => Value::Null,
                    None => json!(0),
                })
                .collect();
            let change: Vec<Value> = query
                .metrics
                .iter()
                .zip(&row.metrics)
                .zip(&before_metrics)
                .map(|((m, now), then)| change(*m, now, then))
                .collect();
            let dimensions = before.map_or_else(Vec::new, |b| b.dimensions.clone());
            json!({
                "dimensions": row.dimensions,
                "metrics": row.metrics,
                "comparison": {"dimensions": dimensions, "metrics": before_metrics, "change": change},
            })
        })
        .collect()
}

/// A metric's change: points for rates, else a whole percentage (100 from nothing to something).
fn change(metric: Metric, now: &Value, then: &Value) -> Value {
    let number = |v: &Value| {
        v.as_f64()
            .or_else(|| v.get("value").and_then(Value::as_f64))
    };
    let (Some(now), Some(then)) = (number(now), number(then)) else {
        return Value::Null;
    };
    if in_points(metric) {
        return json!(((now - then) * 10.0).round() / 10.0);
    }
    if then == 0.0 {
        return json!(if now == 0.0 { 0 } else { 100 });
    }
    json!(((now - then) / then * 100.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{DateRange, Grain};

    fn row(dims: &[&str], metrics: Vec<Value>) -> ResultRow {
        ResultRow {
            dimensions: dims.iter().map(|d| d.to_string()).collect(),
            metrics,
        }
    }

    fn query(dimensions: Vec<Dimension>) -> Query {
        Query {
            property_id: uuid::Uuid::nil(),
            range: DateRange::days("2026-11-08".parse().unwrap(), "2026-11-14".parse().unwrap()),
            metrics: vec![Metric::Visitors, Metric::BounceRate],
            dimensions,
            filters: None,
            order_by: vec![],
            limit: 9,
            offset: 0,
            goals: vec![],
            imports: false,
        }
    }

    #[test]
    fn time_buckets_pair_by_offset_and_changes_are_percent_or_points() {
        let q = query(vec![Dimension::Time(Grain::Day)]);
        let prev = previous_query(&q, &[]);
        assert_eq!(prev.range.from.date().to_string(), "2026-11-01");
        let rows = [
            row(&["2026-11-08"], vec![json!(15), json!(40)]),
            row(&["2026-11-09"], vec![json!(3), json!(50)]),
        ];
        let earlier = [row(&["2026-11-01"], vec![json!(10), json!(50)])];
        let out = attach(&q, &prev, &rows, &earlier);
        assert_eq!(out[0]["comparison"]["dimensions"], json!(["2026-11-01"]));
        assert_eq!(out[0]["comparison"]["change"], json!([50, -10.0]));
        // No bucket before: counted from zero.
        assert_eq!(out[1]["comparison"]["metrics"], json!([0, 0]));
        assert_eq!(out[1]["comparison"]["change"], json!([100, 50.0]));
    }

    #[test]
    fn breakdowns_pair_by_value_and_the_previous_query_is_restricted_to_them() {
        let q = query(vec![Dimension::Page]);
        let rows = [row(&["/a"], vec![json!(4), json!(0)])];
        let prev = previous_query(&q, &rows);
        assert_eq!(prev.limit, Query::MAX_LIMIT);
        assert!(prev
            .filters
            .as_ref()
            .is_some_and(|f| f.any_dimension(&|d| *d == Dimension::Page)));
        let earlier = [
            row(&["/b"], vec![json!(9), json!(0)]),
            row(&["/a"], vec![json!(8), json!(0)]),
        ];
        let out = attach(&q, &prev, &rows, &earlier);
        assert_eq!(out[0]["comparison"]["metrics"], json!([8, 0]));
        assert_eq!(out[0]["comparison"]["change"], json!([-50, 0.0]));
    }
}
