//! The vault handle: local state directory, object store and inventory.
//!
//! Local directory layout: `config.toml` (the [`VaultConfig`]), `inventory/` (sled), `keys/` (local
//! copies of wrapped data keys), and `store/` (the object store, unless the config names another).
//! The object store is the source of truth; everything local can be rebuilt from it.

use crate::archive::auth::VaultKey;
use crate::error::{Error, IoContext, Result, StoreContext};
use crate::inventory::Inventory;
use crate::store::{Lock, LockedVersion, Store};
use crate::{layout, VaultConfig};
use futures::{StreamExt, TryStreamExt};
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
    /// Fingerprint of the vault key (format 2), to tell a wrong recovery code early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_fingerprint: Option<String>,
}

/// The store format this tvault writes: 2 authenticates metadata objects with the vault key
/// (`archive::auth`); 3 stores table definitions once, by digest (`schemas/`), which manifests
/// refer to; 4 compresses manifests with zstd. Earlier stores are upgraded by `Vault::upgrade`.
pub const VAULT_FORMAT: u32 = 4;

/// The first store format whose metadata is authenticated.
const AUTHENTICATED_FORMAT: u32 = 2;

/// The vault key in the state directory (owner-only).
const KEY_FILE: &str = "vault.key";

/// Blocks and bytes fetched from the store by this handle (what a record lookup costs).
#[derive(Default, Debug)]
pub struct ReadStats {
    pub blocks: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
}

/// A handle on a vault: its shared state, and the context of the operation it runs (who acts,
/// what it has read, whether it was cancelled). Cloning is cheap; [`Vault::operation`] gives
/// each concurrent operation a handle of its own over the same state.
#[derive(Clone)]
pub struct Vault {
    shared: std::sync::Arc<Shared>,
    op: Operation,
}

/// What every operation of a process shares.
struct Shared {
    /// The audit trail; its append and the anchor write happen under this one lock, so that
    /// concurrent operations anchor their entries in order.
    audit: tokio::sync::Mutex<crate::audit::AuditLog>,
    dir: PathBuf,
    config: VaultConfig,
    store: Store,
    /// Replaced, under the store lock, when a compaction rewrites it.
    inventory: std::sync::RwLock<Inventory>,
    /// Keeps the state directory this process's alone (see `lock_state_dir`).
    _lock: std::fs::File,
    salt: [u8; 32],
    /// The store lease while operations of this process hold it.
    leases: crate::lease::Leases,
    /// Which operations may run side by side (see [`crate::locks`]).
    locks: crate::locks::Locks,
    /// How long to wait for the state directory or the store lease held elsewhere.
    wait: std::time::Duration,
    /// This state directory's audit trail id (`None` for one made before trails had ids).
    trail: Option<String>,
    /// Where its audit trail is anchored in the store.
    anchor: ObjPath,
}

/// The context of one operation.
#[derive(Clone, Default)]
struct Operation {
    /// Who the audit trail names (`--actor`, the server's principal); `None`: the OS user.
    actor: Option<String>,
    /// Blocks and bytes this operation fetched from the store.
    reads: std::sync::Arc<ReadStats>,
    /// Set to stop the operation at its next safe point.
    cancelled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const CONFIG_FILE: &str = "config.toml";

impl Vault {
    /// Creates a vault: local directory, config file, store descriptor and inventory, with a
    /// new vault key; see [`Vault::init_with_key`].
    pub async fn init(dir: &Path, config: VaultConfig) -> Result<Vault> {
        Vault::init_with_key(dir, config, None).await
    }

