//! What a restore does to the target database besides loading rows: checking that tables still
//! match the snapshot, keeping user triggers out of the load, and advancing sequences.

use super::catalog::TableDef;
use crate::error::{DbContext, Error, Result};
use crate::sql::{ident, qualified};
use tokio_postgres::{Client, Transaction};

/// Refuses to restore into a table whose columns no longer match the snapshot: a missing column
/// or a changed type would lose or alter values. Extra columns are fine (they get defaults).
/// `target` is the live table, `archived` the snapshot's definition of it.
pub async fn check_schema(client: &Client, target: &TableDef, archived: &TableDef) -> Result<()> {
    let name = qualified(&target.schema, &target.name);
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '' \
             FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&name],
        )
        .await
        .db(|| format!("reading the columns of {}", target.display_name()))?;
    let mismatch = |reason: String| Error::SchemaMismatch {
        table: target.display_name(),
        reason,
    };
    if rows.is_empty() {
        return Err(mismatch(
            "the table does not exist in the target database".into(),
        ));
    }
    for c in archived.archived_columns() {
        match rows.iter().find(|r| r.get::<_, String>(0) == c.name) {
            None => {
                return Err(mismatch(format!(
                    "column {} ({}) no longer exists",
                    c.name, c.type_name
                )))
            }
            Some(r) if r.get::<_, String>(1) != c.type_name => {
                return Err(mismatch(format!(
                    "column {} was {} at backup time and is {} now",
                    c.name,
                    c.type_name,
                    r.get::<_, String>(1)
                )))
            }
            Some(r) if r.get::<_, bool>(2) => {
                return Err(mismatch(format!(
                    "column {} is now a generated column",
                    c.name
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Disables the table's enabled user triggers for this transaction (like `pg_restore
/// --disable-triggers`), so restored rows are exactly the archived ones and no trigger writes
/// elsewhere; returns their names to re-enable. Foreign-key triggers stay on. `ALTER TABLE`
/// is transactional: a failed restore leaves them as they were.
pub async fn disable_user_triggers(tx: &Transaction<'_>, t: &TableDef) -> Result<Vec<String>> {
    let name = qualified(&t.schema, &t.name);
    let rows = tx
        .query(
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = to_regclass($1) \
             AND NOT tgisinternal AND tgenabled <> 'D' ORDER BY tgname",
            &[&name],
        )
        .await
        .db(|| format!("reading the triggers of {}", t.display_name()))?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for n in &names {
        tx.batch_execute(&format!("ALTER TABLE {name} DISABLE TRIGGER {}", ident(n)))
            .await
            .db(|| {
                format!(
                    "disabling trigger {n} of {} (the restoring role must own the table)",
                    t.display_name()
                )
            })?;
    }
    Ok(names)
}

pub async fn enable_triggers(tx: &Transaction<'_>, t: &TableDef, names: &[String]) -> Result<()> {
    let name = qualified(&t.schema, &t.name);
    for n in names {
        tx.batch_execute(&format!("ALTER TABLE {name} ENABLE TRIGGER {}", ident(n)))
            .await
            .db(|| format!("re-enabling trigger {n} of {}", t.display_name()))?;
    }
    Ok(())
}

/// Moves sequences owned by the table's columns (serial, identity) past the largest restored
/// value. Only ever forward: in a pooled table the sequence is shared with other tenants.
pub async fn advance_sequences(tx: &Transaction<'_>, t: &TableDef) -> Result<()> {
    let name = qualified(&t.schema, &t.name);
    let rows = tx
        .query(
            "SELECT a.attname::text, pg_get_serial_sequence($1, a.attname)::text FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             AND pg_get_serial_sequence($1, a.attname) IS NOT NULL",
            &[&name],
        )
        .await
        .db(|| format!("reading the sequences of {}", t.display_name()))?;
    for r in rows {
        let (column, sequence): (String, String) = (r.get(0), r.get(1));
        // `sequence` comes back from the server already quoted and qualified.
        let sql = format!(
            "SELECT setval($1::text::regclass, m) FROM (SELECT max({})::int8 AS m FROM {name}) x \
             WHERE m >= (SELECT last_value FROM {sequence})",
            ident(&column)
        );
        tx.query(&sql, &[&sequence])
            .await
            .db(|| format!("advancing sequence {sequence}"))?;
    }
    Ok(())
}
