//! A backup cycle: one consistent snapshot of the source, one archive per tenant.
//!
//! Pipeline: a coordinator opens a `REPEATABLE READ, READ ONLY` transaction and exports its
//! snapshot; readers (the coordinator plus `workers - 1` connections that import the snapshot)
//! stream tables with COPY and cut per-tenant blocks ([`extract`]); sealing (hash, zstd, age) runs
//! on blocking threads; the packer appends sealed blocks to per-tenant pack objects and uploads
//! them. A bridge tenant's schema is read for it alone, on the same snapshot: readers then end
//! their transaction every few tables and start another on the exported snapshot, so that locks
//! stay bounded at thousands of schemas, while the coordinator keeps the exporting transaction
//! open. Manifests are written when every pack is stored, and the snapshot record last: until
//! then nothing of the cycle is visible, and a crash leaves only objects that the next cycle
//! removes (see [`Vault::clean_interrupted`]).

mod pack;
mod stages;

use stages::{reader, seal_stage, Sealed, Unit};

use crate::archive::manifest::{AllTenants, Scope, SnapshotRecord, SourceInfo, FORMAT_VERSION};
use crate::audit::{actions, AuditDraft};
use crate::error::{DbContext, Error, Result};
use crate::inventory::SnapshotEntry;
use crate::source::postgres as pg;
use crate::source::postgres::catalog::{self, Owner, Plan, TableDef};
use crate::source::postgres::extract::{self, Demux, Leftovers, RawBlock, TenantKeys};
use crate::tenant::{self, TenantRecord};
use crate::{copytext, layout, sql, Vault};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Progress events for front ends.
#[derive(Clone, Debug)]
pub enum Progress {
    /// Reading starts in one more database (the source, then each silo tenant's);
    /// `rows_estimate` comes from the planner statistics.
    Started { tables: usize, rows_estimate: u64 },
    /// More rows were read.
    Rows(u64),
    /// Reading is done; manifests are being written.
    Finishing,
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

#[derive(Default, Clone)]
pub struct BackupOptions {
    /// Tenants to back up; `None` for every registered tenant.
    pub tenants: Option<Vec<String>>,
    /// Test hook: fail the cycle after sealing this many blocks.
    pub fail_after_blocks: Option<u64>,
    pub progress: Option<ProgressFn>,
}

#[derive(Debug, Serialize)]
pub struct TenantSummary {
    pub tenant: String,
    pub tables: u64,
    pub rows: u64,
    pub blocks_new: u64,
    pub blocks_reused: u64,
    pub bytes_stored: u64,
    /// Unchanged since its latest version: the cycle wrote nothing for it.
    pub unchanged: bool,
}

/// Rows of a tenant value that is not registered (not archived).
#[derive(Debug, Serialize)]
pub struct UnregisteredTenant {
    pub tenant: String,
    pub rows: u64,
}

/// Rows of a table whose owning tenant value is NULL (not archived).
#[derive(Debug, Serialize)]
pub struct UnownedRows {
    pub table: String,
    pub rows: u64,
}

/// Rows of a child table whose owner paths name different tenants. Each is archived once, with
/// the tenant of the chosen path.
#[derive(Debug, Serialize)]
pub struct AmbiguousRows {
    pub table: String,
    /// The owner rule used, and the other path that disagrees.
    pub chosen: String,
    pub other: String,
    pub rows: u64,
    /// Primary keys (or ctids) of the first few such rows.
    pub examples: Vec<String>,
}

/// A tenant the cycle could not back up; the others were. The next cycle tries it again.
#[derive(Debug, Serialize)]
pub struct FailedTenant {
    pub tenant: String,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub snapshot: String,
    /// The tenants backed up.
    pub tenants: Vec<TenantSummary>,
    /// The tenants it could not back up, with why.
    pub failed_tenants: Vec<FailedTenant>,
    /// Tenant values found in the data that are not registered (their rows are not archived).
    pub unregistered_tenants: Vec<UnregisteredTenant>,
    pub global_tables: Vec<String>,
    /// Rows whose owning tenant value is NULL, per table.
    pub unowned_rows: Vec<UnownedRows>,
    /// Rows of child tables whose foreign-key paths lead to different tenants.
    pub ambiguous_rows: Vec<AmbiguousRows>,
    pub duration_ms: u64,
    /// How long the cycle kept its snapshot of the source open: while it is, vacuum cannot
    /// remove rows that other transactions delete or update.
    pub snapshot_held_ms: u64,
}

/// Written at the start of a cycle and removed at its end; one left behind marks an interrupted
/// cycle whose objects the next cycle deletes.
#[derive(Serialize, Deserialize)]
struct PendingMarker {
    snapshot: String,
    /// The cycle covers every registered tenant (then `tenant_paths` is empty: at 20,000 tenants
    /// the list alone would be 700 KB per cycle).
    #[serde(default)]
    all: bool,
    tenant_paths: Vec<String>,
}

/// A tenant ready for the cycle: the lock its objects get, the recipient its packs are sealed
/// to, its id key and erased records.
struct Prepared {
    record: TenantRecord,
    recipient: keys::DataRecipient,
    lock: crate::store::Lock,
    keys: TenantKeys,
}

/// The error of a cycle in which no tenant could be backed up: the first tenant's (each was
/// logged), so that its kind (a full disk, a wrong key) decides the exit code.
fn every_tenant_failed(failed: Vec<(TenantRecord, Error)>) -> Error {
    match failed.into_iter().next() {
        Some((_, e)) => e,
        None => Error::Aborted("no tenant to back up".into()),
    }
}

struct Cycle {
    snapshot: String,
    started: OffsetDateTime,
    source: SourceInfo,
    /// Size in pages of each planned table, where page-range reads are possible.
    pages: Vec<Option<u32>>,
    /// Whether each planned table is a plain one (not partitioned), which `COPY` reads as it is.
    plain: Vec<bool>,
    tenants: Vec<TenantRecord>,
    recipients: Vec<keys::DataRecipient>,
    /// Per tenant, the object lock its archive objects are written with.
    locks: Vec<crate::store::Lock>,
    /// The database's tables: pooled ones first, then each bridge tenant's schema.
    plan: Plan,
    /// Each planned table as archives hold it: a bridge tenant's relative to its schema.
    defs: Vec<TableDef>,
    /// Names of `defs`, which block ids are keyed with.
    table_names: Vec<String>,
    /// Per tenant, the tables of `plan` it owns.
    tables_of: Vec<std::ops::Range<usize>>,
    /// Per tenant, the id of the DDL of its tables.
    ddl_of: Vec<String>,
    /// Per tenant, its id as an SQL literal (quoted by the server).
    literals: Vec<String>,
    /// The DDL objects of the cycle (id, JSON), each once.
    ddls: Vec<(String, Vec<u8>)>,
    /// The database's connection string.
    url: String,
    /// A silo tenant's database, read on one connection.
    silo: bool,
    /// Workers and memory for this database.
    tuning: crate::config::BackupTuning,
}

/// A database a cycle reads and the tenants whose rows it holds: the source (pooled and bridge
/// tenants) or one silo tenant's own.
struct SourceDb {
    url: String,
    tenants: Vec<TenantRecord>,
    silo: bool,
    /// The databases read at once, which share the cycle's memory budget.
    share: usize,
}

/// What reading one database gave the cycle.
struct Read {
    cycle: Arc<Cycle>,
    committed: Vec<pack::Committed>,
    /// Its tenants that could not be backed up, with why.
    failed: Vec<(TenantRecord, Error)>,
    leftovers: (Vec<UnregisteredTenant>, Vec<UnownedRows>),
    ambiguous: Vec<AmbiguousRows>,
    held_ms: u64,
    silo: bool,
}

/// What every database of a cycle shares: its id and start, and its pending marker, written
/// when the first database is about to store anything.
struct Pending {
    snapshot: String,
    started: OffsetDateTime,
    marker: (layout::Path, Vec<u8>),
    written: tokio::sync::OnceCell<()>,
    progress: ProgressFn,
}

/// Silo databases read at once, whatever the number of servers.
const MAX_SILOS_AT_ONCE: usize = 32;

/// The least memory a silo database's pipeline gets.
const MIN_SILO_BUDGET: usize = 8 << 20;

/// Splits per-tenant results into what succeeded and the tenants that failed (each logged).
fn by_outcome<T>(results: Vec<(TenantRecord, Result<T>)>) -> (Vec<T>, Vec<(TenantRecord, Error)>) {
    let (mut ok, mut failed) = (vec![], vec![]);
    for (t, r) in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => {
                tracing::error!(tenant = %t.id, error = %crate::error::with_causes(&e), "tenant not backed up");
                failed.push((t, e));
            }
        }
    }
    (ok, failed)
}

