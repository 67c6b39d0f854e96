//! Tenant exports: a portable copy of one tenant's data that only the tenant can open
//! (docs/EXPORT.md).
//!
//! Two kinds, both an age file to the tenant's own recipients holding a zstd-compressed tar:
//! - **live** ([`ExportSource::Live`]): the tenant's rows read from one consistent snapshot of
//!   the database, converted to the chosen format, with `schema.sql`, `load.sql`,
//!   `manifest.json` and a README. Opened with stock tools alone.
//! - **sealed** ([`ExportSource::Snapshot`]): a snapshot as the vault holds it. The vault never
//!   has the tenant's data key, so it ships the sealed packs the snapshot's blocks live in, the
//!   wrapped data keys (which only the tenant's identities unwrap) and a description of the
//!   tables; `tvault open` turns it into the same files as a live export, in the chosen format,
//!   checking every block's id and every table's row count and checksum. With `since`, only
//!   the blocks that differ between two snapshots are shipped, and `open` writes per table the
//!   rows added or changed and the keys deleted.
//!
//! Rows in the tenant's erasure ledger are never exported: a live export drops them as it reads,
//! and a sealed export refuses to start while an erasure is unfinished (a finished erasure has
//! removed them from every block and pack).

mod bundle;
pub mod format;
mod open;
mod upload;

pub use format::Format;
pub use open::{open_export, OpenOptions, OpenReport};
pub use upload::{S3Destination, Upload};

use crate::archive::block::IdKey;
use crate::archive::manifest::{BlockRef, PackRef, TableManifest};
use crate::audit::{actions, AuditDraft};
use crate::copytext;
use crate::error::{DbContext, Error, Result};
use crate::ledger::RowFilter;
use crate::source::postgres::{self as pg, catalog::ColumnDef, catalog::TableDef, ddl, query};
use crate::tenant::TenantRecord;
use crate::{layout, sql, Vault};
use bundle::{BundleWriter, Spool};
use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use time::OffsetDateTime;

/// Version of the export formats (`manifest.json` and `export.json`).
pub const EXPORT_VERSION: u32 = 1;

/// Where an export's rows come from.
#[derive(Clone, Debug)]
pub enum ExportSource {
    /// A snapshot id, or `latest`: a sealed export, made without any key.
    Snapshot(String),
    /// The live database, read in one consistent snapshot.
    Live,
}

#[derive(Clone)]
pub struct ExportOptions {
    pub tenant: String,
    pub source: ExportSource,
    /// Only what changed since this (older) snapshot; sealed exports only.
    pub since: Option<String>,
    pub format: Format,
    /// Where the export goes, for the audit trail and the report (`stdout`, a file, a URL).
    pub destination: String,
    /// Called with bytes read so far and the total (0 when not known in advance).
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    pub tenant: String,
    /// `live`, `snapshot` or `changes`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    pub format: Format,
    /// Whether `tvault open` must convert it (a sealed export) or stock tools open it as is.
    pub sealed: bool,
    pub destination: String,
    pub tables: usize,
    /// Rows exported (for a sealed export: rows of the snapshot; of a `since` export: rows in
    /// the blocks that differ).
    pub rows: u64,
    /// Rows of the erasure ledger found in the live database and left out.
    pub erased_skipped: u64,
    /// Bytes of the export file.
    pub bytes: u64,
}

/// One data file of an export, as `manifest.json` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExportedTable {
    /// `schema.table`.
    pub table: String,
    pub schema: String,
    pub name: String,
    pub file: String,
    pub columns: Vec<ColumnDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    /// Changes only: the file of deleted keys (primary key columns; whole rows for a table
    /// without a primary key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<DeletedFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeletedFile {
    pub file: String,
    pub columns: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// `manifest.json`: what an opened export holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportManifest {
    /// Always `tenant-vault export`.
    pub format: String,
    pub version: u32,
    pub tenant: String,
    /// `live`, `snapshot` or `changes`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// When the rows were read (live) or the snapshot was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub taken: OffsetDateTime,
    pub data_format: Format,
    pub tables: Vec<ExportedTable>,
}

impl ExportManifest {
    pub const FORMAT: &'static str = "tenant-vault export";
}

/// `export.json` of a sealed export: how to turn its packs into data files.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SealedDescription {
    /// Always `tenant-vault sealed export`.
    pub format: String,
    pub version: u32,
    pub tenant: String,
    pub snapshot: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub taken: OffsetDateTime,
    pub data_format: Format,
    pub data_recipient: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_data_recipients: Vec<String>,
    pub tables: Vec<SealedTable>,
    pub packs: Vec<SealedPack>,
}

