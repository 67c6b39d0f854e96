//! Forty tenants (one without rows) in one backup: each archive holds exactly its rows.

use tests::*;

fn name(i: usize) -> String {
    format!("t{i:02}")
}

/// Empties `items`, restores every tenant from `snapshot` one by one, and compares the rows with
/// `expected`.
fn restore_each(
    env: &Env,
    names: &[String],
    snapshot: &str,
    key: &Key,
    expected: &[String],
    what: &str,
) {
    let mut c = env.db.client();
    c.execute("DELETE FROM items", &[]).unwrap();
    for n in names {
        env.tv.restore(n, snapshot, key, None);
    }
    assert_rows_eq(
        what,
        expected,
        &rows_exact(&mut c, "public.items", "true", None),
    );
}

#[test]
fn forty_tenants_each_get_exactly_their_rows() {
    let names: Vec<String> = (0..40).map(name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (env, key) = Env::with_tenants("many_tenants", &["many_tenants.sql"], &refs);
    let mut c = env.db.client();
    let all = rows_exact(&mut c, "public.items", "true", None);
    assert_eq!(all.len(), 7 * (39 * 40 / 2), "fixture sanity");

    let b = env.tv.json(&["backup", "--all"]);
    let snap = snapshot_id(&b);
    let reported = b["tenants"].as_array().unwrap();
    assert_eq!(reported.len(), 40, "tenants in the report: {b:#}");
    for (i, n) in names.iter().enumerate() {
        let t = reported.iter().find(|t| t["tenant"] == n.as_str());
        let t = t.unwrap_or_else(|| panic!("{n} missing from backup report: {b:#}"));
        assert_eq!(t["rows"], (i * 7) as u64, "{n}: rows: {t}");
    }
    assert_eq!(
        env.tv.snapshots().len(),
        40,
        "one snapshots entry per tenant"
    );

    restore_each(
        &env,
        &names,
        &snap,
        &key,
        &all,
        "all tenants restored one by one",
    );
}

/// A cycle that finds a tenant unchanged writes nothing for it: no manifest, no pack, no
/// inventory entry. Its id still restores every tenant as it was then (through the version it
/// found), and once retention deletes that version the cycle no longer stands for anything.
#[test]
fn unchanged_tenants_cost_nothing_in_a_later_cycle() {
    let names: Vec<String> = (0..40).map(name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (env, key) = Env::with_tenants("many_unchanged", &["many_tenants.sql"], &refs);
    let mut c = env.db.client();
    let s1 = env.tv.backup_all();
    let before_objects = env.objects().len();
    env.db
        .exec("UPDATE items SET v = 'changed' WHERE tenant_id = 't05' AND n = 1");
    let b2 = env.tv.json(&["backup", "--all"]);
    let s2 = snapshot_id(&b2);
    for t in b2["tenants"].as_array().unwrap() {
        let changed = t["tenant"] == "t05";
        assert_eq!(t["unchanged"], !changed, "{t}");
    }
    // One manifest and one pack more; the snapshot record says it covered all, wrote one.
    let added: Vec<String> = env
        .objects()
        .into_keys()
        .filter(|k| k.contains(&s2))
        .collect();
    assert_eq!(
        added.len(),
        3,
        "t05's manifest and pack, the record: {added:?}"
    );
    assert_eq!(env.objects().len(), before_objects + 3);
    let text = String::from_utf8(env.read_object(&format!("snapshots/{s2}.json"))).unwrap();
    let record = store_json(text.as_bytes()).unwrap();
    assert_eq!(record["scope"], "all", "{record}");
    assert_eq!(record["written"], 1, "{record}");
    assert_eq!(record["tenants"], 40, "{record}");

    // t07 has one snapshot, current until the second cycle; t05 has two.
    let list = env.tv.json(&["snapshots", "--tenant", "t07"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["snapshot"], s1.as_str());
    assert!(list[0]["confirmed"].is_string(), "{list:?}");
    assert_eq!(
        env.tv
            .json(&["snapshots", "--tenant", "t05"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The second cycle's id restores every tenant as it was then.
    let at_s2 = rows_exact(&mut c, "public.items", "true", None);
    env.db.exec("DELETE FROM items WHERE tenant_id = 't03'");
    env.tv.backup_all();
    let what = "every tenant restored from the cycle that found most unchanged";
    restore_each(&env, &names, &s2, &key, &at_s2, what);

    // Keep only t03's newest version (its rows deleted): the second cycle found the deleted
    // version, so it no longer stands for anything of t03's.
    env.tv.ok(&["policy", "set", "t03", "--keep-last", "1"]);
    env.tv.json(&["retention", "apply"]);
    let out = env.tv.run(&[
        "restore",
        "t03",
        "--snapshot",
        &s2,
        "--identity",
        key.identity_str(),
    ]);
    out.assert_code(4, "restore of a cycle whose version retention deleted");
    env.tv.json(&[
        "verify",
        "--identity",
        key.identity_str(),
        "--tenant",
        "t07",
    ]);
}

/// A memory budget far below the rows of forty tenants: readers cut the largest buffers into
/// blocks early and the packer seals the largest packs early, many times in one cycle. Every
/// archive still holds exactly its rows and restores them, and a second cycle of the same rows
/// finds every tenant unchanged (the early cuts fall in the same places).
#[test]
fn a_small_memory_budget_cuts_early_and_loses_nothing() {
    let names: Vec<String> = (0..40).map(name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (env, key) = Env::with_tenants("many_budget", &["many_tenants.sql"], &refs);
    let config = env.tv.vault.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("memory_budget = "), "{text}");
    let text = text
        .lines()
        .map(|l| match l.starts_with("memory_budget = ") {
            // Readers get 8 KiB each, packs 16 KiB: the rows are about 250 KB.
            true => "memory_budget = 32768",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();
    let mut c = env.db.client();
    let all = rows_exact(&mut c, "public.items", "true", None);

    let b = env.tv.json(&["backup", "--all"]);
    let snap = snapshot_id(&b);
    let reported = b["tenants"].as_array().unwrap();
    let big = reported.iter().find(|t| t["tenant"] == "t39").unwrap();
    assert!(
        big["blocks_new"].as_u64().unwrap() > 1,
        "t39's 273 rows were cut early into several blocks: {big}"
    );
    for (i, n) in names.iter().enumerate() {
        let t = reported.iter().find(|t| t["tenant"] == n.as_str()).unwrap();
        assert_eq!(t["rows"], (i * 7) as u64, "{n}: rows: {t}");
    }
    let packs = env
        .objects()
        .into_keys()
        .filter(|k| k.ends_with(".pack"))
        .count();
    assert!(
        packs > 39,
        "packs sealed early add to one per tenant: {packs}"
    );

    let again = env.tv.json(&["backup", "--all"]);
    for t in again["tenants"].as_array().unwrap() {
        assert_eq!(t["unchanged"], true, "the same rows, cut the same way: {t}");
    }

    let what = "every tenant restored from the cycle with the small budget";
    restore_each(&env, &names, &snap, &key, &all, what);
}
