//! The container "runtime shim": the agent re-executes itself
//! (`/proc/self/exe __tidecache-exec SPEC`) to set up a container's
//! namespaces and then `exec`s the container's binary, so that the pid the
//! agent spawned *is* the container process.
//!
//! Doing it in a fresh single-threaded process avoids `unsafe` `pre_exec`
//! hooks in the (multi-threaded) agent: `unshare(CLONE_NEWNS)` and `setns`
//! on a mount namespace require a single-threaded caller anyway.
//!
//! A container also gets its own PID namespace, so that it ends like a real
//! one: when its main process (PID 1 there) exits, the kernel kills whatever
//! else it started, daemonised or not. The shim therefore stays as the
//! process the agent sees: it unshares the namespaces, sets up the mounts,
//! starts the second stage (`__tidecache-init`, which becomes PID 1 and
//! `exec`s the container's binary), forwards the signals it receives to it
//! and exits the way it exited. Both stages die with their parent (parent
//! death signal), so nothing outlives a killed agent.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::unistd::{Pid, getpid};
use serde::{Deserialize, Serialize};

pub const SUBCOMMAND: &str = "__tidecache-exec";
pub const INIT_SUBCOMMAND: &str = "__tidecache-init";

/// Signals the shim passes on to the container's PID 1.
const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The exit code when setting up the container fails before `exec` (the
/// error is on the container's stderr, i.e. in its log), like runc's 128.
pub const SETUP_FAILED: i32 = 128;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    pub program: PathBuf,
    pub argv0: String,
    pub args: Vec<String>,
    pub workdir: PathBuf,
    /// Create new mount and UTS namespaces with these mounts and hostname
    /// (a container's main process).
    pub isolate: Option<Isolation>,
    /// Join the mount and UTS namespaces of this process (exec probes and
    /// hooks run "inside" the container).
    pub join_pid: Option<i32>,
    /// Kill the process if the agent thread that spawned it dies, so that a
    /// crashed agent leaves no containers behind.
    pub die_with_parent: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Isolation {
    pub hostname: String,
    pub mounts: Vec<BindMount>,
}

/// Entry point of the shim; never returns.
pub fn main(spec_json: &str) -> ! {
    let err = match serde_json::from_str::<ExecSpec>(spec_json)
        .context("parse exec spec")
        .and_then(|spec| run(&spec))
    {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("tidecache-kubelet: failed to start container process: {err:#}");
    std::process::exit(SETUP_FAILED);
}

enum Never {}

/// What the second stage needs to become the container's process.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InitSpec {
    program: PathBuf,
    argv0: String,
    args: Vec<String>,
    workdir: PathBuf,
}

/// Entry point of the second stage (PID 1 of the container); never returns.
pub fn init_main(spec_json: &str) -> ! {
    let err = match serde_json::from_str::<InitSpec>(spec_json)
        .context("parse init spec")
        .and_then(|spec| {
            // Dies with the shim, and with it the whole PID namespace.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("set parent death signal")?;
            // The shim blocks the signals it forwards, and a signal mask
            // survives fork and exec: unblocked here, or the container
            // would never see the SIGTERM of a graceful stop (each pod
            // deletion then waited out its whole grace period for SIGKILL).
            SigSet::empty()
                .thread_set_mask()
                .context("unblock signals")?;
            // A /proc of the container's own PID namespace, as in a real
            // container (the host's would show other pids than getpid()).
            if let Err(e) = mount(
                Some("proc"),
                "/proc",
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            ) {
                eprintln!("tidecache-kubelet: warning: cannot mount /proc: {e}");
            }
            exec(&spec.program, &spec.argv0, &spec.args, &spec.workdir)
        }) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("tidecache-kubelet: failed to start container process: {err:#}");
    std::process::exit(SETUP_FAILED);
}

fn exec(program: &Path, argv0: &str, args: &[String], workdir: &Path) -> anyhow::Result<Never> {
    std::env::set_current_dir(workdir)
        .with_context(|| format!("chdir to {}", workdir.display()))?;
    let err = Command::new(program).arg0(argv0).args(args).exec();
    Err(err).with_context(|| format!("exec {}", program.display()))
}

/// Runs the container's PID 1 as a child and mirrors it: forwards signals,
/// exits with its exit code or dies of the signal that killed it.
fn supervise(spec: &ExecSpec) -> anyhow::Result<Never> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    // Blocked signals queue up for the signalfd; the child inherits the
    // mask and clears it before it execs the container (`init_main`).
    mask.thread_block().context("block signals")?;
    let signals = SignalFd::new(&mask).context("signalfd")?;
    let init = InitSpec {
        program: spec.program.clone(),
        argv0: spec.argv0.clone(),
        args: spec.args.clone(),
        workdir: spec.workdir.clone(),
    };
    let mut child = Command::new("/proc/self/exe")
        .arg(INIT_SUBCOMMAND)
        .arg(serde_json::to_string(&init)?)
        .spawn()
        .context("start the container's init process")?;
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        if let Some(status) = child.try_wait().context("wait for the container process")? {
            mirror(status);
        }
        match signals.read_signal() {
            Ok(Some(info)) => {
                let signo = info.ssi_signo as i32;
                if signo != Signal::SIGCHLD as i32
                    && let Ok(sig) = Signal::try_from(signo)
                {
                    let _ = kill(pid, sig);
                }
            }
            Ok(None) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("read signals"),
        }
    }
}

