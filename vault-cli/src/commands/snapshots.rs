use crate::context::Global;
use crate::output;
use clap::Args;
use std::process::ExitCode;

/// List committed snapshots (of one tenant, or of every tenant).
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
            println!(
                "{}  {}  {}  {} tables  {} rows  {}",
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
