//! Streams a table out of PostgreSQL with `COPY … TO STDOUT` and cuts it into per-tenant blocks.
//!
//! A full cycle reads each table once and demultiplexes rows by the tenant field that the query
//! puts first on every line; a per-tenant read uses the same code with a filtered query. Blocks
//! are cut at content-defined row boundaries (so an insert early in a table does not shift every
//! later block and defeat deduplication), and buffered plaintext is bounded across all tenants:
//! when the budget is exceeded the largest buffers are cut early.

use crate::archive::block::{Checksum, IdKey};
use crate::archive::keyindex::{KeyCodec, KeyList};
use crate::copytext;
use crate::error::{DbContext, Error, Result};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_postgres::Client;

/// What the extractor needs to know about each tenant of the cycle.
pub struct TenantKeys {
    pub id_key: IdKey,
    /// The tenant's erasure ledger: its rows are dropped even if the live database has them.
    pub erased: crate::ledger::Erased,
}

/// Plaintext of one block, not yet sealed.
pub struct RawBlock {
    pub tenant: usize,
    pub table: usize,
    pub data: Vec<u8>,
    pub checksum: Checksum,
    /// Encoded primary keys of the rows (empty for tables without a primary key).
    pub keys: KeyList,
}

/// Rows seen that belong to no archive.
#[derive(Default)]
pub struct Leftovers {
    /// Rows whose tenant value is not a registered tenant (escaped tenant value -> rows).
    pub unregistered: HashMap<Vec<u8>, u64>,
    /// Rows whose owning tenant value is NULL.
    pub unowned: u64,
    /// Rows dropped because the tenant's erasure ledger names them.
    pub erased: u64,
}

/// Shared, read-only state of one cycle's extraction.
pub struct Demux {
    /// COPY-escaped tenant id -> tenant index.
    pub index: HashMap<Vec<u8>, usize>,
    pub tenants: Vec<TenantKeys>,
    /// Per tenant, whether it is of the bridge model: its rows come from its own schema only,
    /// and a pooled table's rows with its id are not its.
    pub bridge: Vec<bool>,
    pub block_size: usize,
    /// Per-reader plaintext budget.
    pub budget: usize,
    pub abort: AtomicBool,
}

#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    checksum: Checksum,
    keys: KeyList,
}

/// The table a read is for: its index in the plan, definition and key codec.
pub struct TableRead<'a> {
    pub index: usize,
    pub def: &'a crate::source::postgres::catalog::TableDef,
    pub codec: Option<&'a KeyCodec>,
    /// The tenant of every row, when the COPY carries no owner field before the row (a table
    /// that is one tenant's whole, copied as it is: see `query::copy_table`).
    pub only: Option<usize>,
}

/// The receiving side closed: someone downstream failed and will report why.
pub const DOWNSTREAM_CLOSED: &str = "the sealing pipeline stopped";

