//! The tenant registry: who the tenants are, their public keys, and their wrapped data keys.
//!
//! Envelope: at registration the vault makes a data key (an age identity) and an id key, seals
//! the id key to the data key, wraps the data key to the tenant's recipients (and the operator's
//! escrow recipient when the tenant allows it), stores both in the object store (and the wrapped
//! key locally), and forgets the data key. Backups only need the data key's public half; restores
//! need the tenant's identity to unwrap it. Rotating the tenant's key re-wraps the data key.

use crate::archive::block::IdKey;
use crate::error::{Error, Result};
use crate::layout;
use crate::source::postgres as pg;
use crate::vault::Vault;
use keys::{DataKey, DataRecipient, TenantIdentities, TenantRecipient};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A registered tenant, as stored in `tenant.json` and in the inventory. No secrets.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantRecord {
    pub format: u32,
    pub id: String,
    /// Directory name of the tenant in the store (keyed hash of `id`).
    pub path: String,
    /// Where the tenant's rows live: `"model": "pool"` or `"bridge"` with its `"schema"`.
    #[serde(flatten)]
    pub placement: Placement,
    pub recipients: Vec<String>,
    /// Whether the data key is also wrapped to the operator's escrow recipient.
    pub escrow: bool,
    pub data_recipient: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Data recipients of earlier data keys, oldest first (after `rotate-key --revoke`); their
    /// keys stay readable for the snapshots sealed to them, wrapped to the current recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_data_recipients: Vec<String>,
    /// Blocks in packs named before this (a snapshot-id-like time) were sealed to an earlier data
    /// key and are never reused by later snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_epoch: Option<String>,
    /// When the record was last written (registration, key rotation, placement). Another host
    /// of the store takes a record it did not write only when this is later than its own copy's,
    /// so an older authentic version replayed into the store is refused
    /// ([`Vault::catch_up_inventory`]). Absent in records written before it existed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub updated: Option<OffsetDateTime>,
}

/// Where a tenant's rows live in the source database (its partition model).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Placement {
    /// Shared tables with a tenant column (or reaching one through foreign keys).
    Pool,
    /// One schema per tenant: every table of `schema` is the tenant's.
    Bridge { schema: String },
    /// One database per tenant: every table of `database` is the tenant's. `database` is a
    /// database name on the source's server, or a connection string without a password (which
    /// comes from the environment or a password file, as for the source).
    Silo { database: String },
}

/// The schema a silo tenant's tables are archived relative to (the others keep their schema).
pub const SILO_HOME: &str = "public";

impl Placement {
    /// The schema of the source database the tenant owns whole (bridge), if any.
    pub fn schema(&self) -> Option<&str> {
        match self {
            Placement::Bridge { schema } => Some(schema),
            Placement::Pool | Placement::Silo { .. } => None,
        }
    }

    /// The database the tenant owns whole (silo), if any.
    pub fn database(&self) -> Option<&str> {
        match self {
            Placement::Silo { database } => Some(database),
            Placement::Pool | Placement::Bridge { .. } => None,
        }
    }

    /// The schema the tenant's archived tables are relative to: its own (bridge), or `public`
    /// of its own database (silo); `None` for a pooled tenant, whose tables keep their names.
    pub fn home(&self) -> Option<&str> {
        match self {
            Placement::Pool => None,
            Placement::Bridge { schema } => Some(schema),
            Placement::Silo { .. } => Some(SILO_HOME),
        }
    }

    /// The model's name, as `tvault tenant list` shows it.
    pub fn model(&self) -> &'static str {
        match self {
            Placement::Pool => "pool",
            Placement::Bridge { .. } => "bridge",
            Placement::Silo { .. } => "silo",
        }
    }

    /// Where the tenant lives, for lists: its schema or its database (without secrets).
    pub fn location(&self) -> Option<String> {
        match self {
            Placement::Pool => None,
            Placement::Bridge { schema } => Some(schema.clone()),
            Placement::Silo { database } => {
                Some(crate::source::postgres::conninfo::show_database(database))
            }
        }
    }

    /// Refuses a schema name PostgreSQL would not keep as given, or one of its own, and a silo
    /// database given with a password (tenant records are not secret).
    pub fn validate(&self) -> Result<()> {
        if let Some(database) = self.database() {
            return crate::source::postgres::conninfo::check_database(database);
        }
        let Some(schema) = self.schema() else {
            return Ok(());
        };
        if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
            return Err(Error::Invalid(format!(
                "schema name {schema:?} must have 1 to 63 bytes and no NUL"
            )));
        }
        if schema.starts_with("pg_") || schema == "information_schema" {
            return Err(Error::Invalid(format!(
                "schema {schema:?} belongs to PostgreSQL itself, not to a tenant"
            )));
        }
        Ok(())
    }
}

