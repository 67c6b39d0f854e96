use crate::context::Global;
use crate::output;
use clap::Args;
use std::process::ExitCode;

/// List committed snapshots (of one tenant, or of every tenant).
///
/// A cycle that finds a tenant unchanged since its latest snapshot writes nothing for it: that
/// snapshot stands for the cycle too, and "current until" shows the last cycle that found it so
/// (`confirmed` in --json). Restoring with such a cycle's id restores the snapshot it found.
#[derive(Args, Debug)]
pub struct Snapshots {
    #[arg(long)]
    tenant: Option<String>,
}

impl Snapshots {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let list = vault.snapshots(self.tenant.as_deref())?;
        if g.json {
            output::json(&list)?;
            return Ok(ExitCode::SUCCESS);
        }
        if list.is_empty() {
            println!("no snapshots");
        }
        for s in &list {
            let time = s
                .time
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let until = s
                .confirmed
                .and_then(|c| {
                    c.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(|c| format!("  current until {c}"))
                .unwrap_or_default();
            println!(
                "{}  {}  {}  {} tables  {} rows  {}{until}",
                s.snapshot,
                time,
                s.tenant,
                s.tables,
                s.rows,
                output::human_bytes(s.bytes)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
