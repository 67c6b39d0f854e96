//! Silo tenants (one database each) next to pooled and bridge ones in one vault: one cycle backs
//! up every model, a silo's database is read on its own snapshot, a failing one fails its tenant
//! alone, and restoring a silo tenant, in place or into a fresh database, touches no other
//! database.

use std::collections::BTreeMap;
use tests::*;

conformance! { silo_round_trip }

/// Pooled tenants in the source database, for the vaults whose silos sit next to them.
const POOL_SQL: &str = "CREATE TABLE accounts (tenant_id text NOT NULL, id int, name text,
        PRIMARY KEY (tenant_id, id));
    INSERT INTO accounts SELECT 'pooled' || (i % 3), i, 'account ' || i FROM generate_series(1, 30) i;";

/// `n` silo databases, each filled by `fill_silo` for its tenant `s<i>`: `i + 2` customers.
fn silo_dbs(name: &str, n: usize) -> Vec<TestDb> {
    (0..n)
        .map(|i| {
            let db = TestDb::with_fixture(&format!("{name}_s{i}"), &["silo.sql"]);
            db.exec(&format!("SELECT fill_silo({}, 's{i}')", i + 2));
            db
        })
        .collect()
}

/// Registers silo tenant `s<i>` for each database: the first by connection string, the
/// others by name on the source's server.
fn register_silos(env: &Env, key: &Key, dbs: &[TestDb]) {
    for (i, db) in dbs.iter().enumerate() {
        let database = match i {
            0 => db.url.clone(),
            _ => db.name.clone(),
        };
        let id = format!("s{i}");
        let args = ["tenant", "add", &id, "--recipient", &key.recipient];
        env.tv.ok(&[&args[..], &["--database", &database]].concat());
    }
}

/// A vault over the pooled tenants pooled0..2 and `n` silo tenants.
fn silo_env_on(name: &str, backend: Backend, n: usize) -> (Env, Key, Vec<TestDb>) {
    let env = Env::on(name, &[], backend);
    env.db.exec(POOL_SQL);
    env.tv.init(&env.db.url, &[]);
    let key = env.keygen("key.txt");
    for i in 0..3 {
        env.tv.tenant_add(&format!("pooled{i}"), &key);
    }
    let dbs = silo_dbs(name, n);
    register_silos(&env, &key, &dbs);
    (env, key, dbs)
}

/// Every row of every database: the source's and each silo's, by database and table.
fn all_databases(env: &Env, dbs: &[TestDb]) -> BTreeMap<String, Vec<String>> {
    let mut all = BTreeMap::new();
    for db in std::iter::once(&env.db).chain(dbs) {
        for (table, rows) in whole_db(&mut db.client()) {
            all.insert(format!("{}/{table}", db.name), rows);
        }
    }
    all
}

