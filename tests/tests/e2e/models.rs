//! Conformance across partition models: the same tenant, with the same tables and rows, pooled,
//! in a schema of its own (bridge) and in a database of its own (silo), goes through the same
//! operations (backup, diff, record restore, whole restore, erasure, export, verify, forget),
//! and every model gives the same results, with the other tenant's rows untouched.

use tests::*;

#[derive(Clone, Copy, Debug)]
enum Model {
    Pool,
    Bridge,
    Silo,
}

/// The tables of the tenant in every model; pooled, they hold the other tenant's rows too.
const TABLES: &str = "
    CREATE TABLE items (tenant_id text NOT NULL, id int, name text, price numeric(8,2),
        PRIMARY KEY (tenant_id, id));
    CREATE TABLE tags (tenant_id text NOT NULL, item_id int, tag text, PRIMARY KEY (tenant_id, item_id, tag),
        FOREIGN KEY (tenant_id, item_id) REFERENCES items);";

/// `tenant`'s rows in the tables of `schema`.
fn rows(schema: &str, tenant: &str) -> String {
    format!(
        "INSERT INTO {schema}.items SELECT '{tenant}', i, 'item ' || i, i * 1.5
             FROM generate_series(1, 12) i;
         INSERT INTO {schema}.tags SELECT '{tenant}', i, t FROM generate_series(1, 12) i,
             unnest(ARRAY['red', 'big']) t WHERE i % 3 <> 0;"
    )
}

/// A vault with tenant `acme` placed by `model` and a pooled tenant `other` next to it. Returns
/// the database acme's tables are in (the source, or its own) and the schema they are in.
struct Placed {
    env: Env,
    key: Key,
    own: Option<TestDb>,
    schema: &'static str,
}

impl Placed {
    fn new(model: Model) -> Placed {
        let name = format!("models_{model:?}").to_lowercase();
        let env = Env::new(&name, &[]);
        env.db.exec(TABLES);
        env.db.exec(&rows("public", "other"));
        env.tv.init(&env.db.url, &[]);
        let key = env.keygen("key.txt");
        env.tv.tenant_add("other", &key);
        let add = ["tenant", "add", "acme", "--recipient", &key.recipient];
        let (own, schema) = match model {
            Model::Pool => {
                env.db.exec(&rows("public", "acme"));
                env.tv.ok(&add);
                (None, "public")
            }
            Model::Bridge => {
                env.db.exec(&format!(
                    "CREATE SCHEMA acme_own; SET search_path = acme_own; {TABLES} {}",
                    rows("acme_own", "acme")
                ));
                env.tv.ok(&[&add[..], &["--schema", "acme_own"]].concat());
                (None, "acme_own")
            }
            Model::Silo => {
                let db = TestDb::new(&format!("{name}_acme"));
                db.exec(TABLES);
                db.exec(&rows("public", "acme"));
                env.tv.ok(&[&add[..], &["--database", &db.name]].concat());
                (Some(db), "public")
            }
        };
        Placed {
            env,
            key,
            own,
            schema,
        }
    }

    /// `table` as acme's archives name it: pooled tables keep their schema, a bridge or silo
    /// tenant's own are relative to it.
    fn archived(&self, table: &str) -> String {
        match (self.own.is_some(), self.schema) {
            (false, "public") => format!("public.{table}"),
            _ => table.to_string(),
        }
    }

    /// The database acme's tables are in.
    fn db(&self) -> &TestDb {
        self.own.as_ref().unwrap_or(&self.env.db)
    }

    /// acme's rows of `table`, in key order.
    fn acme(&self, table: &str) -> Vec<String> {
        let name = format!("{}.{table}", self.schema);
        rows_exact(
            &mut self.db().client(),
            &name,
            "r_.tenant_id = 'acme'",
            None,
        )
    }

    fn other(&self) -> Vec<Vec<String>> {
        let mut c = self.env.db.client();
        ["items", "tags"]
            .iter()
            .map(|t| {
                rows_exact(
                    &mut c,
                    &format!("public.{t}"),
                    "r_.tenant_id = 'other'",
                    None,
                )
            })
            .collect()
    }

    fn json(&self, args: &[&str]) -> Value {
        let id = self.key.identity_str();
        self.env.tv.json(&[args, &["--identity", id]].concat())
    }
}

/// What one model gave, to compare across models.
#[derive(Debug, PartialEq)]
struct Outcome {
    backed_up: (Value, Value),
    diff: Vec<String>,
    record_restore: Value,
    found: Vec<String>,
    restored: Vec<Vec<String>>,
    exported: Vec<String>,
}

