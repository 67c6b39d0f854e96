use crate::context::Global;
use crate::output;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vault_core::restore::RestoreOptions;

/// Restore a whole tenant from a snapshot.
///
/// The tenant's live rows are compared with the snapshot's by primary key, and only what differs
/// is changed, in one transaction: missing rows inserted, changed rows updated, rows the snapshot
/// lacks deleted (tables without a primary key: the tenant's rows are replaced). References of
/// the changed rows are checked before commit, and the tenant's rows are compared with the
/// manifest's counts and checksums; any failure leaves the database as it was. Other tenants'
/// rows are never changed, and a row of theirs that still references a row the snapshot lacks
/// stops the restore. Use --dry-run first to see what would change.
#[derive(Args, Debug)]
pub struct Restore {
    /// Tenant id.
    tenant: String,
    /// Snapshot id, or `latest`.
    #[arg(long, default_value = "latest")]
    snapshot: String,
    /// The tenant's identity file (age or OpenSSH private key).
    #[arg(long)]
    identity: PathBuf,
    /// Restore into this database instead of the source (it must have the same tables).
    #[arg(long)]
    target: Option<String>,
    /// Restore the tables of schema FROM into schema TO (same tables), e.g. app=scratch
    /// (repeatable).
    #[arg(long, value_name = "FROM=TO", value_parser = parse_map)]
    schema_map: Vec<(String, String)>,
    /// Restore into this schema of the source instead of where the tenant lives: to compare,
    /// or to move a tenant into a schema of its own. A schema that does not exist is made from
    /// the snapshot's DDL; it must belong to no other tenant and hold no other tenant's rows.
    /// With --into-database: where a bridge or silo tenant's own tables go in that database
    /// (default `public`).
    #[arg(long, value_name = "SCHEMA")]
    into_schema: Option<String>,
    /// Restore into this database as the tenant's own (silo): a database name on the source's
    /// server or a connection string. A database without tables gets them from the snapshot's
    /// DDL (tables of the tenant's own schema go to `public`); it must not be the source, and
    /// every table in it is the tenant's.
    #[arg(long, value_name = "DATABASE", conflicts_with = "target")]
    into_database: Option<String>,
    /// Report per table the rows that would be inserted, updated, deleted and left alone;
    /// change nothing.
    #[arg(long)]
    dry_run: bool,
}

fn parse_map(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => Err(format!("expected FROM=TO, got {s:?}")),
    }
}

impl Restore {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let identity = keys::TenantIdentities::from_file(&self.identity)?;
        let bar = output::bytes_bar(g.progress(), 0);
        bar.set_message(format!("restoring {}", self.tenant));
        let b = bar.clone();
        let opts = RestoreOptions {
            tenant: self.tenant,
            snapshot: self.snapshot,
            target: self.target,
            schema_map: self.schema_map,
            into_schema: self.into_schema,
            into_database: self.into_database,
            dry_run: self.dry_run,
            progress: Some(Arc::new(move |done, total| {
                b.set_length(total);
                b.set_position(done);
            })),
        };
        let report = vault.restore(&opts, &identity).await;
        bar.finish_and_clear();
        let report = report?;
        if g.json {
            output::json(&report)?;
            return Ok(ExitCode::SUCCESS);
        }
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        let sum = |f: fn(&vault_core::restore::TableCheck) -> u64| -> u64 {
            report.tables.iter().map(f).sum()
        };
        if report.dry_run {
            println!(
                "dry run: restoring tenant {:?} from snapshot {} into {} would change:",
                report.tenant, report.snapshot, report.target
            );
            println!(
                "  {:<40} {:>10} {:>10} {:>10} {:>10}",
                "table", "insert", "update", "delete", "unchanged"
            );
            for t in &report.tables {
                println!(
                    "  {:<40} {:>10} {:>10} {:>10} {:>10}",
                    t.table, t.inserted, t.updated, t.deleted, t.unchanged
                );
            }
            println!("nothing was changed");
        } else {
            println!(
                "restored tenant {:?} from snapshot {} into {}: {} inserted, {} updated, {} deleted, \
                 {} unchanged in {} tables; all checksums match",
                report.tenant,
                report.snapshot,
                report.target,
                sum(|t| t.inserted),
                sum(|t| t.updated),
                sum(|t| t.deleted),
                sum(|t| t.unchanged),
                report.tables.len(),
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
