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
    /// Operator retention: the default policy and the bounds tenant policies must stay within.
    #[serde(default, skip_serializing_if = "RetentionConfig::is_empty")]
    pub retention: RetentionConfig,
    /// `[s3]`: how an `s3://` store is reached and locked.
    #[serde(default, skip_serializing_if = "S3Config::is_default")]
    pub s3: S3Config,
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
    /// Upper bound on plaintext buffered across all tenants before the largest buffers are cut.
    pub memory_budget: usize,
    /// Target size of one pack object (bytes).
    pub pack_size: usize,
}

impl Default for BackupTuning {
    fn default() -> Self {
        BackupTuning {
            block_size: 1 << 20,
            workers: 2,
            memory_budget: 128 << 20,
            pack_size: 16 << 20,
        }
    }
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
            retention: RetentionConfig::default(),
            s3: S3Config::default(),
        }
    }
}

/// Parameters whose values are secrets, in a URL's query or a `key=value` conninfo string.
const SECRET_PARAMS: [&str; 2] = ["password", "sslpassword"];

/// Removes every password from a connection string for display: the `user:password@` of a URL,
/// `password=` and `sslpassword=` in its query, or in a libpq `key=value` conninfo string.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_conninfo(url);
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let rest = match rest.rsplit_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{auth}@{host}"),
        },
        None => rest.to_string(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k) => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{rest}?{q}"),
        None => format!("{scheme}://{rest}"),
    }
}

/// `key=value` conninfo with secret values replaced; values may be single-quoted with `\`
/// escapes, as libpq reads them.
fn redact_conninfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            out.push(c);
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        out.push_str(&key);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            out.push(chars.next().unwrap_or(' '));
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        out.push('=');
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            value.push('\'');
            chars.next();
            while let Some(c) = chars.next() {
                value.push(c);
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    _ => {}
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if SECRET_PARAMS.contains(&key.as_str()) {
            out.push_str("***");
        } else {
            out.push_str(&value);
        }
    }
    out
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("source", &redact_url(&self.source))
            .field("store", &self.store.as_deref().map(redact_url))
            .field("tenant_column", &self.tenant_column)
            .field("include_schemas", &self.include_schemas)
            .field("exclude_schemas", &self.exclude_schemas)
            .field("include_tables", &self.include_tables)
            .field("exclude_tables", &self.exclude_tables)
            .field("ownership", &self.ownership)
            .field("rls_tenant_setting", &self.rls_tenant_setting)
            .field("escrow_recipient", &self.escrow_recipient)
            .field("backup", &self.backup)
            .field("retention", &self.retention)
            .field("s3", &self.s3)
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
    fn no_form_of_connection_string_shows_a_password() {
        for (given, shown) in [
            ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=pw&sslmode=require",
                "postgres://u@h/db?password=***&sslmode=require",
            ),
            (
                "postgresql://h/db?sslpassword=pw",
                "postgresql://h/db?sslpassword=***",
            ),
            (
                "host=h password=pw dbname=d",
                "host=h password=*** dbname=d",
            ),
            (
                "host=h password = 'p w\\' x' user=u",
                "host=h password =*** user=u",
            ),
            ("host=h dbname=d", "host=h dbname=d"),
        ] {
            let got = redact_url(given);
            assert_eq!(got, shown, "{given}");
            assert!(!got.contains("pw") && !got.contains("p w"), "{got}");
        }
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
