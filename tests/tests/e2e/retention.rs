//! Retention (docs/CLI.md, "Retention, legal hold, forgetting"): a policy deletes exactly
//! the snapshots it says it deletes, and what it keeps still restores exactly. Shared blocks:
//! retention_blocks.rs; min-age / max-age: retention_ages.rs; legal hold: retention_hold.rs;
//! erasure: forget.rs, forget_audit.rs. The helpers here are shared by those modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tests::*;

pub const FIX: [&str; 2] = ["retention_schema.sql", "retention_data.sql"];
pub const A: &str = "acme-7f3a9c";
pub const B: &str = "globex-2b81d4";
pub const TABLES: [&str; 2] = ["public.customers", "public.notes"];

/// Every row of `tenant`, exactly, per table.
pub fn rows_of(c: &mut Client, tenant: &str) -> Vec<Vec<String>> {
    TABLES
        .iter()
        .map(|t| rows_exact(c, t, "r_.tenant_id = $1", Some(tenant)))
        .collect()
}

/// Changes a few of `tenant`'s customers (so the customers block of the next snapshot is new);
/// `step` makes each change different.
pub fn change(env: &Env, tenant: &str, step: usize) {
    env.db.exec(&format!(
        "UPDATE customers SET name = 'step {step} ' || id WHERE tenant_id = '{tenant}' AND id <= 5"
    ));
}

/// Damages `tenant`'s live rows, so that a restore has something to put back.
pub fn mangle(env: &Env, tenant: &str) {
    env.db.exec(&format!(
        "UPDATE customers SET name = 'mangled' WHERE tenant_id = '{tenant}';
         DELETE FROM notes WHERE tenant_id = '{tenant}' AND id % 3 = 0;"
    ));
}

/// `backup --all --json` after a pause: snapshot ids and times have one-second resolution,
/// and "the N newest" must not depend on how a tie is broken.
#[track_caller]
pub fn backup(env: &Env) -> Value {
    std::thread::sleep(Duration::from_millis(1100));
    env.tv.json(&["backup", "--all"])
}

/// The `tenants[]` entry of `tenant` in a backup report.
#[track_caller]
pub fn backup_of<'a>(report: &'a Value, tenant: &str) -> &'a Value {
    report["tenants"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["tenant"] == tenant))
        .unwrap_or_else(|| panic!("backup report has no tenant {tenant:?}: {report:#}"))
}

/// Snapshot ids of `tenant` (`snapshots --tenant T --json`), oldest first.
#[track_caller]
pub fn snaps_of(tv: &Tvault, tenant: &str) -> Vec<String> {
    let v = tv.json(&["snapshots", "--tenant", tenant]);
    let list = v
        .as_array()
        .unwrap_or_else(|| panic!("snapshots --tenant {tenant} --json is not an array: {v}"));
    for s in list {
        assert_eq!(s["tenant"], tenant, "snapshots --tenant {tenant}: {v:#}");
    }
    snapshot_ids(list)
}

/// The whole `snapshots --json` listing, as sorted JSON texts.
pub fn listing(tv: &Tvault) -> Vec<String> {
    let mut v: Vec<String> = tv.snapshots().iter().map(Value::to_string).collect();
    v.sort();
    v
}

/// Relative path -> size of every file under `root`.
pub fn files(root: &Path) -> BTreeMap<PathBuf, u64> {
    walk(root)
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::metadata(root.join(&p)).ok()?;
            m.is_file().then_some((p, m.len()))
        })
        .collect()
}

/// Every object of the store except the audit anchor (rewritten by every operation).
pub fn store_objects(vault: &Path) -> BTreeMap<PathBuf, u64> {
    let mut m = files(&vault.join("store"));
    // The audit anchors and the store lease coordinate; they hold no tenant data.
    m.retain(|p, _| !p.starts_with("audit") && !p.to_string_lossy().starts_with("lease."));
    m
}

pub fn total(m: &BTreeMap<PathBuf, u64>) -> u64 {
    m.values().sum()
}

/// The store directory of `tenant`: the one under `store/tenants/` whose `tenant.json` has
/// `"id": tenant`.
#[track_caller]
pub fn tenant_dir(vault: &Path, tenant: &str) -> PathBuf {
    let root = vault.join("store").join("tenants");
    let found: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|d| {
            std::fs::read(d.join("tenant.json"))
                .ok()
                .and_then(|b| store_json(&b))
                .is_some_and(|v| v["id"] == tenant)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one tenant dir with id {tenant:?} expected under {}: {found:?}",
        root.display()
    );
    found.into_iter().next().unwrap()
}

