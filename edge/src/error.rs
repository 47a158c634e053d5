//! The one error reply of the HTTP edge: a status, a stable machine-readable
//! code and a message for people.
//!
//! Owns: [`ApiError`] and [`ErrorCode`] (the code → status table), how an
//! error becomes a reply (plain-text body, as the stock CLI prints bodies as
//! they are, plus the code in the `x-orrery-error` header), and [`log_errors`],
//! the middleware that logs every 5xx reply with the request it answered.
//! Does not own: which error a route returns (the routes decide), nor the
//! WebSocket close codes (`crate::ws`).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The header that carries an error reply's [`ErrorCode`].
pub const ERROR_CODE_HEADER: HeaderName = HeaderName::from_static("x-orrery-error");

/// What went wrong, as clients and scripts may match on it. The strings of
/// [`ErrorCode::as_str`] are stable: renaming one breaks callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or names something invalid (400).
    InvalidRequest,
    /// Arguments do not decode at the function's parameter types (400).
    InvalidArguments,
    /// No credentials, or credentials that are not valid (401).
    Unauthorized,
    /// The caller may not do this (403).
    Forbidden,
    /// No such database, function or resource (404).
    NotFound,
    /// The name is taken by another account (409).
    Conflict,
    /// The request body is larger than the route accepts (413).
    PayloadTooLarge,
    /// The body's content type is not one the route reads (415).
    UnsupportedMediaType,
    /// The call ran out of its fuel budget (402).
    OutOfEnergy,
    /// The module's code failed: an error returned, a panic or a trap (530).
    ModuleFailed,
    /// The call ran past its deadline (530).
    CallTimeout,
    /// The database cannot take the request now: overloaded, shutting down,
    /// or not serving (503).
    Unavailable,
    /// A fault of the server itself (500).
    Internal,
}

impl ErrorCode {
    /// The stable name of the code, sent in [`ERROR_CODE_HEADER`].
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidArguments => "invalid_arguments",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::OutOfEnergy => "out_of_energy",
            ErrorCode::ModuleFailed => "module_failed",
            ErrorCode::CallTimeout => "call_timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status of a reply with this code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::InvalidArguments => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::OutOfEnergy => StatusCode::PAYMENT_REQUIRED,
            // 530: the status the stock CLI and SDKs read as "the module
            // failed" (client-protocol §2.3.9).
            ErrorCode::ModuleFailed | ErrorCode::CallTimeout => {
                StatusCode::from_u16(530).expect("530 is a valid status")
            }
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error reply: its code (and so its status) and its message.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), self.message.clone()).into_response();
        response.headers_mut().insert(
            ERROR_CODE_HEADER,
            HeaderValue::from_static(self.code.as_str()),
        );
        // For `log_errors`, which sees the reply but not the handler.
        response.extensions_mut().insert(self);
        response
    }
}

/// The error reply `code` with `message`: what every route returns on failure.
pub fn fail(code: ErrorCode, message: impl Into<String>) -> Response {
    ApiError::new(code, message).into_response()
}

/// Logs every 5xx reply with its request (method and path, never the query,
/// which may hold a token) and the error's code and message: a server fault
/// (500) as an error, an unavailable database (503) as a warning, and a
/// module's own failure (530), which is the module owner's business and is
/// in the module's log already, at debug.
pub async fn log_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !status.is_server_error() {
        return response;
    }
    let (code, message) = match response.extensions().get::<ApiError>() {
        Some(error) => (error.code.as_str(), error.message.as_str()),
        None => ("unclassified", "a reply without an ApiError"),
    };
    match status.as_u16() {
        530 => {
            tracing::debug!(%method, path, status = status.as_u16(), code, message, "module failure")
        }
        503 => {
            tracing::warn!(%method, path, status = status.as_u16(), code, message, "request refused")
        }
        _ => {
            tracing::error!(%method, path, status = status.as_u16(), code, message, "request failed")
        }
    }
    response
}

#[cfg(test)]
mod tests {
    //! The code table: stable names and their statuses.

    use super::*;

    #[test]
    fn every_code_has_a_distinct_name_and_an_error_status() {
        let all = [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidArguments,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::OutOfEnergy,
            ErrorCode::ModuleFailed,
            ErrorCode::CallTimeout,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ];
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
        for code in all {
            let status = code.status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code:?}"
            );
        }
        assert_eq!(ErrorCode::ModuleFailed.status().as_u16(), 530);
    }

    #[test]
    fn a_reply_carries_status_code_header_and_plain_message() {
        let response = fail(ErrorCode::PayloadTooLarge, "too big");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            response.headers().get(ERROR_CODE_HEADER).unwrap(),
            "payload_too_large"
        );
        assert_eq!(
            response.extensions().get::<ApiError>().unwrap().message,
            "too big"
        );
    }
}