    /// Creates a vault's local state. On an empty store it writes the descriptor with a new
    /// vault key (or `key`); on a store that already holds a vault (another host, or lost local
    /// state) it needs that vault's key, given as its recovery code. The state directory is
    /// owner-only.
    pub async fn init_with_key(
        dir: &Path,
        config: VaultConfig,
        key: Option<VaultKey>,
    ) -> Result<Vault> {
        let config_path = dir.join(CONFIG_FILE);
        if config_path.exists() {
            return Err(Error::Conflict(format!(
                "a vault already exists at {}",
                dir.display()
            )));
        }
        create_private_dir(dir)?;
        crate::audit::new_trail(dir)?;
        let text = toml::to_string_pretty(&config).map_err(|e| Error::Invalid(e.to_string()))?;
        let store = Store::open(dir, &config).await?;
        let key = match read_descriptor(&store).await? {
            None => {
                let key = key.unwrap_or_else(VaultKey::generate);
                let mut salt = [0u8; 32];
                rand::fill(&mut salt);
                let d = Descriptor {
                    format: VAULT_FORMAT,
                    salt: hex::encode(salt),
                    created: time::OffsetDateTime::now_utc(),
                    key_fingerprint: Some(key.fingerprint()),
                };
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                store
                    .objects()
                    .put_opts(
                        &layout::vault_descriptor(),
                        PutPayload::from(descriptor_json(&d)?),
                        opts,
                    )
                    .await
                    .store(|| "writing vault.json".into())?;
                key
            }
            Some(d) if d.format < VAULT_FORMAT => {
                return Err(Error::Invalid(format!(
                "the store holds a vault of format {}: upgrade it with `tvault upgrade` from the \
                     host that holds its local state, then init here with its --vault-key",
                d.format
            )))
            }
            Some(d) => {
                let key = key.ok_or_else(|| {
                    Error::Invalid(
                        "the store already holds a vault: pass its recovery code with --vault-key \
                         (the `tvault init` that created it printed it)"
                            .into(),
                    )
                })?;
                if d.key_fingerprint.as_deref() != Some(key.fingerprint().as_str()) {
                    return Err(Error::WrongKey {
                        tenant: "(vault)".into(),
                        reason: format!(
                            "--vault-key has fingerprint {}, the store's vault {}",
                            key.fingerprint(),
                            d.key_fingerprint.as_deref().unwrap_or("none")
                        ),
                    });
                }
                key
            }
        };
        write_file_atomic(&dir.join(KEY_FILE), key.code().as_bytes())?;
        write_file_atomic(&config_path, text.as_bytes())?;
        Vault::open(dir, config).await
    }

