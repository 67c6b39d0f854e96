//! The compact encodings of the inventory's two largest per-tenant trees (INVENTORY.md,
//! version 3): block locations and the block lists of snapshots. At 20,000 tenants a cycle
//! writes about 120,000 block locations; as JSON with hex ids they were most of the bytes sled
//! had to write and keep.
//!
//! Numbers are LEB128 varints. An id is a length byte and its bytes: ids of lowercase hex (all
//! that tvault writes) are stored decoded, at half their length; any other id is stored as UTF-8
//! with the length byte's top bit set.

use crate::archive::manifest::BlockRef;
use crate::error::{Error, Result};

/// First byte of an encoded value of this version (JSON values of version 2 start with `{`).
const VERSION: u8 = 1;
const TEXT: u8 = 0x80;

fn is_hex(id: &str) -> bool {
    id.len().is_multiple_of(2)
        && id.len() / 2 < TEXT as usize
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_id(out: &mut Vec<u8>, id: &str) {
    if is_hex(id) {
        out.push((id.len() / 2) as u8);
        out.extend(hex::decode(id).unwrap_or_default());
    } else {
        put_text(out, id);
    }
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    // The marker, then the length as a varint: a text may be of any length.
    out.push(TEXT);
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Reads what [`put_uvarint`], [`put_id`] and [`put_text`] wrote.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn bad(&self) -> Error {
        Error::corrupt(format!("inventory {}", self.what), "truncated or malformed")
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(self.bad());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn uvarint(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(self.bad())
    }

    fn id(&mut self) -> Result<String> {
        match self.byte()? {
            TEXT => {
                let n = self.uvarint()? as usize;
                let b = self.bytes(n)?;
                String::from_utf8(b.to_vec()).map_err(|_| self.bad())
            }
            n => Ok(hex::encode(self.bytes(n as usize)?)),
        }
    }
}

/// A block location, without its id (the entry's key holds it).
pub fn encode_block(b: &BlockRef) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.push(VERSION);
    put_text(&mut out, &b.pack);
    for n in [b.offset, b.length, b.raw_length, b.rows] {
        put_uvarint(&mut out, n);
    }
    put_id(&mut out, &b.sealed_hash);
    out
}

/// A block location as [`encode_block`] wrote it, or as version 2 wrote it (JSON).
pub fn decode_block(id: &str, v: &[u8]) -> Result<BlockRef> {
    if v.first() == Some(&b'{') {
        return serde_json::from_slice(v).map_err(|e| Error::corrupt("inventory block", e));
    }
    let mut r = Reader {
        buf: v,
        what: "block",
    };
    if r.byte()? != VERSION {
        return Err(r.bad());
    }
    let pack = r.id()?;
    let mut n = [0u64; 4];
    for x in &mut n {
        *x = r.uvarint()?;
    }
    let sealed_hash = r.id()?;
    Ok(BlockRef {
        id: id.to_string(),
        pack,
        offset: n[0],
        length: n[1],
        raw_length: n[2],
        rows: n[3],
        sealed_hash,
    })
}

/// The tables of a snapshot: name, definition id and block ids of each.
pub fn encode_tables(tables: &[super::TableBlocks]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * tables.len());
    out.push(VERSION);
    put_uvarint(&mut out, tables.len() as u64);
    for t in tables {
        put_text(&mut out, &t.table);
        put_id(&mut out, &t.def);
        put_uvarint(&mut out, t.blocks.len() as u64);
        for b in &t.blocks {
            put_id(&mut out, b);
        }
    }
    out
}

/// One table of what [`encode_tables`] wrote: its definition id and block ids.
pub fn decode_table(v: &[u8], table: &str) -> Result<Option<(String, Vec<String>)>> {
    let mut r = Reader {
        buf: v,
        what: "snapshot blocks",
    };
    if r.byte()? != VERSION {
        return Err(r.bad());
    }
    for _ in 0..r.uvarint()? {
        let name = r.id()?;
        let def = r.id()?;
        let n = r.uvarint()?;
        if name != table {
            for _ in 0..n {
                r.id()?;
            }
            continue;
        }
        let blocks = (0..n).map(|_| r.id()).collect::<Result<Vec<_>>>()?;
        return Ok(Some((def, blocks)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::TableBlocks;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{0,64}".prop_filter("even", |s| s.len().is_multiple_of(2)),
            ".{0,300}",
        ]
    }

    proptest! {
        #[test]
        fn blocks_round_trip(
            id in id(), pack in id(), sealed in id(),
            n in proptest::array::uniform4(any::<u64>()),
        ) {
            let b = BlockRef {
                id: id.clone(), pack, offset: n[0], length: n[1], raw_length: n[2], rows: n[3],
                sealed_hash: sealed,
            };
            let back = decode_block(&id, &encode_block(&b)).unwrap();
            prop_assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&b).unwrap());
        }

        #[test]
        fn tables_round_trip(tables in proptest::collection::vec(
            (id(), id(), proptest::collection::vec(id(), 0..5)), 0..6)) {
            let list: Vec<TableBlocks> = tables.iter().map(|(t, d, b)| TableBlocks {
                table: t.clone(), def: d.clone(), blocks: b.clone(),
            }).collect();
            let v = encode_tables(&list);
            for t in &list {
                // The first table of that name is the one found.
                let first = list.iter().find(|x| x.table == t.table).unwrap();
                let got = decode_table(&v, &t.table).unwrap().unwrap();
                prop_assert_eq!(got, (first.def.clone(), first.blocks.clone()));
            }
            let absent = "\u{1}absent";
            prop_assert!(decode_table(&v, absent).unwrap().is_none());
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_block("x", &v);
            let _ = decode_table(&v, "t");
        }
    }

    #[test]
    fn version_2_json_still_reads() {
        let json = br#"{"id":"ab","pack":"p","offset":1,"length":2,"raw_length":3,"rows":4}"#;
        let b = decode_block("ab", json).unwrap();
        assert_eq!((b.pack.as_str(), b.offset, b.rows), ("p", 1, 4));
    }
}
