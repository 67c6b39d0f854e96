//! Harness for the end-to-end tests of `tvault` (docs/CLI.md), driven as a black box.
//!
//! * PostgreSQL: `TVAULT_TEST_PG` (a superuser URL such as
//!   `postgres://tvault@127.0.0.1:54329/postgres`), or else the URL printed by
//!   `scripts/pg-local.sh start`. Neither available -> panic (never skip silently).
//! * Every test gets its own throwaway database ([`TestDb`]) and its own temp dir.
//! * The binary is (re)built once per test run with `$CARGO build -p vault-cli --bin tvault`
//!   and taken from `<target>/<profile>/tvault` (override with `TVAULT_BIN`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub use postgres::Client;
pub use serde_json::Value;

/// Workspace root (`tests/..`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Absolute path of a SQL fixture in `tests/sql/`.
pub fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read fixture {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// Superuser URL of the test cluster.
pub fn admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(u) = std::env::var("TVAULT_TEST_PG") {
            if !u.trim().is_empty() {
                return u.trim().to_string();
            }
        }
        let script = repo_root().join("scripts").join("pg-local.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "no PostgreSQL for the e2e tests: TVAULT_TEST_PG is unset and `bash {} start` \
                     could not be run: {e}",
                    script.display()
                )
            });
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("");
        if !out.status.success()
            || !(line.starts_with("postgres://") || line.starts_with("postgresql://"))
        {
            panic!(
                "no PostgreSQL for the e2e tests: TVAULT_TEST_PG is unset and `bash {} start` \
                 failed ({}).\nstdout:\n{stdout}\nstderr:\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        line.to_string()
    })
}

/// Split `postgres://userinfo@hostport/db?query` into (scheme, userinfo, hostport, db, query).
fn split_url(url: &str) -> (String, String, String, String, String) {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("not a URL: {url}"));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let (authority, db) = match rest.split_once('/') {
        Some((a, d)) => (a, d.to_string()),
        None => (rest, String::new()),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (u.to_string(), h.to_string()),
        None => (String::new(), authority.to_string()),
    };
    (scheme.to_string(), userinfo, hostport, db, query)
}

/// `url` with its database name replaced.
pub fn url_with_db(url: &str, db: &str) -> String {
    let (s, u, h, _, q) = split_url(url);
    let at = if u.is_empty() {
        String::new()
    } else {
        format!("{u}@")
    };
    format!("{s}://{at}{h}/{db}{q}")
}

/// `url` with its user (and password) replaced.
pub fn url_with_user(url: &str, user: &str, password: Option<&str>) -> String {
    let (s, _, h, d, q) = split_url(url);
    let ui = match password {
        Some(p) => format!("{user}:{p}"),
        None => user.to_string(),
    };
    format!("{s}://{ui}@{h}/{d}{q}")
}

pub fn connect(url: &str) -> Client {
    Client::connect(url, postgres::NoTls).unwrap_or_else(|e| panic!("connect to {url}: {e:?}"))
}

/// A unique lowercase suffix (time + pid + counter).
pub fn unique_suffix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let x =
        (t as u64) ^ ((std::process::id() as u64) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:x}{n}", x & 0xffff_ffff)
}

/// A throwaway database, dropped (WITH (FORCE)) when this value is dropped.
/// Set `TVAULT_TEST_KEEP=1` to keep databases for debugging.
pub struct TestDb {
    pub name: String,
    /// Superuser URL of this database.
    pub url: String,
}

