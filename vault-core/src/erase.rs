//! Erasing one person inside a tenant, in every kept snapshot.
//!
//! The blocks holding the person's rows (and, with `cascade`, the rows that reference them
//! through foreign keys) are rewritten without those rows; every other row stays byte-identical.
//! Manifests get the new blocks, row counts and checksums (the checksum is a sum of row hashes,
//! so removing rows is a subtraction). The old blocks' bytes are then overwritten with zeros in
//! their packs, and the erasure goes into the tenant's ledger, which every later backup, restore
//! and record restore applies. Needs the tenant's identity: only the data key can reseal blocks.

use crate::archive::block::{self, Checksum};
use crate::archive::keyindex::{self, KeyCodec, KeyList};
use crate::archive::manifest::{BlockRef, PackRef, TenantManifest};
use crate::audit::{actions, AuditDraft};
use crate::error::{Error, Result};
use crate::inventory::SnapshotEntry;
use crate::ledger::LedgerEntry;
use crate::records::{column_values, encode_key, BlockCache, KeyValues};
use crate::source::postgres::catalog::TableDef;
use crate::store::{Lock, LockedVersion};
use crate::tenant::{self, TenantRecord, Unlocked};
use crate::{layout, Vault};
use object_store::ObjectStoreExt;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use time::OffsetDateTime;

