//! The object store behind a vault: a local directory, or an S3 (or S3-compatible) bucket.
//!
//! Data moves through `object_store`: large objects in parts, every request retried with
//! backoff on throttling, 5xx answers and dropped connections. What `object_store` does not
//! expose goes through `aws-sdk-s3`: object lock retention dates and legal holds, object
//! versions, and the bucket's versioning and lock configuration. Both clients are built from one
//! resolved configuration (region, endpoint, addressing style, retries) and share one credential
//! chain, the SDK's: environment, profile files, web identity, container and instance roles.
//!
//! On a versioned bucket a plain DELETE only hides an object behind a delete marker, and object
//! lock protects versions, not names. So deleting here means deleting every version; a version
//! under lock stays, and the caller is told which, until when, and records it for a later retry.

use crate::config::{LockMode, S3Config};
use crate::error::{Error, IoContext, Result, StoreContext};
use crate::VaultConfig;
use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::types::{
    BucketVersioningStatus, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus,
    ObjectLockRetention, ObjectLockRetentionMode,
};
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, CredentialProvider, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, PutResult, RetryConfig, WriteMultipart,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;

/// Objects larger than this are uploaded in parts (S3 needs parts of at least 5 MiB).
pub const MULTIPART_THRESHOLD: usize = 8 << 20;
/// Parts of one multipart upload in flight at once.
const PART_CONCURRENCY: usize = 4;

/// The lock an archive object is written with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lock {
    /// Retain until (object lock retention date); `None`: no retention date.
    pub until: Option<OffsetDateTime>,
    /// S3 legal hold.
    pub legal_hold: bool,
}

/// One object version that object lock kept from being deleted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LockedVersion {
    pub object: String,
    pub version: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub until: Option<OffsetDateTime>,
    pub legal_hold: bool,
}

impl LockedVersion {
    /// "retention until …", "legal hold", or both.
    pub fn why(&self) -> String {
        let mut parts = vec![];
        if let Some(u) = self.until {
            parts.push(format!("retention until {}", rfc3339(u)));
        }
        if self.legal_hold {
            parts.push("legal hold".to_string());
        }
        parts.join(", ")
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Versioning and object lock configuration of a bucket.
#[derive(Clone, Debug, Serialize)]
pub struct BucketState {
    /// `Enabled`, `Suspended` or `Off`.
    pub versioning: String,
    pub object_lock: bool,
    /// The bucket's default retention (`GOVERNANCE 30 days`), which S3 applies to every new
    /// object, wrapped keys included.
    pub default_retention: Option<String>,
}

/// The object store of a vault (cheap to clone).
#[derive(Clone)]
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    s3: Option<Arc<S3>>,
    /// The directory of a local store (where conditional writes use a file lock).
    root: Option<PathBuf>,
    location: String,
    /// The vault key and the MACs of the versions last written; `None` before a vault opens.
    auth: Option<Arc<Auth>>,
}

struct Auth {
    key: crate::archive::auth::VaultKey,
    /// The inventory's digests tree; replaced when the inventory is compacted.
    digests: std::sync::RwLock<sled::Tree>,
    /// The memory several servers of the vault share, when they do ([`Store::share_digests`]).
    shared: std::sync::RwLock<Option<Arc<dyn SharedDigests>>>,
}

/// A memory of the MAC of each authenticated object's version last written, shared by the
/// servers of one vault (`tvault-server` keeps it in its control database), so that each
/// takes the versions the others wrote while a version replayed into the store is still
/// refused. The state directory's own memory stays beside it: it answers for what the shared
/// one has not seen.
#[async_trait::async_trait]
pub trait SharedDigests: Send + Sync {
    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, path: &str, mac: &[u8]) -> Result<()>;
    async fn remove(&self, path: &str) -> Result<()>;
}

