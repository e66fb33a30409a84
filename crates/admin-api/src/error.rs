//! The admin API's error answer: `{"error": "...", "field": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::control::ControlError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in a sentence.
    pub error: String,
    /// The input field at fault (dotted path), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A failed admin request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// Seconds for a `Retry-After` header (429 and busy 503 answers).
    retry_after: Option<i64>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: message.into(),
                field: None,
            },
            retry_after: None,
        }
    }

    /// 400 naming a field.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                error: message.into(),
                field: (!field.is_empty()).then_some(field),
            },
            retry_after: None,
        }
    }

    /// 401.
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 503 with `Retry-After`: the password pool is full.
    pub fn busy() -> Self {
        Self {
            retry_after: Some(crate::passwords::BUSY_RETRY_AFTER),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::passwords::PasswordError::Busy.to_string(),
            )
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Invalid(v) => Self::bad_field(v.field, v.message),
            ControlError::Conflict { field, message } => Self {
                status: StatusCode::CONFLICT,
                body: ErrorBody {
                    error: message,
                    field: Some(field.to_owned()),
                },
                retry_after: None,
            },
            ControlError::NotFound(m) => Self::not_found(m),
            ControlError::Store(m) => {
                tracing::error!(error = %m, "admin request failed on the database");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable; nothing was changed, try again",
                )
            }
        }
    }
}

impl From<crate::portal::PortalError> for ApiError {
    fn from(e: crate::portal::PortalError) -> Self {
        use crate::portal::PortalError as P;
        match e {
            P::Invalid(v) => Self::bad_field(v.field, v.message),
            P::Conflict { field, message } => Self {
                status: StatusCode::CONFLICT,
                body: ErrorBody {
                    error: message,
                    field: Some(field),
                },
                retry_after: None,
            },
            P::NotFound(m) => Self::not_found(m),
            P::Unauthorized(m) => Self::new(StatusCode::UNAUTHORIZED, m),
            P::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, m),
            P::Throttled {
                message,
                retry_after,
            } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
            },
            P::Busy => Self::busy(),
            P::Idp { status, message } => Self::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                message,
            ),
            P::Store(m) => {
                tracing::error!(error = %m, "portal request failed on the database");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable; nothing was changed, try again",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs.max(1)),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}
