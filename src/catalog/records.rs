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
    /// Season and episode number, from the container's tags or the file name (none in records
    /// stored before they were kept: [`Episode::numbering`] reads the file name then).
    #[serde(default, skip_serializing_if = "Numbering::is_empty")]
    pub numbering: Numbering,
}

/// How a file's path is stored (an episode's, an upload's): as text, and also as its bytes when
/// it is not UTF-8, which the text (lossy, for display) cannot hold.
pub fn path_fields(path: &Path) -> (String, Option<Vec<u8>>) {
    let text = path.to_string_lossy().into_owned();
    #[cfg(unix)]
    if path.to_str().is_none() {
        use std::os::unix::ffi::OsStrExt;
        return (text, Some(path.as_os_str().as_bytes().to_vec()));
    }
    (text, None)
}

/// The path [`path_fields`] stored, to open the file again.
pub fn stored_path(text: &str, bytes: Option<&[u8]>) -> PathBuf {
    #[cfg(unix)]
    if let Some(bytes) = bytes {
        use std::os::unix::ffi::OsStrExt;
        return PathBuf::from(std::ffi::OsStr::from_bytes(bytes));
    }
    PathBuf::from(text)
}

impl Episode {
    /// The source file as ingested, to open again (export, preview, playback).
    pub fn source_path(&self) -> PathBuf {
        stored_path(&self.path, self.path_bytes.as_deref())
    }

    /// Channels to decode the ingested stream with again: its own, mono or stereo (stereo when
    /// unknown).
    pub fn decode_channels(&self) -> u16 {
        let stream = self.streams.iter().find(|s| s.index == self.audio_stream);
        stream.and_then(|s| s.channels).unwrap_or(2).clamp(1, 2)
    }

    /// Season and episode number: those on record, else what the file name says.
    pub fn numbering(&self) -> Numbering {
        let name = Path::new(&self.path).file_name().map(|n| n.to_string_lossy());
        self.numbering.clone().or(name.map(|n| Numbering::from_file_name(&n)).unwrap_or_default())
    }
}

/// An episode's place in its series, as rights teams cite it: season and episode number as
/// text ("2", "12.5", "1-2" for a double episode), each absent when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Numbering {
    /// Season number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season: Option<String>,
    /// Episode number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode: Option<String>,
}

impl Numbering {
    /// Neither number known.
    pub fn is_empty(&self) -> bool {
        self.season.is_none() && self.episode.is_none()
    }

    /// What a release-style file name says ("[Group] Show - 05 (1080p).mkv", "Show.S01E07.mkv",
    /// "Show 2nd Season - 04.mkv", "Show 第3話.mkv"), by anitomy's rules (the parser media
    /// players and trackers use for anime file names).
    pub fn from_file_name(name: &str) -> Self {
        let elements = anitomy_ng::parse(name, anitomy_ng::Options::default());
        let joined = |kind| {
            let v: Vec<String> = elements
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| plain_number(&e.value))
                .collect();
            (!v.is_empty()).then(|| v.join("-"))
        };
        Self {
            season: joined(anitomy_ng::ElementKind::Season),
            episode: joined(anitomy_ng::ElementKind::Episode),
        }
    }

    /// What container tags say: MP4's `season_number` and `episode_sort` (FFmpeg's names for
    /// iTunes' `tvsn` and `tves`), the same names in Matroska, and Matroska's `PART_NUMBER`
    /// (an episode's number in its season); the first name in that order wins.
    pub fn from_tags(tags: &[(String, String)]) -> Self {
        let tag = |names: &[&str]| {
            names.iter().find_map(|n| {
                tags.iter()
                    .find(|(k, v)| k.eq_ignore_ascii_case(n) && !v.trim().is_empty())
                    .map(|(_, v)| plain_number(v.trim()))
            })
        };
        Self {
            season: tag(&["season_number", "season"]),
            episode: tag(&["episode_sort", "episode_number", "episode", "part_number"]),
        }
    }

    /// Short form for listings: `S2E7`, `E12`, `S2`, or `-`.
    pub fn label(&self) -> String {
        match (&self.season, &self.episode) {
            (Some(s), Some(e)) => format!("S{s}E{e}"),
            (None, Some(e)) => format!("E{e}"),
            (Some(s), None) => format!("S{s}"),
            (None, None) => "-".into(),
        }
    }

    /// Each number from `self`, else from `other`.
    pub fn or(self, other: Numbering) -> Self {
        Self { season: self.season.or(other.season), episode: self.episode.or(other.episode) }
    }
}

