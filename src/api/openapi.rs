//! The OpenAPI 3.1 description of every endpoint of the HTTP API, served at
//! `GET /api/openapi.json`. Each operation is written here, beside the routes: a test checks that
//! every route of `src/api/` is described and nothing else is, and the test suite runs
//! Schemathesis against a real server to check that real responses match it (statuses, content
//! types, bodies). Pages (the dashboard, GraphiQL) and their files are not part of the API.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/openapi.json", web::get().to(serve));
}

async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Auth {
    None,
    /// The property's read key, a shared link's token, or the admin token.
    Read,
    Admin,
}

/// One operation: method, path, tag, summary, who may call it, parameters, request body and
/// responses.
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    auth: Auth,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(&'static str, Value)>,
}

fn op(method: &'static str, path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    Op {
        method,
        path,
        tag,
        summary,
        auth: Auth::None,
        params: vec![],
        body: None,
        responses: vec![],
    }
}

impl Op {
    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    fn query(mut self, name: &str, schema: Value, required: bool, description: &str) -> Self {
        self.params
            .push(json!({"name": name, "in": "query", "required": required,
                                "description": description, "schema": schema}));
        self
    }

    fn path_param(mut self, name: &str, description: &str) -> Self {
        self.params
            .push(json!({"name": name, "in": "path", "required": true,
                                "description": description, "schema": {"type": "string"}}));
        self
    }

    fn json_body(mut self, schema: Value) -> Self {
        self.body =
            Some(json!({"required": true, "content": {"application/json": {"schema": schema}}}));
        self
    }

    fn body(mut self, content: Value) -> Self {
        self.body = Some(json!({"required": true, "content": content}));
        self
    }

    /// A JSON answer.
    fn ok(mut self, status: &'static str, description: &str, schema: Value) -> Self {
        self.responses.push((
            status,
            json!({"description": description, "content": {"application/json": {"schema": schema}}}),
        ));
        self
    }

    /// An answer of another type, or none (`content` null).
    fn ok_as(mut self, status: &'static str, description: &str, content: Value) -> Self {
        let mut r = json!({ "description": description });
        if !content.is_null() {
            r["content"] = content;
        }
        self.responses.push((status, r));
        self
    }

