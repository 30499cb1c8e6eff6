//! The HTTP API: the route table, the OpenAPI service, authentication and body limits.
mod batches;
mod campaigns;
mod claims;
mod json_string;
mod observe;
mod ops;
mod reports;
mod wire;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use poem::http::Method;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::auth::Bearer;
use poem_openapi::{OpenApiService, SecurityScheme, ServerObject, Tags};
use sea_orm::DatabaseConnection;
use subtle::ConstantTimeEq;

use json_string::JsonString;

use crate::claim::ClaimEngine;
use crate::config::Secret;
use crate::domain::Clock;
use crate::error::{ApiError, AppError};
use crate::metrics::Metrics;

/// What every handler shares.
pub struct AppState {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub claims: ClaimEngine,
    pub tokens: AuthTokens,
    pub max_upload_bytes: u64,
    /// Set when the service has been told to stop: readiness answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// The Prometheus instruments.
    pub metrics: Metrics,
    /// Held by a scrape while it sets and renders the gauges.
    pub scrape: tokio::sync::Mutex<()>,
    /// `GIFTCODES_DB_MAX_CONNECTIONS`, and how long a database check may take.
    pub db_max_connections: u32,
    pub db_timeout: Duration,
}

impl AppState {
    /// The instant that decides which day a campaign is on: the database's clock, as for
    /// claims (or the instant a test pinned).
    pub async fn database_now(&self) -> Result<chrono::DateTime<chrono::Utc>, AppError> {
        match self.clock.pinned() {
            Some(pinned) => Ok(pinned),
            None => Ok(crate::store::database_now(&self.db).await?),
        }
    }
}

/// The accepted bearer tokens.
pub struct AuthTokens {
    pub admin: Secret,
    pub clients: Vec<Secret>,
    /// A token that reads `/metrics` only.
    pub metrics: Option<Secret>,
}

/// Compares in constant time for equal lengths (a token's length is not a secret worth hiding).
fn token_matches(expected: &Secret, given: &str) -> bool {
    expected.expose().as_bytes().ct_eq(given.as_bytes()).into()
}

impl AuthTokens {
    fn admits_admin(&self, given: &str) -> bool {
        token_matches(&self.admin, given)
    }

    fn admits_metrics(&self, given: &str) -> bool {
        let scraper = self
            .metrics
            .as_ref()
            .is_some_and(|token| token_matches(token, given));
        scraper | self.admits_admin(given)
    }

    fn admits_client(&self, given: &str) -> bool {
        self.clients
            .iter()
            .fold(false, |any, token| any | token_matches(token, given))
    }
}

#[derive(Tags)]
enum ApiTags {
    /// Operators: create and manage campaigns.
    Campaigns,
    /// Operators: load and revoke batches of codes.
    Batches,
    /// Campaign frontends: claim a code for a user.
    Claims,
    /// Operators: claim listings and exports, and the audit trail.
    Reports,
    /// Liveness and readiness probes, and metrics.
    Ops,
}

/// Operator token: `Authorization: Bearer <GIFTCODES_ADMIN_TOKEN>`. Holds the token's id
/// (for the audit trail).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_admin")]
struct AdminAuth(String);

async fn check_admin(req: &Request, bearer: Bearer) -> Option<String> {
    let tokens = &req.data::<Arc<AppState>>()?.tokens;
    tokens
        .admits_admin(&bearer.token)
        .then(|| tokens.admin.id())
}

/// Scrape token: `Authorization: Bearer <GIFTCODES_METRICS_TOKEN>` (or the admin token).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_metrics")]
struct MetricsAuth(());

async fn check_metrics(req: &Request, bearer: Bearer) -> Option<()> {
    req.data::<Arc<AppState>>()?
        .tokens
        .admits_metrics(&bearer.token)
        .then_some(())
}

/// Client token: `Authorization: Bearer <one of GIFTCODES_CLIENT_TOKENS>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_client")]
struct ClientAuth(());

async fn check_client(req: &Request, bearer: Bearer) -> Option<()> {
    req.data::<Arc<AppState>>()?
        .tokens
        .admits_client(&bearer.token)
        .then_some(())
}

type Apis = (
    campaigns::CampaignsApi,
    batches::BatchesApi,
    claims::ClaimsApi,
    reports::ReportsApi,
    ops::OpsApi,
);

fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            campaigns::CampaignsApi,
            batches::BatchesApi,
            claims::ClaimsApi,
            reports::ReportsApi,
            ops::OpsApi,
        ),
        "giftcodes",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Hands out pre-loaded gift-certificate codes: one per user per campaign, never the \
         same code twice, never more per local day than the campaign's daily limit. Every \
         error answers `{\"code\", \"message\"}` with a stable `code` (`ErrorCode`); each \
         operation lists the statuses it answers and, in each one's description, the codes. \
         Beyond the operations: a path not listed here answers 404 `not_found`, a method a \
         path does not offer 405 `method_not_allowed`, and a body in a media type the \
         operation does not list 415 `unsupported_media_type`. Instants are RFC 3339; the \
         service writes them in UTC ending in `Z`.",
    )
    .server(
        ServerObject::new("http://127.0.0.1:8080")
            .description("`cargo run`'s default address (`GIFTCODES_LISTEN`)"),
    )
}