#[derive(Clone, Default)]
pub struct EraseOptions {
    pub tenant: String,
    pub table: String,
    pub keys: Vec<KeyValues>,
    pub cascade: bool,
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct SnapshotErasure {
    pub snapshot: String,
    /// Rows removed per table.
    pub rows_removed: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct EraseReport {
    pub tenant: String,
    pub dry_run: bool,
    pub snapshots: Vec<SnapshotErasure>,
    pub blocks_rewritten: u64,
    pub old_blocks_destroyed: u64,
    pub ledger_entries: u64,
    /// Overwritten object versions S3 object lock keeps until their retention ends (the erased
    /// rows are in them, encrypted): recorded, and deleted by a later `retention apply`.
    pub deferred: Vec<LockedVersion>,
}

/// A block rewritten without the erased rows.
struct Rewrite {
    table: String,
    plaintext: Vec<u8>,
    removed: Checksum,
    new: Option<BlockRef>,
}

impl Vault {
    pub async fn erase(
        &self,
        opts: &EraseOptions,
        identity: &keys::TenantIdentities,
    ) -> Result<EraseReport> {
        if opts.dry_run {
            let _tenant = self.reading_tenant(&opts.tenant).await;
            return self.erase_pass(opts, identity).await;
        }
        let _store = self.locks().store_shared().await;
        let _tenant = self.changing_tenant(&opts.tenant).await;
        // Success is recorded inside, naming the records by keyed hash; a refusal or a failure
        // here, without the keys (its message may quote them).
        let result = self
            .with_lease("erase", self.erase_pass(opts, identity))
            .await;
        drop((_store, _tenant));
        match result {
            Ok(r) => {
                // The erased records' keys must not survive in the inventory's old files.
                self.compact_inventory().await?;
                Ok(r)
            }
            Err(e) => {
                let draft = AuditDraft::new(actions::ERASURE)
                    .tenant(opts.tenant.clone())
                    .details(
                        serde_json::json!({ "table": opts.table, "records": opts.keys.len() }),
                    );
                self.audited_hiding(draft, Err(e), &crate::records::key_strings(&opts.keys))
                    .await
            }
        }
    }

    async fn erase_pass(
        &self,
        opts: &EraseOptions,
        identity: &keys::TenantIdentities,
    ) -> Result<EraseReport> {
        let record = self.tenant(&opts.tenant)?;
        self.refuse_if_held(&record).await?;
        let keys = self.unlock(&record, identity).await?;
        let mut targets: BTreeSet<(String, Vec<u8>)> = BTreeSet::new();
        let mut rewrites: HashMap<String, Rewrite> = HashMap::new();
        let mut plans = vec![];
        // Snapshots share blocks: each is fetched and decrypted once for all of them.
        let mut cache = BlockCache::new(self, &record, &keys);
        // Records already in the ledger that an interrupted erasure left in some blocks are
        // removed as well: any erasure of the tenant finishes the ones before it.
        let ledgered = self.ledger(&record).await?.erased();
        let empty = BTreeSet::new();
        for snap in self.inventory().snapshots(&record.path)? {
            let manifest = self.manifest(&record, &snap.snapshot).await?;
            let doomed = doomed_rows(&record, &manifest, opts, &mut cache).await?;
            let mut removed: BTreeMap<String, u64> = BTreeMap::new();
            for (ti, t) in manifest.tables.iter().enumerate() {
                let set = doomed.get(&ti).unwrap_or(&empty);
                let earlier = ledgered.for_table(&t.def);
                if set.is_empty() && earlier.is_none() {
                    continue;
                }
                let codec = codec(&t.def)?;
                let gone = |r: &[u8]| {
                    set.contains(&codec.row_key(r))
                        || earlier
                            .as_ref()
                            .is_some_and(|f| f.is_erased(&keys.id_key, r))
                };
                for b in &t.blocks {
                    let plain = cache.block(t, b).await?;
                    let hit = block::rows(&plain).filter(|r| gone(r)).count() as u64;
                    if hit == 0 {
                        continue;
                    }
                    *removed.entry(t.def.display_name()).or_default() += hit;
                    rewrites.entry(b.id.clone()).or_insert_with(|| {
                        let (kept, removed) = block::drop_rows(&plain, &keys.id_key, gone);
                        Rewrite {
                            table: t.def.display_name(),
                            plaintext: kept,
                            removed,
                            new: None,
                        }
                    });
                }
                targets.extend(set.iter().map(|k| (t.def.display_name(), k.clone())));
            }
            if !removed.is_empty() {
                plans.push((
                    manifest,
                    SnapshotErasure {
                        snapshot: snap.snapshot.clone(),
                        rows_removed: removed,
                    },
                ));
            }
        }
        let mut report = EraseReport {
            tenant: record.id.clone(),
            dry_run: opts.dry_run,
            snapshots: vec![],
            blocks_rewritten: rewrites.len() as u64,
            old_blocks_destroyed: 0,
            ledger_entries: targets.len() as u64,
            deferred: vec![],
        };
        if opts.dry_run {
            report.snapshots = plans.into_iter().map(|(_, s)| s).collect();
            return Ok(report);
        }
        // Intent first: the ledger (from now on backups, restores and exports drop the records)
        // and, durably in the inventory, the blocks to clear. An erasure stopped at any later
        // step is finished by the next erasure of the tenant.
        let now = OffsetDateTime::now_utc();
        let hashes: Vec<String> = targets
            .iter()
            .map(|(t, k)| keys.id_key.erasure_hash(t, k))
            .collect();
        let mut ledger = self.ledger(&record).await?;
        for ((table, _), key) in targets.iter().zip(&hashes) {
            if !ledger
                .entries
                .iter()
                .any(|e| &e.table == table && &e.key == key)
            {
                ledger.entries.push(LedgerEntry {
                    table: table.clone(),
                    key: key.clone(),
                    time: now,
                });
            }
        }
        ledger.format = 1;
        self.save_ledger(&record, &ledger).await?;
        let mut clearing = self.inventory().erasing(&record.path)?;
        clearing.extend(rewrites.keys().cloned());
        clearing.sort();
        clearing.dedup();
        self.inventory()
            .set_erasing(&record.path, &clearing)
            .await?;
        crate::faults::crash_point("erase:intent");
        // Rewritten objects are locked from now: never shorter than what they replace.
        let lock = self.archive_lock(&record, now).await?;
        let new_pack = self
            .write_rewrites(&record, &keys, &mut rewrites, &lock)
            .await?;
        crate::faults::crash_point("erase:new-pack");
        // The old blocks' packs, with those blocks zeroed, are prepared first so that every
        // manifest is written once, with the packs' final hashes; they are stored last. Blocks
        // an interrupted erasure left to clear are cleared now if no manifest uses them any more.
        let in_use = self.blocks_in_use(&record, &rewrites).await?;
        let to_clear: Vec<&String> = clearing
            .iter()
            .filter(|id| rewrites.contains_key(*id) || !in_use.contains(*id))
            .collect();
        let cleared = self
            .clear_blocks(&record, &keys, to_clear.into_iter())
            .await?;
        let resealed: Vec<PackRef> = cleared.iter().filter_map(|c| c.resealed.clone()).collect();
        let changed: Vec<PackRef> = new_pack
            .into_iter()
            .chain(resealed.iter().cloned())
            .collect();
        let mut updated = HashSet::new();
        for (manifest, summary) in plans {
            updated.insert(manifest.snapshot.clone());
            let old = self
                .apply_rewrites(&record, &keys, manifest, &rewrites, &changed, &lock)
                .await?;
            report.deferred.extend(old);
            report.snapshots.push(summary);
        }
        crate::faults::crash_point("erase:manifests");
        report.deferred.extend(
            self.update_pack_refs(&record, &resealed, &updated, &lock)
                .await?,
        );
        let (destroyed, old) = self.store_cleared(&record, cleared, &lock).await?;
        report.old_blocks_destroyed = destroyed;
        report.deferred.extend(old);
        crate::faults::crash_point("erase:packs");
        self.inventory().set_erasing(&record.path, &[]).await?;
        // The audit trail names the erased records only by their keyed hashes.
        let draft = AuditDraft::new(actions::ERASURE)
            .tenant(record.id.clone())
            .details(serde_json::json!({
                "table": opts.table, "records": hashes, "cascade": opts.cascade,
                "snapshots": report.snapshots.len(), "blocks_rewritten": report.blocks_rewritten,
            }));
        self.audit(draft).await?;
        Ok(report)
    }
}

impl Vault {
    /// Blocks some manifest of the tenant still references, other than those being rewritten
    /// (whose manifests this erasure updates).
    async fn blocks_in_use(
        &self,
        record: &TenantRecord,
        rewrites: &HashMap<String, Rewrite>,
    ) -> Result<HashSet<String>> {
        let mut used = HashSet::new();
        for snap in self.inventory().snapshots(&record.path)? {
            let m = self.manifest(record, &snap.snapshot).await?;
            used.extend(
                m.tables
                    .iter()
                    .flat_map(|t| t.blocks.iter().map(|b| b.id.clone()))
                    .filter(|id| !rewrites.contains_key(id)),
            );
        }
        Ok(used)
    }
}

/// Keys to remove in one snapshot, per table index: the named records and, with cascade, every
/// row that references a removed row (recursively).
async fn doomed_rows(
    record: &TenantRecord,
    manifest: &TenantManifest,
    opts: &EraseOptions,
    cache: &mut BlockCache<'_>,
) -> Result<BTreeMap<usize, BTreeSet<Vec<u8>>>> {
    let root = manifest
        .tables
        .iter()
        .position(|t| t.def.display_name() == opts.table)
        .ok_or_else(|| {
            Error::not_found(
                format!("table {} in snapshot {}", opts.table, manifest.snapshot),
                None,
            )
        })?;
    let mut doomed: BTreeMap<usize, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for k in &opts.keys {
        doomed.entry(root).or_default().insert(encode_key(
            &manifest.tables[root].def,
            &record.id,
            &cache.vault().config().tenant_column,
            k,
        )?);
    }
    if !opts.cascade {
        return Ok(doomed);
    }
    let mut frontier = vec![root];
    while let Some(pi) = frontier.pop() {
        let parent = &manifest.tables[pi];
        let pcodec = codec(&parent.def)?;
        let parent_rows: Vec<Vec<u8>> = cache
            .rows(parent)
            .await?
            .into_iter()
            .filter(|r| doomed[&pi].contains(&pcodec.row_key(r)))
            .collect();
        for (ci, child) in manifest.tables.iter().enumerate() {
            for fk in child
                .def
                .foreign_keys
                .iter()
                .filter(|f| f.ref_schema == parent.def.schema && f.ref_table == parent.def.name)
            {
                let wanted: Vec<Vec<Vec<u8>>> = parent_rows
                    .iter()
                    .map(|r| column_values(&parent.def, r, &fk.ref_columns))
                    .collect();
                for r in cache.rows(child).await? {
                    if !wanted.contains(&column_values(&child.def, &r, &fk.columns)) {
                        continue;
                    }
                    let Some(ccodec) = KeyCodec::for_table(&child.def) else {
                        return Err(Error::Invalid(format!(
                                    "rows of {} reference the erased record but the table has no primary key, \
                                     so the erasure could not be recorded for them; nothing was changed",
                                    child.def.display_name()
                                )));
                    };
                    if doomed.entry(ci).or_default().insert(ccodec.row_key(&r)) {
                        frontier.push(ci);
                    }
                }
            }
        }
    }
    Ok(doomed)
}

impl Vault {
    /// Seals the rewritten blocks into one new pack (one age file) and indexes it.
    async fn write_rewrites(
        &self,
        record: &TenantRecord,
        keys: &Unlocked,
        rewrites: &mut HashMap<String, Rewrite>,
        lock: &Lock,
    ) -> Result<Option<PackRef>> {
        let pack_name = format!(
            "{}-00000",
            layout::new_snapshot_id(OffsetDateTime::now_utc())
        );
        let mut pack = vec![];
        for rw in rewrites.values_mut().filter(|r| !r.plaintext.is_empty()) {
            let id = keys.id_key.block_id(&rw.table, &rw.plaintext);
            let compressed = block::compress(&rw.plaintext)?;
            rw.new = Some(BlockRef {
                id,
                pack: pack_name.clone(),
                offset: pack.len() as u64,
                length: compressed.len() as u64,
                raw_length: rw.plaintext.len() as u64,
                rows: block::rows(&rw.plaintext).count() as u64,
                sealed_hash: String::new(),
            });
            pack.extend_from_slice(&compressed);
        }
        if pack.is_empty() {
            return Ok(None);
        }
        let (sealed, pref) =
            block::seal_pack(&tenant::data_recipient(record)?, &pack_name, [&pack])?;
        self.put_archive(&layout::pack(&record.path, &pack_name), sealed, lock)
            .await?;
        self.inventory()
            .put_packs(&record.path, std::slice::from_ref(&pref))?;
        Ok(Some(pref))
    }

    /// Points one snapshot's manifest and inventory entries at the rewritten blocks;
    /// returns the old versions object lock keeps.
    async fn apply_rewrites(
        &self,
        record: &TenantRecord,
        keys: &Unlocked,
        mut m: TenantManifest,
        rewrites: &HashMap<String, Rewrite>,
        packs: &[PackRef],
        lock: &Lock,
    ) -> Result<Vec<LockedVersion>> {
        for t in &mut m.tables {
            let mut sum = Checksum::from_manifest(t.rows, &t.checksum).ok_or_else(|| {
                Error::corrupt(
                    "manifest",
                    format!("bad checksum of {}", t.def.display_name()),
                )
            })?;
            let mut blocks = vec![];
            for b in t.blocks.drain(..) {
                let Some(rw) = rewrites.get(&b.id) else {
                    blocks.push(b);
                    continue;
                };
                sum = sum.minus(rw.removed);
                if let Some(n) = &rw.new {
                    blocks.push(n.clone());
                    if let Some(codec) = KeyCodec::for_table(&t.def) {
                        let mut list = KeyList::default();
                        for r in block::rows(&rw.plaintext) {
                            list.push_row(&codec, r, keys.id_key.row_hash(r));
                        }
                        let (min, max, set) = keyindex::encode_list(&list);
                        self.inventory()
                            .put_key_set(&record.path, &n.id, &min, &max, &set)?;
                    }
                }
            }
            t.blocks = blocks;
            t.rows = sum.rows;
            t.checksum = sum.hex();
        }
        // Stores of format 2 kept a sealed key index per snapshot, with the keys of the erased
        // rows: it goes (a rebuild reads key sets from the blocks themselves).
        let mut old = vec![];
        let path = layout::key_index(&record.path, &m.snapshot);
        match self.store().objects().head(&path).await {
            Ok(_) => old.extend(self.delete_archive(&path, "erase").await?),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(Error::Store {
                    context: format!("reading {path}"),
                    source: e,
                })
            }
        }
        put_packs(&mut m, packs);
        old.extend(self.save_manifest(record, &mut m, lock).await?);
        self.inventory()
            .put_blocks(&record.path, m.tables.iter().flat_map(|t| &t.blocks))?;
        let time = self
            .inventory()
            .snapshots(&record.path)?
            .into_iter()
            .find(|s| s.snapshot == m.snapshot)
            .map_or(m.created, |s| s.time);
        let entry = SnapshotEntry::of(&m, time);
        let tables = crate::inventory::table_blocks(&m);
        self.inventory()
            .put_table_defs(m.tables.iter().map(|t| &t.def))?;
        self.inventory()
            .put_snapshot(&record.path, &entry, &tables)?;
        Ok(old)
    }

    /// The old blocks' packs with those blocks' bytes overwritten with zeros (offsets of the
    /// other blocks stay valid). A sealed pack is opened, its blocks' plaintext zeroed, and sealed
    /// again under a new file key (its hash changes).
    async fn clear_blocks<'a>(
        &self,
        record: &TenantRecord,
        keys: &Unlocked,
        ids: impl Iterator<Item = &'a String>,
    ) -> Result<Vec<Cleared>> {
        let mut by_pack: HashMap<String, Vec<BlockRef>> = HashMap::new();
        for id in ids {
            if let Some(b) = self.inventory().block(&record.path, id)? {
                by_pack.entry(b.pack.clone()).or_default().push(b);
            }
        }
        let mut out = vec![];
        for (pack, blocks) in by_pack {
            let path = layout::pack(&record.path, &pack);
            let sealed_pack = blocks.iter().any(BlockRef::in_sealed_pack);
            let mut bytes = self.get(&path).await?.to_vec();
            if sealed_pack {
                bytes = keys.open(&bytes).map_err(|e| Error::corrupt(&path, e))?;
            }
            let mut zeroed = 0;
            for b in &blocks {
                let (s, e) = (b.offset as usize, (b.offset + b.length) as usize);
                if let Some(range) = bytes.get_mut(s..e) {
                    range.fill(0);
                    zeroed += 1;
                }
            }
            let mut resealed = None;
            if sealed_pack {
                let to = tenant::data_recipient(record)?;
                let (sealed, pref) = block::seal_pack(&to, &pack, [&bytes])?;
                bytes = sealed;
                resealed = Some(pref);
            }
            out.push(Cleared {
                path,
                bytes,
                blocks,
                zeroed,
                resealed,
            });
        }
        Ok(out)
    }

