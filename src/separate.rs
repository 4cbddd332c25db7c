//! Voice/background separation: a spectrogram U-Net with Efficient Channel Attention estimates a
//! soft mask per stem on the mixture's STFT magnitude (at inference normalised into ratio masks
//! that sum to one, [`ratio_masks`]); stems are rebuilt with the mixture's phase by inverse STFT
//! and overlap-add.
//!
//! The model works at 8 kHz mono by default (the rate the fingerprinter hears, so stems for
//! search need nothing more): 512-point STFT, 128-sample hop (16 ms), the lowest 256 bins. This
//! module owns loading a trained model ([`Separator`]), chunked inference with bounded memory for
//! inputs of any length, the network ([`model`]), training ([`train`]) and evaluation with
//! BSS-Eval-style SDR/SIR ([`eval`]), and [`separate_file`], which writes a media file's stems
//! (what `aniprint separate` and the TUI's separate jobs call).
//!
//! Chunking: the network's normalisation and attention are time-local (see [`model`]) and its
//! receptive field reaches at most 126 frames either way, so a chunk whose context on each side
//! exceeds that (plus the cross-fade) gives, inside its core, the masks a single pass over the
//! whole signal would give. Chunk starts sit on the network's 32-frame grid, neighbouring masks
//! are cross-faded over a few frames, and audio is rebuilt only from final masks, so output equals
//! whole-signal separation up to float rounding (a test holds it below -40 dB).
//!
//! Higher rates: [`Separator::separate`] takes and returns audio at the model rate. A 44.1/48 kHz
//! export would apply the 8 kHz masks to a higher-rate STFT with the same hop in seconds (masks
//! interpolated along frequency; above 4 kHz the per-frame mean mask of the top octave, after
//! Paulus & Torcoli 2022); that is not built yet, so stems are written at the model rate.

pub mod eval;
pub mod model;
pub mod train;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::dsp::{Complex32, Stft};
use crate::media::write::{AudioFormat, write_audio};
use crate::media::{self, DecodeOptions};
use crate::progress::{NoProgress, Progress, Stage};
use crate::units::SampleRate;
use crate::{Error, Result};
pub use model::{Config, LossKind, NormKind, UNet, eca_kernel_size};

/// The model directory name of the separator this build uses by default.
pub const DEFAULT_MODEL: &str = "separator-v2";

/// A model card: the config plus where the weights came from and how good they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Model name, e.g. `separator-v2`.
    pub name: String,
    /// What fixes the separator.
    pub config: Config,
    /// Free-form provenance: data, command, steps, wall time, metrics.
    #[serde(flatten)]
    pub provenance: toml::Table,
}

/// Read `dir/card.toml`.
pub fn read_card(dir: &Path) -> Result<ModelCard> {
    crate::config::read_toml(&dir.join("card.toml"))
}

/// How inference cuts a long signal (all in STFT frames, multiples of 32 for the default model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlan {
    /// Frames each chunk contributes.
    pub core: usize,
    /// Frames of context read on each side of the core (at least the receptive field, 126
    /// frames, plus half the cross-fade, for chunked output to equal whole-signal output).
    pub context: usize,
    /// Frames over which neighbouring chunks' masks are cross-faded.
    pub crossfade: usize,
    /// Chunks run through the network at once, each on its own thread (0: one per rayon
    /// thread, at most 4). Memory grows with it; the output does not change.
    #[serde(default)]
    pub parallel: usize,
}

impl Default for ChunkPlan {
    fn default() -> Self {
        // 2176-frame (35 s) forward passes, 1856 of them kept (15% spent on context; 704 of
        // 1024 spent 31%), two at once on this 2-core machine: 156x real time and 603 MiB
        // peak on 35 min of audio, against 105x and 324 MiB one 1024-frame chunk at a time
        // (`aniprint bench separate --seconds 1440 --core N --parallel N`).
        Self { core: 1856, context: 160, crossfade: 16, parallel: 0 }
    }
}

