//! The local inventory (sled): an index over the object store, rebuildable from it.
//!
//! Trees (see `docs/INVENTORY.md`):
//! - `tenants`:   tenant id -> [`TenantRecord`] (JSON)
//! - `id_keys`:   tenant path -> the tenant's 32-byte id key (also sealed in the store)
//! - `snapshots`: tenant path, 0, snapshot id -> [`SnapshotEntry`] (JSON)
//! - `blocks`:    tenant path, 0, block id -> where a stored block lives ([`BlockRef`] in the
//!   compact encoding of `codec`; JSON in inventories of version 2)
//! - `key_sets`:  tenant path, 0, block id -> min key, max key, compressed key set
//! - `packs`:     tenant path, 0, pack -> [`PackRef`] (JSON): length, payload start and hash of a
//!   sealed pack
//! - `cycles`:    snapshot id -> [`SnapshotRecord`] (JSON): committed cycles and whom they covered
//! - `snapshot_blocks`: tenant path, 0, snapshot -> per table its name, definition id and block
//!   ids (`codec`); inventories of version 2 kept one `snapshot_tables` entry per table, still read
//! - `table_defs`: definition id -> table definition JSON (shared by tenants and snapshots)
//!
//! One entry per block, never per row: a record lookup narrows blocks by their key range and
//! then searches the block's key set. No row data is stored beyond primary keys.

use crate::archive::block::IdKey;
use crate::archive::manifest::{BlockRef, PackRef, SnapshotRecord};
use crate::error::{Error, Result};
use crate::source::postgres::catalog::TableDef;
use crate::tenant::TenantRecord;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod codec;
mod rebuild;
pub use rebuild::RebuildReport;
use time::OffsetDateTime;

/// What the inventory knows of one tenant snapshot (enough to list it without the store).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotEntry {
    pub snapshot: String,
    pub tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub tables: u64,
    pub rows: u64,
    /// Sealed bytes referenced by the snapshot (shared blocks counted in full).
    pub bytes: u64,
    /// The version this one replaced (`TenantManifest::previous`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// `TenantManifest::content_digest`: a cycle that computes the same writes no manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The start of the last cycle that found the tenant unchanged since this snapshot (computed
    /// when listed, never stored).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub confirmed: Option<OffsetDateTime>,
}

/// A block's smallest key, largest key and encoded key set.
pub type BlockKeys = (Vec<u8>, Vec<u8>, sled::IVec);

/// A `snapshot_tables` entry of an inventory of version 2.
#[derive(Serialize, Deserialize)]
struct SnapshotTable {
    def: String,
    blocks: Vec<String>,
}

impl SnapshotEntry {
    /// The inventory's summary of a tenant manifest, dated `time` (when it was taken).
    pub fn of(m: &crate::archive::manifest::TenantManifest, time: OffsetDateTime) -> Self {
        SnapshotEntry {
            snapshot: m.snapshot.clone(),
            tenant: m.tenant.clone(),
            time,
            tables: m.tables.len() as u64,
            rows: m.rows(),
            bytes: m
                .tables
                .iter()
                .flat_map(|t| &t.blocks)
                .map(|b| b.length)
                .sum(),
            previous: m.previous.clone(),
            content: Some(m.content_digest()),
            confirmed: None,
        }
    }

    /// The time retention ages the snapshot by: the last time a cycle found its data current.
    pub fn current_until(&self) -> OffsetDateTime {
        self.confirmed.unwrap_or(self.time).max(self.time)
    }
}

/// Per table of a manifest: its name, the id of its definition and the ids of the blocks it
/// references (what the inventory keeps of a snapshot; the definition itself once, by id).
pub struct TableBlocks {
    pub table: String,
    pub def: String,
    pub blocks: Vec<String>,
}

pub fn table_blocks(m: &crate::archive::manifest::TenantManifest) -> Vec<TableBlocks> {
    m.tables
        .iter()
        .map(|t| TableBlocks {
            table: t.def.display_name(),
            def: crate::archive::manifest::table_def(&t.def).0,
            blocks: t.blocks.iter().map(|b| b.id.clone()).collect(),
        })
        .collect()
}

