//! The HTTP error type. Every error body is `{"error": {"code": "<stable_snake_case>", "message":
//! "..."}}`. A 5xx logs its cause and never sends internal details to the client.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::domain::DomainError;
use crate::eventlog::appender::AppendRejected;
use crate::eventlog::EventLogError;
use crate::services::{CollectError, RegisterError};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with a code naming the problem.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: missing or wrong credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 413: the body is over the endpoint's limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body must be at most {limit} bytes"),
        )
    }

    /// 499 (nginx's code): the client closed the connection before the answer; only logged.
    pub fn client_closed_request() -> Self {
        Self::new(
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            "client_closed_request",
            "the client closed the connection before the answer",
        )
    }

    /// 500 `outcome_unknown`: the write may or may not have happened (neither a 2xx nor a 503
    /// would be true); the cause is logged, not sent.
    pub fn outcome_unknown(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "write outcome unknown");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "outcome_unknown",
            "the write may or may not have been recorded; retrying is safe only where it is idempotent",
        )
    }

    /// 503 with `Retry-After`: try again later; the cause is logged, not sent.
    pub fn unavailable(
        code: &'static str,
        retry_after: u32,
        cause: &dyn std::fmt::Display,
    ) -> Self {
        tracing::warn!(code, cause = %cause, "request refused with 503");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            message: "temporarily unavailable, retry later".into(),
            retry_after: Some(retry_after),
        }
    }

    /// 500: a bug. The cause is logged, not sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(json!({"error": {"code": self.code, "message": self.message}}))
    }
}

impl From<CollectError> for ApiError {
    fn from(e: CollectError) -> Self {
        match &e {
            CollectError::Invalid(d) => Self::bad_request(d.code(), d.to_string()),
            CollectError::UnknownDomain(_)
            | CollectError::TooManyDomains(_)
            | CollectError::HostnameNotAllowed(_) => Self::bad_request(e.code(), e.to_string()),
            CollectError::NotAppended(AppendRejected::Overloaded) => {
                Self::unavailable(e.code(), 1, &e)
            }
            CollectError::NotAppended(AppendRejected::Unavailable) | CollectError::Database(_) => {
                Self::unavailable(e.code(), 5, &e)
            }
            CollectError::NotAppended(AppendRejected::Unknown) => Self::outcome_unknown(&e),
            CollectError::Encode(_) => Self::internal(&e),
        }
    }
}

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Invalid(
                d @ (DomainError::PropertyNotRegistered | DomainError::SharedLinkNotFound),
            ) => Self::not_found(d.code(), d.to_string()),
            RegisterError::Invalid(d) => Self::bad_request(d.code(), d.to_string()),
            RegisterError::Database(e) => e.into(),
            RegisterError::DomainTaken(_) => {
                Self::new(StatusCode::CONFLICT, "domain_taken", e.to_string())
            }
            RegisterError::Log(e) => e.into(),
            RegisterError::Encode(_) | RegisterError::Decode(_) => Self::internal(&e),
        }
    }
}

impl From<EventLogError> for ApiError {
    fn from(e: EventLogError) -> Self {
        match &e {
            EventLogError::WrongExpectedVersion { .. } => Self::new(
                StatusCode::CONFLICT,
                "wrong_expected_version",
                e.to_string(),
            ),
            EventLogError::InvalidStream(_) => Self::bad_request("invalid_stream", e.to_string()),
            EventLogError::Unavailable(_) => Self::unavailable("unavailable", 5, &e),
            EventLogError::OutcomeUnknown(_) => Self::outcome_unknown(&e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // 57014, query_canceled: the statement outlived `FOOTFALL_QUERY_TIMEOUT_MS`.
        let cancelled =
            matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("57014"));
        Self::unavailable(
            if cancelled {
                "query_timeout"
            } else {
                "unavailable"
            },
            5,
            &e,
        )
    }
}
