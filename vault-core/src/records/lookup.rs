//! find, show and diff.

use super::{codec, encode_key, fields, KeyValues};
use crate::archive::block;
use crate::archive::keyindex;
use crate::copytext;
use crate::error::{DbContext, Error, Result};
use crate::source::postgres::catalog::TableDef;
use crate::source::postgres::{self as pg, query};
use crate::sql;
use crate::tenant::{TenantRecord, Unlocked};
use crate::Vault;
use futures::TryStreamExt;
use serde::Serialize;
use std::collections::HashMap;
use time::OffsetDateTime;

/// One snapshot's view of a record.
#[derive(Debug, Serialize)]
pub struct Version {
    pub snapshot: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub present: bool,
    /// Against the previous snapshot: `added`, `changed`, `unchanged`, `deleted` or `absent`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Field {
    pub column: String,
    pub value: Option<String>,
}

/// A record as it was in one snapshot.
#[derive(Debug, Serialize)]
pub struct RecordView {
    pub tenant: String,
    pub snapshot: String,
    pub table: String,
    pub fields: Vec<Field>,
    #[serde(skip)]
    pub(crate) def: Option<TableDef>,
    #[serde(skip)]
    pub(crate) row: Vec<u8>,
}

#[derive(Debug, Serialize)]
pub struct FieldDiff {
    pub column: String,
    pub snapshot: Option<String>,
    pub live: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A snapshot version against the live row.
#[derive(Debug, Serialize)]
pub struct RecordDiff {
    pub tenant: String,
    pub snapshot: String,
    pub table: String,
    /// `present` or `deleted` (no live row with that key).
    pub live: &'static str,
    pub differences: Vec<FieldDiff>,
}

impl Vault {
    /// Every snapshot of the tenant and whether it holds the record, from the inventory alone.
    pub fn find_record(&self, tenant: &str, table: &str, key: &KeyValues) -> Result<Vec<Version>> {
        let record = self.tenant(tenant)?;
        let mut out: Vec<Version> = vec![];
        let mut prev: Option<u64> = None;
        let mut seen = HashMap::new();
        let mut last_key: Option<Vec<u8>> = None;
        let mut seen_table = false;
        for snap in self.inventory().snapshots(&record.path)? {
            let found =
                match self
                    .inventory()
                    .snapshot_blocks(&record.path, &snap.snapshot, table)?
                {
                    None => None,
                    Some((def, blocks)) => {
                        seen_table = true;
                        let k = encode_key(&def, &record.id, &self.config().tenant_column, key)?;
                        // A table definition change can change the key's encoding.
                        if last_key.as_ref() != Some(&k) {
                            seen.clear();
                            last_key = Some(k.clone());
                        }
                        self.locate(&record, &blocks, &k, &mut seen)?
                    }
                };
            let hash = found.as_ref().map(|f| f.1);
            let change = match (prev, hash) {
                (None, Some(_)) => "added",
                (Some(a), Some(b)) if a == b => "unchanged",
                (Some(_), Some(_)) => "changed",
                (Some(_), None) => "deleted",
                (None, None) => "absent",
            };
            out.push(Version {
                snapshot: snap.snapshot,
                time: snap.time,
                present: found.is_some(),
                change,
                block: found.map(|f| f.0),
            });
            prev = hash;
        }
        if !seen_table {
            return Err(Error::not_found(
                format!("table {table} in the snapshots of tenant {:?}", record.id),
                Some("`tvault tables` lists the archived tables (as schema.table)".into()),
            ));
        }
        Ok(out)
    }

