//! One container's supervisor: the loop that "pulls" its image, builds its
//! environment and mounts, starts it, runs its hooks and probes, and
//! restarts it with back-off according to the restart policy, reporting
//! every state change into the pod's runtime view.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::env::{self, EnvInputs, Master};
use crate::expand;
use crate::fieldpath::FieldCtx;
use crate::image::{self, Entrypoint};
use crate::node::ALLOCATABLE;
use crate::nsexec::{BindMount, ExecSpec, Isolation};
use crate::pod::{CRef, KillRequest, PodCtx};
use crate::probes::{self, ExecTarget, Outcome as ProbeOutcome, Timing};
use crate::runtime::{Exit, Proc};
use crate::status::{RtState, Terminated, container_id};
use crate::volumes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A regular init container: runs to completion before the next.
    Init,
    /// An init container with `restartPolicy: Always` (a native sidecar).
    Sidecar,
    Regular,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with this code and will not be restarted.
    Exited(i32),
    /// Stopped on request (pod termination, agent shutdown).
    Stopped,
}

/// Whether a container that exited with `code` is started again.
pub fn should_restart(role: Role, pod_policy: &str, code: i32) -> bool {
    match role {
        Role::Sidecar => true,
        Role::Init => code != 0 && pod_policy != "Never",
        Role::Regular => match pod_policy {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        },
    }
}

enum PrepError {
    /// Unknown image: ErrImagePull / ImagePullBackOff.
    Image(String),
    /// Missing Secret/ConfigMap and the like: CreateContainerConfigError.
    Config(String),
    /// Mounts cannot be prepared: CreateContainerError.
    Create(String),
    /// The command cannot be executed: the start fails (StartError).
    Start(String),
}

struct Prepared {
    image: String,
    bin: PathBuf,
    entry: Entrypoint,
    env: Vec<(String, String)>,
    mounts: Vec<BindMount>,
    workdir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

pub struct Supervisor {
    pub pc: Arc<PodCtx>,
    pub cref: CRef,
    pub spec: Container,
    pub role: Role,
    pub stop: CancellationToken,
}

impl Supervisor {
    /// The container's image as the pod spec has it now (the one field of
    /// a container that can change).
    fn image(&self) -> String {
        let pod = self.pc.pod();
        let spec = pod.spec.as_ref();
        let list = if self.cref.init {
            spec.and_then(|s| s.init_containers.as_deref())
        } else {
            spec.map(|s| s.containers.as_slice())
        };
        list.and_then(|l| l.get(self.cref.index))
            .filter(|c| c.name == self.spec.name)
            .and_then(|c| c.image.clone())
            .or_else(|| self.spec.image.clone())
            .unwrap_or_default()
    }

    /// Resolves when the pod's spec gives this container another image.
    async fn image_changed(&self, current: &str) {
        let mut rx = self.pc.pod_rx.clone();
        loop {
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
            if self.image() != current {
                return;
            }
        }
    }

    fn ev(&self, warning: bool, reason: &str, note: String) {
        self.pc.event(
            Some((self.cref.kind(), &self.spec.name)),
            warning,
            reason,
            note,
        );
    }

    fn set_waiting(&self, reason: &str, message: Option<String>) {
        self.pc.update_container(self.cref, |c| {
            c.state = RtState::Waiting {
                reason: reason.into(),
                message,
            };
            c.ready = false;
            c.started = false;
        });
    }

