//! Drops the foreign keys from `codes` and `code_batches` to `campaigns` (MySQL/MariaDB).
//!
//! InnoDB checks a foreign key with a shared lock on the parent row, held to the end of the
//! transaction: an upload held one on its campaign for its whole length (every inserted code
//! and the batch row checked it), and every claim took one too (issuing changes columns of
//! `idx_codes_pick`, the index that served `codes → campaigns`). An operator's PATCH, which
//! needs the campaign row exclusively, then waited for the upload, and every claim queued
//! behind the PATCH. The claim path now takes the campaign row's shared lock itself, for the
//! length of one short transaction (`claim::queries::locked_daily_limit`).
//!
//! Referential integrity by other means: campaigns are never deleted (there is no route or
//! statement that deletes one), and a batch is written only after its campaign was read in
//! the same request. `codes → code_batches` stays: claims never change its index.
//! SQLite keeps its keys: it has no row locks, and it cannot drop a foreign key in place.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20261122_000001_create_campaigns::Campaigns;
use crate::m20261122_000002_create_code_batches::CodeBatches;
use crate::m20261122_000003_create_codes::Codes;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        manager
            .drop_foreign_key(
                ForeignKey::drop()
                    .name("fk_codes_campaign")
                    .table(Codes::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_foreign_key(
                ForeignKey::drop()
                    .name("fk_code_batches_campaign")
                    .table(CodeBatches::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        manager
            .create_foreign_key(
                ForeignKey::create()
                    .name("fk_codes_campaign")
                    .from(Codes::Table, Codes::CampaignId)
                    .to(Campaigns::Table, Campaigns::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_foreign_key(
                ForeignKey::create()
                    .name("fk_code_batches_campaign")
                    .from(CodeBatches::Table, CodeBatches::CampaignId)
                    .to(Campaigns::Table, Campaigns::Id)
                    .to_owned(),
            )
            .await
    }
}
