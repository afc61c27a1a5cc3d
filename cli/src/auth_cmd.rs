//! `distlock auth`: making bearer tokens and the digests the auth file
//! stores (docs/SECURITY.md).

use std::io::Read;

/// `distlock auth` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum AuthCommand {
    /// Draws a new random token (256 bits from the system's random
    /// source): prints the token on the first line (give it to the
    /// client) and its digest on the second (put it in the auth file).
    NewToken,
    /// Prints the digest of TOKEN (or of the first line of standard
    /// input) as the auth file stores it: sha256:HEX.
    HashToken {
        /// The token; read from standard input when absent (keeps it out
        /// of `ps` and the shell's history).
        token: Option<String>,
    },
}

/// Runs the command.
///
/// # Errors
/// When the random source or standard input cannot be read.
pub(crate) fn run(cmd: AuthCommand) -> anyhow::Result<()> {
    match cmd {
        AuthCommand::NewToken => {
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(|e| anyhow::anyhow!("cannot read /dev/urandom: {e}"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let hash = distlock_server::auth::token_hash_text(&token);
            print_lines(&format!("{token}\n{hash}\n"))?;
        }
        AuthCommand::HashToken { token } => {
            let token = match token {
                Some(t) => t,
                None => {
                    let mut text = String::new();
                    std::io::stdin().read_to_string(&mut text)?;
                    text.lines().next().unwrap_or("").trim().to_owned()
                }
            };
            if token.is_empty() {
                anyhow::bail!("no token given");
            }
            print_lines(&format!(
                "{}\n",
                distlock_server::auth::token_hash_text(&token)
            ))?;
        }
    }
    Ok(())
}

/// Writes `text` in one piece; a reader that has gone (`| head -n 1`)
/// has what it wanted, so a broken pipe is not an error.
fn print_lines(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
