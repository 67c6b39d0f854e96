//! Opening an export with the tenant's identity (`tvault open`): needs no vault, only the file
//! and the key.
//!
//! The whole file is one age stream, so a wrong key fails at once and any damaged or truncated
//! byte fails the read that reaches it (the end of the stream is authenticated too, and is read
//! before anything is reported as done). Entry names are checked before anything is written:
//! only plain names, `keys/<name>` and `packs/<name>`. A sealed export is converted here:
//! every block is checked against its id, and every table of a whole snapshot against the
//! snapshot's row count and keyed checksum.

use super::format::{Format, RowWriter};
use super::{
    data_file, deleted_file, load_script, readme, DeletedFile, ExportManifest, ExportedTable,
    SealedDescription, SealedPack, SealedTable, EXPORT_VERSION,
};
use crate::archive::block::{self, Checksum, PackPart};
use crate::archive::manifest::BlockRef;
use crate::copytext;
use crate::error::{Error, Result};
use crate::restore::Fetched;
use crate::source::postgres::catalog::ColumnDef;
use crate::tenant::Unlocked;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct OpenOptions {
    /// A directory that does not exist yet or is empty.
    pub out_dir: PathBuf,
    /// The format of the data files of a sealed export (default: the one it was made with).
    pub format: Option<Format>,
}

#[derive(Debug, Serialize)]
pub struct OpenReport {
    pub tenant: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    pub format: Format,
    pub sealed: bool,
    pub out_dir: String,
    pub tables: Vec<ExportedTable>,
}

const EXPORT: &str = "the export";
/// Largest small file (keys, descriptions, DDL) read into memory.
const SMALL: u64 = 256 << 20;

fn damaged(e: std::io::Error) -> Error {
    Error::corrupt(EXPORT, format!("damaged or truncated: {e}"))
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        context: format!("writing {}", path.display()),
        source: e,
    }
}

/// An entry name is a plain file name, or one under `keys/` or `packs/`.
fn entry_name(path: &Path) -> Option<(Option<&'static str>, String)> {
    let text = path.to_str()?;
    let (dir, name) = match text.split_once('/') {
        None => (None, text),
        Some(("keys", n)) => (Some("keys"), n),
        Some(("packs", n)) => (Some("packs"), n),
        Some(_) => return None,
    };
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'%'));
    plain.then(|| (dir, name.to_string()))
}