impl TestDb {
    pub fn new(test_name: &str) -> TestDb {
        let clean: String = test_name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(36)
            .collect();
        let name = format!("tv_{clean}_{}", unique_suffix());
        let mut admin = connect(admin_url());
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e:?}"));
        TestDb {
            url: url_with_db(admin_url(), &name),
            name,
        }
    }

    /// Create the database and run a SQL fixture file from tests/sql/ in it.
    pub fn with_fixture(test_name: &str, fixture_files: &[&str]) -> TestDb {
        let db = TestDb::new(test_name);
        for f in fixture_files {
            db.exec(&fixture(f));
        }
        db
    }

    pub fn client(&self) -> Client {
        connect(&self.url)
    }

    /// Run a batch of SQL statements (panics with the error on failure).
    pub fn exec(&self, sql: &str) {
        let mut c = self.client();
        c.batch_execute(sql).unwrap_or_else(|e| {
            let short: String = sql.chars().take(400).collect();
            panic!("SQL failed in {}: {e:?}\n{short}", self.name)
        });
    }

    /// Single scalar text result.
    pub fn scalar(&self, sql: &str) -> Option<String> {
        let mut c = self.client();
        let row = c
            .query_one(&format!("SELECT ({sql})::text"), &[])
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        row.get(0)
    }

    pub fn count(&self, sql_from_where: &str) -> i64 {
        let mut c = self.client();
        c.query_one(&format!("SELECT count(*) {sql_from_where}"), &[])
            .unwrap_or_else(|e| panic!("{sql_from_where}: {e:?}"))
            .get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var("TVAULT_TEST_KEEP").is_ok_and(|v| v == "1") {
            eprintln!("keeping test database {}", self.name);
            return;
        }
        if let Ok(mut c) = Client::connect(admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A LOGIN role that is dropped at the end (roles are cluster-wide, so names are unique).
pub struct TestRole {
    pub name: String,
    pub password: String,
    dbs: Vec<String>,
}

impl TestRole {
    /// `CREATE ROLE <unique> LOGIN PASSWORD ... <attrs>`.
    pub fn new(prefix: &str, attrs: &str) -> TestRole {
        let name = format!("{prefix}_{}", unique_suffix());
        let password = "pw_e2e_secret".to_string();
        connect(admin_url())
            .batch_execute(&format!(
                "CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}' {attrs}"
            ))
            .unwrap();
        TestRole {
            name,
            password,
            dbs: Vec::new(),
        }
    }

    /// Remember a database in which this role owns/was granted things (cleaned on drop).
    pub fn used_in(&mut self, db: &TestDb) {
        self.dbs.push(db.url.clone());
    }

    /// URL connecting as this role to `db`.
    pub fn url(&self, db: &TestDb) -> String {
        url_with_user(&db.url, &self.name, Some(&self.password))
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        for u in &self.dbs {
            if let Ok(mut c) = Client::connect(u, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP OWNED BY \"{}\" CASCADE", self.name));
            }
        }
        if let Ok(mut c) = Client::connect(admin_url(), postgres::NoTls) {
            // The test database may still exist (dropped later): revoke what we can, then drop.
            let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", self.name));
        }
    }
}

// ---------------------------------------------------------------------------
// Data fingerprints
// ---------------------------------------------------------------------------

