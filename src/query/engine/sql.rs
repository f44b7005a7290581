//! The SQL the readers share: dimensions, the per-hit source, filters, ranges, grouping, order
//! and paging.

use sqlx::{Postgres, QueryBuilder};

use super::order::order;
use crate::query::{
    Dimension, Direction, Filter, Goal, Grain, Metric, Op, OrderKey, Query, QueryError,
};
use crate::readmodel::schema::{visit_dimensions, HITS, SESSIONS};

pub(super) fn time_label(grain: Grain, column: &str) -> String {
    let (unit, format) = match grain {
        Grain::HourOfDay => return format!("to_char({column}, 'HH24')"),
        Grain::Minute => ("minute", "YYYY-MM-DD HH24:MI:SS"),
        Grain::Hour => ("hour", "YYYY-MM-DD HH24:MI:SS"),
        Grain::Day => ("day", "YYYY-MM-DD"),
        Grain::Week => ("week", "YYYY-MM-DD"),
        Grain::Month => ("month", "YYYY-MM-DD"),
    };
    format!("to_char(date_trunc('{unit}', {column}), '{format}')")
}

/// Pushes the SQL for a dimension of the `hits` table.
pub(super) fn push_hit_dimension(qb: &mut QueryBuilder<'_, Postgres>, d: &Dimension) {
    match d {
        Dimension::Time(g) => {
            qb.push(time_label(*g, "local_time"));
        }
        Dimension::Page => {
            qb.push("pathname");
        }
        Dimension::Name => {
            qb.push("name");
        }
        Dimension::Hostname => {
            qb.push("hostname");
        }
        Dimension::Prop(k) => {
            qb.push("(props->>").push_bind(k.clone()).push(")");
        }
        Dimension::Goal => {
            qb.push("goal.label");
        }
        Dimension::Visit(column) => {
            qb.push(*column);
        }
    }
}

/// The goals as rows `g(label, event, pattern)` with the condition that `hits` completes one.
fn push_goals(qb: &mut QueryBuilder<'_, Postgres>, goals: &[Goal]) {
    let labels: Vec<String> = goals.iter().map(Goal::label).collect();
    let events: Vec<Option<String>> = goals.iter().map(|g| g.event.clone()).collect();
    let patterns: Vec<Option<String>> = goals
        .iter()
        .map(|g| g.page.as_ref().map(|p| escape_like(p).replace('*', "%")))
        .collect();
    qb.push("unnest(")
        .push_bind(labels)
        .push("::text[], ")
        .push_bind(events)
        .push("::text[], ")
        .push_bind(patterns)
        .push(format!(
            "::text[]) AS g(label, event, pattern) WHERE ((g.event IS NOT NULL AND {HITS}.name = g.event) \
             OR (g.pattern IS NOT NULL AND {HITS}.name = 'pageview' AND {HITS}.pathname LIKE g.pattern))"
        ));
}

/// Whether the query needs each hit's visit joined.
fn uses_visits(q: &Query) -> bool {
    let visit = |d: &Dimension| matches!(d, Dimension::Visit(_));
    q.dimensions.iter().any(visit) || q.filters.as_ref().is_some_and(|f| f.any_dimension(&visit))
}

/// `FROM` the per-hit table, with the visit's attributes beside each hit when the query needs them
/// (still named `hits`, so dimensions and filters read the same either way), and one row per
/// completed goal for a goal breakdown.
pub(super) fn push_hits_source(qb: &mut QueryBuilder<'_, Postgres>, q: &Query) {
    if uses_visits(q) {
        let columns: String = visit_dimensions().map(|c| format!(", s.{c}")).collect();
        qb.push(format!(
            " FROM (SELECT h.*{columns} FROM {HITS} h JOIN {SESSIONS} s \
             ON s.property_id = h.property_id AND s.visitor_key = h.visitor_key \
             AND s.session_id = h.session_id) {HITS}"
        ));
    } else {
        qb.push(format!(" FROM {HITS}"));
    }
    if q.dimensions.contains(&Dimension::Goal) {
        qb.push(" CROSS JOIN LATERAL (SELECT g.label FROM ");
        push_goals(qb, &q.goals);
        qb.push(") goal");
    }
}

