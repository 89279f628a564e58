//! The sync events stream (`GET /api/v1/sync/events`, SYNC-PROTOCOL.md
//! §4c): while a phone is online the server tells it when its scope
//! changed, so it pulls at once instead of on a timer. The events carry no
//! records; [`crate::Syncer::sync`] is still how data arrives.
//!
//! ```no_run
//! # async fn example(transport: seedling_client::HttpTransport) -> Result<(), seedling_client::TransportError> {
//! use seedling_client::events::Signal;
//! let mut events = transport.events().await?;
//! while let Some(signal) = events.next().await? {
//!     // `Ready` once the stream is open, `Changed` after each commit in scope.
//!     assert!(matches!(signal, Signal::Ready | Signal::Changed));
//!     // syncer.sync().await?;
//! }
//! // The stream ended (the access token expired, or the server restarted):
//! // refresh the token and open it again.
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use crate::transport::TransportError;

/// Longest silence on an open stream before it counts as broken: the
/// server sends a heartbeat every 25 s by default.
pub const READ_TIMEOUT: Duration = Duration::from_secs(75);

/// What the server said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The stream is open: sync once, for what changed before it opened.
    Ready,
    /// A change in this device's scope committed: sync.
    Changed,
}

type Inner = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// An open events stream.
pub struct EventStream {
    inner: Inner,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            inner: Box::pin(response.bytes_stream().eventsource()),
        }
    }

    /// The next signal; `Ok(None)` when the server ended the stream.
    /// Events of other names (a newer server's) are skipped.
    pub async fn next(&mut self) -> Result<Option<Signal>, TransportError> {
        while let Some(event) = self.inner.next().await {
            let event = event.map_err(|e| TransportError::Retryable(e.to_string()))?;
            match event.event.as_str() {
                "ready" => return Ok(Some(Signal::Ready)),
                "changed" => return Ok(Some(Signal::Changed)),
                _ => {}
            }
        }
        Ok(None)
    }
}