impl Auth {
    fn digests(&self) -> sled::Tree {
        self.digests
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn shared(&self) -> Option<Arc<dyn SharedDigests>> {
        self.shared
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The MAC of the version last written: the shared memory's, else this state directory's.
    async fn remembered(&self, path: &str) -> Result<Option<Vec<u8>>> {
        if let Some(shared) = self.shared() {
            if let Some(mac) = shared.get(path).await? {
                return Ok(Some(mac));
            }
        }
        Ok(self.digests().get(path)?.map(|v| v.to_vec()))
    }

    async fn remember(&self, path: &str, mac: &[u8]) -> Result<()> {
        self.digests().insert(path, mac)?;
        if let Some(shared) = self.shared() {
            shared.put(path, mac).await?;
        }
        Ok(())
    }

    async fn forget(&self, path: &str) -> Result<()> {
        self.digests().remove(path)?;
        if let Some(shared) = self.shared() {
            shared.remove(path).await?;
        }
        Ok(())
    }
}

impl Store {
    /// Opens the configured store: `config.store` (a directory, `file://` or `s3://` URL), else
    /// `store/` inside the vault directory.
    pub async fn open(dir: &Path, config: &VaultConfig) -> Result<Store> {
        let local = |p: PathBuf| -> Result<Store> {
            std::fs::create_dir_all(&p).io(|| format!("creating {}", p.display()))?;
            let fs = LocalFileSystem::new_with_prefix(&p)
                .store(|| format!("opening {}", p.display()))?;
            Ok(Store {
                objects: Arc::new(fs),
                s3: None,
                root: Some(p.clone()),
                location: p.display().to_string(),
                auth: None,
            })
        };
        match config.store.as_deref() {
            None => local(dir.join("store")),
            Some(url) if url.starts_with("file://") => {
                local(PathBuf::from(&url["file://".len()..]))
            }
            Some(url) if !url.contains("://") => local(PathBuf::from(url)),
            Some(url) if url.starts_with("s3://") => {
                let (objects, s3) = S3::open(url, &config.s3).await?;
                Ok(Store {
                    objects,
                    s3: Some(Arc::new(s3)),
                    root: None,
                    location: url.to_string(),
                    auth: None,
                })
            }
            Some(url) => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| Error::Invalid(format!("store URL {url:?}: {e}")))?;
                let (store, prefix) = object_store::parse_url_opts(&parsed, std::env::vars())
                    .store(|| format!("opening store {url}"))?;
                Ok(Store {
                    objects: Arc::new(object_store::prefix::PrefixStore::new(store, prefix)),
                    s3: None,
                    root: None,
                    location: url.to_string(),
                    auth: None,
                })
            }
        }
    }

    /// The data path.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// The S3 control plane, when the store is a bucket.
    pub fn s3(&self) -> Option<&S3> {
        self.s3.as_deref()
    }

    /// True when archive objects are written under object lock.
    pub async fn locks(&self) -> Result<bool> {
        match &self.s3 {
            Some(s3) => s3.locking().await,
            None => Ok(false),
        }
    }

    /// Where the store is (a directory or a URL).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Writes an object; on S3, objects above [`MULTIPART_THRESHOLD`] go up in parts.
    /// From now on, objects that carry a MAC are sealed on write and checked on read
    /// (`archive::auth`), against `digests` for the version last written.
    pub fn authenticate(&mut self, key: crate::archive::auth::VaultKey, digests: sled::Tree) {
        self.auth = Some(Arc::new(Auth {
            key,
            digests: std::sync::RwLock::new(digests),
            shared: std::sync::RwLock::new(None),
        }));
    }

    /// Remembers the versions written in `shared` too, and takes what it remembers first (the
    /// servers of one vault share one).
    pub fn share_digests(&self, shared: Arc<dyn SharedDigests>) {
        if let Some(auth) = &self.auth {
            *auth
                .shared
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(shared);
        }
    }

    /// Points MAC bookkeeping at a new inventory's digests (after a compaction).
    pub fn rebind_digests(&self, digests: sled::Tree) {
        if let Some(auth) = &self.auth {
            *auth
                .digests
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = digests;
        }
    }

    fn auth_for(&self, path: &ObjPath) -> Option<&Auth> {
        self.auth
            .as_deref()
            .filter(|_| crate::layout::is_authenticated(path))
    }

    /// Writes an object, durably (on a local store the file and its directory are synced before
    /// this returns); one that carries a MAC is sealed, and its MAC remembered.
    pub async fn put(&self, path: &ObjPath, bytes: Vec<u8>) -> Result<PutResult> {
        self.put_with(path, bytes, true).await
    }

    /// [`Store::put`]; `durable: false` leaves a local file to the next [`Store::sync`] (a
    /// backup's many packs and manifests: one sync of the file system instead of one per file).
    async fn put_with(&self, path: &ObjPath, bytes: Vec<u8>, durable: bool) -> Result<PutResult> {
        // The MAC is remembered only once the object is durable: the inventory must never
        // expect a version a power loss took away.
        let Some(auth) = self.auth_for(path) else {
            let put = self.put_raw(path, bytes).await?;
            self.sync_file(path, durable).await?;
            return Ok(put);
        };
        let (sealed, mac) = auth.key.seal(path.as_ref(), &bytes);
        let put = self.put_raw(path, sealed).await?;
        self.sync_file(path, durable).await?;
        auth.remember(path.as_ref(), mac.as_bytes()).await?;
        Ok(put)
    }

    async fn sync_file(&self, path: &ObjPath, durable: bool) -> Result<()> {
        let (Some(root), true) = (&self.root, durable) else {
            return Ok(());
        };
        let file = root.join(path.as_ref());
        tokio::task::spawn_blocking(move || sync_file(&file))
            .await
            .map_err(|e| Error::Aborted(format!("syncing {path}: {e}")))?
    }

