//! The campaign calendar: what "now" is (injectable), which local day it falls on, and how long
//! until that day ends.
use chrono::{DateTime, Duration, NaiveDate, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;

/// Where the service reads the time from; tests inject a settable one.
///
/// Claims do not use this machine's clock: the day a claim counts against, the campaign's
/// window and `Retry-After` come from the database's clock, read with the campaign in the
/// claim round, so every instance agrees whatever its own clock says. Only a test pins that
/// instant (`pinned`).
pub trait Clock: Send + Sync + 'static {
    /// The current instant, truncated to whole seconds (what the database stores), for
    /// records such as `created_at`.
    fn now(&self) -> DateTime<Utc>;

    /// An instant that replaces the database's clock for claims and the campaign view; `None`
    /// (the service's clock): the database decides.
    fn pinned(&self) -> Option<DateTime<Utc>> {
        None
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(0)
    }
}

/// The local calendar date of `now` in `tz`: the day a claim counts against.
pub fn local_day(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// Whole seconds from `now` until the next local midnight in `tz` (at least 1). Where a
/// daylight-saving change skips midnight, the day ends at the first instant of the next day.
pub fn seconds_until_next_local_midnight(now: DateTime<Utc>, tz: Tz) -> u64 {
    let next_day = local_day(now, tz) + Duration::days(1);
    let start_of_next_day = (0..24 * 60)
        .find_map(|minute| {
            let local = next_day.and_hms_opt(0, 0, 0)? + Duration::minutes(minute);
            tz.from_local_datetime(&local).earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now + Duration::days(1));
    (start_of_next_day - now).num_seconds().max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_last_second_and_the_first_second_of_a_local_day_differ() {
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert_eq!(
            local_day(utc("2026-11-22T14:59:59Z"), tokyo),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
        );
        assert_eq!(
            local_day(utc("2026-11-22T15:00:00Z"), tokyo),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
    }

    #[test]
    fn new_york_rolls_over_at_its_own_midnight() {
        let new_york: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            local_day(utc("2026-11-23T04:59:59Z"), new_york),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
        );
        assert_eq!(
            local_day(utc("2026-11-23T05:00:00Z"), new_york),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
    }

    #[test]
    fn seconds_until_midnight_counts_to_the_local_day_end() {
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert_eq!(
            seconds_until_next_local_midnight(utc("2026-11-22T14:59:59Z"), tokyo),
            1
        );
        assert_eq!(
            seconds_until_next_local_midnight(utc("2026-11-22T15:00:00Z"), tokyo),
            86_400
        );
    }

    #[test]
    fn a_daylight_saving_day_is_23_hours_long() {
        let new_york: Tz = "America/New_York".parse().unwrap();
        // 2026-03-08 is the spring-forward day in New York: midnight to midnight is 23 h.
        assert_eq!(
            seconds_until_next_local_midnight(utc("2026-03-08T05:00:00Z"), new_york),
            23 * 3600
        );
    }

    #[test]
    fn a_zone_that_skips_midnight_ends_the_day_at_the_first_valid_instant() {
        // Santiago sprang forward at local midnight on 2022-09-11 (00:00 became 01:00).
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let before = utc("2022-09-11T03:59:00Z");
        assert_eq!(seconds_until_next_local_midnight(before, santiago), 60);
    }
}
