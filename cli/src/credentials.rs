//! The credential the client commands present in their `Hello`:
//! `--auth-token` (or `$DISTLOCK_AUTH_TOKEN`), or the first line of
//! `--auth-token-file`. Read once at start; every command's connections
//! use it. `DISTLOCK_TOKEN` is not used for it: `distlock lock` gives its
//! command the fencing token in that variable.

use distlock_core::proto::AuthToken;
use std::path::PathBuf;
use std::sync::OnceLock;

static TOKEN: OnceLock<Option<AuthToken>> = OnceLock::new();

/// The flags of every command that talks to a cluster.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct CredentialArgs {
    /// The bearer token to present when the servers require
    /// authentication (see docs/SECURITY.md). Prefer
    /// $DISTLOCK_AUTH_TOKEN or --auth-token-file: a flag shows in `ps`.
    #[arg(
        long,
        env = "DISTLOCK_AUTH_TOKEN",
        hide_env_values = true,
        global = true,
        conflicts_with = "auth_token_file"
    )]
    auth_token: Option<String>,
    /// A file whose first line is the bearer token.
    #[arg(
        long,
        env = "DISTLOCK_AUTH_TOKEN_FILE",
        value_name = "FILE",
        global = true
    )]
    auth_token_file: Option<PathBuf>,
}

impl CredentialArgs {
    /// Reads the token and makes it the one every connection presents.
    ///
    /// # Errors
    /// When the token file cannot be read or is empty.
    pub(crate) fn install(&self) -> anyhow::Result<()> {
        let token = match (&self.auth_token, &self.auth_token_file) {
            (Some(t), _) => Some(t.trim().to_owned()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read the token file {}: {e}", path.display())
                })?;
                let line = text.lines().next().unwrap_or("").trim().to_owned();
                if line.is_empty() {
                    anyhow::bail!("the token file {} is empty", path.display());
                }
                Some(line)
            }
            (None, None) => None,
        };
        let _ = TOKEN.set(token.filter(|t| !t.is_empty()).map(AuthToken::new));
        Ok(())
    }
}

/// The token to present, if any.
pub(crate) fn token() -> Option<AuthToken> {
    TOKEN.get().cloned().flatten()
}
