//! restore-records --with-related: a customer deleted with everything below it by ON DELETE
//! CASCADE comes back exactly, and nothing else moves; another tenant's rows are out of
//! reach whatever key is given.

use super::records::{counts, fingerprint, rec, rec_json, report_rows, A, B, CHILD_FILTERS, FIX};
use std::collections::BTreeSet;
use tests::*;

/// Rows of acme's customer 2 and everything below it (ids from the fixture's numbering).
const TREE: [(&str, &str); 4] = [
    ("crm.customers", "r_.tenant_id = 'acme' AND r_.id = 2"),
    (
        "crm.invoices",
        "r_.tenant_id = 'acme' AND r_.customer_id = 2",
    ),
    ("crm.invoice_lines", "r_.invoice_id BETWEEN 1021 AND 1023"),
    ("crm.line_notes", "r_.line_id BETWEEN 10211 AND 10232"),
];

fn tree(c: &mut Client) -> Vec<Vec<String>> {
    TREE.iter()
        .map(|(t, w)| rows_exact(c, t, w, None))
        .collect()
}

#[test]
fn with_related_brings_back_a_cascade_deleted_tree() {
    let (env, key) = Env::with_tenants("records_cascade", &FIX, &[A, B]);
    let mut c = env.db.client();
    let before = tree(&mut c);
    let sizes: Vec<usize> = before.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1, 3, 6, 12], "fixture: the customer's tree");
    env.tv.backup_all();
    // After the backup both tenants move on; none of this may be reverted.
    env.db.exec(
        "UPDATE crm.customers SET name = 'moved on' WHERE (tenant_id, id) IN (('globex', 2), ('acme', 3));
         INSERT INTO crm.invoices VALUES (1049, 'acme', 4, 'ACME-NEW');
         DELETE FROM crm.line_notes WHERE line_id = 20211;",
    );
    let rest = fingerprint(&mut c, &TREE);
    env.db
        .exec("DELETE FROM crm.customers WHERE tenant_id = 'acme' AND id = 2");
    assert!(
        tree(&mut c).iter().all(Vec::is_empty),
        "cascade deleted the tree"
    );
    let deleted = fingerprint(&mut c, &[]);

    let mut want: BTreeSet<(String, String, String)> = BTreeSet::new();
    want.insert((
        "crm.customers".into(),
        "tenant_id=acme,id=2".into(),
        "insert".into(),
    ));
    for i in 1021..=1023 {
        want.insert(("crm.invoices".into(), format!("id={i}"), "insert".into()));
        for l in 1..=2 {
            let line = i * 10 + l;
            want.insert((
                "crm.invoice_lines".into(),
                format!("id={line}"),
                "insert".into(),
            ));
            for n in 1..=2 {
                let note = format!("id={}", line * 10 + n);
                want.insert(("crm.line_notes".into(), note, "insert".into()));
            }
        }
    }
    let args = ["--with-related", "--dry-run"];
    let dry = rec_json(
        &env,
        &key,
        "restore-records",
        "crm.customers",
        "id=2",
        &args,
    );
    assert_eq!(dry["dry_run"], true, "{dry:#}");
    assert_eq!(report_rows(&dry), want, "dry run lists the tree: {dry:#}");
    assert_eq!(counts(&dry), (22, 0, 0), "{dry:#}");
    assert_eq!(
        fingerprint(&mut c, &[]),
        deleted,
        "--dry-run changed the database"
    );

    let args = ["--with-related"];
    let r = rec_json(
        &env,
        &key,
        "restore-records",
        "crm.customers",
        "id=2",
        &args,
    );
    assert_eq!(report_rows(&r), want, "restored rows: {r:#}");
    assert_eq!(
        (counts(&r), &r["dry_run"]),
        ((22, 0, 0), &Value::Bool(false)),
        "{r:#}"
    );
    let after = tree(&mut c);
    for (i, (t, _)) in TREE.iter().enumerate() {
        assert_rows_eq(&format!("{t}: restored rows"), &before[i], &after[i]);
    }
    assert_eq!(
        fingerprint(&mut c, &TREE),
        rest,
        "rows outside the restored tree changed"
    );

    // Again: nothing to do, nothing done.
    let whole = fingerprint(&mut c, &[]);
    let r = rec_json(
        &env,
        &key,
        "restore-records",
        "crm.customers",
        "id=2",
        &args,
    );
    assert_eq!(counts(&r), (0, 0, 22), "{r:#}");
    assert_eq!(
        fingerprint(&mut c, &[]),
        whole,
        "second restore changed something"
    );
}

