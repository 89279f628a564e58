//! How the device talks to the server: the [`Transport`] trait (push, pull
//! and the two calls of targeted repair), the errors that tell the sync loop whether to
//! retry or to stop and ask the user, and [`HttpTransport`], the REST
//! implementation of `docs/SYNC-PROTOCOL.md` on reqwest (gzip, bearer token).

use std::{future::Future, time::Duration};

use sync_core::protocol::{
    ErrorEnvelope, FetchRequest, FetchResponse, ManifestRequest, ManifestResponse, PullEncoding,
    PullRequest, PullResponse, PushRequest, PushResponse, read_pull,
};

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No network, a timeout, a 5xx, 408 or 429: try again later, unchanged.
    #[error("temporary failure, will retry: {0}")]
    Retryable(String),
    /// 503 `server_busy`, or any 429, 503 or 507 with `Retry-After` (the
    /// database unreachable, a throttle, a full disk): the server asks to be
    /// tried again after `retry_after`. Not a failure of this device's
    /// sync: the sync loop waits as asked and tries again.
    #[error("the server is busy; retry after {retry_after:?}")]
    Busy {
        /// The server's `Retry-After` (1 s when it sent none).
        retry_after: Duration,
    },
    /// 401: the session expired; the user must sign in again. The outbox is kept.
    #[error("signed out: please sign in again ({0})")]
    SignInAgain(String),
    /// 426: this app speaks a protocol the server no longer accepts; the user
    /// must update the app. The outbox is kept.
    #[error("please update the app: {0}")]
    UpdateApp(String),
    /// 403 with `device_revoked`: the device was revoked (lost phone); its
    /// store must be wiped.
    #[error("this device was revoked: {0}")]
    DeviceRevoked(String),
    /// 409 `server_restored` on a push or a pull: the server was restored
    /// from a backup since this device's cursor was made, and applied
    /// nothing. The sync loop recovers ([`crate::Syncer::recover`]): it
    /// sends back what the server lost, then pushes and pulls on with a new
    /// cursor.
    #[error("the server was restored from a backup: {0}")]
    ServerRestored(String),
    /// Any other refusal (a 4xx, an unreadable answer): not retried.
    #[error("request refused ({code}): {message}")]
    Fatal {
        /// HTTP status, or 0 when the answer could not be read.
        status: u16,
        /// The error envelope's code, when there was one.
        code: String,
        /// Human-readable detail.
        message: String,
    },
}

