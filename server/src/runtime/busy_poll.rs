//! Busy polling (`serve --busy-poll D`): for a window after its last piece
//! of work, a server keeps its threads polling for the next event instead
//! of sleeping until the kernel wakes them.
//!
//! Why: waking a sleeping thread costs far more than the work it wakes
//! for on some machines, above all virtual ones whose idle vCPUs halt (a
//! 64 B loopback round trip measured 110 µs between sleeping threads and
//! 8 µs between polling ones on the 2-core VM of BENCHMARKS.md). A commit
//! crosses several such wake-ups: the client's request, the leader's
//! hand-off to its storage thread, the followers' AppendEntries, their
//! answers. The price is CPU: while requests keep coming within the
//! window a server keeps its node thread and its storage thread busy, so
//! this is off by default.
//!
//! How: the node task calls [`BusyPoll::touch`] after every event. A
//! poller task then yields to the runtime in a loop, which makes the
//! runtime poll its sockets without blocking (a yielded task is woken
//! only after a non-blocking poll of the IO driver), and gives the core to
//! any other runnable thread at each turn (`sched_yield`), so that a
//! polling server delays the other processes on its cores as little as
//! possible. Once the window passes with no event it sleeps until the
//! next touch. The storage thread polls its queue the same way
//! ([`BusyPoll::recv`]).
//!
//! Only the real runtime polls: under the simulator time is virtual, and a
//! yielding loop would never see the window end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// The longest window `--busy-poll` takes: beyond it a server polls
/// through pauses that are not the gaps between one request's steps.
pub const MAX_WINDOW: Duration = Duration::from_millis(10);

/// One server's polling state, shared by its node task (which touches it)
/// and its poller task.
#[derive(Debug)]
pub struct BusyPoll {
    window: Duration,
    /// An event since the poller last looked.
    touched: AtomicBool,
    /// The poller is inside its window (tests watch it).
    polling: AtomicBool,
    wake: Notify,
}

impl BusyPoll {
    /// Polling state for `window` after each event.
    #[must_use]
    pub fn new(window: Duration) -> Arc<Self> {
        Arc::new(Self {
            window,
            touched: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    /// The window after each event.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records an event: the poller polls for a window from now.
    pub fn touch(&self) {
        if !self.touched.swap(true, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Whether the poller is polling now.
    #[must_use]
    pub fn is_polling(&self) -> bool {
        self.polling.load(Ordering::Relaxed)
    }

    /// Spawns [`Self::run`] on the current runtime; the poller stops when
    /// the returned guard is dropped.
    #[must_use]
    pub fn spawn(self: &Arc<Self>) -> PollerGuard {
        PollerGuard(tokio::spawn(Arc::clone(self).run()))
    }

    /// The poller: sleeps until a touch, then polls until a window passes
    /// without one. Runs until aborted.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            if !self.touched.load(Ordering::Relaxed) {
                // A permit left by a touch that a window already saw: the
                // burst is over, so no second window.
                continue;
            }
            self.polling.store(true, Ordering::Relaxed);
            let mut last = Instant::now();
            loop {
                tokio::task::yield_now().await;
                std::thread::yield_now();
                let now = Instant::now();
                if self.touched.swap(false, Ordering::Relaxed) {
                    last = now;
                } else if now.duration_since(last) > self.window {
                    break;
                }
            }
            self.polling.store(false, Ordering::Relaxed);
        }
    }

    /// For a blocking thread: the next item of `rx`, polled for the window
    /// before blocking; `None` once every sender is gone.
    pub fn recv<T>(&self, rx: &mut mpsc::UnboundedReceiver<T>) -> Option<T> {
        let start = Instant::now();
        while start.elapsed() <= self.window {
            match rx.try_recv() {
                Ok(item) => return Some(item),
                Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
            }
        }
        rx.blocking_recv()
    }
}

/// Stops the poller when dropped (when the server's node loop ends).
#[derive(Debug)]
pub struct PollerGuard(tokio::task::JoinHandle<()>);

impl Drop for PollerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits, up to a deadline, until `cond` holds.
    async fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn polls_after_a_touch_and_sleeps_once_the_window_passes() {
        let poll = BusyPoll::new(Duration::from_millis(20));
        let _poller = poll.spawn();
        assert!(!poll.is_polling(), "nothing happened yet");
        poll.touch();
        wait_until("it polls", || poll.is_polling()).await;
        wait_until("it sleeps again", || !poll.is_polling()).await;
        // A later event starts a new window.
        poll.touch();
        wait_until("it polls again", || poll.is_polling()).await;
    }

    #[tokio::test]
    async fn other_tasks_keep_running_while_it_polls() {
        let poll = BusyPoll::new(MAX_WINDOW);
        let _poller = poll.spawn();
        poll.touch();
        wait_until("it polls", || poll.is_polling()).await;
        // A timer and a socket round trip complete on the same thread.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind on loopback");
        let addr = listener.local_addr().expect("bound address");
        let echo = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut b = [0u8; 4];
            tokio::io::AsyncReadExt::read_exact(&mut s, &mut b)
                .await
                .expect("read");
            tokio::io::AsyncWriteExt::write_all(&mut s, &b)
                .await
                .expect("write");
        });
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        poll.touch();
        tokio::io::AsyncWriteExt::write_all(&mut c, b"ping")
            .await
            .expect("write");
        let mut b = [0u8; 4];
        tokio::io::AsyncReadExt::read_exact(&mut c, &mut b)
            .await
            .expect("read");
        assert_eq!(&b, b"ping");
        echo.await.expect("echo task");
    }

    #[test]
    fn a_polling_receiver_gets_every_item_in_order_then_none() {
        // A zero window polls once and then blocks, so items sent from
        // another thread arrive on either path.
        let poll = BusyPoll::new(Duration::ZERO);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sender = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i).expect("receiver alive");
            }
        });
        for i in 0..100 {
            assert_eq!(poll.recv(&mut rx), Some(i));
        }
        sender.join().expect("sender thread");
        assert_eq!(poll.recv(&mut rx), None, "every sender is gone");
    }
}
