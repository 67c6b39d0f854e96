//! Wrapping data keys to tenants, and sealing blocks to data keys.

use std::io::{Read, Write};
use std::iter;

use age::secrecy::ExposeSecret;
use age::{Decryptor, EncryptError, Encryptor};
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

fn encrypt<'a>(
    recipients: impl Iterator<Item = &'a dyn age::Recipient>,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let enc = Encryptor::with_recipients(recipients).map_err(|e| match e {
        EncryptError::MissingRecipients => Error::NoRecipients,
        EncryptError::Io(e) => Error::Io(e),
        other => Error::InvalidRecipient {
            input: String::new(),
            reason: other.to_string(),
        },
    })?;
    let chunks = plaintext.len() / CHUNK + 1;
    let mut out = Vec::with_capacity(plaintext.len() + chunks * TAG + 1024);
    let mut w = enc.wrap_output(&mut out)?;
    w.write_all(plaintext)?;
    w.finish()?;
    Ok(out)
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
