//! Operator routes for code batches: load (streamed, all-or-nothing), list, read, revoke; loads
//! and revocations recorded in the audit trail.
use std::sync::Arc;
use std::time::Instant;

use entity::code_batches;
use poem::web::Data;
use poem::{Body, Request, RequestBody};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi};
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::campaigns::find_campaign;
use super::json_string::{CodeText, LabelText};
use super::wire::{Nullable, PageLimit, UtcTime, parse_uuid_cursor};
use super::{AdminAuth, ApiTags, AppState, JsonString};
use crate::error::{AppError, operation_errors};
use crate::store;
use crate::store::StatusCounts;
use crate::upload::{BatchLoader, Line, LineReader};

/// A batch in JSON.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewBatchJson {
    /// Free text to recognise the batch by (at most 200 characters); omitted or null: none.
    pub label: Option<Nullable<JsonString<LabelText>>>,
    /// The codes, at least one: each 1..=128 printable ASCII characters without spaces, new to
    /// the campaign.
    #[oai(validator(min_items = 1))]
    pub codes: Vec<JsonString<CodeText>>,
}

/// The media types a streamed batch may come in.
pub const TEXT: u8 = 0;
pub const CSV: u8 = 1;
pub const OCTET_STREAM: u8 = 2;

/// One code per line (`\n` or `\r\n`, UTF-8); empty lines are skipped. Streamed: any size up
/// to the upload limit.
pub struct CodeLines<const MEDIA: u8>(Body);

impl<const MEDIA: u8> Payload for CodeLines<MEDIA> {
    const CONTENT_TYPE: &'static str = match MEDIA {
        TEXT => "text/plain",
        CSV => "text/csv",
        _ => "application/octet-stream",
    };

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(Self::CONTENT_TYPE))
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(if MEDIA == OCTET_STREAM {
            MetaSchema::new_with_format("string", "binary")
        } else {
            MetaSchema::new("string")
        }))
    }
}

impl<const MEDIA: u8> ParsePayload for CodeLines<MEDIA> {
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
    Text(CodeLines<TEXT>),
    /// One code per line (a one-column CSV without header); label from `label`.
    Csv(CodeLines<CSV>),
    /// A file of one code per line, as generated clients upload files; label from `label`.
    OctetStream(CodeLines<OCTET_STREAM>),
}

/// A file of codes.
#[derive(ApiRequest)]
enum FileUpload {
    /// One code per line (`\n` or `\r\n`, UTF-8).
    OctetStream(CodeLines<OCTET_STREAM>),
}

/// A batch as loaded.
#[derive(Debug, Object)]
pub struct BatchCreated {
    /// Batch id.
    pub id: Uuid,
    /// The campaign the codes belong to.
    pub campaign_id: Uuid,
    /// The batch's label; null: none.
    pub label: Nullable<String>,
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
    /// The batch's label; null: none.
    pub label: Nullable<String>,
    /// How many codes the batch loaded.
    pub size: i64,
    /// When it was loaded.
    pub created_at: UtcTime,
    /// When it was revoked; null while it is not.
    pub revoked_at: Nullable<UtcTime>,
    /// Its codes still available.
    pub available: i64,
    /// Its codes issued to users.
    pub issued: i64,
    /// Its codes revoked before they were issued.
    pub revoked: i64,
}

/// One page of a campaign's batches.
#[derive(Debug, Object)]
pub struct BatchPage {
    /// The batches, oldest first.
    pub items: Vec<Batch>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Nullable<String>,
}

