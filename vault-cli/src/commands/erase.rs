use crate::context::Global;
use crate::output;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use vault_core::erase::EraseOptions;
use vault_core::records::{self, KeyValues};

fn key(s: &str) -> Result<KeyValues, String> {
    records::parse_key(s).map_err(|e| e.to_string())
}

/// Erase one person's records from every kept snapshot.
///
/// Only the blocks holding them are rewritten, the old blocks are destroyed, and a ledger keeps
/// them from coming back in later backups and restores. Needs the tenant's identity. Refused
/// under a legal hold.
#[derive(Args, Debug)]
pub struct Erase {
    tenant: String,
    #[arg(long)]
    table: String,
    /// Primary key of a record (repeatable).
    #[arg(long = "key", value_parser = key, required = true)]
    keys: Vec<KeyValues>,
    /// Also erase the rows that reference these records through foreign keys (recursively).
    #[arg(long)]
    cascade: bool,
    /// Show which snapshots and rows would be erased; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    identity: PathBuf,
}

impl Erase {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let identity = keys::TenantIdentities::from_file(&self.identity)?;
        let opts = EraseOptions {
            tenant: self.tenant,
            table: self.table,
            keys: self.keys,
            cascade: self.cascade,
            dry_run: self.dry_run,
        };
        let report = vault.erase(&opts, &identity).await?;
        if g.json {
            output::json(&report)?;
            return Ok(ExitCode::SUCCESS);
        }
        for s in &report.snapshots {
            let rows: Vec<String> = s
                .rows_removed
                .iter()
                .map(|(t, n)| format!("{t}: {n}"))
                .collect();
            println!("{}  {}", s.snapshot, rows.join(", "));
        }
        if report.dry_run {
            println!(
                "dry run: {} block(s) would be rewritten, nothing changed",
                report.blocks_rewritten
            );
        } else {
            println!(
                "erased from {} snapshot(s): {} block(s) rewritten, {} old block(s) destroyed, {} ledger entr(ies)",
                report.snapshots.len(),
                report.blocks_rewritten,
                report.old_blocks_destroyed,
                report.ledger_entries
            );
            output::deferred(&report.deferred);
        }
        Ok(ExitCode::SUCCESS)
    }
}
