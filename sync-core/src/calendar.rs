//! The district's calendar: every day-based decision — register effective
//! dates, a visit after a transfer or an exit, the same-day duplicate
//! check, due and overdue days, reports by day and month — turns an instant
//! into a day through [`Calendar::day`], so phone and server, and one check
//! and another, never disagree about what day it was (DESIGN.md §4c).
//! Midnight in the default zone, `Asia/Shanghai` (UTC+8), is 16:00 UTC.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The zone districts use when none is configured.
pub const DEFAULT_DISTRICT_TIME_ZONE: &str = "Asia/Shanghai";

/// A district's calendar: an IANA time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    zone: Tz,
}

/// A time zone name that is not in the IANA database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IANA time zone name (for example Asia/Shanghai)")]
pub struct UnknownTimeZone(pub String);

impl Default for Calendar {
    fn default() -> Self {
        Self {
            zone: chrono_tz::Asia::Shanghai,
        }
    }
}

impl FromStr for Calendar {
    type Err = UnknownTimeZone;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        name.trim()
            .parse::<Tz>()
            .map(|zone| Self { zone })
            .map_err(|_| UnknownTimeZone(name.to_owned()))
    }
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.zone.name())
    }
}

impl Calendar {
    /// The district's day at `instant`, whatever offset it was written in.
    pub fn day<Z: TimeZone>(&self, instant: &DateTime<Z>) -> NaiveDate {
        instant.with_timezone(&self.zone).date_naive()
    }

    /// The district's day at `ms` milliseconds since the Unix epoch.
    pub fn day_of_ms(&self, ms: i64) -> Option<NaiveDate> {
        DateTime::<Utc>::from_timestamp_millis(ms).map(|at| self.day(&at))
    }

    /// The first instant of `day` in the district (its midnight, or the
    /// first moment after a gap in the zone's clock).
    pub fn start_of(&self, day: NaiveDate) -> DateTime<Utc> {
        let midnight = day.and_time(NaiveTime::MIN);
        match self.zone.from_local_datetime(&midnight) {
            chrono::LocalResult::Single(at) | chrono::LocalResult::Ambiguous(at, _) => {
                at.with_timezone(&Utc)
            }
            // No zone skips more than a day; the first hour that exists.
            chrono::LocalResult::None => (1..=24)
                .find_map(|hour| {
                    self.zone
                        .from_local_datetime(&(midnight + chrono::Duration::hours(hour)))
                        .earliest()
                })
                .map_or_else(|| midnight.and_utc(), |at| at.with_timezone(&Utc)),
        }
    }

    /// `[start, end)` of `day` in the district, as UTC instants.
    pub fn bounds(&self, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let next = day.succ_opt().unwrap_or(day);
        (self.start_of(day), self.start_of(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<chrono::FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn the_day_turns_at_16_00_utc_in_the_default_zone() {
        let calendar = Calendar::default();
        assert_eq!(calendar.to_string(), "Asia/Shanghai");
        let day = |s| calendar.day(&at(s)).to_string();
        assert_eq!(day("2026-12-05T15:59:59Z"), "2026-12-05");
        assert_eq!(day("2026-12-05T16:00:00Z"), "2026-12-06");
        // The same instant written in another offset is the same day.
        assert_eq!(day("2026-12-06T00:00:00+08:00"), "2026-12-06");
        assert_eq!(day("2026-12-05T10:00:00-06:00"), "2026-12-06");
        let (start, end) = calendar.bounds("2026-12-06".parse().unwrap());
        assert_eq!(start.to_rfc3339(), "2026-12-05T16:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-12-06T16:00:00+00:00");
    }

    #[test]
    fn zone_names_are_checked() {
        assert!("Asia/Urumqi".parse::<Calendar>().is_ok());
        assert!("UTC".parse::<Calendar>().is_ok());
        assert_eq!(
            "Asia/Beijing".parse::<Calendar>(),
            Err(UnknownTimeZone("Asia/Beijing".to_owned()))
        );
    }

    #[test]
    fn a_day_with_a_gap_at_midnight_starts_at_its_first_hour() {
        // Havana skips 00:00–01:00 on its spring-forward day.
        let calendar: Calendar = "America/Havana".parse().unwrap();
        let (start, end) = calendar.bounds("2026-03-08".parse().unwrap());
        assert!(start < end);
        assert_eq!(calendar.day(&start).to_string(), "2026-03-08");
    }
}
