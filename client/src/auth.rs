//! Signing a phone in and out (`/api/v1/auth/*`, SYNC-PROTOCOL.md §1), the
//! district's visit rules (`GET /api/v1/visit-rules`), and the device's
//! rule for who may use the store:
//!
//! * the same user signing in again keeps the store and its outbox (a
//!   forgotten session loses no visit);
//! * another user gets a wiped store and a new device id (the server keeps
//!   a device id for the account that registered it and answers another
//!   account `device_in_use`) — refused with
//!   [`AuthError::PendingForOtherUser`] while the previous user's visits
//!   still wait in the outbox: they must reach the server first;
//! * signing out ([`Store::sign_out`]) ends the session on the server (best
//!   effort) and wipes every record of minors from the phone.
//!
//! The session (tokens, user, district time zone) is kept in the store, so
//! an app that restarts offline is still signed in and syncs when the
//! network returns; [`Auth::refresh`] renews the access token.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sync_core::{
    protocol::ErrorEnvelope,
    rules::{Actor, Role},
    semantic::VisitIntervals,
};
use uuid::Uuid;

use crate::{
    store::{Store, StoreError},
    transport::TransportError,
};

/// A signed-in session as the server answers it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The bearer token (15 minutes).
    pub access_token: String,
    /// Single use: each refresh answers a new one and spends the old.
    pub refresh_token: String,
    /// Seconds `access_token` lasts.
    pub expires_in: i64,
    /// Who signed in.
    pub user: SessionUser,
    /// The district's calendar (an IANA zone): days are counted in it.
    #[serde(default = "default_zone")]
    pub district_time_zone: String,
}

fn default_zone() -> String {
    sync_core::calendar::DEFAULT_DISTRICT_TIME_ZONE.to_owned()
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are secrets: never in Debug output.
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("district_time_zone", &self.district_time_zone)
            .finish_non_exhaustive()
    }
}

/// The user of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionUser {
    /// The user's id.
    pub id: Uuid,
    /// Sign-in name.
    pub username: String,
    /// Name to show.
    pub display_name: String,
    /// Director, supervisor or admin.
    pub role: Role,
    /// The unit the user works in.
    pub org_unit: OrgUnit,
}

/// The village, town or district a user is bound to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgUnit {
    /// Its id (a director's village id is what a new visit carries).
    pub id: Uuid,
    /// Administrative code.
    pub code: String,
    /// Name.
    pub name: String,
    /// `village`, `town` or `district`.
    pub kind: String,
}

impl Session {
    /// The actor edits are made as.
    pub fn actor(&self) -> Actor {
        Actor::new(self.user.id, self.user.role)
    }
}

/// Why signing in (or out, or a refresh) failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong username or password (401 `invalid_credentials`).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// The account is disabled (401 `account_disabled`).
    #[error("this account is disabled: {0}")]
    AccountDisabled(String),
    /// This device id belongs to another account (401 `device_in_use`).
    #[error("this device is registered to another account: {0}")]
    DeviceInUse(String),
    /// Another user's visits still wait in this phone's outbox; they must
    /// be sent (a sync by that user) before someone else signs in here.
    #[error("{pending} change(s) of another user still wait to be sent from this phone")]
    PendingForOtherUser {
        /// Mutations waiting.
        pending: usize,
    },
    /// The refresh token is spent, expired or revoked: sign in with the
    /// password again.
    #[error("the session ended; sign in again ({0})")]
    SessionEnded(String),
    /// The network or the server (throttled: `Busy`; revoked phone:
    /// `DeviceRevoked`; …).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The local store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The sign-in calls of one server.
#[derive(Debug, Clone)]
pub struct Auth {
    http: reqwest::Client,
    base_url: String,
}

