//! Retention policies: which of a tenant's snapshots to keep (see `docs/RETENTION.md`).
//!
//! Pure logic, no I/O: [`evaluate`] takes a tenant's snapshots, its policy, an optional legal hold
//! and the current time, and returns one [`Decision`] per snapshot with the reasons behind it, so
//! `retention apply --dry-run` can print exactly why each snapshot stays or goes.
//!
//! Keep rules follow restic's semantics (keep-last, keep-hourly … keep-yearly, keep-within), with
//! calendar buckets in UTC so that a decision never depends on the host's time zone. Then, in
//! increasing precedence: `min_age` keeps what is too young to delete (compliance), `max_age`
//! deletes what is too old to keep (privacy), and a legal hold keeps everything.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// A tenant's retention policy. Every rule is optional; a policy without keep rules keeps
/// everything (until `max_age`, if set).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Keep the N newest snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours (UTC) that have snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// … of each of the last N days (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// … of each of the last N ISO weeks (Monday to Sunday, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// … of each of the last N calendar months (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// … of each of the last N calendar years (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot taken within this long before now.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub keep_within: Option<Duration>,
    /// Delete every snapshot older than this, whatever keeps it (privacy ceiling).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub max_age: Option<Duration>,
    /// Never delete a snapshot younger than this (compliance floor).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub min_age: Option<Duration>,
}

/// Limits the operator sets on every tenant's policy (tenant overrides must stay inside).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// Compliance floor: every policy must have a `min_age` at least this long.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub min_min_age: Option<Duration>,
    /// Privacy ceiling: every policy must have a `max_age` at most this long.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub max_max_age: Option<Duration>,
}

/// A legal hold on a tenant: nothing of it is deleted while the hold exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// What happens to one snapshot, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub snapshot: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub keep: bool,
    /// Every rule that applied, in the order they were applied; the last overriding one decides.
    pub reasons: Vec<String>,
}

impl Policy {
    /// True when the policy selects snapshots to keep (and so, implicitly, others to delete).
    pub fn has_keep_rules(&self) -> bool {
        self.keep_last.is_some()
            || self.keep_hourly.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
            || self.keep_yearly.is_some()
            || self.keep_within.is_some()
    }

    /// True when the policy has no rule at all.
    pub fn is_empty(&self) -> bool {
        !self.has_keep_rules() && self.max_age.is_none() && self.min_age.is_none()
    }

