//! The one error type of `vault-core`.
//!
//! Variants are semantic (what went wrong, to what) so front ends can map them to exit codes and
//! messages without parsing strings. Every message names the tenant/snapshot/object involved and,
//! where there is one, what the user can do next.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant, snapshot, table or object that does not exist.
    #[error("{what} not found{}", fmt_hint(.hint))]
    NotFound { what: String, hint: Option<String> },

    /// The vault directory has not been initialised (or is from a newer format).
    #[error("no vault at {path}: run `tvault init` first")]
    NotInitialised { path: String },

    /// The supplied identity cannot decrypt this tenant's data key or blocks.
    #[error("wrong key for tenant {tenant:?}: {reason}")]
    WrongKey { tenant: String, reason: String },

    /// An object failed authentication, was truncated, or does not parse.
    #[error("corrupt object {object}: {reason}")]
    Corrupt { object: String, reason: String },

    /// Restored or stored data does not match the manifest's row counts or checksums.
    #[error("integrity check failed for tenant {tenant:?}, table {table}: {reason}")]
    Mismatch {
        tenant: String,
        table: String,
        reason: String,
    },

    /// The database schema differs from the snapshot's in a way that would lose data.
    #[error("schema of {table} does not match the snapshot: {reason}")]
    SchemaMismatch { table: String, reason: String },

    /// A table protected by row-level security that the backup role does not bypass.
    #[error(
        "table {table} has row-level security that role {role:?} does not bypass: a backup would \
         silently miss rows. Grant BYPASSRLS to the backup role, or configure \
         `rls_tenant_setting` so each tenant is read with its own setting"
    )]
    RowLevelSecurity { table: String, role: String },

    /// A restore would remove a row that another row still references.
    #[error(
        "restoring tenant {tenant:?} would remove {table} {key}, which a row of {by_table} \
         ({by_owner}) still references; nothing was changed. Restore from a snapshot that has \
         the row, or remove the reference first"
    )]
    StillReferenced {
        tenant: String,
        table: String,
        key: String,
        by_table: String,
        by_owner: String,
    },

    /// Bad input from the user: an invalid tenant id, option or configuration.
    #[error("{0}")]
    Invalid(String),

    /// Another operation holds the vault, or an object already exists.
    #[error("{0}")]
    Conflict(String),

    /// Refused by a rule (a legal hold) before anything changed; recorded as `refused` in the
    /// audit trail.
    #[error("{0}")]
    Refused(String),

    /// Another process holds the state directory, or another holder the store lease (exit
    /// code 5 in the CLI: try again later).
    #[error("{0}")]
    Busy(String),

    /// Errors of the tenant key layer.
    #[error(transparent)]
    Keys(#[from] keys::Error),

    /// PostgreSQL reported an error.
    #[error("database: {context}")]
    Database {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },

    /// The object store reported an error.
    #[error("object store: {context}")]
    Store {
        context: String,
        #[source]
        source: object_store::Error,
    },

    /// The S3 control plane (object lock, versions, bucket configuration) reported an error.
    #[error("S3: {context}: {message}")]
    S3 { context: String, message: String },

    /// An object is under S3 object lock (a retention date or a legal hold) and cannot be
    /// deleted yet.
    #[error("{object} is locked ({why}): it cannot be deleted yet")]
    Locked { object: String, why: String },

    /// The local inventory reported an error.
    #[error("inventory: {0}")]
    Inventory(#[from] sled::Error),

    /// Local file system errors.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A test hook asked the operation to fail (see `TVAULT_FAIL_AFTER_BLOCKS`).
    #[error("aborted: {0}")]
    Aborted(String),
}

fn fmt_hint(h: &Option<String>) -> String {
    match h {
        Some(h) => format!(": {h}"),
        None => String::new(),
    }
}

impl Error {
    pub fn not_found(what: impl fmt::Display, hint: impl Into<Option<String>>) -> Self {
        Error::NotFound {
            what: what.to_string(),
            hint: hint.into(),
        }
    }

    pub fn corrupt(object: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error::Corrupt {
            object: object.to_string(),
            reason: reason.to_string(),
        }
    }

    /// True for errors that mean "the data is not what it should be" (exit code 3 in the CLI).
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            Error::WrongKey { .. }
                | Error::Corrupt { .. }
                | Error::Mismatch { .. }
                | Error::SchemaMismatch { .. }
        ) || matches!(self, Error::Keys(k) if matches!(k, keys::Error::WrongKey | keys::Error::Corrupt { .. }))
    }

    /// True for errors that mean "no such thing" (exit code 4 in the CLI).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. } | Error::NotInitialised { .. })
    }
}

/// An error's message followed by those of its causes (`a: b: c`), as the CLI prints errors.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Attach context to database errors: `client.query(..).await.db("reading the catalog")?`.
pub trait DbContext<T> {
    fn db(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, tokio_postgres::Error> {
    fn db(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| {
            use tokio_postgres::error::SqlState;
            let mut context = context();
            match source.code() {
                Some(c) if c == &SqlState::LOCK_NOT_AVAILABLE => context.push_str(
                    " (another session holds a lock longer than lock_timeout; its transaction \
                     was rolled back: retry later, or raise [restore] lock_timeout_secs)",
                ),
                Some(c) if c == &SqlState::QUERY_CANCELED => context.push_str(
                    " (a statement ran longer than statement_timeout or was cancelled; its \
                     transaction was rolled back: raise [restore] statement_timeout_secs)",
                ),
                _ => {}
            }
            Error::Database { context, source }
        })
    }
}

/// Attach context to object store errors; a missing object becomes [`Error::NotFound`].
pub trait StoreContext<T> {
    fn store(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> StoreContext<T> for std::result::Result<T, object_store::Error> {
    fn store(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| match source {
            object_store::Error::NotFound { path, .. } => {
                Error::not_found(format!("object {path}"), Some(context()))
            }
            source => Error::Store {
                context: context(),
                source,
            },
        })
    }
}

/// Attach context to I/O errors.
pub trait IoContext<T> {
    fn io(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn io(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
