//! A code exists once in the whole service, not once per campaign: a gift-certificate code is
//! a bearer credential, and the same string loaded into two campaigns could be issued to two
//! users. The per-campaign unique index gives way to one on `code` alone (which implies it).
//!
//! On a database that already holds one code in two campaigns this migration fails on the
//! new index; find them with
//! `SELECT code FROM codes GROUP BY code HAVING COUNT(*) > 1` and revoke or remove one copy.
use sea_orm_migration::prelude::*;

use crate::m20261122_000003_create_codes::Codes;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("uq_codes_code")
                    .table(Codes::Table)
                    .col(Codes::Code)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("uq_codes_campaign_code")
                    .table(Codes::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("uq_codes_campaign_code")
                    .table(Codes::Table)
                    .col(Codes::CampaignId)
                    .col(Codes::Code)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("uq_codes_code")
                    .table(Codes::Table)
                    .to_owned(),
            )
            .await
    }
}
