//! Looking into the event log: one stream's events, and the head of `$all`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{AdminAuth, ApiError, AppState};
use crate::eventlog::RecordedEvent;

#[derive(Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

pub async fn read_stream(
    _: AdminAuth,
    stream: web::Path<String>,
    query: web::Query<StreamQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    super::check_page_limit(query.limit)?;
    let events = state
        .log
        .read_stream(&stream, query.from, query.limit)
        .await?;
    if events.is_empty() && query.from == 0 {
        return Err(ApiError::not_found(
            "stream_not_found",
            format!("stream `{stream}` has no events"),
        ));
    }
    let next = (events.len() == query.limit)
        .then(|| events.last().map(|e| e.revision + 1))
        .flatten();
    let events: Vec<Value> = events.iter().map(render).collect();
    Ok(HttpResponse::Ok().json(json!({"stream": *stream, "events": events, "next_from": next})))
}

fn render(e: &RecordedEvent) -> Value {
    json!({
        "id": e.id,
        "type": e.event_type,
        "schema_version": e.schema_version,
        "revision": e.revision,
        "position": e.position,
        "recorded_at": e.recorded_at,
        // Shown as JSON whatever its stored encoding; data this code cannot decode shows as null.
        "data": e.decode().ok().and_then(|d| d.to_json().ok())
            .and_then(|j| serde_json::from_str::<Value>(&j).ok()).unwrap_or(Value::Null),
    })
}

pub async fn head(_: AdminAuth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let head = state.log.head().await?;
    Ok(HttpResponse::Ok().json(json!({"head": head.position, "events": head.events})))
}
