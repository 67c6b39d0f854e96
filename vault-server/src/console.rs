//! The support console: a few server-rendered pages under `/ui` (docs/CONSOLE.md) to find a
//! tenant's record, compare it with the live row and restore it with its related rows.
//!
//! Plain HTML forms, no JavaScript: every control has a label, every action is a link or a
//! form button. Signing in puts the token in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! `/ui`; every page goes through the same check as the API ([`crate::auth::check`]) with the
//! access its route declares, so a page shows and does only what its token may. Pages call the
//! same functions as the API's handlers.

use crate::auth::{check, path_tenant, Access, Denied, Principal, Refusal};
use crate::routes::{self, ApiError, Key, RecordRestore};
use crate::App;
use axum::extract::{Form, Path, Query, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The cookie that holds a signed-in token.
const COOKIE: &str = "tvault_token";

/// The console's pages, each with the access it requires.
pub fn router(app: App) -> Router<App> {
    use Access::*;
    let pages: Vec<(&str, Access, MethodRouter<App>)> = vec![
        ("/ui", Any, get(tenants)),
        ("/ui/tenants/{tenant}", Tenant, get(tenant)),
        (
            "/ui/tenants/{tenant}/records",
            Tenant,
            get(record).post(record_with_key),
        ),
        (
            "/ui/tenants/{tenant}/restore",
            Tenant,
            post(restore_dry_run),
        ),
        (
            "/ui/tenants/{tenant}/restore/confirm",
            Tenant,
            post(restore_confirm),
        ),
        ("/ui/tenants/{tenant}/audit", Tenant, get(audit)),
        ("/ui/jobs/{job}", Any, get(job)),
    ];
    let mut router = Router::new()
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout));
    for (path, access, handler) in pages {
        router = router.route(
            path,
            handler
                .layer::<_, std::convert::Infallible>(from_fn_with_state(app.clone(), authorize))
                .layer::<_, std::convert::Infallible>(Extension(access)),
        );
    }
    router
}