/// Request bodies whose unknown fields are refused (`#[oai(deny_unknown_fields)]`).
const CLOSED_SCHEMAS: [&str; 4] = [
    "NewCampaignRequest",
    "CampaignPatch",
    "NewBatchJson",
    "ClaimRequest",
];

/// A link from what an operation creates to an operation that uses it: (operation, status,
/// link name, target operation, [(target parameter, runtime expression)]).
type Link = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const NEW_CAMPAIGN: &[(&str, &str)] = &[("campaign_id", "$response.body#/id")];
const NEW_BATCH: &[(&str, &str)] = &[
    ("campaign_id", "$response.body#/campaign_id"),
    ("batch_id", "$response.body#/id"),
];
const NEW_CLAIM: &[(&str, &str)] = &[
    ("campaign_id", "$response.body#/campaign_id"),
    ("user_id", "$response.body#/user_id"),
];
const LINKS: [Link; 9] = [
    (
        "create_campaign",
        "201",
        "GetCampaign",
        "get_campaign",
        NEW_CAMPAIGN,
    ),
    (
        "create_campaign",
        "201",
        "UpdateCampaign",
        "update_campaign",
        NEW_CAMPAIGN,
    ),
    (
        "create_campaign",
        "201",
        "LoadBatch",
        "load_batch",
        NEW_CAMPAIGN,
    ),
    (
        "create_campaign",
        "201",
        "UploadBatch",
        "upload_batch",
        NEW_CAMPAIGN,
    ),
    (
        "create_campaign",
        "201",
        "ClaimCode",
        "claim_code",
        NEW_CAMPAIGN,
    ),
    ("load_batch", "201", "GetBatch", "get_batch", NEW_BATCH),
    (
        "load_batch",
        "201",
        "RevokeBatch",
        "revoke_batch",
        NEW_BATCH,
    ),
    ("upload_batch", "201", "GetBatch", "get_batch", NEW_BATCH),
    ("claim_code", "201", "GetClaim", "get_claim", NEW_CLAIM),
];

/// The OpenAPI document as YAML (what `giftcodes openapi` prints, `/openapi.yaml` serves and
/// `openapi.yaml` holds): poem-openapi's document plus what it cannot declare —
/// `additionalProperties: false` on the request bodies that refuse unknown fields, `security:
/// []` on the operations that need no token (the probes), a plain `$ref` for a documented
/// field of a named type (poem-openapi writes `allOf: [$ref, {description}]`, which generators
/// such as openapi-python-client refuse for enums), and the response `links` of [`LINKS`].
pub fn openapi_yaml() -> String {
    use serde_yaml::Value;
    let mut doc: Value =
        serde_yaml::from_str(&service().spec_yaml()).expect("poem-openapi writes valid YAML");
    let schemas = doc["components"]["schemas"]
        .as_mapping_mut()
        .expect("the document has schemas");
    for name in CLOSED_SCHEMAS {
        let schema = schemas
            .get_mut(name)
            .and_then(Value::as_mapping_mut)
            .unwrap_or_else(|| panic!("schema {name} is in the document"));
        schema.insert("additionalProperties".into(), Value::Bool(false));
    }
    for schema in schemas.values_mut() {
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_mapping_mut) else {
            continue;
        };
        for property in properties.values_mut() {
            let reference = match property.get("allOf").and_then(Value::as_sequence) {
                Some(all_of) if all_of.len() == 2 && all_of[1].get("$ref").is_none() => {
                    all_of[0].get("$ref").cloned()
                }
                _ => None,
            };
            if let Some(reference) = reference {
                let mut plain = serde_yaml::Mapping::new();
                plain.insert("$ref".into(), reference);
                *property = Value::Mapping(plain);
            }
        }
    }
    let paths = doc["paths"]
        .as_mapping_mut()
        .expect("the document has paths");
    for operation in paths.values_mut().filter_map(Value::as_mapping_mut) {
        for operation in operation.values_mut().filter_map(Value::as_mapping_mut) {
            if !operation.contains_key("security") {
                operation.insert("security".into(), Value::Sequence(Vec::new()));
            }
            let id = operation.get("operationId").and_then(Value::as_str);
            let links: Vec<&Link> = LINKS.iter().filter(|link| Some(link.0) == id).collect();
            for (_, status, name, target, parameters) in links {
                let parameters: serde_yaml::Mapping = parameters
                    .iter()
                    .map(|(name, expression)| ((*name).into(), (*expression).into()))
                    .collect();
                let mut link = serde_yaml::Mapping::new();
                link.insert("operationId".into(), (*target).into());
                link.insert("parameters".into(), Value::Mapping(parameters));
                let response = operation["responses"]
                    .get_mut(*status)
                    .and_then(Value::as_mapping_mut)
                    .expect("a linked operation answers the linked status");
                let all = response
                    .entry("links".into())
                    .or_insert_with(|| Value::Mapping(serde_yaml::Mapping::new()));
                all.as_mapping_mut()
                    .expect("links is a mapping")
                    .insert((*name).into(), Value::Mapping(link));
            }
        }
    }
    serde_yaml::to_string(&doc).expect("a YAML value serialises")
}