impl SealedDescription {
    pub const FORMAT: &'static str = "tenant-vault sealed export";
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SealedTable {
    pub table: String,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// Rows and keyed checksum of the whole table in the snapshot (checked by `open` when every
    /// block is present, that is without `since`).
    pub rows: u64,
    pub checksum: String,
    /// Blocks of the snapshot (with `since`: those the older snapshot lacks).
    pub blocks: Vec<BlockRef>,
    /// With `since`: blocks of the older snapshot that the newer one lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub since_blocks: Vec<BlockRef>,
}

/// A pack in a sealed export: `packs/<name>.pack`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SealedPack {
    pub name: String,
    pub length: u64,
    /// Where the payload starts (a pack of one age file); absent for a pack of separately
    /// sealed blocks (earlier store formats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

/// The name of a table's data file: `<schema>.<table>.<extension>`, with every byte other than
/// ASCII letters, digits, `_` and `-` percent-encoded in each part (so a hostile name cannot
/// reach a path, and the dot between the parts is unambiguous).
pub fn file_name(schema: &str, table: &str, suffix: &str) -> String {
    fn part(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    format!("{}.{}.{suffix}", part(schema), part(table))
}

fn data_file(def_schema: &str, def_name: &str, format: Format) -> String {
    file_name(def_schema, def_name, format.extension())
}

fn deleted_file(def_schema: &str, def_name: &str, format: Format) -> String {
    file_name(
        def_schema,
        def_name,
        &format!("deleted.{}", format.extension()),
    )
}

/// `load.sql`: psql `\copy` commands that load the data files into `schema.sql`'s tables, in
/// restore order. None for jsonl, which PostgreSQL does not read as rows.
pub fn load_script(tables: &[ExportedTable], format: Format) -> Option<String> {
    let options = match format {
        Format::Pg => "",
        Format::Csv => " WITH (FORMAT csv, HEADER true)",
        Format::Jsonl => return None,
    };
    let mut s = String::from(
        "-- Loads the data files into the tables of schema.sql: psql -f schema.sql -f load.sql\n",
    );
    for t in tables {
        let cols: Vec<String> = t.columns.iter().map(|c| sql::ident(&c.name)).collect();
        s.push_str(&format!(
            "\\copy {} ({}) FROM '{}'{options}\n",
            sql::qualified(&t.schema, &t.name),
            cols.join(", "),
            t.file
        ));
    }
    Some(s)
}

fn readme(m: &ExportManifest, sealed: bool) -> String {
    let what = match m.kind.as_str() {
        "live" => "its rows as the live database held them".to_string(),
        "changes" => format!(
            "the changes between snapshots {} and {}",
            m.since.as_deref().unwrap_or("?"),
            m.snapshot.as_deref().unwrap_or("?")
        ),
        _ => format!("snapshot {}", m.snapshot.as_deref().unwrap_or("?")),
    };
    let mut s = format!(
        "tenant-vault export (version {EXPORT_VERSION}) of tenant {:?}: {what}.\n\n",
        m.tenant
    );
    if sealed {
        s.push_str(
            "This export is sealed: its packs are as the vault stores them, and only your key\n\
             opens them. Turn it into data files with\n\
             \n    tvault open export.tvx --identity your.key -o out/\n\n\
             or with stock tools (age, zstd, tar, sh), as docs/EXPORT.md describes:\n\
             keys/data-key.age unwraps with your key to the key the packs are sealed to, and\n\
             blocks.tsv lists, per table, where each block lies in the decrypted packs.\n",
        );
        return s;
    }
    s.push_str(&format!(
        "Files:\n  manifest.json   tables, columns, row counts and SHA-256 of each data file\n  \
         schema.sql      creates the tables (and their types) in an empty database\n  \
         foreign_keys.sql foreign keys between the tables, to run after loading\n  \
         <schema>.<table>.{ext}  one data file per table ({fmt})\n",
        ext = m.data_format.extension(),
        fmt = match m.data_format {
            Format::Pg => "PostgreSQL COPY text format",
            Format::Csv =>
                "CSV, RFC 4180, header row; NULL is an empty unquoted field, \"\" the empty string",
            Format::Jsonl => "one JSON object per line; numeric as string, bytea as base64",
        }
    ));
    if m.data_format != Format::Jsonl && m.kind != "changes" {
        s.push_str(
            "  load.sql        loads the data: psql -d newdb -f schema.sql -f load.sql -f foreign_keys.sql\n",
        );
    }
    if m.kind == "changes" {
        s.push_str(
            "  <schema>.<table>.deleted.<ext>  keys of the rows deleted since the older snapshot\n\
             Each data file holds the rows added or changed since the older snapshot.\n",
        );
    }
    s
}

/// Messages to the thread that writes an export (compression and encryption are CPU work).
enum Msg {
    File(String, Vec<u8>),
    /// A table's data file begins: name, converter, erasure filter.
    Table(Box<TableJob>),
    /// COPY rows of the current table, each led by the owner column.
    Rows(Bytes),
    TableEnd,
    /// A raw file of known size follows in chunks.
    Raw(String, u64),
    Chunk(Bytes),
    RawEnd,
    /// The end: for a live export, the manifest to complete with the tables and write (with
    /// `load.sql` and the README). Without it the export is left unfinished, so that it fails
    /// to open rather than look complete.
    Finish(Option<Box<ExportManifest>>),
}

struct TableJob {
    def: TableDef,
    format: Format,
    filter: Option<(RowFilter, IdKey)>,
}

/// The data file the writer thread is filling.
struct CurrentTable {
    job: Box<TableJob>,
    writer: format::RowWriter,
    spool: Spool,
    rows: u64,
    /// The start of a row whose end is in the next message.
    partial: Vec<u8>,
}

/// The sending side of the writer thread, its handle, and the count of bytes it wrote.
type WriterHandles = (
    tokio::sync::mpsc::Sender<Msg>,
    tokio::task::JoinHandle<Result<Written>>,
    Arc<AtomicU64>,
);

/// What the writer thread reports at the end.
struct Written {
    tables: Vec<ExportedTable>,
    erased_skipped: u64,
}

/// A `Write` that counts what passes through, for the report.
struct Counting<W> {
    inner: W,
    count: Arc<AtomicU64>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The writer side of an export, on a blocking thread.
fn write_bundle(
    recipients: Vec<keys::TenantRecipient>,
    out: Box<dyn Write + Send>,
    count: Arc<AtomicU64>,
    spool_dir: std::path::PathBuf,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
) -> Result<Written> {
    let out = Counting { inner: out, count };
    let mut bundle = BundleWriter::new(&recipients, out)?;
    let mut written = Written {
        tables: vec![],
        erased_skipped: 0,
    };
    let mut table: Option<CurrentTable> = None;
    let mut raw: Option<(String, u64, u64)> = None;
    let mut buf = Vec::with_capacity(1 << 20);
    loop {
        let Some(msg) = rx.blocking_recv() else {
            return Err(Error::Aborted("the export was interrupted".into()));
        };
        match msg {
            Msg::Finish(manifest) => {
                if let Some(mut m) = manifest {
                    m.tables = written.tables.clone();
                    if let Some(load) = load_script(&m.tables, m.data_format) {
                        bundle.add("load.sql", load.as_bytes())?;
                    }
                    bundle.add("README.txt", readme(&m, false).as_bytes())?;
                    let json =
                        serde_json::to_vec_pretty(&m).map_err(|e| Error::Invalid(e.to_string()))?;
                    bundle.add("manifest.json", &json)?;
                }
                let mut out = bundle.finish()?;
                // A full disk at the very end must fail the export, not a silent drop.
                out.flush().map_err(|e| Error::Io {
                    context: "writing the export".into(),
                    source: e,
                })?;
                return Ok(written);
            }
            Msg::File(name, data) => bundle.add(&name, &data)?,
            Msg::Table(job) => {
                let writer = format::RowWriter::new(job.format, job.def.archived_columns());
                let mut spool = Spool::new(&spool_dir)?;
                spool.write(writer.header())?;
                table = Some(CurrentTable {
                    job,
                    writer,
                    spool,
                    rows: 0,
                    partial: vec![],
                });
            }
            Msg::Rows(data) => {
                let Some(CurrentTable {
                    job,
                    writer,
                    spool,
                    rows,
                    partial,
                }) = table.as_mut()
                else {
                    continue;
                };
                buf.clear();
                let mut rest: &[u8] = &data;
                if !partial.is_empty() {
                    // A row cut between two messages.
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            partial.extend_from_slice(&rest[..i]);
                            rest = &rest[i + 1..];
                            let line = std::mem::take(partial);
                            *rows += convert(job, writer, &line, &mut buf, &mut written)?;
                        }
                        None => {
                            partial.extend_from_slice(rest);
                            copytext::check_row_len(partial.len(), "the live database")?;
                            continue;
                        }
                    }
                }
                let mut lines = rest.split(|&b| b == b'\n').peekable();
                while let Some(line) = lines.next() {
                    if lines.peek().is_none() {
                        partial.extend_from_slice(line);
                        break;
                    }
                    *rows += convert(job, writer, line, &mut buf, &mut written)?;
                }
                spool.write(&buf)?;
            }
            Msg::TableEnd => {
                let Some(CurrentTable {
                    job,
                    spool,
                    rows,
                    partial,
                    ..
                }) = table.take()
                else {
                    continue;
                };
                if !partial.is_empty() {
                    return Err(Error::Invalid(format!(
                        "{}: the database sent a row without its end",
                        job.def.display_name()
                    )));
                }
                let spooled = spool.finish()?;
                let file = data_file(&job.def.schema, &job.def.name, job.format);
                written.tables.push(ExportedTable {
                    table: job.def.display_name(),
                    schema: job.def.schema.clone(),
                    name: job.def.name.clone(),
                    file: file.clone(),
                    columns: job.def.archived_columns().cloned().collect(),
                    primary_key: job.def.primary_key.clone(),
                    rows,
                    bytes: spooled.size(),
                    sha256: spooled.sha256.clone(),
                    deleted: None,
                });
                bundle.add_spooled(&file, spooled)?;
            }
            Msg::Raw(name, size) => {
                bundle.begin_raw(&name, size)?;
                raw = Some((name, size, 0));
            }
            Msg::Chunk(data) => {
                if let Some((_, _, done)) = raw.as_mut() {
                    *done += data.len() as u64;
                    bundle.raw(&data)?;
                }
            }
            Msg::RawEnd => {
                if let Some((name, size, done)) = raw.take() {
                    if done != size {
                        return Err(Error::Invalid(format!(
                            "{name}: expected {size} bytes, got {done}"
                        )));
                    }
                    bundle.end_raw(size)?;
                }
            }
        }
    }
}

/// Converts one COPY line (owner column first) into the output format; 1 if it was written, 0 if
/// it was erased.
fn convert(
    job: &TableJob,
    writer: &mut format::RowWriter,
    line: &[u8],
    out: &mut Vec<u8>,
    written: &mut Written,
) -> Result<u64> {
    let (_, row) = copytext::split_first(line);
    let row = row.unwrap_or_default();
    if let Some((filter, id_key)) = &job.filter {
        if filter.is_erased(id_key, row) {
            written.erased_skipped += 1;
            return Ok(0);
        }
    }
    writer.row(row, out)?;
    Ok(1)
}

impl Vault {
    /// Exports one tenant's data to `out` (see the module docs) and records it in the audit
    /// trail. Needs no key of the tenant's.
    pub async fn export(
        &self,
        opts: &ExportOptions,
        out: Box<dyn Write + Send>,
    ) -> Result<ExportReport> {
        let draft = AuditDraft::new(actions::EXPORT)
            .tenant(opts.tenant.clone())
            .details(serde_json::json!({
                "source": match &opts.source { ExportSource::Live => "live".to_string(), ExportSource::Snapshot(s) => s.clone() },
                "since": opts.since,
                "format": opts.format,
                "destination": opts.destination,
            }));
        let result = {
            let _tenant = self.reading_tenant(&opts.tenant).await;
            match &opts.source {
                ExportSource::Live if opts.since.is_some() => Err(Error::Invalid(
                    "--since compares two snapshots: export a snapshot (--snapshot ID or latest), not --live".into(),
                )),
                ExportSource::Live => self.export_live(opts, out).await,
                ExportSource::Snapshot(id) => self.export_sealed(opts, id, out).await,
            }
        };
        let draft = match &result {
            Ok(r) => draft.details(serde_json::to_value(r).unwrap_or_default()),
            Err(_) => draft,
        };
        self.audited(draft, result).await
    }

