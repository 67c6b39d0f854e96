//! `/metrics` in the Prometheus text format. Labels take only bounded values: job kinds, and
//! the names of the configured schedules.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Schedule {
    schedule: String,
}

pub struct Metrics {
    registry: Registry,
    cycle_seconds: Histogram,
    cycle_bytes: Gauge,
    cycle_rows: Gauge,
    cycle_tenants_failed: Gauge,
    bytes_total: Counter,
    rows_total: Counter,
    last_success: Family<Kind, Gauge<f64, AtomicU64>>,
    jobs: Family<Kind, Counter>,
    failures: Family<Kind, Counter>,
    skipped: Family<Schedule, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tvault");
        let cycle_seconds = Histogram::new([
            1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
        ]);
        let m = Metrics {
            cycle_seconds,
            cycle_bytes: Gauge::default(),
            cycle_rows: Gauge::default(),
            cycle_tenants_failed: Gauge::default(),
            bytes_total: Counter::default(),
            rows_total: Counter::default(),
            last_success: Family::default(),
            jobs: Family::default(),
            failures: Family::default(),
            skipped: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "cycle_duration_seconds",
            "Duration of backup cycles",
            m.cycle_seconds.clone(),
        );
        registry.register(
            "last_cycle_bytes",
            "Bytes stored by the last backup cycle",
            m.cycle_bytes.clone(),
        );
        registry.register(
            "last_cycle_rows",
            "Rows read by the last backup cycle",
            m.cycle_rows.clone(),
        );
        registry.register(
            "last_cycle_failed_tenants",
            "Tenants the last backup cycle could not back up",
            m.cycle_tenants_failed.clone(),
        );
        registry.register(
            "cycle_bytes",
            "Bytes stored by backup cycles",
            m.bytes_total.clone(),
        );
        registry.register(
            "cycle_rows",
            "Rows read by backup cycles",
            m.rows_total.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful job of each kind",
            m.last_success.clone(),
        );
        registry.register("jobs", "Jobs finished, by kind", m.jobs.clone());
        registry.register(
            "job_failures",
            "Jobs that failed or were interrupted, by kind",
            m.failures.clone(),
        );
        registry.register(
            "schedule_skipped",
            "Scheduled runs skipped because the previous run had not finished",
            m.skipped.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A job of `kind` ended.
    pub fn job_done(&self, kind: &str, ok: bool) {
        let k = Kind { kind: kind.into() };
        self.jobs.get_or_create(&k).inc();
        if ok {
            let now = time::OffsetDateTime::now_utc();
            let t = now.unix_timestamp() as f64 + f64::from(now.nanosecond()) / 1e9;
            self.last_success.get_or_create(&k).set(t);
        } else {
            self.failures.get_or_create(&k).inc();
        }
    }

    /// A backup cycle ended (whether or not every tenant was backed up).
    pub fn cycle(&self, seconds: f64, bytes: u64, rows: u64, failed: usize) {
        self.cycle_seconds.observe(seconds);
        self.cycle_bytes.set(bytes as i64);
        self.cycle_rows.set(rows as i64);
        self.cycle_tenants_failed.set(failed as i64);
        self.bytes_total.inc_by(bytes);
        self.rows_total.inc_by(rows);
    }

    pub fn schedule_skipped(&self, name: &str) {
        self.skipped
            .get_or_create(&Schedule {
                schedule: name.into(),
            })
            .inc();
    }
}
