//! Kubernetes Events, as a kubelet emits them (reportingController
//! `kubelet`, reportingInstance the node). Best-effort: publishing happens in
//! the background and failures are only logged.

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::Resource;
use kube::runtime::events::{Event, EventType};

use crate::node::NodeInfo;

/// Which kind of container an event is about (for its fieldPath).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    Regular,
}

fn publish(node: &NodeInfo, reference: ObjectReference, warning: bool, reason: &str, note: String) {
    let recorder = node.recorder.clone();
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::debug!(error = %e, reason = %ev.reason, "failed to publish event");
        }
    });
}

pub fn pod_event(
    node: &NodeInfo,
    pod: &Pod,
    container: Option<(Kind, &str)>,
    warning: bool,
    reason: &str,
    note: String,
) {
    let mut reference = pod.object_ref(&());
    if let Some((kind, name)) = container {
        let field = match kind {
            Kind::Init => "initContainers",
            Kind::Regular => "containers",
        };
        reference.field_path = Some(format!("spec.{field}{{{name}}}"));
    }
    publish(node, reference, warning, reason, note);
}

pub fn node_event(node: &NodeInfo, reason: &str, note: &str) {
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some(<Node as k8s_openapi::Resource>::KIND.into()),
        name: Some(node.name.clone()),
        uid: Some(node.name.clone()),
        ..Default::default()
    };
    publish(node, reference, false, reason, note.into());
}
