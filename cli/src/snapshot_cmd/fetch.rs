//! Fetching a snapshot from the cluster in chunks: `TakeSnapshot` (the
//! leader answers with the first chunk of a snapshot it took through
//! ReadIndex), then `SnapshotChunk` requests for the rest, all on one
//! connection to any server (a follower relays them to the leader).
//!
//! The chunks of one snapshot are checked to follow each other
//! ([`Assembly`]). When the leader no longer keeps the snapshot (it
//! expired, or leadership moved) the fetch starts over with a new one;
//! while no leader answers it tries the next server, and the members the
//! servers name, until its deadline.

use distlock_client::ClientTls;
use distlock_client::stream::{ServerStream, open_stream};
use distlock_core::ids::{LogIndex, Term};
use distlock_core::proto::{
    ClientFrame, ProtoError, Request, RequestBody, RequestId, ResponseBody, SNAPSHOT_CHUNK_MAX,
    ServerFrame,
};
use distlock_core::raft::Snapshot;
use distlock_transport_tcp::{
    HandshakeConfig, HostPort, Reader, TransportError, Writer, client_handshake,
};
use std::time::Duration;

/// How long one request may take: a `TakeSnapshot` waits for a ReadIndex
/// round and for the leader to encode the whole state.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How many times one connection starts over with a new snapshot before
/// trying elsewhere.
const RESTARTS: u32 = 3;
/// The most memory reserved ahead from an announced length.
const RESERVE_MAX: u64 = 64 << 20;

/// A snapshot fetched whole.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// What it holds: position, configuration and lock state.
    pub(crate) snapshot: Snapshot,
    /// The server that relayed it.
    pub(crate) from: HostPort,
    /// How many chunks it came in.
    pub(crate) chunks: usize,
}

/// Why no snapshot could be fetched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// No leader answered before the deadline.
    #[error("no leader answered within {waited:?} (last: {last})")]
    Unavailable {
        /// How long it tried.
        waited: Duration,
        /// The last thing that went wrong.
        last: String,
    },
    /// The cluster refused for good (a server too old to take snapshots).
    #[error("{server} refused: {error}")]
    Refused {
        /// The server.
        server: HostPort,
        /// What it said.
        error: ProtoError,
    },
    /// The chunks did not make a snapshot.
    #[error("{server} sent a damaged snapshot: {reason}")]
    Damaged {
        /// The server.
        server: HostPort,
        /// What was wrong.
        reason: String,
    },
}

/// One chunk, as a `SnapshotChunk` answer carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The snapshot's index.
    pub(crate) index: LogIndex,
    /// The term there.
    pub(crate) term: Term,
    /// Where `data` starts.
    pub(crate) offset: u64,
    /// The whole snapshot's length.
    pub(crate) total_len: u64,
    /// The bytes.
    pub(crate) data: Vec<u8>,
}

impl Chunk {
    fn from_body(body: ResponseBody) -> Option<Self> {
        match body {
            ResponseBody::SnapshotChunk {
                index,
                term,
                offset,
                total_len,
                data,
            } => Some(Self {
                index,
                term,
                offset,
                total_len,
                data,
            }),
            _ => None,
        }
    }
}

/// A snapshot being put together from its chunks, each checked to belong
/// to it and to follow the last.
#[derive(Debug)]
pub(crate) struct Assembly {
    index: LogIndex,
    term: Term,
    total_len: u64,
    bytes: Vec<u8>,
    chunks: usize,
}

impl Assembly {
    /// Starts from the first chunk (offset 0).
    ///
    /// # Errors
    /// When it does not start the snapshot or overruns it.
    pub(crate) fn start(first: Chunk) -> Result<Self, String> {
        if first.offset != 0 {
            return Err(format!("the first chunk starts at {}", first.offset));
        }
        let mut assembly = Self {
            index: first.index,
            term: first.term,
            total_len: first.total_len,
            bytes: Vec::with_capacity(
                usize::try_from(first.total_len.min(RESERVE_MAX)).unwrap_or(0),
            ),
            chunks: 0,
        };
        assembly.push(first)?;
        Ok(assembly)
    }

