//! The audit trail: an append-only, hash-chained log of every operation (see `docs/AUDIT.md`).
//!
//! One JSON entry per line in a local file of the vault directory. Each entry carries the hash of
//! the previous one, so editing, removing or reordering entries breaks the chain at a place that
//! [`AuditLog::verify`] names. Cutting the tail off leaves a valid shorter chain; that is caught by
//! comparing with the anchor (`audit/head.json` in the object store, see [`write_anchor`]), which the
//! vault rewrites after each operation.
//!
//! Concurrency: one process holds a vault at a time (sled's exclusive inventory lock), so the log
//! needs no cross-process locking; within the process, `append` takes `&mut self`.
//!
//! Entries describe operations (who, which tenant, which objects, the outcome, small details such
//! as counts); they never contain row data.

use crate::error::{Error, IoContext, Result, StoreContext};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `details` larger than this are refused: they are for counts and ids, never for row data.
pub const MAX_DETAILS_BYTES: usize = 8 << 10;

/// Action names used by the vault (free text is accepted, but these keep the log greppable).
pub mod actions {
    pub const BACKUP: &str = "backup";
    pub const RESTORE: &str = "restore";
    pub const RECORD_RESTORE: &str = "record-restore";
    pub const EXPORT: &str = "export";
    pub const KEY_CHANGE: &str = "key-change";
    pub const POLICY_CHANGE: &str = "policy-change";
    /// A tenant's partition model or schema changed (`tenant place`).
    pub const PLACEMENT_CHANGE: &str = "placement-change";
    pub const HOLD: &str = "hold";
    pub const HOLD_RELEASE: &str = "hold-release";
    pub const DELETION: &str = "deletion";
    pub const ERASURE: &str = "erasure";
    /// Plaintext read without changing anything: `show`, `diff`, `verify` with a key, dry runs
    /// of restores, an inventory rebuild with identities.
    pub const READ: &str = "read";
}

/// One line of the log. Field order is the canonical order (see [`AuditEntry::compute_hash`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    pub seq: u64,
    #[serde(with = "utc_micros")]
    pub time: OffsetDateTime,
    pub actor: String,
    pub tenant: Option<String>,
    pub action: String,
    /// Object names (store paths) or snapshot ids the operation touched.
    pub objects: Vec<String>,
    /// `ok`, `refused: <why>` or `failed: <why>`.
    pub outcome: String,
    /// Small structured facts (counts, ids, options); never row data.
    pub details: Value,
    /// `hash` of the previous entry; [`GENESIS`] for the first.
    pub prev: String,
    pub hash: String,
}

/// The hashed form: every field but `hash`, in struct order. Kept separate from [`AuditEntry`] so
/// the canonical bytes cannot drift with serde attributes meant for display.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    #[serde(with = "utc_micros")]
    time: OffsetDateTime,
    actor: &'a str,
    tenant: Option<&'a str>,
    action: &'a str,
    objects: &'a [String],
    outcome: &'a str,
    details: Value,
    prev: &'a str,
}

impl AuditEntry {
    /// `hex(BLAKE3(compact JSON of every field but hash, in struct order, object keys sorted))`.
    pub fn compute_hash(&self) -> String {
        let c = Canonical {
            seq: self.seq,
            time: self.time,
            actor: &self.actor,
            tenant: self.tenant.as_deref(),
            action: &self.action,
            objects: &self.objects,
            outcome: &self.outcome,
            details: canonical_value(&self.details),
            prev: &self.prev,
        };
        // Serialising plain strings, numbers and a JSON value cannot fail; an empty input would
        // only make the hash wrong, which verify reports.
        let bytes = serde_json::to_vec(&c).unwrap_or_default();
        blake3::hash(&bytes).to_hex().to_string()
    }
}

/// Entry times in one fixed RFC 3339 form, `2026-01-01T02:03:04.000005Z` (UTC, always six
/// fraction digits), so the hashed text never depends on how a library version renders times.
mod utc_micros {
    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};
    use time::format_description::BorrowedFormatItem;
    use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

    const FORMAT: &[BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t
            .to_offset(UtcOffset::UTC)
            .format(FORMAT)
            .map_err(S::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        PrimitiveDateTime::parse(&text, FORMAT)
            .map(PrimitiveDateTime::assume_utc)
            .map_err(D::Error::custom)
    }
}

