//! The one error type of the control plane, with stable codes.
//!
//! Owns: [`Error`] and [`ErrorCode`], whose strings and HTTP statuses are the
//! design's error table (`invalid_request` 400 … `internal` 500), so the HTTP
//! layer maps them 1:1.
//! Does not own: the HTTP response shape (`control-api`).

use std::time::Duration;

/// Why a bearer credential was not accepted (all answer `unauthorized`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthenticated {
    /// Neither a session nor an API token of this platform.
    Malformed,
    /// Well formed, but no such session or token exists.
    Unknown,
    /// An API token that was revoked.
    Revoked,
    /// A session or API token past its expiry.
    Expired,
}

impl Unauthenticated {
    fn message(self) -> &'static str {
        match self {
            Unauthenticated::Malformed => {
                "the credential is not an Orrery session or API token; create a token with `orrery token create`"
            }
            Unauthenticated::Unknown => "unknown session or API token",
            Unauthenticated::Revoked => "the API token was revoked",
            Unauthenticated::Expired => "the session or API token has expired",
        }
    }
}

/// Every failure of a control-plane operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed or breaks a rule (email, token name, limits).
    #[error("{0}")]
    InvalidRequest(String),
    /// A database name that is not a DNS label.
    #[error("invalid database name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// A new password that breaks the password rule.
    #[error("weak password: {0}")]
    WeakPassword(&'static str),
    /// Wrong email or password: one answer, whichever it was.
    #[error("invalid_credentials: wrong email or password")]
    InvalidCredentials,
    /// A bearer credential that is not accepted.
    #[error("{}", .0.message())]
    Unauthorized(Unauthenticated),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{what} {name:?} not found")]
    NotFound { what: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; try again after `retry_after`.
    #[error("too many attempts; retry after {} s", .retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    /// The store failed or a stored value is corrupt; the request failed, the
    /// process lives.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The stable error codes of the control-plane API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    RateLimited,
    Internal,
}

impl ErrorCode {
    /// The code's string, as in `{"error": {"code": …}}`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
        }
    }
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidRequest(_) | Error::InvalidName { .. } | Error::WeakPassword(_) => {
                ErrorCode::InvalidRequest
            }
            Error::InvalidCredentials | Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Error {
        Error::Forbidden(message.into())
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidRequest(message.into())
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Internal(format!("metadata store: {error}"))
    }
}

/// Adds what was being done to a store error.
pub(crate) trait StoreContext<T> {
    fn context(self, doing: &str) -> Result<T, Error>;
}

impl<T> StoreContext<T> for Result<T, sqlx::Error> {
    fn context(self, doing: &str) -> Result<T, Error> {
        self.map_err(|error| Error::Internal(format!("{doing}: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Protects the 1:1 mapping to the design's error table.
    #[test]
    fn codes_and_statuses_are_the_designs() {
        let table = [
            (Error::invalid("x"), "invalid_request", 400),
            (
                Error::InvalidName {
                    name: "A".into(),
                    reason: "r",
                },
                "invalid_request",
                400,
            ),
            (Error::WeakPassword("w"), "invalid_request", 400),
            (Error::InvalidCredentials, "unauthorized", 401),
            (
                Error::Unauthorized(Unauthenticated::Revoked),
                "unauthorized",
                401,
            ),
            (Error::forbidden("f"), "forbidden", 403),
            (
                Error::NotFound {
                    what: "database",
                    name: "n".into(),
                },
                "not_found",
                404,
            ),
            (Error::Conflict("c".into()), "conflict", 409),
            (
                Error::RateLimited {
                    retry_after: Duration::from_secs(3),
                },
                "rate_limited",
                429,
            ),
            (Error::Internal("i".into()), "internal", 500),
        ];
        for (error, code, status) in table {
            assert_eq!(error.code().as_str(), code, "{error}");
            assert_eq!(error.code().http_status(), status, "{error}");
        }
    }
}
