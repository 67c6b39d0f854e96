//! Manifests (per tenant and snapshot) and snapshot records (per backup cycle).
//! The JSON shapes are part of the archive format (`docs/FORMAT.md`).

use crate::source::postgres::catalog::TableDef;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Current archive format version.
pub const FORMAT_VERSION: u32 = 1;

/// Where a block's sealed bytes are: `length` bytes at `offset` of pack object `pack`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlockRef {
    pub id: String,
    pub pack: String,
    pub offset: u64,
    pub length: u64,
    /// Plaintext length (bounds decompression).
    pub raw_length: u64,
    pub rows: u64,
    /// BLAKE3 of the sealed bytes (see `block::sealed_hash`).
    pub sealed_hash: String,
}

/// One table of a tenant snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableManifest {
    #[serde(flatten)]
    pub def: TableDef,
    pub rows: u64,
    /// Keyed, order-independent checksum of the rows (see `Checksum`).
    pub checksum: String,
    pub blocks: Vec<BlockRef>,
}

/// The source a snapshot was read from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceInfo {
    pub database: String,
    pub server_version: String,
}

/// Everything needed to restore one tenant from one snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantManifest {
    pub format: u32,
    pub snapshot: String,
    pub tenant: String,
    pub tenant_path: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub source: SourceInfo,
    /// The data key's public recipient the blocks were sealed to.
    pub data_recipient: String,
    pub tables: Vec<TableManifest>,
}

impl TenantManifest {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Commit record of one backup cycle; its presence makes the cycle's manifests visible.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub format: u32,
    pub snapshot: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished: OffsetDateTime,
    /// Number of tenant manifests written by the cycle.
    pub tenants: u64,
}
