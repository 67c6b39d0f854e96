//! Wrapping data keys to tenants, and sealing blocks to data keys.

use std::io::{Read, Seek, SeekFrom, Write};
use std::iter;

use age::secrecy::ExposeSecret;
use age::Decryptor;
use zeroize::Zeroizing;

use crate::datakey::{DataKey, DataRecipient};
use crate::error::{corrupt, from_decrypt, Error, Result};
use crate::identity::TenantIdentities;
use crate::recipient::TenantRecipient;

/// age's STREAM chunk size and per-chunk tag, used only to size output buffers.
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

/// Wraps (age-encrypts) the data key's secret to `recipients`: the tenant's keys plus,
/// optionally, an operator escrow key. Output is a binary age file.
///
/// The plaintext is exactly the `AGE-SECRET-KEY-1...` string, so in an emergency a
/// tenant can recover with stock tools: `age -d -i tenant.key wrapped > data.key`,
/// then `age -d -i data.key block`.
pub fn wrap(key: &DataKey, recipients: &[TenantRecipient]) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    let secret = key.secret_string();
    encrypt(
        recipients.iter().map(TenantRecipient::as_age),
        secret.expose_secret().as_bytes(),
    )
}

/// Unwraps a data key with any of the tenant's identities.
///
/// [`Error::WrongKey`] if none of them is a recipient, [`Error::Corrupt`] if the file
/// is damaged or truncated.
pub fn unwrap(wrapped: &[u8], ids: &TenantIdentities) -> Result<DataKey> {
    // The secret is ~74 bytes; a generous fixed capacity means read_to_end never
    // reallocates and leaves an un-zeroized copy behind.
    let mut plain = Zeroizing::new(Vec::with_capacity(256));
    decrypt(wrapped, ids.as_age(), &mut plain)?;
    let text = std::str::from_utf8(&plain).map_err(|_| corrupt("wrapped key is not valid text"))?;
    DataKey::from_secret_str(text).ok_or_else(|| corrupt("wrapped payload is not a data key"))
}

/// Encrypts one block (already compressed) to the tenant's data recipient.
pub fn seal(to: &DataRecipient, plaintext: &[u8]) -> Result<Vec<u8>> {
    encrypt(iter::once(to.as_age() as &dyn age::Recipient), plaintext)
}

/// Decrypts one block with the data key.
///
/// [`Error::WrongKey`] means the block belongs to a different data key;
/// [`Error::Corrupt`] means a bad header, MAC failure or truncated payload.
///
/// X25519 recipients are anonymous, so damage *inside the recipient stanza itself*
/// is indistinguishable from a foreign key and also reports `WrongKey`; damage to the
/// header MAC or anywhere in the payload reports `Corrupt`.
pub fn open(key: &DataKey, ciphertext: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(ciphertext.len());
    decrypt(
        ciphertext,
        iter::once(key.identity() as &dyn age::Identity),
        &mut out,
    )?;
    Ok(out)
}

/// Where the payload's first chunk starts in an age file sealed by [`seal`]: the header and the
/// 16-byte payload nonce come first. Computed from the lengths, as the chunks' length is a
/// function of the plaintext length.
pub fn payload_start(sealed_len: usize, plaintext_len: usize) -> usize {
    let chunks = plaintext_len.div_ceil(CHUNK).max(1);
    sealed_len.saturating_sub(plaintext_len + chunks * TAG)
}

/// An upper bound of the length of an age file to one X25519 recipient sealing `plaintext_len`
/// bytes (header, nonce, and a tag per chunk): to size its buffer once.
pub fn sealed_capacity(plaintext_len: usize) -> usize {
    plaintext_len + plaintext_len.div_ceil(CHUNK).max(1) * TAG + 1024
}

/// The byte range of a sealed file that holds the plaintext bytes `offset..offset + len`: the
/// whole STREAM chunks that cover them (each chunk is authenticated on its own). `start` is
/// where the payload's chunks begin ([`payload_start`]), `total` the sealed file's length.
pub fn chunk_range(start: u64, total: u64, offset: u64, len: u64) -> std::ops::Range<u64> {
    let sealed_chunk = (CHUNK + TAG) as u64;
    // From the byte before the range (see `open_range`).
    let first = offset.saturating_sub(1) / CHUNK as u64;
    let last = (offset + len.max(1) - 1) / CHUNK as u64;
    let from = start + first * sealed_chunk;
    (from.min(total))..(start + (last + 1) * sealed_chunk).min(total)
}