impl ChunkPlan {
    /// One pass over the whole signal (unbounded memory; the reference for tests).
    pub fn whole() -> Self {
        Self { core: usize::MAX / 4, context: 0, crossfade: 0, parallel: 1 }
    }

    fn threads(&self) -> usize {
        // At most 4 by default: each chunk in flight holds ~190 MB of activations (2 in flight:
        // 603 MiB peak on 35 min of audio; 4, on a machine with 4+ threads, ~1 GB estimated).
        if self.parallel == 0 { rayon::current_num_threads().clamp(1, 4) } else { self.parallel }
    }
}

/// A loaded separator: front end + network with trained weights.
pub struct Separator {
    card: ModelCard,
    net: UNet,
    device: Device,
    stft: Stft,
    plan: ChunkPlan,
}

impl std::fmt::Debug for Separator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Separator")
            .field("card", &self.card.name)
            .field("plan", &self.plan)
            .finish()
    }
}

impl Separator {
    /// Load the default model from [`crate::fingerprint::models_dir`].
    pub fn load_default(device: &Device) -> Result<Self> {
        Self::load(&crate::fingerprint::models_dir().join(DEFAULT_MODEL), device)
    }

    /// Load `dir/card.toml` and `dir/weights.safetensors`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let card = read_card(dir)?;
        let weights = dir.join("weights.safetensors");
        if !weights.is_file() {
            let missing = std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "model weights missing (train them with `aniprint train separator`)",
            );
            return Err(Error::io(&weights, missing));
        }
        // SAFETY: the weights file is memory-mapped read-only; aniprint never writes a model
        // file in place (training writes a new file and renames it).
        #[allow(unsafe_code)]
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device)? };
        let net = UNet::new(&card.config, vb)?;
        Ok(Self::from_parts(card, net, device.clone()))
    }

    /// Wrap a network (e.g. one being trained).
    pub fn from_parts(card: ModelCard, net: UNet, device: Device) -> Self {
        let stft = Stft::new(card.config.n_fft, card.config.hop);
        Self { card, net, device, stft, plan: ChunkPlan::default() }
    }

    /// Use another chunk plan (the default suits the default model).
    pub fn with_plan(mut self, plan: ChunkPlan) -> Self {
        self.plan = plan;
        self
    }

    /// The card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.card.config
    }

    /// The network.
    pub fn net(&self) -> &UNet {
        &self.net
    }

    /// The rate audio must be at.
    pub fn rate(&self) -> SampleRate {
        SampleRate(self.card.config.sample_rate)
    }

    /// Separate mono audio at [`Self::rate`] into `(voice, background)`, each as long as the
    /// input, in chunks (bounded memory whatever the length).
    pub fn separate(&self, mono: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        self.separate_with(mono, self.plan)
    }

    /// [`Self::separate`] with an explicit chunk plan.
    pub fn separate_with(&self, mono: &[f32], plan: ChunkPlan) -> Result<(Vec<f32>, Vec<f32>)> {
        self.separate_reporting(mono, plan, &NoProgress)
    }

    /// [`Self::separate_with`] advancing `progress` by the samples each chunk settles (its
    /// total set to the input's length) and stopping with [`Error::Cancelled`] between chunks
    /// when it is cancelled: an episode takes tens of seconds.
    pub fn separate_reporting(
        &self,
        mono: &[f32],
        plan: ChunkPlan,
        progress: &dyn Progress,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        progress.set_total(mono.len() as u64);
        let cfg = &self.card.config;
        let len = mono.len();
        let mut voice = vec![0f32; len];
        let mut background = vec![0f32; len];
        if len == 0 {
            return Ok((voice, background));
        }
        let m = cfg.multiple();
        let round = |v: usize| v.div_ceil(m) * m;
        let (core, ctx) = (round(plan.core.max(1)), round(plan.context));
        let half = (plan.crossfade / 2).min(ctx).min(core / 2);
        let total = round(self.stft.n_frames(len));
        let gain = input_gain(mono, cfg.target_rms);
        let (hop, pad) = (cfg.hop, cfg.n_fft / 2);
        let bins = cfg.bins;
        let n_chunks = total.div_ceil(core);
        // Blended masks of frames [buf_start, buf_start + buf.len() / (2 * bins)).
        let mut buf: Vec<f32> = Vec::new();
        let mut buf_start = 0usize;
        let mut emitted = 0usize;
        let bounds = |k: usize| {
            let (b0, b1) = (k * core, ((k + 1) * core).min(total));
            (b0, b1, b0.saturating_sub(ctx), (b1 + ctx).min(total))
        };
        // Masks of the next few chunks, computed together (the network's small ops use one
        // core; two chunks at once keep both busy), then blended in order.
        let mut ready: std::collections::VecDeque<Vec<f32>> = Default::default();
        for k in 0..n_chunks {
            if ready.is_empty() {
                use rayon::prelude::*;
                progress.check()?;
                let group = (k..(k + plan.threads()).min(n_chunks)).collect::<Vec<_>>();
                let masks: Vec<Vec<f32>> = group
                    .par_iter()
                    .map(|&j| {
                        let (_, _, s, e) = bounds(j);
                        self.chunk_masks(mono, s, e, gain)
                    })
                    .collect::<Result<_>>()?;
                ready.extend(masks);
            }
            let (b0, b1, s, _) = bounds(k);
            let masks = ready.pop_front().unwrap_or_default();
            // This chunk's say over [b0 - half, b1 + half), ramped where a neighbour overlaps.
            let lo = if k == 0 { 0 } else { b0 - half };
            let hi = if k + 1 == n_chunks { total } else { b1 + half };
            let need = (hi - buf_start) * 2 * bins;
            if buf.len() < need {
                buf.resize(need, 0.0);
            }
            for t in lo..hi {
                let w = fade_weight(t, b0, b1, half, k == 0, k + 1 == n_chunks);
                let src = &masks[(t - s) * 2 * bins..(t - s + 1) * 2 * bins];
                let dst = &mut buf[(t - buf_start) * 2 * bins..(t - buf_start + 1) * 2 * bins];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d += w * v;
                }
            }
            // Frames below `final_to` take no more contributions: emit the audio they settle.
            let final_to = if k + 1 == n_chunks { total } else { b1 - half };
            let n1 =
                if k + 1 == n_chunks { len } else { (final_to * hop).saturating_sub(pad).min(len) };
            if n1 > emitted {
                let a = (emitted / hop).saturating_sub(pad.div_ceil(hop)).max(buf_start);
                let b = ((n1 - 1 + pad) / hop + 1).min(final_to);
                let frames = &buf[(a - buf_start) * 2 * bins..(b - buf_start) * 2 * bins];
                self.emit(mono, frames, a, b, emitted, n1, &mut voice, &mut background);
                progress.advance((n1 - emitted) as u64);
                emitted = n1;
                // Keep the frames the next emission still reads.
                let keep_from = (emitted / hop).saturating_sub(pad.div_ceil(hop)).max(buf_start);
                buf.drain(..(keep_from - buf_start) * 2 * bins);
                buf_start = keep_from;
            }
        }
        Ok((voice, background))
    }

    /// Masks `(frames, stem, bin)` for frames `[s, e)`, flattened per frame as
    /// `[voice bins..., background bins...]`.
    fn chunk_masks(&self, mono: &[f32], s: usize, e: usize, gain: f32) -> Result<Vec<f32>> {
        let cfg = &self.card.config;
        let spec = spectrum(&self.stft, mono, s, e);
        let nb = self.stft.n_bins();
        let bins = cfg.bins;
        let mut feats = Vec::with_capacity((e - s) * bins);
        for frame in spec.chunks_exact(nb) {
            feats.extend(frame[..bins].iter().map(|c| cfg.feature(c.norm() * gain)));
        }
        let x = Tensor::from_vec(feats, (1, e - s, bins), &self.device)?;
        // (1, T, F, 2) -> (T, 2, F)
        let m = self.net.forward(&x)?.squeeze(0)?.permute((0, 2, 1))?.contiguous()?;
        let mut masks = m.flatten_all()?.to_vec1::<f32>()?;
        if cfg.mask_power > 0.0 {
            ratio_masks(&mut masks, bins, cfg.mask_power);
        }
        Ok(masks)
    }

    /// Rebuild samples `[n0, n1)` of both stems from blended masks of frames `[a, b)`.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        mono: &[f32],
        masks: &[f32],
        a: usize,
        b: usize,
        n0: usize,
        n1: usize,
        voice: &mut [f32],
        background: &mut [f32],
    ) {
        let bins = self.card.config.bins;
        let nb = self.stft.n_bins();
        let hop = self.card.config.hop;
        let spec = spectrum(&self.stft, mono, a, b);
        let out_len = n1 - a * hop;
        for (stem, out) in [(0usize, voice), (1, background)] {
            let mut masked = spec.clone();
            for (t, frame) in masked.chunks_exact_mut(nb).enumerate() {
                let mk = &masks[(t * 2 + stem) * bins..(t * 2 + stem + 1) * bins];
                for (i, c) in frame.iter_mut().enumerate() {
                    *c *= mk[i.min(bins - 1)];
                }
            }
            let y = self.stft.inverse(&masked, b - a, out_len);
            out[n0..n1].copy_from_slice(&y[n0 - a * hop..]);
        }
    }
}

