//! Jobs: every long operation (backup cycles, retention, verify, restore drills, whole
//! restores, exports, forgetting a tenant) runs as a job of the control database's job table.
//!
//! A server's workers claim queued jobs with `FOR UPDATE SKIP LOCKED` and hold them under a
//! lease they renew while the job runs, recording its progress and picking up cancellation.
//! A job whose lease ran out (its server died) is queued again for any server, unless it
//! needs a key that only the dead server held in memory; then it is `interrupted`. A server
//! that starts marks the jobs it was running `interrupted`.

use crate::control::{Job, JobProgress, NewJob};
use crate::App;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vault_core::Vault;

/// Which key a job that reads plaintext uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// The tenant's identity sent with the request, held in this server's memory only.
    Request,
    /// The operator's escrow identity (tenants that allowed escrow, support and operators).
    Escrow,
}

/// Parameters of a whole restore (`POST /v1/tenants/{tenant}/restore`).
#[derive(Clone, Debug, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreParams {
    #[serde(default = "latest")]
    pub snapshot: String,
    pub into_schema: Option<String>,
    pub into_database: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// Parameters of an export (`POST /v1/tenants/{tenant}/exports`).
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// A snapshot id or `latest` (default), or `live`.
    #[serde(default = "latest")]
    pub source: String,
    pub since: Option<String>,
    #[serde(default = "pg")]
    pub format: String,
}

fn latest() -> String {
    "latest".into()
}
fn pg() -> String {
    "pg".into()
}

