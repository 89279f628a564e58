//! The one error foreign code sees, by kind: each variant says what the app
//! should do. Built from the client's own errors (`StoreError`,
//! `TransportError`, `AuthError`, `SyncError`), never from their text.

use seedling_client::{AuthError, StoreError, SyncError, TransportError};

/// Why a call failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum SeedlingError {
    /// No user is signed in on this phone: show the sign-in screen.
    #[error("no user is signed in on this phone")]
    NotSignedIn,
    /// Wrong username or password: ask again.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// The account is disabled: the director asks the district bureau.
    #[error("account disabled: {message}")]
    AccountDisabled {
        /// The server's explanation.
        message: String,
    },
    /// Another user's changes still wait to be sent from this phone; that
    /// user must sync before someone else signs in here.
    #[error("{pending} change(s) of another user wait to be sent")]
    PendingForOtherUser {
        /// Mutations waiting.
        pending: u64,
    },
    /// Signing out would lose changes never sent: sync first, or sign out
    /// with `discard_pending`.
    #[error("{pending} change(s) were never sent")]
    PendingWork {
        /// Mutations waiting.
        pending: u64,
    },
    /// The session ended (expired, signed out elsewhere, refresh token
    /// spent): sign in again with the password. The store and its outbox
    /// are kept.
    #[error("the session ended; sign in again: {message}")]
    SessionEnded {
        /// The server's explanation.
        message: String,
    },
    /// No network, a timeout or a server error, after the retries: nothing
    /// is lost; try again at the next network change.
    #[error("offline or the server is unreachable: {message}")]
    Offline {
        /// What failed.
        message: String,
    },
    /// The server asked to be tried again later (busy, throttled).
    #[error("the server is busy; retry after {retry_after_seconds} s")]
    ServerBusy {
        /// The server's `Retry-After`.
        retry_after_seconds: u64,
    },
    /// This app version is too old for the server: ask the user to update.
    /// The outbox is kept.
    #[error("please update the app: {message}")]
    UpdateApp {
        /// The server's explanation.
        message: String,
    },
    /// The phone was reported lost or retired: its store has already been
    /// wiped. Tell the user why.
    #[error("this phone was revoked and its records wiped: {message}")]
    DeviceRevoked {
        /// The server's explanation.
        message: String,
    },
    /// A local edit breaks a rule (a locked visit, a field the director
    /// does not own, a missing or bad value); nothing was stored.
    #[error("edit refused ({reason}): {message}")]
    Refused {
        /// Machine-readable reason, as on the wire (`locked`, …).
        reason: String,
        /// Human-readable explanation.
        message: String,
    },
    /// No such record on this phone.
    #[error("not on this phone: {what}")]
    NotFound {
        /// Which record.
        what: String,
    },
    /// An argument could not be read (an id, a date, JSON, a time zone).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What was wrong.
        message: String,
    },
    /// The server refused the request for another reason.
    #[error("the server refused ({status} {code}): {message}")]
    Server {
        /// HTTP status (0: the answer could not be read).
        status: u16,
        /// The error envelope's code.
        code: String,
        /// Human-readable detail.
        message: String,
    },
    /// The local database failed (disk full, a corrupt file).
    #[error("local storage: {message}")]
    Storage {
        /// What failed.
        message: String,
    },
}

impl SeedlingError {
    /// An unreadable argument.
    pub(crate) fn input(message: impl std::fmt::Display) -> Self {
        SeedlingError::InvalidInput {
            message: message.to_string(),
        }
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl From<StoreError> for SeedlingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotSignedIn => SeedlingError::NotSignedIn,
            StoreError::NotFound { entity, id } => SeedlingError::NotFound {
                what: format!("{entity} {id}"),
            },
            StoreError::Refused { reason, message } => SeedlingError::Refused { reason, message },
            StoreError::PendingWork { pending } => SeedlingError::PendingWork {
                pending: count(pending),
            },
            e @ (StoreError::Db(_) | StoreError::Corrupt(_)) => SeedlingError::Storage {
                message: e.to_string(),
            },
        }
    }
}

impl From<TransportError> for SeedlingError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Retryable(message) => SeedlingError::Offline { message },
            TransportError::Busy { retry_after } => SeedlingError::ServerBusy {
                retry_after_seconds: retry_after.as_secs().max(1),
            },
            TransportError::SignInAgain(message) => SeedlingError::SessionEnded { message },
            TransportError::UpdateApp(message) => SeedlingError::UpdateApp { message },
            TransportError::DeviceRevoked(message) => SeedlingError::DeviceRevoked { message },
            // The sync loop recovers from a restore by itself; seen here
            // only when the recovery itself was refused.
            TransportError::ServerRestored(message) => SeedlingError::Server {
                status: 409,
                code: "server_restored".into(),
                message,
            },
            TransportError::Fatal {
                status,
                code,
                message,
            } => SeedlingError::Server {
                status,
                code,
                message,
            },
        }
    }
}

impl From<AuthError> for SeedlingError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => SeedlingError::InvalidCredentials,
            AuthError::AccountDisabled(message) => SeedlingError::AccountDisabled { message },
            // `Auth::sign_in` starts afresh on its own; seen only when the
            // second try was refused too.
            AuthError::DeviceInUse(message) => SeedlingError::Server {
                status: 401,
                code: "device_in_use".into(),
                message,
            },
            AuthError::PendingForOtherUser { pending } => SeedlingError::PendingForOtherUser {
                pending: count(pending),
            },
            AuthError::SessionEnded(message) => SeedlingError::SessionEnded { message },
            AuthError::Transport(e) => e.into(),
            AuthError::Store(e) => e.into(),
        }
    }
}

impl From<SyncError> for SeedlingError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Transport(e) => e.into(),
            SyncError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_client_error_becomes_the_variant_that_says_what_to_do() {
        let revoked = SeedlingError::from(SyncError::Transport(TransportError::DeviceRevoked(
            "lost".into(),
        )));
        assert!(matches!(revoked, SeedlingError::DeviceRevoked { message } if message == "lost"));
        let busy = SeedlingError::from(TransportError::Busy {
            retry_after: Duration::from_millis(300),
        });
        assert!(matches!(
            busy,
            SeedlingError::ServerBusy {
                retry_after_seconds: 1
            }
        ));
        let pending = SeedlingError::from(AuthError::Store(StoreError::PendingWork { pending: 3 }));
        assert!(matches!(pending, SeedlingError::PendingWork { pending: 3 }));
        let refused = SeedlingError::from(StoreError::Refused {
            reason: "locked".into(),
            message: "approved".into(),
        });
        assert!(matches!(refused, SeedlingError::Refused { reason, .. } if reason == "locked"));
        assert!(matches!(
            SeedlingError::from(TransportError::SignInAgain("expired".into())),
            SeedlingError::SessionEnded { .. }
        ));
        assert!(matches!(
            SeedlingError::from(AuthError::InvalidCredentials),
            SeedlingError::InvalidCredentials
        ));
    }
}
