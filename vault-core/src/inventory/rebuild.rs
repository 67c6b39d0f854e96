//! Rebuilding the inventory from the object store (the source of truth).
//!
//! Without any key, the operational part comes back: tenants, committed snapshots, block
//! locations, per-snapshot block lists. With a tenant's identity (or the escrow identity), that
//! tenant's id key and record key sets come back too, which record lookups and further backups of
//! the tenant need; the key sets are read from the blocks themselves (every block of the tenant
//! is read and decrypted once).

use crate::archive::block;
use crate::archive::keyindex::{self, KeyCodec, KeyList};
use crate::archive::manifest::TenantManifest;
use crate::error::{Error, Result};
use crate::tenant::TenantRecord;
use crate::{layout, Vault};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Default, Serialize)]
pub struct RebuildReport {
    pub tenants: u64,
    pub snapshots: u64,
    pub key_sets: u64,
    /// Tenants whose id key and key sets need their identity (`--identity`).
    pub tenants_without_keys: Vec<String>,
}

/// Whether `r` has a data key that `before` (this vault's copy) did not.
fn data_key_changed(before: Option<&TenantRecord>, r: &TenantRecord) -> bool {
    before.is_some_and(|b| b.data_recipient != r.data_recipient)
}

/// What [`Vault::catch_up_inventory`] added.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct CatchUpReport {
    /// Tenants registered elsewhere.
    pub tenants: u64,
    /// Tenants whose record changed elsewhere (keys rotated, escrow, placement).
    pub tenants_changed: u64,
    /// Tenants forgotten elsewhere: their local key copy and inventory entries removed.
    pub tenants_forgotten: u64,
    pub cycles: u64,
    pub snapshots: u64,
    pub key_sets: u64,
}

impl Vault {
    /// Clears the inventory and rebuilds it from the store; `identities` unlock the record-level
    /// part for the tenants they belong to.
    pub async fn rebuild_inventory(
        &self,
        identities: &BTreeMap<String, keys::TenantIdentities>,
    ) -> Result<RebuildReport> {
        let result = self.rebuild_unaudited(identities).await;
        if identities.is_empty() {
            return result;
        }
        // With identities it decrypts blocks to rebuild key sets: a read of those tenants.
        for tenant in identities.keys() {
            let draft = crate::audit::AuditDraft::new(crate::audit::actions::READ)
                .tenant(tenant.clone())
                .details(serde_json::json!({ "what": "inventory rebuild" }));
            let outcome = match &result {
                Ok(_) => Ok(()),
                Err(e) => Err(Error::Aborted(crate::error::with_causes(e))),
            };
            let recorded = self.audited(draft, outcome).await;
            if result.is_ok() {
                recorded?;
            }
        }
        result
    }

    async fn rebuild_unaudited(
        &self,
        identities: &BTreeMap<String, keys::TenantIdentities>,
    ) -> Result<RebuildReport> {
        let mut report = RebuildReport::default();
        let records_of_cycles = self.stored_cycles().await?;
        let committed: HashSet<String> = records_of_cycles
            .iter()
            .map(|c| c.snapshot.clone())
            .collect();
        let records = self.stored_tenants().await?;
        if let Some(id) = identities
            .keys()
            .find(|id| !records.iter().any(|r| &r.id == *id))
        {
            return Err(Error::not_found(
                format!("tenant {id:?} in the store"),
                None,
            ));
        }
        self.inventory().clear()?;
        for c in &records_of_cycles {
            self.inventory().put_cycle(c)?;
        }
        for r in &records {
            report.tenants += 1;
            let unlocked = match identities.get(&r.id) {
                Some(ids) => Some(self.unlock(r, ids).await?),
                None => None,
            };
            self.inventory()
                .put_tenant_record(r, unlocked.as_ref().map(|u| &u.id_key))?;
            let mut snaps: Vec<String> = self
                .stored_manifests(r)
                .await?
                .into_iter()
                .filter(|s| committed.contains(s))
                .collect();
            snaps.sort();
            for snap in &snaps {
                report.key_sets += self.index_snapshot(r, snap, unlocked.as_ref()).await?;
                report.snapshots += 1;
            }
            if unlocked.is_none() {
                report.tenants_without_keys.push(r.id.clone());
            }
        }
        self.inventory().flush().await?;
        Ok(report)
    }

