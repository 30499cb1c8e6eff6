//! Campaign-day counter reads for the admin view (the claim path writes them; see `claim`).
use chrono::NaiveDate;
use entity::campaign_day_counters;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};
use uuid::Uuid;

/// Codes the campaign issued on `day` according to its counter (0 when no row exists yet).
pub async fn issued_on(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    day: NaiveDate,
) -> Result<i64, DbErr> {
    Ok(
        campaign_day_counters::Entity::find_by_id((campaign_id, day))
            .one(db)
            .await?
            .map_or(0, |row| i64::from(row.issued)),
    )
}
