//! The entities under their table names.
pub use super::admin_audit::Entity as AdminAudit;
pub use super::campaign_day_counters::Entity as CampaignDayCounters;
pub use super::campaigns::Entity as Campaigns;
pub use super::code_batches::Entity as CodeBatches;
pub use super::codes::Entity as Codes;
