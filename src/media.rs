//! Audio in: probing containers, picking the audio stream, decoding and resampling to the
//! working rate, and cutting long audio into ~3-minute pieces at quiet points.
//!
//! Video containers (mkv, mp4, webm, ts, ...) go through FFmpeg (ffmpeg-next); plain audio files
//! go through symphonia first and fall back to FFmpeg for what symphonia cannot read (Opus, AC3).
//! Decoding is streaming: [`AudioSource`] yields chunks, so no stage needs a whole file in memory.

pub mod crop;
mod ffmpeg;
mod resample;
mod symphonia;
pub mod write;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::units::{SampleRate, Seconds};
use crate::{Error, Result};

pub use self::ffmpeg::probe;

/// What kind of stream a container holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
    /// Subtitles.
    Subtitle,
    /// Anything else (attachments, data).
    Other,
}

/// One stream of a media file, as FFmpeg reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// Index of the stream in the container (what `--audio-stream` takes).
    pub index: usize,
    /// Audio, video, subtitle or other.
    pub kind: StreamKind,
    /// Codec name, e.g. `aac`, `opus`.
    pub codec: String,
    /// ISO 639-2 language tag, e.g. `jpn`, if the container has one.
    pub language: Option<String>,
    /// The stream's title tag, if any.
    pub title: Option<String>,
    /// Whether the container marks the stream as default.
    pub default: bool,
    /// Channel count (audio only).
    pub channels: Option<u16>,
    /// Sample rate in Hz (audio only).
    pub sample_rate: Option<u32>,
}

/// What a media file holds: container, duration, streams and tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Container format name(s), e.g. `matroska,webm`.
    pub format: String,
    /// Duration the container declares, if it declares one.
    pub duration: Option<Seconds>,
    /// Every stream, in container order.
    pub streams: Vec<StreamInfo>,
    /// Container-level tags (title, encoder, ...).
    pub tags: Vec<(String, String)>,
}

impl MediaInfo {
    /// The web page the file was downloaded from, when its tags say: the first `purl`,
    /// `comment` or `url` tag that is one web address (yt-dlp's `--embed-metadata` writes the
    /// page's address into `purl` and `comment`).
    pub fn source_url(&self) -> Option<String> {
        ["purl", "comment", "url"].iter().find_map(|name| {
            let (_, v) = self.tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
            let v = v.trim();
            let web = v.starts_with("https://") || v.starts_with("http://");
            (web && !v.contains(char::is_whitespace)).then(|| v.to_string())
        })
    }

    /// The audio streams only.
    pub fn audio_streams(&self) -> impl Iterator<Item = &StreamInfo> {
        self.streams.iter().filter(|s| s.kind == StreamKind::Audio)
    }

    /// Resolve a stream choice to a stream of this file, or say what the file has instead.
    pub fn select(&self, path: &Path, choice: &StreamSelect) -> Result<&StreamInfo> {
        let mut audio = self.audio_streams().peekable();
        if audio.peek().is_none() {
            return Err(Error::NoAudio { path: path.into(), reason: "no audio stream".into() });
        }
        let found = match choice {
            StreamSelect::Default => {
                self.audio_streams().find(|s| s.default).or_else(|| self.audio_streams().next())
            }
            StreamSelect::Index(i) => self.audio_streams().find(|s| s.index == *i),
            StreamSelect::Language(lang) => self
                .audio_streams()
                .find(|s| s.language.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(lang))),
        };
        found.ok_or_else(|| {
            let have: Vec<String> = self
                .audio_streams()
                .map(|s| format!("#{} {}", s.index, s.language.as_deref().unwrap_or("und")))
                .collect();
            Error::NoAudio {
                path: path.into(),
                reason: format!("no audio stream {choice}; the file has {}", have.join(", ")),
            }
        })
    }
}

/// Which audio stream to decode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamSelect {
    /// The stream marked default, else the first audio stream.
    #[default]
    Default,
    /// The stream with this container index.
    Index(usize),
    /// The first stream with this language tag (ISO 639-2, e.g. `jpn`).
    Language(String),
}

impl std::fmt::Display for StreamSelect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamSelect::Default => write!(f, "(default)"),
            StreamSelect::Index(i) => write!(f, "#{i}"),
            StreamSelect::Language(l) => write!(f, "with language {l}"),
        }
    }
}

/// How to decode: which stream, and the rate and channel count to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Which audio stream.
    pub stream: StreamSelect,
    /// Output sample rate.
    pub rate: SampleRate,
    /// Output channels: 1 (downmix) or 2.
    pub channels: u16,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { stream: StreamSelect::Default, rate: SampleRate(16_000), channels: 1 }
    }
}

/// Samples (interleaved) a decoder gathers before it hands a chunk out: the last chunk of a
/// file may hold fewer, every other at least this many.
pub const MIN_CHUNK: usize = 16_384;

