//! The accept loop: every connection is bounded in time and in number, so clients that
//! connect and never finish (or never read) cannot starve the page's real users or exhaust
//! the process's file descriptors.
//!
//! - **Header timeout** (hyper's): a request's head must arrive in full within it, timed
//!   from the moment the server starts waiting for it: at connect, and on a kept-alive
//!   connection from its previous response. Slow-loris clients trickling a byte at a time
//!   are closed by it too.
//! - **Idle timeout**: a connection on which no byte moves either way for this long is
//!   closed (a stalled body, a client that stops reading its response, an idle keep-alive).
//! - **Connection cap**: past it, new connections are closed as soon as they are accepted.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};

/// How long and how many connections the server keeps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Connections served at once by default (the file-descriptor limit may lower it).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Descriptors kept for everything but connections (the listener, files, the runtime).
const SPARE_FDS: usize = 64;

/// Raises this process's soft limit on open files to its hard limit (many systems start
/// programs at 1,024) and returns the soft limit now in force, if the system says.
pub fn raise_fd_limit() -> Option<usize> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads one `rlimit` through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    Some(usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX))
}

/// `limits.max_connections`, lowered to what the descriptor limit allows.
pub fn effective_cap(limits: &Limits, fd_limit: Option<usize>) -> usize {
    let by_fds = fd_limit.map_or(usize::MAX, |n| n.saturating_sub(SPARE_FDS).max(1));
    limits.max_connections.min(by_fds)
}

/// Connections the kernel may hold for `accept` (the kernel caps it at `somaxconn`): a burst
/// of clients is queued instead of having its handshakes dropped and retried a second later.
const BACKLOG: u32 = 4096;

/// A listener on `host:port` (every address the name resolves to is tried in turn).
///
/// # Errors
/// [`BindError::Host`] if the name does not resolve or is not an address of this machine,
/// [`BindError::Port`] if the port is in use or needs privileges.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, BindError> {
    let host_error = |source: io::Error| BindError::Host { host: host.to_string(), source };
    let addrs: Vec<_> = tokio::net::lookup_host((host, port)).await.map_err(host_error)?.collect();
    let mut last = host_error(io::Error::new(io::ErrorKind::AddrNotAvailable, "it resolves to no address"));
    for addr in addrs {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() };
        let socket = socket.map_err(host_error)?;
        socket.set_reuseaddr(true).map_err(host_error)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) if matches!(e.kind(), io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied) => {
                last = BindError::Port { port, source: e };
            }
            Err(e) => last = host_error(e),
        }
    }
    Err(last)
}

/// Why [`bind`] failed: the host (not resolvable, not an address of this machine) or the port
/// (in use, or privileged). Each message names the flag to change.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "cannot listen on --host {host}: {source}; use 127.0.0.1 (this machine only) or 0.0.0.0 (every network \
         interface), or an address this machine has"
    )]
    Host { host: String, source: io::Error },
    #[error("cannot listen on --port {port}: {source}; pass another --port (0 picks a free one)")]
    Port { port: u16, source: io::Error },
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    cap: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors (EMFILE) or a connection reset before accept: wait a
                // moment (timeouts free descriptors) instead of spinning or stopping.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Relaxed) >= cap {
            drop(stream); // at the cap: closed at once
            continue;
        }
        let _ = stream.set_nodelay(true);
        let guard = Open::count(&open);
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _guard = guard;
            let io = TokioIo::new(Idle::new(stream, limits.idle_timeout));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(io, service);
            // Errors are the client's (timeouts, resets, malformed requests): the connection
            // simply ends.
            let _ = conn.await;
        });
    }
}

/// One open connection in the count; dropping it (the connection's task ends) frees its place.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(open))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that fails with `TimedOut` once no byte has moved either way for `timeout`
/// while the server waits on it.
struct Idle<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S, timeout: Duration) -> Idle<S> {
        Idle { inner, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }

    fn progress(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    /// After the inner stream said `Pending`: an error if the deadline has passed (the
    /// deadline's timer also wakes the task then).
    fn expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending => self.expired(cx),
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progress();
                }
                Poll::Ready(r)
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Pending => self.expired(cx),
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.progress();
                }
                Poll::Ready(r)
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.expired(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        Poll::Ready(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_follows_the_descriptor_limit() {
        let limits = Limits::default();
        assert_eq!(effective_cap(&limits, None), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(effective_cap(&limits, Some(1024)), 1024 - SPARE_FDS);
        assert_eq!(effective_cap(&limits, Some(1 << 20)), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(effective_cap(&limits, Some(10)), 1);
        let small = Limits { max_connections: 50, ..limits };
        assert_eq!(effective_cap(&small, Some(1024)), 50);
    }

    #[test]
    fn raising_the_descriptor_limit_reaches_the_hard_limit() {
        let soft = raise_fd_limit().expect("Linux reports its limits");
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as in `raise_fd_limit`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(soft as u64, lim.rlim_cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_times_out_and_traffic_keeps_it_open() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(64);
        let mut idle = Idle::new(server, Duration::from_secs(5));
        let mut client = client;
        let mut buf = [0u8; 4];
        // Bytes arriving every 4 s keep it open past 5 s.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            client.write_all(b"ab").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 2);
        }
        // Then silence: the read fails after 5 s.
        let start = Instant::now();
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