    /// Starts the writer thread of an export; returns its channel, its handle and the byte count.
    fn start_writer(
        &self,
        record: &TenantRecord,
        out: Box<dyn Write + Send>,
    ) -> Result<WriterHandles> {
        let recipients = record
            .recipients
            .iter()
            .map(|r| keys::TenantRecipient::parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        let count = Arc::new(AtomicU64::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let spool_dir = self.dir().join("tmp");
        let c = count.clone();
        let handle =
            tokio::task::spawn_blocking(move || write_bundle(recipients, out, c, spool_dir, rx));
        Ok((tx, handle, count))
    }

    async fn export_live(
        &self,
        opts: &ExportOptions,
        out: Box<dyn Write + Send>,
    ) -> Result<ExportReport> {
        let record = self.tenant(&opts.tenant)?;
        let erased = self.ledger(&record).await?.erased();
        let id_key = if erased.is_empty() {
            None
        } else {
            Some(self.inventory().id_key(&record.path)?.ok_or_else(|| {
                Error::Invalid(format!(
                    "tenant {:?} has no id key in the local inventory, and its erasure ledger needs it: run `tvault inventory rebuild` with its identity",
                    record.id
                ))
            })?)
        };
        let client = pg::connect(&self.tenant_source(&record)?).await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .db(|| "starting the export's snapshot".into())?;
        let taken = OffsetDateTime::now_utc();
        let mut plan = self.plan_for(&client, &record).await?;
        let home = match record.placement.home() {
            Some(s) => Some(pg::catalog::Home::of(&client, s).await?),
            None => None,
        };
        let range = plan.tables_of(record.placement.home());
        if home.is_some() && range.is_empty() {
            return Err(Error::not_found(
                format!(
                    "any table in {}, tenant {:?}'s own",
                    record.placement.location().unwrap_or_default(),
                    record.id
                ),
                None,
            ));
        }
        plan.tables = plan.tables.drain(range).collect();
        pg::catalog::check_rls(&plan, self.config(), &pg::current_role(&client).await?)?;
        let ddl = ddl::read(&client, &plan.tables).await?;
        let literal = sql::literal(&client, &record.id).await?;
        if let Some(setting) = &self.config().rls_tenant_setting {
            // Row-level security that reads one tenant at a time sees this tenant's rows.
            client
                .execute("SELECT set_config($1, $2, true)", &[setting, &record.id])
                .await
                .db(|| format!("setting {setting} for tenant {:?}", record.id))?;
        }
        let (tx, handle, count) = self.start_writer(&record, out)?;
        let send = |m: Msg| send_to(&tx, m);
        let read = async {
            let mut done = 0u64;
            for def in &plan.tables {
                // The erasure ledger names a bridge tenant's tables as its archives do.
                let archived = home
                    .as_ref()
                    .map_or_else(|| def.clone(), |h| def.relative_to(h));
                let filter = match (&id_key, erased.for_table(&archived)) {
                    (Some(k), Some(f)) => Some((f, IdKey::from_bytes(*k.as_bytes()))),
                    _ => None,
                };
                send(Msg::Table(Box::new(TableJob {
                    def: def.clone(),
                    format: opts.format,
                    filter,
                })))
                .await?;
                let stream = client
                    .copy_out(&query::copy_out(def, Some(&literal), None))
                    .await
                    .db(|| format!("reading {}", def.display_name()))?;
                futures::pin_mut!(stream);
                let mut batch = bytes::BytesMut::with_capacity(1 << 18);
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.db(|| format!("reading {}", def.display_name()))?;
                    done += chunk.len() as u64;
                    batch.extend_from_slice(&chunk);
                    if batch.len() >= 1 << 18 {
                        send(Msg::Rows(batch.split().freeze())).await?;
                        if let Some(p) = &opts.progress {
                            p(done, 0);
                        }
                    }
                }
                if !batch.is_empty() {
                    send(Msg::Rows(batch.freeze())).await?;
                }
                send(Msg::TableEnd).await?;
            }
            Ok::<_, Error>(())
        };
        let read = read.await;
        let _ = client.batch_execute("COMMIT").await;
        let tail = async {
            read?;
            send(Msg::File(
                "schema.sql".into(),
                schema_sql(&ddl).into_bytes(),
            ))
            .await?;
            send(Msg::File(
                "foreign_keys.sql".into(),
                ddl.foreign_keys.clone().into_bytes(),
            ))
            .await?;
            send(Msg::Finish(Some(Box::new(ExportManifest {
                format: ExportManifest::FORMAT.into(),
                version: EXPORT_VERSION,
                tenant: record.id.clone(),
                kind: "live".into(),
                snapshot: None,
                since: None,
                taken,
                data_format: opts.format,
                tables: vec![],
            }))))
            .await
        };
        let sent = tail.await;
        drop(tx);
        let written = join_writer(handle, sent).await?;
        Ok(ExportReport {
            tenant: record.id.clone(),
            kind: "live".into(),
            snapshot: None,
            since: None,
            format: opts.format,
            sealed: false,
            destination: opts.destination.clone(),
            tables: written.tables.len(),
            rows: written.tables.iter().map(|t| t.rows).sum(),
            erased_skipped: written.erased_skipped,
            bytes: count.load(Ordering::Relaxed),
        })
    }

    async fn export_sealed(
        &self,
        opts: &ExportOptions,
        id: &str,
        out: Box<dyn Write + Send>,
    ) -> Result<ExportReport> {
        let record = self.tenant(&opts.tenant)?;
        if !self.inventory().erasing(&record.path)?.is_empty() {
            return Err(Error::Refused(format!(
                "an erasure of tenant {:?} is unfinished, and its rows may still be in the packs: \
                 run `tvault erase` for the tenant again to finish it, then export",
                record.id
            )));
        }
        let snapshot = self.resolve_snapshot(&record, id)?;
        let manifest = self.manifest(&record, &snapshot).await?;
        let home = record.placement.home().map(pg::catalog::Home::quoted_here);
        let older = match &opts.since {
            None => None,
            Some(s) => {
                let s = self.resolve_snapshot(&record, s)?;
                let m = self.manifest(&record, &s).await?;
                if s == snapshot {
                    return Err(Error::Invalid(format!(
                        "the tenant did not change between {since} and {id}: both are version {s}, so there is nothing to export",
                        since = opts.since.as_deref().unwrap_or_default()
                    )));
                }
                if (m.created, &m.snapshot) >= (manifest.created, &manifest.snapshot) {
                    return Err(Error::Invalid(format!(
                        "--since {s} is not older than snapshot {snapshot}: name an older snapshot"
                    )));
                }
                Some(m)
            }
        };
        let mut tables = vec![];
        for t in &manifest.tables {
            let old = older.as_ref().map(|o| {
                o.tables
                    .iter()
                    .find(|x| x.def.display_name() == t.def.display_name())
            });
            let (blocks, since_blocks) = match old {
                None => (t.blocks.clone(), vec![]),
                Some(None) => (t.blocks.clone(), vec![]),
                Some(Some(old)) => {
                    if !same_columns(&old.def, &t.def) {
                        return Err(Error::Invalid(format!(
                            "table {} has other columns in the two snapshots: export snapshot {snapshot} whole (without --since)",
                            t.def.display_name()
                        )));
                    }
                    let old_ids: HashSet<&str> = old.blocks.iter().map(|b| b.id.as_str()).collect();
                    let new_ids: HashSet<&str> = t.blocks.iter().map(|b| b.id.as_str()).collect();
                    (
                        t.blocks
                            .iter()
                            .filter(|b| !old_ids.contains(b.id.as_str()))
                            .cloned()
                            .collect(),
                        old.blocks
                            .iter()
                            .filter(|b| !new_ids.contains(b.id.as_str()))
                            .cloned()
                            .collect(),
                    )
                }
            };
            tables.push(sealed_table(t, home.as_ref(), blocks, since_blocks));
        }
        if let Some(o) = &older {
            // Tables dropped since the older snapshot: every row of theirs was deleted.
            for old in &o.tables {
                if !manifest
                    .tables
                    .iter()
                    .any(|t| t.def.display_name() == old.def.display_name())
                {
                    let mut gone = sealed_table(old, home.as_ref(), vec![], old.blocks.clone());
                    gone.rows = 0;
                    gone.checksum = crate::archive::block::Checksum::default().hex();
                    tables.push(gone);
                }
            }
        }
        let mut names: Vec<&str> = tables
            .iter()
            .flat_map(|t| t.blocks.iter().chain(&t.since_blocks))
            .map(|b| b.pack.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        let known: HashMap<&str, &PackRef> = manifest
            .packs
            .iter()
            .chain(older.iter().flat_map(|o| &o.packs))
            .map(|p| (p.name.as_str(), p))
            .collect();
        let mut packs = vec![];
        for name in names {
            packs.push(match known.get(name) {
                Some(p) => (
                    SealedPack {
                        name: p.name.clone(),
                        length: p.length,
                        start: Some(p.start),
                    },
                    Some(p.hash.clone()),
                ),
                None => {
                    let path = layout::pack(&record.path, name);
                    let meta = self
                        .store()
                        .objects()
                        .head(&path)
                        .await
                        .map_err(|e| pack_error(&path, e))?;
                    (
                        SealedPack {
                            name: name.to_string(),
                            length: meta.size,
                            start: None,
                        },
                        None,
                    )
                }
            });
        }
        let defs: Vec<TableDef> = manifest
            .tables
            .iter()
            .map(|t| t.def.placed(home.as_ref()))
            .collect();
        let ddl = self.live_ddl(&record, &defs).await;
        let description = SealedDescription {
            format: SealedDescription::FORMAT.into(),
            version: EXPORT_VERSION,
            tenant: record.id.clone(),
            snapshot: snapshot.clone(),
            since: older.as_ref().map(|o| o.snapshot.clone()),
            taken: manifest.created,
            data_format: opts.format,
            data_recipient: record.data_recipient.clone(),
            former_data_recipients: record.former_data_recipients.clone(),
            tables,
            packs: packs.iter().map(|(p, _)| p.clone()).collect(),
        };
        let (tx, handle, count) = self.start_writer(&record, out)?;
        let send = |m: Msg| send_to(&tx, m);
        let total: u64 = packs.iter().map(|(p, _)| p.length).sum();
        let body = async {
            let json = serde_json::to_vec_pretty(&description)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            send(Msg::File("export.json".into(), json)).await?;
            let shown = ExportManifest {
                format: ExportManifest::FORMAT.into(),
                version: EXPORT_VERSION,
                tenant: record.id.clone(),
                kind: if description.since.is_some() {
                    "changes"
                } else {
                    "snapshot"
                }
                .into(),
                snapshot: Some(snapshot.clone()),
                since: description.since.clone(),
                taken: manifest.created,
                data_format: opts.format,
                tables: vec![],
            };
            send(Msg::File(
                "README.txt".into(),
                readme(&shown, true).into_bytes(),
            ))
            .await?;
            send(Msg::File(
                "schema.sql".into(),
                schema_sql(&ddl).into_bytes(),
            ))
            .await?;
            send(Msg::File(
                "foreign_keys.sql".into(),
                ddl.foreign_keys.clone().into_bytes(),
            ))
            .await?;
            send(Msg::File(
                "blocks.tsv".into(),
                blocks_tsv(&description).into_bytes(),
            ))
            .await?;
            send(Msg::File(
                "keys/data-key.age".into(),
                self.get(&layout::wrapped_data_key(&record.path))
                    .await?
                    .to_vec(),
            ))
            .await?;
            for g in 0..record.former_data_recipients.len() {
                let wrapped = self.get(&layout::former_data_key(&record.path, g)).await?;
                send(Msg::File(
                    format!("keys/data-key-g{g}.age"),
                    wrapped.to_vec(),
                ))
                .await?;
            }
            send(Msg::File(
                "keys/id-key.age".into(),
                self.get(&layout::sealed_id_key(&record.path))
                    .await?
                    .to_vec(),
            ))
            .await?;
            let mut done = 0u64;
            for (p, hash) in &packs {
                let path = layout::pack(&record.path, &p.name);
                let got = self
                    .store()
                    .objects()
                    .get(&path)
                    .await
                    .map_err(|e| pack_error(&path, e))?;
                send(Msg::Raw(format!("packs/{}.pack", p.name), p.length)).await?;
                let mut hasher = blake3::Hasher::new();
                let mut stream = got.into_stream();
                let mut len = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| Error::Store {
                        context: format!("reading {path}"),
                        source: e,
                    })?;
                    hasher.update(&chunk);
                    len += chunk.len() as u64;
                    done += chunk.len() as u64;
                    if len > p.length {
                        break;
                    }
                    send(Msg::Chunk(chunk)).await?;
                    if let Some(progress) = &opts.progress {
                        progress(done, total);
                    }
                }
                self.count_read(len);
                let damaged = len != p.length
                    || hash
                        .as_ref()
                        .is_some_and(|h| hasher.finalize().to_hex()[..32] != h[..]);
                if damaged {
                    return Err(Error::corrupt(
                        &path,
                        "the pack does not match its recorded length and hash",
                    ));
                }
                send(Msg::RawEnd).await?;
            }
            send(Msg::Finish(None)).await
        };
        let sent = body.await;
        drop(tx);
        join_writer(handle, sent).await?;
        let rows = match &description.since {
            None => description.tables.iter().map(|t| t.rows).sum(),
            Some(_) => description
                .tables
                .iter()
                .flat_map(|t| t.blocks.iter().chain(&t.since_blocks))
                .map(|b| b.rows)
                .sum(),
        };
        Ok(ExportReport {
            tenant: record.id.clone(),
            kind: if description.since.is_some() {
                "changes"
            } else {
                "snapshot"
            }
            .into(),
            snapshot: Some(snapshot),
            since: description.since.clone(),
            format: opts.format,
            sealed: true,
            destination: opts.destination.clone(),
            tables: description.tables.len(),
            rows,
            erased_skipped: 0,
            bytes: count.load(Ordering::Relaxed),
        })
    }

