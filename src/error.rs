//! One error type for the whole crate. Every variant has a stable `code()` that the
//! Node binding puts on the JS `Error`, so callers can branch on it without parsing text.

use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in monque. Validation errors are returned before
/// anything is written to the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job name is empty, too long or contains control characters.
    #[error("invalid job name {name:?}: {reason}")]
    InvalidJobName {
        /// The name (its first 64 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An option is out of range or inconsistent with another option.
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// Job data (or a result or progress value), encoded as JSON, is over its limit.
    #[error("{size} bytes of JSON, over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The data's size in bytes.
        size: usize,
        /// `max_payload_size`.
        limit: usize,
    },

    /// The job's data cannot be stored as given (operator-like or dotted keys, bad JSON).
    #[error("invalid job data: {0}")]
    InvalidData(String),

    /// A job id is not a 24-character hex ObjectId.
    #[error("invalid job id {0:?}: expected a 24-character hex ObjectId")]
    InvalidJobId(String),

    /// A cron expression cannot be parsed, or never fires.
    #[error("invalid cron expression {expression:?}: {reason}")]
    InvalidCron {
        /// The expression as given.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A timezone is not an IANA name known to this build (e.g. `Europe/Berlin`).
    #[error("unknown timezone {0:?}: expected an IANA name such as \"Europe/Berlin\"")]
    InvalidTimezone(String),

    /// A repeat interval cannot be parsed or is shorter than one second.
    #[error("invalid interval {interval:?}: {reason}")]
    InvalidInterval {
        /// The interval as given.
        interval: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// No job has this id.
    #[error("job {0} not found")]
    JobNotFound(String),

    /// A `depends_on` entry names a job that cannot be waited for.
    #[error("invalid dependency: {0}")]
    InvalidDependency(String),

    /// The job's current status does not allow the operation.
    #[error("cannot {action} job {id}: it is {status}")]
    InvalidTransition {
        /// The job id.
        id: String,
        /// What was asked (`cancel`, `retry`, ...).
        action: &'static str,
        /// The job's status when it was asked.
        status: crate::status::JobStatus,
    },

    /// A bulk operation's selector is empty or inconsistent: bulk operations never touch
    /// every job by accident.
    #[error("invalid selector: {0}")]
    InvalidSelector(&'static str),

    /// A pagination cursor is not one this queue returned.
    #[error("invalid cursor {0:?}")]
    InvalidCursor(String),

    /// A worker for this job name is already registered on this instance.
    #[error("a worker for job `{0}` is already registered; pass `replace: true` to swap it")]
    WorkerExists(String),

    /// The queue was asked to do something it cannot do in its current state.
    #[error("{0}")]
    InvalidState(&'static str),

    /// The server could not be reached (server selection timed out, network failure).
    /// The message says what failed first, in one line; [`Error::detail`] has the
    /// driver's whole report (its view of every server).
    #[error(
        "cannot reach MongoDB {} (waited {timeout:?})",
        connection_summary(source)
    )]
    Connection {
        /// How long the driver waited.
        timeout: Duration,
        /// The driver's error.
        #[source]
        source: Box<mongodb::error::Error>,
    },

    /// The connection string is malformed.
    #[error("invalid connection string: {0}")]
    InvalidUri(String),

    /// Any other error the server or driver returned.
    #[error("database error: {0}")]
    Database(#[source] Box<mongodb::error::Error>),
}

impl Error {
    /// A stable, machine-readable code for this error (the JS `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidJobName { .. } => "INVALID_JOB_NAME",
            Error::InvalidOption { .. } => "INVALID_OPTION",
            Error::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Error::InvalidData(_) => "INVALID_DATA",
            Error::InvalidJobId(_) => "INVALID_JOB_ID",
            Error::InvalidCron { .. } => "INVALID_CRON",
            Error::InvalidTimezone(_) => "INVALID_TIMEZONE",
            Error::InvalidInterval { .. } => "INVALID_INTERVAL",
            Error::JobNotFound(_) => "JOB_NOT_FOUND",
            Error::InvalidDependency(_) => "INVALID_DEPENDENCY",
            Error::InvalidTransition { .. } => "INVALID_TRANSITION",
            Error::InvalidSelector(_) => "INVALID_SELECTOR",
            Error::InvalidCursor(_) => "INVALID_CURSOR",
            Error::WorkerExists(_) => "WORKER_EXISTS",
            Error::InvalidState(_) => "INVALID_STATE",
            Error::Connection { .. } => "CONNECTION_ERROR",
            Error::InvalidUri(_) => "INVALID_URI",
            Error::Database(_) => "DATABASE_ERROR",
        }
    }

    /// The driver's whole report behind a `CONNECTION_ERROR` or `DATABASE_ERROR`, for
    /// logs; the message itself stays one line.
    pub fn detail(&self) -> Option<String> {
        match self {
            Error::Connection { source, .. } | Error::Database(source) => Some(source.to_string()),
            _ => None,
        }
    }

    pub(crate) fn option(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            name,
            reason: reason.into(),
        }
    }

    /// Wraps a driver error, telling "cannot reach the server" apart from the rest.
    pub(crate) fn from_driver(err: mongodb::error::Error, timeout: Duration) -> Self {
        use mongodb::error::ErrorKind;
        let unreachable = matches!(
            *err.kind,
            ErrorKind::Io(_)
                | ErrorKind::ConnectionPoolCleared { .. }
                | ErrorKind::ServerSelection { .. }
                | ErrorKind::DnsResolve { .. }
        );
        if unreachable {
            Error::Connection {
                timeout,
                source: Box::new(err),
            }
        } else {
            Error::Database(Box::new(err))
        }
    }

    /// True for the server's duplicate-key error (E11000), which the uniqueKey index raises.
    pub(crate) fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
        use mongodb::error::{ErrorKind, WriteFailure};
        match &*err.kind {
            ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
            ErrorKind::Command(e) => e.code == 11000,
            ErrorKind::InsertMany(e) => e
                .write_errors
                .as_ref()
                .is_some_and(|errs| errs.iter().all(|e| e.code == 11000)),
            _ => false,
        }
    }
}

