//! Whole-tenant restore on a schema shaped like a real application (tests/sql/real_schema.sql):
//! partitioned tables with foreign keys on the partitions or on the parent, a child with two
//! owner paths that disagree, other tenants' rows referencing the restored tenant's rows with
//! ON DELETE RESTRICT, unindexed foreign keys, tables without a primary key and user triggers.
//! The property checked is the user's: after damaging one tenant and restoring it, every table
//! of the whole database equals its state before the damage.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tests::*;

const FIX: [&str; 2] = ["real_schema.sql", "real_data.sql"];
const TENANTS: [&str; 3] = ["t1", "t2", "t3"];

/// (inserted, updated, deleted) that restoring the tenant must report, per table.
type Expected = BTreeMap<String, (u64, u64, u64)>;

/// Damages t1 in several tables with triggers off (as a bad migration would) and returns what a
/// restore must change to undo it. `rentals_by_inventory`: rentals belong to the tenant of
/// their inventory's store (a declared owner) rather than of their customer.
fn damage_t1(c: &mut Client, rentals_by_inventory: bool) -> Expected {
    c.batch_execute("SET session_replication_role = replica")
        .unwrap();
    let mut n = |sql: &str| {
        c.execute(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    };
    let customers = n(
        "UPDATE app.customer SET email = 'damaged' WHERE tenant_id = 't1' AND customer_id % 4 = 0",
    );
    let inventory = n("UPDATE app.inventory i SET last_update = now() FROM app.store s \
                       WHERE s.store_id = i.store_id AND s.tenant_id = 't1' AND i.inventory_id % 9 = 0");
    let payments = n("DELETE FROM app.payment p USING app.customer c \
                      WHERE c.customer_id = p.customer_id AND c.tenant_id = 't1' AND p.payment_id % 5 = 0");
    let rentals = if rentals_by_inventory {
        n("DELETE FROM app.rental r USING app.inventory i, app.store s \
           WHERE i.inventory_id = r.inventory_id AND s.store_id = i.store_id AND s.tenant_id = 't1' \
           AND r.rental_id % 10 = 3 AND NOT EXISTS (SELECT 1 FROM app.payment p WHERE p.rental_id = r.rental_id)")
    } else {
        n("DELETE FROM app.rental r USING app.customer c \
           WHERE c.customer_id = r.customer_id AND c.tenant_id = 't1' \
           AND r.rental_id % 10 = 3 AND NOT EXISTS (SELECT 1 FROM app.payment p WHERE p.rental_id = r.rental_id)")
    };
    let activity = n("INSERT INTO app.activity (customer_id, at, what) \
                      SELECT customer_id, date '2022-03-03', 'inserted by the damage' FROM app.customer \
                      WHERE tenant_id = 't1' AND customer_id % 20 = 0");
    let events_before = n("UPDATE app.event_log SET kind = kind WHERE tenant_id = 't1'");
    let events_gone = n("DELETE FROM app.event_log WHERE tenant_id = 't1' AND kind = 'kind1'");
    c.batch_execute("SET session_replication_role = origin")
        .unwrap();
    assert!(
        customers > 0
            && inventory > 0
            && payments > 0
            && rentals > 0
            && activity > 0
            && events_gone > 0
    );
    BTreeMap::from([
        ("app.store".into(), (0, 0, 0)),
        ("app.customer".into(), (0, customers, 0)),
        ("app.inventory".into(), (0, inventory, 0)),
        ("app.payment".into(), (payments, 0, 0)),
        ("app.rental".into(), (rentals, 0, 0)),
        ("app.activity".into(), (0, 0, activity)),
        // No primary key: the tenant's rows are replaced when they differ.
        (
            "app.event_log".into(),
            (events_before, 0, events_before - events_gone),
        ),
        ("app.customer_tag".into(), (0, 0, 0)),
    ])
}

fn changes(report: &Value) -> Expected {
    report["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in {report:#}"))
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k} in {t}"));
            (
                t["table"].as_str().unwrap().to_string(),
                (n("inserted"), n("updated"), n("deleted")),
            )
        })
        .collect()
}

fn restore_json(env: &Env, key: &Key, tenant: &str, extra: &[&str]) -> Value {
    let mut args = vec!["restore", tenant, "--identity", key.identity_str()];
    args.extend_from_slice(extra);
    env.tv.json(&args)
}