/// What a tenant owns whole, for messages.
fn own_kind(t: &TenantRecord) -> &'static str {
    match t.placement.database() {
        Some(_) => "database",
        None => "schema",
    }
}

/// The database a cycle's part reads, for logs.
fn source_name(cycle: &Cycle) -> &str {
    &cycle.source.database
}

impl Vault {
    /// Runs one backup cycle and records it in the audit trail.
    pub async fn backup(&self, opts: BackupOptions) -> Result<BackupReport> {
        let mut draft = AuditDraft::new(actions::BACKUP);
        if let Some([one]) = opts.tenants.as_deref() {
            draft = draft.tenant(one.clone());
        }
        let result = {
            let _store = self.locks().store_alone().await;
            self.with_lease("backup", self.backup_cycle(opts)).await
        };
        if let Ok(r) = &result {
            let rows: u64 = r.tenants.iter().map(|t| t.rows).sum();
            let bytes: u64 = r.tenants.iter().map(|t| t.bytes_stored).sum();
            draft = draft.object(layout::snapshot_record(&r.snapshot).to_string()).details(
                serde_json::json!({ "snapshot": r.snapshot, "tenants": r.tenants.len(), "rows": rows, "bytes_stored": bytes,
                    "failed_tenants": r.failed_tenants.iter().map(|f| &f.tenant).collect::<Vec<_>>() }),
            );
        }
        self.audited(draft, result).await
    }