#[derive(ApiResponse)]
enum BatchesListed {
    /// A page of the campaign's batches with their counts.
    #[oai(status = 200)]
    Ok(Json<BatchPage>),
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

operation_errors! {
    /// Why a batch was not loaded (nothing of it was written).
    enum LoadBatchError {
        bad_request: "`invalid_codes` (a line is not a valid code; `problems` names the first \
                      100, `problem_count` counts them) or `invalid_request` (the campaign id \
                      is not a UUID, malformed JSON, a wrong type, an unknown field, a label \
                      over 200 characters, or a `label` query parameter with a JSON body).",
        unauthorized: "`unauthorized`: the admin bearer token is missing or wrong.",
        not_found: "`campaign_not_found`: no campaign has this id.",
        conflict: "`duplicate_codes` (a code repeats in the batch or exists already, in this \
                   campaign or another: codes are unique service-wide; \
                   `problems` and `problem_count` as for `invalid_codes`) or `conflict` (a \
                   concurrent upload inserted one of the codes first).",
        payload_too_large: "`payload_too_large`: the body exceeds `GIFTCODES_MAX_UPLOAD_BYTES`.",
        unsupported_media_type: "`unsupported_media_type`: the body is none of the media types \
                                 listed.",
    }
}

operation_errors! {
    /// Why a batch could not be read or revoked.
    enum BatchError {
        bad_request: "`invalid_request`: the campaign id or the batch id is not a UUID.",
        unauthorized: "`unauthorized`: the admin bearer token is missing or wrong.",
        not_found: "`campaign_not_found` or `batch_not_found` (no batch with this id in this \
                    campaign).",
    }
}

operation_errors! {
    /// Why a campaign's batches could not be listed.
    enum ListBatchesError {
        bad_request: "`invalid_request`: the campaign id is not a UUID, a malformed `cursor`, or \
                      `limit` outside 1..=500.",
        unauthorized: "`unauthorized`: the admin bearer token is missing or wrong.",
        not_found: "`campaign_not_found`: no campaign has this id.",
    }
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
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// Label of a streamed upload (text, CSV, file), at most 200 characters. JSON bodies
        /// carry their own `label`; this parameter with a JSON body is refused (400).
        label: Query<Option<JsonString<LabelText>>>,
        body: BatchUpload,
    ) -> Result<BatchLoaded, LoadBatchError> {
        find_campaign(&state, campaign_id.0).await?;
        let label = match (&body, label.0) {
            (BatchUpload::Json(_), Some(_)) => {
                return Err(AppError::InvalidRequest(
                    "the label query parameter is for streamed uploads; send a JSON batch's \
                     label in its body"
                        .into(),
                )
                .into());
            }
            (BatchUpload::Json(json), None) => json
                .label
                .clone()
                .and_then(|label| label.0)
                .map(JsonString::into_string),
            (_, label) => label.map(JsonString::into_string),
        };
        load_codes(&state, &auth.0, campaign_id.0, label, body).await
    }

