//! Record-level operations for support staff: find a record's versions across snapshots, show
//! one version, compare it with the live row, and restore a few records with their related rows.
//!
//! `find` answers from the inventory alone (per-snapshot block lists and per-block key sets with
//! row hashes); `show`, `diff` and `restore-records` read only the blocks that hold the rows, with
//! one ranged read each. Tables without a primary key are not record-addressable: their rows
//! come back only with a whole-tenant restore.

mod apply;
mod lookup;

pub use apply::{PlannedRow, RecordRestoreOptions, RecordRestoreReport};
pub use lookup::{FieldDiff, RecordDiff, RecordView, Version};

use crate::archive::keyindex::KeyCodec;
use crate::copytext;
use crate::error::{Error, Result};
use crate::source::postgres::catalog::{Owner, TableDef};

/// Column/value pairs naming a record, as the user wrote them (`id=42`).
pub type KeyValues = Vec<(String, String)>;

impl crate::Vault {
    /// The records `keys` of `table` as the audit trail names them ([`IdKey::audit_name`] under
    /// the tenant's id key); empty when the tenant is unknown.
    ///
    /// [`IdKey::audit_name`]: crate::archive::block::IdKey::audit_name
    pub(crate) fn audit_names(&self, tenant: &str, table: &str, keys: &[KeyValues]) -> Vec<String> {
        let Ok(record) = self.tenant(tenant) else {
            return vec![];
        };
        let Ok(Some(id_key)) = self.inventory().id_key(&record.path) else {
            return vec![];
        };
        keys.iter()
            .map(|k| {
                let text: Vec<String> = k.iter().map(|(c, v)| format!("{c}={v}")).collect();
                id_key.audit_name(table, &text.join(","))
            })
            .collect()
    }
}

/// Every value of these keys, as given: what the audit trail must not quote.
pub(crate) fn key_strings(keys: &[KeyValues]) -> Vec<String> {
    keys.iter()
        .flat_map(|k| k.iter().map(|(_, v)| v.clone()))
        .collect()
}

/// Parses `id=42` or `tenant_id=acme,id=42`. A comma followed by text without `=` belongs to
/// the previous value, so values may contain commas.
pub fn parse_key(s: &str) -> Result<KeyValues> {
    let mut out: KeyValues = vec![];
    for part in s.split(',') {
        match part.split_once('=') {
            Some((c, v)) if !c.trim().is_empty() => out.push((c.trim().to_string(), v.to_string())),
            _ => match out.last_mut() {
                Some(last) => {
                    last.1.push(',');
                    last.1.push_str(part);
                }
                None => {
                    return Err(Error::Invalid(format!(
                        "--key {s:?}: expected column=value[,column=value]"
                    )))
                }
            },
        }
    }
    Ok(out)
}

/// The encoded key of a record of `def` for `tenant`: checks the columns and fills in the tenant
/// column when it is part of the primary key and was not given.
pub fn encode_key(
    def: &TableDef,
    tenant: &str,
    tenant_column: &str,
    given: &KeyValues,
) -> Result<Vec<u8>> {
    let codec = codec(def)?;
    // The column that names the tenant: the owner's, or, in a table that is the tenant's whole
    // (bridge, silo), the tenant column where the table has one.
    let owning = match &def.owner {
        Owner::Column { column } => Some(column.as_str()),
        Owner::Schema => Some(tenant_column),
        _ => None,
    };
    let mut values = given.clone();
    for (c, v) in given {
        if !def.primary_key.contains(c) {
            return Err(Error::Invalid(format!(
                "{c} is not a primary key column of {} (its key is {})",
                def.display_name(),
                def.primary_key.join(", ")
            )));
        }
        if Some(c.as_str()) == owning && v != tenant {
            return Err(Error::Invalid(format!(
                "the key names tenant {v:?}, not {tenant:?}: records of other tenants are out of reach"
            )));
        }
    }
    if let Some(column) = owning {
        if def.primary_key.iter().any(|k| k == column) && !values.iter().any(|(c, _)| c == column) {
            values.push((column.to_string(), tenant.to_string()));
        }
    }
    codec.key_of(&values)
}

