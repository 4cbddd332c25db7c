//! The pure-Rust path for plain audio files (wav, flac, mp3, ogg/vorbis, m4a/aac) through
//! symphonia. Decoded buffers go through the same swresample [`Resampler`] as the FFmpeg path.

use std::fs::File;
use std::path::Path;

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::resample::{Resampler, packed_frame};
use super::{AudioSource, DecodeOptions, StreamInfo, StreamKind};
use crate::units::SampleRate;
use crate::{Error, Result};

pub(crate) struct SymphoniaSource {
    path: std::path::PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    stream: StreamInfo,
    resampler: Resampler,
    rate: SampleRate,
    channels: u16,
    eof: bool,
    scratch: Vec<f32>,
}

impl SymphoniaSource {
    pub(crate) fn open(path: &Path, opts: &DecodeOptions) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| Error::media(path, e.to_string()))?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| Error::NoAudio { path: path.into(), reason: "no audio track".into() })?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| Error::media(path, "track has no audio parameters"))?
            .clone();
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| Error::media(path, e.to_string()))?;
        let stream = StreamInfo {
            index: track.id as usize,
            kind: StreamKind::Audio,
            codec: format!("{:?}", params.codec).to_lowercase(),
            language: track.language.clone(),
            title: None,
            default: true,
            channels: params.channels.as_ref().map(|c| c.count() as u16),
            sample_rate: params.sample_rate,
        };
        let track_id = track.id;
        Ok(Self {
            path: path.to_path_buf(),
            format,
            decoder,
            track_id,
            stream,
            resampler: Resampler::new(opts.rate.0, opts.channels),
            rate: opts.rate,
            channels: opts.channels.clamp(1, 2),
            eof: false,
            scratch: Vec::new(),
        })
    }
}

impl AudioSource for SymphoniaSource {
    fn next_chunk(&mut self) -> Result<Option<Vec<f32>>> {
        if self.eof {
            return Ok(None);
        }
        let mut out = Vec::new();
        while out.len() < super::MIN_CHUNK {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    self.eof = true;
                    break;
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    break;
                }
                Err(e) => return Err(Error::media(&self.path, e.to_string())),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            match self.decoder.decode(&packet) {
                Ok(buf) => {
                    let spec_rate = buf.spec().rate();
                    let ch = buf.spec().channels().count() as u16;
                    if buf.frames() == 0 {
                        continue;
                    }
                    self.scratch.resize(buf.samples_interleaved(), 0.0);
                    buf.copy_to_slice_interleaved(&mut self.scratch);
                    // Before resampling, which would spread a NaN over its filter's length.
                    super::zero_non_finite(&mut self.scratch);
                    let mut frame = packed_frame(&self.scratch, ch, spec_rate);
                    self.resampler
                        .push(&mut frame, &mut out)
                        .map_err(|e| Error::media(&self.path, format!("resampling: {e}")))?;
                }
                // A bad packet is recoverable (symphonia-play does the same).
                Err(SymError::DecodeError(e)) => {
                    tracing::warn!("{}: skipping bad packet: {e}", self.path.display());
                }
                Err(e) => return Err(Error::media(&self.path, e.to_string())),
            }
        }
        if self.eof {
            self.resampler
                .flush(&mut out)
                .map_err(|e| Error::media(&self.path, format!("resampling: {e}")))?;
        }
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
}
