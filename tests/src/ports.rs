//! Free loopback ports, never handed out twice in one process (the tests
//! of one binary run in parallel and each starts servers).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Mutex, PoisonError};

static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback address nobody listens on (an ephemeral port the kernel
/// picked), never handed out before by this process.
///
/// # Panics
/// When no port can be bound at all.
#[must_use]
pub fn free_addr() -> SocketAddr {
    loop {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
        let addr = l.local_addr().expect("local addr");
        let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
        if given.insert(addr.port()) {
            return addr;
        }
    }
}

/// A base port `p` such that every `p + offset` is free on loopback and
/// was never handed out by this process; all of them are then taken. For
/// commands that derive their ports from one (`distlock dev --base-port`).
///
/// The ports come from 20000-32767, below Linux's ephemeral range, so
/// outgoing connections (and [`free_addr`]) do not take them meanwhile.
///
/// # Panics
/// When no such block is found.
#[must_use]
pub fn free_port_block(offsets: &[u16]) -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let top = u32::from(offsets.iter().copied().max().unwrap_or(0));
    // A per-process starting point, so parallel test processes spread out.
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    for attempt in 0..SPAN {
        let base = LOW + (seed.wrapping_add(attempt * 7919)) % (SPAN - top);
        let Ok(base) = u16::try_from(base) else {
            continue;
        };
        let ports: Vec<u16> = offsets.iter().map(|o| base + o).collect();
        let free = ports
            .iter()
            .all(|p| !given.contains(p) && TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_ok());
        if free {
            given.extend(ports);
            return base;
        }
    }
    panic!("no free block of ports {offsets:?} on loopback");
}
