//! Whole-tenant restore: bring one tenant's live rows back to a snapshot, in one transaction,
//! changing only what differs (`docs/RESTORE.md`).
//!
//! The SQL is built from the target's live catalog, matched against the manifest table by table
//! ([`restore_targets`]). Inside one transaction, each table's live rows are compared with the
//! snapshot's by primary key and row hash ([`diff`]); the differences are staged and applied by
//! the engine in `source::postgres::apply`, the changed rows' references are checked set-based,
//! and the tenant's rows are read back through the backup's own query and compared with the
//! manifest's row counts and keyed checksums. Only if everything matches is the transaction
//! committed; on any error the database is left exactly as it was. Blocks are used only after
//! they pass authentication and their id check.

mod diff;
pub(crate) mod targets;

use crate::archive::block;
use crate::archive::manifest::{self, BlockRef, SnapshotRecord, StoredManifest, TenantManifest};
use crate::error::{DbContext, Error, Result};
use crate::inventory::SnapshotEntry;
use crate::source::postgres as pg;
use crate::source::postgres::apply::{self, Mode};
use crate::source::postgres::catalog::TableDef;
use crate::tenant::TenantRecord;
use crate::{layout, sql, Vault};
use bytes::Bytes;
use object_store::ObjectStoreExt;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Where a restore puts a tenant's tables (see `Vault::restore_map`).
struct Placing {
    /// Pairs of (archived schema, live schema).
    map: Vec<(String, String)>,
    /// Schemas of the source whose every table is one tenant's; `None` when the target is a
    /// database of the tenant's own (a silo), every table of which is its.
    bridge: Option<std::collections::BTreeSet<String>>,
    /// The schema all the tenant's tables go to, if one does.
    home: Option<String>,
}

impl Placing {
    /// The live schemas the tenant's tables go to.
    fn live_schemas(&self, manifest: &TenantManifest) -> std::collections::BTreeSet<String> {
        manifest
            .tables
            .iter()
            .map(|t| {
                self.map
                    .iter()
                    .find(|(from, _)| *from == t.def.schema)
                    .map_or_else(|| t.def.schema.clone(), |(_, to)| to.clone())
            })
            .collect()
    }
}

#[derive(Clone, Default)]
pub struct RestoreOptions {
    pub tenant: String,
    /// A snapshot id or `latest`.
    pub snapshot: String,
    /// Another database to restore into (default: the source database).
    pub target: Option<String>,
    /// Restore tables of schema `.0` into schema `.1` (which must hold the same tables).
    pub schema_map: Vec<(String, String)>,
    /// Restore the tenant into this schema (of the source, or of `into_database`) instead of
    /// its own: created from the snapshot's DDL when it has no table.
    pub into_schema: Option<String>,
    /// Restore the tenant into this database of its own (a name on the source's server or a
    /// connection string), as a silo tenant: created from the snapshot's DDL when it has no
    /// table.
    pub into_database: Option<String>,
    /// Compare and report what would change; change nothing.
    pub dry_run: bool,
    /// Called with the number of sealed bytes read (or found unchanged) and the total.
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
}

/// One table of a restore: what changed and whether the result matches the manifest.
#[derive(Debug, Serialize)]
pub struct TableCheck {
    /// The live table (after `--schema-map`).
    pub table: String,
    /// `keyed` (by primary key) or `replace` (no primary key: all of the tenant's rows).
    pub mode: Mode,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub rows_expected: u64,
    /// Rows of the tenant read back after the restore (not in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_restored: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_ok: Option<bool>,
}