/// A worker: claims and runs jobs until the server stops.
pub async fn worker(app: App) {
    loop {
        if app.stopping.load(Ordering::SeqCst) {
            return;
        }
        match app
            .control
            .claim(&app.config.node, app.config.lease())
            .await
        {
            Ok(Some(job)) => run(&app, job).await,
            Ok(None) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), app.wake.notified()).await;
            }
            Err(e) => {
                tracing::warn!("claiming a job: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Brings this server's inventory up to what other servers of the store committed; `full`
/// also compares every tenant's record (keys rotated or tenants forgotten elsewhere).
async fn catch_up(app: &App, full: bool) {
    match app
        .vault
        .catch_up_inventory(app.escrow.as_ref(), full)
        .await
    {
        Ok(r) if r != Default::default() => {
            tracing::info!(?r, "inventory caught up with the store")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("catching up with the store: {e}"),
    }
}

/// Re-queues or interrupts the jobs of servers that stopped renewing their leases, and keeps
/// the inventory in step with the store (every 30 ticks).
pub async fn reaper(app: App, tick: Duration) {
    let mut n: u64 = 0;
    loop {
        tokio::time::sleep(tick).await;
        n += 1;
        if let Err(e) = app.control.heartbeat(&app.config.node).await {
            tracing::warn!("heartbeat: {e:#}");
        }
        if n.is_multiple_of(30) {
            catch_up(&app, n.is_multiple_of(300)).await;
        }
        forget_stale_keys(&app).await;
        match app.control.expire_leases(app.config.lease()).await {
            Ok((0, 0)) => {}
            Ok((requeued, interrupted)) => {
                tracing::warn!(requeued, interrupted, "jobs of a stopped server");
                app.wake.notify_waiters();
            }
            Err(e) => tracing::warn!("expiring leases: {e:#}"),
        }
    }
}

/// Drops keys held for jobs that will not run here any more (cancelled while queued, or
/// ended elsewhere): a key sent with a request lives no longer than its job.
async fn forget_stale_keys(app: &App) {
    let held: Vec<String> = lock(&app.keys).keys().cloned().collect();
    if held.is_empty() {
        return;
    }
    match app.control.ended(&held).await {
        Ok(ended) => {
            let mut keys = lock(&app.keys);
            for id in ended {
                keys.remove(&id);
            }
        }
        Err(e) => tracing::warn!("checking held keys: {e:#}"),
    }
}

/// Progress of a running job, written into the job table at each lease renewal.
#[derive(Default)]
struct Progress {
    done: AtomicI64,
    total: AtomicI64,
}

impl Progress {
    fn set(&self, done: u64, total: u64) {
        self.done.store(done as i64, Ordering::Relaxed);
        self.total.store(total as i64, Ordering::Relaxed);
    }

    fn get(&self) -> JobProgress {
        JobProgress {
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
        }
    }
}

async fn run(app: &App, job: Job) {
    let actor = if job.created_by == "scheduler" {
        format!("scheduler ({})", job.schedule.as_deref().unwrap_or("?"))
    } else {
        job.created_by.clone()
    };
    let op = app.vault.operation(Some(actor));
    let key = lock(&app.keys).remove(&job.id);
    lock(&app.running).insert(job.id.clone(), op.clone());
    let progress = Arc::new(Progress::default());
    let renewal = tokio::spawn(renew(
        app.clone(),
        job.id.clone(),
        job.attempts,
        op.clone(),
        progress.clone(),
    ));
    tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, "job started");
    // What writes or deletes needs every tenant's current record (keys rotated elsewhere).
    catch_up(
        app,
        ["backup", "retention", "forget"].contains(&job.kind.as_str()),
    )
    .await;
    // On a thread of its own: the future of a whole restore is not provably `Send` (a limit
    // of the compiler's reasoning about higher-ranked lifetimes), so it cannot be spawned.
    let result = {
        let (app, op, job, progress) = (app.clone(), op.clone(), job.clone(), progress.clone());
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            handle.block_on(async move {
                // A store lease held by another host (say one that died in a cycle, until its
                // lease runs out) makes the job wait, not fail.
                let deadline =
                    tokio::time::Instant::now() + Duration::from_secs(app.config.busy_wait_seconds);
                loop {
                    let result = execute(&app, &op, &job, key.as_ref(), &progress).await;
                    let busy = matches!(&result, Err(e) if matches!(
                        e.downcast_ref::<vault_core::Error>(), Some(vault_core::Error::Busy(_))));
                    if !busy
                        || tokio::time::Instant::now() >= deadline
                        || op.check_cancelled().is_err()
                    {
                        return result;
                    }
                    tracing::info!(job = %job.id, "the store is busy: waiting");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            })
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the job's thread ended: {e}")))
    };
    renewal.abort();
    lock(&app.running).remove(&job.id);
    let cancelled = matches!(app.control.job(&job.id).await, Ok(Some(j)) if j.cancel_requested);
    let (state, value, error) = match result {
        Ok(Outcome { value, error: None }) => ("succeeded", Some(value), None),
        Ok(Outcome { value, error }) => ("failed", Some(value), error),
        Err(_) if cancelled => ("cancelled", None, Some("cancelled".to_string())),
        Err(e) => ("failed", None, Some(format!("{e:#}"))),
    };
    if state != "cancelled" {
        app.metrics.job_done(&job.kind, state == "succeeded");
    }
    if job.kind == "forget" && state == "succeeded" {
        if let Some(t) = &job.tenant {
            forgotten(app, t).await;
        }
    }
    tracing::info!(job = %job.id, kind = %job.kind, state, "job ended");
    if let Err(e) = app
        .control
        .finish(
            &job.id,
            &app.config.node,
            job.attempts,
            state,
            value.as_ref(),
            error.as_deref(),
        )
        .await
    {
        tracing::error!(job = %job.id, "recording the end of the job: {e:#}");
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Renews the lease of a running job every third of it; cancels the operation when a cancel
/// was asked for, when the lease went to another run, or when no renewal got through for a
/// whole lease (another server may have taken the job over by then).
async fn renew(app: App, id: String, attempt: i32, op: Vault, progress: Arc<Progress>) {
    let lease = app.config.lease();
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(lease / 3).await;
        match app
            .control
            .renew(&id, &app.config.node, attempt, lease, progress.get())
            .await
        {
            Ok(false) => last_ok = tokio::time::Instant::now(),
            Ok(true) => op.cancel(),
            Err(e) => {
                tracing::warn!(job = %id, "renewing the lease: {e:#}");
                if e.downcast_ref::<crate::control::LeaseLost>().is_some()
                    || last_ok.elapsed() >= lease
                {
                    op.cancel();
                    return;
                }
            }
        }
    }
}

/// After a tenant was forgotten: its tokens, its requests and the exports this server kept.
async fn forgotten(app: &App, tenant: &str) {
    if let Err(e) = app.control.forgotten(tenant).await {
        tracing::error!(tenant, "revoking the forgotten tenant's tokens: {e:#}");
    }
    match app.control.exports_of(tenant, &app.config.node).await {
        Ok(ids) => {
            for id in ids {
                let path = export_path(app, &id);
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::error!(tenant, "deleting {}: {e}", path.display());
                    }
                }
            }
        }
        Err(e) => tracing::error!(tenant, "listing the forgotten tenant's exports: {e:#}"),
    }
}

/// What a job produced: its report, and an error when it ran but did not fully succeed (a
/// cycle with failed tenants, a verify that found damage).
struct Outcome {
    value: serde_json::Value,
    error: Option<String>,
}

impl Outcome {
    fn ok(value: impl serde::Serialize) -> Result<Outcome> {
        Ok(Outcome {
            value: serde_json::to_value(value)?,
            error: None,
        })
    }
}

/// The job's parameters, without the server's own (`key`).
fn param<T: for<'de> Deserialize<'de>>(job: &Job) -> Result<T> {
    let mut params = job.params.clone();
    if let Some(p) = params.as_object_mut() {
        p.remove("key");
    }
    serde_json::from_value(params).context("the job's parameters")
}

fn tenant_param(job: &Job) -> Option<String> {
    job.tenant.clone().or_else(|| {
        job.params
            .get("tenant")
            .and_then(|t| t.as_str())
            .map(str::to_string)
    })
}

async fn execute(
    app: &App,
    op: &Vault,
    job: &Job,
    key: Option<&keys::TenantIdentities>,
    progress: &Arc<Progress>,
) -> Result<Outcome> {
    let tenant = tenant_param(job);
    match job.kind.as_str() {
        "backup" => {
            let started = std::time::Instant::now();
            let p = progress.clone();
            let estimate = Arc::new(AtomicI64::new(0));
            let rows = Arc::new(AtomicI64::new(0));
            let report = op
                .backup(vault_core::BackupOptions {
                    tenants: job.params.get("tenants").and_then(|t| {
                        serde_json::from_value::<Option<Vec<String>>>(t.clone())
                            .ok()
                            .flatten()
                    }),
                    progress: Some(Arc::new(move |e| match e {
                        vault_core::Progress::Started { rows_estimate, .. } => {
                            let total = estimate.fetch_add(rows_estimate as i64, Ordering::Relaxed)
                                + rows_estimate as i64;
                            p.set(rows.load(Ordering::Relaxed) as u64, total as u64);
                        }
                        vault_core::Progress::Rows(n) => {
                            let done = rows.fetch_add(n as i64, Ordering::Relaxed) + n as i64;
                            p.set(done as u64, estimate.load(Ordering::Relaxed) as u64);
                        }
                        vault_core::Progress::Finishing => {}
                    })),
                    ..Default::default()
                })
                .await?;
            let bytes = report.tenants.iter().map(|t| t.bytes_stored).sum();
            let rows = report.tenants.iter().map(|t| t.rows).sum();
            app.metrics.cycle(
                started.elapsed().as_secs_f64(),
                bytes,
                rows,
                report.failed_tenants.len(),
            );
            let error = (!report.failed_tenants.is_empty()).then(|| {
                format!(
                    "{} of {} tenants were not backed up",
                    report.failed_tenants.len(),
                    report.failed_tenants.len() + report.tenants.len()
                )
            });
            Ok(Outcome {
                value: serde_json::to_value(&report)?,
                error,
            })
        }
        "retention" => {
            let dry_run = job.params.get("dry_run").and_then(|d| d.as_bool()) == Some(true);
            Outcome::ok(op.apply_retention(tenant.as_deref(), dry_run, None).await?)
        }
        "verify" => {
            let report = op.verify(tenant.as_deref(), None).await?;
            let error = (!report.ok).then(|| "verify found damage: see the result".to_string());
            Ok(Outcome {
                value: serde_json::to_value(&report)?,
                error,
            })
        }
        "drill" => drill(app, op, tenant.as_deref(), key, progress).await,
        "restore" => {
            let tenant = tenant.context("a restore job names its tenant")?;
            let params: RestoreParams = param(job)?;
            let p = progress.clone();
            let opts = vault_core::restore::RestoreOptions {
                tenant,
                snapshot: params.snapshot,
                into_schema: params.into_schema,
                into_database: params.into_database,
                dry_run: params.dry_run,
                progress: Some(Arc::new(move |done, total| p.set(done, total))),
                ..Default::default()
            };
            let identity = job_key(app, job, key)?;
            Outcome::ok(op.restore(&opts, identity).await?)
        }
        "export" => export(app, op, job, progress).await,
        "forget" => {
            let tenant = tenant.context("a forget job names its tenant")?;
            Outcome::ok(op.forget_tenant(&tenant).await?)
        }
        other => anyhow::bail!("unknown job kind {other:?}"),
    }
}

/// The key of a job that reads plaintext: the one sent with its request, or the escrow
/// identity when the job was submitted for it.
fn job_key<'a>(
    app: &'a App,
    job: &Job,
    key: Option<&'a keys::TenantIdentities>,
) -> Result<&'a keys::TenantIdentities> {
    match (key, job.params.get("key").and_then(|k| k.as_str())) {
        (Some(k), _) => Ok(k),
        (None, Some("escrow")) => app
            .escrow
            .as_ref()
            .context("this server has no escrow identity ([server] escrow_identity)"),
        _ => anyhow::bail!(
            "the key sent with this job's request is gone (the server that held it stopped); \
             send the request again"
        ),
    }
}

