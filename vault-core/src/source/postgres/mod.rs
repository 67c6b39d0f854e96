//! The PostgreSQL source: catalog, the SQL for reading/writing one tenant's rows, and the
//! streaming extractor.

pub mod apply;
pub mod catalog;
pub mod conninfo;
pub mod ddl;
pub mod extract;
pub mod load;
pub mod ownership;
pub mod query;
mod references;

use crate::error::{DbContext, Result};
use tokio_postgres::{Client, NoTls};

pub use conninfo::redact;

/// Connects as libpq would (see [`conninfo`]) and pins the session settings that fix the text
/// form of values. `connect_timeout` bounds the whole of it, as in libpq: a server that accepts
/// the TCP connection and then says nothing does not hang the caller.
pub async fn connect(source: &str) -> Result<Client> {
    let resolved = conninfo::ConnInfo::parse(source)?.resolve(&|k| std::env::var(k).ok())?;
    let shown = resolved.shown.clone();
    match resolved.config.get_connect_timeout().copied() {
        None => connect_resolved(resolved).await,
        Some(limit) => tokio::time::timeout(limit, connect_resolved(resolved))
            .await
            .map_err(|_| {
                crate::error::Error::Aborted(format!(
                    "connecting to {shown}: no answer within {} s (connect_timeout); is the \
                     server up and reachable?",
                    limit.as_secs()
                ))
            })?,
    }
}

async fn connect_resolved(resolved: conninfo::Resolved) -> Result<Client> {
    let shown = &resolved.shown;
    let client = match resolved.tls {
        None => spawn(resolved.config.connect(NoTls).await),
        Some(tls) => spawn(
            resolved
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await,
        ),
    }
    .map_err(|source| {
        let mut context = format!("connecting to {shown}");
        let mut chain: Option<&dyn std::error::Error> = Some(&source);
        let mut missing = false;
        while let Some(e) = chain {
            missing |= e.to_string().contains("password missing");
            chain = e.source();
        }
        if missing {
            context.push_str(
                ": the server asks for a password and none was given; set PGPASSWORD, use a \
                 password file (~/.pgpass, or PGPASSFILE; mode 0600) or password= in the \
                 connection string",
            );
        }
        crate::error::Error::Database { context, source }
    })?;
    client
        .batch_execute(query::SESSION_SETTINGS)
        .await
        .db(|| "setting session parameters".into())?;
    Ok(client)
}

/// Drives a new connection in the background.
fn spawn<S, T>(
    connected: std::result::Result<
        (Client, tokio_postgres::Connection<S, T>),
        tokio_postgres::Error,
    >,
) -> std::result::Result<Client, tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, conn) = connected?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// Connects to a database a restore writes to, with the configured lock and statement timeouts.
pub async fn connect_for_restore(
    source: &str,
    limits: &crate::config::RestoreLimits,
) -> Result<Client> {
    let client = connect(source).await?;
    client
        .batch_execute(&limits.session_sql())
        .await
        .db(|| "setting lock_timeout and statement_timeout".into())?;
    Ok(client)
}

/// Whether `url` reaches the source database `source`: by their connection strings, else (when
/// both answer) by the server each is on and the database's name and oid there, so that
/// `localhost` and `127.0.0.1`, or a socket and TCP, are found to be one.
pub async fn is_source(url: &str, source: &str) -> Result<bool> {
    if conninfo::same_database(url, source)? {
        return Ok(true);
    }
    const WHO: &str =
        "SELECT pg_postmaster_start_time()::text || '/' || current_database() || '/' \
         || (SELECT oid FROM pg_database WHERE datname = current_database())::text";
    let who = |url: String| async move {
        let c = connect(&url).await.ok()?;
        c.query_one(WHO, &[])
            .await
            .ok()
            .map(|r| r.get::<_, String>(0))
    };
    let (a, b) = futures::join!(who(url.to_string()), who(source.to_string()));
    Ok(matches!((a, b), (Some(a), Some(b)) if a == b))
}

/// The connected role, for messages.
pub async fn current_role(client: &Client) -> Result<String> {
    Ok(client
        .query_one("SELECT current_user::text", &[])
        .await
        .db(|| "reading current_user".into())?
        .get(0))
}