impl Auth {
    /// Calls to the server at `base_url`, each timing out after `timeout`.
    pub fn new(base_url: impl Into<String>, timeout: Duration) -> Result<Self, TransportError> {
        Ok(Self {
            http: crate::transport::http_client(timeout)?,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /api/v1/auth/login` from `device_id`.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device_id: Uuid,
        device_name: &str,
    ) -> Result<Session, AuthError> {
        let body = json!({
            "username": username,
            "password": password,
            "device_id": device_id,
            "device_name": device_name,
        });
        let sent = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base_url))
            .json(&body)
            .send()
            .await;
        answer(sent).await
    }

    /// `POST /api/v1/auth/refresh`: a new session for a refresh token (which
    /// is spent: store the new one).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, AuthError> {
        let sent = self
            .http
            .post(format!("{}/api/v1/auth/refresh", self.base_url))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await;
        answer(sent).await.map_err(|e| match e {
            AuthError::InvalidCredentials => {
                AuthError::SessionEnded("invalid refresh token".into())
            }
            other => other,
        })
    }

    /// `POST /api/v1/auth/logout`: ends the session and every access token
    /// issued to the device until then.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        let sent = self
            .http
            .post(format!("{}/api/v1/auth/logout", self.base_url))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await;
        let response = sent.map_err(|e| TransportError::Retryable(e.to_string()))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(classify(status, serde_json::from_slice(&body).ok(), None))
    }

    /// `GET /api/v1/visit-rules`: the district's visiting intervals.
    pub async fn visit_intervals(&self, access_token: &str) -> Result<VisitIntervals, AuthError> {
        #[derive(Deserialize)]
        struct Rules {
            intervals: VisitIntervals,
        }
        let sent = self
            .http
            .get(format!("{}/api/v1/visit-rules", self.base_url))
            .bearer_auth(access_token)
            .send()
            .await;
        let rules: Rules = answer(sent).await?;
        Ok(rules.intervals)
    }

    /// Signs `username` in on the phone whose store is `store`, following
    /// the device rule of this module, and keeps the session in the store.
    pub async fn sign_in(
        &self,
        store: &Store,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<Session, AuthError> {
        let device = store.device_id().await?;
        let session = match self.login(username, password, device, device_name).await {
            Ok(session) => session,
            Err(AuthError::DeviceInUse(_)) => {
                // The device id belongs to the previous user's account:
                // this phone starts afresh, once their work is sent.
                wipe_for_new_user(store).await?;
                let device = store.device_id().await?;
                self.login(username, password, device, device_name).await?
            }
            Err(e) => return Err(e),
        };
        if let Some(previous) = store.user().await?
            && previous.user_id != session.user.id
            && let Err(e) = wipe_for_new_user(store).await
        {
            // Nothing of theirs may be lost: give the new session back.
            let _ = self.logout(&session.refresh_token).await;
            return Err(e);
        }
        store.sign_in(session.actor()).await?;
        store.save_session(&session).await?;
        Ok(session)
    }
}

impl Auth {
    /// Signs the user out: refused with [`StoreError::PendingWork`] while
    /// changes wait to be sent (unless `discard_pending`); otherwise ends
    /// the session on the server (best effort: offline, the refresh token
    /// simply expires) and erases the user's records ([`Store::sign_out`]).
    pub async fn sign_out(&self, store: &Store, discard_pending: bool) -> Result<(), AuthError> {
        let pending = store.pending_count().await?;
        if pending > 0 && !discard_pending {
            return Err(StoreError::PendingWork { pending }.into());
        }
        if let Some(session) = store.session().await? {
            let _ = self.logout(&session.refresh_token).await;
        }
        store.sign_out(discard_pending).await?;
        Ok(())
    }
}

/// Wipes the store for another user, unless the previous one's work waits.
async fn wipe_for_new_user(store: &Store) -> Result<(), AuthError> {
    let pending = store.pending_count().await?;
    if pending > 0 {
        return Err(AuthError::PendingForOtherUser { pending });
    }
    store.wipe().await?;
    Ok(())
}

async fn answer<T: serde::de::DeserializeOwned>(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, AuthError> {
    let response = sent.map_err(|e| TransportError::Retryable(e.to_string()))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response
        .bytes()
        .await
        .map_err(|e| TransportError::Retryable(e.to_string()))?;
    if !(200..300).contains(&status) {
        return Err(classify(
            status,
            serde_json::from_slice(&body).ok(),
            retry_after,
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        AuthError::Transport(TransportError::Fatal {
            status,
            code: "unreadable_answer".into(),
            message: e.to_string(),
        })
    })
}

/// An error answer of an auth call, by its code.
fn classify(
    status: u16,
    envelope: Option<ErrorEnvelope>,
    retry_after: Option<Duration>,
) -> AuthError {
    let code = envelope.as_ref().map(|e| e.error.code.as_str());
    let message = envelope
        .as_ref()
        .map(|e| e.error.message.clone())
        .unwrap_or_default();
    match (status, code) {
        (401, Some("invalid_credentials")) => AuthError::InvalidCredentials,
        (401, Some("account_disabled")) => AuthError::AccountDisabled(message),
        (401, Some("device_in_use")) => AuthError::DeviceInUse(message),
        (
            401,
            Some(
                "invalid_refresh_token"
                | "refresh_token_revoked"
                | "refresh_token_expired"
                | "refresh_token_reused"
                | "session_ended",
            ),
        ) => AuthError::SessionEnded(message),
        _ => AuthError::Transport(TransportError::from_answer(status, envelope, retry_after)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_answers_map_to_what_the_app_must_do() {
        let env = |code: &str| Some(ErrorEnvelope::new(code, "m"));
        assert!(matches!(
            classify(401, env("invalid_credentials"), None),
            AuthError::InvalidCredentials
        ));
        assert!(matches!(
            classify(401, env("device_in_use"), None),
            AuthError::DeviceInUse(_)
        ));
        assert!(matches!(
            classify(401, env("refresh_token_reused"), None),
            AuthError::SessionEnded(_)
        ));
        assert!(matches!(
            classify(403, env("device_revoked"), None),
            AuthError::Transport(TransportError::DeviceRevoked(_))
        ));
        assert!(matches!(
            classify(429, env("login_throttled"), Some(Duration::from_secs(7))),
            AuthError::Transport(TransportError::Busy { retry_after }) if retry_after == Duration::from_secs(7)
        ));
    }

    #[test]
    fn a_session_never_shows_its_tokens_in_debug_output() {
        let session = Session {
            access_token: "secret-access".into(),
            refresh_token: "secret-refresh".into(),
            expires_in: 900,
            user: SessionUser {
                id: Uuid::nil(),
                username: "director-001".into(),
                display_name: "d".into(),
                role: Role::Director,
                org_unit: OrgUnit {
                    id: Uuid::nil(),
                    code: "1".into(),
                    name: "v".into(),
                    kind: "village".into(),
                },
            },
            district_time_zone: "Asia/Shanghai".into(),
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
