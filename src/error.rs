//! The crate's one error type. Every variant names what a curator needs to act: the file, the
//! record, and what to do next.

use std::path::PathBuf;

/// Everything that can go wrong in aniprint's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file is not media aniprint can read (corrupt, truncated, wrong type, empty).
    #[error("{path}: cannot read media: {reason}")]
    Media {
        /// The file involved.
        path: PathBuf,
        /// What the decoder said, in words.
        reason: String,
    },
    /// The media has no audio stream, or not the one asked for.
    #[error("{path}: {reason}")]
    NoAudio {
        /// The file involved.
        path: PathBuf,
        /// Which stream was looked for and what the file has.
        reason: String,
    },
    /// The audio decoded but is unusable (silent, too short).
    #[error("{path}: {reason}")]
    BadAudio {
        /// The file involved.
        path: PathBuf,
        /// Why the audio is not kept.
        reason: String,
    },
    /// A path given on the command line holds nothing aniprint can ingest.
    #[error("{path}: no media files found (use --recursive to look inside sub-folders)")]
    NoMedia {
        /// The directory or path given.
        path: PathBuf,
    },
    /// The LMDB catalog failed.
    #[error("catalog: {0}")]
    Catalog(#[from] heed::Error),
    /// A catalog record could not be encoded or decoded.
    #[error("catalog record {what}: {reason}")]
    Record {
        /// Which record kind.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The catalog was written by a different, incompatible version of aniprint.
    #[error(
        "catalog at {path} has schema version {found}, this aniprint reads up to {expected}: \
         export what you need with the aniprint that wrote it, or use a new --catalog directory"
    )]
    SchemaMismatch {
        /// The catalog directory.
        path: PathBuf,
        /// Schema version stored in the catalog.
        found: u32,
        /// Schema version this build writes.
        expected: u32,
    },
    /// Another process has the catalog open (see [`crate::catalog::Catalog::compact`]).
    #[error(
        "catalog at {path} is open in another aniprint process (the TUI, an ingest, a scan): \
         close it and run this again"
    )]
    CatalogBusy {
        /// The catalog directory.
        path: PathBuf,
    },
    /// A record that was asked for does not exist.
    #[error("{kind} {id} not found in the catalog")]
    NotFound {
        /// Record kind, e.g. "piece".
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A model failed to load or run.
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// A configuration or model card is invalid.
    #[error("config {path}: {reason}")]
    Config {
        /// The file or setting involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Invalid input given by the user (a flag value, a time range).
    #[error("{0}")]
    Invalid(String),
    /// Writing a CSV file failed.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// Records failed validation (a rights import or `rights add`); nothing was stored.
    #[error("{what}: {} problem(s), nothing was stored:{}", problems.len(), list_problems(problems))]
    Rejected {
        /// The input: a file name or `rights add`.
        what: String,
        /// Every problem found, by row and column.
        problems: Vec<crate::rights::Problem>,
    },
    /// A review status change that the workflow does not allow.
    #[error("{kind} {id}: cannot go from {from} to {to} (allowed from {from}: {allowed})")]
    InvalidTransition {
        /// Record kind, e.g. "match".
        kind: &'static str,
        /// The record's id.
        id: String,
        /// Its current status.
        from: String,
        /// The status asked for.
        to: String,
        /// The statuses it may move to.
        allowed: String,
    },
    /// The job was cancelled by the user; nothing partial was stored.
    #[error("cancelled")]
    Cancelled,
}

/// `Result` with aniprint's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn list_problems(problems: &[crate::rights::Problem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

impl Error {
    /// Attach a path to an I/O error.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// A media error for `path` with a reason.
    pub fn media(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Media { path: path.into(), reason: reason.into() }
    }
}