    /// The DDL of archived tables from the live catalog; from the definitions alone when the
    /// database cannot be read (a sealed export does not need it).
    async fn live_ddl(&self, record: &TenantRecord, defs: &[TableDef]) -> ddl::Ddl {
        let read = async {
            let client = pg::connect(&self.tenant_source(record)?).await?;
            client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .db(|| "reading table definitions".into())?;
            ddl::read(&client, defs).await
        };
        match read.await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %crate::error::with_causes(&e), "schema.sql describes the tables from the archive alone: the database could not be read");
                ddl::from_definitions(defs)
            }
        }
    }
}

/// Hands one message to the writer thread.
async fn send_to(tx: &tokio::sync::mpsc::Sender<Msg>, m: Msg) -> Result<()> {
    tx.send(m)
        .await
        .map_err(|_| Error::Aborted("the export writer stopped".into()))
}

/// Waits for the writer thread; its error, when it stopped first, says more than the sender's.
async fn join_writer(
    handle: tokio::task::JoinHandle<Result<Written>>,
    sent: Result<()>,
) -> Result<Written> {
    let joined = handle
        .await
        .map_err(|e| Error::Aborted(format!("the export writer failed: {e}")));
    match (sent, joined) {
        (_, Ok(Err(w))) if !matches!(w, Error::Aborted(_)) => Err(w),
        (Err(e), _) => Err(e),
        (Ok(()), joined) => joined?,
    }
}