impl crate::analyze::StemSplitter for Separator {
    fn split(&self, mix: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        self.separate(mix)
    }

    fn rate(&self) -> SampleRate {
        Separator::rate(self)
    }

    fn name(&self) -> String {
        self.card.name.clone()
    }
}

/// Where [`separate_file`] writes the stems named `name` in `out`: `<name>.voice.<ext>` and
/// `<name>.background.<ext>`.
pub fn stem_paths(name: &str, out: &Path, format: AudioFormat) -> [PathBuf; 2] {
    let ext = format.extension();
    [out.join(format!("{name}.voice.{ext}")), out.join(format!("{name}.background.{ext}"))]
}

/// Stem names for a batch of inputs, unique within the batch: each input's file name without
/// its extension, unless an earlier input took it (`a/ep01.mkv` and `b/ep01.mkv`, or
/// `ep01.mkv` and `ep01.wav`, would overwrite each other's stems); then the whole file name,
/// then that with `-2`, `-3`... Names that are not UTF-8 are shown lossily, so two of them can
/// collide the same way and are told apart the same way.
#[derive(Debug, Default)]
pub struct StemNamer {
    used: std::collections::HashSet<String>,
}

impl StemNamer {
    /// The name for `input`'s stems, reserved for the rest of the batch.
    pub fn name(&mut self, input: &Path) -> String {
        let lossy = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
        let stem = input.file_stem().map_or_else(|| "input".to_string(), lossy);
        let full = input.file_name().map_or_else(|| stem.clone(), lossy);
        let name = [stem, full.clone()]
            .into_iter()
            .chain((2..).map(|n| format!("{full}-{n}")))
            .find(|n| !self.used.contains(n))
            .unwrap_or(full);
        self.used.insert(name.clone());
        name
    }
}

