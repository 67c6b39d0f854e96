//! The HTTP API: one table of routes ([`routes`]), each with the [`Access`] it requires, from
//! which both the router and the OpenAPI document are made. Handlers parse, call `vault-core`
//! (or queue a job) and render JSON; errors are `{"error": {"code", "message"}}`.

use crate::auth::{authorize, Access, Denied, Principal, Role};
use crate::control::{new_id, Job, NewJob};
use crate::jobs::{ExportParams, KeySource, RestoreParams};
use crate::App;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// The version of the API, in its paths and in the OpenAPI document.
pub const API_VERSION: &str = "1.0.0";

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// The response to a refused request (see [`Denied`]).
pub fn refuse(d: Denied) -> Response {
    match d {
        Denied::Unauthenticated => {
            let mut r = error_response(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid token is needed: Authorization: Bearer tvt_…",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
            r
        }
        Denied::Unseen => error_response(StatusCode::NOT_FOUND, "not_found", "no such tenant"),
        Denied::Forbidden => error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token's role may not do this",
        ),
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = error_response(self.status, self.code, &self.message);
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // The limits count the last hour.
            r.headers_mut()
                .insert(header::RETRY_AFTER, "3600".parse().expect("static"));
        }
        r
    }
}

impl From<vault_core::Error> for ApiError {
    fn from(e: vault_core::Error) -> ApiError {
        use vault_core::Error as E;
        let message = vault_core::error::with_causes(&e);
        let (status, code) = match &e {
            e if e.is_not_found() => (StatusCode::NOT_FOUND, "not_found"),
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            E::Busy(_) => (StatusCode::CONFLICT, "busy"),
            E::Keys(keys::Error::WrongKey) => (StatusCode::UNPROCESSABLE_ENTITY, "wrong_key"),
            E::Keys(
                keys::Error::InvalidIdentity { .. }
                | keys::Error::InvalidRecipient { .. }
                | keys::Error::NoRecipients,
            ) => (StatusCode::BAD_REQUEST, "invalid_key"),
            e if e.is_integrity() => (StatusCode::INTERNAL_SERVER_ERROR, "integrity"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, message)
    }
}

impl From<keys::Error> for ApiError {
    fn from(e: keys::Error) -> ApiError {
        vault_core::Error::Keys(e).into()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        match e.downcast::<vault_core::Error>() {
            Ok(v) => v.into(),
            Err(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("{e:#}"),
            ),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection as R;
        let status = match &e {
            R::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "invalid", e.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad(e.body_text())
    }
}

/// A JSON body whose errors are JSON too.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct Body_<T>(T);

type Reply = Result<Response, ApiError>;

fn ok(v: impl serde::Serialize) -> Reply {
    Ok(Json(v).into_response())
}

/// One route of the API.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    handler: MethodRouter<App>,
}

fn route(
    method: Method,
    path: &'static str,
    access: Access,
    summary: &'static str,
    handler: MethodRouter<App>,
) -> Route {
    Route {
        method,
        path,
        access,
        summary,
        handler,
    }
}

/// Every route of the API (docs/SERVER.md lists them with who may call them).
pub fn routes() -> Vec<Route> {
    use Access::*;
    use Method as M;
    vec![
        route(
            M::GET,
            "/healthz",
            Public,
            "The process is up",
            get(healthz),
        ),
        route(
            M::GET,
            "/readyz",
            Public,
            "The control database and the store answer",
            get(readyz),
        ),
        route(
            M::GET,
            "/metrics",
            Public,
            "Prometheus metrics",
            get(metrics),
        ),
        route(
            M::GET,
            "/v1/openapi.json",
            Public,
            "This API's OpenAPI document",
            get(openapi),
        ),
        route(
            M::GET,
            "/v1/whoami",
            Any,
            "The caller's role and scope",
            get(whoami),
        ),
        route(
            M::GET,
            "/v1/tenants",
            Any,
            "Tenants the caller sees",
            get(list_tenants),
        ),
        route(
            M::POST,
            "/v1/tenants",
            Operator,
            "Register a tenant",
            post(add_tenant),
        ),
        route(
            M::POST,
            "/v1/tenants/import",
            Operator,
            "Register many tenants",
            post(import_tenants),
        ),
        route(
            M::GET,
            "/v1/tenants/{tenant}",
            Tenant,
            "A tenant's record, policy, hold and forget request",
            get(show_tenant),
        ),
        route(
            M::PUT,
            "/v1/tenants/{tenant}/recipients",
            TenantOnly,
            "Replace the tenant's recipients (rotate its key)",
            put(set_recipients),
        ),
        route(
            M::GET,
            "/v1/tenants/{tenant}/snapshots",
            Tenant,
            "The tenant's snapshots",
            get(snapshots),
        ),
        route(
            M::GET,
            "/v1/tenants/{tenant}/records",
            Tenant,
            "A record's versions across snapshots",
            get(find_record),
        ),
        route(
            M::POST,
            "/v1/tenants/{tenant}/records/show",
            Tenant,
            "A record as a snapshot has it",
            post(show_record),
        ),
        route(
            M::POST,
            "/v1/tenants/{tenant}/records/diff",
            Tenant,
            "A record of a snapshot against the live row",
            post(diff_record),
        ),
        route(
            M::POST,
            "/v1/tenants/{tenant}/records/restore",
            Tenant,
            "Restore records: a dry run, then the confirmed run",
            post(restore_records),
        ),
        route(
            M::POST,
            "/v1/tenants/{tenant}/restore",
            Tenant,
            "Restore the whole tenant (a job)",
            post(restore_tenant),
        ),
        route(
            M::POST,
            "/v1/tenants/{tenant}/exports",
            Owner,
            "Export the tenant's data (a job)",
            post(export_tenant),
        ),
        route(
            M::GET,
            "/v1/tenants/{tenant}/policy",
            Tenant,
            "The tenant's retention policy",
            get(get_policy),
        ),
        route(
            M::PUT,
            "/v1/tenants/{tenant}/policy",
            Owner,
            "Set the tenant's retention policy within the operator's bounds",
            put(set_policy),
        ),
        route(
            M::PUT,
            "/v1/tenants/{tenant}/hold",
            Operator,
            "Place a legal hold",
            put(set_hold),
        ),
        route(
            M::DELETE,
            "/v1/tenants/{tenant}/hold",
            Operator,
            "Release the legal hold",
            delete(release_hold),
        ),
        route(
            M::POST,
            "/v1/tenants/{tenant}/erase",
            Staff,
            "Erase one person's records in every kept snapshot",
            post(erase),
        ),
        route(
            M::GET,
            "/v1/tenants/{tenant}/forget",
            Tenant,
            "The tenant's forget request",
            get(get_forget),
        ),
        route(
            M::POST,
            "/v1/tenants/{tenant}/forget",
            Owner,
            "Ask for the tenant to be forgotten",
            post(request_forget),
        ),
        route(
            M::DELETE,
            "/v1/tenants/{tenant}/forget",
            Owner,
            "Withdraw a pending forget request",
            delete(withdraw_forget),
        ),
        route(
            M::POST,
            "/v1/tenants/{tenant}/forget/confirm",
            Operator,
            "Confirm a forget request (a job)",
            post(confirm_forget),
        ),
        route(
            M::GET,
            "/v1/audit",
            Any,
            "Audit entries of the tenants the caller sees",
            get(audit),
        ),
        route(
            M::POST,
            "/v1/backups",
            Operator,
            "Run a backup cycle (a job)",
            post(backup),
        ),
        route(
            M::POST,
            "/v1/retention",
            Operator,
            "Apply retention (a job)",
            post(retention),
        ),
        route(
            M::POST,
            "/v1/verify",
            Operator,
            "Verify the store (a job)",
            post(verify),
        ),
        route(
            M::POST,
            "/v1/drills",
            Operator,
            "Restore drills (a job)",
            post(drill),
        ),
        route(
            M::GET,
            "/v1/jobs",
            Any,
            "Jobs of the tenants the caller sees",
            get(list_jobs),
        ),
        route(M::GET, "/v1/jobs/{job}", Any, "A job", get(show_job)),
        route(
            M::POST,
            "/v1/jobs/{job}/cancel",
            Any,
            "Cancel a job",
            post(cancel_job),
        ),
        route(
            M::POST,
            "/v1/jobs/{job}/link",
            Any,
            "A short-lived signed download link for an export job",
            post(link),
        ),
        route(
            M::GET,
            "/v1/downloads/{job}",
            Public,
            "Download an export (signed link)",
            get(download),
        ),
        route(
            M::GET,
            "/v1/schedules",
            Operator,
            "Schedules and when they last fired",
            get(schedules),
        ),
        route(
            M::GET,
            "/v1/tokens",
            Operator,
            "API tokens (never their secrets)",
            get(list_tokens),
        ),
        route(
            M::POST,
            "/v1/tokens",
            Operator,
            "Make an API token (shown once)",
            post(add_token),
        ),
        route(
            M::DELETE,
            "/v1/tokens/{token}",
            Operator,
            "Revoke an API token",
            delete(revoke_token),
        ),
    ]
}

/// The router: each route behind [`authorize`] with its access.
pub fn router(app: App) -> Router {
    let mut router: Router<App> = Router::new();
    for r in routes() {
        let guarded = r
            .handler
            .layer::<_, std::convert::Infallible>(from_fn_with_state(app.clone(), authorize))
            .layer::<_, std::convert::Infallible>(Extension(r.access));
        router = router.route(r.path, guarded);
    }
    router
        .merge(crate::console::router(app.clone()))
        .fallback(|| async {
            error_response(StatusCode::NOT_FOUND, "not_found", "no such route")
        })
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                )
                .make_span_with(
                |req: &axum::http::Request<Body>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                },
            ),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        .with_state(app)
}

