//! Who this command line is, as the sessions it opens tell the cluster:
//! by default `user@host pid` with the host and process id, or the name
//! and labels given with `--name` and `--label`.

use distlock_core::locks::{MetaError, SessionMeta};

/// The metadata of this process's sessions: `name` if given, else
/// `user@host pid`; `labels` as `KEY=VALUE`.
///
/// # Errors
/// A label without `=`, or metadata over the protocol's bounds.
pub(crate) fn session_meta(name: Option<&str>, labels: &[String]) -> Result<SessionMeta, String> {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let pid = std::process::id();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "?".to_owned());
    let mut meta = SessionMeta {
        name: name.map_or_else(|| format!("{user}@{host} {pid}"), str::to_owned),
        host,
        pid: Some(pid),
        labels: Default::default(),
    };
    for label in labels {
        let Some((key, value)) = label.split_once('=') else {
            return Err(format!("--label {label:?}: expected KEY=VALUE"));
        };
        meta.labels.insert(key.to_owned(), value.to_owned());
    }
    // A default name or host over the bounds is cut rather than refused:
    // the user did not write it.
    if name.is_none() {
        truncate(&mut meta.name, distlock_core::locks::MAX_META_NAME);
    }
    truncate(&mut meta.host, distlock_core::locks::MAX_META_HOST);
    meta.check().map_err(|e: MetaError| e.to_string())?;
    Ok(meta)
}

fn truncate(text: &mut String, max: u32) {
    let mut end = (max as usize).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_names_user_host_and_pid() {
        let meta = session_meta(None, &[]).expect("valid");
        assert!(meta.name.contains('@'), "{}", meta.name);
        assert!(meta.name.ends_with(&format!(" {}", std::process::id())));
        assert_eq!(meta.pid, Some(std::process::id()));
    }

    #[test]
    fn names_and_labels_are_checked() {
        let meta = session_meta(Some("backup"), &["role=primary".to_owned()]).expect("valid");
        assert_eq!(meta.name, "backup");
        assert_eq!(meta.labels["role"], "primary");
        assert!(session_meta(Some(&"x".repeat(200)), &[]).is_err());
        assert!(session_meta(None, &["novalue".to_owned()]).is_err());
        assert!(session_meta(Some("a\nb"), &[]).is_err());
    }
}