    /// Makes everything written to a local store so far durable: one `syncfs` of its file
    /// system. On a bucket a completed PUT is durable already.
    pub async fn sync(&self) -> Result<()> {
        let Some(root) = self.root.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            let dir = std::fs::File::open(&root)?;
            rustix::fs::syncfs(&dir).map_err(std::io::Error::from)
        })
        .await
        .map_err(|e| Error::Aborted(format!("syncing the store: {e}")))?
        .io(|| format!("syncing the store at {}", self.location))
    }

    /// An object's bytes as stored (with its MAC line, if any).
    async fn get_raw(&self, path: &ObjPath) -> Result<bytes::Bytes> {
        let ctx = || format!("reading {path}");
        match self.objects.get(path).await {
            Ok(r) => r.bytes().await.store(ctx),
            Err(e) => Err(e).store(ctx),
        }
    }

    /// Reads an object; one that carries a MAC must be authentic and the version this vault
    /// wrote last (when it remembers one), and comes back without its MAC line.
    pub async fn get(&self, path: &ObjPath) -> Result<bytes::Bytes> {
        let got = self.get_raw(path).await;
        let Some(auth) = self.auth_for(path) else {
            return got;
        };
        let remembered = auth.remembered(path.as_ref()).await?;
        let bytes = match got {
            Err(Error::NotFound { .. }) if remembered.is_some() => return Err(Error::corrupt(
                path,
                "the object this vault wrote is missing from the store (deleted or rolled back)",
            )),
            other => other?,
        };
        let (body, mac) = auth
            .key
            .open(path.as_ref(), &bytes)
            .map_err(|why| Error::corrupt(path, why))?;
        match remembered {
            Some(r) if r.as_slice() != mac.as_bytes() => {
                return Err(Error::corrupt(
                    path,
                    "the store serves another version than the one this vault wrote last (rolled back or replaced)",
                ))
            }
            // First sight (after an inventory rebuild): this authentic version is the one to
            // expect from now on.
            None => {
                auth.remember(path.as_ref(), mac.as_bytes()).await?;
            }
            Some(_) => {}
        }
        let start = bytes.len() - body.len();
        Ok(bytes.slice(start..))
    }

    /// Reads an authenticated object that another host of the store may have rewritten: it
    /// must be authentic (MACed under the vault key), whatever version this vault remembers.
    /// `newer` decides from its body whether to take it; if so, it becomes the version to
    /// expect from now on. `None` when it is the remembered version or `newer` refused it.
    pub async fn get_rewritten(
        &self,
        path: &ObjPath,
        newer: impl FnOnce(&[u8]) -> bool,
    ) -> Result<Option<bytes::Bytes>> {
        let Some(auth) = self.auth_for(path) else {
            return Err(Error::Invalid(format!(
                "{path} is not an authenticated object"
            )));
        };
        let bytes = self.get_raw(path).await?;
        let (body, mac) = auth
            .key
            .open(path.as_ref(), &bytes)
            .map_err(|why| Error::corrupt(path, why))?;
        let remembered = auth.remembered(path.as_ref()).await?;
        if remembered.as_deref() == Some(mac.as_bytes()) || !newer(body) {
            return Ok(None);
        }
        auth.remember(path.as_ref(), mac.as_bytes()).await?;
        let start = bytes.len() - body.len();
        Ok(Some(bytes.slice(start..)))
    }

    async fn forget_digest(&self, path: &ObjPath) -> Result<()> {
        if let Some(auth) = self.auth_for(path) {
            auth.forget(path.as_ref()).await?;
        }
        Ok(())
    }

    async fn put_raw(&self, path: &ObjPath, bytes: Vec<u8>) -> Result<PutResult> {
        let ctx = || format!("writing {path}");
        if self.s3.is_none() || bytes.len() <= MULTIPART_THRESHOLD {
            return self
                .objects
                .put(path, PutPayload::from(bytes))
                .await
                .store(ctx);
        }
        let upload = self.objects.put_multipart(path).await.store(ctx)?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, MULTIPART_THRESHOLD);
        let bytes = bytes::Bytes::from(bytes);
        let mut at = 0;
        while at < bytes.len() {
            if let Err(e) = w.wait_for_capacity(PART_CONCURRENCY).await {
                return Err(e).store(ctx);
            }
            let end = (at + MULTIPART_THRESHOLD).min(bytes.len());
            w.put(bytes.slice(at..end));
            at = end;
        }
        // `finish` aborts the upload on failure, so no parts are left behind.
        w.finish().await.store(ctx)
    }

    /// Writes an archive object (pack, manifest, key index) and locks it when the bucket has
    /// object lock and `lock` asks for it.
    pub async fn put_archive(&self, path: &ObjPath, bytes: Vec<u8>, lock: &Lock) -> Result<()> {
        self.put_archive_with(path, bytes, lock, true).await
    }

    /// [`Store::put_archive`] left to the next [`Store::sync`] on a local store.
    pub async fn put_archive_unsynced(
        &self,
        path: &ObjPath,
        bytes: Vec<u8>,
        lock: &Lock,
    ) -> Result<()> {
        self.put_archive_with(path, bytes, lock, false).await
    }

    async fn put_archive_with(
        &self,
        path: &ObjPath,
        bytes: Vec<u8>,
        lock: &Lock,
        durable: bool,
    ) -> Result<()> {
        let put = self.put_with(path, bytes, durable).await?;
        if let Some(s3) = &self.s3 {
            s3.apply_lock(path, put.version.as_deref(), lock).await?;
        }
        Ok(())
    }

    /// Replaces an archive object whose old bytes must not survive (a pack an erasure rewrote).
    /// On a local store the new file takes the old one's place first, then the old file's
    /// blocks, still open, are overwritten with zeros and synced: no deleted inode keeps the
    /// erased rows under the tenant's unchanged data key, and a crash in between loses nothing
    /// (it leaves at most that residue). On a bucket the caller deletes the old versions.
    pub async fn replace_archive(&self, path: &ObjPath, bytes: Vec<u8>, lock: &Lock) -> Result<()> {
        let old = self.root.as_ref().and_then(|root| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(root.join(path.as_ref()))
                .ok()
        });
        self.put_archive(path, bytes, lock).await?;
        if let Some(file) = old {
            let shown = path.to_string();
            tokio::task::spawn_blocking(move || zero_file(&file))
                .await
                .map_err(|e| Error::Aborted(format!("overwriting {shown}: {e}")))?
                .io(|| format!("overwriting the old bytes of {path}"))?;
        }
        Ok(())
    }

    /// Extends the retention of an existing archive object (its current version).
    pub async fn extend_lock(&self, path: &ObjPath, lock: &Lock) -> Result<()> {
        match &self.s3 {
            Some(s3) => s3.apply_lock(path, None, lock).await,
            None => Ok(()),
        }
    }

    /// Deletes an object, every version of it on a versioned bucket; a missing one is fine.
    /// Versions under object lock stay and are returned.
    pub async fn delete(&self, path: &ObjPath) -> Result<Vec<LockedVersion>> {
        self.forget_digest(path).await?;
        if let Some(s3) = &self.s3 {
            if s3.bucket_state().await?.versioning != "Off" {
                return s3.delete_versions(path, false).await;
            }
        }
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(vec![]),
            Err(e) => Err(e).store(|| format!("deleting {path}")),
        }
    }

    /// An object with the tag a conditional write compares against, or `None` when absent.
    /// Only for small coordination objects (the lease): never authenticated, read whole.
    pub async fn get_tagged(&self, path: &ObjPath) -> Result<Option<(Vec<u8>, Tag)>> {
        if let Some(root) = &self.root {
            let file = root.join(path.as_ref());
            return tokio::task::spawn_blocking(move || -> Result<_> {
                let _lock = file_lock(&file)?;
                Ok(match std::fs::read(&file) {
                    Ok(b) => Some((b.clone(), Tag::of_content(&b))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e).io(|| format!("reading {}", file.display())),
                })
            })
            .await
            .map_err(|e| Error::Aborted(format!("reading {path}: {e}")))?;
        }
        if let Some(s3) = &self.s3 {
            return s3.get_tagged(path).await;
        }
        match self.objects.get(path).await {
            Ok(r) => {
                let tag = Tag {
                    etag: r.meta.e_tag.clone().unwrap_or_default(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await.store(|| format!("reading {path}"))?;
                Ok(Some((bytes.to_vec(), tag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).store(|| format!("reading {path}")),
        }
    }

    /// Writes `bytes` only if the object is absent (`expected` = `None`) or still carries
    /// `expected`: an atomic compare-and-swap (S3 `If-None-Match`/`If-Match`, a file lock on a
    /// local store). `Ok(None)` when the condition did not hold. On a versioned bucket the
    /// replaced version is deleted, so that a renewed lease leaves nothing behind.
    pub async fn put_if(
        &self,
        path: &ObjPath,
        bytes: Vec<u8>,
        expected: Option<&Tag>,
    ) -> Result<Option<Tag>> {
        if let Some(root) = &self.root {
            let file = root.join(path.as_ref());
            let expected = expected.cloned();
            return tokio::task::spawn_blocking(move || -> Result<_> {
                let _lock = file_lock(&file)?;
                let current = match std::fs::read(&file) {
                    Ok(b) => Some(Tag::of_content(&b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e).io(|| format!("reading {}", file.display())),
                };
                if current.map(|t| t.etag) != expected.map(|t| t.etag) {
                    return Ok(None);
                }
                crate::vault::write_file_atomic(&file, &bytes)?;
                Ok(Some(Tag::of_content(&bytes)))
            })
            .await
            .map_err(|e| Error::Aborted(format!("writing {path}: {e}")))?;
        }
        if let Some(s3) = &self.s3 {
            let put = s3.put_if(path, bytes, expected).await?;
            if let (
                Some(new),
                Some(Tag {
                    version: Some(old), ..
                }),
            ) = (&put, expected)
            {
                if new.version.as_deref() != Some(old.as_str()) {
                    // Best effort: a default retention may keep it, which doctor reports.
                    let _ = s3.delete_version(path, old, false).await;
                }
            }
            return Ok(put);
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(t) => PutMode::Update(object_store::UpdateVersion {
                e_tag: Some(t.etag.clone()),
                version: t.version.clone(),
            }),
        };
        match self
            .objects
            .put_opts(path, PutPayload::from(bytes), PutOptions::from(mode))
            .await
        {
            Ok(r) => Ok(Some(Tag {
                etag: r.e_tag.unwrap_or_default(),
                version: r.version,
            })),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(None),
            Err(e) => Err(e).store(|| format!("writing {path}")),
        }
    }

    /// Deletes one version of an object (the object itself where versions do not apply); a
    /// version still under lock is returned.
    pub async fn delete_version(
        &self,
        path: &ObjPath,
        version: Option<&str>,
    ) -> Result<Option<LockedVersion>> {
        match (&self.s3, version) {
            (Some(s3), Some(v)) => s3.delete_version(path, v, false).await,
            _ => Ok(self.delete(path).await?.into_iter().next()),
        }
    }

    /// Deletes what an overwrite left behind: the noncurrent versions of an object.
    pub async fn delete_old_versions(&self, path: &ObjPath) -> Result<Vec<LockedVersion>> {
        match &self.s3 {
            Some(s3) if s3.bucket_state().await?.versioning != "Off" => {
                s3.delete_versions(path, true).await
            }
            _ => Ok(vec![]),
        }
    }

    /// Sets or clears S3 legal hold on every version of the archive objects under `prefix`;
    /// returns how many versions were changed (0 where the bucket has no object lock).
    pub async fn set_legal_hold(&self, prefix: &ObjPath, on: bool) -> Result<u64> {
        let Some(s3) = &self.s3 else { return Ok(0) };
        if !s3.locking().await? {
            return Ok(0);
        }
        let mut n = 0;
        for v in s3.versions(&s3.key(prefix)).await? {
            let is_archive = s3
                .path(&v.key)
                .is_some_and(|p| crate::layout::is_archive(&p));
            if v.delete_marker || !is_archive {
                continue;
            }
            s3.legal_hold(&v.key, Some(&v.version), on).await?;
            n += 1;
        }
        Ok(n)
    }
}

/// S3 control plane of a bucket store.
pub struct S3 {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Key prefix with its trailing `/`, or empty.
    prefix: String,
    mode: LockMode,
    lock: bool,
    state: tokio::sync::OnceCell<BucketState>,
}

/// One entry of a version listing.
struct Version {
    key: String,
    version: String,
    latest: bool,
    delete_marker: bool,
}

impl S3 {
    async fn open(url: &str, cfg: &S3Config) -> Result<(Arc<dyn ObjectStore>, S3)> {
        let parsed =
            url::Url::parse(url).map_err(|e| Error::Invalid(format!("store URL {url:?}: {e}")))?;
        let bucket = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Error::Invalid(format!("store URL {url:?} names no bucket")))?
            .to_string();
        let prefix = parsed.path().trim_matches('/').to_string();

        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(cfg.max_retries as u32 + 1)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(15)),
        );
        if let Some(r) = &cfg.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(e) = &cfg.endpoint {
            loader = loader.endpoint_url(e);
        }
        let sdk = loader.load().await;
        let endpoint = cfg
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        let region = match (sdk.region(), &endpoint) {
            (Some(r), _) => r.to_string(),
            // S3-compatible stores mostly ignore the region, but requests are signed with one.
            (None, Some(_)) => "us-east-1".to_string(),
            (None, None) => {
                return Err(Error::Invalid(format!(
                    "no AWS region for {url}: set AWS_REGION, a profile region, or `[s3] region`"
                )))
            }
        };
        let credentials = sdk.credentials_provider().ok_or_else(|| {
            Error::Invalid(format!(
                "no AWS credentials for {url}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
                 AWS_PROFILE, or run where an instance or container role is available"
            ))
        })?;
        let path_style = cfg.path_style.unwrap_or(endpoint.is_some());

        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&region)
            .with_virtual_hosted_style_request(!path_style)
            // The server checks every upload against its SHA-256 (and S3 requires a checksum
            // on buckets with a default retention).
            .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
            .with_credentials(Arc::new(SdkCredentials {
                provider: credentials,
                cached: Mutex::new(None),
            }))
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(15),
                    base: 2.0,
                },
                max_retries: cfg.max_retries,
                retry_timeout: Duration::from_secs(cfg.retry_timeout_secs),
            });
        if let Some(e) = &endpoint {
            builder = builder
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"));
        }
        let store = builder.build().store(|| format!("opening store {url}"))?;
        let objects: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                store,
                prefix.as_str(),
            ))
        };
        let s3conf = aws_sdk_s3::config::Builder::from(&sdk)
            .region(aws_config::Region::new(region))
            .force_path_style(path_style)
            .build();
        let s3 = S3 {
            client: aws_sdk_s3::Client::from_conf(s3conf),
            bucket,
            prefix: if prefix.is_empty() {
                prefix
            } else {
                format!("{prefix}/")
            },
            mode: cfg.lock_mode,
            lock: cfg.lock,
            state: tokio::sync::OnceCell::new(),
        };
        Ok((objects, s3))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn key(&self, path: &ObjPath) -> String {
        format!("{}{path}", self.prefix)
    }

    fn path(&self, key: &str) -> Option<ObjPath> {
        key.strip_prefix(&self.prefix).map(ObjPath::from)
    }

    /// The bucket's versioning and object lock configuration (read once per process).
    pub async fn bucket_state(&self) -> Result<&BucketState> {
        self.state
            .get_or_try_init(|| async {
                let v = self
                    .client
                    .get_bucket_versioning()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(|e| sdk_error("reading the bucket's versioning", e))?;
                let versioning = match v.status() {
                    Some(BucketVersioningStatus::Enabled) => "Enabled",
                    Some(BucketVersioningStatus::Suspended) => "Suspended",
                    _ => "Off",
                }
                .to_string();
                let lock = self
                    .client
                    .get_object_lock_configuration()
                    .bucket(&self.bucket)
                    .send()
                    .await;
                let (object_lock, default_retention) = match lock {
                    Ok(out) => {
                        let c = out.object_lock_configuration();
                        let enabled = c.and_then(|c| c.object_lock_enabled())
                            == Some(&ObjectLockEnabled::Enabled);
                        let default = c
                            .and_then(|c| c.rule())
                            .and_then(|r| r.default_retention())
                            .map(|d| {
                                let mode = d.mode().map(|m| m.as_str()).unwrap_or("?");
                                match (d.days(), d.years()) {
                                    (Some(days), _) => format!("{mode} {days} days"),
                                    (_, Some(years)) => format!("{mode} {years} years"),
                                    _ => mode.to_string(),
                                }
                            });
                        (enabled, default)
                    }
                    Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => {
                        (false, None)
                    }
                    Err(e) => {
                        return Err(sdk_error(
                            "reading the bucket's object lock configuration",
                            e,
                        ))
                    }
                };
                Ok(BucketState {
                    versioning,
                    object_lock,
                    default_retention,
                })
            })
            .await
    }

    /// True when archive objects get retention dates and legal holds.
    pub async fn locking(&self) -> Result<bool> {
        Ok(self.lock && self.bucket_state().await?.object_lock)
    }

    pub fn mode(&self) -> LockMode {
        self.mode
    }

    async fn apply_lock(&self, path: &ObjPath, version: Option<&str>, lock: &Lock) -> Result<()> {
        if *lock == Lock::default() || !self.locking().await? {
            return Ok(());
        }
        let key = self.key(path);
        if let Some(until) = lock.until {
            let mode = match self.mode {
                LockMode::Governance => ObjectLockRetentionMode::Governance,
                LockMode::Compliance => ObjectLockRetentionMode::Compliance,
            };
            let retention = ObjectLockRetention::builder()
                .mode(mode)
                .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
                    until.unix_timestamp(),
                ))
                .build();
            self.client
                .put_object_retention()
                .bucket(&self.bucket)
                .key(&key)
                .set_version_id(version.map(str::to_string))
                .retention(retention)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("locking {path}"), e))?;
        }
        if lock.legal_hold {
            self.legal_hold(&key, version, true).await?;
        }
        Ok(())
    }

    async fn legal_hold(&self, key: &str, version: Option<&str>, on: bool) -> Result<()> {
        let status = if on {
            ObjectLockLegalHoldStatus::On
        } else {
            ObjectLockLegalHoldStatus::Off
        };
        self.client
            .put_object_legal_hold()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_string))
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .map_err(|e| sdk_error(&format!("setting legal hold on {key}"), e))?;
        Ok(())
    }

    /// Every version and delete marker of the keys under `prefix`.
    async fn versions(&self, prefix: &str) -> Result<Vec<Version>> {
        let mut out = vec![];
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| sdk_error(&format!("listing versions of {prefix}"), e))?;
            for v in page.versions() {
                out.push(Version {
                    key: v.key().unwrap_or_default().to_string(),
                    version: v.version_id().unwrap_or("null").to_string(),
                    latest: v.is_latest().unwrap_or(false),
                    delete_marker: false,
                });
            }
            for m in page.delete_markers() {
                out.push(Version {
                    key: m.key().unwrap_or_default().to_string(),
                    version: m.version_id().unwrap_or("null").to_string(),
                    latest: m.is_latest().unwrap_or(false),
                    delete_marker: true,
                });
            }
            if !page.is_truncated().unwrap_or(false) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(out);
            }
        }
    }

    /// Deletes the versions of one object (all, or only the noncurrent ones); returns those
    /// object lock kept.
    async fn delete_versions(&self, path: &ObjPath, old_only: bool) -> Result<Vec<LockedVersion>> {
        let key = self.key(path);
        let mut locked = vec![];
        for v in self.versions(&key).await? {
            if v.key != key || (old_only && v.latest) {
                continue;
            }
            locked.extend(
                self.delete_version(path, &v.version, v.delete_marker)
                    .await?,
            );
        }
        Ok(locked)
    }

    async fn delete_version(
        &self,
        path: &ObjPath,
        version: &str,
        delete_marker: bool,
    ) -> Result<Option<LockedVersion>> {
        let key = self.key(path);
        let r = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .version_id(version)
            .send()
            .await;
        let Err(e) = r else { return Ok(None) };
        if e.code() == Some("NoSuchVersion") || e.code() == Some("NoSuchKey") {
            return Ok(None);
        }
        let state = if e.code() == Some("AccessDenied") && !delete_marker {
            self.lock_of(&key, version).await?
        } else {
            None
        };
        match state {
            Some((until, legal_hold)) => Ok(Some(LockedVersion {
                object: path.to_string(),
                version: Some(version.to_string()),
                until,
                legal_hold,
            })),
            None => Err(sdk_error(&format!("deleting {path}"), e)),
        }
    }

    /// The lock on one version, if it has one that is in force now.
    async fn lock_of(
        &self,
        key: &str,
        version: &str,
    ) -> Result<Option<(Option<OffsetDateTime>, bool)>> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("reading the lock of {key}"), e))?;
        let until = head
            .object_lock_retain_until_date()
            .and_then(|d| OffsetDateTime::from_unix_timestamp(d.secs()).ok())
            .filter(|u| *u > OffsetDateTime::now_utc());
        let hold = head.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On);
        Ok((until.is_some() || hold).then_some((until, hold)))
    }
}

