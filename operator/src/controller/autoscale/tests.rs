//! The decision against simulated traces (step, ramp, spike, sawtooth,
//! flat noisy load, hot slots) and the properties of the module
//! documentation over generated ones.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;

use super::*;

const GIB: u64 = 1 << 30;

fn limits(min: usize, max: usize) -> Limits {
    Limits {
        min_shards: min,
        max_shards: max,
        shard_bytes: GIB,
        shard_millicores: 1000,
        target_memory: 0.7,
        target_cpu: 0.7,
        scale_out_window: Duration::from_secs(5),
        scale_in_window: Duration::from_secs(60),
    }
}

/// A cluster whose load follows `load(t)` = (memory bytes, millicores) at
/// one sample a second, evaluated after each sample; a scale-out or
/// scale-in takes `settle` seconds (busy meanwhile), then the shape
/// changes. Load is spread evenly unless `hot` gives the share of the
/// hottest shard. Returns each decision that was not Hold, with its time.
struct Sim {
    limits: Limits,
    shards: usize,
    settle: u64,
    hot: f64,
}

impl Sim {
    fn new(limits: Limits, shards: usize) -> Self {
        Sim {
            limits,
            shards,
            settle: 10,
            hot: 0.0,
        }
    }

    fn run(&mut self, seconds: u64, load: impl Fn(u64) -> (u64, u64)) -> Vec<(u64, Decision)> {
        let mut samples: Vec<Sample> = Vec::new();
        let mut actions = Vec::new();
        let mut busy_until: Option<(u64, usize)> = None;
        for t in 0..seconds {
            if let Some((until, to)) = busy_until
                && t >= until
            {
                self.shards = to;
                busy_until = None;
            }
            let (memory, millicores) = load(t);
            let n = self.shards as f64;
            let even_mem = memory as f64 / (n * self.limits.shard_bytes as f64);
            let even_cpu = millicores as f64 / (n * self.limits.shard_millicores as f64);
            let hottest = |even: f64, total: f64| {
                if self.hot > 0.0 {
                    self.hot * total * n
                } else {
                    even
                }
                .max(even)
            };
            samples.push(Sample {
                at_ms: t * 1000,
                shards: self.shards,
                memory,
                millicores,
                ops: millicores * 100,
                hottest_memory: hottest(even_mem, even_mem),
                hottest_cpu: hottest(even_cpu, even_cpu),
            });
            let d = decide(
                &self.limits,
                self.shards,
                busy_until.is_some(),
                &samples,
                t * 1000,
            );
            match d.action {
                Action::Hold => {}
                Action::Rebalance => {
                    actions.push((t, d));
                    busy_until = Some((t + self.settle, self.shards));
                }
                _ => {
                    busy_until = Some((t + self.settle, d.to));
                    actions.push((t, d));
                }
            }
        }
        actions
    }
}

/// Memory at `share` of the target of `shards` shards.
fn memory_at(l: &Limits, shards: usize, share: f64) -> u64 {
    (shards as f64 * l.shard_bytes as f64 * l.target_memory * share) as u64
}

#[test]
fn a_step_scales_out_one_window_after_it() {
    let l = limits(1, 10);
    let mut sim = Sim::new(l, 2);
    // From 50% of the target to 1.9× the target of two shards at t = 20.
    let actions = sim.run(60, |t| {
        let share = if t < 20 { 0.5 } else { 1.9 };
        (memory_at(&l, 2, share), 100)
    });
    let (t, d) = &actions[0];
    assert_eq!(*t, 25, "one 5 s window after the step");
    assert_eq!(d.action, Action::ScaleOut(2), "{}", d.reason);
    assert!(d.reason.starts_with("memory 133%"), "{}", d.reason);
    assert_eq!(actions.len(), 1, "then it holds: {actions:?}");
    assert_eq!(sim.shards, 4);
}