/// What [`separate_file`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct StemFiles {
    /// Seconds of audio separated.
    pub seconds: f64,
    /// The voice stem.
    pub voice: PathBuf,
    /// The background stem.
    pub background: PathBuf,
}

/// Decode `input` (its default audio stream, mono at the model rate), separate it and write
/// both stems into `out` (created if missing) at [`stem_paths`] of `name` (a batch takes it
/// from a [`StemNamer`]), at the model rate. Reports the stages to `progress`; a file that
/// cannot be decoded or written is an error for this file only, so batch callers record it
/// and go on.
pub fn separate_file(
    sep: &Separator,
    input: &Path,
    out: &Path,
    name: &str,
    format: AudioFormat,
    progress: &dyn Progress,
) -> Result<StemFiles> {
    let rate = sep.rate();
    progress.stage(Stage::Decoding);
    let opts = DecodeOptions { rate, channels: 1, ..DecodeOptions::default() };
    let mono = media::decode(input, &opts)?;
    progress.check()?;
    progress.stage(Stage::Separating);
    let (voice, background) = sep.separate_reporting(&mono, sep.plan, progress)?;
    progress.stage(Stage::Exporting);
    // One unit a stem: an encoded stem takes seconds, and a bar left at 0% looks stuck.
    progress.set_total(2);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let [voice_path, background_path] = stem_paths(name, out, format);
    write_audio(&voice_path, &voice, rate, 1, format)?;
    progress.advance(1);
    write_audio(&background_path, &background, rate, 1, format)?;
    progress.advance(1);
    Ok(StemFiles {
        seconds: mono.len() as f64 / f64::from(rate.0),
        voice: voice_path,
        background: background_path,
    })
}