impl TenantRecord {
    /// Whether a stored block may be reused by a new snapshot: not if it predates a revocation.
    pub fn may_reuse(&self, pack: &str) -> bool {
        self.key_epoch.as_deref().is_none_or(|e| pack >= e)
    }
}

/// What unlocking a tenant yields: the keys to read its archives.
pub struct Unlocked {
    /// The current data key.
    pub data_key: DataKey,
    /// Earlier data keys (revoked for new snapshots), oldest first.
    pub former: Vec<DataKey>,
    pub id_key: IdKey,
}

impl Unlocked {
    /// Every data key, the current one first.
    pub fn data_keys(&self) -> impl Iterator<Item = &DataKey> {
        std::iter::once(&self.data_key).chain(self.former.iter().rev())
    }

    /// Opens an age file sealed to any of the tenant's data keys.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, keys::Error> {
        let mut last = keys::Error::WrongKey;
        for k in self.data_keys() {
            match keys::open(k, sealed) {
                Ok(p) => return Ok(p),
                Err(e @ keys::Error::WrongKey) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

impl Vault {
    /// Registers a tenant with its public keys.
    pub async fn add_tenant(
        &self,
        id: &str,
        recipients: &[String],
        allow_escrow: bool,
        placement: Placement,
    ) -> Result<TenantRecord> {
        let result = self.register(id, recipients, allow_escrow, placement).await;
        let draft = crate::audit::AuditDraft::new(crate::audit::actions::KEY_CHANGE)
            .details(serde_json::json!({ "event": "register tenant" }));
        // A hostile id is not repeated into the trail.
        let draft = match layout::validate_tenant_id(id) {
            Ok(()) => draft.tenant(id),
            Err(_) => draft,
        };
        self.audit_if_failed(draft, result).await
    }

    async fn register(
        &self,
        id: &str,
        recipients: &[String],
        allow_escrow: bool,
        placement: Placement,
    ) -> Result<TenantRecord> {
        layout::validate_tenant_id(id)?;
        placement.validate()?;
        if self.inventory().tenant(id)?.is_some() {
            return Err(Error::Conflict(format!(
                "tenant {id:?} is already registered; use `tvault tenant rotate-key` to change its keys"
            )));
        }
        self.claim(&placement, id).await?;
        let recipients = self.wrap_recipients(recipients, allow_escrow)?;
        let data_key = DataKey::generate();
        let id_key = IdKey::generate();
        let record = TenantRecord {
            format: 1,
            id: id.to_string(),
            path: self.tenant_path(id),
            placement,
            recipients: recipients
                .tenant
                .iter()
                .map(|r| r.as_str().to_string())
                .collect(),
            escrow: allow_escrow,
            data_recipient: data_key.recipient().as_str().to_string(),
            created: OffsetDateTime::now_utc(),
            former_data_recipients: vec![],
            key_epoch: None,
            updated: Some(OffsetDateTime::now_utc()),
        };
        let sealed_id = keys::seal(&data_key.recipient(), id_key.as_bytes())?;
        self.put(&layout::sealed_id_key(&record.path), sealed_id)
            .await?;
        self.store_wrapped_key(&record, keys::wrap(&data_key, &recipients.all())?)
            .await?;
        // The record goes last: a tenant is registered once its keys are in place.
        self.put(
            &layout::tenant_record(&record.path),
            serde_json::to_vec_pretty(&record).unwrap_or_default(),
        )
        .await?;
        self.inventory().put_tenant(&record, &id_key)?;
        let draft = crate::audit::AuditDraft::new(crate::audit::actions::KEY_CHANGE)
            .tenant(id)
            .object(layout::wrapped_data_key(&record.path).to_string())
            .details(serde_json::json!({ "event": "tenant registered", "recipients": record.recipients, "escrow": allow_escrow }));
        self.audit(draft).await?;
        tracing::info!(tenant = id, "tenant registered");
        Ok(record)
    }

    /// The tenant other than `tenant` whose own schema `placement` names, if any, once the
    /// schema name is checked.
    pub(crate) fn schema_owner_besides(
        &self,
        placement: &Placement,
        tenant: &str,
    ) -> Result<Option<String>> {
        placement.validate()?;
        let Some(schema) = placement.schema() else {
            return Ok(None);
        };
        Ok(self
            .inventory()
            .schema_tenant(schema)?
            .filter(|other| other != tenant))
    }

    /// Refuses a placement in a schema or database that is another tenant's own, and a silo
    /// in the source database itself (whose every table would become one tenant's).
    async fn claim(&self, placement: &Placement, tenant: &str) -> Result<()> {
        placement.validate()?;
        if let Placement::Silo { database } = placement {
            let url = self.database_url(database)?;
            return self.own_database(&url, tenant).await;
        }
        match self.schema_owner_besides(placement, tenant)? {
            Some(other) => Err(Error::Conflict(format!(
                "schema {:?} is already tenant {other:?}'s",
                placement.schema().unwrap_or_default()
            ))),
            None => Ok(()),
        }
    }

    /// Refuses a database as `tenant`'s own (every table in it its) when it is the source, whose
    /// tables the pooled and bridge tenants share, or another silo tenant's.
    pub(crate) async fn own_database(&self, url: &str, tenant: &str) -> Result<()> {
        if pg::is_source(url, &self.config().source).await? {
            return Err(Error::Conflict(format!(
                "{} is the source database, whose tables the pooled and bridge tenants share: \
                 tenant {tenant:?} needs a database of its own",
                pg::redact(url)
            )));
        }
        for other in self.tenants()? {
            let Some(theirs) = other.placement.database().filter(|_| other.id != tenant) else {
                continue;
            };
            if pg::conninfo::same_database(url, &self.database_url(theirs)?)? {
                return Err(Error::Conflict(format!(
                    "database {} is already tenant {:?}'s",
                    pg::redact(url),
                    other.id
                )));
            }
        }
        Ok(())
    }

    /// The connection string of a silo database as a tenant record names it.
    fn database_url(&self, database: &str) -> Result<String> {
        pg::conninfo::database_url(&self.config().source, database)
    }

    /// The connection string of the database a tenant's rows live in: its own (silo), else
    /// the source.
    pub fn tenant_source(&self, record: &TenantRecord) -> Result<String> {
        match record.placement.database() {
            Some(database) => self.database_url(database),
            None => Ok(self.config().source.clone()),
        }
    }

    /// Changes where a tenant's rows are read from by later cycles (after its tables were
    /// moved, say with `restore --into-schema`): the pool, or a schema of its own that no other
    /// tenant has. Its snapshots stay as they are; each restores into the new place.
    pub async fn place_tenant(&self, id: &str, placement: Placement) -> Result<TenantRecord> {
        let result = async {
            let _tenant = self.changing_tenant(id).await;
            self.place(id, placement.clone()).await
        }
        .await;
        let draft = crate::audit::AuditDraft::new(crate::audit::actions::PLACEMENT_CHANGE)
            .tenant(id)
            .details(serde_json::json!({ "to": placement }));
        self.audit_if_failed(draft, result).await
    }

    async fn place(&self, id: &str, placement: Placement) -> Result<TenantRecord> {
        let mut record = self.tenant(id)?;
        self.claim(&placement, id).await?;
        let from = std::mem::replace(&mut record.placement, placement);
        record.updated = Some(OffsetDateTime::now_utc());
        self.put(
            &layout::tenant_record(&record.path),
            serde_json::to_vec_pretty(&record).unwrap_or_default(),
        )
        .await?;
        let mut before = record.clone();
        before.placement = from.clone();
        self.inventory().forget_schema(&before)?;
        self.inventory().put_tenant_record(&record, None)?;
        let draft = crate::audit::AuditDraft::new(crate::audit::actions::PLACEMENT_CHANGE)
            .tenant(id)
            .object(layout::tenant_record(&record.path).to_string())
            .details(serde_json::json!({ "from": from, "to": record.placement }));
        self.audit(draft).await?;
        tracing::info!(
            tenant = id,
            model = record.placement.model(),
            "tenant placed"
        );
        Ok(record)
    }

    /// Re-wraps a tenant's data keys to new recipients; archives are not touched. With
    /// `revoke`, later snapshots get a new data key (and reuse no earlier block), so a leaked
    /// earlier tenant key reads nothing written afterwards; escrow is kept only with
    /// `keep_escrow`. Every wrapped key is rewritten to the new recipients alone, and on a
    /// versioned bucket the earlier versions of the key objects are deleted.
    pub async fn rotate_tenant_key(
        &self,
        id: &str,
        identity: &TenantIdentities,
        new: &[String],
        revoke: bool,
        keep_escrow: bool,
    ) -> Result<TenantRecord> {
        let result = self.rotate(id, identity, new, revoke, keep_escrow).await;
        let draft = crate::audit::AuditDraft::new(crate::audit::actions::KEY_CHANGE)
            .tenant(id)
            .details(serde_json::json!({ "event": "rotate key", "revoke": revoke }));
        self.audit_if_failed(draft, result).await
    }

    async fn rotate(
        &self,
        id: &str,
        identity: &TenantIdentities,
        new: &[String],
        revoke: bool,
        keep_escrow: bool,
    ) -> Result<TenantRecord> {
        let mut record = self.tenant(id)?;
        let unlocked = self.unlock(&record, identity).await?;
        let escrow = record.escrow && (!revoke || keep_escrow);
        let recipients = self.wrap_recipients(new, escrow)?;
        let Unlocked {
            data_key,
            mut former,
            id_key,
        } = unlocked;
        let current = if revoke {
            record
                .former_data_recipients
                .push(record.data_recipient.clone());
            former.push(data_key);
            let fresh = DataKey::generate();
            record.data_recipient = fresh.recipient().as_str().to_string();
            record.key_epoch = Some(layout::key_epoch(OffsetDateTime::now_utc()));
            let sealed_id = keys::seal(&fresh.recipient(), id_key.as_bytes())?;
            let path = layout::sealed_id_key(&record.path);
            self.put(&path, sealed_id).await?;
            self.delete_old_versions(&path, "key rotation").await?;
            fresh
        } else {
            data_key
        };
        for (generation, key) in former.iter().enumerate() {
            let path = layout::former_data_key(&record.path, generation);
            self.put(&path, keys::wrap(key, &recipients.all())?).await?;
            self.delete_old_versions(&path, "key rotation").await?;
        }
        self.store_wrapped_key(&record, keys::wrap(&current, &recipients.all())?)
            .await?;
        self.delete_old_versions(&layout::wrapped_data_key(&record.path), "key rotation")
            .await?;
        record.escrow = escrow;
        record.updated = Some(OffsetDateTime::now_utc());
        record.recipients = recipients
            .tenant
            .iter()
            .map(|r| r.as_str().to_string())
            .collect();
        self.put(
            &layout::tenant_record(&record.path),
            serde_json::to_vec_pretty(&record).map_err(|e| Error::Invalid(e.to_string()))?,
        )
        .await?;
        self.inventory().put_tenant(&record, &id_key)?;
        let draft = crate::audit::AuditDraft::new(crate::audit::actions::KEY_CHANGE)
            .tenant(id)
            .object(layout::wrapped_data_key(&record.path).to_string())
            .details(serde_json::json!({
                "event": if revoke { "key rotated, earlier key revoked" } else { "key rotated" },
                "recipients": record.recipients, "escrow": record.escrow,
                "data_keys": record.former_data_recipients.len() + 1,
            }));
        self.audit(draft).await?;
        tracing::info!(tenant = id, revoke, "tenant key rotated");
        Ok(record)
    }

    /// A registered tenant, or a clear not-found error.
    pub fn tenant(&self, id: &str) -> Result<TenantRecord> {
        self.inventory().tenant(id)?.ok_or_else(|| {
            Error::not_found(
                format!("tenant {id:?}"),
                Some("`tvault tenant list` shows the registered tenants".into()),
            )
        })
    }

    pub fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.inventory().tenants()
    }

    /// Unwraps a tenant's data key with the tenant's identity and recovers its id key.
    pub async fn unlock(
        &self,
        record: &TenantRecord,
        identity: &TenantIdentities,
    ) -> Result<Unlocked> {
        let data_key = self
            .unwrap_data_key(
                record,
                identity,
                &layout::wrapped_data_key(&record.path),
                &record.data_recipient,
                "the identity does not match any of the tenant's registered recipients",
            )
            .await?;
        let mut former = Vec::with_capacity(record.former_data_recipients.len());
        for (generation, recipient) in record.former_data_recipients.iter().enumerate() {
            let path = layout::former_data_key(&record.path, generation);
            let reason = "the identity does not unwrap the tenant's earlier data keys";
            former.push(
                self.unwrap_data_key(record, identity, &path, recipient, reason)
                    .await?,
            );
        }
        let path = layout::sealed_id_key(&record.path);
        let id_key = open_id_key(&data_key, &self.get(&path).await?, &path)?;
        Ok(Unlocked {
            data_key,
            former,
            id_key,
        })
    }

    /// Unwraps one wrapped data key with the tenant's identity and checks that it is the key
    /// the tenant record names (a key swapped in the store is refused).
    async fn unwrap_data_key(
        &self,
        record: &TenantRecord,
        identity: &TenantIdentities,
        path: &layout::Path,
        recipient: &str,
        wrong_key: &str,
    ) -> Result<DataKey> {
        let wrapped = self.get(path).await?;
        unwrap_checked(&record.id, path, &wrapped, identity, recipient, wrong_key)
    }

    async fn store_wrapped_key(&self, record: &TenantRecord, wrapped: Vec<u8>) -> Result<()> {
        let local = self.dir().join("keys").join(format!("{}.age", record.path));
        crate::vault::write_file_atomic(&local, &wrapped)?;
        self.put(&layout::wrapped_data_key(&record.path), wrapped)
            .await
    }

    fn wrap_recipients(&self, given: &[String], escrow: bool) -> Result<WrapRecipients> {
        if given.is_empty() {
            return Err(Error::Invalid(
                "a tenant needs at least one --recipient (its age public key)".into(),
            ));
        }
        let tenant = given
            .iter()
            .map(|r| TenantRecipient::parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        let escrow = match (escrow, &self.config().escrow_recipient) {
            (false, _) => None,
            (true, Some(r)) => Some(TenantRecipient::parse(r)?),
            (true, None) => {
                return Err(Error::Invalid(
                    "--allow-escrow needs an operator escrow recipient (`escrow_recipient` in the config)".into(),
                ))
            }
        };
        Ok(WrapRecipients { tenant, escrow })
    }
}

struct WrapRecipients {
    tenant: Vec<TenantRecipient>,
    escrow: Option<TenantRecipient>,
}

impl WrapRecipients {
    fn all(&self) -> Vec<TenantRecipient> {
        self.tenant
            .iter()
            .cloned()
            .chain(self.escrow.clone())
            .collect()
    }
}

/// Unwraps a wrapped data key (`object` names it in errors) with the tenant's identity and checks
/// that it is the key whose recipient is `recipient` (a key swapped in is refused).
pub(crate) fn unwrap_checked(
    tenant: &str,
    object: impl std::fmt::Display,
    wrapped: &[u8],
    identity: &TenantIdentities,
    recipient: &str,
    wrong_key: &str,
) -> Result<DataKey> {
    let key = keys::unwrap(wrapped, identity).map_err(|e| match e {
        keys::Error::WrongKey => Error::WrongKey {
            tenant: tenant.to_string(),
            reason: wrong_key.into(),
        },
        keys::Error::Corrupt { reason } => Error::corrupt(&object, reason),
        other => other.into(),
    })?;
    if key.recipient().as_str() != recipient {
        return Err(Error::corrupt(
            &object,
            "the wrapped data key does not match the tenant record",
        ));
    }
    Ok(key)
}

/// Opens a tenant's id key, sealed to its data key (`object` names it in errors).
pub(crate) fn open_id_key(
    data_key: &DataKey,
    sealed: &[u8],
    object: impl std::fmt::Display,
) -> Result<IdKey> {
    let raw = keys::open(data_key, sealed).map_err(|e| Error::corrupt(&object, e))?;
    let raw: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| Error::corrupt(&object, "wrong length"))?;
    Ok(IdKey::from_bytes(raw))
}

/// The data recipient of a tenant record.
pub fn data_recipient(record: &TenantRecord) -> Result<DataRecipient> {
    Ok(DataRecipient::parse(&record.data_recipient)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_model_and_schema_in_tenant_json() {
        // A record written before the bridge model: `"model": "pool"` and no schema.
        let old = r#"{"format":1,"id":"acme","path":"t00","model":"pool","recipients":[],
            "escrow":false,"data_recipient":"age1x","created":"2026-11-01T00:00:00Z"}"#;
        let r: TenantRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.placement, Placement::Pool);
        let mut bridge = r.clone();
        bridge.placement = Placement::Bridge {
            schema: "tenant \"q\"".into(),
        };
        let json = serde_json::to_value(&bridge).unwrap();
        assert_eq!(json["model"], "bridge");
        assert_eq!(json["schema"], "tenant \"q\"");
        let back: TenantRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.placement, bridge.placement);
        let unknown = old.replace("\"pool\"", "\"silo\"");
        assert!(serde_json::from_str::<TenantRecord>(&unknown).is_err());
    }

    #[test]
    fn schema_names_postgres_would_not_keep_are_refused() {
        let bridge = |s: &str| Placement::Bridge { schema: s.into() };
        assert!(bridge("tenant_acme").validate().is_ok());
        assert!(bridge("").validate().is_err());
        assert!(bridge(&"x".repeat(64)).validate().is_err());
        assert!(bridge("pg_temp").validate().is_err());
        assert!(bridge("a\0b").validate().is_err());
    }
}
