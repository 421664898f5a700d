//! The pod status as the kubelet computes it (`generateAPIPodStatus`,
//! `getPhase`, `Generate*Condition`), from the worker's runtime view. Pure:
//! no I/O, no clock (callers pass `now`).

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

pub const POD_READY_TO_START: &str = "PodReadyToStartContainers";
pub const INITIALIZED: &str = "Initialized";
pub const CONTAINERS_READY: &str = "ContainersReady";
pub const READY: &str = "Ready";
/// The condition types this agent owns; all others (PodScheduled,
/// DisruptionTarget, readiness gates) belong to someone else and are never
/// sent.
#[cfg(test)]
pub const OWNED_CONDITIONS: [&str; 4] = [POD_READY_TO_START, INITIALIZED, CONTAINERS_READY, READY];

#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RtState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        pid: i32,
        started_at: Timestamp,
    },
    Terminated(Terminated),
}

/// One container as the worker sees it.
#[derive(Clone, Debug)]
pub struct RtContainer {
    pub name: String,
    pub image: String,
    pub image_id: Option<String>,
    pub restart_count: i32,
    pub state: RtState,
    pub last: Option<Terminated>,
    /// Readiness probe result (or no readiness probe) for the running
    /// instance.
    pub ready: bool,
    /// Startup probe passed (or none) for the running instance.
    pub started: bool,
}

impl RtContainer {
    pub fn new(c: &Container, reason: &str) -> Self {
        Self {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: None,
            restart_count: 0,
            state: RtState::Waiting {
                reason: reason.into(),
                message: None,
            },
            last: None,
            ready: false,
            started: false,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, RtState::Running { .. })
    }
}

/// The worker's view of a pod.
#[derive(Clone, Debug, Default)]
pub struct PodRt {
    pub pod_ips: Vec<String>,
    pub host_ip: String,
    pub start_time: Option<Timestamp>,
    /// The "sandbox" (IP, volumes) is set up.
    pub sandbox_ready: bool,
    /// All init containers have completed once.
    pub initialized: bool,
    /// The pod has been stopped for good (completed or killed): its
    /// containers will not be restarted.
    pub terminal: bool,
    pub init: Vec<RtContainer>,
    pub containers: Vec<RtContainer>,
}

pub fn is_restartable_init(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn container_status(c: &RtContainer) -> ContainerStatus {
    let terminated = |t: &Terminated| ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        container_id: t.container_id.clone(),
    };
    let (state, container_id) = match &c.state {
        RtState::Waiting { reason, message } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            c.last.as_ref().and_then(|t| t.container_id.clone()),
        ),
        RtState::Running { pid, started_at } => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            },
            Some(container_id(*pid)),
        ),
        RtState::Terminated(t) => (
            ContainerState {
                terminated: Some(terminated(t)),
                ..Default::default()
            },
            t.container_id.clone(),
        ),
    };
    let running = c.is_running();
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone().unwrap_or_default(),
        container_id,
        ready: running && c.started && c.ready,
        started: Some(running && c.started),
        restart_count: c.restart_count,
        state: Some(state),
        last_state: Some(
            c.last
                .as_ref()
                .map(|t| ContainerState {
                    terminated: Some(terminated(t)),
                    ..Default::default()
                })
                .unwrap_or_default(),
        ),
        ..Default::default()
    }
}

pub fn container_id(pid: i32) -> String {
    format!("tidecache://{pid}")
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn state(s: &ContainerStatus) -> &ContainerState {
    static EMPTY: ContainerState = ContainerState {
        running: None,
        terminated: None,
        waiting: None,
    };
    s.state.as_ref().unwrap_or(&EMPTY)
}

fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
}