    /// The block among `blocks` that holds `key`, and the row's hash, using key ranges first.
    /// `seen` remembers each block's answer for this key (`None`: not indexed), so that walking
    /// many snapshots that share blocks decodes each key set once.
    pub(crate) fn locate(
        &self,
        record: &TenantRecord,
        blocks: &[String],
        key: &[u8],
        seen: &mut HashMap<String, Option<Option<u64>>>,
    ) -> Result<Option<(String, u64)>> {
        let mut unindexed = 0;
        for id in blocks {
            let answer = match seen.get(id) {
                Some(a) => *a,
                None => {
                    let a = match self.inventory().key_set(&record.path, id)? {
                        None => None,
                        Some((min, max, _)) if key < min.as_slice() || key > max.as_slice() => {
                            Some(None)
                        }
                        Some((_, _, set)) => {
                            Some(keyindex::lookup(&keyindex::decode_set(&set)?, key))
                        }
                    };
                    seen.insert(id.clone(), a);
                    a
                }
            };
            match answer {
                None => unindexed += 1,
                Some(Some(h)) => return Ok(Some((id.clone(), h))),
                Some(None) => {}
            }
        }
        if unindexed > 0 {
            // "absent" would be a guess: the record index of these blocks is not here.
            return Err(Error::not_found(
                format!("the record index of {unindexed} block(s) of tenant {:?}", record.id),
                Some(format!(
                    "the inventory was rebuilt without the tenant's key: run `tvault inventory rebuild --identity {}=KEYFILE`",
                    record.id
                )),
            ));
        }
        Ok(None)
    }

    /// A record as it was in `snapshot`, reading only the block that holds it; recorded in the
    /// audit trail as a read.
    pub async fn show_record(
        &self,
        tenant: &str,
        table: &str,
        key: &KeyValues,
        snapshot: &str,
        identity: &keys::TenantIdentities,
    ) -> Result<RecordView> {
        let read = self.show_unaudited(tenant, table, key, snapshot, identity);
        self.audited_read("show", tenant, table, key, snapshot, read)
            .await
    }

    /// Runs a read of one record's plaintext under the tenant's shared lock and records it,
    /// the record named by keyed hash.
    async fn audited_read<T>(
        &self,
        what: &str,
        tenant: &str,
        table: &str,
        key: &KeyValues,
        snapshot: &str,
        read: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let result = {
            let _tenant = self.reading_tenant(tenant).await;
            read.await
        };
        let keys = std::slice::from_ref(key);
        let draft = crate::audit::AuditDraft::new(crate::audit::actions::READ)
            .tenant(tenant)
            .details(serde_json::json!({
                "what": what, "table": table, "snapshot": snapshot,
                "records": self.audit_names(tenant, table, keys),
            }));
        self.audited_hiding(draft, result, &super::key_strings(keys))
            .await
    }

    async fn show_unaudited(
        &self,
        tenant: &str,
        table: &str,
        key: &KeyValues,
        snapshot: &str,
        identity: &keys::TenantIdentities,
    ) -> Result<RecordView> {
        let record = self.tenant(tenant)?;
        let snapshot = self.resolve_snapshot(&record, snapshot)?;
        let keys = self.unlock(&record, identity).await?;
        self.read_record(&record, &keys, table, key, &snapshot)
            .await
    }

    pub(crate) async fn read_record(
        &self,
        record: &TenantRecord,
        keys: &Unlocked,
        table: &str,
        key: &KeyValues,
        snapshot: &str,
    ) -> Result<RecordView> {
        let (def, blocks) = self
            .inventory()
            .snapshot_blocks(&record.path, snapshot, table)?
            .ok_or_else(|| {
                Error::not_found(format!("table {table} in snapshot {snapshot}"), None)
            })?;
        let k = encode_key(&def, &record.id, &self.config().tenant_column, key)?;
        let missing = || {
            Error::not_found(
                format!(
                    "record {} of {table} in snapshot {snapshot}",
                    display_values(key)
                ),
                Some("`tvault find` lists the snapshots that hold it".into()),
            )
        };
        let (block_id, _) = self
            .locate(record, &blocks, &k, &mut HashMap::new())?
            .ok_or_else(missing)?;
        let bref = self
            .inventory()
            .block(&record.path, &block_id)?
            .ok_or_else(|| {
                Error::corrupt("inventory", format!("block {block_id} has no location"))
            })?;
        let plaintext = self.read_block(record, keys, table, &bref).await?;
        let codec = codec(&def)?;
        let row = block::rows(&plaintext)
            .find(|r| codec.row_key(r) == k)
            .ok_or_else(missing)?;
        Ok(RecordView {
            tenant: record.id.clone(),
            snapshot: snapshot.to_string(),
            table: table.to_string(),
            fields: to_fields(&def, row),
            row: row.to_vec(),
            def: Some(def),
        })
    }