/// Opens an export read from `input` into `opts.out_dir`.
pub fn open_export(
    input: impl Read,
    ids: &keys::TenantIdentities,
    opts: &OpenOptions,
) -> Result<OpenReport> {
    let out = &opts.out_dir;
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(write_err(out))?
            .next()
            .is_some()
    {
        return Err(Error::Conflict(format!(
            "{} is not empty: open the export into a new directory",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(write_err(out))?;
    let plain = keys::open_stream(input, ids).map_err(|e| match e {
        keys::Error::WrongKey => Error::WrongKey {
            tenant: String::new(),
            reason: "the export was sealed to other keys than the identity given".into(),
        },
        keys::Error::Corrupt { reason } => Error::corrupt(EXPORT, reason),
        other => other.into(),
    })?;
    let decoder = zstd::stream::read::Decoder::new(plain).map_err(damaged)?;
    let mut archive = tar::Archive::new(decoder);
    let packs_dir = out.join(".packs");
    let mut sealed: Option<SealedDescription> = None;
    let mut key_files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut written: Vec<String> = vec![];
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(Error::corrupt(EXPORT, "an entry is not a regular file"));
        }
        let path = entry.path().map_err(damaged)?.into_owned();
        let Some((dir, name)) = entry_name(&path) else {
            return Err(Error::corrupt(
                EXPORT,
                format!("an entry has a name an export never has: {:?}", path),
            ));
        };
        let size = entry.header().size().map_err(damaged)?;
        match (dir, name.as_str()) {
            (Some("keys"), _) | (None, "export.json") => {
                if size > SMALL {
                    return Err(Error::corrupt(EXPORT, format!("{name} is too large")));
                }
                let mut bytes = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut bytes).map_err(damaged)?;
                if dir.is_some() {
                    key_files.insert(name, bytes);
                } else {
                    sealed = Some(parse_description(&bytes)?);
                }
            }
            (Some(_), _) => {
                std::fs::create_dir_all(&packs_dir).map_err(write_err(&packs_dir))?;
                let to = packs_dir.join(&name);
                let mut f = File::create(&to).map_err(write_err(&to))?;
                std::io::copy(&mut entry, &mut f).map_err(damaged)?;
            }
            (None, "README.txt" | "blocks.tsv") if sealed.is_some() => {
                std::io::copy(&mut entry, &mut std::io::sink()).map_err(damaged)?;
            }
            (None, _) => {
                let to = out.join(&name);
                let mut f = File::create(&to).map_err(write_err(&to))?;
                std::io::copy(&mut entry, &mut f).map_err(damaged)?;
                written.push(name);
            }
        }
    }
    // The end of the age stream authenticates the end of the export: read it.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(damaged)?;
    let report = match sealed {
        Some(d) => {
            let r = convert_sealed(&d, &key_files, ids, opts, &packs_dir);
            let _ = std::fs::remove_dir_all(&packs_dir);
            r?
        }
        None => check_plain(out, opts)?,
    };
    Ok(report)
}

fn parse_description(bytes: &[u8]) -> Result<SealedDescription> {
    let d: SealedDescription =
        serde_json::from_slice(bytes).map_err(|e| Error::corrupt("export.json", e))?;
    if d.format != SealedDescription::FORMAT || d.version != EXPORT_VERSION {
        return Err(Error::corrupt(
            "export.json",
            format!(
                "format {:?} version {}: this tvault opens version {EXPORT_VERSION}",
                d.format, d.version
            ),
        ));
    }
    Ok(d)
}

/// Checks the files of a live export against its manifest.
fn check_plain(out: &Path, opts: &OpenOptions) -> Result<OpenReport> {
    let path = out.join("manifest.json");
    let bytes = std::fs::read(&path)
        .map_err(|_| Error::corrupt(EXPORT, "it has no manifest.json (is it an export?)"))?;
    let m: ExportManifest =
        serde_json::from_slice(&bytes).map_err(|e| Error::corrupt("manifest.json", e))?;
    if m.format != ExportManifest::FORMAT || m.version != EXPORT_VERSION {
        return Err(Error::corrupt(
            "manifest.json",
            format!(
                "format {:?} version {}: this tvault opens version {EXPORT_VERSION}",
                m.format, m.version
            ),
        ));
    }
    if opts.format.is_some_and(|f| f != m.data_format) {
        return Err(Error::Invalid(format!(
            "this export holds {} files, written when it was made; --format applies to sealed exports only",
            m.data_format.name()
        )));
    }
    for t in &m.tables {
        let file = out.join(&t.file);
        let mut f = File::open(&file)
            .map_err(|_| Error::corrupt(EXPORT, format!("{} is missing", t.file)))?;
        let mut sha = Sha256::new();
        let len = std::io::copy(&mut f, &mut sha).map_err(damaged)?;
        if len != t.bytes || hex::encode(sha.finalize()) != t.sha256 {
            return Err(Error::corrupt(
                &t.file,
                "the data file does not match manifest.json",
            ));
        }
    }
    Ok(OpenReport {
        tenant: m.tenant,
        kind: m.kind,
        snapshot: m.snapshot,
        since: m.since,
        format: m.data_format,
        sealed: false,
        out_dir: out.display().to_string(),
        tables: m.tables,
    })
}

/// A data file being written: counted and hashed.
struct DataOut {
    path: PathBuf,
    file: BufWriter<File>,
    sha: Sha256,
    bytes: u64,
    rows: u64,
    writer: RowWriter,
    buf: Vec<u8>,
}

impl DataOut {
    fn create<'a>(
        dir: &Path,
        name: &str,
        format: Format,
        columns: impl Iterator<Item = &'a ColumnDef>,
    ) -> Result<DataOut> {
        let path = dir.join(name);
        let file = BufWriter::new(File::create(&path).map_err(write_err(&path))?);
        let writer = RowWriter::new(format, columns);
        let mut out = DataOut {
            path,
            file,
            sha: Sha256::new(),
            bytes: 0,
            rows: 0,
            buf: writer.header().to_vec(),
            writer,
        };
        out.flush_buf()?;
        Ok(out)
    }

    fn row(&mut self, line: &[u8]) -> Result<()> {
        self.writer.row(line, &mut self.buf)?;
        self.rows += 1;
        if self.buf.len() > 1 << 20 {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<()> {
        self.sha.update(&self.buf);
        self.bytes += self.buf.len() as u64;
        self.file
            .write_all(&self.buf)
            .map_err(write_err(&self.path))?;
        self.buf.clear();
        Ok(())
    }

    /// Rows, bytes and SHA-256 of the finished file.
    fn finish(mut self) -> Result<(u64, u64, String)> {
        self.flush_buf()?;
        self.file.flush().map_err(write_err(&self.path))?;
        Ok((self.rows, self.bytes, hex::encode(self.sha.finalize())))
    }
}

/// Turns a sealed export's packs into data files.
fn convert_sealed(
    d: &SealedDescription,
    key_files: &HashMap<String, Vec<u8>>,
    ids: &keys::TenantIdentities,
    opts: &OpenOptions,
    packs_dir: &Path,
) -> Result<OpenReport> {
    let keys = unlock(d, key_files, ids)?;
    let format = opts.format.unwrap_or(d.data_format);
    let packs: HashMap<&str, &SealedPack> = d.packs.iter().map(|p| (p.name.as_str(), p)).collect();
    let reader = PackReader {
        tenant: &d.tenant,
        dir: packs_dir,
        packs,
        keys: &keys,
    };
    let out = &opts.out_dir;
    let mut tables = vec![];
    for t in &d.tables {
        let (schema, name) = (t.schema.as_str(), t.name.as_str());
        let mut data = DataOut::create(
            out,
            &data_file(schema, name, format),
            format,
            t.columns.iter(),
        )?;
        let deleted = match &d.since {
            None => {
                let mut sum = Checksum::default();
                for b in &t.blocks {
                    let plain = reader.block(&t.table, b)?;
                    for row in block::rows(&plain) {
                        sum.add_row(&keys.id_key, row);
                        data.row(row)?;
                    }
                }
                let expected = Checksum::from_manifest(t.rows, &t.checksum);
                if expected != Some(sum) {
                    return Err(Error::Mismatch {
                        tenant: d.tenant.clone(),
                        table: t.table.clone(),
                        reason: format!(
                            "{} rows opened, the snapshot has {}, checksum {}",
                            sum.rows,
                            t.rows,
                            if sum.rows == t.rows {
                                "differs"
                            } else {
                                "not compared"
                            }
                        ),
                    });
                }
                None
            }
            Some(_) => Some(changes(&reader, t, &mut data, out, format, schema, name)?),
        };
        let (rows, bytes, sha256) = data.finish()?;
        tables.push(ExportedTable {
            table: t.table.clone(),
            schema: t.schema.clone(),
            name: t.name.clone(),
            file: data_file(schema, name, format),
            columns: t.columns.clone(),
            primary_key: t.primary_key.clone(),
            rows,
            bytes,
            sha256,
            deleted,
        });
    }
    let m = ExportManifest {
        format: ExportManifest::FORMAT.into(),
        version: EXPORT_VERSION,
        tenant: d.tenant.clone(),
        kind: if d.since.is_some() {
            "changes"
        } else {
            "snapshot"
        }
        .into(),
        snapshot: Some(d.snapshot.clone()),
        since: d.since.clone(),
        taken: d.taken,
        data_format: format,
        tables,
    };
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(write_err(&path))
    };
    if m.kind == "snapshot" {
        if let Some(load) = load_script(&m.tables, format) {
            write("load.sql", load.as_bytes())?;
        }
    }
    write("README.txt", readme(&m, false).as_bytes())?;
    let json = serde_json::to_vec_pretty(&m).map_err(|e| Error::Invalid(e.to_string()))?;
    write("manifest.json", &json)?;
    Ok(OpenReport {
        tenant: m.tenant,
        kind: m.kind,
        snapshot: m.snapshot,
        since: m.since,
        format,
        sealed: true,
        out_dir: out.display().to_string(),
        tables: m.tables,
    })
}

/// The rows of a table added or changed between the two snapshots (into `data`) and the keys
/// deleted (into the deleted file). Blocks both snapshots share hold the same rows and are not
/// in the export; a row of the newer snapshot's other blocks is added when its key is not among
/// the older snapshot's other blocks, changed when it is with other values, and unchanged (it
/// moved to another block) when it is with the same values. Tables without a primary key are
/// compared row by row, duplicates counted.
fn changes(
    reader: &PackReader,
    t: &SealedTable,
    data: &mut DataOut,
    out: &Path,
    format: Format,
    schema: &str,
    name: &str,
) -> Result<DeletedFile> {
    let positions: Vec<usize> = {
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        t.primary_key
            .iter()
            .filter_map(|k| names.iter().position(|c| c == k))
            .collect()
    };
    let keyed = !positions.is_empty() && positions.len() == t.primary_key.len();
    let key_of = |row: &[u8]| -> Vec<u8> {
        if keyed {
            let mut k = Vec::new();
            copytext::pick(row, &positions, &mut k);
            k
        } else {
            row.to_vec()
        }
    };
    // Key -> (row, how many times: rows without a key may repeat).
    let mut old: HashMap<Vec<u8>, (Vec<u8>, u64)> = HashMap::new();
    for b in &t.since_blocks {
        let plain = reader.block(&t.table, b)?;
        for row in block::rows(&plain) {
            old.entry(key_of(row))
                .or_insert_with(|| (row.to_vec(), 0))
                .1 += 1;
        }
    }
    for b in &t.blocks {
        let plain = reader.block(&t.table, b)?;
        for row in block::rows(&plain) {
            let key = key_of(row);
            let unchanged = match old.get_mut(&key) {
                Some((was, n)) if was.as_slice() == row && *n > 0 => {
                    *n -= 1;
                    true
                }
                Some((_, n)) if keyed => {
                    // Changed: the key stays, with other values.
                    *n = 0;
                    false
                }
                _ => false,
            };
            if !unchanged {
                data.row(row)?;
            }
        }
    }
    let columns: Vec<ColumnDef> = if keyed {
        positions.iter().map(|&i| t.columns[i].clone()).collect()
    } else {
        t.columns.clone()
    };
    let file = deleted_file(schema, name, format);
    let mut gone = DataOut::create(out, &file, format, columns.iter())?;
    let mut left: Vec<(Vec<u8>, u64)> = old
        .into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(k, (_, n))| (k, n))
        .collect();
    left.sort();
    for (key, n) in left {
        for _ in 0..n {
            gone.row(&key)?;
        }
    }
    let (rows, bytes, sha256) = gone.finish()?;
    Ok(DeletedFile {
        file,
        columns: columns.into_iter().map(|c| c.name).collect(),
        rows,
        bytes,
        sha256,
    })
}