/// The console's check: the cookie's token through [`check`]; a refusal is a page (sign-in
/// for no token). Forms posted from another site are refused.
async fn authorize(
    State(app): State<App>,
    params: RawPathParams,
    jar: CookieJar,
    mut req: Request,
    next: Next,
) -> Response {
    let access = crate::auth::route_access(&req);
    if req.method() != Method::GET && cross_site(req.headers()) {
        return page_error(
            StatusCode::FORBIDDEN,
            "This form was sent from another site.",
        );
    }
    let token = jar.get(COOKIE).map(|c| c.value().to_string());
    let tenant = path_tenant(&params);
    match check(&app, token.as_deref(), access, tenant.as_deref()).await {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(Refusal::Denied(Denied::Unauthenticated)) => Redirect::to("/ui/login").into_response(),
        Err(Refusal::Denied(Denied::Unseen)) => {
            page_error(StatusCode::NOT_FOUND, "There is no such tenant.")
        }
        Err(Refusal::Denied(Denied::Forbidden)) => {
            page_error(StatusCode::FORBIDDEN, "Your token's role may not do this.")
        }
        Err(Refusal::Unavailable(e)) => page_error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

/// A browser says so when a request comes from a page of another site.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
}

// ---- layout -----------------------------------------------------------------------------

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:#20324a;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.5rem;align-items:center}
header a{color:#fff} header form{margin-left:auto}
main{padding:1rem 1.5rem;max-width:72rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem}
th,td{border:1px solid #c8c8c8;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f5}
caption{text-align:left;font-weight:600;padding:.2rem 0}
tr.changed td,tr.insert td,tr.update td{background:#fff4d6}
.added{color:#1a6b1a}.changed{color:#8a5a00}.deleted{color:#a01b1b}.unchanged{color:#555}
form.inline{display:inline}
label{display:block;margin:.4rem 0 .1rem;font-weight:600}
input,textarea,select,button{font:inherit;padding:.25rem .4rem}
button{cursor:pointer}
:focus{outline:3px solid #1f6feb;outline-offset:1px}
.error{background:#fde2e2;border:1px solid #a01b1b;padding:.6rem}
.note{color:#444}
progress{width:20rem}
";

fn layout(title: &str, who: Option<&Principal>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tenant-vault console" }
                style { (STYLE) }
            }
            body {
                header {
                    strong { "tenant-vault" }
                    @if let Some(p) = who {
                        nav aria-label="Main" { a href="/ui" { "Tenants" } }
                        span { "Signed in: " (p.role.as_str()) " " (p.label) }
                        form method="post" action="/ui/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

fn page_error(status: StatusCode, message: &str) -> Response {
    page(
        status,
        layout(
            "Cannot show this",
            None,
            html! { p.error role="alert" { (message) } p { a href="/ui" { "Back to the tenants" } } },
        ),
    )
}

/// An API error as a page, for the signed-in caller.
fn failed(p: &Principal, e: ApiError) -> Response {
    page(
        e.status,
        layout(
            "Cannot do this",
            Some(p),
            html! { p.error role="alert" { (e.message) } p { a href="/ui" { "Back to the tenants" } } },
        ),
    )
}

fn when(t: time::OffsetDateTime) -> String {
    t.format(&time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
    ))
    .unwrap_or_default()
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn value(v: &Option<String>) -> Markup {
    match v {
        Some(v) => html! { code { (v) } },
        None => html! { em { "NULL" } },
    }
}

// ---- sign-in ----------------------------------------------------------------------------

fn login_form(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/ui/login" {
                label for="token" { "Token" }
                input id="token" name="token" type="password" autocomplete="off" required size="70";
                p.note { "Your support token (tvt_…). It is kept in a cookie of this site until you sign out." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

async fn login_page() -> Markup {
    login_form(None)
}

#[derive(Deserialize)]
struct Login {
    token: Zeroizing<String>,
}

async fn login(State(app): State<App>, jar: CookieJar, Form(f): Form<Login>) -> Response {
    let token = f.token.trim().to_string();
    match check(&app, Some(&token), Access::Any, None).await {
        Ok(_) => {
            let cookie = Cookie::build((COOKIE, token))
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(app.config.tls_cert.is_some())
                .path("/ui");
            (jar.add(cookie), Redirect::to("/ui")).into_response()
        }
        Err(Refusal::Unavailable(e)) => page_error(StatusCode::SERVICE_UNAVAILABLE, &e),
        Err(Refusal::Denied(_)) => page(
            StatusCode::UNAUTHORIZED,
            login_form(Some("This token is not valid (unknown or revoked).")),
        ),
    }
}

async fn logout(jar: CookieJar) -> Response {
    (
        jar.remove(Cookie::build(COOKIE).path("/ui")),
        Redirect::to("/ui/login"),
    )
        .into_response()
}

// ---- pages ------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn tenants(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Query(s): Query<Search>,
) -> Response {
    let all = match routes::visible_tenants(&app, &p) {
        Ok(t) => t,
        Err(e) => return failed(&p, e),
    };
    let q = s.q.trim().to_lowercase();
    let found: Vec<_> = all
        .iter()
        .filter(|t| q.is_empty() || t.id.to_lowercase().contains(&q))
        .take(200)
        .collect();
    let body = html! {
        form method="get" action="/ui" role="search" {
            label for="q" { "Find a tenant" }
            input id="q" name="q" type="search" value=(s.q) autofocus;
            " " button type="submit" { "Search" }
        }
        p { (found.len()) " of " (all.len()) " tenants" }
        table {
            thead { tr { th scope="col" { "Tenant" } th scope="col" { "Model" } th scope="col" { "Escrow" } } }
            tbody {
                @for t in &found {
                    tr {
                        td { a href={ "/ui/tenants/" (urlencode(&t.id)) } { (t.id) } }
                        td { (t.placement.model()) @if let Some(l) = t.placement.location() { " " (l) } }
                        td { @if t.escrow { "allowed" } @else { "no" } }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, layout("Tenants", Some(&p), body))
}

/// A path segment or query value, percent-encoded.
fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn tenant(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
) -> Response {
    let result = async {
        let record = routes::check_tenant(&app, &tenant)?;
        let snaps = app.vault.snapshots(Some(&tenant))?;
        let policy = app.vault.effective_policy(&record).await?;
        let hold = app.vault.hold(&record).await?;
        Ok::<_, ApiError>((record, snaps, policy, hold))
    }
    .await;
    let (record, snaps, policy, hold) = match result {
        Ok(v) => v,
        Err(e) => return failed(&p, e),
    };
    let t = urlencode(&tenant);
    let body = html! {
        p { "Model: " (record.placement.model())
            @if let Some(l) = record.placement.location() { " (" (l) ")" }
            ". Escrow: " @if record.escrow { "allowed" } @else { "not allowed" } "." }
        h2 { "Retention" }
        p { "Policy: " (policy_text(&policy)) }
        p { "Legal hold: " @match &hold {
            Some(h) => { strong { (h.reason) } }
            None => { "none" }
        } }
        h2 { "Snapshots" }
        table {
            caption { "Newest first" }
            thead { tr {
                th scope="col" { "Time" } th scope="col" { "Snapshot" } th scope="col" { "Tables" }
                th scope="col" { "Rows" } th scope="col" { "Size" } th scope="col" { "Current until" }
            } }
            tbody {
                @for s in snaps.iter().rev() {
                    tr {
                        td { (when(s.time)) } td { code { (s.snapshot) } } td { (s.tables) }
                        td { (s.rows) } td { (bytes(s.bytes)) }
                        td { @if let Some(c) = s.confirmed { (when(c)) } }
                    }
                }
            }
        }
        h2 { "Find a record" }
        (lookup_form(&t, "", "", None))
        p { a href={ "/ui/tenants/" (t) "/audit" } { "Audit trail of " (tenant) } }
    };
    page(
        StatusCode::OK,
        layout(&format!("Tenant {tenant}"), Some(&p), body),
    )
}

/// A retention policy in words: its rules, or that nothing is deleted.
fn policy_text(policy: &vault_core::retention::Policy) -> String {
    let rules: Vec<String> = match serde_json::to_value(policy) {
        Ok(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                format!(
                    "{} {}",
                    k.replace('_', " "),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect(),
        _ => vec![],
    };
    match rules.is_empty() {
        true => "no rules: every snapshot is kept".into(),
        false => rules.join(", "),
    }
}

fn lookup_form(t: &str, table: &str, key: &str, identity_note: Option<&str>) -> Markup {
    html! {
        form method="get" action={ "/ui/tenants/" (t) "/records" } {
            label for="table" { "Table (schema.table)" }
            input id="table" name="table" required value=(table) placeholder="public.users";
            label for="key" { "Primary key (column=value[,column=value])" }
            input id="key" name="key" required value=(key) placeholder="id=42";
            @if let Some(n) = identity_note { p.note { (n) } }
            p { button type="submit" { "Look up" } }
        }
    }
}

#[derive(Deserialize)]
struct RecordQuery {
    table: String,
    key: String,
    snapshot: Option<String>,
}

#[derive(Deserialize)]
struct RecordForm {
    table: String,
    key: String,
    snapshot: Option<String>,
    identity: Option<Zeroizing<String>>,
}

async fn record(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Response {
    record_page(&app, &p, &tenant, &q.table, &q.key, q.snapshot, None).await
}

async fn record_with_key(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Form(f): Form<RecordForm>,
) -> Response {
    let identity = f.identity.filter(|i| !i.trim().is_empty());
    record_page(&app, &p, &tenant, &f.table, &f.key, f.snapshot, identity).await
}

/// A record's versions, and the chosen version against the live row, field by field.
async fn record_page(
    app: &App,
    p: &Principal,
    tenant: &str,
    table: &str,
    key_text: &str,
    snapshot: Option<String>,
    identity: Option<Zeroizing<String>>,
) -> Response {
    let t = urlencode(tenant);
    let key = match routes::parse_key(key_text) {
        Ok(k) => k,
        Err(e) => return failed(p, e),
    };
    let versions = match app.vault.find_record(tenant, table, &key) {
        Ok(v) => v,
        Err(e) => return failed(p, e.into()),
    };
    let chosen = snapshot.or_else(|| {
        versions
            .iter()
            .rev()
            .find(|v| v.present)
            .map(|v| v.snapshot.clone())
    });
    let had_identity = identity.is_some();
    // The chosen version against the live row: needs a key (escrow, or the one sent).
    let compared = match &chosen {
        None => None,
        Some(snap) => Some(match routes::key_for(app, p, tenant, identity) {
            Err(e) => Err(e),
            Ok(k) => compare(app, p, tenant, table, &key, snap, &k).await,
        }),
    };
    let body = html! {
        (lookup_form(&t, table, key_text, None))
        h2 { "Versions of " code { (table) } " " code { (key_text) } }
        @if versions.is_empty() {
            p { "No snapshot of this tenant has this table." }
        } @else {
            table {
                thead { tr { th scope="col" { "Snapshot" } th scope="col" { "Time" } th scope="col" { "Change" } th scope="col" { "" } } }
                tbody {
                    @for v in versions.iter().rev() {
                        tr {
                            td { code { (v.snapshot) } }
                            td { (when(v.time)) }
                            td class=(v.change) { (v.change) }
                            td {
                                @if v.present {
                                    a href={ "/ui/tenants/" (t) "/records?table=" (urlencode(table)) "&key=" (urlencode(key_text)) "&snapshot=" (v.snapshot) }
                                      aria-label={ "Compare snapshot " (v.snapshot) " with the live row" } { "Compare with live" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @match (&chosen, &compared) {
            (Some(snap), Some(Ok((fields, live)))) => {
                h2 { "Snapshot " code { (snap) } " against the live row" }
                @if *live == "deleted" { p.deleted { "The live database has no row with this key." } }
                table {
                    thead { tr { th scope="col" { "Column" } th scope="col" { "Snapshot" } th scope="col" { "Live" } th scope="col" { "" } } }
                    tbody {
                        @for (column, snap_value, live_value, differs) in fields {
                            tr class=[differs.then_some("changed")] {
                                th scope="row" { (column) }
                                td { (value(snap_value)) }
                                td { (value(live_value)) }
                                td { @if *differs { span.changed { "differs" } } }
                            }
                        }
                    }
                }
                h2 { "Restore this record" }
                form method="post" action={ "/ui/tenants/" (t) "/restore" } {
                    input type="hidden" name="table" value=(table);
                    input type="hidden" name="key" value=(key_text);
                    input type="hidden" name="snapshot" value=(snap);
                    p { input id="with_related" type="checkbox" name="with_related" value="true" checked;
                        label for="with_related" style="display:inline" { " With its related rows (rows that reference it, and parents it needs)" } }
                    @if had_identity { (identity_field()) }
                    button type="submit" { "Dry run: show what would change" }
                }
            }
            (Some(_), Some(Err(e))) => {
                p.error role="alert" { (e.message) }
                @if e.code == "invalid" || e.code == "invalid_key" || e.code == "wrong_key" {
                    form method="post" action={ "/ui/tenants/" (t) "/records" } {
                        input type="hidden" name="table" value=(table);
                        input type="hidden" name="key" value=(key_text);
                        @if let Some(s) = &chosen { input type="hidden" name="snapshot" value=(s); }
                        (identity_field())
                        button type="submit" { "Compare with this key" }
                    }
                }
            }
            _ => {}
        }
    };
    page(
        StatusCode::OK,
        layout(&format!("Record of {tenant}"), Some(p), body),
    )
}

fn identity_field() -> Markup {
    html! {
        label for="identity" { "The tenant's identity (its age identity file, used for this request only)" }
        textarea id="identity" name="identity" rows="3" cols="70" autocomplete="off" {}
    }
}

type Compared = (
    Vec<(String, Option<String>, Option<String>, bool)>,
    &'static str,
);

/// Every field of the record in `snapshot`, with the live value and whether they differ.
async fn compare(
    app: &App,
    p: &Principal,
    tenant: &str,
    table: &str,
    key: &vault_core::records::KeyValues,
    snapshot: &str,
    k: &Key,
) -> Result<Compared, ApiError> {
    let vault = app.vault.operation(Some(p.actor()));
    let shown = vault
        .show_record(tenant, table, key, snapshot, k.get(app))
        .await?;
    let diff = vault
        .diff_record(tenant, table, key, snapshot, k.get(app))
        .await?;
    let fields = shown
        .fields
        .iter()
        .map(|f| {
            let d = diff.differences.iter().find(|d| d.column == f.column);
            let live = match (diff.live, d) {
                ("deleted", _) => None,
                (_, Some(d)) => d.live.clone(),
                (_, None) => f.value.clone(),
            };
            (
                f.column.clone(),
                f.value.clone(),
                live,
                d.is_some() || diff.live == "deleted",
            )
        })
        .collect();
    Ok((fields, diff.live))
}

#[derive(Deserialize)]
struct RestoreForm {
    table: String,
    key: String,
    snapshot: String,
    #[serde(default)]
    with_related: Option<String>,
    identity: Option<Zeroizing<String>>,
    confirmation: Option<String>,
}

impl RestoreForm {
    fn request(&self) -> RecordRestore {
        RecordRestore {
            table: self.table.clone(),
            keys: vec![self.key.clone()],
            snapshot: self.snapshot.clone(),
            with_related: self.with_related.as_deref() == Some("true"),
            identity: None,
            confirmation: None,
        }
    }

    fn key(&self, app: &App, p: &Principal, tenant: &str) -> Result<Key, ApiError> {
        let identity = self.identity.clone().filter(|i| !i.trim().is_empty());
        routes::key_for(app, p, tenant, identity)
    }
}

async fn restore_dry_run(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Form(f): Form<RestoreForm>,
) -> Response {
    let req = f.request();
    let planned = async {
        let key = f.key(&app, &p, &tenant)?;
        routes::plan_record_restore(&app, &p, &tenant, &req, &key).await
    }
    .await;
    let (plan, confirmation) = match planned {
        Ok(v) => v,
        Err(e) => return failed(&p, e),
    };
    let t = urlencode(&tenant);
    let body = html! {
        p { "Restoring " code { (f.table) } " " code { (f.key) } " from snapshot " code { (plan.snapshot) }
            @if req.with_related { " with its related rows" } ". Nothing has changed yet." }
        table {
            caption { "Rows that would change" }
            thead { tr { th scope="col" { "Action" } th scope="col" { "Table" } th scope="col" { "Key" } th scope="col" { "Why" } } }
            tbody {
                @for r in plan.rows.iter().filter(|r| r.action != "unchanged") {
                    tr class=(r.action) { td { (r.action) } td { (r.table) } td { code { (r.key) } } td { (r.reason) } }
                }
            }
        }
        @if plan.unchanged > 0 {
            details {
                summary { (plan.unchanged) " related rows already match the snapshot" }
                ul { @for r in plan.rows.iter().filter(|r| r.action == "unchanged") {
                    li { (r.table) " " code { (r.key) } " (" (r.reason) ")" }
                } }
            }
        }
        p { strong { (plan.inserted) } " to insert, " strong { (plan.updated) } " to update, "
            (plan.unchanged) " unchanged." }
        @if plan.inserted + plan.updated == 0 {
            p { "The live rows already match the snapshot: there is nothing to restore." }
        } @else {
            form method="post" action={ "/ui/tenants/" (t) "/restore/confirm" } {
                input type="hidden" name="table" value=(f.table);
                input type="hidden" name="key" value=(f.key);
                input type="hidden" name="snapshot" value=(plan.snapshot);
                @if req.with_related { input type="hidden" name="with_related" value="true"; }
                input type="hidden" name="confirmation" value=(confirmation);
                @if f.identity.as_ref().is_some_and(|i| !i.trim().is_empty()) { (identity_field()) }
                button type="submit" { "Confirm: restore these rows" }
            }
        }
        p { a href={ "/ui/tenants/" (t) "/records?table=" (urlencode(&f.table)) "&key=" (urlencode(&f.key)) } { "Back to the record" } }
    };
    page(StatusCode::OK, layout("Dry run", Some(&p), body))
}

async fn restore_confirm(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
    Form(f): Form<RestoreForm>,
) -> Response {
    let req = f.request();
    let done = async {
        let key = f.key(&app, &p, &tenant)?;
        let confirmation = f
            .confirmation
            .clone()
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid", "no confirmation"))?;
        routes::confirm_record_restore(&app, &p, &tenant, &req, &key, &confirmation).await
    }
    .await;
    match done {
        Ok((_, job)) => Redirect::to(&format!("/ui/jobs/{}", job.id)).into_response(),
        Err(e) => failed(&p, e),
    }
}

async fn job(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let job = match routes::visible_job(&app, &p, &id).await {
        Ok(j) => j,
        Err(e) => return failed(&p, e),
    };
    let running = job.state == "queued" || job.state == "running";
    // Its entry in the audit trail: the latest of its kind for its tenant by its caller.
    let entry = match (&job.tenant, job.kind.as_str()) {
        (Some(t), "restore-records") => routes::visible_audit(&app, &p, Some(t))
            .await
            .ok()
            .and_then(|entries| {
                entries
                    .into_iter()
                    .rev()
                    .find(|e| e.action == "record-restore" && e.actor == job.created_by)
            }),
        _ => None,
    };
    let body = html! {
        @if running { meta http-equiv="refresh" content="2"; }
        p { "Kind: " (job.kind) @if let Some(t) = &job.tenant { ", tenant " a href={ "/ui/tenants/" (urlencode(t)) } { (t) } } }
        p { "State: " strong class=(job.state) { (job.state) } }
        @if running {
            p { label for="progress" { "Progress" }
                progress id="progress" max=(job.progress.total.max(1)) value=(job.progress.done) { (job.progress.done) " of " (job.progress.total) } }
            p.note { "This page refreshes itself until the job ends." }
        }
        @if let Some(e) = &job.error { p.error role="alert" { (e) } }
        @if let Some(r) = &job.result {
            @if job.kind == "restore-records" {
                p { "Inserted " strong { (r["inserted"]) } ", updated " strong { (r["updated"]) } ", unchanged " (r["unchanged"]) " (snapshot " code { (r["snapshot"].as_str().unwrap_or_default()) } ")." }
                @if let Some(rows) = r["rows"].as_array() {
                    table {
                        caption { "Rows written" }
                        thead { tr { th scope="col" { "Action" } th scope="col" { "Table" } th scope="col" { "Key" } } }
                        tbody { @for row in rows.iter().filter(|row| row["action"] != "unchanged") {
                            tr { td { (row["action"].as_str().unwrap_or_default()) } td { (row["table"].as_str().unwrap_or_default()) } td { code { (row["key"].as_str().unwrap_or_default()) } } }
                        } }
                    }
                }
            } @else {
                details { summary { "Result" } pre { (serde_json::to_string_pretty(r).unwrap_or_default()) } }
            }
        }
        @if let Some(e) = &entry {
            h2 { "Audit entry" }
            table { tbody {
                tr { th scope="row" { "Sequence" } td { (e.seq) } }
                tr { th scope="row" { "Time" } td { (when(e.time)) } }
                tr { th scope="row" { "Actor" } td { (e.actor) } }
                tr { th scope="row" { "Action" } td { (e.action) } }
                tr { th scope="row" { "Outcome" } td { (e.outcome) } }
                tr { th scope="row" { "Hash" } td { code { (e.hash) } } }
            } }
        }
    };
    page(
        StatusCode::OK,
        layout(&format!("Job {}", job.id), Some(&p), body),
    )
}

async fn audit(
    State(app): State<App>,
    Extension(p): Extension<Principal>,
    Path(tenant): Path<String>,
) -> Response {
    let entries = match routes::visible_audit(&app, &p, Some(&tenant)).await {
        Ok(e) => e,
        Err(e) => return failed(&p, e),
    };
    let body = html! {
        p { (entries.len()) " entries, newest first. The trail never holds row data." }
        table {
            thead { tr {
                th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" }
                th scope="col" { "Action" } th scope="col" { "Outcome" } th scope="col" { "Details" }
            } }
            tbody {
                @for e in entries.iter().rev().take(500) {
                    tr {
                        td { (e.seq) } td { (when(e.time)) } td { (e.actor) } td { (e.action) }
                        td { (e.outcome) } td { code { (e.details.to_string()) } }
                    }
                }
            }
        }
    };
    page(
        StatusCode::OK,
        layout(&format!("Audit trail of {tenant}"), Some(&p), body),
    )
}