    /// The committed cycles of the store: every snapshot record, authentic and naming its own
    /// snapshot.
    async fn stored_cycles(&self) -> Result<Vec<crate::archive::manifest::SnapshotRecord>> {
        self.stored_cycles_except(&HashSet::new()).await
    }

    /// [`Vault::stored_cycles`] but those in `known` (not read at all).
    async fn stored_cycles_except(
        &self,
        known: &HashSet<String>,
    ) -> Result<Vec<crate::archive::manifest::SnapshotRecord>> {
        let ids: Vec<String> = self
            .json_names(&layout::snapshots_prefix())
            .await?
            .into_iter()
            .filter(|s| layout::is_snapshot_id(s) && !known.contains(s))
            .collect();
        let mut out = vec![];
        for id in &ids {
            let path = layout::snapshot_record(id);
            let bytes = self.get(&path).await?;
            let record: crate::archive::manifest::SnapshotRecord =
                serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, e))?;
            if &record.snapshot != id {
                return Err(Error::corrupt(&path, "the record names another snapshot"));
            }
            out.push(record);
        }
        Ok(out)
    }

    /// The tenant records of the store, each in its own tenant's directory.
    async fn stored_tenants(&self) -> Result<Vec<TenantRecord>> {
        self.stored_tenants_after(&[]).await
    }

    /// [`Vault::stored_tenants`], taking a record that another host rewrote (one whose version
    /// this vault does not remember writing) only when it is authentic and was written after
    /// this vault's copy in `local` (its `updated`): an older version replayed into the store
    /// stays an error.
    async fn stored_tenants_after(&self, local: &[TenantRecord]) -> Result<Vec<TenantRecord>> {
        let mut records = vec![];
        for meta in self.list(&layout::tenants_prefix()).await? {
            if meta.location.filename() != Some("tenant.json") {
                continue;
            }
            let bytes = match self.get(&meta.location).await {
                Ok(b) => b,
                Err(e) if e.is_integrity() => {
                    let newer = |body: &[u8]| match serde_json::from_slice::<TenantRecord>(body) {
                        Ok(r) => local
                            .iter()
                            .find(|l| l.id == r.id && l.path == r.path)
                            .is_some_and(|l| r.updated > l.updated),
                        Err(_) => false,
                    };
                    match self.store().get_rewritten(&meta.location, newer).await? {
                        Some(b) => b,
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            let r: TenantRecord =
                serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&meta.location, e))?;
            if r.path != self.tenant_path(&r.id) {
                return Err(Error::corrupt(
                    &meta.location,
                    "the tenant record is not in its tenant's directory",
                ));
            }
            records.push(r);
        }
        Ok(records)
    }

    /// The snapshots a tenant has manifests of in the store, oldest first.
    async fn stored_manifests(&self, r: &TenantRecord) -> Result<Vec<String>> {
        let mut snaps = self
            .json_names(&layout::Path::from(format!("tenants/{}/manifests", r.path)))
            .await?;
        snaps.sort();
        Ok(snaps)
    }

    /// The names, without `.json`, of the JSON objects under `prefix`.
    async fn json_names(&self, prefix: &layout::Path) -> Result<Vec<String>> {
        Ok(self
            .list(prefix)
            .await?
            .into_iter()
            .filter_map(|m| {
                m.location
                    .filename()?
                    .strip_suffix(".json")
                    .map(str::to_string)
            })
            .collect())
    }

    /// Brings the inventory up to what other hosts of the store committed since it was last
    /// in step: their cycles' snapshots (the operational part, no key needed) and, when `full`
    /// or a new cycle was found, the tenants: registered, changed (keys rotated, moved) or
    /// forgotten elsewhere. With the escrow identity, the id keys and record key sets of
    /// tenants that allowed escrow come too; other tenants' records made elsewhere are found
    /// after an `inventory rebuild` with their identity. Snapshots deleted elsewhere stay
    /// listed until then (reading one fails with a clear not-found).
    pub async fn catch_up_inventory(
        &self,
        escrow: Option<&keys::TenantIdentities>,
        full: bool,
    ) -> Result<CatchUpReport> {
        let mut report = CatchUpReport::default();
        let known: HashSet<String> = self
            .inventory()
            .cycles()?
            .into_iter()
            .map(|c| c.snapshot)
            .collect();
        let new_cycles = self.stored_cycles_except(&known).await?;
        let local = self.tenants()?;
        let stored = match full || !new_cycles.is_empty() {
            true => self.stored_tenants_after(&local).await?,
            false => vec![],
        };
        let mut unlocked = std::collections::HashMap::new();
        if full || !new_cycles.is_empty() {
            for r in &stored {
                let before = local.iter().find(|t| t.id == r.id);
                let changed =
                    before.map(|b| serde_json::to_value(b).ok() != serde_json::to_value(r).ok());
                // The escrow identity unlocks the id key (for a tenant new here or without one)
                // and the key sets of new snapshots.
                let wanted = changed.is_none()
                    || !new_cycles.is_empty()
                    || self.inventory().id_key(&r.path)?.is_none();
                let key = match (escrow, r.escrow && wanted) {
                    (Some(e), true) => self.unlock(r, e).await.ok(),
                    _ => None,
                };
                match changed {
                    None => report.tenants += 1,
                    Some(true) => {
                        // Keys rotated, escrow changed or moved elsewhere. A rotation with
                        // revocation also sealed the id key anew, to the new data key: that
                        // version is the one to expect now (an older one would not open with
                        // the record's data key, which `unlock` checks).
                        if let Some(b) = before {
                            self.inventory().forget_schema(b)?;
                        }
                        if data_key_changed(before, r) {
                            self.store()
                                .get_rewritten(&layout::sealed_id_key(&r.path), |_| true)
                                .await?;
                        }
                        report.tenants_changed += 1;
                    }
                    Some(false) => {}
                }
                if changed != Some(false) || key.is_some() {
                    self.inventory()
                        .put_tenant_record(r, key.as_ref().map(|u| &u.id_key))?;
                }
                if let Some(k) = key {
                    unlocked.insert(r.id.clone(), k);
                }
            }
            // Forgotten elsewhere: no record, and nothing else of it, left in the store.
            for t in local
                .iter()
                .filter(|t| !stored.iter().any(|r| r.id == t.id))
            {
                if !self.list(&layout::tenant_dir(&t.path)).await?.is_empty() {
                    continue;
                }
                let copy = self.dir().join("keys").join(format!("{}.age", t.path));
                match std::fs::remove_file(&copy) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Error::Aborted(format!("deleting {}: {e}", copy.display())))
                    }
                }
                self.inventory().remove_tenant(t)?;
                report.tenants_forgotten += 1;
            }
        }
        for c in &new_cycles {
            self.inventory().put_cycle(c)?;
            report.cycles += 1;
        }
        let ids: HashSet<&str> = new_cycles.iter().map(|c| c.snapshot.as_str()).collect();
        for r in stored.iter().filter(|_| !ids.is_empty()) {
            let have: HashSet<String> = self
                .inventory()
                .snapshots(&r.path)?
                .into_iter()
                .map(|s| s.snapshot)
                .collect();
            for snap in self.stored_manifests(r).await? {
                if !ids.contains(snap.as_str()) || have.contains(&snap) {
                    continue;
                }
                report.key_sets += self.index_snapshot(r, &snap, unlocked.get(&r.id)).await?;
                report.snapshots += 1;
            }
        }
        if report != CatchUpReport::default() {
            self.inventory().flush().await?;
        }
        Ok(report)
    }

    /// Indexes the key sets of a snapshot's blocks not indexed yet, from the blocks themselves
    /// (each is read and decrypted once); returns the number of key sets.
    pub(crate) async fn index_key_sets(
        &self,
        r: &TenantRecord,
        u: &crate::tenant::Unlocked,
        m: &TenantManifest,
    ) -> Result<u64> {
        let mut n = 0;
        for t in &m.tables {
            let Some(codec) = KeyCodec::for_table(&t.def) else {
                continue;
            };
            let name = t.def.display_name();
            for b in &t.blocks {
                if self.inventory().has_key_set(&r.path, &b.id)? {
                    continue;
                }
                let plain = self.read_block(r, u, &name, b).await?;
                let mut list = KeyList::default();
                for row in block::rows(&plain) {
                    list.push_row(&codec, row, u.id_key.row_hash(row));
                }
                let (min, max, set) = keyindex::encode_list(&list);
                self.inventory()
                    .put_key_set(&r.path, &b.id, &min, &max, &set)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
