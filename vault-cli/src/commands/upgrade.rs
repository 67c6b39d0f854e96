use crate::context::Global;
use crate::output;
use clap::Args;
use std::process::ExitCode;
use vault_core::archive::auth::VaultKey;
use vault_core::Vault;

/// Upgrade a vault of format 1 to format 2 (authenticated metadata).
///
/// Gives the vault a vault key, kept owner-only in the state directory, and puts a MAC under it
/// on every manifest, key index, ledger, policy, hold, tenant record and snapshot record, so
/// that someone with write access to the store alone can no longer change, swap, roll back or
/// forge them (docs/SECURITY.md). It trusts the store as it is now: run `tvault verify` first.
/// Safe to run again if interrupted. Shows the recovery code once: keep it offline.
#[derive(Args, Debug)]
pub struct Upgrade {}

impl Upgrade {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = Vault::upgrade(&g.dir(), g.config()?).await?;
        let code = vault.recovery_code()?;
        let fingerprint = VaultKey::from_code(&code)
            .map(|k| k.fingerprint())
            .unwrap_or_default();
        if g.json {
            output::json(&serde_json::json!({
                "format": vault_core::vault::VAULT_FORMAT, "vault_key_fingerprint": fingerprint,
                "recovery_code": code,
            }))?;
        } else {
            println!(
                "upgraded to format {}; vault key fingerprint {fingerprint}",
                vault_core::vault::VAULT_FORMAT
            );
            println!("recovery code (shown once; keep it offline):\n  {code}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