// ---- public -----------------------------------------------------------------------------

async fn healthz() -> Reply {
    ok(json!({ "status": "ok" }))
}

async fn readyz(State(app): State<App>) -> Reply {
    let control = app.control.ping().await;
    let stopping = app.stopping.load(std::sync::atomic::Ordering::SeqCst);
    if let Err(e) = &control {
        tracing::warn!("readyz: the control database: {e:#}");
    }
    let body = json!({
        "control": if control.is_ok() { "ok" } else { "unavailable" },
        "stopping": stopping,
    });
    let status = if control.is_ok() && !stopping {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(body)).into_response())
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Reply {
    ok(openapi_document())
}

/// The OpenAPI 3.1 document of [`routes`].
pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in routes() {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method, r.path),
            "x-access": r.access,
            "parameters": params,
            "responses": {
                "200": { "description": "OK" },
                "202": { "description": "A job was queued (the body is the job)" },
                "400": { "description": "Invalid request" },
                "401": { "description": "No valid token" },
                "403": { "description": "The token's role may not do this" },
                "404": { "description": "No such tenant, record or job (or not the caller's)" },
                "429": { "description": "The tenant's rate limit was reached" },
            },
        });
        if r.access == Access::Public {
            op["security"] = json!([]);
        }
        if r.method == Method::POST || r.method == Method::PUT {
            op["requestBody"] =
                json!({ "content": { "application/json": { "schema": { "type": "object" } } } });
        }
        paths
            .entry(r.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object")
            .insert(r.method.as_str().to_lowercase(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "tvault-server", "version": API_VERSION,
                  "description": "tenant-vault's HTTP API; see docs/SERVER.md" },
        "components": { "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } } },
        "security": [ { "token": [] } ],
        "paths": paths,
    })
}

