//! A [`Transport`] wrapper that injects the network's faults, for
//! simulators and tests: a request dropped before it reaches the server, an
//! answer lost after the server processed the request, and a request sent
//! twice (two copies racing to the server). Every decision comes from a
//! seedable generator, so a run with the same seed meets the same faults.

use std::sync::{
    Mutex,
    atomic::{AtomicUsize, Ordering},
};

use sync_core::protocol::{
    FetchRequest, FetchResponse, ManifestRequest, ManifestResponse, PullRequest, PullResponse,
    PushRequest, PushResponse,
};

use crate::{
    backoff::Jitter,
    transport::{Transport, TransportError},
};

/// How often each fault happens, as probabilities in `[0, 1]` per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    /// The request never reaches the server.
    pub drop_request: f64,
    /// The server processes the request but the answer never arrives.
    pub lose_response: f64,
    /// The request reaches the server twice, concurrently.
    pub duplicate: f64,
}

impl FaultRates {
    /// No faults at all.
    pub const NONE: FaultRates = FaultRates {
        drop_request: 0.0,
        lose_response: 0.0,
        duplicate: 0.0,
    };

    /// A bad mountain network: each fault on about one request in ten.
    pub const MOUNTAIN: FaultRates = FaultRates {
        drop_request: 0.1,
        lose_response: 0.1,
        duplicate: 0.1,
    };
}

/// How many faults were injected.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Requests dropped before the server.
    pub dropped: AtomicUsize,
    /// Answers lost after the server processed the request.
    pub lost: AtomicUsize,
    /// Requests sent twice.
    pub duplicated: AtomicUsize,
}

impl FaultCounts {
    /// The total number of faults injected.
    pub fn total(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
            + self.lost.load(Ordering::Relaxed)
            + self.duplicated.load(Ordering::Relaxed)
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Deliver,
    Drop,
    LoseResponse,
    Duplicate,
}

/// Wraps a transport and injects faults at the given rates.
#[derive(Debug)]
pub struct FaultyTransport<T> {
    inner: T,
    rates: FaultRates,
    rng: Mutex<Jitter>,
    counts: FaultCounts,
}

impl<T> FaultyTransport<T> {
    /// `inner` with faults at `rates`, drawn from a generator seeded with `seed`.
    pub fn new(inner: T, rates: FaultRates, seed: u64) -> Self {
        Self {
            inner,
            rates,
            rng: Mutex::new(Jitter::seeded(seed)),
            counts: FaultCounts::default(),
        }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The faults injected so far.
    pub fn counts(&self) -> &FaultCounts {
        &self.counts
    }

    fn next_fault(&self) -> Fault {
        // One draw per request, whatever the rates: the same seed gives the
        // same sequence of faults.
        let draw = self.rng.lock().map_or(1.0, |mut r| r.next_f64());
        let FaultRates {
            drop_request,
            lose_response,
            duplicate,
        } = self.rates;
        let fault = if draw < drop_request {
            Fault::Drop
        } else if draw < drop_request + lose_response {
            Fault::LoseResponse
        } else if draw < drop_request + lose_response + duplicate {
            Fault::Duplicate
        } else {
            Fault::Deliver
        };
        let counter = match fault {
            Fault::Deliver => return fault,
            Fault::Drop => &self.counts.dropped,
            Fault::LoseResponse => &self.counts.lost,
            Fault::Duplicate => &self.counts.duplicated,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        fault
    }
}

/// Applies `fault` to one call of `send`.
async fn with_fault<R, F, Fut>(fault: Fault, send: F) -> Result<R, TransportError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<R, TransportError>>,
{
    match fault {
        Fault::Deliver => send().await,
        Fault::Drop => Err(TransportError::Retryable(
            "simulated fault: the request was dropped".into(),
        )),
        Fault::LoseResponse => {
            // The server does the work; the phone never hears of it.
            let _ = send().await;
            Err(TransportError::Retryable(
                "simulated fault: the answer was lost".into(),
            ))
        }
        Fault::Duplicate => {
            // Two copies race to the server; the phone sees the first answer.
            let (first, _second) = tokio::join!(send(), send());
            first
        }
    }
}

impl<T: Transport> Transport for FaultyTransport<T> {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, TransportError> {
        let fault = self.next_fault();
        with_fault(fault, || self.inner.push(request.clone())).await
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, TransportError> {
        let fault = self.next_fault();
        with_fault(fault, || self.inner.pull(request.clone())).await
    }

    async fn manifest(&self, request: ManifestRequest) -> Result<ManifestResponse, TransportError> {
        let fault = self.next_fault();
        with_fault(fault, || self.inner.manifest(request.clone())).await
    }

    async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, TransportError> {
        let fault = self.next_fault();
        with_fault(fault, || self.inner.fetch(request.clone())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let faults = |seed| {
            let t = FaultyTransport::new((), FaultRates::MOUNTAIN, seed);
            (0..200).map(|_| t.next_fault()).collect::<Vec<_>>()
        };
        assert_eq!(faults(7), faults(7));
        assert_ne!(faults(7), faults(8));
        let drawn = faults(7);
        for kind in [Fault::Drop, Fault::LoseResponse, Fault::Duplicate] {
            let n = drawn.iter().filter(|f| **f == kind).count();
            assert!((5..50).contains(&n), "{kind:?} drawn {n} times in 200");
        }
    }

    #[test]
    fn no_rates_means_no_faults() {
        let t = FaultyTransport::new((), FaultRates::NONE, 1);
        assert!((0..100).all(|_| t.next_fault() == Fault::Deliver));
        assert_eq!(t.counts().total(), 0);
    }
}