/// Sorts object keys recursively, so the canonical form does not depend on whether serde_json
/// keeps insertion order (its `preserve_order` feature may be enabled by any crate in a build).
fn canonical_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical_value(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical_value).collect()),
        other => other.clone(),
    }
}

/// What an operation wants to record; [`AuditLog::append`] adds seq, time and the chain.
#[derive(Clone, Debug)]
pub struct AuditDraft {
    pub actor: String,
    pub tenant: Option<String>,
    pub action: String,
    pub objects: Vec<String>,
    pub outcome: String,
    pub details: Value,
}

impl AuditDraft {
    /// A successful `action` by the OS user (`$USER`, `$LOGNAME`, else `unknown`).
    pub fn new(action: impl Into<String>) -> Self {
        let actor = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        AuditDraft {
            actor,
            tenant: None,
            action: action.into(),
            objects: Vec::new(),
            outcome: "ok".into(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    pub fn object(mut self, object: impl Into<String>) -> Self {
        self.objects.push(object.into());
        self
    }

    pub fn objects<I: IntoIterator<Item = S>, S: Into<String>>(mut self, objects: I) -> Self {
        self.objects.extend(objects.into_iter().map(Into::into));
        self
    }

    /// The operation was refused (by policy, a hold, a bound) before it changed anything.
    pub fn refused(mut self, why: impl std::fmt::Display) -> Self {
        self.outcome = format!("refused: {why}");
        self
    }

    /// The operation failed.
    pub fn failed(mut self, why: impl std::fmt::Display) -> Self {
        self.outcome = format!("failed: {why}");
        self
    }

    /// The outcome of `result`: `ok`, `refused: …` for an [`Error::Refused`] or
    /// [`Error::Busy`] (nothing was changed), else `failed: …`
    /// with the error's causes; `hide` are strings (record keys) the trail must not contain, each
    /// replaced by `<key>`.
    pub fn outcome_of<T>(self, result: &Result<T>, hide: &[String]) -> Self {
        let clean = |mut s: String| {
            for h in hide.iter().filter(|h| !h.is_empty()) {
                s = s.replace(h.as_str(), "<key>");
            }
            s
        };
        match result {
            Ok(_) => self,
            Err(Error::Refused(why) | Error::Busy(why)) => self.refused(clean(why.clone())),
            Err(e) => self.failed(clean(crate::error::with_causes(e))),
        }
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    fn check(&self) -> Result<()> {
        let o = &self.outcome;
        if !(o == "ok" || o.starts_with("refused: ") || o.starts_with("failed: ")) {
            return Err(Error::Invalid(format!(
                "audit outcome {o:?} must be \"ok\", \"refused: …\" or \"failed: …\""
            )));
        }
        let size = serde_json::to_vec(&self.details).map_or(0, |v| v.len());
        if size > MAX_DETAILS_BYTES {
            return Err(Error::Invalid(format!(
                "audit details of {:?} are {size} bytes; at most {MAX_DETAILS_BYTES} are allowed \
                 (counts and ids only, never row data)",
                self.action
            )));
        }
        Ok(())
    }
}

/// The log file, open for appending.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    head: Option<(u64, String)>,
    /// Set when an append failed and its partial line could not be removed: appending more
    /// would glue the next entry onto it.
    broken: Option<String>,
}

impl AuditLog {
    /// Opens (or creates) the log and reads its last entry to continue the chain. Refuses a log
    /// whose last line is incomplete or does not match its own hash: extending it would hide that.
    pub fn open(path: &Path) -> Result<Self> {
        let ctx = || format!("opening audit log {}", path.display());
        let existed = path.exists();
        let mut opts = OpenOptions::new();
        opts.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path).io(ctx)?;
        if !existed {
            sync_parent(path).io(ctx)?;
        }
        let len = file.metadata().io(ctx)?.len();
        let head =
            match last_line(&mut file, len).io(ctx)? {
                None => None,
                Some((_, false)) => return Err(Error::corrupt(
                    path.display(),
                    "the last line is incomplete (an append was interrupted or the file was cut); \
                     run `tvault audit verify`, then remove the partial line to continue the log",
                )),
                Some((line, true)) => {
                    let e: AuditEntry = serde_json::from_slice(&line).map_err(|e| {
                        Error::corrupt(path.display(), format!("last entry does not parse: {e}"))
                    })?;
                    if e.compute_hash() != e.hash {
                        return Err(Error::corrupt(
                            path.display(),
                            format!("last entry (seq {}) does not match its hash", e.seq),
                        ));
                    }
                    Some((e.seq, e.hash))
                }
            };
        Ok(AuditLog {
            path: path.to_path_buf(),
            file,
            head,
            broken: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sequence number and hash of the last entry; `None` for an empty log.
    pub fn head(&self) -> Option<(u64, String)> {
        self.head.clone()
    }

    /// Appends one entry and fsyncs it. The line is written with a single `write` on an
    /// `O_APPEND` file, so it is never interleaved, only possibly cut short by a crash.
    pub fn append(&mut self, draft: AuditDraft) -> Result<AuditEntry> {
        if let Some(why) = &self.broken {
            return Err(Error::corrupt(self.path.display(), why));
        }
        draft.check()?;
        let (seq, prev) = match &self.head {
            Some((s, h)) => (s + 1, h.clone()),
            None => (1, GENESIS.to_string()),
        };
        let mut entry = AuditEntry {
            seq,
            time: now_micros(),
            actor: draft.actor,
            tenant: draft.tenant,
            action: draft.action,
            objects: draft.objects,
            outcome: draft.outcome,
            details: canonical_value(&draft.details),
            prev,
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        let mut line = serde_json::to_vec(&entry)
            .map_err(|e| Error::Invalid(format!("audit entry does not serialise: {e}")))?;
        line.push(b'\n');
        let ctx = || format!("appending to audit log {}", self.path.display());
        let before = self.file.metadata().io(ctx)?.len();
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Take back a partial line so the next append starts on a line of its own.
            if self.file.set_len(before).is_err() {
                self.broken = Some(format!(
                    "an append failed and its partial line could not be removed ({e})"
                ));
            }
            return Err(e).io(ctx);
        }
        tracing::debug!(seq, action = %entry.action, outcome = %entry.outcome, "audit entry appended");
        self.head = Some((seq, entry.hash.clone()));
        Ok(entry)
    }

    /// Every entry, oldest first; only `tenant`'s when given. Fails on an unreadable line (run
    /// [`AuditLog::verify`] for a full report).
    pub fn entries(&self, tenant: Option<&str>) -> Result<Vec<AuditEntry>> {
        let bytes = std::fs::read(&self.path).io(|| format!("reading {}", self.path.display()))?;
        let (lines, torn) = split_lines(&bytes);
        if torn.is_some() {
            let why = "the last line is incomplete; run `tvault audit verify`";
            return Err(Error::corrupt(self.path.display(), why));
        }
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let e: AuditEntry = serde_json::from_slice(line)
                .map_err(|e| Error::corrupt(self.path.display(), format!("line {}: {e}", i + 1)))?;
            if tenant.is_none() || e.tenant.as_deref() == tenant {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Re-reads the whole log and checks every entry and link; see [`verify_with_anchor`].
    ///
    /// [`verify_with_anchor`]: AuditLog::verify_with_anchor
    pub fn verify(path: &Path) -> Result<VerifyOutcome> {
        Self::verify_with_anchor(path, None)
    }

    /// Checks every entry's hash, the sequence (gaps, duplicates, order), every `prev` link, an
    /// incomplete last line, and, given the anchored head from the store, that the log still
    /// reaches it with the same hash (a cut tail leaves an otherwise valid chain).
    pub fn verify_with_anchor(path: &Path, anchor: Option<(u64, String)>) -> Result<VerifyOutcome> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).io(|| format!("reading {}", path.display())),
        };
        let out = check(&bytes, anchor);
        if !out.problems.is_empty() {
            tracing::warn!(path = %path.display(), problems = out.problems.len(), "audit log damaged");
        }
        Ok(out)
    }
}

/// What [`AuditLog::verify`] found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyOutcome {
    /// Entries that parsed.
    pub entries: usize,
    /// Highest sequence number found and its hash.
    pub head: Option<(u64, String)>,
    /// The anchor checked against, if any.
    pub anchor: Option<(u64, String)>,
    pub problems: Vec<Problem>,
}

impl VerifyOutcome {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A line that is not an entry.
    Malformed,
    /// The last line has no newline: an interrupted append or a cut file.
    Truncated,
    /// An entry's content does not match its own hash.
    Edited,
    /// Sequence numbers are missing.
    Removed,
    /// An entry appears before one with a lower sequence number.
    Reordered,
    /// A sequence number appears twice.
    Duplicate,
    /// An entry's `prev` is not the hash of the entry before it.
    BrokenLink,
    /// The log ends before the anchored head.
    TruncatedTail,
    /// The anchored entry is there but its hash differs.
    AnchorMismatch,
}

/// One finding: where (line, seq) and why.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub line: Option<usize>,
    pub seq: Option<u64>,
    pub kind: ProblemKind,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if let Some(s) = self.seq {
            write!(f, "seq {s}: ")?;
        }
        f.write_str(&self.detail)
    }
}

/// Complete lines (each had a newline), and the unterminated rest if any.
fn split_lines(bytes: &[u8]) -> (Vec<&[u8]>, Option<&[u8]>) {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let rest = lines.pop().filter(|l| !l.is_empty());
    (lines, rest)
}

impl Problem {
    fn new(line: Option<usize>, seq: Option<u64>, kind: ProblemKind, detail: String) -> Self {
        Problem {
            line,
            seq,
            kind,
            detail,
        }
    }
}

fn check(bytes: &[u8], anchor: Option<(u64, String)>) -> VerifyOutcome {
    use ProblemKind::*;
    let mut problems = Vec::new();
    // Pass 1: parse lines and check each entry against its own hash.
    let (lines, torn) = split_lines(bytes);
    let mut parsed: Vec<(usize, AuditEntry)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_slice::<AuditEntry>(line) {
            Ok(e) => parsed.push((i + 1, e)),
            Err(err) => {
                let why = format!("not an audit entry: {err}");
                problems.push(Problem::new(Some(i + 1), None, Malformed, why));
            }
        }
    }
    if let Some(rest) = torn {
        let after = parsed.last().map_or(0, |(_, e)| e.seq);
        let why = format!(
            "incomplete last line ({} bytes, no newline) after seq {after}: an append was \
             interrupted or the file was cut",
            rest.len()
        );
        problems.push(Problem::new(Some(lines.len() + 1), None, Truncated, why));
        // A line cut exactly before its newline is still a whole entry: check it too.
        if let Ok(e) = serde_json::from_slice::<AuditEntry>(rest) {
            parsed.push((lines.len() + 1, e));
        }
    }
    for (n, e) in &parsed {
        if e.compute_hash() != e.hash {
            let why = "content does not match the entry's hash: the entry was edited".into();
            problems.push(Problem::new(Some(*n), Some(e.seq), Edited, why));
        }
    }
    // Pass 2: duplicates and order, in file order.
    let mut by_seq: BTreeMap<u64, (usize, &AuditEntry)> = BTreeMap::new();
    let mut prev_in_file: Option<(usize, u64)> = None;
    for (n, e) in &parsed {
        let here = (Some(*n), Some(e.seq));
        if let Some((first, _)) = by_seq.get(&e.seq) {
            let why = format!("seq {} already appeared on line {first}", e.seq);
            problems.push(Problem::new(here.0, here.1, Duplicate, why));
        } else if e.seq == 0 {
            let why = "seq 0 is not a sequence number (the log starts at 1)".into();
            problems.push(Problem::new(here.0, here.1, Malformed, why));
        } else {
            if let Some((pn, ps)) = prev_in_file.filter(|&(_, ps)| e.seq < ps) {
                let why = format!("comes after seq {ps} (line {pn}): entries were reordered");
                problems.push(Problem::new(here.0, here.1, Reordered, why));
            }
            by_seq.insert(e.seq, (*n, e));
        }
        prev_in_file = Some((*n, e.seq));
    }
    // Pass 3: gaps between the sequence numbers present (walked pairwise: a forged huge seq must
    // not make this loop long), then each link whose two ends exist.
    let malformed = problems.iter().any(|p| p.kind == Malformed);
    let hint = if malformed {
        " (or on a line that does not parse)"
    } else {
        ""
    };
    let mut last = 0;
    for &s in by_seq.keys() {
        if s > last + 1 {
            let range = if s == last + 2 {
                format!("seq {} is", last + 1)
            } else {
                format!("seqs {}-{} are", last + 1, s - 1)
            };
            let why = format!("{range} missing: entries were removed{hint}");
            problems.push(Problem::new(None, Some(last + 1), Removed, why));
        }
        last = s;
    }
    for (&s, (n, e)) in &by_seq {
        let expected = match s {
            1 => GENESIS,
            _ => match by_seq.get(&(s - 1)) {
                Some((_, p)) => p.hash.as_str(),
                None => continue,
            },
        };
        if e.prev != expected {
            let why = if s == 1 {
                "prev is not the genesis value: this is not the start of the log".to_string()
            } else {
                let p = s - 1;
                format!(
                    "prev does not match the hash of seq {p}: seq {p} was rewritten or replaced"
                )
            };
            problems.push(Problem::new(Some(*n), Some(s), BrokenLink, why));
        }
    }
    if let Some((aseq, ahash)) = &anchor {
        match by_seq.get(aseq) {
            Some((n, e)) if e.hash != *ahash => {
                let why = format!(
                    "hash differs from the anchor in the store: the log was rewritten at or \
                     before seq {aseq}"
                );
                problems.push(Problem::new(Some(*n), Some(*aseq), AnchorMismatch, why));
            }
            None if last < *aseq => {
                let why = format!(
                    "the log ends at seq {last} but the anchor in the store records seq {aseq}: \
                     entries {}-{aseq} were removed",
                    last + 1
                );
                problems.push(Problem::new(None, Some(last + 1), TruncatedTail, why));
            }
            // Matching, or missing inside the log's range (already reported as removed).
            _ => {}
        }
    }
    VerifyOutcome {
        entries: parsed.len(),
        head: by_seq
            .iter()
            .next_back()
            .map(|(s, (_, e))| (*s, e.hash.clone())),
        anchor,
        problems,
    }
}

