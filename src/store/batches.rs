//! Code batch rows: create, read, revoke.
use chrono::{DateTime, Utc};
use entity::code_batches;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};
use uuid::Uuid;

use super::{CodeStatus, StatusCounts, count_codes_by_status, statement};

pub async fn insert(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    label: Option<String>,
    now: DateTime<Utc>,
) -> Result<code_batches::Model, DbErr> {
    code_batches::ActiveModel {
        id: Set(Uuid::now_v7()),
        campaign_id: Set(campaign_id),
        label: Set(label),
        size: Set(0),
        created_at: Set(now),
        revoked_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn set_size(
    db: &impl ConnectionTrait,
    batch: code_batches::Model,
    size: i64,
) -> Result<code_batches::Model, DbErr> {
    let mut model: code_batches::ActiveModel = batch.into();
    model.size = Set(size);
    model.update(db).await
}

/// The batch `batch_id` if it belongs to `campaign_id`.
pub async fn find(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    batch_id: Uuid,
) -> Result<Option<code_batches::Model>, DbErr> {
    code_batches::Entity::find_by_id(batch_id)
        .filter(code_batches::Column::CampaignId.eq(campaign_id))
        .one(db)
        .await
}

pub async fn status_counts(
    db: &impl ConnectionTrait,
    batch_id: Uuid,
) -> Result<StatusCounts, DbErr> {
    count_codes_by_status(db, "batch_id = ?", batch_id.into()).await
}

/// Marks the batch's still-available codes revoked (issued ones stay issued) and stamps the
/// batch; revoking twice keeps the first time.
pub async fn revoke(
    db: &impl ConnectionTrait,
    batch: code_batches::Model,
    now: DateTime<Utc>,
) -> Result<code_batches::Model, DbErr> {
    db.execute_raw(statement(
        db,
        "UPDATE codes SET status = ? WHERE batch_id = ? AND status = ?",
        vec![
            (CodeStatus::Revoked as i16).into(),
            batch.id.into(),
            (CodeStatus::Available as i16).into(),
        ],
    ))
    .await?;
    if batch.revoked_at.is_some() {
        return Ok(batch);
    }
    let mut model: code_batches::ActiveModel = batch.into();
    model.revoked_at = Set(Some(now));
    model.update(db).await
}
