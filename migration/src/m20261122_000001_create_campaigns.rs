//! Campaigns: the unit that owns codes, a daily limit and a time zone.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .if_not_exists()
                    .col(uuid(Campaigns::Id).primary_key())
                    .col(string_len(Campaigns::Name, 200))
                    .col(integer_null(Campaigns::DailyLimit))
                    .col(string_len(Campaigns::TimeZone, 64))
                    .col(date_time_null(Campaigns::StartsAt))
                    .col(date_time_null(Campaigns::EndsAt))
                    .col(boolean(Campaigns::Active))
                    .col(date_time(Campaigns::CreatedAt))
                    .col(date_time(Campaigns::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Campaigns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Campaigns {
    Table,
    Id,
    Name,
    DailyLimit,
    TimeZone,
    StartsAt,
    EndsAt,
    Active,
    CreatedAt,
    UpdatedAt,
}