/// The last line of the file without its newline, and whether it had one.
fn last_line(file: &mut File, len: u64) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    const CHUNK: u64 = 16 << 10;
    if len == 0 {
        return Ok(None);
    }
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    loop {
        let step = CHUNK.min(pos);
        pos -= step;
        let mut buf = vec![0u8; step as usize];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf)?;
        buf.extend_from_slice(&tail);
        tail = buf;
        let terminated = tail.last() == Some(&b'\n');
        let body = if terminated {
            &tail[..tail.len() - 1]
        } else {
            &tail[..]
        };
        if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
            return Ok(Some((body[i + 1..].to_vec(), terminated)));
        }
        if pos == 0 {
            return Ok(Some((body.to_vec(), terminated)));
        }
    }
}

/// Makes a newly created file's directory entry durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Now, cut to the microsecond the log records.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_microsecond(now.microsecond()).unwrap_or(now)
}

/// Name of a state directory's anchor object in the store: `audit/trails/<trail>.json`, one per
/// state directory (each host keeps its own trail), or `audit/head.json` for a state directory
/// made before trails had ids.
pub fn anchor_path(trail: Option<&str>) -> ObjPath {
    match trail {
        Some(id) => ObjPath::from(format!("audit/trails/{id}.json")),
        None => ObjPath::from("audit/head.json"),
    }
}

