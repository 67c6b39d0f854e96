use crate::context::Global;
use crate::output;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use time::Duration;
use vault_core::retention::{parse_duration, Policy};

/// A tenant's retention policy (within the operator's bounds).
#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    Set(Set),
    Show(Show),
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// Replace the tenant's retention policy. Durations: 30s, 12h, 7d, 2w, 1y.
#[derive(Args, Debug)]
pub struct Set {
    tenant: String,
    /// Keep the N newest snapshots.
    #[arg(long)]
    keep_last: Option<u32>,
    #[arg(long)]
    keep_hourly: Option<u32>,
    #[arg(long)]
    keep_daily: Option<u32>,
    #[arg(long)]
    keep_weekly: Option<u32>,
    #[arg(long)]
    keep_monthly: Option<u32>,
    #[arg(long)]
    keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this.
    #[arg(long, value_parser = duration)]
    keep_within: Option<Duration>,
    /// Privacy: snapshots older than this are deleted, whatever keeps them.
    #[arg(long, value_parser = duration)]
    max_age: Option<Duration>,
    /// Compliance: snapshots younger than this are never deleted.
    #[arg(long, value_parser = duration)]
    min_age: Option<Duration>,
}

/// Show the tenant's own policy and the one in effect (operator default and bounds applied).
#[derive(Args, Debug)]
pub struct Show {
    tenant: String,
}

impl PolicyCmd {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        match self {
            PolicyCmd::Set(s) => {
                let policy = Policy {
                    keep_last: s.keep_last,
                    keep_hourly: s.keep_hourly,
                    keep_daily: s.keep_daily,
                    keep_weekly: s.keep_weekly,
                    keep_monthly: s.keep_monthly,
                    keep_yearly: s.keep_yearly,
                    keep_within: s.keep_within,
                    max_age: s.max_age,
                    min_age: s.min_age,
                };
                let p = vault.set_policy(&s.tenant, policy).await?;
                if g.json {
                    output::json(&serde_json::json!({ "tenant": s.tenant, "policy": p }))?;
                } else {
                    println!("policy of {:?}: {}", s.tenant, serde_json::to_string(&p)?);
                }
            }
            PolicyCmd::Show(s) => {
                let record = vault.tenant(&s.tenant)?;
                let own = vault.tenant_policy(&record).await?;
                let effective = vault.effective_policy(&record).await?;
                if g.json {
                    output::json(
                        &serde_json::json!({ "tenant": s.tenant, "policy": own, "effective": effective }),
                    )?;
                } else {
                    match &own {
                        Some(p) => println!("policy: {}", serde_json::to_string(p)?),
                        None => println!("policy: operator default"),
                    }
                    println!("in effect: {}", serde_json::to_string(&effective)?);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
