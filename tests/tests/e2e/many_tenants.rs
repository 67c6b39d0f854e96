//! Forty tenants (one without rows) in one backup: each archive holds exactly its rows.

use tests::*;

fn name(i: usize) -> String {
    format!("t{i:02}")
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

    c.execute("DELETE FROM items", &[]).unwrap();
    for n in &names {
        env.tv.restore(n, &snap, &key, None);
    }
    assert_rows_eq(
        "all tenants restored one by one",
        &all,
        &rows_exact(&mut c, "public.items", "true", None),
    );
}
