//! The audit trail of operator actions: written in the action's own transaction, read newest
//! first.
use chrono::{DateTime, Utc};
use entity::admin_audit;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

/// One operator action as recorded.
pub struct NewEntry<'a> {
    /// The admin token's id (`Secret::id`), never the token.
    pub actor: &'a str,
    /// `create_campaign`, `update_campaign`, `load_batch` or `revoke_batch`.
    pub action: &'a str,
    pub campaign_id: Uuid,
    pub batch_id: Option<Uuid>,
    /// What changed, as a JSON object.
    pub changes: serde_json::Value,
}

pub async fn record(
    db: &impl ConnectionTrait,
    entry: NewEntry<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    admin_audit::ActiveModel {
        at: Set(now),
        actor: Set(entry.actor.to_owned()),
        action: Set(entry.action.to_owned()),
        campaign_id: Set(entry.campaign_id),
        batch_id: Set(entry.batch_id),
        changes: Set(entry.changes.to_string()),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(drop)
}

/// Up to `limit` entries older than `before` (all when `None`), newest first, of one campaign
/// or of all.
pub async fn page(
    db: &impl ConnectionTrait,
    campaign_id: Option<Uuid>,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<admin_audit::Model>, DbErr> {
    let mut query = admin_audit::Entity::find();
    if let Some(campaign_id) = campaign_id {
        query = query.filter(admin_audit::Column::CampaignId.eq(campaign_id));
    }
    if let Some(before) = before {
        query = query.filter(admin_audit::Column::Id.lt(before));
    }
    query
        .order_by_desc(admin_audit::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
