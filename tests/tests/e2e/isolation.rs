//! Restoring tenant A touches A's rows only, and puts them back exactly as they were
//! at backup time, whatever happened to them since.

use std::collections::BTreeMap;
use tests::*;

const FIX: [&str; 1] = ["isolation.sql"];
const REGISTERED: [&str; 5] = ["acme", "acme2", "ACME", "acme ", "globex"];
const A: &str = "acme";

const CHILD_FILTERS: [(&str, &str); 1] = [(
    "public.order_items",
    "r_.order_id NOT IN (SELECT id FROM orders WHERE tenant_id = $1)",
)];

fn a_rows(c: &mut Client) -> BTreeMap<&'static str, Vec<String>> {
    let mut m = BTreeMap::new();
    for t in ["public.users", "public.orders", "public.audit"] {
        m.insert(t, rows_exact(c, t, "r_.tenant_id = $1", Some(A)));
    }
    m.insert(
        "public.order_items",
        rows_exact(
            c,
            "public.order_items",
            "r_.order_id IN (SELECT id FROM orders WHERE tenant_id = $1)",
            Some(A),
        ),
    );
    m
}

/// Mess with A's rows in every way: update, delete, insert extra (incl. child rows).
fn mangle_a(c: &mut Client) {
    c.batch_execute(
        "UPDATE users SET email = 'changed@acme' WHERE tenant_id = 'acme' AND id % 3 = 0;
         UPDATE orders SET total = -1 WHERE tenant_id = 'acme' AND id % 2 = 0;
         DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE tenant_id = 'acme' AND id % 5 = 0);
         DELETE FROM orders WHERE tenant_id = 'acme' AND id % 5 = 0;
         DELETE FROM audit WHERE tenant_id = 'acme' AND at % 4 = 0;
         INSERT INTO users (tenant_id, email) VALUES ('acme', 'intruder@acme');
         INSERT INTO orders (tenant_id, user_id, total)
           SELECT 'acme', id, 999 FROM users WHERE email = 'intruder@acme';
         INSERT INTO order_items (order_id, sku, qty)
           SELECT id, 'extra', 1 FROM orders WHERE total = 999;
         INSERT INTO audit VALUES ('acme', 1, 'created user1@acme.example');  -- duplicate of an existing row
         UPDATE order_items SET qty = qty + 100
           WHERE order_id IN (SELECT id FROM orders WHERE tenant_id = 'acme') AND sku = 'sku-1';",
    )
    .unwrap();
}

/// Other tenants also change after the backup: restoring A must not revert that.
fn change_others(c: &mut Client) {
    c.batch_execute(
        "UPDATE users SET email = 'moved@' || tenant_id WHERE tenant_id IN ('acme2', 'ACME', 'acme ') AND id % 7 = 0;
         INSERT INTO audit VALUES ('globex', 424242, 'after backup'), ('unregistered', 1, 'after backup');
         DELETE FROM audit WHERE tenant_id = 'globex' AND at % 2 = 1;
         INSERT INTO plans VALUES ('enterprise', 999);",
    )
    .unwrap();
}

#[test]
fn restore_touches_only_its_tenant() {
    let (env, key) = Env::with_tenants("isolation", &FIX, &REGISTERED);
    let mut c = env.db.client();
    let at_backup = a_rows(&mut c);
    assert_eq!(at_backup["public.users"].len(), 30, "fixture sanity");

    let backup = env.tv.json(&["backup", "--all"]);
    let snap = snapshot_id(&backup);
    mangle_a(&mut c);
    change_others(&mut c);
    assert_ne!(a_rows(&mut c), at_backup, "mangling must change A's rows");
    let others = snapshot_except(&mut c, A, &CHILD_FILTERS);
    // users: 5 other tenants + NULL; orders, audit: 5 each; order_items (filtered); plans.
    assert_eq!(
        others.len(),
        18,
        "fingerprint covers the other tenants: {others:#?}"
    );

    env.tv.restore(A, &snap, &key, None);

    assert_eq!(
        snapshot_except(&mut c, A, &CHILD_FILTERS),
        others,
        "rows outside tenant {A:?} changed"
    );
    assert_tables_eq(
        &format!("tenant {A:?} after restore"),
        &at_backup,
        &a_rows(&mut c),
    );

    // The backup report told the operator about the tenant nobody registered (with all
    // its rows, children included) and about the row with no tenant. Key names are
    // checked in output.rs; here only the content.
    let mentions = |k: &str, name: &str, rows: u64| {
        backup[k].as_array().is_some_and(|a| {
            a.len() == 1
                && a[0]["rows"] == rows
                && a[0].as_object().unwrap().values().any(|v| v == name)
        })
    };
    assert!(
        mentions("unregistered_tenants", "unregistered", 510),
        "unregistered_tenants: {backup:#}"
    );
    assert!(
        mentions("unowned_rows", "public.users", 1),
        "unowned_rows: {backup:#}"
    );
}

#[test]
fn restore_twice_is_idempotent_and_other_snapshots_stay_valid() {
    let (env, key) = Env::with_tenants("isolation_twice", &FIX, &REGISTERED);
    let mut c = env.db.client();
    let first = a_rows(&mut c);
    let snap1 = env.tv.backup_all();
    mangle_a(&mut c);
    let second = a_rows(&mut c);
    let snap2 = env.tv.backup_all();
    assert_ne!(snap1, snap2, "two backups give two snapshots");

    let others = snapshot_except(&mut c, A, &CHILD_FILTERS);
    for _ in 0..2 {
        env.tv.restore(A, &snap1, &key, None);
        assert_tables_eq("A as in the first snapshot", &first, &a_rows(&mut c));
    }
    env.tv.restore(A, &snap2, &key, None); // (`latest` itself: latest.rs)
    assert_tables_eq("the second snapshot", &second, &a_rows(&mut c));
    assert_eq!(
        snapshot_except(&mut c, A, &CHILD_FILTERS),
        others,
        "others untouched"
    );
}
