//! The reading and sealing stages of the backup pipeline.

use super::{Cycle, Progress, ProgressFn};
use crate::archive::block::{self, Checksum};
use crate::archive::keyindex::{self, KeyCodec};
use crate::archive::manifest::BlockRef;
use crate::error::{DbContext, Error, Result};
use crate::inventory::Inventory;
use crate::source::postgres::catalog::Owner;
use crate::source::postgres::extract::{self, Demux, Leftovers, RawBlock};
use crate::source::postgres::query;
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One piece of reading work: a table, optionally one tenant of it or a range of its pages.
pub struct Unit {
    pub table: usize,
    pub tenant: Option<usize>,
    pub pages: Option<query::Pages>,
}

/// A sealed block on its way to the packer.
pub struct Sealed {
    pub tenant: usize,
    pub table: usize,
    pub id: String,
    pub raw_length: u64,
    pub checksum: Checksum,
    /// The compressed bytes when the block is new; `None` when the inventory already stores it.
    pub bytes: Option<Vec<u8>>,
    pub existing: Option<BlockRef>,
}

/// Tables a reader reads in one transaction before it starts another on the same snapshot
/// (when it may: see [`Reader::renew`]). Each read table stays locked until its transaction
/// ends, and 10,000 tenant schemas of 5 tables would need 50,000 locks: more than the lock
/// table of a server with default settings holds (64 per connection).
const TABLES_PER_TRANSACTION: usize = 32;

/// How a reader's connection reads the cycle's snapshot.
pub struct Reader {
    pub client: tokio_postgres::Client,
    /// The exported snapshot to start a new transaction on, when the exporting transaction
    /// stays open until every reader is done; `None` for the coordinator itself.
    pub renew: Option<String>,
}

/// One reader: takes (table, tenant?) units until none are left.
pub async fn reader(
    Reader { client, renew }: Reader,
    cycle: &Cycle,
    demux: &Arc<Demux>,
    units: &Mutex<VecDeque<Unit>>,
    out: &mpsc::Sender<RawBlock>,
    progress: &ProgressFn,
    rls_setting: Option<&str>,
) -> Result<Vec<(usize, Leftovers)>> {
    let mut leftovers = vec![];
    let on_rows = |n: u64| progress(Progress::Rows(n));
    let mut in_transaction = 0usize;
    loop {
        let next = units
            .lock()
            .map_err(|_| Error::Aborted("work queue poisoned".into()))?
            .pop_front();
        let Some(Unit {
            table,
            tenant,
            pages,
        }) = next
        else {
            break;
        };
        let def = &cycle.plan.tables[table];
        if let (Some(snapshot), true) = (&renew, in_transaction >= TABLES_PER_TRANSACTION) {
            client
                .batch_execute(&format!(
                    "COMMIT; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
                     SET TRANSACTION SNAPSHOT '{snapshot}'"
                ))
                .await
                .db(|| "starting a new transaction on the cycle's snapshot".into())?;
            in_transaction = 0;
        }
        in_transaction += 1;
        let literal = match tenant {
            None => None,
            Some(t) => {
                let id = &cycle.tenants[t].id;
                if let (true, Some(setting)) = (def.rls, rls_setting) {
                    client
                        .execute("SELECT set_config($1, $2, true)", &[&setting, id])
                        .await
                        .db(|| format!("setting {setting} for tenant {id:?}"))?;
                }
                Some(cycle.literals[t].clone())
            }
        };
        // A table that is the tenant's whole, plain and without row-level security, is copied
        // as it is: no query to plan, and no owner field in every row.
        let only = tenant.filter(|_| {
            def.owner == Owner::Schema && !def.rls && pages.is_none() && cycle.plain[table]
        });
        let sql = match only {
            Some(_) => query::copy_table(def),
            None => query::copy_out(def, literal.as_deref(), pages),
        };
        let codec = KeyCodec::for_table(def);
        tracing::debug!(table = %def.display_name(), tenant = ?tenant.map(|t| &cycle.tenants[t].id), "reading");
        let left = extract::read_table(
            &client,
            &sql,
            extract::TableRead {
                index: table,
                def: &cycle.defs[table],
                codec: codec.as_ref(),
                only,
            },
            demux,
            out,
            &on_rows,
        )
        .await
        .map_err(|e| match e {
            Error::Database { context, source } => Error::Database {
                context: format!("reading table {}: {context}", def.display_name()),
                source,
            },
            other => other,
        })?;
        leftovers.push((table, left));
    }
    Ok(leftovers)
}

