//! `retention apply`: delete the snapshots each tenant's policy lets go, then the pack objects
//! that no kept snapshot references.
//!
//! Blocks are shared between snapshots (deduplication), so a pack is deleted only when none of
//! its blocks is referenced by a kept snapshot; a pack some of whose blocks are still used stays
//! whole (repacking is future work). Prune and backup both hold the vault's inventory lock, so a
//! prune never runs beside a backup of the same vault and cannot delete a block that backup is
//! about to reference; the inventory forgets pruned blocks before the next backup deduplicates.

use crate::archive::manifest::SnapshotRecord;
use crate::audit::{actions, AuditDraft};
use crate::error::Result;
use crate::retention::{self, Decision};
use crate::store::LockedVersion;
use crate::tenant::TenantRecord;
use crate::{layout, Vault};
use object_store::ObjectStoreExt;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

#[derive(Debug, Serialize)]
pub struct TenantRetention {
    pub tenant: String,
    /// The legal hold's reason, when one suspends deletion.
    pub held: Option<String>,
    pub decisions: Vec<Decision>,
    pub deleted_snapshots: u64,
}

#[derive(Debug, Serialize)]
pub struct RetentionReport {
    pub dry_run: bool,
    pub tenants: Vec<TenantRetention>,
    pub objects_deleted: u64,
    pub bytes_freed: u64,
    /// Object versions S3 object lock keeps for now: recorded, and retried by the next run.
    pub deferred: Vec<LockedVersion>,
    /// Earlier deferred deletions this run completed.
    pub deferred_deleted: u64,
}

impl Vault {
    /// Applies retention to one tenant or all; `now` evaluates the policy at another instant
    /// (min-age is still checked against the real clock, so a future `now` cannot delete early).
    pub async fn apply_retention(
        &self,
        tenant: Option<&str>,
        dry_run: bool,
        now: Option<OffsetDateTime>,
    ) -> Result<RetentionReport> {
        match dry_run {
            true => self.retention_pass(tenant, dry_run, now).await,
            false => {
                let result = {
                    let _store = self.locks().store_alone().await;
                    self.with_lease("retention", self.retention_pass(tenant, dry_run, now))
                        .await
                };
                // Deletions are recorded one by one; a pass that failed or was refused (the
                // lease held elsewhere) is recorded here.
                let mut draft = AuditDraft::new(actions::DELETION)
                    .details(serde_json::json!({ "event": "retention apply" }));
                if let Some(t) = tenant {
                    draft = draft.tenant(t);
                }
                self.audit_if_failed(draft, result).await
            }
        }
    }

    async fn retention_pass(
        &self,
        tenant: Option<&str>,
        dry_run: bool,
        now: Option<OffsetDateTime>,
    ) -> Result<RetentionReport> {
        let real_now = OffsetDateTime::now_utc();
        let now = now.unwrap_or(real_now);
        let tenants = match tenant {
            Some(id) => vec![self.tenant(id)?],
            None => self.tenants()?,
        };
        let mut report = RetentionReport {
            dry_run,
            tenants: vec![],
            objects_deleted: 0,
            bytes_freed: 0,
            deferred: vec![],
            deferred_deleted: 0,
        };
        if !dry_run {
            self.retry_deferred(&mut report).await?;
        }
        // Read once: every tenant's versions are dated against the same cycles.
        let cycles = self.inventory().cycles()?;
        for record in tenants {
            self.check_cancelled()?;
            let _tenant = match dry_run {
                true => self.locks().tenant_shared(&record.path).await,
                false => self.locks().tenant_alone(&record.path).await,
            };
            let t = self
                .retain_tenant(&record, &cycles, dry_run, (now, real_now), &mut report)
                .await?;
            report.tenants.push(t);
        }
        self.inventory().flush().await?;
        Ok(report)
    }

