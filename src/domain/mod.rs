//! Domain values parsed once at the edge ("parse, don't validate"), and the campaign calendar.
mod calendar;
mod campaign;
mod code;
mod outlook;
mod user_id;

pub use calendar::{Clock, SystemClock, local_day, seconds_until_next_local_midnight};
pub use campaign::{CampaignName, CampaignTimeZone, DailyLimit};
pub use code::{Code, InvalidCode};
pub use outlook::{RecentIssues, StockOutlook, outlook};
pub use user_id::UserId;
