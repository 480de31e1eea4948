//! [`SyncError`]: why sync could not start, or an operator command failed.

/// Why sync could not start, or an operator command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    /// A setting is invalid (bad URL, namespace, duration). Never contains a
    /// password.
    Config(String),
    /// Redis could not be reached or answered with an error.
    Redis(String),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Config(s) => write!(f, "invalid sync configuration: {s}"),
            SyncError::Redis(s) => write!(f, "redis: {s}"),
        }
    }
}

impl std::error::Error for SyncError {}
