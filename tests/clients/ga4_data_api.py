"""Google's official GA4 Data API client (PyPI: google-analytics-data), unmodified, against a real
footfall: REST transport, a custom endpoint, the property's read key as the OAuth access token.

    python3 tests/clients/ga4_data_api.py ENDPOINT PROPERTY_ID READ_KEY OTHER_READ_KEY

Prints one JSON object with what each call answered; tests/api/ga4.rs checks the numbers.
"""

import json
import sys

from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import (
    BatchRunReportsRequest,
    DateRange,
    Dimension,
    Filter,
    FilterExpression,
    FilterExpressionList,
    GetMetadataRequest,
    Metric,
    MetricAggregation,
    MinuteRange,
    NumericValue,
    OrderBy,
    RunRealtimeReportRequest,
    RunReportRequest,
)
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials

endpoint, property_id, read_key, other_key = sys.argv[1:5]
prop = f"properties/{property_id}"


def client(token):
    return BetaAnalyticsDataClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=endpoint),
        credentials=Credentials(token=token),
    )


def table(response):
    """Headers, rows and aggregates as lists of strings."""
    row = lambda r: [d.value for d in r.dimension_values] + [m.value for m in r.metric_values]
    return {
        "dimensions": [h.name for h in response.dimension_headers],
        "metrics": [[h.name, h.type_.name] for h in response.metric_headers],
        "rows": [row(r) for r in response.rows],
        "totals": [row(r) for r in response.totals],
        "maximums": [row(r) for r in response.maximums],
        "minimums": [row(r) for r in response.minimums],
        "row_count": response.row_count,
    }


ga = client(read_key)
out = {}

by_date = ga.run_report(
    RunReportRequest(
        property=prop,
        dimensions=[Dimension(name="date")],
        metrics=[
            Metric(name="activeUsers"),
            Metric(name="sessions"),
            Metric(name="screenPageViews"),
            Metric(name="eventCount"),
            Metric(name="keyEvents"),
        ],
        date_ranges=[DateRange(start_date="2026-11-01", end_date="2026-11-03")],
        metric_aggregations=[MetricAggregation.TOTAL, MetricAggregation.MAXIMUM],
        order_bys=[OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name="date"))],
        keep_empty_rows=True,
    )
)
out["by_date"] = table(by_date)
out["by_date"]["time_zone"] = by_date.metadata.time_zone
out["by_date"]["kind"] = by_date.kind

blog = ga.run_report(
    RunReportRequest(
        property=prop,
        dimensions=[Dimension(name="pagePath")],
        metrics=[Metric(name="screenPageViews"), Metric(name="activeUsers")],
        date_ranges=[DateRange(start_date="2026-11-01", end_date="2026-11-03")],
        dimension_filter=FilterExpression(
            filter=Filter(
                field_name="pagePath",
                string_filter=Filter.StringFilter(
                    match_type=Filter.StringFilter.MatchType.BEGINS_WITH, value="/BLOG"
                ),
            )
        ),
        order_bys=[OrderBy(metric=OrderBy.MetricOrderBy(metric_name="screenPageViews"), desc=True)],
    )
)
out["blog"] = table(blog)

events = ga.run_report(
    RunReportRequest(
        property=prop,
        dimensions=[Dimension(name="eventName")],
        metrics=[Metric(name="eventCount")],
        date_ranges=[DateRange(start_date="2026-11-01", end_date="2026-11-03")],
        metric_filter=FilterExpression(
            not_expression=FilterExpression(
                filter=Filter(
                    field_name="eventCount",
                    numeric_filter=Filter.NumericFilter(
                        operation=Filter.NumericFilter.Operation.LESS_THAN,
                        value=NumericValue(int64_value=1),
                    ),
                )
            )
        ),
        order_bys=[OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name="eventName"))],
    )
)
out["events"] = table(events)

paged = ga.run_report(
    RunReportRequest(
        property=prop,
        dimensions=[Dimension(name="pagePath")],
        metrics=[Metric(name="screenPageViews")],
        date_ranges=[DateRange(start_date="2026-11-01", end_date="2026-11-03")],
        order_bys=[OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name="pagePath"))],
        limit=2,
        offset=1,
    )
)
out["paged"] = table(paged)

two_ranges = ga.run_report(
    RunReportRequest(
        property=prop,
        dimensions=[Dimension(name="deviceCategory")],
        metrics=[Metric(name="sessions"), Metric(name="bounceRate")],
        date_ranges=[
            DateRange(start_date="2026-11-01", end_date="2026-11-01", name="first"),
            DateRange(start_date="2026-11-02", end_date="2026-11-02", name="second"),
        ],
        dimension_filter=FilterExpression(
            and_group=FilterExpressionList(
                expressions=[
                    FilterExpression(
                        filter=Filter(
                            field_name="deviceCategory",
                            in_list_filter=Filter.InListFilter(values=["desktop", "mobile"]),
                        )
                    )
                ]
            )
        ),
    )
)
out["two_ranges"] = table(two_ranges)

batch = ga.batch_run_reports(
    BatchRunReportsRequest(
        property=prop,
        requests=[
            RunReportRequest(
                metrics=[Metric(name="totalUsers")],
                date_ranges=[DateRange(start_date="2026-11-01", end_date="2026-11-03")],
            ),
            RunReportRequest(
                metrics=[Metric(name="sessions")],
                date_ranges=[DateRange(start_date="2026-11-02", end_date="2026-11-02")],
            ),
        ],
    )
)
out["batch"] = [table(r) for r in batch.reports]

realtime = ga.run_realtime_report(
    RunRealtimeReportRequest(
        property=prop,
        dimensions=[Dimension(name="eventName")],
        metrics=[Metric(name="eventCount"), Metric(name="activeUsers")],
        minute_ranges=[MinuteRange(start_minutes_ago=29, end_minutes_ago=0)],
    )
)
out["realtime"] = table(realtime)

metadata = ga.get_metadata(GetMetadataRequest(name=f"{prop}/metadata"))
out["metadata"] = {
    "dimensions": [d.api_name for d in metadata.dimensions],
    "metrics": [[m.api_name, m.type_.name] for m in metadata.metrics],
}


def error_of(call):
    try:
        call()
    except exceptions.GoogleAPICallError as e:
        return [type(e).__name__, e.code.value if hasattr(e.code, "value") else e.code, e.message]
    except RefreshError as e:
        # On a 401 the client asks for a fresh access token, as for an expired one; a bare
        # token cannot be refreshed.
        return [type(e).__name__, None, str(e)]
    return None


simple = RunReportRequest(
    property=prop,
    metrics=[Metric(name="activeUsers")],
    date_ranges=[DateRange(start_date="7daysAgo", end_date="today")],
)
out["errors"] = {
    "other_key": error_of(lambda: client(other_key).run_report(simple)),
    "unknown_key": error_of(lambda: client("not-a-key").run_report(simple)),
    "unknown_dimension": error_of(
        lambda: ga.run_report(
            RunReportRequest(
                property=prop,
                dimensions=[Dimension(name="itemName")],
                metrics=[Metric(name="activeUsers")],
                date_ranges=[DateRange(start_date="yesterday", end_date="today")],
            )
        )
    ),
}

print(json.dumps(out))