    async fn backup_cycle(&self, opts: BackupOptions) -> Result<BackupReport> {
        let started = OffsetDateTime::now_utc();
        let clock = std::time::Instant::now();
        self.clean_interrupted().await?;
        let tenants = self.cycle_tenants(&opts)?;
        let snapshot = layout::new_snapshot_id(started);
        let marker = PendingMarker {
            snapshot: snapshot.clone(),
            all: opts.tenants.is_none(),
            tenant_paths: match opts.tenants {
                None => vec![],
                Some(_) => tenants.iter().map(|t| t.path.clone()).collect(),
            },
        };
        let pending = layout::Path::from(format!("snapshots/{snapshot}.pending"));
        let cycle = Pending {
            snapshot: snapshot.clone(),
            started,
            marker: (
                pending.clone(),
                serde_json::to_vec(&marker).unwrap_or_default(),
            ),
            written: tokio::sync::OnceCell::new(),
            progress: opts.progress.clone().unwrap_or_else(|| Arc::new(|_| {})),
        };
        let paths: Vec<String> = tenants.iter().map(|t| t.path.clone()).collect();
        let (silos, shared): (Vec<TenantRecord>, Vec<TenantRecord>) = tenants
            .into_iter()
            .partition(|t| t.placement.database().is_some());
        let mut reads = vec![];
        let mut failed = vec![];
        // The source first, with every worker; then the silo databases, a few at a time.
        if !shared.is_empty() {
            let db = SourceDb {
                url: self.config().source.clone(),
                tenants: shared.clone(),
                silo: false,
                share: 1,
            };
            match self.read_source(db, &cycle, &opts).await {
                Ok(mut read) => {
                    failed.append(&mut read.failed);
                    reads.push(read);
                }
                // Without silo tenants the cycle fails as a whole; its pending marker tells
                // the next cycle what to remove.
                Err(e) if silos.is_empty() => return Err(e),
                // The silos go on: the source's tenants fail, with nothing of them kept.
                Err(e) => {
                    tracing::error!(error = %crate::error::with_causes(&e), "the source database could not be read; its tenants are not backed up");
                    if cycle.written.initialized() {
                        for t in &shared {
                            self.remove_cycle_objects(&t.path, &snapshot).await;
                        }
                    }
                    let message = crate::error::with_causes(&e);
                    let mut shared = shared.into_iter();
                    if let Some(first) = shared.next() {
                        failed.push((first, e));
                    }
                    failed.extend(shared.map(|t| (t, Error::Aborted(message.clone()))));
                }
            }
        }
        let (silo_reads, silo_failed) = self.read_silos(silos, &cycle, &opts).await;
        failed.extend(silo_failed);
        for mut read in silo_reads {
            failed.append(&mut read.failed);
            reads.push(read);
        }
        let committed: usize = reads.iter().map(|r| r.committed.len()).sum();
        if committed == 0 {
            if cycle.written.initialized() {
                self.delete(&pending).await?;
            }
            return Err(every_tenant_failed(failed));
        }
        (cycle.progress)(Progress::Finishing);
        let failed_paths: Vec<&str> = failed.iter().map(|(t, _)| t.path.as_str()).collect();
        let record = SnapshotRecord {
            format: FORMAT_VERSION,
            snapshot: snapshot.clone(),
            started,
            finished: OffsetDateTime::now_utc(),
            tenants: committed as u64,
            scope: Some(match opts.tenants {
                None => Scope::All(AllTenants::All),
                Some(_) => Scope::Listed(
                    paths
                        .into_iter()
                        .filter(|p| !failed_paths.contains(&p.as_str()))
                        .collect(),
                ),
            }),
            written: Some(
                reads
                    .iter()
                    .flat_map(|r| &r.committed)
                    .filter(|c| !c.unchanged)
                    .count() as u64,
            ),
            failed: failed.iter().map(|(t, _)| t.path.clone()).collect(),
        };
        self.put(
            &layout::snapshot_record(&snapshot),
            serde_json::to_vec_pretty(&record).unwrap_or_default(),
        )
        .await?;
        crate::faults::crash_point("backup:record");
        // The inventory learns the cycle before its pending marker goes: a crash in between
        // leaves a committed cycle with its marker, which the next cycle indexes from the store.
        self.inventory().put_cycle(&record)?;
        for read in &mut reads {
            self.inventory().put_table_defs(read.cycle.defs.iter())?;
            for c in &mut read.committed {
                let t = &read.cycle.tenants[c.tenant];
                if c.unchanged {
                    continue;
                }
                self.inventory().put_packs(&t.path, &c.packs)?;
                self.inventory().put_blocks(&t.path, c.new_blocks.iter())?;
                self.inventory()
                    .put_snapshot(&t.path, &c.entry, &c.tables)?;
                // Freed as the inventory's cache fills: at 20,000 tenants these hold 100,000
                // blocks.
                c.new_blocks = Vec::new();
                c.tables = Vec::new();
                c.packs = Vec::new();
            }
        }
        self.inventory().flush().await?;
        crate::faults::crash_point("backup:inventory");
        self.delete(&pending).await?;
        tracing::info!(snapshot = %snapshot, "backup committed");

        let mut report = BackupReport {
            snapshot,
            tenants: vec![],
            failed_tenants: vec![],
            unregistered_tenants: vec![],
            global_tables: vec![],
            unowned_rows: vec![],
            ambiguous_rows: vec![],
            duration_ms: clock.elapsed().as_millis() as u64,
            snapshot_held_ms: 0,
        };
        for read in reads {
            let (unregistered, unowned) = read.leftovers;
            report.unregistered_tenants.extend(unregistered);
            report.unowned_rows.extend(unowned);
            report.ambiguous_rows.extend(read.ambiguous);
            if !read.silo {
                report.global_tables = read.cycle.plan.global.clone();
            }
            report.snapshot_held_ms = report.snapshot_held_ms.max(read.held_ms);
            report
                .tenants
                .extend(read.committed.into_iter().map(|c| c.summary));
        }
        // Rows of tenants that failed before the cycle are theirs, not unregistered ones.
        report
            .unregistered_tenants
            .retain(|u| !failed.iter().any(|(f, _)| f.id == u.tenant));
        report.failed_tenants = failed
            .into_iter()
            .map(|(t, e)| FailedTenant {
                tenant: t.id,
                error: crate::error::with_causes(&e),
            })
            .collect();
        Ok(report)
    }

