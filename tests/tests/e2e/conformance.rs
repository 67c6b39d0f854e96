//! One suite, every store: backup, restore, record restore, retention, forget, erase and verify
//! behave the same on the local filesystem vault and on an S3 vault (`--vault s3://bucket/vault`,
//! over HTTP to the test server). Each test body runs twice, once per backend (see the macro at
//! the end); S3-only behaviour (object lock, faults) is in s3.rs.

use super::retention::{rows_of, A, B, FIX, TABLES};
use std::collections::BTreeSet;
use tests::*;

/// Tenant directories of the store (`tenants/<dir>/...`).
fn tenant_dirs(env: &Env) -> BTreeSet<String> {
    env.objects()
        .keys()
        .filter_map(|k| {
            k.strip_prefix("tenants/")?
                .split('/')
                .next()
                .map(String::from)
        })
        .collect()
}

fn tenant_entry<'a>(report: &'a Value, tenant: &str) -> &'a Value {
    report["tenants"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["tenant"] == tenant))
        .unwrap_or_else(|| panic!("no tenant {tenant} in {report:#}"))
}

fn backup_restore_isolation(backend: Backend, name: &str) {
    let (env, key) = Env::with_tenants_on(name, &FIX, &[A, B], backend);
    let mut c = env.db.client();
    let a0 = rows_of(&mut c, A);
    let snap = env.tv.backup_all();
    // Unchanged data deduplicates: a second snapshot of the same rows writes no new block.
    let v = env.tv.json(&["backup", "--all"]);
    for t in [A, B] {
        assert_eq!(tenant_entry(&v, t)["blocks_new"], 0, "{backend:?}: {v:#}");
    }
    env.db.exec(&format!(
        "UPDATE customers SET name = 'damaged' WHERE tenant_id = '{A}';
         DELETE FROM notes WHERE tenant_id = '{A}' AND id % 2 = 0;
         UPDATE customers SET name = 'changed later' WHERE tenant_id = '{B}' AND id = 1;"
    ));
    let b1 = rows_of(&mut c, B);
    env.tv.restore(A, &snap, &key, None);
    assert_eq!(rows_of(&mut c, A), a0, "{backend:?}: A restored exactly");
    assert_eq!(
        rows_of(&mut c, B),
        b1,
        "{backend:?}: B untouched by A's restore"
    );

    // B changed since; a differential restore rewrote only A's changed rows, so A's new
    // snapshot holds the same rows (new blocks only where updated rows moved on disk).
    let v = env.tv.json(&["backup", "--all"]);
    assert_eq!(tenant_entry(&v, A)["rows"], 600, "{backend:?}: {v:#}");
    assert!(
        tenant_entry(&v, B)["blocks_new"].as_u64().unwrap_or(0) > 0,
        "{backend:?}: B changed, so it has new blocks: {v:#}"
    );

    // Restore into another database.
    let scratch = env.scratch_db(&format!("{name}_target"), &["retention_schema.sql"]);
    env.tv.restore(B, "latest", &key, Some(&scratch.url));
    let mut sc = scratch.client();
    assert_eq!(
        rows_of(&mut sc, B),
        b1,
        "{backend:?}: B restored into --target"
    );
    assert_eq!(
        rows_of(&mut sc, A),
        vec![Vec::<String>::new(); 2],
        "only B in the target"
    );
}

fn record_restore(backend: Backend, name: &str) {
    let (env, key) = Env::with_tenants_on(name, &FIX, &[A, B], backend);
    let mut c = env.db.client();
    let (a0, b0) = (rows_of(&mut c, A), rows_of(&mut c, B));
    let snap = env.tv.backup_all();
    env.db.exec(&format!(
        "DELETE FROM customers WHERE tenant_id = '{A}' AND id = 7"
    ));
    let found = env
        .tv
        .json(&["find", A, "--table", "public.customers", "--key", "id=7"]);
    let present: Vec<bool> = found
        .as_array()
        .unwrap_or_else(|| panic!("find --json: {found}"))
        .iter()
        .map(|s| s["present"] == true)
        .collect();
    assert_eq!(present, vec![true], "{backend:?}: {found:#}");
    let r = env.tv.json(&[
        "restore-records",
        A,
        "--table",
        "public.customers",
        "--key",
        "id=7",
        "--snapshot",
        &snap,
        "--identity",
        key.identity_str(),
    ]);
    assert_eq!(r["dry_run"], false, "{r:#}");
    assert_eq!(
        rows_of(&mut c, A),
        a0,
        "{backend:?}: the deleted row is back, exactly"
    );
    assert_eq!(rows_of(&mut c, B), b0, "{backend:?}: B untouched");
}

