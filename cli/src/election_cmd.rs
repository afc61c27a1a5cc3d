//! `distlock leader NAME [--watch] [--json]`: an election's leader, its
//! term of office and value, once or each time it changes. (`distlock
//! elect` is `distlock lock` campaigning; see `lock_cmd`.)

use crate::exit::{EXIT_FAILED, EXIT_UNAVAILABLE};
use crate::listing_cmd::{Cluster, ask_cluster, owner_text};
use distlock_client::ClientTls;
use distlock_core::proto::{LeaderView, RequestBody, ResponseBody};
use distlock_transport_tcp::HostPort;
use serde_json::json;
use std::time::Duration;

/// Exit status of `leader` without `--watch` when nobody leads.
const EXIT_NO_LEADER: i32 = 3;

/// How often `--watch` reads the leader.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// Runs `distlock leader`; returns the exit status.
pub(crate) async fn leader(
    servers: &[HostPort],
    tls: Option<&ClientTls>,
    election: &str,
    watch: bool,
    as_json: bool,
) -> i32 {
    let body = RequestBody::Leader {
        election: election.to_owned(),
    };
    let mut last: Option<Option<LeaderView>> = None;
    loop {
        let now = match ask_cluster(Cluster::new(servers, tls), &body).await {
            Ok(ResponseBody::Leader(view)) => view,
            Ok(_) => {
                eprintln!("distlock leader: unexpected answer");
                return EXIT_FAILED;
            }
            Err(e) => {
                eprintln!("distlock leader: {e}");
                return EXIT_UNAVAILABLE;
            }
        };
        if last.as_ref() != Some(&now) {
            print_leader(election, now.as_ref(), as_json);
            if !watch {
                return if now.is_some() { 0 } else { EXIT_NO_LEADER };
            }
            last = Some(now);
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

fn print_leader(election: &str, leader: Option<&LeaderView>, as_json: bool) {
    if as_json {
        println!("{}", json!({ "election": election, "leader": leader }));
        return;
    }
    match leader {
        None => println!("{election}: nobody leads"),
        Some(l) => println!(
            "{election}: {} leads with token {}, value {}",
            owner_text(l.session, l.owner.as_ref()),
            l.token.0,
            l.value.as_deref().map_or_else(
                || "(none: held by a plain lock)".to_owned(),
                |v| format!("{v:?}")
            )
        ),
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
