//! The control database: what every server of one vault shares (docs/SERVER.md, "Control
//! database"). Tokens (hashed), jobs with their leases, schedule state and forget requests live
//! in the schema `tvault_control` of a PostgreSQL database the operator names in `[server]
//! control`. Its SQL is all here.

use crate::auth::{Principal, Role};
use anyhow::{Context, Result};
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio_postgres::Client;

/// The version of the control schema this server writes; recorded in `tvault_control.meta`.
pub const CONTROL_VERSION: i32 = 1;

const SCHEMA: &str = "
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tvault_control;
CREATE TABLE IF NOT EXISTS tvault_control.meta (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version int NOT NULL,
    secret bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS tvault_control.digests (
    path text PRIMARY KEY,
    mac bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS tvault_control.nodes (
    name text PRIMARY KEY,
    seen timestamptz NOT NULL,
    started timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS tvault_control.tokens (
    id text PRIMARY KEY,
    hash bytea NOT NULL UNIQUE,
    role text NOT NULL,
    tenants text[] NOT NULL DEFAULT '{}',
    label text NOT NULL DEFAULT '',
    created timestamptz NOT NULL DEFAULT now(),
    revoked timestamptz
);
CREATE TABLE IF NOT EXISTS tvault_control.jobs (
    id text PRIMARY KEY,
    kind text NOT NULL,
    tenant text,
    params jsonb NOT NULL,
    state text NOT NULL,
    done bigint NOT NULL DEFAULT 0,
    total bigint NOT NULL DEFAULT 0,
    result jsonb,
    error text,
    created_by text NOT NULL,
    idempotency_key text,
    schedule text,
    created timestamptz NOT NULL DEFAULT now(),
    started timestamptz,
    finished timestamptz,
    node text,
    local_only boolean NOT NULL DEFAULT false,
    lease_until timestamptz,
    attempts int NOT NULL DEFAULT 0,
    cancel boolean NOT NULL DEFAULT false,
    UNIQUE (created_by, idempotency_key)
);
CREATE INDEX IF NOT EXISTS jobs_queue ON tvault_control.jobs (created) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_tenant ON tvault_control.jobs (tenant, kind, created);
CREATE TABLE IF NOT EXISTS tvault_control.schedules (
    name text PRIMARY KEY,
    last_fire timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS tvault_control.forget_requests (
    tenant text PRIMARY KEY,
    requested timestamptz NOT NULL DEFAULT now(),
    requested_by text NOT NULL,
    due timestamptz,
    state text NOT NULL,
    job text
);
";

/// A connection to the control database, made again when it dies.
pub struct Control {
    url: String,
    client: Mutex<Option<std::sync::Arc<Client>>>,
}

/// A job as the API shows it (docs/SERVER.md, "Jobs").
#[derive(Clone, Debug, Serialize)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub tenant: Option<String>,
    pub params: serde_json::Value,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `interrupted`.
    pub state: String,
    pub progress: JobProgress,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_by: String,
    pub idempotency_key: Option<String>,
    pub schedule: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished: Option<OffsetDateTime>,
    /// The server running (or that ran) it.
    pub node: Option<String>,
    /// Times it was started; above 1 when a server took it over from one that stopped.
    pub attempts: i32,
    pub cancel_requested: bool,
    #[serde(skip)]
    pub local_only: bool,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct JobProgress {
    pub done: i64,
    pub total: i64,
}

/// What a caller asks to run.
pub struct NewJob {
    /// A fresh id ([`new_id`] with `job_`), known before the job is stored.
    pub id: String,
    pub kind: String,
    pub tenant: Option<String>,
    pub params: serde_json::Value,
    pub created_by: String,
    pub idempotency_key: Option<String>,
    pub schedule: Option<String>,
    /// Runs only on `node` (it holds a key in memory for it); never taken over.
    pub local_to: Option<String>,
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub role: String,
    pub tenants: Vec<String>,
    pub label: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize)]
pub struct ForgetRequest {
    pub tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested: OffsetDateTime,
    pub requested_by: String,
    /// When it is carried out without an operator (with a grace period configured).
    #[serde(with = "time::serde::rfc3339::option")]
    pub due: Option<OffsetDateTime>,
    /// `pending`, `confirmed` (a forget job runs or ran) or `cancelled`.
    pub state: String,
    pub job: Option<String>,
}

const JOB_COLUMNS: &str = "id, kind, tenant, params, state, done, total, result, error, \
     created_by, idempotency_key, schedule, created, started, finished, node, attempts, cancel, \
     local_only";

fn job(row: &tokio_postgres::Row) -> Job {
    Job {
        id: row.get(0),
        kind: row.get(1),
        tenant: row.get(2),
        params: row.get(3),
        state: row.get(4),
        progress: JobProgress {
            done: row.get(5),
            total: row.get(6),
        },
        result: row.get(7),
        error: row.get(8),
        created_by: row.get(9),
        idempotency_key: row.get(10),
        schedule: row.get(11),
        created: row.get(12),
        started: row.get(13),
        finished: row.get(14),
        node: row.get(15),
        attempts: row.get(16),
        cancel_requested: row.get(17),
        local_only: row.get(18),
    }
}

fn forget_request(row: &tokio_postgres::Row) -> ForgetRequest {
    ForgetRequest {
        tenant: row.get(0),
        requested: row.get(1),
        requested_by: row.get(2),
        due: row.get(3),
        state: row.get(4),
        job: row.get(5),
    }
}

/// The vault's memory of the versions last written (rollback protection), shared by its
/// servers through the control database's `digests` table.
pub struct Digests(pub std::sync::Arc<Control>);

fn db(e: anyhow::Error) -> vault_core::Error {
    vault_core::Error::Aborted(format!("the control database (version memory): {e:#}"))
}

#[async_trait::async_trait]
impl vault_core::store::SharedDigests for Digests {
    async fn get(&self, path: &str) -> vault_core::Result<Option<Vec<u8>>> {
        let c = self.0.client().await.map_err(db)?;
        let row = c
            .query_opt(
                "SELECT mac FROM tvault_control.digests WHERE path = $1",
                &[&path],
            )
            .await
            .map_err(|e| db(e.into()))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn put(&self, path: &str, mac: &[u8]) -> vault_core::Result<()> {
        let c = self.0.client().await.map_err(db)?;
        c.execute(
            "INSERT INTO tvault_control.digests (path, mac) VALUES ($1, $2) \
             ON CONFLICT (path) DO UPDATE SET mac = $2",
            &[&path, &mac],
        )
        .await
        .map_err(|e| db(e.into()))?;
        Ok(())
    }

    async fn remove(&self, path: &str) -> vault_core::Result<()> {
        let c = self.0.client().await.map_err(db)?;
        c.execute(
            "DELETE FROM tvault_control.digests WHERE path = $1",
            &[&path],
        )
        .await
        .map_err(|e| db(e.into()))?;
        Ok(())
    }
}

/// A run that lost its job's lease (another server took the job over): it must stop.
#[derive(Debug)]
pub struct LeaseLost(pub String);

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LeaseLost {}

/// A fresh random id: `prefix` and 16 hex digits.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Control {
    /// Connects and brings the control schema to [`CONTROL_VERSION`].
    pub async fn open(url: &str) -> Result<Control> {
        let control = Control {
            url: url.to_string(),
            client: Mutex::new(None),
        };
        let c = control.client().await?;
        c.batch_execute(SCHEMA)
            .await
            .context("creating the control schema")?;
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        // One row (its key is fixed): of two servers starting at once, one writes it.
        c.execute(
            "INSERT INTO tvault_control.meta (version, secret) VALUES ($1, $2) \
             ON CONFLICT (id) DO NOTHING",
            &[&CONTROL_VERSION, &secret.as_slice()],
        )
        .await?;
        let version: i32 = c
            .query_one("SELECT version FROM tvault_control.meta", &[])
            .await?
            .get(0);
        if version > CONTROL_VERSION {
            anyhow::bail!(
                "the control database is of version {version}, newer than this server ({CONTROL_VERSION})"
            );
        }
        Ok(control)
    }

    /// The live client, connecting again when the last one died.
    async fn client(&self) -> Result<std::sync::Arc<Client>> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = std::sync::Arc::new(
            vault_core::source::postgres::connect(&self.url)
                .await
                .context("connecting to the control database")?,
        );
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Whether the control database answers.
    pub async fn ping(&self) -> Result<()> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// The secret every server of the vault signs links and confirmations with.
    pub async fn secret(&self) -> Result<[u8; 32]> {
        let row = self
            .client()
            .await?
            .query_one("SELECT secret FROM tvault_control.meta", &[])
            .await?;
        let bytes: Vec<u8> = row.get(0);
        bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("tvault_control.meta.secret is not 32 bytes"))
    }

    // ---- nodes -------------------------------------------------------------------------

    /// Registers this server under `node`; waits up to `lease` for another server of that name
    /// to stop, then refuses (two servers of one name would take each other's jobs).
    pub async fn register_node(&self, node: &str, lease: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + lease + Duration::from_secs(1);
        loop {
            let n = self
                .client()
                .await?
                .execute(
                    "INSERT INTO tvault_control.nodes (name, seen, started) VALUES ($1, now(), now()) \
                     ON CONFLICT (name) DO UPDATE SET seen = now(), started = now() \
                     WHERE tvault_control.nodes.seen < now() - make_interval(secs => $2)",
                    &[&node, &seconds(lease)],
                )
                .await?;
            if n == 1 {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "another server named {node:?} is running on this control database: give \
                     each server its own [server] node"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// This server is alive.
    pub async fn heartbeat(&self, node: &str) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE tvault_control.nodes SET seen = now() WHERE name = $1",
                &[&node],
            )
            .await?;
        Ok(())
    }

    /// This server stopped (its name is free at once).
    pub async fn unregister_node(&self, node: &str) -> Result<()> {
        self.client()
            .await?
            .execute("DELETE FROM tvault_control.nodes WHERE name = $1", &[&node])
            .await?;
        Ok(())
    }

    // ---- tokens -------------------------------------------------------------------------

    /// Stores a token's hash; returns its id.
    pub async fn add_token(
        &self,
        hash: &[u8; 32],
        role: Role,
        tenants: &[String],
        label: &str,
    ) -> Result<String> {
        let id = new_id("tok_");
        self.client()
            .await?
            .execute(
                "INSERT INTO tvault_control.tokens (id, hash, role, tenants, label) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&id, &hash.as_slice(), &role.as_str(), &tenants, &label],
            )
            .await?;
        Ok(id)
    }

    /// The principal of a token hash, unless unknown or revoked.
    pub async fn principal(&self, hash: &[u8; 32]) -> Result<Option<Principal>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, role, tenants, label FROM tvault_control.tokens \
                 WHERE hash = $1 AND revoked IS NULL",
                &[&hash.as_slice()],
            )
            .await?;
        Ok(row.and_then(|r| {
            Some(Principal {
                token: r.get(0),
                role: Role::parse(r.get(1))?,
                tenants: r.get(2),
                label: r.get(3),
            })
        }))
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, role, tenants, label, created, revoked FROM tvault_control.tokens \
                 ORDER BY created, id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| TokenInfo {
                id: r.get(0),
                role: r.get(1),
                tenants: r.get(2),
                label: r.get(3),
                created: r.get(4),
                revoked: r.get(5),
            })
            .collect())
    }

    /// Revokes a token; false when there is no such (unrevoked) token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE tvault_control.tokens SET revoked = now() \
                 WHERE id = $1 AND revoked IS NULL",
                &[&id],
            )
            .await?;
        Ok(n == 1)
    }

    // ---- jobs ---------------------------------------------------------------------------

    /// Adds a job, or returns the one this caller already submitted with the same idempotency
    /// key (then `false`).
    pub async fn submit(&self, new: NewJob) -> Result<(Job, bool)> {
        let c = self.client().await?;
        let id = &new.id;
        let (state, node, local) = match &new.local_to {
            Some(node) => ("queued", Some(node.as_str()), true),
            None => ("queued", None, false),
        };
        let row = c
            .query_opt(
                &format!(
                    "INSERT INTO tvault_control.jobs (id, kind, tenant, params, state, \
                     created_by, idempotency_key, schedule, node, local_only) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (created_by, idempotency_key) DO NOTHING \
                     RETURNING {JOB_COLUMNS}"
                ),
                &[
                    &id,
                    &new.kind,
                    &new.tenant,
                    &new.params,
                    &state,
                    &new.created_by,
                    &new.idempotency_key,
                    &new.schedule,
                    &node,
                    &local,
                ],
            )
            .await?;
        if let Some(row) = row {
            return Ok((job(&row), true));
        }
        let row = c
            .query_one(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM tvault_control.jobs \
                     WHERE created_by = $1 AND idempotency_key = $2"
                ),
                &[&new.created_by, &new.idempotency_key],
            )
            .await?;
        Ok((job(&row), false))
    }

    /// Records a job that already ran (a confirmed record restore), for the rate limits and
    /// the job list.
    pub async fn record_done(&self, new: NewJob, result: &serde_json::Value) -> Result<Job> {
        let row = self
            .client()
            .await?
            .query_one(
                &format!(
                    "INSERT INTO tvault_control.jobs (id, kind, tenant, params, state, \
                     created_by, result, started, finished, attempts, done, total) \
                     VALUES ($1, $2, $3, $4, 'succeeded', $5, $6, now(), now(), 1, 1, 1) \
                     RETURNING {JOB_COLUMNS}"
                ),
                &[
                    &new.id,
                    &new.kind,
                    &new.tenant,
                    &new.params,
                    &new.created_by,
                    result,
                ],
            )
            .await?;
        Ok(job(&row))
    }

    /// Takes the oldest queued job this node may run, under a lease (`SKIP LOCKED`: servers
    /// never wait for one another here).
    pub async fn claim(&self, node: &str, lease: Duration) -> Result<Option<Job>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "UPDATE tvault_control.jobs SET state = 'running', node = $1, \
                     started = coalesce(started, now()), attempts = attempts + 1, \
                     lease_until = now() + make_interval(secs => $2) \
                     WHERE id = (SELECT id FROM tvault_control.jobs \
                         WHERE state = 'queued' AND (NOT local_only OR node = $1) \
                         ORDER BY created, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     RETURNING {JOB_COLUMNS}"
                ),
                &[&node, &seconds(lease)],
            )
            .await?;
        Ok(row.as_ref().map(job))
    }

    /// Extends a running job's lease and records its progress; returns whether a cancel was
    /// asked for. An error when the lease is no longer this node's.
    pub async fn renew(
        &self,
        id: &str,
        node: &str,
        attempt: i32,
        lease: Duration,
        progress: JobProgress,
    ) -> Result<bool> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE tvault_control.jobs SET lease_until = now() + make_interval(secs => $3), \
                 done = $4, total = $5 \
                 WHERE id = $1 AND node = $2 AND attempts = $6 AND state = 'running' \
                 RETURNING cancel",
                &[
                    &id,
                    &node,
                    &seconds(lease),
                    &progress.done,
                    &progress.total,
                    &attempt,
                ],
            )
            .await?;
        row.map(|r| r.get(0)).ok_or_else(|| {
            anyhow::anyhow!(LeaseLost(format!("job {id} is no longer leased to {node}")))
        })
    }

    /// Ends a running job of this node.
    pub async fn finish(
        &self,
        id: &str,
        node: &str,
        attempt: i32,
        state: &str,
        result: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE tvault_control.jobs SET state = $3, result = $4, error = $5, \
                 finished = now(), lease_until = NULL \
                 WHERE id = $1 AND node = $2 AND attempts = $6 AND state = 'running'",
                &[&id, &node, &state, &result, &error, &attempt],
            )
            .await?;
        Ok(())
    }

    /// At start-up: the jobs this node was running when it stopped are interrupted.
    pub async fn interrupt_node(&self, node: &str) -> Result<u64> {
        Ok(self
            .client()
            .await?
            .execute(
                "UPDATE tvault_control.jobs SET state = 'interrupted', finished = now(), \
                 lease_until = NULL, error = 'interrupted: the server running it stopped' \
                 WHERE node = $1 AND (state = 'running' OR (state = 'queued' AND local_only))",
                &[&node],
            )
            .await?)
    }

    /// Jobs whose server stopped renewing their lease: taken over (queued again for any
    /// server) when they need nothing that server held; interrupted otherwise (a key sent with
    /// the request lived only in its memory).
    pub async fn expire_leases(&self, lease: Duration) -> Result<(u64, u64)> {
        let c = self.client().await?;
        c.execute(
            "UPDATE tvault_control.jobs SET state = 'cancelled', finished = now(), \
             lease_until = NULL WHERE state = 'running' AND lease_until < now() AND cancel",
            &[],
        )
        .await?;
        let interrupted = c
            .execute(
                "UPDATE tvault_control.jobs SET state = 'interrupted', finished = now(), \
                 lease_until = NULL, error = 'interrupted: ' || coalesce(node, '?') || \
                 ' stopped while it had the job, and only it held the key it needed' \
                 WHERE local_only AND ((state = 'running' AND lease_until < now()) OR \
                     (state = 'queued' AND NOT EXISTS (SELECT FROM tvault_control.nodes n \
                         WHERE n.name = jobs.node AND n.seen > now() - make_interval(secs => $1))))",
                &[&seconds(lease)],
            )
            .await?;
        let requeued = c
            .execute(
                "UPDATE tvault_control.jobs SET state = 'queued', lease_until = NULL, \
                 error = 'taken over: ' || coalesce(node, '?') || ' stopped while running it' \
                 WHERE state = 'running' AND lease_until < now() AND NOT local_only",
                &[],
            )
            .await?;
        Ok((requeued, interrupted))
    }

    /// The ids among `ids` of jobs that are no longer queued or running (or do not exist).
    pub async fn ended(&self, ids: &[String]) -> Result<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT i FROM unnest($1::text[]) i WHERE NOT EXISTS (SELECT FROM \
                 tvault_control.jobs j WHERE j.id = i AND j.state IN ('queued', 'running'))",
                &[&ids],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn job(&self, id: &str) -> Result<Option<Job>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM tvault_control.jobs WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(job))
    }

    /// The latest jobs, newest first; `tenants` limits them to those tenants' jobs.
    pub async fn jobs(&self, tenants: Option<&[String]>, limit: i64) -> Result<Vec<Job>> {
        let c = self.client().await?;
        let rows = match tenants {
            None => {
                c.query(
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM tvault_control.jobs \
                         ORDER BY created DESC, id LIMIT $1"
                    ),
                    &[&limit],
                )
                .await?
            }
            Some(t) => {
                c.query(
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM tvault_control.jobs WHERE tenant = ANY($1) \
                         ORDER BY created DESC, id LIMIT $2"
                    ),
                    &[&t, &limit],
                )
                .await?
            }
        };
        Ok(rows.iter().map(job).collect())
    }

    /// Asks a job to stop: a queued one is cancelled at once, a running one at its next safe
    /// point. False when it has already ended.
    pub async fn cancel(&self, id: &str) -> Result<bool> {
        let c = self.client().await?;
        let queued = c
            .execute(
                "UPDATE tvault_control.jobs SET state = 'cancelled', cancel = true, \
                 finished = now() WHERE id = $1 AND state = 'queued'",
                &[&id],
            )
            .await?;
        let running = c
            .execute(
                "UPDATE tvault_control.jobs SET cancel = true WHERE id = $1 AND state = 'running'",
                &[&id],
            )
            .await?;
        Ok(queued + running > 0)
    }

    /// Jobs of these kinds for a tenant in the last hour (rate limits).
    pub async fn recent(&self, tenant: &str, kinds: &[&str]) -> Result<i64> {
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM tvault_control.jobs WHERE tenant = $1 \
                 AND kind = ANY($2) AND created > now() - interval '1 hour' \
                 AND state <> 'cancelled' AND coalesce(params->>'dry_run', '') <> 'true'",
                &[&tenant, &kinds],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Whether a job of this schedule is queued or running.
    pub async fn schedule_busy(&self, name: &str) -> Result<bool> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT FROM tvault_control.jobs WHERE schedule = $1 \
                 AND state IN ('queued', 'running'))",
                &[&name],
            )
            .await?;
        Ok(row.get(0))
    }

    // ---- schedules ----------------------------------------------------------------------

    /// The time a schedule last fired; set to `now` the first time it is seen.
    pub async fn last_fire(&self, name: &str, now: OffsetDateTime) -> Result<OffsetDateTime> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO tvault_control.schedules (name, last_fire) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
            &[&name, &now],
        )
        .await?;
        let row = c
            .query_one(
                "SELECT last_fire FROM tvault_control.schedules WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Moves a schedule from `from` to `to`; false when another server moved it first.
    pub async fn advance(
        &self,
        name: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE tvault_control.schedules SET last_fire = $3 \
                 WHERE name = $1 AND last_fire = $2",
                &[&name, &from, &to],
            )
            .await?;
        Ok(n == 1)
    }

    // ---- forget requests ----------------------------------------------------------------

    pub async fn request_forget(
        &self,
        tenant: &str,
        by: &str,
        due: Option<OffsetDateTime>,
    ) -> Result<ForgetRequest> {
        let row = self
            .client()
            .await?
            .query_one(
                "INSERT INTO tvault_control.forget_requests (tenant, requested_by, due, state) \
                 VALUES ($1, $2, $3, 'pending') \
                 ON CONFLICT (tenant) DO UPDATE SET requested = now(), requested_by = $2, \
                     due = $3, state = 'pending', job = NULL \
                 WHERE tvault_control.forget_requests.state IN ('cancelled', 'done') \
                 RETURNING tenant, requested, requested_by, due, state, job",
                &[&tenant, &by, &due],
            )
            .await;
        match row {
            Ok(row) => Ok(forget_request(&row)),
            // A pending or confirmed request stands as it is.
            Err(_) => self
                .forget_request(tenant)
                .await?
                .context("recording the forget request"),
        }
    }

    pub async fn forget_request(&self, tenant: &str) -> Result<Option<ForgetRequest>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT tenant, requested, requested_by, due, state, job \
                 FROM tvault_control.forget_requests WHERE tenant = $1",
                &[&tenant],
            )
            .await?;
        Ok(row.as_ref().map(forget_request))
    }

    /// Withdraws a pending request; false when none is pending.
    pub async fn cancel_forget(&self, tenant: &str) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE tvault_control.forget_requests SET state = 'cancelled' \
                 WHERE tenant = $1 AND state = 'pending'",
                &[&tenant],
            )
            .await?;
        Ok(n == 1)
    }

    /// Marks a request confirmed: a pending one (made no later than `made_by`, when given), or
    /// a confirmed one whose job did not succeed (after a hold was released, say). False when
    /// there is nothing to confirm (withdrawn, done, or another server got there first).
    pub async fn confirm_forget(
        &self,
        tenant: &str,
        due_by: Option<OffsetDateTime>,
    ) -> Result<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE tvault_control.forget_requests r SET state = 'confirmed', job = NULL \
                 WHERE tenant = $1 AND ($2::timestamptz IS NULL OR (due IS NOT NULL AND due <= $2)) \
                 AND (state = 'pending' OR (state = 'confirmed' AND EXISTS ( \
                     SELECT FROM tvault_control.jobs j WHERE j.id = r.job \
                     AND j.state IN ('failed', 'cancelled', 'interrupted'))))",
                &[&tenant, &due_by],
            )
            .await?;
        Ok(n == 1)
    }

    /// A confirmation whose job could not be queued goes back to pending.
    pub async fn unconfirm_forget(&self, tenant: &str) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE tvault_control.forget_requests SET state = 'pending' \
                 WHERE tenant = $1 AND state = 'confirmed' AND job IS NULL",
                &[&tenant],
            )
            .await?;
        Ok(())
    }

    /// A tenant was forgotten: its request is done, its tenant tokens are revoked and it leaves
    /// every support token's scope (a tenant of the same id registered later starts afresh).
    pub async fn forgotten(&self, tenant: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE tvault_control.forget_requests SET state = 'done' WHERE tenant = $1",
            &[&tenant],
        )
        .await?;
        c.execute(
            "UPDATE tvault_control.tokens SET revoked = now() \
             WHERE role = 'tenant' AND $1 = ANY(tenants) AND revoked IS NULL",
            &[&tenant],
        )
        .await?;
        // A support token limited to this tenant alone would see every tenant without it.
        c.execute(
            "UPDATE tvault_control.tokens SET revoked = now() \
             WHERE role = 'support' AND tenants = ARRAY[$1::text] AND revoked IS NULL",
            &[&tenant],
        )
        .await?;
        c.execute(
            "UPDATE tvault_control.tokens SET tenants = array_remove(tenants, $1) \
             WHERE role = 'support' AND $1 = ANY(tenants)",
            &[&tenant],
        )
        .await?;
        Ok(())
    }

    /// Export jobs of a tenant kept by `node` (their files go when the tenant is forgotten).
    pub async fn exports_of(&self, tenant: &str, node: &str) -> Result<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id FROM tvault_control.jobs WHERE kind = 'export' AND tenant = $1 \
                 AND node = $2",
                &[&tenant, &node],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Names the job that carries out a confirmed request.
    pub async fn forget_job(&self, tenant: &str, job: &str) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE tvault_control.forget_requests SET job = $2 WHERE tenant = $1",
                &[&tenant, &job],
            )
            .await?;
        Ok(())
    }

    /// Pending requests whose grace period is over.
    pub async fn due_forgets(&self, now: OffsetDateTime) -> Result<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT tenant FROM tvault_control.forget_requests \
                 WHERE state = 'pending' AND due IS NOT NULL AND due <= $1 ORDER BY due",
                &[&now],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
