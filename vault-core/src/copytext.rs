//! PostgreSQL COPY text format, the canonical row encoding inside archives.
//!
//! A row is one line; fields are separated by a literal TAB; backslash escapes any TAB, newline,
//! carriage return or backslash inside a value, and `\N` is NULL. Because a raw TAB or newline never
//! occurs inside a field, rows and fields can be split without decoding them, which is what keeps
//! demultiplexing by tenant cheap.

/// The NULL marker.
pub const NULL: &[u8] = b"\\N";

/// The longest row read from the database: PostgreSQL's own limit on one field is 1 GB, and a
/// server that sends more without a newline is not believed (nothing is buffered past this).
pub const MAX_ROW: usize = 1 << 30;

/// Refuses a partial row that grew past [`MAX_ROW`] (`what` names the stream in the error).
pub fn check_row_len(len: usize, what: &str) -> crate::Result<()> {
    if len > MAX_ROW {
        return Err(crate::Error::corrupt(
            what,
            format!("a row longer than {MAX_ROW} bytes without an end"),
        ));
    }
    Ok(())
}

/// Iterates the raw (still escaped) fields of one line (without its trailing newline).
pub fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b'\t')
}

/// Splits off the first field: `(first, rest)`; `rest` is `None` when the line has one field.
pub fn split_first(line: &[u8]) -> (&[u8], Option<&[u8]>) {
    match line.iter().position(|&b| b == b'\t') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    }
}

/// Appends the fields of `line` at `positions`, joined by TABs (a COPY line of those columns).
pub fn pick(line: &[u8], positions: &[usize], out: &mut Vec<u8>) {
    // One key column is the common case, and this runs once per row of a restore.
    if let [only] = positions {
        out.extend_from_slice(fields(line).nth(*only).unwrap_or(NULL));
        return;
    }
    let fields: Vec<&[u8]> = fields(line).collect();
    for (n, &i) in positions.iter().enumerate() {
        if n > 0 {
            out.push(b'\t');
        }
        out.extend_from_slice(fields.get(i).copied().unwrap_or(NULL));
    }
}

/// Escapes a value into its COPY text form (not NULL).
pub fn escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out
}

/// Decodes one field; `None` for NULL. Handles every escape COPY may emit or accept
/// (`\b \f \n \r \t \v`, octal `\NNN`, hex `\xHH`, and `\<any>` = that byte).
pub fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    if field == NULL {
        return None;
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = field[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (c - b'0') as u32;
                let mut n = 1;
                while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + (field[i] - b'0') as u32;
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            b'x' if i < field.len() && field[i].is_ascii_hexdigit() => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// Renders a decoded field for people: NULL as `NULL`, invalid UTF-8 lossily.
pub fn display(field: &[u8]) -> String {
    match unescape(field) {
        None => "NULL".to_string(),
        Some(v) => String::from_utf8_lossy(&v).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_through_unescape() {
        for v in [
            &b"plain"[..],
            b"tab\there",
            b"nl\nx\r",
            b"back\\slash",
            b"",
            b"\\N",
        ] {
            assert_eq!(unescape(&escape(v)).unwrap(), v);
        }
        assert_eq!(unescape(NULL), None);
        assert_eq!(unescape(b"\\101\\x42\\v").unwrap(), b"AB\x0b");
    }

    #[test]
    fn splits_on_raw_tabs_only() {
        let line = b"a\\tb\tc\t\\N";
        let f: Vec<_> = fields(line).collect();
        assert_eq!(f, vec![&b"a\\tb"[..], b"c", b"\\N"]);
        assert_eq!(split_first(line), (&b"a\\tb"[..], Some(&b"c\t\\N"[..])));
    }
}
