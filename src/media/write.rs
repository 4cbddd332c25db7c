//! Audio out: writing pieces and stems as wav (hound), flac or mp3 (FFmpeg encoders).

use std::path::Path;

use ff::format::Sample;
use ff::format::sample::Type as SampleType;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::units::SampleRate;
use crate::{Error, Result};

/// Output audio formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// 16-bit PCM WAV.
    #[default]
    Wav,
    /// FLAC, lossless.
    Flac,
    /// MP3 at 192 kbps.
    Mp3,
}

impl AudioFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Flac => "flac",
            AudioFormat::Mp3 => "mp3",
        }
    }
}

/// Write interleaved f32 samples to `path` in `format`. The file is written next to its final
/// name and renamed into place, so a crash never leaves a half-written file under that name.
pub fn write_audio(
    path: &Path,
    samples: &[f32],
    rate: SampleRate,
    channels: u16,
    format: AudioFormat,
) -> Result<()> {
    let tmp = path.with_extension(format!("partial.{}", format.extension()));
    let res = match format {
        AudioFormat::Wav => write_wav(&tmp, samples, rate, channels),
        AudioFormat::Flac | AudioFormat::Mp3 => {
            encode(&tmp, samples, rate, channels, format, 192_000)
        }
    };
    finish(&tmp, path, res)
}

/// Write MP3 at a chosen bitrate (bits/s), e.g. to simulate low-bitrate re-uploads.
pub fn write_mp3(
    path: &Path,
    samples: &[f32],
    rate: SampleRate,
    channels: u16,
    bitrate: usize,
) -> Result<()> {
    let tmp = path.with_extension("partial.mp3");
    let res = encode(&tmp, samples, rate, channels, AudioFormat::Mp3, bitrate);
    finish(&tmp, path, res)
}

fn finish(tmp: &Path, path: &Path, res: Result<()>) -> Result<()> {
    if let Err(e) = res {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    std::fs::rename(tmp, path).map_err(|e| Error::io(path, e))
}

fn write_wav(path: &Path, samples: &[f32], rate: SampleRate, channels: u16) -> Result<()> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate.0,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let wav_err = |e: hound::Error| Error::media(path, format!("writing wav: {e}"));
    let mut w = hound::WavWriter::create(path, spec).map_err(wav_err)?;
    for &s in samples {
        w.write_sample(to_i16(s)).map_err(wav_err)?;
    }
    w.finalize().map_err(wav_err)
}

fn to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Encode with FFmpeg: FLAC as s16, MP3 (libmp3lame) as planar float.
fn encode(
    path: &Path,
    samples: &[f32],
    rate: SampleRate,
    channels: u16,
    format: AudioFormat,
    bitrate: usize,
) -> Result<()> {
    super::ffmpeg::init();
    let fail = |what: &str, e: ff::Error| Error::media(path, format!("{what}: {e}"));
    let (id, sample_fmt, container) = match format {
        AudioFormat::Flac => (ff::codec::Id::FLAC, Sample::I16(SampleType::Packed), "flac"),
        _ => (ff::codec::Id::MP3, Sample::F32(SampleType::Planar), "mp3"),
    };
    let codec = ff::encoder::find(id)
        .ok_or_else(|| Error::media(path, format!("this FFmpeg has no {container} encoder")))?;
    let mut octx = ff::format::output_as(path, container).map_err(|e| fail("opening output", e))?;
    let layout = if channels >= 2 { ff::ChannelLayout::STEREO } else { ff::ChannelLayout::MONO };
    let ch = usize::from(channels.clamp(1, 2));
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(|e| fail("encoder", e))?;
    enc.set_rate(rate.0 as i32);
    enc.set_channel_layout(layout);
    enc.set_format(sample_fmt);
    enc.set_time_base((1, rate.0 as i32));
    if format == AudioFormat::Mp3 {
        enc.set_bit_rate(bitrate);
    }
    let mut enc = enc.open_as(codec).map_err(|e| fail("opening encoder", e))?;
    {
        let mut ost = octx.add_stream(codec).map_err(|e| fail("adding stream", e))?;
        ost.set_parameters(&enc);
        ost.set_time_base((1, rate.0 as i32));
    }
    octx.write_header().map_err(|e| fail("writing header", e))?;
    let out_tb = octx.stream(0).map(|s| s.time_base()).unwrap_or((1, rate.0 as i32).into());
    let frame_len = match enc.frame_size() {
        0 => 4096,
        n => n as usize,
    };
    let write_packets =
        |enc: &mut ff::encoder::Audio, octx: &mut ff::format::context::Output| -> Result<()> {
            let mut pkt = ff::Packet::empty();
            while enc.receive_packet(&mut pkt).is_ok() {
                pkt.set_stream(0);
                pkt.rescale_ts((1, rate.0 as i32), out_tb);
                pkt.write_interleaved(octx).map_err(|e| fail("writing packet", e))?;
            }
            Ok(())
        };
    for (i, chunk) in samples.chunks(frame_len * ch).enumerate() {
        let n = chunk.len() / ch;
        let mut frame = ff::frame::Audio::new(sample_fmt, n, layout);
        frame.set_rate(rate.0);
        frame.set_pts(Some((i * frame_len) as i64));
        match format {
            AudioFormat::Flac => {
                let data: Vec<u8> =
                    chunk[..n * ch].iter().flat_map(|&s| to_i16(s).to_ne_bytes()).collect();
                frame.data_mut(0)[..data.len()].copy_from_slice(&data);
            }
            _ => {
                for c in 0..ch {
                    let plane: Vec<u8> = chunk[..n * ch]
                        .iter()
                        .skip(c)
                        .step_by(ch)
                        .flat_map(|&s| s.to_ne_bytes())
                        .collect();
                    frame.data_mut(c)[..plane.len()].copy_from_slice(&plane);
                }
            }
        }
        enc.send_frame(&frame).map_err(|e| fail("encoding", e))?;
        write_packets(&mut enc, &mut octx)?;
    }
    enc.send_eof().map_err(|e| fail("encoding", e))?;
    write_packets(&mut enc, &mut octx)?;
    octx.write_trailer().map_err(|e| fail("writing trailer", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{DecodeOptions, decode};

    fn tone(rate: u32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin())
            .collect()
    }

    #[test]
    fn round_trips_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let sig = tone(16_000, 1.0);
        for fmt in [AudioFormat::Wav, AudioFormat::Flac, AudioFormat::Mp3] {
            let p = dir.path().join(format!("t.{}", fmt.extension()));
            write_audio(&p, &sig, SampleRate(16_000), 1, fmt).unwrap();
            let back = decode(&p, &DecodeOptions::default()).unwrap();
            // mp3 adds encoder delay and padding; lossless formats come back sample for sample.
            assert!((back.len() as i64 - sig.len() as i64).abs() < 2400, "{fmt:?} {}", back.len());
            let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
            assert!((rms(&back) - rms(&sig)).abs() < 0.02, "{fmt:?}");
        }
    }
}
