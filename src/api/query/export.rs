//! `GET /api/v1/export?site_id=…&period=…` (a read key, a shared link or the admin token): the
//! property's reports as a zip of CSV files in Plausible's export layout, one file per table
//! (`imported_visitors_<first>_<last>.csv`, …), by local day. Plausible imports it as it is, and so
//! does `footfall import plausible-csv` (see [`crate::import::plausible_csv`]).
//!
//! `period` is `all` by default: from the first hour with data to today. Any v1 period works, and
//! `custom` with `date=YYYY-MM-DD,YYYY-MM-DD`. Exports hold footfall's own data, not imported data.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, NaiveDate};

use super::v1::Params;
use super::Site;
use crate::api::{ApiError, AppState};
use crate::domain::{ImportedRow, ImportedTable};
use crate::import::{plausible_csv, zip};
use crate::query::reads::Held;
use crate::query::{engine, DateRange, Dimension, Filter, Grain, Metric, Op, Query};
use crate::readmodel::schema::{visit_dimensions, ROLLUP_HOURLY};

pub async fn export(
    req: HttpRequest,
    params: web::Query<Params>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = Site::authorize(&req, &state, &params.site_id).await?;
    let range = match params.period.as_deref() {
        None | Some("all") => {
            let first: Option<chrono::NaiveDateTime> = sqlx::query_scalar(&format!(
                "SELECT min(bucket) FROM {} WHERE property_id = $1",
                ROLLUP_HOURLY.table
            ))
            .bind(site.property.id)
            .fetch_one(&state.pool)
            .await?;
            let today = site.today();
            DateRange::days(first.map_or(today, |f| f.date().min(today)), today)
        }
        Some(_) => params.range(&site)?,
    };
    let (first, last) = (range.from.date(), (range.to - Duration::seconds(1)).date());
    let mut files = Vec::new();
    for table in ImportedTable::ALL {
        let rows = table_rows(&state, &site, table, range).await?;
        let csv = plausible_csv::write(table, &rows);
        files.push((
            plausible_csv::file_name(table, first, last),
            csv.into_bytes(),
        ));
    }
    let archive = zip::write(&files).map_err(|e| ApiError::unavailable("unavailable", 5, &e))?;
    let name = format!(
        "{}_{}.zip",
        site.property.domain.replace('.', "_"),
        site.today().format("%Y%m%d")
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/zip"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(archive))
}

/// The query dimension a table's label column is, if footfall keeps it (`link_url` and `path` of
/// custom events it does not: they are exported empty).
fn dimension(column: &str) -> Option<Dimension> {
    match column {
        "pathname" => Some(Dimension::Page),
        "hostname" => Some(Dimension::Hostname),
        "name" => Some(Dimension::Name),
        c => visit_dimensions().find(|v| *v == c).map(Dimension::Visit),
    }
}

/// A table's rows, by day and labels.
async fn table_rows(
    state: &AppState,
    site: &Site,
    table: ImportedTable,
    range: DateRange,
) -> Result<Vec<(NaiveDate, ImportedRow)>, ApiError> {
    let labels: Vec<Option<Dimension>> = table.labels().iter().map(|(_, c)| dimension(c)).collect();
    let mut dimensions = vec![Dimension::Time(Grain::Day)];
    dimensions.extend(labels.iter().flatten().cloned());
    let mut metrics = vec![Metric::Visitors, Metric::Pageviews, Metric::Events];
    if table != ImportedTable::CustomEvents {
        metrics.push(Metric::Visits);
    }
    if table.is_visit_table() {
        metrics.extend([Metric::BounceRate, Metric::VisitDuration]);
    }
    let filters = (table == ImportedTable::CustomEvents).then(|| Filter::Leaf {
        op: Op::IsNot,
        dimension: Dimension::Name,
        values: vec!["pageview".into()],
    });
    let q = Query {
        property_id: site.property.id,
        range,
        metrics,
        dimensions,
        filters,
        order_by: vec![],
        limit: Query::MAX_LIMIT,
        offset: 0,
        goals: vec![],
        imports: false,
    };
    let mut rows = Vec::new();
    let counted = Held::read(&state.pool, async |db| engine::counts(db, &q).await).await?;
    for (keys, mut counts) in counted {
        let Some(day) = keys.first().and_then(|d| d.parse::<NaiveDate>().ok()) else {
            continue;
        };
        let mut values = keys.into_iter().skip(1);
        let labels = labels
            .iter()
            .map(|d| match d {
                Some(_) => values.next().unwrap_or_default(),
                None => String::new(),
            })
            .collect();
        if table != ImportedTable::CustomEvents {
            counts.events = counts.pageviews;
        }
        rows.push((day, ImportedRow { labels, counts }));
    }
    rows.sort_by(|a, b| (a.0, &a.1.labels).cmp(&(b.0, &b.1.labels)));
    Ok(rows)
}
