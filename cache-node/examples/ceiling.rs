//! The ceiling: a server that answers redis-benchmark's SET and GET with
//! canned replies and does nothing else, so `bench/compare.sh` can show how
//! far *any* server could go on this machine under the same load generator.
//!
//! ```text
//! ceiling <port> epoll|uring
//! ```
//!
//! One thread, as Redis runs. It keeps no keys: every SET is `+OK`, every
//! GET is a 3-byte value (redis-benchmark's default `-d 3`), PING is
//! `+PONG`, anything else an error (redis-benchmark reads its CONFIG GET
//! error as "could not fetch server CONFIG" and goes on). What is left is
//! the cost of the transport and of finding where each request ends, which
//! every server pays: what this server reaches, no keyspace can beat.
//!
//! - `epoll`: level-triggered epoll, one `read` per readable connection and
//!   one `write` of all its replies, the system calls Redis makes.
//! - `uring`: io_uring, a receive always posted on every connection and each
//!   reply a send, all submitted and reaped with one `io_uring_enter` per
//!   turn of the loop, however many connections were served in it: the
//!   fewest system calls a server can make without busy polling.

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(mode)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: ceiling <port> epoll|uring");
        std::process::exit(2)
    };
    let listener = TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("a port")))?;
    listener.set_nonblocking(true)?;
    match mode.as_str() {
        "epoll" => epoll::serve(listener),
        "uring" => uring::serve(listener),
        _ => {
            eprintln!("mode is epoll or uring");
            std::process::exit(2)
        }
    }
}

/// Answers every complete request at the front of `input`, appending the
/// replies to `out`; returns how many bytes it consumed (a partial request
/// stays for the next read), or `None` for bytes that are not RESP arrays.
fn answer(input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let mut pos = 0;
    while let Some((len, verb)) = request(&input[pos..])? {
        out.extend_from_slice(match verb.to_ascii_uppercase() {
            b'S' => b"+OK\r\n".as_slice(),
            b'G' => b"$3\r\nxxx\r\n",
            b'P' => b"+PONG\r\n",
            _ => b"-ERR the ceiling server answers SET, GET and PING only\r\n",
        });
        pos += len;
    }
    Some(pos)
}

/// The length of the one request at the front of `buf` and the first byte of
/// its verb; `Some(None)` if the request is not complete yet.
fn request(buf: &[u8]) -> Option<Option<(usize, u8)>> {
    let Some((args, mut pos)) = header(buf, b'*')? else {
        return Some(None);
    };
    let mut verb = 0;
    for i in 0..args {
        let Some((len, at)) = header(&buf[pos..], b'$')? else {
            return Some(None);
        };
        let end = pos + at + len + 2;
        if end > buf.len() {
            return Some(None);
        }
        if i == 0 && len > 0 {
            verb = buf[pos + at];
        }
        pos = end;
    }
    Some(Some((pos, verb)))
}

/// Parses `<kind><decimal>\r\n`: the number and the bytes it took.
fn header(buf: &[u8], kind: u8) -> Option<Option<(usize, usize)>> {
    let Some(&first) = buf.first() else {
        return Some(None);
    };
    if first != kind {
        return None;
    }
    let Some(cr) = buf.iter().position(|&b| b == b'\r') else {
        return (buf.len() < 24).then_some(None);
    };
    if buf.len() < cr + 2 {
        return Some(None);
    }
    let n = std::str::from_utf8(&buf[1..cr]).ok()?.parse().ok()?;
    Some(Some((n, cr + 2)))
}

const READ_SIZE: usize = 16 * 1024;

mod epoll {
    use super::*;
    use rustix::event::epoll;
    use std::os::fd::{AsFd, OwnedFd};

    struct Conn {
        stream: std::net::TcpStream,
        input: Vec<u8>,
        out: Vec<u8>,
    }

