//! Tells a service manager (systemd's `Type=notify`) how the server is
//! doing: ready once it knows a leader, so that `systemctl start` and
//! units ordered after it wait until the server can serve; stopping once
//! it starts draining. Without `$NOTIFY_SOCKET` (not started by systemd,
//! or in the simulator) nothing is sent.

use sd_notify::NotifyState;

/// Says the server is ready, with a status line for `systemctl status`.
pub(super) fn ready(leader: u64) {
    let status = format!("serving; leader is server {leader}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Says the server is shutting down.
pub(super) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

fn send(states: &[NotifyState<'_>]) {
    if cfg!(madsim) {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}
