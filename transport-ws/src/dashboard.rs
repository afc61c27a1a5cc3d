//! The dashboard page served at `GET /` on the WebSocket port: what an
//! operator opens to see what holds what. It connects back to the same
//! host over WebSocket (JSON frames) and shows the cluster (leader, term,
//! commit index, members) from `ClusterStatus`, and the locks it knows of
//! (holders with tokens, waiters, lock-delays) from `LockStatus`, kept
//! current by `Watch`.

/// The page: one self-contained HTML document (inline CSS and script, no
/// external resources).
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");