    /// Adds the next chunk.
    ///
    /// # Errors
    /// When it belongs to another snapshot, does not start where the last
    /// ended, is empty before the end, or overruns the announced length.
    pub(crate) fn push(&mut self, chunk: Chunk) -> Result<(), String> {
        if (chunk.index, chunk.term, chunk.total_len) != (self.index, self.term, self.total_len) {
            return Err(format!(
                "a chunk of snapshot {} (term {}, {} bytes) came for snapshot {} (term {}, {} bytes)",
                chunk.index.0,
                chunk.term.0,
                chunk.total_len,
                self.index.0,
                self.term.0,
                self.total_len
            ));
        }
        if chunk.offset != self.next_offset() {
            return Err(format!(
                "a chunk at offset {} came where {} was expected",
                chunk.offset,
                self.next_offset()
            ));
        }
        if chunk.data.is_empty() && !self.is_complete() {
            return Err(format!("an empty chunk at offset {}", chunk.offset));
        }
        let end = chunk.offset.saturating_add(chunk.data.len() as u64);
        if end > self.total_len {
            return Err(format!(
                "a chunk runs to {end}, past the snapshot's {} bytes",
                self.total_len
            ));
        }
        self.bytes.extend_from_slice(&chunk.data);
        self.chunks += 1;
        debug_assert_eq!(self.bytes.len() as u64, end);
        Ok(())
    }

