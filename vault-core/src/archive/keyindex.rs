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

/// Keys of one block, appended without a heap allocation per key.
#[derive(Default)]
pub struct KeyList {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl KeyList {
    pub fn push_row(&mut self, codec: &KeyCodec, row: &[u8]) {
        codec.row_key_into(row, &mut self.bytes);
        self.ends.push(self.bytes.len() as u32);
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(a, b)| &self.bytes[a as usize..b as usize])
    }
}

/// Sorts, deduplicates and compresses a block's keys; returns (min, max, set).
pub fn encode_list(list: &KeyList) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut keys: Vec<&[u8]> = list.iter().collect();
    keys.sort_unstable();
    keys.dedup();
    let min = keys.first().map(|k| k.to_vec()).unwrap_or_default();
    let max = keys.last().map(|k| k.to_vec()).unwrap_or_default();
    (min, max, compress_sorted(&keys))
}

/// Sorts, deduplicates and compresses a block's keys.
pub fn encode_set(mut keys: Vec<Vec<u8>>) -> Vec<u8> {
    keys.sort_unstable();
    keys.dedup();
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    compress_sorted(&refs)
}

fn compress_sorted(keys: &[&[u8]]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(keys.iter().map(|k| k.len() + 4).sum());
    for k in keys {
        raw.extend_from_slice(&(k.len() as u32).to_le_bytes());
        raw.extend_from_slice(k);
    }
    zstd::bulk::compress(&raw, 3).unwrap_or_default()
}

/// Decodes a key set made by [`encode_set`]; keys come back sorted.
pub fn decode_set(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let raw = zstd::stream::decode_all(bytes)
        .map_err(|e| Error::corrupt("key set", format!("does not decompress: {e}")))?;
    let mut keys = vec![];
    let mut i = 0;
    while i + 4 <= raw.len() {
        let n = u32::from_le_bytes(raw[i..i + 4].try_into().unwrap_or_default()) as usize;
        let end = i + 4 + n;
        if end > raw.len() {
            return Err(Error::corrupt("key set", "truncated"));
        }
        keys.push(raw[i + 4..end].to_vec());
        i = end;
    }
    Ok(keys)
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
        let keys = vec![b"b".to_vec(), b"a".to_vec(), b"b".to_vec()];
        assert_eq!(
            decode_set(&encode_set(keys)).unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
    }
}