    /// The error answers, in footfall's envelope (or Google's, for the GA4 Data API).
    fn errors(mut self, statuses: &[&'static str], schema: &str) -> Self {
        for s in statuses {
            let description = match *s {
                "4XX" => "refused: the request is invalid, unauthorised, or names nothing",
                "500" => {
                    "the write's outcome is unknown (`outcome_unknown`): retry only if idempotent"
                }
                "503" => "temporarily unavailable, nothing was done: retry after `Retry-After`",
                _ => "an error",
            };
            self.responses.push((
                s,
                json!({"description": description, "content": {"application/json": {
                    "schema": {"$ref": format!("#/components/schemas/{schema}")}}}}),
            ));
        }
        self
    }

    fn json(&self) -> Value {
        let mut o = json!({
            "tags": [self.tag],
            "summary": self.summary,
            "operationId": format!("{} {}", self.method, self.path),
            "responses": Map::from_iter(self.responses.iter().map(|(s, r)| ((*s).to_owned(), r.clone()))),
        });
        if !self.params.is_empty() {
            o["parameters"] = json!(self.params);
        }
        if let Some(b) = &self.body {
            o["requestBody"] = b.clone();
        }
        match self.auth {
            Auth::None => o["security"] = json!([]),
            Auth::Read => o["security"] = json!([{"readKey": []}]),
            Auth::Admin => o["security"] = json!([{"adminToken": []}]),
        }
        o
    }
}

fn string() -> Value {
    json!({"type": "string"})
}

fn refs(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

const REST: &str = "Error";
const GOOGLE: &str = "GoogleError";
const ERRORS: &[&str] = &["4XX", "503"];

fn site_id(o: Op) -> Op {
    o.query("site_id", string(), true, "the property's domain")
}

/// The v1 Stats API's common parameters.
fn v1(o: Op) -> Op {
    let text = |o: Op, name: &str, d: &str| o.query(name, string(), false, d);
    let o = site_id(o);
    let o = text(
        o,
        "period",
        "day, 7d, 30d, month, 6mo, 12mo, year, all, custom, realtime",
    );
    let o = text(
        o,
        "date",
        "YYYY-MM-DD, or with period=custom: YYYY-MM-DD,YYYY-MM-DD",
    );
    let o = text(o, "metrics", "comma-separated metrics");
    let o = text(o, "filters", "event:page==/blog/**;visit:country==DE");
    let o = text(o, "property", "the breakdown's dimension");
    let o = text(o, "interval", "date, month or hour");
    let o = o.query(
        "limit",
        json!({"type": "integer", "minimum": 0}),
        false,
        "rows per page",
    );
    let o = o.query(
        "page",
        json!({"type": "integer", "minimum": 0}),
        false,
        "the page",
    );
    let o = text(o, "compare", "previous_period");
    o.query(
        "with_imported",
        json!({"type": "boolean"}),
        false,
        "add imported history",
    )
}

/// Every operation.
fn operations() -> Vec<Op> {
    let id = |o: Op| o.path_param("id", "the property id");
    let ga4 = |method: &'static str,
               path: &'static str,
               summary: &'static str,
               body: Value,
               answer: Value| {
        op(method, path, "GA4 Data API", summary)
            .auth(Auth::Read)
            .path_param("id", "the footfall property id")
            .json_body(body)
            .ok("200", "the report", answer)
            .errors(ERRORS, GOOGLE)
    };
    let events = json!({"type": "array", "items": refs("RecordedEvent")});
    vec![
        // Collection.
        op("POST", "/api/event", "Collection", "Plausible Events API: one hit (JSON, sent as application/json or text/plain)")
            .body(json!({"application/json": {"schema": refs("PlausibleEvent")},
                         "text/plain": {"schema": string()}}))
            .ok_as("202", "the hit is durably in the log", json!({"text/plain": {"schema": {"const": "ok"}}}))
            .errors(&["4XX", "500", "503"], REST),
        op("POST", "/api/send", "Collection", "Umami: one event or identify call")
            .json_body(refs("UmamiSend"))
            .ok("200", "the hit is durably in the log (or, for a bot, left out)", object(&["cache"], json!({"cache": string()})))
            .errors(&["4XX", "500", "503"], REST),
        op("GET", "/g/collect", "Collection", "gtag.js: hits in the query string")
            .query("tid", string(), true, "the property's measurement id (G-…)")
            .query("en", string(), false, "the event name")
            .query("dl", string(), false, "the page URL")
            .ok_as("204", "the hits are durably in the log", Value::Null)
            .errors(&["4XX", "500", "503"], REST),
        op("POST", "/g/collect", "Collection", "gtag.js: a batch of hits, one per line of the body")
            .query("tid", string(), true, "the property's measurement id (G-…)")
            .body(json!({"text/plain": {"schema": string()}}))
            .ok_as("204", "the hits are durably in the log", Value::Null)
            .errors(&["4XX", "500", "503"], REST),
        op("POST", "/mp/collect", "Collection", "GA4 Measurement Protocol: up to 25 events (invalid ones are dropped, as GA4 does)")
            .query("measurement_id", string(), true, "the property's measurement id")
            .query("api_secret", string(), true, "the property's API secret")
            .json_body(refs("MeasurementProtocol"))
            .ok_as("204", "the valid events are durably in the log", Value::Null)
            .errors(&["4XX", "500", "503"], REST),
        op("POST", "/debug/mp/collect", "Collection", "GA4 Measurement Protocol validation: records nothing")
            .query("measurement_id", string(), true, "the property's measurement id")
            .query("api_secret", string(), true, "the property's API secret")
            .json_body(refs("MeasurementProtocol"))
            .ok("200", "what would be dropped, and why", object(&["validationMessages"], json!({
                "validationMessages": {"type": "array", "items": object(&["fieldPath", "description", "validationCode"], json!({
                    "fieldPath": string(), "description": string(), "validationCode": string()}))}})))
            .errors(ERRORS, REST),
        op("GET", "/js/footfall.js", "Collection", "the tracker script")
            .ok_as("200", "JavaScript", json!({"application/javascript": {"schema": string()}})),
        // Plausible Stats API.
        op("POST", "/api/v2/query", "Stats API", "Plausible Stats API v2 query")
            .auth(Auth::Read)
            .json_body(refs("V2Query"))
            .ok("200", "rows, metadata and the query as understood", refs("V2Answer"))
            .errors(ERRORS, REST),
        site_id(op("GET", "/api/v2/prop-keys", "Stats API", "custom property keys of a range, most used first"))
            .auth(Auth::Read)
            .query("date_range", string(), false, "a period name or from,to (default 30d)")
            .ok("200", "at most 100 keys", object(&["prop_keys"], json!({"prop_keys": {"type": "array", "items": string()}})))
            .errors(ERRORS, REST),
        op("POST", "/api/v2/funnel", "Stats API", "a funnel's visitors per step")
            .auth(Auth::Read)
            .json_body(object(&["site_id", "funnel"], json!({"site_id": string(),
                "funnel": {"oneOf": [string(), object(&["steps"], json!({"steps": {"type": "array", "items": refs("Goal")}}))]},
                "date_range": {}, "filters": {"type": "array"}})))
            .ok("200", "each step's visitors, conversion rates and drop-off", object(&["funnel", "steps", "query"], json!({
                "funnel": string(), "steps": {"type": "array", "items": {"type": "object"}}, "query": {"type": "object"}})))
            .errors(ERRORS, REST),
        site_id(op("GET", "/api/v2/funnels", "Stats API", "the property's funnels"))
            .auth(Auth::Read)
            .ok("200", "the funnels", object(&["funnels"], json!({"funnels": {"type": "array", "items": refs("Funnel")}})))
            .errors(ERRORS, REST),
        site_id(op("GET", "/api/v1/stats/realtime/visitors", "Stats API", "visitors in the last 5 minutes"))
            .auth(Auth::Read)
            .ok("200", "a count", json!({"type": "integer", "minimum": 0}))
            .errors(ERRORS, REST),
        v1(op("GET", "/api/v1/stats/aggregate", "Stats API", "Plausible v1: totals"))
            .auth(Auth::Read)
            .ok("200", "each metric's value", object(&["results"], json!({"results": {"type": "object"}})))
            .errors(ERRORS, REST),
        v1(op("GET", "/api/v1/stats/timeseries", "Stats API", "Plausible v1: a time series"))
            .auth(Auth::Read)
            .ok("200", "one row per bucket", object(&["results"], json!({"results": {"type": "array", "items": {"type": "object"}}})))
            .errors(ERRORS, REST),
        v1(op("GET", "/api/v1/stats/breakdown", "Stats API", "Plausible v1: a breakdown"))
            .auth(Auth::Read)
            .ok("200", "one row per value", object(&["results"], json!({"results": {"type": "array", "items": {"type": "object"}}})))
            .errors(ERRORS, REST),
        v1(op("GET", "/api/v1/stats/bots", "Stats API", "hits from bots, by bot (left out of every report)"))
            .auth(Auth::Read)
            .ok("200", "hits per bot", object(&["results", "total_hits"], json!({
                "results": {"type": "array", "items": object(&["bot", "hits"], json!({"bot": string(), "hits": {"type": "integer"}}))},
                "total_hits": {"type": "integer"}})))
            .errors(ERRORS, REST),
        site_id(op("GET", "/api/v1/export", "Stats API", "Plausible's CSV export: a zip of ten tables"))
            .auth(Auth::Read)
            .query("period", string(), false, "all (default), a period name, or custom")
            .query("date", string(), false, "with period=custom: YYYY-MM-DD,YYYY-MM-DD")
            .ok_as("200", "the zip", json!({"application/zip": {"schema": {"type": "string", "contentEncoding": "binary"}}}))
            .errors(ERRORS, REST),
        // GA4 Data API.
        ga4("POST", "/v1beta/properties/{id}:runReport", "GA4 runReport", refs("RunReportRequest"), refs("RunReportResponse")),
        ga4("POST", "/v1beta/properties/{id}:batchRunReports", "GA4 batchRunReports (1 to 5 reports)",
            object(&["requests"], json!({"requests": {"type": "array", "minItems": 1, "maxItems": 5, "items": refs("RunReportRequest")}})),
            object(&["reports", "kind"], json!({"reports": {"type": "array", "items": refs("RunReportResponse")}, "kind": string()}))),
        ga4("POST", "/v1beta/properties/{id}:runRealtimeReport", "GA4 runRealtimeReport (the last 30 minutes by default)",
            refs("RunReportRequest"), refs("RunReportResponse")),
        op("GET", "/v1beta/properties/{id}/metadata", "GA4 Data API", "GA4 getMetadata: every dimension and metric footfall answers")
            .auth(Auth::Read)
            .path_param("id", "the footfall property id")
            .ok("200", "the names", object(&["name", "dimensions", "metrics"], json!({"name": string(),
                "dimensions": {"type": "array", "items": object(&["apiName", "uiName", "description", "category"], json!({}))},
                "metrics": {"type": "array", "items": object(&["apiName", "uiName", "description", "type", "category"], json!({}))}})))
            .errors(ERRORS, GOOGLE),
        // GraphQL.
        op("POST", "/api/graphql", "GraphQL", "a GraphQL request (see the schema in GraphiQL, GET /api/graphql)")
            .auth(Auth::Read)
            .json_body(object(&["query"], json!({"query": string(), "variables": {"type": ["object", "null"]},
                "operationName": {"type": ["string", "null"]}})))
            .ok("200", "data, with errors if some fields failed", object(&["data"], json!({"data": {}, "errors": {"type": "array"}})))
            .ok("4XX", "no data: errors[].extensions.code says why (or, for a body that is no GraphQL request, footfall's error)", json!({"type": "object"}))
            .ok("503", "no data: the read models are unavailable", json!({"type": "object"})),
        op("GET", "/api/graphql", "GraphQL", "GraphiQL, served from the binary")
            .ok_as("200", "an HTML page", json!({"text/html": {"schema": string()}})),
        // Admin.
        op("POST", "/api/admin/properties", "Admin", "register a property")
            .auth(Auth::Admin)
            .json_body(object(&["domain"], json!({"domain": string(), "timezone": string(), "name": string(),
                "session_timeout_minutes": {"type": "integer", "minimum": 1, "maximum": 1440}})))
            .ok("201", "the property, with its credentials", refs("Property"))
            .errors(ERRORS, REST),
        op("GET", "/api/admin/properties", "Admin", "properties by domain, a page at a time")
            .auth(Auth::Admin)
            .query("after", string(), false, "the last domain of the previous page")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), false, "default 100")
            .ok("200", "a page", object(&["properties", "next_after"], json!({
                "properties": {"type": "array", "items": refs("Property")}, "next_after": {"type": ["string", "null"]}})))
            .errors(ERRORS, REST),
        id(op("GET", "/api/admin/properties/{id}", "Admin", "a property"))
            .auth(Auth::Admin)
            .ok("200", "the property", refs("Property"))
            .errors(ERRORS, REST),
        id(op("PUT", "/api/admin/properties/{id}/funnels", "Admin", "set the property's funnels"))
            .auth(Auth::Admin)
            .json_body(object(&["funnels"], json!({"funnels": {"type": "array", "items": refs("Funnel")}})))
            .ok("200", "the funnels", object(&["funnels"], json!({"funnels": {"type": "array", "items": refs("Funnel")}})))
            .errors(ERRORS, REST),
        id(op("PUT", "/api/admin/properties/{id}/hostnames", "Admin", "hostnames besides the domain that may send browser hits"))
            .auth(Auth::Admin)
            .json_body(object(&["hostnames"], json!({"hostnames": {"type": "array", "items": string()}})))
            .ok("200", "the property", refs("Property"))
            .errors(ERRORS, REST),
        id(op("PUT", "/api/admin/properties/{id}/goals", "Admin", "set the property's goals"))
            .auth(Auth::Admin)
            .json_body(object(&["goals"], json!({"goals": {"type": "array", "items": refs("Goal")}})))
            .ok("200", "the property", refs("Property"))
            .errors(ERRORS, REST),
        id(op("POST", "/api/admin/properties/{id}/shared-links", "Admin", "create a shared link to the dashboard"))
            .auth(Auth::Admin)
            .json_body(json!({"type": "object", "properties": {"name": string()}}))
            .ok("201", "the link", refs("SharedLink"))
            .errors(ERRORS, REST),
        id(op("GET", "/api/admin/properties/{id}/shared-links", "Admin", "the property's live shared links"))
            .auth(Auth::Admin)
            .ok("200", "the links", object(&["shared_links"], json!({"shared_links": {"type": "array", "items": {"type": "object"}}})))
            .errors(ERRORS, REST),
        id(op("DELETE", "/api/admin/properties/{id}/shared-links/{link_id}", "Admin", "revoke a shared link"))
            .auth(Auth::Admin)
            .path_param("link_id", "the link's id")
            .ok_as("204", "revoked", Value::Null)
            .errors(ERRORS, REST),
        id(op("POST", "/api/admin/properties/{id}/imports", "Admin", "import history: an access log or Plausible's CSV export"))
            .auth(Auth::Admin)
            .query("format", string(), false, "combined, common, json or plausible-csv")
            .query("source", string(), false, "a name for the import")
            .body(json!({"application/octet-stream": {"schema": {"type": "string", "contentEncoding": "binary"}},
                         "text/plain": {"schema": string()}}))
            .ok("202", "the import runs in the background", object(&["id", "state", "status_url"], json!({
                "id": string(), "state": string(), "status_url": string()})))
            .errors(ERRORS, REST),
        id(op("GET", "/api/admin/properties/{id}/imports", "Admin", "the property's imports, newest first"))
            .auth(Auth::Admin)
            .ok("200", "the imports", object(&["imports"], json!({"imports": {"type": "array", "items": {"type": "object"}}})))
            .errors(ERRORS, REST),
        id(op("GET", "/api/admin/properties/{id}/imports/{import}", "Admin", "an import's progress"))
            .auth(Auth::Admin)
            .path_param("import", "the import's id")
            .ok("200", "its state and counts", object(&["state"], json!({"state": string()})))
            .errors(ERRORS, REST),
        id(op("DELETE", "/api/admin/properties/{id}/imports/{import}", "Admin", "delete an import's data"))
            .auth(Auth::Admin)
            .path_param("import", "the import's id")
            .ok("200", "deleted", object(&["id", "state"], json!({"id": string(), "state": string()})))
            .errors(ERRORS, REST),
        op("GET", "/api/admin/streams/{stream}", "Admin", "read a stream of the event log")
            .auth(Auth::Admin)
            .path_param("stream", "the stream's name")
            .query("from", json!({"type": "integer", "minimum": 0}), false, "the first revision")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), false, "default 100")
            .ok("200", "its events", object(&["stream", "events", "next_from"], json!({"stream": string(), "events": events,
                "next_from": {"type": ["integer", "null"]}})))
            .errors(ERRORS, REST),
        op("GET", "/api/admin/log", "Admin", "the log's head and its latest events")
            .auth(Auth::Admin)
            .ok("200", "the head", object(&["head", "events"], json!({"head": {"type": "integer"},
                "events": {"type": "integer", "description": "events in the log"}})))
            .errors(ERRORS, REST),
        op("GET", "/api/admin/projections", "Admin", "each projection's generations, checkpoints and lag")
            .auth(Auth::Admin)
            .ok("200", "the projections", object(&["projections"], json!({"projections": {"type": "array", "items": {"type": "object"}}})))
            .errors(ERRORS, REST),
        op("GET", "/api/admin/projections/{name}/parked", "Admin", "events a projection set aside")
            .auth(Auth::Admin)
            .path_param("name", "the projection")
            .query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), false, "default 100")
            .ok("200", "the parked events", object(&["projection", "parked"], json!({"projection": string(),
                "parked": {"type": "array", "items": {"type": "object"}}})))
            .errors(ERRORS, REST),
        op("POST", "/api/admin/projections/{name}/parked/replay", "Admin", "retry the parked events")
            .auth(Auth::Admin)
            .path_param("name", "the projection")
            .ok("202", "requested", object(&["projection", "requested"], json!({"projection": string(), "requested": {"type": "integer"}})))
            .errors(ERRORS, REST),
        op("POST", "/api/admin/projections/{name}/rebuild", "Admin", "rebuild a projection from the log (blue/green)")
            .auth(Auth::Admin)
            .path_param("name", "the projection")
            .ok("202", "a new generation is rebuilding", object(&["projection", "generation", "state"], json!({
                "projection": string(), "generation": {"type": "integer"}, "state": string()})))
            .errors(ERRORS, REST),
        // Health.
        op("GET", "/healthz", "Health", "the process serves")
            .ok("200", "ok", object(&["status"], json!({"status": {"const": "ok"}}))),
        op("GET", "/readyz", "Health", "the process can reach its database")
            .ok("200", "ready", object(&["status"], json!({"status": {"const": "ready"}})))
            .errors(&["503"], REST),
        op("GET", "/metrics", "Health", "Prometheus metrics")
            .ok_as("200", "the metrics", json!({"text/plain": {"schema": string()}})),
        op("GET", "/api/openapi.json", "Health", "this document")
            .ok("200", "OpenAPI 3.1", json!({"type": "object"})),
    ]
}

