//! The client workload: each client process (on its own madsim node) runs
//! the real client library — connect, open a session, random acquires
//! (exclusive, shared, semaphore; try, timed and unbounded waits), writes
//! to the fenced resource while holding, releases, closes or abandons the
//! session — and records every step in the history with true times.

use crate::clock::TrueTime;
use crate::history::{AcquireResult, Ev, History, ModeKind};
use crate::resource::Resource;
use distlock_client::{Client, ClientError, ClientOptions, Guard, Session};
use distlock_core::locks::{Mode, Wait};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What kind of lock a name is used as (a lock's kind is fixed while held).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Only exclusive acquires.
    Exclusive,
    /// Shared and exclusive acquires mixed (readers/writer).
    ReadWrite,
    /// Semaphore acquires with this many permits.
    Semaphore(u32),
}

/// Everything the client processes share.
#[derive(Debug)]
pub struct Workload {
    /// Where to record.
    pub history: History,
    /// True time.
    pub time: TrueTime,
    /// The protected resource.
    pub resource: Resource,
    /// The servers' client addresses.
    pub servers: Vec<SocketAddr>,
    /// The servers' WebSocket addresses (the same servers, in order).
    pub ws_servers: Vec<SocketAddr>,
    /// The locks in play.
    pub locks: Vec<(String, LockKind)>,
    /// Session TTLs are drawn from this range (ms).
    pub ttl_ms: (u64, u64),
    /// No new operation starts after this true time (µs).
    pub stop_at: AtomicU64,
    /// Operation ids.
    pub next_op: AtomicU64,
    /// Client process ids.
    pub next_client: AtomicU64,
    /// Chance (per mille) that a holder writes without first checking its
    /// lease is still valid, as a careless (or paused) client would.
    pub careless_per_mille: u64,
    /// The lock-delay every acquire asks for, ms.
    pub lock_delay_ms: u64,
    /// TLS to reach the servers with (`None`: plain TCP).
    pub tls: Option<distlock_client::ClientTls>,
}

fn range(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi.saturating_sub(lo) + 1)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Workload {
    fn now(&self) -> u64 {
        self.time.now_us()
    }

    fn stopped(&self) -> bool {
        self.now() >= self.stop_at.load(Ordering::Relaxed)
    }

    fn push(&self, ev: Ev) {
        self.history.push(self.now(), ev);
    }

    fn deadline_of(&self, session: &Session) -> Option<u64> {
        session.lease_deadline().map(|d| self.time.of(d))
    }
}

