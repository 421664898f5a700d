//! The load checker: writes unique keys and increments 16 counters
//! through a cluster-aware client, records every acknowledged write and
//! every error, and verifies them all at the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::AsyncCommands as _;

/// What the checker saw: every acknowledged write, and every error.
#[derive(Default)]
pub struct Checked {
    pub writes: Vec<(String, u64)>,
    pub counters: BTreeMap<String, u64>,
    pub errors: Vec<String>,
}

/// Writes unique keys (`chk:{i}`) and increments 16 counters (`ctr:{n}`),
/// as fast as one connection goes, until `stop`.
pub async fn run(conn: redis::cluster_async::ClusterConnection, stop: Arc<AtomicBool>) -> Checked {
    run_every(conn, stop, std::time::Duration::ZERO).await
}

/// [`run`], pausing `pause` after each write and increment: a writer whose
/// own load stays small (where the test measures the cluster's CPU).
pub async fn run_every(
    mut conn: redis::cluster_async::ClusterConnection,
    stop: Arc<AtomicBool>,
    pause: std::time::Duration,
) -> Checked {
    let mut seen = Checked::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        i += 1;
        let key = format!("chk:{i}");
        match conn.set::<_, _, ()>(&key, i).await {
            Ok(()) => seen.writes.push((key, i)),
            Err(e) => seen.errors.push(format!("SET {key}: {e}")),
        }
        let counter = format!("ctr:{}", i % 16);
        match conn.incr::<_, _, u64>(&counter, 1).await {
            Ok(_) => *seen.counters.entry(counter).or_default() += 1,
            Err(e) => seen.errors.push(format!("INCR {counter}: {e}")),
        }
    }
    seen
}

/// A checker writing in the background ([`run`]).
pub struct Running {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Checked>,
}

impl Running {
    /// Preloads `n` keys ([`preload`]) through a client seeded at `seed`,
    /// gives the replicas 2 s to take them (replication is asynchronous),
    /// then starts the checker.
    pub async fn after_preload(
        seed: &(String, u16),
        password: &str,
        n: u64,
    ) -> anyhow::Result<Running> {
        let mut conn = crate::cluster_client(seed, password).await?;
        preload(&mut conn, n).await?;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(
            crate::cluster_client(seed, password).await?,
            stop.clone(),
        ));
        Ok(Running { stop, task })
    }

    /// Stops the checker; what it saw.
    pub async fn stop(self) -> anyhow::Result<Checked> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Writes `pre:{i}` = i for i below `n`.
pub async fn preload(
    conn: &mut redis::cluster_async::ClusterConnection,
    n: u64,
) -> anyhow::Result<()> {
    for i in 0..n {
        let _: () = conn.set(format!("pre:{i}"), i).await?;
    }
    Ok(())
}

/// The keys [`preload`] wrote that are missing or different.
pub async fn missing_preloaded(
    conn: &mut redis::cluster_async::ClusterConnection,
    n: u64,
) -> anyhow::Result<Vec<String>> {
    let mut lost = Vec::new();
    for i in 0..n {
        let got: Option<u64> = conn.get(format!("pre:{i}")).await?;
        if got != Some(i) {
            lost.push(format!("pre:{i}"));
        }
    }
    Ok(lost)
}

impl Checked {
    /// Reads every acknowledged write back; the ones missing or different.
    pub async fn lost(
        &self,
        conn: &mut redis::cluster_async::ClusterConnection,
    ) -> anyhow::Result<Vec<String>> {
        let mut lost = Vec::new();
        for (key, v) in &self.writes {
            let got: Option<u64> = conn.get(key).await?;
            if got != Some(*v) {
                lost.push(key.clone());
            }
        }
        for (key, n) in &self.counters {
            let got: Option<u64> = conn.get(key).await?;
            if got != Some(*n) {
                lost.push(format!("{key}: {got:?} != {n}"));
            }
        }
        Ok(lost)
    }

    /// After a primary was killed: every one of the `preloaded` keys must
    /// be there, read through `conn`; writes the killed primary alone
    /// acknowledged (without `WAIT`) may be lost, as in any failover, and
    /// are reported, not asserted.
    pub async fn verify_after_a_kill(
        &self,
        conn: &mut redis::cluster_async::ClusterConnection,
        preloaded: u64,
    ) -> anyhow::Result<()> {
        let missing = missing_preloaded(conn, preloaded).await?;
        let lost = self.lost(conn).await?;
        println!(
            "checker: {} acknowledged writes, {} lost (acknowledged without WAIT by the killed primary), {} errors",
            self.writes.len(),
            lost.len(),
            self.errors.len()
        );
        anyhow::ensure!(
            missing.is_empty(),
            "keys written before the change lost: {:?}",
            &missing[..missing.len().min(10)]
        );
        anyhow::ensure!(self.writes.len() > 100, "the checker ran");
        Ok(())
    }

    /// Prints the tally and fails on any error or lost write.
    pub fn assert_clean(&self, lost: &[String]) {
        println!(
            "checker: {} acknowledged writes, {} counter increments, {} errors, {} lost",
            self.writes.len(),
            self.counters.values().sum::<u64>(),
            self.errors.len(),
            lost.len()
        );
        assert!(
            self.errors.is_empty(),
            "client errors: {:?}",
            &self.errors[..self.errors.len().min(10)]
        );
        assert!(
            lost.is_empty(),
            "lost acknowledged writes: {:?}",
            &lost[..lost.len().min(10)]
        );
        assert!(
            self.writes.len() > 100,
            "the checker ran: {}",
            self.writes.len()
        );
    }
}
