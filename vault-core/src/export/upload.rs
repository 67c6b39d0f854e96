//! Sending an export straight to a bucket the tenant names, with credentials the tenant gives:
//! a multipart upload fed as the export is written, so nothing is kept on disk or in memory
//! beyond the parts in flight. The upload completes only when the export did; otherwise it is
//! aborted, and no partial object appears.

use crate::error::{Error, Result};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStoreExt, WriteMultipart};
use std::io::Write;

/// Parts of the upload (S3 wants at least 5 MiB each but the last).
const PART: usize = 16 << 20;
/// Parts in flight at once.
const CONCURRENCY: usize = 2;

/// A bucket and key of the tenant's, and how to reach it.
#[derive(Clone)]
pub struct S3Destination {
    /// `s3://bucket/key`.
    pub url: String,
    /// An S3-compatible endpoint (default: AWS).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Destination({}, credentials redacted)", self.url)
    }
}

/// A running upload: write the export to [`Upload::writer`], then [`Upload::commit`] or
/// [`Upload::abort`].
pub struct Upload {
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    done: tokio::sync::oneshot::Sender<bool>,
    task: tokio::task::JoinHandle<Result<u64>>,
    url: String,
}

/// The `Write` side of an upload, used from the export's writer thread.
pub struct UploadWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for UploadWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::other("the upload stopped"))
    }
}

impl Drop for UploadWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl Upload {
    /// Starts a multipart upload to `dest`.
    pub async fn start(dest: &S3Destination) -> Result<Upload> {
        let rest = dest.url.strip_prefix("s3://").ok_or_else(|| {
            Error::Invalid(format!("{:?} is not an s3://bucket/key URL", dest.url))
        })?;
        let (bucket, key) = rest
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{:?}: name a bucket and a key: s3://bucket/key",
                    dest.url
                ))
            })?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(dest.region.as_deref().unwrap_or("us-east-1"))
            .with_access_key_id(&dest.access_key_id)
            .with_secret_access_key(&dest.secret_access_key);
        if let Some(t) = &dest.session_token {
            builder = builder.with_token(t);
        }
        if let Some(e) = &dest.endpoint {
            builder = builder
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| Error::Store {
            context: format!("opening {}", dest.url),
            source: e,
        })?;
        let path = ObjPath::parse(key)
            .map_err(|e| Error::Invalid(format!("{:?} is not a valid key: {e}", key)))?;
        let upload = store.put_multipart(&path).await.map_err(|e| Error::Store {
            context: format!("starting the upload to {}", dest.url),
            source: e,
        })?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let (done, commit) = tokio::sync::oneshot::channel::<bool>();
        let url = dest.url.clone();
        let context = url.clone();
        let task = tokio::spawn(async move {
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
            let mut sent = 0u64;
            let store_err = |e| Error::Store {
                context: format!("uploading to {context}"),
                source: e,
            };
            while let Some(chunk) = rx.recv().await {
                if let Err(e) = w.wait_for_capacity(CONCURRENCY).await {
                    let _ = w.abort().await;
                    return Err(store_err(e));
                }
                sent += chunk.len() as u64;
                w.write(&chunk);
            }
            if commit.await.unwrap_or(false) {
                w.finish().await.map_err(store_err)?;
                Ok(sent)
            } else {
                w.abort().await.map_err(store_err)?;
                Err(Error::Aborted(format!(
                    "the upload to {context} was aborted: the export did not finish"
                )))
            }
        });
        Ok(Upload {
            tx: Some(tx),
            done,
            task,
            url,
        })
    }

    /// The writer the export goes to (once).
    pub fn writer(&mut self) -> Result<Box<dyn Write + Send>> {
        let tx = self
            .tx
            .take()
            .ok_or_else(|| Error::Invalid("the upload's writer was already taken".into()))?;
        Ok(Box::new(UploadWriter {
            tx,
            buf: Vec::with_capacity(1 << 20),
        }))
    }

    /// Completes the upload; returns the bytes uploaded.
    pub async fn commit(self) -> Result<u64> {
        drop(self.tx);
        let _ = self.done.send(true);
        self.task
            .await
            .map_err(|e| Error::Aborted(format!("the upload to {} failed: {e}", self.url)))?
    }

    /// Aborts the upload: nothing of it stays in the bucket.
    pub async fn abort(self) {
        drop(self.tx);
        let _ = self.done.send(false);
        let _ = self.task.await;
    }
}
