//! Blocks: the unit of compression, encryption and record lookup.
//!
//! A block holds whole rows (COPY text lines) of one tenant and one table. It is sealed on its own
//! (zstd, then age to the tenant's data key), so any block can be read back with one ranged GET.
//! Its id is a keyed BLAKE3 hash of the plaintext under a per-tenant key: equal blocks of one tenant
//! share an id (and are stored once), while ids say nothing across tenants.

use super::manifest::{BlockRef, PackRef};
use crate::error::{Error, Result};
use std::io::Write;
use zeroize::Zeroizing;

/// zstd level: 1. Measured on the 2,003-tenant benchmark, level 1 backs up about 5% faster than
/// level 3 with no larger output: blocks are small and per tenant, so the extra search of level 3
/// finds little.
const ZSTD_LEVEL: i32 = 1;

/// A tenant's id key: keys the block ids and the row checksums. Never printed.
pub struct IdKey {
    block: Zeroizing<[u8; 32]>,
    row: Zeroizing<[u8; 32]>,
    raw: Zeroizing<[u8; 32]>,
}

impl IdKey {
    pub fn generate() -> Self {
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        Self::from_bytes(raw)
    }

    pub fn from_bytes(raw: [u8; 32]) -> Self {
        IdKey {
            block: Zeroizing::new(blake3::derive_key("tenant-vault v1 block id", &raw)),
            row: Zeroizing::new(blake3::derive_key("tenant-vault v1 row checksum", &raw)),
            raw: Zeroizing::new(raw),
        }
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.raw
    }

    /// Id of a block of `table` (`schema.table`): hex keyed hash of the table name and plaintext.
    pub fn block_id(&self, table: &str, plaintext: &[u8]) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.block);
        h.update(table.as_bytes());
        h.update(&[0]);
        h.update(plaintext);
        h.finalize().to_hex()[..48].to_string()
    }

    /// Ledger entry of an erased record: keyed hash of the table and its encoded key, so the
    /// ledger (stored in the clear beside the archives) names no one.
    pub fn erasure_hash(&self, table: &str, key: &[u8]) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.row);
        h.update(b"erased\0");
        h.update(table.as_bytes());
        h.update(&[0]);
        h.update(key);
        h.finalize().to_hex()[..32].to_string()
    }

    /// How the audit trail names a record of `table` given as `column=value,…`: a keyed hash, so
    /// that the trail quotes no key value, while whoever holds the vault can check a candidate.
    pub fn audit_name(&self, table: &str, key_text: &str) -> String {
        let mut h = blake3::Hasher::new_keyed(&self.row);
        h.update(b"audit\0");
        h.update(table.as_bytes());
        h.update(&[0]);
        h.update(key_text.as_bytes());
        h.finalize().to_hex()[..32].to_string()
    }

    /// Keyed hash of one row (its COPY line without the newline).
    pub fn row_hash(&self, line: &[u8]) -> u128 {
        let h = blake3::keyed_hash(&self.row, line);
        u128::from_le_bytes(h.as_bytes()[..16].try_into().unwrap_or_default())
    }
}

/// Order-independent checksum of a multiset of rows: count plus wrapping sum of keyed row hashes.
/// Independent of order, so a demultiplexed scan, a per-tenant query and a restored table agree;
/// a sum (not xor) so duplicate rows in tables without a primary key still count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    pub rows: u64,
    pub sum: u128,
}

impl Checksum {
    pub fn add_row(&mut self, key: &IdKey, line: &[u8]) {
        self.add_hash(key.row_hash(line));
    }

    pub fn add_hash(&mut self, hash: u128) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(hash);
    }

    pub fn merge(&mut self, other: Checksum) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// The checksum without `other`'s rows (rows erased after the manifest was written).
    pub fn minus(&self, other: Checksum) -> Checksum {
        Checksum {
            rows: self.rows - other.rows.min(self.rows),
            sum: self.sum.wrapping_sub(other.sum),
        }
    }

    /// Parses the manifest's rendering back.
    pub fn from_manifest(rows: u64, hex: &str) -> Option<Checksum> {
        Some(Checksum {
            rows,
            sum: u128::from_str_radix(hex, 16).ok()?,
        })
    }

    pub fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

/// Compresses a block's plaintext (a pack seals many at once: `seal_pack`).
pub fn compress(plaintext: &[u8]) -> Result<Vec<u8>> {
    thread_local! {
        // A compression context per sealing thread: creating one per block costs more than
        // compressing a small block.
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let compressed = COMPRESSOR
        .with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
            }
            match c.as_mut() {
                Some(c) => c.compress(plaintext),
                None => Err(std::io::Error::other("no compressor")),
            }
        })
        .map_err(|e| Error::Invalid(format!("compressing a block: {e}")))?;
    // zstd allocates the bound of the plaintext; a pack keeps blocks until it is sealed.
    let mut compressed = compressed;
    compressed.shrink_to_fit();
    Ok(compressed)
}