/// True for the anchor objects (never authenticated by the vault key: they have their chain).
pub fn is_anchor(path: &ObjPath) -> bool {
    let p = path.as_ref();
    p == "audit/head.json" || (p.starts_with("audit/trails/") && p.ends_with(".json"))
}

/// The trail id of a state directory (`audit.trail`), if it has one.
pub fn trail_id(dir: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(dir.join(TRAIL_FILE)) {
        Ok(s) => {
            let id = s.trim().to_string();
            match id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                true => Ok(Some(id)),
                false => Err(Error::corrupt(TRAIL_FILE, "not a 32-digit hex trail id")),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).io(|| format!("reading {}", dir.join(TRAIL_FILE).display())),
    }
}

/// Gives a new state directory its own trail id.
pub fn new_trail(dir: &Path) -> Result<String> {
    let mut id = [0u8; 16];
    rand::fill(&mut id);
    let id = hex::encode(id);
    crate::vault::write_file_atomic(&dir.join(TRAIL_FILE), id.as_bytes())?;
    Ok(id)
}

const TRAIL_FILE: &str = "audit.trail";

/// `audit/head.json`: the log's head as of the last operation, kept outside the vault directory
/// so that cutting the local log's tail is detectable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    pub format: u32,
    pub seq: u64,
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
}