/// At most this many blocks, or about this many bytes of rows, are sealed by one blocking task:
/// small blocks go together, large ones (up to `block_size`) each on a task of its own, so that
/// the cores share a CPU-bound cycle's work as before.
const SEAL_BATCH: usize = 64;
const SEAL_BATCH_BYTES: usize = 64 << 10;

/// Hashes, deduplicates and compresses blocks on blocking threads, `parallel` at a time (the
/// packer seals whole packs). Blocks already waiting are taken together: at 20,000 tenants most
/// blocks hold a few hundred bytes, and handing each to a thread of its own cost more than
/// sealing it.
pub async fn seal_stage(
    raw: mpsc::Receiver<RawBlock>,
    out: mpsc::Sender<Sealed>,
    cycle: Arc<Cycle>,
    demux: Arc<Demux>,
    inventory: Inventory,
    fail_after: Option<u64>,
    parallel: usize,
) -> Result<()> {
    let count = Arc::new(AtomicU64::new(0));
    let batches = Box::pin(futures::stream::unfold(raw, |mut rx| async move {
        let first = rx.recv().await?;
        let mut bytes = first.data.len();
        let mut batch = vec![first];
        while batch.len() < SEAL_BATCH && bytes < SEAL_BATCH_BYTES {
            match rx.try_recv() {
                Ok(b) => {
                    bytes += b.data.len();
                    batch.push(b);
                }
                Err(_) => break,
            }
        }
        Some((batch, rx))
    }));
    let mut sealed = batches
        .map(|batch| {
            let (cycle, demux, inventory, count) = (
                cycle.clone(),
                demux.clone(),
                inventory.clone(),
                count.clone(),
            );
            tokio::task::spawn_blocking(move || {
                let mut done = Vec::with_capacity(batch.len());
                for raw in batch {
                    let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                    if fail_after.is_some_and(|limit| n > limit) {
                        return Err(Error::Aborted(format!(
                            "test hook: failing after {} sealed blocks",
                            n - 1
                        )));
                    }
                    done.push(seal_one(raw, &cycle, &demux, &inventory)?);
                }
                Ok(done)
            })
        })
        .buffer_unordered(parallel.max(1));
    while let Some(joined) = sealed.next().await {
        let blocks = match joined
            .map_err(|e| Error::Aborted(format!("sealing thread: {e}")))
            .and_then(|r| r)
        {
            Ok(b) => b,
            Err(e) => {
                // Tell the readers and the packer: nothing of this cycle may be committed.
                demux.abort.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };
        for block in blocks {
            if out.send(block).await.is_err() {
                // The packer stopped; it reports its own error.
                return Ok(());
            }
        }
    }
    Ok(())
}

fn seal_one(raw: RawBlock, cycle: &Cycle, demux: &Demux, inventory: &Inventory) -> Result<Sealed> {
    let tenant = &cycle.tenants[raw.tenant];
    let id = demux.tenants[raw.tenant]
        .id_key
        .block_id(&cycle.table_names[raw.table], &raw.data);
    // A block sealed before a revoking key rotation is sealed again, to the current data key.
    let existing = inventory
        .block(&tenant.path, &id)?
        .filter(|b| tenant.may_reuse(&b.pack));
    let bytes = match existing {
        Some(_) => None,
        None => {
            if !raw.keys.is_empty() {
                let (min, max, set) = keyindex::encode_list(&raw.keys);
                // Content-addressed, so writing it before the cycle commits is harmless.
                inventory.put_key_set(&tenant.path, &id, &min, &max, &set)?;
            }
            Some(block::compress(&raw.data)?)
        }
    };
    Ok(Sealed {
        tenant: raw.tenant,
        table: raw.table,
        id,
        raw_length: raw.data.len() as u64,
        checksum: raw.checksum,
        bytes,
        existing,
    })
}
