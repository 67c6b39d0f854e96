//! Connection strings as libpq reads them: `postgres://` URLs and `key=value` conninfo strings,
//! completed from the `PG*` environment variables and the password file, and TLS set up with
//! rustls for every `sslmode` (see `docs/CONNECTIONS.md`).
//!
//! A connection string is only ever shown through [`redact`], which masks every secret.

use crate::error::{Error, Result};
use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Parameters whose values are secrets.
const SECRETS: [&str; 2] = ["password", "sslpassword"];

/// The parameters we understand, and the environment variable that supplies each one when the
/// connection string does not.
const PARAMS: [(&str, Option<&str>); 19] = [
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("sslmode", Some("PGSSLMODE")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslpassword", None),
    ("application_name", Some("PGAPPNAME")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("options", Some("PGOPTIONS")),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("keepalives", None),
    ("keepalives_idle", None),
];

/// What a URL's user, host or database name must escape.
const URL_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b'=')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']');

/// Connecting gives up after this long unless `connect_timeout` says otherwise (libpq waits
/// forever, which an unattended backup must not).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed connection string: its parameters in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnInfo {
    params: Vec<(String, String)>,
    /// Given as a URL (shown as one).
    url: Option<String>,
}

/// How the server's certificate is checked, from `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A connection string completed from the environment: what [`super::connect`] uses.
pub struct Resolved {
    pub config: tokio_postgres::Config,
    pub ssl: SslMode,
    /// `None` when `ssl` is `Disable`.
    pub tls: Option<rustls::ClientConfig>,
    /// The connection string for messages (no secret).
    pub shown: String,
}

/// The connection string with every secret masked, for messages, logs and JSON. A string that
/// does not parse is not shown at all, as it may hold a password where we cannot find it.
pub fn redact(s: &str) -> String {
    match ConnInfo::parse(s) {
        Ok(c) => c.redacted(),
        Err(_) => "<connection string that does not parse>".into(),
    }
}

/// A connection string without its password (for a config file), and whether it had one.
pub fn without_password(s: &str) -> Result<(String, bool)> {
    let mut c = ConnInfo::parse(s)?;
    let had = c.params.iter().any(|(k, _)| SECRETS.contains(&k.as_str()));
    c.params.retain(|(k, _)| !SECRETS.contains(&k.as_str()));
    Ok((c.render(false), had))
}

/// Whether a silo tenant's `database` is a bare database name (on the source's server) rather
/// than a connection string.
fn is_database_name(database: &str) -> bool {
    !database.contains("://") && !database.contains('=')
}

/// A silo tenant's database for messages: its name, or its connection string without secrets.
pub fn show_database(database: &str) -> String {
    match is_database_name(database) {
        true => database.to_string(),
        false => redact(database),
    }
}

/// Refuses a silo tenant's database that is empty, not a connection string PostgreSQL would
/// take, or holds a password (tenant records are stored in the clear).
pub fn check_database(database: &str) -> Result<()> {
    if is_database_name(database) {
        if database.is_empty() || database.len() > 63 || database.contains('\0') {
            return Err(invalid(format!(
                "database name {database:?} must have 1 to 63 bytes and no NUL"
            )));
        }
        return Ok(());
    }
    let c = ConnInfo::parse(database)?;
    if c.params.iter().any(|(k, _)| SECRETS.contains(&k.as_str())) {
        return Err(invalid(
            "a tenant's database is stored in its record, which is not secret: give it without \
             a password (the password comes from PGPASSWORD or a password file, as for the source)",
        ));
    }
    Ok(())
}

/// The connection string of a silo tenant's database: `database` itself, or the source's
/// connection string with `database` as its database name.
pub fn database_url(source: &str, database: &str) -> Result<String> {
    if !is_database_name(database) {
        return Ok(database.to_string());
    }
    let mut c = ConnInfo::parse(source)?;
    c.params.retain(|(k, _)| k != "dbname");
    c.params.push(("dbname".into(), database.to_string()));
    Ok(c.render(false))
}

