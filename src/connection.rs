//! The only code that touches sockets: read what a client sent, frame it
//! into requests ([`crate::frame`]), run them, encode the replies
//! ([`crate::resp`]) into one buffer flushed once per batch.

use std::cell::Cell;
use std::sync::Arc;

use bytes::BytesMut;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::clients::ClientGuard;
use crate::command::{
    CommandSpec, Ctx, Outcome, Pending, Session, dispatch_to, lookup, prefetch_key,
};
use crate::frame::{Frame, Limits, ProtocolError, Reader};
use crate::reply::Reply;
use crate::resp::encode;
use crate::state::Shared;

/// Output flushed early when a batch's replies grow past this.
const FLUSH_AT: usize = 64 * 1024;
/// Most requests decoded ahead of running them (see [`prefetch_key`]).
const BATCH: usize = 64;

/// How a held reply ended.
enum HoldEnd {
    Ready(Reply),
    ClientGone,
    ShuttingDown,
}

/// Awaits a held reply while watching the socket: a client that closes its
/// end, or is killed, gives up its place (the pending future is dropped).
/// Bytes that arrive meanwhile are kept for later, up to the query buffer
/// limit. A client waiting here is not idle.
async fn hold<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    pending: Pending,
    conn: &mut Connection<R, W>,
) -> HoldEnd {
    tokio::pin!(pending);
    let meta = conn.session.client.clone();
    loop {
        tokio::select! {
            reply = &mut pending => return HoldEnd::Ready(reply),
            read = conn.rd.read_buf(&mut conn.inbuf), if conn.inbuf.len() <= conn.limits.max_query_buffer_bytes => {
                match read {
                    Ok(0) | Err(_) => return HoldEnd::ClientGone,
                    Ok(_) => conn.account_input(),
                }
            }
            _ = meta.killed() => return HoldEnd::ClientGone,
            _ = conn.shutdown.changed() => return HoldEnd::ShuttingDown,
        }
    }
}

/// How long a TLS client has to finish its handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one client until it leaves, sends a broken frame, or the server
/// shuts down; over TLS if `tls` is given (the handshake first).
pub async fn serve(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    guard: ClientGuard,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    if shared.config.tcp_keepalive_secs > 0 {
        let idle = std::time::Duration::from_secs(shared.config.tcp_keepalive_secs);
        let keepalive = socket2::TcpKeepalive::new().with_time(idle);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    }
    guard.meta.last_active_ns.store(
        shared.engine.clock.now(),
        std::sync::atomic::Ordering::Relaxed,
    );
    match tls {
        None => {
            let (rd, wr) = stream.into_split();
            run(rd, wr, shared, guard, shutdown).await;
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(tls)) => {
                    let (rd, wr) = tokio::io::split(tls);
                    run(rd, wr, shared, guard, shutdown).await;
                }
                Ok(Err(e)) => tracing::debug!(client = guard.meta.id, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(client = guard.meta.id, "TLS handshake timed out"),
            }
        }
    }
}

/// Runs a connection over its two halves.
async fn run<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    rd: R,
    wr: W,
    shared: Arc<Shared>,
    guard: ClientGuard,
    shutdown: watch::Receiver<bool>,
) {
    let limits = Limits::new(
        shared.config.max_arg_bytes,
        shared.config.max_query_buffer_bytes,
    );
    let session = Session::new(guard.meta.clone(), shared.users.default_user());
    let mut connection = Connection {
        shared,
        session,
        limits,
        rd,
        wr,
        shutdown,
        inbuf: BytesMut::with_capacity(16 * 1024),
        out: BytesMut::with_capacity(16 * 1024),
        batch: Vec::new(),
        reader: Reader::default(),
    };
    connection.run().await;
}

/// Whether the connection goes on after a step.
enum Flow {
    Continue,
    Stop,
}