#[test]
fn restore_records_never_reaches_another_tenant() {
    let (env, key) = Env::with_tenants("records_isolation", &FIX, &[A, B]);
    let mut c = env.db.client();
    env.tv.backup_all();
    // globex moves on after the backup (same ids as acme's records below).
    env.db.exec(
        "UPDATE crm.customers SET name = 'globex moved on' WHERE tenant_id = 'globex' AND id = 6;
         DELETE FROM crm.invoices WHERE id = 2062;
         DELETE FROM crm.tags WHERE code = 'globex-vip';
         DELETE FROM crm.events WHERE tenant_id = 'globex';
         DELETE FROM crm.customers WHERE tenant_id = 'acme' AND id = 6;",
    );
    let b_before = snapshot_except(&mut c, A, &CHILD_FILTERS);
    let acme6 = "r_.tenant_id = 'acme' AND r_.id = 6";
    let r = rec_json(
        &env,
        &key,
        "restore-records",
        "crm.customers",
        "id=6",
        &["--with-related"],
    );
    assert_eq!(counts(&r), (22, 0, 0), "acme's customer 6 tree: {r:#}");
    assert_eq!(
        env.db
            .count(&format!("FROM crm.customers r_ WHERE {acme6}")),
        1
    );
    let ts = "tenant_id=acme,at=2024-01-02 03:04:05+00";
    let r = rec_json(&env, &key, "restore-records", "crm.events", ts, &[]);
    assert_eq!(counts(&r), (0, 0, 1), "acme's event is live: {r:#}");
    assert_eq!(
        snapshot_except(&mut c, A, &CHILD_FILTERS),
        b_before,
        "globex changed"
    );

    // Keys naming or reaching globex's rows are refused and change nothing.
    let whole = fingerprint(&mut c, &[]);
    let b6 = "tenant_id=globex,id=6";
    for (cmd, extra) in [
        ("restore-records", &[][..]),
        ("restore-records", &["--with-related"][..]),
        ("restore-records", &["--dry-run"][..]),
        ("find", &[][..]),
        ("show", &[][..]),
        ("diff", &[][..]),
    ] {
        let out = rec(&env, &key, cmd, "crm.customers", b6, extra);
        out.assert_code(2, &format!("acme's {cmd} {extra:?} with --key {b6}"));
    }
    let out = env.tv.run(&[
        "restore-records",
        A,
        "--table",
        "crm.customers",
        "--key",
        "id=7",
        "--key",
        b6,
        "--identity",
        key.identity_str(),
    ]);
    out.assert_code(
        2,
        "acme's restore-records with one of two keys naming globex",
    );
    for (t, k) in [
        ("crm.tags", "code=globex-vip"),
        ("crm.invoices", "id=2062"),
        ("crm.invoice_lines", "id=20621"),
        ("crm.events", "tenant_id=globex,at=2024-01-02 03:04:05+00"),
    ] {
        let out = rec(&env, &key, "restore-records", t, k, &["--with-related"]);
        assert!(
            out.code == 4 || (out.code == 2 && k.contains("globex")),
            "acme's restore-records of globex's {t} {k}: exit {}\n{}{}",
            out.code,
            out.stdout,
            out.stderr
        );
    }
    assert_eq!(
        fingerprint(&mut c, &[]),
        whole,
        "a refused request changed the database"
    );
}
