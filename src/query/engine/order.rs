//! The order of result rows: the query's, or the default one.

use crate::query::{Direction, Metric, OrderKey, Query, ResultRow};

/// The explicit order, or the default: by the first metric, biggest first, for breakdowns; by
/// time for time series.
pub(super) fn order(q: &Query) -> Vec<(OrderKey, Direction)> {
    if !q.order_by.is_empty() {
        return q.order_by.clone();
    }
    if q.dimensions.iter().any(|d| !d.is_time()) {
        let m = q
            .metrics
            .iter()
            .find(|m| **m != Metric::Percentage)
            .copied()
            .unwrap_or(Metric::Visitors);
        vec![(OrderKey::Metric(m), Direction::Desc)]
    } else {
        q.dimensions
            .iter()
            .map(|d| (OrderKey::Dimension(d.clone()), Direction::Asc))
            .collect()
    }
}

pub(super) fn sort_rows(rows: &mut [ResultRow], q: &Query) {
    let keys = order(q);
    rows.sort_by(|a, b| {
        for (key, dir) in &keys {
            let ord = match key {
                OrderKey::Dimension(d) => {
                    let i = q.dimensions.iter().position(|x| x == d).unwrap_or(0);
                    a.dimensions.get(i).cmp(&b.dimensions.get(i))
                }
                OrderKey::Metric(m) => {
                    let i = q.metrics.iter().position(|x| x == m).unwrap_or(0);
                    // Revenue is `{"value", "currency"}`.
                    let number = |v: &serde_json::Value| {
                        v.as_f64()
                            .or_else(|| v.get("value").and_then(serde_json::Value::as_f64))
                            .unwrap_or(0.0)
                    };
                    let (x, y) = (number(&a.metrics[i]), number(&b.metrics[i]));
                    x.total_cmp(&y)
                }
            };
            let ord = if *dir == Direction::Desc {
                ord.reverse()
            } else {
                ord
            };
            if ord.is_ne() {
                return ord;
            }
        }
        a.dimensions.cmp(&b.dimensions)
    });
}