    /// Sleeps unless stopped first; false when stopped.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.stop.cancelled() => false,
        }
    }

    pub async fn run(self) -> Outcome {
        let policy = self
            .pc
            .pod()
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        let mut restart_backoff = Backoff::default();
        // Retries of a start that could not happen (missing Secret, unknown
        // image) are capped lower than crash back-off: the kubelet retries
        // such pods on its ~10 s resync, and tests often create the missing
        // object right after the pod.
        let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let mut pull_failures = 0u32;
        let mut prev: Option<Terminated> = None;
        loop {
            if self.stop.is_cancelled() {
                return Outcome::Stopped;
            }
            let (term, ran_for, stopped, spec_changed) = match self.prepare().await {
                Ok(p) => {
                    retry.reset();
                    pull_failures = 0;
                    self.run_instance(p, prev.take()).await
                }
                Err(PrepError::Image(msg)) => {
                    pull_failures += 1;
                    let image = self.image();
                    if pull_failures == 1 {
                        self.set_waiting("ErrImagePull", Some(msg.clone()));
                        self.ev(
                            true,
                            "Failed",
                            format!("Failed to pull image {image:?}: {msg}"),
                        );
                        self.ev(true, "Failed", "Error: ErrImagePull".into());
                    } else {
                        self.set_waiting(
                            "ImagePullBackOff",
                            Some(format!("Back-off pulling image {image:?}: {msg}")),
                        );
                        self.ev(
                            false,
                            "BackOff",
                            format!("Back-off pulling image {image:?}"),
                        );
                        self.ev(true, "Failed", "Error: ImagePullBackOff".into());
                    }
                    if !self.sleep(retry.next_retry()).await {
                        return Outcome::Stopped;
                    }
                    continue;
                }
                Err(PrepError::Config(msg)) => {
                    self.set_waiting("CreateContainerConfigError", Some(msg.clone()));
                    self.ev(true, "Failed", format!("Error: {msg}"));
                    if !self.sleep(retry.next_retry()).await {
                        return Outcome::Stopped;
                    }
                    continue;
                }
                Err(PrepError::Create(msg)) => {
                    self.set_waiting("CreateContainerError", Some(msg.clone()));
                    self.ev(true, "Failed", format!("Error: {msg}"));
                    if !self.sleep(retry.next_retry()).await {
                        return Outcome::Stopped;
                    }
                    continue;
                }
                Err(PrepError::Start(msg)) => {
                    self.ev(true, "Failed", format!("Error: {msg}"));
                    let t = Terminated {
                        exit_code: crate::nsexec::SETUP_FAILED,
                        signal: None,
                        reason: "StartError".into(),
                        message: Some(msg),
                        started_at: None,
                        finished_at: Timestamp::now(),
                        container_id: None,
                    };
                    self.record_start_failure(&t, prev.take());
                    (t, Duration::ZERO, false, false)
                }
            };
            if stopped {
                return Outcome::Stopped;
            }
            if spec_changed {
                // Restarted whatever the policy, without back-off, as the
                // kubelet does when a container's definition changes.
                prev = Some(term);
                restart_backoff.reset();
                continue;
            }
            if !should_restart(self.role, &policy, term.exit_code) {
                return Outcome::Exited(term.exit_code);
            }
            let delay = restart_backoff.next(ran_for);
            prev = Some(term.clone());
            if !delay.is_zero() {
                let name = &self.spec.name;
                self.pc.update_container(self.cref, |c| {
                    c.state = RtState::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(format!(
                            "back-off {}s restarting failed container={name} pod={}",
                            delay.as_secs(),
                            self.pc.display()
                        )),
                    };
                    c.last = Some(term.clone());
                });
                self.ev(
                    true,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {name} in pod {}",
                        self.pc.display()
                    ),
                );
                if !self.sleep(delay).await {
                    return Outcome::Stopped;
                }
            }
        }
    }

    /// A start that failed before a process existed still counts as an
    /// instance (restartCount, lastState), as a runtime StartError does.
    fn record_start_failure(&self, t: &Terminated, prev: Option<Terminated>) {
        self.pc.update_container(self.cref, |c| {
            if let Some(p) = prev {
                c.restart_count += 1;
                c.last = Some(p);
            }
            c.state = RtState::Terminated(t.clone());
            c.ready = false;
            c.started = false;
        });
    }

    async fn prepare(&self) -> Result<Prepared, PrepError> {
        let pc = &self.pc;
        let agent = &pc.agent;
        let pod = pc.pod();
        let image = self.image();
        let bin = agent
            .images
            .lookup(&image)
            .ok_or_else(|| {
                PrepError::Image(format!(
                    "tidecache-kubelet has no binary for image {image:?} (repository {:?}); \
                     known images: [{}]; map it with --image NAME=PATH",
                    image::repository_name(&image),
                    agent.images.names().join(", ")
                ))
            })?
            .to_path_buf();
        if !image::is_executable(&bin) {
            return Err(PrepError::Image(format!(
                "the binary {} for image {image:?} is not an executable file",
                bin.display()
            )));
        }

        let lookup = agent
            .objects
            .lookup(&pc.ns, env::referenced_objects(&self.spec))
            .await
            .map_err(|e| PrepError::Config(format!("{e:#}")))?;
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let service_env = env::service_env(
            &agent.objects.services(),
            &pc.ns,
            links,
            &Master {
                host: &agent.master_host,
                port: agent.master_port,
            },
        );
        let (pod_ips, host_ip) = pc.read(|rt| (rt.pod_ips.clone(), rt.host_ip.clone()));
        let host_ips = vec![host_ip];
        let kubelet_env = env::container_env(
            &self.spec,
            &EnvInputs {
                field: FieldCtx {
                    pod: &pod,
                    pod_ips: &pod_ips,
                    host_ips: &host_ips,
                },
                alloc: ALLOCATABLE,
                service_env: &service_env,
                lookup: &lookup,
            },
        )
        .map_err(PrepError::Config)?;

        let mounts = self.mounts(&kubelet_env).map_err(PrepError::Create)?;
        let workdir = match self.spec.working_dir.as_deref().filter(|w| !w.is_empty()) {
            Some(w) => PathBuf::from(w),
            None => {
                let d = pc.root.join("containers").join(&self.spec.name);
                std::fs::create_dir_all(&d)
                    .map_err(|e| PrepError::Create(format!("create working dir: {e}")))?;
                d
            }
        };

        let command = env::expand_all(
            self.spec.command.as_deref().unwrap_or_default(),
            &kubelet_env,
        );
        let args = env::expand_all(self.spec.args.as_deref().unwrap_or_default(), &kubelet_env);
        let entry = image::resolve_entrypoint(&bin, &command, &args, image::is_executable)
            .map_err(|e| PrepError::Start(format!("{e:#}")))?;

        Ok(Prepared {
            image,
            bin,
            entry,
            env: env::process_env(&kubelet_env, &pc.hostname),
            mounts,
            workdir,
        })
    }

    /// Every volumeMount bind-mounted at its mountPath (subPath and readOnly
    /// honoured), plus the kubelet-managed /etc/hosts and /etc/hostname.
    fn mounts(&self, kubelet_env: &[(String, String)]) -> Result<Vec<BindMount>, String> {
        let vols = self.pc.volumes.lock().unwrap().clone();
        let env_map: HashMap<String, String> = kubelet_env.iter().cloned().collect();
        let mut out = Vec::new();
        for vm in self.spec.volume_mounts.iter().flatten() {
            let vol = vols
                .get(&vm.name)
                .ok_or_else(|| format!("volume {:?} is not set up", vm.name))?;
            let sub = match (&vm.sub_path, &vm.sub_path_expr) {
                (Some(s), _) if !s.is_empty() => Some(s.clone()),
                (_, Some(e)) if !e.is_empty() => Some(expand::expand(e, &[&env_map])),
                _ => None,
            };
            let source = match sub {
                Some(s) => volumes::sub_path(vol, &s).map_err(|e| {
                    format!(
                        "failed to prepare subPath for volumeMount {:?} of container {:?}: {e:#}",
                        vm.name, self.spec.name
                    )
                })?,
                None => vol.path.clone(),
            };
            out.push(BindMount {
                source,
                target: PathBuf::from(&vm.mount_path),
                read_only: vm.read_only == Some(true) || vol.managed,
            });
        }
        let host_network = self
            .pc
            .pod()
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if !host_network {
            for (file, target) in [
                ("etc-hosts", "/etc/hosts"),
                ("etc-hostname", "/etc/hostname"),
            ] {
                let source = self.pc.root.join(file);
                let target = PathBuf::from(target);
                if source.is_file() && target.is_file() && !out.iter().any(|m| m.target == target) {
                    out.push(BindMount {
                        source,
                        target,
                        read_only: false,
                    });
                }
            }
        }
        // The termination message file, fresh for every instance. Its mount
        // point (/dev/termination-log by default) is created once on the
        // host, like any mount point; writes land in the pod's own file.
        let tm_target = PathBuf::from(self.termination_message_path());
        if !out.iter().any(|m| m.target == tm_target) {
            let source = self.termination_log_file();
            let created = source
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&source, b""));
            if created.is_ok() {
                out.push(BindMount {
                    source,
                    target: tm_target,
                    read_only: false,
                });
            }
        }
        Ok(out)
    }

    fn termination_message_path(&self) -> &str {
        self.spec
            .termination_message_path
            .as_deref()
            .filter(|p| p.starts_with('/'))
            .unwrap_or("/dev/termination-log")
    }

    fn termination_log_file(&self) -> PathBuf {
        self.pc.root.join("termination-log").join(&self.spec.name)
    }

    fn log_path(&self) -> PathBuf {
        self.pc.log_dir.join(format!("{}.log", self.spec.name))
    }

    /// Starts one instance and supervises it until it ends. Returns its
    /// termination, how long it ran, whether it was stopped on request and
    /// whether it was killed because its image changed.
    async fn run_instance(
        &self,
        p: Prepared,
        prev: Option<Terminated>,
    ) -> (Terminated, Duration, bool, bool) {
        let pc = &self.pc;
        let name = self.spec.name.clone();
        let fail = |msg: String| Terminated {
            exit_code: crate::nsexec::SETUP_FAILED,
            signal: None,
            reason: "StartError".into(),
            message: Some(msg),
            started_at: None,
            finished_at: Timestamp::now(),
            container_id: None,
        };
        let (log, offset) = match open_log(&self.log_path()) {
            Ok(x) => x,
            Err(e) => {
                let t = fail(format!("open log file: {e}"));
                self.record_start_failure(&t, prev);
                return (t, Duration::ZERO, false, false);
            }
        };
        let restart =
            pc.container(self.cref, |c| c.restart_count).unwrap_or(0) + i32::from(prev.is_some());
        let _ = writeln!(
            &log,
            "==> tidecache-kubelet {}: starting container {name} (restart {restart}): {} {:?}",
            Timestamp::now(),
            p.entry.program.display(),
            p.entry.args
        );
        let spec = ExecSpec {
            program: p.entry.program.clone(),
            argv0: p.entry.argv0.clone(),
            args: p.entry.args.clone(),
            workdir: p.workdir.clone(),
            isolate: Some(Isolation {
                hostname: pc.hostname.clone(),
                mounts: p.mounts.clone(),
            }),
            join_pid: None,
            die_with_parent: true,
        };
        let spawned = log
            .try_clone()
            .map_err(anyhow::Error::from)
            .and_then(|out| {
                pc.agent
                    .runtime
                    .spawn(&spec, &p.env, Stdio::from(out), Stdio::from(log))
            });
        let mut proc = match spawned {
            Ok(proc) => proc,
            Err(e) => {
                let msg = format!("{e:#}");
                self.ev(true, "Failed", format!("Error: {msg}"));
                let t = fail(msg);
                self.record_start_failure(&t, prev);
                return (t, Duration::ZERO, false, false);
            }
        };
        let pid = proc.pid;
        let started_at = Timestamp::now();
        let started_instant = Instant::now();
        let has_startup = self.spec.startup_probe.is_some();
        let has_readiness = self.spec.readiness_probe.is_some();
        let image_id = format!("tidecache-local://{}", p.bin.display());
        let image = p.image.clone();
        pc.update_container(self.cref, |c| {
            c.image = image;
            if let Some(t) = prev {
                c.restart_count += 1;
                c.last = Some(t);
            }
            c.state = RtState::Running { pid, started_at };
            c.image_id = Some(image_id);
            c.started = !has_startup;
            c.ready = !has_readiness;
        });
        tracing::info!(pod = %pc.display(), container = %name, pid, "container started");
        self.ev(
            false,
            "Pulled",
            format!("Container image {:?} already present on machine", p.image),
        );
        self.ev(false, "Created", format!("Created container: {name}"));
        self.ev(false, "Started", format!("Started container {name}"));

        let target = ExecTarget {
            runtime: pc.agent.runtime.clone(),
            pid,
            env: Arc::new(p.env),
            workdir: p.workdir,
            image_bin: p.bin,
        };
        let pod_ip = pc.read(|rt| rt.pod_ips.first().cloned().unwrap_or_default());

        // postStart runs before the container counts as started for probes;
        // its failure kills the container.
        let mut stopped = false;
        let mut spec_changed = false;
        let mut exit: Option<Exit> = None;
        if let Some(h) = self
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
        {
            let hook = run_handler(&h, &target, &pod_ip, &self.spec, Duration::from_secs(600));
            tokio::select! {
                o = hook => if let ProbeOutcome::Failure(msg) = o {
                    self.ev(true, "FailedPostStartHook", format!("PostStartHook failed: {msg}"));
                    exit = Some(self.kill(&mut proc, &target, &pod_ip, self.pod_grace(None), "FailedPostStartHook").await);
                },
                e = proc.wait() => exit = Some(e),
                _ = self.stop.cancelled() => {
                    exit = Some(self.stop_for_pod(&mut proc, &target, &pod_ip).await);
                    stopped = true;
                }
            }
        }

        if exit.is_none() {
            let instance = CancellationToken::new();
            let (kill_tx, mut kill_rx) = mpsc::channel::<(ProbeKind, Option<i64>)>(2);
            let started = Arc::new(watch::channel(!has_startup).0);
            for (kind, probe) in [
                (ProbeKind::Startup, &self.spec.startup_probe),
                (ProbeKind::Liveness, &self.spec.liveness_probe),
                (ProbeKind::Readiness, &self.spec.readiness_probe),
            ] {
                let Some(probe) = probe.clone() else { continue };
                let task = ProbeTask {
                    pc: pc.clone(),
                    cref: self.cref,
                    spec: self.spec.clone(),
                    kind,
                    probe,
                    target: target.clone(),
                    pod_ip: pod_ip.clone(),
                    started_instant,
                    started: started.clone(),
                    has_readiness,
                    kill_tx: kill_tx.clone(),
                };
                let token = instance.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = task.run() => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
            drop(kill_tx);
            exit = Some(tokio::select! {
                e = proc.wait() => e,
                _ = self.stop.cancelled() => {
                    stopped = true;
                    self.stop_for_pod(&mut proc, &target, &pod_ip).await
                }
                () = self.image_changed(&p.image) => {
                    spec_changed = true;
                    self.ev(false, "Killing", format!("Container {name} definition changed, will be restarted"));
                    self.kill(&mut proc, &target, &pod_ip, self.pod_grace(None), "definition changed").await
                }
                Some((kind, probe_grace)) = kill_rx.recv() => {
                    let what = if kind == ProbeKind::Startup { "startup" } else { "liveness" };
                    self.ev(false, "Killing", format!("Container {name} failed {what} probe, will be restarted"));
                    let grace = self.pod_grace(probe_grace);
                    self.kill(&mut proc, &target, &pod_ip, grace, "probe").await
                }
            });
            instance.cancel();
        }
        let exit = exit.expect("set above");

        let t = Terminated {
            exit_code: exit.code,
            signal: exit.signal,
            reason: if exit.code == 0 { "Completed" } else { "Error" }.into(),
            message: self.termination_message(offset, exit.code),
            started_at: Some(started_at),
            finished_at: Timestamp::now(),
            container_id: Some(container_id(pid)),
        };
        tracing::info!(pod = %pc.display(), container = %name, pid, code = exit.code, signal = ?exit.signal, "container exited");
        pc.update_container(self.cref, |c| {
            c.state = RtState::Terminated(t.clone());
            c.ready = false;
            c.started = false;
        });
        (t, started_instant.elapsed(), stopped, spec_changed)
    }

    /// The pod's grace period (or a probe's own), for kills that are not a
    /// pod deletion.
    fn pod_grace(&self, probe_grace: Option<i64>) -> Duration {
        let pod_grace = self
            .pc
            .pod()
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(probe_grace.unwrap_or(pod_grace).max(0) as u64)
    }

    /// Kills the instance: preStop (within the grace period), SIGTERM to its
    /// process group, SIGKILL when the grace period is over.
    async fn kill(
        &self,
        proc: &mut Proc,
        target: &ExecTarget,
        pod_ip: &str,
        grace: Duration,
        why: &str,
    ) -> Exit {
        let req = KillRequest {
            deadline: Instant::now() + grace,
            run_pre_stop: true,
            min_grace: Duration::from_secs(2),
        };
        self.kill_with(proc, target, pod_ip, req, why).await
    }

    async fn stop_for_pod(&self, proc: &mut Proc, target: &ExecTarget, pod_ip: &str) -> Exit {
        let req = self.pc.kill.lock().unwrap().unwrap_or(KillRequest {
            deadline: Instant::now(),
            run_pre_stop: false,
            min_grace: Duration::from_secs(2),
        });
        self.ev(
            false,
            "Killing",
            format!("Stopping container {}", self.spec.name),
        );
        self.kill_with(proc, target, pod_ip, req, "pod termination")
            .await
    }

    async fn kill_with(
        &self,
        proc: &mut Proc,
        target: &ExecTarget,
        pod_ip: &str,
        req: KillRequest,
        why: &str,
    ) -> Exit {
        if req.run_pre_stop
            && let Some(h) = self
                .spec
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.clone())
        {
            let budget = req.deadline.saturating_duration_since(Instant::now());
            let hook = run_handler(
                &h,
                target,
                pod_ip,
                &self.spec,
                budget.max(Duration::from_secs(1)),
            );
            tokio::select! {
                o = tokio::time::timeout(budget, hook) => match o {
                    Ok(ProbeOutcome::Success) => {}
                    Ok(ProbeOutcome::Failure(msg)) => {
                        self.ev(true, "FailedPreStopHook", format!("PreStopHook failed: {msg}"));
                    }
                    Err(_) => self.ev(true, "FailedPreStopHook", "PreStopHook timed out".into()),
                },
                // The process may end during its preStop hook.
                _ = proc.wait() => {}
            }
        }
        let grace = req
            .deadline
            .saturating_duration_since(Instant::now())
            .max(req.min_grace);
        tracing::info!(pod = %self.pc.display(), container = %self.spec.name, grace_ms = grace.as_millis() as u64, why, "stopping container");
        proc.stop(grace).await
    }

    /// The terminated state's message, as the kubelet reads it: the
    /// container's terminationMessagePath file (at most 4 KiB), or with
    /// `FallbackToLogsOnError` and an empty file, the end of this instance's
    /// log when it failed.
    fn termination_message(&self, offset: u64, code: i32) -> Option<String> {
        let mut file = std::fs::read(self.termination_log_file()).unwrap_or_default();
        file.truncate(4096);
        if !file.is_empty() {
            return Some(String::from_utf8_lossy(&file).into_owned());
        }
        if code == 0
            || self.spec.termination_message_policy.as_deref() != Some("FallbackToLogsOnError")
        {
            return None;
        }
        let tail = log_tail(&self.log_path(), offset, 2048, 80)?;
        (!tail.is_empty()).then_some(tail)
    }
}

