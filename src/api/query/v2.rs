//! Plausible Stats API v2: `POST /api/v2/query`.
//!
//! ```json
//! {"site_id": "shop.example", "metrics": ["visitors", "pageviews"], "date_range": "7d",
//!  "dimensions": ["time:day"], "filters": [["contains", "event:page", ["/blog"]]],
//!  "order_by": [["visitors", "desc"]], "pagination": {"limit": 100, "offset": 0},
//!  "include": {"time_labels": true, "comparisons": {"mode": "previous_period"}, "imports": true}}
//! ```
//!
//! With `include.imports`, imported aggregates are added where one imported table answers the
//! query; `meta.imports_included` says whether they were, and `meta.imports_skip_reason` why not
//! (`unsupported_query`, `unsupported_interval`, `no_imported_data`).
//!
//! Beyond Plausible: `date_range` may also be `realtime` (the last 30 minutes) or `last_month`,
//! `time:minute` is a dimension, and `GET /api/v2/prop-keys` lists the custom property keys.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{compare, time_labels, Site};
use crate::api::{ApiError, AppState};
use crate::query::reads::Held;
use crate::query::{
    engine, DateRange, Dimension, Direction, Filter, Metric, Op, OrderKey, Query, QueryError,
};

pub async fn query(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let obj = json_object(&body)?;
    let answer = answer(&state, crate::api::bearer(&req), obj).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// A v2 query's answer, `{"results", "meta", "query"}`, for the bearer token given (GraphQL's
/// `stats` answers through it too).
pub async fn answer(
    state: &AppState,
    token: Option<&str>,
    obj: Map<String, Value>,
) -> Result<Value, ApiError> {
    let site_id = string(&obj, "site_id")?;
    let site = Site::open(token, state, &site_id).await?;
    let query = parse(&obj, &site)?;
    let include = obj.get("include");
    let comparisons = match include.and_then(|i| i.get("comparisons")) {
        None | Some(Value::Null) => false,
        Some(c) if c.get("mode").and_then(Value::as_str) == Some("previous_period") => true,
        Some(_) => {
            return Err(QueryError::new(
                "include.comparisons",
                "must be {\"mode\": \"previous_period\"}",
            )
            .into())
        }
    };
    let rows = state.reports.run(&query).await?;

    let mut meta = Map::new();
    if query.imports {
        let skipped = match engine::imported::table_for(&query) {
            Err(reason) => Some(reason.code()),
            Ok(_) => {
                let any = Held::read(&state.query_pool, async |db| {
                    engine::imported::any_in_range(db, &query).await
                })
                .await?;
                (!any).then_some("no_imported_data")
            }
        };
        meta.insert("imports_included".into(), json!(skipped.is_none()));
        if let Some(reason) = skipped {
            meta.insert("imports_skip_reason".into(), json!(reason));
        }
    }
    let results = if comparisons {
        let previous = query.range.previous();
        meta.insert("comparison_date_range".into(), site.iso_range(&previous));
        json!(compare::compare(&state.reports, &query, &rows).await?)
    } else {
        json!(rows)
    };
    let time = query.dimensions.iter().find_map(|d| match d {
        Dimension::Time(g) => Some(*g),
        _ => None,
    });
    if let (Some(g), Some(true)) = (
        time,
        include
            .and_then(|i| i.get("time_labels"))
            .and_then(Value::as_bool),
    ) {
        meta.insert("time_labels".into(), json!(time_labels(&query.range, g)));
    }
    let mut echo = obj;
    echo.insert("date_range".into(), site.iso_range(&query.range));
    Ok(json!({"results": results, "meta": meta, "query": echo}))
}

/// A request body that must be a JSON object.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}"))
    })?;
    match value {
        Value::Object(obj) => Ok(obj),
        _ => Err(QueryError::new("body", "must be a JSON object").into()),
    }
}

#[derive(serde::Deserialize)]
pub struct PropKeysParams {
    site_id: String,
    /// A period name, or `from,to`.
    date_range: Option<String>,
}

/// `GET /api/v2/prop-keys?site_id=…&date_range=30d`: the custom property keys of the range's
/// events, most used first (at most 100). What a dashboard offers to break down by.
pub async fn prop_keys(
    req: HttpRequest,
    params: web::Query<PropKeysParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = Site::authorize(&req, &state, &params.site_id).await?;
    let range = match params
        .date_range
        .as_deref()
        .unwrap_or("30d")
        .split_once(',')
    {
        Some((from, to)) => site.explicit_range("date_range", from, to)?,
        None => site.period(
            "date_range",
            params.date_range.as_deref().unwrap_or("30d"),
            None,
        )?,
    };
    let keys = Held::read(&state.query_pool, async |db| {
        engine::prop_keys(db, site.property.id, &range).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"prop_keys": keys})))
}

pub(super) fn string(obj: &Map<String, Value>, field: &str) -> Result<String, QueryError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(QueryError::new(field, "is required")),
        Some(_) => Err(QueryError::new(field, "must be a string")),
    }
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, QueryError> {
    let Value::Array(items) = v else {
        return Err(QueryError::new(field, "must be a list of strings"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| QueryError::new(format!("{field}[{i}]"), "must be a string"))
        })
        .collect()
}