    /// Upgrades a store to the current format. From format 1: a new vault key in the state
    /// directory, then a MAC on every object that carries one (it trusts the store as it is: run
    /// `tvault verify` first). From format 2 or 3 nothing but the descriptor changes: its archives
    /// stay readable (manifests are compressed from then on). Returns the opened vault; its recovery code is to be kept offline.
    /// Safe to run again after an interruption (objects already sealed are checked, not redone).
    /// The flag tells whether a new vault key was made (from format 1): only then is its
    /// recovery code to be shown.
    pub async fn upgrade(dir: &Path, config: VaultConfig) -> Result<(Vault, bool)> {
        let mut store = Store::open(dir, &config).await?;
        let d = existing_descriptor(&store, dir).await?;
        if d.format >= VAULT_FORMAT {
            return Err(Error::Invalid(format!(
                "the vault is already of format {}",
                d.format
            )));
        }
        let key = match load_key(dir) {
            Ok(k) => k,
            Err(e) if d.format >= AUTHENTICATED_FORMAT => return Err(e),
            Err(_) => {
                let k = VaultKey::generate();
                write_file_atomic(&dir.join(KEY_FILE), k.code().as_bytes())?;
                k
            }
        };
        let fingerprint = key.fingerprint();
        if d.format >= AUTHENTICATED_FORMAT && d.key_fingerprint.as_deref() != Some(&fingerprint) {
            return Err(Error::WrongKey {
                tenant: "(vault)".into(),
                reason: format!(
                    "the state directory's vault key has fingerprint {fingerprint}, the store's vault {}",
                    d.key_fingerprint.as_deref().unwrap_or("none")
                ),
            });
        }
        let (inventory, lock) = open_inventory(dir, std::time::Duration::ZERO).await?;
        store.authenticate(key, inventory.digests());
        let all: Vec<object_store::ObjectMeta> = match d.format < AUTHENTICATED_FORMAT {
            true => store.objects().list(None),
            false => futures::stream::empty().boxed(),
        }
        .try_collect()
        .await
        .store(|| "listing the store".into())?;
        for meta in all {
            let path = meta.location;
            if !layout::is_authenticated(&path) || path.as_ref().ends_with(".pending") {
                continue;
            }
            let raw = store
                .objects()
                .get(&path)
                .await
                .store(|| format!("reading {path}"))?
                .bytes()
                .await
                .store(|| format!("reading {path}"))?;
            if raw.starts_with(crate::archive::auth::PREFIX) {
                store.get(&path).await?;
                continue;
            }
            store.put(&path, raw.to_vec()).await?;
        }
        let upgraded = Descriptor {
            format: VAULT_FORMAT,
            key_fingerprint: Some(fingerprint),
            ..d
        };
        store
            .objects()
            .put(
                &layout::vault_descriptor(),
                PutPayload::from(descriptor_json(&upgraded)?),
            )
            .await
            .store(|| "writing vault.json".into())?;
        inventory.flush().await?;
        // The store's digest tree keeps the inventory open: close both before reopening.
        drop(store);
        drop(inventory);
        drop(lock);
        Ok((
            Vault::open(dir, config).await?,
            d.format < AUTHENTICATED_FORMAT,
        ))
    }

    /// The recovery code of the vault key, to keep offline (`init` shows it once).
    pub fn recovery_code(&self) -> Result<String> {
        Ok(load_key(&self.shared.dir)?.code())
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

    /// Opens an initialised vault with an (already layered) config; fails at once when another
    /// process holds its state directory.
    pub async fn open(dir: &Path, config: VaultConfig) -> Result<Vault> {
        Vault::open_waiting(dir, config, std::time::Duration::ZERO).await
    }

    /// [`Vault::open`], waiting up to `wait` for another process to let go of the state
    /// directory, and as long for the store lease when an operation needs it.
    pub async fn open_waiting(
        dir: &Path,
        config: VaultConfig,
        wait: std::time::Duration,
    ) -> Result<Vault> {
        if !dir.join(CONFIG_FILE).exists() {
            return Err(Error::NotInitialised {
                path: dir.display().to_string(),
            });
        }
        let mut store = Store::open(dir, &config).await?;
        let d = existing_descriptor(&store, dir).await?;
        if d.format < AUTHENTICATED_FORMAT {
            return Err(Error::Invalid(format!(
                "this vault's store is of format {}, whose metadata is not authenticated; run \
                 `tvault upgrade` once (after `tvault verify`) to give it a vault key",
                d.format
            )));
        }
        if d.format < VAULT_FORMAT {
            return Err(Error::Invalid(format!(
                "this vault's store is of format {}; run `tvault upgrade` once to bring it to \
                 format {VAULT_FORMAT} (it rewrites only vault.json: archives of format {} stay \
                 readable as they are)",
                d.format, d.format
            )));
        }
        if d.format > VAULT_FORMAT {
            return Err(Error::Invalid(format!(
                "vault format {} is newer than this tvault supports ({VAULT_FORMAT})",
                d.format
            )));
        }
        let key = load_key(dir)?;
        if d.key_fingerprint.as_deref() != Some(key.fingerprint().as_str()) {
            return Err(Error::corrupt(
                "vault.json",
                "its vault key fingerprint does not match this vault's key",
            ));
        }
        let salt: [u8; 32] = hex::decode(&d.salt)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| Error::corrupt("vault.json", "bad salt"))?;
        let (inventory, lock) = open_inventory(dir, wait).await?;
        store.authenticate(key, inventory.digests());
        let audit = crate::audit::AuditLog::open(&dir.join("audit.log"))?;
        let trail = crate::audit::trail_id(dir)?;
        Ok(Vault {
            shared: std::sync::Arc::new(Shared {
                audit: tokio::sync::Mutex::new(audit),
                dir: dir.to_path_buf(),
                config,
                store,
                inventory: std::sync::RwLock::new(inventory),
                _lock: lock,
                salt,
                leases: Default::default(),
                locks: Default::default(),
                wait,
                anchor: crate::audit::anchor_path(trail.as_deref()),
                trail,
            }),
            op: Operation::default(),
        })
    }

