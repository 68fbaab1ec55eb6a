//! Open client connections: each one's last activity and requests in flight, the idle timeout
//! (which starts at accept, so a client that connects and sends nothing is closed too), and the
//! node-wide cap (at the cap the longest-idle connection makes room; with none idle a new one is
//! refused). Also the node-wide budget of buffered request bodies.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// One open connection, shared by its task, its IO and its requests.
pub struct Conn {
    id: u64,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last byte read or written.
    last_active: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether a request has arrived on it (until then the header timeout applies).
    served: AtomicBool,
    /// Fired to close the connection for a newer one at the cap.
    close: CancellationToken,
}

impl Conn {
    fn touch(&self) {
        self.last_active
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_active.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }

    /// Marks a request in flight until the guard drops.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight(self.clone())
    }

    /// Resolves when the connection should be closed: idle past its timeout (`first` before
    /// its first request, `idle` after), or chosen to make room at the cap.
    pub async fn closing(&self, first: Duration, idle: Duration) {
        loop {
            let limit = if self.served.load(Ordering::Relaxed) {
                idle
            } else {
                first
            };
            let wait = match self.idle_for() {
                Some(idle_for) if idle_for >= limit => return,
                Some(idle_for) => limit - idle_for,
                None => limit,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.close.cancelled() => return,
            }
        }
    }
}

/// A request in flight on a connection.
pub struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every open connection of one listener.
pub struct Conns {
    max: usize,
    next: AtomicU64,
    epoch: Instant,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Conns {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            next: AtomicU64::new(1),
            epoch: Instant::now(),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Registers a new connection; `None` when the node is at its cap and no connection is idle.
    pub fn open(self: &Arc<Self>) -> Option<Registered> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= self.max {
            let oldest = open
                .values()
                .filter_map(|c| Some((c.idle_for()?, c)))
                .filter(|(_, c)| !c.close.is_cancelled())
                .max_by_key(|(idle, _)| *idle)
                .map(|(_, c)| c.clone());
            match oldest {
                // Its task removes it once closed; the new one is admitted now.
                Some(conn) => conn.close.cancel(),
                None => return None,
            }
        }
        let conn = Arc::new(Conn {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            epoch: self.epoch,
            last_active: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            close: CancellationToken::new(),
        });
        conn.touch();
        open.insert(conn.id, conn.clone());
        Some(Registered {
            conns: self.clone(),
            conn,
        })
    }

    /// How many connections are open.
    pub fn open_count(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A registered connection; unregistered on drop.
pub struct Registered {
    conns: Arc<Conns>,
    pub conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.conn.id);
    }
}

/// A socket that records when bytes last went in or out.
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, conn: Arc<Conn>) -> Self {
        Self { inner, conn }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Request bodies held in memory across the node, bounded by `server.max_buffered_body_bytes`.
pub struct BodyBudget {
    limit: u64,
    held: AtomicU64,
}

impl BodyBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicU64::new(0),
        })
    }

    /// An empty charge that grows as a body arrives.
    pub fn charge(self: &Arc<Self>) -> BodyCharge {
        BodyCharge {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// Bytes of one request body counted against the node's budget; released on drop.
pub struct BodyCharge {
    budget: Arc<BodyBudget>,
    held: u64,
}

impl BodyCharge {
    /// The node's limit this charge counts against.
    pub fn limit(&self) -> u64 {
        self.budget.limit
    }

    /// Grows the charge to `total` bytes; false (nothing taken) if the node has no room.
    pub fn grow_to(&mut self, total: u64) -> bool {
        let more = total.saturating_sub(self.held);
        let before = self.budget.held.fetch_add(more, Ordering::AcqRel);
        if before.saturating_add(more) > self.budget.limit {
            self.budget.held.fetch_sub(more, Ordering::AcqRel);
            return false;
        }
        self.held += more;
        true
    }
}

impl Drop for BodyCharge {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let conns = Conns::new(2);
        let first = conns.open().unwrap();
        let second = conns.open().unwrap();
        let _busy = second.conn.request();
        let third = conns.open().expect("the idle first connection makes room");
        assert!(first.conn.close.is_cancelled());
        assert!(!second.conn.close.is_cancelled(), "a busy one is kept");
        drop(first);
        let _busy_third = third.conn.request();
        assert!(conns.open().is_none(), "none idle: refused");
    }

    #[test]
    fn body_budget_refuses_past_its_limit_and_releases() {
        let budget = BodyBudget::new(100);
        let mut a = budget.charge();
        assert!(a.grow_to(60));
        let mut b = budget.charge();
        assert!(!b.grow_to(50), "60 + 50 > 100");
        assert!(b.grow_to(40));
        drop(a);
        let mut c = budget.charge();
        assert!(c.grow_to(60));
    }
}