/// The server a connection string reaches (`host:port`, from the environment where not given),
/// to bound the connections a cycle opens to each one.
pub fn server_of(url: &str) -> Result<String> {
    let r = ConnInfo::parse(url)?.resolve(&|k| std::env::var(k).ok())?;
    Ok(server_key(&r.config))
}

fn server_key(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    format!(
        "{host}:{}",
        config.get_ports().first().copied().unwrap_or(5432)
    )
}

/// Whether two connection strings reach the same database of the same server.
pub fn same_database(a: &str, b: &str) -> Result<bool> {
    let env = |k: &str| std::env::var(k).ok();
    let (a, b) = (
        ConnInfo::parse(a)?.resolve(&env)?,
        ConnInfo::parse(b)?.resolve(&env)?,
    );
    Ok(server_key(&a.config) == server_key(&b.config)
        && a.config.get_dbname() == b.config.get_dbname())
}

impl ConnInfo {
    /// Parses a `postgres://` / `postgresql://` URL or a `key=value` conninfo string. Errors never
    /// repeat the string (it may hold a password).
    pub fn parse(s: &str) -> Result<ConnInfo> {
        let s = s.trim();
        let params = match s
            .strip_prefix("postgres://")
            .or_else(|| s.strip_prefix("postgresql://"))
        {
            Some(rest) => parse_url(rest)?,
            None if s.contains("://") => {
                return Err(invalid(
                    "a connection URL starts with postgres:// or postgresql://",
                ))
            }
            None => parse_keywords(s)?,
        };
        for (k, _) in &params {
            if !PARAMS.iter().any(|(p, _)| p == k) {
                return Err(invalid(format!(
                    "unknown connection parameter {k:?} (known: {})",
                    PARAMS.map(|(p, _)| p).join(", ")
                )));
            }
        }
        let url = s
            .contains("://")
            .then(|| s.split("://").next().unwrap_or("postgres").to_string());
        Ok(ConnInfo { params, url })
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// As given (URL or keywords), secrets masked.
    pub fn redacted(&self) -> String {
        self.render(true)
    }

    fn render(&self, mask: bool) -> String {
        let value = |k: &str, v: &str| match mask && SECRETS.contains(&k) {
            true => "***".to_string(),
            false => v.to_string(),
        };
        let Some(scheme) = &self.url else {
            return self
                .params
                .iter()
                .map(|(k, v)| format!("{k}={}", quote(&value(k, v))))
                .collect::<Vec<_>>()
                .join(" ");
        };
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, URL_COMPONENT).to_string();
        let mut out = format!("{scheme}://");
        if let Some(user) = self.get("user") {
            out.push_str(&enc(user));
            if let Some(pw) = self.get("password") {
                out.push(':');
                out.push_str(&if mask { "***".to_string() } else { enc(pw) });
            }
            out.push('@');
        }
        let hosts: Vec<&str> = self
            .get("host")
            .map(|h| h.split(',').collect())
            .unwrap_or_default();
        let ports: Vec<&str> = self
            .get("port")
            .map(|p| p.split(',').collect())
            .unwrap_or_default();
        let n = hosts.len().max(ports.len());
        let authority: Vec<String> = (0..n)
            .map(|i| {
                let h = hosts.get(i).copied().unwrap_or("");
                let h = match h.contains(':') {
                    true => format!("[{h}]"),
                    false => enc(h),
                };
                match ports.get(i).or(ports.first().filter(|_| ports.len() == 1)) {
                    Some(p) if !p.is_empty() => format!("{h}:{p}"),
                    _ => h,
                }
            })
            .collect();
        out.push_str(&authority.join(","));
        out.push('/');
        if let Some(db) = self.get("dbname") {
            out.push_str(&enc(db));
        }
        let query: Vec<String> = self
            .params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "user" | "host" | "port" | "dbname"))
            .filter(|(k, _)| k != "password" || self.get("user").is_none())
            .map(|(k, v)| format!("{k}={}", value(k, v)))
            .collect();
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query.join("&"));
        }
        out
    }

    /// Completes the string from the environment (`env`, normally `std::env::var`) and the
    /// password file, and prepares TLS.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved> {
        let param = |key: &str| -> Option<String> {
            self.get(key).map(str::to_string).or_else(|| {
                PARAMS
                    .iter()
                    .find(|(p, _)| *p == key)
                    .and_then(|(_, var)| var.and_then(env))
                    .filter(|v| !v.is_empty())
            })
        };
        let home = env("HOME").map(PathBuf::from);
        let mut config = tokio_postgres::Config::new();
        let hosts: Vec<String> = match param("host") {
            Some(h) => h.split(',').map(str::to_string).collect(),
            None => vec![default_host()],
        };
        for h in &hosts {
            config.host(h);
        }
        if let Some(addrs) = param("hostaddr") {
            for a in addrs.split(',') {
                config.hostaddr(
                    a.parse()
                        .map_err(|_| invalid(format!("hostaddr {a:?} is not an IP address")))?,
                );
            }
        }
        let ports: Vec<u16> = match param("port") {
            Some(p) => p
                .split(',')
                .map(|p| match p {
                    "" => Ok(5432),
                    p => p
                        .parse()
                        .map_err(|_| invalid(format!("port {p:?} is not a port number"))),
                })
                .collect::<Result<_>>()?,
            None => vec![5432],
        };
        if ports.len() != 1 && ports.len() != hosts.len() {
            return Err(invalid(format!(
                "{} hosts but {} ports: give one port, or one per host",
                hosts.len(),
                ports.len()
            )));
        }
        for p in &ports {
            config.port(*p);
        }
        let user = param("user")
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            .ok_or_else(|| {
                invalid("no database user: set user= in the connection string or PGUSER")
            })?;
        let dbname = param("dbname").unwrap_or_else(|| user.clone());
        config.user(&user).dbname(&dbname);
        let password = match param("password") {
            Some(p) => Some(p),
            None => {
                let file = param("passfile")
                    .map(PathBuf::from)
                    .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));
                match file {
                    Some(f) => passfile_lookup(&f, &hosts[0], ports[0], &dbname, &user)?,
                    None => None,
                }
            }
        };
        if let Some(p) = password {
            config.password(p);
        }
        config.application_name(param("application_name").as_deref().unwrap_or("tvault"));
        if let Some(o) = param("options") {
            config.options(&o);
        }
        let timeout = match param("connect_timeout") {
            Some(t) => match t.parse::<i64>() {
                // libpq: zero or negative waits forever, and less than 2 seconds means 2.
                Ok(n) if n <= 0 => None,
                Ok(n) => Some(Duration::from_secs(n.max(2) as u64)),
                Err(_) => {
                    return Err(invalid(format!(
                        "connect_timeout {t:?} is not a number of seconds"
                    )))
                }
            },
            None => Some(DEFAULT_CONNECT_TIMEOUT),
        };
        if let Some(t) = timeout {
            config.connect_timeout(t);
        }
        if let Some(k) = param("keepalives") {
            config.keepalives(k != "0");
        }
        if let Some(k) = param("keepalives_idle") {
            let secs = k.parse().map_err(|_| {
                invalid(format!("keepalives_idle {k:?} is not a number of seconds"))
            })?;
            config.keepalives_idle(Duration::from_secs(secs));
        }
        if let Some(t) = param("target_session_attrs") {
            config.target_session_attrs(match t.as_str() {
                "any" => tokio_postgres::config::TargetSessionAttrs::Any,
                "read-write" => tokio_postgres::config::TargetSessionAttrs::ReadWrite,
                other => {
                    return Err(invalid(format!(
                        "target_session_attrs {other:?}: expected any or read-write"
                    )))
                }
            });
        }
        if let Some(c) = param("channel_binding") {
            config.channel_binding(match c.as_str() {
                "disable" => tokio_postgres::config::ChannelBinding::Disable,
                "prefer" => tokio_postgres::config::ChannelBinding::Prefer,
                "require" => tokio_postgres::config::ChannelBinding::Require,
                other => {
                    return Err(invalid(format!(
                        "channel_binding {other:?}: expected disable, prefer or require"
                    )))
                }
            });
        }

        let postgresql_dir = home.map(|h| h.join(".postgresql"));
        let default_file = |name: &str| {
            postgresql_dir
                .as_ref()
                .map(|d| d.join(name))
                .filter(|p| p.exists())
        };
        let root = param("sslrootcert")
            .map(PathBuf::from)
            .or_else(|| default_file("root.crt"));
        let unix_only = hosts.iter().all(|h| h.starts_with('/'));
        let mut ssl = match param("sslmode").as_deref() {
            None | Some("prefer") => SslMode::Prefer,
            Some("disable") => SslMode::Disable,
            Some("allow") => SslMode::Prefer,
            // libpq: require with a root certificate checks the chain, as verify-ca.
            Some("require") if root.is_some() => SslMode::VerifyCa,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            Some(other) => {
                return Err(invalid(format!(
                    "sslmode {other:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
                )))
            }
        };
        if unix_only {
            // libpq never uses TLS on a Unix-domain socket.
            ssl = SslMode::Disable;
        }
        config.ssl_mode(match ssl {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = match ssl {
            SslMode::Disable => None,
            _ => {
                let cert = param("sslcert")
                    .map(PathBuf::from)
                    .or_else(|| default_file("postgresql.crt"));
                let key = param("sslkey")
                    .map(PathBuf::from)
                    .or_else(|| default_file("postgresql.key"));
                if param("sslpassword").is_some() {
                    return Err(invalid(
                        "sslpassword: encrypted client keys are not supported; decrypt the key \
                         (openssl pkey -in key -out key.plain) and keep it mode 0600",
                    ));
                }
                Some(tls_config(
                    ssl,
                    root.as_deref(),
                    cert.as_deref(),
                    key.as_deref(),
                )?)
            }
        };
        Ok(Resolved {
            config,
            ssl,
            tls,
            shown: self.redacted(),
        })
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(format!("connection string: {}", msg.into()))
}

/// libpq's default: the Unix-domain socket directory where the server packages put it.
fn default_host() -> String {
    ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .unwrap_or("localhost")
        .to_string()
}

fn parse_url(rest: &str) -> Result<Vec<(String, String)>> {
    let decode = |s: &str, what: &str| -> Result<String> {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| invalid(format!("the {what} of the URL is not UTF-8 once decoded")))
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let mut params = vec![];
    let hosts = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.push(("user".into(), decode(user, "user")?));
            }
            if let Some(p) = password {
                params.push(("password".into(), decode(p, "password")?));
            }
            hosts
        }
        None => authority,
    };
    if !hosts.is_empty() {
        let (mut hs, mut ps) = (vec![], vec![]);
        for h in hosts.split(',') {
            let (host, port) = match h.strip_prefix('[') {
                Some(v6) => {
                    let (addr, after) = v6
                        .split_once(']')
                        .ok_or_else(|| invalid("an IPv6 host in the URL lacks its closing ]"))?;
                    (addr.to_string(), after.strip_prefix(':').unwrap_or(""))
                }
                None => match h.rsplit_once(':') {
                    Some((host, port)) => (decode(host, "host")?, port),
                    None => (decode(h, "host")?, ""),
                },
            };
            hs.push(host);
            ps.push(port.to_string());
        }
        if hs.iter().any(|h| !h.is_empty()) {
            params.push(("host".into(), hs.join(",")));
        }
        if ps.iter().any(|p| !p.is_empty()) {
            params.push(("port".into(), ps.join(",")));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        params.push(("dbname".into(), decode(db, "database name")?));
    }
    for kv in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|kv| !kv.is_empty())
    {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| invalid("a URL query parameter lacks its ="))?;
        let k = decode(k, "query")?;
        let v = decode(v, "query")?;
        // pgjdbc spelling that libpq also accepts in URLs.
        match (k.as_str(), v.as_str()) {
            ("ssl", "true") => params.push(("sslmode".into(), "require".into())),
            _ => params.push((k, v)),
        }
    }
    Ok(params)
}