/// Zero the samples that are not finite numbers. A float file can hold infinities or NaNs
/// (a broken encoder, a crafted file); passed on they poison every sum over the audio (a
/// piece's level, a fingerprint) and a record holding one would not read back.
pub(crate) fn zero_non_finite(samples: &mut [f32]) {
    for s in samples.iter_mut().filter(|s| !s.is_finite()) {
        *s = 0.0;
    }
}

/// A streaming decoder: interleaved f32 chunks at the requested rate and channel count.
pub trait AudioSource {
    /// The next chunk of interleaved samples, or `None` at the end.
    fn next_chunk(&mut self) -> Result<Option<Vec<f32>>>;
    /// The delivered sample rate.
    fn rate(&self) -> SampleRate;
    /// The delivered channel count.
    fn channels(&self) -> u16;
    /// The stream being decoded.
    fn stream(&self) -> &StreamInfo;
    /// How much of the file's timeline the packets read so far cover, if the reader knows.
    fn media_read(&self) -> Option<MediaRead> {
        None
    }
}

/// How far a file's packets reached, from the first packet's start (both spans in seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediaRead {
    /// Over the audio and video streams (a video that goes on after its audio ends counts;
    /// subtitles and cover art, whose one packet may claim any length, do not).
    pub streams: Seconds,
    /// Over the decoded audio stream's own packets.
    pub audio: Seconds,
}

/// Extensions read by symphonia first (plain audio); everything else goes to FFmpeg.
// m4a/aac go to FFmpeg: symphonia keeps the AAC priming samples (a 46 ms offset on uploads).
const PLAIN_AUDIO: &[&str] = &["wav", "flac", "mp3", "ogg", "oga"];

/// File extensions aniprint picks up when it walks a directory.
pub const MEDIA_EXTENSIONS: &[&str] = &[
    "mkv", "mp4", "m4v", "webm", "avi", "ts", "m2ts", "flv", "mov", "wmv", "mpg", "mpeg", "wav",
    "flac", "mp3", "ogg", "oga", "opus", "m4a", "aac", "ac3", "eac3", "wma", "mka",
];

/// Whether `path` looks like media by its extension.
pub fn is_media_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MEDIA_EXTENSIONS.iter().any(|m| m.eq_ignore_ascii_case(e)))
}

/// Open `path` for streaming decode: symphonia for plain audio, FFmpeg for containers and as the
/// fallback for anything symphonia cannot open or decode.
pub fn open(path: &Path, opts: &DecodeOptions) -> Result<Box<dyn AudioSource>> {
    check_readable(path)?;
    let plain = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PLAIN_AUDIO.iter().any(|m| m.eq_ignore_ascii_case(e)));
    if plain && opts.stream == StreamSelect::Default {
        match symphonia::SymphoniaSource::open(path, opts) {
            Ok(src) => return Ok(Box::new(src)),
            Err(e) => {
                tracing::debug!("symphonia could not read {}: {e}; trying FFmpeg", path.display())
            }
        }
    }
    Ok(Box::new(ffmpeg::FfmpegSource::open(path, opts)?))
}

/// Decode a whole file into memory (interleaved). For short clips and tests; long files should
/// stream through [`open`].
pub fn decode(path: &Path, opts: &DecodeOptions) -> Result<Vec<f32>> {
    let mut src = open(path, opts)?;
    let mut out = Vec::new();
    while let Some(chunk) = src.next_chunk()? {
        out.extend_from_slice(&chunk);
    }
    if out.is_empty() {
        return Err(Error::BadAudio {
            path: path.into(),
            reason: "no audio samples decoded".into(),
        });
    }
    Ok(out)
}

/// Decoded chunks of one file, produced on a thread of its own a bounded number of samples
/// ahead of the reader: decoding is single-threaded, so a caller whose own work uses every core
/// (scan's and ingest's separation and fingerprinting) would otherwise leave a core idle while
/// it decodes.
#[derive(Debug)]
pub struct ReadAhead {
    /// `Ok(None)` marks the end, so a decoder thread that died early is not read as one.
    /// `None` once the end or an error was read.
    rx: Option<std::sync::mpsc::Receiver<Result<Option<Vec<f32>>>>>,
    path: std::path::PathBuf,
    decoder: Option<std::thread::JoinHandle<()>>,
    /// [`AudioSource::media_read`] of the source, set before the end marker is sent.
    media_read: std::sync::Arc<std::sync::Mutex<Option<MediaRead>>>,
}

