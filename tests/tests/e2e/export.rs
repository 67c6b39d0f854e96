//! Tenant exports (docs/EXPORT.md): live and sealed exports opened with the tenant's key and
//! loaded into a fresh database, csv and jsonl read back by Python's own parsers and compared
//! value by value with the database, erased people absent from every kind, `--since` changes
//! that turn the first export into the third, and wrong keys and damaged files refused. The
//! same round trip on both stores, with an upload to a bucket of the tenant's: conformance.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tests::*;

/// `tvault export TENANT ARGS -o <dir>/<name>`; the report and the file.
pub fn export(env: &Env, tenant: &str, args: &[&str], name: &str) -> (Value, PathBuf) {
    let file = env.path(name);
    let mut a = vec!["export", tenant];
    a.extend_from_slice(args);
    let f = file.to_str().expect("utf-8 path");
    a.extend_from_slice(&["-o", f]);
    (env.tv.json(&a), file)
}

/// `tvault open FILE --identity KEY -o <dir>/<name>`; the report and the directory.
pub fn open(env: &Env, file: &Path, key: &Key, name: &str, args: &[&str]) -> (Value, PathBuf) {
    let dir = env.path(name);
    let mut a = vec![
        "open",
        file.to_str().expect("utf-8 path"),
        "--identity",
        key.identity_str(),
        "-o",
        dir.to_str().expect("utf-8 path"),
    ];
    a.extend_from_slice(args);
    (env.tv.json(&a), dir)
}

/// Runs schema.sql and load.sql of an opened export in `db` with psql.
pub fn load(db: &TestDb, dir: &Path) {
    let out = std::process::Command::new("psql")
        .current_dir(dir)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url])
        .args(["-f", "schema.sql", "-f", "load.sql"])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "loading {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lines of every pg-format data file of an opened export, per table (sorted).
fn pg_lines(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let m = manifest(dir);
    m["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            let text = std::fs::read_to_string(dir.join(t["file"].as_str().expect("file")))
                .expect("data file");
            let mut lines: Vec<String> = text.lines().map(String::from).collect();
            lines.sort();
            (t["table"].as_str().expect("table").to_string(), lines)
        })
        .collect()
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest.json"))
        .expect("manifest.json parses")
}

mod fidelity {
    use super::*;

    const FIX: [&str; 2] = ["fidelity_schema.sql", "fidelity_data.sql"];
    const TABLE: &str = "public.everything";

    fn rows(c: &mut Client, tenant: &str) -> Vec<String> {
        rows_exact(c, TABLE, "r_.tenant_id = $1", Some(tenant))
    }

    /// Every type family, enums, domains and composites included, loads back identically from
    /// a live and from a sealed export, through schema.sql and load.sql (initech's 8 MB row
    /// makes its data file outgrow the in-memory spool).
    #[test]
    fn pg_exports_load_into_a_fresh_database_identically() {
        let (env, key) = Env::with_tenants("export_fidelity", &FIX, &["acme", "globex", "initech"]);
        let mut c = env.db.client();
        env.tv.backup_all();
        for tenant in ["acme", "initech"] {
            let want = rows(&mut c, tenant);
            for (kind, args) in [("live", &["--live"][..]), ("sealed", &[][..])] {
                let (report, file) = export(&env, tenant, args, &format!("{tenant}-{kind}.tvx"));
                assert_eq!(report["sealed"], kind == "sealed", "{report:#}");
                let (_, dir) = open(&env, &file, &key, &format!("{tenant}-{kind}"), &[]);
                let fresh = TestDb::new(&format!("export_fresh_{kind}"));
                load(&fresh, &dir);
                assert_rows_eq(
                    &format!("{tenant} through a {kind} pg export"),
                    &want,
                    &rows(&mut fresh.client(), tenant),
                );
                let others = fresh.count(&format!("FROM {TABLE} WHERE tenant_id <> '{tenant}'"));
                assert_eq!(others, 0, "only {tenant}'s rows are in its export");
            }
        }
    }

