use crate::context::Global;
use crate::output;
use clap::Args;
use std::process::ExitCode;

/// Forget a tenant entirely and print an erasure certificate.
///
/// Deletes all its archives, manifests, policies and inventory entries and destroys every copy of
/// its wrapped data key, so copies that cannot be deleted are unreadable. Refused under a legal
/// hold.
#[derive(Args, Debug)]
pub struct ForgetTenant {
    tenant: String,
    /// Confirm: this cannot be undone.
    #[arg(long)]
    yes: bool,
}

impl ForgetTenant {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        if !self.yes {
            eprintln!(
                "error: forget-tenant destroys every archive and key of {:?} and cannot be undone; pass --yes",
                self.tenant
            );
            return Ok(ExitCode::from(2));
        }
        let vault = g.open().await?;
        let cert = vault.forget_tenant(&self.tenant).await?;
        if g.json {
            output::json(&cert)?;
        } else {
            println!(
                "forgot tenant {:?}: {} objects deleted, keys destroyed: {}",
                cert.tenant,
                cert.objects_deleted.len(),
                cert.keys_destroyed.join(", ")
            );
            output::deferred(&cert.deferred);
            println!(
                "certificate (audit entry {}): {}",
                cert.audit_head.seq,
                serde_json::to_string(&cert)?
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
