//! Shared test helpers: phones (a store in a temp dir, signed in, with its
//! own adjustable wall clock) syncing with one in-memory `FakeServer`.

#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use seedling_client::{
    Backoff, Jitter, NewVisit, RecordingSleeper, Store, SyncOptions, Syncer, fake::FakeServer,
};
use sync_core::rules::{Actor, Role};
use uuid::Uuid;

pub const NOW: u64 = 1_772_400_000_000;
pub const VILLAGE: Uuid = Uuid::from_u128(0x7100);
pub const CHILD: Uuid = Uuid::from_u128(0xc1);
pub const DIRECTOR: Uuid = Uuid::from_u128(0xd1);

pub fn director() -> Actor {
    Actor::new(DIRECTOR, Role::Director)
}

/// One phone: a store file, a clock it controls, and a syncer.
pub struct Phone {
    pub dir: tempfile::TempDir,
    pub clock: Arc<AtomicU64>,
    pub syncer: Syncer<FakeServer, RecordingSleeper>,
    pub sleeper: RecordingSleeper,
}

impl Phone {
    pub async fn new(server: &FakeServer, actor: Actor) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(AtomicU64::new(NOW));
        let store = open(dir.path().join("phone.db"), &clock).await;
        store.sign_in(actor).await.expect("sign in");
        server.register(store.device_id().await.expect("device id"), actor);
        let sleeper = RecordingSleeper::default();
        let syncer = syncer(store, server, &sleeper);
        Self {
            dir,
            clock,
            syncer,
            sleeper,
        }
    }

    pub fn store(&self) -> &Store {
        self.syncer.store()
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("phone.db")
    }

    /// Moves this phone's wall clock forward.
    pub fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    pub async fn record_visit(&self, location: &str) -> Uuid {
        self.store()
            .create_visit(visit(location))
            .await
            .expect("a valid visit is recorded")
    }
}

pub async fn open(path: PathBuf, clock: &Arc<AtomicU64>) -> Store {
    let clock = clock.clone();
    Store::open_with_clock(path, Arc::new(move || clock.load(Ordering::SeqCst)))
        .await
        .expect("store opens")
}

pub fn syncer(
    store: Store,
    server: &FakeServer,
    sleeper: &RecordingSleeper,
) -> Syncer<FakeServer, RecordingSleeper> {
    let options = SyncOptions {
        batch_size: 2,
        page_limit: 3,
        backoff: Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
            max_attempts: 4,
        },
    };
    Syncer::new(
        store,
        server.clone(),
        sleeper.clone(),
        Jitter::seeded(42),
        options,
    )
}

pub fn visit(location: &str) -> NewVisit {
    NewVisit {
        child_id: CHILD,
        village_id: VILLAGE,
        kind: "home_visit".into(),
        visited_at: "2026-03-01T10:30:00+08:00".into(),
        location: Some(location.into()),
        observations: None,
        review_status: None,
    }
}
