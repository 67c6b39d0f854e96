//! What only an S3 vault does: object lock (retention dates from each tenant's min-age, legal
//! holds, deletions that wait for a lock and are retried), versions (erasure deletes the old
//! ones), `doctor`, multipart uploads, and surviving a store that drops connections and answers
//! 503. The behaviour every store shares is in conformance.rs.

use super::retention::{rows_of, A, B, FIX};
use std::time::{SystemTime, UNIX_EPOCH};
use tests::*;

const DAY: i64 = 86_400;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn bucket(env: &Env) -> &str {
    env.bucket.as_deref().expect("an S3 env")
}

/// Bucket key prefix of `tenant`'s directory (`vault/tenants/<dir>/`).
fn tenant_prefix(env: &Env, tenant: &str) -> String {
    format!("{S3_PREFIX}/{}", env.tenant_dir(tenant))
}

fn is_archive(key: &str) -> bool {
    key.contains("/packs/") || key.contains("/manifests/")
}

/// Current keys under `prefix`, split into (archive objects, the rest).
fn split_keys(env: &Env, prefix: &str) -> (Vec<String>, Vec<String>) {
    s3_admin()
        .list(bucket(env), prefix)
        .into_iter()
        .map(|(k, _)| k)
        .partition(|k| is_archive(k))
}

