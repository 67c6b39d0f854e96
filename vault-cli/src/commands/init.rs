use crate::context::Global;
use crate::output;
use clap::Args;
use std::process::ExitCode;
use vault_core::archive::auth::VaultKey;
use vault_core::source::postgres::conninfo;
use vault_core::{Vault, VaultConfig};

/// Create a vault: local directory, config file, inventory and object store.
#[derive(Args, Debug)]
pub struct Init {
    /// Object store URL (default: the `store/` directory inside the vault directory).
    #[arg(long, env = "TVAULT_STORE")]
    store: Option<String>,
    /// Column naming the tenant in pooled tables.
    #[arg(long, default_value = "tenant_id")]
    tenant_column: String,
    /// Only back up these schemas (repeatable).
    #[arg(long)]
    include_schema: Vec<String>,
    #[arg(long)]
    exclude_schema: Vec<String>,
    /// Only back up these tables, as schema.table (repeatable).
    #[arg(long)]
    include_table: Vec<String>,
    #[arg(long)]
    exclude_table: Vec<String>,
    /// Read tables with row-level security tenant by tenant, with this setting set to the tenant
    /// id (e.g. app.current_tenant), instead of refusing to back them up.
    #[arg(long)]
    rls_tenant_setting: Option<String>,
    /// Operator escrow recipient (age public key) for tenants that allow support restores.
    #[arg(long)]
    escrow_recipient: Option<String>,
    /// The recovery code of an existing vault's key (tvk1-…), to create local state for a store
    /// that already holds a vault (another host, or after losing this one's state). A new vault
    /// gets a new key, shown once.
    #[arg(long, env = "TVAULT_VAULT_KEY", hide_env_values = true)]
    vault_key: Option<String>,
}

impl Init {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let source = g.source.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "`tvault init` needs --source postgres://user@host/db (or TVAULT_SOURCE)"
            )
        })?;
        // The config file never holds a password: libpq's own sources supply it at each run.
        let (source, had_password) = conninfo::without_password(&source)?;
        let mut config = VaultConfig::new(source);
        config.store = match (g.store_url(), self.store) {
            (Some(url), Some(other)) if url != other => {
                anyhow::bail!("--vault {url} and --store {other} name different stores")
            }
            (Some(url), _) => Some(url.to_string()),
            (None, s) => s,
        };
        config.tenant_column = self.tenant_column;
        config.include_schemas = self.include_schema;
        config.exclude_schemas = self.exclude_schema;
        config.include_tables = self.include_table;
        config.exclude_tables = self.exclude_table;
        config.rls_tenant_setting = self.rls_tenant_setting;
        if let Some(r) = &self.escrow_recipient {
            keys::TenantRecipient::parse(r)?;
        }
        config.escrow_recipient = self.escrow_recipient;
        let dir = g.dir();
        let given = match &self.vault_key {
            Some(code) => Some(VaultKey::from_code(code).ok_or_else(|| {
                anyhow::anyhow!("--vault-key: expected a recovery code tvk1-<64 hex digits>")
            })?),
            None => None,
        };
        let joined = given.is_some();
        let vault = Vault::init_with_key(&dir, config, given).await?;
        let store = vault.store().location().to_string();
        let code = vault.recovery_code()?;
        let fingerprint = VaultKey::from_code(&code)
            .map(|k| k.fingerprint())
            .unwrap_or_default();
        if had_password {
            eprintln!(
                "note: the password given in --source was not written to the config; give it to \
                 each run with PGPASSWORD, a password file (~/.pgpass or PGPASSFILE) or --source"
            );
        }
        if g.json {
            let mut v = serde_json::json!({ "vault": dir, "store": store, "vault_key_fingerprint": fingerprint });
            if !joined {
                v["recovery_code"] = code.into();
            }
            output::json(&v)?;
        } else {
            println!("initialised vault at {} (store: {store})", dir.display());
            println!("vault key fingerprint: {fingerprint}");
            if !joined {
                println!(
                    "recovery code (shown once; keep it offline: it is needed to rebuild this vault's \
                     state elsewhere, and whoever holds it can forge archives):\n  {code}"
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
