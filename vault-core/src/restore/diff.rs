//! The differential part of a restore: compare one table's snapshot rows with the tenant's live
//! rows and stage only what differs.
//!
//! Live rows are read through the backup's own query, so a row that did not change since the
//! snapshot has exactly the bytes, and therefore the keyed row hash, it had at backup time. The
//! live side is held as primary-key text -> row hash (about 50 bytes a row); the snapshot's
//! blocks stream past it: equal hashes are left alone, differing ones staged as updates, missing
//! keys as inserts, and live keys the snapshot lacks as deletes. When the live checksum already
//! equals the manifest's, the table is unchanged and no block is read at all.

use crate::archive::block::{self, Checksum};
use crate::archive::manifest::TableManifest;
use crate::copytext;
use crate::error::{DbContext, Result};
use crate::ledger::Erased;
use crate::source::postgres::apply::{Keys, Mode, Session, TableChange};
use crate::source::postgres::catalog::{Plan, TableDef};
use crate::tenant::{TenantRecord, Unlocked};
use crate::Vault;
use bytes::Bytes;
use futures::{SinkExt, StreamExt, TryStreamExt};
use std::collections::HashMap;

/// Blocks fetched and opened ahead of the COPY that consumes them.
const READ_AHEAD: usize = 4;

/// What a restore of one tenant shares across its tables.
pub(super) struct Ctx<'a, 's, 't> {
    pub vault: &'a Vault,
    pub record: &'a TenantRecord,
    pub keys: &'a Unlocked,
    pub session: &'a Session<'s, 't>,
    pub literal: &'a str,
    pub erased: &'a Erased,
    pub plan: &'a Plan,
    /// Called with the sealed bytes of each block read or found unchanged, for progress.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// A staged table with what its rows must add up to.
pub(super) struct Staged {
    pub change: TableChange,
    /// The tenant's live rows before the restore.
    pub live: Checksum,
    /// The snapshot's rows, less those the erasure ledger names.
    pub expected: Checksum,
}

/// The tenant's live rows of a table: key text -> row hash (keyed tables), and their checksum.
struct Live {
    rows: HashMap<Vec<u8>, u128>,
    checksum: Checksum,
}

async fn read_live(ctx: &Ctx<'_, '_, '_>, def: &TableDef, keyed: bool) -> Result<Live> {
    let stream = ctx.session.live_rows(def, ctx.literal).await?;
    futures::pin_mut!(stream);
    let positions = def.key_positions();
    let mut live = Live {
        rows: HashMap::new(),
        checksum: Checksum::default(),
    };
    let mut carry: Vec<u8> = vec![];
    while let Some(chunk) = stream
        .try_next()
        .await
        .db(|| format!("reading the live rows of {}", def.display_name()))?
    {
        carry.extend_from_slice(&chunk);
        let end = carry.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in block::rows(&carry[..end]) {
            let row = copytext::split_first(line).1.unwrap_or_default();
            let hash = ctx.keys.id_key.row_hash(row);
            live.checksum.add_hash(hash);
            if keyed {
                let mut key = Vec::with_capacity(16);
                copytext::pick(row, &positions, &mut key);
                live.rows.insert(key, hash);
            }
        }
        carry.drain(..end);
    }
    Ok(live)
}

