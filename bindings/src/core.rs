//! sync-core's clock and due-date rules for foreign code, unchanged: the
//! hybrid logical clock ([`HlcClock`], its text form and order), the
//! district's day of an instant, and `due_date` / `due_status`. Dates are
//! `YYYY-MM-DD` text, clocks their sortable text form
//! (`{wall_ms:015}-{counter:08x}-{node}`), ids UUID text.

use std::{collections::HashMap, str::FromStr, sync::Mutex};

use chrono::NaiveDate;
use sync_core::{
    calendar::Calendar,
    clock::{self, Hlc},
    semantic,
};
use uuid::Uuid;

use crate::SeedlingError;

pub(crate) fn parse_hlc(text: &str) -> Result<Hlc, SeedlingError> {
    Hlc::from_str(text).map_err(SeedlingError::input)
}

pub(crate) fn parse_uuid(text: &str) -> Result<Uuid, SeedlingError> {
    Uuid::try_parse(text.trim()).map_err(|e| SeedlingError::input(format!("`{text}`: {e}")))
}

pub(crate) fn parse_day(text: &str) -> Result<NaiveDate, SeedlingError> {
    NaiveDate::from_str(text.trim())
        .map_err(|e| SeedlingError::input(format!("`{text}` is not a YYYY-MM-DD date: {e}")))
}

pub(crate) fn parse_calendar(time_zone: &str) -> Result<Calendar, SeedlingError> {
    Calendar::from_str(time_zone).map_err(SeedlingError::input)
}

/// The parts of a clock value.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HlcParts {
    /// Milliseconds since the Unix epoch (as the writer's clock saw it, or later).
    pub wall_ms: u64,
    /// Logical counter within the millisecond.
    pub counter: u32,
    /// The node (device) that made it, UUID text.
    pub node: String,
}

/// What [`HlcClock::observe`] decided about a remote clock.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Observed {
    /// The receiver's clock after observing.
    pub local: String,
    /// True when the remote clock ran more than the bound ahead and was
    /// not adopted.
    pub skewed: bool,
}

/// The clock state of one node: sync-core's `HlcClock`. Time is passed in.
#[derive(Debug, uniffi::Object)]
pub struct HlcClock {
    inner: Mutex<clock::HlcClock>,
}

#[uniffi::export]
impl HlcClock {
    /// A fresh clock for `node` (UUID text) with a forward-skew bound.
    #[uniffi::constructor]
    pub fn new(node: String, max_forward_skew_ms: u64) -> Result<Self, SeedlingError> {
        Ok(Self {
            inner: Mutex::new(clock::HlcClock::with_max_skew(
                parse_uuid(&node)?,
                max_forward_skew_ms,
            )),
        })
    }

    /// A clock resumed from its last issued value (after a restart).
    #[uniffi::constructor]
    pub fn resume(last: String, max_forward_skew_ms: u64) -> Result<Self, SeedlingError> {
        Ok(Self {
            inner: Mutex::new(clock::HlcClock::resume(
                parse_hlc(&last)?,
                max_forward_skew_ms,
            )),
        })
    }

    /// A new value for a local event at wall time `now_ms`, greater than
    /// every value issued or observed before.
    pub fn tick(&self, now_ms: u64) -> String {
        self.with(|c| c.tick(now_ms)).to_string()
    }

    /// Receives a remote clock (text) at local wall time `now_ms`.
    pub fn observe(&self, remote: String, now_ms: u64) -> Result<Observed, SeedlingError> {
        let remote = parse_hlc(&remote)?;
        let seen = self.with(|c| c.observe(remote, now_ms));
        Ok(Observed {
            local: seen.local.to_string(),
            skewed: seen.skewed,
        })
    }

    /// The last value issued or adopted.
    pub fn last(&self) -> String {
        self.with(|c| c.last()).to_string()
    }
}

