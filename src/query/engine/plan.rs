//! Which read model answers a query (see the [`super`] module's doc for the rules).

use crate::query::{Dimension, Grain, Metric, Query};
use crate::readmodel::schema::VISIT_ROLLUP_DIMENSIONS;

/// Which read model answers a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    HourlyRollup,
    DailyRollup,
    VisitRollup,
    Enriched,
}

/// A breakdown by visit attributes only, with metrics the visits answer.
pub(super) fn is_visit_breakdown(q: &Query) -> bool {
    q.dimensions
        .iter()
        .any(|d| matches!(d, Dimension::Visit(_)))
        && !q.dimensions.iter().any(Dimension::is_event)
        && !q.metrics.iter().any(Metric::needs_hits)
}

pub fn plan(q: &Query) -> Plan {
    let breakdowns: Vec<&Dimension> = q.dimensions.iter().filter(|d| !d.is_time()).collect();
    let hourly = q
        .dimensions
        .iter()
        .any(|d| matches!(d, Dimension::Time(g) if g.is_sub_day()));
    // Minutes are finer than any rollup.
    if q.dimensions.contains(&Dimension::Time(Grain::Minute)) {
        return Plan::Enriched;
    }
    let hit_metrics_only = q.metrics.iter().all(|m| {
        matches!(
            m,
            Metric::Visitors | Metric::Pageviews | Metric::Events | Metric::Percentage
        )
    });
    if is_visit_breakdown(q) {
        let rolled_up = matches!(breakdowns.as_slice(),
            [Dimension::Visit(c)] if VISIT_ROLLUP_DIMENSIONS.contains(c));
        return if rolled_up && q.filters.is_none() && !hourly && q.range.is_day_aligned() {
            Plan::VisitRollup
        } else {
            Plan::Enriched
        };
    }
    let rollup_dims = breakdowns.iter().all(|d| d.rollup_name().is_some());
    if q.metrics.iter().any(Metric::needs_hits) || !rollup_dims {
        return Plan::Enriched;
    }
    match (q.filters.is_some(), breakdowns.len()) {
        (false, 0) if q.range.is_hour_aligned() => Plan::HourlyRollup,
        (false, 1) if hit_metrics_only && !hourly && q.range.is_day_aligned() => Plan::DailyRollup,
        _ => Plan::Enriched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{DateRange, Filter, Op};

    fn query(dimensions: Vec<Dimension>, metrics: Vec<Metric>, filters: Option<Filter>) -> Query {
        Query {
            property_id: uuid::Uuid::nil(),
            range: DateRange::days("2026-11-01".parse().unwrap(), "2026-11-30".parse().unwrap()),
            metrics,
            dimensions,
            filters,
            order_by: vec![],
            limit: 100,
            offset: 0,
            goals: vec![],
            imports: false,
        }
    }

    #[test]
    fn the_planner_uses_rollups_when_it_can() {
        use Metric::*;
        assert_eq!(
            plan(&query(vec![], vec![Visitors, BounceRate], None)),
            Plan::HourlyRollup
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Time(Grain::Hour)],
                vec![Visits],
                None
            )),
            Plan::HourlyRollup
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Page],
                vec![Visitors, Pageviews],
                None
            )),
            Plan::DailyRollup
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Time(Grain::Day), Dimension::Prop("plan".into())],
                vec![Events],
                None
            )),
            Plan::DailyRollup
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Visit("source")],
                vec![Visitors, BounceRate],
                None
            )),
            Plan::VisitRollup
        );
        // Not every visit attribute is rolled up; revenue needs the hits.
        assert_eq!(
            plan(&query(
                vec![Dimension::Visit("referrer")],
                vec![Visits],
                None
            )),
            Plan::Enriched
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Visit("source")],
                vec![TotalRevenue],
                None
            )),
            Plan::Enriched
        );
        // Visits by page, hourly breakdowns and filters need the enriched tables.
        assert_eq!(
            plan(&query(vec![Dimension::Page], vec![Visits], None)),
            Plan::Enriched
        );
        assert_eq!(
            plan(&query(
                vec![Dimension::Time(Grain::Hour), Dimension::Page],
                vec![Events],
                None
            )),
            Plan::Enriched
        );
        let f = Filter::Leaf {
            op: Op::Is,
            dimension: Dimension::Page,
            values: vec!["/".into()],
        };
        assert_eq!(
            plan(&query(vec![], vec![Visitors], Some(f))),
            Plan::Enriched
        );
    }
}
