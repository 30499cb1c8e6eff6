//! Campaign-day counters: how many codes a campaign issued on one local day (the daily cap's
//! fast path; see `src/claim` in the service for the exactness argument).
//!
//! No foreign key to `campaigns`, on purpose: its check would take a shared lock on the
//! campaign row whenever the claim path creates a day's row, and that lock queues behind an
//! operator's PATCH, which itself waits for any upload in progress; claims would stall for the
//! length of an upload. Only the claim path writes here, for campaigns it has just read.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CampaignDayCounters::Table)
                    .if_not_exists()
                    .col(uuid(CampaignDayCounters::CampaignId))
                    .col(date(CampaignDayCounters::Day))
                    .col(integer(CampaignDayCounters::Issued).default(0))
                    .primary_key(
                        Index::create()
                            .col(CampaignDayCounters::CampaignId)
                            .col(CampaignDayCounters::Day),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CampaignDayCounters::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum CampaignDayCounters {
    Table,
    CampaignId,
    Day,
    Issued,
}