impl HlcClock {
    fn with<T>(&self, f: impl FnOnce(&mut clock::HlcClock) -> T) -> T {
        // A panic cannot leave a clock half-updated (each step is one
        // assignment), so a poisoned lock is still a valid clock.
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

/// The default bound on how far a remote clock may run ahead (5 minutes).
#[uniffi::export]
pub fn default_max_forward_skew_ms() -> u64 {
    clock::DEFAULT_MAX_FORWARD_SKEW_MS
}

/// The parts of a clock's text form; refuses a malformed one.
#[uniffi::export]
pub fn hlc_parse(text: String) -> Result<HlcParts, SeedlingError> {
    let hlc = parse_hlc(&text)?;
    Ok(HlcParts {
        wall_ms: hlc.wall_ms,
        counter: hlc.counter,
        node: hlc.node.simple().to_string(),
    })
}

/// The text form of a clock value.
#[uniffi::export]
pub fn hlc_format(parts: HlcParts) -> Result<String, SeedlingError> {
    if parts.wall_ms > clock::MAX_WALL_MS {
        return Err(SeedlingError::input(
            "wall_ms beyond the text form's 15 digits",
        ));
    }
    Ok(Hlc::new(parts.wall_ms, parts.counter, parse_uuid(&parts.node)?).to_string())
}

/// -1, 0 or 1 as clock `a` orders before, with or after `b`.
#[uniffi::export]
pub fn hlc_compare(a: String, b: String) -> Result<i8, SeedlingError> {
    Ok(match parse_hlc(&a)?.cmp(&parse_hlc(&b)?) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    })
}

/// The district's day (`YYYY-MM-DD`) at `ms` since the Unix epoch, in the
/// IANA zone `time_zone` (the session's `district_time_zone`).
#[uniffi::export]
pub fn district_day(ms: i64, time_zone: String) -> Result<String, SeedlingError> {
    parse_calendar(&time_zone)?
        .day_of_ms(ms)
        .map(|d| d.to_string())
        .ok_or_else(|| SeedlingError::input(format!("{ms} ms is out of range")))
}

/// Visiting interval in days per child category.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VisitIntervals {
    /// Days per category code.
    pub by_category: HashMap<String, u32>,
    /// Days for a category not listed.
    pub fallback_days: u32,
}

impl From<semantic::VisitIntervals> for VisitIntervals {
    fn from(v: semantic::VisitIntervals) -> Self {
        Self {
            by_category: v.by_category.into_iter().collect(),
            fallback_days: v.fallback_days,
        }
    }
}

impl From<VisitIntervals> for semantic::VisitIntervals {
    fn from(v: VisitIntervals) -> Self {
        Self {
            by_category: v.by_category.into_iter().collect(),
            fallback_days: v.fallback_days,
        }
    }
}

/// The assumed defaults (the district configures its own).
#[uniffi::export]
pub fn default_visit_intervals() -> VisitIntervals {
    semantic::VisitIntervals::default().into()
}

/// What the due-date rule needs to know about a child.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DueInput {
    /// Category code.
    pub category: String,
    /// True while the child is on the register.
    pub active: bool,
    /// The child's own interval, if set.
    pub interval_override_days: Option<u32>,
    /// The day the child was added to the register.
    pub registered_on: String,
    /// The day of the last visit that counts.
    pub last_visit_on: Option<String>,
}

impl TryFrom<DueInput> for semantic::DueInput {
    type Error = SeedlingError;

    fn try_from(v: DueInput) -> Result<Self, SeedlingError> {
        Ok(Self {
            category: v.category,
            active: v.active,
            interval_override_days: v.interval_override_days,
            registered_on: parse_day(&v.registered_on)?,
            last_visit_on: v.last_visit_on.as_deref().map(parse_day).transpose()?,
        })
    }
}

/// Where a child stands for its next visit.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum DueStatus {
    /// Not due yet.
    Upcoming {
        /// The due date.
        due: String,
        /// Days until then.
        days_left: i64,
    },
    /// Due today.
    DueToday {
        /// The due date.
        due: String,
    },
    /// Past due (逾期未走访).
    Overdue {
        /// The due date.
        due: String,
        /// Days since then.
        days_overdue: i64,
    },
    /// Exited children are not visited.
    NotTracked,
}

impl From<semantic::DueStatus> for DueStatus {
    fn from(s: semantic::DueStatus) -> Self {
        match s {
            semantic::DueStatus::Upcoming { due, days_left } => DueStatus::Upcoming {
                due: due.to_string(),
                days_left,
            },
            semantic::DueStatus::DueToday { due } => DueStatus::DueToday {
                due: due.to_string(),
            },
            semantic::DueStatus::Overdue { due, days_overdue } => DueStatus::Overdue {
                due: due.to_string(),
                days_overdue,
            },
            semantic::DueStatus::NotTracked => DueStatus::NotTracked,
        }
    }
}

/// The date the next visit is due.
#[uniffi::export]
pub fn due_date(child: DueInput, intervals: VisitIntervals) -> Result<String, SeedlingError> {
    let child = semantic::DueInput::try_from(child)?;
    Ok(semantic::due_date(&child, &intervals.into()).to_string())
}

/// The due status of a child on `today` (`YYYY-MM-DD`).
#[uniffi::export]
pub fn due_status(
    child: DueInput,
    today: String,
    intervals: VisitIntervals,
) -> Result<DueStatus, SeedlingError> {
    let child = semantic::DueInput::try_from(child)?;
    Ok(semantic::due_status(&child, parse_day(&today)?, &intervals.into()).into())
}