/// A port of the kubelet's `getPhase`.
pub fn phase(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
    pod_has_initialized: bool,
) -> &'static str {
    let mut pending_restartable_init = 0;
    let mut pending_regular_init = 0;
    let mut failed_initialization = 0;
    for c in spec.init_containers.iter().flatten() {
        let Some(s) = find(init_statuses, &c.name) else {
            if is_restartable_init(c) {
                pending_restartable_init += 1;
            } else {
                pending_regular_init += 1;
            }
            continue;
        };
        let st = state(s);
        if is_restartable_init(c) {
            if st.running.is_some() {
                if s.started != Some(true) {
                    pending_restartable_init += 1;
                }
            } else if st.terminated.is_some() {
            } else if st.waiting.is_some() {
                if last_terminated(s).is_none() {
                    pending_restartable_init += 1;
                }
            } else {
                pending_restartable_init += 1;
            }
            continue;
        }
        if st.running.is_some() {
            pending_regular_init += 1;
        } else if let Some(t) = &st.terminated {
            if t.exit_code != 0 {
                failed_initialization += 1;
            }
        } else if st.waiting.is_some() {
            match last_terminated(s) {
                Some(t) if t.exit_code != 0 => failed_initialization += 1,
                Some(_) => {}
                None => pending_regular_init += 1,
            }
        } else {
            pending_regular_init += 1;
        }
    }

    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in &spec.containers {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        let st = state(s);
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st.waiting.is_some() {
            if last_terminated(s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if failed_initialization > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_regular_init > 0
        || (pending_restartable_init > 0 && !pod_has_initialized)
        || waiting > 0
    {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(Into::into),
        message,
        ..Default::default()
    }
}

/// Go's `%s` of a `[]string`.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

fn initialized_condition(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
    has_initialized: bool,
) -> PodCondition {
    let mut incomplete = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let Some(s) = find(init_statuses, &c.name) else {
            incomplete.push(c.name.clone());
            continue;
        };
        let done = if is_restartable_init(c) {
            s.started == Some(true)
        } else {
            state(s)
                .terminated
                .as_ref()
                .is_some_and(|t| t.exit_code == 0)
        };
        if !done {
            incomplete.push(c.name.clone());
        }
    }
    if phase == "Succeeded" {
        return condition(INITIALIZED, true, Some("PodCompleted"), None);
    }
    // Once a regular container has started, the pod has been initialized,
    // even while a sidecar restarts.
    let any_started = statuses.iter().any(|s| {
        let st = state(s);
        st.running.is_some() || st.terminated.is_some() || last_terminated(s).is_some()
    });
    if has_initialized || any_started || incomplete.is_empty() {
        return condition(INITIALIZED, true, None, None);
    }
    condition(
        INITIALIZED,
        false,
        Some("ContainersNotInitialized"),
        Some(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        )),
    )
}

fn containers_ready_condition(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    match phase {
        "Succeeded" => return condition(CONTAINERS_READY, false, Some("PodCompleted"), None),
        "Failed" => return condition(CONTAINERS_READY, false, Some("PodFailed"), None),
        _ => {}
    }
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_restartable_init(c))
        .map(|c| (c, init_statuses));
    let regular = spec.containers.iter().map(|c| (c, statuses));
    for (c, list) in sidecars.chain(regular) {
        match find(list, &c.name) {
            Some(s) if s.ready => {}
            Some(_) => unready.push(c.name.clone()),
            None => unknown.push(c.name.clone()),
        }
    }
    let mut msgs = Vec::new();
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        msgs.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if msgs.is_empty() {
        condition(CONTAINERS_READY, true, None, None)
    } else {
        condition(
            CONTAINERS_READY,
            false,
            Some("ContainersNotReady"),
            Some(msgs.join(", ")),
        )
    }
}