/// Reads one table (optionally one tenant of it) and sends its blocks to `out`.
/// `on_rows` is called with the number of rows read, for progress.
pub async fn read_table(
    client: &Client,
    sql: &str,
    what: TableRead<'_>,
    demux: &Arc<Demux>,
    out: &mpsc::Sender<RawBlock>,
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<Leftovers> {
    let TableRead {
        index: table,
        def,
        codec,
        only,
    } = what;
    let stream = client
        .copy_out(sql)
        .await
        .db(|| format!("reading rows: {sql}"))?;
    futures::pin_mut!(stream);
    let mut bufs: HashMap<usize, Buf> = HashMap::new();
    let mut buffered = 0usize;
    let mut left = Leftovers::default();
    let mut carry: Vec<u8> = vec![];
    let mut ready: Vec<RawBlock> = vec![];
    let mut unreported = 0u64;
    let mut filters: HashMap<usize, Option<crate::ledger::RowFilter>> = HashMap::new();
    let own_schema = def.owner == crate::source::postgres::catalog::Owner::Schema;
    while let Some(chunk) = stream
        .try_next()
        .await
        .db(|| format!("reading rows: {sql}"))?
    {
        if demux.abort.load(Ordering::Relaxed) {
            return Err(Error::Aborted("another part of the backup failed".into()));
        }
        let joined;
        let whole: &[u8] = if carry.is_empty() {
            &chunk
        } else {
            carry.extend_from_slice(&chunk);
            joined = std::mem::take(&mut carry);
            &joined
        };
        let end = whole.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut rows = 0u64;
        for line in whole[..end]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            rows += 1;
            let (tenant, row) = match only {
                Some(tenant) => (tenant, line),
                None => {
                    let (owner, rest) = copytext::split_first(line);
                    if owner == copytext::NULL {
                        left.unowned += 1;
                        continue;
                    }
                    let tenant = demux.index.get(owner).copied();
                    let Some(tenant) = tenant.filter(|&t| demux.bridge[t] == own_schema) else {
                        *left.unregistered.entry(owner.to_vec()).or_default() += 1;
                        continue;
                    };
                    (tenant, rest.unwrap_or_default())
                }
            };
            let keys = &demux.tenants[tenant];
            if !keys.erased.is_empty() {
                let filter = filters
                    .entry(tenant)
                    .or_insert_with(|| keys.erased.for_table(def));
                if filter
                    .as_ref()
                    .is_some_and(|f| f.is_erased(&keys.id_key, row))
                {
                    left.erased += 1;
                    continue;
                }
            }
            let hash = keys.id_key.row_hash(row);
            let buf = bufs.entry(tenant).or_default();
            let held = buf.held();
            buf.data.extend_from_slice(row);
            buf.data.push(b'\n');
            buf.checksum.add_hash(hash);
            if let Some(c) = codec {
                buf.keys.push_row(c, row, hash);
            }
            buffered += buf.held() - held;
            if cut_here(buf.data.len(), row.len() + 1, hash, demux.block_size) {
                buffered -= buf.held();
                ready.push(take(&mut bufs, tenant, table));
            } else if buffered > demux.budget {
                // A sixteenth of the budget at once: not a scan of every buffer per row.
                let sizes = bufs.iter().map(|(&t, b)| (t, b.held()));
                let target = demux.budget - demux.budget / 16;
                for t in crate::memory::spill_order(sizes, buffered, target) {
                    buffered -= bufs[&t].held();
                    ready.push(take(&mut bufs, t, table));
                }
            }
        }
        carry = whole[end..].to_vec();
        copytext::check_row_len(carry.len(), sql)?;
        unreported += rows;
        // Reporting every row would cost more than the row itself.
        if unreported >= 8192 {
            on_rows(std::mem::take(&mut unreported));
        }
        for block in ready.drain(..) {
            out.send(block)
                .await
                .map_err(|_| Error::Aborted(DOWNSTREAM_CLOSED.into()))?;
        }
    }
    on_rows(unreported);
    if !carry.is_empty() {
        return Err(Error::corrupt(
            format!("COPY output of {sql}"),
            "ends in the middle of a row",
        ));
    }
    let mut rest: Vec<usize> = bufs.keys().copied().collect();
    rest.sort_unstable();
    for tenant in rest {
        let block = take(&mut bufs, tenant, table);
        out.send(block)
            .await
            .map_err(|_| Error::Aborted(DOWNSTREAM_CLOSED.into()))?;
    }
    Ok(left)
}

/// Content-defined cut: after half a block, each byte ends a block with probability
/// 1/(block_size/2), decided by the row's hash; never longer than two blocks.
fn cut_here(len: usize, row_len: usize, hash: u128, block_size: usize) -> bool {
    let half = (block_size / 2).max(1) as u64;
    len >= block_size * 2 || (len as u64 >= half && ((hash >> 64) as u64 % half) < row_len as u64)
}

impl Buf {
    /// Bytes this buffer counts against the budget: what its rows and keys have allocated
    /// (vectors grow by doubling: at 20,000 tenants their lengths undercounted by half).
    fn held(&self) -> usize {
        self.data.capacity() + self.keys.heap_bytes()
    }
}

fn take(bufs: &mut HashMap<usize, Buf>, tenant: usize, table: usize) -> RawBlock {
    let b = bufs.remove(&tenant).unwrap_or_default();
    RawBlock {
        tenant,
        table,
        data: b.data,
        checksum: b.checksum,
        keys: b.keys,
    }
}
