//! Forgetting a tenant: every object of the tenant is deleted, its wrapped data keys first.
//!
//! Destroying the wrapped data keys is what makes the erasure hold even for copies that could
//! not be deleted (object lock, offline copies): every block was encrypted to the data key, and
//! the data key only ever existed wrapped to the tenant's recipients. The certificate lists what
//! was deleted and ends with the audit chain head that records the erasure.

use crate::audit::{actions, AuditDraft};
use crate::error::{Error, IoContext, Result};
use crate::store::LockedVersion;
use crate::{layout, Vault};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Debug, Serialize)]
pub struct DeletedObject {
    pub object: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}

/// The erasure certificate.
#[derive(Debug, Serialize)]
pub struct ErasureCertificate {
    pub tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub objects_deleted: Vec<DeletedObject>,
    pub keys_destroyed: Vec<String>,
    /// Archive object versions S3 object lock keeps until their retention ends: unreadable
    /// without the destroyed keys, recorded, and deleted by a later `retention apply`.
    pub deferred: Vec<LockedVersion>,
    /// The audit entry that records this erasure.
    pub audit_head: AuditHead,
}

impl Vault {
    /// Deletes everything of a tenant; refused under a legal hold.
    pub async fn forget_tenant(&self, tenant: &str) -> Result<ErasureCertificate> {
        // Success is recorded inside, with what was destroyed; a refusal or failure here.
        let result = {
            let _store = self.locks().store_shared().await;
            let _tenant = self.changing_tenant(tenant).await;
            self.with_lease("forget", self.forget_pass(tenant)).await
        };
        // The tenant's entries must not survive in the inventory's old files.
        let result = match result {
            Ok(c) => self.compact_inventory().await.map(|()| c),
            Err(e) => Err(e),
        };
        let draft = AuditDraft::new(actions::ERASURE)
            .tenant(tenant)
            .details(serde_json::json!({ "event": "forget tenant" }));
        self.audit_if_failed(draft, result).await
    }

    async fn forget_pass(&self, tenant: &str) -> Result<ErasureCertificate> {
        let record = self.tenant(tenant)?;
        self.refuse_if_held(&record).await?;
        let mut objects = self.list(&layout::tenant_dir(&record.path)).await?;
        // Keys first: once they are gone nothing left behind can be read.
        let is_key = |o: &object_store::ObjectMeta| o.location.as_ref().contains("/keys/");
        objects.sort_by_key(|o| !is_key(o));
        let mut deleted = vec![];
        let mut keys_destroyed = vec![];
        let mut deferred: Vec<LockedVersion> = vec![];
        for (i, o) in objects.iter().enumerate() {
            if i > 0 && is_key(&objects[i - 1]) && !is_key(o) {
                crate::faults::crash_point("forget:keys");
            }
            if layout::is_archive(&o.location) {
                let locked = self.delete_archive(&o.location, "forget").await?;
                if !locked.is_empty() {
                    deferred.extend(locked);
                    continue;
                }
            } else {
                // Keys, policy, hold, ledger: never locked, so this cannot be deferred.
                self.delete(&o.location).await?;
            }
            if is_key(o) {
                keys_destroyed.push(o.location.to_string());
            }
            deleted.push(DeletedObject {
                object: o.location.to_string(),
                size: o.size,
            });
        }
        let local = self.dir().join("keys").join(format!("{}.age", record.path));
        match std::fs::remove_file(&local) {
            Ok(()) => keys_destroyed.push(local.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).io(|| format!("deleting {}", local.display())),
        }
        let mut left = self.list(&layout::tenant_dir(&record.path)).await?;
        left.retain(|o| !deferred.iter().any(|d| d.object == o.location.as_ref()));
        if !left.is_empty() {
            return Err(Error::Conflict(format!(
                "{} object(s) of tenant {tenant:?} could not be deleted (first: {}); its keys are destroyed, so they \
                 cannot be read; run forget-tenant again to retry",
                left.len(),
                left[0].location
            )));
        }
        crate::faults::crash_point("forget:objects");
        self.inventory().remove_tenant(&record)?;
        self.inventory().flush().await?;
        let entry = self
            .audit(
                AuditDraft::new(actions::ERASURE)
                    .tenant(tenant)
                    .objects(keys_destroyed.clone())
                    .details(serde_json::json!({
                        "event": "tenant forgotten",
                        "objects_deleted": deleted.len(),
                        "bytes_deleted": deleted.iter().map(|d| d.size).sum::<u64>(),
                        "deferred_by_object_lock": deferred.len(),
                    })),
            )
            .await?;
        Ok(ErasureCertificate {
            tenant: tenant.to_string(),
            time: entry.time,
            objects_deleted: deleted,
            keys_destroyed,
            deferred,
            audit_head: AuditHead {
                seq: entry.seq,
                hash: entry.hash,
            },
        })
    }
}
