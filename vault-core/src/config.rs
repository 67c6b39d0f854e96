//! Vault configuration: one serde struct, layered by the front end from a TOML file, `TVAULT_*`
//! environment variables and flags. The core only ever sees the merged result.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Everything a vault needs to know about its source database and its store.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// libpq-style URL of the source database (`postgres://user@host:port/db`).
    pub source: String,
    /// Object store URL; `None` means the `store/` directory inside the vault directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Column that names the tenant in pooled tables.
    #[serde(default = "default_tenant_column")]
    pub tenant_column: String,
    /// Schemas to back up (empty: every non-system schema).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_schemas: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_schemas: Vec<String>,
    /// Tables (`schema.table`) to back up (empty: every table of the included schemas).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tables: Vec<String>,
    /// `[ownership]`: owners declared where the catalog cannot tell, by `schema.table`:
    /// `"global"`, `"excluded"`, `{ via = ["fk columns", …] }` or `{ tenant = "SQL over t0" }`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub ownership: std::collections::BTreeMap<String, DeclaredOwner>,
    /// When set, tables with row-level security are read per tenant with this setting
    /// (`set_config(name, tenant_id, true)`) instead of failing the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rls_tenant_setting: Option<String>,
    /// Operator escrow recipient; data keys are wrapped to it only for tenants that allow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escrow_recipient: Option<String>,
    #[serde(default)]
    pub backup: BackupTuning,
    /// `[restore]`: how long restores and record restores wait for locks and statements.
    #[serde(default, skip_serializing_if = "RestoreLimits::is_default")]
    pub restore: RestoreLimits,
    /// Operator retention: the default policy and the bounds tenant policies must stay within.
    #[serde(default, skip_serializing_if = "RetentionConfig::is_empty")]
    pub retention: RetentionConfig,
    /// `[s3]`: how an `s3://` store is reached and locked.
    #[serde(default, skip_serializing_if = "S3Config::is_default")]
    pub s3: S3Config,
    /// How long the store lease (docs/FORMAT.md) of a crashed holder blocks other hosts'
    /// deleting operations and cycles; the holder renews it every quarter of this.
    #[serde(
        default = "default_lease_seconds",
        skip_serializing_if = "is_default_lease"
    )]
    pub store_lease_seconds: u64,
    /// `[server]`: read by `tvault-server` alone (docs/SERVER.md); kept here so that one file
    /// configures both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<toml::Table>,
}

/// The owner of a table as declared in `[ownership]` (see `docs/RESTORE.md`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DeclaredOwner {
    /// `"global"` (never in tenant archives, reported) or `"excluded"` (ignored).
    Keyword(OwnerKeyword),
    /// Follow these foreign keys, each named by its referencing columns (`"a"` or `"a,b"`), from
    /// the table to a table with the tenant column.
    Via(ViaPath),
    /// A SQL expression over the table's row (alias `t0`) that yields the tenant id.
    Expression(TenantExpression),
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OwnerKeyword {
    Global,
    Excluded,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ViaPath {
    pub via: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantExpression {
    pub tenant: String,
}

/// `[s3]`. Region, endpoint and credentials come from the standard AWS sources (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, `~/.aws/config`, instance roles)
/// unless set here; the values here win.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store (`http://` is allowed only when named here or in
    /// `AWS_ENDPOINT_URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); default: on when an endpoint is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Retries of a failed request (5xx, throttling, dropped connections), with backoff.
    pub max_retries: usize,
    /// Give up retrying one request after this many seconds.
    pub retry_timeout_secs: u64,
    /// Object lock mode for archive objects when the bucket has object lock enabled.
    pub lock_mode: LockMode,
    /// Set to false to write no retention dates even on a lock-enabled bucket.
    pub lock: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            region: None,
            endpoint: None,
            path_style: None,
            max_retries: 10,
            retry_timeout_secs: 180,
            lock_mode: LockMode::Governance,
            lock: true,
        }
    }
}

impl S3Config {
    fn is_default(&self) -> bool {
        *self == S3Config::default()
    }
}

/// S3 object lock retention mode. Governance can be lifted by a principal with
/// `s3:BypassGovernanceRetention`; compliance cannot be lifted by anyone, root included.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

/// `[retention.default]` (the policy of tenants without their own) and `[retention.bounds]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default)]
    pub default: crate::retention::Policy,
    #[serde(default)]
    pub bounds: crate::retention::Bounds,
}

impl RetentionConfig {
    fn is_empty(&self) -> bool {
        *self == RetentionConfig::default()
    }
}