/// Restore drills of one tenant or of every tenant that allowed escrow.
async fn drill(
    app: &App,
    op: &Vault,
    tenant: Option<&str>,
    key: Option<&keys::TenantIdentities>,
    progress: &Arc<Progress>,
) -> Result<Outcome> {
    let tenants: Vec<String> = match tenant {
        Some(t) => vec![t.to_string()],
        None => op
            .tenants()?
            .into_iter()
            .filter(|t| t.escrow)
            .map(|t| t.id)
            .collect(),
    };
    let mut results = vec![];
    let mut failed = 0;
    for (i, t) in tenants.iter().enumerate() {
        progress.set(i as u64, tenants.len() as u64);
        let identity = match (key, &app.escrow) {
            (Some(k), _) => k,
            (None, Some(e)) if op.tenant(t)?.escrow => e,
            _ => {
                failed += 1;
                results.push(serde_json::json!({
                    "tenant": t, "ok": false,
                    "error": "no key: the tenant did not allow escrow, or this server has no escrow identity",
                }));
                continue;
            }
        };
        match op.restore_drill(t, identity).await {
            Ok(r) => {
                failed += usize::from(!r.ok);
                results.push(serde_json::to_value(&r)?);
            }
            Err(e) => {
                failed += 1;
                results.push(serde_json::json!({
                    "tenant": t, "ok": false, "error": vault_core::error::with_causes(&e),
                }));
            }
        }
        op.check_cancelled()?;
    }
    progress.set(tenants.len() as u64, tenants.len() as u64);
    let error = (failed > 0).then(|| format!("{failed} of {} drills failed", tenants.len()));
    Ok(Outcome {
        value: serde_json::json!({ "drills": results, "failed": failed }),
        error,
    })
}