/// On every store: a silo tenant restored in place, then into its database dropped and made
/// again empty (tables, types, sequences and keys from the archive); nothing else changes.
fn silo_round_trip(backend: Backend, name: &str) {
    let (env, key, dbs) = silo_env_on(name, backend, 3);
    let snap = env.tv.backup_all();
    let at_backup = all_databases(&env, &dbs);
    let s1 = &dbs[1];
    s1.exec(
        "DELETE FROM notes; UPDATE customers SET name = 'x' WHERE id = 1;
         DELETE FROM audit.log WHERE id = 2; INSERT INTO orders (customer_id, placed) VALUES (2, '2026-03-01')",
    );
    dbs[2].exec("UPDATE customers SET name = 'later' WHERE id = 1");
    env.db
        .exec("UPDATE accounts SET name = 'later' WHERE tenant_id = 'pooled2'");
    let mut expected = all_databases(&env, &dbs);
    for (table, rows) in &at_backup {
        if table.starts_with(&format!("{}/", s1.name)) {
            expected.insert(table.clone(), rows.clone());
        }
    }
    env.tv.restore("s1", &snap, &key, None);
    assert_tables_eq("after restoring s1", &expected, &all_databases(&env, &dbs));

    // Its database gone and made again empty: the archive's DDL makes its tables first.
    let admin = admin_url();
    let mut c = connect(admin);
    for sql in [
        "DROP DATABASE \"{}\" WITH (FORCE)",
        "CREATE DATABASE \"{}\"",
    ] {
        c.batch_execute(&sql.replace("{}", &s1.name)).unwrap();
    }
    env.tv.restore("s1", &snap, &key, None);
    assert_tables_eq(
        "after restoring s1 into an empty database",
        &expected,
        &all_databases(&env, &dbs),
    );
    // Keys go on from the restored rows; the foreign keys and the second schema are back.
    s1.exec(
        "INSERT INTO customers (name) VALUES ('new');
         INSERT INTO orders (customer_id, placed) VALUES (1, '2025-02-02');
         INSERT INTO audit.log (customer_id, what) VALUES (1, 'by hand')",
    );
    let partitions = s1.count("FROM pg_inherits WHERE inhparent = 'orders'::regclass");
    assert_eq!(
        partitions, 2,
        "orders is partitioned again, by its two partitions"
    );
    let orphan = s1
        .client()
        .batch_execute("INSERT INTO notes VALUES (999, 'no such customer')");
    assert!(orphan.is_err(), "the foreign key of notes is back");
}

/// `tvault restore TENANT --snapshot SNAP --identity K ARGS… --json`, which must succeed.
#[track_caller]
fn restore_with(env: &Env, key: &Key, tenant: &str, snap: &str, args: &[&str]) -> Value {
    let base = ["restore", tenant, "--snapshot", snap, "--identity"];
    let o = env
        .tv
        .run(&[&base[..], &[key.identity_str()], args, &["--json"]].concat());
    o.assert_code(0, "restore");
    let v: Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v:#}");
    v
}

fn summary<'a>(report: &'a Value, tenant: &str) -> Option<&'a Value> {
    report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == tenant)
}

#[test]
fn silos_back_up_with_bridge_and_pooled_tenants_in_one_cycle() {
    // 3 pooled tenants and 201 bridge ones (bridge.rs), and 20 silos by import.
    let (env, key) = crate::bridge::bridge_env_on("silo_cycle", Backend::Local);
    let mut list = String::new();
    let dbs = silo_dbs("silo_cycle", 20);
    for (i, db) in dbs.iter().enumerate() {
        list.push_str(&format!("s{i}\tdatabase={}\t{}\n", db.name, key.recipient));
    }
    let file = env.path("silos.tsv");
    std::fs::write(&file, list).unwrap();
    env.tv.ok(&["tenant", "import", file.to_str().unwrap()]);
    let config = env.tv.vault.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("connections_per_server = 4", "connections_per_server = 2"),
    )
    .unwrap();
    let listed = env.tv.json(&["tenant", "list"]);
    let s3 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "s3");
    assert_eq!(s3.unwrap()["model"], "silo", "{listed:#}");

    // Watch the connections to the silo databases while the cycle runs.
    let names: Vec<String> = dbs.iter().map(|d| d.name.clone()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = connect(admin_url());
            let mut most = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n: i64 = c
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE datname = ANY($1) AND backend_type = 'client backend'",
                        &[&names],
                    )
                    .unwrap()
                    .get(0);
                most = most.max(n);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            most
        })
    };
    let report = env.tv.json(&["backup", "--all"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = watcher.join().unwrap();
    assert!(
        (1..=2).contains(&most),
        "at most 2 connections to the silos' server at once, seen {most}"
    );
    assert_eq!(
        report["failed_tenants"],
        serde_json::json!([]),
        "{report:#}"
    );
    assert_eq!(report["tenants"].as_array().unwrap().len(), 224);
    // s7: 9 customers, 18 orders, 9 notes and 18 log rows of the trigger.
    let s7 = summary(&report, "s7").unwrap();
    assert_eq!(
        (s7["tables"].as_u64(), s7["rows"].as_u64()),
        (Some(4), Some(54)),
        "{s7:#}"
    );
    // Every silo's tenant_id column holds its own id: none is reported unregistered (the one
    // reported is the source's: t_5 in the pool).
    let unregistered = report["unregistered_tenants"].to_string();
    assert!(!unregistered.contains("\"s"), "{report:#}");

    // A database that is gone fails its tenant alone; the cycle goes on (exit 6).
    let mut admin = connect(admin_url());
    admin
        .batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", dbs[7].name))
        .unwrap();
    let (report, failed) = env.tv.backup_partly("a backup in which one tenant failed");
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0].0, "s7");
    assert!(failed[0].1.contains("does not exist"), "{report:#}");
    assert_eq!(report["tenants"].as_array().unwrap().len(), 223);

    // Registration refuses the source database, a database another tenant has, and a password.
    for (database, why) in [
        (env.db.name.clone(), "source database"),
        (dbs[3].name.clone(), "already tenant \"s3\"'s"),
        (
            url_with_user(&dbs[4].url, "tvault", Some("hunter2")),
            "password",
        ),
    ] {
        let o = env.tv.run(&[
            "tenant",
            "add",
            "extra",
            "--recipient",
            &key.recipient,
            "--database",
            &database,
        ]);
        assert_ne!(o.code, 0, "{database} refused");
        assert!(o.stderr.contains(why), "{why}: {}", o.stderr);
        assert!(!o.stderr.contains("hunter2"), "{}", o.stderr);
    }
}