#[test]
fn a_spike_shorter_than_the_window_does_nothing() {
    let l = limits(1, 10);
    let mut sim = Sim::new(l, 2);
    let actions = sim.run(120, |t| {
        let share = if (30..33).contains(&t) { 3.0 } else { 0.6 };
        (
            memory_at(&l, 2, share),
            memory_at(&l, 2, share) / GIB * 1000,
        )
    });
    assert!(actions.is_empty(), "{actions:?}");
}

#[test]
fn a_ramp_scales_out_step_by_step_and_never_past_the_maximum() {
    let l = limits(1, 6);
    let mut sim = Sim::new(l, 1);
    // 0 → 10 GiB over 200 s: far beyond 6 shards' target.
    let actions = sim.run(300, |t| (t.min(200) * 10 * GIB / 200, 100));
    assert!(actions.len() >= 3, "{actions:?}");
    assert!(
        actions
            .iter()
            .all(|(_, d)| matches!(d.action, Action::ScaleOut(_)))
    );
    assert_eq!(sim.shards, 6);
    let last = decide(
        &l,
        6,
        false,
        &[Sample {
            at_ms: 0,
            shards: 6,
            memory: 10 * GIB,
            ..Sample::default()
        }],
        0,
    );
    assert!(last.at_limit.storage && last.action == Action::Hold);
    assert!(last.reason.contains("TTL first"), "{}", last.reason);
}

#[test]
fn cpu_alone_scales_out() {
    let l = limits(1, 8);
    let mut sim = Sim::new(l, 2);
    // Little memory, 3.5 cores of CPU: 5 shards at 70%.
    let actions = sim.run(40, |_| (GIB / 10, 3500));
    assert_eq!(
        actions[0].1.action,
        Action::ScaleOut(3),
        "{:?}",
        actions[0].1
    );
    assert!(
        actions[0].1.reason.contains("CPU 175%"),
        "{}",
        actions[0].1.reason
    );
}

#[test]
fn a_sawtooth_faster_than_the_scale_in_window_never_scales_in() {
    let l = limits(1, 10);
    let mut sim = Sim::new(l, 4);
    // Between 10% and 95% of four shards' target, period 40 s.
    let actions = sim.run(400, |t| {
        let phase = (t % 40) as f64 / 40.0;
        (memory_at(&l, 4, 0.1 + 0.85 * phase), 100)
    });
    assert!(actions.is_empty(), "{actions:?}");
}

#[test]
fn when_the_load_goes_it_scales_in_one_step_per_window() {
    let l = limits(1, 10);
    let mut sim = Sim::new(l, 5);
    let actions = sim.run(400, |_| (memory_at(&l, 1, 0.5), 100));
    let ins: Vec<u64> = actions.iter().map(|(t, _)| *t).collect();
    assert!(actions.iter().all(|(_, d)| d.action == Action::ScaleIn(1)));
    assert_eq!(sim.shards, 1);
    assert_eq!(ins.len(), 4);
    // The first after a full window; each next one a window after the
    // previous change settled (10 s).
    assert_eq!(ins[0], 60);
    for w in ins.windows(2) {
        assert!(w[1] - w[0] >= 60 + 10, "{ins:?}");
    }
}

#[test]
fn hot_slots_on_one_shard_call_for_a_rebalance_not_more_shards() {
    let l = limits(1, 10);
    let mut sim = Sim::new(l, 4);
    // The cluster at half its CPU target, one shard carrying 60% of it.
    sim.hot = 0.6;
    let actions = sim.run(30, |_| (GIB / 10, (4.0 * 1000.0 * 0.7 * 0.5) as u64));
    assert_eq!(actions[0].1.action, Action::Rebalance, "{actions:?}");
    assert!(actions[0].1.reason.starts_with("one shard at"));
}

