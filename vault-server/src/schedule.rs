//! Cron schedules of backup cycles, retention, verify and restore drills, and the grace period
//! of forget requests.
//!
//! Every tick, each schedule's last fire time is read from the control database. When the
//! schedule has a fire time after it and not after now, the schedule is due: it is moved to
//! now (a compare-and-set, so of several servers exactly one fires it) and one job is queued.
//! Runs that were missed while no server ran are made up by that one run, not one per missed
//! time. Runs never overlap: a due schedule whose previous job is still queued or running is
//! moved on without a job, and the skip is counted (`tvault_schedule_skipped_total`).

use crate::control::NewJob;
use crate::App;
use anyhow::{Context, Result};
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// Where the scheduler reads the time (tests move a [`ManualClock`]).
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to.
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Parses a cron expression (six fields with seconds, or seven with years).
pub fn parse(expr: &str) -> Result<cron::Schedule> {
    expr.parse::<cron::Schedule>()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The first fire time of `schedule` after `after`.
pub fn next_after(schedule: &cron::Schedule, after: OffsetDateTime) -> Option<OffsetDateTime> {
    let from = chrono::DateTime::<chrono::Utc>::from_timestamp(
        after.unix_timestamp(),
        after.nanosecond(),
    )?;
    let next = schedule.after(&from).next()?;
    OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
}

/// The scheduler task of a server.
pub async fn scheduler(app: App, tick: Duration) {
    loop {
        tokio::time::sleep(tick).await;
        if app.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        for s in &app.config.schedules {
            if let Err(e) = fire_if_due(&app, s).await {
                tracing::warn!(schedule = %s.name, "scheduler: {e:#}");
            }
        }
        if let Err(e) = forget_due(&app).await {
            tracing::warn!("scheduler: forget requests: {e:#}");
        }
    }
}

async fn fire_if_due(app: &App, s: &crate::config::ScheduleConfig) -> Result<()> {
    let now = app.clock.now();
    let last = app.control.last_fire(&s.name, now).await?;
    let schedule = parse(&s.cron)?;
    let Some(due) = next_after(&schedule, last).filter(|t| *t <= now) else {
        return Ok(());
    };
    let busy = app.control.schedule_busy(&s.name).await?;
    if !app.control.advance(&s.name, last, now).await? {
        return Ok(()); // another server fired it
    }
    if busy {
        tracing::warn!(schedule = %s.name, "skipped: its previous run has not finished");
        app.metrics.schedule_skipped(&s.name);
        return Ok(());
    }
    let params = match s.kind.as_str() {
        "backup" => serde_json::json!({}),
        "retention" => serde_json::json!({ "dry_run": false }),
        _ => serde_json::json!({ "tenant": s.tenant }),
    };
    let due_at = due
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the fire time")?;
    let (job, _) = app
        .control
        .submit(NewJob {
            id: crate::control::new_id("job_"),
            kind: s.kind.clone(),
            tenant: if s.kind == "drill" {
                s.tenant.clone()
            } else {
                None
            },
            params,
            created_by: "scheduler".into(),
            idempotency_key: Some(format!("schedule:{}:{due_at}", s.name)),
            schedule: Some(s.name.clone()),
            local_to: None,
        })
        .await?;
    tracing::info!(schedule = %s.name, job = %job.id, "scheduled run queued");
    app.wake.notify_waiters();
    Ok(())
}

/// Forget requests whose grace period is over become forget jobs.
async fn forget_due(app: &App) -> Result<()> {
    if app.config.forget_grace_hours.is_none() {
        return Ok(());
    }
    let now = app.clock.now();
    for tenant in app.control.due_forgets(now).await? {
        crate::jobs::confirm_forget(app, &tenant, "scheduler (grace period over)", Some(now))
            .await?;
    }
    Ok(())
}