/// What a conditional write compares: an ETag (a content hash on a local store) and, on a
/// versioned bucket, the version it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub etag: String,
    pub version: Option<String>,
}

impl Tag {
    fn of_content(bytes: &[u8]) -> Tag {
        Tag {
            etag: blake3::hash(bytes).to_hex().to_string(),
            version: None,
        }
    }
}

/// Syncs a new file, its directory and that directory's parent (which a new directory's entry
/// is in): after a power loss the file is there, whole.
fn sync_file(file: &Path) -> Result<()> {
    let ctx = || format!("syncing {}", file.display());
    std::fs::File::open(file)
        .and_then(|f| f.sync_all())
        .io(ctx)?;
    let dir = file.parent();
    for d in [dir, dir.and_then(Path::parent)].into_iter().flatten() {
        std::fs::File::open(d).and_then(|f| f.sync_all()).io(ctx)?;
    }
    Ok(())
}

/// Overwrites a file's every byte with zeros, in place, and syncs it.
pub(crate) fn zero_file(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let zeros = vec![0u8; 1 << 16];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

/// An exclusive lock on `<file>.lock`, held while the guard lives: conditional writes to a local
/// store, between processes (and hosts, on a file system with working locks).
fn file_lock(file: &Path) -> Result<std::fs::File> {
    let path = file.with_extension("lock");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).io(|| format!("creating {}", dir.display()))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .io(|| format!("opening {}", path.display()))?;
    f.lock().io(|| format!("locking {}", path.display()))?;
    Ok(f)
}