#[derive(Clone)]
pub struct Inventory {
    /// Counts the handles on this database, so that a compaction knows when the one it
    /// replaced is no longer used.
    handles: std::sync::Arc<()>,
    db: sled::Db,
    tenants: sled::Tree,
    id_keys: sled::Tree,
    snapshots: sled::Tree,
    blocks: sled::Tree,
    key_sets: sled::Tree,
    /// Sealed packs: `tenant path \0 pack` -> [`PackRef`] JSON.
    packs: sled::Tree,
    /// Committed cycles: `snapshot` -> [`SnapshotRecord`] JSON.
    cycles: sled::Tree,
    /// One entry per tenant snapshot: its tables and their blocks.
    snapshot_blocks: sled::Tree,
    /// Version 2's entry per snapshot and table, read when `snapshot_blocks` lacks the snapshot.
    snapshot_tables: sled::Tree,
    table_defs: sled::Tree,
    /// Object versions object lock kept from deletion: `object \0 version` -> [`Deferred`].
    /// Not cleared by a rebuild: the store cannot tell hidden locked versions apart.
    deferred: sled::Tree,
    /// tenant path -> JSON list of block ids an erasure has yet to clear from their packs
    /// (written before the erasure changes anything; see `Vault::erase`).
    erasing: sled::Tree,
    /// Retention date last set on an archive object: `object` -> unix seconds (big endian).
    locks: sled::Tree,
    /// MAC of the version of each authenticated object this vault wrote (or accepted) last:
    /// `object` -> MAC hex. A store that serves another version is refused (rollback).
    digests: sled::Tree,
    /// Bridge tenants by schema: schema name -> tenant id.
    schemas: sled::Tree,
}

/// A deletion object lock deferred; retried by `retention apply`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deferred {
    #[serde(flatten)]
    pub locked: crate::store::LockedVersion,
    /// What asked for the deletion (`retention`, `forget`, `erase`).
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

fn key3(a: &str, b: &str, c: &str) -> Vec<u8> {
    let mut k = key2(a, b);
    k.push(0);
    k.extend_from_slice(c.as_bytes());
    k
}

fn prefix(a: &str) -> Vec<u8> {
    key2(a, "")
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt(format!("inventory {what}"), e))
}

