//! Campaign settings: name, daily limit, time zone.
use std::str::FromStr;

/// A campaign name: 1..=200 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignName(String);

impl CampaignName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if raw.trim().is_empty() || chars > 200 {
            return Err("name must be 1..=200 characters and not blank".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// How many codes a campaign may issue per local day: 0..=1,000,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyLimit(i32);

impl DailyLimit {
    pub const MAX: i64 = 1_000_000_000;

    pub fn parse(raw: i64) -> Result<Self, String> {
        if !(0..=Self::MAX).contains(&raw) {
            return Err(format!("daily_limit must be 0..={}, got {raw}", Self::MAX));
        }
        Ok(Self(raw as i32))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// An IANA time zone such as `Asia/Tokyo`; a campaign's days run midnight to midnight in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignTimeZone(chrono_tz::Tz);

impl CampaignTimeZone {
    pub fn parse(raw: &str) -> Result<Self, String> {
        chrono_tz::Tz::from_str(raw)
            .map(Self)
            .map_err(|_| format!("time_zone must be an IANA time zone name, got {raw:?}"))
    }

    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_limit_accepts_zero_to_a_billion() {
        assert_eq!(DailyLimit::parse(0).unwrap().get(), 0);
        assert_eq!(
            DailyLimit::parse(1_000_000_000).unwrap().get(),
            1_000_000_000
        );
        assert!(DailyLimit::parse(-1).is_err());
        assert!(DailyLimit::parse(1_000_000_001).is_err());
    }

    #[test]
    fn time_zone_accepts_iana_names_only() {
        assert_eq!(
            CampaignTimeZone::parse("Asia/Tokyo").unwrap().name(),
            "Asia/Tokyo"
        );
        assert!(CampaignTimeZone::parse("UTC").is_ok());
        assert!(CampaignTimeZone::parse("Mars/Olympus").is_err());
        assert!(CampaignTimeZone::parse("+09:00").is_err());
    }

    #[test]
    fn campaign_name_refuses_blank_and_long_names() {
        assert!(CampaignName::parse("Spring sale").is_ok());
        assert!(CampaignName::parse("   ").is_err());
        assert!(CampaignName::parse(&"n".repeat(201)).is_err());
    }
}
