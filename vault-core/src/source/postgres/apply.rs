//! Applying a tenant's changes to live tables: the one engine behind whole-tenant restore,
//! `--target`, `--schema-map` and `restore-records` (see `docs/RESTORE.md`).
//!
//! The caller stages, per table, the rows to write (`tv_w_N`), the keys of those that replace a
//! live row of the tenant (`tv_u_N`) and the keys of live rows to remove (`tv_d_N`) in temporary
//! tables. [`Session::apply`] then changes only those rows with set-based statements: deletes
//! children first, then updates and inserts parents first.
//!
//! Per-row foreign-key triggers are what makes a large restore quadratic (a `DELETE` on a parent
//! checks each row's references through an unindexed child column), so the session runs with
//! `session_replication_role = replica`, which skips them and user triggers alike, and
//! [`Session::check_references`] verifies exactly the changed rows afterwards, set-based: every
//! written row's references exist (and are locked against deletion until commit) and no removed
//! key is still referenced by any table of the database. Setting that parameter needs superuser,
//! or on PostgreSQL 15+ `GRANT SET ON PARAMETER session_replication_role`; without it the session
//! falls back to row-by-row foreign-key triggers and `ALTER TABLE … DISABLE TRIGGER USER`, which
//! takes a `SHARE ROW EXCLUSIVE` lock, and says so. No other lock stronger than `ROW EXCLUSIVE`
//! is taken on a live table.

use super::catalog::{Plan, TableDef};
use super::{load, query};
use crate::error::{DbContext, Error, Result};
use crate::sql::{ident, qualified};
use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::Transaction;

/// How a table's rows are matched with the live ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// By primary key: only differing rows are written or removed.
    Keyed,
    /// No primary key: the tenant's rows are deleted and the snapshot's inserted (when they differ).
    Replace,
}

/// One table's staged change.
#[derive(Clone, Debug)]
pub struct TableChange {
    /// The live table, with the archived columns in snapshot order.
    pub def: TableDef,
    /// Suffix of its staging tables.
    pub slot: usize,
    pub mode: Mode,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub unchanged: u64,
}

impl TableChange {
    pub fn is_empty(&self) -> bool {
        self.inserts + self.updates + self.deletes == 0
    }

    pub(super) fn writes(&self) -> bool {
        self.inserts + self.updates > 0
    }

    pub(super) fn removes(&self) -> bool {
        self.deletes + self.updates > 0
    }
}

/// Which key staging table.
#[derive(Clone, Copy)]
pub enum Keys {
    Update,
    Delete,
}

/// A table and the user triggers the fallback disabled on it.
type Disabled = (TableDef, Vec<String>);

/// A restore transaction's changes.
pub struct Session<'a, 't> {
    pub(super) tx: &'a Transaction<'t>,
    /// Foreign-key and user triggers are skipped (`session_replication_role = replica`).
    pub replica: bool,
    /// User triggers disabled with ALTER TABLE (fallback only), to re-enable before commit.
    disabled: std::sync::Mutex<Vec<Disabled>>,
}

/// Tries to skip per-row triggers for the rest of the transaction; false when not permitted.
pub async fn skip_row_triggers(tx: &mut Transaction<'_>) -> Result<bool> {
    let sp = tx
        .savepoint("tv_replica")
        .await
        .db(|| "starting the restore".into())?;
    match sp
        .batch_execute("SET LOCAL session_replication_role = replica")
        .await
    {
        Ok(()) => {
            sp.commit().await.db(|| "starting the restore".into())?;
            Ok(true)
        }
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            sp.rollback().await.db(|| "starting the restore".into())?;
            Ok(false)
        }
        Err(e) => Err(e).db(|| "setting session_replication_role".into()),
    }
}

/// The tenant's live rows of a table, through the backup's own query.
pub async fn live_rows(
    client: &tokio_postgres::Client,
    def: &TableDef,
    tenant_literal: &str,
) -> Result<tokio_postgres::CopyOutStream> {
    client
        .copy_out(&query::copy_out(def, Some(tenant_literal), None))
        .await
        .db(|| format!("reading the live rows of {}", def.display_name()))
}