    /// The shell code block that follows `heading` in docs/EXPORT.md.
    fn doc_recipe(heading: &str) -> String {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/EXPORT.md"),
        )
        .expect("docs/EXPORT.md");
        let after = &doc[doc.find(heading).expect("recipe heading") + heading.len()..];
        let start = after.find("```sh\n").expect("a sh block") + "```sh\n".len();
        let len = after[start..].find("```").expect("the block ends");
        after[start..start + len].to_string()
    }

    /// Runs `script` with bash (errors and failed pipelines stop it) in `dir`.
    fn run_sh(dir: &Path, script: &str) {
        let out = std::process::Command::new("bash")
            .current_dir(dir)
            .args(["-c", &format!("set -euo pipefail\n{script}")])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{script}\nfailed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// docs/EXPORT.md's recipes work with stock age, zstd and tar alone, exactly as written: a
    /// live export unpacks to the files `tvault open` writes, and a sealed one, through its
    /// data key and blocks.tsv, to the same rows.
    #[test]
    fn stock_tools_open_both_kinds_as_documented() {
        let (env, key) = Env::with_tenants("export_stock", &FIX, &["acme", "globex"]);
        env.tv.backup_all();
        for kind in ["sealed", "live"] {
            std::fs::create_dir(env.path(kind)).expect("a directory per kind");
        }
        let (_, sealed) = export(&env, "acme", &[], "sealed/export.tvx");
        let (_, live) = export(&env, "acme", &["--live"], "live/export.tvx");
        let (_, opened) = open(&env, &sealed, &key, "opened", &[]);
        let want = pg_lines(&opened);
        let file = "public.everything.copy";
        assert_eq!(want[TABLE].len(), 18, "acme's rows");
        for (kind, export, recipe) in [
            ("live", &live, doc_recipe("## Container")),
            (
                "sealed",
                &sealed,
                doc_recipe("### Opening a sealed export with stock tools"),
            ),
        ] {
            let dir = export.parent().expect("dir").join("stock");
            std::fs::create_dir(&dir).expect("empty directory");
            std::fs::copy(&key.identity, dir.join("tenant.key")).expect("tenant.key");
            // The live recipe names the export in the working directory, the sealed one above it.
            std::fs::copy(export, dir.join("export.tvx")).expect("export.tvx");
            run_sh(&dir, &recipe);
            let text = std::fs::read_to_string(dir.join(file)).expect("data file");
            let mut got: Vec<String> = text.lines().map(String::from).collect();
            got.sort();
            assert_eq!(got, want[TABLE], "{kind} export through stock tools");
        }
    }

    /// Compares a csv or jsonl data file with the database, value by value, in Python.
    const CHECK: &str = r#"
import base64, csv, json, sys
csv.field_size_limit(sys.maxsize)
data, fmt, expected = sys.argv[1:4]
exp = json.load(open(expected, encoding="utf-8"))
cols = exp["columns"]
names = [c["name"] for c in cols]
want = {row[names.index("id")]: row for row in exp["rows"]}
bad = []
if fmt == "csv":
    with open(data, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        assert next(r) == names, "header"
        got = list(r)
    assert len(got) == len(want), (len(got), len(want))
    for row in got:
        w = want[row[names.index("id")]]
        for n, v, e in zip(names, row, w):
            # csv cannot tell NULL from "" here; PostgreSQL's own csv parser checks that.
            if v != ("" if e is None else e):
                bad.append((n, v, e))
else:
    got = [json.loads(line) for line in open(data, encoding="utf-8")]
    assert len(got) == len(want), (len(got), len(want))
    for obj in got:
        assert list(obj) == names, list(obj)
        w = want[str(obj["id"])]
        for c, e in zip(cols, w):
            n, t, v = c["name"], c["type"], obj[c["name"]]
            if e is None:
                ok = v is None
            elif t in ("smallint", "integer", "bigint", "oid"):
                ok = isinstance(v, int) and str(v) == e
            elif t in ("real", "double precision"):
                ok = v == e if e in ("NaN", "Infinity", "-Infinity") else float(v) == float(e)
            elif t == "boolean":
                ok = v is (e == "t")
            elif t in ("json", "jsonb"):
                ok = v == json.loads(e)
            elif t == "bytea":
                ok = base64.b64decode(v) == bytes.fromhex(e[2:])
            else:
                ok = v == e
            if not ok:
                bad.append((n, v, e))
if bad:
    print(json.dumps(bad[:10], default=str))
    sys.exit(1)
print(len(got))
"#;

    /// The database's text form of every archived column of `tenant`'s rows, with the types.
    fn expected(c: &mut Client, columns: &Value, tenant: &str) -> Value {
        c.batch_execute(
            "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; \
             SET extra_float_digits = 3; SET bytea_output = 'hex'",
        )
        .expect("session settings");
        let cols: Vec<String> = columns
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                // The type's own output function (a cast to text may differ: char, inet, xml);
                // num_nulls, as a composite of NULL fields IS NULL but is not NULL.
                let n = c["name"].as_str().expect("name");
                format!("CASE WHEN num_nulls(\"{n}\") = 1 THEN NULL ELSE format('%s', \"{n}\") END")
            })
            .collect();
        let sql = format!(
            "SELECT json_build_array({})::text FROM {TABLE} WHERE tenant_id = $1 ORDER BY id",
            cols.join(", ")
        );
        let rows: Vec<Value> = c
            .query(&sql, &[&tenant])
            .expect("expected rows")
            .iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).expect("json"))
            .collect();
        serde_json::json!({ "columns": columns, "rows": rows })
    }

    fn python_check(env: &Env, dir: &Path, format: &str, expected: &Value) -> u64 {
        let m = manifest(dir);
        let file = dir.join(m["tables"][0]["file"].as_str().expect("file"));
        let exp = env.path(&format!("expected-{format}.json"));
        std::fs::write(&exp, expected.to_string()).expect("write expected");
        let out = std::process::Command::new("python3")
            .args(["-c", CHECK])
            .arg(&file)
            .arg(format)
            .arg(&exp)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{format} of {} differs from the database: {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("row count")
    }

    /// csv and jsonl, live and sealed, read by Python's csv and json modules, equal the
    /// database value by value; the csv also loads through PostgreSQL's own csv parser with
    /// NULL and the empty string told apart.
    #[test]
    fn csv_and_jsonl_read_back_by_independent_parsers_match_the_database() {
        let (env, key) = Env::with_tenants("export_formats", &FIX, &["acme", "globex"]);
        let mut c = env.db.client();
        env.tv.backup_all();
        let want = rows(&mut c, "acme");
        let mut columns = None;
        for format in ["csv", "jsonl"] {
            let (_, live) = export(
                &env,
                "acme",
                &["--live", "--format", format],
                &format!("live.{format}"),
            );
            let (_, sealed) = export(&env, "acme", &[], &format!("sealed.{format}"));
            let (_, d1) = open(&env, &live, &key, &format!("live-{format}"), &[]);
            let (_, d2) = open(
                &env,
                &sealed,
                &key,
                &format!("sealed-{format}"),
                &["--format", format],
            );
            let cols = columns
                .get_or_insert_with(|| manifest(&d1)["tables"][0]["columns"].clone())
                .clone();
            assert!(
                cols.as_array()
                    .is_some_and(|a| a.iter().all(|c| c["name"] != "t_gen")),
                "generated columns are not exported: {cols}"
            );
            let exp = expected(&mut c, &cols, "acme");
            for dir in [&d1, &d2] {
                assert_eq!(
                    python_check(&env, dir, format, &exp),
                    18,
                    "{}",
                    dir.display()
                );
                if format == "csv" {
                    let fresh = TestDb::new("export_csv_fresh");
                    load(&fresh, dir);
                    assert_rows_eq(
                        "acme through csv",
                        &want,
                        &rows(&mut fresh.client(), "acme"),
                    );
                }
            }
        }
    }
}

