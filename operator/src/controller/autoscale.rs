//! Serverless autoscaling: how many shards a cluster needs, as a pure
//! function of a window of samples, the user's limits and the current
//! shape. The reconcile loop samples every node on its own (every pass, at
//! most 1 s apart for a Serverless cluster), keeps the window in memory and
//! records every decision this returns in `status.serverless`.
//!
//! # The rule
//!
//! A shard is the unit of scale: a primary with `shard_bytes` of data
//! (its `maxmemory`) and `shard_millicores` of CPU. At a sample, the load
//! *needs* `need = max(⌈memory / (shard_bytes · target_memory)⌉,
//! ⌈cpu / (shard_millicores · target_cpu)⌉)` shards, clamped to
//! `[min_shards, max_shards]` (the limits). Then, in this order:
//!
//! 1. Outside the limits (they were changed): step towards them.
//! 2. A change under way (moves running, shards not all serving): hold.
//! 3. **Scale out** when every sample of the last `scale_out_window`, taken
//!    at the current shape, needs more shards than there are: by the
//!    fewest any of them needs (a sustained crossing, not its peak). So the
//!    decision comes one window after the crossing, and a spike shorter
//!    than the window does nothing.
//! 4. **Rebalance** when no more shards are needed but one shard has been
//!    above a target through that whole window while the cluster as a
//!    whole is below it: a few hot slots, which moving slots relieves.
//! 5. **Scale in** by one shard when every sample of the last
//!    `scale_in_window` at the current shape would still be below
//!    [`SCALE_IN_HEADROOM`] of the targets with one shard fewer. One step
//!    per window: the next step needs a full window at the new shape.
//! 6. Otherwise hold.
//!
//! # What it guarantees (property-tested below)
//!
//! - The shard count it leads to is never outside `[min_shards,
//!   max_shards]`, unless the shape already was (then it only moves
//!   towards them).
//! - It never scales in below what the data needs at the target: with one
//!   shard fewer, every sample's memory stays under the target.
//! - A flat load inside the band between the scale-in and the scale-out
//!   thresholds, however noisy, never causes an action.
//! - A sustained crossing is acted on one window after it began (as soon
//!   as the window at the shape is full).
//! - A scale-in is one shard at a time and comes only after a whole
//!   window at the current shape.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use tidecache_topology::admin::Usage as NodeUsage;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;

use super::decide::Note;
use super::desired;
use crate::crd::{
    CacheClusterSpec, DEFAULT_COMPUTE_MAXIMUM, DEFAULT_DATA_STORAGE_MAXIMUM, ScaleDecision,
    ServerlessStatus, Usage,
};

/// The most shards a cluster may have (as `spec.shards` in Provisioned).
pub const MAX_SHARDS: usize = 500;

/// Scale in only if, with one shard fewer, every sample stays below this
/// share of the target: the band between it and the target absorbs noise.
pub const SCALE_IN_HEADROOM: f64 = 0.8;

/// The user's limits, in shards and utilisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub min_shards: usize,
    pub max_shards: usize,
    /// Data one shard holds: its primary's `maxmemory`.
    pub shard_bytes: u64,
    /// CPU one shard's primary may use.
    pub shard_millicores: u64,
    /// Target utilisation of memory and CPU, in (0, 1].
    pub target_memory: f64,
    pub target_cpu: f64,
    pub scale_out_window: Duration,
    pub scale_in_window: Duration,
}

/// What the cluster's primaries reported at one instant, summed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// When, in milliseconds on any monotonic clock.
    pub at_ms: u64,
    /// Shards owning slots when it was taken.
    pub shards: usize,
    /// Bytes used by data.
    pub memory: u64,
    /// CPU used, in millicores (the rate since the previous sample).
    pub millicores: u64,
    /// Commands per second.
    pub ops: u64,
    /// The highest single shard's memory and CPU utilisation (0..).
    pub hottest_memory: f64,
    pub hottest_cpu: f64,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Hold,
    ScaleOut(usize),
    ScaleIn(usize),
    /// Move slots between the current shards (load-aware), same count.
    Rebalance,
}

