//! Tables without a tenant column that reach a tenant table through foreign keys are
//! backed up with the right tenant; tables with no such path are global.

use tests::*;

const FIX: [&str; 2] = ["child_tables_schema.sql", "child_tables_data.sql"];

/// Text of all rows of `table` belonging to tenant `t` via the FK chain.
fn owned(c: &mut Client, table: &str, t: &str) -> Vec<String> {
    let w = match table {
        "billing.invoices" => "r_.tenant_id = $1",
        "billing.invoice_lines" => "r_.invoice_id IN (SELECT id FROM billing.invoices WHERE tenant_id = $1)",
        "billing.line_notes" => {
            "r_.line_id IN (SELECT l.id FROM billing.invoice_lines l JOIN billing.invoices i ON i.id = l.invoice_id \
             WHERE i.tenant_id = $1)"
        }
        _ => unreachable!(),
    };
    rows_exact(c, table, w, Some(t))
}

/// Rows NOT owned by tenant $1, for child tables.
const CHILD_FILTERS: [(&str, &str); 2] = [
    (
        "billing.invoice_lines",
        "r_.invoice_id NOT IN (SELECT id FROM billing.invoices WHERE tenant_id = $1)",
    ),
    (
        "billing.line_notes",
        "r_.line_id NOT IN (SELECT l.id FROM billing.invoice_lines l \
         JOIN billing.invoices i ON i.id = l.invoice_id WHERE i.tenant_id = $1)",
    ),
];

const TABLES: [&str; 3] = [
    "billing.invoices",
    "billing.invoice_lines",
    "billing.line_notes",
];

#[test]
fn child_tables_are_planned_as_children() {
    let (env, _key) = Env::with_tenants("child_plan", &FIX, &["alpha"]);
    let v = env.tv.json(&["tables"]);
    let names = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap_or_else(|| panic!("tables --json: {k} is not an array: {v:#}"))
            .iter()
            .map(|e| norm_table(e.as_str().or(e["table"].as_str()).unwrap_or_default()))
            .collect()
    };
    let tenant = names("tenant_tables");
    let child = names("child_tables");
    let global = names("global_tables");
    assert_eq!(
        tenant,
        vec!["billing.invoices".to_string()],
        "tenant_tables: {v:#}"
    );
    let mut child_sorted = child.clone();
    child_sorted.sort();
    assert_eq!(
        child_sorted,
        vec!["billing.invoice_lines", "billing.line_notes"],
        "child_tables: {v:#}"
    );
    assert_eq!(
        global,
        vec!["public.currencies".to_string()],
        "global_tables: {v:#}"
    );
    // Each child entry has a non-empty FK path that mentions its parent.
    for e in v["child_tables"].as_array().unwrap() {
        let path = e["path"]
            .as_array()
            .unwrap_or_else(|| panic!("child entry without path: {e}"));
        assert!(!path.is_empty(), "empty FK path: {e}");
        let joined = norm_table(
            &path
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
        assert!(
            joined.contains("billing.invoice"),
            "FK path of {e} does not lead to billing.invoices"
        );
    }
    let tt = &v["tenant_tables"][0];
    assert_eq!(tt["tenant_column"], "tenant_id", "tenant column: {v:#}");
}

#[test]
fn child_rows_follow_their_tenant() {
    let (env, key) = Env::with_tenants("child_restore", &FIX, &["alpha", "beta", "gamma"]);
    let mut c = env.db.client();
    let expected: Vec<Vec<String>> = TABLES.iter().map(|t| owned(&mut c, t, "alpha")).collect();
    assert_eq!(
        expected.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![20, 100, 200],
        "fixture sanity (alpha's invoices, lines, notes)"
    );
    let backup = env.tv.json(&["backup", "--all"]);
    let snap = snapshot_id(&backup);
    let globals: Vec<String> = backup["global_tables"]
        .as_array()
        .unwrap_or_else(|| panic!("backup report has no global_tables: {backup:#}"))
        .iter()
        .map(|g| norm_table(g.as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        globals,
        vec!["public.currencies"],
        "backup report global_tables: {backup:#}"
    );
    let alpha = backup["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "alpha")
        .unwrap()
        .clone();
    assert_eq!(
        alpha["tables"], 3,
        "alpha is stored from 3 tables: {backup:#}"
    );
    assert_eq!(
        alpha["rows"], 320,
        "alpha's rows incl. children: {backup:#}"
    );
    let unowned = backup["unowned_rows"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(unowned, 0, "no unowned rows expected: {backup:#}");

    let scratch = env.scratch_db("child_scratch", &FIX[..1]);
    env.tv.restore("alpha", &snap, &key, Some(&scratch.url));
    let mut s = scratch.client();
    for (i, t) in TABLES.iter().enumerate() {
        let got = rows_exact(&mut s, t, "true", None);
        assert_rows_eq(
            &format!("{t} in scratch after restoring alpha"),
            &expected[i],
            &got,
        );
    }

    // In place: delete alpha's whole tree, restore, everything back.
    c.batch_execute(
        "DELETE FROM billing.line_notes WHERE line_id IN (SELECT l.id FROM billing.invoice_lines l \
           JOIN billing.invoices i ON i.id = l.invoice_id WHERE i.tenant_id = 'alpha');
         DELETE FROM billing.invoice_lines WHERE invoice_id IN (SELECT id FROM billing.invoices WHERE tenant_id = 'alpha');
         DELETE FROM billing.invoices WHERE tenant_id = 'alpha';",
    )
    .unwrap();
    let others_before = snapshot_except(&mut c, "alpha", &CHILD_FILTERS);
    env.tv.restore("alpha", "latest", &key, None);
    for (i, t) in TABLES.iter().enumerate() {
        assert_rows_eq(
            &format!("{t} after in-place restore of alpha"),
            &expected[i],
            &owned(&mut c, t, "alpha"),
        );
    }
    assert_eq!(
        others_before,
        snapshot_except(&mut c, "alpha", &CHILD_FILTERS),
        "other tenants' rows changed"
    );
}
