//! Service account tokens for projected volumes, requested with the
//! TokenRequest API and bound to the pod (as the kubelet's token manager
//! does), cached and renewed once 80 % of their lifetime has passed or they
//! are older than 24 h.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    pod_uid: String,
    audience: Option<String>,
    expiration_seconds: i64,
}

#[derive(Clone)]
struct Cached {
    token: String,
    issued: Timestamp,
    expires: Timestamp,
}

pub struct Tokens {
    client: Client,
    cache: Mutex<HashMap<Key, Cached>>,
}

/// Whether a token must be renewed (the kubelet's `requiresRefresh`).
pub fn requires_refresh(issued: Timestamp, expires: Timestamp, now: Timestamp) -> bool {
    let ttl = expires.duration_since(issued);
    let refresh_at = issued + SignedDuration::from_nanos(ttl.as_nanos() as i64 / 10 * 8);
    now >= refresh_at || now.duration_since(issued) > SignedDuration::from_hours(24)
}

impl Tokens {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get(
        &self,
        pod: &Pod,
        audience: Option<&str>,
        expiration_seconds: i64,
    ) -> anyhow::Result<String> {
        let key = Key {
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            audience: audience.filter(|a| !a.is_empty()).map(Into::into),
            expiration_seconds,
        };
        let now = Timestamp::now();
        if let Some(c) = self.cache.lock().unwrap().get(&key)
            && !requires_refresh(c.issued, c.expires, now)
        {
            return Ok(c.token.clone());
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        let req = TokenRequest {
            spec: TokenRequestSpec {
                audiences: key.audience.iter().cloned().collect(),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let resp = Api::<ServiceAccount>::namespaced(self.client.clone(), ns)
            .create_token_request(sa, &PostParams::default(), &req)
            .await
            .with_context(|| format!("request token for service account {ns}/{sa}"))?;
        let status = resp.status.context("TokenRequest has no status")?;
        let cached = Cached {
            token: status.token,
            issued: now,
            expires: status.expiration_timestamp.0,
        };
        self.cache.lock().unwrap().insert(key, cached.clone());
        Ok(cached.token)
    }

    pub fn forget_pod(&self, uid: &str) {
        self.cache.lock().unwrap().retain(|k, _| k.pod_uid != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_at_80_percent_or_a_day() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let exp = t0 + SignedDuration::from_secs(3600);
        assert!(!requires_refresh(
            t0,
            exp,
            t0 + SignedDuration::from_secs(2879)
        ));
        assert!(requires_refresh(
            t0,
            exp,
            t0 + SignedDuration::from_secs(2880)
        ));
        // The apiserver may extend a token's lifetime to a year; still
        // renewed daily.
        let year = t0 + SignedDuration::from_hours(24 * 365);
        assert!(!requires_refresh(
            t0,
            year,
            t0 + SignedDuration::from_hours(23)
        ));
        assert!(requires_refresh(
            t0,
            year,
            t0 + SignedDuration::from_hours(25)
        ));
    }
}
