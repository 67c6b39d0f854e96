use crate::context::Global;
use crate::output;
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// Show the audit trail, or check it.
///
/// Every backup, restore, record restore, key change, policy change, hold, deletion and erasure,
/// hash-chained and anchored in the store.
#[derive(Args, Debug)]
pub struct Audit {
    #[command(subcommand)]
    cmd: Option<AuditCmd>,
    /// Only entries of this tenant.
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Check the hash chain and the head anchored in the store: finds edited, removed,
    /// reordered or cut entries. Exit code 3 when the trail was tampered with.
    Verify,
}

impl Audit {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        match self.cmd {
            Some(AuditCmd::Verify) => {
                let outcome = vault.verify_audit().await?;
                if g.json {
                    let mut v = serde_json::to_value(&outcome)?;
                    v["ok"] = outcome.is_ok().into();
                    output::json(&v)?;
                } else if outcome.is_ok() {
                    println!(
                        "audit trail intact: {} entries, chain head matches the anchor",
                        outcome.entries
                    );
                } else {
                    println!("audit trail damaged:");
                    for p in &outcome.problems {
                        println!("  {p}");
                    }
                }
                Ok(if outcome.is_ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                })
            }
            None => {
                let entries = vault.audit_entries(self.tenant.as_deref()).await?;
                if g.json {
                    output::json(&entries)?;
                } else {
                    for e in &entries {
                        let time = e
                            .time
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default();
                        println!(
                            "{:>5}  {time}  {:<10} {:<15} {:<20} {}  {}",
                            e.seq,
                            e.actor,
                            e.action,
                            e.tenant.as_deref().unwrap_or("-"),
                            e.outcome,
                            e.details
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
