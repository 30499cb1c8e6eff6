//! Code batches: one upload of codes into a campaign, revocable as a whole.
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
                    .table(CodeBatches::Table)
                    .if_not_exists()
                    .col(uuid(CodeBatches::Id).primary_key())
                    .col(uuid(CodeBatches::CampaignId))
                    .col(string_len_null(CodeBatches::Label, 200))
                    .col(big_integer(CodeBatches::Size))
                    .col(date_time(CodeBatches::CreatedAt))
                    .col(date_time_null(CodeBatches::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_code_batches_campaign")
                            .from(CodeBatches::Table, CodeBatches::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_code_batches_campaign")
                    .table(CodeBatches::Table)
                    .col(CodeBatches::CampaignId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CodeBatches::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum CodeBatches {
    Table,
    Id,
    CampaignId,
    Label,
    Size,
    CreatedAt,
    RevokedAt,
}
