//! Rebuilding the inventory from the object store (the source of truth).
//!
//! Without any key, the operational part comes back: tenants, committed snapshots, block
//! locations, per-snapshot block lists. With a tenant's identity (or the escrow identity), that
//! tenant's id key and record key sets come back too, which record lookups and further backups of
//! the tenant need; the key sets are read from the blocks themselves (every block of the tenant
//! is read and decrypted once).

use crate::archive::block;
use crate::archive::keyindex::{self, KeyCodec, KeyList};
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
        let committed: HashSet<String> = self
            .list(&layout::snapshots_prefix())
            .await?
            .into_iter()
            .filter_map(|m| {
                m.location
                    .filename()?
                    .strip_suffix(".json")
                    .map(str::to_string)
            })
            .filter(|s| layout::is_snapshot_id(s))
            .collect();
        // Every snapshot record must be authentic and name its own snapshot.
        let mut records_of_cycles = vec![];
        for id in &committed {
            let path = layout::snapshot_record(id);
            let bytes = self.get(&path).await?;
            let record: crate::archive::manifest::SnapshotRecord =
                serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, e))?;
            if &record.snapshot != id {
                return Err(Error::corrupt(&path, "the record names another snapshot"));
            }
            records_of_cycles.push(record);
        }
        let mut records = vec![];
        for meta in self.list(&layout::tenants_prefix()).await? {
            if meta.location.filename() != Some("tenant.json") {
                continue;
            }
            let bytes = self.get(&meta.location).await?;
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
                .list(&layout::Path::from(format!("tenants/{}/manifests", r.path)))
                .await?
                .into_iter()
                .filter_map(|m| {
                    m.location
                        .filename()?
                        .strip_suffix(".json")
                        .map(str::to_string)
                })
                .filter(|s| committed.contains(s))
                .collect();
            snaps.sort();
            for snap in &snaps {
                self.index_snapshot(r, snap).await?;
                report.snapshots += 1;
                if let Some(u) = &unlocked {
                    report.key_sets += self.index_key_sets(r, u, snap).await?;
                }
            }
            if unlocked.is_none() {
                report.tenants_without_keys.push(r.id.clone());
            }
        }
        self.inventory().flush().await?;
        Ok(report)
    }

    /// Indexes the key sets of a snapshot's blocks not indexed yet, from the blocks themselves
    /// (each is read and decrypted once); returns the number of key sets.
    async fn index_key_sets(
        &self,
        r: &TenantRecord,
        u: &crate::tenant::Unlocked,
        snapshot: &str,
    ) -> Result<u64> {
        let m = self.manifest(r, snapshot).await?;
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