/// Which limit holds the cluster back, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AtLimit {
    /// The data needs more shards than `max_shards` allow: at the storage
    /// maximum nodes evict (keys with a TTL first).
    pub storage: bool,
    /// The CPU needs more shards than allowed: nodes keep serving, slower.
    pub compute: bool,
}

/// A decision, with its reason and the inputs it was made on.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    pub from: usize,
    pub to: usize,
    pub reason: String,
    /// The newest sample (the inputs), if any.
    pub latest: Option<Sample>,
    pub at_limit: AtLimit,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Hold => f.write_str("Hold"),
            Action::ScaleOut(_) => f.write_str("ScaleOut"),
            Action::ScaleIn(_) => f.write_str("ScaleIn"),
            Action::Rebalance => f.write_str("Rebalance"),
        }
    }
}

impl Limits {
    /// The limits of a Serverless `spec`, in shards of its node size; an
    /// error says what is wrong (the operator's validation reports it).
    pub fn of(spec: &CacheClusterSpec) -> Result<Self, String> {
        let sv = spec.serverless();
        let shard_bytes = desired::node_data_bytes(spec);
        if shard_bytes == 0 {
            return Err(
                "Serverless mode needs a node size: node.resources.limits.memory or node.maxMemory"
                    .into(),
            );
        }
        let node_millicores = desired::node_millicores(spec);
        if node_millicores == 0 {
            return Err("Serverless mode needs node.resources.limits.cpu".into());
        }
        let shard_millicores_all = node_millicores * (1 + spec.replicas().max(0) as u64);
        let quantity =
            |q: &Option<Quantity>, default: &str, what: &str, parse: fn(&str) -> Option<u64>| {
                let text = q.as_ref().map_or(default, |q| q.0.as_str());
                parse(text)
                    .ok_or_else(|| format!("serverless.limits.{what} {text:?} is not a quantity"))
            };
        let limits = &sv.limits;
        let storage_min = quantity(
            &limits.data_storage.minimum,
            "0",
            "dataStorage.minimum",
            desired::quantity_bytes,
        )?;
        let storage_max = quantity(
            &limits.data_storage.maximum,
            DEFAULT_DATA_STORAGE_MAXIMUM,
            "dataStorage.maximum",
            desired::quantity_bytes,
        )?;
        let compute_min = quantity(
            &limits.compute.minimum,
            "0",
            "compute.minimum",
            desired::quantity_millicores,
        )?;
        let compute_max = quantity(
            &limits.compute.maximum,
            DEFAULT_COMPUTE_MAXIMUM,
            "compute.maximum",
            desired::quantity_millicores,
        )?;
        let min_shards = 1usize
            .max(storage_min.div_ceil(shard_bytes) as usize)
            .max(compute_min.div_ceil(shard_millicores_all) as usize);
        let max_shards = ((storage_max / shard_bytes) as usize)
            .min((compute_max / shard_millicores_all) as usize)
            .min(MAX_SHARDS);
        if max_shards == 0 {
            return Err(format!(
                "the maximums do not hold one shard: a shard stores {shard_bytes} bytes and costs {shard_millicores_all} millicores"
            ));
        }
        if min_shards > max_shards {
            return Err(format!(
                "the minimums need {min_shards} shards but the maximums allow {max_shards}"
            ));
        }
        Ok(Limits {
            min_shards,
            max_shards,
            shard_bytes,
            shard_millicores: node_millicores,
            target_memory: f64::from(sv.target_memory_percent) / 100.0,
            target_cpu: f64::from(sv.target_cpu_percent) / 100.0,
            scale_out_window: Duration::from_secs(sv.scale_out_window_seconds.max(1) as u64),
            scale_in_window: Duration::from_secs(sv.scale_in_window_seconds.max(1) as u64),
        })
    }

    /// Shards the memory of `s` needs at `target` of each shard's bytes.
    fn memory_need(&self, s: &Sample, target: f64) -> usize {
        ceil_div(s.memory as f64, self.shard_bytes as f64 * target)
    }

    /// Shards the CPU of `s` needs at `target` of each shard's CPU.
    fn cpu_need(&self, s: &Sample, target: f64) -> usize {
        ceil_div(s.millicores as f64, self.shard_millicores as f64 * target)
    }

