//! Whole-tenant restore: replace one tenant's rows, in one transaction, from one snapshot.
//!
//! Inside a single transaction: delete the tenant's rows (children first), load every table with
//! `COPY … FROM STDIN` (parents first) from blocks that each pass authentication and their id
//! check, then read the tenant's rows back through the backup's own query and compare row counts
//! and keyed checksums with the manifest. Only if every table matches is the transaction
//! committed; on any error the database is left exactly as it was.

use crate::archive::block::{self, Checksum, IdKey};
use crate::archive::manifest::{BlockRef, TableManifest, TenantManifest};
use crate::error::{DbContext, Error, Result};
use crate::inventory::SnapshotEntry;
use crate::source::postgres::{self as pg, load, query};
use crate::tenant::TenantRecord;
use crate::{copytext, layout, sql, Vault};
use bytes::Bytes;
use futures::{SinkExt, StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct RestoreOptions {
    pub tenant: String,
    /// A snapshot id or `latest`.
    pub snapshot: String,
    /// Another database to restore into (default: the source database).
    pub target: Option<String>,
    /// Restore tables of schema `.0` into schema `.1` (which must hold the same tables).
    pub schema_map: Vec<(String, String)>,
    /// Called with the number of sealed bytes loaded, for progress.
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
}

#[derive(Debug, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub rows_expected: u64,
    pub rows_restored: u64,
    pub checksum_ok: bool,
}

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub tenant: String,
    pub snapshot: String,
    pub target: String,
    pub tables: Vec<TableCheck>,
    pub ok: bool,
}

/// Blocks fetched and opened ahead of the COPY that consumes them.
const READ_AHEAD: usize = 4;

impl Vault {
    /// Snapshots of one tenant (or of all), oldest first.
    pub fn snapshots(&self, tenant: Option<&str>) -> Result<Vec<SnapshotEntry>> {
        let tenants = match tenant {
            Some(id) => vec![self.tenant(id)?],
            None => self.tenants()?,
        };
        let mut all = vec![];
        for t in tenants {
            all.extend(self.inventory().snapshots(&t.path)?);
        }
        all.sort_by(|a, b| (a.time, &a.snapshot, &a.tenant).cmp(&(b.time, &b.snapshot, &b.tenant)));
        Ok(all)
    }

