//! The packer: appends compressed blocks to per-tenant packs, seals each pack to the tenant's
//! data key as one age file, uploads it, and writes each tenant's manifest once every pack is
//! stored.

use super::stages::Sealed;
use super::{Cycle, TenantSummary};
use crate::archive::block::{self, Checksum};
use crate::archive::manifest::{
    self, BlockRef, PackRef, TableManifest, TenantManifest, MANIFEST_FORMAT,
};
use crate::config::BackupTuning;
use crate::error::{Error, Result};
use crate::inventory::SnapshotEntry;
use crate::store::{Lock, Store};
use crate::{layout, Vault};
use object_store::ObjectStoreExt;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// What the inventory learns of one tenant once the cycle commits.
pub(super) struct Committed {
    /// The tenant's index in the cycle.
    pub tenant: usize,
    pub summary: TenantSummary,
    pub new_blocks: Vec<BlockRef>,
    pub entry: SnapshotEntry,
    /// The sealed packs the snapshot's blocks live in.
    pub packs: Vec<PackRef>,
    /// The tenant had not changed since its latest version: nothing was written for it.
    pub unchanged: bool,
    /// Per table, the ids of the blocks the snapshot references.
    pub tables: Vec<crate::inventory::TableBlocks>,
}

/// Uploads running at once.
const PARALLEL_PUTS: usize = 4;

/// A pack being filled: its compressed blocks as they came (one contiguous buffer would grow
/// by doubling and hold up to twice its bytes).
#[derive(Default)]
struct PackBuf {
    blocks: Vec<Vec<u8>>,
    len: usize,
}

impl PackBuf {
    fn push(&mut self, block: Vec<u8>) {
        self.len += block.len();
        self.blocks.push(block);
    }
}

/// What the cycle has gathered of one tenant. Every tenant's is held until the cycle ends (a
/// pooled table holds rows of all of them), so each block is described once: 20,000 tenants
/// bring 100,000 blocks.
#[derive(Default)]
struct TenantAcc {
    /// Per table: its checksum and its blocks (indexes in `refs`).
    tables: Vec<(Checksum, Vec<u32>)>,
    /// Every distinct block the tenant's snapshot references.
    refs: Vec<BlockRef>,
    /// A hash of each block id in `refs` -> its index, to store equal blocks once.
    seen: HashMap<u64, u32>,
    /// The indexes in `refs` of the blocks this cycle writes.
    new: Vec<u32>,
    pack: PackBuf,
    seq: u32,
    reused: u64,
    /// Packs sealed so far.
    packs: Vec<PackRef>,
}

impl TenantAcc {
    /// Adds a block to `refs`; its index.
    fn remember(&mut self, hash: u64, r: BlockRef) -> u32 {
        let i = self.refs.len() as u32;
        self.refs.push(r);
        self.seen.entry(hash).or_insert(i);
        i
    }
}

struct Uploads {
    store: Store,
    /// Each task uploads one object of a tenant (its index comes back with the outcome); a
    /// pack's task seals it first and returns its [`PackRef`].
    running: JoinSet<(usize, Result<Option<PackRef>>)>,
    sealed: Vec<(usize, PackRef)>,
    /// Tenants one of whose uploads failed, with the first error: the cycle goes on without them.
    failed: Vec<(usize, Error)>,
}

impl Uploads {
    fn has_failed(&self, tenant: usize) -> bool {
        self.failed.iter().any(|(t, _)| *t == tenant)
    }

    fn fail(&mut self, tenant: usize, e: Error) {
        if !self.has_failed(tenant) {
            self.failed.push((tenant, e));
        }
    }

    async fn put(
        &mut self,
        tenant: usize,
        path: layout::Path,
        bytes: Vec<u8>,
        lock: &Lock,
    ) -> Result<()> {
        self.make_room().await?;
        let store = self.store.clone();
        let lock = lock.clone();
        self.running.spawn(async move {
            let r = store
                .put_archive_unsynced(&path, bytes, &lock)
                .await
                .map(|()| None);
            (tenant, r)
        });
        Ok(())
    }