/// Compares one table and stages its changes (see the module docs).
pub(super) async fn stage_table(
    ctx: &Ctx<'_, '_, '_>,
    m: &TableManifest,
    def: TableDef,
    slot: usize,
) -> Result<Staged> {
    let mode = if def.primary_key.is_empty() {
        Mode::Replace
    } else {
        Mode::Keyed
    };
    let mut live = read_live(ctx, &def, mode == Mode::Keyed).await?;
    let manifest_sum = Checksum::from_manifest(m.rows, &m.checksum).ok_or_else(|| {
        crate::Error::corrupt(
            "manifest",
            format!("bad checksum of {}", m.def.display_name()),
        )
    })?;
    let filter = ctx.erased.for_table(&m.def);
    let mut change = TableChange {
        def,
        slot,
        mode,
        inserts: 0,
        updates: 0,
        deletes: 0,
        unchanged: 0,
    };
    if filter.is_none() && live.checksum == manifest_sum {
        change.unchanged = m.rows;
        (ctx.progress)(m.blocks.iter().map(|b| b.length).sum());
        return Ok(Staged {
            change,
            live: live.checksum,
            expected: manifest_sum,
        });
    }

    ctx.session.stage(&change, ctx.plan).await?;
    let sink = ctx.session.rows_sink(&change).await?;
    futures::pin_mut!(sink);
    let name = change.def.display_name();
    let positions = change.def.key_positions();
    let mut gone = Checksum::default();
    let mut snapshot = Checksum::default();
    let mut update_keys: Vec<u8> = vec![];
    let mut blocks = futures::stream::iter(m.blocks.iter())
        .map(|b| async move {
            let plain = ctx
                .vault
                .read_block(ctx.record, ctx.keys, &m.def.display_name(), b)
                .await?;
            Ok::<_, crate::Error>((plain, b.length))
        })
        .buffered(READ_AHEAD);
    let mut key = Vec::with_capacity(32);
    while let Some(next) = blocks.next().await {
        let (mut plain, sealed_len) = next?;
        if let Some(f) = &filter {
            let (kept, dropped) = f.apply(&ctx.keys.id_key, &plain);
            gone.merge(dropped);
            plain = kept;
        }
        let mut out = Vec::with_capacity(plain.len());
        for row in block::rows(&plain) {
            let hash = ctx.keys.id_key.row_hash(row);
            snapshot.add_hash(hash);
            let write = match mode {
                Mode::Replace => true,
                Mode::Keyed => {
                    key.clear();
                    copytext::pick(row, &positions, &mut key);
                    match live.rows.remove(&key) {
                        Some(h) if h == hash => {
                            change.unchanged += 1;
                            false
                        }
                        Some(_) => {
                            change.updates += 1;
                            update_keys.extend_from_slice(&key);
                            update_keys.push(b'\n');
                            true
                        }
                        None => {
                            change.inserts += 1;
                            true
                        }
                    }
                }
            };
            if write {
                out.extend_from_slice(row);
                out.push(b'\n');
            }
        }
        if !out.is_empty() {
            sink.send(Bytes::from(out))
                .await
                .db(|| format!("staging rows of {name}"))?;
        }
        (ctx.progress)(sealed_len);
    }
    sink.finish()
        .await
        .db(|| format!("staging rows of {name}"))?;
    match mode {
        Mode::Keyed => {
            change.deletes = live.rows.len() as u64;
            let mut delete_keys = Vec::with_capacity(live.rows.len() * 16);
            for k in std::mem::take(&mut live.rows).into_keys() {
                delete_keys.extend_from_slice(&k);
                delete_keys.push(b'\n');
            }
            ctx.session
                .load_keys(&change, Keys::Update, update_keys)
                .await?;
            ctx.session
                .load_keys(&change, Keys::Delete, delete_keys)
                .await?;
        }
        Mode::Replace if snapshot == live.checksum => change.unchanged = snapshot.rows,
        Mode::Replace => {
            change.inserts = snapshot.rows;
            change.deletes = live.checksum.rows;
        }
    }
    ctx.session.analyze(&change).await?;
    Ok(Staged {
        change,
        live: live.checksum,
        expected: manifest_sum.minus(gone),
    })
}

/// The tenant's live rows of a table, checksummed as at backup time (verification after apply).
pub(super) async fn live_checksum(ctx: &Ctx<'_, '_, '_>, def: &TableDef) -> Result<Checksum> {
    Ok(read_live(ctx, def, false).await?.checksum)
}