/// The whole HTTP application.
pub fn app(
    state: Arc<AppState>,
    max_body_bytes: u64,
) -> impl Endpoint<Output = Response> + 'static {
    let service = service();
    let docs = service.swagger_ui();
    let spec_yaml = openapi_yaml();
    let routes = Arc::new(RouteTable::from_spec(&spec_yaml));
    let metrics = state.metrics.clone();
    let spec = poem::endpoint::make_sync(move |_| {
        spec_yaml
            .clone()
            .with_content_type("application/x-yaml; charset=utf-8")
    });
    let max_upload_bytes = state.max_upload_bytes;
    Route::new()
        .nest("/", service)
        .nest("/docs", docs)
        .at("/openapi.yaml", spec)
        .data(state)
        .around(move |next, req| limit_body(next, req, max_body_bytes, max_upload_bytes))
        .around(move |next, req| observe::observe(next, req, routes.clone(), metrics.clone()))
}

/// A documented path (its template, e.g. `/v1/campaigns/{campaign_id}/claims`) and the
/// methods it offers (the `Allow` header of its 405 answers).
struct DocumentedRoute {
    template: String,
    segments: Vec<String>,
    allow: String,
}

/// The documented paths: what a request's path is called in metrics and logs (a bounded set),
/// and what its 405 answers allow.
struct RouteTable(Vec<DocumentedRoute>);

impl RouteTable {
    fn from_spec(yaml: &str) -> Self {
        let doc: serde_yaml::Value = serde_yaml::from_str(yaml).expect("the spec is YAML");
        let paths = doc["paths"].as_mapping().expect("the spec has paths");
        Self(
            paths
                .iter()
                .filter_map(|(path, operations)| {
                    let template = path.as_str()?.to_owned();
                    let segments = template.split('/').map(str::to_owned).collect();
                    let methods = operations.as_mapping()?.keys();
                    let methods: Vec<String> = methods
                        .filter_map(|method| Some(method.as_str()?.to_ascii_uppercase()))
                        .collect();
                    Some(DocumentedRoute {
                        template,
                        segments,
                        allow: methods.join(", "),
                    })
                })
                .collect(),
        )
    }

    /// The documented path `path` matches (`{...}` matches one segment; a literal segment
    /// wins over a parameter, as in the router: `…/claims.csv` is not `…/{user_id}`).
    fn find(&self, path: &str) -> Option<&DocumentedRoute> {
        let given: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .filter(|route| {
                route.segments.len() == given.len()
                    && route.segments.iter().zip(&given).all(|(want, got)| {
                        want == got || (want.starts_with('{') && !got.is_empty())
                    })
            })
            .max_by_key(|route| {
                route
                    .segments
                    .iter()
                    .filter(|segment| !segment.starts_with('{'))
                    .count()
            })
    }
}

/// Answers 413 `payload_too_large` for bodies over the limit. Batch uploads in text are left to
/// stream (their handler counts bytes as it reads); every other body is read here, bounded.
async fn limit_body<E: Endpoint>(
    next: Arc<E>,
    mut req: Request,
    max_body_bytes: u64,
    max_upload_bytes: u64,
) -> poem::Result<Response> {
    let path = req.uri().path();
    let is_upload = req.method() == Method::POST
        && (path.ends_with("/batches") || path.ends_with("/batches/upload"));
    let limit = if is_upload {
        max_upload_bytes
    } else {
        max_body_bytes
    };
    let too_large = || ApiError::from(AppError::PayloadTooLarge { limit }).into_response();
    let declared_length = req
        .header("content-length")
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limit) {
        return Ok(too_large());
    }
    let streams_itself = is_upload
        && req.content_type().is_some_and(|ct| {
            ct.starts_with("text/plain")
                || ct.starts_with("text/csv")
                || ct.starts_with("application/octet-stream")
        });
    if !streams_itself {
        match req.take_body().into_bytes_limit(limit as usize).await {
            Ok(bytes) => req.set_body(bytes),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large()),
            Err(err) => {
                return Ok(ApiError::from(AppError::InvalidRequest(format!(
                    "could not read the request body: {err}"
                )))
                .into_response());
            }
        }
    }
    Ok(next.call(req).await?.into_response())
}
