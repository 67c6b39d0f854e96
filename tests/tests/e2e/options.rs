//! Config options: another tenant column (uuid), excluded schemas/tables, backing up a
//! single tenant, and unchanged data being reused rather than stored again.

use tests::*;

const ORG1: &str = "11111111-1111-1111-1111-111111111111";
const ORG2: &str = "22222222-2222-2222-2222-222222222222";

fn setup(name: &str) -> (Env, Key) {
    let env = Env::new(name, &["options.sql"]);
    env.tv.init(
        &env.db.url,
        &[
            "--tenant-column",
            "org_id",
            "--exclude-schema",
            "scratch",
            "--exclude-table",
            "public.audit_log",
        ],
    );
    let key = env.keygen("key.txt");
    env.tv.tenant_add(ORG1, &key);
    env.tv.tenant_add(ORG2, &key);
    (env, key)
}

fn org_rows(c: &mut Client, org: &str) -> (Vec<String>, Vec<String>) {
    (
        rows_exact(c, "public.accounts", "r_.org_id::text = $1", Some(org)),
        rows_exact(c, "public.events", "r_.org_id::text = $1", Some(org)),
    )
}

#[test]
fn tenant_column_and_exclusions_shape_the_plan() {
    let (env, _key) = setup("opt_plan");
    let v = env.tv.json(&["tables"]);
    let mut tenant: Vec<(String, String)> = v["tenant_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                norm_table(t["table"].as_str().unwrap_or_default()),
                t["tenant_column"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    tenant.sort();
    assert_eq!(
        tenant,
        vec![
            ("public.accounts".into(), "org_id".into()),
            ("public.events".into(), "org_id".into())
        ],
        "tenant tables: {v:#}"
    );
    let all = v.to_string();
    assert!(!all.contains("audit_log"), "excluded table listed: {v:#}");
    assert!(!all.contains("scratch."), "excluded schema listed: {v:#}");
    let global: Vec<String> = v["global_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| norm_table(g.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        global,
        vec!["public.tenant_id_decoy"],
        "with --tenant-column org_id, tenant_id is just a column: {v:#}"
    );
}

#[test]
fn single_tenant_backup_and_uuid_tenant_column_round_trip() {
    let (env, key) = setup("opt_single");
    let mut c = env.db.client();
    let want = org_rows(&mut c, ORG1);
    assert_eq!((want.0.len(), want.1.len()), (2, 500), "fixture sanity");

    let b = env.tv.json(&["backup", "--tenant", ORG1]);
    let snap = snapshot_id(&b);
    let tenants: Vec<&str> = b["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["tenant"].as_str())
        .collect();
    assert_eq!(
        tenants,
        vec![ORG1],
        "backup --tenant reports only that tenant: {b:#}"
    );
    assert_eq!(
        b["tenants"][0]["rows"], 502,
        "rows of {ORG1} (excluded tables not counted): {b:#}"
    );
    let list = env.tv.snapshots();
    let listed: Vec<&str> = list.iter().filter_map(|s| s["tenant"].as_str()).collect();
    assert_eq!(
        listed,
        vec![ORG1],
        "snapshots after backup --tenant: {list:#?}"
    );
    let out = env.tv.run(&[
        "restore",
        ORG2,
        "--snapshot",
        "latest",
        "--identity",
        key.identity_str(),
    ]);
    out.assert_code(4, "ORG2 has no snapshot yet");

    c.batch_execute(&format!(
        "DELETE FROM accounts WHERE org_id = '{ORG1}'; UPDATE events SET what = 'x' WHERE org_id = '{ORG1}';
         UPDATE audit_log SET line = 'changed'; UPDATE scratch.tmp SET junk = 'changed';"
    ))
    .unwrap();
    let org2 = org_rows(&mut c, ORG2);
    env.tv.restore(ORG1, &snap, &key, None);
    assert_eq!(org_rows(&mut c, ORG1), want, "{ORG1} restored");
    assert_eq!(org_rows(&mut c, ORG2), org2, "{ORG2} untouched");
    assert_eq!(
        env.db.count("FROM audit_log WHERE line = 'changed'"),
        1,
        "excluded table touched by restore"
    );
    assert_eq!(
        env.db.count("FROM scratch.tmp WHERE junk = 'changed'"),
        1,
        "excluded schema touched by restore"
    );
}

#[test]
fn unchanged_data_is_reused_not_stored_again() {
    let (env, _key) = setup("opt_dedup");
    let first = env.tv.json(&["backup", "--all"]);
    let second = env.tv.json(&["backup", "--all"]);
    for t in second["tenants"].as_array().unwrap() {
        assert_eq!(
            t["blocks_new"], 0,
            "unchanged tenant stored new blocks: {second:#}\nfirst: {first:#}"
        );
        assert!(
            t["blocks_reused"].as_u64().unwrap_or(0) > 0,
            "no reused blocks reported: {second:#}"
        );
    }
    // A change in one tenant does not make the other tenant store anything.
    env.db.exec(&format!(
        "UPDATE events SET what = 'changed' WHERE org_id = '{ORG1}' AND seq = 250"
    ));
    let third = env.tv.json(&["backup", "--all"]);
    let get = |t: &str| {
        third["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["tenant"] == t)
            .cloned()
            .unwrap()
    };
    assert!(
        get(ORG1)["blocks_new"].as_u64().unwrap_or(0) > 0,
        "changed tenant stored nothing new: {third:#}"
    );
    assert_eq!(
        get(ORG2)["blocks_new"],
        0,
        "unchanged tenant stored new blocks: {third:#}"
    );
}

#[test]
fn separate_object_store_directory() {
    let env = Env::new("opt_store", &["options.sql"]);
    let objects = env.path("objects");
    std::fs::create_dir_all(&objects).unwrap();
    let store_url = format!("file://{}", objects.display());
    env.tv.init(
        &env.db.url,
        &["--tenant-column", "org_id", "--store", &store_url],
    );
    let key = env.keygen("key.txt");
    env.tv.tenant_add(ORG1, &key);
    let mut c = env.db.client();
    let want = org_rows(&mut c, ORG1);
    let snap = env.tv.backup_all();
    let in_objects = walk(&objects);
    assert!(
        in_objects
            .iter()
            .any(|p| p.components().any(|c| c.as_os_str() == "packs")),
        "no packs written to --store {store_url}: {in_objects:#?}"
    );
    let local = walk(&env.tv.vault.join("store"));
    assert!(
        !local
            .iter()
            .any(|p| p.components().any(|c| c.as_os_str() == "packs")),
        "packs written inside the vault dir despite --store: {local:#?}"
    );
    c.execute(&format!("DELETE FROM events WHERE org_id = '{ORG1}'"), &[])
        .unwrap();
    env.tv.restore(ORG1, &snap, &key, None);
    assert_eq!(
        org_rows(&mut c, ORG1),
        want,
        "restored from the separate store"
    );
}
