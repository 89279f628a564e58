//! Sign-in throttling: failed sign-ins are counted per account and per
//! client address in the database (so every server process sees the same
//! count); past the configured number, the key is locked out for a while and
//! sign-in answers `429 login_throttled` with `Retry-After`, before any
//! password is checked. A successful sign-in clears its account's count.
//! Unknown usernames are counted like real ones, so the answer never tells
//! whether an account exists.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::audit;
use crate::state::AppState;

/// The keys a sign-in attempt counts against, with their limits.
pub(crate) struct Keys {
    account: String,
    address: Option<String>,
}

impl Keys {
    pub(crate) fn new(username: &str, client: Option<IpAddr>) -> Self {
        Self {
            account: format!("user:{}", username.trim().to_lowercase()),
            address: client.map(|ip| format!("addr:{ip}")),
        }
    }

    fn all(&self) -> Vec<String> {
        std::iter::once(self.account.clone())
            .chain(self.address.clone())
            .collect()
    }
}

/// Refuses the attempt while the account or the address is locked out.
pub(crate) async fn check(state: &AppState, keys: &Keys, now: DateTime<Utc>) -> AppResult<()> {
    check_keys(state, keys.all(), now).await
}

/// As [`check`], for a sign-in from a device already registered to the
/// account: only the address's lockout applies. Usernames are guessable,
/// so anyone can lock an account out with five wrong passwords; the
/// director's own phone, whose random id a stranger does not know, still
/// signs in with the right password (OWASP: lock out without locking out
/// the owner). Its wrong passwords still count.
pub(crate) async fn check_known_device(
    state: &AppState,
    keys: &Keys,
    now: DateTime<Utc>,
) -> AppResult<()> {
    check_keys(state, keys.address.iter().cloned().collect(), now).await
}

async fn check_keys(state: &AppState, keys: Vec<String>, now: DateTime<Utc>) -> AppResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let rows = repo::login_failures::find(&state.db, keys).await?;
    let locked_until = rows
        .iter()
        .filter_map(|row| row.locked_until)
        .filter(|until| *until > now)
        .max();
    match locked_until {
        Some(until) => Err(AppError::Throttled {
            message: format!(
                "too many failed sign-ins; try again after {} (UTC), or ask your supervisor to check the account",
                until.format("%H:%M")
            ),
            retry_after_secs: u64::try_from((until - now).num_seconds().max(1)).unwrap_or(1),
        }),
        None => Ok(()),
    }
}

/// Counts a failed attempt against each key; locks a key out when it
/// reaches its limit, and audits that.
pub(crate) async fn failed(state: &AppState, keys: &Keys, now: DateTime<Utc>) -> AppResult<()> {
    let config = &state.config;
    let lockout = Duration::seconds(i64::try_from(config.login_lockout_secs).unwrap_or(900));
    let limits = std::iter::once((&keys.account, config.login_max_failures_per_account)).chain(
        keys.address
            .as_ref()
            .map(|key| (key, config.login_max_failures_per_address)),
    );
    let txn = crate::repo::begin_write(&state.db).await?;
    for (key, limit) in limits {
        let row = repo::login_failures::lock(&txn, key, now).await?;
        let fresh = row.window_started_at + lockout <= now;
        let (failures, window) = if fresh {
            (1, now)
        } else {
            (row.failures.saturating_add(1), row.window_started_at)
        };
        if u32::try_from(failures).unwrap_or(u32::MAX) >= limit.max(1) {
            let until = now + lockout;
            repo::login_failures::save(&txn, row, 0, now, Some(until)).await?;
            tracing::warn!(key = %key, %until, "sign-in locked out after repeated failures");
            audit::record_at(
                &txn,
                audit::Entry {
                    actor_id: None,
                    action: "auth.lockout",
                    entity: None,
                    record_id: None,
                    detail: json!({ "key": key, "failures": failures, "until": until }),
                },
                now,
            )
            .await?;
        } else {
            repo::login_failures::save(&txn, row, failures, window, None).await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Forgets the account's failures after a successful sign-in.
pub(crate) async fn succeeded(state: &AppState, keys: &Keys) -> AppResult<()> {
    repo::login_failures::clear(&state.db, &keys.account).await?;
    Ok(())
}