fn open_log(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let len = f.metadata()?.len();
    Ok((f, len))
}

/// The last `max_lines` lines / `max_bytes` bytes written after `offset`.
pub fn log_tail(path: &Path, offset: u64, max_bytes: u64, max_lines: usize) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = offset.max(len.saturating_sub(max_bytes));
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("==> tidecache-kubelet"))
        .collect();
    let skip = lines.len().saturating_sub(max_lines);
    Some(lines[skip..].join("\n"))
}

/// Runs a lifecycle hook handler.
async fn run_handler(
    h: &LifecycleHandler,
    target: &ExecTarget,
    pod_ip: &str,
    container: &Container,
    timeout: Duration,
) -> ProbeOutcome {
    if let Some(e) = &h.exec {
        probes::run_exec(target, e.command.as_deref().unwrap_or_default(), timeout).await
    } else if let Some(a) = &h.http_get {
        probes::run_http(a, pod_ip, container, timeout).await
    } else if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64)).await;
        ProbeOutcome::Success
    } else {
        ProbeOutcome::Failure(
            "unsupported lifecycle handler (tcpSocket hooks are not supported)".into(),
        )
    }
}

/// One probe of one container instance.
struct ProbeTask {
    pc: Arc<PodCtx>,
    cref: CRef,
    spec: Container,
    kind: ProbeKind,
    probe: Probe,
    target: ExecTarget,
    pod_ip: String,
    started_instant: Instant,
    /// Whether the startup probe has passed (true from the start without
    /// one); liveness and readiness wait for it.
    started: Arc<watch::Sender<bool>>,
    has_readiness: bool,
    kill_tx: mpsc::Sender<(ProbeKind, Option<i64>)>,
}

