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
use crate::source::postgres::apply::{self, Keys, Mode, Session, TableChange};
use crate::source::postgres::catalog::{Plan, TableDef};
use crate::tenant::{TenantRecord, Unlocked};
use crate::Vault;
use bytes::Bytes;
use futures::{SinkExt, StreamExt, TryStreamExt};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Blocks fetched and opened at once (on blocking threads), ahead of their use.
const READ_AHEAD: usize = 4;
/// Blocks opened while the live rows are still being read (about 1 MiB of plaintext each).
const PREFETCH: usize = 32;

/// A block's plaintext with the keyed hash of each of its rows.
struct Opened {
    plain: Vec<u8>,
    hashes: Vec<u128>,
    sealed_len: u64,
}

/// Fetches a block, then authenticates, decrypts and hashes its rows on a blocking thread.
async fn open_block(
    ctx: &Ctx<'_, '_, '_>,
    table: String,
    b: &crate::archive::manifest::BlockRef,
) -> Result<Opened> {
    let sealed = ctx.vault.fetch_sealed(ctx.record, b).await?;
    let (record, keys, b) = (ctx.record.clone(), ctx.keys.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        let plain = super::open_sealed(&record, &keys, &table, &b, &sealed)?;
        let hashes = block::rows(&plain)
            .map(|r| keys.id_key.row_hash(r))
            .collect();
        Ok(Opened {
            plain,
            hashes,
            sealed_len: b.length,
        })
    })
    .await
    .map_err(|e| crate::Error::Aborted(format!("opening a block: {e}")))?
}

/// Runs `fut` to completion while pulling up to `cap` items of `stream` into `ahead`, so that
/// blocks are fetched and decrypted while the database computes the live rows.
async fn while_prefetching<F: std::future::Future, S: futures::Stream + Unpin>(
    fut: F,
    stream: &mut S,
    ahead: &mut VecDeque<S::Item>,
    cap: usize,
) -> F::Output {
    futures::pin_mut!(fut);
    loop {
        if ahead.len() >= cap {
            return fut.await;
        }
        // `next()` is cancel-safe: an item is never lost when the other branch wins.
        tokio::select! {
            biased;
            out = &mut fut => return out,
            item = stream.next() => match item {
                Some(i) => ahead.push_back(i),
                None => return fut.await,
            },
        }
    }
}

/// What a restore of one tenant shares across its tables.
pub(super) struct Ctx<'a, 's, 't> {
    pub vault: &'a Vault,
    pub record: &'a TenantRecord,
    pub keys: &'a Arc<Unlocked>,
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
    /// Live rows the restore deletes or rewrites (their versions before the restore).
    pub removed: Checksum,
    /// The snapshot's rows, less those the erasure ledger names.
    pub expected: Checksum,
}

impl Staged {
    /// The tenant's rows after the restore, given what the written rows read back as.
    pub fn after(&self, written: Checksum) -> Checksum {
        let mut c = self.live.minus(self.removed);
        c.merge(written);
        c
    }
}

/// The tenant's live rows of a table: key text -> row hash (keyed tables), and their checksum.
pub(super) struct Live {
    rows: HashMap<Vec<u8>, u128, foldhash::fast::RandomState>,
    checksum: Checksum,
}

/// Reads the tenant's live rows of a table through the backup's query, on `client` (a second
/// connection, so that the database computes the next table's rows while this one is staged).
pub(super) async fn read_live(
    client: &tokio_postgres::Client,
    def: &TableDef,
    literal: &str,
    id_key: &crate::archive::block::IdKey,
    expected_rows: u64,
) -> Result<Live> {
    let stream = apply::live_rows(client, def, literal).await?;
    let keyed = !def.primary_key.is_empty();
    let positions = def.key_positions();
    let capacity = if keyed { expected_rows.min(1 << 24) } else { 0 };
    let mut live = Live {
        rows: HashMap::with_capacity_and_hasher(capacity as usize, Default::default()),
        checksum: Checksum::default(),
    };
    let what = format!("the live rows of {}", def.display_name());
    for_each_row(stream, &what, |row| {
        let hash = id_key.row_hash(row);
        live.checksum.add_hash(hash);
        if keyed {
            let mut key = Vec::with_capacity(16);
            copytext::pick(row, &positions, &mut key);
            live.rows.insert(key, hash);
        }
    })
    .await?;
    Ok(live)
}

