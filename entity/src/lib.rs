//! sea-orm entities of the giftcodes schema, in the shape `sea-orm-cli generate entity` writes
//! them from the migrations; regenerate rather than hand-edit.
pub mod admin_audit;
pub mod campaign_day_counters;
pub mod campaigns;
pub mod code_batches;
pub mod codes;
pub mod prelude;
