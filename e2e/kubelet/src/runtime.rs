//! Processes: spawning container processes through the [`crate::nsexec`]
//! shim, each in its own process group so that signals reach everything it
//! started, and stopping them the way a runtime does (SIGTERM, grace period,
//! SIGKILL).

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::nsexec::{self, ExecSpec};

/// Process groups of every live process the agent started, so that none
/// survives the agent's shutdown.
#[derive(Default)]
pub struct Runtime {
    live: Mutex<HashSet<i32>>,
}

/// How a process ended, in container terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128+signal when killed by a signal (as runtimes
    /// report it: 137 for SIGKILL, 143 for SIGTERM).
    pub code: i32,
    pub signal: Option<i32>,
}

impl From<ExitStatus> for Exit {
    fn from(s: ExitStatus) -> Self {
        match (s.code(), s.signal()) {
            (Some(code), _) => Exit { code, signal: None },
            (None, Some(sig)) => Exit {
                code: 128 + sig,
                signal: Some(sig),
            },
            (None, None) => Exit {
                code: 255,
                signal: None,
            },
        }
    }
}

pub struct Proc {
    child: Child,
    pub pid: i32,
    rt: Arc<Runtime>,
    exited: Option<Exit>,
}

impl Runtime {
    /// Spawns the shim for `spec` with exactly `env` as its environment.
    pub fn spawn(
        self: &Arc<Self>,
        spec: &ExecSpec,
        env: &[(String, String)],
        stdout: Stdio,
        stderr: Stdio,
    ) -> anyhow::Result<Proc> {
        let json = serde_json::to_string(spec)?;
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(nsexec::SUBCOMMAND)
            .arg(json)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own process group: the container and everything it forks
            // can be signalled at once, and terminal signals sent to the
            // agent's group do not reach it.
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd.spawn().context("spawn container process")?;
        let pid = child.id().context("spawned process has no pid")? as i32;
        self.live.lock().unwrap().insert(pid);
        Ok(Proc {
            child,
            pid,
            rt: self.clone(),
            exited: None,
        })
    }

    /// Signals every live process group (agent shutdown).
    pub fn signal_all(&self, sig: Signal) {
        for &pgid in self.live.lock().unwrap().iter() {
            let _ = killpg(Pid::from_raw(pgid), sig);
        }
    }

    pub fn live_count(&self) -> usize {
        self.live.lock().unwrap().len()
    }
}

impl Proc {
    pub fn signal(&self, sig: Signal) {
        if self.exited.is_none() {
            let _ = killpg(Pid::from_raw(self.pid), sig);
        }
    }

    /// Waits for the process to exit (cancel-safe). Any process it left in
    /// its group is killed then: a container ends with its main process.
    pub async fn wait(&mut self) -> Exit {
        if let Some(e) = self.exited {
            return e;
        }
        let exit = match self.child.wait().await {
            Ok(s) => Exit::from(s),
            Err(_) => Exit {
                code: 255,
                signal: None,
            },
        };
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        self.rt.live.lock().unwrap().remove(&self.pid);
        self.exited = Some(exit);
        exit
    }

    /// SIGTERM, up to `grace` for the process to exit, then SIGKILL.
    ///
    /// As a container runtime does, SIGTERM goes to the container's main
    /// process only (the shim passes it on to the container's PID 1, which
    /// decides what to tell its children); SIGKILL goes to the whole group,
    /// and the rest of the container dies with its PID 1 (PID namespace).
    pub async fn stop(&mut self, grace: Duration) -> Exit {
        if let Some(e) = self.exited {
            return e;
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        if let Ok(e) = tokio::time::timeout(grace, self.wait()).await {
            return e;
        }
        self.signal(Signal::SIGKILL);
        self.wait().await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A dropped, still running process (its task was aborted) must not
        // outlive its owner.
        if self.exited.is_none() {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            self.rt.live.lock().unwrap().remove(&self.pid);
        }
    }
}

/// Output kept from exec probes and hooks, like the kubelet's 10 KiB limit.
const MAX_OUTPUT: usize = 10 * 1024;

/// Runs a short-lived command (exec probe, hook) to completion or `timeout`,
/// capturing stdout and stderr. `None` for the exit means it timed out (and
/// was killed).
pub async fn run_captured(
    rt: &Arc<Runtime>,
    spec: &ExecSpec,
    env: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<(Option<Exit>, String)> {
    let mut proc = rt.spawn(spec, env, Stdio::piped(), Stdio::piped())?;
    let out = proc.child.stdout.take();
    let err = proc.child.stderr.take();
    let read = |r: Option<tokio::process::ChildStdout>| async move {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf).await;
        }
        buf
    };
    let read_err = |r: Option<tokio::process::ChildStderr>| async move {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf).await;
        }
        buf
    };
    let out_task = tokio::spawn(read(out));
    let err_task = tokio::spawn(read_err(err));
    let exit = match tokio::time::timeout(timeout, proc.wait()).await {
        Ok(e) => Some(e),
        Err(_) => {
            proc.signal(Signal::SIGKILL);
            proc.wait().await;
            None
        }
    };
    // The group is dead now, so the pipes close; bound the wait anyway in
    // case something escaped the group holding them open.
    let grace = Duration::from_secs(1);
    let mut output = tokio::time::timeout(grace, out_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    output.extend(
        tokio::time::timeout(grace, err_task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
    );
    output.truncate(MAX_OUTPUT);
    Ok((exit, String::from_utf8_lossy(&output).into_owned()))
}
