//! Scenario 2 of the live-cluster issue: the primary's process of a
//! one-shard, one-replica cluster is killed under load. The operator
//! promotes the replica; writes are served again within 10 s; the old
//! primary comes back as a replica of the new one. Two checkers run: one
//! writes without `WAIT` (some of its last acknowledged writes may be lost,
//! and the test reports how many), one counts a write acknowledged only
//! once `WAIT 1` confirmed it (none of those may be lost).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube::ResourceExt as _;
use redis::AsyncCommands as _;
use tidecache_e2e::{
    TestNamespace, cluster_client, install_operator, kill_node, pod_addr, timeout, wait_for,
};
use tidecache_operator::crd::CacheCluster;

const MANIFEST: &str = "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\nmetadata: {name: ha}\n\
    spec:\n  shards: 1\n  replicasPerShard: 1\n  node:\n    resources: {limits: {memory: 256Mi}}\n";

/// What a checker saw.
#[derive(Default, Debug)]
struct Checked {
    /// Each acknowledged write, and when.
    acked: Vec<(u64, Instant)>,
    /// Each failed attempt (a refused or timed-out connection, a `WAIT`
    /// that found no replica), and when: the checker retries them.
    errors: Vec<(Instant, String)>,
    /// The longest time between two acknowledged writes.
    longest_gap: Duration,
}

impl Checked {
    fn ack(&mut self, i: u64, last: &mut Instant) {
        let now = Instant::now();
        self.acked.push((i, now));
        self.longest_gap = self.longest_gap.max(now - *last);
        *last = now;
    }

    fn error(&mut self, what: impl Into<String>) {
        self.errors.push((Instant::now(), what.into()));
    }

    /// The errors outside the outage: before the kill, or after the first
    /// write acknowledged once the kill was felt (the first error since; a
    /// reply already on its way may still arrive after the kill). A client
    /// may fail while the primary is gone, and only then.
    fn errors_outside_outage(&self, killed: Instant) -> Vec<&str> {
        let felt = self
            .errors
            .iter()
            .map(|&(at, _)| at)
            .find(|&at| at >= killed);
        let back = felt.and_then(|felt| self.acked.iter().map(|&(_, at)| at).find(|&at| at > felt));
        self.errors
            .iter()
            .filter(|&&(at, _)| at < killed || back.is_some_and(|b| at > b))
            .map(|(_, e)| e.as_str())
            .collect()
    }
}