/// Decrypts `len` plaintext bytes at `offset` of a sealed file of `total` bytes from two parts
/// of it: its beginning up to the first chunk (`head`: header and nonce; its length is the
/// payload start) and exactly the chunks [`chunk_range`] gives for the range (`window`). Each
/// chunk is authenticated. Parts that do not fit the lengths, and ranges beyond the plaintext,
/// are refused before anything is decrypted.
pub fn open_range(
    key: &DataKey,
    head: &[u8],
    window: &[u8],
    total: u64,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>> {
    let start = head.len() as u64;
    let sealed_chunk = (CHUNK + TAG) as u64;
    let payload = total
        .checked_sub(start)
        .ok_or_else(|| corrupt("the header is longer than the file"))?;
    let plaintext_len = payload - payload.div_ceil(sealed_chunk).max(1) * TAG as u64;
    if payload < TAG as u64
        || offset
            .checked_add(len as u64)
            .is_none_or(|end| end > plaintext_len)
    {
        return Err(corrupt("the range lies outside the sealed file"));
    }
    let range = chunk_range(start, total, offset, len as u64);
    if window.len() as u64 != range.end - range.start {
        return Err(corrupt("the chunks given do not cover the range"));
    }
    if len == 0 {
        return Ok(vec![]);
    }
    let source = Parts {
        head,
        window_start: range.start,
        window,
        total,
        pos: 0,
    };
    let dec = Decryptor::new(source).map_err(from_decrypt)?;
    let mut reader = dec
        .decrypt(iter::once(key.identity() as &dyn age::Identity))
        .map_err(from_decrypt)?;
    let failed = |e: std::io::Error| corrupt(format!("payload failed authentication: {e}"));
    // Seeking to the first byte of a chunk makes age look at the file's last chunk (to tell
    // the end of the file); seeking to the byte before, and skipping it, needs only the chunks
    // that `chunk_range` gives.
    reader
        .seek(SeekFrom::Start(offset.saturating_sub(1)))
        .map_err(failed)?;
    if offset > 0 {
        reader.read_exact(&mut [0u8]).map_err(failed)?;
    }
    let mut out = vec![0; len];
    reader.read_exact(&mut out).map_err(failed)?;
    Ok(out)
}

/// A sealed file of which only the head and one window of chunks are at hand.
struct Parts<'a> {
    head: &'a [u8],
    window_start: u64,
    window: &'a [u8],
    total: u64,
    pos: u64,
}

impl Read for Parts<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (part, start) = if self.pos < self.head.len() as u64 {
            (self.head, 0)
        } else if self.pos >= self.window_start
            && self.pos < self.window_start + self.window.len() as u64
        {
            (self.window, self.window_start)
        } else if self.pos >= self.total {
            return Ok(0);
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the part of the sealed file needed was not fetched",
            ));
        };
        let at = (self.pos - start) as usize;
        let n = buf.len().min(part.len() - at);
        buf[..n].copy_from_slice(&part[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Parts<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.total.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

fn encrypt<'a>(
    recipients: impl Iterator<Item = &'a dyn age::Recipient>,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let out = Vec::with_capacity(sealed_capacity(plaintext.len()));
    let mut w = crate::stream::start(recipients, out)?;
    w.write_all(plaintext)?;
    Ok(w.finish()?)
}

fn decrypt<'a>(
    ciphertext: &[u8],
    ids: impl Iterator<Item = &'a dyn age::Identity>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let dec = Decryptor::new_buffered(ciphertext).map_err(from_decrypt)?;
    let mut reader = dec.decrypt(ids).map_err(from_decrypt)?;
    // The source is an in-memory slice, so any read error is damage or truncation.
    reader
        .read_to_end(out)
        .map_err(|e| corrupt(format!("payload failed authentication: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[test]
    fn ranges_of_a_sealed_file_open_on_their_own() {
        let key = DataKey::generate();
        for size in [
            0usize,
            1,
            1000,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK,
            3 * CHUNK + 77,
        ] {
            let plain: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let sealed = seal(&key.recipient(), &plain).unwrap();
            let start = payload_start(sealed.len(), plain.len());
            let head = &sealed[..start];
            let total = sealed.len() as u64;
            let cases = [
                (0, size),
                (0, size.min(1)),
                (size / 2, size - size / 2),
                (size.saturating_sub(1), size.min(1)),
                (CHUNK.min(size), size - CHUNK.min(size)),
            ];
            for (offset, len) in cases {
                let r = chunk_range(start as u64, total, offset as u64, len as u64);
                let window = &sealed[r.start as usize..r.end as usize];
                let got = open_range(&key, head, window, total, offset as u64, len)
                    .unwrap_or_else(|e| panic!("size {size} range {offset}+{len} {r:?}: {e}"));
                assert_eq!(
                    got,
                    plain[offset..offset + len],
                    "size {size} range {offset}+{len}"
                );
            }
            if size > 2 * CHUNK {
                // A flipped bit in the window fails authentication; a window too short fails.
                let r = chunk_range(start as u64, total, CHUNK as u64, 10);
                let mut window = sealed[r.start as usize..r.end as usize].to_vec();
                window[5] ^= 1;
                assert!(open_range(&key, head, &window, total, CHUNK as u64, 10).is_err());
                let window = &sealed[r.start as usize..r.end as usize - 1];
                assert!(open_range(&key, head, window, total, CHUNK as u64, 10).is_err());
                let other = DataKey::generate();
                let window = &sealed[r.start as usize..r.end as usize];
                assert!(matches!(
                    open_range(&other, head, window, total, CHUNK as u64, 10),
                    Err(Error::WrongKey)
                ));
            }
        }
    }
}