/// An export into this server's export directory, where its signed link finds it.
async fn export(app: &App, op: &Vault, job: &Job, progress: &Arc<Progress>) -> Result<Outcome> {
    use vault_core::export::{ExportOptions, ExportSource, Format};
    let tenant = job
        .tenant
        .clone()
        .context("an export job names its tenant")?;
    let params: ExportParams = param(job)?;
    let source = match params.source.as_str() {
        "live" => ExportSource::Live,
        s => ExportSource::Snapshot(s.to_string()),
    };
    let path = export_path(app, &job.id);
    let partial = path.with_extension("partial");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let p = progress.clone();
    let opts = ExportOptions {
        tenant,
        source,
        since: params.since,
        format: Format::parse(&params.format)?,
        destination: format!("tvault-server download ({})", job.id),
        progress: Some(Arc::new(move |done, total| p.set(done, total))),
    };
    let report = op
        .export(&opts, Box::new(std::io::BufWriter::new(file)))
        .await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    std::fs::rename(&partial, &path).context("keeping the export")?;
    let mut value = serde_json::to_value(&report)?;
    value["download"] = serde_json::json!({ "node": app.config.node, "bytes": report.bytes });
    Ok(Outcome { value, error: None })
}

/// Where the export of job `id` is kept.
pub fn export_path(app: &App, id: &str) -> std::path::PathBuf {
    app.exports.join(format!("{id}.tvx"))
}

/// Carries out a tenant's forget request: queues the forget job (once, whoever confirms).
/// `due_by`: only a request whose grace period ended by then (the scheduler's check).
pub async fn confirm_forget(
    app: &App,
    tenant: &str,
    by: &str,
    due_by: Option<time::OffsetDateTime>,
) -> Result<Option<Job>> {
    let Some(request) = app.control.forget_request(tenant).await? else {
        return Ok(None);
    };
    // Confirmed first, so that a withdrawal racing with this cannot leave a job running.
    if !app.control.confirm_forget(tenant, due_by).await? {
        return Ok(None);
    }
    let submitted = app
        .control
        .submit(NewJob {
            id: crate::control::new_id("job_"),
            kind: "forget".into(),
            tenant: Some(tenant.to_string()),
            params: serde_json::json!({ "confirmed_by": by, "requested_by": request.requested_by }),
            created_by: "forget-requests".into(),
            idempotency_key: None,
            schedule: None,
            local_to: None,
        })
        .await;
    let job = match submitted {
        Ok((job, _)) => job,
        Err(e) => {
            app.control.unconfirm_forget(tenant).await?;
            return Err(e);
        }
    };
    app.control.forget_job(tenant, &job.id).await?;
    app.wake.notify_waiters();
    Ok(Some(job))
}
