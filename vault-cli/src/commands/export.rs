use crate::context::Global;
use crate::output;
use anyhow::Context as _;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vault_core::export::{
    open_export, ExportOptions, ExportSource, Format, OpenOptions, S3Destination, Upload,
};

/// Export one tenant's data: a file only the tenant's own keys open.
///
/// From a snapshot (the default: the latest), the export is sealed: it carries the snapshot's
/// packs as the vault stores them and the tenant's wrapped data key, so it needs no key of the
/// tenant's, and `tvault open` turns it into data files with the tenant's identity. With --live,
/// the tenant's rows are read from one consistent snapshot of the database and written in the
/// chosen format; stock tools open it: `age -d -i tenant.key x.tvx | zstd -d | tar x`. Either
/// way the file is encrypted to the tenant's recipients only, rows the tenant had erased are
/// never in it, and the export is recorded in the audit trail. Formats: docs/EXPORT.md.
#[derive(Args, Debug)]
pub struct Export {
    /// Tenant id.
    tenant: String,
    /// Snapshot id, or `latest` (the default unless --live).
    #[arg(long, conflicts_with = "live")]
    snapshot: Option<String>,
    /// Read the tenant's rows from the live database instead of a snapshot.
    #[arg(long)]
    live: bool,
    /// Only what changed since this older snapshot: per table, the rows added or changed and
    /// the keys deleted (snapshot exports only).
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "live")]
    since: Option<String>,
    /// Data format: pg (COPY text, lossless, loads with schema.sql), csv (RFC 4180 with a
    /// header; NULL is an empty unquoted field) or jsonl (one JSON object per row).
    #[arg(long, default_value = "pg", value_parser = ["pg", "csv", "jsonl"])]
    format: String,
    /// Write the export to this file (`-` for stdout). An existing file is not overwritten.
    #[arg(short, long, value_name = "FILE", required_unless_present = "to")]
    output: Option<String>,
    /// Upload the export to the tenant's bucket instead: s3://bucket/key. Credentials come from
    /// TVAULT_EXPORT_ACCESS_KEY_ID, TVAULT_EXPORT_SECRET_ACCESS_KEY and
    /// TVAULT_EXPORT_SESSION_TOKEN (never the vault's own); the upload is aborted, leaving
    /// nothing, if the export fails.
    #[arg(long, value_name = "URL", conflicts_with = "output")]
    to: Option<String>,
    /// S3-compatible endpoint of --to (default: AWS).
    #[arg(long, value_name = "URL", requires = "to")]
    to_endpoint: Option<String>,
    /// Region of --to's bucket.
    #[arg(long, requires = "to")]
    to_region: Option<String>,
}

