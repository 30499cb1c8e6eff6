//! Operator routes for code batches: load (streamed, all-or-nothing), read, revoke.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::code_batches;
use poem::web::Data;
use poem::{Body, Request, RequestBody};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::campaigns::find_campaign;
use super::{AdminAuth, ApiTags, AppState, JsonString};
use crate::error::{ApiResult, AppError};
use crate::store;
use crate::upload::{BatchLoader, Line, LineReader};

/// A batch in JSON.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewBatchJson {
    /// Free text to recognise the batch by (at most 200 characters).
    pub label: Option<JsonString>,
    /// The codes: each 1..=128 printable ASCII characters without spaces, new to the campaign.
    pub codes: Vec<JsonString>,
}

/// One code per line (`\n` or `\r\n`); empty lines are skipped. Streamed: any size up to the
/// upload limit.
pub struct CodeLines<const CSV: bool>(Body);

impl<const CSV: bool> Payload for CodeLines<CSV> {
    const CONTENT_TYPE: &'static str = if CSV { "text/csv" } else { "text/plain" };

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(Self::CONTENT_TYPE))
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }
}

impl<const CSV: bool> ParsePayload for CodeLines<CSV> {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(body.take()?))
    }
}

/// The codes of a new batch.
#[derive(ApiRequest)]
enum BatchUpload {
    /// `{"label": "...", "codes": ["...", ...]}`.
    Json(Json<NewBatchJson>),
    /// One code per line; the label comes from the `label` query parameter.
    Text(CodeLines<false>),
    /// One code per line (a one-column CSV without header); label from `label`.
    Csv(CodeLines<true>),
}

/// A batch as loaded.
#[derive(Debug, Object)]
pub struct BatchCreated {
    /// Batch id.
    pub id: Uuid,
    /// The campaign the codes belong to.
    pub campaign_id: Uuid,
    /// The batch's label, if any.
    pub label: Option<String>,
    /// How many codes were inserted.
    pub inserted: u64,
}

/// A batch with its codes counted by status.
#[derive(Debug, Object)]
pub struct Batch {
    /// Batch id.
    pub id: Uuid,
    /// The campaign the codes belong to.
    pub campaign_id: Uuid,
    /// The batch's label, if any.
    pub label: Option<String>,
    /// How many codes the batch loaded.
    pub size: i64,
    /// When it was loaded.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; null while it is not.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Its codes still available.
    pub available: i64,
    /// Its codes issued to users.
    pub issued: i64,
    /// Its codes revoked before they were issued.
    pub revoked: i64,
}

#[derive(ApiResponse)]
enum BatchLoaded {
    /// Every code was inserted.
    #[oai(status = 201)]
    Created(Json<BatchCreated>),
}

#[derive(ApiResponse)]
enum BatchFound {
    /// The batch and its counts.
    #[oai(status = 200)]
    Ok(Json<Batch>),
}

pub struct BatchesApi;

#[OpenApi(prefix_path = "/v1/admin/campaigns", tag = "ApiTags::Batches")]
impl BatchesApi {
    /// Load a batch of codes
    ///
    /// All or nothing: if any line is not a valid code the answer is 400 `invalid_codes`; if any
    /// code repeats inside the batch or exists in the campaign already it is 409
    /// `duplicate_codes`. Either way nothing of the batch is written and the body names the
    /// first 100 offending lines and how many there are. Text bodies are streamed.
    #[oai(
        path = "/:campaign_id/batches",
        method = "post",
        operation_id = "load_batch"
    )]
    async fn load(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// Label for text uploads (JSON bodies carry their own).
        label: Query<Option<String>>,
        body: BatchUpload,
    ) -> ApiResult<BatchLoaded> {
        find_campaign(&state, campaign_id.0).await?;
        let label = match &body {
            BatchUpload::Json(json) => json.label.clone().map(JsonString::into_string),
            _ => label.0,
        };
        if label.as_ref().is_some_and(|l| l.chars().count() > 200) {
            return Err(
                AppError::InvalidRequest("label must be at most 200 characters".into()).into(),
            );
        }
        let now = state.clock.now();
        let mut loader = BatchLoader::begin(&state.db, campaign_id.0, label, now).await?;
        match body {
            BatchUpload::Json(json) => {
                for (index, code) in json.0.codes.iter().enumerate() {
                    loader.push(index as u64 + 1, code.as_str()).await?;
                }
            }
            BatchUpload::Text(CodeLines(body)) | BatchUpload::Csv(CodeLines(body)) => {
                let mut lines = LineReader::new(body.into_async_read(), state.max_upload_bytes);
                while let Some((number, line)) = lines.next_line().await? {
                    match line {
                        Line::Text("") => {}
                        Line::Text(text) => loader.push(number, text).await?,
                        Line::Unreadable(text) => loader.refuse_invalid(number, &text),
                    }
                }
            }
        }
        let (batch, inserted) = loader.finish().await?;
        Ok(BatchLoaded::Created(Json(BatchCreated {
            id: batch.id,
            campaign_id: batch.campaign_id,
            label: batch.label,
            inserted,
        })))
    }

    /// Read a batch
    ///
    /// The batch with its codes counted by status.
    #[oai(
        path = "/:campaign_id/batches/:batch_id",
        method = "get",
        operation_id = "get_batch"
    )]
    async fn get(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// Batch id.
        batch_id: Path<Uuid>,
    ) -> ApiResult<BatchFound> {
        let batch = find_batch(&state, campaign_id.0, batch_id.0).await?;
        Ok(BatchFound::Ok(Json(view_batch(&state, batch).await?)))
    }

    /// Revoke a batch
    ///
    /// The batch's codes that are still available become revoked and are never issued; codes
    /// already issued stay issued. Revoking again changes nothing.
    #[oai(
        path = "/:campaign_id/batches/:batch_id/revoke",
        method = "post",
        operation_id = "revoke_batch"
    )]
    async fn revoke(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// Batch id.
        batch_id: Path<Uuid>,
    ) -> ApiResult<BatchFound> {
        let batch = find_batch(&state, campaign_id.0, batch_id.0).await?;
        let batch = store::batches::revoke(&state.db, batch, state.clock.now()).await?;
        Ok(BatchFound::Ok(Json(view_batch(&state, batch).await?)))
    }
}

async fn find_batch(
    state: &AppState,
    campaign_id: Uuid,
    batch_id: Uuid,
) -> Result<code_batches::Model, AppError> {
    find_campaign(state, campaign_id).await?;
    store::batches::find(&state.db, campaign_id, batch_id)
        .await?
        .ok_or(AppError::BatchNotFound)
}

async fn view_batch(state: &AppState, batch: code_batches::Model) -> Result<Batch, AppError> {
    let counts = store::batches::status_counts(&state.db, batch.id).await?;
    Ok(Batch {
        id: batch.id,
        campaign_id: batch.campaign_id,
        label: batch.label,
        size: batch.size,
        created_at: batch.created_at,
        revoked_at: batch.revoked_at,
        available: counts.available,
        issued: counts.issued,
        revoked: counts.revoked,
    })
}