fn codec(def: &TableDef) -> Result<KeyCodec> {
    KeyCodec::for_table(def).ok_or_else(|| {
        Error::Invalid(format!(
            "{} has no primary key, so its rows cannot be addressed one by one; \
             restore the whole tenant instead (`tvault restore`)",
            def.display_name()
        ))
    })
}

/// A row of a block, split into named fields (COPY text, still escaped).
pub(crate) fn fields<'a>(def: &'a TableDef, row: &'a [u8]) -> Vec<(&'a str, &'a [u8])> {
    def.archived_columns()
        .map(|c| c.name.as_str())
        .zip(copytext::fields(row))
        .collect()
}

/// `t0.<pk column> = <literal>` for each primary key column of `row`, quoted by the server.
pub(crate) async fn pk_conditions(
    client: &impl tokio_postgres::GenericClient,
    def: &TableDef,
    row: &[u8],
) -> Result<Vec<String>> {
    let f = fields(def, row);
    let mut conditions = vec![];
    for k in &def.primary_key {
        let raw = f
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        let value = copytext::unescape(raw)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok_or_else(|| Error::Invalid(format!("primary key column {k} is NULL")))?;
        conditions.push(format!(
            "t0.{} = {}",
            crate::sql::ident(k),
            crate::sql::literal(client, &value).await?
        ));
    }
    Ok(conditions)
}

/// The raw (escaped) values of `columns` in a row; a column the row lacks reads as NULL.
pub(crate) fn column_values(def: &TableDef, row: &[u8], columns: &[String]) -> Vec<Vec<u8>> {
    let f = fields(def, row);
    columns
        .iter()
        .map(|c| {
            f.iter()
                .find(|(n, _)| n == c)
                .map_or_else(|| copytext::NULL.to_vec(), |(_, v)| v.to_vec())
        })
        .collect()
}

/// Decrypted blocks of one tenant, each fetched and opened once. Block ids are content
/// addressed, so one cache serves every snapshot that shares a block.
pub(crate) struct BlockCache<'a> {
    vault: &'a crate::Vault,
    record: &'a crate::tenant::TenantRecord,
    keys: &'a crate::tenant::Unlocked,
    blocks: std::collections::HashMap<String, std::sync::Arc<Vec<u8>>>,
}

impl<'a> BlockCache<'a> {
    /// The vault the blocks come from.
    pub fn vault(&self) -> &'a crate::Vault {
        self.vault
    }

    pub fn new(
        vault: &'a crate::Vault,
        record: &'a crate::tenant::TenantRecord,
        keys: &'a crate::tenant::Unlocked,
    ) -> Self {
        BlockCache {
            vault,
            record,
            keys,
            blocks: Default::default(),
        }
    }

    /// One block's plaintext.
    pub async fn block(
        &mut self,
        table: &crate::archive::manifest::TableManifest,
        b: &crate::archive::manifest::BlockRef,
    ) -> Result<std::sync::Arc<Vec<u8>>> {
        if let Some(p) = self.blocks.get(&b.id) {
            return Ok(p.clone());
        }
        // Blocks are keyed with the table's name in the archive: a bridge tenant's tables are
        // relative to its schema there, wherever the caller placed them.
        let name = match self.record.placement.home() {
            Some(home) if table.def.schema == home => table.def.name.clone(),
            _ => table.def.display_name(),
        };
        let plain = self
            .vault
            .read_block(self.record, self.keys, &name, b)
            .await?;
        let p = std::sync::Arc::new(plain);
        self.blocks.insert(b.id.clone(), p.clone());
        Ok(p)
    }

    /// Every row of a table in the snapshot (scans the tenant's blocks of that table).
    pub async fn rows(
        &mut self,
        table: &crate::archive::manifest::TableManifest,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = vec![];
        for b in &table.blocks {
            let plain = self.block(table, b).await?;
            out.extend(crate::archive::block::rows(&plain).map(<[u8]>::to_vec));
        }
        Ok(out)
    }
}

