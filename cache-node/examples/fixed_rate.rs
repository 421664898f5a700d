//! An open-loop load generator: sends SET and GET at a fixed rate and
//! reports latency percentiles, for `bench/compare.sh` (Debian packages no
//! memtier_benchmark, and redis-benchmark only runs closed loops).
//!
//! ```text
//! fixed_rate <host:port> <connections> <requests/s per connection> <seconds>
//! ```
//!
//! Each connection is an OS thread with a blocking socket that sends on a
//! fixed schedule and measures every reply from the moment its request was
//! *due*, not from when it was sent: a server that stalls cannot hide the
//! requests that queued up behind the stall (the "coordinated omission" a
//! closed loop suffers from). Threads and `std::thread::sleep` rather than
//! an async runtime: tokio's timer ticks in milliseconds, which at 2000
//! requests/s per connection would be the largest latency measured.
//! Requests alternate SET and GET over 100,000 keys with 16-byte values.
//! Prints one line: `set_p99_ms=… get_p99_ms=… set_p50_ms=… get_p50_ms=…
//! max_ms=… sent=…`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: fixed_rate <host:port> <connections> <requests/s per connection> <seconds>");
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: String = arg(&args, 1);
    let (conns, rate, secs): (usize, u64, u64) = (arg(&args, 2), arg(&args, 3), arg(&args, 4));
    if conns == 0 || rate == 0 || secs == 0 {
        usage();
    }
    let start = Instant::now() + Duration::from_millis(100);
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || run(&addr, c, rate, secs, start))
        })
        .collect();
    let (mut set, mut get) = (Vec::new(), Vec::new());
    for t in threads {
        let (s, g) = t.join().expect("connection thread");
        set.extend(s);
        get.extend(g);
    }
    set.sort_unstable();
    get.sort_unstable();
    let ms = |v: &[Duration], q: f64| {
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    let max = set
        .last()
        .max(get.last())
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "set_p99_ms={:.3} get_p99_ms={:.3} set_p50_ms={:.3} get_p50_ms={:.3} max_ms={max:.3} sent={}",
        ms(&set, 0.99),
        ms(&get, 0.99),
        ms(&set, 0.5),
        ms(&get, 0.5),
        set.len() + get.len()
    );
}

/// One connection's schedule; the latencies of its SETs and its GETs.
fn run(
    addr: &str,
    conn: usize,
    rate: u64,
    secs: u64,
    start: Instant,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    // Connections start staggered over one interval, not in lockstep.
    let offset = interval * conn as u32 / 16;
    let total = rate * secs;
    let (mut set, mut get) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 4096];
    for i in 0..total {
        let due = start + offset + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let key = format!("key:{:012}", (i as usize * 7919 + conn * 104_729) % 100_000);
        let request = if i % 2 == 0 {
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$16\r\nvvvvvvvvvvvvvvvv\r\n",
                key.len()
            )
        } else {
            format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len())
        };
        stream.write_all(request.as_bytes()).expect("send");
        read_reply(&mut stream, &mut buf);
        let latency = due.elapsed();
        if i % 2 == 0 { &mut set } else { &mut get }.push(latency);
    }
    (set, get)
}

/// Reads one reply: `+OK`, a bulk string or a null (all this sends gets).
fn read_reply(stream: &mut TcpStream, buf: &mut [u8]) {
    let mut have = 0;
    loop {
        let n = stream.read(&mut buf[have..]).expect("read");
        assert!(n > 0, "server closed the connection");
        have += n;
        let data = &buf[..have];
        let complete = match data.first() {
            Some(b'+') | Some(b'-') | Some(b':') => data.ends_with(b"\r\n"),
            Some(b'$') if data.starts_with(b"$-1\r\n") => true,
            Some(b'$') => {
                // $<len>\r\n<bytes>\r\n
                let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
                    continue;
                };
                let len: usize = std::str::from_utf8(&data[1..eol])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .expect("a bulk length");
                have >= eol + 2 + len + 2
            }
            _ => panic!("unexpected reply {:?}", String::from_utf8_lossy(data)),
        };
        if complete {
            return;
        }
    }
}
