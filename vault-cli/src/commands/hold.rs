use crate::context::Global;
use crate::output;
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// Legal hold: while set, nothing of the tenant is deleted or erased; refusals are audited.
#[derive(Subcommand, Debug)]
pub enum HoldCmd {
    Set(Set),
    Release(Release),
}

#[derive(Args, Debug)]
pub struct Set {
    tenant: String,
    /// Why (recorded with every refused action), e.g. a case number.
    #[arg(long)]
    reason: String,
}

#[derive(Args, Debug)]
pub struct Release {
    tenant: String,
}

impl HoldCmd {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        match self {
            HoldCmd::Set(s) => {
                let hold = vault.set_hold(&s.tenant, &s.reason).await?;
                if g.json {
                    output::json(&serde_json::json!({ "tenant": s.tenant, "hold": hold }))?;
                } else {
                    println!("legal hold on {:?}: {}", s.tenant, hold.reason);
                }
            }
            HoldCmd::Release(r) => {
                let hold = vault.release_hold(&r.tenant).await?;
                if g.json {
                    output::json(&serde_json::json!({ "tenant": r.tenant, "released": hold }))?;
                } else if hold.is_some() {
                    println!("released the legal hold on {:?}", r.tenant);
                } else {
                    println!("{:?} had no legal hold", r.tenant);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