    /// Resolves `latest` or checks that a snapshot id exists for the tenant.
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
        if !list.iter().any(|s| s.snapshot == snapshot) {
            return Err(Error::not_found(
                format!("snapshot {snapshot:?} of tenant {:?}", record.id),
                hint(),
            ));
        }
        Ok(snapshot.to_string())
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
        let m: TenantManifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, e))?;
        if m.tenant != record.id || m.snapshot != snapshot || m.tenant_path != record.path {
            return Err(Error::corrupt(
                &path,
                "the manifest belongs to another tenant or snapshot",
            ));
        }
        Ok(m)
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
        let object = layout::pack(&record.path, &b.pack).to_string();
        block::open(&keys.data_key, &keys.id_key, &sealed, table, b, &object).map_err(|e| match e {
            Error::WrongKey { reason, .. } => Error::WrongKey {
                tenant: record.id.clone(),
                reason,
            },
            other => other,
        })
    }

    /// Fetches a block's sealed bytes with one ranged read and checks their hash.
    pub async fn fetch_sealed(&self, record: &TenantRecord, b: &BlockRef) -> Result<Bytes> {
        let path = layout::pack(&record.path, &b.pack);
        let end = b.offset + b.length;
        let sealed = match self.store().objects().get_range(&path, b.offset..end).await {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::corrupt(&path, "the pack object is missing"))
            }
            Err(e) => {
                // Tell a truncated pack (permanent damage) from a failing store (retry later).
                if let Ok(meta) = self.store().objects().head(&path).await {
                    if meta.size < end {
                        return Err(Error::corrupt(
                            &path,
                            format!(
                                "block {} needs bytes {}..{end} but the object has only {} bytes: it is truncated",
                                b.id, b.offset, meta.size
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
        self.count_read(sealed.len() as u64);
        if sealed.len() as u64 != b.length {
            return Err(Error::corrupt(
                &path,
                format!("block {} is truncated", b.id),
            ));
        }
        if block::sealed_hash(&sealed) != b.sealed_hash {
            return Err(Error::corrupt(
                &path,
                format!("block {} does not match its recorded hash", b.id),
            ));
        }
        Ok(sealed)
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
                "target": opts.target.as_deref().map(crate::config::redact_url).unwrap_or_else(|| "live".into()),
            }));
        let result = self.restore_tenant(opts, identity).await;
        let draft = match &result {
            Ok(r) => draft.details(serde_json::json!({
                "snapshot": r.snapshot, "target": r.target,
                "rows": r.tables.iter().map(|t| t.rows_restored).sum::<u64>(),
            })),
            Err(_) => draft,
        };
        self.audited(draft, result).await
    }

    async fn restore_tenant(
        &self,
        opts: &RestoreOptions,
        identity: &keys::TenantIdentities,
    ) -> Result<RestoreReport> {
        let record = self.tenant(&opts.tenant)?;
        let snapshot = self.resolve_snapshot(&record, &opts.snapshot)?;
        let mut manifest = self.manifest(&record, &snapshot).await?;
        remap_schemas(&mut manifest, &opts.schema_map);
        let keys = self.unlock(&record, identity).await?;
        let url = opts
            .target
            .clone()
            .unwrap_or_else(|| self.config().source.clone());
        let mut client = pg::connect(&url).await?;
        for t in &manifest.tables {
            load::check_schema(&client, t).await?;
        }
        let literal = sql::literal(&client, &record.id).await?;
        let total: u64 = manifest
            .tables
            .iter()
            .flat_map(|t| &t.blocks)
            .map(|b| b.length)
            .sum();
        let tx = client
            .transaction()
            .await
            .db(|| "starting the restore transaction".into())?;
        let mut disabled = Vec::with_capacity(manifest.tables.len());
        for t in &manifest.tables {
            disabled.push(load::disable_user_triggers(&tx, t).await?);
        }
        for t in manifest.tables.iter().rev() {
            tx.execute(&query::delete(&t.def, &literal), &[])
                .await
                .db(|| {
                    format!(
                        "deleting tenant {:?} rows of {}",
                        record.id,
                        t.def.display_name()
                    )
                })?;
        }
        let mut loaded = 0u64;
        // Rows the erasure ledger names never come back, whatever the snapshot holds.
        let erased = self.ledger(&record).await?.erased();
        let mut dropped = vec![Checksum::default(); manifest.tables.len()];
        for (ti, t) in manifest.tables.iter().enumerate() {
            let name = t.def.display_name();
            let filter = erased.for_table(&t.def);
            let sink = tx
                .copy_in::<_, Bytes>(&query::copy_in(&t.def))
                .await
                .db(|| format!("loading {name}"))?;
            futures::pin_mut!(sink);
            let mut blocks = futures::stream::iter(t.blocks.iter())
                .map(|b| {
                    let (record, keys, name) = (&record, &keys, &name);
                    async move {
                        self.read_block(record, keys, name, b)
                            .await
                            .map(|p| (p, b.length))
                    }
                })
                .buffered(READ_AHEAD);
            while let Some(next) = blocks.next().await {
                let (mut plaintext, len) = next?;
                if let Some(f) = &filter {
                    let (kept, gone) = f.apply(&keys.id_key, &plaintext);
                    dropped[ti].merge(gone);
                    plaintext = kept;
                }
                sink.send(Bytes::from(plaintext))
                    .await
                    .db(|| format!("loading {name}"))?;
                loaded += len;
                if let Some(p) = &opts.progress {
                    p(loaded, total);
                }
            }
            sink.finish().await.db(|| format!("loading {name}"))?;
        }
        let mut checks = vec![];
        for (t, gone) in manifest.tables.iter().zip(&dropped) {
            let got = read_checksum(&tx, t, &literal, &keys.id_key).await?;
            let expected = Checksum::from_manifest(t.rows, &t.checksum)
                .ok_or_else(|| {
                    Error::corrupt(
                        "manifest",
                        format!("bad checksum of {}", t.def.display_name()),
                    )
                })?
                .minus(*gone);
            checks.push(TableCheck {
                table: t.def.display_name(),
                rows_expected: expected.rows,
                rows_restored: got.rows,
                checksum_ok: got == expected,
            });
        }
        if let Some(bad) = checks.iter().find(|c| !c.checksum_ok) {
            // Dropping the transaction rolls it back: the live rows stay as they were.
            return Err(Error::Mismatch {
                tenant: record.id.clone(),
                table: bad.table.clone(),
                reason: format!(
                    "after loading, {} rows read back (manifest: {}), checksum {}; nothing was changed",
                    bad.rows_restored,
                    bad.rows_expected,
                    if bad.rows_restored == bad.rows_expected { "differs" } else { "not compared" }
                ),
            });
        }
        for (t, names) in manifest.tables.iter().zip(&disabled) {
            load::enable_triggers(&tx, t, names).await?;
            load::advance_sequences(&tx, t).await?;
        }
        tx.commit().await.db(|| "committing the restore".into())?;
        tracing::info!(tenant = %record.id, snapshot = %snapshot, "restore committed");
        Ok(RestoreReport {
            tenant: record.id.clone(),
            snapshot,
            target: match &opts.target {
                None => "live".into(),
                Some(u) => crate::config::redact_url(u),
            },
            tables: checks,
            ok: true,
        })
    }
}

/// Points every table (and every join of a child table's owner path) at its mapped schema.
fn remap_schemas(manifest: &mut TenantManifest, map: &[(String, String)]) {
    let mapped = |s: &mut String| {
        if let Some((_, to)) = map.iter().find(|(from, _)| from == s) {
            *s = to.clone();
        }
    };
    for t in &mut manifest.tables {
        mapped(&mut t.def.schema);
        if let crate::source::postgres::catalog::Owner::Parent { path, .. } = &mut t.def.owner {
            path.iter_mut().for_each(|h| mapped(&mut h.ref_schema));
        }
        t.def
            .foreign_keys
            .iter_mut()
            .for_each(|f| mapped(&mut f.ref_schema));
    }
}

/// Reads a tenant's rows of a table through the backup query and checksums them.
pub async fn read_checksum(
    client: &tokio_postgres::Transaction<'_>,
    t: &TableManifest,
    literal: &str,
    id_key: &IdKey,
) -> Result<Checksum> {
    let sql = query::copy_out(&t.def, Some(literal), None);
    let stream = client
        .copy_out(&sql)
        .await
        .db(|| format!("reading back {}", t.def.display_name()))?;
    futures::pin_mut!(stream);
    let mut sum = Checksum::default();
    let mut carry: Vec<u8> = vec![];
    while let Some(chunk) = stream
        .try_next()
        .await
        .db(|| format!("reading back {}", t.def.display_name()))?
    {
        carry.extend_from_slice(&chunk);
        let end = carry.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in block::rows(&carry[..end]) {
            sum.add_row(id_key, copytext::split_first(line).1.unwrap_or_default());
        }
        carry.drain(..end);
    }
    Ok(sum)
}