/// Appends `text` to the vault's config.toml.
fn configure(env: &Env, text: &str) {
    let path = env.tv.vault.join("config.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(text);
    std::fs::write(&path, config).unwrap();
}

/// Lets every version under `prefix` run out of retention (as time passing would).
fn expire_locks(env: &Env, prefix: &str) {
    for v in s3_admin().versions(bucket(env), prefix) {
        if !v.delete_marker && is_archive(&v.key) {
            s3_admin().set_retention(bucket(env), &v.key, &v.version, now() - 60);
        }
    }
}

#[test]
fn archives_are_locked_for_the_min_age_and_holds_become_legal_holds() {
    let (env, key) =
        Env::with_tenants_on("s3_lock", &FIX, &[A, B], Backend::S3(BucketKind::Locked));
    let mut c = env.db.client();
    env.tv.ok(&["policy", "set", A, "--min-age", "3d"]);
    let t0 = now();
    env.tv.backup_all();

    let (a_prefix, b_prefix) = (tenant_prefix(&env, A), tenant_prefix(&env, B));
    let (archive, rest) = split_keys(&env, &a_prefix);
    assert_eq!(archive.len(), 2, "pack, manifest: {archive:?}");
    for k in &archive {
        let l = s3_admin().lock(bucket(&env), k, None);
        assert_eq!(l.mode.as_deref(), Some("GOVERNANCE"), "{k}: {l:?}");
        let until = l
            .until
            .unwrap_or_else(|| panic!("{k} has no retention date"));
        assert!(
            until >= t0 + 3 * DAY && until <= t0 + 4 * DAY + 60,
            "{k}: retained until {until}, want snapshot + 3 days (rounded up to midnight)"
        );
        assert!(!l.legal_hold, "{k}");
    }
    assert!(rest.iter().any(|k| k.contains("/keys/")), "{rest:?}");
    for k in &rest {
        let l = s3_admin().lock(bucket(&env), k, None);
        assert_eq!((l.mode, l.until), (None, None), "{k} must never be locked");
    }
    // B has no min-age: no retention date.
    for k in split_keys(&env, &b_prefix).0 {
        assert_eq!(s3_admin().lock(bucket(&env), &k, None).until, None, "{k}");
    }

    // A legal hold is S3 legal hold on every archive version, and is lifted on release.
    env.tv.ok(&["hold", "set", A, "--reason", "case 42"]);
    for k in &archive {
        assert!(s3_admin().lock(bucket(&env), k, None).legal_hold, "{k}");
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.db.exec(&format!(
        "UPDATE customers SET name = 'new' WHERE tenant_id = '{A}' AND id = 1"
    ));
    env.tv.backup_all();
    let (archive2, _) = split_keys(&env, &a_prefix);
    assert_eq!(archive2.len(), 4, "{archive2:?}");
    for k in &archive2 {
        assert!(
            s3_admin().lock(bucket(&env), k, None).legal_hold,
            "written while held: {k}"
        );
    }
    env.tv
        .run(&["forget-tenant", A, "--yes"])
        .assert_code(1, "forget under a legal hold");
    env.tv.ok(&["hold", "release", A]);
    for k in &archive2 {
        assert!(!s3_admin().lock(bucket(&env), k, None).legal_hold, "{k}");
    }

    // Forget: the keys go at once (every version); the locked archives wait, are reported,
    // and a later retention run deletes them once their lock has run out.
    let b0 = rows_of(&mut c, B);
    let cert = env.tv.json(&["forget-tenant", A, "--yes"]);
    let deferred = cert["deferred"].as_array().unwrap();
    assert_eq!(deferred.len(), 4, "{cert:#}");
    assert!(deferred.iter().all(|d| d["until"].is_string()), "{cert:#}");
    let versions = s3_admin().versions(bucket(&env), &a_prefix);
    assert!(
        versions
            .iter()
            .all(|v| is_archive(&v.key) && !v.delete_marker),
        "only the locked archive versions remain: {versions:?}"
    );
    let r = env.tv.json(&["retention", "apply"]);
    assert_eq!(r["deferred"].as_array().unwrap().len(), 4, "{r:#}");
    assert_eq!(r["deferred_deleted"], 0, "{r:#}");
    let doctor = env.tv.json(&["doctor"]);
    assert_eq!(doctor["deferred_deletions"].as_array().unwrap().len(), 4);

    expire_locks(&env, &a_prefix);
    let r = env.tv.json(&["retention", "apply"]);
    assert_eq!(r["deferred_deleted"], 4, "{r:#}");
    assert_eq!(r["deferred"], Value::Array(vec![]), "{r:#}");
    assert!(s3_admin().versions(bucket(&env), &a_prefix).is_empty());

    env.db
        .exec(&format!("DELETE FROM notes WHERE tenant_id = '{B}'"));
    env.tv.restore(B, "latest", &key, None);
    assert_eq!(rows_of(&mut c, B), b0);
}

#[test]
fn compliance_mode_is_configurable_and_doctor_explains_it() {
    let (env, _key) =
        Env::with_tenants_on("s3_compliance", &FIX, &[A], Backend::S3(BucketKind::Locked));
    configure(&env, "\n[s3]\nlock_mode = \"compliance\"\n");
    env.tv.ok(&["policy", "set", A, "--min-age", "1d"]);
    env.tv.backup_all();
    let (archive, _) = split_keys(&env, &tenant_prefix(&env, A));
    for k in &archive {
        let l = s3_admin().lock(bucket(&env), k, None);
        assert_eq!(l.mode.as_deref(), Some("COMPLIANCE"), "{k}: {l:?}");
    }
    let d = env.tv.json(&["doctor"]);
    assert_eq!(d["kind"], "s3", "{d:#}");
    assert_eq!(d["bucket"]["versioning"], "Enabled", "{d:#}");
    assert_eq!(d["bucket"]["object_lock"], true, "{d:#}");
    assert_eq!(d["lock_mode"], "compliance", "{d:#}");
    assert_eq!(d["tenants_with_min_age"], 1, "{d:#}");
}

#[test]
fn doctor_says_what_a_bucket_configuration_means() {
    let (plain, _) =
        Env::with_tenants_on("s3_doc_plain", &FIX, &[A], Backend::S3(BucketKind::Plain));
    let d = plain.tv.json(&["doctor"]);
    assert_eq!(d["bucket"]["versioning"], "Off", "{d:#}");
    assert_eq!(d["bucket"]["object_lock"], false, "{d:#}");
    assert_eq!(d["lock_mode"], Value::Null, "{d:#}");
    let text = d["findings"].to_string();
    assert!(text.contains("versioning is off"), "{d:#}");
    assert!(text.contains("object lock is not enabled"), "{d:#}");

    // A default retention would lock wrapped keys too: a problem (exit 1).
    // Checked before `init`, as an operator would before the first backup.
    let locked = Env::on("s3_doc_default", &FIX, Backend::S3(BucketKind::Locked));
    s3_admin().set_default_retention(bucket(&locked), 7);
    let out = locked.tv.run(&["doctor", "--json"]);
    out.assert_code(1, "doctor with a default retention");
    let d: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(
        d["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["level"] == "problem"
                && f["message"].as_str().unwrap().contains("default retention")),
        "{d:#}"
    );

    let local = Env::new("s3_doc_local", &FIX);
    local.tv.init(&local.db.url, &[]);
    let d = local.tv.json(&["doctor"]);
    assert_eq!(d["kind"], "local", "{d:#}");
}

#[test]
fn pruning_a_locked_snapshot_is_deferred_then_retried() {
    let (env, key) =
        Env::with_tenants_on("s3_prune_lock", &FIX, &[A], Backend::S3(BucketKind::Locked));
    let mut c = env.db.client();
    env.tv.ok(&["policy", "set", A, "--min-age", "1d"]);
    let s1 = env.tv.backup_all();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.db.exec(&format!(
        "UPDATE customers SET name = 'v2' WHERE tenant_id = '{A}'"
    ));
    let s2 = env.tv.backup_all();
    let a2 = rows_of(&mut c, A);
    // The policy loses its min-age, but the objects were locked under the old one.
    env.tv.ok(&["policy", "set", A, "--keep-last", "1"]);
    let r = env.tv.json(&["retention", "apply"]);
    let deferred: Vec<String> = r["deferred"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["object"].as_str().unwrap().to_string())
        .collect();
    assert!(
        deferred.iter().any(|o| o.ends_with(&format!("{s1}.json"))),
        "the old manifest is locked: {r:#}"
    );
    let listed = env.tv.json(&["snapshots", "--tenant", A]);
    assert_eq!(snapshot_ids(listed.as_array().unwrap()), vec![s2.clone()]);
    let prefix = tenant_prefix(&env, A);
    assert!(
        s3_admin()
            .list(bucket(&env), &prefix)
            .iter()
            .any(|(k, _)| k.ends_with(&format!("{s1}.json"))),
        "still in the bucket until its lock ends"
    );
    expire_locks(&env, &prefix);
    let r = env.tv.json(&["retention", "apply"]);
    assert_eq!(
        r["deferred_deleted"].as_u64(),
        Some(deferred.len() as u64),
        "{r:#}"
    );
    // (The snapshot's pack stays: the kept snapshot still uses its unchanged blocks.)
    let old_manifests = |env: &Env| {
        s3_admin()
            .list(bucket(env), &prefix)
            .into_iter()
            .filter(|(k, _)| k.contains("/manifests/") && k.contains(&s1))
            .count()
    };
    assert_eq!(old_manifests(&env), 0);
    env.db.exec("DELETE FROM notes");
    env.tv.restore(A, &s2, &key, None);
    assert_eq!(rows_of(&mut c, A), a2);
}

#[test]
fn erasure_deletes_the_old_versions_or_waits_for_their_lock() {
    for kind in [BucketKind::Versioned, BucketKind::Locked] {
        let name = format!("s3_erase_{kind:?}");
        let (env, key) = Env::with_tenants_on(&name, &FIX, &[A, B], Backend::S3(kind));
        if kind == BucketKind::Locked {
            env.tv.ok(&["policy", "set", A, "--min-age", "1d"]);
        }
        env.tv.backup_all();
        let prefix = tenant_prefix(&env, A);
        let r = env.tv.json(&[
            "erase",
            A,
            "--table",
            "public.customers",
            "--key",
            "id=5",
            "--identity",
            key.identity_str(),
        ]);
        let deferred = r["deferred"].as_array().unwrap();
        let current: Vec<String> = s3_admin()
            .list(bucket(&env), &prefix)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let old = |env: &Env| {
            s3_admin()
                .versions(bucket(env), &prefix)
                .into_iter()
                .filter(|v| is_archive(&v.key))
                .count()
                - current.iter().filter(|k| is_archive(k)).count()
        };
        match kind {
            BucketKind::Versioned => {
                assert!(deferred.is_empty(), "{r:#}");
                assert_eq!(old(&env), 0, "no version keeps the erased row");
            }
            _ => {
                assert!(!deferred.is_empty(), "{kind:?}: {r:#}");
                assert_eq!(old(&env), deferred.len(), "locked old versions stay");
                expire_locks(&env, &prefix);
                let a = env.tv.json(&["retention", "apply"]);
                assert_eq!(
                    a["deferred_deleted"].as_u64(),
                    Some(deferred.len() as u64),
                    "{a:#}"
                );
                assert_eq!(old(&env), 0);
            }
        }
        env.tv
            .json(&["verify", "--tenant", A, "--identity", key.identity_str()]);
    }
}

#[test]
fn large_packs_go_up_in_parts() {
    let (env, key) = Env::with_tenants_on(
        "s3_multipart",
        &FIX,
        &[A],
        Backend::S3(BucketKind::Versioned),
    );
    // About 20 MiB of hex: the pack (compressed about 2:1) is above the 8 MiB part size.
    env.db.exec(&format!(
        "INSERT INTO notes (tenant_id, id, body)
         SELECT '{A}', 1000 + i, (SELECT string_agg(md5(random()::text || i || j), '')
                                  FROM generate_series(1, 64) j)
         FROM generate_series(1, 10000) i"
    ));
    let mut c = env.db.client();
    let a0 = rows_of(&mut c, A);
    let snap = env.tv.backup_all();
    let packs: Vec<(String, i64)> = s3_admin()
        .list(bucket(&env), &tenant_prefix(&env, A))
        .into_iter()
        .filter(|(k, _)| k.contains("/packs/"))
        .collect();
    let big: Vec<&(String, i64)> = packs.iter().filter(|(_, n)| *n > 8 << 20).collect();
    assert!(!big.is_empty(), "a pack above 8 MiB: {packs:?}");
    for (k, _) in big {
        let etag = s3_admin().etag(bucket(&env), k);
        assert!(
            etag.contains('-'),
            "{k} was uploaded in parts (etag {etag})"
        );
    }
    env.db.exec("DELETE FROM notes");
    env.tv.restore(A, &snap, &key, None);
    assert_eq!(rows_of(&mut c, A), a0);
}

#[test]
fn dropped_connections_and_503s_change_nothing() {
    let (mut env, key) =
        Env::with_tenants_on("s3_faults", &FIX, &[A, B], Backend::S3(BucketKind::Locked));
    env.tv.ok(&["policy", "set", A, "--min-age", "1d"]);
    let proxy = FaultProxy::start(s3_endpoint());
    env.tv
        .envs
        .push(("AWS_ENDPOINT_URL".into(), proxy.endpoint()));
    proxy.set_faults_per_mille(150);
    let mut c = env.db.client();
    let (a0, b0) = (rows_of(&mut c, A), rows_of(&mut c, B));
    let s1 = env.tv.backup_all();
    env.tv
        .json(&["verify", "--tenant", A, "--identity", key.identity_str()]);
    let scratch = env.scratch_db("s3_faults_target", &["retention_schema.sql"]);
    env.tv.restore(A, &s1, &key, Some(&scratch.url));
    env.tv.restore(B, &s1, &key, Some(&scratch.url));
    let mut sc = scratch.client();
    assert_eq!(
        (rows_of(&mut sc, A), rows_of(&mut sc, B)),
        (a0.clone(), b0.clone())
    );
    env.db.exec(&format!(
        "DELETE FROM customers WHERE tenant_id = '{A}' AND id = 9"
    ));
    env.tv.json(&[
        "restore-records",
        A,
        "--table",
        "public.customers",
        "--key",
        "id=9",
        "--snapshot",
        &s1,
        "--identity",
        key.identity_str(),
    ]);
    assert_eq!(rows_of(&mut c, A), a0);
    let stats = proxy.stats();
    assert!(
        stats.dropped > 0 && stats.unavailable > 0,
        "the proxy must actually have injected faults: {stats:?}"
    );

    // A store that fails every request: the backup fails clearly and leaves no snapshot.
    configure(&env, "\n[s3]\nmax_retries = 2\nretry_timeout_secs = 5\n");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.db.exec(&format!(
        "UPDATE customers SET name = 'later' WHERE tenant_id = '{B}'"
    ));
    proxy.set_faults_per_mille(1000);
    let out = env.tv.run(&["backup", "--all"]);
    out.assert_code(1, "backup against a store that fails every request");
    assert!(
        out.stderr.contains("S3") || out.stderr.contains("object store"),
        "the error names the store: {}",
        out.stderr
    );
    proxy.set_faults_per_mille(0);
    let listed = env.tv.json(&["snapshots"]);
    assert_eq!(
        snapshot_ids(listed.as_array().unwrap()),
        vec![s1.clone()],
        "{listed:#}"
    );
    let s2 = env.tv.backup_all();
    assert_ne!(s2, s1);
    assert!(
        !env.objects().keys().any(|k| k.ends_with(".pending")),
        "the next backup cleaned up after the failed one"
    );
    env.tv.restore(A, &s2, &key, None);
    assert_eq!(rows_of(&mut c, A), a0);
}
