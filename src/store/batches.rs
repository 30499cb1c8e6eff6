//! Code batch rows: create, read, revoke.
use chrono::{DateTime, Utc};
use entity::code_batches;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
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
/// batch; revoking twice keeps the first time. Also returns how many codes it revoked now.
pub async fn revoke(
    db: &impl ConnectionTrait,
    batch: code_batches::Model,
    now: DateTime<Utc>,
) -> Result<(code_batches::Model, u64), DbErr> {
    let revoked = db
        .execute_raw(statement(
            db,
            "UPDATE codes SET status = ? WHERE batch_id = ? AND status = ?",
            vec![
                (CodeStatus::Revoked as i16).into(),
                batch.id.into(),
                (CodeStatus::Available as i16).into(),
            ],
        ))
        .await?
        .rows_affected();
    if batch.revoked_at.is_some() {
        return Ok((batch, revoked));
    }
    let mut model: code_batches::ActiveModel = batch.into();
    model.revoked_at = Set(Some(now));
    Ok((model.update(db).await?, revoked))
}

/// Up to `limit` batches of the campaign after `after` in id order (UUIDv7: load order).
pub async fn page(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<code_batches::Model>, DbErr> {
    let mut query =
        code_batches::Entity::find().filter(code_batches::Column::CampaignId.eq(campaign_id));
    if let Some(after) = after {
        query = query.filter(code_batches::Column::Id.gt(after));
    }
    query
        .order_by_asc(code_batches::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
