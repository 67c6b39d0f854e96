//! restore-records: upsert a few records (and, on request, their related rows) from a snapshot.
//!
//! Rows are gathered from the snapshot (the requested ones by key through the inventory; related
//! ones by following the foreign keys in the manifest), compared with the live rows, and written
//! in one transaction, parents first: missing rows inserted, changed rows updated, identical rows
//! left alone. Nothing is written for a row whose live twin belongs to another tenant, nor when
//! the live schema lost a column that holds a value.

use super::lookup::live_row;
use super::{
    codec, column_values, display_key, encode_key, pk_conditions, BlockCache, KeyValues, Projection,
};
use crate::archive::manifest::{TableManifest, TenantManifest};
use crate::copytext;
use crate::error::{DbContext, Error, Result};
use crate::source::postgres::catalog::{self, Owner, Plan, TableDef};
use crate::source::postgres::{self as pg, apply};
use crate::sql::{self, qualified};
use crate::tenant::TenantRecord;
use crate::Vault;
use bytes::Bytes;
use futures::SinkExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Default)]
pub struct RecordRestoreOptions {
    pub tenant: String,
    /// `schema.table` of the requested records.
    pub table: String,
    pub keys: Vec<KeyValues>,
    pub snapshot: String,
    pub with_related: bool,
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct PlannedRow {
    pub table: String,
    pub key: String,
    /// `insert`, `update` or `unchanged`.
    pub action: &'static str,
    /// Why the row is part of the restore: `requested`, `child of …`, `parent of …`.
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct RecordRestoreReport {
    pub tenant: String,
    pub snapshot: String,
    pub dry_run: bool,
    pub rows: Vec<PlannedRow>,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// A row to write, and whether it replaces a live row of the tenant (an update).
type Write = (Vec<u8>, bool);

/// Rows gathered for the restore, per table index of the manifest, keyed by encoded key.
type Gathered = BTreeMap<usize, BTreeMap<Vec<u8>, (Vec<u8>, String)>>;

impl Vault {
    /// Restores records (see the module docs); real runs are recorded in the audit trail with
    /// the table, keys, snapshot and rows changed.
    pub async fn restore_records(
        &self,
        opts: &RecordRestoreOptions,
        identity: &keys::TenantIdentities,
    ) -> Result<RecordRestoreReport> {
        let result = {
            let _tenant = self.reading_tenant(&opts.tenant).await;
            self.restore_records_inner(opts, identity).await
        };
        // Records are named by keyed hash: the trail holds no key values (docs/AUDIT.md).
        let records = self.audit_names(&opts.tenant, &opts.table, &opts.keys);
        let mut details = serde_json::json!({ "table": opts.table, "records": records, "snapshot": opts.snapshot, "with_related": opts.with_related });
        if let Ok(r) = &result {
            details["snapshot"] = r.snapshot.clone().into();
            details["inserted"] = r.inserted.into();
            details["updated"] = r.updated.into();
        }
        let draft = match opts.dry_run {
            true => {
                details["what"] = "restore-records --dry-run".into();
                crate::audit::AuditDraft::new(crate::audit::actions::READ)
            }
            false => crate::audit::AuditDraft::new(crate::audit::actions::RECORD_RESTORE),
        };
        let draft = draft.tenant(opts.tenant.clone()).details(details);
        self.audited_hiding(draft, result, &super::key_strings(&opts.keys))
            .await
    }

    async fn restore_records_inner(
        &self,
        opts: &RecordRestoreOptions,
        identity: &keys::TenantIdentities,
    ) -> Result<RecordRestoreReport> {
        let record = self.tenant(&opts.tenant)?;
        let snapshot = self.resolve_snapshot(&record, &opts.snapshot)?;
        let mut manifest = self.manifest(&record, &snapshot).await?;
        let keys = self.unlock(&record, identity).await?;
        let client =
            pg::connect_for_restore(&self.tenant_source(&record)?, &self.config().restore).await?;
        // SQL is built from the live catalog: each table's owner rule and foreign keys come from
        // the live plan, which must agree with the (authenticated) manifest.
        let plan = self.plan_for(&client, &record).await?;
        // A bridge tenant's tables are archived relative to its schema: the SQL is built for
        // where they live, while names, keys and the erasure ledger stay the archive's.
        let archived = manifest
            .tables
            .iter()
            .map(|t| t.def.clone())
            .collect::<Vec<_>>();
        if let Some(home) = record.placement.home() {
            let home = catalog::Home::of(&client, home).await?;
            for t in &mut manifest.tables {
                t.def = t.def.located_in(&home);
            }
        }
        for t in &mut manifest.tables {
            let name = t.def.display_name();
            if let Some(live) = plan
                .tables
                .iter()
                .find(|l| l.schema == t.def.schema && l.name == t.def.name)
            {
                crate::restore::targets::same_owner(&t.def.owner, &live.owner, &name)?;
                t.def.foreign_keys = live.foreign_keys.clone();
            }
        }
        let mut cache = BlockCache::new(self, &record, &keys);
        let root = archived
            .iter()
            .position(|def| def.display_name() == opts.table)
            .ok_or_else(|| {
                Error::not_found(format!("table {} in snapshot {snapshot}", opts.table), None)
            })?;
        let mut rows: Gathered = BTreeMap::new();
        let mut queue = vec![];
        for key in &opts.keys {
            let view = self
                .read_record(&record, &keys, &opts.table, key, &snapshot)
                .await?;
            let k = encode_key(
                &manifest.tables[root].def,
                &record.id,
                &self.config().tenant_column,
                key,
            )?;
            if add(&mut rows, root, k, &view.row, "requested".into()) {
                queue.push((root, view.row));
            }
        }
        if opts.with_related {
            gather_related(&mut cache, &manifest, &client, &record, &mut rows, queue).await?;
        }
        // Erased records never come back: refuse them when asked for, skip them when related.
        let erased = self.ledger(&record).await?.erased();
        for (&t, table_rows) in rows.iter_mut() {
            let Some(filter) = erased.for_table(&archived[t]) else {
                continue;
            };
            if t == root {
                if let Some((row, _)) = table_rows
                    .values()
                    .find(|(r, _)| filter.is_erased(&keys.id_key, r))
                {
                    return Err(Error::Invalid(format!(
                        "{} {} was erased (see the erasure ledger); it cannot be restored",
                        opts.table,
                        display_key(&manifest.tables[t].def, row)
                    )));
                }
            }
            table_rows.retain(|_, (r, _)| !filter.is_erased(&keys.id_key, r));
        }
        let mut report = RecordRestoreReport {
            tenant: record.id.clone(),
            snapshot: snapshot.clone(),
            dry_run: opts.dry_run,
            rows: vec![],
            inserted: 0,
            updated: 0,
            unchanged: 0,
        };
        let mut writes: Vec<(usize, Vec<Write>)> = vec![];
        for (&t, table_rows) in &rows {
            let def = &manifest.tables[t].def;
            // Before reading anything live: the live table must still hold every value.
            let projection = Projection::of(&client, def).await?;
            projection.check(
                &table_rows
                    .values()
                    .map(|(r, _)| r.as_slice())
                    .collect::<Vec<_>>(),
            )?;
            let mut to_write = vec![];
            for (row, reason) in table_rows.values() {
                let live_view = projection.row(row);
                check_owner(&client, &projection.def, &record.id, &live_view).await?;
                let action =
                    match live_row(&client, &projection.def, &record.id, &live_view).await? {
                        None => "insert",
                        Some(live) if live == live_view => "unchanged",
                        Some(_) => "update",
                    };
                match action {
                    "insert" => report.inserted += 1,
                    "update" => report.updated += 1,
                    _ => report.unchanged += 1,
                }
                if action != "unchanged" {
                    to_write.push((row.clone(), action == "update"));
                }
                report.rows.push(PlannedRow {
                    table: def.display_name(),
                    key: display_key(def, row),
                    action,
                    reason: reason.clone(),
                });
            }
            writes.push((t, to_write));
        }
        if opts.dry_run {
            return Ok(report);
        }
        let mut client = client;
        let mut tx = client
            .transaction()
            .await
            .db(|| "starting the record restore".into())?;
        let replica = apply::skip_row_triggers(&mut tx).await?;
        let session = apply::Session::new(&tx, replica);
        let (mut changes, mut written) = (vec![], vec![]);
        for (slot, (t, to_write)) in writes.iter().enumerate() {
            if !to_write.is_empty() {
                let (c, rows) = stage(
                    &session,
                    &plan,
                    slot,
                    &manifest.tables[*t],
                    &record.id,
                    to_write,
                )
                .await?;
                changes.push(c);
                written.push(rows);
            }
        }
        session.apply(&changes, &record.id, &plan).await?;
        session
            .check_references(&changes, &plan, &record.id)
            .await?;
        for (c, rows) in changes.iter().zip(&written) {
            check_written_owner(&tx, &c.def, &record.id, rows).await?;
        }
        session.finish().await?;
        drop(session);
        tx.commit()
            .await
            .db(|| "committing the record restore".into())?;
        tracing::info!(tenant = %record.id, snapshot = %snapshot, inserted = report.inserted, updated = report.updated, "records restored");
        Ok(report)
    }
}

/// Follows foreign keys from the gathered rows: children that reference them (recursively) and
/// parents they need that the live database lacks.
async fn gather_related(
    cache: &mut BlockCache<'_>,
    manifest: &TenantManifest,
    client: &tokio_postgres::Client,
    record: &TenantRecord,
    rows: &mut Gathered,
    mut queue: Vec<(usize, Vec<u8>)>,
) -> Result<()> {
    let tables = &manifest.tables;
    let index: HashMap<(String, String), usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.def.schema.clone(), t.def.name.clone()), i))
        .collect();
    let mut seen: HashSet<(usize, Vec<u8>)> = HashSet::new();
    while let Some((t, row)) = queue.pop() {
        if !seen.insert((t, row.clone())) {
            continue;
        }
        let def = &tables[t].def;
        // Children: rows of any table whose foreign key points at this row.
        for (ci, child) in tables.iter().enumerate() {
            for fk in child
                .def
                .foreign_keys
                .iter()
                .filter(|fk| fk.ref_schema == def.schema && fk.ref_table == def.name)
            {
                let wanted = column_values(def, &row, &fk.ref_columns);
                for crow in cache.rows(child).await? {
                    // Rows of tables without a primary key cannot be upserted: they come back
                    // only with a whole-tenant restore.
                    if column_values(&child.def, &crow, &fk.columns) == wanted
                        && !child.def.primary_key.is_empty()
                    {
                        let k = codec(&child.def)?.row_key(&crow);
                        let reason =
                            format!("child of {} {}", def.display_name(), display_key(def, &row));
                        if add(rows, ci, k, &crow, reason) {
                            queue.push((ci, crow));
                        }
                    }
                }
            }
        }
        // Parents: referenced rows missing from the live database.
        for fk in &def.foreign_keys {
            let Some(&pi) = index.get(&(fk.ref_schema.clone(), fk.ref_table.clone())) else {
                continue;
            };
            let wanted = column_values(def, &row, &fk.columns);
            if wanted.iter().any(|v| v.as_slice() == copytext::NULL) {
                continue;
            }
            let pdef = &tables[pi].def;
            if pdef.primary_key.is_empty() {
                continue;
            }
            let projection = Projection::of(client, pdef).await?;
            for prow in cache.rows(&tables[pi]).await? {
                if column_values(pdef, &prow, &fk.ref_columns) != wanted {
                    continue;
                }
                if live_row(client, &projection.def, &record.id, &projection.row(&prow))
                    .await?
                    .is_none()
                {
                    let k = codec(pdef)?.row_key(&prow);
                    let reason = format!(
                        "parent of {} {}",
                        def.display_name(),
                        display_key(def, &row)
                    );
                    if add(rows, pi, k, &prow, reason) {
                        queue.push((pi, prow));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Adds a row unless it is already gathered (the first reason wins); true when added.
fn add(rows: &mut Gathered, table: usize, key: Vec<u8>, row: &[u8], reason: String) -> bool {
    match rows.entry(table).or_default().entry(key) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert((row.to_vec(), reason));
            true
        }
        std::collections::btree_map::Entry::Occupied(_) => false,
    }
}

/// Refuses when a live row with this primary key exists but belongs to another tenant.
async fn check_owner(
    client: &tokio_postgres::Client,
    def: &TableDef,
    tenant: &str,
    row: &[u8],
) -> Result<()> {
    let conditions = pk_conditions(client, def, row).await?;
    let table = qualified(&def.schema, &def.name);
    let exists: bool = client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {table} AS t0 WHERE {})",
                conditions.join(" AND ")
            ),
            &[],
        )
        .await
        .db(|| format!("checking {}", def.display_name()))?
        .get(0);
    if !exists {
        return Ok(());
    }
    if live_row(client, def, tenant, row).await?.is_none() {
        return Err(Error::Conflict(format!(
            "{} {} exists in the live database but does not belong to tenant {tenant:?}: refusing to overwrite it",
            def.display_name(),
            display_key(def, row)
        )));
    }
    Ok(())
}

/// Stages rows of one table for the restore engine: the live table must still hold every
/// value (columns are matched by name), and a row that names another tenant refuses.
async fn stage(
    session: &apply::Session<'_, '_>,
    plan: &Plan,
    slot: usize,
    t: &TableManifest,
    tenant: &str,
    rows: &[Write],
) -> Result<(apply::TableChange, Vec<Vec<u8>>)> {
    let def = &t.def;
    let projection = Projection::of(session.client(), def).await?;
    projection.check(&rows.iter().map(|(r, _)| r.as_slice()).collect::<Vec<_>>())?;
    if let Owner::Column { column } = &def.owner {
        let ti = def.archived_columns().position(|c| &c.name == column);
        let tenant_escaped = copytext::escape(tenant.as_bytes());
        if rows.iter().any(|(r, _)| {
            ti.and_then(|i| copytext::fields(r).nth(i)) != Some(tenant_escaped.as_slice())
        }) {
            return Err(Error::Conflict(format!(
                "a row of {} names another tenant; nothing was written",
                def.display_name()
            )));
        }
    }
    // SQL is built from the live table: its keys and foreign keys, the snapshot's columns.
    let live = plan
        .tables
        .iter()
        .find(|l| l.schema == def.schema && l.name == def.name)
        .ok_or_else(|| Error::SchemaMismatch {
            table: def.display_name(),
            reason: "the table is no longer a tenant table of the live database".into(),
        })?;
    let mut target = live.clone();
    target.columns = projection.def.columns.clone();
    target.primary_key = def.primary_key.clone();
    let change = apply::TableChange {
        slot,
        mode: apply::Mode::Keyed,
        inserts: rows.iter().filter(|(_, update)| !update).count() as u64,
        updates: rows.iter().filter(|(_, update)| *update).count() as u64,
        deletes: 0,
        unchanged: 0,
        def: target,
    };
    session.stage(&change, plan).await?;
    let positions = change.def.key_positions();
    let (mut lines, mut keys, mut projected) = (vec![], vec![], vec![]);
    for (r, update) in rows {
        let row = projection.row(r);
        lines.extend_from_slice(&row);
        lines.push(b'\n');
        if *update {
            copytext::pick(&row, &positions, &mut keys);
            keys.push(b'\n');
        }
        projected.push(row);
    }
    let sink = session.rows_sink(&change).await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(lines))
        .await
        .db(|| "staging rows".into())?;
    sink.finish().await.db(|| "staging rows".into())?;
    session
        .load_keys(&change, apply::Keys::Update, keys)
        .await?;
    Ok((change, projected))
}

/// A child row belongs to whoever owns its parent: check that every written row reaches this
/// tenant through its owner rule, or write nothing.
async fn check_written_owner(
    tx: &tokio_postgres::Transaction<'_>,
    def: &TableDef,
    tenant: &str,
    rows: &[Vec<u8>],
) -> Result<()> {
    if let Owner::Column { .. } = &def.owner {
        return Ok(());
    }
    let tenant_lit = sql::literal(tx, tenant).await?;
    for r in rows {
        let conditions = pk_conditions(tx, def, r).await?;
        let q =
            crate::source::postgres::query::select_where(def, Some(&tenant_lit), None, &conditions);
        let n: i64 = tx
            .query_one(&format!("SELECT count(*) FROM ({q}) x"), &[])
            .await
            .db(|| {
                format!(
                    "checking the owner of restored rows of {}",
                    def.display_name()
                )
            })?
            .get(0);
        if n != 1 {
            return Err(Error::Conflict(format!(
                "{} {} would not belong to tenant {tenant:?} after the restore; nothing was written",
                def.display_name(),
                display_key(def, r)
            )));
        }
    }
    Ok(())
}