impl ProbeTask {
    async fn run(self) {
        let timing = Timing::of(&self.probe);
        if self.kind != ProbeKind::Startup {
            let mut rx = self.started.subscribe();
            if rx.wait_for(|s| *s).await.is_err() {
                return;
            }
        }
        tokio::time::sleep_until(self.started_instant + timing.initial_delay).await;
        let mut counter = probes::Counter::new(&timing);
        let mut tick = tokio::time::interval(timing.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let outcome = self.once(&timing).await;
            let success = outcome == ProbeOutcome::Success;
            if let ProbeOutcome::Failure(msg) = &outcome {
                self.pc.event(
                    Some((self.cref.kind(), &self.spec.name)),
                    true,
                    "Unhealthy",
                    format!("{} probe failed: {msg}", self.kind.title()),
                );
            }
            let Some(result) = counter.observe(success) else {
                continue;
            };
            match (self.kind, result) {
                (ProbeKind::Readiness, ready) => self.set(|c| c.ready = ready),
                (ProbeKind::Startup, true) => {
                    let has_readiness = self.has_readiness;
                    self.set(|c| {
                        c.started = true;
                        if !has_readiness {
                            c.ready = true;
                        }
                    });
                    self.started.send_replace(true);
                    // A startup probe stops once it succeeded.
                    return;
                }
                (ProbeKind::Liveness, true) => {}
                (ProbeKind::Startup | ProbeKind::Liveness, false) => {
                    // Stop probing until the next instance, as the kubelet
                    // puts the worker on hold.
                    let _ = self
                        .kill_tx
                        .send((self.kind, self.probe.termination_grace_period_seconds))
                        .await;
                    return;
                }
            }
        }
    }

