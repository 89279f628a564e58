//! The server's one error type and its one mapping to HTTP.
//!
//! Every error answers with the same envelope, sync-core's
//! [`ErrorEnvelope`]: `{"error": {"code": "...", "message": "..."}}`, where
//! `code` is one of [`ErrorCode`] (stable, machine-readable) and `message`
//! is for people. Internal errors are logged with their detail and answered
//! without it.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sea_orm::DbErr;
use serde_json::json;
use strum::VariantArray;
use sync_core::error::SyncError;
use sync_core::protocol::ErrorEnvelope;
use utoipa::openapi::{RefOr, Schema};

/// Seconds a client waits before retrying an upload the store refused.
pub const INSUFFICIENT_STORAGE_RETRY_AFTER: &str = "60";

/// Result alias for everything below the HTTP layer.
pub type AppResult<T> = Result<T, AppError>;

/// Every `code` an error answer can carry: the OpenAPI document lists
/// these, so a client can match on them exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    // 400: the request cannot be read.
    InvalidPath,
    InvalidQuery,
    MalformedJson,
    UnreadableBody,
    InvalidCursor,
    InvalidContentRange,
    UnsupportedFormat,
    UnsupportedGrantType,
    // 401: sign in (again).
    MissingToken,
    InvalidToken,
    TokenExpired,
    StaleToken,
    SessionEnded,
    InvalidCredentials,
    InvalidClient,
    AccountDisabled,
    UnknownDevice,
    DeviceInUse,
    DeviceReassigned,
    InvalidRefreshToken,
    RefreshTokenExpired,
    RefreshTokenReused,
    RefreshTokenRevoked,
    // Everything else, one code per status.
    ValidationFailed,
    Forbidden,
    DeviceRevoked,
    NotFound,
    MethodNotAllowed,
    Conflict,
    ServerRestored,
    BodyTimeout,
    PayloadTooLarge,
    UriTooLong,
    UnsupportedMediaType,
    UnsupportedProtocol,
    LoginThrottled,
    HeadersTooLarge,
    InternalError,
    InsufficientStorage,
    DatabaseUnavailable,
    Timeout,
    ServerBusy,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed (bad JSON, bad query string, bad path).
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    /// Well-formed, but a value is not acceptable.
    #[error("{0}")]
    Validation(String),
    /// No credentials, or credentials that do not hold.
    #[error("{message}")]
    Unauthorized { code: ErrorCode, message: String },
    /// Signed in, but this is outside the caller's role or scope.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// The cursor was made in a history of the database that a restore
    /// replaced: the phone sends back what the server lost, then starts a
    /// new cursor (docs/SYNC-PROTOCOL.md, "After a restore").
    #[error(
        "this server was restored from a backup since your last sync: send what it lacks (manifest), then push and pull again with the manifest's cursor"
    )]
    Restored,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The client speaks a protocol version this server no longer accepts.
    #[error("{0}")]
    UpgradeRequired(SyncError),
    /// Too many failed sign-ins: wait `retry_after_secs`.
    #[error("{message}")]
    Throttled {
        message: String,
        retry_after_secs: u64,
    },
    /// The device was reported lost or revoked: it must wipe its store.
    #[error("{0}")]
    DeviceRevoked(String),
    /// The database cannot be reached right now; the client should retry.
    #[error("the database is unavailable")]
    Unavailable(#[source] DbErr),
    #[error("the request took too long")]
    Timeout,
    /// The request body stopped arriving for longer than
    /// `body_read_timeout_secs`.
    #[error("the request body stopped arriving; send it again")]
    BodyTimeout,
    /// The attachment store is full or read-only; the bytes received so far
    /// are kept and the client should retry later. `detail` is logged only.
    #[error("attachment store {}: {detail}", if *.read_only { "read-only" } else { "full" })]
    InsufficientStorage { read_only: bool, detail: String },
    /// As many sync requests as the server takes at once are in flight.
    #[error("the server is busy")]
    Busy,
    /// The request line's target is longer than the server reads.
    #[error("the address is longer than {0} bytes; send filters in fewer or shorter parameters")]
    UriTooLong(usize),
    /// The request's headers together are larger than the server reads.
    #[error("the request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    #[error("database error")]
    Database(#[source] DbErr),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The OpenAPI schema of the one error body, sync-core's [`ErrorEnvelope`]
/// (written here because sync-core carries no web crates), with every
/// [`ErrorCode`] enumerated.
#[derive(Debug)]
pub struct ErrorBody;

impl utoipa::PartialSchema for ErrorBody {
    fn schema() -> RefOr<Schema> {
        let codes: Vec<&'static str> = ErrorCode::VARIANTS.iter().map(|c| c.as_str()).collect();
        let schema = json!({
            "type": "object",
            "description": "The body of every error answer.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {
                            "type": "string",
                            "enum": codes,
                            "description": "Stable, machine-readable; docs/SYNC-PROTOCOL.md lists what each means.",
                        },
                        "message": { "type": "string", "description": "A sentence for people." },
                        "details": {
                            "type": "object",
                            "description": "Structured detail where useful (`unsupported_protocol`: `got`, `min`, `max`); optional.",
                        },
                    },
                },
            },
            "example": { "error": { "code": "invalid_credentials", "message": "wrong username or password" } },
        });
        RefOr::T(serde_json::from_value(schema).expect("a valid JSON Schema literal"))
    }
}

