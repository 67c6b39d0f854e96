//! Row-level security: a role that cannot see every row must not produce a silently
//! incomplete backup; with `--rls-tenant-setting` the backup sees each tenant's rows.

use tests::*;

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// DB with the RLS fixture and a LOGIN role (no BYPASSRLS) that may read everything.
fn setup(name: &str) -> (Env, TestRole) {
    let env = Env::new(name, &["rls_schema.sql", "rls_data.sql"]);
    let mut role = TestRole::new("tv_rls", "NOSUPERUSER NOBYPASSRLS");
    role.used_in(&env.db);
    env.db.exec(&format!(
        "GRANT CONNECT ON DATABASE \"{db}\" TO \"{r}\";
         GRANT USAGE ON SCHEMA public TO \"{r}\";
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{r}\";",
        db = env.db.name,
        r = role.name
    ));
    // The role really sees nothing of `secrets` without the setting (fixture sanity).
    let mut rc = connect(&role.url(&env.db));
    let seen: i64 = rc
        .query_one("SELECT count(*) FROM secrets", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        seen, 0,
        "RLS fixture: role sees rows without app.current_tenant"
    );
    (env, role)
}

#[test]
fn rls_without_setting_fails_loudly() {
    let (env, role) = setup("rls_refused");
    env.tv.init(&role.url(&env.db), &[]);
    let key = env.keygen("key.txt");
    for t in TENANTS {
        env.tv.tenant_add(t, &key);
    }
    let out = env.tv.run(&["backup", "--all"]);
    assert_ne!(
        out.code, 0,
        "backup through RLS without --rls-tenant-setting succeeded:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert_ne!(out.code, 101, "backup panicked: {}", out.stderr);
    assert!(
        out.stderr.contains("secrets"),
        "stderr does not name the RLS table `secrets`: {:?}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&role.password),
        "stderr leaks the database password: {:?}",
        out.stderr
    );
    let list = env.tv.snapshots();
    assert!(
        list.is_empty(),
        "a snapshot was recorded by the failed backup: {list:#?}"
    );
}

#[test]
fn rls_with_tenant_setting_backs_up_everything() {
    let (env, role) = setup("rls_setting");
    env.tv.init(
        &role.url(&env.db),
        &["--rls-tenant-setting", "app.current_tenant"],
    );
    let key = env.keygen("key.txt");
    for t in TENANTS {
        env.tv.tenant_add(t, &key);
    }
    let mut c = env.db.client(); // superuser: sees everything
    let expected: Vec<(Vec<String>, Vec<String>)> = TENANTS
        .iter()
        .map(|t| {
            (
                rows_exact(&mut c, "public.secrets", "r_.tenant_id = $1", Some(t)),
                rows_exact(&mut c, "public.profiles", "r_.tenant_id = $1", Some(t)),
            )
        })
        .collect();
    assert_eq!(expected[0].0.len(), 100, "fixture sanity");

    let backup = env.tv.json(&["backup", "--all"]);
    let snap = snapshot_id(&backup);
    for t in TENANTS {
        let e = backup["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["tenant"] == t)
            .cloned();
        let e = e.unwrap_or_else(|| panic!("tenant {t} missing from backup report: {backup:#}"));
        assert_eq!(
            e["rows"], 101,
            "{t}: rows backed up (100 secrets + 1 profile): {backup:#}"
        );
    }

    // Restore as superuser into a scratch database with the same schema.
    let scratch = env.scratch_db("rls_scratch", &["rls_schema.sql"]);
    let mut s = scratch.client();
    for (i, t) in TENANTS.iter().enumerate() {
        let v = env.tv.restore(t, &snap, &key, Some(&scratch.url));
        assert_eq!(v["ok"], true);
        let got_s = rows_exact(&mut s, "public.secrets", "r_.tenant_id = $1", Some(t));
        let got_p = rows_exact(&mut s, "public.profiles", "r_.tenant_id = $1", Some(t));
        assert_rows_eq(
            &format!("{t}: secrets after restore"),
            &expected[i].0,
            &got_s,
        );
        assert_rows_eq(
            &format!("{t}: profiles after restore"),
            &expected[i].1,
            &got_p,
        );
    }
    assert_eq!(scratch.count("FROM secrets"), 300, "all secrets restored");
}
