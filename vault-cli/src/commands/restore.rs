use crate::context::Global;
use crate::output;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vault_core::restore::RestoreOptions;

/// Restore a whole tenant from a snapshot.
///
/// Its rows are replaced in one transaction, checked against the manifest before commit; other
/// tenants are not touched.
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
        } else {
            let rows: u64 = report.tables.iter().map(|t| t.rows_restored).sum();
            println!(
                "restored tenant {:?} from snapshot {} into {}: {} tables, {} rows, all checksums match",
                report.tenant,
                report.snapshot,
                report.target,
                report.tables.len(),
                rows
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