// ---- keys -------------------------------------------------------------------------------

/// The key a request reads plaintext with.
pub(crate) enum Key {
    Given(keys::TenantIdentities),
    Escrow,
}

impl Key {
    pub(crate) fn get<'a>(&'a self, app: &'a App) -> &'a keys::TenantIdentities {
        match self {
            Key::Given(k) => k,
            Key::Escrow => app.escrow.as_ref().expect("checked when chosen"),
        }
    }
}

/// The tenant's identity sent with the request, or else the escrow identity for support and
/// operators on a tenant that allowed escrow.
pub(crate) fn key_for(
    app: &App,
    p: &Principal,
    tenant: &str,
    identity: Option<Zeroizing<String>>,
) -> Result<Key, ApiError> {
    if let Some(text) = identity {
        return Ok(Key::Given(keys::TenantIdentities::from_str_secret(&text)?));
    }
    let record = app.vault.tenant(tenant)?;
    if p.role != Role::Tenant && record.escrow && app.escrow.is_some() {
        return Ok(Key::Escrow);
    }
    Err(ApiError::bad(if p.role == Role::Tenant {
        "this needs your identity: send it as `identity` (the text of your age identity file)"
    } else if !record.escrow {
        "this tenant did not allow escrow: it needs the tenant's identity (`identity`)"
    } else {
        "this server has no escrow identity ([server] escrow_identity): send `identity`"
    }))
}

pub(crate) fn check_tenant(app: &App, tenant: &str) -> Result<vault_core::TenantRecord, ApiError> {
    Ok(app.vault.tenant(tenant)?)
}

// ---- tenants ----------------------------------------------------------------------------

async fn whoami(Extension(p): Extension<Principal>) -> Reply {
    ok(p)
}

/// The tenants a caller sees.
pub(crate) fn visible_tenants(
    app: &App,
    p: &Principal,
) -> Result<Vec<vault_core::TenantRecord>, ApiError> {
    Ok(app
        .vault
        .tenants()?
        .into_iter()
        .filter(|t| p.sees(&t.id))
        .collect())
}