/// Exact text form of every row of `table` matching `where_sql` (may reference the row
/// alias `r_`; `$1` is bound to `param` when given), each suffixed with per-column
/// `IS NULL` flags. Sorted (byte order), duplicates kept.
pub fn rows_exact(
    c: &mut Client,
    table: &str,
    where_sql: &str,
    param: Option<&str>,
) -> Vec<String> {
    let flags: String = c
        .query_one(
            "SELECT coalesce(string_agg(format('(r_.%I IS NULL)::int::text', attname), ' || ' ORDER BY attnum), '''''') \
             FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&table],
        )
        .unwrap_or_else(|e| panic!("columns of {table}: {e:?}"))
        .get(0);
    let sql = format!("SELECT r_::text || ' #nulls=' || {flags} FROM {table} r_ WHERE {where_sql}");
    let rows = match param {
        Some(p) => c.query(&sql, &[&p]),
        None => c.query(&sql, &[]),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let mut v: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    v.sort();
    v
}

/// (row count, md5 of all rows' text) of `table` rows matching `where_sql` (`$1` = param).
pub fn checksum(
    c: &mut Client,
    table: &str,
    where_sql: &str,
    param: Option<&str>,
) -> (i64, String) {
    let sql = format!(
        "SELECT count(*)::bigint, coalesce(md5(string_agg(r_::text, E'\\n' ORDER BY r_::text COLLATE \"C\")), '') \
         FROM {table} r_ WHERE {where_sql}"
    );
    let row = match param {
        Some(p) => c.query_one(&sql, &[&p]),
        None => c.query_one(&sql, &[]),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    (row.get(0), row.get(1))
}

/// Per-tenant checksum of one tenant's rows in a table with a `tenant_id` column.
pub fn tenant_checksum(c: &mut Client, table: &str, tenant: &str) -> (i64, String) {
    checksum(c, table, "r_.tenant_id = $1", Some(tenant))
}

/// All ordinary/partitioned user tables as `schema.table` (quoted as needed),
/// with whether they have a `tenant_id` column.
pub fn user_tables(c: &mut Client) -> Vec<(String, bool)> {
    c.query(
        "SELECT format('%I.%I', n.nspname, cl.relname), \
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = cl.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
         FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace \
         WHERE cl.relkind IN ('r','p') AND NOT cl.relispartition \
           AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
         ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Fingerprint of everything in the database except tenant `tenant`'s rows:
/// tables with `tenant_id` -> one checksum per *other* tenant (NULL tenant included);
/// tables without -> whole-table checksum, unless `child_filters` gives a WHERE clause
/// (alias `r_`, `$1` = tenant) selecting the rows that do NOT belong to `tenant`.
pub fn snapshot_except(
    c: &mut Client,
    tenant: &str,
    child_filters: &[(&str, &str)],
) -> BTreeMap<String, (i64, String)> {
    let mut out = BTreeMap::new();
    for (table, has_tenant) in user_tables(c) {
        if has_tenant {
            let tenants: Vec<Option<String>> = c
                .query(
                    &format!("SELECT DISTINCT tenant_id::text FROM {table} WHERE tenant_id::text IS DISTINCT FROM $1"),
                    &[&tenant],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            for t in tenants {
                let key = format!("{table} [tenant {t:?}]");
                let cs = match &t {
                    Some(t) => checksum(c, &table, "r_.tenant_id::text = $1", Some(t)),
                    None => checksum(c, &table, "r_.tenant_id IS NULL", None),
                };
                out.insert(key, cs);
            }
        } else if let Some((_, w)) = child_filters.iter().find(|(t, _)| *t == table) {
            out.insert(
                format!("{table} [not {tenant:?}]"),
                checksum(c, &table, w, Some(tenant)),
            );
        } else {
            out.insert(
                format!("{table} [whole]"),
                checksum(c, &table, "true", None),
            );
        }
    }
    out
}

/// assert_eq for big row lists with a readable message (first differences, truncated).
#[track_caller]
pub fn assert_rows_eq(what: &str, expected: &[String], actual: &[String]) {
    if expected == actual {
        return;
    }
    let cut = |s: &str| -> String {
        if s.len() > 300 {
            format!(
                "{}… ({} bytes)",
                &s[..s.char_indices().nth(300).map_or(s.len(), |x| x.0)],
                s.len()
            )
        } else {
            s.to_string()
        }
    };
    let missing: Vec<String> = expected
        .iter()
        .filter(|r| !actual.contains(r))
        .take(5)
        .map(|s| cut(s))
        .collect();
    let extra: Vec<String> = actual
        .iter()
        .filter(|r| !expected.contains(r))
        .take(5)
        .map(|s| cut(s))
        .collect();
    panic!(
        "{what}: rows differ: expected {} rows, got {}.\n missing (first 5): {missing:#?}\n unexpected (first 5): {extra:#?}",
        expected.len(),
        actual.len()
    );
}

// ---------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------

/// Path to a fresh `tvault` binary (built once per test process).
pub fn tvault_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(b) = std::env::var("TVAULT_BIN") {
            return PathBuf::from(b);
        }
        // <target>/<profile>/deps/e2e-xxxx
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test exe in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("<target>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(repo_root())
            .args([
                "build",
                "-p",
                "vault-cli",
                "--bin",
                "tvault",
                "--target-dir",
            ])
            .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("could not run `{cargo} build -p vault-cli`: {e}"));
        if !out.status.success() {
            panic!(
                "`{cargo} build -p vault-cli --bin tvault` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let bin = profile_dir.join(format!("tvault{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.exists(),
            "built tvault but {} does not exist",
            bin.display()
        );
        bin
    })
}

/// Result of one `tvault` run.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn assert_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code, code,
            "{what}: expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// A vault directory + the binary.
#[derive(Clone)]
pub struct Tvault {
    pub vault: PathBuf,
    pub envs: Vec<(String, String)>,
}

/// An age identity file and its public recipient.
#[derive(Clone, Debug)]
pub struct Key {
    pub identity: PathBuf,
    pub recipient: String,
}

impl Key {
    pub fn identity_str(&self) -> &str {
        self.identity.to_str().unwrap()
    }
}

impl Tvault {
    pub fn new(vault_dir: impl Into<PathBuf>) -> Tvault {
        Tvault {
            vault: vault_dir.into(),
            envs: Vec::new(),
        }
    }

    /// `tvault --vault <dir> <args>` as a Command (env cleaned of TVAULT_* variables).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tvault_bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("TVAULT_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("NO_COLOR", "1");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.arg("--vault")
            .arg(&self.vault)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Start in the background, output discarded (so a full pipe can never block it).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tvault")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run tvault");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run with `--json`, assert exit 0 and parse stdout as one JSON document.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a: Vec<&str> = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        assert_eq!(
            out.code,
            0,
            "`tvault {}` failed with exit {}\nstdout:\n{}\nstderr:\n{}",
            a.join(" "),
            out.code,
            out.stdout,
            out.stderr
        );
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "`tvault {}` printed invalid JSON ({e}):\n{}\nstderr:\n{}",
                a.join(" "),
                out.stdout,
                out.stderr
            )
        })
    }

    /// Run and assert exit 0.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        out.assert_code(0, &format!("tvault {}", args.join(" ")));
        out
    }

    /// `tvault keygen -o FILE --json` -> (identity file, recipient).
    #[track_caller]
    pub fn keygen(&self, file: &Path) -> Key {
        let v = self.json(&["keygen", "-o", file.to_str().unwrap()]);
        let recipient = v["recipient"]
            .as_str()
            .unwrap_or_else(|| panic!("keygen --json has no \"recipient\" string: {v}"))
            .to_string();
        assert!(
            recipient.starts_with("age1"),
            "keygen recipient is not an age1 key: {recipient}"
        );
        assert!(file.exists(), "keygen -o {} wrote no file", file.display());
        Key {
            identity: file.to_path_buf(),
            recipient,
        }
    }

    /// `tvault init --source <url> [extra...]`.
    #[track_caller]
    pub fn init(&self, source: &str, extra: &[&str]) {
        let mut a = vec!["init", "--source", source];
        a.extend_from_slice(extra);
        self.ok(&a);
    }

    #[track_caller]
    pub fn tenant_add(&self, tenant: &str, key: &Key) {
        self.ok(&["tenant", "add", tenant, "--recipient", &key.recipient]);
    }

    /// `backup --all --json`, returns the snapshot id.
    #[track_caller]
    pub fn backup_all(&self) -> String {
        let v = self.json(&["backup", "--all"]);
        snapshot_id(&v)
    }

    #[track_caller]
    pub fn restore(&self, tenant: &str, snapshot: &str, key: &Key, target: Option<&str>) -> Value {
        let mut a = vec![
            "restore",
            tenant,
            "--snapshot",
            snapshot,
            "--identity",
            key.identity_str(),
        ];
        if let Some(t) = target {
            a.extend_from_slice(&["--target", t]);
        }
        let v = self.json(&a);
        assert_eq!(
            v["ok"],
            Value::Bool(true),
            "restore {tenant} reported ok != true: {v:#}"
        );
        v
    }

    /// `snapshots --json` (array).
    #[track_caller]
    pub fn snapshots(&self) -> Vec<Value> {
        let v = self.json(&["snapshots"]);
        v.as_array()
            .unwrap_or_else(|| panic!("snapshots --json is not an array: {v}"))
            .clone()
    }
}

