//! The store lease: operations that delete or replace a vault's objects (backup, retention,
//! erasure, forgetting) run one at a time on a store, whichever process and host they run on.
//!
//! The lease is one object, `lease.json` (docs/FORMAT.md), changed only by compare-and-swap
//! ([`Store::put_if`]): created when absent, replaced when it is the version read. Its holder
//! renews it every quarter of its time to live ([`TTL`] by default); a lease not renewed in time (a crashed holder) is taken over.
//! A holder that finds its lease replaced stops deleting: every deletion checks [`Vault::leased`]
//! first.
//!
//! In one process, operations share the lease (the in-process lock manager orders them).

use crate::error::{Error, Result};
use crate::store::{Store, Tag};
use crate::Vault;
use object_store::path::Path as ObjPath;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a lease lasts without renewal, unless the config's `store_lease_seconds` says
/// otherwise; its holder renews it every quarter of that.
pub const TTL: Duration = Duration::from_secs(120);

/// The lease object's name in the store.
pub fn path() -> ObjPath {
    ObjPath::from("lease.json")
}

/// `lease.json`, format 1.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lease {
    pub format: u32,
    /// Random id of this holding (one process's tenure).
    pub holder: String,
    pub host: String,
    pub pid: u32,
    /// The operation that took it (`backup`, `retention`, `erase`, `forget`).
    pub operation: String,
    /// The audit trail id of the holder's state directory (docs/AUDIT.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub acquired: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// Given back: free at once.
    #[serde(default)]
    pub released: bool,
}

impl Lease {
    /// Free for `trail` (this state directory's) at `now`: given back, expired, or left by a
    /// process that is gone. One process at a time holds a state directory, so a lease held from
    /// this one was left by a process that crashed; one held from this host by a pid that no
    /// longer runs, likewise.
    fn free(&self, now: OffsetDateTime, trail: Option<&str>) -> bool {
        let ours = trail.is_some() && self.trail.as_deref() == trail;
        let dead = self.host == host_name()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists();
        self.released || self.expires <= now || ours || dead
    }

    /// "backup on host db-1 (pid 4242) since 10:41:02Z, renewed until 10:43:02Z".
    pub fn describe(&self) -> String {
        let t = |d: OffsetDateTime| {
            d.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        format!(
            "{} on host {} (pid {}) since {}, until {} unless renewed",
            self.operation,
            self.host,
            self.pid,
            t(self.acquired),
            t(self.expires)
        )
    }
}

/// This machine's name, for messages.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// A lease this process holds, shared by its operations.
pub(crate) struct Held {
    /// The lease's time to live.
    ttl: Duration,
    store: Store,
    state: Mutex<(Lease, Tag)>,
    lost: AtomicBool,
    renewer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The process's lease, if any operation holds it.
#[derive(Default)]
pub(crate) struct Leases {
    current: tokio::sync::Mutex<Weak<Held>>,
}

impl Vault {
    /// Runs `op` holding the store lease (waiting for it up to the vault's `wait`), then gives
    /// the lease back unless another operation of this process still uses it.
    pub(crate) async fn with_lease<T>(
        &self,
        operation: &str,
        op: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let held = self.enter_lease(operation).await?;
        let result = op.await;
        let released = self.leave_lease(held).await;
        match (result, released) {
            (Ok(v), Ok(())) => Ok(v),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
        }
    }

