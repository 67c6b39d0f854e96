//! Test cluster, throwaway databases and roles.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{fixture, repo_root, Client};

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
    /// Superuser URL of its cluster.
    admin: String,
}

impl TestDb {
    pub fn new(test_name: &str) -> TestDb {
        TestDb::on_cluster(admin_url(), test_name)
    }

    /// A throwaway database on the cluster of superuser URL `admin`.
    pub fn on_cluster(admin: &str, test_name: &str) -> TestDb {
        let clean: String = test_name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(36)
            .collect();
        let name = format!("tv_{clean}_{}", unique_suffix());
        connect(admin)
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e:?}"));
        TestDb {
            url: url_with_db(admin, &name),
            name,
            admin: admin.to_string(),
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
        if let Ok(mut c) = Client::connect(&self.admin, postgres::NoTls) {
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

/// The second test cluster, for connection security (`scripts/pg-local.sh` with
/// `TVAULT_PG_TLS_DIR`): TLS with a test CA and a server certificate for `localhost` only; role
/// `tvault` logs in over TLS with [`SecureCluster::PASSWORD`] (scram-sha-256), role `tvault_cert`
/// with the client certificate; other connections without TLS are refused, except the bootstrap
/// role `postgres` that creates the test databases.
pub struct SecureCluster {
    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust, no TLS).
    pub admin_url: String,
    pub port: u16,
    /// `root.crt`, `other-root.crt` (a CA that signed nothing), `client.crt`, `client.key`.
    pub tls_dir: std::path::PathBuf,
}

impl SecureCluster {
    pub const PASSWORD: &'static str = "Secure-e2e-Pw-7781";

    /// Writes a libpq password file at `path` (mode 0600, a comment line first) with role
    /// `tvault`'s password for any database of this cluster on `localhost`.
    pub fn password_file(&self, path: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        let line = format!(
            "# test\nlocalhost:{}:*:tvault:{}\n",
            self.port,
            Self::PASSWORD.replace(':', "\\:")
        );
        std::fs::write(path, line).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

pub fn secure_cluster() -> &'static SecureCluster {
    static C: OnceLock<SecureCluster> = OnceLock::new();
    C.get_or_init(|| {
        let port: u16 = std::env::var("TVAULT_TEST_PG_SECURE_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(54331);
        let target = repo_root().join("target");
        let tls_dir = target.join("pg-secure-tls");
        let script = repo_root().join("scripts").join("pg-local.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .env("TVAULT_PGDATA", target.join("pg-secure"))
            .env("TVAULT_PGPORT", port.to_string())
            .env("TVAULT_PG_TLS_DIR", &tls_dir)
            .env("TVAULT_PG_PASSWORD", SecureCluster::PASSWORD)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("");
        assert!(
            out.status.success() && url.starts_with("postgres://"),
            "the secure test cluster did not start ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        SecureCluster {
            admin_url: url.to_string(),
            port,
            tls_dir,
        }
    })
}