impl utoipa::ToSchema for ErrorBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorEnvelope".into()
    }
}

impl AppError {
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) | Self::Restored => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            Self::DeviceRevoked(_) => StatusCode::FORBIDDEN,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Timeout | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::InsufficientStorage { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    pub fn error_code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Self::BadRequest { code, .. } | Self::Unauthorized { code, .. } => *code,
            Self::Validation(_) => C::ValidationFailed,
            Self::Forbidden(_) => C::Forbidden,
            Self::NotFound(_) => C::NotFound,
            Self::MethodNotAllowed => C::MethodNotAllowed,
            Self::Conflict(_) => C::Conflict,
            Self::Restored => C::ServerRestored,
            Self::PayloadTooLarge(_) => C::PayloadTooLarge,
            Self::UnsupportedMediaType(_) => C::UnsupportedMediaType,
            Self::UpgradeRequired(_) => C::UnsupportedProtocol,
            Self::DeviceRevoked(_) => C::DeviceRevoked,
            Self::Throttled { .. } => C::LoginThrottled,
            Self::Unavailable(_) => C::DatabaseUnavailable,
            Self::Timeout => C::Timeout,
            Self::BodyTimeout => C::BodyTimeout,
            Self::InsufficientStorage { .. } => C::InsufficientStorage,
            Self::Busy => C::ServerBusy,
            Self::UriTooLong(_) => C::UriTooLong,
            Self::HeadersTooLarge(_) => C::HeadersTooLarge,
            Self::Database(_) | Self::Internal(_) => C::InternalError,
        }
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        match DbFailure::of(&err) {
            DbFailure::Unreachable | DbFailure::Retry => Self::Unavailable(err),
            DbFailure::Other => Self::Database(err),
        }
    }
}

/// What a database error means for the request that met it, decided by the
/// error's kind and SQLSTATE (or SQLite result code), never by its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// The database cannot be reached: no connection from the pool, or the
    /// connection was lost mid-query or mid-COMMIT (the server shut down or
    /// crashed, a failover demoted it, the network reset). The client
    /// retries after a few seconds; a COMMIT whose outcome is unknown is made
    /// safe by the idempotency store (the resend finds its stored outcome).
    Unreachable,
    /// The database aborted this transaction to break a deadlock or a
    /// serialisation conflict, or a lock wait timed out, or the SQLite file
    /// was busy: the same request succeeds when sent again.
    Retry,
    /// Anything else: a bug or a broken invariant, answered 500.
    Other,
}