/// Knobs of the backup pipeline. Defaults suit a 2-core machine.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupTuning {
    /// Target plaintext size of one block (bytes).
    pub block_size: usize,
    /// Parallel PostgreSQL connections reading the snapshot.
    pub workers: usize,
    /// Bytes the cycle may buffer (allocated, not only used): half for the readers' rows of every
    /// tenant before the largest buffers are cut into blocks, half for compressed blocks waiting
    /// in packs before the largest pack is sealed early. The whole process peaks at about twice
    /// this (docs/BENCHMARKS.md).
    pub memory_budget: usize,
    /// Target size of one pack object (bytes).
    pub pack_size: usize,
    /// Silo tenants' databases read at once on one server (one connection each).
    pub connections_per_server: usize,
}

impl Default for BackupTuning {
    fn default() -> Self {
        BackupTuning {
            block_size: 1 << 20,
            workers: 2,
            memory_budget: 96 << 20,
            pack_size: 16 << 20,
            connections_per_server: 4,
        }
    }
}

/// Limits of a restore's session on the target database, so that a restore never queues behind
/// (and in front of) the application's locks for long, nor runs a statement without end.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreLimits {
    /// `lock_timeout` in seconds (0: wait forever).
    pub lock_timeout_secs: u64,
    /// `statement_timeout` in seconds (0: none).
    pub statement_timeout_secs: u64,
}

impl Default for RestoreLimits {
    fn default() -> Self {
        RestoreLimits {
            lock_timeout_secs: 10,
            statement_timeout_secs: 3600,
        }
    }
}

impl RestoreLimits {
    fn is_default(&self) -> bool {
        self == &RestoreLimits::default()
    }

    /// The `SET` statements for a restore's session.
    pub fn session_sql(&self) -> String {
        format!(
            "SET lock_timeout = '{}s'; SET statement_timeout = '{}s'",
            self.lock_timeout_secs, self.statement_timeout_secs
        )
    }
}

fn default_lease_seconds() -> u64 {
    crate::lease::TTL.as_secs()
}

fn is_default_lease(s: &u64) -> bool {
    *s == default_lease_seconds()
}

fn default_tenant_column() -> String {
    "tenant_id".to_string()
}

impl VaultConfig {
    pub fn new(source: impl Into<String>) -> Self {
        VaultConfig {
            source: source.into(),
            store: None,
            tenant_column: default_tenant_column(),
            include_schemas: vec![],
            exclude_schemas: vec![],
            include_tables: vec![],
            exclude_tables: vec![],
            ownership: Default::default(),
            rls_tenant_setting: None,
            escrow_recipient: None,
            backup: BackupTuning::default(),
            restore: RestoreLimits::default(),
            retention: RetentionConfig::default(),
            s3: S3Config::default(),
            store_lease_seconds: default_lease_seconds(),
            server: None,
        }
    }
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("source", &crate::source::postgres::redact(&self.source))
            .field("store", &self.store)
            .field("tenant_column", &self.tenant_column)
            .field("include_schemas", &self.include_schemas)
            .field("exclude_schemas", &self.exclude_schemas)
            .field("include_tables", &self.include_tables)
            .field("exclude_tables", &self.exclude_tables)
            .field("ownership", &self.ownership)
            .field("rls_tenant_setting", &self.rls_tenant_setting)
            .field("escrow_recipient", &self.escrow_recipient)
            .field("backup", &self.backup)
            .field("restore", &self.restore)
            .field("retention", &self.retention)
            .field("s3", &self.s3)
            .field("store_lease_seconds", &self.store_lease_seconds)
            .field("server", &self.server.as_ref().map(|_| "[server]"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_passwords() {
        let c = VaultConfig::new("postgres://backup:hunter2@db:5432/app");
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("backup:***@db:5432/app"));
    }

    #[test]
    fn declared_owners_parse_in_all_three_forms() {
        let c: VaultConfig = toml::from_str(
            r#"
            source = "postgres://x/y"
            [ownership]
            "app.film" = "global"
            "app.raw" = "excluded"
            "app.rental" = { via = ["inventory_id", "store_id"] }
            "app.events" = { tenant = "t0.payload->>'org'" }
            "#,
        )
        .unwrap();
        assert_eq!(
            c.ownership["app.film"],
            DeclaredOwner::Keyword(OwnerKeyword::Global)
        );
        assert_eq!(
            c.ownership["app.rental"],
            DeclaredOwner::Via(ViaPath {
                via: vec!["inventory_id".into(), "store_id".into()]
            })
        );
        assert!(matches!(
            c.ownership["app.events"],
            DeclaredOwner::Expression(_)
        ));
        assert!(toml::from_str::<VaultConfig>(
            "source = \"x\"\n[ownership]\n\"a.b\" = \"sometimes\"\n"
        )
        .is_err());
    }
}