    /// Field-by-field difference between a snapshot version and the live row; recorded in the
    /// audit trail as a read.
    pub async fn diff_record(
        &self,
        tenant: &str,
        table: &str,
        key: &KeyValues,
        snapshot: &str,
        identity: &keys::TenantIdentities,
    ) -> Result<RecordDiff> {
        let read = self.diff_unaudited(tenant, table, key, snapshot, identity);
        self.audited_read("diff", tenant, table, key, snapshot, read)
            .await
    }

    async fn diff_unaudited(
        &self,
        tenant: &str,
        table: &str,
        key: &KeyValues,
        snapshot: &str,
        identity: &keys::TenantIdentities,
    ) -> Result<RecordDiff> {
        let view = self
            .show_unaudited(tenant, table, key, snapshot, identity)
            .await?;
        let def = view
            .def
            .clone()
            .ok_or_else(|| Error::Invalid("record without table".into()))?;
        let record = self.tenant(tenant)?;
        let client = pg::connect(&self.tenant_source(&record)?).await?;
        // A bridge or silo tenant's tables are archived relative to its own schema.
        let def = match record.placement.home() {
            Some(home) => def.located_in(&pg::catalog::Home::of(&client, home).await?),
            None => def,
        };
        // Compare over the columns the live table still has; report the others.
        let projection = super::Projection::of(&client, &def).await?;
        let live = live_row(&client, &projection.def, tenant, &projection.row(&view.row)).await?;
        let mut differences = vec![];
        if let Some(live) = &live {
            let now = to_fields(&projection.def, live);
            for f in &view.fields {
                match now.iter().find(|n| n.column == f.column) {
                    Some(n) if n.value != f.value => differences.push(FieldDiff {
                        column: f.column.clone(),
                        snapshot: f.value.clone(),
                        live: n.value.clone(),
                        note: None,
                    }),
                    Some(_) => {}
                    None => differences.push(FieldDiff {
                        column: f.column.clone(),
                        snapshot: f.value.clone(),
                        live: None,
                        note: Some(if projection.dropped.contains(&f.column) {
                            "column dropped since the snapshot".into()
                        } else {
                            "column type changed since the snapshot".into()
                        }),
                    }),
                }
            }
        }
        Ok(RecordDiff {
            tenant: view.tenant,
            snapshot: view.snapshot,
            table: view.table,
            live: if live.is_some() { "present" } else { "deleted" },
            differences,
        })
    }
}

fn to_fields(def: &TableDef, row: &[u8]) -> Vec<Field> {
    fields(def, row)
        .into_iter()
        .map(|(c, v)| Field {
            column: c.to_string(),
            value: copytext::unescape(v).map(|b| String::from_utf8_lossy(&b).into_owned()),
        })
        .collect()
}

fn display_values(key: &KeyValues) -> String {
    key.iter()
        .map(|(c, v)| format!("{c}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The live row of the tenant with the same primary key as `row` (COPY text, archived columns).
pub(crate) async fn live_row(
    client: &tokio_postgres::Client,
    def: &TableDef,
    tenant: &str,
    row: &[u8],
) -> Result<Option<Vec<u8>>> {
    let tenant_lit = sql::literal(client, tenant).await?;
    let conditions = super::pk_conditions(client, def, row).await?;
    let sql = format!(
        "COPY ({}) TO STDOUT",
        query::select_where(def, Some(&tenant_lit), None, &conditions)
    );
    let stream = client
        .copy_out(&sql)
        .await
        .db(|| format!("reading the live row of {}", def.display_name()))?;
    let chunks: Vec<bytes::Bytes> = stream
        .try_collect()
        .await
        .db(|| format!("reading the live row of {}", def.display_name()))?;
    let all: Vec<u8> = chunks.concat();
    let row = block::rows(&all)
        .next()
        .map(|line| copytext::split_first(line).1.unwrap_or_default().to_vec());
    Ok(row)
}