/// Human-readable key of a row: `id=42, tenant_id=acme`.
pub(crate) fn display_key(def: &TableDef, row: &[u8]) -> String {
    let f = fields(def, row);
    def.primary_key
        .iter()
        .map(|k| {
            let v = f
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| copytext::display(v));
            format!("{k}={}", v.unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a snapshot's table maps onto the live table: the archived columns (by index) the live
/// table still has with the same type, and the ones it lost or changed.
pub(crate) struct Projection {
    /// Archived column names of the snapshot, in order.
    pub original: Vec<String>,
    pub keep: Vec<usize>,
    pub dropped: Vec<String>,
    pub retyped: Vec<(String, String, String)>,
    /// The table definition restricted to the kept columns (for reading live rows).
    pub def: TableDef,
}

impl Projection {
    /// Reads the live columns of `def`'s table.
    pub async fn of(
        client: &impl tokio_postgres::GenericClient,
        def: &TableDef,
    ) -> Result<Projection> {
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''",
                &[&crate::sql::qualified(&def.schema, &def.name)],
            )
            .await
            .map_err(|source| Error::Database { context: format!("reading the columns of {}", def.display_name()), source })?;
        if rows.is_empty() {
            return Err(Error::SchemaMismatch {
                table: def.display_name(),
                reason: "the table does not exist in the live database".into(),
            });
        }
        let live: std::collections::HashMap<String, String> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut p = Projection {
            original: def.archived_columns().map(|c| c.name.clone()).collect(),
            keep: vec![],
            dropped: vec![],
            retyped: vec![],
            def: def.clone(),
        };
        for (i, c) in def.archived_columns().enumerate() {
            match live.get(&c.name) {
                Some(ty) if *ty == c.type_name => p.keep.push(i),
                Some(ty) => p
                    .retyped
                    .push((c.name.clone(), c.type_name.clone(), ty.clone())),
                None => p.dropped.push(c.name.clone()),
            }
        }
        let kept: std::collections::HashSet<&str> = p
            .keep
            .iter()
            .filter_map(|&i| def.archived_columns().nth(i))
            .map(|c| c.name.as_str())
            .collect();
        p.def
            .columns
            .retain(|c| !c.generated && kept.contains(c.name.as_str()));
        Ok(p)
    }

    /// The row restricted to the kept columns.
    pub fn row(&self, row: &[u8]) -> Vec<u8> {
        let f: Vec<&[u8]> = copytext::fields(row).collect();
        let picked: Vec<&[u8]> = self
            .keep
            .iter()
            .map(|&i| f.get(i).copied().unwrap_or(copytext::NULL))
            .collect();
        picked.join(&b'\t')
    }

    /// Refuses when restoring `rows` would lose a value (dropped column) or guess a conversion
    /// (changed type), or when the primary key itself changed.
    pub fn check(&self, rows: &[&[u8]]) -> Result<()> {
        if let Some((c, was, now)) = self.retyped.first() {
            return Err(Error::SchemaMismatch {
                table: self.def.display_name(),
                reason: format!(
                    "column {c} was {was} and is {now} now; refusing to guess a conversion"
                ),
            });
        }
        for c in &self.dropped {
            let i = self.index_of(c);
            let has_value = rows.iter().any(|r| {
                i.and_then(|i| copytext::fields(r).nth(i))
                    .is_some_and(|v| v != copytext::NULL)
            });
            if has_value || self.def.primary_key.contains(c) {
                return Err(Error::SchemaMismatch {
                    table: self.def.display_name(),
                    reason: format!("column {c} no longer exists; restoring would lose its value"),
                });
            }
        }
        Ok(())
    }

    fn index_of(&self, column: &str) -> Option<usize> {
        self.original.iter().position(|c| c == column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_with_commas_in_values() {
        assert_eq!(
            parse_key("id=42").unwrap(),
            vec![("id".into(), "42".into())]
        );
        assert_eq!(
            parse_key("tenant_id=a,b,id=7").unwrap(),
            vec![
                ("tenant_id".into(), "a,b".into()),
                ("id".into(), "7".into())
            ]
        );
        assert!(parse_key("42").is_err());
    }
}
