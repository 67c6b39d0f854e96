//! Foreign-key graphs with self references and cycles: planned without hanging, and
//! restored even when rows are stored before the rows they reference.

use std::collections::BTreeMap;
use tests::*;

const TENANT_TABLES: [&str; 4] = [
    "public.employees",
    "public.posts",
    "public.teams",
    "public.members",
];
const COMMENTS_OF: &str = "r_.post_id IN (SELECT id FROM posts WHERE tenant_id = $1)";

fn rows(c: &mut Client, t: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut m: BTreeMap<&'static str, Vec<String>> = TENANT_TABLES
        .iter()
        .map(|tb| (*tb, rows_exact(c, tb, "r_.tenant_id = $1", Some(t))))
        .collect();
    m.insert(
        "public.comments",
        rows_exact(c, "public.comments", COMMENTS_OF, Some(t)),
    );
    m
}

#[test]
fn self_references_and_cycles() {
    let (env, key) = Env::with_tenants("graph", &["graph.sql"], &["acme", "globex"]);
    let plan = env.tv.json(&["tables"]);
    let child: Vec<String> = plan["child_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| norm_table(c["table"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(child, vec!["public.comments"], "child tables: {plan:#}");

    let mut c = env.db.client();
    let acme = rows(&mut c, "acme");
    let globex = rows(&mut c, "globex");
    assert_eq!(acme["public.comments"].len(), 300, "fixture sanity");
    let snap = env.tv.backup_all();

    // Into an empty database: every row arrives although parents may come later in storage order.
    let scratch = env.scratch_db("graph_scratch", &[]);
    let ddl: String = fixture("graph.sql")
        .split("-- Employees:")
        .next()
        .unwrap()
        .to_string();
    scratch.exec(&ddl);
    env.tv.restore("acme", &snap, &key, Some(&scratch.url));
    assert_tables_eq(
        "acme in target",
        &acme,
        &rows(&mut scratch.client(), "acme"),
    );

    // In place, after deleting everything of acme (children first).
    c.batch_execute(
        "DELETE FROM comments WHERE post_id IN (SELECT id FROM posts WHERE tenant_id = 'acme');
         DELETE FROM posts WHERE tenant_id = 'acme';
         BEGIN; SET CONSTRAINTS ALL DEFERRED;
         DELETE FROM members WHERE tenant_id = 'acme'; DELETE FROM teams WHERE tenant_id = 'acme'; COMMIT;",
    )
    .unwrap();
    env.tv.restore("acme", &snap, &key, None);
    assert_tables_eq("acme in place", &acme, &rows(&mut c, "acme"));
    assert_tables_eq("globex untouched", &globex, &rows(&mut c, "globex"));
}