    /// Reads the silo tenants' databases, each on its own snapshot, at most
    /// `[backup] connections_per_server` at a time on one server. A database that fails (down,
    /// dropped, a wrong password) fails its tenant alone.
    async fn read_silos(
        &self,
        silos: Vec<TenantRecord>,
        cycle: &Pending,
        opts: &BackupOptions,
    ) -> (Vec<Read>, Vec<(TenantRecord, Error)>) {
        let per_server = self.config().backup.connections_per_server.max(1);
        let mut servers: HashMap<String, Arc<tokio::sync::Semaphore>> = HashMap::new();
        let mut dbs = vec![];
        let mut failed = vec![];
        for t in silos {
            let located = self.tenant_source(&t).and_then(|url| {
                let server = pg::conninfo::server_of(&url)?;
                Ok((url, server))
            });
            match located {
                Ok((url, server)) => {
                    let gate = servers
                        .entry(server)
                        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(per_server)))
                        .clone();
                    dbs.push((
                        gate,
                        SourceDb {
                            url,
                            tenants: vec![t],
                            silo: true,
                            share: 1,
                        },
                    ));
                }
                Err(e) => failed.push((t, e)),
            }
        }
        let at_once = (servers.len() * per_server).clamp(1, MAX_SILOS_AT_ONCE);
        for (_, db) in &mut dbs {
            db.share = at_once;
        }
        let results: Vec<(TenantRecord, Result<Read>)> = futures::stream::iter(dbs)
            .map(|(gate, db)| async move {
                let tenant = db.tenants[0].clone();
                let _permit = gate.acquire_owned().await;
                let read = self.read_source(db, cycle, opts).await;
                if read.is_err() && cycle.written.initialized() {
                    self.remove_cycle_objects(&tenant.path, &cycle.snapshot)
                        .await;
                }
                (tenant, read)
            })
            .buffer_unordered(at_once)
            .collect()
            .await;
        let (reads, more) = by_outcome(results);
        failed.extend(more);
        (reads, failed)
    }

    /// Reads one database on one snapshot for its tenants: plans it, prepares the tenants and
    /// runs the pipeline. Tenants that cannot be backed up are returned in the `Read`; an error
    /// fails every tenant of the database.
    async fn read_source(
        &self,
        db: SourceDb,
        cycle: &Pending,
        opts: &BackupOptions,
    ) -> Result<Read> {
        let SourceDb {
            url,
            tenants,
            silo,
            share,
        } = db;
        let coordinator = pg::connect(&url).await?;
        // A silo's own transaction needs no other reader: nothing to hand its snapshot to.
        coordinator
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .db(|| "starting the snapshot transaction".into())?;
        let snapshot_opened = std::time::Instant::now();
        let mut plan = match silo {
            true => catalog::whole_database(&coordinator, tenant::SILO_HOME).await?,
            false => self.plan_of(&coordinator).await?,
        };
        // A registered schema or database that holds other tenants' rows is no tenant's own: its
        // tenant fails and, in the source, its tables stay with the pool's rules, so that no
        // pooled tenant loses them.
        let (tenants, shared) = match silo {
            true => self.not_shared(tenants, &plan, &coordinator).await?,
            // Its own connection: the snapshot's transaction must not keep these tables locked.
            false => {
                let client = pg::connect(&url).await?;
                self.not_shared(tenants, &plan, &client).await?
            }
        };
        if !shared.is_empty() && !silo {
            let mut bridge = self.inventory().bridge_schemas()?;
            for (t, _) in &shared {
                if let Some(s) = t.placement.schema() {
                    bridge.remove(s);
                }
            }
            plan = catalog::plan(&coordinator, self.config(), &bridge).await?;
        }
        let role = pg::current_role(&coordinator).await?;
        catalog::check_rls(&plan, self.config(), &role)?;
        let snapshot_name: String = coordinator
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .db(|| "exporting the snapshot".into())?
            .get(0);
        let source = source_info(&coordinator).await?;
        let ambiguous = ambiguous_rows(&coordinator, &plan, &self.config().tenant_column).await?;
        let (rows_estimate, pages, plain) = table_sizes(&coordinator, &plan).await?;
        let ddls = archived_ddls(&coordinator, &plan).await?;

        let (tenants, missing) = placed(tenants, &plan);
        let (prepared, mut failed) = self.prepare_tenants(tenants, cycle.started).await;
        failed.extend(shared);
        failed.extend(missing);
        let (mut tenants, mut recipients, mut locks, mut keys) = (vec![], vec![], vec![], vec![]);
        for p in prepared {
            tenants.push(p.record);
            recipients.push(p.recipient);
            locks.push(p.lock);
            keys.push(p.keys);
        }
        let defs = archived_defs(&plan);
        let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
        let literals = sql::literals(&coordinator, &ids).await?;
        let mut tuning = self.config().backup.clone();
        if silo {
            // One connection per silo database, and its share of the cycle's memory.
            tuning.workers = 1;
            tuning.memory_budget = (tuning.memory_budget / share.max(1)).max(MIN_SILO_BUDGET);
        }
        let cycle_of_db = Arc::new(Cycle {
            literals,
            locks,
            recipients,
            table_names: defs.iter().map(TableDef::display_name).collect(),
            tables_of: tenants
                .iter()
                .map(|t| plan.tables_of(t.placement.home()))
                .collect(),
            ddl_of: tenants
                .iter()
                .map(|t| ddls[t.placement.home().unwrap_or_default()].0.clone())
                .collect(),
            ddls: {
                let mut all: Vec<(String, Vec<u8>)> = ddls.into_values().collect();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all.dedup_by(|a, b| a.0 == b.0);
                all
            },
            defs,
            snapshot: cycle.snapshot.clone(),
            started: cycle.started,
            source,
            pages,
            plain,
            tenants,
            plan,
            url,
            silo,
            tuning,
        });
        if cycle_of_db.tenants.is_empty() {
            return Ok(Read {
                cycle: cycle_of_db,
                committed: vec![],
                failed,
                leftovers: (vec![], vec![]),
                ambiguous,
                held_ms: snapshot_opened.elapsed().as_millis() as u64,
                silo,
            });
        }
        cycle
            .written
            .get_or_try_init(|| self.put(&cycle.marker.0, cycle.marker.1.clone()))
            .await?;
        (cycle.progress)(Progress::Started {
            tables: cycle_of_db.plan.tables.len(),
            rows_estimate,
        });
        tracing::info!(snapshot = %cycle.snapshot, database = %source_name(&cycle_of_db), tenants = cycle_of_db.tenants.len(), tables = cycle_of_db.plan.tables.len(), "reading");

        let (mut committed, leftovers, upload_failures) = self
            .run_pipeline(
                &cycle_of_db,
                keys,
                coordinator,
                &snapshot_name,
                opts,
                &cycle.progress,
            )
            .await?;
        // Every reader has ended its transaction: the snapshot is released.
        let held_ms = snapshot_opened.elapsed().as_millis() as u64;
        tracing::info!(held_ms, database = %source_name(&cycle_of_db), "source snapshot released");
        // A tenant whose upload failed keeps nothing of this cycle.
        for (t, e) in upload_failures {
            let tenant = &cycle_of_db.tenants[t];
            tracing::error!(tenant = %tenant.id, error = %crate::error::with_causes(&e), "tenant not backed up");
            self.remove_cycle_objects(&tenant.path, &cycle.snapshot)
                .await;
            failed.push((tenant.clone(), e));
        }
        committed.retain(|c| {
            !failed
                .iter()
                .any(|(f, _)| f.path == cycle_of_db.tenants[c.tenant].path)
        });
        Ok(Read {
            cycle: cycle_of_db,
            committed,
            failed,
            leftovers,
            ambiguous,
            held_ms,
            silo,
        })
    }

    /// Sets aside the bridge tenants whose schema holds rows of other tenants (a table with the
    /// tenant column naming someone else): archiving every row of it as one tenant's would put
    /// the others' rows in its archive, and its restores would take them away.
    async fn not_shared(
        &self,
        tenants: Vec<TenantRecord>,
        plan: &Plan,
        client: &tokio_postgres::Client,
    ) -> Result<(Vec<TenantRecord>, Vec<(TenantRecord, Error)>)> {
        let column = &self.config().tenant_column;
        let has_column = |r: std::ops::Range<usize>| {
            plan.tables[r]
                .iter()
                .any(|t| t.columns.iter().any(|c| &c.name == column))
        };
        let checked: Vec<&TenantRecord> = tenants
            .iter()
            .filter(|t| {
                t.placement.home().is_some() && has_column(plan.tables_of(t.placement.home()))
            })
            .collect();
        if checked.is_empty() {
            return Ok((tenants, vec![]));
        }
        let ids: Vec<&str> = checked.iter().map(|t| t.id.as_str()).collect();
        let literals = sql::literals(client, &ids).await?;
        let mut shared = std::collections::HashMap::new();
        for (t, literal) in checked.iter().zip(&literals) {
            let tables = &plan.tables[plan.tables_of(t.placement.home())];
            if let Some(table) =
                pg::ownership::shared_table(client, tables, column, literal).await?
            {
                shared.insert(t.id.clone(), table);
            }
        }
        let (mut ok, mut failed) = (vec![], vec![]);
        for t in tenants {
            match shared.remove(&t.id) {
                None => ok.push(t),
                Some(table) => {
                    let e = Error::Conflict(format!(
                        "{table}, in tenant {:?}'s own {}, has rows whose {column} names \
                         another tenant: a {} shared with other tenants cannot be one \
                         tenant's (see `tvault tenant place`)",
                        t.id,
                        own_kind(&t),
                        own_kind(&t)
                    ));
                    tracing::error!(tenant = %t.id, error = %e, "tenant not backed up");
                    failed.push((t, e));
                }
            }
        }
        Ok((ok, failed))
    }

    /// Reads what each tenant needs before the cycle (the lock of its objects: policy and hold on
    /// a lock-enabled bucket; its recipient, id key and erasure ledger), several at a time, as
    /// store latency times 100,000 tenants would otherwise dominate a cycle. A tenant for which
    /// one fails is set aside with its error; the others go on.
    async fn prepare_tenants(
        &self,
        tenants: Vec<TenantRecord>,
        started: OffsetDateTime,
    ) -> (Vec<Prepared>, Vec<(TenantRecord, Error)>) {
        let results: Vec<(TenantRecord, Result<Prepared>)> = futures::stream::iter(tenants)
            .map(|t| async move {
                let prepared = async {
                    let lock = self.archive_lock(&t, started).await?;
                    let recipient = tenant::data_recipient(&t)?;
                    let id_key = self.inventory().id_key(&t.path)?.ok_or_else(|| {
                        Error::Invalid(format!(
                            "tenant {:?} has no id key in the local inventory: run `tvault \
                             inventory rebuild` with its identity",
                            t.id
                        ))
                    })?;
                    let erased = self.ledger(&t).await?.erased();
                    Ok(Prepared {
                        record: t.clone(),
                        recipient,
                        lock,
                        keys: TenantKeys { id_key, erased },
                    })
                }
                .await;
                (t, prepared)
            })
            .buffered(PARALLEL_READS)
            .collect()
            .await;
        by_outcome(results)
    }

    /// Deletes what a cycle wrote for one tenant (after its upload failed); best effort, as the
    /// next cycle's cleanup would find nothing of it referenced.
    async fn remove_cycle_objects(&self, tenant_path: &str, snapshot: &str) {
        for dir in ["packs", "manifests"] {
            let prefix = layout::Path::from(format!("tenants/{tenant_path}/{dir}"));
            let Ok(objects) = self.list(&prefix).await else {
                continue;
            };
            for obj in objects {
                if obj
                    .location
                    .filename()
                    .is_some_and(|f| f.starts_with(snapshot))
                {
                    if let Err(e) = self.delete_archive(&obj.location, "failed tenant").await {
                        tracing::warn!(object = %obj.location, error = %e, "could not remove");
                    }
                }
            }
        }
    }

    fn cycle_tenants(&self, opts: &BackupOptions) -> Result<Vec<TenantRecord>> {
        let tenants = match &opts.tenants {
            None => self.tenants()?,
            Some(ids) => ids
                .iter()
                .map(|id| self.tenant(id))
                .collect::<Result<_>>()?,
        };
        if tenants.is_empty() {
            return Err(Error::Invalid(
                "no tenants are registered: add one with `tvault tenant add`".into(),
            ));
        }
        Ok(tenants)
    }

    #[allow(clippy::type_complexity)]
    async fn run_pipeline(
        &self,
        cycle: &Arc<Cycle>,
        keys: Vec<TenantKeys>,
        coordinator: tokio_postgres::Client,
        snapshot_name: &str,
        opts: &BackupOptions,
        progress: &ProgressFn,
    ) -> Result<(
        Vec<pack::Committed>,
        (Vec<UnregisteredTenant>, Vec<UnownedRows>),
        Vec<(usize, Error)>,
    )> {
        let tuning = cycle.tuning.clone();
        if tuning.block_size as u64 > crate::archive::block::MAX_BLOCK / 4 {
            // Blocks reach twice the block size; restores refuse blocks above MAX_BLOCK.
            return Err(Error::Invalid(format!(
                "[backup] block_size {} is larger than the {} bytes allowed",
                tuning.block_size,
                crate::archive::block::MAX_BLOCK / 4
            )));
        }
        let workers = tuning.workers.max(1);
        let demux = Arc::new(Demux {
            index: cycle
                .tenants
                .iter()
                .enumerate()
                .map(|(i, t)| (copytext::escape(t.id.as_bytes()), i))
                .collect(),
            tenants: keys,
            bridge: cycle
                .tenants
                .iter()
                .map(|t| t.placement.home().is_some())
                .collect(),
            block_size: tuning.block_size.max(4096),
            budget: tuning.memory_budget / workers / 2,
            abort: AtomicBool::new(false),
        });
        let units = Arc::new(Mutex::new(work_units(cycle, opts, workers)));

        let (raw_tx, raw_rx) = mpsc::channel::<RawBlock>(workers * 2);
        let (sealed_tx, sealed_rx) = mpsc::channel::<Sealed>(workers * 4);
        // Every reader imports the snapshot before any starts, so the coordinator (reader 0) may
        // end its transaction whenever it runs out of work. With bridge tenants, readers start
        // new transactions on the snapshot to bound their locks, which needs the exporting
        // transaction open: the coordinator then only holds it, until every reader is done.
        let renew = !cycle.silo && !cycle.plan.schemas.is_empty();
        if renew {
            // It sits idle in its transaction for the whole cycle: a server that ends idle
            // transactions would take the snapshot away from the readers.
            coordinator
                .batch_execute("SET idle_in_transaction_session_timeout = 0")
                .await
                .db(|| "keeping the snapshot transaction open".into())?;
        }
        let (mut clients, holder) = match renew {
            true => (vec![], Some(coordinator)),
            false => (
                vec![stages::Reader {
                    client: coordinator,
                    renew: None,
                }],
                None,
            ),
        };
        while clients.len() < workers {
            let c = pg::connect(&cycle.url).await?;
            c.batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot_name}'"
            ))
            .await
            .db(|| "importing the cycle's snapshot".into())?;
            clients.push(stages::Reader {
                client: c,
                renew: renew.then(|| snapshot_name.to_string()),
            });
        }
        let mut readers = JoinSet::new();
        for client in clients {
            let (cycle, demux, units, tx, progress) = (
                cycle.clone(),
                demux.clone(),
                units.clone(),
                raw_tx.clone(),
                progress.clone(),
            );
            let setting = self.config().rls_tenant_setting.clone();
            readers.spawn(async move {
                let r = reader(
                    client,
                    &cycle,
                    &demux,
                    &units,
                    &tx,
                    &progress,
                    setting.as_deref(),
                )
                .await;
                if r.is_err() {
                    demux.abort.store(true, Ordering::Relaxed);
                }
                r
            });
        }
        drop(raw_tx);
        let sealer = tokio::spawn(seal_stage(
            raw_rx,
            sealed_tx,
            cycle.clone(),
            demux.clone(),
            self.inventory().clone(),
            opts.fail_after_blocks,
            workers,
        ));
        let packed = pack::run(self, cycle, sealed_rx, &tuning, &demux.abort).await;
        if packed.is_err() {
            demux.abort.store(true, Ordering::Relaxed);
        }
        let sealed = sealer
            .await
            .map_err(|e| Error::Aborted(format!("sealing task: {e}")))?;
        let mut leftovers: Vec<(usize, Leftovers)> = vec![];
        let mut reader_error = None;
        while let Some(r) = readers.join_next().await {
            match r.map_err(|e| Error::Aborted(format!("reader task: {e}")))? {
                Ok(l) => leftovers.extend(l),
                Err(e) if reader_error.is_none() => reader_error = Some(e),
                Err(_) => {}
            }
        }
        drop(holder);
        // Report the root cause: a reader's own failure, else the sealer's, else the packer's.
        let downstream = |e: &Error| matches!(e, Error::Aborted(m) if m == extract::DOWNSTREAM_CLOSED || m.starts_with("another part"));
        match (reader_error, sealed, packed) {
            (Some(e), _, _) if !downstream(&e) => Err(e),
            (_, Err(e), _) => Err(e),
            (_, _, Err(e)) => Err(e),
            (Some(e), _, _) => Err(e),
            (None, Ok(()), Ok((summaries, failed))) => {
                Ok((summaries, summarize_leftovers(cycle, leftovers), failed))
            }
        }
    }
}