mod erasure {
    use super::*;
    use crate::records::{A, B, FIX};

    /// After `erase --cascade`, the person is in no export: not live (the database still holds
    /// them), not in a sealed export of the snapshot taken before the erasure, nor of the one
    /// after.
    #[test]
    fn an_erased_person_is_in_no_export() {
        let (env, key) = Env::with_tenants("export_erased", &FIX, &[A, B]);
        let s1 = env.tv.backup_all();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        env.tv.backup_all();
        crate::erase::erase(&env, &key, &[]).assert_code(0, "erase");
        let tree = [
            ("crm.customers", "id = 2"),
            ("crm.invoices", "customer_id = 2"),
            ("crm.invoice_lines", "invoice_id BETWEEN 1021 AND 1023"),
            ("crm.line_notes", "line_id BETWEEN 10211 AND 10232"),
        ];
        assert_eq!(
            env.db
                .count("FROM crm.customers WHERE tenant_id = 'acme' AND id = 2"),
            1,
            "the live database still holds the person"
        );
        let cases: [(&str, Vec<&str>); 4] = [
            ("live", vec!["--live"]),
            ("before", vec!["--snapshot", &s1]),
            ("latest", vec![]),
            ("live-csv", vec!["--live", "--format", "csv"]),
        ];
        for (name, args) in cases {
            let (report, file) = export(&env, A, &args, &format!("{name}.tvx"));
            if name.starts_with("live") {
                assert_eq!(report["erased_skipped"], 22, "{report:#}");
            }
            let (_, dir) = open(&env, &file, &key, name, &[]);
            let fresh = TestDb::new(&format!("export_erased_{}", name.replace('-', "_")));
            load(&fresh, &dir);
            for (table, cond) in tree {
                assert_eq!(
                    fresh.count(&format!("FROM {table} WHERE {cond}")),
                    0,
                    "{name}: {table}"
                );
            }
            assert_eq!(
                fresh.count("FROM crm.customers"),
                11,
                "{name}: the other customers are there"
            );
        }
    }
}