#[test]
fn plan_folds_partitions_and_names_every_rule() {
    let (env, _key) = Env::with_tenants("real_plan", &FIX, &TENANTS);
    let v = env.tv.json(&["tables"]);
    let child = |name: &str| {
        v["child_tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} is not a child table: {v:#}"))
            .clone()
    };
    // Foreign keys declared on the partitions only still make the parent a child table.
    let payment = child("app.payment");
    assert!(
        payment["path"][0]
            .as_str()
            .unwrap()
            .contains("app.customer"),
        "{payment}"
    );
    assert!(child("app.activity")["path"][0]
        .as_str()
        .unwrap()
        .contains("app.customer"));
    let rental = child("app.rental");
    assert!(
        rental["rule"]
            .as_str()
            .unwrap()
            .starts_with("shortest of 2"),
        "{rental}"
    );
    assert!(
        rental["other_paths"][0]
            .as_str()
            .unwrap()
            .contains("app.store"),
        "{rental}"
    );
    let text = v.to_string();
    assert!(
        !text.contains("payment_p2022") && !text.contains("activity_2022"),
        "partitions listed: {v:#}"
    );
    assert!(v["global_tables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "app.film"));
    assert!(v["global"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["rule"].as_str().is_some_and(|r| !r.is_empty())));

    // Each backup counts the rentals whose two paths name different tenants.
    let disagree: i64 = env
        .db
        .scalar(
            "SELECT count(*) FROM app.rental r JOIN app.customer c USING (customer_id) \
             JOIN app.inventory i USING (inventory_id) JOIN app.store s ON s.store_id = i.store_id \
             WHERE s.tenant_id <> c.tenant_id",
        )
        .unwrap()
        .parse()
        .unwrap();
    assert!(disagree > 0, "fixture sanity");
    let b = env.tv.json(&["backup", "--all"]);
    let amb = b["ambiguous_rows"].as_array().unwrap();
    assert_eq!(amb.len(), 1, "{b:#}");
    assert_eq!(amb[0]["table"], "app.rental");
    assert_eq!(amb[0]["rows"], disagree as u64);
    assert_eq!(amb[0]["examples"].as_array().unwrap().len(), 5);
    // Every payment row was archived: the partitioned table is not global.
    let rows: u64 = b["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows"].as_u64().unwrap())
        .sum();
    let expected: i64 = env
        .db
        .scalar(
            "SELECT (SELECT count(*) FROM app.store) + (SELECT count(*) FROM app.customer) \
             + (SELECT count(*) FROM app.inventory) + (SELECT count(*) FROM app.rental) \
             + (SELECT count(*) FROM app.payment) + (SELECT count(*) FROM app.activity) \
             + (SELECT count(*) FROM app.event_log) + (SELECT count(*) FROM app.customer_tag)",
        )
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(rows, expected as u64, "{b:#}");
}