#[test]
fn a_pooled_tenant_moves_to_a_schema_then_a_database_and_back() {
    let (env, key, dbs) = silo_env_on("silo_move", Backend::Local, 2);
    let mut c = env.db.client();
    let pooled =
        |c: &mut Client| rows_exact(c, "public.accounts", "r_.tenant_id = 'pooled1'", None);
    let in_pool = env.tv.backup_all();
    let rows = pooled(&mut c);
    let others = all_databases(&env, &dbs);

    // Pool → bridge.
    restore_with(
        &env,
        &key,
        "pooled1",
        &in_pool,
        &["--into-schema", "p1_own"],
    );
    env.tv
        .ok(&["tenant", "place", "pooled1", "--schema", "p1_own"]);
    env.db
        .exec("DELETE FROM accounts WHERE tenant_id = 'pooled1'");
    let in_bridge = env.tv.backup_all();
    assert_eq!(rows_exact(&mut c, "p1_own.accounts", "true", None), rows);

    // Bridge → silo: a new, empty database gets the tables from the archive.
    let target = TestDb::new("silo_move_p1");
    restore_with(
        &env,
        &key,
        "pooled1",
        &in_bridge,
        &["--into-database", &target.name],
    );
    let placed = env
        .tv
        .json(&["tenant", "place", "pooled1", "--database", &target.name]);
    assert_eq!(placed["model"], "silo", "{placed:#}");
    env.db.exec("DROP SCHEMA p1_own CASCADE");
    let mut t = target.client();
    assert_eq!(rows_exact(&mut t, "public.accounts", "true", None), rows);
    // Life goes on in the silo.
    target.exec("UPDATE accounts SET name = 'changed in the silo' WHERE id = 1");
    let in_silo = env.tv.backup_all();
    let silo_rows = rows_exact(&mut t, "public.accounts", "true", None);
    assert_ne!(silo_rows, rows);

    // Silo → bridge again, from the silo's own snapshot.
    restore_with(
        &env,
        &key,
        "pooled1",
        &in_silo,
        &["--into-schema", "p1_back"],
    );
    assert_eq!(
        rows_exact(&mut c, "p1_back.accounts", "true", None),
        silo_rows
    );

    // (A copy to look at: its table would count as pooled, next to public.accounts.)
    env.db.exec("DROP SCHEMA p1_back CASCADE");

    // And back into the pool, from the silo's snapshot: its tables go to the pooled tables of
    // their names, rows identical (their tenant column names the tenant).
    env.tv.ok(&["tenant", "place", "pooled1", "--pool"]);
    env.tv.restore("pooled1", &in_silo, &key, None);
    assert_eq!(pooled(&mut c), silo_rows);
    // The snapshot taken in the pool restores there too.
    env.tv.restore("pooled1", &in_pool, &key, None);
    assert_eq!(pooled(&mut c), rows);
    assert_tables_eq(
        "every database after the moves",
        &others,
        &all_databases(&env, &dbs),
    );

    // A restore refuses another silo tenant's database, and the source, which others share.
    for (database, why) in [
        (&dbs[1].name, "already tenant \"s1\"'s"),
        (&env.db.name, "source database"),
    ] {
        let id = key.identity_str();
        let args = ["restore", "s0", "--snapshot", &in_silo, "--identity", id];
        let o = env
            .tv
            .run(&[&args[..], &["--into-database", database]].concat());
        assert_ne!(o.code, 0, "{database}");
        assert!(o.stderr.contains(why), "{why}: {}", o.stderr);
    }
}

