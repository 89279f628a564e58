//! `events`: an open stream of "your scope changed" signals for one
//! device (`GET /api/v1/sync/events`; the pokes come from
//! [`crate::events`]).

use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{DeviceUse, admit_caller, placement};
use crate::auth::{AuthUser, Scope};
use crate::error::{AppError, AppResult};
use crate::events::Subscription;
use crate::state::AppState;

/// What a stream tells its device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The stream is open: pull once, for what changed before it opened.
    Ready,
    /// A change in the device's scope committed: pull.
    Changed,
}

/// Opens a stream for the caller: [`Signal::Ready`] first, then
/// [`Signal::Changed`] for each committed change in its scope. It ends when
/// the caller's access token expires or the process shuts down. All
/// `max_event_streams` taken: 503 `server_busy`.
pub async fn open(
    state: &AppState,
    caller: &AuthUser,
    protocol_version: u32,
) -> AppResult<impl Stream<Item = Signal> + Send + use<>> {
    admit_caller(&state.reader, caller, protocol_version, DeviceUse::Pull).await?;
    let scope = Scope::of(caller);
    placement::scope_column(scope)
        .ok_or_else(|| AppError::forbidden("this account does not sync records to a device"))?;
    let root = scope.root().unwrap_or_default();
    let subscription = state.events.subscribe().ok_or(AppError::Busy)?;
    let left = u64::try_from(caller.expires_at - chrono::Utc::now().timestamp()).unwrap_or(0);
    let ends = tokio::time::Instant::now() + Duration::from_secs(left);
    Ok(futures::stream::unfold(
        (subscription, true),
        move |(mut stream, first)| async move {
            if first {
                return Some((Signal::Ready, (stream, false)));
            }
            next_change(&mut stream, root, ends)
                .await
                .map(|signal| (signal, (stream, false)))
        },
    ))
}

/// Waits for the next poke that reaches `root`; `None` when the stream
/// must end.
async fn next_change(
    stream: &mut Subscription,
    root: uuid::Uuid,
    ends: tokio::time::Instant,
) -> Option<Signal> {
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(ends) => return None,
            _ = stream.closing.wait_for(|closing| *closing) => return None,
            poke = stream.pokes.recv() => match poke {
                Ok(poke) if poke.reaches(root) => return Some(Signal::Changed),
                Ok(_) => {}
                // Fell behind: some of what it missed may be its own.
                Err(RecvError::Lagged(_)) => return Some(Signal::Changed),
                Err(RecvError::Closed) => return None,
            },
        }
    }
}