impl TableCheck {
    fn planned(s: &diff::Staged) -> Self {
        let c = &s.change;
        TableCheck {
            table: c.def.display_name(),
            mode: c.mode,
            inserted: c.inserts,
            updated: c.updates,
            deleted: c.deletes,
            unchanged: c.unchanged,
            rows_expected: s.expected.rows,
            rows_restored: None,
            checksum_ok: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub tenant: String,
    pub snapshot: String,
    pub target: String,
    pub dry_run: bool,
    /// `set_based` (per-row triggers skipped, changed rows checked) or `row_by_row` (fallback).
    pub foreign_keys: &'static str,
    pub warnings: Vec<String>,
    pub tables: Vec<TableCheck>,
    pub ok: bool,
}

impl Vault {
    /// Snapshots of one tenant (or of all), oldest first.
    pub fn snapshots(&self, tenant: Option<&str>) -> Result<Vec<SnapshotEntry>> {
        let tenants = match tenant {
            Some(id) => vec![self.tenant(id)?],
            None => self.tenants()?,
        };
        let cycles = self.inventory().cycles()?;
        let mut all = vec![];
        for t in tenants {
            all.extend(self.versions(&t, &cycles)?);
        }
        all.sort_by(|a, b| (a.time, &a.snapshot, &a.tenant).cmp(&(b.time, &b.snapshot, &b.tenant)));
        Ok(all)
    }

    /// A tenant's snapshots, oldest first, each with the start of the last cycle that found the
    /// tenant unchanged since it (`confirmed`). A cycle that finds a tenant unchanged writes no
    /// manifest; the version it found stands for it. A version's stretch ends where the next
    /// version's `previous` says the one after it began, so a version retention deleted in
    /// between is never stood in for by an older one.
    pub fn versions(
        &self,
        record: &TenantRecord,
        cycles: &[SnapshotRecord],
    ) -> Result<Vec<SnapshotEntry>> {
        // Ordered by time, not by id: two cycles in one second have ids in random order.
        let mut list = self.inventory().snapshots(&record.path)?;
        let started = |id: &str| cycles.iter().find(|c| c.snapshot == id).map(|c| c.started);
        for i in 0..list.len() {
            let start = list[i].time;
            let end = list.get(i + 1).map(|next| match &next.previous {
                // The version after this one was deleted: its cycle ends the stretch; if that
                // cannot be dated, no cycle is credited to this version.
                Some(p) if *p != list[i].snapshot => started(p).unwrap_or(start),
                _ => next.time,
            });
            list[i].confirmed = cycles
                .iter()
                .filter(|c| {
                    c.started > start
                        && end.is_none_or(|e| c.started < e)
                        && c.covers(&record.path, record.created)
                })
                .map(|c| c.started)
                .max();
        }
        Ok(list)
    }

    /// Resolves `latest`, checks that a snapshot id exists for the tenant, or maps a cycle that
    /// found the tenant unchanged to the version it found.
    pub fn resolve_snapshot(&self, record: &TenantRecord, snapshot: &str) -> Result<String> {
        let list = self.inventory().snapshots(&record.path)?;
        let hint = || {
            Some(format!(
                "`tvault snapshots --tenant {:?}` lists them",
                record.id
            ))
        };
        if snapshot == "latest" {
            return list.last().map(|s| s.snapshot.clone()).ok_or_else(|| {
                Error::not_found(format!("any snapshot of tenant {:?}", record.id), hint())
            });
        }
        if list.iter().any(|s| s.snapshot == snapshot) {
            return Ok(snapshot.to_string());
        }
        let cycles = self.inventory().cycles()?;
        if let Some(cycle) = cycles.iter().find(|c| c.snapshot == snapshot) {
            let stood_for = self.versions(record, std::slice::from_ref(cycle))?;
            if let Some(v) = stood_for.into_iter().find(|v| v.confirmed.is_some()) {
                tracing::info!(tenant = %record.id, snapshot, version = %v.snapshot, "the cycle found the tenant unchanged since this version");
                return Ok(v.snapshot);
            }
        }
        Err(Error::not_found(
            format!("snapshot {snapshot:?} of tenant {:?}", record.id),
            hint(),
        ))
    }

    /// Reads a tenant's manifest of a committed snapshot.
    pub async fn manifest(&self, record: &TenantRecord, snapshot: &str) -> Result<TenantManifest> {
        if !layout::is_snapshot_id(snapshot) {
            return Err(Error::Invalid(format!("{snapshot:?} is not a snapshot id")));
        }
        let path = layout::manifest(&record.path, snapshot);
        let bytes = self.get(&path).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::corrupt(
                &path,
                format!(
                    "the manifest of snapshot {snapshot} for tenant {:?} is missing from the store",
                    record.id
                ),
            ),
            other => other,
        })?;
        let stored = StoredManifest::parse(&bytes).map_err(|e| Error::corrupt(&path, e))?;
        let mut defs = HashMap::new();
        for id in stored.def_ids() {
            if !defs.contains_key(id) {
                defs.insert(id.to_string(), self.table_def(id).await?);
            }
        }
        let m = stored
            .resolve(|id| defs.remove(id))
            .map_err(|e| Error::corrupt(&path, e))?;
        if m.tenant != record.id || m.snapshot != snapshot || m.tenant_path != record.path {
            return Err(Error::corrupt(
                &path,
                "the manifest belongs to another tenant or snapshot",
            ));
        }
        Ok(m)
    }