/// "at <host>: <cause>" from a driver error, the first server's when it names several.
/// The driver reports server selection as one long topology dump; an operator needs
/// the host and why it failed.
fn connection_summary(err: &mongodb::error::Error) -> String {
    summarize_topology(&err.kind.to_string())
}

fn summarize_topology(text: &str) -> String {
    let servers: Vec<(String, String)> = text
        .split("Address: ")
        .skip(1)
        .map(|server| {
            let host = server
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let cause = server
                .split_once("Error: ")
                .map(|(_, rest)| rest.split(", labels:").next().unwrap_or(rest))
                .map(|cause| cause.trim_start_matches("Kind: ").trim().to_owned())
                .unwrap_or_else(|| "no answer".to_owned());
            (host, cause)
        })
        .collect();
    match servers.as_slice() {
        [] => format!(": {}", text.split(". Topology").next().unwrap_or(text)),
        [(host, cause)] => format!("at {host}: {cause}"),
        [(host, cause), rest @ ..] => {
            format!("at {host}: {cause} (and {} more servers)", rest.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_error_says_which_host_and_why_in_one_line() {
        let one = "Server selection timeout: No available servers. Topology: { Type: Single, Servers: [ { Address: 127.0.0.1:1, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), labels: {\"RetryableError\"}, source: None, server response: None } ] }, labels: {}";
        assert_eq!(
            summarize_topology(one),
            "at 127.0.0.1:1: I/O error: Connection refused (os error 111)"
        );
        let two = "Server selection timeout: None of the available servers suitable. Topology: { Type: ReplicaSetNoPrimary, Servers: [ { Address: a:27017, Type: Unknown, Error: Kind: I/O error: timed out, labels: {} }, { Address: b:27017, Type: RsSecondary, Average RTT: 1ms } ] }";
        assert_eq!(
            summarize_topology(two),
            "at a:27017: I/O error: timed out (and 1 more servers)"
        );
        assert_eq!(
            summarize_topology("I/O error: broken pipe"),
            ": I/O error: broken pipe"
        );
    }
}
