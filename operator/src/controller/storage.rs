//! The operator's access to a cluster's snapshot storage: it writes and
//! reads manifests (the nodes write the data objects themselves). The
//! credentials come from the Secret `spec.snapshots.storage` names, read
//! through the API, never logged.

use std::sync::Arc;

use futures::TryStreamExt as _;

use k8s_openapi::api::core::v1::Secret;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;

use super::context::Context;
use crate::crd::SnapshotStorage;

pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

/// A Secret's key as text.
async fn secret_key(ctx: &Context, ns: &str, name: &str, key: &str) -> Result<String, String> {
    let secret = ctx
        .api::<Secret>(ns)
        .get_opt(name)
        .await
        .map_err(|e| format!("Secret {name}: {e}"))?
        .ok_or_else(|| format!("Secret {name} does not exist"))?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| format!("Secret {name} has no key {key}"))?;
    String::from_utf8(value.0.clone()).map_err(|_| format!("Secret {name}'s {key} is not text"))
}

impl Storage {
    pub async fn open(ctx: &Context, ns: &str, s: &SnapshotStorage) -> Result<Storage, String> {
        let rest = s
            .url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("storage url {} is not s3://bucket[/prefix]", s.url))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(s.region.as_deref().unwrap_or("us-east-1"))
            .with_virtual_hosted_style_request(!s.path_style.unwrap_or(true))
            .with_conditional_put(S3ConditionalPut::Disabled);
        if let Some(endpoint) = &s.endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(secret) = &s.credentials_secret {
            b = b
                .with_access_key_id(secret_key(ctx, ns, secret, "AWS_ACCESS_KEY_ID").await?)
                .with_secret_access_key(
                    secret_key(ctx, ns, secret, "AWS_SECRET_ACCESS_KEY").await?,
                );
        }
        Ok(Storage {
            store: Arc::new(b.build().map_err(|e| format!("storage {}: {e}", s.url))?),
            prefix: Path::from(prefix),
        })
    }

    fn path(&self, name: &str) -> Result<Path, String> {
        let name = Path::parse(name).map_err(|e| format!("object name {name:?}: {e}"))?;
        Ok(self.prefix.parts().chain(name.parts()).collect())
    }

    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), String> {
        self.store
            .put(&self.path(name)?, bytes.into())
            .await
            .map(drop)
            .map_err(|e| format!("writing {name}: {e}"))
    }

    /// Deletes every object below directory `dir`; how many went.
    pub async fn delete_dir(&self, dir: &str) -> Result<usize, String> {
        let prefix = self.path(dir)?;
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| format!("listing {dir}: {e}"))?;
        for o in &objects {
            self.store
                .delete(&o.location)
                .await
                .map_err(|e| format!("deleting {}: {e}", o.location))?;
        }
        Ok(objects.len())
    }

    pub async fn get(&self, name: &str) -> Result<Vec<u8>, String> {
        let got = self
            .store
            .get(&self.path(name)?)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => format!("{name} not found"),
                e => format!("reading {name}: {e}"),
            })?;
        got.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| format!("reading {name}: {e}"))
    }
}
