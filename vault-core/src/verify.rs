//! Verification of stored archives.
//!
//! Without a key: every committed snapshot's manifest parses and every block it references is
//! present, complete, and matches the hash of its sealed bytes. With the tenant's identity: every
//! block also decrypts, matches its keyed id, and every table's row count and keyed checksum
//! match the manifest.

use crate::archive::block::{self, Checksum};
use crate::error::{Error, Result};
use crate::tenant::{TenantRecord, Unlocked};
use crate::{layout, Vault};
use serde::Serialize;
use std::collections::HashSet;

#[derive(Debug, Serialize)]
pub struct VerifyEntry {
    pub tenant: String,
    pub snapshot: String,
    pub blocks: u64,
    pub decrypted: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub checked: Vec<VerifyEntry>,
}

impl Vault {
    /// Verifies one tenant (or all) in every snapshot; `identity` requires a single tenant.
    pub async fn verify(
        &self,
        tenant: Option<&str>,
        identity: Option<&keys::TenantIdentities>,
    ) -> Result<VerifyReport> {
        let result = match tenant {
            // One tenant's archives are not rewritten or deleted while they are checked.
            Some(t) => {
                let _tenant = self.reading_tenant(t).await;
                self.verify_unaudited(tenant, identity).await
            }
            None => self.verify_unaudited(tenant, identity).await,
        };
        let (Some(tenant), Some(_)) = (tenant, identity) else {
            return result;
        };
        // With a key, verify decrypts every block: a read of the tenant's plaintext.
        let mut details = serde_json::json!({ "what": "verify" });
        if let Ok(r) = &result {
            details["snapshots"] = r.checked.len().into();
            details["ok"] = r.ok.into();
        }
        let draft = crate::audit::AuditDraft::new(crate::audit::actions::READ)
            .tenant(tenant)
            .details(details);
        self.audited(draft, result).await
    }

    async fn verify_unaudited(
        &self,
        tenant: Option<&str>,
        identity: Option<&keys::TenantIdentities>,
    ) -> Result<VerifyReport> {
        let tenants = match tenant {
            Some(id) => vec![self.tenant(id)?],
            None if identity.is_some() => {
                return Err(Error::Invalid(
                    "--identity needs --tenant: each tenant has its own key".into(),
                ))
            }
            None => self.tenants()?,
        };
        let mut checked = vec![];
        for record in &tenants {
            let keys = match identity {
                Some(id) => Some(self.unlock(record, id).await?),
                None => None,
            };
            for snap in self.inventory().snapshots(&record.path)? {
                checked.push(
                    self.verify_snapshot(record, &snap.snapshot, keys.as_ref())
                        .await,
                );
            }
        }
        Ok(VerifyReport {
            ok: checked.iter().all(|c| c.problems.is_empty()),
            checked,
        })
    }

    async fn verify_snapshot(
        &self,
        record: &TenantRecord,
        snapshot: &str,
        keys: Option<&Unlocked>,
    ) -> VerifyEntry {
        let mut entry = VerifyEntry {
            tenant: record.id.clone(),
            snapshot: snapshot.to_string(),
            blocks: 0,
            decrypted: keys.is_some(),
            problems: vec![],
        };
        let manifest = match self.manifest(record, snapshot).await {
            Ok(m) => m,
            Err(e) => {
                entry.problems.push(e.to_string());
                return entry;
            }
        };
        // A sealed pack is checked whole against its hash: no key needed.
        for p in &manifest.packs {
            let path = layout::pack(&record.path, &p.name);
            match self.get(&path).await {
                Ok(bytes)
                    if bytes.len() as u64 == p.length && block::sealed_hash(&bytes) == p.hash => {}
                Ok(_) => entry.problems.push(format!(
                    "corrupt object {path}: the pack does not match its recorded length and hash"
                )),
                Err(e) => entry.problems.push(e.to_string()),
            }
        }
        let mut seen = HashSet::new();
        for t in &manifest.tables {
            let name = t.def.display_name();
            let mut sum = Checksum::default();
            let mut complete = true;
            for b in &t.blocks {
                entry.blocks += 1;
                let result = match keys {
                    None if b.in_sealed_pack() || !seen.insert(b.id.clone()) => continue,
                    None => self.fetch_sealed(record, b).await.map(|_| None),
                    Some(k) => self.read_block(record, k, &name, b).await.map(Some),
                };
                match result {
                    Ok(Some(plaintext)) => {
                        for row in block::rows(&plaintext) {
                            sum.add_row(&keys.expect("decrypting implies keys").id_key, row);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        complete = false;
                        entry.problems.push(e.to_string());
                    }
                }
            }
            if keys.is_some() && complete && (sum.rows != t.rows || sum.hex() != t.checksum) {
                entry.problems.push(format!(
                    "table {name}: {} rows with checksum {} in the blocks, manifest says {} rows with checksum {}",
                    sum.rows,
                    sum.hex(),
                    t.rows,
                    t.checksum
                ));
            }
        }
        entry
    }
}