async fn list_tenants(State(app): State<App>, Extension(p): Extension<Principal>) -> Reply {
    ok(visible_tenants(&app, &p)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddTenant {
    id: String,
    recipients: Vec<String>,
    #[serde(default)]
    allow_escrow: bool,
    schema: Option<String>,
    database: Option<String>,
}

impl AddTenant {
    fn placement(&self) -> Result<vault_core::tenant::Placement, ApiError> {
        use vault_core::tenant::Placement;
        match (&self.schema, &self.database) {
            (None, None) => Ok(Placement::Pool),
            (Some(s), None) => Ok(Placement::Bridge { schema: s.clone() }),
            (None, Some(d)) => Ok(Placement::Silo {
                database: d.clone(),
            }),
            _ => Err(ApiError::bad(
                "a tenant has a schema or a database, not both",
            )),
        }
    }
}

fn op(app: &App, p: &Principal) -> vault_core::Vault {
    app.vault.operation(Some(p.actor()))
}

async fn add_tenant(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Body_(t): Body_<AddTenant>,
) -> Reply {
    let placement = t.placement()?;
    let record = op(&app, &p)
        .add_tenant(&t.id, &t.recipients, t.allow_escrow, placement)
        .await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Import {
    tenants: Vec<AddTenant>,
}

async fn import_tenants(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Body_(body): Body_<Import>,
) -> Reply {
    let vault = op(&app, &p);
    let (mut added, mut existing) = (vec![], vec![]);
    for t in &body.tenants {
        if vault.tenant(&t.id).is_ok() {
            existing.push(t.id.clone());
            continue;
        }
        let added_one = match t.placement() {
            Ok(placement) => vault
                .add_tenant(&t.id, &t.recipients, t.allow_escrow, placement)
                .await
                .map_err(ApiError::from),
            Err(e) => Err(e),
        };
        match added_one {
            Ok(_) => added.push(t.id.clone()),
            // The tenants before it stay registered, as with `tvault tenant import`.
            Err(e) => {
                return Ok((
                    e.status,
                    Json(
                        json!({ "error": { "code": e.code, "message": e.message, "tenant": t.id },
                                 "added": added, "existing": existing }),
                    ),
                )
                    .into_response());
            }
        }
    }
    ok(json!({ "added": added, "existing": existing }))
}

async fn show_tenant(State(app): State<App>, Path(tenant): Path<String>) -> Reply {
    let record = check_tenant(&app, &tenant)?;
    let policy = app.vault.effective_policy(&record).await?;
    let hold = app.vault.hold(&record).await?;
    let forget = app.control.forget_request(&tenant).await?;
    ok(json!({ "tenant": record, "policy": policy, "hold": hold, "forget_request": forget }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipients {
    /// A current identity of the tenant, proving it holds the key.
    identity: Zeroizing<String>,
    /// The new recipients: all of them (send the current ones too to add one).
    recipients: Vec<String>,
    /// Also a new data key for later snapshots (the old key reads nothing written after).
    #[serde(default)]
    revoke: bool,
}

async fn set_recipients(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Body_(body): Body_<Recipients>,
) -> Reply {
    let identity = keys::TenantIdentities::from_str_secret(&body.identity)?;
    let record = op(&app, &p)
        .rotate_tenant_key(&tenant, &identity, &body.recipients, body.revoke, false)
        .await?;
    ok(record)
}

async fn snapshots(State(app): State<App>, Path(tenant): Path<String>) -> Reply {
    ok(app.vault.snapshots(Some(&tenant))?)
}

// ---- records ----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordQuery {
    table: String,
    /// `column=value[,column=value]`, as the CLI takes it.
    key: String,
}

pub(crate) fn parse_key(key: &str) -> Result<vault_core::records::KeyValues, ApiError> {
    Ok(vault_core::records::parse_key(key)?)
}

async fn find_record(
    State(app): State<App>,
    Path(tenant): Path<String>,
    q: Result<Query<RecordQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let Query(q) = q?;
    ok(app
        .vault
        .find_record(&tenant, &q.table, &parse_key(&q.key)?)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordAt {
    table: String,
    key: String,
    #[serde(default = "latest")]
    snapshot: String,
    identity: Option<Zeroizing<String>>,
}

fn latest() -> String {
    "latest".into()
}

async fn show_record(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Body_(body): Body_<RecordAt>,
) -> Reply {
    let key = key_for(&app, &p, &tenant, body.identity)?;
    let view = op(&app, &p)
        .show_record(
            &tenant,
            &body.table,
            &parse_key(&body.key)?,
            &body.snapshot,
            key.get(&app),
        )
        .await?;
    ok(view)
}

async fn diff_record(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Body_(body): Body_<RecordAt>,
) -> Reply {
    let key = key_for(&app, &p, &tenant, body.identity)?;
    let diff = op(&app, &p)
        .diff_record(
            &tenant,
            &body.table,
            &parse_key(&body.key)?,
            &body.snapshot,
            key.get(&app),
        )
        .await?;
    ok(diff)
}

/// What a record restore asks for (the API's body, the console's form).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordRestore {
    pub table: String,
    pub keys: Vec<String>,
    #[serde(default = "latest")]
    pub snapshot: String,
    #[serde(default)]
    pub with_related: bool,
    #[serde(default)]
    pub identity: Option<Zeroizing<String>>,
    /// The `confirmation` of the dry run this confirms; without it, the request is a dry run.
    #[serde(default)]
    pub confirmation: Option<String>,
}

impl RecordRestore {
    /// The core's options for this request, from `snapshot`.
    fn options(
        &self,
        tenant: &str,
        snapshot: &str,
        dry_run: bool,
    ) -> Result<vault_core::records::RecordRestoreOptions, ApiError> {
        let keys = self
            .keys
            .iter()
            .map(|k| parse_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(ApiError::bad("`keys` names at least one record"));
        }
        Ok(vault_core::records::RecordRestoreOptions {
            tenant: tenant.to_string(),
            table: self.table.clone(),
            keys,
            snapshot: snapshot.to_string(),
            with_related: self.with_related,
            dry_run,
        })
    }
}

/// The dry run of a record restore and the confirmation that binds a later run to it.
pub(crate) async fn plan_record_restore(
    app: &App,
    p: &Principal,
    tenant: &str,
    req: &RecordRestore,
    key: &Key,
) -> Result<(vault_core::records::RecordRestoreReport, String), ApiError> {
    let opts = req.options(tenant, &req.snapshot, true)?;
    let plan = op(app, p).restore_records(&opts, key.get(app)).await?;
    // The confirmation binds the request to what its dry run showed: the same rows, from the
    // same snapshot. If the live rows changed since, the dry run must be looked at again.
    let text = serde_json::to_vec(&json!({
        "tenant": tenant, "table": req.table, "keys": req.keys,
        "with_related": req.with_related, "plan": plan,
    }))
    .map_err(anyhow::Error::from)?;
    let mac = blake3::keyed_hash(&app.secret, &text);
    Ok((plan, mac.to_hex().to_string()))
}

/// Runs a record restore its dry run's confirmation allows; records it as a finished job.
pub(crate) async fn confirm_record_restore(
    app: &App,
    p: &Principal,
    tenant: &str,
    req: &RecordRestore,
    key: &Key,
    confirmation: &str,
) -> Result<(vault_core::records::RecordRestoreReport, Job), ApiError> {
    let (plan, mac) = plan_record_restore(app, p, tenant, req, key).await?;
    let given = blake3::Hash::from_hex(confirmation.as_bytes())
        .map_err(|_| ApiError::bad("`confirmation` is not one this server made"))?;
    let mac = blake3::Hash::from_hex(mac.as_bytes()).map_err(anyhow::Error::from)?;
    // blake3::Hash compares in constant time.
    if given != mac {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "changed",
            "the rows to restore are not those of the dry run this confirms (the live rows, \
             the snapshot or the request changed): make the dry run again",
        ));
    }
    rate_limit(app, tenant, "restore-records").await?;
    let opts = req.options(tenant, &plan.snapshot, false)?;
    let report = op(app, p).restore_records(&opts, key.get(app)).await?;
    let value = serde_json::to_value(&report).map_err(anyhow::Error::from)?;
    let job = app
        .control
        .record_done(
            NewJob {
                id: new_id("job_"),
                kind: "restore-records".into(),
                tenant: Some(tenant.to_string()),
                params: json!({ "table": req.table, "records": req.keys.len(),
                                "snapshot": plan.snapshot, "with_related": req.with_related }),
                created_by: p.actor(),
                idempotency_key: None,
                schedule: None,
                local_to: None,
            },
            &value,
        )
        .await?;
    Ok((report, job))
}

async fn restore_records(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Body_(body): Body_<RecordRestore>,
) -> Reply {
    let key = key_for(&app, &p, &tenant, body.identity.clone())?;
    match &body.confirmation {
        None => {
            let (plan, confirmation) = plan_record_restore(&app, &p, &tenant, &body, &key).await?;
            let mut v = serde_json::to_value(&plan).map_err(anyhow::Error::from)?;
            v["confirmation"] = json!(confirmation);
            ok(v)
        }
        Some(c) => {
            let (report, job) = confirm_record_restore(&app, &p, &tenant, &body, &key, c).await?;
            let mut v = serde_json::to_value(&report).map_err(anyhow::Error::from)?;
            v["job"] = json!(job.id);
            ok(v)
        }
    }
}

// ---- jobs -------------------------------------------------------------------------------

/// Kinds a tenant's rate limit counts, per limit.
async fn rate_limit(app: &App, tenant: &str, kind: &str) -> Result<(), ApiError> {
    let (kinds, limit): (&[&str], u32) = match kind {
        "export" => (&["export"], app.config.limits.exports_per_hour),
        _ => (
            &["restore", "restore-records"],
            app.config.limits.restores_per_hour,
        ),
    };
    let recent = app.control.recent(tenant, kinds).await?;
    if recent >= i64::from(limit) {
        return Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("{tenant:?} made {recent} of these in the last hour (limit {limit}); try again later"),
        });
    }
    Ok(())
}

/// Queues a job; `202` with the job, or `200` with the job this caller already submitted under
/// the same `Idempotency-Key`.
async fn submit(
    app: &App,
    p: &Principal,
    headers: &HeaderMap,
    kind: &str,
    tenant: Option<String>,
    mut params: Value,
    key: Option<Key>,
) -> Reply {
    if app.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "this server is stopping",
        ));
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::bad("Idempotency-Key must be ASCII"))
        })
        .transpose()?;
    if idempotency_key.as_ref().is_some_and(|k| k.len() > 200) {
        return Err(ApiError::bad("Idempotency-Key is at most 200 characters"));
    }
    let id = new_id("job_");
    let local = matches!(key, Some(Key::Given(_)));
    match key {
        Some(Key::Given(k)) => {
            app.keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone(), k);
        }
        Some(Key::Escrow) => params["key"] = json!(KeySource::Escrow),
        None => {}
    }
    if local {
        params["key"] = json!(KeySource::Request);
    }
    let submitted = app
        .control
        .submit(NewJob {
            id: id.clone(),
            kind: kind.into(),
            tenant,
            params,
            created_by: p.actor(),
            idempotency_key,
            schedule: None,
            local_to: local.then(|| app.config.node.clone()),
        })
        .await;
    let (job, created) = match submitted {
        Ok(s) => s,
        Err(e) => {
            app.keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            return Err(e.into());
        }
    };
    if !created {
        app.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        return Ok((StatusCode::OK, Json(job)).into_response());
    }
    app.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    #[serde(flatten)]
    params: RestoreParams,
    identity: Option<Zeroizing<String>>,
}

