//! Codes: the serials handed out, with the indexes the claim scan, the per-day count and the
//! one-code-per-user rule rely on.
use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_create_campaigns::Campaigns;
use crate::m20261122_000002_create_code_batches::CodeBatches;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, unique, columns)` of every secondary index on `codes`. A claim changes only the
/// first two of those it touches (`status`, `issue_day`, `issued_to`): every index a claim
/// changes costs the hot path an index delete and insert per code.
const INDEXES: [(&str, bool, &[Codes]); 4] = [
    // The claim scan, `WHERE campaign_id = ? AND status = 0 ORDER BY id LIMIT n` (available
    // codes have no issue day, so `id` order holds), and the exact per-day count near the
    // daily limit, `WHERE campaign_id = ? AND status = 1 AND issue_day = ?`.
    (
        "idx_codes_pick",
        false,
        &[Codes::CampaignId, Codes::Status, Codes::IssueDay, Codes::Id],
    ),
    // One code per user per campaign, as a database fact (NULLs, i.e. unissued codes, repeat).
    (
        "uq_codes_campaign_user",
        true,
        &[Codes::CampaignId, Codes::IssuedTo],
    ),
    // What makes a code unique: loading a code twice into one campaign is a key violation.
    (
        "uq_codes_campaign_code",
        true,
        &[Codes::CampaignId, Codes::Code],
    ),
    // Batch revocation and per-batch counts (status left out: claims never change this one).
    ("idx_codes_batch", false, &[Codes::BatchId]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Codes and user ids compare byte for byte: MySQL's and MariaDB's default collations
        // are case-insensitive, which would make `abc` and `ABC` one code (or one user).
        let (code, issued_to) = if manager.get_database_backend() == DbBackend::MySql {
            (
                ColumnDef::new(Codes::Code)
                    .custom(Alias::new(
                        "VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin",
                    ))
                    .not_null()
                    .to_owned(),
                ColumnDef::new(Codes::IssuedTo)
                    .custom(Alias::new(
                        "VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                    ))
                    .null()
                    .to_owned(),
            )
        } else {
            (
                string_len(Codes::Code, 128),
                string_len_null(Codes::IssuedTo, 128),
            )
        };
        manager
            .create_table(
                Table::create()
                    .table(Codes::Table)
                    .if_not_exists()
                    .col(big_integer(Codes::Id).auto_increment().primary_key())
                    .col(uuid(Codes::CampaignId))
                    .col(uuid(Codes::BatchId))
                    .col(code)
                    .col(small_integer(Codes::Status).default(0))
                    .col(issued_to)
                    .col(date_time_null(Codes::IssuedAt))
                    .col(date_null(Codes::IssueDay))
                    .col(uuid_null(Codes::ClaimId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_codes_campaign")
                            .from(Codes::Table, Codes::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_codes_batch")
                            .from(Codes::Table, Codes::BatchId)
                            .to(CodeBatches::Table, CodeBatches::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, unique, columns) in INDEXES {
            let mut index = Index::create();
            index.name(name).table(Codes::Table);
            for column in columns {
                index.col(*column);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Codes::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Codes {
    Table,
    Id,
    CampaignId,
    BatchId,
    Code,
    Status,
    IssuedTo,
    IssuedAt,
    IssueDay,
    ClaimId,
}