/// Writes `nowait:{i}` through a cluster-aware client, no `WAIT`.
async fn without_wait(seed: (String, u16), password: String, stop: Arc<AtomicBool>) -> Checked {
    let mut seen = Checked::default();
    let mut conn = None;
    let mut last = Instant::now();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = cluster_client(&seed, &password).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            seen.error("no connection to the cluster");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        i += 1;
        match tokio::time::timeout(
            Duration::from_secs(2),
            c.set::<_, _, ()>(format!("nowait:{i}"), i),
        )
        .await
        {
            Ok(Ok(())) => seen.ack(i, &mut last),
            Ok(Err(e)) => {
                seen.error(format!("SET nowait:{i}: {e}"));
                conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {
                seen.error(format!("SET nowait:{i}: no reply in 2 s"));
                conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    seen
}

/// Writes `wait:{i}` to whichever node `CLUSTER SLOTS` names primary and
/// counts it acknowledged only when `WAIT 1` says a replica has it.
async fn with_wait(nodes: Vec<(String, u16)>, password: String, stop: Arc<AtomicBool>) -> Checked {
    let mut seen = Checked::default();
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut last = Instant::now();
    let mut i = 0;
    let connect = |addr: &(String, u16)| {
        let url = format!("redis://:{password}@{}:{}/", addr.0, addr.1);
        async move {
            let client = redis::Client::open(url).ok()?;
            let cfg = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(3)));
            client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .ok()
        }
    };
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            // Ask each node who the primary is.
            for n in &nodes {
                let Some(mut c) = connect(n).await else {
                    continue;
                };
                let slots: redis::RedisResult<redis::Value> =
                    redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await;
                if let Some(primary) = slots.ok().and_then(|v| first_primary(&v)) {
                    conn = connect(&primary).await;
                    break;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            seen.error("no connection to the primary");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        i += 1;
        let written: redis::RedisResult<()> = c.set(format!("wait:{i}"), i).await;
        let confirmed: redis::RedisResult<i64> = match written {
            Ok(()) => redis::cmd("WAIT").arg(1).arg(1000).query_async(c).await,
            Err(e) => Err(e),
        };
        match confirmed {
            Ok(n) if n >= 1 => seen.ack(i, &mut last),
            Ok(n) => {
                seen.error(format!("WAIT 1 after SET wait:{i}: {n} replicas"));
                conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                seen.error(format!("SET wait:{i} or its WAIT: {e}"));
                conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    seen
}

/// The primary of the first range of a `CLUSTER SLOTS` reply:
/// `[[start, end, [host, port, id], replicas...], ...]`.
fn first_primary(slots: &redis::Value) -> Option<(String, u16)> {
    let redis::Value::Array(ranges) = slots else {
        return None;
    };
    let redis::Value::Array(range) = ranges.first()? else {
        return None;
    };
    let redis::Value::Array(node) = range.get(2)? else {
        return None;
    };
    let host = match node.first()? {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        _ => return None,
    };
    let port = match node.get(1)? {
        redis::Value::Int(p) => u16::try_from(*p).ok()?,
        _ => return None,
    };
    Some((host, port))
}

async fn primary_of(ns: &TestNamespace) -> anyhow::Result<(String, u64)> {
    let cc = ns.api::<CacheCluster>().get("ha").await?;
    let status = cc.status.unwrap_or_default();
    let pod = status
        .shards
        .first()
        .and_then(|s| s.primary.as_ref())
        .map(|p| p.pod.clone())
        .unwrap_or_default();
    Ok((pod, status.epoch))
}

/// Waits until the node at `addr` is a replica whose link is up.
async fn following(addr: &(String, u16), password: &str, what: &str) -> anyhow::Result<()> {
    wait_for(what, timeout(), || async {
        let info = replication(addr, password).await.unwrap_or_default();
        Ok((info.contains("role:slave") && info.contains("master_link_status:up")).then_some(()))
    })
    .await
}

async fn replication(addr: &(String, u16), password: &str) -> Option<String> {
    let url = format!("redis://:{password}@{}:{}/", addr.0, addr.1);
    let mut c = redis::Client::open(url)
        .ok()?
        .get_multiplexed_async_connection()
        .await
        .ok()?;
    redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut c)
        .await
        .ok()
}

#[tokio::test]
async fn killing_a_primary_promotes_its_replica_within_seconds() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("failover").await?;
    ns.apply_cluster(MANIFEST).await?;
    ns.wait_ready("ha").await?;
    let password = ns.secret_value("ha-auth", "password").await?;
    let pods = ns.pods("ha").await?;
    let addrs: Vec<(String, u16)> = pods.iter().filter_map(pod_addr).collect();
    let addr_of = |name: &str| {
        pods.iter()
            .find(|p| p.name_any() == name)
            .and_then(pod_addr)
    };
    let (old_primary, epoch) = primary_of(&ns).await?;
    let replica = pods
        .iter()
        .map(|p| p.name_any())
        .find(|p| *p != old_primary)
        .expect("a replica pod");
    let replica_addr = addr_of(&replica).unwrap();
    following(&replica_addr, &password, "the replica's first sync").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let plain = tokio::spawn(without_wait(
        addrs[0].clone(),
        password.clone(),
        stop.clone(),
    ));
    let waited = tokio::spawn(with_wait(addrs.clone(), password.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (old_ip, _) = addr_of(&old_primary).expect("the primary's address");
    let killed = Instant::now();
    let pid = kill_node(&old_ip)?;
    println!("killed {old_primary} (pid {pid}) at epoch {epoch}");
    let promoted = wait_for("the replica's promotion", timeout(), || async {
        let (primary, epoch) = primary_of(&ns).await?;
        Ok((primary == replica).then_some(epoch))
    })
    .await?;
    println!(
        "{replica} promoted at epoch {promoted}, {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    // Load goes on after the failover, then the old primary must be a
    // replica of the new one, synced.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let old_addr = addr_of(&old_primary).unwrap();
    following(
        &old_addr,
        &password,
        "the old primary to follow the new one",
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let plain = plain.await?;
    let waited = waited.await?;

    let mut conn = cluster_client(&replica_addr, &password).await?;
    let mut lost_plain = 0;
    for (i, _) in &plain.acked {
        let got: Option<u64> = conn.get(format!("nowait:{i}")).await?;
        lost_plain += usize::from(got != Some(*i));
    }
    let mut lost_waited = Vec::new();
    for (i, _) in &waited.acked {
        let got: Option<u64> = conn.get(format!("wait:{i}")).await?;
        if got != Some(*i) {
            lost_waited.push(*i);
        }
    }
    println!(
        "without WAIT: {} acknowledged, {} lost, {} errors, longest gap {:.1} s",
        plain.acked.len(),
        lost_plain,
        plain.errors.len(),
        plain.longest_gap.as_secs_f64()
    );
    println!(
        "with WAIT 1: {} acknowledged, {} lost, {} errors, longest gap {:.1} s",
        waited.acked.len(),
        lost_waited.len(),
        waited.errors.len(),
        waited.longest_gap.as_secs_f64()
    );
    assert!(
        lost_waited.is_empty(),
        "writes confirmed by WAIT 1 lost: {lost_waited:?}"
    );
    assert!(
        plain.acked.len() > 100 && waited.acked.len() > 100,
        "the checkers ran"
    );
    for (what, c) in [("without WAIT", &plain), ("with WAIT", &waited)] {
        assert!(
            c.longest_gap < Duration::from_secs(10),
            "{what}: writes stopped for {:?}",
            c.longest_gap
        );
        let outside = c.errors_outside_outage(killed);
        assert!(
            outside.is_empty(),
            "{what}: client errors while the cluster had a primary: {:?}",
            &outside[..outside.len().min(10)]
        );
        if let Some((_, first)) = c.errors.first() {
            println!("{what}: first error: {first}");
        }
    }
    ns.delete().await;
    Ok(())
}

/// The address the partition test reaches the isolated primary from: the
/// only one its firewall lets through (the pod range is all local here).
const INSIDE: &str = "10.244.255.250";

/// Drops every packet to or from `ip` except those with [`INSIDE`], in the
/// harness's network namespace; the rules go when this is dropped.
struct Partition;

impl Partition {
    fn isolate(ip: &str) -> anyhow::Result<Self> {
        let rules = format!(
            "table inet tidecache_partition {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n    \
             ip saddr {ip} ip daddr != {INSIDE} drop\n    ip daddr {ip} ip saddr != {INSIDE} drop\n  }}\n}}\n"
        );
        let path = std::env::temp_dir().join("tidecache-partition.nft");
        std::fs::write(&path, rules)?;
        tidecache_e2e::run("nft", &["-f", path.to_str().unwrap()])?;
        Ok(Partition)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = tidecache_e2e::run("nft", &["delete", "table", "inet", "tidecache_partition"]);
    }
}

/// One `SET` over a connection bound to [`INSIDE`]: the reply's first line.
async fn set_from_inside(
    conn: &mut Option<tokio::net::TcpStream>,
    to: &(String, u16),
    password: &str,
    key: &str,
) -> Option<String> {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    if conn.is_none() {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(format!("{INSIDE}:0").parse().ok()?).ok()?;
        let addr = format!("{}:{}", to.0, to.1).parse().ok()?;
        let mut s = tokio::time::timeout(Duration::from_secs(1), socket.connect(addr))
            .await
            .ok()?
            .ok()?;
        let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
        s.write_all(auth.as_bytes()).await.ok()?;
        *conn = Some(s);
        // The AUTH reply is read below with the SET's.
        let line = read_line(conn.as_mut().unwrap()).await?;
        if line != "+OK" {
            *conn = None;
            return None;
        }
    }
    let s = conn.as_mut().unwrap();
    let set = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\n1\r\n", key.len());
    if s.write_all(set.as_bytes()).await.is_err() {
        *conn = None;
        return None;
    }
    let reply = read_line(s).await;
    if reply.is_none() {
        *conn = None;
    }
    return reply;

    async fn read_line(s: &mut tokio::net::TcpStream) -> Option<String> {
        let mut r = tokio::io::BufReader::new(s);
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(1), r.read_line(&mut line))
            .await
            .ok()?
            .ok()?;
        Some(line.trim_end().to_owned())
    }
}

/// Scenario 5: the primary is cut off from everyone (operator, replica,
/// clients) except one client inside its partition. Its writes stop when
/// its lease runs out, before the promoted replica's first write; when the
/// partition heals it becomes a replica of the new primary.
#[tokio::test]
async fn a_partitioned_primary_stops_writing_before_its_replacement_starts() -> anyhow::Result<()> {
    install_operator().await?;
    let ns = TestNamespace::new("partition").await?;
    ns.apply_cluster(&MANIFEST.replace("name: ha", "name: part"))
        .await?;
    ns.wait_ready("part").await?;
    let password = ns.secret_value("part-auth", "password").await?;
    let pods = ns.pods("part").await?;
    let addr_of = |name: &str| {
        pods.iter()
            .find(|p| p.name_any() == name)
            .and_then(pod_addr)
    };
    let cc = ns.api::<CacheCluster>().get("part").await?;
    let shard = cc.status.unwrap_or_default().shards.remove(0);
    let old = shard.primary.unwrap().pod;
    let new = shard.replicas[0].pod.clone();
    let (old_addr, new_addr) = (addr_of(&old).unwrap(), addr_of(&new).unwrap());
    following(&new_addr, &password, "the replica's first sync").await?;

    // Inside the partition: a client writing to the old primary.
    let stop = Arc::new(AtomicBool::new(false));
    let inside = {
        let (stop, to, password) = (stop.clone(), old_addr.clone(), password.clone());
        tokio::spawn(async move {
            let (mut conn, mut acked, mut last_ok, mut refused) = (None, Vec::new(), None, 0);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("inside:{i}");
                match set_from_inside(&mut conn, &to, &password, &key).await {
                    Some(r) if r == "+OK" => {
                        acked.push(key);
                        last_ok = Some(Instant::now());
                    }
                    Some(r) if r.starts_with("-CLUSTERDOWN") => refused += 1,
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (acked, last_ok, refused)
        })
    };
    // Outside: a client writing to the replica until it takes writes.
    let outside = {
        let (stop, to, password) = (stop.clone(), new_addr.clone(), password.clone());
        tokio::spawn(async move {
            let url = format!("redis://:{password}@{}:{}/", to.0, to.1);
            let mut c = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let sent = Instant::now();
                if c.set::<_, _, ()>(format!("outside:{i}"), i).await.is_ok() {
                    return Some(sent);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            None
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cut = Instant::now();
    let partition = Partition::isolate(&old_addr.0)?;
    println!("partitioned {old} ({})", old_addr.0);
    wait_for("the replica's promotion", timeout(), || async {
        let cc = ns.api::<CacheCluster>().get("part").await?;
        let p = cc.status.unwrap_or_default().shards[0]
            .primary
            .clone()
            .map(|p| p.pod);
        Ok((p.as_deref() == Some(new.as_str())).then_some(()))
    })
    .await?;
    println!(
        "{new} promoted {:.1} s after the cut",
        cut.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let (inside_acked, inside_last, refused) = inside.await?;
    let outside_first = outside.await?.expect("the new primary took writes");
    drop(partition);
    let inside_last = inside_last.expect("the old primary took writes before the cut");
    let old_stopped = inside_last.saturating_duration_since(cut);
    let new_started = outside_first.saturating_duration_since(cut);
    println!(
        "old primary: last write acknowledged {:.2} s after the cut, {refused} refused after; \
         new primary: first write sent {:.2} s after the cut",
        old_stopped.as_secs_f64(),
        new_started.as_secs_f64()
    );
    assert!(
        refused > 0,
        "the partitioned primary refused writes once its lease ran out"
    );
    assert!(
        inside_last < outside_first,
        "two primaries took writes at once: the old one until {old_stopped:?}, the new one from {new_started:?}"
    );

    // Healed: the old primary follows the new one and drops what it took
    // alone (acknowledged without WAIT, inside the partition).
    following(
        &old_addr,
        &password,
        "the old primary to follow the new one",
    )
    .await?;
    let mut conn = cluster_client(&new_addr, &password).await?;
    let mut gone = 0;
    for key in &inside_acked {
        let got: Option<String> = conn.get(key).await?;
        gone += usize::from(got.is_none());
    }
    println!(
        "inside the partition: {} writes acknowledged, {gone} of them not on the new primary",
        inside_acked.len()
    );
    ns.delete().await;
    Ok(())
}