    /// Shards the load of `s` needs at the targets scaled by `headroom`,
    /// clamped to the limits.
    pub fn need(&self, s: &Sample, headroom: f64) -> usize {
        self.memory_need(s, self.target_memory * headroom)
            .max(self.cpu_need(s, self.target_cpu * headroom))
            .clamp(self.min_shards, self.max_shards)
    }

    fn clamp(&self, shards: usize) -> usize {
        shards.clamp(self.min_shards, self.max_shards)
    }
}

fn ceil_div(a: f64, b: f64) -> usize {
    if b <= 0.0 {
        return usize::MAX;
    }
    let q = (a / b).ceil();
    if q >= usize::MAX as f64 {
        usize::MAX
    } else {
        q as usize
    }
}

/// The samples of the last `window` before `now_ms` taken at `shards`, if
/// such samples cover the whole window (the oldest is at least `window`
/// old, and none at another shape is newer than it).
fn full_window(
    samples: &[Sample],
    shards: usize,
    window: Duration,
    now_ms: u64,
) -> Option<&[Sample]> {
    let window_ms = window.as_millis() as u64;
    let start = now_ms.checked_sub(window_ms)?;
    // The run of samples at this shape that ends the window.
    let run_start = samples
        .iter()
        .rposition(|s| s.shards != shards)
        .map_or(0, |i| i + 1);
    let run = &samples[run_start..];
    // The latest sample at or before the window's start anchors it.
    let anchor = run.iter().rposition(|s| s.at_ms <= start)?;
    Some(&run[anchor..])
}

/// Decides what a Serverless cluster of `shards` shards does now. `busy`:
/// a change is under way (moves, shards not serving). `samples` are oldest
/// first.
pub fn decide(
    limits: &Limits,
    shards: usize,
    busy: bool,
    samples: &[Sample],
    now_ms: u64,
) -> Decision {
    let latest = samples.last().copied();
    let decision = |action: Action, reason: String, at_limit: AtLimit| {
        let to = match action {
            Action::ScaleOut(n) => shards + n,
            Action::ScaleIn(n) => shards - n,
            Action::Hold | Action::Rebalance => shards,
        };
        Decision {
            action,
            from: shards,
            to,
            reason,
            latest,
            at_limit,
        }
    };
    // What the newest sample says of the limits, for the status.
    let at_limit = latest.map_or_else(AtLimit::default, |s| AtLimit {
        // Nodes evict to stay within maxmemory, so the data never shows
        // more than the shards hold: at the maximum, wanting more shards
        // than allowed is the sign.
        storage: shards >= limits.max_shards
            && limits.memory_need(&s, limits.target_memory) > limits.max_shards,
        compute: shards >= limits.max_shards
            && limits.cpu_need(&s, limits.target_cpu) > limits.max_shards,
    });
    if shards < limits.min_shards {
        return decision(
            Action::ScaleOut(limits.min_shards - shards),
            format!(
                "{shards} shards is below the minimum of {}",
                limits.min_shards
            ),
            at_limit,
        );
    }
    if shards > limits.max_shards {
        return decision(
            Action::ScaleIn(1),
            format!(
                "{shards} shards is above the maximum of {}",
                limits.max_shards
            ),
            at_limit,
        );
    }
    if busy {
        return decision(Action::Hold, "a change is under way".into(), at_limit);
    }
    if let Some(window) = full_window(samples, shards, limits.scale_out_window, now_ms) {
        let needs: Vec<usize> = window.iter().map(|s| limits.need(s, 1.0)).collect();
        let sustained = needs.iter().copied().min().unwrap_or(shards);
        if sustained > shards {
            let s = window.last().expect("a full window has samples");
            return decision(
                Action::ScaleOut(sustained - shards),
                format!(
                    "{} for {} s: {sustained} shards needed",
                    usage(limits, s, shards),
                    limits.scale_out_window.as_secs()
                ),
                at_limit,
            );
        }
        // Hot: one shard above a target while the whole is within them
        // (unclamped: at the maximum, an evenly overloaded cluster is not
        // relieved by moving slots).
        let hot = |s: &Sample| {
            (s.hottest_memory > limits.target_memory || s.hottest_cpu > limits.target_cpu)
                && limits.memory_need(s, limits.target_memory) <= shards
                && limits.cpu_need(s, limits.target_cpu) <= shards
        };
        if shards > 1 && window.iter().all(hot) {
            let s = window.last().expect("a full window has samples");
            return decision(
                Action::Rebalance,
                format!(
                    "one shard at {:.0}% memory, {:.0}% CPU for {} s while the cluster is at {}",
                    s.hottest_memory * 100.0,
                    s.hottest_cpu * 100.0,
                    limits.scale_out_window.as_secs(),
                    usage(limits, s, shards)
                ),
                at_limit,
            );
        }
    }
    if shards > limits.min_shards
        && let Some(window) = full_window(samples, shards, limits.scale_in_window, now_ms)
        && window
            .iter()
            .all(|s| limits.need(s, SCALE_IN_HEADROOM) < shards)
    {
        let s = window.last().expect("a full window has samples");
        return decision(
            Action::ScaleIn(1),
            format!(
                "{} for {} s: {} shards are enough",
                usage(limits, s, shards),
                limits.scale_in_window.as_secs(),
                limits.clamp(shards - 1)
            ),
            at_limit,
        );
    }
    let reason = if at_limit.storage {
        "at the data storage maximum: nodes evict, keys with a TTL first".into()
    } else if at_limit.compute {
        "at the compute maximum: nodes keep serving".into()
    } else {
        "within the targets".into()
    };
    decision(Action::Hold, reason, at_limit)
}