/// The warning a fallback restore reports.
pub fn fallback_warning(role: &str) -> String {
    format!(
        "role {role:?} may not set session_replication_role, so foreign keys were checked row by row \
         (slow for large tenants with unindexed foreign keys) and user triggers were disabled with \
         ALTER TABLE, which blocks writers to those tables until commit. Grant it with \
         `GRANT SET ON PARAMETER session_replication_role TO \"{role}\"` (PostgreSQL 15+) or restore as a superuser"
    )
}

pub(super) fn staging(kind: char, slot: usize) -> String {
    format!("pg_temp.tv_{kind}_{slot}")
}

pub(super) fn cols(names: &[String], alias: &str) -> String {
    names
        .iter()
        .map(|c| format!("{alias}{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn equal(names: &[String], a: &str, b: &str) -> String {
    names
        .iter()
        .map(|c| format!("{a}.{} = {b}.{}", ident(c), ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

pub(super) fn archived(def: &TableDef) -> Vec<String> {
    def.archived_columns().map(|c| c.name.clone()).collect()
}

/// Columns of `def` that foreign keys elsewhere reference (the values a removal could orphan).
fn referenced_columns(def: &TableDef, plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for r in incoming(def, plan) {
        for c in &r.fk.ref_columns {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    out
}

pub(super) fn incoming<'p>(
    def: &'p TableDef,
    plan: &'p Plan,
) -> impl Iterator<Item = &'p super::catalog::Reference> {
    plan.references
        .iter()
        .filter(move |r| r.fk.ref_schema == def.schema && r.fk.ref_table == def.name)
}

impl<'a, 't> Session<'a, 't> {
    pub fn new(tx: &'a Transaction<'t>, replica: bool) -> Self {
        Session {
            tx,
            replica,
            disabled: Default::default(),
        }
    }

    /// The transaction, for the few catalog reads a caller makes while staging.
    pub fn client(&self) -> &Transaction<'t> {
        self.tx
    }

    fn disabled_mut(&self) -> Result<std::sync::MutexGuard<'_, Vec<Disabled>>> {
        self.disabled
            .lock()
            .map_err(|_| Error::Conflict("a restore session's lock is poisoned".into()))
    }

    pub(super) async fn run(&self, sql: &str, what: impl FnOnce() -> String) -> Result<u64> {
        self.tx.execute(sql, &[]).await.db(what)
    }

    /// Runs a statement that must change exactly `expected` rows: any other count means the
    /// tenant's rows changed after they were compared.
    async fn change(&self, c: &TableChange, sql: &str, verb: &str, expected: u64) -> Result<()> {
        let name = c.def.display_name();
        let n = self.run(sql, || format!("{verb} rows of {name}")).await?;
        if n != expected {
            return Err(Error::Conflict(format!(
                "{verb} {name}: {n} rows where {expected} were planned; the tenant's rows changed \
                 while the restore ran (restore when nothing writes to this tenant); nothing was changed"
            )));
        }
        Ok(())
    }

    /// Creates the staging tables of one table; their column types are the live table's.
    pub async fn stage(&self, c: &TableChange, plan: &Plan) -> Result<()> {
        let table = qualified(&c.def.schema, &c.def.name);
        // Typed like the live table's columns; dropped with the transaction.
        let like = |kind: char, columns: &[String]| {
            format!(
                "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {table} WITH NO DATA;",
                staging(kind, c.slot),
                cols(columns, "")
            )
        };
        let mut sql = like('w', &archived(&c.def));
        if c.mode == Mode::Keyed {
            sql.push_str(&like('u', &c.def.primary_key));
            sql.push_str(&like('d', &c.def.primary_key));
        }
        let refs = referenced_columns(&c.def, plan);
        if !refs.is_empty() {
            sql.push_str(&like('g', &refs));
        }
        self.tx
            .batch_execute(&sql)
            .await
            .db(|| format!("staging rows of {}", c.def.display_name()))
    }

    /// What the restore wrote, read back through the backup's query: for a keyed table the
    /// tenant's rows whose keys were staged for writing, for a replaced table all of them.
    pub async fn written_rows(
        &self,
        c: &TableChange,
        tenant_literal: &str,
    ) -> Result<tokio_postgres::CopyOutStream> {
        let extra = match c.mode {
            Mode::Keyed => vec![format!(
                "({}) IN (SELECT {} FROM {})",
                cols(&c.def.primary_key, "t0."),
                cols(&c.def.primary_key, ""),
                staging('w', c.slot)
            )],
            Mode::Replace => vec![],
        };
        self.tx
            .copy_out(&query::copy_out_where(&c.def, tenant_literal, &extra))
            .await
            .db(|| format!("reading back {}", c.def.display_name()))
    }

    /// Gives the planner statistics of large staging tables (temporary tables have none).
    pub async fn analyze(&self, c: &TableChange) -> Result<()> {
        if c.inserts + c.updates + c.deletes < 1000 {
            return Ok(());
        }
        let mut names = vec![staging('w', c.slot)];
        if c.mode == Mode::Keyed {
            names.push(staging('u', c.slot));
            names.push(staging('d', c.slot));
        }
        self.tx
            .batch_execute(&format!("ANALYZE {}", names.join(", ")))
            .await
            .db(|| format!("staging rows of {}", c.def.display_name()))
    }

    /// `COPY` into the staging table of rows to write (archived columns, snapshot order).
    pub async fn rows_sink(&self, c: &TableChange) -> Result<tokio_postgres::CopyInSink<Bytes>> {
        self.tx
            .copy_in(&format!(
                "COPY {} ({}) FROM STDIN",
                staging('w', c.slot),
                cols(&archived(&c.def), "")
            ))
            .await
            .db(|| format!("staging rows of {}", c.def.display_name()))
    }

    /// Loads primary keys (COPY text lines of the key columns) into a key staging table.
    pub async fn load_keys(&self, c: &TableChange, which: Keys, lines: Vec<u8>) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let kind = match which {
            Keys::Update => 'u',
            Keys::Delete => 'd',
        };
        let sink = self
            .tx
            .copy_in::<_, Bytes>(&format!(
                "COPY {} ({}) FROM STDIN",
                staging(kind, c.slot),
                cols(&c.def.primary_key, "")
            ))
            .await
            .db(|| format!("staging keys of {}", c.def.display_name()))?;
        futures::pin_mut!(sink);
        sink.send(Bytes::from(lines))
            .await
            .db(|| format!("staging keys of {}", c.def.display_name()))?;
        sink.finish()
            .await
            .db(|| format!("staging keys of {}", c.def.display_name()))?;
        Ok(())
    }

    /// Applies the staged changes: removals children first, then writes parents first (`changes`
    /// is in restore order). Rows of other tenants are never addressed: keys to update and delete
    /// were read from this tenant's live rows, and an insert that meets another tenant's key
    /// fails the whole restore.
    pub async fn apply(&self, changes: &[TableChange], tenant: &str, plan: &Plan) -> Result<()> {
        if !self.replica {
            for c in changes.iter().filter(|c| !c.is_empty()) {
                let names = load::disable_user_triggers(self.tx, &c.def).await?;
                self.disabled_mut()?.push((c.def.clone(), names));
            }
        }
        let literal = crate::sql::literal(self.tx, tenant).await?;
        for c in changes.iter().rev().filter(|c| c.removes()) {
            self.remove(c, &literal, plan).await?;
        }
        for c in changes.iter().filter(|c| c.writes()) {
            self.write(c, tenant).await?;
            load::advance_sequences(self.tx, &c.def).await?;
        }
        Ok(())
    }

    async fn remove(&self, c: &TableChange, literal: &str, plan: &Plan) -> Result<()> {
        let table = qualified(&c.def.schema, &c.def.name);
        let name = c.def.display_name();
        let refs = referenced_columns(&c.def, plan);
        match c.mode {
            Mode::Keyed => {
                let pk = &c.def.primary_key;
                if !refs.is_empty() {
                    // The old values of removed and rewritten rows, to look for orphans later.
                    self.run(
                        &format!(
                            "INSERT INTO {g} SELECT {rc} FROM {table} AS t WHERE ({tk}) IN \
                             (SELECT {dk} FROM {d} AS k UNION ALL SELECT {uk} FROM {u} AS k)",
                            g = staging('g', c.slot),
                            rc = cols(&refs, "t."),
                            tk = cols(pk, "t."),
                            dk = cols(pk, "k."),
                            uk = cols(pk, "k."),
                            d = staging('d', c.slot),
                            u = staging('u', c.slot),
                        ),
                        || format!("recording the keys removed from {name}"),
                    )
                    .await?;
                }
                if c.deletes > 0 {
                    let sql = format!(
                        "DELETE FROM {table} AS t USING {} AS k WHERE {}",
                        staging('d', c.slot),
                        equal(pk, "t", "k")
                    );
                    self.change(c, &sql, "deleting", c.deletes).await?;
                }
            }
            Mode::Replace => {
                let delete = query::delete(&c.def, literal);
                let sql = if refs.is_empty() {
                    delete
                } else {
                    format!(
                        "WITH gone AS ({delete} RETURNING {}) INSERT INTO {} SELECT * FROM gone",
                        cols(&refs, "d."),
                        staging('g', c.slot)
                    )
                };
                self.change(c, &sql, "deleting", c.deletes).await?;
            }
        }
        Ok(())
    }

    async fn write(&self, c: &TableChange, tenant: &str) -> Result<()> {
        let table = qualified(&c.def.schema, &c.def.name);
        let name = c.def.display_name();
        let all = archived(&c.def);
        let pk = &c.def.primary_key;
        let w = staging('w', c.slot);
        let set: Vec<String> = all
            .iter()
            .filter(|col| !pk.contains(col))
            .map(|col| format!("{} = w.{}", ident(col), ident(col)))
            .collect();
        let inserts = match c.mode {
            Mode::Keyed => {
                if c.updates > 0 && !set.is_empty() {
                    let sql = format!(
                        "UPDATE {table} AS t SET {} FROM {w} AS w JOIN {u} AS k ON {wk} WHERE {tw}",
                        set.join(", "),
                        u = staging('u', c.slot),
                        wk = equal(pk, "w", "k"),
                        tw = equal(pk, "t", "w"),
                    );
                    self.change(c, &sql, "updating", c.updates).await?;
                }
                format!(
                    "SELECT {} FROM {w} AS w WHERE NOT EXISTS (SELECT 1 FROM {} AS k WHERE {})",
                    cols(&all, "w."),
                    staging('u', c.slot),
                    equal(pk, "w", "k")
                )
            }
            Mode::Replace => format!("SELECT {} FROM {w}", cols(&all, "")),
        };
        if c.inserts == 0 {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO {table} ({}) OVERRIDING SYSTEM VALUE {inserts}",
            cols(&all, "")
        );
        match self.tx.execute(&sql, &[]).await {
            Ok(n) if n == c.inserts => Ok(()),
            Ok(n) => Err(Error::Conflict(format!(
                "inserting {name}: {n} rows where {} were planned; nothing was changed",
                c.inserts
            ))),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                let detail = e
                    .as_db_error()
                    .and_then(|d| d.detail())
                    .unwrap_or("a key")
                    .to_string();
                Err(Error::Conflict(format!(
                    "{name}: {detail} The row exists in the live database but is not one of tenant \
                     {tenant:?}'s rows, so the restore will not overwrite it; nothing was changed"
                )))
            }
            Err(e) => Err(e).db(|| format!("inserting rows of {name}")),
        }
    }

    /// Re-enables what the fallback disabled (before commit).
    pub async fn finish(&self) -> Result<()> {
        let disabled = std::mem::take(&mut *self.disabled_mut()?);
        for (def, names) in disabled {
            load::enable_triggers(self.tx, &def, &names).await?;
        }
        Ok(())
    }
}