/// Compares one table and stages its changes (see the module docs).
pub(super) async fn stage_table(
    ctx: &Ctx<'_, '_, '_>,
    m: &TableManifest,
    def: TableDef,
    slot: usize,
    live: impl std::future::Future<Output = Result<Live>>,
) -> Result<Staged> {
    let mode = if def.primary_key.is_empty() {
        Mode::Replace
    } else {
        Mode::Keyed
    };
    let table = m.def.display_name();
    let mut blocks = futures::stream::iter(m.blocks.iter())
        .map(|b| open_block(ctx, table.clone(), b))
        .buffered(READ_AHEAD);
    let mut ahead = VecDeque::new();
    let mut live = while_prefetching(live, &mut blocks, &mut ahead, PREFETCH).await?;
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
            removed: Checksum::default(),
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
    let mut removed = Checksum::default();
    let mut update_keys: Vec<u8> = vec![];
    let mut key = Vec::with_capacity(32);
    loop {
        let next = match ahead.pop_front() {
            Some(b) => b,
            None => match blocks.next().await {
                Some(b) => b,
                None => break,
            },
        };
        let Opened {
            plain,
            hashes,
            sealed_len,
        } = next?;
        let mut out = Vec::with_capacity(plain.len());
        for (row, hash) in block::rows(&plain).zip(hashes) {
            if filter
                .as_ref()
                .is_some_and(|f| f.is_erased(&ctx.keys.id_key, row))
            {
                // Rows the erasure ledger names never come back, whatever the snapshot holds.
                gone.add_hash(hash);
                continue;
            }
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
                        Some(old) => {
                            removed.add_hash(old);
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
            for (k, old) in std::mem::take(&mut live.rows) {
                removed.add_hash(old);
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
            removed = live.checksum;
        }
    }
    ctx.session.analyze(&change).await?;
    Ok(Staged {
        change,
        live: live.checksum,
        removed,
        expected: manifest_sum.minus(gone),
    })
}

/// Reads back what the restore wrote to a table, checksummed as at backup time: the tenant's
/// rows with the staged keys (keyed tables), or all of its rows (tables replaced whole).
pub(super) async fn written_checksum(ctx: &Ctx<'_, '_, '_>, c: &TableChange) -> Result<Checksum> {
    let stream = ctx.session.written_rows(c, ctx.literal).await?;
    let mut sum = Checksum::default();
    let what = format!("the restored rows of {}", c.def.display_name());
    for_each_row(stream, &what, |row| sum.add_row(&ctx.keys.id_key, row)).await?;
    Ok(sum)
}

/// Calls `f` with each row of a COPY stream of the backup query (without its leading owner
/// field). A row may span chunks; one longer than [`copytext::MAX_ROW`] is refused rather than
/// buffered without bound.
async fn for_each_row(
    stream: tokio_postgres::CopyOutStream,
    what: &str,
    mut f: impl FnMut(&[u8]),
) -> Result<()> {
    futures::pin_mut!(stream);
    let mut carry: Vec<u8> = vec![];
    while let Some(chunk) = stream.try_next().await.db(|| format!("reading {what}"))? {
        carry.extend_from_slice(&chunk);
        let end = carry.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in block::rows(&carry[..end]) {
            f(copytext::split_first(line).1.unwrap_or_default());
        }
        carry.drain(..end);
        copytext::check_row_len(carry.len(), what)?;
    }
    if !carry.is_empty() {
        return Err(crate::Error::corrupt(
            what,
            "the COPY output ends in the middle of a row",
        ));
    }
    Ok(())
}