/// Splits the tenants into those whose tables the plan found and bridge tenants whose schema
/// holds no table (dropped, or never created): backing those up would record an empty tenant.
fn placed(
    tenants: Vec<TenantRecord>,
    plan: &Plan,
) -> (Vec<TenantRecord>, Vec<(TenantRecord, Error)>) {
    let (mut ok, mut missing) = (vec![], vec![]);
    for t in tenants {
        match t.placement.home() {
            Some(s) if !plan.schemas.contains_key(s) => {
                let place = match t.placement.database() {
                    Some(d) => format!("database {}", pg::conninfo::show_database(d)),
                    None => format!("schema {s:?}"),
                };
                let e = Error::not_found(
                    format!("any table in {place}, tenant {:?}'s own", t.id),
                    Some("it was dropped or never created; its earlier snapshots are kept".into()),
                );
                tracing::error!(tenant = %t.id, error = %e, "tenant not backed up");
                missing.push((t, e));
            }
            _ => ok.push(t),
        }
    }
    (ok, missing)
}

/// The DDL of the pooled tables (key `""`) and of each bridge tenant's schema (relative to it),
/// as archives keep it: (id, JSON) by schema.
async fn archived_ddls(
    client: &tokio_postgres::Client,
    plan: &Plan,
) -> Result<HashMap<String, (String, Vec<u8>)>> {
    let mut sets: Vec<&[TableDef]> = vec![&plan.tables[plan.pool_tables()]];
    sets.extend(
        plan.schemas
            .values()
            .map(|own| &plan.tables[own.tables.clone()]),
    );
    let read = pg::ddl::read_sets(client, &sets).await?;
    let homes = std::iter::once(None).chain(plan.schemas.values().map(|own| Some(&own.home)));
    Ok(homes
        .zip(read)
        .map(|(home, ddl)| {
            let ddl = match home {
                Some(h) => ddl.relative_to(h),
                None => ddl,
            };
            let archived = crate::archive::manifest::ArchivedDdl {
                format: crate::archive::manifest::ArchivedDdl::FORMAT,
                tables: ddl.schema,
                foreign_keys: ddl.foreign_keys,
                external_keys: ddl.external_keys,
            };
            let name = home.map(|h| h.name.clone()).unwrap_or_default();
            (name, archived.stored())
        })
        .collect())
}

