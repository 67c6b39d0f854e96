//! Quoting for the few places where names or values must be spliced into SQL text.
//!
//! `COPY (SELECT …)` cannot take bind parameters, so tenant ids are turned into literals by the
//! server itself (`quote_literal`) via [`literal`]; identifiers always come from the catalog and are
//! still quoted here so that hostile table names cannot change a statement's meaning.

use crate::error::{DbContext, Result};

/// Quotes an identifier: always double-quoted, embedded quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// `ARRAY[<alias>"a"::text, …]`: the values of some columns as text, for messages.
pub fn as_text(names: &[String], alias: &str) -> String {
    let each: Vec<String> = names
        .iter()
        .map(|c| format!("{alias}{}::text", ident(c)))
        .collect();
    format!("ARRAY[{}]", each.join(", "))
}

/// Asks the server to quote `value` as a string literal, so the quoting rules are exactly the
/// server's (standard_conforming_strings, encoding) rather than a reimplementation of them.
pub async fn literal(client: &impl tokio_postgres::GenericClient, value: &str) -> Result<String> {
    let row = client
        .query_one("SELECT quote_literal($1::text)", &[&value])
        .await
        .db(|| "quoting a tenant id".into())?;
    Ok(row.get(0))
}

/// [`literal`] of many values in one round trip (a cycle quotes every tenant id once, not once
/// per table it reads).
pub async fn literals(
    client: &impl tokio_postgres::GenericClient,
    values: &[&str],
) -> Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT quote_literal(v) FROM unnest($1::text[]) WITH ORDINALITY u(v, i) ORDER BY i",
            &[&values],
        )
        .await
        .db(|| "quoting the tenant ids".into())?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_cannot_escape_their_quotes() {
        assert_eq!(
            super::ident(r#"a"; DROP TABLE x; --"#),
            r#""a""; DROP TABLE x; --""#
        );
        assert_eq!(super::qualified("s", "t"), r#""s"."t""#);
    }
}