impl S3 {
    async fn get_tagged(&self, path: &ObjPath) -> Result<Option<(Vec<u8>, Tag)>> {
        let key = self.key(path);
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(sdk_error(&format!("reading {key}"), e)),
        };
        let tag = Tag {
            etag: out.e_tag().unwrap_or_default().to_string(),
            version: out.version_id().map(str::to_string),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::S3 {
                context: format!("reading {key}"),
                message: e.to_string(),
            })?
            .into_bytes();
        Ok(Some((bytes.to_vec(), tag)))
    }

    async fn put_if(
        &self,
        path: &ObjPath,
        bytes: Vec<u8>,
        expected: Option<&Tag>,
    ) -> Result<Option<Tag>> {
        let key = self.key(path);
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(bytes.into());
        put = match expected {
            None => put.if_none_match("*"),
            Some(t) => put.if_match(&t.etag),
        };
        match put.send().await {
            Ok(o) => Ok(Some(Tag {
                etag: o.e_tag().unwrap_or_default().to_string(),
                version: o.version_id().map(str::to_string),
            })),
            // 412: the condition failed; 409: a concurrent conditional write won.
            Err(e)
                if e.raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error(&format!("writing {key}"), e)),
        }
    }
}

fn sdk_error<E, R>(context: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    Error::S3 {
        context: context.to_string(),
        message: DisplayErrorContext(e).to_string(),
    }
}

