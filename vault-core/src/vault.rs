//! The vault handle: local state directory, object store and inventory.
//!
//! Local directory layout: `config.toml` (the [`VaultConfig`]), `inventory/` (sled), `keys/` (local
//! copies of wrapped data keys), and `store/` (the object store, unless the config names another).
//! The object store is the source of truth; everything local can be rebuilt from it.

use crate::error::{Error, IoContext, Result, StoreContext};
use crate::inventory::Inventory;
use crate::store::{Lock, LockedVersion, Store};
use crate::{layout, VaultConfig};
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `vault.json`: identifies the store's format and holds the tenant path salt (not a secret).
#[derive(Serialize, Deserialize)]
struct Descriptor {
    format: u32,
    salt: String,
    #[serde(with = "time::serde::rfc3339")]
    created: time::OffsetDateTime,
}

/// Blocks and bytes fetched from the store by this handle (what a record lookup costs).
#[derive(Default, Debug)]
pub struct ReadStats {
    pub blocks: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
}

pub struct Vault {
    reads: ReadStats,
    /// The audit trail; one process holds the vault (the inventory lock), so a mutex suffices.
    audit: std::sync::Mutex<crate::audit::AuditLog>,
    dir: PathBuf,
    config: VaultConfig,
    store: Store,
    inventory: Inventory,
    salt: [u8; 32],
}

const CONFIG_FILE: &str = "config.toml";