    /// Updates this instance's flags, unless the instance is already gone.
    fn set(&self, f: impl FnOnce(&mut crate::status::RtContainer)) {
        let pid = self.target.pid;
        self.pc.update_container(self.cref, |c| {
            if matches!(c.state, RtState::Running { pid: p, .. } if p == pid) {
                f(c);
            }
        });
    }

    async fn once(&self, timing: &Timing) -> ProbeOutcome {
        let p = &self.probe;
        if let Some(e) = &p.exec {
            probes::run_exec(
                &self.target,
                e.command.as_deref().unwrap_or_default(),
                timing.timeout,
            )
            .await
        } else if let Some(a) = &p.http_get {
            probes::run_http(a, &self.pod_ip, &self.spec, timing.timeout).await
        } else if let Some(t) = &p.tcp_socket {
            let host = t
                .host
                .as_deref()
                .filter(|h| !h.is_empty())
                .unwrap_or(&self.pod_ip);
            match probes::resolve_port(&t.port, &self.spec) {
                Ok(port) => probes::run_tcp(host, port, timing.timeout).await,
                Err(e) => ProbeOutcome::Failure(format!("{e:#}")),
            }
        } else if p.grpc.is_some() {
            ProbeOutcome::Failure("gRPC probes are not supported by tidecache-kubelet".into())
        } else {
            ProbeOutcome::Failure("probe has no handler".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy() {
        assert!(should_restart(Role::Regular, "Always", 0));
        assert!(should_restart(Role::Regular, "Always", 1));
        assert!(!should_restart(Role::Regular, "OnFailure", 0));
        assert!(should_restart(Role::Regular, "OnFailure", 1));
        assert!(!should_restart(Role::Regular, "Never", 1));
        assert!(!should_restart(Role::Init, "Always", 0));
        assert!(should_restart(Role::Init, "Always", 1));
        assert!(!should_restart(Role::Init, "Never", 1));
        assert!(should_restart(Role::Sidecar, "Never", 0));
    }

    #[test]
    fn tail_of_this_instance() {
        let dir = crate::atomic_writer::test_dir("tail");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.log");
        std::fs::write(
            &p,
            "old run\n==> tidecache-kubelet: starting\nline1\nline2\nline3\n",
        )
        .unwrap();
        let offset = "old run\n".len() as u64;
        assert_eq!(
            log_tail(&p, offset, 2048, 80).unwrap(),
            "line1\nline2\nline3"
        );
        assert_eq!(log_tail(&p, offset, 2048, 2).unwrap(), "line2\nline3");
        assert_eq!(log_tail(&p, 0, 6, 80).unwrap(), "line3");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
