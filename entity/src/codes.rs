//! The `codes` table.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "codes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub campaign_id: Uuid,
    pub batch_id: Uuid,
    pub code: String,
    pub status: i16,
    pub issued_to: Option<String>,
    pub issued_at: Option<DateTimeUtc>,
    pub issue_day: Option<Date>,
    pub claim_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::campaigns::Entity",
        from = "Column::CampaignId",
        to = "super::campaigns::Column::Id"
    )]
    Campaigns,
    #[sea_orm(
        belongs_to = "super::code_batches::Entity",
        from = "Column::BatchId",
        to = "super::code_batches::Column::Id"
    )]
    CodeBatches,
}

impl Related<super::campaigns::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Campaigns.def()
    }
}

impl Related<super::code_batches::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CodeBatches.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
