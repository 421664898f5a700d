//! A failover does not wait for an unrelated slot move: a 2-shard cluster
//! with a replica per shard grows to 3 under the checker; while the move
//! from one shard to the new one copies (its target's process frozen with
//! SIGSTOP, so that the copy outlasts the failover), the node process of the
//! *other* shard's primary is killed. Its replica must be promoted while
//! the move is still `Copying`, under an epoch below the move's; then the
//! target is thawed and the cluster ends balanced over 3 shards with every
//! key written before the change. Alone in its file: it freezes a process
//! and measures a failover.

use std::time::{Duration, Instant};

use kube::ResourceExt as _;
use nix::sys::signal::Signal;
use tidecache_e2e::{
    TestNamespace, checker, cluster_client, install_operator, kill_node, pod_addr, primary_pod,
    signal_node, timeout, wait_for,
};
use tidecache_operator::crd::{CacheCluster, MoveState};

fn manifest(shards: u32) -> String {
    format!(
        "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\nmetadata: {{name: busy}}\n\
         spec:\n  shards: {shards}\n  replicasPerShard: 1\n  \
         node:\n    resources: {{limits: {{memory: 256Mi}}}}\n"
    )
}

/// Thaws the frozen process however the test ends.
struct Thaw(String);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = signal_node(&self.0, Signal::SIGCONT);
    }
}

#[tokio::test]
async fn a_shard_outside_a_copying_move_fails_over_without_waiting_for_it() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("busy").await?;
    ns.apply_cluster(&manifest(2)).await?;
    ns.wait_ready("busy").await?;
    let api = ns.api::<CacheCluster>();
    let password = ns.secret_value("busy-auth", "password").await?;
    let pods = ns.pods("busy").await?;
    let ip_of = |pod: &str| {
        pods.iter()
            .find(|p| p.name_any() == pod)
            .and_then(pod_addr)
            .map(|a| a.0)
    };
    let seed = pod_addr(&pods[0]).unwrap();
    let load = checker::Running::after_preload(&seed, &password, 10_000).await?;

    ns.apply_cluster(&manifest(3)).await?;
    // The first move seen copying, its epoch, and the shard outside it.
    let until = Instant::now() + timeout();
    let (from, to, move_epoch, cc) = loop {
        let cc = api.get("busy").await?;
        let copying = cc
            .status
            .as_ref()
            .and_then(|s| s.rebalance.as_ref())
            .and_then(|r| r.moves.iter().find(|m| m.state == MoveState::Copying))
            .map(|m| (m.from.clone(), m.to.clone(), m.epoch));
        if let Some((from, to, epoch)) = copying {
            break (from, to, epoch, cc);
        }
        anyhow::ensure!(Instant::now() < until, "no move was seen Copying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let other = ["busy-0", "busy-1"]
        .into_iter()
        .find(|s| *s != from)
        .unwrap()
        .to_owned();
    let victim = primary_pod(&cc, &other).expect("the other shard's primary");
    // The new shard's pods were not listed before the change.
    let target_primary = primary_pod(&cc, &to).expect("the target's primary");
    let target_ip = ns
        .pods("busy")
        .await?
        .iter()
        .find(|p| p.name_any() == target_primary)
        .and_then(pod_addr)
        .expect("the target's address")
        .0;
    signal_node(&target_ip, Signal::SIGSTOP)?;
    let _thaw = Thaw(target_ip.clone());
    kill_node(&ip_of(&victim).expect("the victim's address"))?;
    let killed = Instant::now();
    println!(
        "{from} → {to} copying under epoch {move_epoch}; froze {target_primary}, killed {victim} of {other}"
    );

    // The promotion, seen in a status whose move still copies.
    let (promoted, epoch) = wait_for("the other shard's failover", timeout(), || async {
        let cc = api.get("busy").await?;
        let s = cc.status.clone().unwrap_or_default();
        let still_copying = s.rebalance.as_ref().is_some_and(|r| {
            r.moves
                .iter()
                .any(|m| m.from == from && m.state == MoveState::Copying)
        });
        let primary = primary_pod(&cc, &other).filter(|p| *p != victim);
        match primary {
            Some(p) => Ok(Some((p, s.epoch, still_copying))),
            None => Ok(None),
        }
    })
    .await
    .and_then(|(p, epoch, still_copying)| {
        anyhow::ensure!(
            still_copying,
            "{other} failed over only after the move stopped copying"
        );
        Ok((p, epoch))
    })?;
    let failover_took = killed.elapsed();
    println!(
        "{other}: {promoted} promoted {:.1} s after the kill, epoch {epoch}, the move still copying under {move_epoch}",
        failover_took.as_secs_f64()
    );
    assert!(
        epoch < move_epoch,
        "the failover's document goes below the move"
    );

    signal_node(&target_ip, Signal::SIGCONT)?;
    // Balanced over 3 shards, nothing moving.
    wait_for("balanced over 3 shards", timeout() * 2, || async {
        let s = api.get("busy").await?.status.unwrap_or_default();
        let done = s.phase.as_deref() == Some("Ready")
            && s.rebalance.is_none()
            && s.shards.len() == 3
            && s.shards.iter().all(|sh| !sh.slots.is_empty());
        Ok(done.then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = load.stop().await?;
    let pods = ns.pods("busy").await?;
    let seed = pods.iter().find_map(pod_addr).unwrap();
    let mut conn = cluster_client(&seed, &password).await?;
    seen.verify_after_a_kill(&mut conn, 10_000).await?;
    ns.delete().await;
    Ok(())
}
