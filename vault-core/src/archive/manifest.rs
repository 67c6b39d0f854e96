//! Manifests (per tenant and snapshot) and snapshot records (per backup cycle).
//! The JSON shapes are part of the archive format (`docs/FORMAT.md`).

use crate::source::postgres::catalog::TableDef;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Archive format version of snapshot records (unchanged since version 1).
pub const FORMAT_VERSION: u32 = 1;

/// Manifest format this tvault writes: 2 refers to table definitions by digest
/// (`schemas/<def id>.json`) instead of repeating them in every manifest. Version 1 manifests
/// (definitions inline) are still read.
pub const MANIFEST_FORMAT: u32 = 2;

/// A table definition as stored: its JSON, and its id (the first 32 hex digits of the unkeyed
/// BLAKE3 of that JSON). Content-addressed, so one object serves every tenant and cycle that
/// has the same definition, and a reader checks it against the id the manifest names.
pub fn table_def(def: &TableDef) -> (String, Vec<u8>) {
    let json = serde_json::to_vec(def).unwrap_or_default();
    (def_id(&json), json)
}

/// The id of a stored table definition's JSON.
pub fn def_id(json: &[u8]) -> String {
    blake3::hash(json).to_hex()[..32].to_string()
}

/// The DDL of a tenant's tables as archives keep it (`schemas/<id>.ddl.json`, content-addressed
/// like table definitions): a bridge tenant's relative to its schema (names qualified by `""`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArchivedDdl {
    pub format: u32,
    /// Types, sequences, tables with their constraints and indexes.
    pub tables: String,
    /// Foreign keys between the tables (and, as comments, those leaving them).
    pub foreign_keys: String,
    /// Foreign keys to tables outside the tenant's, as statements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_keys: Vec<String>,
}

impl ArchivedDdl {
    pub const FORMAT: u32 = 1;

    /// Its id and JSON.
    pub fn stored(&self) -> (String, Vec<u8>) {
        let json = serde_json::to_vec(self).unwrap_or_default();
        (def_id(&json), json)
    }
}

/// Where a block is. In a sealed pack (format 3, `sealed_hash` empty): its compressed bytes are
/// `length` bytes at `offset` of the pack's plaintext (the pack is one age file). In a pack of
/// sealed blocks (earlier formats): its sealed bytes are `length` bytes at `offset` of the pack
/// object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlockRef {
    pub id: String,
    pub pack: String,
    pub offset: u64,
    pub length: u64,
    /// Plaintext length (bounds decompression).
    pub raw_length: u64,
    pub rows: u64,
    /// BLAKE3 of the block's sealed bytes (see `block::sealed_hash`); empty for a block of a
    /// sealed pack, whose [`PackRef`] has the hash of the whole object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sealed_hash: String,
}

impl BlockRef {
    /// The block lives in a sealed pack (one age file for the whole pack).
    pub fn in_sealed_pack(&self) -> bool {
        self.sealed_hash.is_empty()
    }
}

/// A sealed pack: one age file whose plaintext is compressed blocks concatenated.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PackRef {
    pub name: String,
    /// Bytes of the object.
    pub length: u64,
    /// Where the payload's first chunk starts (after the age header and nonce).
    pub start: u64,
    /// BLAKE3 of the object (first 32 hex digits): damage is found without any key.
    pub hash: String,
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

/// A tenant's manifest: everything needed to restore it from one snapshot. `T` is a table as
/// stored ([`StoredTable`]: definitions by id) or resolved ([`TableManifest`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest<T> {
    pub format: u32,
    pub snapshot: String,
    pub tenant: String,
    pub tenant_path: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub source: SourceInfo,
    /// The data key's public recipient the blocks were sealed to.
    pub data_recipient: String,
    pub tables: Vec<T>,
    /// The sealed packs the blocks live in (format 3 packs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packs: Vec<PackRef>,
    /// The tenant's version this one replaced (its latest manifest when the cycle ran): cycles
    /// that found the tenant unchanged write no manifest, and this tells where the previous
    /// version's stretch of time ended even once retention deleted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Id of the DDL that recreates the tenant's tables (`schemas/<id>.ddl.json`), from
    /// manifests written since archives carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddl: Option<String>,
}

/// A manifest with its table definitions resolved.
pub type TenantManifest = Manifest<TableManifest>;

/// A manifest as the store holds it (`docs/FORMAT.md`).
pub type StoredManifest = Manifest<StoredTable>;

