//! The slow log: the last commands that ran longer than a threshold, with
//! their arguments shortened the way Redis shortens them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use bytes::Bytes;

/// Redis keeps at most this many arguments of a logged command...
const MAX_ARGS: usize = 32;
/// ...and this many bytes of each.
const MAX_ARG_LEN: usize = 128;

#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    /// Unix time in seconds when the command ran.
    pub time: u64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub client_addr: String,
    pub client_name: Bytes,
}

pub struct SlowLog {
    /// `slowlog-log-slower-than` in µs; negative turns the log off, 0 logs
    /// every command.
    pub threshold_us: AtomicI64,
    /// `slowlog-max-len`.
    pub max_len: AtomicUsize,
    log: Mutex<(u64, VecDeque<Entry>)>,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            threshold_us: AtomicI64::new(10_000),
            max_len: AtomicUsize::new(128),
            log: Mutex::new((0, VecDeque::new())),
        }
    }
}

impl SlowLog {
    /// Whether a command that took `micros` belongs in the log.
    pub fn is_slow(&self, micros: u64) -> bool {
        let t = self.threshold_us.load(Ordering::Relaxed);
        t >= 0 && micros >= t as u64
    }

    pub fn record(&self, args: &[Bytes], micros: u64, client_addr: String, client_name: Bytes) {
        let max_len = self.max_len.load(Ordering::Relaxed);
        let mut kept: Vec<Bytes> = args
            .iter()
            .take(if args.len() > MAX_ARGS {
                MAX_ARGS - 1
            } else {
                MAX_ARGS
            })
            .map(|a| {
                if a.len() > MAX_ARG_LEN {
                    let mut s = a[..MAX_ARG_LEN].to_vec();
                    s.extend_from_slice(
                        format!("... ({} more bytes)", a.len() - MAX_ARG_LEN).as_bytes(),
                    );
                    Bytes::from(s)
                } else {
                    a.clone()
                }
            })
            .collect();
        if args.len() > MAX_ARGS {
            kept.push(Bytes::from(format!(
                "... ({} more arguments)",
                args.len() - MAX_ARGS + 1
            )));
        }
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut log = self.log.lock().expect("slowlog lock");
        let id = log.0;
        log.0 += 1;
        log.1.push_front(Entry {
            id,
            time,
            micros,
            args: kept,
            client_addr,
            client_name,
        });
        log.1.truncate(max_len);
    }

    /// The newest `count` entries (all when `None`), newest first.
    pub fn newest(&self, count: Option<usize>) -> Vec<Entry> {
        let log = self.log.lock().expect("slowlog lock");
        log.1
            .iter()
            .take(count.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.log.lock().expect("slowlog lock").1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.log.lock().expect("slowlog lock").1.clear();
    }

    /// Applies a new `slowlog-max-len` to what is kept.
    pub fn set_max_len(&self, n: usize) {
        self.max_len.store(n, Ordering::Relaxed);
        self.log.lock().expect("slowlog lock").1.truncate(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_commands_are_shortened_like_redis() {
        let log = SlowLog::default();
        let mut args: Vec<Bytes> = (0..40).map(|i| Bytes::from(format!("a{i}"))).collect();
        args[1] = Bytes::from(vec![b'x'; 200]);
        log.record(&args, 5, "127.0.0.1:1".into(), Bytes::new());
        let e = &log.newest(None)[0];
        assert_eq!(e.args.len(), 32);
        assert_eq!(&e.args[31][..], b"... (9 more arguments)");
        assert!(e.args[1].ends_with(b"... (72 more bytes)"));
        assert_eq!(e.args[1].len(), 128 + "... (72 more bytes)".len());
    }

    #[test]
    fn newest_first_bounded_and_resettable() {
        let log = SlowLog::default();
        log.set_max_len(2);
        for i in 0..3 {
            log.record(
                &[Bytes::from(format!("c{i}"))],
                1,
                String::new(),
                Bytes::new(),
            );
        }
        let ids: Vec<u64> = log.newest(None).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![2, 1]);
        assert_eq!(log.newest(Some(1)).len(), 1);
        log.reset();
        assert!(log.is_empty());
        assert!(log.is_slow(10_000) && !log.is_slow(9_999));
        log.threshold_us.store(-1, Ordering::Relaxed);
        assert!(!log.is_slow(u64::MAX));
    }
}