impl DbFailure {
    pub fn of(err: &DbErr) -> Self {
        match err {
            DbErr::ConnectionAcquire(_) => Self::Unreachable,
            DbErr::Conn(runtime) => match Self::of_runtime(runtime) {
                Self::Other => Self::Unreachable,
                kind => kind,
            },
            DbErr::Exec(runtime) | DbErr::Query(runtime) => Self::of_runtime(runtime),
            _ => Self::Other,
        }
    }

    fn of_runtime(err: &sea_orm::RuntimeErr) -> Self {
        use sea_orm::sqlx::Error as Sqlx;
        let sea_orm::RuntimeErr::SqlxError(err) = err else {
            return Self::Other;
        };
        match err.as_ref() {
            Sqlx::Io(_)
            | Sqlx::Tls(_)
            | Sqlx::Protocol(_)
            | Sqlx::PoolTimedOut
            | Sqlx::PoolClosed
            | Sqlx::WorkerCrashed => Self::Unreachable,
            Sqlx::Database(db) => match db.code() {
                Some(code) => Self::of_code(&code),
                None => Self::Other,
            },
            _ => Self::Other,
        }
    }

    /// PostgreSQL's SQLSTATE, or SQLite's (extended) result code in decimal.
    fn of_code(code: &str) -> Self {
        match code {
            // 08: connection exception; 57P01 admin shutdown, 57P02 crash
            // shutdown, 57P03 cannot connect now (starting, recovering);
            // 53300 too many connections; 25006 a read-only transaction (a
            // connection to a node that a failover made a standby).
            _ if code.starts_with("08") => Self::Unreachable,
            "57P01" | "57P02" | "57P03" | "53300" | "25006" => Self::Unreachable,
            // 40001 serialization failure, 40P01 deadlock, 55P03 lock not
            // available (lock_timeout).
            "40001" | "40P01" | "55P03" => Self::Retry,
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended
            // codes (the low byte is the primary code; at most 3 digits).
            // A SQLSTATE is always 5 characters, digits or not: 22021
            // (a NUL in text) is a refused value, not a busy database.
            _ if code.len() < 5 => match code.parse::<u32>() {
                Ok(sqlite) if matches!(sqlite & 0xff, 5 | 6) => Self::Retry,
                _ => Self::Other,
            },
            _ => Self::Other,
        }
    }
}

