//! Bridge tenants (one schema each) next to pooled ones in one vault: one cycle backs up all of
//! them, and restoring one bridge tenant puts its schema's rows back exactly while every other
//! schema, pooled row and global row stays as it is.

use std::collections::BTreeMap;
use tests::*;

conformance! { bridge_round_trip }

/// On every store: a bridge tenant restored in place and into its dropped schema, a pooled
/// tenant next to it untouched.
fn bridge_round_trip(backend: Backend, name: &str) {
    let (env, key) = bridge_env_on(name, backend);
    let mut c = env.db.client();
    let snap = env.tv.backup_all();
    let at_backup = everything(&mut c);
    env.db.exec(
        "DELETE FROM t_11.events; UPDATE t_11.customers SET name = 'x';
         UPDATE accounts SET name = 'later' WHERE tenant_id = 'pooled2'",
    );
    let mut expected = everything(&mut c);
    for t in ["customers", "invoices", "events"] {
        let name = format!("t_11.{t}");
        expected.insert(name.clone(), at_backup[&name].clone());
    }
    env.tv.restore("t_11", &snap, &key, None);
    assert_tables_eq("after restoring t_11", &expected, &everything(&mut c));
    env.db.exec("DROP SCHEMA t_11 CASCADE");
    env.tv.restore("t_11", &snap, &key, None);
    assert_tables_eq("after making t_11 again", &expected, &everything(&mut c));
}

const FIX: [&str; 1] = ["bridge.sql"];
const HOSTILE_SCHEMA: &str = "tenant \"q\"; --";
const HOSTILE_TENANT: &str = "o'brien";

/// `schema.table` quoted for SQL.
fn table(c: &mut Client, schema: &str, name: &str) -> String {
    c.query_one(
        "SELECT format('%I.%I', $1::text, $2::text)",
        &[&schema, &name],
    )
    .unwrap()
    .get(0)
}

/// Every row of every table of the database, by table.
fn everything(c: &mut Client) -> BTreeMap<String, Vec<String>> {
    whole_db(c)
}

/// The rows of a schema's three tables.
fn schema_rows(c: &mut Client, schema: &str) -> BTreeMap<String, Vec<String>> {
    ["customers", "invoices", "events"]
        .into_iter()
        .map(|t| {
            let name = table(c, schema, t);
            (t.to_string(), rows_exact(c, &name, "true", None))
        })
        .collect()
}

/// Registers the pooled tenants and t_1..t_200 (bridge) by import, the hostile one by `add`.
fn bridge_env(name: &str) -> (Env, Key) {
    bridge_env_on(name, Backend::Local)
}

pub(crate) fn bridge_env_on(name: &str, backend: Backend) -> (Env, Key) {
    let env = Env::on(name, &FIX, backend);
    env.tv.init(&env.db.url, &[]);
    let key = env.keygen("key.txt");
    let mut list = String::new();
    for i in 0..3 {
        list.push_str(&format!("pooled{i}\t{}\n", key.recipient));
    }
    for i in 1..=200 {
        list.push_str(&format!("t_{i}\tschema=t_{i}\t{}\n", key.recipient));
    }
    let file = env.path("tenants.tsv");
    std::fs::write(&file, list).unwrap();
    env.tv.ok(&["tenant", "import", file.to_str().unwrap()]);
    env.tv.ok(&[
        "tenant",
        "add",
        HOSTILE_TENANT,
        "--recipient",
        &key.recipient,
        "--schema",
        HOSTILE_SCHEMA,
    ]);
    (env, key)
}

/// `tvault restore TENANT --snapshot SNAP --into-schema SCHEMA --json`.
fn into_schema(env: &Env, key: &Key, tenant: &str, snap: &str, schema: &str) -> Output {
    let id = key.identity_str();
    let args = ["restore", tenant, "--snapshot", snap, "--identity", id];
    env.tv
        .run(&[&args[..], &["--into-schema", schema, "--json"]].concat())
}

/// The JSON report of a command that must have succeeded.
#[track_caller]
fn ok_json(o: Output) -> Value {
    o.assert_code(0, "restore --into-schema");
    serde_json::from_str(o.stdout.trim()).unwrap()
}

