//! A backup that dies half-way (SIGKILL, or an error after sealing some blocks) leaves
//! the vault usable: only complete snapshots are listed, they restore exactly, and the
//! next backup succeeds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tests::*;

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

fn sums(c: &mut Client) -> BTreeMap<&'static str, (i64, String)> {
    TENANTS
        .iter()
        .map(|t| (*t, tenant_checksum(c, "public.events", t)))
        .collect()
}

enum Interrupt {
    /// SIGKILL after this long.
    KillAfter(Duration),
    /// SIGKILL as soon as a new file appears in the store.
    KillAtFirstObject,
    /// `TVAULT_FAIL_AFTER_BLOCKS=n` test hook: the backup errors out by itself.
    FailAfterBlocks(u32),
}

fn interrupted_backup_leaves_vault_usable(name: &str, how: Interrupt) {
    let (env, key) = Env::with_tenants(name, &["interrupted.sql"], &TENANTS);
    let mut c = env.db.client();
    let at_snap1 = sums(&mut c);
    assert_eq!(at_snap1["acme"].0, 40_000, "fixture sanity");
    let t0 = Instant::now();
    let backup1 = env.tv.json(&["backup", "--all"]);
    let snap1 = snapshot_id(&backup1);
    let blocks: u64 = backup1["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["blocks_new"].as_u64().unwrap_or(0))
        .sum();
    eprintln!(
        "{name}: full backup took {:?}, {blocks} blocks",
        t0.elapsed()
    );
    assert!(
        blocks > 6,
        "fixture too small to interrupt: only {blocks} blocks"
    );

    // New data everywhere, so the next backup has to write lots of new blocks.
    c.execute(
        "UPDATE events SET payload = md5(payload) || payload WHERE true",
        &[],
    )
    .unwrap();
    let at_crash = sums(&mut c);

    match how {
        Interrupt::KillAfter(d) => {
            let mut child = env.tv.spawn(&["backup", "--all", "--json"]);
            std::thread::sleep(d);
            let status = child.try_wait().unwrap();
            assert!(
                status.is_none(),
                "backup finished within {d:?} ({status:?}): dataset too small to interrupt it"
            );
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
        Interrupt::KillAtFirstObject => {
            let before = walk(&env.tv.vault.join("store"));
            let mut child = env.tv.spawn(&["backup", "--all", "--json"]);
            let start = Instant::now();
            loop {
                if let Some(st) = child.try_wait().unwrap() {
                    panic!("backup exited ({st}) before any new object appeared in the store");
                }
                let now = walk(&env.tv.vault.join("store"));
                if now.iter().any(|p| !before.contains(p))
                    || start.elapsed() > Duration::from_secs(60)
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            child.kill().unwrap();
            child.wait().unwrap();
        }
        Interrupt::FailAfterBlocks(n) => {
            let mut tv = env.tv.clone();
            tv.envs
                .push(("TVAULT_FAIL_AFTER_BLOCKS".into(), n.to_string()));
            let out = tv.run(&["backup", "--all", "--json"]);
            eprintln!(
                "{name}: backup with TVAULT_FAIL_AFTER_BLOCKS={n}: exit {}, stderr: {}",
                out.code,
                out.stderr.trim()
            );
            assert_ne!(
                out.code, 0,
                "backup with TVAULT_FAIL_AFTER_BLOCKS={n} succeeded:\n{}",
                out.stdout
            );
            assert_ne!(
                out.code, 101,
                "backup panicked instead of failing cleanly:\n{}",
                out.stderr
            );
            assert!(
                out.stderr.contains("error"),
                "no error message: {:?}",
                out.stderr
            );
        }
    }

    // Only the complete snapshot is listed.
    let list = env.tv.snapshots();
    assert_eq!(
        snapshot_ids(&list),
        vec![snap1.clone()],
        "snapshots after the interrupted backup: {list:#?}"
    );
    let mut listed: Vec<&str> = list.iter().filter_map(|s| s["tenant"].as_str()).collect();
    listed.sort();
    assert_eq!(
        listed,
        vec!["acme", "globex", "initech"],
        "one entry per tenant: {list:#?}"
    );

    // The vault is not reported damaged by an interrupted backup.
    for a in [
        &["verify"][..],
        &[
            "verify",
            "--tenant",
            "acme",
            "--identity",
            key.identity_str(),
        ][..],
    ] {
        let out = env.tv.run(a);
        assert_eq!(
            out.code,
            0,
            "`{}` after interrupted backup: exit {}\n{}\n{}",
            a.join(" "),
            out.code,
            out.stdout,
            out.stderr
        );
    }

    // The complete snapshot restores exactly, by id and as `latest`.
    env.tv.restore("acme", &snap1, &key, None);
    env.tv.restore("globex", "latest", &key, None);
    let now = sums(&mut c);
    assert_eq!(
        now["acme"], at_snap1["acme"],
        "acme restored from snapshot 1"
    );
    assert_eq!(
        now["globex"], at_snap1["globex"],
        "globex restored from latest (= snapshot 1)"
    );
    assert_eq!(now["initech"], at_crash["initech"], "initech untouched");

    // The next backup succeeds and becomes `latest`.
    let live = sums(&mut c);
    let snap2 = env.tv.backup_all();
    assert_ne!(snap2, snap1);
    let mut ids = vec![snap1.clone(), snap2.clone()];
    ids.sort();
    assert_eq!(
        snapshot_ids(&env.tv.snapshots()),
        ids,
        "two complete snapshots"
    );
    c.execute("DELETE FROM events WHERE tenant_id = 'initech'", &[])
        .unwrap();
    env.tv.restore("initech", "latest", &key, None);
    assert_eq!(
        sums(&mut c)["initech"],
        live["initech"],
        "initech restored from the new snapshot"
    );
    let out = env.tv.run(&[
        "verify",
        "--tenant",
        "initech",
        "--identity",
        key.identity_str(),
    ]);
    assert_eq!(
        out.code, 0,
        "final verify: exit {}\n{}\n{}",
        out.code, out.stdout, out.stderr
    );
}

#[test]
fn backup_killed_after_300ms() {
    interrupted_backup_leaves_vault_usable(
        "interrupted_kill",
        Interrupt::KillAfter(Duration::from_millis(300)),
    );
}

#[test]
fn backup_killed_at_first_new_object() {
    interrupted_backup_leaves_vault_usable("interrupted_first_obj", Interrupt::KillAtFirstObject);
}

#[test]
fn backup_failing_after_3_blocks() {
    interrupted_backup_leaves_vault_usable("interrupted_fail3", Interrupt::FailAfterBlocks(3));
}