    /// Load a batch of codes from a file
    ///
    /// The same as `load_batch` for a file of one code per line (`\n` or `\r\n`), streamed:
    /// the form in which generated clients upload a file (e.g. a `Blob` or a Python `File`).
    /// The label comes from `label`.
    #[oai(
        path = "/:campaign_id/batches/upload",
        method = "post",
        operation_id = "upload_batch"
    )]
    async fn upload(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// Label of the batch, at most 200 characters.
        label: Query<Option<JsonString<LabelText>>>,
        body: FileUpload,
    ) -> Result<BatchLoaded, LoadBatchError> {
        find_campaign(&state, campaign_id.0).await?;
        let label = label.0.map(JsonString::into_string);
        let FileUpload::OctetStream(file) = body;
        let body = BatchUpload::OctetStream(file);
        load_codes(&state, &auth.0, campaign_id.0, label, body).await
    }

    /// List a campaign's batches
    ///
    /// The campaign's batches in load order with their codes counted by status, a page at a
    /// time: pass the answer's `next_cursor` as `cursor` for the next page.
    #[oai(
        path = "/:campaign_id/batches",
        method = "get",
        operation_id = "list_batches"
    )]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// The `next_cursor` of the previous page; omitted: the first page.
        cursor: Query<Option<String>>,
        /// Batches per page, 1..=500; omitted: 100.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> Result<BatchesListed, ListBatchesError> {
        let after = parse_uuid_cursor(cursor.0.as_deref())?;
        find_campaign(&state, campaign_id.0).await?;
        let limit = PageLimit::new(limit.0);
        let mut page = store::batches::page(&state.db, campaign_id.0, after, limit.fetch()).await?;
        let next_cursor = limit.next_cursor(&mut page, |last| last.id.to_string());
        let ids: Vec<Uuid> = page.iter().map(|batch| batch.id).collect();
        let counts = store::stock::batch_counts(&state.db, &ids).await?;
        let items = page
            .into_iter()
            .map(|batch| {
                let counted = counts.get(&batch.id).copied().unwrap_or_default();
                batch_view(batch, counted)
            })
            .collect();
        Ok(BatchesListed::Ok(Json(BatchPage {
            items,
            next_cursor: next_cursor.into(),
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
    ) -> Result<BatchFound, BatchError> {
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
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// Batch id.
        batch_id: Path<Uuid>,
    ) -> Result<BatchFound, BatchError> {
        let batch = find_batch(&state, campaign_id.0, batch_id.0).await?;
        let now = state.clock.now();
        let txn = state.db.begin().await?;
        let (batch, revoked) = store::batches::revoke(&txn, batch, now).await?;
        let entry = store::audit::NewEntry {
            actor: &auth.0,
            action: "revoke_batch",
            campaign_id: batch.campaign_id,
            batch_id: Some(batch.id),
            changes: serde_json::json!({ "revoked_codes": revoked }),
        };
        store::audit::record(&txn, entry, now).await?;
        txn.commit().await?;
        Ok(BatchFound::Ok(Json(view_batch(&state, batch).await?)))
    }
}

/// Loads the batch all or nothing (see `load_batch`), timed for the upload metrics.
async fn load_codes(
    state: &AppState,
    actor: &str,
    campaign_id: Uuid,
    label: Option<String>,
    body: BatchUpload,
) -> Result<BatchLoaded, LoadBatchError> {
    let started = Instant::now();
    let loaded = write_batch(state, actor, campaign_id, label, body).await;
    let (result, rows) = match &loaded {
        Ok((_, inserted)) => ("created", *inserted),
        Err(err) => (err.code(), 0),
    };
    state.metrics.upload(result, rows, started.elapsed());
    let (batch, inserted) = loaded?;
    Ok(BatchLoaded::Created(Json(BatchCreated {
        id: batch.id,
        campaign_id: batch.campaign_id,
        label: batch.label.into(),
        inserted,
    })))
}

async fn write_batch(
    state: &AppState,
    actor: &str,
    campaign_id: Uuid,
    label: Option<String>,
    body: BatchUpload,
) -> Result<(code_batches::Model, u64), AppError> {
    if label.as_ref().is_some_and(|l| l.chars().count() > 200) {
        return Err(AppError::InvalidRequest(
            "label must be at most 200 characters".into(),
        ));
    }
    let now = state.clock.now();
    let mut loader = BatchLoader::begin(&state.db, campaign_id, label, now).await?;
    match body {
        BatchUpload::Json(json) => {
            for (index, code) in json.0.codes.iter().enumerate() {
                loader.push(index as u64 + 1, code.as_str()).await?;
            }
        }
        BatchUpload::Text(CodeLines(body))
        | BatchUpload::Csv(CodeLines(body))
        | BatchUpload::OctetStream(CodeLines(body)) => {
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
    loader.finish(actor).await
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
    Ok(batch_view(batch, counts))
}

fn batch_view(batch: code_batches::Model, counts: StatusCounts) -> Batch {
    Batch {
        id: batch.id,
        campaign_id: batch.campaign_id,
        label: batch.label.into(),
        size: batch.size,
        created_at: UtcTime(batch.created_at),
        revoked_at: batch.revoked_at.map(UtcTime).into(),
        available: counts.available,
        issued: counts.issued,
        revoked: counts.revoked,
    }
}