    /// An error when this process lost the lease to another holder: it must not delete.
    pub(crate) fn leased(&self) -> Result<()> {
        let current = self
            .leases()
            .current
            .try_lock()
            .ok()
            .and_then(|w| w.upgrade());
        match current {
            Some(h) if h.lost.load(Ordering::SeqCst) => Err(Error::Busy(
                "this process lost the store lease to another holder (it was not renewed in \
                 time): stopping before deleting anything"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    async fn enter_lease(&self, operation: &str) -> Result<Arc<Held>> {
        let mut current = self.leases().current.lock().await;
        if let Some(h) = current.upgrade() {
            if !h.lost.load(Ordering::SeqCst) {
                return Ok(h);
            }
        }
        let deadline = tokio::time::Instant::now() + self.wait();
        let mut told = false;
        let (lease, tag) = loop {
            match acquire(self.store(), operation, self.trail(), self.lease_ttl()).await? {
                Ok(held) => break held,
                Err(other) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::Busy(format!(
                            "the vault's store is in use: {}. Try again later, or pass --wait \
                             SECONDS to wait for it",
                            other.describe()
                        )));
                    }
                    if !told {
                        tracing::warn!("waiting for the store lease: {}", other.describe());
                        told = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let ttl = self.lease_ttl();
        let held = Arc::new(Held {
            ttl,
            store: self.store().clone(),
            state: Mutex::new((lease, tag)),
            lost: AtomicBool::new(false),
            renewer: Mutex::new(None),
        });
        let weak = Arc::downgrade(&held);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 4).await;
                let Some(h) = weak.upgrade() else { return };
                if !h.renew().await {
                    return;
                }
            }
        });
        if let Ok(mut r) = held.renewer.lock() {
            *r = Some(task);
        }
        *current = Arc::downgrade(&held);
        Ok(held)
    }

    async fn leave_lease(&self, held: Arc<Held>) -> Result<()> {
        let current = self.leases().current.lock().await;
        // Another operation of this process still holds it.
        if Arc::strong_count(&held) > 1 {
            return Ok(());
        }
        drop(current);
        held.release().await
    }
}

/// One attempt: the lease when it was free (or ours to take over), else the one that holds it.
async fn acquire(
    store: &Store,
    operation: &str,
    trail: Option<&str>,
    ttl: Duration,
) -> Result<std::result::Result<(Lease, Tag), Lease>> {
    let now = OffsetDateTime::now_utc();
    let existing = store.get_tagged(&path()).await?;
    let previous = match &existing {
        None => None,
        Some((bytes, tag)) => {
            let lease: Lease = serde_json::from_slice(bytes)
                .map_err(|e| Error::corrupt(path(), format!("the store lease: {e}")))?;
            if !lease.free(now, trail) {
                return Ok(Err(lease));
            }
            Some((lease, tag.clone()))
        }
    };
    let mut holder = [0u8; 8];
    rand::fill(&mut holder);
    let lease = Lease {
        format: 1,
        holder: hex::encode(holder),
        host: host_name(),
        pid: std::process::id(),
        operation: operation.to_string(),
        trail: trail.map(str::to_string),
        acquired: now,
        expires: now + ttl,
        released: false,
    };
    let bytes = serde_json::to_vec_pretty(&lease).unwrap_or_default();
    match store
        .put_if(&path(), bytes, previous.as_ref().map(|(_, t)| t))
        .await?
    {
        Some(tag) => {
            if let Some((old, _)) = previous.filter(|(l, _)| !l.released) {
                tracing::warn!(
                    "took over the store lease of a holder that stopped without giving it back \
                     (crashed or killed): {}",
                    old.describe()
                );
            }
            Ok(Ok((lease, tag)))
        }
        // Someone else changed it in between: read it again.
        None => match store.get_tagged(&path()).await? {
            Some((bytes, _)) => match serde_json::from_slice::<Lease>(&bytes) {
                Ok(l) if !l.free(OffsetDateTime::now_utc(), trail) => Ok(Err(l)),
                _ => Box::pin(acquire(store, operation, trail, ttl)).await,
            },
            None => Box::pin(acquire(store, operation, trail, ttl)).await,
        },
    }
}

impl Held {
    /// Extends the lease; false (and `lost`) when another holder replaced it.
    async fn renew(&self) -> bool {
        let Some((mut lease, tag)) = self.state.lock().ok().map(|s| s.clone()) else {
            return false;
        };
        lease.expires = OffsetDateTime::now_utc() + self.ttl;
        let bytes = serde_json::to_vec_pretty(&lease).unwrap_or_default();
        match self.store.put_if(&path(), bytes, Some(&tag)).await {
            Ok(Some(new)) => {
                if let Ok(mut s) = self.state.lock() {
                    *s = (lease, new);
                }
                true
            }
            Ok(None) => {
                tracing::error!("the store lease was taken by another holder: stopping");
                self.lost.store(true, Ordering::SeqCst);
                false
            }
            // A transient store error: try again at the next tick (the TTL leaves room).
            Err(e) => {
                tracing::warn!(error = %e, "renewing the store lease failed; will retry");
                true
            }
        }
    }

    async fn release(&self) -> Result<()> {
        if let Some(task) = self.renewer.lock().ok().and_then(|mut r| r.take()) {
            task.abort();
        }
        if self.lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some((mut lease, tag)) = self.state.lock().ok().map(|s| s.clone()) else {
            return Ok(());
        };
        lease.released = true;
        lease.expires = OffsetDateTime::now_utc();
        let bytes = serde_json::to_vec_pretty(&lease).unwrap_or_default();
        // Not ours any more: nothing to give back.
        self.store.put_if(&path(), bytes, Some(&tag)).await?;
        Ok(())
    }
}