impl Vault {
    /// Creates a vault: local directory, config file, store descriptor and inventory.
    pub async fn init(dir: &Path, config: VaultConfig) -> Result<Vault> {
        let config_path = dir.join(CONFIG_FILE);
        if config_path.exists() {
            return Err(Error::Conflict(format!(
                "a vault already exists at {}",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).io(|| format!("creating {}", dir.display()))?;
        let text = toml::to_string_pretty(&config).map_err(|e| Error::Invalid(e.to_string()))?;
        let store = Store::open(dir, &config).await?;
        let store = store.objects();
        let existing = store.get(&layout::vault_descriptor()).await;
        if let Err(object_store::Error::NotFound { .. }) = existing {
            let mut salt = [0u8; 32];
            rand::fill(&mut salt);
            let d = Descriptor {
                format: 1,
                salt: hex::encode(salt),
                created: time::OffsetDateTime::now_utc(),
            };
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            store
                .put_opts(
                    &layout::vault_descriptor(),
                    PutPayload::from(serde_json::to_vec_pretty(&d).unwrap_or_default()),
                    opts,
                )
                .await
                .store(|| "writing vault.json".into())?;
        } else {
            existing.store(|| "reading vault.json".into())?;
        }
        write_file_atomic(&config_path, text.as_bytes())?;
        Vault::open(dir, config).await
    }

    /// Reads `config.toml` of a vault directory.
    pub fn load_config(dir: &Path) -> Result<VaultConfig> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialised {
                    path: dir.display().to_string(),
                })
            }
            Err(e) => {
                return Err(Error::Io {
                    context: format!("reading {}", path.display()),
                    source: e,
                })
            }
        };
        toml::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    /// Opens an initialised vault with an (already layered) config.
    pub async fn open(dir: &Path, config: VaultConfig) -> Result<Vault> {
        if !dir.join(CONFIG_FILE).exists() {
            return Err(Error::NotInitialised {
                path: dir.display().to_string(),
            });
        }
        let store = Store::open(dir, &config).await?;
        let bytes = match store.objects().get(&layout::vault_descriptor()).await {
            Ok(r) => r.bytes().await.store(|| "reading vault.json".into())?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::NotInitialised {
                    path: format!("{} (store has no vault.json)", dir.display()),
                })
            }
            Err(e) => return Err(e).store(|| "reading vault.json".into()),
        };
        let d: Descriptor =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt("vault.json", e))?;
        if d.format != 1 {
            return Err(Error::Invalid(format!(
                "vault format {} is not supported by this tvault",
                d.format
            )));
        }
        let salt: [u8; 32] = hex::decode(&d.salt)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| Error::corrupt("vault.json", "bad salt"))?;
        let inventory = Inventory::open(&dir.join("inventory"))?;
        let audit = crate::audit::AuditLog::open(&dir.join("audit.log"))?;
        Ok(Vault {
            reads: ReadStats::default(),
            audit: std::sync::Mutex::new(audit),
            dir: dir.to_path_buf(),
            config,
            store,
            inventory,
            salt,
        })
    }

    /// Blocks and bytes read from the store so far.
    pub fn reads(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.reads.blocks.load(Relaxed),
            self.reads.bytes.load(Relaxed),
        )
    }

    pub(crate) fn count_read(&self, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.reads.blocks.fetch_add(1, Relaxed);
        self.reads.bytes.fetch_add(bytes, Relaxed);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Store directory name of a tenant.
    pub fn tenant_path(&self, tenant: &str) -> String {
        layout::tenant_path(&self.salt, tenant)
    }

    /// Appends an audit entry and anchors the new chain head in the store.
    pub async fn audit(&self, draft: crate::audit::AuditDraft) -> Result<crate::audit::AuditEntry> {
        let entry = {
            let mut log = self
                .audit
                .lock()
                .map_err(|_| Error::Conflict("the audit log lock is poisoned".into()))?;
            log.append(draft)?
        };
        crate::audit::write_anchor(&**self.store.objects(), entry.seq, &entry.hash).await?;
        Ok(entry)
    }

    /// Records the outcome of an operation: `ok`, or `failed: <error>`; returns the result.
    pub(crate) async fn audited<T>(
        &self,
        draft: crate::audit::AuditDraft,
        result: Result<T>,
    ) -> Result<T> {
        let draft = match &result {
            Ok(_) => draft,
            Err(e) => draft.failed(e),
        };
        match (self.audit(draft).await, result) {
            (Ok(_), r) => r,
            // A failed operation stays the error the user sees; a lost audit entry of a
            // successful one is an error of its own (the trail must be complete).
            (Err(_), Err(e)) => Err(e),
            (Err(a), Ok(_)) => Err(a),
        }
    }

    /// Entries of the audit trail (of one tenant, or all).
    pub fn audit_entries(&self, tenant: Option<&str>) -> Result<Vec<crate::audit::AuditEntry>> {
        let log = self
            .audit
            .lock()
            .map_err(|_| Error::Conflict("the audit log lock is poisoned".into()))?;
        log.entries(tenant)
    }

    /// Checks the audit trail's chain against the head anchored in the store.
    pub async fn verify_audit(&self) -> Result<crate::audit::VerifyOutcome> {
        let anchor = crate::audit::read_anchor(&**self.store.objects()).await?;
        crate::audit::AuditLog::verify_with_anchor(
            &self.dir.join("audit.log"),
            anchor.map(|a| a.head()),
        )
    }

    pub(crate) async fn put(&self, path: &ObjPath, bytes: Vec<u8>) -> Result<()> {
        self.store.put(path, bytes).await?;
        Ok(())
    }

    /// Writes an archive object (pack, manifest, key index) under the tenant's lock.
    pub(crate) async fn put_archive(
        &self,
        path: &ObjPath,
        bytes: Vec<u8>,
        lock: &Lock,
    ) -> Result<()> {
        self.store.put_archive(path, bytes, lock).await
    }

    pub(crate) async fn get(&self, path: &ObjPath) -> Result<bytes::Bytes> {
        let objects = self.store.objects();
        let r = objects
            .get(path)
            .await
            .store(|| format!("reading {path}"))?;
        r.bytes().await.store(|| format!("reading {path}"))
    }

    /// Every object under `prefix`.
    pub(crate) async fn list(&self, prefix: &ObjPath) -> Result<Vec<object_store::ObjectMeta>> {
        self.store
            .objects()
            .list(Some(prefix))
            .try_collect()
            .await
            .store(|| format!("listing {prefix}"))
    }

    /// Deletes an object that is never locked (markers, keys, policies); a missing one is fine.
    /// One that a bucket's default retention locked anyway is an error that says so.
    pub(crate) async fn delete(&self, path: &ObjPath) -> Result<()> {
        match self.store.delete(path).await?.into_iter().next() {
            None => Ok(()),
            Some(l) => Err(Error::Locked {
                object: path.to_string(),
                why: format!(
                    "{}; the bucket's default retention locks every object",
                    l.why()
                ),
            }),
        }
    }

    /// Deletes an archive object. Versions object lock keeps are recorded in the inventory as
    /// deferred deletions (retried by `retention apply`) and returned.
    pub(crate) async fn delete_archive(
        &self,
        path: &ObjPath,
        reason: &str,
    ) -> Result<Vec<LockedVersion>> {
        let locked = self.store.delete(path).await?;
        self.defer(&locked, reason)?;
        Ok(locked)
    }

    /// Deletes the versions an overwrite left behind (erasure), deferring locked ones.
    pub(crate) async fn delete_old_versions(
        &self,
        path: &ObjPath,
        reason: &str,
    ) -> Result<Vec<LockedVersion>> {
        let locked = self.store.delete_old_versions(path).await?;
        self.defer(&locked, reason)?;
        Ok(locked)
    }

    fn defer(&self, locked: &[LockedVersion], reason: &str) -> Result<()> {
        for l in locked {
            tracing::warn!(object = %l.object, why = %l.why(), "locked: deletion deferred");
            self.inventory.put_deferred(l, reason)?;
        }
        Ok(())
    }
}

/// Writes a local file atomically (temp file, fsync, rename) with owner-only permissions.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let ctx = || format!("writing {}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).io(ctx)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).io(ctx)?;
    f.write_all(bytes).io(ctx)?;
    f.sync_all().io(ctx)?;
    std::fs::rename(&tmp, path).io(ctx)
}

impl Vault {
    /// Reads the source catalog and returns the table plan.
    pub async fn plan(&self) -> Result<crate::source::postgres::catalog::Plan> {
        let client = crate::source::postgres::connect(&self.config().source).await?;
        crate::source::postgres::catalog::plan(&client, self.config()).await
    }
}
