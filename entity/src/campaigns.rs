//! The `campaigns` table.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub daily_limit: Option<i32>,
    pub time_zone: String,
    pub starts_at: Option<DateTimeUtc>,
    pub ends_at: Option<DateTimeUtc>,
    pub active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::code_batches::Entity")]
    CodeBatches,
    #[sea_orm(has_many = "super::codes::Entity")]
    Codes,
    #[sea_orm(has_many = "super::campaign_day_counters::Entity")]
    CampaignDayCounters,
}

impl Related<super::code_batches::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CodeBatches.def()
    }
}

impl Related<super::codes::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Codes.def()
    }
}

impl Related<super::campaign_day_counters::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CampaignDayCounters.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