    pub(crate) fn leases(&self) -> &crate::lease::Leases {
        &self.shared.leases
    }

    /// The store lease's time to live (at least 4 s: it is renewed every quarter of it).
    pub(crate) fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shared.config.store_lease_seconds.max(4))
    }

    pub(crate) fn wait(&self) -> std::time::Duration {
        self.shared.wait
    }

    /// Rewrites the inventory into a fresh database and destroys the old one (every file
    /// overwritten with zeros, then removed), so that what an erasure or a forgotten tenant
    /// removed lingers neither in sled's old log segments nor in freed disk blocks. `erase` and
    /// `forget_tenant` run it when they are done. It waits for the store alone: no backup,
    /// retention, erasure or forget runs meanwhile; reads go on, on the old database until the
    /// swap and on the new one after.
    pub async fn compact_inventory(&self) -> Result<()> {
        let _store = self.locks().store_alone().await;
        let old = self.inventory();
        old.flush().await?;
        let state = self.shared.dir.clone();
        let copy = old.clone();
        let (fresh, current) = tokio::task::spawn_blocking(move || copy.copy_to_fresh(&state))
            .await
            .map_err(|e| Error::Aborted(format!("compacting the inventory: {e}")))??;
        self.shared.store.rebind_digests(fresh.digests());
        *self
            .shared
            .inventory
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        // Reads that began before the swap finish on the old database; then it is destroyed.
        // One still in use after a minute is destroyed when the vault is next opened.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while old.shared() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if old.shared() {
            tracing::warn!("the old inventory is still in use: destroyed at the next open");
            return Ok(());
        }
        drop(old);
        let state = self.shared.dir.clone();
        tokio::task::spawn_blocking(move || crate::inventory::destroy_others(&state, &current))
            .await
            .map_err(|e| Error::Aborted(format!("destroying the old inventory: {e}")))?
    }

    /// Shares the memory of the versions last written with the other servers of the vault
    /// (see [`crate::store::SharedDigests`]).
    pub fn share_digests(&self, shared: std::sync::Arc<dyn crate::store::SharedDigests>) {
        self.shared.store.share_digests(shared);
    }

    /// Names `actor` in the audit trail for this handle's operations instead of the OS user.
    pub fn set_actor(&mut self, actor: impl Into<String>) {
        self.op.actor = Some(actor.into());
    }

    /// A handle for one more operation over the same vault: its own actor (`None`: the OS
    /// user), read counters and cancellation. Operations of one process run side by side
    /// safely; which wait for which is decided by [`crate::locks`].
    pub fn operation(&self, actor: Option<String>) -> Vault {
        Vault {
            shared: self.shared.clone(),
            op: Operation {
                actor,
                ..Default::default()
            },
        }
    }

    /// Asks this handle's operation to stop at its next safe point (between tables of a
    /// backup, tenants of a retention pass); it then fails with an `Aborted` error and leaves
    /// what an interrupted run leaves, which the next run cleans up.
    pub fn cancel(&self) {
        self.op
            .cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// An error once [`Vault::cancel`] was called.
    pub fn check_cancelled(&self) -> Result<()> {
        match self.op.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
            true => Err(Error::Aborted("cancelled".into())),
            false => Ok(()),
        }
    }

    pub(crate) fn locks(&self) -> &crate::locks::Locks {
        &self.shared.locks
    }

    pub(crate) fn trail(&self) -> Option<&str> {
        self.shared.trail.as_deref()
    }

    /// Blocks and bytes read from the store so far.
    pub fn reads(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.op.reads.blocks.load(Relaxed),
            self.op.reads.bytes.load(Relaxed),
        )
    }

    pub(crate) fn count_read(&self, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.op.reads.blocks.fetch_add(1, Relaxed);
        self.op.reads.bytes.fetch_add(bytes, Relaxed);
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn config(&self) -> &VaultConfig {
        &self.shared.config
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The inventory (a cheap handle on it; a compaction may replace it between two calls).
    pub fn inventory(&self) -> Inventory {
        self.shared
            .inventory
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Store directory name of a tenant.
    pub fn tenant_path(&self, tenant: &str) -> String {
        layout::tenant_path(&self.shared.salt, tenant)
    }

    /// Appends an audit entry and anchors the new chain head in the store.
    pub async fn audit(
        &self,
        mut draft: crate::audit::AuditDraft,
    ) -> Result<crate::audit::AuditEntry> {
        if let Some(actor) = &self.op.actor {
            draft = draft.actor(actor.clone());
        }
        // Held across the anchor write: anchors go to the store in the order of the entries.
        let mut log = self.shared.audit.lock().await;
        let entry = log.append(draft)?;
        crate::audit::write_anchor(
            &**self.shared.store.objects(),
            &self.shared.anchor,
            entry.seq,
            &entry.hash,
        )
        .await?;
        Ok(entry)
    }

    /// Records the outcome of an operation: `ok`, or `failed: <error>`; returns the result.
    pub(crate) async fn audited<T>(
        &self,
        draft: crate::audit::AuditDraft,
        result: Result<T>,
    ) -> Result<T> {
        self.audited_hiding(draft, result, &[]).await
    }

    /// Records `result` only when it is an error (operations that record their own success with
    /// richer details).
    pub(crate) async fn audit_if_failed<T>(
        &self,
        draft: crate::audit::AuditDraft,
        result: Result<T>,
    ) -> Result<T> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => self.audited(draft, Err(e)).await,
        }
    }

    /// [`Vault::audited`], with `hide` (record key values) kept out of the recorded outcome.
    pub(crate) async fn audited_hiding<T>(
        &self,
        draft: crate::audit::AuditDraft,
        result: Result<T>,
        hide: &[String],
    ) -> Result<T> {
        let draft = draft.outcome_of(&result, hide);
        match (self.audit(draft).await, result) {
            (Ok(_), r) => r,
            // A failed operation stays the error the user sees; a lost audit entry of a
            // successful one is an error of its own (the trail must be complete).
            (Err(_), Err(e)) => Err(e),
            (Err(a), Ok(_)) => Err(a),
        }
    }

    /// Entries of the audit trail (of one tenant, or all).
    pub async fn audit_entries(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<crate::audit::AuditEntry>> {
        self.shared.audit.lock().await.entries(tenant)
    }

    /// Checks the audit trail's chain against the head anchored in the store.
    pub async fn verify_audit(&self) -> Result<crate::audit::VerifyOutcome> {
        let anchor =
            crate::audit::read_anchor(&**self.shared.store.objects(), &self.shared.anchor).await?;
        crate::audit::AuditLog::verify_with_anchor(
            &self.shared.dir.join("audit.log"),
            anchor.map(|a| a.head()),
        )
    }

    pub(crate) async fn put(&self, path: &ObjPath, bytes: Vec<u8>) -> Result<()> {
        self.shared.store.put(path, bytes).await?;
        Ok(())
    }

    /// Writes an archive object (pack, manifest, key index) under the tenant's lock.
    pub(crate) async fn put_archive(
        &self,
        path: &ObjPath,
        bytes: Vec<u8>,
        lock: &Lock,
    ) -> Result<()> {
        self.shared.store.put_archive(path, bytes, lock).await
    }

    /// Reads an object; authenticated ones are checked (see `Store::get`).
    pub(crate) async fn get(&self, path: &ObjPath) -> Result<bytes::Bytes> {
        self.shared.store.get(path).await
    }

    /// Every object under `prefix`.
    pub(crate) async fn list(&self, prefix: &ObjPath) -> Result<Vec<object_store::ObjectMeta>> {
        self.shared
            .store
            .objects()
            .list(Some(prefix))
            .try_collect()
            .await
            .store(|| format!("listing {prefix}"))
    }

    /// Deletes an object that is never locked (markers, keys, policies); a missing one is fine.
    /// One that a bucket's default retention locked anyway is an error that says so.
    pub(crate) async fn delete(&self, path: &ObjPath) -> Result<()> {
        self.leased()?;
        match self.shared.store.delete(path).await?.into_iter().next() {
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
        self.leased()?;
        let locked = self.shared.store.delete(path).await?;
        self.defer(&locked, reason)?;
        Ok(locked)
    }

    /// Deletes the versions an overwrite left behind (erasure), deferring locked ones.
    pub(crate) async fn delete_old_versions(
        &self,
        path: &ObjPath,
        reason: &str,
    ) -> Result<Vec<LockedVersion>> {
        self.leased()?;
        let locked = self.shared.store.delete_old_versions(path).await?;
        self.defer(&locked, reason)?;
        Ok(locked)
    }

    fn defer(&self, locked: &[LockedVersion], reason: &str) -> Result<()> {
        for l in locked {
            tracing::warn!(object = %l.object, why = %l.why(), "locked: deletion deferred");
            self.inventory().put_deferred(l, reason)?;
        }
        Ok(())
    }
}

async fn read_descriptor(store: &Store) -> Result<Option<Descriptor>> {
    match store.objects().get(&layout::vault_descriptor()).await {
        Ok(r) => {
            let bytes = r.bytes().await.store(|| "reading vault.json".into())?;
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::corrupt("vault.json", e))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e).store(|| "reading vault.json".into()),
    }
}

/// The descriptor of an initialised store, or the error that says the store is not one.
async fn existing_descriptor(store: &Store, dir: &Path) -> Result<Descriptor> {
    read_descriptor(store)
        .await?
        .ok_or_else(|| Error::NotInitialised {
            path: format!("{} (store has no vault.json)", dir.display()),
        })
}

fn descriptor_json(d: &Descriptor) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(d).map_err(|e| Error::Invalid(e.to_string()))
}