/// "05" -> "5": tags and file names write the same number with and without zeros.
fn plain_number(n: &str) -> String {
    if n.len() > 1 && n.bytes().all(|b| b.is_ascii_digit()) {
        let t = n.trim_start_matches('0');
        if t.is_empty() { "0".into() } else { t.into() }
    } else {
        n.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(season: Option<&str>, episode: Option<&str>) -> Numbering {
        Numbering { season: season.map(Into::into), episode: episode.map(Into::into) }
    }

    #[test]
    fn file_names_give_season_and_episode() {
        for (name, want) in [
            (
                "[SubsPlease] Sousou no Frieren - 05 (1080p) [ABCD1234].mkv",
                numbers(None, Some("5")),
            ),
            ("Cowboy.Bebop.S01E07.1080p.BluRay.x264.mkv", numbers(Some("1"), Some("7"))),
            ("[Group] Title 2nd Season - 04.mkv", numbers(Some("2"), Some("4"))),
            ("[Group] Title - 12.5 [x].mkv", numbers(None, Some("12.5"))),
            ("Title - 01v2 - Tiger and Dragon.mkv", numbers(None, Some("1"))),
            ("Title 第3話.mkv", numbers(None, Some("3"))),
            ("ep01.mkv", numbers(None, Some("1"))),
            ("Show - 00.mkv", numbers(None, Some("0"))),
            ("speech.wav", numbers(None, None)),
        ] {
            assert_eq!(Numbering::from_file_name(name), want, "{name}");
        }
    }

    #[test]
    fn tags_come_before_the_file_name() {
        let tags =
            vec![("SEASON_NUMBER".to_string(), "02".to_string()), ("title".into(), "x".into())];
        let from_tags = Numbering::from_tags(&tags);
        assert_eq!(from_tags, numbers(Some("2"), None));
        let both = from_tags.or(Numbering::from_file_name("Show.S01E07.mkv"));
        assert_eq!(both, numbers(Some("2"), Some("7")));
        assert_eq!(both.label(), "S2E7");
        assert_eq!(numbers(None, Some("12.5")).label(), "E12.5");
        assert_eq!(Numbering::default().label(), "-");
        assert!(Numbering::from_tags(&[("episode_sort".into(), " ".into())]).is_empty());
        // By name, not by the order the file lists them in.
        let tags =
            vec![("PART_NUMBER".to_string(), "3".to_string()), ("episode_sort".into(), "4".into())];
        assert_eq!(Numbering::from_tags(&tags), numbers(None, Some("4")));
    }

    #[test]
    fn records_without_numbers_read_the_file_name() {
        let json = r#"{"id":"a","series":"S","title":"t","path":"/m/Show S2 - 03.mkv","sha256":"x",
            "size_bytes":1,"duration":1.0,"streams":[],"audio_stream":0,"language":null,
            "source_rate":null,"work_rate":8000,"pieces":1,"ingested_ms":0}"#;
        let ep: Episode = serde_json::from_str(json).unwrap();
        assert!(ep.numbering.is_empty());
        assert_eq!(ep.numbering(), numbers(Some("2"), Some("3")));
        // Empty numbers are not written, so older aniprints read the record unchanged.
        assert!(!serde_json::to_string(&ep).unwrap().contains("numbering"));
    }
}
