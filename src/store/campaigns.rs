//! Campaign rows: create, read, change.
use chrono::{DateTime, Utc};
use entity::campaigns;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use crate::domain::{CampaignName, CampaignTimeZone, DailyLimit};

/// A campaign as an operator creates it.
pub struct NewCampaign {
    pub name: CampaignName,
    pub daily_limit: Option<DailyLimit>,
    pub time_zone: CampaignTimeZone,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// The changes an operator can make; `None` leaves a field as it is.
#[derive(Default)]
pub struct CampaignChanges {
    pub daily_limit: Option<Option<DailyLimit>>,
    pub ends_at: Option<Option<DateTime<Utc>>>,
    pub active: Option<bool>,
}

pub async fn insert(
    db: &impl ConnectionTrait,
    new: NewCampaign,
    now: DateTime<Utc>,
) -> Result<campaigns::Model, DbErr> {
    let model = campaigns::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(new.name.into_string()),
        daily_limit: Set(new.daily_limit.map(DailyLimit::get)),
        time_zone: Set(new.time_zone.name().to_owned()),
        starts_at: Set(new.starts_at),
        ends_at: Set(new.ends_at),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    };
    model.insert(db).await
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<campaigns::Model>, DbErr> {
    campaigns::Entity::find_by_id(id).one(db).await
}

pub async fn update(
    db: &impl ConnectionTrait,
    current: campaigns::Model,
    changes: CampaignChanges,
    now: DateTime<Utc>,
) -> Result<campaigns::Model, DbErr> {
    let mut model: campaigns::ActiveModel = current.into();
    if let Some(limit) = changes.daily_limit {
        model.daily_limit = Set(limit.map(DailyLimit::get));
    }
    if let Some(ends_at) = changes.ends_at {
        model.ends_at = Set(ends_at);
    }
    if let Some(active) = changes.active {
        model.active = Set(active);
    }
    model.updated_at = Set(now);
    model.update(db).await
}

/// Up to `limit` campaigns after `after` in id order (ids are UUIDv7: creation order), with
/// the `active` flag `active` when given.
pub async fn page(
    db: &impl ConnectionTrait,
    active: Option<bool>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<campaigns::Model>, DbErr> {
    let mut query = campaigns::Entity::find();
    if let Some(active) = active {
        query = query.filter(campaigns::Column::Active.eq(active));
    }
    if let Some(after) = after {
        query = query.filter(campaigns::Column::Id.gt(after));
    }
    query
        .order_by_asc(campaigns::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
