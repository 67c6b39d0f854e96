//! Record keys: how primary keys are encoded for the inventory, and the compact per-block key
//! sets that let a record lookup find its block without reading archives.
//!
//! Keys are byte strings that sort like the values: integer columns as sign-flipped big-endian
//! `i64`, everything else as its COPY text followed by a 0 byte (COPY text never contains 0).
//! A block's key set is sorted, length-prefixed and zstd-compressed; the inventory stores one
//! entry per block (not per row), with the block's smallest and largest key for pruning.

use crate::copytext;
use crate::error::{Error, Result};
use crate::source::postgres::catalog::TableDef;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Int,
    Text,
}

/// Extracts and encodes the primary key of rows of one table.
#[derive(Clone, Debug)]
pub struct KeyCodec {
    /// (field index within an archived row, kind), in primary key order.
    cols: Vec<(usize, Kind)>,
    names: Vec<String>,
}

impl KeyCodec {
    /// `None` for tables without a primary key (not record-addressable).
    pub fn for_table(def: &TableDef) -> Option<Self> {
        if def.primary_key.is_empty() {
            return None;
        }
        let archived: Vec<_> = def.archived_columns().collect();
        let mut cols = vec![];
        for name in &def.primary_key {
            let i = archived.iter().position(|c| &c.name == name)?;
            let kind = match archived[i].type_name.as_str() {
                "smallint" | "integer" | "bigint" => Kind::Int,
                _ => Kind::Text,
            };
            cols.push((i, kind));
        }
        Some(KeyCodec {
            cols,
            names: def.primary_key.clone(),
        })
    }

    /// Appends the key of one archived row (COPY line without the tenant prefix) to `out`.
    pub fn row_key_into(&self, row: &[u8], out: &mut Vec<u8>) {
        for &(i, kind) in &self.cols {
            encode_field(out, copytext::fields(row).nth(i).unwrap_or(b""), kind);
        }
    }

    /// The key of one archived row.
    pub fn row_key(&self, row: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.row_key_into(row, &mut out);
        out
    }

    /// The key for user-given values (`id=42`), in COPY text form, by column name.
    pub fn key_of(&self, values: &[(String, String)]) -> Result<Vec<u8>> {
        let mut out = vec![];
        for (name, &(_, kind)) in self.names.iter().zip(&self.cols) {
            let v = values.iter().find(|(n, _)| n == name).ok_or_else(|| {
                Error::Invalid(format!(
                    "key column {name} is missing (key is {})",
                    self.names.join(",")
                ))
            })?;
            encode_field(&mut out, &copytext::escape(v.1.as_bytes()), kind);
        }
        Ok(out)
    }
}

fn encode_field(out: &mut Vec<u8>, field: &[u8], kind: Kind) {
    let int = match kind {
        Kind::Int => std::str::from_utf8(field)
            .ok()
            .and_then(|s| s.parse::<i64>().ok()),
        Kind::Text => None,
    };
    match int {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
        }
        None => {
            out.push(2);
            out.extend_from_slice(field);
            out.push(0);
        }
    }
}

/// Keys of one block with a short keyed hash of each row, appended without a heap allocation
/// per key. The row hash lets `find` tell a changed row from an unchanged one from the inventory
/// alone; being keyed per tenant, it reveals nothing about the row.
#[derive(Default)]
pub struct KeyList {
    bytes: Vec<u8>,
    ends: Vec<u32>,
    hashes: Vec<u64>,
}

impl KeyList {
    pub fn push_row(&mut self, codec: &KeyCodec, row: &[u8], row_hash: u128) {
        codec.row_key_into(row, &mut self.bytes);
        self.ends.push(self.bytes.len() as u32);
        self.hashes.push(row_hash as u64);
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes allocated (counted against the backup's memory budget).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4 + self.hashes.capacity() * 8
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .zip(self.hashes.iter().copied())
            .map(|((a, b), h)| (&self.bytes[a as usize..b as usize], h))
    }
}

/// A decoded key set: keys sorted, each with its row hash.
pub type KeySet = Vec<(Vec<u8>, u64)>;

/// Sorts and compresses a block's keys; returns (min key, max key, encoded set).
pub fn encode_list(list: &KeyList) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut keys: Vec<(&[u8], u64)> = list.iter().collect();
    keys.sort_unstable();
    keys.dedup_by(|a, b| a.0 == b.0);
    let min = keys.first().map(|k| k.0.to_vec()).unwrap_or_default();
    let max = keys.last().map(|k| k.0.to_vec()).unwrap_or_default();
    let mut raw = Vec::with_capacity(keys.iter().map(|k| k.0.len() + 12).sum());
    for (k, h) in keys {
        raw.extend_from_slice(&(k.len() as u32).to_le_bytes());
        raw.extend_from_slice(k);
        raw.extend_from_slice(&h.to_le_bytes());
    }
    // The sealing threads' compression context: a new context per block costs more than
    // compressing a small key set.
    (min, max, super::block::compress(&raw).unwrap_or_default())
}

