//! Streaming age files: exports and spools too large to hold in memory.
//!
//! [`seal_stream`] encrypts whatever is written to it to the tenant's recipients (an export);
//! [`seal_stream_to_data_key`] to a data recipient (a spool under a throwaway key).
//! [`open_stream`] and [`open_stream_with_data_key`] decrypt as they are read. age authenticates
//! every 64 KiB chunk and the end of the file, so a damaged or truncated stream fails while it
//! is read, never silently.

use std::io::{Read, Write};
use std::iter;

use age::{Decryptor, EncryptError, Encryptor};

use crate::datakey::{DataKey, DataRecipient};
use crate::error::{from_decrypt, Error, Result};
use crate::identity::TenantIdentities;
use crate::recipient::TenantRecipient;

/// A writer that encrypts to age recipients; [`SealWriter::finish`] writes the last chunk.
pub struct SealWriter<W: Write> {
    inner: age::stream::StreamWriter<W>,
}

impl<W: Write> SealWriter<W> {
    /// Ends the age file (the last chunk is marked as such) and returns the output.
    pub fn finish(self) -> std::io::Result<W> {
        self.inner.finish()
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Starts an age file (binary format) to the tenant's recipients on `out`.
pub fn seal_stream<W: Write>(recipients: &[TenantRecipient], out: W) -> Result<SealWriter<W>> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    start(recipients.iter().map(TenantRecipient::as_age), out)
}

/// Starts an age file to a data recipient on `out`.
pub fn seal_stream_to_data_key<W: Write>(to: &DataRecipient, out: W) -> Result<SealWriter<W>> {
    start(iter::once(to.as_age() as &dyn age::Recipient), out)
}

/// An age file to `recipients` on `out`, with the crate's errors (shared by [`crate::seal`]).
pub(crate) fn start<'a, W: Write>(
    recipients: impl Iterator<Item = &'a dyn age::Recipient>,
    out: W,
) -> Result<SealWriter<W>> {
    let enc = Encryptor::with_recipients(recipients).map_err(|e| match e {
        EncryptError::MissingRecipients => Error::NoRecipients,
        EncryptError::Io(e) => Error::Io(e),
        other => Error::InvalidRecipient {
            input: String::new(),
            reason: other.to_string(),
        },
    })?;
    Ok(SealWriter {
        inner: enc.wrap_output(out)?,
    })
}

/// Opens an age file with any of the tenant's identities; the plaintext is read from the
/// returned reader. [`Error::WrongKey`] when none of them is a recipient. Damage later in the
/// stream surfaces as a read error (`InvalidData`).
pub fn open_stream<R: Read>(input: R, ids: &TenantIdentities) -> Result<impl Read> {
    let dec = Decryptor::new(input).map_err(from_decrypt)?;
    dec.decrypt(ids.as_age()).map_err(from_decrypt)
}

/// Opens an age file sealed to a data key.
pub fn open_stream_with_data_key<R: Read>(input: R, key: &DataKey) -> Result<impl Read> {
    let dec = Decryptor::new(input).map_err(from_decrypt)?;
    dec.decrypt(iter::once(key.identity() as &dyn age::Identity))
        .map_err(from_decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate_identity_file;

    #[test]
    fn a_stream_round_trips_and_a_flipped_byte_fails() {
        let (secret, public) = generate_identity_file();
        let ids = TenantIdentities::from_str_secret(&secret).unwrap();
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = seal_stream(&[public], Vec::new()).unwrap();
        w.write_all(&plain).unwrap();
        let sealed = w.finish().unwrap();
        let mut got = vec![];
        open_stream(&sealed[..], &ids)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, plain);
        for at in [sealed.len() / 2, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            let mut out = vec![];
            assert!(open_stream(&bad[..], &ids)
                .unwrap()
                .read_to_end(&mut out)
                .is_err());
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open_stream(&longer[..], &ids)
            .unwrap()
            .read_to_end(&mut vec![])
            .is_err());
        let (other, _) = generate_identity_file();
        let other = TenantIdentities::from_str_secret(&other).unwrap();
        assert!(matches!(
            open_stream(&sealed[..], &other).err(),
            Some(Error::WrongKey)
        ));
    }
}
