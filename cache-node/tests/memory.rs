//! Memory measured by jemalloc, as the node binary measures it.
//!
//! This test binary makes jemalloc its global allocator, as `main.rs` does,
//! so that it can check two things against the allocator's own count: that
//! the keyspace's accounting (what the other tests, on the system allocator,
//! rely on) is close to what keys really take, and that a node told it runs
//! on jemalloc keeps the allocator's count within `maxmemory`.
//!
//! The allocator's statistics are process-wide, so everything runs in one
//! test, one step after the other.

mod common;

use bytes::Bytes;
use cache_node::clock::Clock;
use cache_node::db::{Db, Value};
use cache_node::memory;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn allocated() -> u64 {
    memory::allocator_stats()
        .expect("jemalloc statistics")
        .allocated
}

/// Real bytes over accounted bytes for `keys` keys like `shape` makes them.
fn ratio(keys: usize, shape: impl Fn(usize) -> (Bytes, Value, Option<u64>)) -> f64 {
    let mut db = Db::new(Clock::manual(1_000_000));
    // Build the arguments first, as requests would bring them.
    let items: Vec<_> = (0..keys).map(&shape).collect();
    let before = allocated();
    let accounted_before = db.used_bytes();
    // Clones share the requests' buffers, which stay alive as a
    // connection's would while the keyspace copies what it keeps.
    for (k, v, ttl) in &items {
        db.set(k.clone(), v.clone(), *ttl);
    }
    let real = allocated() - before;
    let accounted = db.used_bytes() - accounted_before;
    let r = real as f64 / accounted as f64;
    eprintln!("{keys} keys: real {real}, accounted {accounted}, ratio {r:.3}");
    drop((db, items));
    r
}

/// A key and value as slices of one request buffer, as the parser hands them over.
fn request(key: String, value_len: usize) -> (Bytes, Bytes) {
    let mut frame = key.clone().into_bytes();
    frame.extend(std::iter::repeat_n(b'v', value_len));
    let frame = Bytes::from(frame);
    (frame.slice(..key.len()), frame.slice(key.len()..))
}

fn accounting_is_close_to_the_allocator() {
    for (keys, value_len, ttl) in [
        // Sparse: most slots hold one key.
        (5_000, 100, false),
        (5_000, 100, true),
        // Dense: hundreds of keys per slot.
        (200_000, 20, false),
        (100_000, 200, true),
        (50_000, 1000, false),
    ] {
        let r = ratio(keys, |i| {
            let (k, v) = request(format!("key:{i:08}"), value_len);
            (k, Value::Str(v), ttl.then_some(5_000_000 + i as u64))
        });
        assert!(
            (0.9..1.12).contains(&r),
            "{keys} keys of {value_len} bytes, ttl {ttl}: real/accounted {r:.3}"
        );
    }
}

async fn used_memory_stays_within_maxmemory() {
    // Whatever the process holds already (runtime, tables of the keyspace)
    // counts, as in Redis: the limit leaves 8 MB above that for data.
    let n = common::node(&["--maxmemory-policy", "allkeys-lru"]).await;
    let limit = allocated() + 8 * 1024 * 1024;
    let mut c = common::Conn::to(&n).await;
    c.call(
        &["CONFIG", "SET", "maxmemory", &limit.to_string()],
        "+OK\r\n",
    )
    .await;
    // 40 MB of values through the connection, in pipelined batches.
    let value = "x".repeat(400);
    for batch in 0..1000 {
        let mut out = Vec::new();
        for i in 0..100 {
            out.extend(common::encode(&["SET", &format!("k{batch}:{i}"), &value]));
        }
        c.send_raw(&out).await;
        c.expect(&"+OK\r\n".repeat(100)).await;
    }
    c.send(&["INFO", "memory"]).await;
    let info = c.read_bulk().await;
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .parse()
            .unwrap()
    };
    let used = field("used_memory");
    eprintln!(
        "limit {limit}, used_memory {used}, allocated {}",
        allocated()
    );
    assert!(info.contains("mem_allocator:jemalloc-"), "{info}");
    assert_eq!(field("allocator_allocated"), used);
    assert!(field("allocator_resident") >= used);
    // Bounded by the limit, with the slack of a cached reading (a few ms
    // of writes) and of the buffers this test itself holds.
    assert!(
        used <= limit + limit / 20,
        "used_memory {used} over {limit}"
    );
    assert!(
        used > limit - 4 * 1024 * 1024,
        "used_memory {used}: memory was never full"
    );
    c.send(&["INFO", "stats"]).await;
    let stats = c.read_bulk().await;
    let evicted: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .unwrap()
        .parse()
        .unwrap();
    // 100k keys of some 500 bytes each do not fit in 8 MB.
    assert!(evicted > 70_000, "{evicted}");
    n.shutdown().await;
}

#[test]
fn memory_as_jemalloc_counts_it() {
    memory::use_jemalloc();
    // Outside any runtime: what a runtime's start frees and reallocates
    // shows up in the allocator's counts of the first measurement (seen as
    // a real/accounted ratio of 0.84 on the first shape, 0.96 on a repeat).
    accounting_is_close_to_the_allocator();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(used_memory_stays_within_maxmemory());
}