#[test]
fn damaged_tenant_restores_to_the_whole_database_before_the_damage() {
    let (env, key) = Env::with_tenants("real_restore", &FIX, &TENANTS);
    let mut c = env.db.client();
    env.tv.backup_all();
    let before = whole_db(&mut c);
    let expected = damage_t1(&mut c, false);
    let damaged = whole_db(&mut c);
    assert_ne!(before, damaged);

    let dry = restore_json(&env, &key, "t1", &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(changes(&dry), expected, "dry run: {dry:#}");
    assert_eq!(whole_db(&mut c), damaged, "a dry run changed the database");

    let real = restore_json(&env, &key, "t1", &[]);
    assert_eq!(changes(&real), changes(&dry), "real restore: {real:#}");
    assert_eq!(real["foreign_keys"], "set_based");
    for t in real["tables"].as_array().unwrap() {
        assert_eq!(t["checksum_ok"], true, "{t}");
    }
    // Every table, every tenant, the global tables and the trigger log (no trigger fired).
    let after = whole_db(&mut c);
    for (table, rows) in &before {
        assert_rows_eq(&format!("{table} after restoring t1"), rows, &after[table]);
    }
    assert_eq!(
        env.db.count("FROM app.trigger_log"),
        0,
        "a user trigger fired"
    );

    // Nothing differs any more: a second restore changes nothing and reads no block.
    let again = restore_json(&env, &key, "t1", &[]);
    assert!(
        changes(&again).values().all(|&c| c == (0, 0, 0)),
        "{again:#}"
    );
    assert_eq!(whole_db(&mut c), before);
}

#[test]
fn declared_ownership_overrides_the_catalog() {
    let (env, key) = Env::with_tenants("real_declared", &FIX, &TENANTS);
    let config = env.tv.vault.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        r#"
[ownership]
"app.rental" = { via = ["inventory_id", "store_id"] }
"app.film" = "excluded"
"app.customer_tag" = { tenant = "(SELECT c.tenant_id FROM app.customer c WHERE c.customer_id = t0.customer_id)" }
"#,
    );
    std::fs::write(&config, text).unwrap();
    let v = env.tv.json(&["tables"]);
    let find = |kind: &str, name: &str| {
        v[kind]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} not in {kind}: {v:#}"))
            .clone()
    };
    let rental = find("child_tables", "app.rental");
    assert!(
        rental["rule"].as_str().unwrap().starts_with("declared"),
        "{rental}"
    );
    assert!(
        rental["path"][1].as_str().unwrap().contains("app.store"),
        "{rental}"
    );
    let tag = find("tenant_tables", "app.customer_tag");
    assert!(
        tag["rule"]
            .as_str()
            .unwrap()
            .starts_with("declared expression"),
        "{tag}"
    );
    assert_eq!(v["excluded_tables"], serde_json::json!(["app.film"]));

    let b = env.tv.json(&["backup", "--all"]);
    assert_eq!(
        b["ambiguous_rows"],
        serde_json::json!([]),
        "declared paths are not ambiguous"
    );
    let mut c = env.db.client();
    let before = whole_db(&mut c);
    let mut expected = damage_t1(&mut c, true);
    let tags = c
        .execute(
            "DELETE FROM app.customer_tag WHERE customer_id IN (SELECT customer_id FROM app.customer WHERE tenant_id = 't1') AND tag = 'tag2'",
            &[],
        )
        .unwrap();
    let t1_tags: i64 = env
        .db
        .scalar("SELECT count(*) FROM app.customer_tag t JOIN app.customer c USING (customer_id) WHERE c.tenant_id = 't1'")
        .unwrap()
        .parse()
        .unwrap();
    expected.insert(
        "app.customer_tag".into(),
        (t1_tags as u64 + tags, 0, t1_tags as u64),
    );
    let real = restore_json(&env, &key, "t1", &[]);
    assert_eq!(changes(&real), expected, "{real:#}");
    let after = whole_db(&mut c);
    for (table, rows) in &before {
        assert_rows_eq(&format!("{table} after restoring t1"), rows, &after[table]);
    }
}

#[test]
fn a_row_another_tenant_still_references_stops_the_restore() {
    let (env, key) = Env::with_tenants("real_refused", &FIX, &TENANTS);
    env.tv.backup_all();
    // After the backup: a new copy in t1's store, rented by a customer of t2.
    env.db.exec(
        "INSERT INTO app.inventory (inventory_id, film_id, store_id, last_update) VALUES (9001, 1, 1, now());
         INSERT INTO app.rental (rental_id, rental_date, inventory_id, customer_id) VALUES (9001, now(), 9001, 250);
         UPDATE app.customer SET email = 'changed' WHERE customer_id = 3;",
    );
    let mut c = env.db.client();
    let before = whole_db(&mut c);
    let out = env
        .tv
        .run(&["restore", "t1", "--identity", key.identity_str()]);
    out.assert_code(1, "restore removing a row another tenant references");
    for word in [
        "app.inventory",
        "9001",
        "app.rental",
        "tenant \"t2\"",
        "nothing was changed",
    ] {
        assert!(
            out.stderr.contains(word),
            "{word:?} missing from: {}",
            out.stderr
        );
    }
    assert_eq!(
        whole_db(&mut c),
        before,
        "a refused restore changed the database"
    );
    // The dry run shows the deletion it would need.
    let dry = restore_json(&env, &key, "t1", &["--dry-run"]);
    assert_eq!(changes(&dry)["app.inventory"], (0, 0, 1), "{dry:#}");
}

