//! Which operations of one process may run side by side (the server runs many at once).
//!
//! Two levels, always taken in this order, so that no two operations wait for each other:
//!
//! - the **store** lock: a backup and a retention pass take it alone (a backup's packs are
//!   unreferenced until it commits, and a retention pass deletes unreferenced packs; a backup
//!   deletes what an interrupted cycle left, which a running one would look like); an erasure
//!   and a forget share it;
//! - a **tenant** lock: an erasure, a forget, and a retention pass while it prunes that tenant
//!   take it alone; restores, record restores and reads (`show`, `diff`, `verify` with a key)
//!   share it, so they never read objects that are being rewritten or deleted.
//!
//! Across processes and hosts, the store lease (`crate::lease`) adds the same exclusion for the
//! operations that delete.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

#[derive(Default)]
pub(crate) struct Locks {
    store: Arc<RwLock<()>>,
    tenants: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

/// Held while an operation runs; released when dropped.
pub(crate) enum Guard {
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Alone(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

impl Locks {
    /// The whole store, alone (backup, retention).
    pub async fn store_alone(&self) -> Guard {
        Guard::Alone(self.store.clone().write_owned().await)
    }

    /// The store, shared (erasure, forget).
    pub async fn store_shared(&self) -> Guard {
        Guard::Shared(self.store.clone().read_owned().await)
    }

    /// One tenant, alone (erasure, forget, a retention pass over it).
    pub async fn tenant_alone(&self, tenant_path: &str) -> Guard {
        Guard::Alone(self.tenant(tenant_path).write_owned().await)
    }

    /// One tenant, shared (restores and reads).
    pub async fn tenant_shared(&self, tenant_path: &str) -> Guard {
        Guard::Shared(self.tenant(tenant_path).read_owned().await)
    }

    fn tenant(&self, tenant_path: &str) -> Arc<RwLock<()>> {
        let mut map = self
            .tenants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Locks nobody holds or waits for are dropped, so the map stays as small as the number
        // of tenants in use.
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(tenant_path.to_string()).or_default().clone()
    }
}

impl crate::Vault {
    /// The lock of tenant `id`, shared (restores and reads). An unknown id locks a name no
    /// tenant has: the operation then fails on its own, with its own message.
    pub(crate) async fn reading_tenant(&self, id: &str) -> Guard {
        let path = self.tenant(id).map(|r| r.path).unwrap_or_default();
        self.locks().tenant_shared(&path).await
    }

    /// The lock of tenant `id`, alone (erasure, forget).
    pub(crate) async fn changing_tenant(&self, id: &str) -> Guard {
        let path = self.tenant(id).map(|r| r.path).unwrap_or_default();
        self.locks().tenant_alone(&path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn readers_share_a_tenant_and_a_writer_waits_for_them() {
        let locks = Arc::new(Locks::default());
        let r1 = locks.tenant_shared("t1").await;
        let _r2 = locks.tenant_shared("t1").await;
        // Another tenant is independent.
        let _other = locks.tenant_alone("t2").await;
        let l = locks.clone();
        let writer = tokio::spawn(async move { l.tenant_alone("t1").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished(), "a writer ran beside readers");
        drop(r1);
        drop(_r2);
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the writer runs once the readers are gone")
            .unwrap();
    }

    #[tokio::test]
    async fn an_erasure_waits_for_a_running_backup() {
        let locks = Arc::new(Locks::default());
        let backup = locks.store_alone().await;
        let l = locks.clone();
        let erase = tokio::spawn(async move { l.store_shared().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!erase.is_finished());
        drop(backup);
        tokio::time::timeout(Duration::from_secs(5), erase)
            .await
            .unwrap()
            .unwrap();
    }
}