impl ReadAhead {
    /// Start decoding `path` with `opts` (see [`open`]) in the background. The decoder runs
    /// ahead by `ahead` samples plus up to three chunks (rounding, one chunk waiting to be sent,
    /// one being decoded). An error opening or decoding the file comes out of
    /// [`ReadAhead::next_chunk`], in order; only failing to start the thread is an error here.
    pub fn open(path: &Path, opts: &DecodeOptions, ahead: usize) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(ahead / MIN_CHUNK + 1);
        let (file, opts) = (path.to_path_buf(), opts.clone());
        let media_read = std::sync::Arc::new(std::sync::Mutex::new(None));
        let read_slot = media_read.clone();
        let decoder = std::thread::Builder::new()
            .name("aniprint-decode".into())
            .spawn(move || {
                let mut src = match open(&file, &opts) {
                    Ok(src) => src,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    let item = src.next_chunk();
                    let more = matches!(item, Ok(Some(_)));
                    if matches!(item, Ok(None)) {
                        let mut slot =
                            read_slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        *slot = src.media_read();
                    }
                    // A send fails once the reader has gone (error, cancel): stop decoding.
                    if tx.send(item).is_err() || !more {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io(path, e))?;
        Ok(Self { rx: Some(rx), path: path.to_path_buf(), decoder: Some(decoder), media_read })
    }

    /// Once the end was read: how much of the file's timeline its packets covered, over every
    /// stream ([`AudioSource::media_read`]).
    pub fn media_read(&self) -> Option<MediaRead> {
        *self.media_read.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next chunk of interleaved samples, or `None` at the end. After an error the source
    /// is finished: later calls return `None`.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<f32>>> {
        let Some(rx) = self.rx.as_ref() else {
            return Ok(None);
        };
        let item = match rx.recv() {
            Ok(item) => item,
            // Hung up without an end marker: the decoder panicked. Name its message.
            Err(_) => {
                let why = match self.decoder.take().map(std::thread::JoinHandle::join) {
                    Some(Err(payload)) => payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".into()),
                    _ => "no message".into(),
                };
                Err(Error::media(&self.path, format!("the decoder failed mid-file: {why}")))
            }
        };
        if !matches!(item, Ok(Some(_))) {
            // Finished: hang up, so a decoder still going after an error stops.
            self.rx = None;
        }
        item
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Hanging up makes the decoder's next send fail, so it stops after its current chunk;
        // joining means no decoder outlives its reader (FFmpeg handles, file descriptors).
        self.rx = None;
        if let Some(decoder) = self.decoder.take() {
            let _ = decoder.join();
        }
    }
}

/// Fail early, with the file's name, on paths that cannot be media: missing, directories, empty.
fn check_readable(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::media(path, "is a directory"));
    }
    if meta.len() == 0 {
        return Err(Error::media(path, "empty file (0 bytes)"));
    }
    Ok(())
}

/// Downmix interleaved audio to mono by averaging channels.
pub fn to_mono(interleaved: &[f32], channels: u16) -> Vec<f32> {
    let ch = usize::from(channels.max(1));
    if ch == 1 {
        return interleaved.to_vec();
    }
    interleaved.chunks_exact(ch).map(|f| f.iter().sum::<f32>() / ch as f32).collect()
}

/// Resample mono audio held in memory from `from` to `to` with swresample (the decoders'
/// resampler), returning exactly `round(len * to / from)` samples: the filter's delay is
/// flushed and the tail trimmed or zero-padded to that length.
pub fn resample(mono: &[f32], from: SampleRate, to: SampleRate) -> Result<Vec<f32>> {
    let want = ((mono.len() as u128 * u128::from(to.0) + u128::from(from.0) / 2)
        / u128::from(from.0.max(1))) as usize;
    if from == to || mono.is_empty() {
        let mut out = mono.to_vec();
        out.resize(want, 0.0);
        return Ok(out);
    }
    ffmpeg::init();
    let fail = |e: ffmpeg_next::Error| Error::Media {
        path: "<memory>".into(),
        reason: format!("resampling {} Hz to {} Hz: {e}", from.0, to.0),
    };
    let mut rs = resample::Resampler::new(to.0, 1);
    let mut out = Vec::with_capacity(want + 64);
    // Frames of a bounded size: FFmpeg's frame sizes are int-counted.
    for chunk in mono.chunks(1 << 16) {
        let mut frame = resample::packed_frame(chunk, 1, from.0);
        rs.push(&mut frame, &mut out).map_err(fail)?;
    }
    rs.flush(&mut out).map_err(fail)?;
    out.resize(want, 0.0);
    Ok(out)
}

#[cfg(test)]
mod resample_tests {
    use super::*;

    #[test]
    fn resample_keeps_time_alignment_and_length() {
        let tone = |rate: u32, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
                .collect()
        };
        let x = tone(8000, 8000);
        let y = resample(&x, SampleRate(8000), SampleRate(44_100)).unwrap();
        assert_eq!(y.len(), 44_100);
        let want = tone(44_100, 44_100);
        // Away from the edges the output is the same tone at the same phase: no filter delay.
        let err: f32 = y[4410..39_690]
            .iter()
            .zip(&want[4410..39_690])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.02, "max error {err}");
        assert_eq!(resample(&x, SampleRate(8000), SampleRate(8000)).unwrap(), x);
        assert!(resample(&[], SampleRate(8000), SampleRate(16_000)).unwrap().is_empty());
    }
}
