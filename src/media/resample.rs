//! Sample-format conversion, downmix and resampling through FFmpeg's swresample, shared by the
//! FFmpeg and symphonia decoders so both deliver identical output for identical input.

use ff::ChannelLayout;
use ff::format::Sample;
use ff::format::sample::Type as SampleType;
use ff::frame;
use ff::software::resampling;
use ffmpeg_next as ff;

/// What the input frames look like; a change mid-stream rebuilds the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InputDef {
    format: Sample,
    layout: ChannelLayout,
    rate: u32,
}

/// Output samples beyond a frame's own share: swresample's filter delay (a few dozen samples
/// at the default filter) and rounding.
const OUT_SLACK: usize = 1024;

/// Converts decoded frames of any format, layout and rate to interleaved f32 at one rate.
pub(crate) struct Resampler {
    out_rate: u32,
    out_layout: ChannelLayout,
    out_channels: u16,
    ctx: Option<(InputDef, resampling::Context)>,
}

impl Resampler {
    pub(crate) fn new(out_rate: u32, out_channels: u16) -> Self {
        let out_layout =
            if out_channels >= 2 { ChannelLayout::STEREO } else { ChannelLayout::MONO };
        Self { out_rate, out_layout, out_channels: out_channels.clamp(1, 2), ctx: None }
    }

    /// Convert one decoded frame, appending to `out`.
    pub(crate) fn push(
        &mut self,
        input: &mut frame::Audio,
        out: &mut Vec<f32>,
    ) -> Result<(), ff::Error> {
        let mut layout = input.channel_layout();
        if layout.is_empty() || layout.channels() != i32::from(input.channels()) {
            // Decoders may leave the layout unset (PCM WAV does); FFmpeg then needs the default
            // for the count, on the frame too: swr_convert_frame compares the frame's layout
            // with the context's and fails with "Input changed" when they differ.
            layout = ChannelLayout::default(i32::from(input.channels()));
            input.set_channel_layout(layout);
        }
        let def = InputDef { format: input.format(), layout, rate: input.rate() };
        if self.ctx.as_ref().is_none_or(|(d, _)| *d != def) {
            self.flush(out)?;
            let ctx = resampling::Context::get(
                def.format,
                def.layout,
                def.rate,
                Sample::F32(SampleType::Packed),
                self.out_layout,
                self.out_rate,
            )?;
            self.ctx = Some((def, ctx));
        }
        let Some((_, ctx)) = self.ctx.as_mut() else { return Ok(()) };
        // Room for everything this frame yields, plus what the filter held back. Given an
        // empty frame, ffmpeg-next sizes it to the input's sample count, so upsampling (an
        // 8 kHz source to 16 kHz) left the excess in swresample until the end of the file:
        // a 60-minute source peaked at 940 MB instead of 80.
        let ratio = f64::from(self.out_rate) / f64::from(def.rate.max(1));
        let room = (input.samples() as f64 * ratio).ceil() as usize + OUT_SLACK;
        let mut converted =
            frame::Audio::new(Sample::F32(SampleType::Packed), room, self.out_layout);
        converted.set_rate(self.out_rate);
        ctx.run(input, &mut converted)?;
        append_packed(&converted, self.out_channels, out);
        Ok(())
    }

    /// Drain what the resampler still holds (its filter delay), appending to `out`.
    pub(crate) fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), ff::Error> {
        if let Some((_, ctx)) = self.ctx.as_mut() {
            loop {
                let mut converted =
                    frame::Audio::new(Sample::F32(SampleType::Packed), 4096, self.out_layout);
                converted.set_rate(self.out_rate);
                let more = ctx.flush(&mut converted)?;
                let before = out.len();
                append_packed(&converted, self.out_channels, out);
                if more.is_none() || out.len() == before {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Build an FFmpeg frame from interleaved f32 samples (symphonia's output) so it can go through
/// the same resampler.
pub(crate) fn packed_frame(samples: &[f32], channels: u16, rate: u32) -> frame::Audio {
    let ch = usize::from(channels.max(1));
    let n = samples.len() / ch;
    let mut f = frame::Audio::new(
        Sample::F32(SampleType::Packed),
        n,
        ChannelLayout::default(i32::from(channels.max(1))),
    );
    f.set_rate(rate);
    let bytes: &[u8] = bytemuck::cast_slice(&samples[..n * ch]);
    f.data_mut(0)[..bytes.len()].copy_from_slice(bytes);
    f
}

fn append_packed(frame: &frame::Audio, channels: u16, out: &mut Vec<f32>) {
    let n = frame.samples() * usize::from(channels);
    if n == 0 {
        return;
    }
    let bytes = &frame.data(0)[..n * 4];
    // Frame buffers are 16-byte aligned by FFmpeg, but do not rely on it.
    out.extend(bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upsampling hands each frame's output over as it goes: nothing piles up in swresample
    /// for the end (it did, a frame's worth of input at a time), and the total is the same.
    #[test]
    fn upsampling_keeps_up_with_its_input() {
        crate::media::ffmpeg::init();
        let (from, to, frame_len, frames) = (8_000u32, 16_000u32, 1_152usize, 200usize);
        let mut rs = Resampler::new(to, 1);
        let mut out = Vec::new();
        let tone: Vec<f32> =
            (0..frame_len * frames).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        for (k, chunk) in tone.chunks(frame_len).enumerate() {
            let mut frame = packed_frame(chunk, 1, from);
            rs.push(&mut frame, &mut out).unwrap();
            let due = (k + 1) * frame_len * 2;
            assert!(out.len() + 64 >= due, "frame {k}: {} of {due} samples out", out.len());
        }
        rs.flush(&mut out).unwrap();
        let want = tone.len() * 2;
        assert!(out.len().abs_diff(want) <= 2, "{} samples, want {want}", out.len());
    }
}