fn parse_keywords(s: &str) -> Result<Vec<(String, String)>> {
    let mut params = vec![];
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(invalid(format!(
                "expected a URL or key=value pairs; {key:?} has no ="
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(invalid(format!(
                            "the quoted value of {key:?} is not closed"
                        )))
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                match c {
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        }
        params.push((key, value));
    }
}

/// A conninfo value, quoted when it must be.
fn quote(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The password for a connection from a libpq password file: lines of
/// `host:port:database:user:password`, `*` matching anything, `\:` and `\\` escaped. Like libpq,
/// a file that others may read is ignored (with a warning), and a missing one is no error.
fn passfile_lookup(
    file: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Result<Option<String>> {
    let Ok(meta) = std::fs::metadata(file) else {
        return Ok(None);
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %file.display(),
                "password file has group or world access (it should be 0600): ignored"
            );
            return Ok(None);
        }
    }
    let text = std::fs::read_to_string(file).map_err(|e| Error::Io {
        context: format!("reading the password file {}", file.display()),
        source: e,
    })?;
    // A Unix-domain socket matches the host name `localhost`.
    let host = match host.starts_with('/') {
        true => "localhost",
        false => host,
    };
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_passfile_line(line);
        let [h, p, d, u, pw] = fields.as_slice() else {
            continue;
        };
        let matches = |field: &str, value: &str| field == "*" || field == value;
        if matches(h, host) && matches(p, &port) && matches(d, dbname) && matches(u, user) {
            return Ok(Some(pw.clone()));
        }
    }
    Ok(None)
}

fn split_passfile_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields
                .last_mut()
                .unwrap_or(&mut String::new())
                .extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap_or(&mut String::new()).push(c),
        }
    }
    fields
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_config(
    mode: SslMode,
    root: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<rustls::ClientConfig> {
    let tls_err = |e: rustls::Error| invalid(format!("TLS: {e}"));
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let builder = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let root = root.ok_or_else(|| {
                invalid(format!(
                    "sslmode {} checks the server's certificate, so it needs a root certificate: \
                     set sslrootcert (or PGSSLROOTCERT) to the CA's PEM file, or to `system` for \
                     the system's trusted CAs",
                    match mode {
                        SslMode::VerifyCa => "verify-ca",
                        _ => "verify-full",
                    }
                ))
            })?;
            let roots = root_store(root)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid(format!("TLS: {e}")))?;
            match mode {
                SslMode::VerifyFull => builder.with_webpki_verifier(webpki),
                _ => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))),
            }
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
    };
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| invalid(format!("reading the client key {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(tls_err)
        }
        (Some(cert), None) => Err(invalid(format!(
            "client certificate {} has no key: set sslkey",
            cert.display()
        ))),
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("reading certificates from {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn root_store(root: &Path) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    if root == Path::new("system") {
        let found = rustls_native_certs::load_native_certs();
        for c in found.certs {
            let _ = store.add(c);
        }
        if store.is_empty() {
            return Err(invalid(
                "sslrootcert=system: no trusted CA certificates on this system",
            ));
        }
        return Ok(store);
    }
    for c in read_certs(root)? {
        store
            .add(c)
            .map_err(|e| invalid(format!("root certificate {}: {e}", root.display())))?;
    }
    Ok(store)
}