/// A tenant's table and row counts in a backup report.
#[track_caller]
fn tables_and_rows(report: &Value, tenant: &str) -> (Option<u64>, Option<u64>) {
    let t = tenant_summary(report, tenant);
    (t["tables"].as_u64(), t["rows"].as_u64())
}

fn tenant_summary<'a>(report: &'a Value, tenant: &str) -> &'a Value {
    report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == tenant)
        .unwrap_or_else(|| panic!("{tenant} not in the report"))
}

#[test]
fn bridge_tenants_back_up_with_pooled_ones_and_restore_alone() {
    let (env, key) = bridge_env("bridge_restore");
    let mut c = env.db.client();
    let backup = env.tv.json(&["backup", "--all"]);
    assert_eq!(
        backup["failed_tenants"],
        serde_json::json!([]),
        "{backup:#}"
    );
    assert_eq!(backup["tenants"].as_array().unwrap().len(), 204);
    // t_7 has 2 + 7 % 7 = 2 customers, 6 invoices, 6 events (the trigger's).
    assert_eq!(tables_and_rows(&backup, "t_7"), (Some(3), Some(14)));
    // The bridge tables' tenant_id column (each tenant's own id) does not make them pooled.
    assert_eq!(tables_and_rows(&backup, "pooled0"), (Some(1), Some(10)));
    // A pooled row carrying a bridge tenant's id is not that tenant's.
    let unregistered = &backup["unregistered_tenants"];
    assert_eq!(
        unregistered,
        &serde_json::json!([{"tenant": "t_5", "rows": 1}])
    );
    let snap = snapshot_id(&backup);
    let at_backup = everything(&mut c);

    // t_7 loses, changes and gains rows (the trigger adds events); others change too.
    c.batch_execute(
        "UPDATE t_7.customers SET name = 'changed', mood = 'meh' WHERE id = 1;
         DELETE FROM t_7.invoices WHERE id % 2 = 0;
         INSERT INTO t_7.invoices (customer_id, total) VALUES (2, 1);
         DELETE FROM t_7.events WHERE what IS NULL OR customer_id = 1;
         UPDATE t_8.customers SET name = 'later' WHERE id = 1;
         INSERT INTO accounts VALUES ('pooled0', 99, 'later');
         UPDATE plans SET price = 11 WHERE code = 'pro';",
    )
    .unwrap();
    let mut expected = everything(&mut c);
    for t in ["customers", "invoices", "events"] {
        let name = format!("t_7.{t}");
        assert_ne!(
            expected[&name], at_backup[&name],
            "{name} must have changed"
        );
        expected.insert(name.clone(), at_backup[&name].clone());
    }
    let report = env.tv.restore("t_7", &snap, &key, None);
    let mut tables: Vec<&str> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    tables.sort();
    assert_eq!(
        tables,
        ["t_7.customers", "t_7.events", "t_7.invoices"],
        "{report:#}"
    );
    assert_tables_eq("after restoring t_7", &expected, &everything(&mut c));

    // The hostile schema's tenant: emptied, then restored.
    let (customers, invoices, events) = (
        table(&mut c, HOSTILE_SCHEMA, "customers"),
        table(&mut c, HOSTILE_SCHEMA, "invoices"),
        table(&mut c, HOSTILE_SCHEMA, "events"),
    );
    c.batch_execute(&format!(
        "DELETE FROM {events}; DELETE FROM {invoices}; DELETE FROM {customers};"
    ))
    .unwrap();
    env.tv.restore(HOSTILE_TENANT, &snap, &key, None);
    assert_tables_eq(
        "after restoring the hostile schema",
        &expected,
        &everything(&mut c),
    );

    // Records of a bridge tenant are found by their table's name in its schema.
    let found = env
        .tv
        .json(&["find", "t_3", "--table", "customers", "--key", "id=2"]);
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found:#}");

    // The inventory is an index: rebuilt from the store, it knows again whose schema is whose.
    env.tv.json(&["inventory", "rebuild"]);
    let tables = env.tv.json(&["tables"]);
    assert_eq!(tables["tenant_schemas"].as_array().map(Vec::len), Some(201));
    let twin = env.tv.run(&[
        "tenant",
        "add",
        "twin",
        "--recipient",
        &key.recipient,
        "--schema",
        "t_1",
    ]);
    assert!(
        twin.stderr.contains("already tenant \"t_1\"'s"),
        "{}",
        twin.stderr
    );
    env.tv.restore("t_7", &snap, &key, None);
    assert_tables_eq(
        "after a restore from the rebuilt inventory",
        &expected,
        &everything(&mut c),
    );
}