/// The plan's tables as archives hold them: a bridge tenant's relative to its own schema.
fn archived_defs(plan: &Plan) -> Vec<TableDef> {
    let mut defs = plan.tables.clone();
    for own in plan.schemas.values() {
        for d in &mut defs[own.tables.clone()] {
            *d = d.relative_to(&own.home);
        }
    }
    defs
}

/// Per-tenant reads of small store objects (ledger, policy, hold) running at once.
const PARALLEL_READS: usize = 16;

/// Tables smaller than this many pages (64 MiB) are read by one reader.
const SPLIT_PAGES: u32 = 8192;

/// One unit per table for a full cycle, large tables split into page ranges so that every reader
/// has work; one unit per tenant and table when tenants were named or when row-level security
/// requires the tenant setting.
fn work_units(cycle: &Cycle, opts: &BackupOptions, workers: usize) -> VecDeque<Unit> {
    let mut units = VecDeque::new();
    let pool = cycle.plan.pool_tables();
    let pooled: Vec<usize> = (0..cycle.tenants.len())
        .filter(|&i| cycle.tenants[i].placement.home().is_none())
        .collect();
    // Each bridge tenant's tables are its own: read for it alone.
    for (i, range) in cycle.tables_of.iter().enumerate() {
        if cycle.tenants[i].placement.home().is_some() {
            units.extend(range.clone().map(|table| Unit {
                table,
                tenant: Some(i),
                pages: None,
            }));
        }
    }
    // Pooled tables are read only when the cycle has pooled tenants.
    let pool_tables = match pooled.is_empty() {
        true => 0..0,
        false => pool,
    };
    for (table, t) in cycle.plan.tables[pool_tables.clone()].iter().enumerate() {
        if opts.tenants.is_some() || t.rls {
            units.extend(pooled.iter().map(|&i| Unit {
                table,
                tenant: Some(i),
                pages: None,
            }));
            continue;
        }
        match cycle.pages[table] {
            Some(n)
                if n >= SPLIT_PAGES && workers > 1 && matches!(t.owner, Owner::Column { .. }) =>
            {
                let parts = (workers as u32 * 2).min(n / (SPLIT_PAGES / 2)).max(2);
                let step = n.div_ceil(parts);
                for p in 0..parts {
                    let end = (p + 1 < parts).then_some((p + 1) * step);
                    units.push_back(Unit {
                        table,
                        tenant: None,
                        pages: Some((p * step, end)),
                    });
                }
            }
            _ => units.push_back(Unit {
                table,
                tenant: None,
                pages: None,
            }),
        }
    }
    // Largest work first, so the last unit to finish is a small one.
    let mut v: Vec<Unit> = units.into();
    v.sort_by_key(|u| {
        std::cmp::Reverse(if u.pages.is_some() {
            SPLIT_PAGES
        } else {
            cycle.pages[u.table].unwrap_or(0)
        })
    });
    v.into()
}