fn run(model: Model) -> Outcome {
    let p = Placed::new(model);
    let snap = p.env.tv.backup_all();
    let report = p.env.tv.json(&["snapshots", "--tenant", "acme"]);
    let at_backup = [p.acme("items"), p.acme("tags")];
    let other = p.other();
    let acme_report = &report.as_array().unwrap()[0];
    let backed_up = (acme_report["tables"].clone(), acme_report["rows"].clone());

    // diff shows the changed field of a record; restore-records brings a record back with the
    // rows that reference it.
    let s = p.schema;
    p.db().exec(&format!(
        "UPDATE {s}.items SET name = 'renamed' WHERE tenant_id = 'acme' AND id = 1;
         DELETE FROM {s}.tags WHERE tenant_id = 'acme' AND item_id = 2;
         DELETE FROM {s}.items WHERE tenant_id = 'acme' AND id = 2;"
    ));
    let items = p.archived("items");
    let record = ["--table", &items, "--key", "id=1", "--snapshot", &snap];
    let diff = p.json(&[&["diff", "acme"], &record[..]].concat());
    let diff: Vec<String> = diff["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("{model:?}: {diff:#}"))
        .iter()
        .map(|d| format!("{}: {} -> {}", d["column"], d["snapshot"], d["live"]))
        .collect();
    let args = [
        "restore-records",
        "acme",
        "--table",
        &items,
        "--key",
        "id=2",
    ];
    let r = p.json(&[&args[..], &["--snapshot", &snap, "--with-related"]].concat());
    let record_restore = r["inserted"].clone();
    // find needs no key: the record's versions, from the inventory.
    let args = ["find", "acme", "--table", &items, "--key", "id=1"];
    let found = p.env.tv.json(&args);
    let found: Vec<String> = found
        .as_array()
        .unwrap_or_else(|| panic!("{model:?}: {found:#}"))
        .iter()
        .map(|v| format!("{} {}", v["present"], v["change"]))
        .collect();

    // A whole restore puts every row back and no other tenant's.
    p.db().exec(&format!(
        "INSERT INTO {s}.items VALUES ('acme', 99, 'new', 1)"
    ));
    p.env
        .db
        .exec("UPDATE public.items SET name = 'other, later' WHERE tenant_id = 'other' AND id = 3");
    let other_later = p.other();
    assert_ne!(other_later, other);
    p.env.tv.restore("acme", &snap, &p.key, None);
    let restored = vec![p.acme("items"), p.acme("tags")];
    assert_eq!(restored, at_backup, "{model:?}: acme is back as it was");
    assert_eq!(
        p.other(),
        other_later,
        "{model:?}: the other tenant is untouched"
    );

    // Erasure: item 5 and its tags leave the archive and every export.
    let args = [
        "erase",
        "acme",
        "--table",
        &items,
        "--key",
        "id=5",
        "--cascade",
    ];
    p.json(&args);
    let (_, file) = crate::export::export(&p.env, "acme", &[], "acme.tvx");
    let (_, dir) = crate::export::open(&p.env, &file, &p.key, "acme-opened", &[]);
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut exported = vec![];
    for t in m["tables"].as_array().unwrap() {
        let text = std::fs::read_to_string(dir.join(t["file"].as_str().unwrap())).unwrap();
        // Pooled tables keep their schema in an archive; a bridge or silo tenant's are relative.
        let table = t["table"].as_str().unwrap().trim_start_matches("public.");
        exported.push(format!("{table}: {} rows", text.lines().count()));
        exported.extend(text.lines().map(|l| format!("{table}: {l}")));
    }
    assert!(
        exported.iter().all(|l| !l.starts_with("items: acme\t5\t")),
        "{model:?}: {exported:?}"
    );
    p.env.tv.ok(&[
        "verify",
        "--tenant",
        "acme",
        "--identity",
        p.key.identity_str(),
    ]);

    // Forgetting acme leaves the other tenant's rows and archive.
    p.env.tv.ok(&["forget-tenant", "acme", "--yes"]);
    assert_ne!(
        p.env
            .tv
            .run(&["restore", "acme", "--identity", p.key.identity_str()])
            .code,
        0
    );
    p.env.tv.restore("other", &snap, &p.key, None);
    assert_eq!(
        p.other(),
        other,
        "{model:?}: the other tenant restores alone"
    );
    Outcome {
        backed_up,
        diff,
        record_restore,
        found,
        restored,
        exported,
    }
}

#[test]
fn every_partition_model_gives_the_same_results() {
    let pool = run(Model::Pool);
    assert_eq!(pool.backed_up, (2.into(), 28.into()), "{pool:#?}");
    assert_eq!(pool.record_restore, 3, "item 2 and its two tags: {pool:#?}");
    assert!(!pool.diff.is_empty(), "{pool:#?}");
    assert_eq!(pool.found, ["true \"added\""], "{pool:#?}");
    for model in [Model::Bridge, Model::Silo] {
        assert_eq!(run(model), pool, "{model:?} against the pool");
    }
}