/// One client process: sessions one after another until the workload
/// stops (or the node is killed, which abandons whatever it held).
pub async fn client_process(w: Arc<Workload>, seed: u64) {
    let client = w.next_client.fetch_add(1, Ordering::Relaxed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Half the client processes talk WebSocket, like browsers and edge
    // services; the rest TCP.
    let ws = rng.next_u64() % 2 == 0;
    while !w.stopped() {
        let mut servers = if ws {
            w.ws_servers.clone()
        } else {
            w.servers.clone()
        };
        let start = usize::try_from(rng.next_u64() % servers.len() as u64).unwrap_or(0);
        servers.rotate_left(start);
        let options = ClientOptions {
            lock_delay: ms(w.lock_delay_ms),
            tls: w.tls.clone(),
            ..ClientOptions::default()
        };
        let connect = async {
            if ws {
                Client::connect_ws(servers, options).await
            } else {
                Client::connect(servers, options).await
            }
        };
        let connected = tokio::time::timeout(ms(5_000), connect).await;
        let Ok(Ok(c)) = connected else {
            tokio::time::sleep(ms(range(&mut rng, 100, 1_000))).await;
            continue;
        };
        let ttl = range(&mut rng, w.ttl_ms.0, w.ttl_ms.1);
        let Ok(Ok(session)) = tokio::time::timeout(ms(10_000), c.open_session(ms(ttl))).await
        else {
            tokio::time::sleep(ms(range(&mut rng, 100, 1_000))).await;
            continue;
        };
        let sid = session.id().0;
        w.push(Ev::SessionOpened {
            ws,
            client,
            session: sid,
            ttl_ms: ttl,
        });
        let ops = range(&mut rng, 1, 20);
        for _ in 0..ops {
            if w.stopped() || session.is_lost() {
                break;
            }
            one_op(&w, &mut rng, client, &session).await;
            tokio::time::sleep(ms(range(&mut rng, 0, 300))).await;
        }
        if rng.next_u64() % 4 == 0 {
            // Abandon: stop keeping the session alive without closing
            // it; the cluster expires it after its TTL.
            session.abandon();
            continue;
        }
        let _ = tokio::time::timeout(ms(5_000), session.close()).await;
    }
}

async fn one_op(w: &Workload, rng: &mut ChaCha8Rng, client: u64, session: &Session) {
    let Some((lock, kind)) = w
        .locks
        .get(usize::try_from(rng.next_u64() % w.locks.len() as u64).unwrap_or(0))
        .cloned()
    else {
        return;
    };
    let (mode, mode_kind) = match kind {
        LockKind::Exclusive => (Mode::Exclusive, ModeKind::Exclusive),
        LockKind::ReadWrite if rng.next_u64() % 3 == 0 => (Mode::Exclusive, ModeKind::Exclusive),
        LockKind::ReadWrite => (Mode::Shared, ModeKind::Shared),
        LockKind::Semaphore(n) => (Mode::Semaphore(n), ModeKind::Semaphore(n)),
    };
    let (wait, limit) = match rng.next_u64() % 3 {
        0 => (Wait::Try, 5_000),
        1 => {
            let d = range(rng, 10, 3_000);
            (Wait::For(d), d + 5_000)
        }
        _ => (Wait::Forever, 20_000),
    };
    let op = w.next_op.fetch_add(1, Ordering::Relaxed);
    let sid = session.id().0;
    w.push(Ev::AcquireInvoke {
        op,
        client,
        session: sid,
        lock: lock.clone(),
        mode: mode_kind,
    });
    let answer = tokio::time::timeout(ms(limit), session.lock_with(&lock, mode, wait)).await;
    let (result, guard) = match answer {
        Ok(Ok(g)) => (AcquireResult::Granted { token: g.token().0 }, Some(g)),
        Ok(Err(ClientError::NotGranted)) => (AcquireResult::NotGranted, None),
        Ok(Err(e)) => (
            AcquireResult::Failed {
                error: e.to_string(),
            },
            None,
        ),
        Err(_) => (
            AcquireResult::Failed {
                error: "no answer in time".to_owned(),
            },
            None,
        ),
    };
    w.push(Ev::AcquireReturn {
        op,
        result,
        deadline: w.deadline_of(session),
    });
    if let Some(g) = guard {
        hold(w, rng, client, session, g, mode_kind).await;
    }
}

/// Holds a granted lock for a while, writing to the resource (exclusive
/// holders only) while the lease is valid, then lets go.
async fn hold(
    w: &Workload,
    rng: &mut ChaCha8Rng,
    client: u64,
    session: &Session,
    guard: Guard,
    mode: ModeKind,
) {
    let sid = session.id().0;
    let lock = guard.lock_name().to_owned();
    let token = guard.token().0;
    // Mostly short holds; some outlast the session TTL, so that they live
    // on keepalives.
    let (writes, gap) = if rng.next_u64() % 5 == 0 {
        (range(rng, 4, 12), range(rng, 200, w.ttl_ms.1))
    } else {
        (range(rng, 0, 6), 800)
    };
    for _ in 0..writes {
        tokio::time::sleep(ms(range(rng, 10, gap))).await;
        if w.stopped() {
            break;
        }
        let careless = rng.next_u64() % 1000 < w.careless_per_mille;
        let valid = session.is_valid();
        w.push(Ev::Belief {
            session: sid,
            lock: lock.clone(),
            token,
            deadline: w.deadline_of(session),
        });
        if !valid && !careless {
            break;
        }
        if mode == ModeKind::Exclusive {
            w.resource.write(client, sid, &lock, token);
        }
        if rng.next_u64() % 3 == 0 {
            check_token(w, session, &lock, token).await;
        }
    }
    w.push(Ev::ReleaseInvoke {
        session: sid,
        lock: lock.clone(),
        token,
    });
    if rng.next_u64() % 5 == 0 {
        drop(guard);
    } else {
        let _ = tokio::time::timeout(ms(5_000), guard.release()).await;
    }
    // Now and then the old token again: valid only if nobody newer holds
    // the lock yet.
    if rng.next_u64() % 4 == 0 {
        check_token(w, session, &lock, token).await;
    }
}

/// Asks the cluster whether `token` still holds `lock`; records the answer.
async fn check_token(w: &Workload, session: &Session, lock: &str, token: u64) {
    let invoked = w.time.now_us();
    let answer = tokio::time::timeout(
        ms(3_000),
        session.check_token(lock, distlock_core::locks::FencingToken(token)),
    )
    .await;
    w.push(Ev::TokenCheck {
        session: session.id().0,
        lock: lock.to_owned(),
        token,
        invoked,
        valid: answer.ok().and_then(Result::ok),
    });
}