/// One client's connection: what it sent and not yet run, the replies not
/// yet written, and its session.
struct Connection<R, W> {
    shared: Arc<Shared>,
    session: Session,
    limits: Limits,
    rd: R,
    wr: W,
    shutdown: watch::Receiver<bool>,
    inbuf: BytesMut,
    out: BytesMut,
    /// Requests decoded and not yet run, each with its row of the command
    /// table (looked up once). Grows to the largest batch this client sends
    /// (at most BATCH).
    batch: Vec<(Frame, Option<&'static CommandSpec>)>,
    /// Where a request that has not all arrived was left.
    reader: Reader,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Connection<R, W> {
    /// Reads, runs and answers batches until the connection ends.
    async fn run(&mut self) {
        loop {
            // Everything already read is run before the next read.
            loop {
                let failure = self.read_batch();
                if self.batch.is_empty() && failure.is_none() {
                    break;
                }
                if let Flow::Stop = self.run_batch().await {
                    return;
                }
                if let Some(e) = failure {
                    self.shared
                        .metrics
                        .protocol_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(client = self.session.client.id, "closing: {e}");
                    return self.last_reply(Reply::Error(e.to_string())).await;
                }
            }
            if let Flow::Stop = self.flush().await {
                return;
            }
            if self.session.client.is_killed() {
                return;
            }
            if self.inbuf.len() > self.limits.max_query_buffer_bytes {
                let err = "ERR Protocol error: query buffer limit exceeded";
                return self.last_reply(Reply::Error(err.into())).await;
            }
            let meta = self.session.client.clone();
            let timeout_ns = self
                .shared
                .config
                .timeout_secs
                .saturating_mul(1_000_000_000);
            let idle_deadline = meta
                .last_active_ns
                .load(std::sync::atomic::Ordering::Relaxed)
                .saturating_add(timeout_ns);
            let clock = self.shared.engine.clock.clone();
            tokio::select! {
                read = self.rd.read_buf(&mut self.inbuf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        meta.last_active_ns.store(clock.now(), std::sync::atomic::Ordering::Relaxed);
                        self.account_input();
                    }
                },
                // Built only when polled: no timer unless a timeout is set.
                _ = async { clock.sleep_until(idle_deadline).await }, if timeout_ns > 0 => {
                    tracing::debug!(client = meta.id, "closing: idle past timeout");
                    return;
                }
                _ = meta.killed() => return,
                _ = self.shutdown.changed() => return,
            }
        }
    }

    /// Records how much unanswered input this client holds; past the
    /// budget all clients share, the one holding the most is closed.
    fn account_input(&self) {
        let budget = self.shared.config.maxmemory_clients;
        let clients = &self.shared.clients;
        // A transaction's queue counts as the input it came from.
        let held = self.inbuf.len() + self.session.multi_bytes;
        if let Some(evicted) = clients.set_qbuf(&self.session.client, held, budget) {
            tracing::warn!(
                client = evicted.id,
                addr = %evicted.addr,
                held = evicted.qbuf(),
                all_clients = clients.qbuf_total(),
                "closing the client holding the most input: all clients' unanswered input passed maxmemory_clients ({budget} bytes)"
            );
        }
    }

    /// Decodes up to BATCH requests from what was read, so that the keys
    /// they check can be fetched into the cache together rather than one
    /// miss at a time. Answers the protocol error that ended the batch, if
    /// any (the requests before it are run first).
    ///
    /// Before `AUTH` the requests are Redis's small ones (see
    /// [`Limits::before_auth`]) and are taken one at a time, so that the
    /// request after an `AUTH` is read with the limits it earned.
    fn read_batch(&mut self) -> Option<ProtocolError> {
        let (limits, most) = if self.session.authenticated {
            (self.limits, BATCH)
        } else {
            (self.limits.before_auth(), 1)
        };
        while self.batch.len() < most {
            match self.reader.next(&mut self.inbuf, &limits) {
                Ok(Some(request)) => {
                    let spec = request.arg(0).and_then(lookup);
                    self.batch.push((request, spec));
                }
                Ok(None) => break,
                Err(e) => return Some(e),
            }
        }
        self.account_input();
        None
    }

    /// Runs the batch in order, encoding each reply; a held reply (WAIT, a
    /// leaky bucket's turn) is awaited while the socket is watched.
    async fn run_batch(&mut self) -> Flow {
        let keys: SmallVec<[&[u8]; BATCH]> = self
            .batch
            .iter()
            .filter_map(|(r, spec)| prefetch_key(*spec, |i| r.arg(i)))
            .collect();
        self.shared.engine.store.prefetch(&keys);
        drop(keys);
        // Requests read together are decided at one instant (the clock is
        // read once), until the batch waits for anything.
        let batch_time = Cell::new(None);
        // Taken out while it runs (the steps below borrow the connection),
        // put back empty with its room kept for the next batch.
        let mut batch = std::mem::take(&mut self.batch);
        let mut flow = Flow::Continue;
        for (request, spec) in batch.drain(..) {
            if request.is_empty() {
                continue;
            }
            let argv = request.args();
            let outcome = dispatch_to(
                &mut Ctx {
                    shared: &self.shared,
                    session: &mut self.session,
                    blocking: true,
                    batch_time: &batch_time,
                },
                spec,
                &argv,
            );
            let reply = match outcome {
                Outcome::Reply(reply) => reply,
                Outcome::Close(reply) => {
                    self.last_reply(reply).await;
                    flow = Flow::Stop;
                    break;
                }
                Outcome::Shutdown => {
                    let _ = self.wr.write_all(&self.out).await;
                    self.shared.begin_shutdown();
                    flow = Flow::Stop;
                    break;
                }
                Outcome::Later(pending) => {
                    if let Flow::Stop = self.write_out().await {
                        flow = Flow::Stop;
                        break;
                    }
                    let held = hold(pending, self).await;
                    batch_time.set(None);
                    match held {
                        HoldEnd::Ready(reply) => {
                            // Answered now: the idle time counts from here.
                            let now = self.shared.engine.clock.now();
                            let meta = &self.session.client;
                            meta.last_active_ns
                                .store(now, std::sync::atomic::Ordering::Relaxed);
                            reply
                        }
                        HoldEnd::ClientGone => {
                            flow = Flow::Stop;
                            break;
                        }
                        HoldEnd::ShuttingDown => {
                            let err = Reply::Error("ERR server is shutting down".into());
                            self.last_reply(err).await;
                            flow = Flow::Stop;
                            break;
                        }
                    }
                }
            };
            encode(reply, self.session.protocol, &mut self.out);
            if self.out.len() >= FLUSH_AT {
                if let Flow::Stop = self.write_out().await {
                    flow = Flow::Stop;
                    break;
                }
                batch_time.set(None);
            }
        }
        self.batch = batch;
        flow
    }

    /// Writes the replies of everything run so far. Lets the thread's other
    /// ready connections run first, so replies leave in a burst after all of
    /// them (as Redis writes its replies just before it sleeps): a client
    /// waiting on many connections is then woken once per round, not once
    /// per connection. On this machine that alone took pipelined throughput
    /// up by 40%.
    async fn flush(&mut self) -> Flow {
        if self.out.is_empty() {
            return Flow::Continue;
        }
        tokio::task::yield_now().await;
        self.write_out().await
    }

    /// Writes the replies encoded so far.
    async fn write_out(&mut self) -> Flow {
        if self.wr.write_all(&self.out).await.is_err() {
            return Flow::Stop;
        }
        self.out.clear();
        Flow::Continue
    }

    /// Encodes a last reply and writes everything before the connection
    /// closes.
    async fn last_reply(&mut self, reply: Reply) {
        encode(reply, self.session.protocol, &mut self.out);
        let _ = self.wr.write_all(&self.out).await;
    }
}