/// Seals a pack (compressed blocks concatenated: `parts`, in order) to the tenant's data key as
/// one age file: one
/// public-key operation per pack, not per block. Each block stays readable on its own: age
/// authenticates the payload in 64 KiB chunks, and a reader fetches only the chunks that
/// cover a block (`keys::open_range`).
pub fn seal_pack<B: AsRef<[u8]>>(
    to: &keys::DataRecipient,
    name: &str,
    parts: impl IntoIterator<Item = B>,
) -> Result<(Vec<u8>, PackRef)> {
    let parts: Vec<B> = parts.into_iter().collect();
    let plain_len: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    // Sized once: a pack is large, and a doubling vector would hold up to twice its bytes.
    let mut w =
        keys::seal_stream_to_data_key(to, Vec::with_capacity(keys::sealed_capacity(plain_len)))?;
    for part in parts {
        // Each part is dropped once written, so a pack is held about once, not twice.
        w.write_all(part.as_ref()).map_err(keys::Error::Io)?;
    }
    let sealed = w.finish().map_err(keys::Error::Io)?;
    let pack = PackRef {
        name: name.to_string(),
        length: sealed.len() as u64,
        start: keys::payload_start(sealed.len(), plain_len) as u64,
        hash: sealed_hash(&sealed),
    };
    Ok((sealed, pack))
}

/// The largest block plaintext accepted: blocks are cut at twice the configured block size,
/// which `BackupTuning` keeps far below this.
pub const MAX_BLOCK: u64 = 256 << 20;

/// Decrypts and decompresses a sealed block, checking it against its id; `object` names it in
/// errors. A block that fails authentication is never returned.
pub fn open(
    key: &keys::DataKey,
    id_key: &IdKey,
    sealed: &[u8],
    table: &str,
    expected: &BlockRef,
    object: &str,
) -> Result<Vec<u8>> {
    let (expected_id, raw_len) = (expected.id.as_str(), expected.raw_length);
    if raw_len > MAX_BLOCK {
        // Never allocate what an unchecked length asks for.
        return Err(Error::corrupt(
            object,
            format!("block {expected_id} claims {raw_len} bytes, more than any block holds"),
        ));
    }
    let compressed = keys::open(key, sealed).map_err(|e| key_error(e, expected_id, object))?;
    decompress(id_key, &compressed, table, expected, object)
}

/// Decrypts a block of a sealed pack from the pack's head and the chunks that cover it (see
/// `keys::open_range`), then decompresses and checks it like [`open`].
pub fn open_in_pack(
    key: &keys::DataKey,
    id_key: &IdKey,
    part: &PackPart,
    table: &str,
    expected: &BlockRef,
    object: &str,
) -> Result<Vec<u8>> {
    let expected_id = expected.id.as_str();
    if expected.raw_length > MAX_BLOCK || expected.length > 2 * MAX_BLOCK {
        return Err(Error::corrupt(
            object,
            format!("block {expected_id} claims more bytes than any block holds"),
        ));
    }
    let compressed = keys::open_range(
        key,
        &part.head,
        &part.window,
        part.total,
        expected.offset,
        expected.length as usize,
    )
    .map_err(|e| key_error(e, expected_id, object))?;
    decompress(id_key, &compressed, table, expected, object)
}

/// The parts of a sealed pack that one block needs: the head (age header and nonce, up to the
/// payload start) and the whole chunks that cover the block (`keys::chunk_range`).
#[derive(Clone, Debug)]
pub struct PackPart {
    pub head: bytes::Bytes,
    pub window: bytes::Bytes,
    /// Bytes of the whole pack object.
    pub total: u64,
}

fn key_error(e: keys::Error, id: &str, object: &str) -> Error {
    match e {
        keys::Error::WrongKey => Error::WrongKey {
            tenant: String::new(),
            reason: format!("block {id} in {object} was sealed to a different data key"),
        },
        other => Error::corrupt(object, format!("block {id}: {other}")),
    }
}

/// Decompresses a block and checks it against its id.
fn decompress(
    id_key: &IdKey,
    compressed: &[u8],
    table: &str,
    expected: &BlockRef,
    object: &str,
) -> Result<Vec<u8>> {
    // Callers checked `raw_length` against MAX_BLOCK before decrypting.
    let (expected_id, raw_len) = (expected.id.as_str(), expected.raw_length);
    let plaintext = zstd::bulk::decompress(compressed, raw_len as usize).map_err(|e| {
        Error::corrupt(
            object,
            format!("block {expected_id} does not decompress: {e}"),
        )
    })?;
    if plaintext.len() as u64 != raw_len || id_key.block_id(table, &plaintext) != expected_id {
        return Err(Error::corrupt(
            object,
            format!("block {expected_id} does not match its id"),
        ));
    }
    Ok(plaintext)
}

/// Hash of a block's sealed bytes: lets `verify` find damage without any key (ciphertext hashes
/// reveal nothing about the plaintext).
pub fn sealed_hash(sealed: &[u8]) -> String {
    blake3::hash(sealed).to_hex()[..32].to_string()
}

/// Splits a block's plaintext into the rows to keep and the checksum of the rows `drop` selects
/// (erasure rewrites and the erasure ledger both remove rows this way).
pub fn drop_rows(
    plaintext: &[u8],
    id_key: &IdKey,
    mut drop: impl FnMut(&[u8]) -> bool,
) -> (Vec<u8>, Checksum) {
    let mut kept = Vec::with_capacity(plaintext.len());
    let mut dropped = Checksum::default();
    for row in rows(plaintext) {
        if drop(row) {
            dropped.add_row(id_key, row);
        } else {
            kept.extend_from_slice(row);
            kept.push(b'\n');
        }
    }
    (kept, dropped)
}

/// Iterates the rows (lines without newline) of a block's plaintext.
pub fn rows(plaintext: &[u8]) -> impl Iterator<Item = &[u8]> {
    plaintext.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}
