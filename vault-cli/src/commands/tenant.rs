use crate::context::Global;
use crate::output;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Register tenants, list them, rotate their keys.
#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    Add(Add),
    List(List),
    RotateKey(RotateKey),
}

/// Register a tenant with its public key(s). Its archives are encrypted to a data key that is
/// wrapped to these recipients; the vault keeps no key that can read them.
#[derive(Args, Debug)]
pub struct Add {
    /// Tenant id: the value of the tenant column.
    id: String,
    /// Public key: age1... (X25519) or an ssh-ed25519 / ssh-rsa public key line (repeatable).
    #[arg(long, required = true)]
    recipient: Vec<String>,
    /// Also wrap the data key to the operator's escrow recipient (support restores without the
    /// tenant's key).
    #[arg(long)]
    allow_escrow: bool,
}

/// List registered tenants.
#[derive(Args, Debug)]
pub struct List {}

/// Re-wrap a tenant's data key to new recipients (needs a current identity). Archives are not
/// re-encrypted; old identities stop working.
#[derive(Args, Debug)]
pub struct RotateKey {
    id: String,
    /// A current identity file of the tenant.
    #[arg(long)]
    identity: PathBuf,
    /// New public key(s) (repeatable).
    #[arg(long, required = true)]
    recipient: Vec<String>,
}

impl TenantCmd {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        match self {
            TenantCmd::Add(a) => {
                let t = vault
                    .add_tenant(&a.id, &a.recipient, a.allow_escrow)
                    .await?;
                if g.json {
                    output::json(&t)?;
                } else {
                    println!("registered tenant {:?}", t.id);
                }
            }
            TenantCmd::List(_) => {
                let tenants = vault.tenants()?;
                if g.json {
                    let list: Vec<_> = tenants
                        .iter()
                        .map(|t| serde_json::json!({"tenant": t.id, "recipients": t.recipients, "escrow": t.escrow}))
                        .collect();
                    output::json(&list)?;
                } else {
                    for t in &tenants {
                        println!(
                            "{}\t{} key(s){}",
                            t.id,
                            t.recipients.len(),
                            if t.escrow { "\tescrow" } else { "" }
                        );
                    }
                }
            }
            TenantCmd::RotateKey(r) => {
                let identity = keys::TenantIdentities::from_file(&r.identity)?;
                let t = vault
                    .rotate_tenant_key(&r.id, &identity, &r.recipient)
                    .await?;
                if g.json {
                    output::json(&t)?;
                } else {
                    println!(
                        "re-wrapped the data key of {:?} to {} recipient(s)",
                        t.id,
                        t.recipients.len()
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
