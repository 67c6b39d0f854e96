//! Many operations in one process, as the server will run them: a backup, a retention pass, a
//! record restore and an erasure, each on its own tenant and its own operation handle
//! (`Vault::operation`), started at once over one vault; then everything checks out: every
//! operation succeeded, `verify` passes, the erased record is gone, the restored one is back,
//! and the audit trail holds one entry per operation with its actor, in a valid chain.

use tests::*;
use vault_core::erase::EraseOptions;
use vault_core::records::RecordRestoreOptions;
use vault_core::{BackupOptions, Vault};

const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

const SCHEMA: &str = "
CREATE TABLE events (id bigint PRIMARY KEY, tenant_id text NOT NULL, kind text NOT NULL, payload text NOT NULL);
INSERT INTO events
SELECT i, (ARRAY['acme', 'globex', 'initech', 'umbrella'])[1 + i % 4], 'kind-' || (i % 17),
       md5(i::text) || md5((i * 7)::text)
FROM generate_series(1, 40000) i;
";

#[test]
fn a_backup_a_retention_a_record_restore_and_an_erasure_run_side_by_side() {
    let env = Env::new("in_process", &[]);
    env.db.exec(SCHEMA);
    env.tv.init(&env.db.url, &[]);
    let key = env.keygen("key.txt");
    for t in TENANTS {
        env.tv.tenant_add(t, &key);
    }
    env.tv.backup_all();
    env.db.exec("UPDATE events SET kind = kind || '+'");
    env.tv.backup_all();
    env.tv.ok(&["policy", "set", "globex", "--keep-last", "1"]);
    // initech's record 2 is changed live, to be restored from the snapshot.
    env.db.exec("UPDATE events SET kind = 'live' WHERE id = 2");

    let dir = env.tv.vault.clone();
    let identity = keys::TenantIdentities::from_file(&key.identity).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = Vault::load_config(&dir).unwrap();
        let vault = Vault::open(&dir, config).await.unwrap();
        let (backup, retention, restore, erase) = (
            vault.operation(Some("backup-job".into())),
            vault.operation(Some("retention-job".into())),
            vault.operation(Some("support-ann".into())),
            vault.operation(Some("privacy-bob".into())),
        );
        let record = RecordRestoreOptions {
            tenant: "initech".into(),
            table: "public.events".into(),
            keys: vec![vec![("id".into(), "2".into())]],
            snapshot: "latest".into(),
            with_related: false,
            dry_run: false,
        };
        let forget = EraseOptions {
            tenant: "umbrella".into(),
            table: "public.events".into(),
            keys: vec![vec![("id".into(), "3".into())]],
            cascade: false,
            dry_run: false,
        };
        // Each on a task of its own: truly side by side on the runtime's threads.
        let identity = std::sync::Arc::new(identity);
        let id2 = identity.clone();
        let b = tokio::spawn(async move {
            backup
                .backup(BackupOptions {
                    tenants: Some(vec!["acme".into()]),
                    ..Default::default()
                })
                .await
        });
        let r =
            tokio::spawn(
                async move { retention.apply_retention(Some("globex"), false, None).await },
            );
        let rr = tokio::spawn(async move { restore.restore_records(&record, &identity).await });
        let e = tokio::spawn(async move { erase.erase(&forget, &id2).await });
        let (b, r, rr, e) = (
            b.await.unwrap(),
            r.await.unwrap(),
            rr.await.unwrap(),
            e.await.unwrap(),
        );
        let b = b.expect("the backup");
        assert_eq!(b.tenants.len(), 1);
        r.expect("the retention pass");
        assert_eq!(rr.expect("the record restore").updated, 1);
        assert!(e.expect("the erasure").ledger_entries == 1);
        vault
            .verify(None, None)
            .await
            .map(|v| assert!(v.ok, "{v:?}"))
            .unwrap();
        let trail = vault.audit_entries(None).await.unwrap();
        let actors: Vec<(&str, &str)> = trail
            .iter()
            .rev()
            .take(4)
            .map(|e| (e.actor.as_str(), e.action.as_str()))
            .collect();
        for (actor, action) in [
            ("backup-job", "backup"),
            ("retention-job", "deletion"),
            ("support-ann", "record-restore"),
            ("privacy-bob", "erasure"),
        ] {
            assert!(
                trail.iter().any(|e| e.actor == actor && e.action == action),
                "no {action} by {actor} in the trail: {actors:?}"
            );
        }
    });
    drop(rt);
    env.tv.ok(&["audit", "verify"]);
    // The snapshot's value of initech's record 2 is back (it was 'live').
    assert_eq!(
        env.db
            .scalar("SELECT kind FROM events WHERE id = 2")
            .as_deref(),
        Some("kind-2+")
    );
    let found = env.tv.json(&[
        "find",
        "umbrella",
        "--table",
        "public.events",
        "--key",
        "id=3",
    ]);
    let found = found.as_array().unwrap();
    assert!(
        !found.is_empty() && found.iter().all(|s| s["present"] == false),
        "umbrella's erased record 3 is still found: {found:?}"
    );
    env.tv.ok(&[
        "verify",
        "--tenant",
        "umbrella",
        "--identity",
        key.identity_str(),
    ]);
}