/// `tvault VERB s1 --table TABLE --key id=2 --snapshot SNAP --identity ID [EXTRA] --json`.
fn record(env: &Env, id: &str, verb: &str, table: &str, snap: &str, extra: &[&str]) -> Value {
    env.tv.record(verb, "s1", table, snap, id, extra)
}

#[test]
fn records_erasure_and_exports_work_for_a_silo_tenant() {
    let (env, key, dbs) = silo_env_on("silo_records", Backend::Local, 3);
    let id = key.identity_str();
    let s1 = &dbs[1];
    let snap = env.tv.backup_all();
    let at_backup = all_databases(&env, &dbs);

    // diff compares the archived record with the live row in the tenant's database.
    s1.exec("UPDATE customers SET name = 'renamed' WHERE id = 2");
    let diff = record(&env, id, "diff", "customers", &snap, &[]);
    assert!(diff.to_string().contains("renamed"), "{diff:#}");
    // A record and the rows that reference it come back, in both schemas of the database.
    s1.exec(
        "DELETE FROM notes WHERE customer_id = 2; DELETE FROM orders WHERE customer_id = 2;
         DELETE FROM audit.log WHERE customer_id = 2; DELETE FROM customers WHERE id = 2",
    );
    let r = record(
        &env,
        id,
        "restore-records",
        "customers",
        &snap,
        &["--with-related"],
    );
    assert_eq!(
        r["inserted"], 5,
        "the customer, 2 orders, 2 log rows: {r:#}"
    );
    // A row of a table without a primary key is no record: it comes back by hand here.
    s1.exec("INSERT INTO notes VALUES (2, NULL)");
    assert_tables_eq(
        "after restoring one record",
        &at_backup,
        &all_databases(&env, &dbs),
    );

    // Erasure: log row 3 leaves every archive and every export. (Erasing a customer with
    // --cascade is refused here: notes, which reference it, has no primary key.)
    env.tv.ok(&[
        "erase",
        "s1",
        "--table",
        "audit.log",
        "--key",
        "id=3",
        "--identity",
        id,
    ]);
    let (_, file) = crate::export::export(&env, "s1", &[], "s1.tvx");
    let (_, dir) = crate::export::open(&env, &file, &key, "s1-opened", &[]);
    let text = std::fs::read_to_string(dir.join("schema.sql")).unwrap();
    assert!(text.contains("CREATE TABLE \"audit\".\"log\""), "{text}");
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let log = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "audit.log")
        .unwrap_or_else(|| panic!("{m:#}"));
    let lines = std::fs::read_to_string(dir.join(log["file"].as_str().unwrap())).unwrap();
    assert_eq!(
        lines.lines().count(),
        5,
        "6 log rows but the erased one: {lines}"
    );
    assert!(lines.lines().all(|l| !l.starts_with("3\t")), "{lines}");
    let (_, live) = crate::export::export(&env, "s1", &["--live"], "s1-live.tvx");
    crate::export::open(&env, &live, &key, "s1-live", &[]);
    env.tv.ok(&["verify", "--tenant", "s1", "--identity", id]);

    // A whole restore does not bring the erased customer back; the other databases stay.
    let before = all_databases(&env, &dbs);
    env.tv.restore("s1", &snap, &key, None);
    assert_eq!(s1.count("FROM audit.log WHERE id = 3"), 0);
    let mut now = all_databases(&env, &dbs);
    let mut expected = before;
    let mine = format!("{}/", s1.name);
    expected.retain(|k, _| !k.starts_with(&mine));
    now.retain(|k, _| !k.starts_with(&mine));
    assert_tables_eq("other databases after restoring s1", &expected, &now);

    // Forgetting a silo tenant leaves its database's rows and every other archive.
    let before_forget = all_databases(&env, &dbs);
    env.tv.ok(&["forget-tenant", "s2", "--yes"]);
    assert_ne!(env.tv.run(&["restore", "s2", "--identity", id]).code, 0);
    env.tv.restore("s0", &snap, &key, None);
    assert_tables_eq(
        "after forgetting s2",
        &before_forget,
        &all_databases(&env, &dbs),
    );
}

