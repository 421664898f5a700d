//! Where snapshot objects go: S3-compatible object storage through the
//! `object_store` crate (custom endpoint, region, path-style addressing,
//! credentials), or a local directory, the embedded default.
//!
//! Writes stream: the RDB stream goes out as it is produced, in parts of a
//! multipart upload (`object_store`'s `BufWriter`: 10 MiB parts, a few in
//! flight), so memory does not grow with the snapshot. Snapshot threads are
//! plain threads that drive the async store through the runtime's handle.

use std::io::{self, Read, Write};
use std::sync::Arc;

use futures::TryStreamExt as _;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use tokio::runtime::Handle;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::codec::{self, Codec, EncryptionKey, Finish, Output};

/// How to reach the store (the node's `--snapshot-*` flags).
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// `s3://bucket[/prefix]`, or a local directory (`file:///dir` or a path).
    pub url: String,
    /// An S3-compatible endpoint (`http://host:port`); AWS's when absent.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`), which most
    /// S3-compatible servers want; virtual-hosted style otherwise.
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// A store and the codec its objects are written with.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    pub codec: Codec,
    /// What it shows in INFO and errors.
    pub describe: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl Store {
    pub fn open(cfg: &StoreConfig, codec: Codec) -> anyhow::Result<Store> {
        if let Some(rest) = cfg.url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "snapshot store {}: no bucket", cfg.url);
            let mut b = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(&cfg.region)
                .with_virtual_hosted_style_request(!cfg.path_style)
                // Servers that ignore conditional headers on writes (Garage)
                // would turn a create-if-absent into an overwrite: never ask.
                .with_conditional_put(S3ConditionalPut::Disabled);
            if let Some(endpoint) = &cfg.endpoint {
                b = b
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            if let Some(id) = &cfg.access_key_id {
                b = b.with_access_key_id(id);
            }
            if let Some(secret) = &cfg.secret_access_key {
                b = b.with_secret_access_key(secret);
            }
            let describe = format!(
                "s3://{bucket}/{prefix} at {}",
                cfg.endpoint.as_deref().unwrap_or("AWS")
            );
            return Ok(Store {
                inner: Arc::new(b.build()?),
                prefix: Path::from(prefix),
                codec,
                describe,
            });
        }
        let dir = cfg.url.strip_prefix("file://").unwrap_or(&cfg.url);
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("snapshot directory {dir}: {e}"))?;
        Ok(Store {
            inner: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
            prefix: Path::default(),
            codec,
            describe: format!("directory {dir}"),
        })
    }

    fn path(&self, name: &str) -> io::Result<Path> {
        let name = Path::parse(name).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("object name {name:?}: {e}"),
            )
        })?;
        Ok(self.prefix.parts().chain(name.parts()).collect())
    }

    /// A writer of object `name` (relative to the store's prefix) through
    /// the codec; the object exists once the writer is finished. Call it
    /// from a thread of its own, not a runtime's.
    pub fn writer(&self, handle: &Handle, name: &str) -> io::Result<Box<dyn Finish>> {
        let upload = BufWriter::new(self.inner.clone(), self.path(name)?).with_max_concurrency(2);
        let out = ObjectOutput(SyncIoBridge::new_with_handle(upload, handle.clone()));
        self.codec.writer(Box::new(out))
    }

    /// A reader of object `name`'s RDB stream, whatever its codec (a
    /// sealed object needs the key). Call it from a thread of its own.
    pub fn reader(
        &self,
        handle: &Handle,
        name: &str,
        key: Option<&EncryptionKey>,
    ) -> io::Result<Box<dyn Read + Send>> {
        let path = self.path(name)?;
        let inner = self.inner.clone();
        let stream = handle
            .block_on(async move { inner.get(&path).await })
            .map_err(|e| store_error(name, e))?
            .into_stream()
            .map_err(io::Error::other);
        let body = SyncIoBridge::new_with_handle(StreamReader::new(stream), handle.clone());
        codec::reader(Box::new(body), key)
    }

    /// Object `name`'s size in bytes.
    pub fn size(&self, handle: &Handle, name: &str) -> io::Result<u64> {
        let path = self.path(name)?;
        let inner = self.inner.clone();
        handle
            .block_on(async move { inner.head(&path).await })
            .map(|m| m.size)
            .map_err(|e| store_error(name, e))
    }
}

fn store_error(name: &str, e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            io::Error::new(io::ErrorKind::NotFound, format!("object {name} not found"))
        }
        e => io::Error::other(format!("object {name}: {e}")),
    }
}

/// A multipart upload, written synchronously.
struct ObjectOutput(SyncIoBridge<BufWriter>);

impl Write for ObjectOutput {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Output for ObjectOutput {
    fn complete(mut self: Box<Self>) -> io::Result<()> {
        // Completes the multipart upload: before it, the object does not exist.
        self.0.shutdown()
    }
}
