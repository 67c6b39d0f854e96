use crate::context::Global;
use crate::output;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Check stored archives (exit code 3 when problems are found).
///
/// Without a key: every block present, complete and unmodified. With the tenant's identity
/// (needs --tenant): every block decrypts and every table's rows and checksums match the manifest.
#[derive(Args, Debug)]
pub struct Verify {
    #[arg(long)]
    tenant: Option<String>,
    /// The tenant's identity file: also decrypt and check contents.
    #[arg(long, requires = "tenant")]
    identity: Option<PathBuf>,
}

impl Verify {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let identity = self
            .identity
            .as_deref()
            .map(keys::TenantIdentities::from_file)
            .transpose()?;
        let report = vault
            .verify(self.tenant.as_deref(), identity.as_ref())
            .await?;
        if g.json {
            output::json(&report)?;
        } else {
            for c in &report.checked {
                let status = if c.problems.is_empty() {
                    "ok"
                } else {
                    "DAMAGED"
                };
                let how = if c.decrypted {
                    "decrypted"
                } else {
                    "sealed bytes"
                };
                println!(
                    "{}  {}  {} blocks ({how})  {status}",
                    c.tenant, c.snapshot, c.blocks
                );
                for p in &c.problems {
                    println!("    {p}");
                }
            }
            println!(
                "{}",
                if report.ok {
                    "all archives verified"
                } else {
                    "problems found"
                }
            );
        }
        Ok(if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    }
}
