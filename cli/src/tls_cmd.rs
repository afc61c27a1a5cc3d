//! `distlock tls dev-ca DIR`: a development CA and certificates for a
//! local cluster and its clients, written as PEM files. Run again on the
//! same directory, it keeps the CA and issues fresh server and client
//! certificates (certificate rotation: then SIGHUP the servers).

use anyhow::Context;
use distlock_core::ids::NodeId;
use distlock_transport_tcp::tls::dev_ca::{DevCa, Issued};
use std::path::{Path, PathBuf};

/// `distlock tls ...`.
#[derive(clap::Args, Debug)]
pub(crate) struct TlsArgs {
    #[command(subcommand)]
    action: TlsAction,
}

#[derive(clap::Subcommand, Debug)]
enum TlsAction {
    /// Writes a development CA (ca.pem, ca.key) and, for each server N,
    /// node-N.pem and node-N.key naming node-N, localhost, 127.0.0.1, ::1
    /// and each --host; and client.pem, client.key for a client. If DIR
    /// already holds ca.key, the CA is kept and only the other
    /// certificates are issued anew. For development and tests only.
    DevCa {
        /// The directory to write to (created if missing).
        dir: PathBuf,
        /// How many servers (ids 1 to N).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Another name or address the servers are reached at (repeat).
        #[arg(long = "host", value_name = "NAME|IP")]
        hosts: Vec<String>,
        /// The client certificate's name (its identity on the servers).
        #[arg(long, default_value = "client")]
        client: String,
    },
}

/// Runs `distlock tls ...`.
pub(crate) fn run(args: &TlsArgs) -> anyhow::Result<()> {
    match &args.action {
        TlsAction::DevCa {
            dir,
            nodes,
            hosts,
            client,
        } => dev_ca(dir, *nodes, hosts, client),
    }
}

fn dev_ca(dir: &Path, nodes: u64, hosts: &[String], client: &str) -> anyhow::Result<()> {
    if nodes == 0 {
        anyhow::bail!("--nodes must be 1 or more");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_key = dir.join("ca.key");
    let ca = if ca_key.exists() {
        let pem = std::fs::read_to_string(&ca_key)
            .with_context(|| format!("reading {}", ca_key.display()))?;
        let ca = DevCa::from_key_pem(&pem).with_context(|| format!("{}", ca_key.display()))?;
        println!("kept the CA of {}", ca_key.display());
        ca
    } else {
        let (ca, key_pem) = DevCa::new()?;
        write(dir, "ca.key", &key_pem, true)?;
        write(
            dir,
            "ca.pem",
            ca.cert_pem.as_deref().unwrap_or_default(),
            false,
        )?;
        println!("wrote a new CA: {}", dir.join("ca.pem").display());
        ca
    };
    for id in 1..=nodes {
        let issued = ca.issue_node(NodeId(id), hosts)?;
        write_pair(dir, &format!("node-{id}"), &issued)?;
    }
    let issued = ca.issue(&[client.to_owned()])?;
    write_pair(dir, "client", &issued)?;
    println!(
        "wrote node-1..{nodes}.pem/.key and client.pem/.key in {}\n\
         serve with: --tls-cert {d}/node-ID.pem --tls-key {d}/node-ID.key --tls-ca {d}/ca.pem\n\
         clients:    --tls-ca {d}/ca.pem",
        dir.display(),
        d = dir.display()
    );
    Ok(())
}

fn write_pair(dir: &Path, stem: &str, issued: &Issued) -> anyhow::Result<()> {
    // The key first: a reload between the two writes then fails (key and
    // certificate do not match) and keeps the old pair, rather than
    // loading a new certificate with the old key.
    write(dir, &format!("{stem}.key"), &issued.key_pem, true)?;
    write(dir, &format!("{stem}.pem"), &issued.cert_pem, false)
}

/// Writes `name` whole or not at all (a temporary file, then a rename), so
/// that a server reloading meanwhile reads the old file or the new one;
/// keys are readable by their owner only.
fn write(dir: &Path, name: &str, text: &str, secret: bool) -> anyhow::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
