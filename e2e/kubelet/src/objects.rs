//! Secrets, ConfigMaps and Services the pods refer to, from watch-fed caches
//! (like the kubelet's watch-based managers), so that volume contents follow
//! updates within moments without polling the apiserver. A cache miss falls
//! back to a GET: an object created just before its pod may not have reached
//! the cache yet, and only the apiserver can say it does not exist.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::env::Lookup;

pub struct Objects {
    client: Client,
    secrets: Store<Secret>,
    config_maps: Store<ConfigMap>,
    services: Store<Service>,
}

fn reflect<K>(client: &Client, shutdown: &CancellationToken) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff(),
    );
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let kind = K::kind(&());
        let run = stream.for_each(|r| {
            if let Err(e) = r {
                tracing::warn!(%kind, error = %e, "watch error");
            }
            futures::future::ready(())
        });
        tokio::select! {
            _ = run => {}
            _ = shutdown.cancelled() => {}
        }
    });
    store
}

async fn get<K>(
    client: &Client,
    store: &Store<K>,
    ns: &str,
    name: &str,
) -> anyhow::Result<Option<Arc<K>>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
{
    if let Some(o) = store.get(&ObjectRef::new(name).within(ns)) {
        return Ok(Some(o));
    }
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .map(Arc::new))
}

impl Objects {
    pub fn start(client: Client, shutdown: &CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            secrets: reflect(&client, shutdown),
            config_maps: reflect(&client, shutdown),
            services: reflect(&client, shutdown),
            client,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn secret(&self, ns: &str, name: &str) -> anyhow::Result<Option<Arc<Secret>>> {
        get(&self.client, &self.secrets, ns, name).await
    }

    pub async fn config_map(&self, ns: &str, name: &str) -> anyhow::Result<Option<Arc<ConfigMap>>> {
        get(&self.client, &self.config_maps, ns, name).await
    }

    pub fn services(&self) -> Vec<Arc<Service>> {
        self.services.state()
    }

    /// Fetches the objects a container's environment refers to.
    pub async fn lookup(
        &self,
        ns: &str,
        (cms, secrets): (BTreeSet<String>, BTreeSet<String>),
    ) -> anyhow::Result<Lookup> {
        let mut l = Lookup::default();
        for name in cms {
            let v = self.config_map(ns, &name).await?;
            l.config_maps.insert(name, v);
        }
        for name in secrets {
            let v = self.secret(ns, &name).await?;
            l.secrets.insert(name, v);
        }
        Ok(l)
    }
}