    /// Rejects policies that cannot mean what their author intended; all problems in one message.
    pub fn validate(&self) -> Result<(), String> {
        let mut errs = Vec::new();
        for (name, n) in self.counts() {
            if n == Some(0) {
                // A zero count keeps nothing but would still make the policy delete: omit the rule.
                errs.push(format!(
                    "{name} is 0, which keeps nothing; omit the rule instead"
                ));
            }
        }
        for (name, d) in [
            ("keep_within", self.keep_within),
            ("max_age", self.max_age),
            ("min_age", self.min_age),
        ] {
            if let Some(d) = d {
                if d.is_negative() {
                    errs.push(format!("{name} must not be negative"));
                } else if d.is_zero() && name != "min_age" {
                    errs.push(format!(
                        "{name} is 0, which {}; omit the rule instead",
                        if name == "max_age" {
                            "would delete every snapshot"
                        } else {
                            "keeps nothing"
                        }
                    ));
                }
            }
        }
        if let (Some(max), Some(min)) = (self.max_age, self.min_age) {
            if max < min {
                errs.push(format!(
                    "max_age {} is shorter than min_age {}: a snapshot would have to be deleted \
                     before it may be deleted",
                    format_duration(max),
                    format_duration(min)
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }

    /// Checks the policy against the operator's bounds: `min_age` at least the floor and
    /// `max_age` at most the ceiling (both required when the bound is set).
    pub fn within_bounds(&self, bounds: &Bounds) -> Result<(), String> {
        let mut errs = Vec::new();
        if let (Some(floor), Some(ceiling)) = (bounds.min_min_age, bounds.max_max_age) {
            if ceiling < floor {
                errs.push(format!(
                    "operator bounds conflict: the max_age ceiling {} is below the min_age floor {}",
                    format_duration(ceiling),
                    format_duration(floor)
                ));
            }
        }
        if let Some(floor) = bounds.min_min_age {
            match self.min_age {
                Some(m) if m >= floor => {}
                Some(m) => errs.push(format!(
                    "min_age {} is below the operator's compliance floor of {}",
                    format_duration(m),
                    format_duration(floor)
                )),
                None => errs.push(format!(
                    "min_age is required: the operator's compliance floor is {}",
                    format_duration(floor)
                )),
            }
        }
        if let Some(ceiling) = bounds.max_max_age {
            match self.max_age {
                Some(m) if m <= ceiling => {}
                Some(m) => errs.push(format!(
                    "max_age {} exceeds the operator's privacy ceiling of {}",
                    format_duration(m),
                    format_duration(ceiling)
                )),
                None => errs.push(format!(
                    "max_age is required: the operator's privacy ceiling is {}",
                    format_duration(ceiling)
                )),
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }

    fn counts(&self) -> [(&'static str, Option<u32>); 6] {
        [
            ("keep_last", self.keep_last),
            ("keep_hourly", self.keep_hourly),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
            ("keep_yearly", self.keep_yearly),
        ]
    }
}

/// Maps a snapshot's time (UTC) to the label of its calendar bucket.
type Bucketer = fn(OffsetDateTime) -> String;

/// The calendar rules: (rule name, count, what a bucket is, bucket of a time).
fn buckets(p: &Policy) -> [(&'static str, Option<u32>, &'static str, Bucketer); 5] {
    [
        ("keep-hourly", p.keep_hourly, "hour", |t| {
            format!("{}T{:02}", t.date(), t.hour())
        }),
        ("keep-daily", p.keep_daily, "day", |t| t.date().to_string()),
        ("keep-weekly", p.keep_weekly, "ISO week", |t| {
            let (y, w, _) = t.to_iso_week_date();
            format!("{y}-W{w:02}")
        }),
        ("keep-monthly", p.keep_monthly, "month", |t| {
            format!("{}-{:02}", t.year(), u8::from(t.month()))
        }),
        ("keep-yearly", p.keep_yearly, "year", |t| {
            t.year().to_string()
        }),
    ]
}

/// Decides, for each snapshot, whether it stays; newest first. `snapshots` are (id, time) pairs
/// in any order. An invalid policy deletes nothing.
pub fn evaluate(
    snapshots: &[(String, OffsetDateTime)],
    policy: &Policy,
    hold: Option<&Hold>,
    now: OffsetDateTime,
) -> Vec<Decision> {
    let mut ds: Vec<Decision> = snapshots
        .iter()
        .map(|(id, t)| Decision {
            snapshot: id.clone(),
            time: t.to_offset(UtcOffset::UTC),
            keep: false,
            reasons: Vec::new(),
        })
        .collect();
    ds.sort_by(|a, b| {
        b.time
            .cmp(&a.time)
            .then_with(|| b.snapshot.cmp(&a.snapshot))
    });
    let keep = |d: &mut Decision, why: String| {
        d.keep = true;
        d.reasons.push(why);
    };

    if let Err(e) = policy.validate() {
        for d in &mut ds {
            keep(d, format!("invalid policy ({e}): nothing is deleted"));
        }
        return ds;
    }

    if !policy.has_keep_rules() {
        let why = if policy.is_empty() {
            "no retention rules"
        } else {
            "no keep rules: kept unless too old"
        };
        for d in &mut ds {
            keep(d, why.to_string());
        }
    } else {
        if let Some(n) = policy.keep_last {
            for (i, d) in ds.iter_mut().take(n as usize).enumerate() {
                keep(d, format!("keep-last {n}: newest #{}", i + 1));
            }
        }
        for (rule, count, what, bucket) in buckets(policy) {
            let Some(n) = count else { continue };
            // Newest first, so the first snapshot seen in a bucket is that bucket's newest.
            let (mut left, mut last) = (n, None::<String>);
            for d in ds.iter_mut() {
                if left == 0 {
                    break;
                }
                let b = bucket(d.time);
                if last.as_ref() != Some(&b) {
                    keep(d, format!("{rule} {n}: newest of {what} {b}"));
                    left -= 1;
                    last = Some(b);
                }
            }
        }
        if let Some(w) = policy.keep_within {
            // A cutoff before the calendar's start means everything is within.
            let cutoff = now.checked_sub(w);
            for d in &mut ds {
                if cutoff.is_none_or(|c| d.time > c) {
                    let since = cutoff.map_or_else(|| "the beginning".into(), stamp);
                    keep(
                        d,
                        format!("keep-within {}: newer than {since}", format_duration(w)),
                    );
                }
            }
        }
        if !ds.iter().any(|d| d.keep) {
            // Only keep-within can match nothing (every count rule keeps the newest). A tenant
            // whose backups stopped must not lose its last one to that; max_age still applies.
            if let Some(d) = ds.first_mut() {
                keep(
                    d,
                    "newest snapshot: no keep rule matched any snapshot, so the newest \
                         is kept"
                        .into(),
                );
            }
        }
        for d in ds.iter_mut().filter(|d| !d.keep) {
            d.reasons.push("no keep rule matched: delete".into());
        }
    }

    for d in &mut ds {
        let age = now - d.time;
        if let Some(min) = policy.min_age {
            if age < min {
                let until = d
                    .time
                    .checked_add(min)
                    .map_or_else(|| "the end of time".into(), stamp);
                keep(
                    d,
                    format!(
                        "min-age {}: may not be deleted before {until}",
                        format_duration(min)
                    ),
                );
            }
        }
        if let Some(max) = policy.max_age {
            if age > max {
                if hold.is_some() {
                    d.reasons.push(format!(
                        "max-age {}: deletion suspended by legal hold",
                        format_duration(max)
                    ));
                } else {
                    d.keep = false;
                    d.reasons.push(format!(
                        "max-age {}: must be deleted (privacy)",
                        format_duration(max)
                    ));
                }
            }
        }
        if let Some(h) = hold {
            d.keep = true;
            d.reasons.push(format!(
                "legal hold: {} (since {})",
                h.reason,
                stamp(h.since)
            ));
        }
    }
    ds
}

fn stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;
const YEAR: i64 = 365 * DAY;
/// Longer durations are refused: they are typos, and would overflow date arithmetic.
const MAX_YEARS: i64 = 1000;

/// Parses `<whole number><unit>` with unit `s`, `h`, `d`, `w` (7d) or `y` (365d): `30d`, `12h`.
/// Months are refused: "m" is ambiguous (minutes or months) and months differ in length.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let bad = || {
        format!("invalid duration {s:?}: expected a whole number and a unit (s, h, d, w or y), e.g. 30d, 12h, 2w, 1y")
    };
    if num.is_empty() {
        return Err(bad());
    }
    let per = match unit {
        "s" => 1,
        "h" => HOUR,
        "d" => DAY,
        "w" => WEEK,
        "y" => YEAR,
        "m" | "mo" | "M" | "min" => {
            return Err(format!(
                "invalid duration {s:?}: months and minutes are not units; write days (30d, 183d) or hours"
            ))
        }
        _ => return Err(bad()),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    match n.checked_mul(per) {
        Some(secs) if secs <= MAX_YEARS * YEAR => Ok(Duration::seconds(secs)),
        _ => Err(format!("invalid duration {s:?}: longer than {MAX_YEARS}y")),
    }
}

/// Formats a duration in the largest unit that divides it exactly (`14d` becomes `2w`,
/// `365d` becomes `1y`); `parse_duration` reads it back. Fractions of a second are dropped.
pub fn format_duration(d: Duration) -> String {
    let secs = d.whole_seconds();
    if secs == 0 {
        return "0d".into();
    }
    for (per, unit) in [(YEAR, "y"), (WEEK, "w"), (DAY, "d"), (HOUR, "h")] {
        if secs % per == 0 {
            return format!("{}{unit}", secs / per);
        }
    }
    format!("{secs}s")
}

/// serde for `Option<Duration>` as `"30d"`-style strings.
mod opt_duration {
    use super::{format_duration, parse_duration};
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Duration;

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};
    use time::Date;

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    /// One snapshot at 02:00 UTC every day of 2025, ids named by date.
    fn year() -> Vec<(String, OffsetDateTime)> {
        let mut out = Vec::new();
        let mut d = date!(2025 - 01 - 01);
        while d.year() == 2025 {
            out.push((
                d.to_string(),
                d.with_hms(2, 0, 0).map_or(NOW, |t| t.assume_utc()),
            ));
            d = d.next_day().unwrap_or(date!(2026 - 01 - 01));
        }
        out
    }

    fn kept(ds: &[Decision]) -> Vec<String> {
        let mut k: Vec<String> = ds
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.snapshot.clone())
            .collect();
        k.sort();
        k
    }

    fn dates(ds: &[Date]) -> Vec<String> {
        let mut v: Vec<String> = ds.iter().map(Date::to_string).collect();
        v.sort();
        v
    }

    fn decision<'a>(ds: &'a [Decision], id: &str) -> &'a Decision {
        ds.iter()
            .find(|d| d.snapshot == id)
            .expect("snapshot decided")
    }

    #[test]
    fn gfs_over_a_year_of_dailies() {
        let policy = Policy {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            ..Default::default()
        };
        let ds = evaluate(&year(), &policy, None, NOW);
        assert_eq!(ds.len(), 365);
        // Worked out by hand: 2025-12-31 is a Wednesday, so ISO week 2026-W01 starts Monday
        // 2025-12-29; the three weeks before end on Sundays Dec 28, 21 and 14.
        let expected = dates(&[
            // daily: the last 7 days
            date!(2025 - 12 - 25),
            date!(2025 - 12 - 26),
            date!(2025 - 12 - 27),
            date!(2025 - 12 - 28),
            date!(2025 - 12 - 29),
            date!(2025 - 12 - 30),
            date!(2025 - 12 - 31),
            // weekly: 2026-W01 (Dec 31, above), W52 (Dec 28, above), W51, W50
            date!(2025 - 12 - 21),
            date!(2025 - 12 - 14),
            // monthly: the last day of each month (December's is above)
            date!(2025 - 01 - 31),
            date!(2025 - 02 - 28),
            date!(2025 - 03 - 31),
            date!(2025 - 04 - 30),
            date!(2025 - 05 - 31),
            date!(2025 - 06 - 30),
            date!(2025 - 07 - 31),
            date!(2025 - 08 - 31),
            date!(2025 - 09 - 30),
            date!(2025 - 10 - 31),
            date!(2025 - 11 - 30),
        ]);
        assert_eq!(kept(&ds), expected);
        let dec31 = decision(&ds, "2025-12-31");
        assert_eq!(
            dec31.reasons,
            vec![
                "keep-daily 7: newest of day 2025-12-31",
                "keep-weekly 4: newest of ISO week 2026-W01",
                "keep-monthly 12: newest of month 2025-12",
            ]
        );
        assert_eq!(
            decision(&ds, "2025-12-20").reasons,
            vec!["no keep rule matched: delete"]
        );
        // Newest first.
        assert_eq!(ds[0].snapshot, "2025-12-31");
    }

    #[test]
    fn keep_last_and_keep_within() {
        let snaps = year();
        let last = Policy {
            keep_last: Some(3),
            ..Default::default()
        };
        let ds = evaluate(&snaps, &last, None, NOW);
        assert_eq!(
            kept(&ds),
            dates(&[
                date!(2025 - 12 - 29),
                date!(2025 - 12 - 30),
                date!(2025 - 12 - 31)
            ])
        );
        assert_eq!(
            decision(&ds, "2025-12-30").reasons,
            vec!["keep-last 3: newest #2"]
        );

        // Within 10 days of 2026-01-01T00:00: from 2025-12-22T02:00 on.
        let within = Policy {
            keep_within: Some(Duration::days(10)),
            ..Default::default()
        };
        let ds = evaluate(&snaps, &within, None, NOW);
        let k = kept(&ds);
        assert_eq!(k.len(), 10);
        assert_eq!((k[0].as_str(), k[9].as_str()), ("2025-12-22", "2025-12-31"));
        assert_eq!(
            decision(&ds, "2025-12-22").reasons,
            vec!["keep-within 10d: newer than 2025-12-22T00:00:00Z"]
        );
    }

    #[test]
    fn keep_within_never_leaves_a_tenant_without_a_snapshot() {
        let within = Policy {
            keep_within: Some(Duration::days(10)),
            ..Default::default()
        };
        let later = datetime!(2026-06-01 00:00 UTC);
        let ds = evaluate(&year(), &within, None, later);
        assert_eq!(kept(&ds), vec!["2025-12-31"]);
    }

    #[test]
    fn min_age_keeps_young_snapshots() {
        let policy = Policy {
            keep_last: Some(1),
            min_age: Some(Duration::days(30)),
            ..Default::default()
        };
        let ds = evaluate(&year(), &policy, None, NOW);
        // Younger than 30 days at 2026-01-01T00:00: taken after 2025-12-02T00:00.
        let k = kept(&ds);
        assert_eq!(k.len(), 30);
        assert_eq!(
            (k[0].as_str(), k[29].as_str()),
            ("2025-12-02", "2025-12-31")
        );
        assert_eq!(
            decision(&ds, "2025-12-10").reasons,
            vec![
                "no keep rule matched: delete",
                "min-age 30d: may not be deleted before 2026-01-09T02:00:00Z",
            ]
        );
        assert!(!decision(&ds, "2025-12-01").keep);
    }

    #[test]
    fn max_age_overrides_keep_rules() {
        let policy = Policy {
            keep_monthly: Some(12),
            max_age: Some(Duration::days(100)),
            ..Default::default()
        };
        let ds = evaluate(&year(), &policy, None, NOW);
        // 100 days before 2026-01-01 is 2025-09-23.
        assert_eq!(
            kept(&ds),
            dates(&[
                date!(2025 - 09 - 30),
                date!(2025 - 10 - 31),
                date!(2025 - 11 - 30),
                date!(2025 - 12 - 31)
            ])
        );
        let aug = decision(&ds, "2025-08-31");
        assert!(!aug.keep);
        assert_eq!(
            aug.reasons,
            vec![
                "keep-monthly 12: newest of month 2025-08",
                "max-age 100d: must be deleted (privacy)",
            ]
        );
    }

    #[test]
    fn hold_keeps_everything_and_suspends_max_age() {
        let policy = Policy {
            keep_last: Some(1),
            max_age: Some(Duration::days(100)),
            ..Default::default()
        };
        let hold = Hold {
            reason: "case 42".into(),
            since: datetime!(2025-06-01 00:00 UTC),
        };
        let ds = evaluate(&year(), &policy, Some(&hold), NOW);
        assert!(ds.iter().all(|d| d.keep));
        assert_eq!(
            decision(&ds, "2025-01-01").reasons,
            vec![
                "no keep rule matched: delete",
                "max-age 100d: deletion suspended by legal hold",
                "legal hold: case 42 (since 2025-06-01T00:00:00Z)",
            ]
        );
    }

    #[test]
    fn policies_without_keep_rules_keep_everything() {
        let ds = evaluate(&year(), &Policy::default(), None, NOW);
        assert!(ds
            .iter()
            .all(|d| d.keep && d.reasons == ["no retention rules"]));
        let only_max = Policy {
            max_age: Some(Duration::days(100)),
            ..Default::default()
        };
        let ds = evaluate(&year(), &only_max, None, NOW);
        assert_eq!(ds.iter().filter(|d| d.keep).count(), 100);
        // An invalid policy deletes nothing.
        let bad = Policy {
            keep_last: Some(0),
            ..Default::default()
        };
        assert!(evaluate(&year(), &bad, None, NOW).iter().all(|d| d.keep));
    }

    #[test]
    fn validation_and_bounds() {
        let p = Policy {
            max_age: Some(Duration::days(10)),
            min_age: Some(Duration::days(30)),
            ..Default::default()
        };
        let e = p.validate().expect_err("max < min");
        assert!(e.contains("max_age 10d is shorter than min_age 30d"), "{e}");
        let zero = Policy {
            max_age: Some(Duration::ZERO),
            ..Default::default()
        };
        assert!(zero.validate().expect_err("zero").contains("max_age is 0"));
        let ok = Policy {
            keep_daily: Some(7),
            max_age: Some(Duration::days(400)),
            min_age: Some(Duration::days(30)),
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));

        let bounds = Bounds {
            min_min_age: Some(Duration::days(30)),
            max_max_age: Some(Duration::days(400)),
        };
        assert_eq!(ok.within_bounds(&bounds), Ok(()));
        let short = Policy {
            min_age: Some(Duration::days(7)),
            ..ok.clone()
        };
        assert!(short
            .within_bounds(&bounds)
            .expect_err("floor")
            .contains("below the operator's compliance floor of 30d"));
        let long = Policy {
            max_age: Some(Duration::days(800)),
            ..ok.clone()
        };
        assert!(long
            .within_bounds(&bounds)
            .expect_err("ceiling")
            .contains("exceeds the operator's privacy ceiling of 400d"));
        let e = Policy::default()
            .within_bounds(&bounds)
            .expect_err("missing");
        assert!(
            e.contains("min_age is required") && e.contains("max_age is required"),
            "{e}"
        );
    }

    #[test]
    fn durations_round_trip_and_reject_garbage() {
        for (s, secs) in [
            ("30d", 30 * DAY),
            ("12h", 12 * HOUR),
            ("400d", 400 * DAY),
            ("2w", 14 * DAY),
            ("1y", 365 * DAY),
            ("90s", 90),
        ] {
            let d = parse_duration(s).expect(s);
            assert_eq!(d.whole_seconds(), secs, "{s}");
            assert_eq!(format_duration(d), s);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::days(14)), "2w");
        assert_eq!(format_duration(Duration::days(730)), "2y");
        for bad in [
            "",
            "d",
            "30",
            "30x",
            "-5d",
            "+5d",
            "5m",
            "1.5d",
            " 3d",
            "3d ",
            "3 d",
            "1y2d",
            "99999999999999999999y",
            "1001y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("6m").expect_err("months").contains("months"));
    }

    #[test]
    fn policy_serde() {
        let toml_text =
            "keep_daily = 7\nkeep_monthly = 12\nmax_age = \"400d\"\nmin_age = \"30d\"\n";
        let p: Policy = toml::from_str(toml_text).expect("toml");
        assert_eq!(p.max_age, Some(Duration::days(400)));
        let json = serde_json::to_string(&p).expect("json");
        assert_eq!(
            json,
            r#"{"keep_daily":7,"keep_monthly":12,"max_age":"400d","min_age":"30d"}"#
        );
        assert_eq!(serde_json::from_str::<Policy>(&json).expect("back"), p);
        assert!(serde_json::from_str::<Policy>(r#"{"max_age":"6m"}"#).is_err());
        assert!(serde_json::from_str::<Policy>(r#"{"keep_dayly":7}"#).is_err());
    }
}