fn retention_keep_last(backend: Backend, name: &str) {
    let (env, key) = Env::with_tenants_on(name, &FIX, &[A, B], backend);
    let mut c = env.db.client();
    let mut snaps = vec![];
    for step in 0..3 {
        env.db.exec(&format!(
            "UPDATE customers SET name = 'step {step} ' || id WHERE id <= 5"
        ));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        snaps.push(env.tv.backup_all());
    }
    let (a_last, b_last) = (rows_of(&mut c, A), rows_of(&mut c, B));
    let manifests = |env: &Env| {
        env.objects()
            .keys()
            .filter(|k| k.contains("/manifests/") && k.ends_with(".json"))
            .count()
    };
    assert_eq!(manifests(&env), 6, "{backend:?}: 3 snapshots x 2 tenants");
    env.tv.ok(&["policy", "set", A, "--keep-last", "1"]);
    let v = env.tv.json(&["retention", "apply"]);
    assert_eq!(v["deferred"], Value::Array(vec![]), "{v:#}");
    let listed = |t: &str| {
        let v = env.tv.json(&["snapshots", "--tenant", t]);
        snapshot_ids(v.as_array().unwrap())
    };
    assert_eq!(
        listed(A),
        vec![snaps[2].clone()],
        "{backend:?}: A keeps its newest"
    );
    assert_eq!(listed(B).len(), 3, "{backend:?}: B's policy is its own");
    assert_eq!(
        manifests(&env),
        4,
        "{backend:?}: A's two old manifests are gone"
    );
    env.db.exec("UPDATE customers SET name = 'damaged'");
    env.tv.restore(A, "latest", &key, None);
    env.tv.restore(B, "latest", &key, None);
    assert_eq!(rows_of(&mut c, A), a_last, "{backend:?}");
    assert_eq!(rows_of(&mut c, B), b_last, "{backend:?}");
}

fn forget(backend: Backend, name: &str) {
    let (env, key) = Env::with_tenants_on(name, &FIX, &[A, B], backend);
    let mut c = env.db.client();
    let b0 = rows_of(&mut c, B);
    env.tv.backup_all();
    assert_eq!(tenant_dirs(&env).len(), 2);
    let cert = env.tv.json(&["forget-tenant", A, "--yes"]);
    assert_eq!(cert["tenant"], A, "{cert:#}");
    assert_eq!(
        cert["deferred"],
        Value::Array(vec![]),
        "no lock here: {cert:#}"
    );
    assert_eq!(
        tenant_dirs(&env).len(),
        1,
        "{backend:?}: A's directory is gone"
    );
    env.tv
        .run(&["snapshots", "--tenant", A, "--json"])
        .assert_code(4, "snapshots of a forgotten tenant");
    env.db
        .exec(&format!("DELETE FROM notes WHERE tenant_id = '{B}'"));
    env.tv.restore(B, "latest", &key, None);
    assert_eq!(
        rows_of(&mut c, B),
        b0,
        "{backend:?}: B restores after A is forgotten"
    );
}

fn erase_person(backend: Backend, name: &str) {
    let (env, key) = Env::with_tenants_on(name, &FIX, &[A, B], backend);
    let mut c = env.db.client();
    env.tv.backup_all();
    env.tv.json(&[
        "erase",
        A,
        "--table",
        "public.customers",
        "--key",
        "id=5",
        "--identity",
        key.identity_str(),
    ]);
    let found = env
        .tv
        .json(&["find", A, "--table", "public.customers", "--key", "id=5"]);
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["present"] != true),
        "{backend:?}: erased from every snapshot: {found:#}"
    );
    let expected: Vec<Vec<String>> = TABLES
        .iter()
        .map(|t| {
            let extra = if t.ends_with("customers") {
                " AND r_.id <> 5"
            } else {
                ""
            };
            rows_exact(&mut c, t, &format!("r_.tenant_id = $1{extra}"), Some(A))
        })
        .collect();
    env.tv.restore(A, "latest", &key, None);
    assert_eq!(
        rows_of(&mut c, A),
        expected,
        "{backend:?}: all but the erased row"
    );
    env.tv
        .json(&["verify", "--tenant", A, "--identity", key.identity_str()]);
}

