//! The district's calendar for the whole server: the one place an instant
//! becomes a day (DESIGN.md §4c). The zone is the `district_time_zone`
//! setting (IANA name, default `Asia/Shanghai`), checked at start-up and
//! installed once per process, as the identity-number key ring is: the
//! database layer and reports turn instants into days without the state.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Offset, TimeZone, Utc};
pub use sync_core::calendar::Calendar;

static DISTRICT: OnceLock<Calendar> = OnceLock::new();

/// A second, different zone for the same process.
#[derive(Debug, thiserror::Error)]
#[error("this process already uses the district time zone {0}; one process serves one calendar")]
pub struct AlreadyInstalled(pub Calendar);

/// Installs the district's calendar; the same one again is fine.
pub fn install(calendar: Calendar) -> Result<(), AlreadyInstalled> {
    let installed = *DISTRICT.get_or_init(|| calendar);
    if installed == calendar {
        Ok(())
    } else {
        Err(AlreadyInstalled(installed))
    }
}

/// The district's calendar (the default zone until one is installed).
pub fn district() -> Calendar {
    DISTRICT.get().copied().unwrap_or_default()
}

/// Today in the district.
pub fn today() -> NaiveDate {
    day_of(Utc::now())
}

/// The district's day at `at`.
pub fn day_of<Z: TimeZone>(at: DateTime<Z>) -> NaiveDate {
    district().day(&at)
}

/// The first instant of `day` in the district.
pub fn start_of(day: NaiveDate) -> DateTime<Utc> {
    district().start_of(day)
}

/// The district's offset from UTC in seconds at `at`, for grouping by day
/// or month inside SQL (exact for zones without daylight saving time, as
/// all of China's).
pub fn offset_secs_at(at: DateTime<Utc>) -> i32 {
    let zone: chrono_tz::Tz = district()
        .to_string()
        .parse()
        .unwrap_or(chrono_tz::Asia::Shanghai);
    zone.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
}