#[test]
fn bridge_restore_into_another_schema_refuses_others_and_missing_schemas() {
    let (env, key) = bridge_env("bridge_elsewhere");
    let mut c = env.db.client();
    let snap = env.tv.backup_all();
    let t9 = schema_rows(&mut c, "t_9");
    let before = everything(&mut c);
    // A schema that does not exist is made from the snapshot's DDL: its own enum type, the
    // identity and serial columns, keys, the trigger-free tables.
    let o = ok_json(into_schema(&env, &key, "t_9", &snap, "scratch"));
    assert_eq!(o["ok"], true, "{o:#}");
    assert_eq!(
        schema_rows(&mut c, "scratch"),
        t9,
        "t_9's rows, now in scratch"
    );
    let mut after = everything(&mut c);
    for t in ["customers", "invoices", "events"] {
        after.remove(&format!("scratch.{t}"));
    }
    assert_tables_eq("everything but scratch", &before, &after);
    // Its identity and serial columns go on after the restored rows; its foreign keys hold.
    env.db.exec(
        "INSERT INTO scratch.customers (name, mood) VALUES ('new', 'meh');
         INSERT INTO scratch.invoices (customer_id, total) SELECT max(id), 1 FROM scratch.customers;",
    );
    let bad = c.batch_execute("INSERT INTO scratch.invoices (customer_id, total) VALUES (9999, 1)");
    assert!(bad.is_err(), "the foreign key to customers was recreated");
    let bad = c.batch_execute("INSERT INTO scratch.customers (name, plan) VALUES ('x', 'gold')");
    assert!(
        bad.is_err(),
        "the foreign key to the global plans table was added back"
    );
    let seq = env
        .db
        .scalar("SELECT pg_get_serial_sequence('scratch.invoices', 'id')");
    assert_eq!(
        seq.as_deref(),
        Some("scratch.invoices_id_seq"),
        "its own sequence"
    );
    let before = everything(&mut c);

    // Another tenant's schema is never a target.
    let o = into_schema(&env, &key, "t_9", &snap, "t_10");
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("tenant \"t_10\"'s own"), "{}", o.stderr);
    assert_tables_eq("after a refused restore", &before, &everything(&mut c));

    // A schema holding pooled tables (other tenants' rows) is never a target.
    let o = into_schema(&env, &key, "t_9", &snap, "public");
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("holds the pooled table public.accounts"),
        "{}",
        o.stderr
    );
    assert_tables_eq("after refused restores", &before, &everything(&mut c));

    // A dropped schema fails its tenant, not the cycle; its snapshots stay, and a restore
    // makes the schema again with every row.
    let t200 = schema_rows(&mut c, "t_200");
    env.db.exec("DROP SCHEMA t_200 CASCADE");
    let o = env.tv.run(&["backup", "--all", "--json"]);
    o.assert_code(6, "a cycle with one tenant's schema gone");
    let report: Value = serde_json::from_str(o.stdout.trim()).unwrap();
    let failed = report["failed_tenants"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0]["tenant"], "t_200");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("t_200"),
        "{report:#}"
    );
    assert_eq!(report["tenants"].as_array().unwrap().len(), 203);
    let listed = env.tv.json(&["snapshots", "--tenant", "t_200"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    let dry = env.tv.run(&[
        "restore",
        "t_200",
        "--identity",
        key.identity_str(),
        "--dry-run",
    ]);
    assert_ne!(
        dry.code, 0,
        "a dry run cannot compare with a schema that is gone"
    );
    env.tv.restore("t_200", &snap, &key, None);
    assert_eq!(schema_rows(&mut c, "t_200"), t200);
    // Its serial and identity columns go on after the restored rows, from its own sequences.
    env.db.exec(
        "INSERT INTO t_200.customers (name) VALUES ('after');
         INSERT INTO t_200.invoices (customer_id, total) SELECT max(id), 1 FROM t_200.customers;",
    );
    let seq = env
        .db
        .scalar("SELECT pg_get_serial_sequence('t_200.invoices', 'id')");
    assert_eq!(seq.as_deref(), Some("t_200.invoices_id_seq"));

    // A schema is one tenant's: registering it twice is refused.
    let o = env.tv.run(&[
        "tenant",
        "add",
        "twin",
        "--recipient",
        &key.recipient,
        "--schema",
        "t_1",
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("already tenant \"t_1\"'s"),
        "{}",
        o.stderr
    );
    let tables = env.tv.json(&["tables"]);
    let schemas = tables["tenant_schemas"].as_array().unwrap();
    assert_eq!(
        schemas.len(),
        201,
        "t_1 … t_200 (t_200 restored) and the hostile one: {tables:#}"
    );

    // A schema holding other tenants' rows is no tenant's own: its tenant fails, and the
    // pooled tenants keep their tables.
    env.db.exec("DROP SCHEMA scratch CASCADE");
    env.tv.ok(&[
        "tenant",
        "add",
        "sharer",
        "--recipient",
        &key.recipient,
        "--schema",
        "public",
    ]);
    let (report, failed) = env
        .tv
        .backup_partly("a cycle with a tenant registered on the pool's schema");
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0].0, "sharer");
    assert!(failed[0].1.contains("public.accounts"), "{report:#}");
    assert_eq!(tables_and_rows(&report, "pooled0"), (Some(1), Some(10)));
}