#[test]
fn a_source_that_cannot_be_read_fails_its_tenants_and_the_silos_go_on() {
    let (env, key, dbs) = silo_env_on("silo_source_down", Backend::Local, 2);
    env.tv.backup_all();
    connect(admin_url())
        .batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", env.db.name))
        .unwrap();
    dbs[0].exec("UPDATE customers SET name = 'after the source went' WHERE id = 1");
    let (report, failed) = env
        .tv
        .backup_partly("a backup in which the source's tenants failed");
    let mut failed: Vec<&str> = failed.iter().map(|(t, _)| t.as_str()).collect();
    failed.sort();
    assert_eq!(failed, ["pooled0", "pooled1", "pooled2"], "{report:#}");
    let backed_up: Vec<&str> = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(backed_up.len(), 2, "{report:#}");
    let s0 = summary(&report, "s0").unwrap();
    assert_eq!(
        s0["unchanged"], false,
        "s0 changed since the first cycle: {s0:#}"
    );
    env.tv
        .ok(&["verify", "--tenant", "s0", "--identity", key.identity_str()]);
}

#[test]
fn a_silo_on_a_second_server_is_read_over_tls_with_a_password_file() {
    let (mut env, key, dbs) = silo_env_on("silo_far", Backend::Local, 2);
    let sc = secure_cluster();
    let far = TestDb::on_cluster(&sc.admin_url, "silo_far_db");
    far.exec(&fixture("silo.sql"));
    far.exec("SELECT fill_silo(5, 'far')");
    // The tenant's record names its server and TLS settings; the password comes from a file.
    let ca = sc.tls_dir.join("root.crt");
    let database = format!(
        "host=localhost port={} dbname={} user=tvault sslmode=verify-full sslrootcert={}",
        sc.port,
        far.name,
        ca.display()
    );
    let pgpass = env.path("pgpass");
    sc.password_file(&pgpass);
    env.tv
        .envs
        .push(("PGPASSFILE".into(), pgpass.to_string_lossy().into_owned()));
    let add = ["tenant", "add", "far", "--recipient", &key.recipient];
    env.tv.ok(&[&add[..], &["--database", &database]].concat());

    let report = env.tv.json(&["backup", "--all"]);
    assert_eq!(
        report["failed_tenants"],
        serde_json::json!([]),
        "{report:#}"
    );
    let far_summary = summary(&report, "far").unwrap();
    // 5 customers, 10 orders, 5 notes, 10 log rows.
    assert_eq!(far_summary["rows"], 30, "{far_summary:#}");
    let snap = report["snapshot"].as_str().unwrap().to_string();

    let at_backup = whole_db(&mut far.client());
    let others = all_databases(&env, &dbs);
    far.exec("DELETE FROM notes; UPDATE customers SET name = 'x'");
    env.tv.restore("far", &snap, &key, None);
    assert_tables_eq(
        "the far silo after its restore",
        &at_backup,
        &whole_db(&mut far.client()),
    );
    assert_tables_eq("the other databases", &others, &all_databases(&env, &dbs));
}