/// Ends this process the way the container's process ended.
fn mirror(status: std::process::ExitStatus) -> ! {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        std::process::exit(code);
    }
    if let Some(signo) = status.signal() {
        if let Ok(sig) = Signal::try_from(signo) {
            let mut m = SigSet::empty();
            m.add(sig);
            let _ = m.thread_unblock();
            let _ = kill(getpid(), sig);
        }
        std::process::exit(128 + signo);
    }
    std::process::exit(255);
}

fn run(spec: &ExecSpec) -> anyhow::Result<Never> {
    if spec.die_with_parent {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .context("set parent death signal")?;
    }
    if let Some(pid) = spec.join_pid {
        // Open both first: once in the container's mount namespace, /proc is
        // the container's own and the shim's pid is not in it.
        let mut nss = Vec::new();
        for (ns, flag) in [
            ("mnt", CloneFlags::CLONE_NEWNS),
            ("uts", CloneFlags::CLONE_NEWUTS),
        ] {
            let f = File::open(format!("/proc/{pid}/ns/{ns}"))
                .with_context(|| format!("open namespace {ns} of container process {pid}"))?;
            nss.push((ns, f, flag));
        }
        for (ns, f, flag) in nss {
            setns(&f, flag).with_context(|| format!("join {ns} namespace of {pid}"))?;
        }
    } else if let Some(iso) = &spec.isolate {
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID)
            .context("unshare")?;
        // Keep our mounts from propagating back to the host namespace.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("make / private")?;
        nix::unistd::sethostname(&iso.hostname).context("sethostname")?;
        for m in sorted_mounts(&iso.mounts) {
            bind(m).with_context(|| {
                format!("mount {} at {}", m.source.display(), m.target.display())
            })?;
        }
    }
    if spec.isolate.is_some() {
        // A workingDir the "image" lacks is created, as runtimes do.
        std::fs::create_dir_all(&spec.workdir)
            .with_context(|| format!("create working dir {}", spec.workdir.display()))?;
        return supervise(spec);
    }
    exec(&spec.program, &spec.argv0, &spec.args, &spec.workdir)
}

/// Parents before children (by path depth), as runtimes order mounts, so a
/// mount inside another mount's target lands inside it.
pub fn sorted_mounts(mounts: &[BindMount]) -> Vec<&BindMount> {
    let mut v: Vec<&BindMount> = mounts.iter().collect();
    v.sort_by_key(|m| m.target.components().count());
    v
}

fn bind(m: &BindMount) -> anyhow::Result<()> {
    let meta = std::fs::metadata(&m.source).context("stat source")?;
    ensure_mountpoint(&m.target, meta.is_dir())?;
    mount(
        Some(&m.source),
        &m.target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    if m.read_only {
        mount(
            None::<&str>,
            &m.target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .context("remount read-only")?;
    }
    Ok(())
}

/// Creates the mount point (a directory, or an empty file for a file
/// mount). This happens on the shared filesystem, as runc does inside a
/// rootfs; the mount itself stays private to the container.
fn ensure_mountpoint(target: &Path, dir: bool) -> anyhow::Result<()> {
    if dir {
        std::fs::create_dir_all(target).context("create mount point")?;
    } else if !target.exists() {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).context("create mount point parent")?;
        }
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(target)
            .context("create mount point file")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_ordered_parents_first() {
        let m = |t: &str| BindMount {
            source: "/s".into(),
            target: t.into(),
            read_only: false,
        };
        let mounts = vec![m("/data/sub/x"), m("/data"), m("/data/sub")];
        let order: Vec<_> = sorted_mounts(&mounts)
            .iter()
            .map(|m| m.target.to_str().unwrap())
            .collect();
        assert_eq!(order, ["/data", "/data/sub", "/data/sub/x"]);
    }
}
