//! The audit trail of operator actions: who (the admin token's id, never the token), when,
//! what (create, update, upload, revoke) and the change itself as a JSON object.
//!
//! No foreign key to `campaigns`, like the other tables since migration 6: its check would
//! share-lock the campaign row inside the operator's transaction.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AdminAudit::Table)
                    .if_not_exists()
                    .col(big_integer(AdminAudit::Id).auto_increment().primary_key())
                    .col(date_time(AdminAudit::At))
                    .col(string_len(AdminAudit::Actor, 64))
                    .col(string_len(AdminAudit::Action, 32))
                    .col(uuid(AdminAudit::CampaignId))
                    .col(uuid_null(AdminAudit::BatchId))
                    .col(text(AdminAudit::Changes))
                    .to_owned(),
            )
            .await?;
        // One campaign's trail, newest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_admin_audit_campaign")
                    .table(AdminAudit::Table)
                    .col(AdminAudit::CampaignId)
                    .col(AdminAudit::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AdminAudit::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum AdminAudit {
    Table,
    Id,
    At,
    Actor,
    Action,
    CampaignId,
    BatchId,
    Changes,
}