fn load_key(dir: &Path) -> Result<VaultKey> {
    let path = dir.join(KEY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Invalid(format!(
            "the vault key {} is missing: re-create the local state with `tvault init --vault-key \
             <recovery code>` in a new directory, then `tvault inventory rebuild`",
            path.display()
        )),
        _ => Error::Io {
            context: format!("reading {}", path.display()),
            source: e,
        },
    })?;
    VaultKey::from_code(&text).ok_or_else(|| {
        Error::corrupt(
            path.display(),
            "not a vault key (expected tvk1- and 64 hex digits)",
        )
    })
}

/// Creates a directory readable by its owner only (the state directory holds keys and indexes).
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).io(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .io(|| format!("making {} owner-only", dir.display()))?;
    }
    Ok(())
}

/// Who holds a state directory: written by the process that opened it, read by the next one
/// that finds it taken.
#[derive(Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    #[serde(with = "time::serde::rfc3339")]
    since: time::OffsetDateTime,
}

const HOLDER_FILE: &str = "holder.json";

/// Who holds the state directory, for messages: " (pid P on HOST, since T)".
fn holder(dir: &Path) -> Option<String> {
    let h: Holder = serde_json::from_slice(&std::fs::read(dir.join(HOLDER_FILE)).ok()?).ok()?;
    Some(format!(
        " (pid {} on {}, since {})",
        h.pid,
        h.host,
        h.since
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    ))
}