impl<T> Manifest<T> {
    /// The same manifest with other tables.
    fn with_tables<U>(&self, format: u32, tables: Vec<U>) -> Manifest<U> {
        Manifest {
            format,
            snapshot: self.snapshot.clone(),
            tenant: self.tenant.clone(),
            tenant_path: self.tenant_path.clone(),
            created: self.created,
            source: self.source.clone(),
            data_recipient: self.data_recipient.clone(),
            tables,
            packs: self.packs.clone(),
            previous: self.previous.clone(),
            ddl: self.ddl.clone(),
        }
    }
}

impl TenantManifest {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Digest of what the manifest says about the tenant's data (tables, blocks, packs, data
    /// key), not of when: equal digests mean a cycle found the tenant unchanged.
    pub fn content_digest(&self) -> String {
        let tables: Vec<_> = self
            .tables
            .iter()
            .map(|t| (table_def(&t.def).0, t.rows, &t.checksum, &t.blocks))
            .collect();
        // A changed DDL is a new version even when no row changed; manifests without one keep
        // the digest they always had.
        let json = match &self.ddl {
            None => serde_json::to_vec(&(&self.data_recipient, tables, &self.packs)),
            Some(ddl) => serde_json::to_vec(&(&self.data_recipient, tables, &self.packs, ddl)),
        }
        .unwrap_or_default();
        blake3::hash(&json).to_hex()[..32].to_string()
    }

    /// The manifest's body as stored (store format 4): its JSON (manifest format 2, tables
    /// referring to their definitions by id), compressed with zstd. A tiny tenant's manifest
    /// lists more than its packs hold (2.2 KB of JSON for 1.6 KB of rows); compressed it is
    /// half that.
    pub fn stored(&self) -> Vec<u8> {
        let json = self.stored_json();
        zstd::bulk::compress(&json, MANIFEST_ZSTD_LEVEL).unwrap_or(json)
    }

    /// The manifest's JSON (format 2): tables refer to their definitions by id.
    fn stored_json(&self) -> Vec<u8> {
        let tables = self
            .tables
            .iter()
            .map(|t| StoredTable::ByRef {
                table: t.def.display_name(),
                def: table_def(&t.def).0,
                rows: t.rows,
                checksum: t.checksum.clone(),
                blocks: t.blocks.clone(),
            })
            .collect();
        let stored = self.with_tables(MANIFEST_FORMAT, tables);
        serde_json::to_vec(&stored).unwrap_or_default()
    }
}

/// zstd level of stored manifests: small JSON, so the highest levels cost little and gain little.
const MANIFEST_ZSTD_LEVEL: i32 = 9;

/// The largest manifest JSON a reader inflates (a 5M-row tenant's is about 1 MB).
const MANIFEST_MAX: u64 = 256 << 20;

/// How a zstd frame starts (never how JSON does).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// One table of a stored manifest: by reference (format 2) or inline (format 1).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredTable {
    ByRef {
        /// `schema.table`, for people reading the manifest.
        table: String,
        /// Id of the definition in `schemas/<def>.json`.
        def: String,
        rows: u64,
        checksum: String,
        blocks: Vec<BlockRef>,
    },
    Inline(TableManifest),
}

impl StoredManifest {
    /// Parses a manifest's body as stored: zstd-compressed JSON (store format 4) or JSON
    /// (earlier stores).
    pub fn parse(body: &[u8]) -> Result<StoredManifest, String> {
        Self::parse_within(body, MANIFEST_MAX)
    }

    fn parse_within(body: &[u8], max: u64) -> Result<StoredManifest, String> {
        if !body.starts_with(&ZSTD_MAGIC) {
            return serde_json::from_slice(body).map_err(|e| e.to_string());
        }
        use std::io::Read;
        let mut json = Vec::new();
        zstd::stream::read::Decoder::new(body)
            .and_then(|d| d.take(max + 1).read_to_end(&mut json))
            .map_err(|e| format!("the compressed manifest does not inflate: {e}"))?;
        if json.len() as u64 > max {
            return Err(format!("the manifest inflates to more than {max} bytes"));
        }
        serde_json::from_slice(&json).map_err(|e| e.to_string())
    }

    /// Ids of the definitions the manifest refers to.
    pub fn def_ids(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().filter_map(|t| match t {
            StoredTable::ByRef { def, .. } => Some(def.as_str()),
            StoredTable::Inline(_) => None,
        })
    }

