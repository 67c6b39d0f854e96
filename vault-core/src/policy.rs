//! Per-tenant retention policies and legal holds, stored in the object store next to the
//! tenant's archives (`policy.json`, `hold.json`) so they survive the loss of the vault's disk.

use crate::audit::{actions, AuditDraft};
use crate::error::{Error, Result};
use crate::retention::{Hold, Policy};
use crate::store::Lock;
use crate::tenant::TenantRecord;
use crate::{layout, Vault};
use time::OffsetDateTime;

impl Vault {
    /// The tenant's own policy, if it set one.
    pub async fn tenant_policy(&self, record: &TenantRecord) -> Result<Option<Policy>> {
        self.get_json(&layout::policy(&record.path)).await
    }

    /// The policy that applies: the tenant's own, else the operator's default; the operator's
    /// bounds tighten either (a compliance floor on min-age, a privacy ceiling on max-age).
    pub async fn effective_policy(&self, record: &TenantRecord) -> Result<Policy> {
        let mut p = match self.tenant_policy(record).await? {
            Some(p) => p,
            None => self.config().retention.default.clone(),
        };
        let b = &self.config().retention.bounds;
        if let Some(floor) = b.min_min_age {
            p.min_age = Some(p.min_age.map_or(floor, |m| m.max(floor)));
        }
        if let Some(ceiling) = b.max_max_age {
            p.max_age = Some(p.max_age.map_or(ceiling, |m| m.min(ceiling)));
        }
        Ok(p)
    }

    /// Sets a tenant's policy after checking it is consistent and within the operator's bounds.
    pub async fn set_policy(&self, tenant: &str, policy: Policy) -> Result<Policy> {
        let record = self.tenant(tenant)?;
        if let Err(why) = policy
            .validate()
            .and_then(|_| policy.within_bounds(&self.config().retention.bounds))
        {
            let draft = AuditDraft::new(actions::POLICY_CHANGE)
                .tenant(tenant)
                .details(serde_json::to_value(&policy).unwrap_or_default())
                .refused(&why);
            self.audit(draft).await?;
            return Err(Error::Invalid(format!(
                "policy for tenant {tenant:?} refused: {why}"
            )));
        }
        let body = serde_json::to_vec_pretty(&policy).map_err(|e| Error::Invalid(e.to_string()))?;
        self.put(&layout::policy(&record.path), body).await?;
        let details = serde_json::to_value(&policy).unwrap_or_default();
        self.audit(
            AuditDraft::new(actions::POLICY_CHANGE)
                .tenant(tenant)
                .details(details),
        )
        .await?;
        Ok(policy)
    }

    /// The lock of the tenant's archive objects written at `time`, on a bucket with object lock:
    /// retained until `time + min_age`, rounded up to the next UTC midnight (so an object
    /// shared by a day's snapshots is extended at most once a day), and under legal hold while
    /// the tenant is. Elsewhere, no lock.
    pub(crate) async fn archive_lock(
        &self,
        record: &TenantRecord,
        time: OffsetDateTime,
    ) -> Result<Lock> {
        if !self.store().locks().await? {
            return Ok(Lock::default());
        }
        let until = self.effective_policy(record).await?.min_age.map(|age| {
            let t = time + age;
            let midnight = t.replace_time(time::Time::MIDNIGHT);
            if midnight == t {
                t
            } else {
                midnight + time::Duration::DAY
            }
        });
        Ok(Lock {
            until,
            legal_hold: self.hold(record).await?.is_some(),
        })
    }

    /// The tenant's legal hold, if any.
    pub async fn hold(&self, record: &TenantRecord) -> Result<Option<Hold>> {
        self.get_json(&layout::hold(&record.path)).await
    }

    /// Places a legal hold: nothing of the tenant is deleted or erased until it is released.
    pub async fn set_hold(&self, tenant: &str, reason: &str) -> Result<Hold> {
        let result = self.place_hold(tenant, reason).await;
        let draft = AuditDraft::new(actions::HOLD).tenant(tenant);
        self.audit_if_failed(draft, result).await
    }

    async fn place_hold(&self, tenant: &str, reason: &str) -> Result<Hold> {
        let record = self.tenant(tenant)?;
        if reason.trim().is_empty() {
            return Err(Error::Invalid("a legal hold needs a --reason".into()));
        }
        let hold = Hold {
            reason: reason.to_string(),
            since: OffsetDateTime::now_utc(),
        };
        let body = serde_json::to_vec_pretty(&hold).map_err(|e| Error::Invalid(e.to_string()))?;
        self.put(&layout::hold(&record.path), body).await?;
        // On a bucket with object lock, the hold is also S3 legal hold on every archive version.
        let versions = self
            .store()
            .set_legal_hold(&layout::tenant_dir(&record.path), true)
            .await?;
        self.audit(
            AuditDraft::new(actions::HOLD)
                .tenant(tenant)
                .details(serde_json::json!({ "reason": reason, "s3_legal_holds": versions })),
        )
        .await?;
        Ok(hold)
    }

    pub async fn release_hold(&self, tenant: &str) -> Result<Option<Hold>> {
        let result = self.lift_hold(tenant).await;
        let draft = AuditDraft::new(actions::HOLD_RELEASE).tenant(tenant);
        self.audit_if_failed(draft, result).await
    }

    async fn lift_hold(&self, tenant: &str) -> Result<Option<Hold>> {
        let record = self.tenant(tenant)?;
        let hold = self.hold(&record).await?;
        if let Some(h) = &hold {
            // S3 legal holds first: should that fail, the hold stays recorded and in force.
            let versions = self
                .store()
                .set_legal_hold(&layout::tenant_dir(&record.path), false)
                .await?;
            self.delete(&layout::hold(&record.path)).await?;
            self.audit(
                AuditDraft::new(actions::HOLD_RELEASE)
                    .tenant(tenant)
                    .details(serde_json::json!({ "reason": h.reason, "s3_legal_holds": versions })),
            )
            .await?;
        }
        Ok(hold)
    }

    /// Refuses when the tenant is under a legal hold (the caller records the refusal).
    pub(crate) async fn refuse_if_held(&self, record: &TenantRecord) -> Result<()> {
        if let Some(h) = self.hold(record).await? {
            return Err(Error::Refused(format!(
                "tenant {:?} is under a legal hold ({}) since {}: nothing of it may be deleted or erased \
                 until `tvault hold release`",
                record.id, h.reason, h.since
            )));
        }
        Ok(())
    }

    async fn get_json<T: for<'de> serde::Deserialize<'de>>(
        &self,
        path: &layout::Path,
    ) -> Result<Option<T>> {
        match self.get(path).await {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(path, e))?,
            )),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
