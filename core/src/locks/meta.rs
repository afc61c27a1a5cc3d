//! A session's name and metadata: who opened it (a name, a host, a
//! process id, free-form labels), so that operators see who holds a lock
//! rather than a bare session id.
//!
//! Metadata travels in the log and in snapshots, and every status read
//! repeats it, so it is bounded: [`SessionMeta::check`] refuses an
//! oversized or ill-formed one before it is proposed, and apply refuses it
//! again (every replica alike). Control characters are refused so that a
//! name printed on an operator's terminal cannot move its cursor.

use super::response::LockError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest session name, in bytes.
pub const MAX_META_NAME: u32 = 128;
/// Longest host name, in bytes.
pub const MAX_META_HOST: u32 = 255;
/// Most labels.
pub const MAX_META_LABELS: u32 = 16;
/// Longest label key, in bytes (keys are at least 1 byte).
pub const MAX_META_LABEL_KEY: u32 = 64;
/// Longest label value, in bytes.
pub const MAX_META_LABEL_VALUE: u32 = 256;

/// Who opened a session, as its client says. Nothing here is checked
/// against reality: it is for people reading status, not for security.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionMeta {
    /// A name for people (the CLI's default: `user@host pid`).
    pub name: String,
    /// The client's host name.
    pub host: String,
    /// The client's process id.
    pub pid: Option<u32>,
    /// Free-form labels, by key.
    pub labels: BTreeMap<String, String>,
}

/// Which part of a [`SessionMeta`] is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetaField {
    /// `name`.
    Name,
    /// `host`.
    Host,
    /// A label's key.
    LabelKey,
    /// A label's value.
    LabelValue,
}

/// Why a [`SessionMeta`] is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum MetaError {
    /// A field is longer than its limit (or a label key is empty).
    #[error("session {field:?} must be at most {max} bytes, got {len}")]
    Length {
        /// The field.
        field: MetaField,
        /// Its length in bytes.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// More labels than [`MAX_META_LABELS`].
    #[error("at most {max} session labels, got {count}")]
    TooManyLabels {
        /// How many were given.
        count: u64,
        /// The limit.
        max: u32,
    },
    /// A field holds a control character (a newline, an escape...).
    #[error("session {field:?} holds a control character")]
    ControlCharacter {
        /// The field.
        field: MetaField,
    },
}

impl SessionMeta {
    /// Checks every bound; the state machine refuses what this refuses,
    /// with [`LockError::InvalidSessionMeta`].
    ///
    /// # Errors
    /// The first problem found.
    pub fn check(&self) -> Result<(), MetaError> {
        check_text(MetaField::Name, &self.name, 0, MAX_META_NAME)?;
        check_text(MetaField::Host, &self.host, 0, MAX_META_HOST)?;
        if self.labels.len() > MAX_META_LABELS as usize {
            return Err(MetaError::TooManyLabels {
                count: self.labels.len() as u64,
                max: MAX_META_LABELS,
            });
        }
        for (key, value) in &self.labels {
            check_text(MetaField::LabelKey, key, 1, MAX_META_LABEL_KEY)?;
            check_text(MetaField::LabelValue, value, 0, MAX_META_LABEL_VALUE)?;
        }
        Ok(())
    }

    /// [`Self::check`] as the state machine's refusal.
    pub(super) fn check_lock(&self) -> Result<(), LockError> {
        self.check().map_err(LockError::InvalidSessionMeta)
    }
}

fn check_text(field: MetaField, text: &str, min: usize, max: u32) -> Result<(), MetaError> {
    if text.len() < min || text.len() > max as usize {
        return Err(MetaError::Length {
            field,
            len: text.len() as u64,
            max,
        });
    }
    if text.chars().any(char::is_control) {
        return Err(MetaError::ControlCharacter { field });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced() {
        let ok = SessionMeta {
            name: "alice@db1 4242".to_owned(),
            host: "db1".to_owned(),
            pid: Some(4242),
            labels: [("role".to_owned(), "backup".to_owned())].into(),
        };
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(SessionMeta::default().check(), Ok(()));
        let long_name = SessionMeta {
            name: "n".repeat(129),
            ..ok.clone()
        };
        assert_eq!(
            long_name.check(),
            Err(MetaError::Length {
                field: MetaField::Name,
                len: 129,
                max: MAX_META_NAME
            })
        );
        let newline = SessionMeta {
            host: "a\nb".to_owned(),
            ..ok.clone()
        };
        assert_eq!(
            newline.check(),
            Err(MetaError::ControlCharacter {
                field: MetaField::Host
            })
        );
        let many = SessionMeta {
            labels: (0..17).map(|i| (format!("k{i}"), String::new())).collect(),
            ..ok.clone()
        };
        assert_eq!(
            many.check(),
            Err(MetaError::TooManyLabels { count: 17, max: 16 })
        );
        let empty_key = SessionMeta {
            labels: [(String::new(), "v".to_owned())].into(),
            ..ok
        };
        assert!(matches!(
            empty_key.check(),
            Err(MetaError::Length {
                field: MetaField::LabelKey,
                len: 0,
                ..
            })
        ));
    }
}