/// Opens the inventory, whose lock keeps one process per state directory; waits up to `wait`
/// for a holder to finish, saying once who it is.
async fn open_inventory(
    dir: &Path,
    wait: std::time::Duration,
) -> Result<(Inventory, std::fs::File)> {
    let deadline = std::time::Instant::now() + wait;
    let mut told = false;
    loop {
        match lock_state_dir(dir).and_then(|lock| {
            let current = crate::inventory::current_dir(dir)?;
            // What a compaction replaced (and could not destroy while it was in use).
            crate::inventory::destroy_others(dir, &current)?;
            Ok((Inventory::open(&current)?, lock))
        }) {
            Ok(inv) => {
                let me = Holder {
                    pid: std::process::id(),
                    host: crate::lease::host_name(),
                    since: time::OffsetDateTime::now_utc(),
                };
                // Atomically: a process that finds the directory taken reads it whole.
                let _ = write_file_atomic(
                    &dir.join(HOLDER_FILE),
                    &serde_json::to_vec(&me).unwrap_or_default(),
                );
                return Ok(inv);
            }
            Err(Error::Busy(msg)) => {
                // The holder writes its name just after taking the lock: a probe that comes
                // in between waits for it a little.
                let mut who = holder(dir);
                for _ in 0..20 {
                    if who.is_some() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                    who = holder(dir);
                }
                let who = who.unwrap_or_default();
                if std::time::Instant::now() >= deadline {
                    return Err(Error::Busy(format!(
                        "{msg}{who}; or pass --wait SECONDS to wait for it"
                    )));
                }
                if !told {
                    tracing::warn!("waiting for another tvault process{who} to finish");
                    told = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Takes the state directory for this process (`lock`, an exclusive file lock held as long as
/// the returned file is open), or fails with `Busy`.
fn lock_state_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .io(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy(format!(
            "the vault at {} is in use by another tvault process (a backup, restore or prune); \
             try again when it has finished",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e).io(|| format!("locking {}", path.display())),
    }
}

/// Writes a local file atomically (temp file, fsync, rename, fsync of the directory) with
/// owner-only permissions: after a crash or power loss the file holds the old bytes or the new.
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
    std::fs::rename(&tmp, path).io(ctx)?;
    sync_dir(path)
}

/// Makes a rename or a new file in `path`'s directory durable.
pub fn sync_dir(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .io(|| format!("syncing the directory {}", dir.display())),
        None => Ok(()),
    }
}

impl Vault {
    /// Reads the source catalog and returns the table plan.
    pub async fn plan(&self) -> Result<crate::source::postgres::catalog::Plan> {
        let client = crate::source::postgres::connect(&self.config().source).await?;
        self.plan_of(&client).await
    }

    /// The table plan of the database `client` is connected to: the pool's rules, and every
    /// table of a registered bridge tenant's schema is that tenant's.
    pub(crate) async fn plan_of(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<crate::source::postgres::catalog::Plan> {
        let bridge = self.inventory().bridge_schemas()?;
        crate::source::postgres::catalog::plan(client, self.config(), &bridge).await
    }

    /// The table plan of the database `client` is connected to, as `record`'s tenant sees it:
    /// a silo tenant's database is its own whole ([`Vault::plan_of`] otherwise).
    pub(crate) async fn plan_for(
        &self,
        client: &tokio_postgres::Client,
        record: &crate::tenant::TenantRecord,
    ) -> Result<crate::source::postgres::catalog::Plan> {
        match record.placement.database() {
            Some(_) => {
                crate::source::postgres::catalog::whole_database(client, crate::tenant::SILO_HOME)
                    .await
            }
            None => self.plan_of(client).await,
        }
    }
}
