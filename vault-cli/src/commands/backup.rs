use crate::context::Global;
use crate::output;
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;
use vault_core::{BackupOptions, Progress};

/// Run a backup cycle: one consistent snapshot, one encrypted archive per tenant.
///
/// A tenant whose data has not changed since its latest snapshot gets nothing written: that
/// snapshot stands for this cycle too (`tvault snapshots` shows it "current until" the cycle).
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["all", "tenant"])))]
pub struct Backup {
    /// Every registered tenant (one scan per table).
    #[arg(long)]
    all: bool,
    /// Only these tenants (repeatable; one indexed query per tenant and table).
    #[arg(long)]
    tenant: Vec<String>,
}

impl Backup {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let bar = output::bar(g.progress(), 0, "rows");
        bar.set_message("backing up");
        let progress_bar = bar.clone();
        let opts = BackupOptions {
            tenants: (!self.all).then_some(self.tenant),
            // Test hook used by the interrupted-backup tests.
            fail_after_blocks: std::env::var("TVAULT_FAIL_AFTER_BLOCKS")
                .ok()
                .and_then(|v| v.parse().ok()),
            progress: Some(Arc::new(move |p| match p {
                Progress::Started { rows_estimate, .. } => progress_bar.inc_length(rows_estimate),
                Progress::Rows(n) => progress_bar.inc(n),
                Progress::Finishing => progress_bar.set_message("writing manifests"),
            })),
        };
        let report = vault.backup(opts).await;
        bar.finish_and_clear();
        let report = report?;
        // Some tenants failed, the others are backed up: a code of its own, for schedulers.
        let code = match report.failed_tenants.is_empty() {
            true => ExitCode::SUCCESS,
            false => ExitCode::from(crate::PARTIAL),
        };
        if g.json {
            output::json(&report)?;
            return Ok(code);
        }
        let rows: u64 = report.tenants.iter().map(|t| t.rows).sum();
        let stored: u64 = report.tenants.iter().map(|t| t.bytes_stored).sum();
        let reused: u64 = report.tenants.iter().map(|t| t.blocks_reused).sum();
        let unchanged = report.tenants.iter().filter(|t| t.unchanged).count();
        println!(
            "snapshot {}: {} tenants ({} unchanged: nothing written for them), {} rows, {} new ({} blocks reused) in {:.1}s",
            report.snapshot,
            report.tenants.len(),
            unchanged,
            rows,
            output::human_bytes(stored),
            reused,
            report.duration_ms as f64 / 1000.0
        );
        println!(
            "source snapshot held open {:.1}s (vacuum on the source waits for it)",
            report.snapshot_held_ms as f64 / 1000.0
        );
        if !report.global_tables.is_empty() {
            println!(
                "global tables, not in tenant archives: {}",
                report.global_tables.join(", ")
            );
        }
        if !report.unregistered_tenants.is_empty() {
            let rows: u64 = report.unregistered_tenants.iter().map(|t| t.rows).sum();
            println!(
                "warning: {} rows of {} unregistered tenant(s) were not archived (register them with `tvault tenant add`)",
                rows,
                report.unregistered_tenants.len()
            );
        }
        for u in &report.unowned_rows {
            println!(
                "warning: {} rows of {} have no owning tenant (NULL tenant or foreign key)",
                u.rows, u.table
            );
        }
        for a in &report.ambiguous_rows {
            println!(
                "warning: {} rows of {} have owner paths naming different tenants (e.g. {}); \
                 each was archived with the tenant of {} rather than {}. Declare the owner in \
                 [ownership] of config.toml if that is wrong",
                a.rows,
                a.table,
                a.examples.join("; "),
                a.chosen,
                a.other
            );
        }
        for f in &report.failed_tenants {
            eprintln!(
                "error: tenant {:?} was not backed up: {}",
                f.tenant, f.error
            );
        }
        if !report.failed_tenants.is_empty() {
            eprintln!(
                "{} of {} tenants were not backed up (the others were); the next cycle tries them again",
                report.failed_tenants.len(),
                report.failed_tenants.len() + report.tenants.len()
            );
        }
        Ok(code)
    }
}
