//! The data formats of an export: rows in PostgreSQL's COPY text format (as archived) turned into
//! `pg` (COPY text, unchanged), `csv` (RFC 4180) or `jsonl` (one JSON object per row). The
//! mappings are specified in docs/EXPORT.md.

use crate::copytext;
use crate::error::{Error, Result};
use crate::source::postgres::catalog::ColumnDef;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A data format of an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// PostgreSQL COPY text: lossless; loads with `\copy … FROM` into `schema.sql`'s tables.
    #[default]
    Pg,
    /// RFC 4180 CSV with a header row; NULL is an empty unquoted field, the empty string `""`.
    Csv,
    /// One JSON object per line, keyed by column name.
    Jsonl,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "pg" => Ok(Format::Pg),
            "csv" => Ok(Format::Csv),
            "jsonl" => Ok(Format::Jsonl),
            other => Err(Error::Invalid(format!(
                "unknown export format {other:?}: use pg, csv or jsonl"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Pg => "pg",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

    /// The file name extension of its data files.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Pg => "copy",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// How a column's values are written in `jsonl`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Json {
    /// Integers: the digits as a JSON number.
    Integer,
    /// `real` and `double precision`: a number, or a string for NaN and infinities.
    Float,
    Bool,
    /// `json` and `jsonb`: the value itself, insignificant whitespace removed.
    Embedded,
    /// `bytea`: base64 (RFC 4648, with padding) of the bytes.
    Base64,
    /// Everything else (numeric, text, dates, arrays, ...): PostgreSQL's text form, as a string.
    Text,
}

fn json_kind(type_name: &str) -> Json {
    match type_name {
        "smallint" | "integer" | "bigint" | "oid" => Json::Integer,
        "real" | "double precision" => Json::Float,
        "boolean" => Json::Bool,
        "json" | "jsonb" => Json::Embedded,
        "bytea" => Json::Base64,
        _ => Json::Text,
    }
}

/// Turns COPY text rows of one table into one format.
pub struct RowWriter {
    format: Format,
    /// Column names as JSON strings with their colon (`"id":`), for jsonl.
    keys: Vec<Vec<u8>>,
    kinds: Vec<Json>,
    header: Vec<u8>,
    field: Vec<u8>,
}

impl RowWriter {
    /// A writer for rows of `columns` (the archived columns, in order).
    pub fn new<'a>(format: Format, columns: impl Iterator<Item = &'a ColumnDef>) -> Self {
        let columns: Vec<&ColumnDef> = columns.collect();
        let mut header = vec![];
        if format == Format::Csv {
            for (i, c) in columns.iter().enumerate() {
                if i > 0 {
                    header.push(b',');
                }
                csv_field(c.name.as_bytes(), &mut header);
            }
            header.extend_from_slice(b"\r\n");
        }
        RowWriter {
            format,
            keys: columns
                .iter()
                .map(|c| {
                    let mut k = serde_json::to_vec(&c.name).unwrap_or_default();
                    k.push(b':');
                    k
                })
                .collect(),
            kinds: columns.iter().map(|c| json_kind(&c.type_name)).collect(),
            header,
            field: vec![],
        }
    }

    /// What a data file starts with (the CSV header row).
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Appends one row (a COPY text line without its newline) to `out`.
    pub fn row(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self.format {
            Format::Pg => {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            Format::Csv => {
                for (i, f) in copytext::fields(line).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if f != copytext::NULL {
                        self.field.clear();
                        unescape_into(f, &mut self.field);
                        csv_field(&self.field, out);
                    }
                }
                out.extend_from_slice(b"\r\n");
            }
            Format::Jsonl => {
                out.push(b'{');
                for (i, f) in copytext::fields(line).enumerate() {
                    let (Some(key), Some(kind)) = (self.keys.get(i), self.kinds.get(i)) else {
                        return Err(Error::Invalid(
                            "a row has more fields than its table has columns".into(),
                        ));
                    };
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key);
                    if f == copytext::NULL {
                        out.extend_from_slice(b"null");
                        continue;
                    }
                    self.field.clear();
                    unescape_into(f, &mut self.field);
                    json_value(*kind, &self.field, out)?;
                }
                out.extend_from_slice(b"}\n");
            }
        }
        Ok(())
    }
}

fn unescape_into(field: &[u8], out: &mut Vec<u8>) {
    if !field.contains(&b'\\') {
        out.extend_from_slice(field);
    } else if let Some(v) = copytext::unescape(field) {
        out.extend_from_slice(&v);
    }
}

/// One CSV field: quoted when empty (so it is not NULL), or when it holds a comma, a quote, a
/// CR or LF, or is `\.` (the end marker of PostgreSQL's COPY).
fn csv_field(value: &[u8], out: &mut Vec<u8>) {
    let quote = value.is_empty()
        || value == b"\\."
        || value
            .iter()
            .any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if !quote {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    for &b in value {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn json_value(kind: Json, value: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let text = || {
        std::str::from_utf8(value).map_err(|_| Error::Invalid("a value is not valid UTF-8".into()))
    };
    match kind {
        Json::Integer => out.extend_from_slice(value),
        Json::Float => match value {
            b"NaN" | b"Infinity" | b"-Infinity" => json_string(text()?, out),
            _ => out.extend_from_slice(value),
        },
        Json::Bool => out.extend_from_slice(if value == b"t" { b"true" } else { b"false" }),
        Json::Embedded => compact_json(value, out),
        Json::Base64 => {
            let hex = value.strip_prefix(b"\\x").unwrap_or(value);
            let bytes = hex::decode(hex)
                .map_err(|_| Error::Invalid("a bytea value is not in hex form".into()))?;
            out.push(b'"');
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        Json::Text => json_string(text()?, out),
    }
    Ok(())
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    // Serializing a str cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Copies a JSON text without the whitespace between tokens (a `json` value keeps its input's
/// line breaks, which would split a jsonl line); strings, key order and duplicates are kept.
fn compact_json(value: &[u8], out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in value {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(types: &[(&str, &str)]) -> Vec<ColumnDef> {
        types
            .iter()
            .map(|(n, t)| ColumnDef {
                name: n.to_string(),
                type_name: t.to_string(),
                generated: false,
            })
            .collect()
    }

    #[test]
    fn csv_tells_null_from_the_empty_string_and_quotes_what_it_must() {
        let c = cols(&[("a", "text"), ("b", "text"), ("c", "text"), ("d", "text")]);
        let mut w = RowWriter::new(Format::Csv, c.iter());
        assert_eq!(w.header(), b"a,b,c,d\r\n");
        let mut out = vec![];
        w.row(b"\\N\t\tx,\"y\"\tline\\nbreak", &mut out).unwrap();
        assert_eq!(out, b",\"\",\"x,\"\"y\"\"\",\"line\nbreak\"\r\n");
    }

    #[test]
    fn jsonl_maps_types_as_documented() {
        let c = cols(&[
            ("i", "bigint"),
            ("f", "double precision"),
            ("b", "boolean"),
            ("j", "json"),
            ("y", "bytea"),
            ("n", "numeric(12,2)"),
            ("z", "text"),
        ]);
        let mut w = RowWriter::new(Format::Jsonl, c.iter());
        let mut out = vec![];
        w.row(
            b"-7\tNaN\tt\t{\"a\" :\\n [1, \"x y\"]}\t\\\\x00ff\t12.50\t\\N",
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"i\":-7,\"f\":\"NaN\",\"b\":true,\"j\":{\"a\":[1,\"x y\"]},\"y\":\"AP8=\",\"n\":\"12.50\",\"z\":null}\n"
        );
    }
}