#[test]
fn a_pooled_tenant_moves_into_a_schema_of_its_own() {
    let (env, key) = bridge_env("bridge_move");
    let mut c = env.db.client();
    let snap = env.tv.backup_all();
    let pooled1 = rows_exact(&mut c, "public.accounts", "r_.tenant_id = 'pooled1'", None);
    let before = everything(&mut c);
    let o = ok_json(into_schema(&env, &key, "pooled1", &snap, "pooled1_own"));
    assert_eq!(o["ok"], true, "{o:#}");
    assert_eq!(
        rows_exact(&mut c, "pooled1_own.accounts", "true", None),
        pooled1
    );
    let mut after = everything(&mut c);
    after.remove("pooled1_own.accounts");
    assert_tables_eq("the pool after the move", &before, &after);

    // Later cycles read pooled1 from its schema; its pooled rows can go.
    let placed = env
        .tv
        .json(&["tenant", "place", "pooled1", "--schema", "pooled1_own"]);
    assert_eq!(placed["model"], "bridge", "{placed:#}");
    env.db.exec(
        "DELETE FROM accounts WHERE tenant_id = 'pooled1';
         UPDATE pooled1_own.accounts SET name = 'moved' WHERE id = 1",
    );
    let backup = env.tv.json(&["backup", "--all"]);
    assert_eq!(tables_and_rows(&backup, "pooled1"), (Some(1), Some(10)));
    // The snapshot from the pool restores into the schema: the rows as they were then.
    env.tv.restore("pooled1", &snap, &key, None);
    assert_eq!(
        rows_exact(&mut c, "pooled1_own.accounts", "true", None),
        pooled1
    );

    // And back into the pool, rows identical; the schema is left as it is.
    env.tv.ok(&["tenant", "place", "pooled1", "--pool"]);
    env.tv.restore("pooled1", &snap, &key, None);
    assert_eq!(
        rows_exact(&mut c, "public.accounts", "r_.tenant_id = 'pooled1'", None),
        pooled1
    );
    assert_tables_eq("the pool after moving back", &before, &{
        let mut now = everything(&mut c);
        now.remove("pooled1_own.accounts");
        now
    });
    let list = env.tv.json(&["tenant", "list"]);
    let p1 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "pooled1")
        .unwrap();
    assert_eq!(p1["model"], "pool", "{list:#}");
}

/// `tvault VERB t_3 --table TABLE --key id=2 --snapshot SNAP --identity ID [EXTRA] --json`.
fn record(env: &Env, id: &str, verb: &str, table: &str, snap: &str, extra: &[&str]) -> Value {
    env.tv.record(verb, "t_3", table, snap, id, extra)
}

