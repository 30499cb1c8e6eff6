//! How fast a campaign is issuing codes lately, and when its stock runs out at that pace.
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// How far back the recent claim rate looks.
pub const RATE_WINDOW: Duration = Duration::hours(24);
/// The shortest window a rate is computed over, so that the first claims of a campaign
/// opened seconds ago do not read as thousands per hour.
const SHORTEST_WINDOW: Duration = Duration::minutes(1);

/// What a campaign's counters say about its pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StockOutlook {
    /// Codes issued per hour over the last 24 hours (or since the campaign opened, if later).
    pub claims_per_hour: f64,
    /// When the available codes run out at that rate: `now` when none is left, `None` when
    /// nothing was issued in the window (no rate to extrapolate).
    pub runs_out_at: Option<DateTime<Utc>>,
}

impl StockOutlook {
    /// Seconds until the stock runs out (0 when it has), `None` without a rate.
    pub fn seconds_left(&self, now: DateTime<Utc>) -> Option<f64> {
        self.runs_out_at
            .map(|at| ((at - now).num_milliseconds() as f64 / 1000.0).max(0.0))
    }
}

/// The campaign's counters as the outlook needs them.
#[derive(Debug, Clone, Copy)]
pub struct RecentIssues {
    /// When claims could first be made: the later of creation and `starts_at`.
    pub opened_at: DateTime<Utc>,
    /// Codes issued on the current local day.
    pub today: i64,
    /// Codes issued on the local day before.
    pub yesterday: i64,
    /// Codes still available.
    pub available: i64,
}

/// The first instant of local day `day` in `tz` (where a DST change skips midnight, the first
/// instant that day has).
fn start_of(day: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    (0..24 * 60).find_map(|minute| {
        let local = day.and_hms_opt(0, 0, 0)? + Duration::minutes(minute);
        tz.from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// The recent rate from the day counters: today's issues all fall in the 24-hour window;
/// yesterday's count only in proportion to the part of yesterday (while the campaign was open)
/// that the window covers, taking its issues as spread evenly over that time.
pub fn outlook(now: DateTime<Utc>, tz: Tz, recent: RecentIssues) -> StockOutlook {
    let today = super::local_day(now, tz);
    let today_start = start_of(today, tz).unwrap_or(now);
    let yesterday_start = today
        .pred_opt()
        .and_then(|day| start_of(day, tz))
        .unwrap_or(today_start - Duration::days(1));
    let window_start = (now - RATE_WINDOW).max(recent.opened_at);
    let yesterday_open_from = yesterday_start.max(recent.opened_at);
    let yesterday_share = if today_start > yesterday_open_from {
        let covered = (today_start - window_start.max(yesterday_open_from)).max(Duration::zero());
        covered.num_seconds() as f64 / (today_start - yesterday_open_from).num_seconds() as f64
    } else {
        0.0
    };
    let issued = recent.today as f64 + recent.yesterday as f64 * yesterday_share;
    let window = (now - window_start).max(SHORTEST_WINDOW);
    let per_second = issued / window.num_seconds() as f64;
    let runs_out_at = if recent.available <= 0 {
        Some(now)
    } else if per_second > 0.0 {
        let seconds = (recent.available as f64 / per_second).min(1e11);
        Some(now + Duration::milliseconds((seconds * 1000.0) as i64))
    } else {
        None
    };
    StockOutlook {
        claims_per_hour: per_second * 3600.0,
        runs_out_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn issues(opened_at: &str, today: i64, yesterday: i64, available: i64) -> RecentIssues {
        RecentIssues {
            opened_at: utc(opened_at),
            today,
            yesterday,
            available,
        }
    }

    #[test]
    fn a_campaign_open_for_days_is_measured_over_the_last_24_hours() {
        // 06:00 UTC: the window covers today's 6 hours and yesterday's last 18 of 24.
        let now = utc("2026-11-23T06:00:00Z");
        let view = outlook(
            now,
            Tz::UTC,
            issues("2026-11-01T00:00:00Z", 600, 2400, 10_000),
        );
        assert_eq!(view.claims_per_hour, (600.0 + 2400.0 * 0.75) / 24.0);
        assert_eq!(view.runs_out_at, Some(now + Duration::hours(100)));
        assert_eq!(view.seconds_left(now), Some(360_000.0));
    }

    #[test]
    fn a_campaign_opened_an_hour_ago_is_measured_over_that_hour() {
        let now = utc("2026-11-23T12:00:00Z");
        let view = outlook(now, Tz::UTC, issues("2026-11-23T11:00:00Z", 300, 0, 150));
        assert_eq!(view.claims_per_hour, 300.0);
        assert_eq!(view.runs_out_at, Some(utc("2026-11-23T12:30:00Z")));
    }

    #[test]
    fn yesterday_counts_only_for_the_time_the_campaign_was_open() {
        // Opened yesterday at 18:00: all of yesterday's 600 fall inside the window.
        let now = utc("2026-11-23T06:00:00Z");
        let view = outlook(now, Tz::UTC, issues("2026-11-22T18:00:00Z", 0, 600, 1));
        assert_eq!(view.claims_per_hour, 600.0 / 12.0);
    }

    #[test]
    fn no_issues_means_no_estimate_and_no_stock_means_out_now() {
        let now = utc("2026-11-23T06:00:00Z");
        let idle = outlook(now, Tz::UTC, issues("2026-11-01T00:00:00Z", 0, 0, 10));
        assert_eq!((idle.claims_per_hour, idle.runs_out_at), (0.0, None));
        let empty = outlook(now, Tz::UTC, issues("2026-11-01T00:00:00Z", 0, 0, 0));
        assert_eq!(empty.runs_out_at, Some(now));
        assert_eq!(empty.seconds_left(now), Some(0.0));
    }

    #[test]
    fn the_local_day_of_the_campaign_splits_the_window() {
        // 00:00 UTC is 09:00 in Tokyo: today (Tokyo) has 9 hours in the window.
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let now = utc("2026-11-23T00:00:00Z");
        let view = outlook(now, tokyo, issues("2026-11-01T00:00:00Z", 90, 240, 1000));
        assert_eq!(view.claims_per_hour, (90.0 + 240.0 * 15.0 / 24.0) / 24.0);
    }
}