#[test]
fn outside_the_limits_it_steps_towards_them_even_when_busy() {
    let l = limits(3, 5);
    assert_eq!(decide(&l, 1, true, &[], 0).action, Action::ScaleOut(2));
    assert_eq!(decide(&l, 8, true, &[], 0).action, Action::ScaleIn(1));
    assert_eq!(decide(&l, 4, true, &[], 0).action, Action::Hold);
    assert_eq!(decide(&l, 4, false, &[], 0).reason, "within the targets");
}

#[test]
fn samples_from_another_shape_do_not_count() {
    let l = limits(1, 10);
    let high = |at_ms, shards| Sample {
        at_ms,
        shards,
        memory: 10 * GIB,
        ..Sample::default()
    };
    // Five seconds of overload, but only the last two at 3 shards.
    let samples: Vec<Sample> = (0..=5)
        .map(|t| high(t * 1000, if t < 4 { 2 } else { 3 }))
        .collect();
    assert_eq!(decide(&l, 3, false, &samples, 5000).action, Action::Hold);
    assert!(matches!(
        decide(&l, 2, false, &samples[..4], 3000).action,
        Action::Hold
    ));
}

fn arb_limits() -> impl Strategy<Value = Limits> {
    (
        1usize..4,
        0usize..8,
        1u64..8,
        1u64..4,
        30u32..95,
        30u32..95,
        2u64..10,
        10u64..60,
    )
        .prop_map(|(min, span, gib, cores, tm, tc, out, inw)| Limits {
            min_shards: min,
            max_shards: min + span,
            shard_bytes: gib * GIB,
            shard_millicores: cores * 1000,
            target_memory: f64::from(tm) / 100.0,
            target_cpu: f64::from(tc) / 100.0,
            scale_out_window: Duration::from_secs(out),
            scale_in_window: Duration::from_secs(inw),
        })
}

/// A trace: per second, memory and CPU as shares (0..3) of one shard's
/// capacity times the shard count `scale`.
fn arb_trace() -> impl Strategy<Value = Vec<(f64, f64)>> {
    prop::collection::vec((0.0f64..3.0, 0.0f64..3.0), 1..120)
}

fn samples_of(l: &Limits, shards: usize, trace: &[(f64, f64)]) -> Vec<Sample> {
    trace
        .iter()
        .enumerate()
        .map(|(t, &(m, c))| Sample {
            at_ms: t as u64 * 1000,
            shards,
            memory: (m * shards as f64 * l.shard_bytes as f64) as u64,
            millicores: (c * shards as f64 * l.shard_millicores as f64) as u64,
            ops: 0,
            hottest_memory: m,
            hottest_cpu: c,
        })
        .collect()
}