/// Ready = ContainersReady and every readiness gate's condition True (the
/// gates' conditions are read from the pod as the API has it).
fn ready_condition(pod: &Pod, containers_ready: &PodCondition) -> PodCondition {
    if containers_ready.status != "True" {
        return PodCondition {
            type_: READY.into(),
            ..containers_ready.clone()
        };
    }
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut msgs = Vec::new();
    for gate in pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default()
    {
        match conditions.iter().find(|c| c.type_ == gate.condition_type) {
            None => msgs.push(format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                gate.condition_type
            )),
            Some(c) if c.status != "True" => msgs.push(format!(
                "the status of pod readiness gate {:?} is not \"True\", but {}",
                gate.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if msgs.is_empty() {
        condition(READY, true, None, None)
    } else {
        condition(
            READY,
            false,
            Some("ReadinessGatesNotReady"),
            Some(msgs.join(", ")),
        )
    }
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
pub fn set_transition_times(conds: &mut [PodCondition], prev: &[PodCondition], now: Timestamp) {
    for c in conds {
        let kept = prev
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
            .and_then(|p| p.last_transition_time.clone());
        c.last_transition_time = Some(kept.unwrap_or(Time(now)));
    }
}

/// The status this agent reports for a pod (only the fields it owns).
/// `prev` holds the conditions last reported (to keep transition times).
pub fn build_status(pod: &Pod, rt: &PodRt, prev: &[PodCondition], now: Timestamp) -> PodStatus {
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    let init_statuses: Vec<ContainerStatus> = rt.init.iter().map(container_status).collect();
    let statuses: Vec<ContainerStatus> = rt.containers.iter().map(container_status).collect();
    let phase = phase(spec, &init_statuses, &statuses, rt.terminal, rt.initialized);

    let generation = pod.metadata.generation;
    let containers_ready = containers_ready_condition(spec, &init_statuses, &statuses, phase);
    let mut conditions = vec![
        condition(POD_READY_TO_START, rt.sandbox_ready, None, None),
        initialized_condition(spec, &init_statuses, &statuses, phase, rt.initialized),
        ready_condition(pod, &containers_ready),
        containers_ready,
    ];
    for c in &mut conditions {
        c.observed_generation = generation;
    }
    set_transition_times(&mut conditions, prev, now);

    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(rt.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: rt.host_ip.clone(),
        }]),
        pod_ip: rt.pod_ips.first().cloned(),
        pod_ips: (!rt.pod_ips.is_empty()).then(|| {
            rt.pod_ips
                .iter()
                .map(|ip| PodIP { ip: ip.clone() })
                .collect()
        }),
        start_time: rt.start_time.map(Time),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        observed_generation: generation,
        ..Default::default()
    }
}

/// The strategic-merge patch body for the status subresource. `conditions`
/// is merged by `type` by the apiserver, so conditions we do not own survive;
/// container status lists are atomic and replaced whole.
pub fn status_patch(status: &PodStatus) -> Value {
    let mut v = serde_json::to_value(status).unwrap_or_default();
    // A merge patch keeps fields it does not mention: a condition that
    // becomes True must clear its old reason and message explicitly.
    if let Some(conds) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds.iter_mut().filter_map(Value::as_object_mut) {
            for key in ["reason", "message"] {
                c.entry(key).or_insert(Value::Null);
            }
        }
    }
    json!({ "status": v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodReadinessGate, PodSpec};
    use kube::api::ObjectMeta;

    fn spec(init: &[(&str, bool)], containers: &[&str], policy: &str) -> PodSpec {
        PodSpec {
            init_containers: Some(
                init.iter()
                    .map(|(n, sidecar)| Container {
                        name: n.to_string(),
                        restart_policy: sidecar.then(|| "Always".to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            containers: containers
                .iter()
                .map(|n| Container {
                    name: n.to_string(),
                    image: Some("test/sh".into()),
                    ..Default::default()
                })
                .collect(),
            restart_policy: Some(policy.into()),
            ..Default::default()
        }
    }

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn rtc(name: &str) -> RtContainer {
        RtContainer::new(
            &Container {
                name: name.into(),
                image: Some("test/sh".into()),
                ..Default::default()
            },
            "ContainerCreating",
        )
    }

    fn running(name: &str, ready: bool) -> RtContainer {
        RtContainer {
            state: RtState::Running {
                pid: 42,
                started_at: ts(100),
            },
            ready,
            started: true,
            image_id: Some("x".into()),
            ..rtc(name)
        }
    }

    fn exited(name: &str, code: i32) -> RtContainer {
        RtContainer {
            state: RtState::Terminated(term(code)),
            ..rtc(name)
        }
    }

    fn term(code: i32) -> Terminated {
        Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: Some(ts(100)),
            finished_at: ts(110),
            container_id: Some(container_id(42)),
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    fn rt(init: Vec<RtContainer>, containers: Vec<RtContainer>) -> PodRt {
        PodRt {
            pod_ips: vec!["10.244.1.2".into()],
            host_ip: "10.244.1.1".into(),
            start_time: Some(ts(90)),
            sandbox_ready: true,
            init,
            containers,
            ..Default::default()
        }
    }

    #[test]
    fn pending_while_creating() {
        let p = pod(spec(&[], &["a"], "Always"));
        let s = build_status(&p, &rt(vec![], vec![rtc("a")]), &[], ts(100));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, READY).status, "False");
        assert_eq!(
            cond(&s, READY).reason.as_deref(),
            Some("ContainersNotReady")
        );
        assert_eq!(
            cond(&s, CONTAINERS_READY).message.as_deref(),
            Some("containers with unready status: [a]")
        );
        assert_eq!(cond(&s, INITIALIZED).status, "True");
        assert_eq!(cond(&s, POD_READY_TO_START).status, "True");
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.2"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        assert_eq!(cs.started, Some(false));
    }

    #[test]
    fn running_and_ready() {
        let p = pod(spec(&[], &["a", "b"], "Always"));
        let s = build_status(
            &p,
            &rt(vec![], vec![running("a", true), running("b", false)]),
            &[],
            ts(100),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, READY).status, "False");
        assert_eq!(
            cond(&s, READY).message.as_deref(),
            Some("containers with unready status: [b]")
        );
        let s = build_status(
            &p,
            &rt(vec![], vec![running("a", true), running("b", true)]),
            &[],
            ts(100),
        );
        assert_eq!(cond(&s, READY).status, "True");
        assert_eq!(cond(&s, CONTAINERS_READY).status, "True");
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("tidecache://42"));
        assert_eq!(cs.started, Some(true));
    }

    #[test]
    fn readiness_gates() {
        let mut sp = spec(&[], &["a"], "Always");
        sp.readiness_gates = Some(vec![PodReadinessGate {
            condition_type: "example.com/lb".into(),
        }]);
        let mut p = pod(sp);
        let r = rt(vec![], vec![running("a", true)]);
        let s = build_status(&p, &r, &[], ts(100));
        assert_eq!(cond(&s, CONTAINERS_READY).status, "True");
        assert_eq!(cond(&s, READY).status, "False");
        assert_eq!(
            cond(&s, READY).reason.as_deref(),
            Some("ReadinessGatesNotReady")
        );
        assert_eq!(
            cond(&s, READY).message.as_deref(),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
            )
        );
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "example.com/lb".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let s = build_status(&p, &r, &[], ts(100));
        assert_eq!(cond(&s, READY).status, "True");
        // Foreign conditions are not part of what we send.
        assert!(
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .all(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()))
        );
    }

    #[test]
    fn init_containers() {
        let p = pod(spec(&[("init", false)], &["a"], "Always"));
        let mut waiting_main = rtc("a");
        waiting_main.state = RtState::Waiting {
            reason: "PodInitializing".into(),
            message: None,
        };
        let s = build_status(
            &p,
            &rt(vec![running("init", false)], vec![waiting_main.clone()]),
            &[],
            ts(100),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, INITIALIZED).status, "False");
        assert_eq!(
            cond(&s, INITIALIZED).message.as_deref(),
            Some("containers with incomplete status: [init]")
        );
        let s = build_status(
            &p,
            &rt(vec![exited("init", 0)], vec![running("a", true)]),
            &[],
            ts(100),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, INITIALIZED).status, "True");
        assert_eq!(cond(&s, READY).status, "True");

        // A failed init container fails a Never pod.
        let p = pod(spec(&[("init", false)], &["a"], "Never"));
        let s = build_status(
            &p,
            &rt(vec![exited("init", 1)], vec![waiting_main]),
            &[],
            ts(100),
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn sidecars_count_for_readiness() {
        let p = pod(spec(&[("proxy", true)], &["a"], "Always"));
        let s = build_status(
            &p,
            &rt(vec![running("proxy", false)], vec![running("a", true)]),
            &[],
            ts(100),
        );
        assert_eq!(cond(&s, READY).status, "False");
        assert_eq!(
            cond(&s, READY).message.as_deref(),
            Some("containers with unready status: [proxy]")
        );
    }

    #[test]
    fn crash_loop_is_running_for_always() {
        let p = pod(spec(&[], &["a"], "Always"));
        let mut c = rtc("a");
        c.state = RtState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some("back-off".into()),
        };
        c.last = Some(term(1));
        c.restart_count = 3;
        let s = build_status(&p, &rt(vec![], vec![c]), &[], ts(100));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 3);
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
        assert_eq!(cs.container_id.as_deref(), Some("tidecache://42"));
        assert!(!cs.ready);
    }

    #[test]
    fn completion_phases() {
        let p = pod(spec(&[], &["a", "b"], "Never"));
        let s = build_status(
            &p,
            &rt(vec![], vec![exited("a", 0), exited("b", 0)]),
            &[],
            ts(100),
        );
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&s, READY).reason.as_deref(), Some("PodCompleted"));
        let s = build_status(
            &p,
            &rt(vec![], vec![exited("a", 0), exited("b", 2)]),
            &[],
            ts(100),
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let s = build_status(
            &p,
            &rt(vec![], vec![exited("a", 0), running("b", true)]),
            &[],
            ts(100),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));

        let p = pod(spec(&[], &["a"], "OnFailure"));
        let s = build_status(&p, &rt(vec![], vec![exited("a", 1)]), &[], ts(100));
        assert_eq!(s.phase.as_deref(), Some("Running"));

        // A deleted Always pod whose containers were killed is terminal.
        let p = pod(spec(&[], &["a"], "Always"));
        let mut r = rt(vec![], vec![exited("a", 143)]);
        r.terminal = true;
        let s = build_status(&p, &r, &[], ts(100));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let p = pod(spec(&[], &["a"], "Always"));
        let r1 = rt(vec![], vec![running("a", false)]);
        let s1 = build_status(&p, &r1, &[], ts(100));
        let prev = s1.conditions.clone().unwrap();
        let r2 = rt(vec![], vec![running("a", true)]);
        let s2 = build_status(&p, &r2, &prev, ts(200));
        assert_eq!(
            cond(&s2, POD_READY_TO_START).last_transition_time,
            Some(Time(ts(100)))
        );
        assert_eq!(cond(&s2, READY).last_transition_time, Some(Time(ts(200))));
        // Unchanged state → identical patch, so nothing is sent.
        let s3 = build_status(&p, &r2, s2.conditions.as_ref().unwrap(), ts(300));
        assert_eq!(status_patch(&s2), status_patch(&s3));
    }

    #[test]
    fn patch_shape() {
        let p = pod(spec(&[], &["a"], "Always"));
        let s = build_status(&p, &rt(vec![], vec![running("a", true)]), &[], ts(100));
        let v = status_patch(&s);
        let st = &v["status"];
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["podIPs"][0]["ip"], "10.244.1.2");
        assert_eq!(st["hostIP"], "10.244.1.1");
        assert_eq!(st["conditions"].as_array().unwrap().len(), 4);
        assert!(st["conditions"][2]["reason"].is_null());
        assert!(
            st["conditions"][2]
                .as_object()
                .unwrap()
                .contains_key("message")
        );
        assert!(st.get("initContainerStatuses").is_none());
        assert_eq!(
            st["containerStatuses"][0]["state"]["running"]["startedAt"],
            "1970-01-01T00:01:40Z"
        );
    }
}
