//! The `tvault` binary: build once, run with a vault directory, parse its JSON.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::{new_bucket, repo_root, s3_admin, s3_endpoint, s3_env, BucketKind, TestDb, Value};

/// Path to a fresh `tvault` binary (built once per test process, with `tvault-server`).
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
                "-p",
                "vault-server",
                "--bin",
                "tvault-server",
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

/// Path to the `tvault-server` binary built with [`tvault_bin`] (beside it).
pub fn server_bin() -> PathBuf {
    let tvault = tvault_bin();
    tvault.with_file_name(format!("tvault-server{}", std::env::consts::EXE_SUFFIX))
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
    /// The vault directory; for a vault given by URL, its local state directory.
    pub vault: PathBuf,
    /// `--vault <url>` (the store) with `--state-dir <vault>`, when set.
    pub store_url: Option<String>,
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
            store_url: None,
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
        match &self.store_url {
            Some(url) => cmd
                .arg("--vault")
                .arg(url)
                .arg("--state-dir")
                .arg(&self.vault),
            None => cmd.arg("--vault").arg(&self.vault),
        };
        cmd.args(args).stdin(Stdio::null());
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

    /// Run to completion. A run longer than `TVAULT_TEST_CMD_TIMEOUT` seconds (default 600)
    /// is killed and fails the test, so a hang can never stall the suite.
    pub fn run(&self, args: &[&str]) -> Output {
        use std::io::Read;
        let limit = std::env::var("TVAULT_TEST_CMD_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600u64);
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tvault");
        let mut so = child.stdout.take().unwrap();
        let mut se = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = so.read_to_end(&mut b);
            b
        });
        let t_err = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = se.read_to_end(&mut b);
            b
        });
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait tvault") {
                break st;
            }
            if start.elapsed().as_secs() >= limit {
                let _ = child.kill();
                let _ = child.wait();
                let err = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
                panic!(
                    "`tvault {}` still running after {limit} s: killed (hang?)\nstderr:\n{err}",
                    args.join(" ")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        Output {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned(),
            stderr: String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned(),
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

    /// `tvault VERB TENANT --table TABLE --key id=2 --snapshot SNAP --identity ID [EXTRA] --json`:
    /// a record command on record id=2, which must succeed.
    #[track_caller]
    pub fn record(
        &self,
        verb: &str,
        tenant: &str,
        table: &str,
        snapshot: &str,
        identity: &str,
        extra: &[&str],
    ) -> Value {
        let args = [verb, tenant, "--table", table, "--key", "id=2"];
        let rest = ["--snapshot", snapshot, "--identity", identity];
        self.json(&[&args[..], &rest[..], extra].concat())
    }

    /// `backup --all --json` in which some tenants fail (exit 6, for `what`): the report, and
    /// each failed tenant with its error.
    #[track_caller]
    pub fn backup_partly(&self, what: &str) -> (Value, Vec<(String, String)>) {
        let o = self.run(&["backup", "--all", "--json"]);
        o.assert_code(6, what);
        let report: Value = serde_json::from_str(o.stdout.trim()).unwrap();
        let failed = report["failed_tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let text = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                (text("tenant"), text("error"))
            })
            .collect();
        (report, failed)
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

/// Where a test's vault keeps its objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `store/` inside the vault directory.
    Local,
    /// A fresh bucket of the test S3 server, as `--vault s3://<bucket>/vault`.
    S3(BucketKind),
}

/// Key prefix of the vault inside an S3 test bucket.
pub const S3_PREFIX: &str = "vault";

/// One test's world: database, temp dir (vault in `<tmp>/vault`), tvault handle.
pub struct Env {
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub tv: Tvault,
    /// The bucket of an S3 backend.
    pub bucket: Option<String>,
}

impl Env {
    /// New database with the given fixture files applied; vault dir not yet initialised.
    pub fn new(test_name: &str, fixtures: &[&str]) -> Env {
        Env::on(test_name, fixtures, Backend::Local)
    }

    /// Like [`Env::new`], with the vault's objects on `backend`.
    pub fn on(test_name: &str, fixtures: &[&str], backend: Backend) -> Env {
        let db = TestDb::with_fixture(test_name, fixtures);
        let dir = tempfile::Builder::new()
            .prefix("tvault-e2e-")
            .tempdir()
            .expect("tempdir");
        let mut tv = Tvault::new(dir.path().join("vault"));
        let bucket = match backend {
            Backend::Local => None,
            Backend::S3(kind) => {
                let bucket = new_bucket(test_name, kind);
                tv.store_url = Some(format!("s3://{bucket}/{S3_PREFIX}"));
                tv.envs.extend(s3_env(s3_endpoint()));
                Some(bucket)
            }
        };
        Env {
            db,
            dir,
            tv,
            bucket,
        }
    }

    /// New env, `init --source <db>`, one key, and the given tenants registered with it.
    pub fn with_tenants(test_name: &str, fixtures: &[&str], tenants: &[&str]) -> (Env, Key) {
        Env::with_tenants_on(test_name, fixtures, tenants, Backend::Local)
    }

    /// [`Env::with_tenants`] on `backend`.
    pub fn with_tenants_on(
        test_name: &str,
        fixtures: &[&str],
        tenants: &[&str],
        backend: Backend,
    ) -> (Env, Key) {
        let env = Env::on(test_name, fixtures, backend);
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

    /// Every object of the vault's store (key relative to the store root -> size), but the
    /// store lease and its lock file, which coordinate operations and hold no data.
    pub fn objects(&self) -> std::collections::BTreeMap<String, u64> {
        let mut all = self.all_objects();
        all.remove("lease.json");
        all.remove("lease.lock");
        all
    }

    /// Every object of the vault's store, the lease included.
    pub fn all_objects(&self) -> std::collections::BTreeMap<String, u64> {
        match &self.bucket {
            None => {
                let store = self.tv.vault.join("store");
                walk(&store)
                    .into_iter()
                    .filter_map(|p| {
                        let m = std::fs::metadata(store.join(&p)).ok()?;
                        m.is_file()
                            .then(|| (p.to_string_lossy().into_owned(), m.len()))
                    })
                    .collect()
            }
            Some(b) => s3_admin()
                .list(b, &format!("{S3_PREFIX}/"))
                .into_iter()
                .map(|(k, n)| (k[S3_PREFIX.len() + 1..].to_string(), n as u64))
                .collect(),
        }
    }

    /// The bytes of one store object.
    pub fn read_object(&self, key: &str) -> Vec<u8> {
        match &self.bucket {
            None => std::fs::read(self.tv.vault.join("store").join(key))
                .unwrap_or_else(|e| panic!("read {key}: {e}")),
            Some(b) => s3_admin().get(b, &format!("{S3_PREFIX}/{key}")),
        }
    }

    /// Overwrites one store object behind tvault's back (to damage it).
    pub fn write_object(&self, key: &str, bytes: Vec<u8>) {
        match &self.bucket {
            None => std::fs::write(self.tv.vault.join("store").join(key), bytes)
                .unwrap_or_else(|e| panic!("write {key}: {e}")),
            Some(b) => s3_admin().put(b, &format!("{S3_PREFIX}/{key}"), bytes),
        }
    }

    /// `tenants/<dir>/` of `tenant` in the store (found through its tenant record).
    pub fn tenant_dir(&self, tenant: &str) -> String {
        self.objects()
            .keys()
            .filter(|k| k.ends_with("/tenant.json"))
            .find(|k| store_json(&self.read_object(k)).is_some_and(|v| v["id"] == tenant))
            .map(|k| k.trim_end_matches("tenant.json").to_string())
            .unwrap_or_else(|| panic!("no tenant.json of {tenant}"))
    }

    /// Deletes one store object behind tvault's back.
    pub fn delete_object(&self, key: &str) {
        match &self.bucket {
            None => std::fs::remove_file(self.tv.vault.join("store").join(key))
                .unwrap_or_else(|e| panic!("delete {key}: {e}")),
            Some(b) => s3_admin().delete(b, &format!("{S3_PREFIX}/{key}")),
        }
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

/// Parses a JSON object of the store, skipping its vault MAC line (`tvault-mac-v2 …`; see
/// docs/FORMAT.md): what someone reading the store with stock tools does.
pub fn store_json(bytes: &[u8]) -> Option<Value> {
    let body = match bytes.strip_prefix(b"tvault-mac-v2 ".as_slice()) {
        Some(rest) => &rest[rest.iter().position(|&b| b == b'\n')? + 1..],
        None => bytes,
    };
    serde_json::from_slice(body).ok()
}