fn summarize_leftovers(
    cycle: &Cycle,
    leftovers: Vec<(usize, Leftovers)>,
) -> (Vec<UnregisteredTenant>, Vec<UnownedRows>) {
    let mut unregistered: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut unowned: HashMap<usize, u64> = HashMap::new();
    for (i, l) in leftovers.into_iter() {
        for (k, v) in l.unregistered {
            *unregistered.entry(k).or_default() += v;
        }
        if l.unowned > 0 {
            *unowned.entry(i).or_default() += l.unowned;
        }
    }
    let mut unregistered: Vec<UnregisteredTenant> = unregistered
        .into_iter()
        .map(|(k, rows)| UnregisteredTenant {
            tenant: copytext::display(&k),
            rows,
        })
        .collect();
    unregistered.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    let mut unowned: Vec<UnownedRows> = unowned
        .into_iter()
        .map(|(t, rows)| UnownedRows {
            table: cycle.table_names[t].clone(),
            rows,
        })
        .collect();
    unowned.sort_by(|a, b| a.table.cmp(&b.table));
    (unregistered, unowned)
}

/// Counts, in the cycle's snapshot, the rows whose owner paths disagree (see `Plan::ambiguous`).
async fn ambiguous_rows(
    client: &tokio_postgres::Client,
    plan: &Plan,
    tenant_column: &str,
) -> Result<Vec<AmbiguousRows>> {
    let mut out = vec![];
    for a in &plan.ambiguous {
        let Some(def) = plan
            .tables
            .iter()
            .find(|t| t.schema == a.schema && t.name == a.table)
        else {
            continue;
        };
        let sql = crate::source::postgres::query::disagreeing_owners(def, &a.other, tenant_column);
        let rows = client.query(&sql, &[]).await.db(|| {
            format!(
                "counting rows of {} whose owner paths disagree",
                def.display_name()
            )
        })?;
        let Some(first) = rows.first() else { continue };
        let name = def.display_name();
        let other = Owner::Parent {
            path: a.other.clone(),
            column: tenant_column.to_string(),
        };
        out.push(AmbiguousRows {
            chosen: def.owner.describe(&name),
            other: other.describe(&name),
            table: name,
            rows: first.get::<_, i64>(0) as u64,
            examples: rows
                .iter()
                .map(|r| {
                    let key: Vec<Option<String>> = r.get(1);
                    let values: Vec<String> = key
                        .into_iter()
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                        .collect();
                    match def.primary_key.is_empty() {
                        true => format!("ctid={}", values.join(",")),
                        false => def
                            .primary_key
                            .iter()
                            .zip(values)
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })
                .collect(),
        });
    }
    Ok(out)
}

async fn source_info(client: &tokio_postgres::Client) -> Result<SourceInfo> {
    let row = client
        .query_one(
            "SELECT current_database()::text, current_setting('server_version')",
            &[],
        )
        .await
        .db(|| "reading the server version".into())?;
    Ok(SourceInfo {
        database: row.get(0),
        server_version: row.get(1),
    })
}

/// Rows to read (for progress) and, where TID range scans exist (PostgreSQL 14+), each table's
/// size in pages (to split large tables), from planner statistics; and whether each table is a
/// plain one.
async fn table_sizes(
    client: &tokio_postgres::Client,
    plan: &Plan,
) -> Result<(u64, Vec<Option<u32>>, Vec<bool>)> {
    let names: Vec<String> = plan
        .tables
        .iter()
        .map(|t| sql::qualified(&t.schema, &t.name))
        .collect();
    let rows = client
        .query(
            "SELECT greatest(c.reltuples, 0)::int8, c.relpages::int8, current_setting('server_version_num')::int >= 140000, c.relkind = 'r' \
             FROM unnest($1::text[]) WITH ORDINALITY n(name, i) JOIN pg_class c ON c.oid = n.name::regclass ORDER BY n.i",
            &[&names],
        )
        .await
        .db(|| "estimating table sizes".into())?;
    let total = rows.iter().map(|r| r.get::<_, i64>(0).max(0) as u64).sum();
    let pages = rows
        .iter()
        .map(|r| {
            r.get::<_, bool>(2)
                .then(|| r.get::<_, i64>(1).clamp(0, u32::MAX as i64) as u32)
        })
        .collect();
    let plain = rows.iter().map(|r| r.get::<_, bool>(3)).collect();
    Ok((total, pages, plain))
}

impl Vault {
    /// Adds a committed tenant snapshot to the inventory from its manifest; with the tenant's
    /// key, the key sets of its blocks too (returns how many). The snapshot's entry goes in
    /// last: a reader (another server's inventory catching up) never lists a snapshot whose
    /// blocks or key sets are not indexed yet.
    pub async fn index_snapshot(
        &self,
        record: &TenantRecord,
        snapshot: &str,
        unlocked: Option<&crate::tenant::Unlocked>,
    ) -> Result<u64> {
        let m = self.manifest(record, snapshot).await?;
        self.inventory().put_packs(&record.path, &m.packs)?;
        self.inventory()
            .put_blocks(&record.path, m.tables.iter().flat_map(|t| &t.blocks))?;
        self.inventory()
            .put_table_defs(m.tables.iter().map(|t| &t.def))?;
        let key_sets = match unlocked {
            Some(u) => self.index_key_sets(record, u, &m).await?,
            None => 0,
        };
        let entry = SnapshotEntry::of(&m, m.created);
        let tables = crate::inventory::table_blocks(&m);
        self.inventory()
            .put_snapshot(&record.path, &entry, &tables)?;
        Ok(key_sets)
    }

    /// Deletes what interrupted cycles left behind (their pending marker names their tenants).
    /// Runs at the start of every backup, under the inventory lock, so no cycle is running.
    pub async fn clean_interrupted(&self) -> Result<usize> {
        let mut removed = 0;
        for meta in self.list(&layout::snapshots_prefix()).await? {
            let name = meta.location.filename().unwrap_or_default().to_string();
            let Some(snapshot) = name.strip_suffix(".pending") else {
                continue;
            };
            if !layout::is_snapshot_id(snapshot) {
                continue;
            }
            let committed = self
                .store()
                .objects()
                .head(&layout::snapshot_record(snapshot))
                .await
                .is_ok();
            let marker: PendingMarker = match self.get(&meta.location).await {
                Ok(b) => {
                    serde_json::from_slice(&b).map_err(|e| Error::corrupt(&meta.location, e))?
                }
                Err(e) => return Err(e),
            };
            let paths = match marker.all {
                true => self.tenants()?.into_iter().map(|t| t.path).collect(),
                false => marker.tenant_paths,
            };
            if committed {
                // Killed after its commit but before the inventory was updated: index it now
                // (tenants the cycle found unchanged have no manifest in it).
                let bytes = self.get(&layout::snapshot_record(snapshot)).await?;
                let record: SnapshotRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::corrupt(layout::snapshot_record(snapshot), e))?;
                self.inventory().put_cycle(&record)?;
                for path in &paths {
                    let Some(t) = self.tenants()?.into_iter().find(|t| &t.path == path) else {
                        continue;
                    };
                    let manifest = layout::manifest(path, snapshot);
                    if self.store().objects().head(&manifest).await.is_ok() {
                        self.index_snapshot(&t, snapshot, None).await?;
                    }
                }
            } else {
                for path in &paths {
                    for dir in ["packs", "manifests"] {
                        let prefix = layout::Path::from(format!("tenants/{path}/{dir}"));
                        for obj in self.list(&prefix).await? {
                            if obj
                                .location
                                .filename()
                                .is_some_and(|f| f.starts_with(snapshot))
                            {
                                self.delete_archive(&obj.location, "interrupted backup")
                                    .await?;
                                removed += 1;
                            }
                        }
                    }
                }
                tracing::warn!(
                    snapshot,
                    objects = removed,
                    "removed the leftovers of an interrupted backup"
                );
            }
            self.delete(&meta.location).await?;
        }
        Ok(removed)
    }
}