/// Weight of chunk `[b0, b1)`'s mask at frame `t`: a linear cross-fade of `2 * half` frames
/// centred on each inner chunk boundary, so the weights of neighbours sum to one.
fn fade_weight(t: usize, b0: usize, b1: usize, half: usize, first: bool, last: bool) -> f32 {
    if half == 0 {
        return 1.0;
    }
    let width = (2 * half) as f32;
    if !first && t < b0 + half {
        return ((t + half - b0) as f32 + 0.5) / width;
    }
    if !last && t + half >= b1 {
        return 1.0 - ((t + half - b1) as f32 + 0.5) / width;
    }
    1.0
}

/// Turn per-frame `[voice bins..., background bins...]` sigmoid masks into ratio masks
/// `v^p / (v^p + b^p)`, `b^p / (v^p + b^p)` that sum to one (where both are ~0, half each).
/// Pointwise, so chunked output still equals whole-signal output.
pub fn ratio_masks(masks: &mut [f32], bins: usize, p: f32) {
    for frame in masks.chunks_exact_mut(2 * bins) {
        let (voice, background) = frame.split_at_mut(bins);
        for (v, b) in voice.iter_mut().zip(background) {
            // p = 1 is the default: skip two powf per bin on the separation path.
            let (vp, bp) = if p == 1.0 { (*v, *b) } else { (v.powf(p), b.powf(p)) };
            let sum = vp + bp;
            (*v, *b) = if sum > 1e-12 { (vp / sum, bp / sum) } else { (0.5, 0.5) };
        }
    }
}

/// The gain that brings `mono` to `target_rms` (1 for silence).
pub fn input_gain(mono: &[f32], target_rms: f32) -> f32 {
    let energy: f64 = mono.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let rms = (energy / mono.len().max(1) as f64).sqrt() as f32;
    if rms > 1e-6 { target_rms / rms } else { 1.0 }
}

