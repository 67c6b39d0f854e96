//! Operating conditions: restoring one tenant never needs another tenant's archives, a full
//! disk fails a backup cleanly and loses nothing, and a prune beside a running backup cannot
//! break it.

use tests::*;

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// The store directory of a tenant (the one whose tenant.json names it).
fn tenant_dir(vault: &std::path::Path, tenant: &str) -> std::path::PathBuf {
    let root = vault.join("store").join("tenants");
    std::fs::read_dir(&root)
        .expect("tenants dir")
        .flatten()
        .map(|e| e.path())
        .find(|d| {
            std::fs::read(d.join("tenant.json"))
                .ok()
                .and_then(|b| store_json(&b))
                .is_some_and(|v| v["id"] == tenant)
        })
        .unwrap_or_else(|| panic!("no store dir for {tenant}"))
}

#[test]
fn restoring_a_tenant_reads_no_other_tenants_archives() {
    let (env, key) = Env::with_tenants("isolation_reads", &["interrupted.sql"], &TENANTS);
    let mut c = env.db.client();
    let before = tenant_checksum(&mut c, "public.events", "acme");
    let snap = env.tv.backup_all();
    // Take every other tenant's archives away: if restoring acme touched them, it would fail.
    let away = env.path("away");
    std::fs::create_dir_all(&away).unwrap();
    for t in ["globex", "initech"] {
        let d = tenant_dir(&env.tv.vault, t);
        std::fs::rename(&d, away.join(d.file_name().unwrap())).unwrap();
    }
    env.db
        .exec("DELETE FROM events WHERE tenant_id = 'acme' AND id % 2 = 0");
    env.tv.restore("acme", &snap, &key, None);
    assert_eq!(tenant_checksum(&mut c, "public.events", "acme"), before);
    let v = env.tv.json(&[
        "verify",
        "--tenant",
        "acme",
        "--identity",
        key.identity_str(),
    ]);
    assert_eq!(
        v["ok"], true,
        "verify acme without the others' archives: {v:#}"
    );
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(path: std::path::PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs (run the suite as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_backup_cleanly_and_loses_nothing() {
    let env = Env::new("full_disk", &["no_pk.sql"]);
    let disk = SmallDisk::mount(env.path("disk"), "512k");
    let store = disk.0.join("store");
    env.tv
        .init(&env.db.url, &["--store", store.to_str().unwrap()]);
    let key = env.keygen("key.txt");
    env.tv.tenant_add("acme", &key);
    let mut c = env.db.client();
    let before = tenant_checksum(&mut c, "public.ledger", "acme");
    let first = env.tv.backup_all();
    // Far more incompressible data than the disk holds.
    env.db.exec(
        "CREATE TABLE bulk (tenant_id text, id int PRIMARY KEY, blob text);
         INSERT INTO bulk SELECT 'acme', i, md5(i::text) || md5((i * 3)::text) || md5((i * 7)::text)
         FROM generate_series(1, 40000) i;",
    );
    let out = env.tv.run(&["backup", "--all"]);
    assert_ne!(out.code, 0, "a backup that does not fit must fail");
    assert!(
        out.stderr.to_lowercase().contains("space"),
        "the error says the disk is full: {}",
        out.stderr
    );
    assert_eq!(
        snapshot_ids(&env.tv.snapshots()),
        vec![first.clone()],
        "no partial snapshot is listed"
    );
    env.db
        .exec("DROP TABLE bulk; DELETE FROM ledger WHERE tenant_id = 'acme'");
    env.tv.restore("acme", &first, &key, None);
    assert_eq!(
        tenant_checksum(&mut c, "public.ledger", "acme"),
        before,
        "the earlier snapshot restores exactly"
    );
}

#[test]
fn a_prune_beside_a_running_backup_never_breaks_it() {
    let (env, key) = Env::with_tenants("prune_beside_backup", &["interrupted.sql"], &TENANTS);
    let first = env.tv.backup_all();
    env.tv.ok(&["policy", "set", "acme", "--keep-last", "1"]);
    env.db
        .exec("UPDATE events SET kind = 'changed' WHERE id % 5 = 0");
    let tv = env.tv.clone();
    let backup = std::thread::spawn(move || tv.run(&["backup", "--all", "--json"]));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let prune = env.tv.run(&["retention", "apply", "--json"]);
    let backup = backup.join().unwrap();
    backup.assert_code(0, "the backup beside a prune");
    assert!(
        prune.code == 0 || (prune.code == 5 && prune.stderr.contains("in use")),
        "prune beside a backup: exit {} {}",
        prune.code,
        prune.stderr
    );
    // Whatever the interleaving, every listed snapshot is complete.
    env.tv
        .run(&["retention", "apply"])
        .assert_code(0, "retention after the backup");
    let second = snapshot_id(&serde_json::from_str(backup.stdout.trim()).unwrap());
    let acme = snapshot_ids(
        &env.tv
            .json(&["snapshots", "--tenant", "acme"])
            .as_array()
            .unwrap()
            .clone(),
    );
    assert_eq!(
        acme,
        vec![second.clone()],
        "keep-last 1 keeps the newest (first was {first})"
    );
    let v = env.tv.json(&[
        "verify",
        "--tenant",
        "acme",
        "--identity",
        key.identity_str(),
    ]);
    assert_eq!(v["ok"], true, "{v:#}");
    let mut c = env.db.client();
    let want = tenant_checksum(&mut c, "public.events", "acme");
    env.db.exec("DELETE FROM events WHERE tenant_id = 'acme'");
    env.tv.restore("acme", &second, &key, None);
    assert_eq!(tenant_checksum(&mut c, "public.events", "acme"), want);
}
