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
pub fn encode_key(def: &TableDef, tenant: &str, given: &KeyValues) -> Result<Vec<u8>> {
    let codec = codec(def)?;
    let mut values = given.clone();
    for (c, v) in given {
        if !def.primary_key.contains(c) {
            return Err(Error::Invalid(format!(
                "{c} is not a primary key column of {} (its key is {})",
                def.display_name(),
                def.primary_key.join(", ")
            )));
        }
        if let Owner::Column { column } = &def.owner {
            if c == column && v != tenant {
                return Err(Error::Invalid(format!(
                    "the key names tenant {v:?}, not {tenant:?}: records of other tenants are out of reach"
                )));
            }
        }
    }
    if let Owner::Column { column } = &def.owner {
        if def.primary_key.contains(column) && !values.iter().any(|(c, _)| c == column) {
            values.push((column.clone(), tenant.to_string()));
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
