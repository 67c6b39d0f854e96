//! Several processes and hosts on one vault: a second process on the same state directory gets
//! exit code 5 with a hint (or waits with `--wait`), and the store lease (`lease.json`,
//! docs/FORMAT.md) keeps two state directories on one store, local or S3, from running their
//! deleting operations at once; a lease its holder stopped renewing is taken over.

use std::time::{Duration, Instant};
use tests::*;

const FIX: [&str; 1] = ["isolation.sql"];
const TENANTS: [&str; 2] = ["acme", "globex"];

/// A second state directory on `env`'s store ("another host"), joined with the recovery code
/// and rebuilt from the store.
fn second_host(env: &Env, key: &Key) -> Tvault {
    let code = std::fs::read_to_string(env.tv.vault.join("vault.key")).unwrap();
    let mut other = Tvault::new(env.path("host-b"));
    other.store_url = env.tv.store_url.clone();
    other.envs = env.tv.envs.clone();
    let store = env.tv.vault.join("store").to_string_lossy().into_owned();
    let mut init = vec!["init", "--source", &env.db.url, "--vault-key", code.trim()];
    if env.bucket.is_none() {
        init.extend(["--store", &store]);
    }
    other.ok(&init);
    let ids: Vec<String> = TENANTS
        .iter()
        .map(|t| format!("{t}={}", key.identity_str()))
        .collect();
    let mut rebuild = vec!["inventory", "rebuild"];
    for id in &ids {
        rebuild.extend(["--identity", id.as_str()]);
    }
    other.ok(&rebuild);
    other
}

fn lease(host: &str, expires: &str) -> Vec<u8> {
    format!(
        r#"{{"format":1,"holder":"feedfacefeedface","host":"{host}","pid":4242,"operation":"backup","acquired":"2001-01-01T00:00:00Z","expires":"{expires}","released":false}}"#
    )
    .into_bytes()
}

fn two_hosts_on_one_store_take_turns(backend: Backend, name: &str) {
    let (env, key) = Env::with_tenants_on(name, &FIX, &TENANTS, backend);
    env.tv.backup_all();
    let b = second_host(&env, &key);

    // Another host holds the lease: both state directories are refused with exit 5, naming it,
    // and nothing is written.
    env.write_object("lease.json", lease("other-host", "2999-01-01T00:00:00Z"));
    let objects = env.objects();
    let o = env.tv.run(&["backup", "--all"]);
    o.assert_code(5, "backup while another host holds the lease");
    assert!(
        o.stderr.contains("other-host") && o.stderr.contains("--wait"),
        "{}",
        o.stderr
    );
    b.run(&["retention", "apply"])
        .assert_code(5, "retention while another host holds the lease");
    let trail = b.json(&["audit"]);
    assert!(
        trail
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "deletion"
                && e["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("refused") && o.contains("other-host"))),
        "the refused retention is not in the trail: {trail:#}"
    );
    let started = Instant::now();
    b.run(&["--wait", "2", "retention", "apply"])
        .assert_code(5, "retention that waited 2 s in vain");
    assert!(started.elapsed() >= Duration::from_secs(2));
    let (mut before, mut after) = (objects, env.objects());
    // The refusals wrote nothing but their audit anchors.
    before.retain(|k, _| !k.starts_with("audit/"));
    after.retain(|k, _| !k.starts_with("audit/"));
    assert_eq!(before, after, "a refused operation changed the store");

    // Its holder crashed: the lease expired without renewal, and is taken over.
    env.write_object("lease.json", lease("other-host", "2001-01-01T00:00:10Z"));
    let o = b.run(&["retention", "apply"]);
    o.assert_code(0, "retention after the lease expired");
    assert!(o.stderr.contains("took over"), "{}", o.stderr);
    let now = store_json(&env.read_object("lease.json")).expect("lease.json");
    assert_eq!(now["released"], true, "given back after use: {now}");
    assert_ne!(now["host"], "other-host", "{now}");

    // Both hosts at once: one waits for the other, both succeed, and the vault checks out.
    let (a, b2) = (env.tv.clone(), b.clone());
    let backup = std::thread::spawn(move || a.run(&["--wait", "120", "backup", "--all", "--json"]));
    let retention = std::thread::spawn(move || b2.run(&["--wait", "120", "retention", "apply"]));
    let (backup, retention) = (backup.join().unwrap(), retention.join().unwrap());
    backup.assert_code(0, "backup beside retention on another host");
    retention.assert_code(0, "retention beside a backup on another host");
    env.tv.ok(&["verify"]);
    let snap = snapshot_id(&serde_json::from_str(backup.stdout.trim()).unwrap());
    env.tv.restore("acme", &snap, &key, None);
    // Each state directory anchors its own audit trail, and both check out.
    env.tv.ok(&["audit", "verify"]);
    b.ok(&["audit", "verify"]);
}

conformance! {
    two_hosts_on_one_store_take_turns,
}

#[test]
fn a_second_process_on_one_state_directory_gets_exit_5_or_waits() {
    let (env, key) = Env::with_tenants("lease_local", &FIX, &TENANTS);
    env.tv.backup_all();
    let config = env.tv.vault.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[restore]\nlock_timeout_secs = 0\n");
    std::fs::write(&config, text).unwrap();
    env.db
        .exec("UPDATE orders SET total = total + 1 WHERE tenant_id = 'acme'");

    // A restore that waits (no lock timeout) behind the application's lock keeps the state
    // directory for as long.
    let mut app = env.db.client();
    let mut tx = app.transaction().unwrap();
    tx.batch_execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let log = std::fs::File::create(env.path("restore.log")).unwrap();
    let mut restore = env
        .tv
        .command(&[
            // It may find the state directory taken by the probes below: it waits for them.
            "--wait",
            "60",
            "restore",
            "acme",
            "--snapshot",
            "latest",
            "--identity",
            key.identity_str(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let busy = loop {
        let o = env.tv.run(&["snapshots"]);
        if o.code == 5 || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if busy.code != 5 {
        let _ = restore.wait();
        panic!(
            "no exit 5 while the restore held the state directory: {busy:?}\nrestore: {}",
            std::fs::read_to_string(env.path("restore.log")).unwrap_or_default()
        );
    }
    assert!(
        busy.stderr.contains("in use")
            && busy.stderr.contains("pid")
            && busy.stderr.contains("--wait"),
        "{}",
        busy.stderr
    );
    // With --wait it waits, says so, and runs once the restore is done.
    let tv = env.tv.clone();
    let waiter = std::thread::spawn(move || tv.run(&["--wait", "60", "snapshots", "--json"]));
    std::thread::sleep(Duration::from_millis(1500));
    tx.rollback().unwrap();
    let status = restore.wait().unwrap();
    assert!(status.success(), "the restore failed: {status:?}");
    let waited = waiter.join().unwrap();
    waited.assert_code(0, "snapshots with --wait");
    assert!(waited.stderr.contains("waiting"), "{}", waited.stderr);
}
