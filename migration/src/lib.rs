//! The database schema of giftcodes, as ordered migrations (MySQL 8.0 / Aurora, MariaDB, SQLite).
pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_campaigns;
mod m20261122_000002_create_code_batches;
mod m20261122_000003_create_codes;
mod m20261122_000004_create_campaign_day_counters;
mod m20261123_000005_codes_unique_in_the_service;
mod m20261123_000006_no_campaign_foreign_keys;
mod m20261124_000007_create_admin_audit;

/// Every migration of the service, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_campaigns::Migration),
            Box::new(m20261122_000002_create_code_batches::Migration),
            Box::new(m20261122_000003_create_codes::Migration),
            Box::new(m20261122_000004_create_campaign_day_counters::Migration),
            Box::new(m20261123_000005_codes_unique_in_the_service::Migration),
            Box::new(m20261123_000006_no_campaign_foreign_keys::Migration),
            Box::new(m20261124_000007_create_admin_audit::Migration),
        ]
    }
}
