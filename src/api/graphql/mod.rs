//! GraphQL for reports: `POST /api/graphql` (async-graphql), with the REST APIs' bearer keys, and
//! GraphiQL at `GET /api/graphql`, served from the binary (`assets/graphiql/`, vendored by
//! `scripts/vendor-js`).
//!
//! A request's errors carry `extensions.code`, the REST APIs' stable codes (`unauthorized`,
//! `invalid_query`, …) or `invalid_graphql` for a document that does not parse or validate. The
//! HTTP status is `200` when there is data; otherwise the first error's status (`400`, `401`,
//! `404`, `503` with `Retry-After`). Depth and complexity are limited: a report costs
//! [`schema::REPORT_COMPLEXITY`], so one request asks for at most five.

mod schema;

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use async_graphql::{EmptyMutation, EmptySubscription, ErrorExtensions, Schema};

use super::assets::{embedded, Bundle, CSS, JS, MARKDOWN};
use super::client::read;
use super::{bearer, ApiError, AppState};
use schema::QueryRoot;

type FootfallSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;
type GqlResult<T> = async_graphql::Result<T>;

/// The deepest selection a document may have (GraphiQL's introspection query needs 13).
pub const MAX_DEPTH: usize = 16;
/// The most a document may cost: five reports.
pub const MAX_COMPLEXITY: usize = 5 * schema::REPORT_COMPLEXITY;
/// The largest request body.
const MAX_BODY: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/graphql")
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route(read(web::post().to(execute)))
            .route(web::get().to(graphiql)),
    )
    .route("/api/graphql/assets/{hash}/{path:.*}", web::get().to(file));
}

fn schema() -> &'static FootfallSchema {
    static SCHEMA: OnceLock<FootfallSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish()
    })
}

/// The schema in GraphQL's schema language.
pub fn sdl() -> String {
    schema().sdl()
}

/// The bearer token of the request, kept in the GraphQL context.
struct Token(Option<String>);

fn state_and_token<'a>(ctx: &async_graphql::Context<'a>) -> (&'a AppState, Option<&'a str>) {
    let state = ctx.data_unchecked::<web::Data<AppState>>();
    let token = ctx.data_unchecked::<Token>().0.as_deref();
    (state.get_ref(), token)
}

/// A REST error as a GraphQL error: its message, its code and its HTTP status in `extensions`.
fn to_graphql(e: ApiError) -> async_graphql::Error {
    let status = e.status_code().as_u16();
    async_graphql::Error::new(e.message().to_owned()).extend_with(|_, x| {
        x.set("code", e.code());
        x.set("status", status);
    })
}

/// `POST /api/graphql` with `{"query", "variables", "operationName"}`.
async fn execute(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request: async_graphql::Request = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("expected {{\"query\", \"variables\", \"operationName\"}}: {e}"),
        )
    })?;
    let token = Token(bearer(&req).map(str::to_owned));
    let mut response = schema().execute(request.data(state).data(token)).await;
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if !has_code {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "invalid_graphql");
        }
    }
    let status = match (&response.data, response.errors.first()) {
        (async_graphql::Value::Null, Some(e)) => e
            .extensions
            .as_ref()
            .and_then(|x| match x.get("status") {
                Some(async_graphql::Value::Number(n)) => n.as_u64(),
                _ => None,
            })
            .and_then(|s| actix_web::http::StatusCode::from_u16(s as u16).ok())
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        _ => actix_web::http::StatusCode::OK,
    };
    let mut reply = HttpResponse::build(status);
    if status == actix_web::http::StatusCode::SERVICE_UNAVAILABLE {
        reply.insert_header((header::RETRY_AFTER, "5"));
    }
    Ok(reply.json(response))
}

/// GraphiQL's files (a test checks that none is missing).
const FILES: &[(&str, &[u8], &str)] = &[
    embedded!("graphiql", "start.js", JS),
    embedded!("graphiql", "vendor/graphiql.min.js", JS),
    embedded!("graphiql", "vendor/graphiql.min.css", CSS),
    embedded!("graphiql", "vendor/react.production.min.js", JS),
    embedded!("graphiql", "vendor/react-dom.production.min.js", JS),
    embedded!("graphiql", "vendor/LICENSES.md", MARKDOWN),
];
const SHELL: &str = include_str!("../../../assets/graphiql/index.html");
/// Nothing loads from elsewhere; GraphiQL's editor styles itself inline and its fonts are data
/// URLs.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'self'";

fn bundle() -> &'static Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(|| Bundle::new("/api/graphql/assets", FILES, SHELL))
}

async fn graphiql(req: HttpRequest) -> HttpResponse {
    bundle().page(&req, CSP)
}

async fn file(
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    bundle().file(&req, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_graphiql_folder_is_embedded() {
        crate::api::assets::assert_all_embedded("graphiql", FILES);
    }

    #[test]
    fn the_schema_has_the_minimum_contract() {
        let sdl = sdl();
        for needle in [
            "stats(query: JSON!): StatsResult!",
            "results: [Row!]!",
            "meta: JSON\n",
            "dimensions: [String!]!",
            "metrics: [JSON!]!",
            "realtimeVisitors(siteId: String!): Int!",
        ] {
            assert!(sdl.contains(needle), "{needle} in\n{sdl}");
        }
    }
}