mod changes {
    use super::*;
    use crate::records::{A, B, FIX};

    /// Applies an opened `--since` export to the lines of a full one, per table: deleted keys
    /// out, changed rows replaced, added rows in (whole rows for tables without a key).
    fn apply(full: &mut BTreeMap<String, Vec<String>>, dir: &Path) {
        let m = manifest(dir);
        for t in m["tables"].as_array().expect("tables") {
            let table = t["table"].as_str().expect("table").to_string();
            let names: Vec<&str> = t["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .map(|c| c["name"].as_str().expect("name"))
                .collect();
            let key: Vec<usize> = t["primary_key"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .map(|c| {
                            names
                                .iter()
                                .position(|n| *n == c.as_str().expect("key"))
                                .expect("key column")
                        })
                        .collect()
                })
                .unwrap_or_default();
            let key_of = |line: &str| -> String {
                if key.is_empty() {
                    return line.to_string();
                }
                let f: Vec<&str> = line.split('\t').collect();
                key.iter().map(|&i| f[i]).collect::<Vec<_>>().join("\t")
            };
            let read = |name: &str| -> Vec<String> {
                std::fs::read_to_string(dir.join(name))
                    .expect("file")
                    .lines()
                    .map(String::from)
                    .collect()
            };
            let rows = full.entry(table.clone()).or_default();
            for gone in read(t["deleted"]["file"].as_str().expect("deleted file")) {
                let at = rows.iter().position(|r| key_of(r) == gone);
                rows.remove(
                    at.unwrap_or_else(|| panic!("{table}: deleted {gone:?} was not there")),
                );
            }
            for line in read(t["file"].as_str().expect("file")) {
                if !key.is_empty() {
                    rows.retain(|r| key_of(r) != key_of(&line));
                }
                rows.push(line);
            }
            rows.sort();
        }
    }

    /// Inserts, updates and deletes over three snapshots (and a table without a primary key):
    /// the changes from the first to the third, applied to the first export, give the third.
    #[test]
    fn since_changes_applied_to_the_first_export_give_the_third() {
        let (env, key) = Env::with_tenants("export_since", &FIX, &[A, B]);
        let pause = || std::thread::sleep(std::time::Duration::from_millis(1100));
        let s1 = env.tv.backup_all();
        pause();
        env.db.exec(
            "UPDATE crm.customers SET name = 'renamed' WHERE tenant_id = 'acme' AND id = 3;
             DELETE FROM crm.customers WHERE tenant_id = 'acme' AND id = 4;
             INSERT INTO crm.customers (tenant_id, id, name) VALUES ('acme', 100, 'new');
             INSERT INTO crm.activity (tenant_id, what) VALUES ('acme', 'added twice'), ('acme', 'added twice');
             UPDATE crm.customers SET name = 'other tenant' WHERE tenant_id = 'globex' AND id = 3;",
        );
        env.tv.backup_all();
        pause();
        env.db.exec(
            "UPDATE crm.customers SET note = NULL, name = 'renamed again' WHERE tenant_id = 'acme' AND id = 3;
             DELETE FROM crm.tags WHERE code = 'acme-vip';
             DELETE FROM crm.activity WHERE ctid = (SELECT min(ctid) FROM crm.activity WHERE tenant_id = 'acme');
             INSERT INTO crm.customers (tenant_id, id, name) VALUES ('acme', 101, 'newer');",
        );
        let s3 = env.tv.backup_all();
        let (_, f1) = export(&env, A, &["--snapshot", &s1], "s1.tvx");
        let (_, f3) = export(&env, A, &["--snapshot", &s3], "s3.tvx");
        let (report, fc) = export(&env, A, &["--snapshot", &s3, "--since", &s1], "changes.tvx");
        assert_eq!(report["kind"], "changes", "{report:#}");
        let (_, d1) = open(&env, &f1, &key, "s1", &[]);
        let (_, d3) = open(&env, &f3, &key, "s3", &[]);
        let (opened, dc) = open(&env, &fc, &key, "changes", &[]);
        assert_eq!(opened["kind"], "changes", "{opened:#}");
        let rows = |dir: &Path| -> u64 {
            manifest(dir)["tables"]
                .as_array()
                .expect("tables")
                .iter()
                .map(|t| t["rows"].as_u64().unwrap_or(0))
                .sum()
        };
        // Customers 3 (changed), 100 and 101; in crm.activity (no key) one of the first
        // snapshot's rows was deleted and both added rows stayed.
        assert_eq!(rows(&dc), 5, "3 customers, 2 activities and nothing else");
        assert!(rows(&d3) > 100, "the full export has every row");
        let m = manifest(&dc);
        let customers = m["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["table"] == "crm.customers")
            .expect("customers");
        assert_eq!(customers["rows"], 3, "3 changed or added: {customers:#}");
        assert_eq!(customers["deleted"]["rows"], 1, "1 deleted: {customers:#}");
        let mut applied = pg_lines(&d1);
        apply(&mut applied, &dc);
        assert_eq!(applied, pg_lines(&d3), "s1 + changes = s3");
        assert!(
            !std::fs::read_dir(&dc)
                .expect("dir")
                .any(|e| e.expect("entry").file_name() == "load.sql"),
            "changes have no load.sql"
        );
        // --since must name an older snapshot, and needs a snapshot export.
        env.tv
            .run(&[
                "export",
                A,
                "--snapshot",
                &s1,
                "--since",
                &s3,
                "-o",
                env.path("x").to_str().unwrap(),
            ])
            .assert_code(2, "since a newer snapshot");
        env.tv
            .run(&[
                "export",
                A,
                "--live",
                "--since",
                &s1,
                "-o",
                env.path("y").to_str().unwrap(),
            ])
            .assert_code(2, "--live --since");
    }
}

mod refusals {
    use super::*;
    use crate::retention::{A, B, FIX};