/// `policy set TENANT <rules>` (exit 0 required).
#[track_caller]
pub fn policy(tv: &Tvault, tenant: &str, rules: &[&str]) {
    let mut a = vec!["policy", "set", tenant];
    a.extend_from_slice(rules);
    tv.ok(&a);
}

/// `retention apply <extra> --json`.
#[track_caller]
pub fn apply(tv: &Tvault, extra: &[&str]) -> Value {
    let mut a = vec!["retention", "apply"];
    a.extend_from_slice(extra);
    let v = tv.json(&a);
    assert_eq!(
        v["dry_run"],
        extra.contains(&"--dry-run"),
        "retention apply {extra:?}: dry_run: {v:#}"
    );
    v
}

/// The `tenants[]` entry of `tenant` in a `retention apply` report.
#[track_caller]
pub fn report_of<'a>(report: &'a Value, tenant: &str) -> &'a Value {
    report["tenants"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["tenant"] == tenant))
        .unwrap_or_else(|| panic!("retention report has no tenant {tenant:?}: {report:#}"))
}

/// One decision: snapshot, keep, reasons.
#[derive(Debug, Clone)]
pub struct Decision {
    pub snapshot: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn says(&self, word: &str) -> bool {
        self.reasons.iter().any(|r| r.contains(word))
    }
}

/// `tenant`'s decisions, oldest first; every snapshot of the tenant must have exactly one.
#[track_caller]
pub fn decisions(report: &Value, tenant: &str) -> Vec<Decision> {
    let t = report_of(report, tenant);
    let mut d: Vec<Decision> = t["decisions"]
        .as_array()
        .unwrap_or_else(|| panic!("no decisions array for {tenant}: {t:#}"))
        .iter()
        .map(|x| Decision {
            snapshot: x["snapshot"].as_str().expect("decision snapshot").into(),
            keep: x["keep"]
                .as_bool()
                .unwrap_or_else(|| panic!("decision keep is not a bool: {x}")),
            reasons: x["reasons"]
                .as_array()
                .unwrap_or_else(|| panic!("decision reasons is not an array: {x}"))
                .iter()
                .map(|r| r.as_str().expect("reason string").to_string())
                .collect(),
        })
        .collect();
    d.sort_by(|a, b| a.snapshot.cmp(&b.snapshot));
    d
}

/// Asserts the decisions are for exactly `snaps` and keep exactly `kept` of them.
#[track_caller]
pub fn assert_keeps(d: &[Decision], snaps: &[String], kept: &[String], what: &str) {
    let ids: Vec<&String> = d.iter().map(|x| &x.snapshot).collect();
    assert_eq!(ids, snaps.iter().collect::<Vec<_>>(), "{what}: {d:#?}");
    let k: Vec<String> = d
        .iter()
        .filter(|x| x.keep)
        .map(|x| x.snapshot.clone())
        .collect();
    assert_eq!(k, kept, "{what}: kept snapshots: {d:#?}");
}

/// `verify --json [args]` must say ok, with no problem and at least one snapshot checked;
/// with `--identity`, every block must have been decrypted.
#[track_caller]
pub fn verify_ok(tv: &Tvault, args: &[&str]) -> Value {
    let mut a = vec!["verify"];
    a.extend_from_slice(args);
    let v = tv.json(&a);
    assert_eq!(v["ok"], true, "verify {args:?}: {v:#}");
    let checked = v["checked"].as_array().expect("verify checked array");
    assert!(
        !checked.is_empty(),
        "verify {args:?} checked nothing: {v:#}"
    );
    for c in checked {
        assert_eq!(
            c["problems"].as_array().map(Vec::len),
            Some(0),
            "verify {args:?}: {v:#}"
        );
        if args.contains(&"--identity") {
            assert_eq!(c["decrypted"], true, "verify {args:?}: {v:#}");
        }
    }
    v
}

