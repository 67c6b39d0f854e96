//! The S3 side of the harness: the test server, an admin client that looks at buckets from
//! outside `tvault` (locks, versions, raw bytes), and a fault-injecting proxy.
//!
//! * Server: `TVAULT_TEST_S3` (an endpoint URL such as `http://127.0.0.1:54330`), or else the URL
//!   printed by `scripts/s3-local.sh start` (moto on loopback). Neither -> panic, never a skip.
//! * Every test gets its own bucket ([`new_bucket`]).

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, VersioningConfiguration};
use std::sync::OnceLock;

use crate::{repo_root, unique_suffix};

/// Endpoint of the test S3 server.
pub fn s3_endpoint() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(u) = std::env::var("TVAULT_TEST_S3") {
            return u;
        }
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/s3-local.sh"))
            .arg("start")
            .output()
            .expect("run scripts/s3-local.sh start");
        assert!(
            out.status.success(),
            "no S3 test server: TVAULT_TEST_S3 is unset and scripts/s3-local.sh start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// Environment that points `tvault` at `endpoint` with the test server's credentials.
pub fn s3_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        // No profile files of the machine running the tests.
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// How a test bucket is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketKind {
    /// No versioning.
    Plain,
    /// Versioning enabled, no object lock.
    Versioned,
    /// Object lock enabled (implies versioning).
    Locked,
}

/// The lock of one object version as S3 reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectLock {
    pub mode: Option<String>,
    /// Unix seconds.
    pub until: Option<i64>,
    pub legal_hold: bool,
}

/// One version of an object (or a delete marker).
#[derive(Debug, Clone)]
pub struct ObjectVersion {
    pub key: String,
    pub version: String,
    pub delete_marker: bool,
}

/// A blocking S3 client for tests.
pub struct S3Admin {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
}

impl S3Admin {
    pub fn new(endpoint: &str) -> S3Admin {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .force_path_style(true)
            .build();
        S3Admin {
            rt,
            client: aws_sdk_s3::Client::from_conf(conf),
        }
    }

    pub fn create_bucket(&self, bucket: &str, kind: BucketKind) {
        self.rt.block_on(async {
            self.client
                .create_bucket()
                .bucket(bucket)
                .object_lock_enabled_for_bucket(kind == BucketKind::Locked)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
            if kind == BucketKind::Versioned {
                self.client
                    .put_bucket_versioning()
                    .bucket(bucket)
                    .versioning_configuration(
                        VersioningConfiguration::builder()
                            .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("enable versioning on {bucket}: {e:?}"));
            }
        })
    }

    /// Sets a bucket default retention (what `doctor` must flag).
    pub fn set_default_retention(&self, bucket: &str, days: i32) {
        use aws_sdk_s3::types::{
            DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
            ObjectLockRule,
        };
        let conf = ObjectLockConfiguration::builder()
            .object_lock_enabled(ObjectLockEnabled::Enabled)
            .rule(
                ObjectLockRule::builder()
                    .default_retention(
                        DefaultRetention::builder()
                            .mode(ObjectLockRetentionMode::Governance)
                            .days(days)
                            .build(),
                    )
                    .build(),
            )
            .build();
        self.rt
            .block_on(
                self.client
                    .put_object_lock_configuration()
                    .bucket(bucket)
                    .object_lock_configuration(conf)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("default retention on {bucket}: {e:?}"));
    }

    /// Current keys under `prefix`, with sizes.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, i64)> {
        self.rt.block_on(async {
            let mut out = vec![];
            let mut token = None;
            loop {
                let page = self
                    .client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("list {bucket}/{prefix}: {e:?}"));
                for o in page.contents() {
                    out.push((
                        o.key().unwrap_or_default().to_string(),
                        o.size().unwrap_or(0),
                    ));
                }
                match page.next_continuation_token() {
                    Some(t) => token = Some(t.to_string()),
                    None => return out,
                }
            }
        })
    }

    /// Every version and delete marker under `prefix`.
    pub fn versions(&self, bucket: &str, prefix: &str) -> Vec<ObjectVersion> {
        let page = self
            .rt
            .block_on(
                self.client
                    .list_object_versions()
                    .bucket(bucket)
                    .prefix(prefix)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("list versions {bucket}/{prefix}: {e:?}"));
        assert!(
            !page.is_truncated().unwrap_or(false),
            "test buckets hold fewer than 1000 versions"
        );
        let mut out: Vec<ObjectVersion> = page
            .versions()
            .iter()
            .map(|v| ObjectVersion {
                key: v.key().unwrap_or_default().to_string(),
                version: v.version_id().unwrap_or("null").to_string(),
                delete_marker: false,
            })
            .collect();
        out.extend(page.delete_markers().iter().map(|m| ObjectVersion {
            key: m.key().unwrap_or_default().to_string(),
            version: m.version_id().unwrap_or("null").to_string(),
            delete_marker: true,
        }));
        out
    }

    /// The lock of a key's current version (or of `version`).
    pub fn lock(&self, bucket: &str, key: &str, version: Option<&str>) -> ObjectLock {
        let h = self
            .rt
            .block_on(
                self.client
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version.map(str::to_string))
                    .send(),
            )
            .unwrap_or_else(|e| panic!("head {bucket}/{key}: {e:?}"));
        ObjectLock {
            mode: h.object_lock_mode().map(|m| m.as_str().to_string()),
            until: h.object_lock_retain_until_date().map(|d| d.secs()),
            legal_hold: h.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On),
        }
    }

    /// ETag of a key (multipart uploads have `-<parts>` at the end).
    pub fn etag(&self, bucket: &str, key: &str) -> String {
        let h = self
            .rt
            .block_on(self.client.head_object().bucket(bucket).key(key).send())
            .unwrap_or_else(|e| panic!("head {bucket}/{key}: {e:?}"));
        h.e_tag().unwrap_or_default().trim_matches('"').to_string()
    }

    /// Moves a version's retention date (to simulate time passing: governance, bypassed).
    pub fn set_retention(&self, bucket: &str, key: &str, version: &str, until: i64) {
        use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
        let r = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::Governance)
            .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(until))
            .build();
        self.rt
            .block_on(
                self.client
                    .put_object_retention()
                    .bucket(bucket)
                    .key(key)
                    .version_id(version)
                    .bypass_governance_retention(true)
                    .retention(r)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("set retention of {bucket}/{key}: {e:?}"));
    }

    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.rt.block_on(async {
            let o = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"));
            o.body.collect().await.expect("body").into_bytes().to_vec()
        })
    }

    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.rt
            .block_on(
                self.client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(bytes))
                    .send(),
            )
            .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
    }

    /// Deletes the current version of an object (a delete marker on a versioned bucket).
    pub fn delete(&self, bucket: &str, key: &str) {
        self.rt
            .block_on(self.client.delete_object().bucket(bucket).key(key).send())
            .unwrap_or_else(|e| panic!("delete {bucket}/{key}: {e:?}"));
    }
}

/// The admin client of the test server.
pub fn s3_admin() -> &'static S3Admin {
    static ADMIN: OnceLock<S3Admin> = OnceLock::new();
    ADMIN.get_or_init(|| S3Admin::new(s3_endpoint()))
}

/// A fresh bucket named after the test.
pub fn new_bucket(test_name: &str, kind: BucketKind) -> String {
    let base: String = test_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let name = format!("tv-{base}-{}", unique_suffix()).replace("--", "-");
    let name: String = name.chars().take(63).collect();
    let name = name.trim_end_matches('-').to_string();
    s3_admin().create_bucket(&name, kind);
    name
}