pub(super) fn push_filter(
    qb: &mut QueryBuilder<'_, Postgres>,
    f: &Filter,
    goals: &[Goal],
) -> Result<(), QueryError> {
    match f {
        Filter::And(fs) | Filter::Or(fs) => {
            let (joiner, empty) = if matches!(f, Filter::And(_)) {
                (" AND ", "TRUE")
            } else {
                (" OR ", "FALSE")
            };
            qb.push("(");
            if fs.is_empty() {
                qb.push(empty);
            }
            for (i, f) in fs.iter().enumerate() {
                if i > 0 {
                    qb.push(joiner);
                }
                push_filter(qb, f, goals)?;
            }
            qb.push(")");
        }
        Filter::Not(f) => {
            qb.push("NOT (");
            push_filter(qb, f, goals)?;
            qb.push(")");
        }
        Filter::Leaf {
            op,
            dimension,
            values,
        } => {
            if dimension.is_time() {
                return Err(QueryError::new(
                    "filters",
                    "time dimensions cannot be filtered; use date_range",
                ));
            }
            let negated = matches!(op, Op::IsNot | Op::ContainsNot | Op::MatchesNot);
            let (operator, patterns): (&str, Vec<String>) = match op {
                Op::Is | Op::IsNot => ("=", values.clone()),
                Op::Contains | Op::ContainsNot => (
                    "LIKE",
                    values
                        .iter()
                        .map(|v| format!("%{}%", escape_like(v)))
                        .collect(),
                ),
                Op::Matches | Op::MatchesNot => ("~", values.clone()),
            };
            qb.push(if negated { "NOT (" } else { "(" });
            if *dimension == Dimension::Goal {
                // Completes a goal whose label matches.
                qb.push("EXISTS (SELECT 1 FROM ");
                push_goals(qb, goals);
                qb.push(" AND COALESCE(g.label, '') ")
                    .push(operator)
                    .push(" ANY(")
                    .push_bind(patterns)
                    .push(")))");
                return Ok(());
            }
            qb.push("COALESCE(");
            match dimension {
                Dimension::Prop(k) => {
                    qb.push("props->>").push_bind(k.clone());
                }
                d => push_hit_dimension(qb, d),
            }
            qb.push(", '') ")
                .push(operator)
                .push(" ANY(")
                .push_bind(patterns)
                .push("))");
        }
    }
    Ok(())
}

pub(super) fn escape_like(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub(super) fn push_range(qb: &mut QueryBuilder<'_, Postgres>, q: &Query, column: &str) {
    qb.push(" WHERE property_id = ")
        .push_bind(q.property_id)
        .push(format!(" AND {column} >= "))
        .push_bind(q.range.from)
        .push(format!(" AND {column} < "))
        .push_bind(q.range.to);
}

pub(super) fn push_group_by(qb: &mut QueryBuilder<'_, Postgres>, dims: usize) {
    if dims > 0 {
        qb.push(" GROUP BY ");
        qb.push(
            (0..dims)
                .map(|i| format!("d{i}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
}

/// ORDER BY, LIMIT and OFFSET in SQL, for breakdowns (which can be large).
pub(super) fn push_order_and_page(qb: &mut QueryBuilder<'_, Postgres>, q: &Query) {
    let mut keys: Vec<String> = order(q)
        .iter()
        .map(|(k, dir)| {
            let col = match k {
                // Shares of a fixed whole order as their parts.
                OrderKey::Metric(Metric::Percentage | Metric::ConversionRate) => {
                    "m_visitors".to_owned()
                }
                OrderKey::Metric(Metric::TotalRevenue) => "r_revenue".to_owned(),
                OrderKey::Metric(Metric::AverageRevenue) => {
                    "r_revenue / NULLIF(m_revenue_hits, 0)".to_owned()
                }
                OrderKey::Metric(m) => format!("m_{}", m.name()),
                OrderKey::Dimension(d) => {
                    format!("d{}", q.dimensions.iter().position(|x| x == d).unwrap_or(0))
                }
            };
            format!(
                "{col} {} NULLS LAST",
                if *dir == Direction::Asc {
                    "ASC"
                } else {
                    "DESC"
                }
            )
        })
        .collect();
    // Ties are broken by the dimensions, so answers are deterministic.
    keys.extend((0..q.dimensions.len()).map(|i| format!("d{i} ASC")));
    qb.push(" ORDER BY ").push(keys.join(", "));
    qb.push(" LIMIT ")
        .push_bind(q.limit as i64)
        .push(" OFFSET ")
        .push_bind(q.offset as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_parameterised_sql() {
        let f = Filter::And(vec![
            Filter::Leaf {
                op: Op::Contains,
                dimension: Dimension::Page,
                values: vec!["50%_off".into()],
            },
            Filter::Not(Box::new(Filter::Leaf {
                op: Op::Is,
                dimension: Dimension::Prop("plan".into()),
                values: vec!["pro".into()],
            })),
        ]);
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_filter(&mut qb, &f, &[]).unwrap();
        assert_eq!(
            qb.sql(),
            "((COALESCE(pathname, '') LIKE ANY($1)) AND NOT ((COALESCE(props->>$2, '') = ANY($3))))"
        );
        let time = Filter::Leaf {
            op: Op::Is,
            dimension: Dimension::Time(Grain::Day),
            values: vec![],
        };
        assert_eq!(
            push_filter(&mut qb, &time, &[]).unwrap_err().field,
            "filters"
        );
        assert_eq!(escape_like("50%_off"), "50\\%\\_off");
    }
}