fn components() -> Value {
    let goal = json!({"type": "object", "properties": {"event": string(), "page": string()}});
    let google_error = object(
        &["error"],
        json!({"error": object(&["code", "message", "status"], json!({
        "code": {"type": "integer"}, "message": string(), "status": string()}))}),
    );
    let value_list =
        json!({"type": "array", "items": object(&["value"], json!({"value": string()}))});
    let row = object(
        &["dimensionValues", "metricValues"],
        json!({"dimensionValues": value_list, "metricValues": value_list}),
    );
    let rows = json!({"type": "array", "items": row});
    let named = json!({"type": "array", "items": object(&["name"], json!({"name": string()}))});
    json!({
        "securitySchemes": {
            "readKey": {"type": "http", "scheme": "bearer",
                "description": "the property's read key, one of its shared links' tokens, or the admin token"},
            "adminToken": {"type": "http", "scheme": "bearer", "description": "FOOTFALL_ADMIN_TOKEN"},
        },
        "schemas": {
            "Error": object(&["error"], json!({"error": object(&["code", "message"], json!({
                "code": {"type": "string", "description": "stable: invalid_query, unauthorized, unavailable, …"},
                "message": string()}))})),
            "GoogleError": google_error,
            "Goal": goal,
            "Funnel": object(&["name", "steps"], json!({"name": string(), "steps": {"type": "array", "items": refs("Goal")}})),
            "Property": object(&["id", "domain", "timezone", "name", "measurement_id", "api_secret", "read_key",
                                 "registered_at", "hostnames", "goals"], json!({
                "id": {"type": "string", "format": "uuid"}, "domain": string(), "timezone": string(), "name": string(),
                "measurement_id": string(), "api_secret": string(), "read_key": string(),
                "registered_at": {"type": "string", "format": "date-time"},
                "hostnames": {"type": "array", "items": string()}, "goals": {"type": "array", "items": refs("Goal")}})),
            "SharedLink": object(&["id", "name", "token", "url", "created_at"], json!({"id": string(), "name": string(),
                "token": string(), "url": string(), "created_at": string()})),
            "RecordedEvent": {"type": "object"},
            "PlausibleEvent": object(&["name", "url", "domain"], json!({"name": string(), "url": string(), "domain": string(),
                "referrer": {"type": ["string", "null"]}, "props": {"type": "object"}, "revenue": {"type": "object"},
                "interactive": {"type": "boolean"}})),
            "UmamiSend": object(&["type", "payload"], json!({"type": {"enum": ["event", "identify"]},
                "payload": object(&["website"], json!({"website": string(), "hostname": string(), "url": string(),
                    "referrer": string(), "title": string(), "language": string(), "screen": string(), "name": string(),
                    "data": {"type": "object"}}))})),
            "MeasurementProtocol": object(&["client_id", "events"], json!({"client_id": string(), "user_id": string(),
                "timestamp_micros": {"type": ["integer", "string"]}, "user_properties": {"type": "object"},
                "events": {"type": "array", "maxItems": 25, "items": object(&["name"], json!({"name": string(), "params": {"type": "object"}}))}})),
            "V2Query": object(&["site_id", "metrics", "date_range"], json!({"site_id": string(),
                "metrics": {"type": "array", "items": string()},
                "date_range": {"oneOf": [string(), {"type": "array", "items": string(), "minItems": 2, "maxItems": 2}]},
                "dimensions": {"type": "array", "items": string()}, "filters": {"type": "array"},
                "order_by": {"type": "array", "items": {"type": "array", "items": string()}},
                "pagination": {"type": "object", "properties": {"limit": {"type": "integer"}, "offset": {"type": "integer"}}},
                "include": {"type": "object"}})),
            "V2Answer": object(&["results", "meta", "query"], json!({
                "results": {"type": "array", "items": object(&["dimensions", "metrics"], json!({
                    "dimensions": {"type": "array"}, "metrics": {"type": "array"}, "comparison": {"type": "object"}}))},
                "meta": {"type": "object"}, "query": {"type": "object"}})),
            "RunReportRequest": json!({"type": "object", "properties": {
                "property": string(), "dimensions": named, "metrics": named,
                "dateRanges": {"type": "array", "items": object(&["startDate", "endDate"], json!({
                    "startDate": string(), "endDate": string(), "name": string()}))},
                "minuteRanges": {"type": "array", "items": {"type": "object"}},
                "dimensionFilter": {"type": "object"}, "metricFilter": {"type": "object"},
                "orderBys": {"type": "array", "items": {"type": "object"}},
                "limit": {"type": ["string", "integer"]}, "offset": {"type": ["string", "integer"]},
                "metricAggregations": {"type": "array", "items": {"type": ["string", "integer"]}},
                "keepEmptyRows": {"type": "boolean"}}}),
            "RunReportResponse": object(&["dimensionHeaders", "metricHeaders", "rowCount", "kind"], json!({
                "dimensionHeaders": named,
                "metricHeaders": {"type": "array", "items": object(&["name", "type"], json!({"name": string(), "type": string()}))},
                "rows": rows, "totals": rows, "maximums": rows, "minimums": rows,
                "rowCount": {"type": "string", "pattern": "^[0-9]+$"},
                "metadata": object(&["currencyCode", "timeZone"], json!({"currencyCode": string(), "timeZone": string()})),
                "kind": string()})),
        },
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in operations() {
        let entry = paths.entry(o.path).or_insert_with(|| json!({}));
        entry[o.method.to_lowercase()] = o.json();
        let path_params: Vec<&Value> = o.params.iter().filter(|p| p["in"] == "path").collect();
        debug_assert!(path_params.iter().all(|p| o
            .path
            .contains(&format!("{{{}}}", p["name"].as_str().unwrap_or_default()))));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "footfall",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Collection (Plausible, Umami, gtag.js, the GA4 Measurement Protocol), \
                the Plausible Stats API v1 and v2, the GA4 Data API v1beta, GraphQL, the admin API \
                and health. A 2xx on collection means every hit of the request is durably in the \
                log, a 503 that none is.",
        },
        "paths": paths,
        "components": components(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `"/…"` path passed to `.route(`, `web::resource(` or `web::scope(` in a source file,
    /// with the scope's prefix; `{name}` and `{name:regex}` written `{}`.
    fn routed(source: &str, prefix: &str) -> Vec<String> {
        let mut found = vec![];
        let mut rest = source;
        while let Some(i) = rest.find('"') {
            rest = &rest[i + 1..];
            let Some(end) = rest.find('"') else { break };
            let literal = &rest[..end];
            let before = &source[..source.len() - rest.len() - 1];
            let call = before.trim_end().trim_end_matches('(').trim_end();
            if literal.starts_with('/')
                && (call.ends_with(".route") || call.ends_with("web::resource"))
            {
                found.push(normalise(&format!("{prefix}{literal}")));
            }
            rest = &rest[end + 1..];
        }
        found
    }

    fn normalise(path: &str) -> String {
        let mut out = String::new();
        let mut depth = 0;
        for c in path.chars() {
            match c {
                '{' => {
                    depth += 1;
                    if depth == 1 {
                        out.push_str("{}");
                    }
                }
                '}' => depth -= 1,
                _ if depth > 0 => {}
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn every_route_is_described_and_nothing_else() {
        let sources = [
            (include_str!("collect/mod.rs"), ""),
            (include_str!("query/mod.rs"), ""),
            (include_str!("query/ga4/mod.rs"), ""),
            (include_str!("graphql/mod.rs"), ""),
            (include_str!("admin/mod.rs"), "/api/admin"),
            (include_str!("health.rs"), ""),
            (include_str!("openapi.rs"), ""),
        ];
        let routes: std::collections::BTreeSet<String> = sources
            .iter()
            .flat_map(|(s, prefix)| routed(s.split("#[cfg(test)]").next().unwrap(), prefix))
            // Pages' files are not the API.
            .filter(|r| !r.contains("/assets/"))
            .collect();
        let documented: std::collections::BTreeSet<String> = operations()
            .iter()
            .map(|o| {
                let p = normalise(o.path);
                // GA4's methods share one route: `{id}:method`.
                match p.split_once("{}:") {
                    Some((head, _)) => format!("{head}{{}}"),
                    None => p,
                }
            })
            .collect();
        assert_eq!(routes, documented);
        assert!(routes.len() > 30, "{routes:?}");
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "{name}");
        }
    }
}
