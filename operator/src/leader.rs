//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Only the holder of the Lease reconciles. The holder renews it every
//! `renew` interval; a candidate takes it over once it has not been renewed
//! for `duration`, writing with the Lease's resourceVersion as a
//! precondition so two candidates cannot both win. A leader that cannot
//! renew in time steps down by exiting: a restarted process re-joins as a
//! candidate, which is simpler and safer than un-running a controller.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tracing::{info, warn};

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// The pure decision: may `identity` take the lease as it stands at `now`?
pub fn may_acquire(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == identity => true,
        Some(_) => {
            let Some(renewed) = spec.renew_time.as_ref() else {
                return true;
            };
            let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            renewed.0.as_second() + secs < now.as_second()
        }
    }
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: String,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity,
            duration,
        }
    }

    /// Tries once to take or renew the lease; true when we hold it after.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let existing = self.api.get_opt(&self.name).await?;
        if !may_acquire(
            existing.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        ) {
            return Ok(false);
        }
        let previous_holder = existing
            .as_ref()
            .and_then(|l| l.spec.as_ref()?.holder_identity.clone());
        let transitions = existing
            .as_ref()
            .and_then(|l| l.spec.as_ref()?.lease_transitions)
            .unwrap_or(0);
        let taking_over = previous_holder.as_deref() != Some(&self.identity);
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: if taking_over {
                Some(MicroTime(now))
            } else {
                existing
                    .as_ref()
                    .and_then(|l| l.spec.as_ref()?.acquire_time.clone())
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if taking_over && previous_holder.is_some() {
                transitions + 1
            } else {
                transitions
            }),
            ..LeaseSpec::default()
        };
        let result = match existing {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // replace() sends the resourceVersion we read: a concurrent
                // writer makes this fail with 409 instead of both winning.
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self, retry: Duration) {
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election failed; retrying"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Renews the lease every `renew`; returns when renewal has failed for
    /// longer than the lease duration (leadership may be lost).
    pub async fn hold(&self, renew: Duration) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(renew).await;
            match self.try_acquire().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    warn!(lease = %self.name, "another replica took the lease");
                    return;
                }
                Err(e) => warn!(error = %e, "lease renewal failed"),
            }
            // Step down before another candidate may legally take over.
            if last_ok.elapsed() + renew >= self.duration {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let now = Timestamp::now().as_second();
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(
                Timestamp::from_second(now - renewed_secs_ago).unwrap(),
            )),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_live_lease_belongs_to_its_holder() {
        let now = Timestamp::now();
        assert!(may_acquire(None, "a", now));
        assert!(
            may_acquire(Some(&spec("a", 5, 15)), "a", now),
            "renew our own"
        );
        assert!(
            !may_acquire(Some(&spec("b", 5, 15)), "a", now),
            "b still holds it"
        );
        assert!(
            may_acquire(Some(&spec("b", 20, 15)), "a", now),
            "b's lease expired"
        );
        assert!(
            may_acquire(Some(&LeaseSpec::default()), "a", now),
            "released"
        );
    }
}