    /// A wrong identity cannot open an export; a flipped, cut or added byte anywhere is found;
    /// nothing is written over an existing file or into a non-empty directory.
    #[test]
    fn wrong_keys_and_damaged_exports_are_refused() {
        let (env, key) = Env::with_tenants("export_refusals", &FIX, &[A, B]);
        env.tv.backup_all();
        let other = env.keygen("other.txt");
        for (kind, args) in [("live", &["--live"][..]), ("sealed", &[][..])] {
            let (_, file) = export(&env, A, args, &format!("{kind}.tvx"));
            let run_open = |f: &Path, k: &Key, dir: &str| {
                env.tv.run(&[
                    "open",
                    f.to_str().unwrap(),
                    "--identity",
                    k.identity_str(),
                    "-o",
                    env.path(dir).to_str().unwrap(),
                ])
            };
            let out = run_open(&file, &other, &format!("{kind}-wrong"));
            out.assert_code(3, "wrong identity");
            assert!(out.stderr.contains("wrong key"), "{}", out.stderr);
            let bytes = std::fs::read(&file).expect("export");
            let damaged: [(&str, Vec<u8>); 4] = [
                ("flipped", {
                    let mut b = bytes.clone();
                    let m = b.len() / 2;
                    b[m] ^= 1;
                    b
                }),
                ("flipped-end", {
                    let mut b = bytes.clone();
                    let m = b.len() - 3;
                    b[m] ^= 0x40;
                    b
                }),
                ("cut", bytes[..bytes.len() - 100].to_vec()),
                ("longer", {
                    let mut b = bytes.clone();
                    b.push(0);
                    b
                }),
            ];
            for (what, b) in damaged {
                let f = env.path(&format!("{kind}-{what}.tvx"));
                std::fs::write(&f, b).expect("write");
                run_open(&f, &key, &format!("{kind}-{what}"))
                    .assert_code(3, &format!("{kind}: {what}"));
            }
            run_open(&file, &key, &format!("{kind}-ok")).assert_code(0, "intact");
            // Into a directory that is not empty: refused, nothing written.
            let out = run_open(&file, &key, &format!("{kind}-ok"));
            assert_ne!(out.code, 0, "a non-empty directory is refused");
            env.tv
                .run(&["export", A, "-o", file.to_str().unwrap()])
                .assert_code(1, "an existing file is not overwritten");
        }
        env.tv
            .run(&[
                "export",
                "nobody",
                "-o",
                env.path("n.tvx").to_str().unwrap(),
            ])
            .assert_code(4, "unknown tenant");
        assert!(
            !env.path("n.tvx").exists() && !env.path("n.tvx.partial").exists(),
            "no file left by a failed export"
        );
    }
}