    async fn retain_tenant(
        &self,
        record: &TenantRecord,
        cycles: &[SnapshotRecord],
        dry_run: bool,
        (now, real_now): (OffsetDateTime, OffsetDateTime),
        report: &mut RetentionReport,
    ) -> Result<TenantRetention> {
        let policy = self.effective_policy(record).await?;
        let hold = self.hold(record).await?;
        // A version is as young as the last cycle that found it current.
        let snaps: Vec<(String, OffsetDateTime)> = self
            .versions(record, cycles)?
            .into_iter()
            .map(|s| (s.snapshot.clone(), s.current_until()))
            .collect();
        let mut decisions = retention::evaluate(&snaps, &policy, hold.as_ref(), now);
        if let Some(min_age) = policy.min_age {
            for d in decisions
                .iter_mut()
                .filter(|d| !d.keep && real_now - d.time < min_age)
            {
                d.keep = true;
                d.reasons.push(format!(
                    "min-age {}: younger than that by the real clock",
                    retention::format_duration(min_age)
                ));
            }
        }
        let mut out = TenantRetention {
            tenant: record.id.clone(),
            held: hold.as_ref().map(|h| h.reason.clone()),
            decisions,
            deleted_snapshots: 0,
        };
        if let Some(h) = &hold {
            // Record what the hold prevented, so an auditor sees deletion was suspended.
            let unheld = retention::evaluate(&snaps, &policy, None, now);
            let blocked: Vec<String> = unheld
                .into_iter()
                .filter(|d| !d.keep)
                .map(|d| d.snapshot)
                .collect();
            if !blocked.is_empty() && !dry_run {
                let draft = AuditDraft::new(actions::DELETION)
                    .tenant(record.id.clone())
                    .objects(blocked)
                    .refused(format!("legal hold: {}", h.reason));
                self.audit(draft).await?;
            }
            return Ok(out);
        }
        let doomed: Vec<String> = out
            .decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.snapshot.clone())
            .collect();
        if dry_run || doomed.is_empty() {
            return Ok(out);
        }
        let mut deleted = vec![];
        let mut freed = 0;
        for snap in &doomed {
            for path in [
                layout::manifest(&record.path, snap),
                layout::key_index(&record.path, snap),
            ] {
                let Ok(meta) = self.store().objects().head(&path).await else {
                    continue;
                };
                report
                    .deferred
                    .extend(self.delete_archive(&path, "retention").await?);
                freed += meta.size;
                deleted.push(path.to_string());
            }
            self.inventory().remove_snapshot(&record.path, snap)?;
            out.deleted_snapshots += 1;
        }
        let (packs, bytes) = self.prune_packs(record, report).await?;
        report.objects_deleted += (deleted.len() + packs.len()) as u64;
        report.bytes_freed += bytes + freed;
        deleted.extend(packs);
        let draft = AuditDraft::new(actions::DELETION)
            .tenant(record.id.clone())
            .objects(deleted)
            .details(serde_json::json!({ "snapshots": doomed, "bytes_freed": bytes + freed }));
        self.audit(draft).await?;
        Ok(out)
    }

    /// Deletes the tenant's packs that no remaining snapshot references; returns them and the
    /// bytes freed.
    async fn prune_packs(
        &self,
        record: &TenantRecord,
        report: &mut RetentionReport,
    ) -> Result<(Vec<String>, u64)> {
        let mut referenced: HashSet<String> = HashSet::new();
        for snap in self.inventory().snapshots(&record.path)? {
            for t in self.manifest(record, &snap.snapshot).await?.tables {
                referenced.extend(t.blocks.into_iter().map(|b| b.pack));
            }
        }
        let mut blocks_by_pack: HashMap<String, Vec<String>> = HashMap::new();
        for b in self.inventory().blocks_of(&record.path)? {
            blocks_by_pack.entry(b.pack).or_default().push(b.id);
        }
        let mut deleted = vec![];
        let mut bytes = 0;
        for meta in self.list(&layout::packs_prefix(&record.path)).await? {
            let Some(name) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".pack"))
            else {
                continue;
            };
            if referenced.contains(name) {
                continue;
            }
            // Forget the blocks first: a crash between the two leaves an orphan pack, never a
            // block location pointing at a deleted pack.
            if let Some(ids) = blocks_by_pack.get(name) {
                self.inventory()
                    .remove_blocks(&record.path, ids.iter().map(String::as_str))?;
            }
            self.inventory()
                .remove_packs(&record.path, std::iter::once(name))?;
            self.inventory().flush().await?;
            report
                .deferred
                .extend(self.delete_archive(&meta.location, "retention").await?);
            bytes += meta.size;
            deleted.push(meta.location.to_string());
        }
        Ok((deleted, bytes))
    }
}

impl Vault {
    /// Retries the deletions object lock deferred: those whose lock has run out are deleted
    /// (and audited); the rest stay recorded and are reported again.
    async fn retry_deferred(&self, report: &mut RetentionReport) -> Result<()> {
        let mut done = vec![];
        for d in self.inventory().deferred()? {
            let l = &d.locked;
            // Asked every time rather than judged by the recorded date: a governance retention
            // can be shortened and a legal hold lifted behind tvault's back.
            let path = layout::Path::from(l.object.as_str());
            match self
                .store()
                .delete_version(&path, l.version.as_deref())
                .await?
            {
                Some(still) => {
                    self.inventory().put_deferred(&still, &d.reason)?;
                    report.deferred.push(still);
                }
                None => {
                    self.inventory()
                        .remove_deferred(&l.object, l.version.as_deref())?;
                    done.push(l.object.clone());
                }
            }
        }
        if !done.is_empty() {
            report.deferred_deleted = done.len() as u64;
            report.objects_deleted += done.len() as u64;
            let draft = AuditDraft::new(actions::DELETION)
                .objects(done)
                .details(serde_json::json!({ "deferred_by_object_lock": true }));
            self.audit(draft).await?;
        }
        Ok(())
    }
}
