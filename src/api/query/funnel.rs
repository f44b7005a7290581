//! `POST /api/v2/funnel`: a funnel's visitors step by step.
//!
//! ```json
//! {"site_id": "shop.example", "funnel": "Checkout", "date_range": "30d",
//!  "filters": [["is", "visit:source", ["Google"]]]}
//! ```
//!
//! `funnel` is the name of one of the property's funnels, or `{"steps": [{"page": "/"},
//! {"event": "Signup"}]}`. The answer gives each step's visitors, its conversion rate from the
//! first step and from the previous one, and the drop-off from the previous one.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::v2::{date_range, filters, json_object, string};
use super::Site;
use crate::api::{ApiError, AppState};
use crate::domain::{Funnel, Goal};
use crate::query::reads::Held;
use crate::query::{engine, Metric, Query, QueryError};

/// Conversion in percent, to one decimal.
fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

#[derive(serde::Deserialize)]
pub struct ListParams {
    site_id: String,
}

/// `GET /api/v2/funnels?site_id=…`: the property's funnels, for whoever may read its reports.
pub async fn list(
    req: HttpRequest,
    params: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = Site::authorize(&req, &state, &params.site_id).await?;
    let funnels = state.properties.funnels(site.property.id).await?;
    Ok(HttpResponse::Ok().json(json!({ "funnels": funnels })))
}

pub async fn funnel(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let obj = json_object(&body)?;
    let site_id = string(&obj, "site_id")?;
    let site = Site::authorize(&req, &state, &site_id).await?;
    let range = date_range(&obj, &site)?;
    let filters = filters(&obj, &range)?;
    let funnel = match obj.get("funnel") {
        Some(Value::String(name)) => state
            .properties
            .funnels(site.property.id)
            .await?
            .into_iter()
            .find(|f| f.name == *name)
            .ok_or_else(|| QueryError::new("funnel", format!("no funnel named `{name}`")))?,
        Some(Value::Object(inline)) => {
            let steps: Vec<Goal> = inline
                .get("steps")
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default();
            Funnel {
                name: "Funnel".into(),
                steps,
            }
            .normalised()
            .ok_or_else(|| {
                QueryError::new(
                    "funnel.steps",
                    "must be 2 to 8 steps, each {\"event\": name} or {\"page\": \"/path*\"}",
                )
            })?
        }
        _ => {
            return Err(QueryError::new(
                "funnel",
                "is required: a funnel's name, or {\"steps\": [...]}",
            )
            .into())
        }
    };
    let query = Query {
        property_id: site.property.id,
        range,
        metrics: vec![Metric::Visitors],
        dimensions: vec![],
        filters,
        order_by: vec![],
        limit: 1,
        offset: 0,
        goals: site.property.goals.0.clone(),
        imports: false,
    };
    let visitors = Held::read(&state.query_pool, async |db| {
        engine::funnel(db, &query, &funnel.steps).await
    })
    .await?;
    let first = visitors.first().copied().unwrap_or(0);
    let steps: Vec<Value> = funnel
        .steps
        .iter()
        .zip(&visitors)
        .enumerate()
        .map(|(i, (step, &n))| {
            let previous = if i == 0 { n } else { visitors[i - 1] };
            json!({
                "step": i + 1,
                "label": step.label(),
                "visitors": n,
                "conversion_rate": rate(n, first),
                "conversion_rate_step": rate(n, previous),
                "dropoff": previous - n,
            })
        })
        .collect();
    let mut echo = obj.clone();
    echo.insert("date_range".into(), site.iso_range(&query.range));
    Ok(HttpResponse::Ok().json(json!({"funnel": funnel.name, "steps": steps, "query": echo})))
}