/// Frames `[s, e)` of the centred STFT of `x` (as [`Stft::forward`] numbers them), computed from
/// only the samples they cover; frames past the end see zeros.
pub fn spectrum(stft: &Stft, x: &[f32], s: usize, e: usize) -> Vec<Complex32> {
    let (hop, pad) = (stft.hop(), stft.n_fft() / 2);
    // Start the excerpt `lead` frames before frame s's left edge, so its own centred frames
    // line up with ours: excerpt frame j is signal frame j + s - lead.
    let lead = pad.div_ceil(hop);
    let skip = lead * hop - pad; // extra samples before frame s's left edge
    let start = (s * hop) as isize - pad as isize - skip as isize;
    let n = (e - s).saturating_sub(1) * hop + 2 * pad + skip;
    let y: Vec<f32> = (0..n as isize)
        .map(|i| {
            let j = start + i;
            if j >= 0 && (j as usize) < x.len() { x[j as usize] } else { 0.0 }
        })
        .collect();
    let nb = stft.n_bins();
    let full = stft.forward(&y);
    full[lead * nb..(lead + e - s) * nb].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectrum_excerpts_equal_the_whole_stft() {
        let x: Vec<f32> = (0..5000).map(|i| (i * 37 % 101) as f32 / 101.0 - 0.5).collect();
        let stft = Stft::new(512, 128);
        let whole = stft.forward(&x);
        let nb = stft.n_bins();
        let n = stft.n_frames(x.len());
        for (s, e) in [(0, 5), (3, 9), (30, n), (n - 1, n + 3)] {
            let part = spectrum(&stft, &x, s, e);
            assert_eq!(part.len(), (e - s) * nb);
            for t in s..e.min(n) {
                for k in 0..nb {
                    let (a, b) = (part[(t - s) * nb + k], whole[t * nb + k]);
                    assert!((a - b).norm() < 1e-3, "frame {t} bin {k}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn stems_are_named_after_the_input() {
        let name = StemNamer::default().name(Path::new("media/ep 01.mkv"));
        let [v, b] = stem_paths(&name, Path::new("out"), AudioFormat::Flac);
        assert_eq!((v, b), ("out/ep 01.voice.flac".into(), "out/ep 01.background.flac".into()));
    }

    #[test]
    fn stem_names_are_unique_within_a_batch() {
        use std::os::unix::ffi::OsStrExt;
        let mut namer = StemNamer::default();
        let names: Vec<String> = ["a/ep01.mkv", "b/ep01.mkv", "ep01.wav", "c/ep01.mkv", "ep02.mkv"]
            .iter()
            .map(|p| namer.name(Path::new(p)))
            .collect();
        assert_eq!(names, ["ep01", "ep01.mkv", "ep01.wav", "ep01.mkv-2", "ep02"]);
        // Two names that differ only in bytes that are not UTF-8 read the same lossily.
        let odd = |b: u8| PathBuf::from(std::ffi::OsStr::from_bytes(&[b'x', b, b'.', b'w']));
        let (x, y) = (namer.name(&odd(0xff)), namer.name(&odd(0xfe)));
        assert_ne!(x, y);
    }

    #[test]
    fn ratio_masks_sum_to_one_and_keep_the_order() {
        // Two frames of two bins: [v0, v1, b0, b1].
        let mut m = vec![0.9, 0.2, 0.3, 0.2, 0.0, 1.0, 0.0, 0.5];
        ratio_masks(&mut m, 2, 2.0);
        for frame in m.chunks(4) {
            for f in 0..2 {
                assert!((frame[f] + frame[2 + f] - 1.0).abs() < 1e-6);
            }
        }
        assert!((m[0] - 0.9).abs() < 1e-6, "0.81 / (0.81 + 0.09)");
        assert!((m[1] - 0.5).abs() < 1e-6, "equal masks split evenly");
        assert_eq!((m[4], m[6]), (0.5, 0.5), "both silent: half each");
        assert!((m[5] - 0.8).abs() < 1e-6, "1 / (1 + 0.25)");
    }

    #[test]
    fn fade_weights_sum_to_one() {
        let (core, half, total) = (64usize, 8usize, 256usize);
        let n = total / core;
        for t in 0..total {
            let mut sum = 0.0;
            for k in 0..n {
                let (b0, b1) = (k * core, (k + 1) * core);
                let (lo, hi) = (b0.saturating_sub(half), b1 + half);
                if t >= lo && t < hi {
                    sum += fade_weight(t, b0, b1, half, k == 0, k + 1 == n);
                }
            }
            assert!((sum - 1.0).abs() < 1e-6, "frame {t}: {sum}");
        }
    }
}
