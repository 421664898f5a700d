//! Kubernetes Events, as a kubelet emits them: core/v1 Events with
//! `source.component: kubelet`, `source.host: <node>`, first/last timestamps
//! and a count, repeated events folded into one (so `kubectl get events
//! --sort-by=.lastTimestamp` and `kubectl describe` show them as for a real
//! node). Best-effort: publishing happens in the background and failures are
//! only logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::node::NodeInfo;

/// Which kind of container an event is about (for its fieldPath).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    Regular,
}

/// Repeats within this window update the existing Event (client-go's
/// correlator uses 10 min too).
const AGGREGATION_WINDOW: Duration = Duration::from_secs(600);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    uid: String,
    field_path: String,
    type_: &'static str,
    reason: String,
    message: String,
}

struct Seen {
    namespace: String,
    name: String,
    count: i32,
    at: Instant,
}

pub struct Recorder {
    client: Client,
    node: String,
    /// Held across the API call, so that identical events are counted
    /// rather than created twice.
    seen: Mutex<HashMap<Key, Seen>>,
}

impl Recorder {
    pub fn new(client: Client, node: String) -> Arc<Self> {
        Arc::new(Self {
            client,
            node,
            seen: Mutex::new(HashMap::new()),
        })
    }

    fn emit(
        self: &Arc<Self>,
        reference: ObjectReference,
        warning: bool,
        reason: &str,
        message: String,
    ) {
        let this = self.clone();
        let reason = reason.to_string();
        tokio::spawn(async move {
            if let Err(e) = this.publish(reference, warning, &reason, message).await {
                tracing::debug!(error = %e, %reason, "failed to publish event");
            }
        });
    }

    async fn publish(
        &self,
        reference: ObjectReference,
        warning: bool,
        reason: &str,
        message: String,
    ) -> Result<(), kube::Error> {
        let type_ = if warning { "Warning" } else { "Normal" };
        let key = Key {
            uid: reference.uid.clone().unwrap_or_default(),
            field_path: reference.field_path.clone().unwrap_or_default(),
            type_,
            reason: reason.to_string(),
            message: message.clone(),
        };
        let now = Time(Timestamp::now());
        let mut seen = self.seen.lock().await;
        seen.retain(|_, s| s.at.elapsed() < AGGREGATION_WINDOW);
        if let Some(s) = seen.get_mut(&key) {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &s.namespace);
            let patch = json!({ "count": s.count + 1, "lastTimestamp": now });
            match api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    s.count += 1;
                    s.at = Instant::now();
                    return Ok(());
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = format!(
            "{}.{:x}",
            reference.name.as_deref().unwrap_or("unknown"),
            Timestamp::now().as_nanosecond()
        );
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: reference,
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &ev)
            .await?;
        seen.insert(
            key,
            Seen {
                namespace,
                name,
                count: 1,
                at: Instant::now(),
            },
        );
        Ok(())
    }
}

/// The reference the kubelet puts in a pod's (or one of its containers')
/// events.
pub fn pod_reference(pod: &Pod, container: Option<(Kind, &str)>) -> ObjectReference {
    let mut reference = pod.object_ref(&());
    if let Some((kind, name)) = container {
        let field = match kind {
            Kind::Init => "initContainers",
            Kind::Regular => "containers",
        };
        reference.field_path = Some(format!("spec.{field}{{{name}}}"));
    }
    reference
}

pub fn pod_event(
    node: &NodeInfo,
    pod: &Pod,
    container: Option<(Kind, &str)>,
    warning: bool,
    reason: &str,
    note: String,
) {
    node.recorder
        .emit(pod_reference(pod, container), warning, reason, note);
}

pub fn node_event(node: &NodeInfo, reason: &str, note: &str) {
    // The kubelet uses the node name as the UID of its node references.
    let reference = ObjectReference {
        kind: Some("Node".into()),
        name: Some(node.name.clone()),
        uid: Some(node.name.clone()),
        ..Default::default()
    };
    node.recorder.emit(reference, false, reason, note.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_field_paths() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = pod_reference(&pod, Some((Kind::Init, "setup")));
        assert_eq!(r.field_path.as_deref(), Some("spec.initContainers{setup}"));
        assert_eq!(r.kind.as_deref(), Some("Pod"));
        assert_eq!(r.uid.as_deref(), Some("u"));
        let r = pod_reference(&pod, Some((Kind::Regular, "app")));
        assert_eq!(r.field_path.as_deref(), Some("spec.containers{app}"));
    }
}