fn verify_detects_damage(backend: Backend, name: &str) {
    let (env, key) = Env::with_tenants_on(name, &FIX, &[A, B], backend);
    let mut c = env.db.client();
    env.tv.backup_all();
    env.tv.json(&["verify"]);
    env.tv
        .json(&["verify", "--tenant", A, "--identity", key.identity_str()]);
    let packs: Vec<String> = env
        .objects()
        .keys()
        .filter(|k| k.contains("/packs/"))
        .cloned()
        .collect();
    assert_eq!(
        packs.len(),
        2,
        "{backend:?}: one pack per tenant: {packs:?}"
    );
    let mut bytes = env.read_object(&packs[0]);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    env.write_object(&packs[0], bytes);
    let out = env.tv.run(&["verify", "--json"]);
    out.assert_code(3, &format!("{backend:?}: verify after a flipped byte"));
    // A restore of either tenant either succeeds exactly or fails with the database unchanged.
    let before = (rows_of(&mut c, A), rows_of(&mut c, B));
    for t in [A, B] {
        let out = env.tv.run(&[
            "restore",
            t,
            "--snapshot",
            "latest",
            "--identity",
            key.identity_str(),
        ]);
        assert!(out.code == 0 || out.code == 3, "{backend:?}: {out:?}");
    }
    assert_eq!(
        (rows_of(&mut c, A), rows_of(&mut c, B)),
        before,
        "{backend:?}"
    );
}

/// A sealed and a live export of A hold exactly A's rows and none of B's, on either store; an
/// export uploaded to a bucket of the tenant's opens the same; every export is audited.
fn export_round_trip(backend: Backend, name: &str) {
    use super::export::{export, open};
    let (env, key) = Env::with_tenants_on(name, &FIX, &[A, B], backend);
    let mut c = env.db.client();
    env.tv.backup_all();
    let mut count = |t: &str, tenant: &str| c_count(&mut c, t, tenant);
    let want: Vec<i64> = TABLES.iter().map(|t| count(t, A)).collect();
    let (_, sealed) = export(&env, A, &[], "sealed.tvx");
    let (_, live) = export(&env, A, &["--live", "--format", "csv"], "live.tvx");
    // Straight into a bucket of the tenant's, with the tenant's credentials.
    let bucket = new_bucket(&format!("{name}_dest"), BucketKind::Plain);
    let url = format!("s3://{bucket}/exports/acme.tvx");
    let creds = s3_env(s3_endpoint());
    let cred = |k: &str| {
        creds
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .expect(k)
    };
    let out = env
        .tv
        .command(&[
            "export",
            A,
            "--to",
            &url,
            "--to-endpoint",
            s3_endpoint(),
            "--json",
        ])
        .env("TVAULT_EXPORT_ACCESS_KEY_ID", cred("AWS_ACCESS_KEY_ID"))
        .env(
            "TVAULT_EXPORT_SECRET_ACCESS_KEY",
            cred("AWS_SECRET_ACCESS_KEY"),
        )
        .output()
        .expect("tvault runs");
    assert!(
        out.status.success(),
        "{backend:?}: upload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uploaded = env.path("uploaded.tvx");
    std::fs::write(&uploaded, s3_admin().get(&bucket, "exports/acme.tvx")).expect("write");
    for (file, dir) in [
        (&sealed, "sealed"),
        (&live, "live"),
        (&uploaded, "uploaded"),
    ] {
        let (report, dir) = open(&env, file, &key, dir, &[]);
        assert_eq!(report["tenant"], A, "{backend:?}: {report:#}");
        let tables = report["tables"].as_array().expect("tables");
        let got: Vec<i64> = TABLES
            .iter()
            .map(|t| {
                tables
                    .iter()
                    .find(|x| x["table"] == *t)
                    .map_or(-1, |x| x["rows"].as_i64().unwrap_or(-1))
            })
            .collect();
        assert_eq!(got, want, "{backend:?}: rows of {}", dir.display());
        for t in tables {
            let text =
                std::fs::read_to_string(dir.join(t["file"].as_str().expect("file"))).expect("data");
            assert!(!text.contains(B), "{backend:?}: B's rows in A's export");
        }
    }
    let audit = env.tv.run(&["audit", "--json"]);
    audit.assert_code(0, "audit");
    let exports = audit.stdout.matches("\"export\"").count();
    assert!(
        exports >= 3,
        "{backend:?}: every export is audited: {}",
        audit.stdout
    );
}

fn c_count(c: &mut Client, table: &str, tenant: &str) -> i64 {
    c.query_one(
        &format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"),
        &[&tenant],
    )
    .expect("count")
    .get(0)
}

conformance! {
    backup_restore_isolation,
    export_round_trip,
    record_restore,
    retention_keep_last,
    forget,
    erase_person,
    verify_detects_damage,
}