    /// Resolves the definitions (`lookup` gives the definition of an id) into a manifest.
    pub fn resolve(
        mut self,
        mut lookup: impl FnMut(&str) -> Option<TableDef>,
    ) -> Result<TenantManifest, String> {
        if self.format == 0 || self.format > MANIFEST_FORMAT {
            return Err(format!(
                "manifest format {} is not one this tvault reads (1 to {MANIFEST_FORMAT})",
                self.format
            ));
        }
        let mut tables = Vec::with_capacity(self.tables.len());
        for t in std::mem::take(&mut self.tables) {
            tables.push(match t {
                StoredTable::Inline(t) => t,
                StoredTable::ByRef {
                    table,
                    def,
                    rows,
                    checksum,
                    blocks,
                } => {
                    let d = lookup(&def)
                        .ok_or_else(|| format!("table definition {def} of {table} is missing"))?;
                    if d.display_name() != table {
                        return Err(format!(
                            "table definition {def} is of {}, not {table}",
                            d.display_name()
                        ));
                    }
                    TableManifest {
                        def: d,
                        rows,
                        checksum,
                        blocks,
                    }
                }
            });
        }
        let format = self.format;
        Ok(self.with_tables(format, tables))
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
    /// Number of tenants the cycle backed up.
    pub tenants: u64,
    /// Which tenants it backed up; absent in records of format 1, whose cycles wrote a manifest
    /// for each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Number of manifests it wrote: tenants it found unchanged get none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<u64>,
    /// Tenant dirs in its scope that it could not back up (their key, ledger, policy or upload
    /// failed): it does not cover them, and their latest version stands only for earlier cycles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// The tenants a cycle backed up.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scope {
    /// `"all"`: every tenant registered when the cycle started.
    All(AllTenants),
    /// The tenant dirs it was limited to.
    Listed(Vec<String>),
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum AllTenants {
    All,
}

impl SnapshotRecord {
    /// The cycle backed up this tenant (registered at `created`, in dir `path`).
    pub fn covers(&self, path: &str, created: OffsetDateTime) -> bool {
        if self.failed.iter().any(|f| f == path) {
            return false;
        }
        match &self.scope {
            Some(Scope::All(_)) => created <= self.started,
            Some(Scope::Listed(dirs)) => dirs.iter().any(|d| d == path),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"format":1,"snapshot":"20261130T000000Z-000000","tenant":"a","tenant_path":"t0",
"created":"2026-11-30T00:00:00Z","source":{"database":"d","server_version":"15"},"data_recipient":"age1x",
"tables":[{"schema":"s","name":"t","columns":[{"name":"id","type":"bigint"}],"primary_key":["id"],
"owner":{"kind":"column","column":"tenant_id"},"rows":1,"checksum":"00","blocks":[]}]}"#;

    #[test]
    fn format_1_reads_and_format_2_refers_to_definitions_by_id() {
        let stored: StoredManifest = serde_json::from_str(V1).unwrap();
        let m = stored.resolve(|_| None).unwrap();
        assert_eq!(m.tables[0].def.display_name(), "s.t");

        let json = m.stored_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(!text.contains("columns"), "{text}");
        let (id, def_json) = table_def(&m.tables[0].def);
        assert_eq!(def_id(&def_json), id);
        assert!(text.contains(&id), "{text}");

        let stored: StoredManifest = serde_json::from_slice(&json).unwrap();
        assert_eq!(stored.format, MANIFEST_FORMAT);
        let missing = serde_json::from_slice::<StoredManifest>(&json).unwrap();
        assert!(missing.resolve(|_| None).unwrap_err().contains("missing"));
        let back = stored
            .resolve(|want| (want == id).then(|| m.tables[0].def.clone()))
            .unwrap();
        assert_eq!(back.tables[0].def, m.tables[0].def);
        assert_eq!(back.tables[0].rows, 1);

        // A definition of another table under the id is refused.
        let mut other = m.tables[0].def.clone();
        other.name = "u".into();
        let stored: StoredManifest = serde_json::from_slice(&json).unwrap();
        assert!(stored.resolve(|_| Some(other.clone())).is_err());
        // A format this tvault does not know is refused.
        let future = text.replace("\"format\":2", "\"format\":9");
        let stored: StoredManifest = serde_json::from_str(&future).unwrap();
        assert!(stored.resolve(|_| None).unwrap_err().contains("format 9"));
    }

    #[test]
    fn stored_manifests_are_compressed_and_plain_ones_still_read() {
        let m = serde_json::from_str::<StoredManifest>(V1)
            .unwrap()
            .resolve(|_| None)
            .unwrap();
        let body = m.stored();
        assert!(body.starts_with(&ZSTD_MAGIC));
        let json = m.stored_json();
        let from_zstd = serde_json::to_value(StoredManifest::parse(&body).unwrap()).unwrap();
        let from_json = serde_json::to_value(StoredManifest::parse(&json).unwrap()).unwrap();
        assert_eq!(from_zstd, from_json);
        // Truncated, or inflating past the limit: an error, not a panic or an allocation.
        assert!(StoredManifest::parse(&body[..body.len() - 3]).is_err());
        let e = StoredManifest::parse_within(&body, 100).unwrap_err();
        assert!(e.contains("more than"), "{e}");
    }
}
