//! The container of an export: a tar archive, compressed with zstd, encrypted with age to the
//! tenant's recipients (docs/EXPORT.md). Stock tools open it:
//! `age -d -i tenant.key export.tvx | zstd -d | tar x`.
//!
//! Written as a stream with bounded memory. A tar entry's header gives its size before its
//! bytes, which a table being read from the database does not know yet; so each data file is
//! first compressed into a [`Spool`] (in memory while small, then in a temporary file sealed to
//! a throwaway key, so no plaintext touches the disk), and its compressed frames are then copied
//! behind a frame holding its header. zstd decodes concatenated frames as one stream, so the
//! data is compressed exactly once.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

/// zstd level of data files (the level of `zstd` itself).
const LEVEL: i32 = 3;
/// A spool stays in memory up to this many compressed bytes.
const SPOOL_IN_MEMORY: usize = 8 << 20;

/// Writes the entries of an export, one after another.
pub struct BundleWriter<W: Write> {
    out: keys::SealWriter<W>,
    /// Modification time of every entry (the export's start).
    mtime: u64,
}

fn io(context: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        context: context.to_string(),
        source: e,
    }
}

impl<W: Write> BundleWriter<W> {
    pub fn new(recipients: &[keys::TenantRecipient], out: W) -> Result<Self> {
        Ok(BundleWriter {
            out: keys::seal_stream(recipients, out)?,
            mtime: time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64,
        })
    }

    fn frame(&mut self, bytes: &[u8], level: i32) -> Result<()> {
        let mut enc = zstd::Encoder::new(&mut self.out, level).map_err(io("compressing"))?;
        enc.write_all(bytes).map_err(io("writing the export"))?;
        enc.finish().map_err(io("writing the export"))?;
        Ok(())
    }

    /// Adds a small file held in memory.
    pub fn add(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let mut bytes = tar_header(name, data.len() as u64, self.mtime)?;
        bytes.extend_from_slice(data);
        bytes.resize(bytes.len() + padding(data.len() as u64), 0);
        self.frame(&bytes, LEVEL)
    }

    /// Starts a file of `size` bytes given in pieces by [`Self::raw`] (already-encrypted
    /// bytes, which do not compress: stored with the fastest level).
    pub fn begin_raw(&mut self, name: &str, size: u64) -> Result<()> {
        let header = tar_header(name, size, self.mtime)?;
        self.frame(&header, LEVEL)
    }

    pub fn raw(&mut self, data: &[u8]) -> Result<()> {
        self.frame(data, 1)
    }

    /// Ends a file begun with [`Self::begin_raw`] once all its `size` bytes were given.
    pub fn end_raw(&mut self, size: u64) -> Result<()> {
        self.pad(size)
    }

    /// Adds a spooled data file: its header, then its compressed frames as they are.
    pub fn add_spooled(&mut self, name: &str, spooled: Spooled) -> Result<()> {
        let header = tar_header(name, spooled.raw_len, self.mtime)?;
        self.frame(&header, LEVEL)?;
        let size = spooled.raw_len;
        spooled.copy_to(&mut self.out)?;
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        match padding(size) {
            0 => Ok(()),
            n => self.frame(&vec![0; n], LEVEL),
        }
    }

    /// Ends the archive (two zero records) and the age file.
    pub fn finish(mut self) -> Result<W> {
        self.frame(&[0; 1024], LEVEL)?;
        self.out.finish().map_err(io("finishing the export"))
    }
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// The header records of one regular file (with a GNU long-name record first when the name does
/// not fit), as the tar crate writes them.
fn tar_header(name: &str, size: u64, mtime: u64) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header, name, std::io::empty())
        .map_err(|e| Error::Invalid(format!("cannot name {name:?} in an export: {e}")))?;
    // Dropping the builder would write the end-of-archive records into the Vec taken here.
    Ok(std::mem::take(b.get_mut()))
}

/// A data file being written: counted, hashed (SHA-256) and compressed into memory or a sealed
/// temporary file.
pub struct Spool {
    enc: zstd::Encoder<'static, Sink>,
    raw_len: u64,
    sha: Sha256,
    dir: PathBuf,
}

/// A finished spool.
pub struct Spooled {
    raw_len: u64,
    pub sha256: String,
    sink: Sink,
}

enum Sink {
    Memory(Vec<u8>),
    File {
        dir: PathBuf,
        writer: Option<keys::SealWriter<std::fs::File>>,
        key: keys::DataKey,
    },
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Memory(v) if v.len() + buf.len() <= SPOOL_IN_MEMORY => {
                v.extend_from_slice(buf);
                Ok(buf.len())
            }
            Sink::Memory(_) => Err(std::io::Error::other("spool not moved to a file")),
            Sink::File { writer, .. } => writer
                .as_mut()
                .ok_or_else(|| std::io::Error::other("spool already finished"))?
                .write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Spool {
    /// A spool that moves to a temporary file in `dir` once it outgrows memory.
    pub fn new(dir: &Path) -> Result<Spool> {
        Ok(Spool {
            enc: zstd::Encoder::new(Sink::Memory(Vec::new()), LEVEL).map_err(io("compressing"))?,
            raw_len: 0,
            sha: Sha256::new(),
            dir: dir.to_path_buf(),
        })
    }

    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.raw_len += data.len() as u64;
        self.sha.update(data);
        if let Sink::Memory(v) = self.enc.get_ref() {
            if v.len() + data.len() + (1 << 17) > SPOOL_IN_MEMORY {
                self.spill()?;
            }
        }
        self.enc.write_all(data).map_err(io("spooling export data"))
    }

    fn spill(&mut self) -> Result<()> {
        let dir = self.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io("creating the spool directory"))?;
        let file = tempfile::tempfile_in(&dir).map_err(io("creating a spool file"))?;
        let key = keys::DataKey::generate();
        let mut writer = keys::seal_stream_to_data_key(&key.recipient(), file)?;
        let sink = self.enc.get_mut();
        if let Sink::Memory(v) = sink {
            writer.write_all(v).map_err(io("writing a spool file"))?;
        }
        *sink = Sink::File {
            dir,
            writer: Some(writer),
            key,
        };
        Ok(())
    }

    pub fn finish(self) -> Result<Spooled> {
        let sink = self.enc.finish().map_err(io("spooling export data"))?;
        Ok(Spooled {
            raw_len: self.raw_len,
            sha256: hex::encode(self.sha.finalize()),
            sink,
        })
    }
}

impl Spooled {
    /// Bytes of the data file (before compression).
    pub fn size(&self) -> u64 {
        self.raw_len
    }

    fn copy_to(self, out: &mut impl Write) -> Result<()> {
        match self.sink {
            Sink::Memory(v) => out.write_all(&v).map_err(io("writing the export")),
            Sink::File { writer, key, dir } => {
                let mut file = writer
                    .ok_or_else(|| Error::Invalid("spool already read".into()))?
                    .finish()
                    .map_err(io("writing a spool file"))?;
                file.rewind().map_err(io("reading a spool file"))?;
                let mut plain = keys::open_stream_with_data_key(file, &key)?;
                std::io::copy(&mut plain, out)
                    .map_err(io(&format!("reading a spool file in {}", dir.display())))?;
                Ok(())
            }
        }
    }
}
