//! The FFmpeg path (ffmpeg-next): probing any container and decoding its audio stream.

use std::path::Path;
use std::sync::Once;

use ff::media::Type as MediaType;
use ffmpeg_next as ff;

use super::resample::Resampler;
use super::{AudioSource, DecodeOptions, MediaInfo, MediaRead, StreamInfo, StreamKind};
use crate::units::{SampleRate, Seconds};
use crate::{Error, Result};

static INIT: Once = Once::new();

/// Initialise FFmpeg once and silence its logging: libav writes warnings to stderr, which
/// would corrupt the TUI and the CLI's bars. Failures surface as per-file errors instead.
pub(crate) fn init() {
    INIT.call_once(|| {
        // Registration cannot fail on FFmpeg >= 4; an error here would reappear on open.
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Quiet);
    });
}

/// An open input and, for paths that are not UTF-8, the file handle it reads through.
pub(crate) struct Input {
    pub(crate) ctx: ff::format::context::Input,
    _file: Option<std::fs::File>,
}

fn open_input(path: &Path) -> Result<Input> {
    init();
    // ffmpeg-next converts paths with `to_str().unwrap()`, which panics on non-UTF-8 names:
    // open those ourselves and hand FFmpeg the descriptor's /proc path instead.
    let (ffpath, file) = match path.to_str() {
        Some(_) => (path.to_path_buf(), None),
        None => proc_fd_path(path)?,
    };
    let ctx = ff::format::input(&ffpath).map_err(|e| Error::media(path, describe(e)))?;
    Ok(Input { ctx, _file: file })
}

#[cfg(target_os = "linux")]
fn proc_fd_path(path: &Path) -> Result<(std::path::PathBuf, Option<std::fs::File>)> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok((format!("/proc/self/fd/{}", file.as_raw_fd()).into(), Some(file)))
}

#[cfg(not(target_os = "linux"))]
fn proc_fd_path(path: &Path) -> Result<(std::path::PathBuf, Option<std::fs::File>)> {
    Err(Error::media(path, "file names that are not UTF-8 are supported on Linux only"))
}

/// FFmpeg's errors in a curator's words.
fn describe(e: ff::Error) -> String {
    match e {
        ff::Error::InvalidData => "not a media file FFmpeg recognises, or corrupt".into(),
        ff::Error::Eof => "file ends before any media data (truncated?)".into(),
        ff::Error::DecoderNotFound => "no decoder for this codec in this FFmpeg".into(),
        ff::Error::StreamNotFound => "stream not found".into(),
        other => other.to_string(),
    }
}

/// A tag's text as valid UTF-8. ffmpeg-next hands tag values over as `&str` without checking
/// them, and FFmpeg passes some containers' tags on as raw bytes (AVI and WAV INFO tags are
/// often Shift-JIS): unchecked, such a title would make the episode's JSON record unreadable.
fn text(s: &str) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

/// List the streams, duration and tags of any file FFmpeg can open.
pub fn probe(path: &Path) -> Result<MediaInfo> {
    super::check_readable(path)?;
    let input = open_input(path)?;
    let ictx = &input.ctx;
    let duration = (ictx.duration() > 0)
        .then(|| Seconds(ictx.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)));
    let streams = ictx.streams().map(|s| stream_info(&s)).collect();
    let tags = ictx.metadata().iter().map(|(k, v)| (text(k), text(v))).collect();
    Ok(MediaInfo { format: ictx.format().name().to_string(), duration, streams, tags })
}

fn stream_info(s: &ff::format::stream::Stream<'_>) -> StreamInfo {
    let params = s.parameters();
    let kind = match params.medium() {
        MediaType::Audio => StreamKind::Audio,
        MediaType::Video => StreamKind::Video,
        MediaType::Subtitle => StreamKind::Subtitle,
        _ => StreamKind::Other,
    };
    let meta = s.metadata();
    let (channels, sample_rate) = if kind == StreamKind::Audio {
        // SAFETY-free path: read through a decoder context built from the parameters.
        ff::codec::context::Context::from_parameters(params.clone())
            .ok()
            .and_then(|c| c.decoder().audio().ok())
            .map(|a| (Some(a.channels()), Some(a.rate())))
            .unwrap_or((None, None))
    } else {
        (None, None)
    };
    StreamInfo {
        index: s.index(),
        kind,
        codec: params.id().name().to_string(),
        language: meta.get("language").filter(|l| *l != "und").map(text),
        title: meta.get("title").map(text),
        default: s.disposition().contains(ff::format::stream::Disposition::DEFAULT),
        channels,
        sample_rate: sample_rate.filter(|r| *r > 0),
    }
}

/// Streaming decode of one audio stream through FFmpeg, resampled by swresample.
pub(crate) struct FfmpegSource {
    path: std::path::PathBuf,
    input: Input,
    decoder: ff::decoder::Audio,
    stream: StreamInfo,
    resampler: Resampler,
    rate: SampleRate,
    channels: u16,
    eof: bool,
    decoded_any: bool,
    /// Reads in a row that failed with invalid data.
    invalid_run: u32,
    /// Seconds per timestamp tick, by stream index; `None` for the streams that do not count
    /// towards [`MediaRead::streams`].
    time_bases: Vec<Option<f64>>,
    /// First packet start and last packet end over the counted streams, in seconds.
    span: Option<(f64, f64)>,
    /// Last packet end of the decoded audio stream, in seconds.
    audio_end: Option<f64>,
}

