//! The record kinds the catalog stores, serde-encoded as JSON values in LMDB.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::media::StreamInfo;
use crate::units::{SampleRate, Samples, Seconds};

/// A series (a show): the grouping curators browse by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Display name; also the key.
    pub name: String,
    /// When it was first ingested (Unix ms, UTC).
    pub created_ms: u64,
}

/// One ingested episode file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Stable id: the first 12 hex digits of the content's SHA-256.
    pub id: String,
    /// Series name.
    pub series: String,
    /// Title (from the container's title tag, else the file stem).
    pub title: String,
    /// Absolute path at ingest (lossy UTF-8 for display; [`Episode::source_path`] reopens it).
    pub path: String,
    /// The path's bytes when they are not UTF-8 (a Unix file name in Shift-JIS, say), which
    /// `path` cannot hold; none otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<Vec<u8>>,
    /// Full SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Decoded duration.
    pub duration: Seconds,
    /// Every stream in the file.
    pub streams: Vec<StreamInfo>,
    /// Index of the audio stream that was decoded.
    pub audio_stream: usize,
    /// Language of that stream, if tagged.
    pub language: Option<String>,
    /// The stream's native sample rate, if known.
    pub source_rate: Option<u32>,
    /// Rate the pieces' sample positions are counted in.
    pub work_rate: SampleRate,
    /// Number of pieces.
    pub pieces: u32,
    /// When it was ingested (Unix ms, UTC).
    pub ingested_ms: u64,
}

impl Episode {
    /// The path a source is stored under: `path`, or its bytes when they are not UTF-8.
    pub fn path_fields(path: &Path) -> (String, Option<Vec<u8>>) {
        let text = path.to_string_lossy().into_owned();
        #[cfg(unix)]
        if path.to_str().is_none() {
            use std::os::unix::ffi::OsStrExt;
            return (text, Some(path.as_os_str().as_bytes().to_vec()));
        }
        (text, None)
    }

    /// The source file as ingested, to open again (export, preview, playback).
    pub fn source_path(&self) -> PathBuf {
        #[cfg(unix)]
        if let Some(bytes) = &self.path_bytes {
            use std::os::unix::ffi::OsStrExt;
            return PathBuf::from(std::ffi::OsStr::from_bytes(bytes));
        }
        PathBuf::from(&self.path)
    }
}

/// A piece's curation status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum PieceStatus {
    /// Not reviewed yet (exported like `keep` unless `--only-kept`).
    #[default]
    Unreviewed,
    /// Kept for the dataset.
    Keep,
    /// Dropped from the dataset.
    Drop,
}

impl PieceStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PieceStatus::Unreviewed => "unreviewed",
            PieceStatus::Keep => "keep",
            PieceStatus::Drop => "drop",
        }
    }
}

/// Automatic quality flags on a piece, for curators to review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityFlag {
    /// Mostly digital silence.
    Silence,
    /// Many samples at full scale.
    Clipping,
    /// Very quiet overall (RMS under -35 dBFS).
    LowLevel,
    /// Shorter than the minimum piece length (a short source file).
    TooShort,
}

impl QualityFlag {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            QualityFlag::Silence => "silence",
            QualityFlag::Clipping => "clipping",
            QualityFlag::LowLevel => "low_level",
            QualityFlag::TooShort => "too_short",
        }
    }
}

/// A ~3-minute stretch of an episode: the unit of curation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Piece {
    /// Stable id: `<episode id>-<start in ms, 9 digits>`, sortable within an episode.
    pub id: String,
    /// Episode id.
    pub episode: String,
    /// 0-based index within the episode.
    pub index: u32,
    /// First sample, at the episode's `work_rate`.
    pub start: Samples,
    /// End sample (exclusive).
    pub end: Samples,
    /// Curation status.
    pub status: PieceStatus,
    /// Quality flags found at ingest.
    pub flags: Vec<QualityFlag>,
    /// RMS level in dBFS.
    pub rms_dbfs: f32,
}

impl Piece {
    /// The piece id for an episode and a start time.
    pub fn make_id(episode: &str, start: Seconds) -> String {
        format!("{episode}-{:09}", (start.0 * 1000.0).round() as u64)
    }

    /// Start and end in seconds.
    pub fn span(&self, rate: SampleRate) -> (Seconds, Seconds) {
        (rate.seconds(self.start), rate.seconds(self.end))
    }
}
