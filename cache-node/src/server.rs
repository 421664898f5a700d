//! The TCP server: the accept loops (plain and TLS), one task per
//! connection, shutdown. What the connections share is [`crate::state`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::client::{Client, Handle, ReplyMode, Unblock, Wait};
use crate::cmd;
use crate::frame::Reply;
use crate::parse::{self, Decoded};
use crate::state::Shared;

/// How long a client on the TLS port has to finish its handshake: a
/// connection that never starts one must not hold a task forever.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing TLS connection may take to send its last records and
/// `close_notify` to a client that is not reading.
const TLS_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Accepts clients until `shutdown` turns true, then waits (bounded) for
/// connections to finish their current batch. With `tls`, each connection
/// first completes a TLS handshake.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let shared = shared.clone();
                    let shutdown = shutdown.clone();
                    let tls = tls.clone();
                    tasks.spawn(async move { handle(stream, addr, tls, shared, shutdown).await });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let grace = Duration::from_secs(shared.config.shutdown_timeout);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(
            remaining = tasks.len(),
            "closing connections that did not finish in time"
        );
        tasks.abort_all();
    }
}

/// One accepted connection, plain or (with `tls`) after its handshake.
async fn handle(
    stream: TcpStream,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    // Socket options and addresses come from the TCP stream, before any
    // TLS wrapping hides it.
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(addr);
    let Some(acceptor) = tls else {
        let mut stream = stream;
        return serve_client(&mut stream, addr, laddr, &shared, &mut shutdown).await;
    };
    let Some(stream) = tls_handshake(&acceptor, stream, addr, &shared, &mut shutdown).await else {
        return;
    };
    let mut stream = crate::tls::Stream(stream);
    serve_client(&mut stream, addr, laddr, &shared, &mut shutdown).await;
    // Send what rustls still buffers and a `close_notify`, so the client
    // sees the last replies (QUIT's +OK) and a clean end, not a truncation.
    let _ = tokio::time::timeout(TLS_CLOSE_TIMEOUT, stream.shutdown()).await;
}

/// Runs the server side of a TLS handshake, bounded in time. A failure is
/// the client's problem (plain text on the TLS port, an untrusted
/// certificate): it is logged at debug and counted, and the connection
/// dropped.
async fn tls_handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let error = tokio::select! {
        done = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => match done {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        },
        _ = shutdown.changed() => return None,
    };
    shared
        .stats
        .tls_handshake_failures
        .fetch_add(1, Ordering::Relaxed);
    debug!(%addr, %error, "TLS handshake failed");
    None
}

/// The part of a connection's life that does not depend on its transport:
/// admission (max clients, protected mode), registration, the command loop
/// and clean-up.
async fn serve_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: SocketAddr,
    laddr: SocketAddr,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) {
    if let Some(reason) = refuse(shared, &addr) {
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(format!("-{reason}\r\n").as_bytes()).await;
        return;
    }
    let mut client = shared.new_client(addr, laddr);
    shared
        .clients
        .lock()
        .expect("clients lock")
        .insert(client.id, client.handle.clone());
    shared
        .stats
        .connected_clients
        .fetch_add(1, Ordering::Relaxed);
    debug!(id = client.id, %addr, "client connected");

    let result = run_client(stream, &mut client, shared, shutdown).await;
    if let Err(e) = result {
        debug!(id = client.id, error = %e, "client connection ended with an error");
    }
    forget_client(shared, &mut client);
    shared
        .stats
        .connected_clients
        .fetch_sub(1, Ordering::Relaxed);
}

/// Drops everything the rest of the node holds for a closed connection:
/// its registry entry, watches and subscriptions.
fn forget_client(shared: &Shared, client: &mut Client) {
    shared
        .clients
        .lock()
        .expect("clients lock")
        .remove(&client.id);
    if !client.watched.is_empty() {
        let keys = std::mem::take(&mut client.watched);
        shared.db.lock().expect("db lock").unwatch(client.id, &keys);
    }
    if client.subs.any() {
        let mut ps = shared.pubsub.lock().expect("pubsub lock");
        for (kind, names) in [
            (crate::pubsub::Kind::Channel, &client.subs.channels),
            (crate::pubsub::Kind::Pattern, &client.subs.patterns),
            (crate::pubsub::Kind::Shard, &client.subs.shard),
        ] {
            for name in names {
                ps.unsubscribe(kind, name, client.id);
            }
        }
    }
}