#[test]
fn other_tenants_writers_are_never_blocked_by_a_restore() {
    let (env, key) = Env::with_tenants("real_concurrent", &FIX, &["t1", "t2", "t3", "big"]);
    env.db.exec(
        "SET session_replication_role = replica;
         INSERT INTO app.store (store_id, tenant_id, name) VALUES (100, 'big', 'big store');
         INSERT INTO app.customer (customer_id, tenant_id, store_id, email, active, note, created)
           SELECT 100000 + i, 'big', 100, 'b' || i || '@example.com', true, NULL, now() FROM generate_series(1, 40000) i;
         INSERT INTO app.inventory (inventory_id, film_id, store_id, last_update)
           SELECT 100000 + i, 1 + i % 50, 100, now() FROM generate_series(1, 2000) i;
         INSERT INTO app.rental (rental_id, rental_date, inventory_id, customer_id)
           SELECT 100000 + i, now(), 100001 + i % 2000, 100001 + i % 40000 FROM generate_series(1, 80000) i;
         ANALYZE;",
    );
    env.tv.backup_all();
    let mut c = env.db.client();
    let big = |c: &mut Client| {
        (
            rows_exact(c, "app.customer", "r_.tenant_id = 'big'", None),
            rows_exact(c, "app.rental", "r_.customer_id > 100000", None),
        )
    };
    let want = big(&mut c);
    env.db.exec(
        "SET session_replication_role = replica;
         DELETE FROM app.rental WHERE customer_id > 100000;
         UPDATE app.customer SET email = NULL WHERE tenant_id = 'big';",
    );

    let mut restore = env
        .tv
        .command(&[
            "restore",
            "big",
            "--identity",
            key.identity_str(),
            "--json",
            "-q",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = env.db.url.clone();
    let (mut statements, mut slowest) = (0u32, Duration::ZERO);
    let mut w = connect(&url);
    let started = Instant::now();
    while restore.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "restore hangs"
        );
        for sql in [
            "UPDATE app.customer SET active = NOT active WHERE customer_id = 250",
            "INSERT INTO app.rental (rental_date, inventory_id, customer_id) VALUES (now(), 450, 450)",
            "UPDATE app.inventory SET last_update = now() WHERE inventory_id = 450",
            "INSERT INTO app.event_log VALUES ('t3', now(), 'concurrent', NULL)",
        ] {
            let t = Instant::now();
            w.batch_execute(sql).unwrap();
            slowest = slowest.max(t.elapsed());
            statements += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = restore.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        statements >= 8,
        "the restore ended before the writer ran: {statements}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a writer on other tenants' rows waited {slowest:?} during the restore"
    );
    assert_eq!(big(&mut c), want, "big restored exactly");
}

/// The fixture's schema under another name (for `--schema-map`).
fn schema_as(name: &str) -> String {
    fixture("real_schema.sql")
        .replace("SCHEMA app", &format!("SCHEMA {name}"))
        .replace("app.", &format!("{name}."))
}

/// t3's rows of every tenant table of schema `s` (t3 is the only tenant there when `only`).
fn t3_rows(c: &mut Client, s: &str, only: bool) -> BTreeMap<String, Vec<String>> {
    let cust = format!("(SELECT customer_id FROM {s}.customer WHERE tenant_id = 't3')");
    let store = format!("(SELECT store_id FROM {s}.store WHERE tenant_id = 't3')");
    let filters = [
        ("store", "r_.tenant_id = 't3'".to_string()),
        ("customer", "r_.tenant_id = 't3'".to_string()),
        ("event_log", "r_.tenant_id = 't3'".to_string()),
        ("inventory", format!("r_.store_id IN {store}")),
        ("rental", format!("r_.customer_id IN {cust}")),
        ("payment", format!("r_.customer_id IN {cust}")),
        ("activity", format!("r_.customer_id IN {cust}")),
        ("customer_tag", format!("r_.customer_id IN {cust}")),
    ];
    filters
        .iter()
        .map(|(t, w)| {
            let rows = rows_exact(c, &format!("{s}.{t}"), if only { "true" } else { w }, None);
            (t.to_string(), rows)
        })
        .collect()
}

#[test]
fn schema_map_and_target_restore_tables_with_rows() {
    let (env, key) = Env::with_tenants("real_remap", &FIX, &TENANTS);
    env.tv.backup_all();
    env.db.exec(&schema_as("scratch"));
    env.db
        .exec("INSERT INTO scratch.film SELECT * FROM app.film");
    let mut c = env.db.client();
    let want = t3_rows(&mut c, "app", false);
    assert!(want.values().all(|r| !r.is_empty()), "fixture sanity");

    restore_json(&env, &key, "t3", &["--schema-map", "app=scratch"]);
    assert_tables_eq("t3 in scratch", &want, &t3_rows(&mut c, "scratch", true));
    assert_eq!(
        env.db.count("FROM scratch.trigger_log"),
        0,
        "a user trigger fired"
    );
    // t1 rents copies of t2's inventory, which the empty schema lacks: refused, nothing written.
    let out = env.tv.run(&[
        "restore",
        "t1",
        "--identity",
        key.identity_str(),
        "--schema-map",
        "app=scratch",
    ]);
    out.assert_code(1, "restore with references to rows the target lacks");
    assert!(out.stderr.contains("scratch.inventory"), "{}", out.stderr);
    assert_tables_eq(
        "scratch after the refusal",
        &want,
        &t3_rows(&mut c, "scratch", true),
    );

    let target = env.scratch_db("real_remap_target", &["real_schema.sql"]);
    let mut tc = target.client();
    for row in c
        .query("SELECT film_id, title, rating FROM app.film", &[])
        .unwrap()
    {
        let (id, title, rating): (i32, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        tc.execute(
            "INSERT INTO app.film VALUES ($1, $2, $3)",
            &[&id, &title, &rating],
        )
        .unwrap();
    }
    restore_json(&env, &key, "t3", &["--target", &target.url]);
    assert_tables_eq("t3 in --target", &want, &t3_rows(&mut tc, "app", true));
}

#[test]
fn without_the_replication_role_privilege_the_restore_falls_back_and_says_so() {
    let db = TestDb::with_fixture("real_fallback", &FIX);
    let mut role = TestRole::new("tv_restorer", "");
    role.used_in(&db);
    db.exec(&format!(
        "GRANT USAGE, CREATE ON SCHEMA app TO \"{r}\";
         DO $$ DECLARE t record; BEGIN
           FOR t IN SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'app' AND c.relkind IN ('r', 'p') LOOP
             EXECUTE format('ALTER TABLE %s OWNER TO \"{r}\"', t.name);
           END LOOP; END $$;",
        r = role.name
    ));
    let dir = tempfile::tempdir().unwrap();
    let tv = Tvault::new(dir.path().join("vault"));
    tv.init(&role.url(&db), &[]);
    let key = tv.keygen(&dir.path().join("key.txt"));
    for t in TENANTS {
        tv.tenant_add(t, &key);
    }
    tv.backup_all();
    let mut c = db.client();
    let before = whole_db(&mut c);
    let expected = damage_t1(&mut c, false);
    let v = tv.json(&["restore", "t1", "--identity", key.identity_str()]);
    assert_eq!(v["foreign_keys"], "row_by_row", "{v:#}");
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("GRANT SET ON PARAMETER session_replication_role"),
        "{v:#}"
    );
    assert_eq!(changes(&v), expected);
    let after = whole_db(&mut c);
    for (table, rows) in &before {
        assert_rows_eq(
            &format!("{table} after a fallback restore"),
            rows,
            &after[table],
        );
    }
}

#[test]
fn rows_route_into_partitions_created_after_the_backup() {
    let (env, key) = Env::with_tenants("real_partitions", &FIX, &TENANTS);
    let mut c = env.db.client();
    let t1 = "r_.customer_id IN (SELECT customer_id FROM app.customer WHERE tenant_id = 't1')";
    let want = rows_exact(&mut c, "app.payment", t1, None);
    env.tv.backup_all();
    // February's partition is dropped (with every tenant's rows) and replaced by two halves.
    env.db.exec(
        "DROP TABLE app.payment_p2022_02;
         CREATE TABLE app.payment_feb_a PARTITION OF app.payment FOR VALUES FROM ('2022-02-01') TO ('2022-02-15');
         CREATE TABLE app.payment_feb_b PARTITION OF app.payment FOR VALUES FROM ('2022-02-15') TO ('2022-03-01');",
    );
    assert_ne!(rows_exact(&mut c, "app.payment", t1, None), want);
    let v = restore_json(&env, &key, "t1", &[]);
    assert!(changes(&v)["app.payment"].0 > 0, "{v:#}");
    assert_rows_eq(
        "t1's payments",
        &want,
        &rows_exact(&mut c, "app.payment", t1, None),
    );
    for part in ["app.payment_feb_a", "app.payment_feb_b"] {
        assert!(
            env.db.count(&format!("FROM {part}")) > 0,
            "nothing routed into {part}"
        );
    }
}
