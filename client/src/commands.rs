//! The handles' way to the driver task: its command queue and, once the
//! driver has stopped because the cluster turned this client away for
//! good, why. Every call waiting then, or made afterwards, fails with that
//! reason ([`ClientError::Refused`]) instead of retrying until a timeout.

use crate::ClientError;
use crate::driver::Command;
use distlock_core::proto::ProtoError;
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

/// Why the cluster will not serve this client however often it asks: a
/// setting on this side must change first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The port speaks TLS and this client connected without it.
    #[error(
        "the server speaks TLS on this port: connect over TLS (ClientOptions::tls; on the command line, --tls-ca FILE)"
    )]
    WantsTls,
    /// The server answered the handshake with an error that no retry
    /// changes: a credential it does not accept, another cluster's id, a
    /// protocol version it does not speak.
    #[error("{0}")]
    Server(ProtoError),
}

impl Refusal {
    /// The refusal a connection-level error frame is, if it is final.
    /// Everything else (overload, shutdown, a bad frame) is worth another
    /// server or a later try.
    pub(crate) fn of_error(e: &ProtoError) -> Option<Self> {
        matches!(
            e,
            ProtoError::Unauthorized
                | ProtoError::WrongCluster
                | ProtoError::UnsupportedVersion { .. }
        )
        .then(|| Self::Server(e.clone()))
    }
}

/// The sending half of the driver's command queue, shared by a client and
/// everything made from it.
#[derive(Clone, Debug)]
pub(crate) struct Commands {
    tx: mpsc::UnboundedSender<Command>,
    refusal: Arc<OnceLock<Refusal>>,
}

impl Commands {
    /// A queue, its receiving end, and the slot the driver fills when the
    /// cluster refuses it.
    pub(crate) fn new() -> (
        Self,
        mpsc::UnboundedReceiver<Command>,
        Arc<OnceLock<Refusal>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let refusal = Arc::new(OnceLock::new());
        (
            Self {
                tx,
                refusal: Arc::clone(&refusal),
            },
            rx,
            refusal,
        )
    }

    /// Queues `cmd` for the driver.
    pub(crate) fn send(&self, cmd: Command) -> Result<(), ClientError> {
        self.tx.send(cmd).map_err(|_| self.closed())
    }

    /// The error for a call the driver can no longer answer.
    pub(crate) fn closed(&self) -> ClientError {
        self.refusal
            .get()
            .map_or(ClientError::Closed, |r| ClientError::Refused(r.clone()))
    }
}