    /// Stores the cleared packs and forgets the old blocks; on a versioned bucket the versions
    /// holding the old bytes are deleted too. Returns how many blocks were destroyed and the
    /// versions lock keeps.
    async fn store_cleared(
        &self,
        record: &TenantRecord,
        cleared: Vec<Cleared>,
        lock: &Lock,
    ) -> Result<(u64, Vec<LockedVersion>)> {
        let (mut n, mut old) = (0, vec![]);
        for c in cleared {
            self.leased()?;
            self.store().replace_archive(&c.path, c.bytes, lock).await?;
            old.extend(self.delete_old_versions(&c.path, "erase").await?);
            self.inventory()
                .remove_blocks(&record.path, c.blocks.iter().map(|b| b.id.as_str()))?;
            self.inventory()
                .put_packs(&record.path, c.resealed.as_slice())?;
            n += c.zeroed;
        }
        Ok((n, old))
    }

    /// Points the other manifests of the tenant that list a pack sealed again at its new hash.
    async fn update_pack_refs(
        &self,
        record: &TenantRecord,
        resealed: &[PackRef],
        done: &HashSet<String>,
        lock: &Lock,
    ) -> Result<Vec<LockedVersion>> {
        let mut old = vec![];
        if resealed.is_empty() {
            return Ok(old);
        }
        for snap in self.inventory().snapshots(&record.path)? {
            if done.contains(&snap.snapshot) {
                continue;
            }
            let mut m = self.manifest(record, &snap.snapshot).await?;
            if put_packs(&mut m, resealed) {
                old.extend(self.save_manifest(record, &mut m, lock).await?);
            }
        }
        Ok(old)
    }