/// Restore `snap` of `tenant` over damaged live rows and compare with `expected`.
#[track_caller]
pub fn restore_exact(env: &Env, key: &Key, tenant: &str, snap: &str, expected: &[Vec<String>]) {
    mangle(env, tenant);
    let mut c = env.db.client();
    assert_ne!(rows_of(&mut c, tenant), expected, "mangle changed nothing");
    env.tv.restore(tenant, snap, key, None);
    for (i, t) in TABLES.iter().enumerate() {
        assert_rows_eq(
            &format!("{t} of {tenant} restored from {snap}"),
            &expected[i],
            &rows_of(&mut c, tenant)[i],
        );
    }
}

/// An RFC 3339 instant `interval` (PostgreSQL interval text) from now, in UTC.
pub fn now_plus(env: &Env, interval: &str) -> String {
    env.db
        .scalar(&format!(
            "to_char((now() + interval '{interval}') AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        ))
        .expect("now_plus")
}

#[test]
fn keep_last_deletes_the_rest_and_the_kept_restore_exactly() {
    let (env, key) = Env::with_tenants("retention_keep_last", &FIX, &[A, B]);
    let mut c = env.db.client();
    let (mut snaps, mut at) = (Vec::new(), Vec::new());
    for i in 0..5 {
        // Both tenants change: a cycle that finds a tenant unchanged makes no snapshot of it.
        change(&env, A, i);
        change(&env, B, i);
        snaps.push(snapshot_id(&backup(&env)));
        at.push(rows_of(&mut c, A));
    }
    assert_eq!(snaps_of(&env.tv, A), snaps, "A's snapshots, in time order");
    assert_eq!(snaps_of(&env.tv, B), snaps, "B's snapshots");
    let newest: Vec<String> = snaps[3..].to_vec();

    policy(&env.tv, A, &["--keep-last", "2"]);
    let objects = store_objects(&env.tv.vault);
    let before = listing(&env.tv);

    // Dry run: the decisions, and nothing deleted.
    let dry = apply(&env.tv, &["--dry-run"]);
    let d = decisions(&dry, A);
    assert_keeps(&d, &snaps, &newest, "dry run, A (keep-last 2)");
    for x in &d {
        assert!(
            !x.keep || x.says("keep-last"),
            "kept without keep-last reason: {x:?}"
        );
        assert!(!x.reasons.is_empty(), "decision without reason: {x:?}");
    }
    if let Some(bd) = dry["tenants"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["tenant"] == B))
    {
        assert!(
            decisions(&dry, B).iter().all(|x| x.keep),
            "B has no policy: {bd:#}"
        );
    }
    assert_eq!(listing(&env.tv), before, "a dry run changed the listing");
    assert_eq!(
        store_objects(&env.tv.vault),
        objects,
        "a dry run changed the store"
    );

    // Real run.
    let real = apply(&env.tv, &[]);
    assert_keeps(&decisions(&real, A), &snaps, &newest, "apply, A");
    assert_eq!(report_of(&real, A)["deleted_snapshots"], 3, "{real:#}");
    assert!(
        real["objects_deleted"].as_u64().unwrap_or(0) > 0
            && real["bytes_freed"].as_u64().unwrap_or(0) > 0,
        "apply deleted 3 snapshots but reports no objects/bytes: {real:#}"
    );
    assert_eq!(snaps_of(&env.tv, A), newest, "A after keep-last 2");
    assert_eq!(snaps_of(&env.tv, B), snaps, "B (no policy) lost snapshots");
    assert!(
        total(&store_objects(&env.tv.vault)) < total(&objects),
        "the store did not shrink"
    );

    // What was kept restores exactly as it was at its backup time; the rest is gone.
    for i in [3, 4] {
        restore_exact(&env, &key, A, &snaps[i], &at[i]);
    }
    let gone = env.tv.run(&[
        "restore",
        A,
        "--snapshot",
        &snaps[0],
        "--identity",
        key.identity_str(),
    ]);
    gone.assert_code(4, "restore of a snapshot retention deleted");
    verify_ok(&env.tv, &[]);
    verify_ok(&env.tv, &["--tenant", A, "--identity", key.identity_str()]);
    verify_ok(&env.tv, &["--tenant", B, "--identity", key.identity_str()]);

    // Applying again deletes nothing more.
    let again = apply(&env.tv, &[]);
    assert_eq!(report_of(&again, A)["deleted_snapshots"], 0, "{again:#}");
    assert_eq!(snaps_of(&env.tv, A), newest);
}