/// `object_store` signs with credentials from the SDK's chain, cached until near expiry.
#[derive(Debug)]
struct SdkCredentials {
    provider: aws_sdk_s3::config::SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait::async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let fresh_until = SystemTime::now() + Duration::from_secs(300);
        if let Ok(guard) = self.cached.lock() {
            if let Some((c, expiry)) = guard.as_ref() {
                if expiry.is_none_or(|e| e > fresh_until) {
                    return Ok(c.clone());
                }
            }
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        });
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some((credential.clone(), c.expiry()));
        }
        Ok(credential)
    }
}

/// One finding of [`crate::Vault::doctor`].
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// `ok`, `warning` or `problem`.
    pub level: &'static str,
    pub message: String,
}

/// What `tvault doctor` found about the store and its protection.
#[derive(Clone, Debug, Serialize)]
pub struct DoctorReport {
    pub store: String,
    /// `local`, `s3` or `other`.
    pub kind: &'static str,
    pub bucket: Option<BucketState>,
    /// Mode archive objects are locked in, when they are.
    pub lock_mode: Option<LockMode>,
    pub tenants: u64,
    pub tenants_with_min_age: u64,
    pub deferred_deletions: Vec<crate::inventory::Deferred>,
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    pub fn has_problems(&self) -> bool {
        self.findings.iter().any(|f| f.level == "problem")
    }
}