async fn restore_tenant(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Body_(body): Body_<RestoreBody>,
) -> Reply {
    check_tenant(&app, &tenant)?;
    let elsewhere = body.params.into_schema.is_some() || body.params.into_database.is_some();
    if elsewhere && p.role != Role::Operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an operator restores a tenant somewhere else than where it lives",
        ));
    }
    if let Some(db) = &body.params.into_database {
        // A name on the source's server: the API never connects where a caller says.
        if db.is_empty()
            || !db
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            return Err(ApiError::bad(
                "`into_database` is a database name on the source's server (letters, digits, \
                 `_` and `-`), never a connection string",
            ));
        }
    }
    let key = key_for(&app, &p, &tenant, body.identity)?;
    if !body.params.dry_run {
        rate_limit(&app, &tenant, "restore").await?;
    }
    let params = serde_json::to_value(&body.params).map_err(anyhow::Error::from)?;
    submit(
        &app,
        &p,
        &headers,
        "restore",
        Some(tenant),
        params,
        Some(key),
    )
    .await
}

async fn export_tenant(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Body_(body): Body_<ExportParams>,
) -> Reply {
    check_tenant(&app, &tenant)?;
    vault_core::export::Format::parse(&body.format)?;
    if body.source == "live" && body.since.is_some() {
        return Err(ApiError::bad(
            "`since` goes with a snapshot export, not a live one",
        ));
    }
    rate_limit(&app, &tenant, "export").await?;
    let params = serde_json::to_value(&body).map_err(anyhow::Error::from)?;
    submit(&app, &p, &headers, "export", Some(tenant), params, None).await
}