impl Anchor {
    pub fn head(&self) -> (u64, String) {
        (self.seq, self.hash.clone())
    }
}

/// Reads the anchor; `None` when no operation has anchored the log yet.
pub async fn read_anchor(store: &dyn ObjectStore, path: &ObjPath) -> Result<Option<Anchor>> {
    let path = path.clone();
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await.store(|| format!("reading {path}"))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e).store(|| format!("reading {path}")),
    };
    let a: Anchor = serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, e))?;
    if a.format != 1 {
        return Err(Error::corrupt(
            &path,
            format!("unknown format {}", a.format),
        ));
    }
    Ok(Some(a))
}

/// Records the log's head in the store. Refuses to move the anchor backwards or to replace it
/// with a different hash at the same seq: that would hide a local log restored from an old copy.
pub async fn write_anchor(
    store: &dyn ObjectStore,
    path: &ObjPath,
    seq: u64,
    hash: &str,
) -> Result<()> {
    let path = path.clone();
    if let Some(old) = read_anchor(store, &path).await? {
        if old.seq > seq || (old.seq == seq && old.hash != hash) {
            return Err(Error::Conflict(format!(
                "the audit anchor in the store is at seq {} but the local log's head is seq {seq}: \
                 the local audit log is not the one the store saw last; run `tvault audit verify`",
                old.seq
            )));
        }
        if old.seq == seq {
            return Ok(());
        }
    }
    let a = Anchor {
        format: 1,
        seq,
        hash: hash.to_string(),
        time: OffsetDateTime::now_utc(),
    };
    let bytes = serde_json::to_vec(&a).map_err(|e| Error::Invalid(e.to_string()))?;
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .store(|| format!("writing {path}"))?;
    tracing::debug!(seq, "audit log anchored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
            let dir = std::env::temp_dir().join(format!(
                "tvault-audit-{name}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A log of five entries (alternating tenants) and their hashes.
    fn five(dir: &TempDir) -> (PathBuf, Vec<String>) {
        let path = dir.0.join("audit.log");
        let mut log = AuditLog::open(&path).expect("open");
        let mut hashes = Vec::new();
        for i in 1..=5u64 {
            let tenant = if i % 2 == 1 { "acme" } else { "globex" };
            let e = log
                .append(
                    AuditDraft::new(actions::BACKUP)
                        .actor("alice")
                        .tenant(tenant)
                        .object(format!("snapshots/s{i}.json"))
                        .details(json!({"rows": i * 10, "a": {"z": 1, "b": 2}})),
                )
                .expect("append");
            assert_eq!(e.seq, i);
            hashes.push(e.hash);
        }
        (path, hashes)
    }

    fn lines(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).expect("read");
        text.lines().map(str::to_string).collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").expect("write");
    }

    fn kinds(out: &VerifyOutcome) -> Vec<(ProblemKind, Option<u64>)> {
        out.problems.iter().map(|p| (p.kind, p.seq)).collect()
    }

    #[test]
    fn appended_log_verifies() {
        let dir = TempDir::new("ok");
        let (path, hashes) = five(&dir);
        let out = AuditLog::verify(&path).expect("verify");
        assert!(out.is_ok(), "{:?}", out.problems);
        assert_eq!(out.entries, 5);
        assert_eq!(out.head, Some((5, hashes[4].clone())));
        let first = &AuditLog::open(&path)
            .expect("open")
            .entries(None)
            .expect("entries")[0];
        assert_eq!(first.prev, GENESIS);
        assert_eq!(first.actor, "alice");
    }

    #[test]
    fn edited_entry_is_named() {
        let dir = TempDir::new("edit");
        let (path, _) = five(&dir);
        let mut l = lines(&path);
        assert!(l[2].contains("\"actor\":\"alice\""));
        l[2] = l[2].replace("\"actor\":\"alice\"", "\"actor\":\"mallory\"");
        write_lines(&path, &l);
        let out = AuditLog::verify(&path).expect("verify");
        assert_eq!(kinds(&out), vec![(ProblemKind::Edited, Some(3))]);
        assert_eq!(out.problems[0].line, Some(3));
    }

    #[test]
    fn rewritten_entry_with_recomputed_hash_breaks_the_next_link() {
        let dir = TempDir::new("rewrite");
        let (path, _) = five(&dir);
        let mut l = lines(&path);
        let mut e: AuditEntry = serde_json::from_str(&l[2]).expect("parse");
        e.outcome = "failed: nothing happened".into();
        e.hash = e.compute_hash();
        l[2] = serde_json::to_string(&e).expect("json");
        write_lines(&path, &l);
        let out = AuditLog::verify(&path).expect("verify");
        assert_eq!(kinds(&out), vec![(ProblemKind::BrokenLink, Some(4))]);
        assert!(out.problems[0].detail.contains("seq 3 was rewritten"));
    }

    #[test]
    fn removed_entry_is_named() {
        let dir = TempDir::new("remove");
        let (path, _) = five(&dir);
        let mut l = lines(&path);
        l.remove(1);
        write_lines(&path, &l);
        let out = AuditLog::verify(&path).expect("verify");
        assert_eq!(kinds(&out), vec![(ProblemKind::Removed, Some(2))]);
    }

    #[test]
    fn swapped_entries_are_named() {
        let dir = TempDir::new("swap");
        let (path, _) = five(&dir);
        let mut l = lines(&path);
        l.swap(1, 2);
        write_lines(&path, &l);
        let out = AuditLog::verify(&path).expect("verify");
        assert_eq!(kinds(&out), vec![(ProblemKind::Reordered, Some(2))]);
    }

    #[test]
    fn cut_tail_is_caught_by_the_anchor_only() {
        let dir = TempDir::new("tail");
        let (path, hashes) = five(&dir);
        let l = lines(&path);
        write_lines(&path, &l[..3]);
        // Without the anchor a shorter chain is indistinguishable from a shorter history.
        assert!(AuditLog::verify(&path).expect("verify").is_ok());
        let out =
            AuditLog::verify_with_anchor(&path, Some((5, hashes[4].clone()))).expect("verify");
        assert_eq!(kinds(&out), vec![(ProblemKind::TruncatedTail, Some(4))]);
        // An anchor inside the log must match the entry's hash.
        let out =
            AuditLog::verify_with_anchor(&path, Some((3, hashes[1].clone()))).expect("verify");
        assert_eq!(kinds(&out), vec![(ProblemKind::AnchorMismatch, Some(3))]);
        let out =
            AuditLog::verify_with_anchor(&path, Some((3, hashes[2].clone()))).expect("verify");
        assert!(out.is_ok());
    }

    #[test]
    fn torn_last_line_is_reported_and_blocks_appends() {
        let dir = TempDir::new("torn");
        let (path, _) = five(&dir);
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 40]).expect("cut");
        let out = AuditLog::verify(&path).expect("verify");
        assert_eq!(kinds(&out), vec![(ProblemKind::Truncated, None)]);
        assert_eq!(out.problems[0].line, Some(5));
        assert!(out.problems[0].detail.contains("after seq 4"));
        assert!(matches!(AuditLog::open(&path), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn reopening_continues_the_chain() {
        let dir = TempDir::new("reopen");
        let (path, hashes) = five(&dir);
        let mut log = AuditLog::open(&path).expect("open");
        assert_eq!(log.head(), Some((5, hashes[4].clone())));
        let e = log
            .append(
                AuditDraft::new(actions::RESTORE)
                    .tenant("acme")
                    .refused("legal hold"),
            )
            .expect("append");
        assert_eq!((e.seq, e.prev.as_str()), (6, hashes[4].as_str()));
        assert_eq!(e.outcome, "refused: legal hold");
        // What append returns is exactly what the file holds.
        assert_eq!(log.entries(None).expect("entries").last(), Some(&e));
        assert!(AuditLog::verify(&path).expect("verify").is_ok());
        let acme = log.entries(Some("acme")).expect("entries");
        assert_eq!(
            acme.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 3, 5, 6]
        );
    }

    #[test]
    fn drafts_are_checked() {
        let dir = TempDir::new("draft");
        let mut log = AuditLog::open(&dir.0.join("audit.log")).expect("open");
        let mut bad = AuditDraft::new("export");
        bad.outcome = "maybe".into();
        assert!(matches!(log.append(bad), Err(Error::Invalid(_))));
        let big =
            AuditDraft::new("export").details(json!({ "rows": "x".repeat(MAX_DETAILS_BYTES) }));
        assert!(matches!(log.append(big), Err(Error::Invalid(_))));
        assert_eq!(log.head(), None);
    }

    #[test]
    fn canonical_form_sorts_keys_and_omits_hash() {
        let e = AuditEntry {
            seq: 1,
            time: time::macros::datetime!(2026-01-01 00:00 UTC),
            actor: "a".into(),
            tenant: None,
            action: "backup".into(),
            objects: vec![],
            outcome: "ok".into(),
            details: json!({"b": 1, "a": [ {"d": 1, "c": 2} ]}),
            prev: GENESIS.into(),
            hash: "ignored".into(),
        };
        let expected = format!(
            "{{\"seq\":1,\"time\":\"2026-01-01T00:00:00.000000Z\",\"actor\":\"a\",\"tenant\":null,\
             \"action\":\"backup\",\"objects\":[],\"outcome\":\"ok\",\
             \"details\":{{\"a\":[{{\"c\":2,\"d\":1}}],\"b\":1}},\"prev\":\"{GENESIS}\"}}"
        );
        assert_eq!(
            e.compute_hash(),
            blake3::hash(expected.as_bytes()).to_hex().to_string()
        );
    }

    #[tokio::test]
    async fn anchor_round_trip() {
        let store = object_store::memory::InMemory::new();
        let p = anchor_path(Some("0123456789abcdef0123456789abcdef"));
        let other = anchor_path(None);
        assert_eq!(read_anchor(&store, &p).await.expect("read"), None);
        write_anchor(&store, &p, 5, "ab").await.expect("write");
        let a = read_anchor(&store, &p)
            .await
            .expect("read")
            .expect("anchor");
        assert_eq!(a.head(), (5, "ab".to_string()));
        write_anchor(&store, &p, 5, "ab")
            .await
            .expect("same head again");
        assert!(matches!(
            write_anchor(&store, &p, 4, "cd").await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            write_anchor(&store, &p, 5, "cd").await,
            Err(Error::Conflict(_))
        ));
        // Another state directory's trail is anchored on its own.
        write_anchor(&store, &other, 1, "zz")
            .await
            .expect("other trail");
        write_anchor(&store, &p, 6, "ef").await.expect("forward");
        assert_eq!(
            read_anchor(&store, &p).await.expect("read").map(|a| a.seq),
            Some(6)
        );
        assert!(is_anchor(&p) && is_anchor(&other));
    }
}