impl Export {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let format = Format::parse(&self.format)?;
        let source = if self.live {
            ExportSource::Live
        } else {
            ExportSource::Snapshot(self.snapshot.clone().unwrap_or_else(|| "latest".into()))
        };
        let bar = output::bytes_bar(g.progress(), 0);
        bar.set_message(format!("exporting {}", self.tenant));
        let b = bar.clone();
        let mut opts = ExportOptions {
            tenant: self.tenant.clone(),
            source,
            since: self.since.clone(),
            format,
            destination: String::new(),
            progress: Some(Arc::new(move |done, total| {
                if total > 0 {
                    b.set_length(total);
                }
                b.set_position(done);
            })),
        };
        let report = if let Some(url) = &self.to {
            let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let dest = S3Destination {
                url: url.clone(),
                endpoint: self.to_endpoint.clone(),
                region: self.to_region.clone(),
                access_key_id: var("TVAULT_EXPORT_ACCESS_KEY_ID")
                    .context("--to needs TVAULT_EXPORT_ACCESS_KEY_ID (the tenant's credentials)")?,
                secret_access_key: var("TVAULT_EXPORT_SECRET_ACCESS_KEY").context(
                    "--to needs TVAULT_EXPORT_SECRET_ACCESS_KEY (the tenant's credentials)",
                )?,
                session_token: var("TVAULT_EXPORT_SESSION_TOKEN"),
            };
            opts.destination = url.clone();
            let mut upload = Upload::start(&dest).await?;
            let report = vault.export(&opts, upload.writer()?).await;
            match report {
                Ok(r) => {
                    upload.commit().await?;
                    r
                }
                Err(e) => {
                    upload.abort().await;
                    bar.finish_and_clear();
                    return Err(e.into());
                }
            }
        } else {
            let target = self.output.clone().unwrap_or_else(|| "-".into());
            if target == "-" {
                if std::io::stdout().is_terminal() {
                    anyhow::bail!(
                        "an export is binary: redirect stdout (`-o - > file`) or give -o FILE"
                    );
                }
                opts.destination = "stdout".into();
                vault
                    .export(&opts, Box::new(std::io::BufWriter::new(std::io::stdout())))
                    .await?
            } else {
                let path = PathBuf::from(&target);
                if path.exists() {
                    anyhow::bail!(
                        "{} exists: give another name, or remove it first",
                        path.display()
                    );
                }
                // Written beside, then renamed: a failed export never leaves a file that looks whole.
                let partial = PathBuf::from(format!("{target}.partial"));
                let file = std::fs::File::create(&partial)
                    .with_context(|| format!("creating {}", partial.display()))?;
                opts.destination = path.display().to_string();
                let report = vault
                    .export(&opts, Box::new(std::io::BufWriter::new(file)))
                    .await;
                match report {
                    Ok(r) => {
                        std::fs::File::open(&partial)
                            .and_then(|f| f.sync_all())
                            .with_context(|| format!("syncing {}", partial.display()))?;
                        std::fs::rename(&partial, &path)
                            .with_context(|| format!("renaming {}", partial.display()))?;
                        r
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&partial);
                        bar.finish_and_clear();
                        return Err(e.into());
                    }
                }
            }
        };
        bar.finish_and_clear();
        if g.json {
            output::json(&report)?;
        } else {
            let what = match (&report.snapshot, &report.since) {
                (Some(s), Some(since)) => format!("changes from snapshot {since} to {s}"),
                (Some(s), None) => format!("snapshot {s}"),
                _ => "live rows".into(),
            };
            eprintln!(
                "exported tenant {:?} ({what}): {} tables, {} rows, {} to {}{}",
                report.tenant,
                report.tables,
                report.rows,
                output::human_bytes(report.bytes),
                report.destination,
                if report.sealed {
                    format!(
                        "; sealed: `tvault open FILE --identity KEY -o DIR` writes {} files",
                        report.format.name()
                    )
                } else {
                    String::new()
                }
            );
            if report.erased_skipped > 0 {
                eprintln!(
                    "{} erased rows still in the live database were left out",
                    report.erased_skipped
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Open an export with the tenant's identity: data files, schema.sql, manifest.json.
///
/// Needs no vault: a tenant runs it on its own machine. Every byte is authenticated (a wrong key
/// or a damaged file is refused, exit code 3); a sealed export's blocks are checked against
/// their ids and each table against the snapshot's row count and checksum.
#[derive(Args, Debug)]
pub struct Open {
    /// The export file (`-` for stdin).
    file: String,
    /// The tenant's identity file (age or OpenSSH private key).
    #[arg(long)]
    identity: PathBuf,
    /// A new (or empty) directory for the files.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Format of the data files of a sealed export (default: the one chosen at export).
    #[arg(long, value_parser = ["pg", "csv", "jsonl"])]
    format: Option<String>,
}

impl Open {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let identity = keys::TenantIdentities::from_file(&self.identity)?;
        let format = self.format.as_deref().map(Format::parse).transpose()?;
        let opts = OpenOptions {
            out_dir: self.output.clone(),
            format,
        };
        let file = self.file.clone();
        let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let input: Box<dyn std::io::Read> = if file == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file).with_context(|| format!("opening {file}"))?,
                ))
            };
            Ok(open_export(input, &identity, &opts)?)
        })
        .await??;
        if g.json {
            output::json(&report)?;
        } else {
            println!(
                "opened the export of tenant {:?} ({}) into {}: {} tables, {} rows, {} files",
                report.tenant,
                report.kind,
                report.out_dir,
                report.tables.len(),
                report.tables.iter().map(|t| t.rows).sum::<u64>(),
                report.format.name()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
