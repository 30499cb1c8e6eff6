//! Stock of several campaigns or batches in a few statements: code counts by status and the
//! recent day counters, for listings, the campaign view and the metrics scrape.
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use entity::campaigns;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
};
use uuid::Uuid;

use super::{CodeStatus, StatusCounts, placeholders, statement};

/// Counts codes by status for each of `ids`, grouped by `column` (`campaign_id` or
/// `batch_id`); ids without codes are absent.
async fn counts_by(
    db: &impl ConnectionTrait,
    column: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, StatusCounts>, DbErr> {
    let mut counts: HashMap<Uuid, StatusCounts> = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(counts);
    }
    let values: Vec<Value> = ids.iter().map(|id| Value::from(*id)).collect();
    let rows = db
        .query_all_raw(statement(
            db,
            format!(
                "SELECT {column}, status, COUNT(*) FROM codes WHERE {column} IN {} \
                 GROUP BY {column}, status",
                placeholders(ids.len())
            ),
            values,
        ))
        .await?;
    for row in rows {
        let id: Uuid = row.try_get_by_index(0)?;
        let status: i16 = row.try_get_by_index(1)?;
        let count: i64 = row.try_get_by_index(2)?;
        let entry = counts.entry(id).or_default();
        match CodeStatus::from_db(status) {
            Some(CodeStatus::Available) => entry.available = count,
            Some(CodeStatus::Issued) => entry.issued = count,
            Some(CodeStatus::Revoked) => entry.revoked = count,
            None => {}
        }
    }
    Ok(counts)
}

/// Codes by status per campaign.
pub async fn campaign_counts(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, StatusCounts>, DbErr> {
    counts_by(db, "campaign_id", ids).await
}

/// Available codes per campaign without counting them: loaded (the batches' sizes) less issued
/// (the day counters, which equal the issued codes of their day) less revoked (counted: few).
/// Counting available codes reads one index entry per code, ~0.3 s of database time per
/// scrape for a 2,000,000-code campaign; this reads a row per batch and per day.
pub async fn campaign_available(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, i64>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sum_by_campaign = |sql: String, extra: Option<Value>| {
        let mut values: Vec<Value> = ids.iter().map(|id| Value::from(*id)).collect();
        values.extend(extra);
        async move {
            let rows = db.query_all_raw(statement(db, sql, values)).await?;
            rows.into_iter()
                .map(|row| {
                    let id: Uuid = row.try_get_by_index(0)?;
                    // SUM is DECIMAL on MySQL; cast to a signed integer in SQL.
                    let total: i64 = row.try_get_by_index(1)?;
                    Ok((id, total))
                })
                .collect::<Result<HashMap<Uuid, i64>, DbErr>>()
        }
    };
    let list = placeholders(ids.len());
    let loaded = sum_by_campaign(
        format!(
            "SELECT campaign_id, CAST(SUM(size) AS SIGNED) FROM code_batches \
             WHERE campaign_id IN {list} GROUP BY campaign_id"
        ),
        None,
    )
    .await?;
    let issued = sum_by_campaign(
        format!(
            "SELECT campaign_id, CAST(SUM(issued) AS SIGNED) FROM campaign_day_counters \
             WHERE campaign_id IN {list} GROUP BY campaign_id"
        ),
        None,
    )
    .await?;
    let revoked = sum_by_campaign(
        format!(
            "SELECT campaign_id, COUNT(*) FROM codes WHERE campaign_id IN {list} AND status = ? \
             GROUP BY campaign_id"
        ),
        Some((CodeStatus::Revoked as i16).into()),
    )
    .await?;
    let of = |map: &HashMap<Uuid, i64>, id| map.get(id).copied().unwrap_or(0);
    Ok(ids
        .iter()
        .map(|id| {
            let left = of(&loaded, id) - of(&issued, id) - of(&revoked, id);
            (*id, left.max(0))
        })
        .collect())
}

/// Codes by status per batch.
pub async fn batch_counts(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, StatusCounts>, DbErr> {
    counts_by(db, "batch_id", ids).await
}

/// The day counters of `ids` from `since` on, by (campaign, day).
pub async fn day_counters_since(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    since: NaiveDate,
) -> Result<HashMap<(Uuid, NaiveDate), i64>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut values: Vec<Value> = ids.iter().map(|id| Value::from(*id)).collect();
    values.push(since.into());
    let rows = db
        .query_all_raw(statement(
            db,
            format!(
                "SELECT campaign_id, day, issued FROM campaign_day_counters \
                 WHERE campaign_id IN {} AND day >= ?",
                placeholders(ids.len())
            ),
            values,
        ))
        .await?;
    rows.into_iter()
        .map(|row| {
            let issued: i32 = row.try_get_by_index(2)?;
            Ok((
                (row.try_get_by_index(0)?, row.try_get_by_index(1)?),
                i64::from(issued),
            ))
        })
        .collect()
}

/// Campaigns open for claims at `now` (active, not ended), at most `limit` by id, and how many
/// there are in all.
pub async fn open_campaigns(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<(Vec<campaigns::Model>, u64), DbErr> {
    use sea_orm::PaginatorTrait;
    use sea_orm::sea_query::Condition;
    let open = || {
        campaigns::Entity::find()
            .filter(campaigns::Column::Active.eq(true))
            .filter(
                Condition::any()
                    .add(campaigns::Column::EndsAt.is_null())
                    .add(campaigns::Column::EndsAt.gt(now)),
            )
    };
    let total = open().count(db).await?;
    let listed = open()
        .order_by_asc(campaigns::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok((listed, total))
}
