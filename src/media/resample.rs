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
        let mut converted = frame::Audio::empty();
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
