//! Hybrid logical clocks (HLC): the ordering of writes, separate from the time
//! a visit happened (which is domain data).
//!
//! An [`Hlc`] is `(wall_ms, counter, node)` and orders by those three in turn,
//! so any two clocks from different devices compare unequal. Its text form,
//! `{wall_ms:015}-{counter:08x}-{node:simple}`, sorts lexicographically in
//! clock order, so it can be stored in a text column and compared there.
//!
//! [`HlcClock`] is the state a device or server process keeps. Time is always
//! passed in (`now_ms`); this module never reads the system clock.
//!
//! # Forward skew bound
//!
//! A phone whose clock is set to 2030 would otherwise win every
//! last-writer-wins conflict. [`HlcClock::observe`] therefore refuses to
//! adopt a remote clock more than `max_forward_skew_ms` ahead of the
//! receiver's wall time: the change is ordered at the receiver's own clock
//! and reported as clock-skewed. The default,
//! [`DEFAULT_MAX_FORWARD_SKEW_MS`] = 5 minutes, is far above the drift of a
//! network-synchronised phone (seconds) and the latency of a push, yet keeps
//! the advantage a wrong clock can buy small. Clocks that run *behind* are
//! never a problem: their edits still apply (a field changed on one side only
//! is taken whatever its clock), they merely lose ties against newer writes.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::SyncError;

/// Default bound on how far a remote clock may run ahead of the receiver: 5 minutes.
pub const DEFAULT_MAX_FORWARD_SKEW_MS: u64 = 5 * 60 * 1000;

/// Largest wall time that fits the 15-digit text form (year ≈ 33658).
pub const MAX_WALL_MS: u64 = 999_999_999_999_999;

/// A hybrid logical clock value. Ordered by `(wall_ms, counter, node)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch, as the writer's clock saw it (or later).
    pub wall_ms: u64,
    /// Logical counter for events within the same millisecond.
    pub counter: u32,
    /// The device or server process that made this clock; the final tie-break.
    pub node: Uuid,
}

impl Hlc {
    /// The smallest clock; older than any real write.
    pub const ZERO: Hlc = Hlc::new(0, 0, Uuid::nil());

    /// Builds a clock value.
    pub const fn new(wall_ms: u64, counter: u32, node: Uuid) -> Self {
        Self {
            wall_ms,
            counter,
            node,
        }
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:015}-{:08x}-{}",
            self.wall_ms,
            self.counter,
            self.node.simple()
        )
    }
}

impl FromStr for Hlc {
    type Err = SyncError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| SyncError::InvalidClock {
            text: s.to_owned(),
            why,
        };
        if s.len() != 15 + 1 + 8 + 1 + 32 || !s.is_ascii() {
            return Err(bad("wrong length"));
        }
        let (wall, rest) = s.split_at(15);
        let (dash1, rest) = rest.split_at(1);
        let (counter, rest) = rest.split_at(8);
        let (dash2, node) = rest.split_at(1);
        if dash1 != "-" || dash2 != "-" {
            return Err(bad("missing separator"));
        }
        if !wall.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("wall time is not 15 decimal digits"));
        }
        let wall_ms = wall.parse().map_err(|_| bad("wall time"))?;
        if !counter
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad("counter is not 8 lowercase hex digits"));
        }
        let counter = u32::from_str_radix(counter, 16).map_err(|_| bad("counter"))?;
        if !node.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("node is not 32 lowercase hex digits"));
        }
        let node = Uuid::try_parse(node).map_err(|_| bad("node"))?;
        Ok(Hlc::new(wall_ms, counter, node))
    }
}

impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What [`HlcClock::observe`] decided about a remote clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The receiver's clock after observing; use it to order the remote change
    /// when `skewed` is true.
    pub local: Hlc,
    /// True when the remote clock ran ahead by more than the bound and was
    /// not adopted.
    pub skewed: bool,
}

/// The clock state of one node (a phone or a server process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlcClock {
    last: Hlc,
    max_forward_skew_ms: u64,
}

impl HlcClock {
    /// A fresh clock for `node` with the default skew bound.
    pub fn new(node: Uuid) -> Self {
        Self::with_max_skew(node, DEFAULT_MAX_FORWARD_SKEW_MS)
    }

    /// A fresh clock for `node` with an explicit forward-skew bound.
    pub fn with_max_skew(node: Uuid, max_forward_skew_ms: u64) -> Self {
        Self {
            last: Hlc::new(0, 0, node),
            max_forward_skew_ms,
        }
    }

