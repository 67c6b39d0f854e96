use crate::context::Global;
use crate::output;
use clap::Args;
use std::process::ExitCode;
use vault_core::archive::auth::VaultKey;
use vault_core::Vault;

/// Upgrade a vault to the current store format (3).
///
/// From format 1: gives the vault a vault key, kept owner-only in the state directory, and puts
/// a MAC under it on every manifest, key index, ledger, policy, hold, tenant record and snapshot
/// record, so that someone with write access to the store alone can no longer change, swap, roll
/// back or forge them (docs/SECURITY.md). It trusts the store as it is now: run `tvault verify`
/// first. Shows the recovery code once: keep it offline.
///
/// From format 2: rewrites only vault.json. Later backups store table definitions once, by
/// digest; archives already written stay readable as they are. Safe to run again if interrupted.
#[derive(Args, Debug)]
pub struct Upgrade {}

impl Upgrade {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let (vault, new_key) = Vault::upgrade(&g.dir(), g.config()?).await?;
        let code = vault.recovery_code()?;
        let fingerprint = VaultKey::from_code(&code)
            .map(|k| k.fingerprint())
            .unwrap_or_default();
        let format = vault_core::vault::VAULT_FORMAT;
        if g.json {
            let mut v =
                serde_json::json!({ "format": format, "vault_key_fingerprint": fingerprint });
            if new_key {
                v["recovery_code"] = code.into();
            }
            output::json(&v)?;
        } else {
            println!("upgraded to format {format}; vault key fingerprint {fingerprint}");
            if new_key {
                println!("recovery code (shown once; keep it offline):\n  {code}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