/// One primary's counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    pub at_ms: u64,
    pub usage: NodeUsage,
}

/// The cluster's sample at `at_ms` from this pass's readings of its
/// primaries (by pod) and the previous pass's (for the rates of CPU and
/// commands). A primary without a previous reading, or whose counters went
/// back (it restarted), adds its memory but no rates yet.
pub fn sample(
    limits: &Limits,
    shards: usize,
    at_ms: u64,
    prev: &BTreeMap<String, Reading>,
    now: &BTreeMap<String, Reading>,
) -> Sample {
    let mut s = Sample {
        at_ms,
        shards,
        ..Sample::default()
    };
    for (pod, r) in now {
        let u = &r.usage;
        s.memory += u.used_memory;
        let capacity = if u.maxmemory > 0 {
            u.maxmemory
        } else {
            limits.shard_bytes
        };
        s.hottest_memory = s.hottest_memory.max(u.used_memory as f64 / capacity as f64);
        let Some(p) = prev.get(pod) else { continue };
        let elapsed_ms = r.at_ms.saturating_sub(p.at_ms);
        if elapsed_ms == 0 || u.cpu_seconds < p.usage.cpu_seconds || u.commands < p.usage.commands {
            continue;
        }
        let millicores = ((u.cpu_seconds - p.usage.cpu_seconds) * 1e6 / elapsed_ms as f64) as u64;
        s.millicores += millicores;
        s.ops += (u.commands - p.usage.commands) * 1000 / elapsed_ms;
        let allowance = if u.cpu_limit_millicores > 0 {
            u.cpu_limit_millicores
        } else {
            limits.shard_millicores
        };
        s.hottest_cpu = s.hottest_cpu.max(millicores as f64 / allowance as f64);
    }
    s
}

/// The shard count in force: the one the autoscaler chose last, else (a
/// new cluster, or one that was Provisioned) the shards that own slots,
/// within the limits.
pub fn chosen(limits: &Limits, recorded: Option<i32>, owning: usize) -> usize {
    match recorded {
        Some(n) if n > 0 => limits.clamp(n as usize),
        _ => limits.clamp(owning),
    }
}

/// How often a Serverless cluster is sampled (at most): each reconcile
/// pass samples it.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Drops the samples no window needs any more (keeping the one that
/// anchors the longer window).
pub fn trim(samples: &mut std::collections::VecDeque<Sample>, limits: &Limits, now_ms: u64) {
    let keep_ms = limits
        .scale_in_window
        .max(limits.scale_out_window)
        .as_millis() as u64;
    let start = now_ms.saturating_sub(keep_ms);
    while samples.len() > 1 && samples[1].at_ms <= start {
        samples.pop_front();
    }
}