    /// Seals a tenant's pack (compressed blocks) as one age file, then uploads it.
    async fn put_pack(
        &mut self,
        cycle: &Cycle,
        tenant: usize,
        name: String,
        plain: PackBuf,
    ) -> Result<()> {
        self.make_room().await?;
        let store = self.store.clone();
        let lock = cycle.locks[tenant].clone();
        let to = cycle.recipients[tenant].clone();
        let path = layout::pack(&cycle.tenants[tenant].path, &name);
        self.running.spawn(async move {
            let r = async {
                let (sealed, pack) =
                    tokio::task::spawn_blocking(move || block::seal_pack(&to, &name, plain.blocks))
                        .await
                        .map_err(|e| Error::Aborted(format!("sealing a pack: {e}")))??;
                store.put_archive_unsynced(&path, sealed, &lock).await?;
                Ok(Some(pack))
            }
            .await;
            (tenant, r)
        });
        Ok(())
    }

    async fn make_room(&mut self) -> Result<()> {
        while self.running.len() >= PARALLEL_PUTS {
            self.join_one().await?;
        }
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        if let Some(r) = self.running.join_next().await {
            match r.map_err(|e| Error::Aborted(format!("upload task: {e}")))? {
                (t, Ok(pack)) => self.sealed.extend(pack.map(|p| (t, p))),
                (t, Err(e)) => self.fail(t, e),
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        while !self.running.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }
}

/// Makes every pack the snapshot references retained at least as long as the snapshot itself:
/// packs written by earlier cycles and reused here get their retention date extended, and so
/// does the `standing` manifest of a tenant the cycle found unchanged. The inventory remembers
/// the date last set, so each object is extended at most once a day.
async fn extend_locks(
    vault: &Vault,
    manifest: &TenantManifest,
    standing: Option<layout::Path>,
    lock: &Lock,
) -> Result<()> {
    let Some(until) = lock.until.map(|u| u.unix_timestamp()) else {
        return Ok(());
    };
    let mut packs: Vec<&str> = manifest
        .tables
        .iter()
        .flat_map(|t| t.blocks.iter().map(|b| b.pack.as_str()))
        .collect();
    packs.sort_unstable();
    packs.dedup();
    let paths = packs
        .into_iter()
        .map(|p| {
            (
                layout::pack(&manifest.tenant_path, p),
                p.starts_with(&manifest.snapshot),
            )
        })
        .chain(standing.map(|m| (m, false)));
    for (path, written_now) in paths {
        retain_until(vault, &path, lock, until, written_now).await?;
    }
    Ok(())
}

/// Makes `path` retained until `until` (unix seconds) unless the inventory remembers a date at
/// least as late; an object `written_now` already carries the date and only gets remembered.
async fn retain_until(
    vault: &Vault,
    path: &layout::Path,
    lock: &Lock,
    until: i64,
    written_now: bool,
) -> Result<()> {
    let key = path.to_string();
    if vault
        .inventory()
        .lock_until(&key)?
        .is_some_and(|c| c >= until)
    {
        return Ok(());
    }
    if !written_now {
        vault.store().extend_lock(path, lock).await?;
    }
    vault.inventory().put_lock_until(&key, until)
}

/// Stores the cycle's table definitions that the store does not hold yet (manifests refer to
/// them by id), retained as long as the longest-retained archive of the cycle; definitions
/// stored by earlier cycles get that date extended, as reused packs do.
async fn store_table_defs(vault: &Vault, cycle: &Cycle) -> Result<()> {
    let lock = Lock {
        until: cycle.locks.iter().filter_map(|l| l.until).max(),
        legal_hold: false,
    };
    // Bridge tenants of one shape share their (relative) definitions: each is stored once.
    let mut done = std::collections::HashSet::new();
    let defs = cycle.defs.iter().map(|def| {
        let (id, json) = manifest::table_def(def);
        (layout::table_def(&id), json)
    });
    let ddls = cycle
        .ddls
        .iter()
        .map(|(id, json)| (layout::tenant_ddl(id), json.clone()));
    for (path, json) in defs.chain(ddls) {
        if !done.insert(path.clone()) {
            continue;
        }
        let written_now = match vault.store().objects().head(&path).await {
            Ok(_) => false,
            Err(object_store::Error::NotFound { .. }) => {
                vault.store().put_archive(&path, json, &lock).await?;
                true
            }
            Err(e) => {
                return Err(Error::Store {
                    context: format!("reading {path}"),
                    source: e,
                })
            }
        };
        if let Some(until) = lock.until.map(|u| u.unix_timestamp()) {
            retain_until(vault, &path, &lock, until, written_now).await?;
        }
    }
    Ok(())
}

/// Starts sealing and uploading a tenant's pending pack.
async fn flush(up: &mut Uploads, cycle: &Cycle, acc: &mut TenantAcc, t: usize) -> Result<()> {
    let name = pack_name(&cycle.snapshot, acc.seq);
    acc.seq += 1;
    up.put_pack(cycle, t, name, std::mem::take(&mut acc.pack))
        .await
}

/// The sealed packs a manifest's blocks live in: those of this cycle, and those of earlier
/// cycles that hold reused blocks (from the inventory).
fn manifest_packs(
    vault: &Vault,
    tenant_path: &str,
    own: &[PackRef],
    tables: &[TableManifest],
) -> Result<Vec<PackRef>> {
    let mut packs = own.to_vec();
    for b in tables.iter().flat_map(|t| &t.blocks) {
        if !b.in_sealed_pack() || packs.iter().any(|p| p.name == b.pack) {
            continue;
        }
        let p = vault
            .inventory()
            .pack(tenant_path, &b.pack)?
            .ok_or_else(|| {
                Error::corrupt(
                    layout::pack(tenant_path, &b.pack),
                    "the inventory does not know this sealed pack: run `tvault inventory rebuild`",
                )
            })?;
        packs.push(p);
    }
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(packs)
}

fn pack_name(snapshot: &str, seq: u32) -> String {
    format!("{snapshot}-{seq:05}")
}

pub(super) async fn run(
    vault: &Vault,
    cycle: &Arc<Cycle>,
    mut rx: mpsc::Receiver<Sealed>,
    tuning: &BackupTuning,
    abort: &AtomicBool,
) -> Result<(Vec<Committed>, Vec<(usize, Error)>)> {
    let mut accs: Vec<TenantAcc> = cycle
        .tables_of
        .iter()
        .map(|r| TenantAcc {
            tables: vec![Default::default(); r.len()],
            ..Default::default()
        })
        .collect();
    let mut up = Uploads {
        store: vault.store().clone(),
        running: JoinSet::new(),
        sealed: vec![],
        failed: vec![],
    };
    let mut pending = 0usize;
    let id_hash = std::hash::RandomState::new();
    while let Some(s) = rx.recv().await {
        vault.check_cancelled()?;
        let acc = &mut accs[s.tenant];
        if up.has_failed(s.tenant) {
            // Its upload failed: the rest of its blocks are dropped.
            pending -= acc.pack.len;
            acc.pack = PackBuf::default();
            continue;
        }
        let slot = s.table - cycle.tables_of[s.tenant].start;
        acc.tables[slot].0.merge(s.checksum);
        let hash = id_hash.hash_one(&s.id);
        // A hash collision only stores a block twice.
        let seen = acc
            .seen
            .get(&hash)
            .copied()
            .filter(|&i| acc.refs[i as usize].id == s.id);
        let index = match (seen, s.existing, s.bytes) {
            (Some(i), _, _) => {
                acc.reused += 1;
                i
            }
            (None, Some(r), _) => {
                acc.reused += 1;
                acc.remember(hash, r)
            }
            (None, None, Some(bytes)) => {
                let r = BlockRef {
                    id: s.id.clone(),
                    pack: pack_name(&cycle.snapshot, acc.seq),
                    offset: acc.pack.len as u64,
                    length: bytes.len() as u64,
                    raw_length: s.raw_length,
                    rows: s.checksum.rows,
                    sealed_hash: String::new(),
                };
                pending += bytes.len();
                acc.pack.push(bytes);
                let i = acc.remember(hash, r);
                acc.new.push(i);
                i
            }
            (None, None, None) => {
                return Err(Error::Aborted(format!("block {} has no bytes", s.id)))
            }
        };
        acc.tables[slot].1.push(index);
        if acc.pack.len >= tuning.pack_size {
            pending -= acc.pack.len;
            flush(&mut up, cycle, acc, s.tenant).await?;
        }
        if pending > tuning.memory_budget / 2 {
            let sizes = accs.iter().enumerate().map(|(t, a)| (t, a.pack.len));
            for t in crate::memory::spill_order(sizes, pending, tuning.memory_budget / 2) {
                pending -= accs[t].pack.len;
                flush(&mut up, cycle, &mut accs[t], t).await?;
            }
        }
    }
    for (t, acc) in accs.iter_mut().enumerate() {
        if acc.pack.len > 0 && !up.has_failed(t) {
            flush(&mut up, cycle, acc, t).await?;
        }
    }
    up.finish().await?;
    if abort.load(Ordering::Relaxed) {
        return Err(Error::Aborted("another part of the backup failed".into()));
    }
    // The packs are durable before any manifest refers to them.
    vault.store().sync().await?;
    crate::faults::crash_point("backup:packs");
    // The readers' buffers and the packs are gone: what follows needs its own memory.
    crate::memory::return_freed();
    for (t, pack) in std::mem::take(&mut up.sealed) {
        accs[t].packs.push(pack);
    }

    store_table_defs(vault, cycle).await?;
    // A snapshot is dated by when it was taken (the start of the cycle).
    let now = cycle.started;
    let mut out = Vec::with_capacity(accs.len());
    for (t, acc) in accs.into_iter().enumerate() {
        if up.has_failed(t) {
            continue;
        }
        let tenant = &cycle.tenants[t];
        let lock = &cycle.locks[t];
        let tables: Vec<TableManifest> = cycle.defs[cycle.tables_of[t].clone()]
            .iter()
            .zip(acc.tables)
            .map(|(def, (sum, indexes))| {
                let mut blocks: Vec<BlockRef> = indexes
                    .into_iter()
                    .map(|i| acc.refs[i as usize].clone())
                    .collect();
                // Readers of split tables deliver blocks in any order; rows need none.
                blocks.sort_by(|a, b| a.id.cmp(&b.id));
                TableManifest {
                    def: def.clone(),
                    rows: sum.rows,
                    checksum: sum.hex(),
                    blocks,
                }
            })
            .collect();
        let packs = manifest_packs(vault, &tenant.path, &acc.packs, &tables)?;
        let latest = vault.inventory().latest_snapshot(&tenant.path)?;
        let manifest = TenantManifest {
            previous: latest.as_ref().map(|e| e.snapshot.clone()),
            packs,
            format: MANIFEST_FORMAT,
            snapshot: cycle.snapshot.clone(),
            tenant: tenant.id.clone(),
            tenant_path: tenant.path.clone(),
            created: now,
            source: cycle.source.clone(),
            data_recipient: tenant.data_recipient.clone(),
            tables,
            ddl: Some(cycle.ddl_of[t].clone()),
        };
        // Unchanged since its latest version: no manifest, and nothing in the inventory; the
        // cycle's record says it covered the tenant, and the version it found stays retained
        // at least as long as this cycle's archives would be.
        let entry = SnapshotEntry::of(&manifest, now);
        let new_blocks: Vec<BlockRef> = acc
            .new
            .iter()
            .map(|&i| acc.refs[i as usize].clone())
            .collect();
        let unchanged = new_blocks.is_empty()
            && latest.as_ref().and_then(|e| e.content.as_ref()) == entry.content.as_ref();
        let extended = match (unchanged, &manifest.previous) {
            (true, Some(previous)) => {
                let standing = layout::manifest(&tenant.path, previous);
                extend_locks(vault, &manifest, Some(standing), lock).await
            }
            _ => {
                let body = manifest.stored();
                up.put(
                    t,
                    layout::manifest(&tenant.path, &cycle.snapshot),
                    body,
                    lock,
                )
                .await?;
                extend_locks(vault, &manifest, None, lock).await
            }
        };
        if let Err(e) = extended {
            up.fail(t, e);
            continue;
        }
        let summary = TenantSummary {
            unchanged,
            tenant: tenant.id.clone(),
            tables: manifest.tables.len() as u64,
            rows: manifest.rows(),
            blocks_new: new_blocks.len() as u64,
            blocks_reused: acc.reused,
            bytes_stored: new_blocks.iter().map(|b| b.length).sum(),
        };
        let tables = crate::inventory::table_blocks(&manifest);
        out.push(Committed {
            tenant: t,
            unchanged,
            summary,
            new_blocks,
            entry,
            tables,
            packs: manifest.packs,
        });
    }
    up.finish().await?;
    // The manifests are durable before the snapshot record refers to them.
    vault.store().sync().await?;
    crate::faults::crash_point("backup:manifests");
    out.retain(|c| !up.has_failed(c.tenant));
    Ok((out, up.failed))
}