proptest! {
    #[test]
    fn never_leads_outside_the_limits(l in arb_limits(), extra in 0usize..8, trace in arb_trace(), busy: bool) {
        let shards = (l.min_shards + extra).min(l.max_shards);
        let samples = samples_of(&l, shards, &trace);
        let now = samples.last().unwrap().at_ms;
        let d = decide(&l, shards, busy, &samples, now);
        prop_assert!(d.to >= l.min_shards && d.to <= l.max_shards, "{d:?}");
    }

    #[test]
    fn never_scales_in_below_what_the_data_needs(l in arb_limits(), extra in 0usize..8, trace in arb_trace()) {
        let shards = (l.min_shards + extra).min(l.max_shards);
        let samples = samples_of(&l, shards, &trace);
        let now = samples.last().unwrap().at_ms;
        let d = decide(&l, shards, false, &samples, now);
        if let Action::ScaleIn(n) = d.action {
            prop_assert_eq!(n, 1, "one step at a time");
            let window = full_window(&samples, shards, l.scale_in_window, now).unwrap();
            prop_assert!(window.first().unwrap().at_ms + l.scale_in_window.as_millis() as u64 <= now);
            for s in window {
                let capacity = (shards - 1) as f64 * l.shard_bytes as f64 * l.target_memory;
                prop_assert!((s.memory as f64) < capacity, "{s:?} {d:?}");
            }
        }
    }

    #[test]
    fn a_flat_noisy_load_inside_the_band_never_acts(
        l in arb_limits(), extra in 0usize..8, level in 0.0f64..1.0, noise in 0.0f64..0.05,
        jitter in prop::collection::vec(-1.0f64..1.0, 1..150),
    ) {
        let shards = (l.min_shards + extra).min(l.max_shards);
        // The band for this shape: above what one shard fewer would hold
        // at the scale-in headroom, below the target; `level` places the
        // load inside it, the noise keeps it there.
        let n = shards as f64;
        let low = if shards > l.min_shards { SCALE_IN_HEADROOM * (n - 1.0) / n + 0.01 } else { 0.0 } + noise;
        let high = 1.0 - noise;
        prop_assume!(low < high);
        let share = low + (high - low) * level;
        let trace: Vec<(f64, f64)> = jitter
            .iter()
            .map(|j| {
                let u = share + j * noise;
                (u * l.target_memory, u * l.target_cpu)
            })
            .collect();
        let samples = samples_of(&l, shards, &trace);
        for i in 0..samples.len() {
            let d = decide(&l, shards, false, &samples[..=i], samples[i].at_ms);
            prop_assert_eq!(d.action, Action::Hold, "{:?}", d);
        }
    }

    #[test]
    fn a_sustained_crossing_is_acted_on_one_window_after_it_began(
        l in arb_limits(), before in 0u64..30, over in 1.05f64..3.0,
    ) {
        prop_assume!(l.max_shards > l.min_shards);
        let shards = l.min_shards;
        let window = l.scale_out_window.as_secs();
        let trace: Vec<(f64, f64)> = (0..before + window + 5)
            .map(|t| if t < before { (0.1, 0.1) } else { (over * l.target_memory, 0.0) })
            .collect();
        let samples = samples_of(&l, shards, &trace);
        let mut acted = None;
        for (i, s) in samples.iter().enumerate() {
            let d = decide(&l, shards, false, &samples[..=i], s.at_ms);
            if d.action != Action::Hold {
                prop_assert!(matches!(d.action, Action::ScaleOut(_)), "{:?}", d);
                acted = Some(s.at_ms / 1000);
                break;
            }
        }
        // The window is full once its oldest sample is a window old: the
        // crossing's first sample (or, when the trace starts over, the
        // first sample) anchors it.
        prop_assert_eq!(acted, Some(before + window));
    }
}

fn reading(at_ms: u64, used_memory: u64, cpu_seconds: f64, commands: u64) -> Reading {
    Reading {
        at_ms,
        usage: NodeUsage {
            used_memory,
            maxmemory: GIB,
            commands,
            cpu_seconds,
            ..NodeUsage::default()
        },
    }
}

#[test]
fn a_sample_sums_memory_and_takes_rates_between_readings() {
    let l = limits(1, 10);
    let prev = BTreeMap::from([
        ("a".to_owned(), reading(1000, GIB / 4, 10.0, 1000)),
        ("b".to_owned(), reading(1000, GIB / 2, 20.0, 5000)),
    ]);
    let now = BTreeMap::from([
        ("a".to_owned(), reading(3000, GIB / 4, 10.5, 3000)),
        ("b".to_owned(), reading(3000, GIB / 2, 21.6, 9000)),
        // New: memory counts, rates wait for a second reading.
        ("c".to_owned(), reading(3000, GIB / 8, 99.0, 99)),
    ]);
    let s = sample(&l, 3, 3000, &prev, &now);
    assert_eq!(s.memory, GIB / 4 + GIB / 2 + GIB / 8);
    assert_eq!(s.millicores, 250 + 800);
    assert_eq!(s.ops, 1000 + 2000);
    assert_eq!(s.hottest_memory, 0.5);
    assert_eq!(s.hottest_cpu, 0.8);
    // A restarted node's counters go back: no rate from it.
    let restarted = BTreeMap::from([("a".to_owned(), reading(5000, 1, 0.1, 5))]);
    let s = sample(&l, 1, 5000, &now, &restarted);
    assert_eq!((s.millicores, s.ops), (0, 0));
}