impl Inventory {
    /// Opens (or creates) the inventory; fails clearly when another process holds it.
    ///
    /// The state directory's own lock keeps other processes out, so a lock sled still holds
    /// is this process's last handle being let go (sled releases it from a background thread
    /// some time after the drop): that is waited for, up to a few seconds.
    pub fn open(dir: &Path) -> Result<Self> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match sled_config(dir).open() {
                Ok(db) => return Inventory::of(db),
                // sled wraps the failed file lock in an error of its own kind: match the text.
                Err(sled::Error::Io(io))
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    if std::time::Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    return Err(Error::Busy(format!(
                        "the vault at {} is in use by another tvault process (a backup, restore or \
                         prune); try again when it has finished",
                        dir.parent().unwrap_or(dir).display()
                    )));
                }
                Err(other) => return Err(Error::Inventory(other)),
            }
        }
    }

    /// The inventory of an open database.
    fn of(db: sled::Db) -> Result<Self> {
        Ok(Inventory {
            handles: Default::default(),
            tenants: db.open_tree("tenants")?,
            id_keys: db.open_tree("id_keys")?,
            snapshots: db.open_tree("snapshots")?,
            blocks: db.open_tree("blocks")?,
            key_sets: db.open_tree("key_sets")?,
            packs: db.open_tree("packs")?,
            cycles: db.open_tree("cycles")?,
            snapshot_blocks: db.open_tree("snapshot_blocks")?,
            snapshot_tables: db.open_tree("snapshot_tables")?,
            table_defs: db.open_tree("table_defs")?,
            deferred: db.open_tree("deferred")?,
            erasing: db.open_tree("erasing")?,
            locks: db.open_tree("locks")?,
            digests: db.open_tree("digests")?,
            schemas: db.open_tree("schemas")?,
            db,
        })
    }

    /// The tree of authenticated objects' MACs (kept by the store layer).
    pub fn digests(&self) -> sled::Tree {
        self.digests.clone()
    }

    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Forgets one tenant snapshot (its entry and its per-table block lists).
    pub fn remove_snapshot(&self, tenant_path: &str, snapshot: &str) -> Result<()> {
        self.snapshots.remove(key2(tenant_path, snapshot))?;
        self.snapshot_blocks.remove(key2(tenant_path, snapshot))?;
        let mut prefix = key2(tenant_path, snapshot);
        prefix.push(0);
        for k in self.snapshot_tables.scan_prefix(prefix).keys() {
            self.snapshot_tables.remove(k?)?;
        }
        Ok(())
    }

    /// Remembers sealed packs (from a manifest: the backup that wrote them, a rebuild, an erasure
    /// that sealed them again).
    pub fn put_packs(&self, tenant_path: &str, packs: &[PackRef]) -> Result<()> {
        for p in packs {
            self.packs.insert(key2(tenant_path, &p.name), json(p))?;
        }
        Ok(())
    }

    /// A sealed pack of a tenant, if known.
    pub fn pack(&self, tenant_path: &str, name: &str) -> Result<Option<PackRef>> {
        match self.packs.get(key2(tenant_path, name))? {
            Some(v) => Ok(Some(parse(&v, "pack")?)),
            None => Ok(None),
        }
    }

    /// Forgets packs once they are deleted.
    pub fn remove_packs<'a>(
        &self,
        tenant_path: &str,
        names: impl Iterator<Item = &'a str>,
    ) -> Result<()> {
        for n in names {
            self.packs.remove(key2(tenant_path, n))?;
        }
        Ok(())
    }

    /// Remembers a committed cycle (its snapshot record).
    pub fn put_cycle(&self, record: &SnapshotRecord) -> Result<()> {
        self.cycles
            .insert(record.snapshot.as_bytes(), json(record))?;
        Ok(())
    }

    /// Every committed cycle, oldest first.
    pub fn cycles(&self) -> Result<Vec<SnapshotRecord>> {
        self.cycles
            .iter()
            .values()
            .map(|v| parse(&v?, "cycle"))
            .collect()
    }

    /// Every stored block of a tenant.
    pub fn blocks_of(&self, tenant_path: &str) -> Result<Vec<BlockRef>> {
        let prefix = prefix(tenant_path);
        self.blocks
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let id = std::str::from_utf8(&k[prefix.len()..])
                    .map_err(|e| Error::corrupt("inventory block", e))?;
                codec::decode_block(id, &v)
            })
            .collect()
    }

    /// Forgets blocks (their locations and key sets) once their packs are deleted.
    pub fn remove_blocks<'a>(
        &self,
        tenant_path: &str,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<()> {
        for id in ids {
            self.blocks.remove(key2(tenant_path, id))?;
            self.key_sets.remove(key2(tenant_path, id))?;
        }
        Ok(())
    }

    /// Removes everything the inventory holds about a tenant.
    pub fn remove_tenant(&self, t: &TenantRecord) -> Result<()> {
        for tree in [
            &self.snapshots,
            &self.blocks,
            &self.packs,
            &self.key_sets,
            &self.snapshot_blocks,
            &self.snapshot_tables,
        ] {
            for k in tree.scan_prefix(prefix(&t.path)).keys() {
                tree.remove(k?)?;
            }
        }
        self.id_keys.remove(t.path.as_bytes())?;
        self.tenants.remove(t.id.as_bytes())?;
        if let Some(schema) = t.placement.schema() {
            self.schemas.remove(schema.as_bytes())?;
        }
        Ok(())
    }

    /// Empties every tree (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        for tree in [
            &self.tenants,
            &self.id_keys,
            &self.snapshots,
            &self.blocks,
            &self.packs,
            &self.cycles,
            &self.key_sets,
            &self.snapshot_blocks,
            &self.snapshot_tables,
            &self.table_defs,
            &self.locks,
            &self.digests,
            &self.schemas,
        ] {
            tree.clear()?;
        }
        Ok(())
    }

    /// Blocks an interrupted erasure of the tenant had still to clear.
    pub fn erasing(&self, tenant_path: &str) -> Result<Vec<String>> {
        match self.erasing.get(tenant_path)? {
            Some(v) => parse(&v, "pending erasure"),
            None => Ok(vec![]),
        }
    }

    /// Records (durably) the blocks an erasure is about to clear, with any still pending.
    pub async fn set_erasing(&self, tenant_path: &str, blocks: &[String]) -> Result<()> {
        match blocks.is_empty() {
            true => self.erasing.remove(tenant_path)?,
            false => self.erasing.insert(tenant_path, json(&blocks))?,
        };
        self.flush().await
    }

    pub fn put_deferred(&self, l: &crate::store::LockedVersion, reason: &str) -> Result<()> {
        let d = Deferred {
            locked: l.clone(),
            reason: reason.to_string(),
            since: OffsetDateTime::now_utc(),
        };
        let key = key2(&l.object, l.version.as_deref().unwrap_or(""));
        self.deferred.insert(key, json(&d))?;
        Ok(())
    }

    pub fn deferred(&self) -> Result<Vec<Deferred>> {
        self.deferred
            .iter()
            .values()
            .map(|v| parse(&v?, "deferred deletion"))
            .collect()
    }

    pub fn remove_deferred(&self, object: &str, version: Option<&str>) -> Result<()> {
        self.deferred.remove(key2(object, version.unwrap_or("")))?;
        Ok(())
    }

    /// The retention date last set on an archive object.
    pub fn lock_until(&self, object: &str) -> Result<Option<i64>> {
        Ok(self
            .locks
            .get(object.as_bytes())?
            .and_then(|v| Some(i64::from_be_bytes(v.as_ref().try_into().ok()?))))
    }

    pub fn put_lock_until(&self, object: &str, until: i64) -> Result<()> {
        self.locks.insert(object.as_bytes(), &until.to_be_bytes())?;
        Ok(())
    }

    /// Records a tenant; its id key only when known (a rebuild without the tenant's identity).
    pub fn put_tenant_record(&self, t: &TenantRecord, id_key: Option<&IdKey>) -> Result<()> {
        self.tenants.insert(t.id.as_bytes(), json(t))?;
        if let Some(schema) = t.placement.schema() {
            self.schemas.insert(schema.as_bytes(), t.id.as_bytes())?;
        }
        if let Some(k) = id_key {
            self.id_keys.insert(t.path.as_bytes(), &k.as_bytes()[..])?;
        }
        Ok(())
    }

    pub fn put_tenant(&self, t: &TenantRecord, id_key: &IdKey) -> Result<()> {
        self.put_tenant_record(t, Some(id_key))
    }

    /// Forgets that a tenant's schema is its own (before it is placed elsewhere).
    pub fn forget_schema(&self, t: &TenantRecord) -> Result<()> {
        if let Some(schema) = t.placement.schema() {
            self.schemas.remove(schema.as_bytes())?;
        }
        Ok(())
    }

    /// Every bridge tenant's own schema.
    pub fn bridge_schemas(&self) -> Result<std::collections::BTreeSet<String>> {
        self.schemas
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// The tenant whose own schema `schema` is (bridge model).
    pub fn schema_tenant(&self, schema: &str) -> Result<Option<String>> {
        Ok(self
            .schemas
            .get(schema.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn tenant(&self, id: &str) -> Result<Option<TenantRecord>> {
        self.tenants
            .get(id.as_bytes())?
            .map(|v| parse(&v, "tenant"))
            .transpose()
    }

    pub fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.tenants
            .iter()
            .values()
            .map(|v| parse(&v?, "tenant"))
            .collect()
    }

    pub fn id_key(&self, tenant_path: &str) -> Result<Option<IdKey>> {
        Ok(self.id_keys.get(tenant_path.as_bytes())?.and_then(|v| {
            let raw: [u8; 32] = v.as_ref().try_into().ok()?;
            Some(IdKey::from_bytes(raw))
        }))
    }

    /// Keeps table definitions (by id) that snapshots refer to.
    pub fn put_table_defs<'a>(&self, defs: impl Iterator<Item = &'a TableDef>) -> Result<()> {
        for def in defs {
            let (id, json) = crate::archive::manifest::table_def(def);
            if !self.table_defs.contains_key(id.as_bytes())? {
                self.table_defs.insert(id.as_bytes(), json)?;
            }
        }
        Ok(())
    }

    /// Records a committed tenant snapshot and, per table, the ids of the blocks it references
    /// (what `find` walks instead of reading manifests). The definitions must be known
    /// ([`Self::put_table_defs`]).
    pub fn put_snapshot(
        &self,
        tenant_path: &str,
        e: &SnapshotEntry,
        tables: &[TableBlocks],
    ) -> Result<()> {
        self.snapshot_blocks
            .insert(key2(tenant_path, &e.snapshot), codec::encode_tables(tables))?;
        self.snapshots
            .insert(key2(tenant_path, &e.snapshot), json(e))?;
        Ok(())
    }

    /// Block ids of `table` (`schema.table`) in a tenant snapshot.
    pub fn snapshot_blocks(
        &self,
        tenant_path: &str,
        snapshot: &str,
        table: &str,
    ) -> Result<Option<(TableDef, Vec<String>)>> {
        let found = match self.snapshot_blocks.get(key2(tenant_path, snapshot))? {
            Some(v) => codec::decode_table(&v, table)?,
            None => match self
                .snapshot_tables
                .get(key3(tenant_path, snapshot, table))?
            {
                Some(v) => {
                    let entry: SnapshotTable = parse(&v, "snapshot table")?;
                    Some((entry.def, entry.blocks))
                }
                None => None,
            },
        };
        let Some((def_id, blocks)) = found else {
            return Ok(None);
        };
        let def = self.table_defs.get(def_id.as_bytes())?.ok_or_else(|| {
            Error::corrupt("inventory", format!("table definition {def_id} is missing"))
        })?;
        Ok(Some((parse(&def, "table definition")?, blocks)))
    }

    /// A table definition by id (see `manifest::table_def`), if known.
    pub fn table_def(&self, id: &str) -> Result<Option<TableDef>> {
        match self.table_defs.get(id.as_bytes())? {
            Some(v) => Ok(Some(parse(&v, "table definition")?)),
            None => Ok(None),
        }
    }

    /// Remembers a table definition read from the store (its id already checked).
    pub fn put_table_def(&self, id: &str, json: &[u8]) -> Result<()> {
        self.table_defs.insert(id.as_bytes(), json)?;
        Ok(())
    }

    /// A block's key range and decoded key set, if indexed.
    pub fn key_set(&self, tenant_path: &str, block_id: &str) -> Result<Option<BlockKeys>> {
        let Some(v) = self.key_sets.get(key2(tenant_path, block_id))? else {
            return Ok(None);
        };
        let bad = || Error::corrupt("inventory key set", "truncated");
        let mut parts = vec![];
        let mut i = 0;
        for _ in 0..2 {
            let n = v
                .get(i..i + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
                .ok_or_else(bad)?;
            parts.push(v.get(i + 4..i + 4 + n).ok_or_else(bad)?.to_vec());
            i += 4 + n;
        }
        let set = v.subslice(i, v.len() - i);
        let max = parts.pop().unwrap_or_default();
        let min = parts.pop().unwrap_or_default();
        Ok(Some((min, max, set)))
    }

    /// Snapshots of a tenant, oldest first (by the time they were taken: two cycles may start
    /// in the same second, and ids only resolve seconds).
    pub fn snapshots(&self, tenant_path: &str) -> Result<Vec<SnapshotEntry>> {
        let mut list = self
            .snapshots
            .scan_prefix(prefix(tenant_path))
            .values()
            .map(|v| parse(&v?, "snapshot"))
            .collect::<Result<Vec<SnapshotEntry>>>()?;
        list.sort_by(|a, b| (a.time, &a.snapshot).cmp(&(b.time, &b.snapshot)));
        Ok(list)
    }

    /// A tenant's newest snapshot (by time: two cycles in one second have ids in random order).
    pub fn latest_snapshot(&self, tenant_path: &str) -> Result<Option<SnapshotEntry>> {
        Ok(self.snapshots(tenant_path)?.pop())
    }

    pub fn block(&self, tenant_path: &str, block_id: &str) -> Result<Option<BlockRef>> {
        self.blocks
            .get(key2(tenant_path, block_id))?
            .map(|v| codec::decode_block(block_id, &v))
            .transpose()
    }

    pub fn put_blocks<'a>(
        &self,
        tenant_path: &str,
        refs: impl Iterator<Item = &'a BlockRef>,
    ) -> Result<()> {
        let mut batch = sled::Batch::default();
        for r in refs {
            batch.insert(key2(tenant_path, &r.id), codec::encode_block(r));
        }
        self.blocks.apply_batch(batch)?;
        Ok(())
    }

    /// Stores a block's key set with its key range.
    pub fn put_key_set(
        &self,
        tenant_path: &str,
        block_id: &str,
        min: &[u8],
        max: &[u8],
        set: &[u8],
    ) -> Result<()> {
        let mut v = Vec::with_capacity(8 + min.len() + max.len() + set.len());
        for part in [min, max] {
            v.extend_from_slice(&(part.len() as u32).to_le_bytes());
            v.extend_from_slice(part);
        }
        v.extend_from_slice(set);
        self.key_sets.insert(key2(tenant_path, block_id), v)?;
        Ok(())
    }

    pub fn has_key_set(&self, tenant_path: &str, block_id: &str) -> Result<bool> {
        Ok(self.key_sets.contains_key(key2(tenant_path, block_id))?)
    }
}

/// sled caches 1 GiB by default; the index is small and read by key.
fn sled_config(dir: &Path) -> sled::Config {
    sled::Config::new().path(dir).cache_capacity(16 << 20)
}

/// The name of the file in the state directory that names the inventory directory in use.
const CURRENT: &str = "inventory.current";

/// The inventory directory of a state directory: the one `inventory.current` names, else
/// `inventory` (state directories made before compaction moved it).
pub fn current_dir(state: &Path) -> Result<PathBuf> {
    match std::fs::read_to_string(state.join(CURRENT)) {
        Ok(name) => {
            let name = name.trim();
            match name.starts_with("inventory-") && !name.contains('/') {
                true => Ok(state.join(name)),
                false => Err(Error::corrupt(
                    CURRENT,
                    "does not name an inventory directory",
                )),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(state.join("inventory")),
        Err(e) => Err(Error::Io {
            context: format!("reading {}", state.join(CURRENT).display()),
            source: e,
        }),
    }
}

impl Inventory {
    /// Copies every entry into a fresh database in a new directory of `state`, named
    /// (durably) as the one in use from now on; returns it and its directory.
    pub fn copy_to_fresh(&self, state: &Path) -> Result<(Inventory, PathBuf)> {
        let mut id = [0u8; 8];
        rand::fill(&mut id);
        let name = format!("inventory-{}", hex::encode(id));
        let fresh = state.join(&name);
        // Kept open, not reopened: sled lets go of a database's lock only some time after the
        // last handle is dropped.
        let new = sled_config(&fresh).open()?;
        new.import(self.db.export());
        new.flush()?;
        let inv = Inventory::of(new)?;
        crate::vault::write_file_atomic(&state.join(CURRENT), name.as_bytes())?;
        Ok((inv, fresh))
    }

    /// True while another handle than this one uses the database.
    pub fn shared(&self) -> bool {
        std::sync::Arc::strong_count(&self.handles) > 1
    }
}

/// Destroys inventory directories of `state` other than `current`: every file is overwritten
/// with zeros and synced before it is removed, so that what an erasure or a forgotten tenant
/// removed is not left in freed disk blocks either. Leftovers of an interrupted compaction
/// (or of an older tvault's) are destroyed the same way.
pub fn destroy_others(state: &Path, current: &Path) -> Result<()> {
    let io = |p: &Path, e: std::io::Error| Error::Io {
        context: format!("destroying the old inventory {}", p.display()),
        source: e,
    };
    let Ok(entries) = std::fs::read_dir(state) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path == current || !name.starts_with("inventory") || name == CURRENT || !path.is_dir() {
            continue;
        }
        for f in walk_files(&path) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&f)
                .map_err(|e| io(&f, e))?;
            crate::store::zero_file(&file).map_err(|e| io(&f, e))?;
        }
        std::fs::remove_dir_all(&path).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            match p.is_dir() {
                true => stack.push(p),
                false => out.push(p),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::postgres::catalog::Owner;

    fn def() -> TableDef {
        TableDef {
            schema: "app".into(),
            name: "t".into(),
            columns: vec![],
            primary_key: vec![],
            owner: Owner::Schema,
            foreign_keys: vec![],
            rls: false,
        }
    }

    fn block(id: &str) -> BlockRef {
        BlockRef {
            id: id.into(),
            pack: "20261201T000000Z-abcdef-00000".into(),
            offset: 7,
            length: 100,
            raw_length: 300,
            rows: 3,
            sealed_hash: String::new(),
        }
    }

    /// Entries an inventory of version 2 wrote (JSON, one per snapshot and table) read as before,
    /// beside entries of version 3, and go with their snapshot or tenant.
    #[test]
    fn version_2_entries_read_beside_version_3_ones() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Inventory::open(dir.path()).unwrap();
        inv.put_table_defs(std::iter::once(&def())).unwrap();
        let def_id = crate::archive::manifest::table_def(&def()).0;
        let (old, new) = ("aa".repeat(24), "bb".repeat(24));
        // Version 2: JSON block, one snapshot_tables entry.
        inv.blocks
            .insert(key2("tp", &old), json(&block(&old)))
            .unwrap();
        let entry = SnapshotTable {
            def: def_id.clone(),
            blocks: vec![old.clone()],
        };
        inv.snapshot_tables
            .insert(key3("tp", "s1", "app.t"), json(&entry))
            .unwrap();
        // Version 3.
        inv.put_blocks("tp", std::iter::once(&block(&new))).unwrap();
        let e = SnapshotEntry {
            snapshot: "s2".into(),
            tenant: "x".into(),
            time: OffsetDateTime::now_utc(),
            tables: 1,
            rows: 3,
            bytes: 100,
            previous: None,
            content: None,
            confirmed: None,
        };
        let tables = [TableBlocks {
            table: "app.t".into(),
            def: def_id,
            blocks: vec![old.clone(), new.clone()],
        }];
        inv.put_snapshot("tp", &e, &tables).unwrap();

        let (d, ids) = inv.snapshot_blocks("tp", "s1", "app.t").unwrap().unwrap();
        assert_eq!((d, ids), (def(), vec![old.clone()]));
        let (_, ids) = inv.snapshot_blocks("tp", "s2", "app.t").unwrap().unwrap();
        assert_eq!(ids, vec![old.clone(), new.clone()]);
        assert!(inv.snapshot_blocks("tp", "s2", "app.u").unwrap().is_none());
        assert_eq!(inv.block("tp", &old).unwrap().unwrap().offset, 7);
        assert_eq!(inv.block("tp", &new).unwrap().unwrap().id, new);
        let mut all: Vec<String> = inv
            .blocks_of("tp")
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        all.sort();
        assert_eq!(all, vec![old.clone(), new.clone()]);

        inv.remove_snapshot("tp", "s1").unwrap();
        assert!(inv.snapshot_blocks("tp", "s1", "app.t").unwrap().is_none());
        inv.remove_snapshot("tp", "s2").unwrap();
        assert!(inv.snapshot_blocks("tp", "s2", "app.t").unwrap().is_none());
        assert!(inv.snapshot_blocks.is_empty() && inv.snapshot_tables.is_empty());
    }
}