/// A pack that cannot be read: missing (damage) or a failing store (try again).
fn pack_error(path: &layout::Path, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::corrupt(path, "the pack object is missing"),
        e => Error::Store {
            context: format!("reading {path}"),
            source: e,
        },
    }
}

fn same_columns(a: &TableDef, b: &TableDef) -> bool {
    a.archived_columns().eq(b.archived_columns()) && a.primary_key == b.primary_key
}

fn sealed_table(
    t: &TableManifest,
    home: Option<&pg::catalog::Home>,
    blocks: Vec<BlockRef>,
    since_blocks: Vec<BlockRef>,
) -> SealedTable {
    // A bridge tenant's tables (relative to its schema in the archive) go to its schema; the
    // name blocks are keyed with stays the archive's.
    let placed = t.def.placed(home);
    SealedTable {
        table: t.def.display_name(),
        schema: placed.schema.clone(),
        name: placed.name.clone(),
        columns: placed.archived_columns().cloned().collect(),
        primary_key: placed.primary_key.clone(),
        rows: t.rows,
        checksum: t.checksum.clone(),
        blocks,
        since_blocks,
    }
}

/// `blocks.tsv`: for stock tools, one line per block: the data file it belongs to (pg format),
/// `new` (or `old`: a block of the older snapshot, with `since`), the pack, the offset and
/// length, and how the pack is sealed (`pack`: one age file; `block`: each block on its own).
fn blocks_tsv(d: &SealedDescription) -> String {
    let mut s = String::from("# file\tside\tpack\toffset\tlength\tsealed\n");
    for t in &d.tables {
        let file = data_file(&t.schema, &t.name, Format::Pg);
        for (side, blocks) in [("new", &t.blocks), ("old", &t.since_blocks)] {
            for b in blocks {
                let sealed = if b.in_sealed_pack() { "pack" } else { "block" };
                s.push_str(&format!(
                    "{file}\t{side}\t{}.pack\t{}\t{}\t{sealed}\n",
                    b.pack, b.offset, b.length
                ));
            }
        }
    }
    s
}

fn schema_sql(ddl: &ddl::Ddl) -> String {
    let mut s = String::from(
        "-- The tables of this export (and the types they use), for an empty database.\n",
    );
    for t in &ddl.from_archive {
        s.push_str(&format!("-- {t}: described from the archive\n"));
    }
    s.push_str(&ddl.schema);
    s
}