/// `verify-ca`: the chain must lead to the root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: encrypted, but, as in libpq, the certificate is not checked (the
/// handshake signatures still are).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn urls_and_keywords_parse_to_the_same_parameters() {
        let u = ConnInfo::parse(
            "postgres://bob:p%40ss@db.example:6432/app%20db?sslmode=verify-full&application_name=x",
        )
        .unwrap();
        let k = ConnInfo::parse("user=bob password='p@ss' host=db.example port=6432 dbname='app db' sslmode=verify-full application_name=x").unwrap();
        for key in [
            "user",
            "password",
            "host",
            "port",
            "dbname",
            "sslmode",
            "application_name",
        ] {
            assert_eq!(u.get(key), k.get(key), "{key}");
        }
        assert_eq!(u.get("password"), Some("p@ss"));
        let multi = ConnInfo::parse("postgresql://h1:1,[::1]:2,h3/d").unwrap();
        assert_eq!(multi.get("host"), Some("h1,::1,h3"));
        assert_eq!(multi.get("port"), Some("1,2,"));
        assert!(ConnInfo::parse("host=h bogus=1").is_err());
        assert!(ConnInfo::parse("host='h").is_err());
        assert!(ConnInfo::parse("mysql://h/d").is_err());
    }

    #[test]
    fn no_form_of_connection_string_shows_a_password() {
        for (given, shown) in [
            ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=pw&sslmode=require",
                "postgres://u:***@h/db?sslmode=require",
            ),
            (
                "postgresql://h/db?sslpassword=pw",
                "postgresql://h/db?sslpassword=***",
            ),
            (
                "host=h password=pw dbname=d",
                "host=h password=*** dbname=d",
            ),
            (
                "host=h password = 'p w\\' x' user=u",
                "host=h password=*** user=u",
            ),
            ("host=h dbname=d", "host=h dbname=d"),
            (
                "host=h password=pw bad",
                "<connection string that does not parse>",
            ),
        ] {
            let got = redact(given);
            assert_eq!(got, shown, "{given}");
            assert!(!got.contains("pw") && !got.contains("p w"), "{got}");
        }
        let (clean, had) =
            without_password("postgres://u:pw@db.example:5/app%20db?sslmode=require").unwrap();
        assert_eq!(
            (clean.as_str(), had),
            ("postgres://u@db.example:5/app%20db?sslmode=require", true)
        );
        let (clean, had) = without_password("host=h password=pw").unwrap();
        assert_eq!((clean.as_str(), had), ("host=h", true));
    }

    #[test]
    fn the_environment_fills_what_the_string_leaves_out() {
        let env = env_of(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "7000"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGAPPNAME", "nightly"),
            ("PGSSLMODE", "disable"),
        ]);
        let r = ConnInfo::parse("host=given")
            .unwrap()
            .resolve(&env)
            .unwrap();
        assert_eq!(r.config.get_ports(), &[7000]);
        assert_eq!(r.config.get_user(), Some("envuser"));
        assert_eq!(r.config.get_dbname(), Some("envdb"));
        assert_eq!(r.config.get_application_name(), Some("nightly"));
        assert!(
            matches!(&r.config.get_hosts()[0], tokio_postgres::config::Host::Tcp(h) if h == "given")
        );
        assert_eq!(r.ssl, SslMode::Disable);
        assert_eq!(
            r.config.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
    }

    #[test]
    fn the_password_file_is_read_like_libpq_reads_it() {
        let dir = tempdir();
        let file = dir.join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:*:*:*:no\ndb.example:6432:app:bob:first\n*:*:*:bob:pa\\:ss\\\\\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let look = |h, p, d, u| passfile_lookup(&file, h, p, d, u).unwrap();
        assert_eq!(
            look("db.example", 6432, "app", "bob").as_deref(),
            Some("first")
        );
        assert_eq!(
            look("db.example", 5432, "app", "bob").as_deref(),
            Some("pa:ss\\")
        );
        assert_eq!(look("db.example", 5432, "app", "eve"), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            look("db.example", 6432, "app", "bob"),
            None,
            "a readable file is ignored"
        );
        let env = env_of(&[
            ("PGPASSFILE", file.to_str().unwrap()),
            ("PGSSLMODE", "disable"),
        ]);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let r = ConnInfo::parse("postgres://bob@db.example:6432/app")
            .unwrap()
            .resolve(&env)
            .unwrap();
        assert_eq!(r.config.get_password(), Some(&b"first"[..]));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        let env = env_of(&[("PGUSER", "u")]);
        let err = ConnInfo::parse("host=h sslmode=verify-full")
            .unwrap()
            .resolve(&env)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("sslrootcert"), "{err}");
        let r = ConnInfo::parse("host=h sslmode=require")
            .unwrap()
            .resolve(&env)
            .unwrap();
        assert_eq!(r.ssl, SslMode::Require);
        let r = ConnInfo::parse("host=/run/x")
            .unwrap()
            .resolve(&env)
            .unwrap();
        assert_eq!(r.ssl, SslMode::Disable, "no TLS on a Unix-domain socket");
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tvault-conninfo-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