impl crate::Vault {
    /// Checks the store's versioning and object lock configuration against what the vault
    /// needs, and says what it means.
    pub async fn doctor(&self) -> Result<DoctorReport> {
        let tenants = self.tenants()?;
        let mut with_min_age = 0;
        for t in &tenants {
            if self.effective_policy(t).await?.min_age.is_some() {
                with_min_age += 1;
            }
        }
        let deferred = self.inventory().deferred()?;
        self.store()
            .doctor(tenants.len() as u64, with_min_age, deferred)
            .await
    }
}

impl Store {
    /// The store half of [`crate::Vault::doctor`]; also usable on a store no vault uses yet
    /// (no tenants, nothing deferred), to check a bucket before `init`.
    pub async fn doctor(
        &self,
        tenants: u64,
        with_min_age: u64,
        deferred: Vec<crate::inventory::Deferred>,
    ) -> Result<DoctorReport> {
        let store = self;
        let mut findings = vec![];
        let mut note = |level, message: String| findings.push(Finding { level, message });
        let (kind, bucket, lock_mode) = match store.s3() {
            None if store.location().contains("://") => {
                note(
                    "warning",
                    "not an S3 store: object lock and versions are not checked".into(),
                );
                ("other", None, None)
            }
            None => {
                note(
                    "warning",
                    "local directory store: no versioning and no object lock; anyone who can write \
                     the directory can delete backups. Copy it off the host, or use an s3:// vault"
                        .into(),
                );
                ("local", None, None)
            }
            Some(s3) => {
                let b = s3.bucket_state().await?.clone();
                match b.versioning.as_str() {
                    "Enabled" => note(
                        "ok",
                        "versioning is enabled: an overwritten or deleted object keeps its old \
                         versions; tvault deletes versions explicitly when it deletes or erases"
                            .into(),
                    ),
                    "Suspended" => note(
                        "warning",
                        "versioning is suspended: old versions stay, new writes replace each \
                         other; object lock needs versioning enabled"
                            .into(),
                    ),
                    _ => note(
                        "warning",
                        "versioning is off: a deleted or overwritten object is gone at once, and \
                         object lock is unavailable"
                            .into(),
                    ),
                }
                let locking = s3.locking().await?;
                if !b.object_lock {
                    note(
                        "warning",
                        "object lock is not enabled on the bucket: nothing stops a stolen \
                         credential or a rogue admin from deleting backups. Enable it (bucket \
                         setting ObjectLockEnabled) to have archives retained for each tenant's \
                         min-age"
                            .into(),
                    );
                } else if !locking {
                    note(
                        "warning",
                        "the bucket has object lock, but `[s3] lock = false`: archives are \
                         written without retention dates"
                            .into(),
                    );
                } else {
                    let mode = match s3.mode() {
                        LockMode::Governance => {
                            "governance mode: a principal with s3:BypassGovernanceRetention can \
                             still delete early"
                        }
                        LockMode::Compliance => {
                            "compliance mode: nobody, the root account included, can delete or \
                             shorten a retention date before it passes"
                        }
                    };
                    note(
                        "ok",
                        format!(
                            "object lock is enabled: archive objects are retained until snapshot \
                             time + min-age ({with_min_age} of {} tenants have a min-age; the \
                             others get no retention date), in {mode}. Legal holds become S3 \
                             legal holds. Wrapped keys, policies, holds, ledgers and the audit \
                             anchor are never locked",
                            tenants
                        ),
                    );
                }
                if let Some(d) = &b.default_retention {
                    note(
                        "problem",
                        format!(
                            "the bucket has a default retention ({d}): S3 locks every new object \
                             with it, wrapped data keys included, so forgetting a tenant could not \
                             destroy its keys until that retention ends. Remove the default \
                             retention; tvault sets a retention date per archive object"
                        ),
                    );
                }
                if b.versioning == "Enabled" {
                    note(
                        "ok",
                        "tip: a lifecycle rule expiring noncurrent versions after a few days \
                         keeps the versions of rewritten small objects (audit anchor) from \
                         accumulating; it cannot remove locked versions"
                            .into(),
                    );
                }
                ("s3", Some(b), locking.then_some(s3.mode()))
            }
        };
        if !deferred.is_empty() {
            note(
                "warning",
                format!(
                    "{} object version(s) wait for their lock to end before deletion; `tvault \
                     retention apply` retries them",
                    deferred.len()
                ),
            );
        }
        Ok(DoctorReport {
            store: store.location().to_string(),
            kind,
            bucket,
            lock_mode,
            tenants,
            tenants_with_min_age: with_min_age,
            deferred_deletions: deferred,
            findings,
        })
    }
}