/// The opened export's data file of `table` (as its manifest.json lists it), as lines.
fn opened_lines(dir: &std::path::Path, table: &str) -> Vec<String> {
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let t = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("{table} not in {m:#}"));
    let text = std::fs::read_to_string(dir.join(t["file"].as_str().unwrap())).unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn records_erasure_and_exports_work_for_a_bridge_tenant() {
    let (env, key) = bridge_env("bridge_records");
    let id = key.identity_str();
    let mut c = env.db.client();
    let snap = env.tv.backup_all();
    let at_backup = everything(&mut c);

    // diff compares the archived record with the live row in the tenant's schema.
    env.db
        .exec("UPDATE t_3.customers SET name = 'renamed' WHERE id = 2");
    let diff = record(&env, id, "diff", "customers", &snap, &[]);
    assert!(diff.to_string().contains("renamed"), "{diff:#}");
    // A record and the rows that reference it come back; nothing else changes (the invoice
    // trigger does not fire: events stay as they are).
    env.db.exec(
        "DELETE FROM t_3.invoices WHERE customer_id = 2; DELETE FROM t_3.customers WHERE id = 2",
    );
    let r = record(
        &env,
        id,
        "restore-records",
        "customers",
        &snap,
        &["--with-related"],
    );
    assert_eq!(r["inserted"], 4, "the customer and its 3 invoices: {r:#}");
    assert_tables_eq(
        "after restoring one record",
        &at_backup,
        &everything(&mut c),
    );
    let other = env.tv.run(&[
        "restore-records",
        "t_3",
        "--table",
        "t_4.customers",
        "--key",
        "id=1",
        "--snapshot",
        &snap,
        "--identity",
        id,
    ]);
    assert_ne!(other.code, 0, "another schema's table is not t_3's");

    // Erasure: customer 3 and its invoices leave every archive and every export.
    env.tv.ok(&[
        "erase",
        "t_3",
        "--table",
        "customers",
        "--key",
        "id=3",
        "--cascade",
        "--identity",
        id,
    ]);
    let (_, file) = crate::export::export(&env, "t_3", &[], "t_3.tvx");
    let (_, dir) = crate::export::open(&env, &file, &key, "t_3-opened", &[]);
    let customers = opened_lines(&dir, "customers");
    assert_eq!(
        customers.len(),
        4,
        "5 customers but the erased one: {customers:?}"
    );
    assert!(
        customers.iter().all(|l| !l.starts_with("3\t")),
        "{customers:?}"
    );
    let schema_sql = std::fs::read_to_string(dir.join("schema.sql")).unwrap();
    assert!(
        schema_sql.contains("CREATE TABLE \"t_3\".\"customers\""),
        "{schema_sql}"
    );
    let (_, live) = crate::export::export(&env, "t_3", &["--live"], "t_3-live.tvx");
    let (_, dir) = crate::export::open(&env, &live, &key, "t_3-live", &[]);
    let customers = opened_lines(&dir, "t_3.customers");
    assert_eq!(
        customers.len(),
        4,
        "the live row of the erased customer is skipped: {customers:?}"
    );
    env.tv.ok(&["verify", "--tenant", "t_3", "--identity", id]);

    // A whole restore does not bring the erased customer back; the other tenants stay.
    env.tv.restore("t_3", &snap, &key, None);
    assert_eq!(env.db.count("FROM t_3.customers WHERE id = 3"), 0);
    let mut expected = at_backup.clone();
    let mut now = everything(&mut c);
    for t in ["customers", "invoices", "events"] {
        expected.remove(&format!("t_3.{t}"));
        now.remove(&format!("t_3.{t}"));
    }
    assert_tables_eq("other tenants after restoring t_3", &expected, &now);

    // Forgetting a bridge tenant leaves its schema's live rows and every other archive.
    let before_forget = everything(&mut c);
    env.tv.ok(&["forget-tenant", "t_4", "--yes"]);
    let gone = env.tv.run(&["restore", "t_4", "--identity", id]);
    assert_ne!(gone.code, 0, "t_4 is forgotten");
    env.tv.restore("t_5", &snap, &key, None);
    assert_tables_eq("after forgetting t_4", &before_forget, &everything(&mut c));
}