/// Why a new connection is turned away, if it is.
fn refuse(shared: &Shared, addr: &SocketAddr) -> Option<&'static str> {
    if shared.stats.connected_clients.load(Ordering::Relaxed) >= shared.config.maxclients {
        return Some("ERR max number of clients reached");
    }
    if shared.config.protected_mode
        && shared.config.requirepass.is_none()
        && !addr.ip().is_loopback()
    {
        return Some(
            "DENIED Running in protected mode because protected mode is enabled and no password is set for the default user. \
             In this mode connections are only accepted from the loopback interface. Set a password with --requirepass, \
             or, if you are sure, disable protected mode with --protected-mode no.",
        );
    }
    None
}

/// The read–execute–write loop: decode every complete request in the
/// buffer, run them in order, write all replies with one syscall. A command
/// that has to wait (a blocking pop, a pause) holds the rest of the
/// client's input back until it has run, as in Redis.
async fn run_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    client: &mut Client,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output: Vec<u8> = Vec::with_capacity(16 * 1024);
    let query_limit =
        usize::try_from(shared.config.client_query_buffer_limit).unwrap_or(usize::MAX);
    let handle = client.handle.clone();
    let mut retry: Option<Vec<Bytes>> = None;
    // The deadline of the blocked command being retried: a retry must not
    // restart its timeout.
    let mut blocked_until = None;
    // The idle timeout: when the client last sent anything (or last had a
    // reply to a command that waited, which Redis counts as activity too),
    // and one timer. Input only records the time; the timer is moved when it
    // fires before the client's deadline, or when the deadline comes before
    // it (a shorter timeout), so an active client costs one clock read per
    // read from the socket, not a timer update per batch.
    let mut last_input = tokio::time::Instant::now();
    let idle_timer = tokio::time::sleep_until(last_input);
    tokio::pin!(idle_timer);
    let mut idle_armed = false;
    loop {
        let end = run_batch(shared, client, retry.take(), &mut input, &mut output);
        for message in handle.take_outbox() {
            message.encode(client.proto, &mut output);
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
            if output.capacity() > 1 << 20 {
                // Do not keep a huge reply buffer around after one big reply.
                output = Vec::with_capacity(16 * 1024);
            }
        }
        match end {
            BatchEnd::Close(why) => {
                if let Some(e) = why {
                    info!(id = client.id, addr = %client.addr, error = %e, "closing client after a protocol error");
                }
                return Ok(());
            }
            BatchEnd::Wait { args, retried } => {
                let mut wait = client.wait.take().expect("a waiting command set its wait");
                if let Wait::Keys { deadline, .. } = &mut wait {
                    match blocked_until {
                        Some(saved) if retried => *deadline = saved,
                        _ => blocked_until = Some(*deadline),
                    }
                }
                match wait_for(
                    stream,
                    client,
                    shared,
                    &mut input,
                    query_limit,
                    wait,
                    shutdown,
                )
                .await?
                {
                    Resumed::Retry => retry = Some(args),
                    Resumed::Reply(reply) => {
                        blocked_until = None;
                        if reply_wanted(client) {
                            reply.encode(client.proto, &mut output);
                        }
                    }
                    Resumed::Close => return Ok(()),
                }
                last_input = tokio::time::Instant::now();
                continue;
            }
            BatchEnd::Drained => blocked_until = None,
        }
        if input.len() > query_limit {
            warn!(id = client.id, addr = %client.addr, bytes = input.len(), "closing client: query buffer limit exceeded");
            return Ok(());
        }
        match idle_deadline(shared, client, last_input) {
            None => idle_armed = false,
            Some(at) if !idle_armed || at < idle_timer.deadline() => {
                idle_timer.as_mut().reset(at);
                idle_armed = true;
            }
            Some(_) => {}
        }
        loop {
            tokio::select! {
                read = stream.read_buf(&mut input) => {
                    if read? == 0 {
                        return Ok(());
                    }
                    last_input = tokio::time::Instant::now();
                    break;
                }
                // Pub/sub messages to write, a kill, or a new idle timeout.
                _ = handle.wake.notified() => break,
                _ = idle_timer.as_mut(), if idle_armed => {
                    // Read again: the timeout may have been raised since the
                    // timer was set.
                    match idle_deadline(shared, client, last_input) {
                        Some(at) if at <= tokio::time::Instant::now() => {
                            debug!(id = client.id, addr = %client.addr, "closing idle client");
                            return Ok(());
                        }
                        Some(at) => idle_timer.as_mut().reset(at),
                        None => idle_armed = false,
                    }
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
        if handle.is_killed() {
            return Ok(());
        }
    }
}

/// When the connection closes for being idle (Redis's `timeout`): that
/// many seconds after its last input, unless the timeout is off or the
/// client subscribes to something (a subscriber only listens, in RESP2 and
/// RESP3 alike). Clients in MULTI are closed like any other. Blocked (and
/// paused) clients wait in [`wait_for`], where no idle timer runs, as Redis
/// never closes a blocked client for idleness.
fn idle_deadline(
    shared: &Shared,
    client: &Client,
    last_input: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let secs = shared.idle_timeout();
    if secs == 0 || client.subs.any() {
        return None;
    }
    // Past the end of time is never.
    last_input.checked_add(Duration::from_secs(secs))
}

/// A client marked as blocked in a command (`CLIENT UNBLOCK` finds it,
/// INFO counts it) for as long as this lives, however the wait ends.
struct Blocked<'a> {
    handle: &'a Handle,
    shared: &'a Shared,
}

impl<'a> Blocked<'a> {
    fn mark(handle: &'a Handle, shared: &'a Shared) -> Self {
        handle.set_blocked(true);
        shared.stats.blocked_clients.fetch_add(1, Ordering::Relaxed);
        Blocked { handle, shared }
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        // Also forgets an unblock that came as the wait ended: it is not
        // for the next one.
        self.handle.set_blocked(false);
        self.shared
            .stats
            .blocked_clients
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// How [`watch_client`] ended.
enum Watched<T> {
    /// What it waited for came.
    Done(T),
    /// The client went away, was killed or passed its query buffer limit,
    /// or the node is shutting down.
    Gone,
    /// `CLIENT UNBLOCK` (only for a client marked blocked).
    Unblocked(Unblock),
}

/// Waits for `until`, watching the client meanwhile.
async fn watch_client<S: AsyncRead + Unpin, T>(
    stream: &mut S,
    handle: &Handle,
    input: &mut BytesMut,
    query_limit: usize,
    shutdown: &mut watch::Receiver<bool>,
    until: impl std::future::Future<Output = T>,
) -> std::io::Result<Watched<T>> {
    tokio::pin!(until);
    loop {
        tokio::select! {
            done = until.as_mut() => return Ok(Watched::Done(done)),
            _ = handle.wake.notified() => {
                if handle.is_killed() {
                    return Ok(Watched::Gone);
                }
                // Asked only of a client marked blocked.
                if let Some(how) = handle.unblock_requested() {
                    return Ok(Watched::Unblocked(how));
                }
            }
            read = stream.read_buf(input) => {
                if read? == 0 || input.len() > query_limit {
                    return Ok(Watched::Gone);
                }
            }
            _ = shutdown.changed() => return Ok(Watched::Gone),
        }
    }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How a wait ended.
enum Resumed {
    /// Run the command again.
    Retry,
    /// The command is over with this reply (a timeout, `CLIENT UNBLOCK`).
    Reply(Reply),
    /// The client went away or was killed.
    Close,
}

/// Waits until the command that set `wait` may run again. Keeps reading
/// while it waits, to see the client close (a blocked pop must not take an
/// element for a client that is gone) and to bound its buffered input.
async fn wait_for<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    client: &mut Client,
    shared: &Shared,
    input: &mut BytesMut,
    query_limit: usize,
    wait: Wait,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<Resumed> {
    let handle = client.handle.clone();
    let (keys, deadline, on_timeout) = match wait {
        Wait::Keys {
            keys,
            deadline,
            on_timeout,
        } => (keys, deadline, Some(on_timeout)),
        Wait::Pause => (Vec::new(), shared.pause().and_then(|p| p.until), None),
        Wait::Frozen => return wait_unfrozen(stream, shared, input, query_limit, shutdown).await,
        Wait::Signal {
            signal,
            seen,
            deadline,
            blocking,
        } => {
            let raised = async move {
                tokio::select! {
                    _ = signal.changed_since(seen) => {}
                    _ = sleep_until(deadline) => {}
                }
            };
            // `WAIT` counts as blocked, and `CLIENT UNBLOCK` ends it.
            let marked = blocking.then(|| Blocked::mark(&handle, shared));
            let watched = watch_client(stream, &handle, input, query_limit, shutdown, raised).await;
            drop(marked);
            return Ok(match watched? {
                Watched::Done(()) => Resumed::Retry,
                Watched::Gone => Resumed::Close,
                Watched::Unblocked(Unblock::Timeout) => {
                    // As if its timeout had passed: run again, and it
                    // answers with the replicas it has.
                    if let Some(p) = &mut client.pending {
                        p.deadline = Some(tokio::time::Instant::now());
                    }
                    Resumed::Retry
                }
                Watched::Unblocked(Unblock::Error) => {
                    // The WAIT is over: its offset must not serve the next one.
                    client.pending = None;
                    Resumed::Reply(Reply::error(
                        "UNBLOCKED client unblocked via CLIENT UNBLOCK",
                    ))
                }
            });
        }
        Wait::Done(done) => {
            let done = watch_client(stream, &handle, input, query_limit, shutdown, done).await?;
            return Ok(match done {
                Watched::Done(Ok(reply)) => Resumed::Reply(reply),
                Watched::Done(Err(_)) => Resumed::Reply(Reply::error(
                    "ERR the node is stopping: the command did not finish",
                )),
                Watched::Gone | Watched::Unblocked(_) => Resumed::Close,
            });
        }
    };
    let blocking = on_timeout.is_some();
    let marked = blocking.then(|| Blocked::mark(&handle, shared));
    // An I/O error ends the loop like any other outcome: the keys' wakers
    // must be taken back below whatever happened.
    let resumed = loop {
        let sleep = sleep_until(deadline);
        tokio::select! {
            _ = handle.wake.notified() => {
                if handle.is_killed() {
                    break Ok(Resumed::Close);
                }
                if !blocking {
                    // A pub/sub message for a paused client: it waits too.
                    continue;
                }
                break Ok(match handle.unblock_requested() {
                    Some(Unblock::Timeout) => Resumed::Reply(on_timeout.clone().unwrap_or(Reply::Null)),
                    Some(Unblock::Error) => Resumed::Reply(Reply::error("UNBLOCKED client unblocked via CLIENT UNBLOCK")),
                    None => Resumed::Retry,
                });
            }
            _ = shared.unpaused.notified(), if !blocking => break Ok(Resumed::Retry),
            _ = sleep => break Ok(match &on_timeout {
                Some(reply) => Resumed::Reply(reply.clone()),
                None => Resumed::Retry,
            }),
            read = stream.read_buf(input) => match read {
                Ok(0) => break Ok(Resumed::Close),
                Ok(_) if input.len() > query_limit => break Ok(Resumed::Close),
                Ok(_) => {}
                Err(e) => break Err(e),
            },
            _ = shutdown.changed() => break Ok(Resumed::Close),
        }
    };
    if let Some(marked) = marked {
        drop(marked);
        shared
            .db
            .lock()
            .expect("db lock")
            .unblock(&keys, &handle.wake);
    }
    resumed
}

/// Waits while a migration hands the slot of a write over (milliseconds),
/// then runs the write again (it then meets its `MOVED`, or runs here if
/// the handoff rolled back). Bounded: a handoff whose outcome is not known
/// yet answers `TRYAGAIN` after [`FROZEN_WAIT`].
async fn wait_unfrozen<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    shared: &Shared,
    input: &mut BytesMut,
    query_limit: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<Resumed> {
    let unfrozen = shared.unfrozen.notified();
    tokio::pin!(unfrozen);
    // Registered before looking, so a thaw between the look and the wait
    // still wakes this client.
    unfrozen.as_mut().enable();
    if !shared.cluster.read().expect("cluster lock").any_frozen() {
        return Ok(Resumed::Retry);
    }
    let give_up = tokio::time::sleep(FROZEN_WAIT);
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            _ = unfrozen.as_mut() => return Ok(Resumed::Retry),
            _ = give_up.as_mut() => {
                return Ok(Resumed::Reply(Reply::error(crate::cluster::Redirect::Frozen.message())));
            }
            read = stream.read_buf(input) => {
                if read? == 0 || input.len() > query_limit {
                    return Ok(Resumed::Close);
                }
            }
            _ = shutdown.changed() => return Ok(Resumed::Close),
        }
    }
}

/// The longest a write waits for a handoff of its slot to end.
const FROZEN_WAIT: Duration = Duration::from_secs(2);

/// Whether the reply of the command that just ran goes out (`CLIENT REPLY`).
fn reply_wanted(client: &mut Client) -> bool {
    match client.reply {
        ReplyMode::On => true,
        ReplyMode::Off => false,
        ReplyMode::SkipNext => {
            client.reply = ReplyMode::Skip;
            false
        }
        ReplyMode::Skip => {
            client.reply = ReplyMode::On;
            false
        }
    }
}

/// How a batch of buffered requests ended.
enum BatchEnd {
    /// Every complete request ran; wait for more input.
    Drained,
    /// This request has to wait (see `client.wait`); later input stays
    /// buffered until it has run. `retried`: it was already waiting.
    Wait { args: Vec<Bytes>, retried: bool },
    /// Close the connection once the output is written (QUIT, or a protocol
    /// error, given here).
    Close(Option<parse::ProtocolError>),
}

/// Runs `first` (a command that waited) and then every complete request in
/// `input`, under one keyspace lock, so a pipeline runs without other
/// clients' commands in between and pays for the lock once, and appends the
/// replies to `output`.
fn run_batch(
    shared: &Shared,
    client: &mut Client,
    mut first: Option<Vec<Bytes>>,
    input: &mut BytesMut,
    output: &mut Vec<u8>,
) -> BatchEnd {
    let mut db = shared.db.lock().expect("db lock");
    db.freeze_time();
    client.tick = Instant::now();
    let mut last_cmd: &'static str = "";
    let end = loop {
        let retried = first.is_some();
        let args = match first.take() {
            Some(args) => args,
            None => match client.decoder.decode(input, &shared.limits) {
                Ok(Decoded::Request(args)) if args.is_empty() => continue,
                Ok(Decoded::Request(args)) => args,
                Ok(Decoded::Incomplete) => break BatchEnd::Drained,
                Err(e) => {
                    shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    Reply::error(e.to_string()).encode(client.proto, output);
                    break BatchEnd::Close(Some(e));
                }
            },
        };
        // A command that waited was counted when it first came.
        if !retried {
            shared
                .stats
                .commands_processed
                .fetch_add(1, Ordering::Relaxed);
        }
        let mut cx = cmd::Ctx {
            shared,
            client,
            db: &mut db,
        };
        let (reply, name) = cmd::dispatch(&mut cx, &args);
        last_cmd = name;
        if let Some(wait) = &client.wait {
            if let Wait::Keys { keys, .. } = wait {
                db.block_on(keys, &client.handle.wake);
            }
            break BatchEnd::Wait { args, retried };
        }
        if reply_wanted(client) {
            reply.encode(client.proto, output);
        }
        if client.closing {
            break BatchEnd::Close(None);
        }
    };
    db.thaw_time();
    drop(db);
    client.publish_view(last_cmd);
    end
}

/// Runs active expiry: reclaims keys whose deadline passed, a bounded batch
/// at a time so that clients never wait long for the keyspace lock.
pub async fn expire_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        loop {
            let n = shared.db.lock().expect("db lock").expire_due(200);
            if n < 200 {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}