impl TransportError {
    /// True when the same request may simply be sent again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TransportError::Retryable(_) | TransportError::Busy { .. }
        )
    }

    /// Classifies an HTTP error answer.
    pub fn from_status(status: u16, envelope: Option<ErrorEnvelope>) -> Self {
        Self::from_answer(status, envelope, None)
    }

    /// Classifies an HTTP error answer with its `Retry-After` header.
    pub fn from_answer(
        status: u16,
        envelope: Option<ErrorEnvelope>,
        retry_after: Option<Duration>,
    ) -> Self {
        let (code, message) = envelope
            .map(|e| (e.error.code, e.error.message))
            .unwrap_or_else(|| (String::new(), format!("HTTP {status}")));
        match status {
            // The server names its wait: a full sync cap, an unreachable
            // database (503), a throttle (429), a full disk (507).
            503 if code == "server_busy" => TransportError::Busy {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            429 | 503 | 507 if retry_after.is_some() => TransportError::Busy {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            401 => TransportError::SignInAgain(message),
            426 => TransportError::UpdateApp(message),
            403 if code == "device_revoked" => TransportError::DeviceRevoked(message),
            409 if code == "server_restored" => TransportError::ServerRestored(message),
            408 | 429 | 500..=599 => TransportError::Retryable(format!("HTTP {status}: {message}")),
            _ => TransportError::Fatal {
                status,
                code,
                message,
            },
        }
    }
}

/// The calls of the sync protocol. Implementations must not retry on their
/// own: the sync loop decides.
pub trait Transport: Send + Sync {
    /// `POST /api/v1/sync/push`.
    fn push(
        &self,
        request: PushRequest,
    ) -> impl Future<Output = Result<PushResponse, TransportError>> + Send;

    /// `GET /api/v1/sync/pull`.
    fn pull(
        &self,
        request: PullRequest,
    ) -> impl Future<Output = Result<PullResponse, TransportError>> + Send;

    /// `GET /api/v1/sync/manifest`: one page of the scope's ids and versions.
    fn manifest(
        &self,
        request: ManifestRequest,
    ) -> impl Future<Output = Result<ManifestResponse, TransportError>> + Send;

    /// `POST /api/v1/sync/fetch`: some records of the scope, whole.
    fn fetch(
        &self,
        request: FetchRequest,
    ) -> impl Future<Output = Result<FetchResponse, TransportError>> + Send;
}

/// The sync protocol over HTTPS.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    base_url: String,
    token: String,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in Debug output.
        f.debug_struct("HttpTransport")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport for the server at `base_url` (e.g. `https://seedling.example`)
    /// using the access token `token`; requests time out after `timeout`.
    pub fn new(
        base_url: impl Into<String>,
        token: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        Ok(Self {
            client: http_client(timeout)?,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
        })
    }

    /// Opens the sync events stream (`GET /api/v1/sync/events`): answered
    /// like any request (401, 403 revoked, 503 busy with `Retry-After`),
    /// then read with [`crate::events::EventStream::next`]. The stream has
    /// no overall time limit, only [`crate::events::READ_TIMEOUT`] of
    /// silence.
    pub async fn events(&self) -> Result<crate::events::EventStream, TransportError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(crate::events::READ_TIMEOUT)
            .build()
            .map_err(|e| TransportError::Fatal {
                status: 0,
                code: "client".into(),
                message: e.to_string(),
            })?;
        let response = client
            .get(format!("{}/api/v1/sync/events", self.base_url))
            .bearer_auth(&self.token)
            .query(&[("protocol_version", sync_core::protocol::PROTOCOL_VERSION)])
            .send()
            .await
            .map_err(|e| TransportError::Retryable(e.to_string()))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let retry_after = retry_after(&response);
            let body = response.bytes().await.unwrap_or_default();
            return Err(TransportError::from_answer(
                status,
                serde_json::from_slice(&body).ok(),
                retry_after,
            ));
        }
        Ok(crate::events::EventStream::new(response))
    }

    /// Replaces the access token (after a refresh).
    pub fn set_token(&mut self, token: impl Into<String>) {
        self.token = token.into();
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, TransportError> {
        Self::answer_with(sent, |body| serde_json::from_slice(body)).await
    }

    /// [`Self::answer`], with the body of a success read by `read`.
    async fn answer_with<T>(
        sent: Result<reqwest::Response, reqwest::Error>,
        read: impl FnOnce(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, TransportError> {
        let response = sent.map_err(|e| TransportError::Retryable(e.to_string()))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        let body = response
            .bytes()
            .await
            .map_err(|e| TransportError::Retryable(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(TransportError::from_answer(
                status,
                serde_json::from_slice(&body).ok(),
                retry_after,
            ));
        }
        read(&body).map_err(|e| TransportError::Fatal {
            status,
            code: "unreadable_answer".into(),
            message: e.to_string(),
        })
    }
}

/// The answer's `Retry-After`, in seconds.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

impl Transport for HttpTransport {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, TransportError> {
        let sent = self
            .client
            .post(format!("{}/api/v1/sync/push", self.base_url))
            .bearer_auth(&self.token)
            .json(&request)
            .send()
            .await;
        Self::answer(sent).await
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, TransportError> {
        let mut query = vec![
            ("protocol_version", request.protocol_version.to_string()),
            ("limit", request.limit.to_string()),
        ];
        if let Some(cursor) = request.cursor {
            query.push(("cursor", cursor));
        }
        if request.encoding == PullEncoding::Compact {
            query.push(("encoding", "compact".to_owned()));
        }
        let sent = self
            .client
            .get(format!("{}/api/v1/sync/pull", self.base_url))
            .bearer_auth(&self.token)
            .query(&query)
            .send()
            .await;
        // Either encoding: a server that does not know the compact one
        // answers the full.
        Self::answer_with(sent, read_pull).await
    }

    async fn manifest(&self, request: ManifestRequest) -> Result<ManifestResponse, TransportError> {
        let sent = self
            .client
            .get(format!("{}/api/v1/sync/manifest", self.base_url))
            .bearer_auth(&self.token)
            .query(&request)
            .send()
            .await;
        Self::answer(sent).await
    }

    async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, TransportError> {
        let sent = self
            .client
            .post(format!("{}/api/v1/sync/fetch", self.base_url))
            .bearer_auth(&self.token)
            .json(&request)
            .send()
            .await;
        Self::answer(sent).await
    }
}

/// The HTTP client every call to the server goes through: gzip, and
/// `timeout` for connecting and for the whole request.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, TransportError> {
    reqwest::Client::builder()
        .gzip(true)
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| TransportError::Fatal {
            status: 0,
            code: "client".into(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_app_must_do() {
        let revoked = ErrorEnvelope::new("device_revoked", "this phone was revoked");
        assert_eq!(
            TransportError::from_status(403, Some(revoked)),
            TransportError::DeviceRevoked("this phone was revoked".into())
        );
        assert!(matches!(
            TransportError::from_status(426, None),
            TransportError::UpdateApp(_)
        ));
        assert!(matches!(
            TransportError::from_status(401, None),
            TransportError::SignInAgain(_)
        ));
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(TransportError::from_status(status, None).is_retryable());
        }
        let busy = TransportError::from_answer(
            503,
            Some(ErrorEnvelope::new("server_busy", "busy")),
            Some(Duration::from_secs(3)),
        );
        assert!(
            matches!(busy, TransportError::Busy { retry_after } if retry_after == Duration::from_secs(3))
        );
        assert!(busy.is_retryable());
        // Every wait the server names is honoured, not only server_busy's.
        for (status, code) in [
            (503, "database_unavailable"),
            (429, "login_throttled"),
            (507, "insufficient_storage"),
        ] {
            let asked = TransportError::from_answer(
                status,
                Some(ErrorEnvelope::new(code, "later")),
                Some(Duration::from_secs(5)),
            );
            assert!(
                matches!(asked, TransportError::Busy { retry_after } if retry_after == Duration::from_secs(5)),
                "{status} {code}: {asked:?}"
            );
        }
        // Without a named wait they are ordinary retries, with back-off.
        for status in [503, 507] {
            assert!(matches!(
                TransportError::from_status(status, None),
                TransportError::Retryable(_)
            ));
        }
        let forbidden =
            TransportError::from_status(403, Some(ErrorEnvelope::new("forbidden", "no")));
        assert!(matches!(
            forbidden,
            TransportError::Fatal { status: 403, .. }
        ));
        assert!(!forbidden.is_retryable());
    }
}
