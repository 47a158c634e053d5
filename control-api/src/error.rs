//! The one error shape of the API: `{"error":{"code","message"}}` with the
//! status of the code.
//!
//! Owns: [`ApiError`], the mapping of [`control_plane::Error`] codes to
//! statuses (1:1, through `ErrorCode::http_status`), `Retry-After` on
//! `rate_limited`, the API's own codes (`confirmation_required` 428,
//! `method_not_allowed` 405), and logging every 5xx.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use control_plane::{Error, ErrorCode};

use crate::schema::{ErrorBody, ErrorDetail};

/// The code of a deletion sent without `?confirm=NAME` (428).
pub const CONFIRMATION_REQUIRED: &str = "confirmation_required";

/// A failed request, as it is answered.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After` (`rate_limited` only).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest.as_str(),
            message,
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized.as_str(),
            message,
        )
    }

    /// 503 `unavailable`: a host could not do it now; nothing changed.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict.as_str(), message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal.as_str(),
            message,
        )
    }

    pub fn confirmation_required(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            CONFIRMATION_REQUIRED,
            format!(
                "deleting a database cannot be undone; repeat the request with ?confirm={name}"
            ),
        )
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        let code = error.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after_s = match &error {
            Error::RateLimited { retry_after } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
                    .map(|s| s.max(1))
            }
            _ => None,
        };
        ApiError {
            status,
            code: code.as_str(),
            message: error.to_string(),
            retry_after_s,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // 503: a host or store could not do it now and nothing changed
        // (a warning, as the edge logs it); any other 5xx is a failure.
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(
                code = self.code,
                status = self.status.as_u16(),
                "control-plane API: {}",
                self.message
            );
        } else if self.status.is_server_error() {
            tracing::error!(
                code = self.code,
                status = self.status.as_u16(),
                "control-plane API: {}",
                self.message
            );
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Answers a path the API does not have.
pub(crate) async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound.as_str(),
        "no such route; the API is described at /api/v1/openapi.json",
    )
}

/// Answers a method the path does not take.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take this method; see /api/v1/openapi.json",
    )
}