/// A JSON body that may be left out (`{}`).
fn optional_json<T: Default + for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the JSON body: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CycleBody {
    tenants: Option<Vec<String>>,
}

async fn backup(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Reply {
    let body: CycleBody = optional_json(&body)?;
    submit(
        &app,
        &p,
        &headers,
        "backup",
        None,
        json!({ "tenants": body.tenants }),
        None,
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    tenant: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

async fn retention(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Reply {
    let body: TenantBody = optional_json(&body)?;
    let params = json!({ "tenant": body.tenant, "dry_run": body.dry_run });
    submit(&app, &p, &headers, "retention", None, params, None).await
}

async fn verify(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Reply {
    let body: TenantBody = optional_json(&body)?;
    submit(
        &app,
        &p,
        &headers,
        "verify",
        None,
        json!({ "tenant": body.tenant }),
        None,
    )
    .await
}

async fn drill(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Reply {
    let body: TenantBody = optional_json(&body)?;
    if let Some(t) = &body.tenant {
        check_tenant(&app, t)?;
    }
    if app.escrow.is_none() {
        return Err(ApiError::bad(
            "drills restore with the escrow identity, and this server has none ([server] escrow_identity)",
        ));
    }
    let tenant = body.tenant.clone();
    submit(
        &app,
        &p,
        &headers,
        "drill",
        tenant,
        json!({ "tenant": body.tenant }),
        None,
    )
    .await
}

/// Whether a caller may see a job: one of a tenant it sees, or (operators) any.
fn sees_job(p: &Principal, job: &Job) -> bool {
    match &job.tenant {
        Some(t) => p.sees(t),
        None => p.role == Role::Operator,
    }
}

pub(crate) async fn visible_job(app: &App, p: &Principal, id: &str) -> Result<Job, ApiError> {
    match app.control.job(id).await? {
        Some(job) if sees_job(p, &job) => Ok(job),
        _ => Err(ApiError::not_found("no such job")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

async fn list_jobs(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    q: Result<Query<JobsQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let Query(q) = q?;
    let limit = q.limit.clamp(1, 1000);
    let jobs = match p.scope() {
        None => app.control.jobs(None, limit).await?,
        Some(tenants) => app.control.jobs(Some(tenants), limit).await?,
    };
    let jobs: Vec<_> = jobs.into_iter().filter(|j| sees_job(&p, j)).collect();
    ok(jobs)
}

async fn show_job(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Reply {
    ok(visible_job(&app, &p, &id).await?)
}

async fn cancel_job(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Reply {
    let job = visible_job(&app, &p, &id).await?;
    // Operators cancel any job; others only the jobs they submitted (never a forget job).
    if p.role != Role::Operator && (job.created_by != p.actor() || job.kind == "forget") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an operator or the job's submitter cancels it",
        ));
    }
    if !app.control.cancel(&job.id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ended",
            format!("the job has already ended ({})", job.state),
        ));
    }
    if let Some(op) = app
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&job.id)
    {
        op.cancel();
    }
    // A key held for it goes now.
    app.keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.id);
    ok(app.control.job(&job.id).await?)
}

fn link_signature(app: &App, job: &str, expires: i64) -> blake3::Hash {
    blake3::keyed_hash(
        &app.secret,
        format!("download\0{job}\0{expires}").as_bytes(),
    )
}

async fn link(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Reply {
    let job = visible_job(&app, &p, &id).await?;
    // Exports are the tenant's and the operator's (as `POST …/exports`), not support's.
    if p.may(Access::Owner, job.tenant.as_deref()).is_err() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "downloads are for the tenant and operators",
        ));
    }
    if job.kind != "export" || job.state != "succeeded" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            format!(
                "only a finished export has a download ({} {})",
                job.kind, job.state
            ),
        ));
    }
    let expires = app.clock.now().unix_timestamp() + app.config.link_seconds as i64;
    let sig = link_signature(&app, &job.id, expires);
    ok(json!({
        "url": format!("/v1/downloads/{}?expires={expires}&sig={}", job.id, sig.to_hex()),
        "expires": expires,
    }))
}

