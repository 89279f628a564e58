//! The district bureau's console: the admin works in an office with a
//! network, so the simulator has it push its edits straight away instead of
//! keeping a phone's copy of the whole district. Its mutations are built as
//! the protocol says (a base version, changed fields, its own clock), go
//! over the same faulty link as the phones', and are resent with the same
//! ids until the server has answered each one.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use sync_core::{
    clock::HlcClock,
    protocol::{FieldChange, Mutation, Op, PROTOCOL_VERSION, PushRequest},
    record::Entity,
};
use uuid::Uuid;

use super::{
    SimError,
    device::Shared,
    net::{self, SimTransport},
};
use crate::{
    faulty::FaultyTransport,
    transport::{Transport, TransportError},
};

/// Tries to get every queued mutation answered before giving up.
const MAX_PUSH_TRIES: usize = 50;

/// The admin's console.
#[derive(Debug)]
pub struct Console {
    device_id: Uuid,
    clock: HlcClock,
    link: FaultyTransport<SimTransport>,
    queued: Vec<Mutation>,
}

fn wall_ms() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

impl Console {
    /// Signs in as `admin` from a new console.
    pub async fn open(shared: &Shared, seed: u64) -> Result<Self, SimError> {
        let device_id = Uuid::new_v4();
        let session = net::sign_in(
            &shared.http,
            &shared.servers[0],
            "admin",
            "admin console",
            &shared.password,
            device_id,
        )
        .await?;
        let link = SimTransport::new(
            &shared.servers,
            &session.access_token,
            seed,
            shared.tap.clone(),
        )?;
        Ok(Self {
            device_id,
            clock: HlcClock::new(device_id),
            link: FaultyTransport::new(link, shared.faults, seed ^ 0xc0de),
            queued: Vec::new(),
        })
    }

    /// Queues a change of register fields of a record the admin last saw at
    /// `base_version`.
    pub fn update(
        &mut self,
        entity: Entity,
        id: Uuid,
        base_version: u64,
        fields: &[(&str, Value)],
    ) {
        let hlc = self.clock.tick(wall_ms());
        let fields: BTreeMap<String, FieldChange> = fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), FieldChange::set(hlc, value.clone())))
            .collect();
        self.queued.push(Mutation {
            mutation_id: Uuid::now_v7(),
            entity,
            record_id: id,
            op: Op::Update,
            base_version,
            hlc,
            fields,
        });
    }

    /// Pushes the queued mutations until each has an answer (the same ids
    /// on every try, as a phone does).
    pub async fn push_all(&mut self) -> Result<(), SimError> {
        let mut last = String::new();
        for try_no in 0..MAX_PUSH_TRIES {
            if self.queued.is_empty() {
                return Ok(());
            }
            let request = PushRequest {
                protocol_version: PROTOCOL_VERSION,
                device_id: self.device_id,
                device_hlc: self.clock.tick(wall_ms()),
                mutations: self.queued.clone(),
                cursor: None,
            };
            match self.link.push(request).await {
                Ok(answer) => {
                    self.clock.observe(answer.server_hlc, wall_ms());
                    let answered: HashSet<Uuid> =
                        answer.results.iter().map(|r| r.mutation_id()).collect();
                    self.queued.retain(|m| !answered.contains(&m.mutation_id));
                }
                Err(e @ (TransportError::Retryable(_) | TransportError::Busy { .. })) => {
                    last = e.to_string()
                }
                Err(e) => return Err(SimError::Http(format!("the console's push: {e}"))),
            }
            // A server that is down (restarting) gets time to come back.
            let wait = (20 * (try_no as u64 + 1)).min(500);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
        Err(SimError::Http(format!(
            "the console's push was never answered: {last}"
        )))
    }

    /// Faults injected on the console's link.
    pub fn faults(&self) -> usize {
        self.link.counts().total()
    }
}
