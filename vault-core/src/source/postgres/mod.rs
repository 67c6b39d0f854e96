//! The PostgreSQL source: catalog, the SQL for reading/writing one tenant's rows, and the
//! streaming extractor.

pub mod apply;
pub mod catalog;
pub mod extract;
pub mod load;
pub mod ownership;
pub mod query;
mod references;

use crate::error::{DbContext, Result};
use tokio_postgres::{Client, NoTls};

/// Connects and pins the session settings that fix the text form of values.
pub async fn connect(url: &str) -> Result<Client> {
    let shown = crate::config::redact_url(url);
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .db(|| format!("connecting to {shown}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    client
        .batch_execute(query::SESSION_SETTINGS)
        .await
        .db(|| "setting session parameters".into())?;
    Ok(client)
}

/// The connected role, for messages.
pub async fn current_role(client: &Client) -> Result<String> {
    Ok(client
        .query_one("SELECT current_user::text", &[])
        .await
        .db(|| "reading current_user".into())?
        .get(0))
}