#[derive(Deserialize)]
struct DownloadQuery {
    expires: i64,
    sig: String,
}

async fn download(
    State(app): State<App>,
    Path(id): Path<String>,
    q: Result<Query<DownloadQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let Query(q) = q?;
    let valid = blake3::Hash::from_hex(q.sig.as_bytes())
        .is_ok_and(|sig| sig == link_signature(&app, &id, q.expires));
    if !valid {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_link",
            "this link is not valid",
        ));
    }
    if app.clock.now().unix_timestamp() > q.expires {
        return Err(ApiError::new(
            StatusCode::GONE,
            "expired",
            "this link has expired: ask for a new one",
        ));
    }
    let job = app
        .control
        .job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such job"))?;
    let node = job.node.clone().unwrap_or_default();
    if node != app.config.node {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "elsewhere",
            format!("this export is kept by server {node:?}: download it from there"),
        ));
    }
    let path = crate::jobs::export_path(&app, &id);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found("the export file is gone"))?;
    let bytes = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let tenant = job.tenant.clone().unwrap_or_default();
    let audit = app
        .vault
        .operation(Some(format!("download link of {}", job.created_by)))
        .audit(
            vault_core::audit::AuditDraft::new(vault_core::audit::actions::EXPORT)
                .tenant(tenant.clone())
                .object(id.clone())
                .details(json!({ "event": "export downloaded", "job": id, "bytes": bytes })),
        )
        .await;
    audit?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, bytes.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"export-{id}.tvx\""),
            ),
        ],
        body,
    )
        .into_response())
}

// ---- policy, hold, erase, forget --------------------------------------------------------

async fn get_policy(State(app): State<App>, Path(tenant): Path<String>) -> Reply {
    let record = check_tenant(&app, &tenant)?;
    ok(json!({
        "policy": app.vault.tenant_policy(&record).await?,
        "effective": app.vault.effective_policy(&record).await?,
    }))
}