    /// An object named by the digest of its bytes (`schemas/`), read and checked against `id`.
    async fn content_addressed(&self, path: &layout::Path, id: &str, what: &str) -> Result<Bytes> {
        if !layout::is_def_id(id) {
            return Err(Error::corrupt(path, format!("not a {what} id")));
        }
        let body = self.get(path).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::corrupt(path, format!("the {what} is missing")),
            other => other,
        })?;
        if manifest::def_id(&body) != id {
            return Err(Error::corrupt(
                path,
                format!("the {what} does not match its id"),
            ));
        }
        Ok(body)
    }

    /// A table definition by id: from the inventory, else from the store (checked against its
    /// id, then remembered).
    pub async fn table_def(&self, id: &str) -> Result<TableDef> {
        if let Some(d) = self.inventory().table_def(id)? {
            return Ok(d);
        }
        let path = layout::table_def(id);
        let body = self
            .content_addressed(&path, id, "table definition")
            .await?;
        let def = serde_json::from_slice(&body).map_err(|e| Error::corrupt(&path, e))?;
        self.inventory().put_table_def(id, &body)?;
        Ok(def)
    }

    /// Fetches and opens one block.
    pub async fn read_block(
        &self,
        record: &TenantRecord,
        keys: &crate::tenant::Unlocked,
        table: &str,
        b: &BlockRef,
    ) -> Result<Vec<u8>> {
        let sealed = self.fetch_sealed(record, b).await?;
        open_sealed(record, keys, table, b, &sealed)
    }

    /// Fetches what opening a block takes: for a block of a sealed pack, the pack's head and the
    /// chunks that cover the block (two ranged reads); for a block sealed on its own (earlier
    /// formats), its sealed bytes (one ranged read), checked against their hash.
    pub async fn fetch_sealed(&self, record: &TenantRecord, b: &BlockRef) -> Result<Fetched> {
        let path = layout::pack(&record.path, &b.pack);
        if !b.in_sealed_pack() {
            let sealed = self
                .read_range(&path, b.offset..b.offset + b.length, &b.id)
                .await?;
            self.count_read(sealed.len() as u64);
            if block::sealed_hash(&sealed) != b.sealed_hash {
                return Err(Error::corrupt(
                    &path,
                    format!("block {} does not match its recorded hash", b.id),
                ));
            }
            return Ok(Fetched::Block(sealed));
        }
        let pack = self
            .inventory()
            .pack(&record.path, &b.pack)?
            .ok_or_else(|| {
                Error::corrupt(
                    &path,
                    "the inventory does not know this sealed pack: run `tvault inventory rebuild`",
                )
            })?;
        let window = keys::chunk_range(pack.start, pack.length, b.offset, b.length);
        if window.end <= window.start || pack.start > pack.length {
            return Err(Error::corrupt(
                &path,
                format!("block {} lies outside its pack", b.id),
            ));
        }
        let head = self.read_range(&path, 0..pack.start, &b.id).await?;
        let bytes = self.read_range(&path, window.clone(), &b.id).await?;
        self.count_read((head.len() + bytes.len()) as u64);
        Ok(Fetched::InPack(block::PackPart {
            head,
            window: bytes,
            total: pack.length,
        }))
    }

    /// One ranged read of a pack, telling a truncated pack (permanent damage) from a failing
    /// store (retry later).
    async fn read_range(
        &self,
        path: &layout::Path,
        range: std::ops::Range<u64>,
        block: &str,
    ) -> Result<Bytes> {
        let end = range.end;
        let got = match self.store().objects().get_range(path, range.clone()).await {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::corrupt(path, "the pack object is missing"))
            }
            Err(e) => {
                if let Ok(meta) = self.store().objects().head(path).await {
                    if meta.size < end {
                        return Err(Error::corrupt(
                            path,
                            format!(
                                "block {block} needs bytes {}..{end} but the object has only {} bytes: it is truncated",
                                range.start, meta.size
                            ),
                        ));
                    }
                }
                return Err(Error::Store {
                    context: format!("reading {path}"),
                    source: e,
                });
            }
        };
        if got.len() as u64 != end - range.start {
            return Err(Error::corrupt(path, format!("block {block} is truncated")));
        }
        Ok(got)
    }

    /// Restores one tenant from a snapshot (see the module docs) and records it in the audit trail.
    pub async fn restore(
        &self,
        opts: &RestoreOptions,
        identity: &keys::TenantIdentities,
    ) -> Result<RestoreReport> {
        let draft = crate::audit::AuditDraft::new(crate::audit::actions::RESTORE)
            .tenant(opts.tenant.clone())
            .details(serde_json::json!({
                "snapshot": opts.snapshot,
                "target": opts.target.as_deref().map(crate::source::postgres::redact).unwrap_or_else(|| "live".into()),
                "dry_run": opts.dry_run,
            }));
        let result = {
            let _tenant = self.reading_tenant(&opts.tenant).await;
            self.restore_tenant(opts, identity).await
        };
        let draft = match &result {
            Ok(r) => draft.details(serde_json::json!({
                "snapshot": r.snapshot, "target": r.target, "dry_run": r.dry_run,
                "inserted": r.tables.iter().map(|t| t.inserted).sum::<u64>(),
                "updated": r.tables.iter().map(|t| t.updated).sum::<u64>(),
                "deleted": r.tables.iter().map(|t| t.deleted).sum::<u64>(),
            })),
            Err(_) => draft,
        };
        self.audited(draft, result).await
    }

    /// Where a restore puts a tenant's tables: the schema map, the schemas that are tenants'
    /// own, and the one the tables go to whole, if any. A bridge tenant's tables go to its
    /// schema (or `--into-schema`); a silo tenant's to its database (or `--into-database`),
    /// relative ones into `public`; a pooled tenant's go where they are, or all into
    /// `--into-schema` (a move out of the pool: table names must then differ across schemas).
    fn restore_map(
        &self,
        record: &TenantRecord,
        manifest: &TenantManifest,
        opts: &RestoreOptions,
        whole: bool,
    ) -> Result<Placing> {
        let mut map = opts.schema_map.clone();
        let home = opts.into_schema.as_deref().or(match whole {
            true => Some(crate::tenant::SILO_HOME),
            false => record.placement.home(),
        });
        if home.is_some() && !opts.schema_map.is_empty() {
            return Err(Error::Invalid(
                "--schema-map and a tenant's own schema (--into-schema, or a bridge or silo \
                 tenant's) do not go together: the tables all go to the one schema"
                    .into(),
            ));
        }
        let Some(home) = home else {
            return Ok(Placing {
                map,
                bridge: Some(self.inventory().bridge_schemas()?),
                home: None,
            });
        };
        if whole {
            // A database of the tenant's own: relative tables go home, the others stay in
            // their schemas.
            crate::tenant::Placement::Bridge {
                schema: home.to_string(),
            }
            .validate()?;
            return Ok(Placing {
                map: vec![(String::new(), home.to_string())],
                bridge: None,
                home: Some(home.to_string()),
            });
        }
        let mut bridge = self.inventory().bridge_schemas()?;
        let placement = crate::tenant::Placement::Bridge {
            schema: home.to_string(),
        };
        if let Some(other) = self.schema_owner_besides(&placement, &record.id)? {
            return Err(Error::Conflict(format!(
                "schema {home:?} is tenant {other:?}'s own; restore tenant {:?} elsewhere",
                record.id
            )));
        }
        let mut seen = std::collections::BTreeMap::new();
        for t in &manifest.tables {
            if let Some(other) = seen.insert(&t.def.name, &t.def) {
                return Err(Error::Invalid(format!(
                    "{} and {} would both be {home}.{}: a tenant with tables of one name in two \
                     schemas cannot move into one schema",
                    other.display_name(),
                    t.def.display_name(),
                    t.def.name
                )));
            }
            if !map.iter().any(|(from, _)| *from == t.def.schema) {
                map.push((t.def.schema.clone(), home.to_string()));
            }
        }
        bridge.insert(home.to_string());
        Ok(Placing {
            map,
            bridge: Some(bridge),
            home: Some(home.to_string()),
        })
    }

    /// The database a restore writes to, and whether it is one of the tenant's own (a silo's,
    /// every table of which is the tenant's): `--target`, else `--into-database`, else the
    /// source for `--into-schema`, else where the tenant lives.
    async fn restore_target(
        &self,
        record: &TenantRecord,
        opts: &RestoreOptions,
    ) -> Result<(String, bool)> {
        let silo = record.placement.database().is_some();
        let (url, whole) =
            match (&opts.target, &opts.into_database, &opts.into_schema) {
                (Some(_), Some(_), _) => return Err(Error::Invalid(
                    "--target and --into-database both name the database to restore into: give one"
                        .into(),
                )),
                (Some(t), None, into) => (t.clone(), silo && into.is_none()),
                (None, Some(d), _) => (pg::conninfo::database_url(&self.config().source, d)?, true),
                (None, None, Some(_)) => (self.config().source.clone(), false),
                (None, None, None) => (self.tenant_source(record)?, silo),
            };
        if whole {
            self.own_database(&url, &record.id).await?;
        }
        Ok((url, whole))
    }

    /// Creates the schema a tenant's tables go to whole from the snapshot's DDL, when it does
    /// not exist: the tenant's schema after it was dropped, or a new one. Returns the warnings
    /// of foreign keys to other tables that could not be added back.
    async fn recreate_schema(
        &self,
        client: &mut tokio_postgres::Client,
        manifest: &TenantManifest,
        home: &str,
        whole: bool,
    ) -> Result<Vec<String>> {
        let Some(id) = &manifest.ddl else {
            return Err(Error::SchemaMismatch {
                table: home.to_string(),
                reason: format!(
                    "the schema does not exist, and snapshot {} was taken before archives \
                     carried DDL: create the tables, then restore",
                    manifest.snapshot
                ),
            });
        };
        let ddl = self.archived_ddl(id).await?;
        // The DDL names the tenant's schemas as they were: its own (relative, `""`) or the
        // pooled tables' schemas, in both the quoted forms the catalog and tvault print. Into a
        // database of the tenant's own, only the relative ones move.
        let mut from = vec!["\"\".".to_string()];
        for t in &manifest.tables {
            if !t.def.schema.is_empty() && !whole {
                let h = pg::catalog::Home::of(client, &t.def.schema).await?;
                from.push(format!("{}.", h.quoted));
                from.push(format!("{}.", sql::ident(&h.name)));
            }
        }
        from.dedup();
        let home = pg::catalog::Home::of(client, home).await?;
        tracing::info!(schema = %home.name, ddl = %id, "creating the schema from the archive");
        pg::ddl::replay(client, &ddl, &from, &home).await
    }

    /// An archived DDL by id, checked against it.
    async fn archived_ddl(&self, id: &str) -> Result<manifest::ArchivedDdl> {
        let path = layout::tenant_ddl(id);
        let body = self.content_addressed(&path, id, "archived DDL").await?;
        serde_json::from_slice(&body).map_err(|e| Error::corrupt(&path, e))
    }

    async fn restore_tenant(
        &self,
        opts: &RestoreOptions,
        identity: &keys::TenantIdentities,
    ) -> Result<RestoreReport> {
        let record = self.tenant(&opts.tenant)?;
        let snapshot = self.resolve_snapshot(&record, &opts.snapshot)?;
        let manifest = self.manifest(&record, &snapshot).await?;
        let keys = Arc::new(self.unlock(&record, identity).await?);
        let (url, whole) = self.restore_target(&record, opts).await?;
        let mut client = pg::connect_for_restore(&url, &self.config().restore).await?;
        let placing = self.restore_map(&record, &manifest, opts, whole)?;
        let mut warnings = vec![];
        let mut created = None;
        if let Some(home) = &placing.home {
            // Every table of the schema (or database) will be the tenant's alone: never one
            // that holds other tenants' rows.
            let plan = match whole {
                true => pg::catalog::whole_database(&client, home).await?,
                false => {
                    let plan = self.plan_of(&client).await?;
                    if let Some(t) = plan.tables[plan.pool_tables()]
                        .iter()
                        .find(|t| &t.schema == home)
                    {
                        return Err(Error::Conflict(format!(
                            "schema {home:?} holds the pooled table {}, with other tenants' \
                             rows: restore tenant {:?} into a schema of its own",
                            t.display_name(),
                            record.id
                        )));
                    }
                    let own = [home.clone()].into();
                    pg::catalog::plan(&client, self.config(), &own).await?
                }
            };
            let literal = sql::literal(&client, &record.id).await?;
            let column = &self.config().tenant_column;
            let tables = &plan.tables[plan.tables_of(Some(home))];
            if let Some(t) = pg::ownership::shared_table(&client, tables, column, &literal).await? {
                return Err(Error::Conflict(format!(
                    "{t} has rows whose {column} names another tenant than {:?}: restoring \
                     into {} would take them away",
                    record.id,
                    match whole {
                        true => "its database".to_string(),
                        false => format!("schema {home:?}"),
                    }
                )));
            }
            let empty = match whole {
                true => plan.tables.is_empty(),
                false => !pg::ddl::schema_exists(&client, home).await?,
            };
            if empty {
                if opts.dry_run {
                    return Err(Error::not_found(
                        match whole {
                            true => "any table in the target database".to_string(),
                            false => format!("schema {home:?}"),
                        },
                        Some(
                            "a restore that is not a dry run creates it from the snapshot's DDL"
                                .into(),
                        ),
                    ));
                }
                // What the database held before, so that a failed load drops only what the
                // restore made.
                let before = match whole {
                    true => Some(pg::ddl::user_objects(&client).await?),
                    false => None,
                };
                warnings = self
                    .recreate_schema(&mut client, &manifest, home, whole)
                    .await?;
                created = Some((home.clone(), before));
            }
        }
        let restored = self
            .restore_rows(
                &record, snapshot, &manifest, keys, client, &url, &placing, opts,
            )
            .await;
        match (restored, created) {
            (Ok(mut report), created) => {
                if created.is_some() {
                    // Serial and identity columns go on from the restored rows.
                    let c = pg::connect(&url).await?;
                    for schema in placing.live_schemas(&manifest) {
                        pg::ddl::advance_sequences(&c, &schema).await?;
                    }
                }
                report.warnings.extend(warnings);
                Ok(report)
            }
            (Err(e), Some((home, before))) => {
                let c = pg::connect(&url).await?;
                let dropped = match before {
                    Some(before) => pg::ddl::drop_new(&c, &before).await,
                    None => pg::ddl::drop_created(&c, &home).await,
                };
                if let Err(d) = dropped {
                    tracing::error!(schema = %home, error = %crate::error::with_causes(&d), "could not drop the schema the failed restore created");
                }
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Restores the rows of a tenant's snapshot into the live tables `placing` names.
    #[allow(clippy::too_many_arguments)]
    async fn restore_rows(
        &self,
        record: &TenantRecord,
        snapshot: String,
        manifest: &TenantManifest,
        keys: Arc<crate::tenant::Unlocked>,
        mut client: tokio_postgres::Client,
        url: &str,
        placing: &Placing,
        opts: &RestoreOptions,
    ) -> Result<RestoreReport> {
        let (plan, targets) = targets::restore_targets(
            &client,
            self.config(),
            manifest,
            &placing.map,
            placing.bridge.as_ref(),
            placing.home.as_deref(),
        )
        .await?;
        let erased = self.ledger(record).await?.erased();
        let total: u64 = manifest
            .tables
            .iter()
            .flat_map(|t| &t.blocks)
            .map(|b| b.length)
            .sum();
        let done = std::sync::atomic::AtomicU64::new(0);
        let progress = |n: u64| {
            let now = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            if let Some(p) = &opts.progress {
                p(now, total);
            }
        };
        let role = pg::current_role(&client).await?;
        let reader = pg::connect_for_restore(url, &self.config().restore).await?;
        let mut tx = client
            .transaction()
            .await
            .db(|| "starting the restore transaction".into())?;
        let replica = apply::skip_row_triggers(&mut tx).await?;
        let session = apply::Session::new(&tx, replica);
        let literal = sql::literal(&tx, &record.id).await?;
        let ctx = diff::Ctx {
            vault: self,
            record,
            keys: &keys,
            session: &session,
            literal: &literal,
            erased: &erased,
            plan: &plan,
            progress: &progress,
        };
        // Live rows are read on a second connection, one table ahead of the staging: the
        // database computes them while the previous table is compared and staged. Both read
        // committed data; what changes in between fails the apply's row counts or the checks.
        let (live_tx, mut live_rx) = tokio::sync::mpsc::channel(1);
        let read_all = async {
            for (mi, def) in &targets {
                let rows = manifest.tables[*mi].rows;
                let live = diff::read_live(&reader, def, &literal, &keys.id_key, rows).await;
                let failed = live.is_err();
                if live_tx.send(live).await.is_err() || failed {
                    break;
                }
            }
        };
        let stage_all = async {
            let mut staged = Vec::with_capacity(targets.len());
            for (slot, (mi, def)) in targets.iter().enumerate() {
                let clock = std::time::Instant::now();
                let live = async {
                    live_rx.recv().await.unwrap_or_else(|| {
                        Err(Error::Aborted("the live-row reader stopped".into()))
                    })
                };
                let s =
                    diff::stage_table(&ctx, &manifest.tables[*mi], def.clone(), slot, live).await?;
                tracing::debug!(table = %s.change.def.display_name(), ms = clock.elapsed().as_millis() as u64, "compared and staged");
                staged.push(s);
            }
            Ok::<_, Error>(staged)
        };
        let ((), staged) = futures::join!(read_all, stage_all);
        let staged = staged?;
        let changes: Vec<apply::TableChange> = staged.iter().map(|s| s.change.clone()).collect();
        let mut checks: Vec<TableCheck> = staged.iter().map(TableCheck::planned).collect();
        if !opts.dry_run {
            let clock = std::time::Instant::now();
            session.apply(&changes, &record.id, &plan).await?;
            tracing::debug!(ms = clock.elapsed().as_millis() as u64, "applied");
            let clock = std::time::Instant::now();
            session
                .check_references(&changes, &plan, &record.id)
                .await?;
            tracing::debug!(
                ms = clock.elapsed().as_millis() as u64,
                "references checked"
            );
            let clock = std::time::Instant::now();
            for (check, s) in checks.iter_mut().zip(&staged) {
                // Untouched rows were read in this transaction; every written row is read back.
                let got = if s.change.is_empty() {
                    s.live
                } else {
                    s.after(diff::written_checksum(&ctx, &s.change).await?)
                };
                check.rows_restored = Some(got.rows);
                check.checksum_ok = Some(got == s.expected);
            }
            tracing::debug!(
                ms = clock.elapsed().as_millis() as u64,
                "written rows read back"
            );
            if let Some(bad) = checks.iter().find(|c| c.checksum_ok == Some(false)) {
                // Dropping the transaction rolls it back: the live rows stay as they were.
                return Err(Error::Mismatch {
                    tenant: record.id.clone(),
                    table: bad.table.clone(),
                    reason: format!(
                        "after the restore, {} rows read back (manifest: {}), checksum {}; nothing was changed",
                        bad.rows_restored.unwrap_or_default(),
                        bad.rows_expected,
                        if bad.rows_restored == Some(bad.rows_expected) { "differs" } else { "not compared" }
                    ),
                });
            }
            session.finish().await?;
            drop(session);
            tx.commit().await.db(|| "committing the restore".into())?;
            tracing::info!(tenant = %record.id, snapshot = %snapshot, "restore committed");
        }
        Ok(RestoreReport {
            tenant: record.id.clone(),
            snapshot,
            target: match url == self.config().source {
                true => "live".into(),
                false => crate::source::postgres::redact(url),
            },
            dry_run: opts.dry_run,
            foreign_keys: if replica { "set_based" } else { "row_by_row" },
            warnings: if replica {
                vec![]
            } else {
                vec![apply::fallback_warning(&role)]
            },
            tables: checks,
            ok: true,
        })
    }
}

/// Opens a block's sealed bytes (authentication, decryption, id check); CPU work.
pub(crate) fn open_sealed(
    record: &TenantRecord,
    keys: &crate::tenant::Unlocked,
    table: &str,
    b: &BlockRef,
    sealed: &Fetched,
) -> Result<Vec<u8>> {
    let object = layout::pack(&record.path, &b.pack).to_string();
    open_block(&record.id, &object, keys, table, b, sealed)
}

/// Opens a block with whichever of the tenant's data keys it was sealed to: blocks of snapshots
/// before a revoking key rotation are sealed to an earlier one. `object` names the pack.
pub(crate) fn open_block(
    tenant: &str,
    object: &str,
    keys: &crate::tenant::Unlocked,
    table: &str,
    b: &BlockRef,
    sealed: &Fetched,
) -> Result<Vec<u8>> {
    let mut wrong = None;
    for key in keys.data_keys() {
        let opened = match sealed {
            Fetched::Block(bytes) => block::open(key, &keys.id_key, bytes, table, b, object),
            Fetched::InPack(part) => block::open_in_pack(key, &keys.id_key, part, table, b, object),
        };
        match opened {
            Err(Error::WrongKey { reason, .. }) => {
                wrong = Some(Error::WrongKey {
                    tenant: tenant.to_string(),
                    reason,
                })
            }
            other => return other,
        }
    }
    Err(wrong.unwrap_or_else(|| Error::corrupt(object, "no data key")))
}

/// What opening one block takes, as fetched from the store.
#[derive(Clone, Debug)]
pub enum Fetched {
    /// A block sealed on its own (earlier formats).
    Block(Bytes),
    /// A block of a sealed pack: the pack's head and the chunks that cover the block.
    InPack(block::PackPart),
}