#[test]
fn the_window_keeps_what_the_longer_window_needs() {
    let l = limits(1, 10);
    let mut samples: std::collections::VecDeque<Sample> = (0..100)
        .map(|t| Sample {
            at_ms: t * 1000,
            ..Sample::default()
        })
        .collect();
    trim(&mut samples, &l, 99_000);
    // 60 s scale-in window: the sample at 39 s anchors it.
    assert_eq!(samples.front().unwrap().at_ms, 39_000);
    assert_eq!(samples.len(), 61);
}

#[test]
fn the_chosen_count_starts_from_the_owning_shards_within_the_limits() {
    let l = limits(2, 6);
    assert_eq!(chosen(&l, None, 0), 2);
    assert_eq!(chosen(&l, None, 4), 4);
    assert_eq!(chosen(&l, None, 9), 6);
    assert_eq!(chosen(&l, Some(5), 2), 5);
    assert_eq!(chosen(&l, Some(9), 2), 6, "limits lowered");
    assert_eq!(chosen(&l, Some(0), 3), 3);
}

#[test]
fn decisions_are_recorded_with_their_reason_and_the_newest_ten_kept() {
    let l = limits(1, 10);
    let latest = Sample {
        at_ms: 0,
        shards: 2,
        memory: GIB,
        millicores: 700,
        ops: 5000,
        ..Sample::default()
    };
    let d = Decision {
        action: Action::ScaleOut(1),
        from: 2,
        to: 3,
        reason: "memory high".into(),
        latest: Some(latest),
        at_limit: AtLimit::default(),
    };
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let (s, notes) = record(None, &l, &d, now.clone());
    assert_eq!((s.shards, s.min_shards, s.max_shards), (3, 1, 10));
    assert_eq!(s.decisions.len(), 1);
    assert_eq!(s.decisions[0].action, "ScaleOut");
    assert_eq!(notes[0].reason, "ScaleOut");
    assert_eq!(notes[0].message, "2 → 3 shards: memory high");
    let u = s.usage.as_ref().unwrap();
    assert_eq!(u.memory, "1024Mi/2048Mi (50%)");
    assert_eq!(u.cpu, "700m/2000m (35%)");
    assert_eq!(u.ops_per_second, 5000);
    // Holds add nothing; the list stays bounded.
    let hold = Decision {
        action: Action::Hold,
        to: 3,
        ..d.clone()
    };
    let (same, notes) = record(Some(&s), &l, &hold, now.clone());
    assert!(notes.is_empty());
    assert_eq!(same.decisions, s.decisions);
    let mut many = s.clone();
    for _ in 0..20 {
        many = record(Some(&many), &l, &d, now.clone()).0;
    }
    assert_eq!(many.decisions.len(), DECISIONS_KEPT);
}

#[test]
fn a_rebalance_is_requested_once_per_cooldown() {
    let l = limits(1, 10);
    let d = Decision {
        action: Action::Rebalance,
        from: 3,
        to: 3,
        reason: "hot".into(),
        latest: None,
        at_limit: AtLimit::default(),
    };
    let at = |s: i64| Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + s).unwrap());
    let (s, notes) = record(None, &l, &d, at(0));
    assert!(s.rebalance_requested);
    assert_eq!(notes[0].reason, "Rebalance");
    // Planned: the reconcile clears the request.
    let planned = ServerlessStatus {
        rebalance_requested: false,
        ..s
    };
    let (again, notes) = record(Some(&planned), &l, &d, at(30));
    assert!(!again.rebalance_requested && notes.is_empty());
    assert_eq!(again.decisions.len(), 1);
    let (later, notes) = record(Some(&again), &l, &d, at(61));
    assert!(later.rebalance_requested && notes.len() == 1);
}