async fn set_policy(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Body_(policy): Body_<vault_core::retention::Policy>,
) -> Reply {
    ok(op(&app, &p).set_policy(&tenant, policy).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    reason: String,
}

async fn set_hold(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Body_(body): Body_<HoldBody>,
) -> Reply {
    ok(op(&app, &p).set_hold(&tenant, &body.reason).await?)
}

async fn release_hold(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
) -> Reply {
    ok(json!({ "released": op(&app, &p).release_hold(&tenant).await? }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseBody {
    table: String,
    keys: Vec<String>,
    #[serde(default)]
    cascade: bool,
    #[serde(default)]
    dry_run: bool,
    identity: Option<Zeroizing<String>>,
}

async fn erase(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Body_(body): Body_<EraseBody>,
) -> Reply {
    let key = key_for(&app, &p, &tenant, body.identity)?;
    let opts = vault_core::erase::EraseOptions {
        tenant,
        table: body.table,
        keys: body
            .keys
            .iter()
            .map(|k| parse_key(k))
            .collect::<Result<_, _>>()?,
        cascade: body.cascade,
        dry_run: body.dry_run,
    };
    ok(op(&app, &p).erase(&opts, key.get(&app)).await?)
}

async fn get_forget(State(app): State<App>, Path(tenant): Path<String>) -> Reply {
    match app.control.forget_request(&tenant).await? {
        Some(r) => ok(r),
        None => Err(ApiError::not_found("no forget request")),
    }
}

async fn request_forget(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
) -> Reply {
    check_tenant(&app, &tenant)?;
    let due = app
        .config
        .forget_grace_hours
        .map(|h| app.clock.now() + time::Duration::hours(h as i64));
    let request = app.control.request_forget(&tenant, &p.actor(), due).await?;
    Ok((StatusCode::ACCEPTED, Json(request)).into_response())
}

async fn withdraw_forget(State(app): State<App>, Path(tenant): Path<String>) -> Reply {
    if !app.control.cancel_forget(&tenant).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_pending",
            "there is no pending forget request to withdraw",
        ));
    }
    ok(app.control.forget_request(&tenant).await?)
}

async fn confirm_forget(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
) -> Reply {
    match crate::jobs::confirm_forget(&app, &tenant, &p.actor(), None).await? {
        Some(job) => Ok((StatusCode::ACCEPTED, Json(job)).into_response()),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_pending",
            "there is no pending forget request for this tenant",
        )),
    }
}

// ---- audit, schedules, tokens -----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    tenant: Option<String>,
}

async fn audit(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let Query(q) = q?;
    ok(visible_audit(&app, &p, q.tenant.as_deref()).await?)
}

/// Audit entries of `tenant` (or of every tenant) that the caller sees.
pub(crate) async fn visible_audit(
    app: &App,
    p: &Principal,
    tenant: Option<&str>,
) -> Result<Vec<vault_core::audit::AuditEntry>, ApiError> {
    if let Some(t) = tenant {
        if !p.sees(t) {
            return Err(ApiError::not_found("no such tenant"));
        }
    }
    let entries = app.vault.audit_entries(tenant).await?;
    Ok(entries
        .into_iter()
        .filter(|e| match &e.tenant {
            Some(t) => p.sees(t),
            None => p.role == Role::Operator,
        })
        .collect())
}

async fn schedules(State(app): State<App>) -> Reply {
    let mut out = vec![];
    for s in &app.config.schedules {
        let last = app.control.last_fire(&s.name, app.clock.now()).await?;
        let next = crate::schedule::parse(&s.cron)
            .ok()
            .and_then(|c| crate::schedule::next_after(&c, last));
        out.push(json!({
            "name": s.name, "kind": s.kind, "cron": s.cron, "tenant": s.tenant,
            "last_fire": last.format(&time::format_description::well_known::Rfc3339).ok(),
            "next_fire": next.and_then(|n| n.format(&time::format_description::well_known::Rfc3339).ok()),
        }));
    }
    ok(out)
}

async fn list_tokens(State(app): State<App>) -> Reply {
    ok(app.control.tokens().await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddToken {
    role: String,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    label: String,
}

/// Makes a token; shared by the API and `tvault-server token add`.
pub async fn make_token(
    app_control: &crate::control::Control,
    vault: &vault_core::Vault,
    role: &str,
    tenants: &[String],
    label: &str,
) -> Result<Value, ApiError> {
    let role =
        Role::parse(role).ok_or_else(|| ApiError::bad("role is operator, support or tenant"))?;
    match role {
        Role::Tenant if tenants.len() != 1 => {
            return Err(ApiError::bad("a tenant token names exactly one tenant"))
        }
        Role::Operator if !tenants.is_empty() => {
            return Err(ApiError::bad("an operator token is not limited to tenants"))
        }
        _ => {}
    }
    for t in tenants {
        vault.tenant(t)?;
    }
    let (token, hash) = crate::auth::new_token();
    let id = app_control.add_token(&hash, role, tenants, label).await?;
    Ok(json!({ "id": id, "token": token, "role": role, "tenants": tenants, "label": label }))
}

async fn add_token(State(app): State<App>, Body_(body): Body_<AddToken>) -> Reply {
    let made = make_token(
        &app.control,
        &app.vault,
        &body.role,
        &body.tenants,
        &body.label,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

async fn revoke_token(State(app): State<App>, Path(token): Path<String>) -> Reply {
    if !app.control.revoke_token(&token).await? {
        return Err(ApiError::not_found("no such token"));
    }
    ok(json!({ "revoked": token }))
}