    pub fn serve(listener: TcpListener) -> io::Result<()> {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let listen_key = watch(&ep, &listener)?;
        let mut conns: HashMap<u64, Conn> = HashMap::new();
        let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            events.clear();
            match epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            for ev in &events {
                let key = ev.data.u64();
                if key == listen_key {
                    while let Ok((stream, _)) = listener.accept() {
                        stream.set_nonblocking(true)?;
                        stream.set_nodelay(true)?;
                        let key = watch(&ep, &stream)?;
                        conns.insert(
                            key,
                            Conn {
                                stream,
                                input: Vec::new(),
                                out: Vec::new(),
                            },
                        );
                    }
                    continue;
                }
                let Some(conn) = conns.get_mut(&key) else {
                    continue;
                };
                if !serve_one(conn, &mut buf) {
                    // Closing the socket takes it out of the epoll set.
                    conns.remove(&key);
                }
            }
        }
    }

    /// Adds a socket to the epoll set for reading, keyed by its descriptor.
    fn watch<S: AsFd + AsRawFd>(ep: &OwnedFd, socket: &S) -> io::Result<u64> {
        let key = socket.as_raw_fd() as u64;
        epoll::add(
            ep,
            socket,
            epoll::EventData::new_u64(key),
            epoll::EventFlags::IN,
        )?;
        Ok(key)
    }

    /// One read, every complete request answered, one write; false when the
    /// connection is done.
    fn serve_one(conn: &mut Conn, buf: &mut [u8]) -> bool {
        use std::io::Read;
        let n = match conn.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        };
        conn.input.extend_from_slice(&buf[..n]);
        let Some(used) = answer(&conn.input, &mut conn.out) else {
            return false;
        };
        conn.input.drain(..used);
        let ok = write_all(&conn.stream, &conn.out);
        conn.out.clear();
        ok
    }

    /// Writes all of `out` to a non-blocking socket. Replies are small and the
    /// socket's buffer is empty between turns under redis-benchmark, so the
    /// first write takes it all; should one fall short, this waits for the
    /// socket with poll rather than keep an EPOLLOUT path the measurement
    /// never takes.
    fn write_all(mut stream: &std::net::TcpStream, mut out: &[u8]) -> bool {
        use rustix::event::{PollFd, PollFlags, poll};
        use std::io::Write;
        while !out.is_empty() {
            match stream.write(out) {
                Ok(n) => out = &out[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut fds = [PollFd::new(stream, PollFlags::OUT)];
                    if poll(&mut fds, None).is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    }
}

// io_uring's submissions hand the kernel raw pointers; each `unsafe` below
// says why the memory outlives the operation.
#[allow(unsafe_code)]
mod uring {
    use super::*;
    use io_uring::{IoUring, opcode, types};

    const ACCEPT: u64 = 0;
    const RECV: u64 = 1;
    const SEND: u64 = 2;

    struct Conn {
        stream: std::net::TcpStream,
        recv_buf: Vec<u8>,
        input: Vec<u8>,
        /// The bytes of the send in flight (kept alive until it completes).
        sending: Vec<u8>,
        sent: usize,
        /// Replies that arrived while a send was in flight.
        pending: Vec<u8>,
        /// The peer is gone; the connection is dropped once no send is in
        /// flight (the kernel reads `sending` until then).
        closing: bool,
        /// A receive into `recv_buf` is posted.
        receiving: bool,
    }

    /// Marks `id` closing and drops it once nothing of its is in flight: the
    /// kernel writes `recv_buf` and reads `sending` until their operations
    /// complete (a shutdown makes a posted receive complete).
    fn close(conns: &mut HashMap<u64, Conn>, id: u64) {
        if let Some(conn) = conns.get_mut(&id) {
            if !conn.closing {
                conn.closing = true;
                let _ = conn.stream.shutdown(std::net::Shutdown::Both);
            }
            if conn.sending.is_empty() && !conn.receiving {
                conns.remove(&id);
            }
        }
    }

    fn data(conn: u64, op: u64) -> u64 {
        conn << 2 | op
    }

    pub fn serve(listener: TcpListener) -> io::Result<()> {
        // One thread submits and reaps, so completions can wait for it
        // rather than interrupt it (DEFER_TASKRUN, SINGLE_ISSUER).
        let mut ring: IoUring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(1024)?;
        let mut conns: HashMap<u64, Conn> = HashMap::new();
        let mut next_id = 1u64;
        let lfd = types::Fd(listener.as_raw_fd());
        let mut queue: Vec<io_uring::squeue::Entry> = vec![
            opcode::Accept::new(lfd, std::ptr::null_mut(), std::ptr::null_mut())
                .build()
                .user_data(data(0, ACCEPT)),
        ];
        loop {
            {
                let mut sq = ring.submission();
                for e in queue.drain(..) {
                    // SAFETY: every entry points into a `Conn`'s buffer
                    // (`recv_buf`, or `sending` which is not touched while
                    // its send is in flight), and a `Conn` is dropped only
                    // when neither of its operations is in flight (`close`).
                    // The ring holds 1024 entries; a turn queues at most two
                    // per connection and redis-benchmark opens 50.
                    unsafe { sq.push(&e).expect("submission queue full") };
                }
            }
            match ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let done: Vec<(u64, i32)> = ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (ud, res) in done {
                let (id, op) = (ud >> 2, ud & 3);
                match op {
                    ACCEPT => {
                        if res >= 0 {
                            use std::os::fd::FromRawFd;
                            // SAFETY: a completed accept returns a new
                            // socket that nothing else owns.
                            let stream = unsafe { std::net::TcpStream::from_raw_fd(res) };
                            stream.set_nodelay(true)?;
                            let id = next_id;
                            next_id += 1;
                            let mut conn = Conn {
                                stream,
                                recv_buf: vec![0; READ_SIZE],
                                input: Vec::new(),
                                sending: Vec::new(),
                                sent: 0,
                                pending: Vec::new(),
                                closing: false,
                                receiving: false,
                            };
                            queue.push(recv(id, &mut conn));
                            conns.insert(id, conn);
                        }
                        queue.push(
                            opcode::Accept::new(lfd, std::ptr::null_mut(), std::ptr::null_mut())
                                .build()
                                .user_data(data(0, ACCEPT)),
                        );
                    }
                    RECV => {
                        let Some(conn) = conns.get_mut(&id) else {
                            continue;
                        };
                        conn.receiving = false;
                        if res <= 0 || conn.closing {
                            close(&mut conns, id);
                            continue;
                        }
                        conn.input.extend_from_slice(&conn.recv_buf[..res as usize]);
                        let Some(used) = answer(&conn.input, &mut conn.pending) else {
                            close(&mut conns, id);
                            continue;
                        };
                        conn.input.drain(..used);
                        if conn.sending.is_empty() && !conn.pending.is_empty() {
                            std::mem::swap(&mut conn.sending, &mut conn.pending);
                            conn.sent = 0;
                            queue.push(send(id, conn));
                        }
                        queue.push(recv(id, conn));
                    }
                    SEND => {
                        let Some(conn) = conns.get_mut(&id) else {
                            continue;
                        };
                        conn.sent += res.max(0) as usize;
                        if res < 0 || conn.closing {
                            conn.sending.clear();
                            close(&mut conns, id);
                            continue;
                        }
                        if conn.sent < conn.sending.len() {
                            queue.push(send(id, conn));
                            continue;
                        }
                        conn.sending.clear();
                        if !conn.pending.is_empty() {
                            std::mem::swap(&mut conn.sending, &mut conn.pending);
                            conn.sent = 0;
                            queue.push(send(id, conn));
                        }
                    }
                    _ => unreachable!("two bits of op"),
                }
            }
        }
    }

    fn recv(id: u64, conn: &mut Conn) -> io_uring::squeue::Entry {
        conn.receiving = true;
        let fd = types::Fd(conn.stream.as_raw_fd());
        opcode::Recv::new(fd, conn.recv_buf.as_mut_ptr(), conn.recv_buf.len() as u32)
            .build()
            .user_data(data(id, RECV))
    }

    fn send(id: u64, conn: &Conn) -> io_uring::squeue::Entry {
        let fd = types::Fd(conn.stream.as_raw_fd());
        let rest = &conn.sending[conn.sent..];
        opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32)
            .build()
            .user_data(data(id, SEND))
    }
}
