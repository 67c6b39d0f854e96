//! Awkward tables: identifiers needing quotes, a partitioned table (no double counting),
//! a dropped column, a varchar tenant column, and a tenant that has no rows.

use std::collections::BTreeMap;
use tests::*;

const TABLES: [&str; 3] = [
    "\"Sales Dept\".\"Order Lines;--\"",
    "public.metrics",
    "public.\"UPPER\"",
];

fn rows(c: &mut Client, t: &str) -> BTreeMap<&'static str, Vec<String>> {
    TABLES
        .iter()
        .map(|tb| (*tb, rows_exact(c, tb, "r_.tenant_id = $1", Some(t))))
        .collect()
}

#[test]
fn awkward_tables_round_trip() {
    let (env, key) = Env::with_tenants(
        "edge_tables",
        &["edge_tables.sql"],
        &["acme", "globex", "nobody-yet"],
    );
    let mut c = env.db.client();
    let acme = rows(&mut c, "acme");
    let globex = rows(&mut c, "globex");
    assert_eq!(acme[TABLES[1]].len(), 1000, "fixture sanity");

    let b = env.tv.json(&["backup", "--all"]);
    let snap = snapshot_id(&b);
    let count = |t: &str| {
        b["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["tenant"] == t)
            .map(|x| x["rows"].clone())
    };
    assert_eq!(
        count("acme"),
        Some(Value::from(50 + 1000 + 1)),
        "acme rows (partitions counted once): {b:#}"
    );
    assert_eq!(
        count("nobody-yet"),
        Some(Value::from(0)),
        "tenant without rows: {b:#}"
    );

    // Mangle acme everywhere (incl. moving rows across partitions), and give the empty tenant rows.
    c.batch_execute(
        "UPDATE \"Sales Dept\".\"Order Lines;--\" SET \"Amount $\" = -1 WHERE tenant_id = 'acme';
         UPDATE metrics SET ts = ts + interval '1 year' WHERE tenant_id = 'acme';
         DELETE FROM \"UPPER\" WHERE tenant_id = 'acme';
         INSERT INTO metrics VALUES ('nobody-yet', now(), 1);
         INSERT INTO \"UPPER\" VALUES ('x', 'nobody-yet', 3);",
    )
    .unwrap();
    env.tv.restore("acme", &snap, &key, None);
    env.tv.restore("nobody-yet", &snap, &key, None);
    assert_tables_eq("acme", &acme, &rows(&mut c, "acme"));
    assert_tables_eq("globex untouched", &globex, &rows(&mut c, "globex"));
    assert!(
        rows(&mut c, "nobody-yet").values().all(Vec::is_empty),
        "tenant empty at backup time restored to empty"
    );
    assert_eq!(
        env.db.count("FROM metrics_2023 WHERE tenant_id = 'acme'"),
        214,
        "rows back in their partition"
    );

    // Into another database with the same schema.
    let scratch = env.scratch_db("edge_scratch", &["edge_tables.sql"]);
    scratch.exec("TRUNCATE \"Sales Dept\".\"Order Lines;--\", metrics, \"UPPER\"");
    env.tv.restore("acme", &snap, &key, Some(&scratch.url));
    assert_tables_eq(
        "acme in target",
        &acme,
        &rows(&mut scratch.client(), "acme"),
    );
}