/// Reads in a row that may fail with invalid data before the file counts as ending there.
const MAX_INVALID_RUN: u32 = 10_000;

impl FfmpegSource {
    pub(crate) fn open(path: &Path, opts: &DecodeOptions) -> Result<Self> {
        let info = probe(path)?;
        let stream = info.select(path, &opts.stream)?.clone();
        let input = open_input(path)?;
        let params = input
            .ctx
            .stream(stream.index)
            .ok_or_else(|| Error::media(path, "stream vanished between probe and open"))?
            .parameters();
        let decoder = ff::codec::context::Context::from_parameters(params)
            .and_then(|c| c.decoder().audio())
            .map_err(|e| {
                Error::media(path, format!("audio stream #{}: {}", stream.index, describe(e)))
            })?;
        let time_bases = input
            .ctx
            .streams()
            .map(|s| {
                let medium = s.parameters().medium();
                let cover = s.disposition().contains(ff::format::stream::Disposition::ATTACHED_PIC);
                (matches!(medium, MediaType::Audio | MediaType::Video) && !cover)
                    .then(|| f64::from(s.time_base()))
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            input,
            decoder,
            stream,
            resampler: Resampler::new(opts.rate.0, opts.channels),
            rate: opts.rate,
            channels: opts.channels.clamp(1, 2),
            eof: false,
            decoded_any: false,
            invalid_run: 0,
            time_bases,
            span: None,
            audio_end: None,
        })
    }

    /// Widen the span of media read by one packet.
    fn note_span(&mut self, p: &ff::Packet) {
        let Some(&Some(tb)) = self.time_bases.get(p.stream()) else { return };
        let Some(ts) = p.pts().or(p.dts()) else { return };
        let (start, end) = (ts as f64 * tb, ts.saturating_add(p.duration().max(0)) as f64 * tb);
        if !(start.is_finite() && end.is_finite()) {
            return;
        }
        self.span = Some(match self.span {
            None => (start, end),
            Some((a, b)) => (a.min(start), b.max(end)),
        });
        if p.stream() == self.stream.index {
            self.audio_end = Some(self.audio_end.map_or(end, |e| e.max(end)));
        }
    }

    fn drain(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let mut frame = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            self.decoded_any = true;
            self.resampler
                .push(&mut frame, out)
                .map_err(|e| Error::media(&self.path, format!("resampling: {e}")))?;
        }
        Ok(())
    }
}

impl AudioSource for FfmpegSource {
    fn next_chunk(&mut self) -> Result<Option<Vec<f32>>> {
        if self.eof {
            return Ok(None);
        }
        let mut out = Vec::new();
        // Read packets until this chunk holds some audio (a few decoder frames' worth).
        while out.len() < super::MIN_CHUNK {
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input.ctx) {
                Ok(()) => {
                    self.invalid_run = 0;
                    self.note_span(&packet);
                    if packet.stream() != self.stream.index {
                        continue;
                    }
                    // A corrupt packet is skipped, as players do; the rest of the file counts.
                    if let Err(e) = self.decoder.send_packet(&packet) {
                        tracing::warn!("{}: skipping bad packet: {e}", self.path.display());
                        continue;
                    }
                    self.drain(&mut out)?;
                }
                Err(ff::Error::Eof) => {
                    let _ = self.decoder.send_eof();
                    self.drain(&mut out)?;
                    self.resampler
                        .flush(&mut out)
                        .map_err(|e| Error::media(&self.path, format!("resampling: {e}")))?;
                    self.eof = true;
                    break;
                }
                // The demuxer can resync past invalid data, but not forever: one that keeps
                // failing is treated as the file's end.
                Err(ff::Error::InvalidData) if self.invalid_run < MAX_INVALID_RUN => {
                    self.invalid_run += 1;
                    continue;
                }
                Err(e) => {
                    if !self.decoded_any {
                        return Err(Error::media(&self.path, describe(e)));
                    }
                    // Truncated mid-file: keep what decoded, say so in the log.
                    tracing::warn!("{}: stopped reading: {e}", self.path.display());
                    let _ = self.decoder.send_eof();
                    self.drain(&mut out)?;
                    let _ = self.resampler.flush(&mut out);
                    self.eof = true;
                    break;
                }
            }
        }
        if self.eof && !self.decoded_any {
            return Err(Error::media(&self.path, "audio stream holds no decodable audio"));
        }
        super::zero_non_finite(&mut out);
        Ok(if out.is_empty() && self.eof { None } else { Some(out) })
    }

    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn channels(&self) -> u16 {
        self.channels
    }

    fn stream(&self) -> &StreamInfo {
        &self.stream
    }

    fn media_read(&self) -> Option<MediaRead> {
        let (first, last) = self.span?;
        let audio = self.audio_end.map_or(0.0, |e| e - first);
        Some(MediaRead { streams: Seconds(last - first), audio: Seconds(audio) })
    }
}
