//! The erasure ledger of a tenant: which records were erased, as keyed hashes of (table, key).
//!
//! Erasure rewrites the archives once; the ledger keeps the person from coming back later: a
//! backup drops ledger rows still in the live database, and restores and record restores skip
//! them, even from snapshots taken before or after the erasure.

use crate::archive::block::{Checksum, IdKey};
use crate::archive::keyindex::KeyCodec;
use crate::error::{Error, Result};
use crate::source::postgres::catalog::TableDef;
use crate::tenant::TenantRecord;
use crate::{layout, Vault};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// `schema.table`.
    pub table: String,
    /// `IdKey::erasure_hash` of the record's key.
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub format: u32,
    pub entries: Vec<LedgerEntry>,
}

/// The ledger as lookup sets per table.
#[derive(Clone, Debug, Default)]
pub struct Erased {
    by_table: HashMap<String, HashSet<String>>,
}

impl Ledger {
    pub fn erased(&self) -> Erased {
        let mut by_table: HashMap<String, HashSet<String>> = HashMap::new();
        for e in &self.entries {
            by_table
                .entry(e.table.clone())
                .or_default()
                .insert(e.key.clone());
        }
        Erased { by_table }
    }
}

impl Erased {
    pub fn is_empty(&self) -> bool {
        self.by_table.is_empty()
    }

    /// A filter for rows of one table, or `None` when nothing of it was erased (or it has no
    /// primary key: only keyed records can be erased).
    pub fn for_table(&self, def: &TableDef) -> Option<RowFilter> {
        let keys = self.by_table.get(&def.display_name())?.clone();
        Some(RowFilter {
            table: def.display_name(),
            codec: KeyCodec::for_table(def)?,
            keys,
        })
    }
}

/// Tells erased rows of one table.
pub struct RowFilter {
    table: String,
    codec: KeyCodec,
    keys: HashSet<String>,
}

impl RowFilter {
    pub fn is_erased(&self, id_key: &IdKey, row: &[u8]) -> bool {
        self.keys
            .contains(&id_key.erasure_hash(&self.table, &self.codec.row_key(row)))
    }

    pub fn is_erased_key(&self, id_key: &IdKey, key: &[u8]) -> bool {
        self.keys.contains(&id_key.erasure_hash(&self.table, key))
    }

    /// Drops erased rows from a block's plaintext; returns the kept plaintext and the checksum
    /// of what was dropped.
    pub fn apply(&self, id_key: &IdKey, plaintext: &[u8]) -> (Vec<u8>, Checksum) {
        crate::archive::block::drop_rows(plaintext, id_key, |row| self.is_erased(id_key, row))
    }
}

impl Vault {
    pub async fn ledger(&self, record: &TenantRecord) -> Result<Ledger> {
        match self.get(&layout::erasures(&record.path)).await {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::corrupt(layout::erasures(&record.path), e)),
            Err(Error::NotFound { .. }) => Ok(Ledger {
                format: 1,
                entries: vec![],
            }),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn save_ledger(&self, record: &TenantRecord, ledger: &Ledger) -> Result<()> {
        let body = serde_json::to_vec_pretty(ledger).map_err(|e| Error::Invalid(e.to_string()))?;
        self.put(&layout::erasures(&record.path), body).await
    }
}