impl From<crate::repo::synced::RowError> for AppError {
    fn from(err: crate::repo::synced::RowError) -> Self {
        use crate::repo::synced::RowError;
        match err {
            RowError::Db(db) => db.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// True when reading the request body failed because it stopped arriving
/// for longer than `body_read_timeout_secs` (the router's body timeout).
fn body_stopped_arriving(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(rejection);
    while let Some(err) = next {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        next = err.source();
    }
    false
}

impl From<BytesRejection> for AppError {
    fn from(rejection: BytesRejection) -> Self {
        if body_stopped_arriving(&rejection) {
            Self::BodyTimeout
        } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge(rejection.body_text())
        } else {
            Self::bad_request(ErrorCode::UnreadableBody, rejection.body_text())
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        if body_stopped_arriving(&rejection) {
            return Self::BodyTimeout;
        }
        let message = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => Self::Validation(message),
            JsonRejection::JsonSyntaxError(_) => {
                Self::bad_request(ErrorCode::MalformedJson, message)
            }
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(
                "expected a request with `Content-Type: application/json`".to_owned(),
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge(other.body_text())
            }
            other => Self::bad_request(ErrorCode::UnreadableBody, other.body_text()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(ErrorCode::InvalidQuery, rejection.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(ErrorCode::InvalidPath, rejection.body_text())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = if status.is_server_error() {
            // Log the detail, answer without it. Expected back-pressure and
            // a lost database are not errors of this request: the first is
            // counted in the metrics, the second logged once per outage
            // (`outage.rs`).
            match &self {
                Self::Busy => tracing::debug!(code = self.code(), "request turned away"),
                Self::Unavailable(err) if DbFailure::of(err) == DbFailure::Unreachable => {
                    tracing::debug!(error = ?self, code = self.code(), "request refused");
                }
                Self::Unavailable(_) => {
                    tracing::warn!(error = ?self, code = self.code(), "request failed; the client retries");
                }
                _ => tracing::error!(error = ?self, code = self.code(), "request failed"),
            }
            match &self {
                Self::Unavailable(_) => "the database is unavailable; retry shortly".to_owned(),
                Self::Timeout => "the request took too long; retry shortly".to_owned(),
                Self::InsufficientStorage { read_only, .. } => format!(
                    "the server cannot store more bytes now (its photo store is {}); \
                     what it received before is kept: ask the status and resume later",
                    if *read_only { "read-only" } else { "full" }
                ),
                Self::Busy => {
                    "the server is serving as many syncs as it can; retry shortly".to_owned()
                }
                _ => "an internal error occurred; it has been logged".to_owned(),
            }
        } else {
            self.to_string()
        };
        let mut body = ErrorEnvelope::new(self.code(), message);
        if let Self::UpgradeRequired(err) = &self {
            body.error.details = ErrorEnvelope::from(err).error.details;
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A full sync cap or an aborted transaction frees within a
            // request's time; an unreachable database takes longer.
            let after = match &self {
                Self::Busy => "1",
                Self::Unavailable(err) if DbFailure::of(err) == DbFailure::Retry => "1",
                _ => "5",
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(after));
        }
        if let Self::Unavailable(err) = &self
            && DbFailure::of(err) == DbFailure::Unreachable
        {
            response
                .extensions_mut()
                .insert(crate::outage::DbUnreachable {
                    cause: err.to_string(),
                });
        }
        if matches!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::URI_TOO_LONG
                | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ) {
            // The rest of an oversized request is not read: end the
            // connection, so the client's next request does not land in it.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::INSUFFICIENT_STORAGE {
            // Freeing space takes an operator: ask for a slower retry.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(INSUFFICIENT_STORAGE_RETRY_AFTER),
            );
        }
        if let Self::Throttled {
            retry_after_secs, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    /// docs/SYNC-PROTOCOL.md §5 promises that every code a client can meet
    /// is in its table.
    #[test]
    fn a_sqlstate_of_digits_is_never_read_as_a_sqlite_code() {
        // SQLite: BUSY, BUSY_SNAPSHOT, LOCKED, LOCKED_SHAREDCACHE.
        for busy in ["5", "517", "6", "262"] {
            assert_eq!(DbFailure::of_code(busy), DbFailure::Retry, "{busy}");
        }
        // PostgreSQL 22021 (invalid byte sequence: a NUL in text; its low
        // byte is 5), 23505 (unique violation), 42601 (syntax): not busy.
        for other in ["22021", "23505", "42601", "19"] {
            assert_eq!(DbFailure::of_code(other), DbFailure::Other, "{other}");
        }
        assert_eq!(DbFailure::of_code("57P01"), DbFailure::Unreachable);
        assert_eq!(DbFailure::of_code("40P01"), DbFailure::Retry);
    }

    #[test]
    fn every_error_code_is_in_the_protocol_docs_table() {
        let doc = include_str!("../../docs/SYNC-PROTOCOL.md");
        let start = doc.find("## 5. Errors").expect("the errors section");
        let end = doc[start..].find("\n## 5b").expect("its end") + start;
        let section = &doc[start..end];
        let missing: Vec<&str> = ErrorCode::VARIANTS
            .iter()
            .map(|code| code.as_str())
            .filter(|code| {
                !section
                    .lines()
                    .any(|line| line.starts_with('|') && line.contains(&format!("`{code}`")))
            })
            .collect();
        assert!(missing.is_empty(), "not in the §5 table: {missing:?}");
    }
}
