//! find, show, diff, restore-records: record-level work for support staff.

use crate::context::Global;
use crate::output;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use vault_core::records::{self, KeyValues, RecordRestoreOptions};

fn key(s: &str) -> Result<KeyValues, String> {
    records::parse_key(s).map_err(|e| e.to_string())
}

/// Which record: tenant, table and primary key.
#[derive(Args, Debug)]
pub struct Target {
    /// Tenant id.
    tenant: String,
    /// Table as schema.table.
    #[arg(long)]
    table: String,
    /// Primary key as column=value[,column=value]; the tenant column may be left out.
    #[arg(long, value_parser = key)]
    key: KeyValues,
}

/// List the snapshots that hold a record and how it changed.
///
/// Added, changed, unchanged or deleted against the previous snapshot, from the inventory alone:
/// no archive is read and no key is needed.
#[derive(Args, Debug)]
pub struct Find {
    #[command(flatten)]
    target: Target,
}

/// A record in one snapshot, read with the tenant's key.
#[derive(Args, Debug)]
pub struct AtSnapshot {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value = "latest")]
    snapshot: String,
    /// The tenant's identity file.
    #[arg(long)]
    identity: PathBuf,
}

impl AtSnapshot {
    fn load(self) -> anyhow::Result<(Self, keys::TenantIdentities)> {
        let identity = keys::TenantIdentities::from_file(&self.identity)?;
        Ok((self, identity))
    }
}

/// Show a record as it was in a snapshot (reads the one block that holds it).
#[derive(Args, Debug)]
pub struct Show {
    #[command(flatten)]
    at: AtSnapshot,
}

/// Compare a record of a snapshot with the live row, field by field.
#[derive(Args, Debug)]
pub struct Diff {
    #[command(flatten)]
    at: AtSnapshot,
}

/// Put records back from a snapshot, optionally with their related rows.
///
/// Inserts the missing, updates the changed, leaves identical rows alone, in one transaction.
/// With --with-related, also the rows that reference them (recursively) and the parents they
/// need that the live database lacks.
#[derive(Args, Debug)]
pub struct RestoreRecords {
    tenant: String,
    #[arg(long)]
    table: String,
    /// Primary key of a record (repeatable).
    #[arg(long = "key", value_parser = key, required = true)]
    keys: Vec<KeyValues>,
    #[arg(long, default_value = "latest")]
    snapshot: String,
    #[arg(long)]
    identity: PathBuf,
    #[arg(long)]
    with_related: bool,
    /// Print which rows would be inserted or updated, and change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl Find {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let t = &self.target;
        let versions = vault.find_record(&t.tenant, &t.table, &t.key)?;
        if g.json {
            output::json(&versions)?;
        } else {
            for v in &versions {
                let time = v
                    .time
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                println!("{}  {time}  {}", v.snapshot, v.change);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Show {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let (at, identity) = self.at.load()?;
        let t = &at.target;
        let view = vault
            .show_record(&t.tenant, &t.table, &t.key, &at.snapshot, &identity)
            .await?;
        if g.json {
            output::json(&view)?;
        } else {
            println!("{} in snapshot {}:", view.table, view.snapshot);
            for f in &view.fields {
                println!("  {} = {}", f.column, f.value.as_deref().unwrap_or("NULL"));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Diff {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let (at, identity) = self.at.load()?;
        let t = &at.target;
        let diff = vault
            .diff_record(&t.tenant, &t.table, &t.key, &at.snapshot, &identity)
            .await?;
        if g.json {
            output::json(&diff)?;
        } else if diff.live == "deleted" {
            println!("deleted in live (snapshot {} has it)", diff.snapshot);
        } else if diff.differences.is_empty() {
            println!("identical to snapshot {}", diff.snapshot);
        } else {
            println!("snapshot {} vs live:", diff.snapshot);
            for d in &diff.differences {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".into());
                println!("  {}: {} -> {}", d.column, show(&d.snapshot), show(&d.live));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl RestoreRecords {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let identity = keys::TenantIdentities::from_file(&self.identity)?;
        let opts = RecordRestoreOptions {
            tenant: self.tenant,
            table: self.table,
            keys: self.keys,
            snapshot: self.snapshot,
            with_related: self.with_related,
            dry_run: self.dry_run,
        };
        let report = vault.restore_records(&opts, &identity).await?;
        let (blocks, bytes) = vault.reads();
        if g.json {
            let mut v = serde_json::to_value(&report)?;
            v["store_reads"] = serde_json::json!({ "blocks": blocks, "bytes": bytes });
            output::json(&v)?;
        } else {
            for r in &report.rows {
                println!("{:<9} {} {}  ({})", r.action, r.table, r.key, r.reason);
            }
            let verb = if report.dry_run {
                "would insert"
            } else {
                "inserted"
            };
            println!(
                "{verb} {}, {} {}, unchanged {} (snapshot {})",
                report.inserted,
                if report.dry_run {
                    "would update"
                } else {
                    "updated"
                },
                report.updated,
                report.unchanged,
                report.snapshot
            );
            println!(
                "read {blocks} block(s), {} from the store",
                output::human_bytes(bytes)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