    /// Restores a clock from its last issued value (e.g. after an app restart).
    pub fn resume(last: Hlc, max_forward_skew_ms: u64) -> Self {
        Self {
            last,
            max_forward_skew_ms,
        }
    }

    /// The node id this clock stamps.
    pub fn node(&self) -> Uuid {
        self.last.node
    }

    /// The last clock value issued or adopted.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// The configured forward-skew bound in milliseconds.
    pub fn max_forward_skew_ms(&self) -> u64 {
        self.max_forward_skew_ms
    }

    /// A new clock value for a local event at wall time `now_ms`; strictly
    /// greater than every value issued or observed before.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        let now_ms = now_ms.min(MAX_WALL_MS);
        self.last = if now_ms > self.last.wall_ms {
            Hlc::new(now_ms, 0, self.last.node)
        } else {
            self.bump(self.last.wall_ms, self.last.counter)
        };
        self.last
    }

    /// Receives a remote clock at local wall time `now_ms`. A remote clock no
    /// more than the bound ahead of `now_ms` is merged in as usual for an
    /// HLC; one further ahead is ignored and the result is marked `skewed`.
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) -> Observed {
        let now_ms = now_ms.min(MAX_WALL_MS);
        let skewed = remote.wall_ms > now_ms.saturating_add(self.max_forward_skew_ms);
        if skewed {
            return Observed {
                local: self.tick(now_ms),
                skewed: true,
            };
        }
        let wall = now_ms.max(self.last.wall_ms).max(remote.wall_ms);
        let counter = match (wall == self.last.wall_ms, wall == remote.wall_ms) {
            (true, true) => Some(self.last.counter.max(remote.counter)),
            (true, false) => Some(self.last.counter),
            (false, true) => Some(remote.counter),
            (false, false) => None,
        };
        self.last = match counter {
            Some(c) => self.bump(wall, c),
            None => Hlc::new(wall, 0, self.last.node),
        };
        Observed {
            local: self.last,
            skewed: false,
        }
    }

    /// `(wall, counter + 1)`, rolling into the next millisecond if the
    /// counter is exhausted, so the clock never goes backwards.
    fn bump(&self, wall: u64, counter: u32) -> Hlc {
        match counter.checked_add(1) {
            Some(c) => Hlc::new(wall, c, self.last.node),
            None => Hlc::new(wall + 1, 0, self.last.node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn text_form_sorts_like_the_clock() {
        let a = Hlc::new(5, 0xff, node(9));
        let b = Hlc::new(5, 0x100, node(1));
        let c = Hlc::new(40, 0, node(0));
        assert!(a < b && b < c);
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
        assert_eq!(
            a.to_string(),
            "000000000000005-000000ff-00000000000000000000000000000009"
        );
    }

    #[test]
    fn text_form_round_trips_through_serde() {
        let h = Hlc::new(1_767_225_600_000, 3, node(0xabc));
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Hlc>(&json).unwrap(), h);
        assert!("00-1-2".parse::<Hlc>().is_err());
        assert!(
            "000000000000005-000000FF-00000000000000000000000000000009"
                .parse::<Hlc>()
                .is_err()
        );
    }

    #[test]
    fn tick_is_strictly_monotonic_even_when_the_wall_clock_goes_back() {
        let mut c = HlcClock::new(node(1));
        let a = c.tick(1000);
        let b = c.tick(900);
        let d = c.tick(1000);
        assert!(a < b && b < d);
    }

    #[test]
    fn a_clock_far_ahead_is_not_adopted() {
        let mut server = HlcClock::new(node(1));
        let phone_2030 = Hlc::new(1_900_000_000_000, 0, node(2));
        let seen = server.observe(phone_2030, 1_767_225_600_000);
        assert!(seen.skewed);
        assert_eq!(seen.local.wall_ms, 1_767_225_600_000);
        assert!(seen.local < phone_2030);
    }

    #[test]
    fn a_clock_slightly_ahead_is_adopted_and_one_behind_is_fine() {
        let mut server = HlcClock::new(node(1));
        let ahead = Hlc::new(10_000 + 60_000, 4, node(2));
        let seen = server.observe(ahead, 10_000);
        assert!(!seen.skewed);
        assert!(seen.local > ahead);
        let behind = Hlc::new(1, 0, node(3));
        let seen = server.observe(behind, 10_001);
        assert!(!seen.skewed && seen.local > ahead);
    }

    #[test]
    fn counter_overflow_rolls_into_the_next_millisecond() {
        let mut c = HlcClock::resume(Hlc::new(7, u32::MAX, node(1)), 0);
        assert_eq!(c.tick(7), Hlc::new(8, 0, node(1)));
    }
}