/// The query's `date_range`: a period name, or `[from, to]`.
pub fn date_range(obj: &Map<String, Value>, site: &Site) -> Result<DateRange, QueryError> {
    match obj.get("date_range") {
        Some(Value::String(name)) => site.period("date_range", name, None),
        Some(Value::Array(pair)) if pair.len() == 2 => {
            let pair = strings(&Value::Array(pair.clone()), "date_range")?;
            site.explicit_range("date_range", &pair[0], &pair[1])
        }
        None => Err(QueryError::new("date_range", "is required")),
        Some(_) => Err(QueryError::new(
            "date_range",
            "must be a period name or [from, to]",
        )),
    }
}

/// The query's `filters`, all of which must hold.
pub fn filters(obj: &Map<String, Value>, range: &DateRange) -> Result<Option<Filter>, QueryError> {
    match obj.get("filters") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(fs)) if fs.is_empty() => Ok(None),
        Some(Value::Array(fs)) => Ok(Some(Filter::And(
            fs.iter()
                .enumerate()
                .map(|(i, f)| filter(f, range, &format!("filters[{i}]")))
                .collect::<Result<_, _>>()?,
        ))),
        Some(_) => Err(QueryError::new("filters", "must be a list")),
    }
}

pub fn parse(obj: &Map<String, Value>, site: &Site) -> Result<Query, QueryError> {
    let range = date_range(obj, site)?;
    let metrics = strings(obj.get("metrics").unwrap_or(&Value::Null), "metrics")?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Metric::parse(m).ok_or_else(|| {
                QueryError::new(format!("metrics[{i}]"), format!("unknown metric `{m}`"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dimensions = match obj.get("dimensions") {
        None | Some(Value::Null) => vec![],
        Some(v) => strings(v, "dimensions")?
            .iter()
            .enumerate()
            .map(|(i, d)| dimension(d, &range, &format!("dimensions[{i}]")))
            .collect::<Result<_, _>>()?,
    };
    let filters = filters(obj, &range)?;
    let order_by = match obj.get("order_by") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| order(item, &range, &format!("order_by[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(QueryError::new(
                "order_by",
                "must be a list of [key, direction]",
            ))
        }
    };
    let page = obj.get("pagination");
    let number = |key: &str, default: u64| match page.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().ok_or_else(|| {
            QueryError::new(
                format!("pagination.{key}"),
                "must be a non-negative integer",
            )
        }),
    };
    let query = Query {
        property_id: site.property.id,
        range,
        metrics,
        dimensions,
        filters,
        order_by,
        limit: number("limit", 10_000)? as usize,
        offset: number("offset", 0)? as usize,
        goals: site.property.goals.0.clone(),
        imports: match obj.get("include").and_then(|i| i.get("imports")) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(QueryError::new("include.imports", "must be true or false")),
        },
    };
    query.validate_page()?;
    Ok(query)
}

fn dimension(s: &str, range: &DateRange, field: &str) -> Result<Dimension, QueryError> {
    Dimension::parse(s, range)
        .ok_or_else(|| QueryError::new(field, format!("unknown dimension `{s}`")))
}

fn filter(v: &Value, range: &DateRange, field: &str) -> Result<Filter, QueryError> {
    let Value::Array(parts) = v else {
        return Err(QueryError::new(field, "must be a list"));
    };
    let op = parts
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| QueryError::new(format!("{field}[0]"), "must be an operator"))?;
    let arg = |i: usize| {
        parts
            .get(i)
            .ok_or_else(|| QueryError::new(format!("{field}[{i}]"), "is missing"))
    };
    match op {
        "and" | "or" => {
            let Value::Array(children) = arg(1)? else {
                return Err(QueryError::new(
                    format!("{field}[1]"),
                    "must be a list of filters",
                ));
            };
            let children = children
                .iter()
                .enumerate()
                .map(|(i, c)| filter(c, range, &format!("{field}[1][{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "and" {
                Filter::And(children)
            } else {
                Filter::Or(children)
            })
        }
        "not" => Ok(Filter::Not(Box::new(filter(
            arg(1)?,
            range,
            &format!("{field}[1]"),
        )?))),
        other => {
            let op = Op::parse(other).ok_or_else(|| {
                QueryError::new(format!("{field}[0]"), format!("unknown operator `{other}`"))
            })?;
            let dim = arg(1)?
                .as_str()
                .ok_or_else(|| QueryError::new(format!("{field}[1]"), "must be a dimension"))?;
            let dimension = dimension(dim, range, &format!("{field}[1]"))?;
            if dimension.is_time() {
                return Err(QueryError::new(
                    format!("{field}[1]"),
                    "time dimensions cannot be filtered",
                ));
            }
            let values = strings(arg(2)?, &format!("{field}[2]"))?;
            Ok(Filter::Leaf {
                op,
                dimension,
                values,
            })
        }
    }
}

fn order(v: &Value, range: &DateRange, field: &str) -> Result<(OrderKey, Direction), QueryError> {
    let pair = strings(v, field)?;
    let [key, dir] = pair.as_slice() else {
        return Err(QueryError::new(field, "must be [key, direction]"));
    };
    let key = match Metric::parse(key) {
        Some(m) => OrderKey::Metric(m),
        None => OrderKey::Dimension(dimension(key, range, &format!("{field}[0]"))?),
    };
    let dir = match dir.as_str() {
        "asc" => Direction::Asc,
        "desc" => Direction::Desc,
        _ => {
            return Err(QueryError::new(
                format!("{field}[1]"),
                "must be asc or desc",
            ))
        }
    };
    Ok((key, dir))
}