    /// Writes a changed manifest (listing only the packs its blocks use); on a versioned bucket
    /// the earlier versions are deleted. Returns the versions lock keeps.
    async fn save_manifest(
        &self,
        record: &TenantRecord,
        m: &mut TenantManifest,
        lock: &Lock,
    ) -> Result<Vec<LockedVersion>> {
        let used: HashSet<&str> = m
            .tables
            .iter()
            .flat_map(|t| t.blocks.iter().map(|b| b.pack.as_str()))
            .collect();
        let mut packs = std::mem::take(&mut m.packs);
        packs.retain(|p| used.contains(p.name.as_str()));
        packs.sort_by(|a, b| a.name.cmp(&b.name));
        packs.dedup_by(|a, b| a.name == b.name);
        m.packs = packs;
        let path = layout::manifest(&record.path, &m.snapshot);
        self.put_archive(&path, m.stored(), lock).await?;
        self.delete_old_versions(&path, "erase").await
    }
}

/// A pack whose erased blocks are zeroed, ready to replace the stored one.
struct Cleared {
    path: layout::Path,
    bytes: Vec<u8>,
    blocks: Vec<BlockRef>,
    zeroed: u64,
    /// The pack's new reference, when it is a sealed pack (sealed again).
    resealed: Option<PackRef>,
}

/// Puts new pack references in a manifest: a pack sealed again replaces its old reference, a
/// new pack is added (`save_manifest` keeps only the packs the blocks use). Tells whether a
/// reference the manifest had changed.
fn put_packs(m: &mut TenantManifest, packs: &[PackRef]) -> bool {
    let mut changed = false;
    for new in packs {
        match m.packs.iter_mut().find(|p| p.name == new.name) {
            Some(p) => {
                changed |= p != new;
                *p = new.clone();
            }
            None => m.packs.push(new.clone()),
        }
    }
    changed
}

fn codec(def: &TableDef) -> Result<KeyCodec> {
    KeyCodec::for_table(def).ok_or_else(|| {
        Error::Invalid(format!(
            "{} has no primary key: its rows cannot be erased one by one",
            def.display_name()
        ))
    })
}