    /// Where the next chunk starts.
    #[must_use]
    pub(crate) fn next_offset(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether every byte is here.
    #[must_use]
    pub(crate) fn is_complete(&self) -> bool {
        self.next_offset() == self.total_len
    }

    /// The snapshot, decoded and checked against what its chunks said.
    ///
    /// # Errors
    /// When bytes are missing or do not decode to the snapshot announced.
    pub(crate) fn finish(self) -> Result<(Snapshot, usize), String> {
        if !self.is_complete() {
            return Err(format!(
                "{} of {} bytes arrived",
                self.next_offset(),
                self.total_len
            ));
        }
        let snapshot: Snapshot = postcard::from_bytes(&self.bytes)
            .map_err(|e| format!("the snapshot does not decode: {e}"))?;
        if (snapshot.meta.last_index, snapshot.meta.last_term) != (self.index, self.term) {
            return Err(format!(
                "the snapshot says index {} term {}, its chunks index {} term {}",
                snapshot.meta.last_index.0, snapshot.meta.last_term.0, self.index.0, self.term.0
            ));
        }
        Ok((snapshot, self.chunks))
    }
}

/// How one attempt on one server ended, when it did not fetch a snapshot.
enum Failed {
    /// Try elsewhere or later.
    Retry(String),
    /// The leader no longer keeps the snapshot being fetched: take another.
    Gone(LogIndex),
    /// Give up.
    Final(FetchError),
}

/// Fetches a snapshot through any of `servers` (and the members they
/// name), trying until `timeout` has passed.
///
/// # Errors
/// [`FetchError::Unavailable`] when no leader answered in time; the other
/// variants when the cluster refused or sent something broken.
pub(crate) async fn fetch(
    servers: &[HostPort],
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut servers = servers.to_vec();
    let mut last = "no server given".to_owned();
    loop {
        let mut next = 0;
        while let Some(addr) = servers.get(next).cloned() {
            next += 1;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = tokio::time::timeout(left, fetch_from(&addr, tls, &mut servers)).await;
            match attempt {
                Ok(Ok(fetched)) => return Ok(fetched),
                Ok(Err(Failed::Final(e))) => return Err(e),
                Ok(Err(Failed::Retry(why))) => last = format!("{addr}: {why}"),
                Ok(Err(Failed::Gone(index))) => {
                    last = format!(
                        "{addr}: the snapshot at index {} kept being dropped",
                        index.0
                    );
                }
                Err(_) => last = format!("{addr}: no answer in time"),
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FetchError::Unavailable {
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One connection to `addr`: takes a snapshot and fetches all of it,
/// starting over (a few times) when the leader dropped it meanwhile. Adds
/// the members `addr` names to `servers`.
async fn fetch_from(
    addr: &HostPort,
    tls: Option<&ClientTls>,
    servers: &mut Vec<HostPort>,
) -> Result<Fetched, Failed> {
    let connect = async {
        let stream = open_stream(addr.as_str(), tls, Duration::from_secs(3))
            .await
            .map_err(|e| e.to_string())?;
        client_handshake(
            stream,
            None,
            crate::credentials::token(),
            &HandshakeConfig::default(),
        )
        .await
        .map_err(|e| e.to_string())
    };
    let (mut reader, mut writer, welcome) =
        match tokio::time::timeout(Duration::from_secs(3), connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(why)) => return Err(Failed::Retry(format!("cannot connect: {why}"))),
            Err(_) => return Err(Failed::Retry("cannot connect in time".to_owned())),
        };
    let named = welcome
        .members
        .iter()
        .filter_map(|m| m.client_addr.parse::<HostPort>().ok());
    for a in named {
        if !servers.contains(&a) {
            servers.push(a);
        }
    }
    let mut conn = Exchange {
        reader: &mut reader,
        writer: &mut writer,
        next_id: 1,
        addr,
    };
    let mut dropped = LogIndex(0);
    for _ in 0..RESTARTS {
        let first = conn
            .ask(RequestBody::TakeSnapshot {
                max_len: SNAPSHOT_CHUNK_MAX,
            })
            .await?;
        let damaged = |reason: String| {
            Failed::Final(FetchError::Damaged {
                server: addr.clone(),
                reason,
            })
        };
        let mut assembly = Assembly::start(first).map_err(damaged)?;
        let mut gone = false;
        while !assembly.is_complete() {
            let body = RequestBody::SnapshotChunk {
                index: assembly.index,
                offset: assembly.next_offset(),
                max_len: SNAPSHOT_CHUNK_MAX,
            };
            match conn.ask(body).await {
                Ok(chunk) => assembly.push(chunk).map_err(damaged)?,
                Err(Failed::Gone(index)) => {
                    dropped = index;
                    gone = true;
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        if gone {
            continue;
        }
        let (snapshot, chunks) = assembly.finish().map_err(damaged)?;
        return Ok(Fetched {
            snapshot,
            from: addr.clone(),
            chunks,
        });
    }
    Err(Failed::Gone(dropped))
}

/// Requests and answers on one connection.
struct Exchange<'c> {
    reader: &'c mut Reader<ServerStream>,
    writer: &'c mut Writer<ServerStream>,
    next_id: u64,
    addr: &'c HostPort,
}

impl Exchange<'_> {
    /// Sends one request and reads its answer, which must be a chunk.
    async fn ask(&mut self, body: RequestBody) -> Result<Chunk, Failed> {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let exchange = async {
            self.writer
                .write_frame(&ClientFrame::Request(Request { id, body }))
                .await?;
            self.writer.flush().await?;
            loop {
                match self.reader.read_frame::<ServerFrame>().await? {
                    Some(ServerFrame::Response(r)) if r.id == id => return Ok(Ok(r.result)),
                    Some(ServerFrame::Error(e)) => return Ok(Err(e)),
                    // Welcomes sent again, and nothing else, may come
                    // between.
                    Some(_) => {}
                    None => return Err(TransportError::Closed),
                }
            }
        };
        let answer = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Err(_) => return Err(Failed::Retry("no answer in time".to_owned())),
            Ok(Err(e)) => return Err(Failed::Retry(e.to_string())),
            Ok(Ok(Err(e))) | Ok(Ok(Ok(Err(e)))) => e,
            Ok(Ok(Ok(Ok(body)))) => {
                return Chunk::from_body(body).ok_or_else(|| {
                    Failed::Final(FetchError::Damaged {
                        server: self.addr.clone(),
                        reason: "it answered something else than a snapshot chunk".to_owned(),
                    })
                });
            }
        };
        match answer {
            ProtoError::SnapshotUnavailable { index } => Err(Failed::Gone(index)),
            e if e.is_retryable() => Err(Failed::Retry(e.to_string())),
            error => Err(Failed::Final(FetchError::Refused {
                server: self.addr.clone(),
                error,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distlock_core::ids::NodeId;
    use distlock_core::raft::{Membership, SnapshotMeta};
    use std::sync::Arc;

    fn snapshot_bytes() -> Vec<u8> {
        let s = Snapshot {
            meta: SnapshotMeta {
                last_index: LogIndex(40),
                last_term: Term(3),
                membership: Membership::with_voters([NodeId(1)]),
            },
            data: Arc::from((0..=255u8).cycle().take(5000).collect::<Vec<u8>>()),
        };
        postcard::to_stdvec(&s).expect("encodes")
    }

    fn chunk(bytes: &[u8], offset: usize, len: usize) -> Chunk {
        let end = (offset + len).min(bytes.len());
        Chunk {
            index: LogIndex(40),
            term: Term(3),
            offset: offset as u64,
            total_len: bytes.len() as u64,
            data: bytes[offset..end].to_vec(),
        }
    }

    /// A fake server: first answers `NoLeader`, then serves snapshot 40
    /// but drops it after its first chunk, then serves snapshot 41 whole,
    /// in chunks of at most 1000 bytes.
    async fn fake_server(listener: tokio::net::TcpListener) {
        use distlock_core::proto::{ClusterId, Response};
        use distlock_transport_tcp::{Admission, WelcomeInfo, accept_client};
        let admission = Admission {
            cluster_id: ClusterId::new("distlock"),
            auth: None,
        };
        let mut takes = 0;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let Ok(pending) = accept_client(stream, &admission, &HandshakeConfig::default()).await
            else {
                continue;
            };
            let welcome = WelcomeInfo {
                node_id: NodeId(1),
                leader_hint: None,
                members: Vec::new(),
            };
            let Ok((mut reader, mut writer)) = pending.welcome(welcome).await else {
                continue;
            };
            let mut serving = snapshot_bytes();
            while let Ok(Some(ClientFrame::Request(Request { id, body }))) =
                reader.read_frame::<ClientFrame>().await
            {
                let result = match body {
                    RequestBody::TakeSnapshot { .. } => {
                        takes += 1;
                        if takes == 1 {
                            Err(ProtoError::NoLeader)
                        } else {
                            if takes == 3 {
                                serving = snapshot_at(41);
                            }
                            let c = chunk_at(&serving, 0, 1000);
                            Ok(c)
                        }
                    }
                    RequestBody::SnapshotChunk { index, offset, .. } => {
                        if takes == 2 {
                            Err(ProtoError::SnapshotUnavailable { index })
                        } else {
                            let offset = usize::try_from(offset).unwrap_or(usize::MAX);
                            Ok(chunk_at(&serving, offset, 1000))
                        }
                    }
                    _ => Err(ProtoError::Timeout),
                };
                let frame = ServerFrame::Response(Response { id, result });
                if writer.write_frame(&frame).await.is_err() || writer.flush().await.is_err() {
                    break;
                }
            }
        }
    }

    /// The answer body carrying bytes `offset..offset + len` of `bytes`,
    /// a postcard snapshot.
    fn chunk_at(bytes: &[u8], offset: usize, len: usize) -> ResponseBody {
        let snap: Snapshot = postcard::from_bytes(bytes).expect("a snapshot");
        let end = (offset + len).min(bytes.len());
        ResponseBody::SnapshotChunk {
            index: snap.meta.last_index,
            term: snap.meta.last_term,
            offset: offset as u64,
            total_len: bytes.len() as u64,
            data: bytes[offset.min(end)..end].to_vec(),
        }
    }

    fn snapshot_at(index: u64) -> Vec<u8> {
        let mut s: Snapshot = postcard::from_bytes(&snapshot_bytes()).expect("a snapshot");
        s.meta.last_index = LogIndex(index);
        postcard::to_stdvec(&s).expect("encodes")
    }

    #[tokio::test]
    async fn a_fetch_waits_for_a_leader_and_starts_over_when_its_snapshot_is_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(fake_server(listener));
        let fetched = fetch(&[addr.into()], None, Duration::from_secs(20))
            .await
            .expect("fetched");
        server.abort();
        assert_eq!(fetched.snapshot.meta.last_index, LogIndex(41));
        assert_eq!(fetched.from, HostPort::from(addr));
        assert_eq!(fetched.chunks, snapshot_at(41).len().div_ceil(1000));
        assert_eq!(fetched.snapshot.data.len(), 5000);
    }

    #[tokio::test]
    async fn a_fetch_with_nobody_answering_gives_up_at_its_deadline() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let e = fetch(&[addr.into()], None, Duration::from_millis(300))
            .await
            .expect_err("nobody listens");
        assert!(matches!(e, FetchError::Unavailable { .. }), "{e}");
    }

    #[test]
    fn chunks_in_order_make_the_snapshot() {
        let bytes = snapshot_bytes();
        let mut a = Assembly::start(chunk(&bytes, 0, 1000)).expect("starts");
        while !a.is_complete() {
            let c = chunk(&bytes, a.next_offset() as usize, 1000);
            a.push(c).expect("follows");
        }
        let (s, chunks) = a.finish().expect("decodes");
        assert_eq!(chunks, bytes.len().div_ceil(1000));
        assert_eq!(s.meta.last_index, LogIndex(40));
        assert_eq!(s.data.len(), 5000);
    }

    #[test]
    fn chunks_out_of_place_or_of_another_snapshot_are_refused() {
        let bytes = snapshot_bytes();
        assert!(Assembly::start(chunk(&bytes, 10, 10)).is_err());
        let mut a = Assembly::start(chunk(&bytes, 0, 100)).expect("starts");
        assert!(a.push(chunk(&bytes, 200, 100)).is_err(), "a gap");
        assert!(a.push(chunk(&bytes, 50, 100)).is_err(), "an overlap");
        assert!(
            a.push(chunk(&bytes, 100, 0)).is_err(),
            "empty before the end"
        );
        let mut other = chunk(&bytes, 100, 100);
        other.index = LogIndex(41);
        assert!(a.push(other).is_err(), "another snapshot");
        let mut longer = chunk(&bytes, 100, 100);
        longer.total_len += 1;
        assert!(a.push(longer).is_err(), "another length");
        let mut overrun = chunk(&bytes, 100, 100);
        overrun.data = vec![0; bytes.len()];
        assert!(a.push(overrun).is_err(), "past the end");
        assert!(a.finish().is_err(), "incomplete");
    }

    #[test]
    fn a_snapshot_that_contradicts_its_chunks_is_refused() {
        let bytes = snapshot_bytes();
        let mut first = chunk(&bytes, 0, bytes.len());
        first.term = Term(4);
        let a = Assembly::start(first).expect("starts");
        assert!(a.finish().is_err_and(|e| e.contains("term")));
        let garbage = vec![0xff; 64];
        let a = Assembly::start(chunk(&garbage, 0, 64)).expect("starts");
        assert!(a.finish().is_err_and(|e| e.contains("does not decode")));
    }
}