/// Unwraps the export's data keys with the tenant's identity and opens its id key.
fn unlock(
    d: &SealedDescription,
    key_files: &HashMap<String, Vec<u8>>,
    ids: &keys::TenantIdentities,
) -> Result<Unlocked> {
    let file = |name: &str| {
        key_files
            .get(name)
            .ok_or_else(|| Error::corrupt(EXPORT, format!("keys/{name} is missing")))
    };
    let unwrap = |name: &str, recipient: &str| {
        let reason = "the identity does not unwrap the export's data key";
        crate::tenant::unwrap_checked(
            &d.tenant,
            format!("keys/{name}"),
            file(name)?,
            ids,
            recipient,
            reason,
        )
    };
    let data_key = unwrap("data-key.age", &d.data_recipient)?;
    let mut former = vec![];
    for (g, r) in d.former_data_recipients.iter().enumerate() {
        former.push(unwrap(&format!("data-key-g{g}.age"), r)?);
    }
    let id_key = crate::tenant::open_id_key(&data_key, file("id-key.age")?, "keys/id-key.age")?;
    Ok(Unlocked {
        data_key,
        former,
        id_key,
    })
}

/// Reads blocks out of the packs extracted from a sealed export.
struct PackReader<'a> {
    tenant: &'a str,
    dir: &'a Path,
    packs: HashMap<&'a str, &'a SealedPack>,
    keys: &'a Unlocked,
}

