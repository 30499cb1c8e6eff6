//! Campaign-day counters: how many codes a campaign issued on one local day (the daily cap's
//! fast path; see `src/claim` in the service for the exactness argument).
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_create_campaigns::Campaigns;

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
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_campaign_day_counters_campaign")
                            .from(CampaignDayCounters::Table, CampaignDayCounters::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id),
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