/// How long after a `Rebalance` another one may be decided: a plan whose
/// moves are all within a slot of balance moves nothing, and the shard
/// stays as hot.
pub const REBALANCE_COOLDOWN: Duration = Duration::from_secs(60);

/// How many decisions `status.serverless.decisions` keeps.
pub const DECISIONS_KEPT: usize = 10;

/// The status a decision leaves (`prev`: the last one), and the Events it
/// calls for: one per action, and one when a limit starts or stops holding
/// the cluster back.
pub fn record(
    prev: Option<&ServerlessStatus>,
    limits: &Limits,
    d: &Decision,
    now: Time,
) -> (ServerlessStatus, Vec<Note>) {
    let mut notes = Vec::new();
    let mut decisions = prev.map(|p| p.decisions.clone()).unwrap_or_default();
    let mut rebalance_requested = prev.is_some_and(|p| p.rebalance_requested);
    // A rebalance planned moments ago (its moves may have been none): the
    // same hot shard asks again only after the cooldown.
    let repeated = d.action == Action::Rebalance
        && decisions.last().is_some_and(|last| {
            last.action == Action::Rebalance.to_string()
                && now.0.duration_since(last.time.0)
                    < SignedDuration::try_from(REBALANCE_COOLDOWN).unwrap_or_default()
        });
    if d.action == Action::Rebalance && !repeated {
        rebalance_requested = true;
    }
    if d.action != Action::Hold && !repeated {
        decisions.push(ScaleDecision {
            time: now,
            action: d.action.to_string(),
            from: d.from as i32,
            to: d.to as i32,
            reason: d.reason.clone(),
        });
        let excess = decisions.len().saturating_sub(DECISIONS_KEPT);
        decisions.drain(..excess);
        let message = match d.action {
            Action::Rebalance => format!("moving slots off a hot shard: {}", d.reason),
            _ => format!("{} → {} shards: {}", d.from, d.to, d.reason),
        };
        notes.push(Note::normal(
            match d.action {
                Action::ScaleOut(_) => "ScaleOut",
                Action::ScaleIn(_) => "ScaleIn",
                _ => "Rebalance",
            },
            "Autoscale",
            message,
        ));
    }
    let usage = d.latest.map(|s| usage_of(limits, &s));
    let status = ServerlessStatus {
        shards: d.to as i32,
        min_shards: limits.min_shards as i32,
        max_shards: limits.max_shards as i32,
        usage,
        decisions,
        rebalance_requested,
        spare_shards: 0,
    };
    (status, notes)
}

fn usage_of(limits: &Limits, s: &Sample) -> Usage {
    let memory_limit = limits.shard_bytes * s.shards as u64;
    let cpu_limit = limits.shard_millicores * s.shards as u64;
    let percent = |used: u64, of: u64| (used * 100).checked_div(of).unwrap_or(0);
    Usage {
        memory: format!(
            "{}/{} ({}%)",
            mebibytes(s.memory),
            mebibytes(memory_limit),
            percent(s.memory, memory_limit)
        ),
        memory_bytes: s.memory,
        memory_limit_bytes: memory_limit,
        cpu: format!(
            "{}m/{}m ({}%)",
            s.millicores,
            cpu_limit,
            percent(s.millicores, cpu_limit)
        ),
        cpu_millicores: s.millicores,
        cpu_limit_millicores: cpu_limit,
        ops_per_second: s.ops,
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{}Mi", bytes.div_ceil(1 << 20))
}

/// "memory 78% of 3 shards, CPU 40%".
fn usage(limits: &Limits, s: &Sample, shards: usize) -> String {
    let memory = s.memory as f64 / (limits.shard_bytes as f64 * shards as f64);
    let cpu = s.millicores as f64 / (limits.shard_millicores as f64 * shards as f64);
    format!(
        "memory {:.0}% (target {:.0}%), CPU {:.0}% (target {:.0}%)",
        memory * 100.0,
        limits.target_memory * 100.0,
        cpu * 100.0,
        limits.target_cpu * 100.0
    )
}

#[cfg(test)]
mod tests;