/// The largest decoded key set accepted (a block holds at most a few MiB of rows).
pub const MAX_KEY_SET: usize = 64 << 20;

/// Decodes a key set made by [`encode_list`].
pub fn decode_set(bytes: &[u8]) -> Result<KeySet> {
    // Bounded: a few bytes of zstd can claim gigabytes.
    let mut raw = vec![];
    let decoder = zstd::stream::read::Decoder::new(bytes)
        .map_err(|e| Error::corrupt("key set", format!("does not decompress: {e}")))?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(decoder, MAX_KEY_SET as u64 + 1),
        &mut raw,
    )
    .map_err(|e| Error::corrupt("key set", format!("does not decompress: {e}")))?;
    if raw.len() > MAX_KEY_SET {
        return Err(Error::corrupt(
            "key set",
            "larger than any block's key set can be",
        ));
    }
    let mut keys = vec![];
    let mut i = 0;
    while i < raw.len() {
        let len = raw
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
            .ok_or_else(|| Error::corrupt("key set", "truncated"))?;
        let (k, h) = (i + 4, i + 4 + len);
        let hash = raw
            .get(h..h + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .ok_or_else(|| Error::corrupt("key set", "truncated"))?;
        keys.push((raw[k..h].to_vec(), hash));
        i = h + 8;
    }
    Ok(keys)
}

/// The row hash of `key` in a decoded set, if the block holds it.
pub fn lookup(set: &KeySet, key: &[u8]) -> Option<u64> {
    set.binary_search_by(|(k, _)| k.as_slice().cmp(key))
        .ok()
        .map(|i| set[i].1)
}

/// One entry of a sealed key index object: block id, min key, max key, key set.
pub type IndexEntry = (String, Vec<u8>, Vec<u8>, Vec<u8>);

/// Appends a key index entry: each part as `u32-le length || bytes` (FORMAT.md, key index).
pub fn append_index_entry(out: &mut Vec<u8>, id: &str, min: &[u8], max: &[u8], set: &[u8]) {
    for part in [id.as_bytes(), min, max, set] {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part);
    }
}

/// Parses the plaintext of a key index object.
pub fn parse_index(raw: &[u8]) -> Result<Vec<IndexEntry>> {
    let mut i = 0;
    let mut take = || -> Result<Vec<u8>> {
        let len = raw
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
            .ok_or_else(|| Error::corrupt("key index", "truncated"))?;
        let v = raw
            .get(i + 4..i + 4 + len)
            .ok_or_else(|| Error::corrupt("key index", "truncated"))?
            .to_vec();
        i += 4 + len;
        Ok(v)
    };
    let mut out = vec![];
    loop {
        let id = match take() {
            Ok(id) => id,
            Err(_) if i >= raw.len() => break,
            Err(e) => return Err(e),
        };
        let id = String::from_utf8(id).map_err(|e| Error::corrupt("key index", e))?;
        out.push((id, take()?, take()?, take()?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_sort_numerically() {
        let mut a = vec![];
        encode_field(&mut a, b"9", Kind::Int);
        let mut b = vec![];
        encode_field(&mut b, b"10", Kind::Int);
        let mut c = vec![];
        encode_field(&mut c, b"-5", Kind::Int);
        assert!(c < a && a < b);
    }

    #[test]
    fn key_sets_round_trip() {
        let def: TableDef = serde_json::from_value(serde_json::json!({
            "schema": "s", "name": "t",
            "columns": [{"name": "id", "type": "bigint"}, {"name": "v", "type": "text"}],
            "primary_key": ["id"], "owner": {"kind": "column", "column": "tenant_id"}
        }))
        .unwrap();
        let codec = KeyCodec::for_table(&def).unwrap();
        let mut list = KeyList::default();
        list.push_row(&codec, b"10\tx", 7);
        list.push_row(&codec, b"9\ty", 8);
        let (min, max, set) = encode_list(&list);
        let set = decode_set(&set).unwrap();
        let key = |v: &str| codec.key_of(&[("id".into(), v.into())]).unwrap();
        assert_eq!((min, max), (key("9"), key("10")));
        assert_eq!(lookup(&set, &key("10")), Some(7));
        assert_eq!(lookup(&set, &key("9")), Some(8));
        assert_eq!(lookup(&set, &key("11")), None);
    }
}