#[track_caller]
pub fn snapshot_id(backup_json: &Value) -> String {
    match &backup_json["snapshot"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("backup --json has no snapshot id (got {other}): {backup_json:#}"),
    }
}

/// Snapshot ids (as strings) of a `snapshots --json` array.
pub fn snapshot_ids(list: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .map(|s| match &s["snapshot"] {
            Value::String(x) => x.clone(),
            other => other.to_string(),
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Normalise a table name as printed by tvault (`"public"."t"` / `public.t`) to `public.t`.
pub fn norm_table(s: &str) -> String {
    s.replace('"', "")
}

/// One test's world: database, temp dir (vault in `<tmp>/vault`), tvault handle.
pub struct Env {
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub tv: Tvault,
}

impl Env {
    /// New database with the given fixture files applied; vault dir not yet initialised.
    pub fn new(test_name: &str, fixtures: &[&str]) -> Env {
        let db = TestDb::with_fixture(test_name, fixtures);
        let dir = tempfile::Builder::new()
            .prefix("tvault-e2e-")
            .tempdir()
            .expect("tempdir");
        let tv = Tvault::new(dir.path().join("vault"));
        Env { db, dir, tv }
    }

    /// New env, `init --source <db>`, one key, and the given tenants registered with it.
    pub fn with_tenants(test_name: &str, fixtures: &[&str], tenants: &[&str]) -> (Env, Key) {
        let env = Env::new(test_name, fixtures);
        env.tv.init(&env.db.url, &[]);
        let key = env.keygen("key.txt");
        for t in tenants {
            env.tv.tenant_add(t, &key);
        }
        (env, key)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    #[track_caller]
    pub fn keygen(&self, name: &str) -> Key {
        self.tv.keygen(&self.path(name))
    }

    /// Empty database with the schema of `schema_fixtures` (for `restore --target`).
    pub fn scratch_db(&self, suffix: &str, schema_fixtures: &[&str]) -> TestDb {
        TestDb::with_fixture(suffix, schema_fixtures)
    }
}

/// Every file/dir under `root` (relative paths).
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Files under `<vault>/store` having a path component equal to `component`
/// (e.g. "packs", "manifests", "snapshots").
pub fn store_files_under(vault: &Path, component: &str) -> Vec<PathBuf> {
    let store = vault.join("store");
    walk(&store)
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == component))
        .map(|p| store.join(p))
        .filter(|p| p.is_file())
        .collect()
}

/// [`assert_rows_eq`] for every key of two maps of row lists (e.g. per table or tenant).
#[track_caller]
pub fn assert_tables_eq<K: Ord + std::fmt::Debug>(
    what: &str,
    expected: &BTreeMap<K, Vec<String>>,
    actual: &BTreeMap<K, Vec<String>>,
) {
    let ek: Vec<&K> = expected.keys().collect();
    let ak: Vec<&K> = actual.keys().collect();
    assert_eq!(ek, ak, "{what}: different tables/keys");
    for (k, rows) in expected {
        assert_rows_eq(&format!("{what}: {k:?}"), rows, &actual[k]);
    }
}
