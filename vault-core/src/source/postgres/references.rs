//! Reference checks of a restore: after the changes are applied with per-row triggers skipped,
//! exactly the changed rows are checked, set-based, before commit (see `apply`'s module docs).

use super::apply::{archived, cols, equal, incoming, staging, Session, TableChange};
use super::catalog::Plan;
use super::query;
use crate::error::{DbContext, Error, Result};
use crate::sql::{as_text, ident, qualified};

impl Session<'_, '_> {
    /// Verifies the references of exactly the changed rows (see the module docs). Fails, naming
    /// the row, when a written row references a missing row or a removed key is still referenced.
    pub async fn check_references(
        &self,
        changes: &[TableChange],
        plan: &Plan,
        tenant: &str,
    ) -> Result<()> {
        for c in changes.iter().filter(|c| c.writes()) {
            self.check_outgoing(c).await?;
        }
        for c in changes.iter().filter(|c| c.removes()) {
            self.check_incoming(c, plan, tenant).await?;
        }
        Ok(())
    }

    async fn check_outgoing(&self, c: &TableChange) -> Result<()> {
        let all = archived(&c.def);
        for fk in &c.def.foreign_keys {
            if !fk.columns.iter().all(|col| all.contains(col)) {
                continue; // a generated referencing column: the database computes it
            }
            let parent = qualified(&fk.ref_schema, &fk.ref_table);
            let w = staging('w', c.slot);
            let present: Vec<String> = fk
                .columns
                .iter()
                .map(|col| format!("w.{} IS NOT NULL", ident(col)))
                .collect();
            let matches: Vec<String> = fk
                .columns
                .iter()
                .zip(&fk.ref_columns)
                .map(|(col, r)| format!("p.{} = w.{}", ident(r), ident(col)))
                .collect();
            // Lock the referenced rows as PostgreSQL's own check would, so that no concurrent
            // transaction deletes them before this one commits.
            self.run(
                &format!(
                    "SELECT 1 FROM {parent} AS p WHERE ({}) IN (SELECT {} FROM {w} AS w) FOR KEY SHARE OF p",
                    cols(&fk.ref_columns, "p."),
                    cols(&fk.columns, "w.")
                ),
                || format!("locking rows of {parent} that restored rows reference"),
            )
            .await?;
            let missing = self
                .tx
                .query(
                    &format!(
                        "SELECT {} FROM {w} AS w WHERE {} AND NOT EXISTS \
                         (SELECT 1 FROM {parent} AS p WHERE {}) LIMIT 3",
                        as_text(&fk.columns, "w."),
                        present.join(" AND "),
                        matches.join(" AND ")
                    ),
                    &[],
                )
                .await
                .db(|| format!("checking the references of {}", c.def.display_name()))?;
            if let Some(row) = missing.first() {
                let values: Vec<String> = row.get(0);
                return Err(Error::Conflict(format!(
                    "a restored row of {} references {}.{} ({}) = ({}), which does not exist in the \
                     live database; nothing was changed",
                    c.def.display_name(),
                    fk.ref_schema,
                    fk.ref_table,
                    fk.ref_columns.join(", "),
                    values.join(", ")
                )));
            }
        }
        Ok(())
    }

    async fn check_incoming(&self, c: &TableChange, plan: &Plan, tenant: &str) -> Result<()> {
        let table = qualified(&c.def.schema, &c.def.name);
        let g = staging('g', c.slot);
        for r in incoming(&c.def, plan) {
            let child = qualified(&r.schema, &r.table);
            // Removed values that no row of the table holds any more, and who still uses them.
            let gone = format!(
                "SELECT DISTINCT {gc} FROM {g} AS g WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {eq})",
                gc = cols(&r.fk.ref_columns, "g."),
                eq = equal(&r.fk.ref_columns, "t", "g")
            );
            let rows = self
                .tx
                .query(
                    &format!(
                        "SELECT t0.tableoid::int8, t0.ctid::text, {} FROM {child} AS t0 WHERE ({}) IN ({gone}) LIMIT 3",
                        as_text(&r.fk.columns, "t0."),
                        cols(&r.fk.columns, "t0.")
                    ),
                    &[],
                )
                .await
                .db(|| format!("checking references to {}", c.def.display_name()))?;
            let Some(row) = rows.first() else { continue };
            let values: Vec<String> = row.get(2);
            let owner = self
                .owner_of(plan, &r.schema, &r.table, row.get(0), row.get(1))
                .await?;
            return Err(Error::StillReferenced {
                tenant: tenant.to_string(),
                table: c.def.display_name(),
                key: format!(
                    "({}) = ({})",
                    r.fk.ref_columns.join(", "),
                    values.join(", ")
                ),
                by_table: format!("{}.{}", r.schema, r.table),
                by_owner: owner,
            });
        }
        Ok(())
    }

    /// Who owns one live row, for messages: `tenant "x"`, `no tenant` or `a global table`.
    async fn owner_of(
        &self,
        plan: &Plan,
        schema: &str,
        table: &str,
        tableoid: i64,
        ctid: String,
    ) -> Result<String> {
        let Some(def) = plan
            .tables
            .iter()
            .find(|t| t.schema == schema && t.name == table)
        else {
            return Ok(format!("row {ctid} of a global table"));
        };
        if def.owner == super::catalog::Owner::Schema {
            return Ok(format!("the tenant whose own schema is {schema}"));
        }
        let sql = query::owner_of_row(def);
        let row = self
            .tx
            .query_opt(&sql, &[&(tableoid as u32), &ctid])
            .await
            .db(|| format!("reading the owner of a row of {}", def.display_name()))?;
        Ok(match row.and_then(|r| r.get::<_, Option<String>>(0)) {
            Some(t) => format!("tenant {t:?}"),
            None => "no tenant".to_string(),
        })
    }
}