impl PackReader<'_> {
    fn block(&self, table: &str, b: &BlockRef) -> Result<Vec<u8>> {
        let object = format!("packs/{}.pack", b.pack);
        let pack = self
            .packs
            .get(b.pack.as_str())
            .ok_or_else(|| Error::corrupt(&object, "a block names a pack the export lacks"))?;
        let mut file = File::open(self.dir.join(format!("{}.pack", b.pack)))
            .map_err(|_| Error::corrupt(&object, "the pack is missing from the export"))?;
        let len = file.metadata().map_err(damaged)?.len();
        if len != pack.length {
            return Err(Error::corrupt(
                &object,
                "the pack has another length than listed",
            ));
        }
        let mut read = |range: std::ops::Range<u64>| -> Result<bytes::Bytes> {
            if range.end > len || range.start > range.end {
                return Err(Error::corrupt(
                    &object,
                    format!("block {} lies outside its pack", b.id),
                ));
            }
            let mut buf = vec![0; (range.end - range.start) as usize];
            file.seek(SeekFrom::Start(range.start)).map_err(damaged)?;
            file.read_exact(&mut buf).map_err(damaged)?;
            Ok(buf.into())
        };
        let fetched = match (b.in_sealed_pack(), pack.start) {
            (true, Some(start)) => {
                let window = keys::chunk_range(start, len, b.offset, b.length);
                Fetched::InPack(PackPart {
                    head: read(0..start)?,
                    window: read(window)?,
                    total: len,
                })
            }
            (false, _) => {
                let sealed = read(b.offset..b.offset.saturating_add(b.length))?;
                if block::sealed_hash(&sealed) != b.sealed_hash {
                    return Err(Error::corrupt(
                        &object,
                        format!("block {} does not match its hash", b.id),
                    ));
                }
                Fetched::Block(sealed)
            }
            (true, None) => {
                return Err(Error::corrupt(
                    &object,
                    "the pack's payload start is not listed",
                ))
            }
        };
        crate::restore::open_block(self.tenant, &object, self.keys, table, b, &fetched)
    }
}
