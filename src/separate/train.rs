//! Training the separator: on-the-fly mixtures of speech (voice) over music and effects
//! (background) from the Debian corpus, the paper's L1 loss on masked magnitudes, AdamW,
//! checkpoints that resume exactly, and a running validation SDR on held-out packages.
//!
//! Reproducibility: initialisation comes from a seeded RNG, every batch item from an RNG seeded by
//! `(seed, step, item)`, and the Adam moments are checkpointed with the weights, so a run killed
//! at any point and resumed takes the same steps as one that never stopped.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::RngExt;
use rand::rngs::StdRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::eval::{self, Item};
use super::model::{self, BatchStats, Config, UNet};
use super::{ModelCard, Separator};
use crate::dsp::Stft;
use crate::fingerprint::train::{Corpus, DEFAULT_VAL_PACKAGES, Kind, Source};
use crate::progress::{Progress, Stage};
use crate::units::SampleRate;
use crate::{Error, Result};

/// How training mixtures are drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MixRecipe {
    /// Voice-to-background ratio range, dB.
    pub vbr_db: (f32, f32),
    /// Gain of the mixture around the model's target RMS, dB (the level the network sees varies
    /// this much around what whole-input normalisation gives).
    pub gain_db: (f32, f32),
    /// Probability that an item has no voice (music or effects alone).
    pub p_no_voice: f32,
    /// Probability that an item has no background (voice alone).
    pub p_no_background: f32,
    /// Probability that the background is effects rather than music.
    pub p_sfx: f32,
    /// Probability of an extra effect over the background.
    pub p_extra_sfx: f32,
    /// Probability of using the low-bitrate MP3 copies of both stems.
    pub p_coded: f32,
    /// Fraction of 1 s windows in which the background must be sounding (within 20 dB of its
    /// overall level); backgrounds that fall short are drawn again (up to 20 times). Zero for
    /// training (scenes with dialogue alone are real); evaluation sets it so that every item
    /// has both stems throughout, as the paper's test mixtures do.
    pub min_background_activity: f32,
}

impl Default for MixRecipe {
    fn default() -> Self {
        Self {
            vbr_db: (-10.0, 10.0),
            gain_db: (-12.0, 6.0),
            p_no_voice: 0.1,
            p_no_background: 0.05,
            p_sfx: 0.25,
            p_extra_sfx: 0.3,
            p_coded: 0.25,
            min_background_activity: 0.0,
        }
    }
}

/// Everything a training run is told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOptions {
    /// The corpus from `fetch_training_audio.sh`.
    pub corpus: PathBuf,
    /// Where decoded audio is cached between runs (shared with the fingerprinter at 8 kHz).
    pub cache: PathBuf,
    /// Checkpoints and the training log (resumed from when present).
    pub state: PathBuf,
    /// Where the finished model (weights + card) is written.
    pub out: PathBuf,
    /// Optimiser steps: training stops, and writes the model, here.
    pub steps: usize,
    /// Length of the learning-rate schedule when it differs from `steps` (`None`: `steps`), so
    /// a long run can stop early, write a model, and be resumed to the end with the very same
    /// schedule as a run that never stopped.
    pub schedule_steps: Option<usize>,
    /// Patches per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps, then cosine decay to 5% of the peak.
    pub warmup: usize,
    /// Decoupled weight decay on matrices.
    pub weight_decay: f64,
    /// Seed for initialisation and for every batch.
    pub seed: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Steps between validation runs.
    pub val_every: usize,
    /// Validation mixtures and their length in seconds.
    pub val_items: usize,
    /// Seconds per validation mixture.
    pub val_seconds: f32,
    /// Packages held out.
    pub val_packages: Vec<String>,
    /// Use CUDA.
    pub cuda: bool,
    /// The model.
    pub config: Config,
    /// How mixtures are drawn.
    pub mix: MixRecipe,
}

impl TrainOptions {
    /// Defaults for a corpus at `corpus`, state in `state`, the model written to `out`.
    pub fn new(corpus: PathBuf, state: PathBuf, out: PathBuf) -> Self {
        Self {
            cache: state.join("cache"),
            corpus,
            state,
            out,
            steps: 2000,
            schedule_steps: None,
            batch: 8,
            lr: 2e-3,
            warmup: 100,
            weight_decay: 1e-4,
            seed: 20_261_126,
            checkpoint_every: 50,
            val_every: 200,
            val_items: 12,
            val_seconds: 10.0,
            val_packages: DEFAULT_VAL_PACKAGES.iter().map(|s| s.to_string()).collect(),
            cuda: false,
            config: Config::default(),
            mix: MixRecipe::default(),
        }
    }

    /// Steps the learning-rate schedule spans.
    pub fn schedule(&self) -> usize {
        self.schedule_steps.unwrap_or(self.steps).max(self.steps)
    }

    /// The model rate.
    pub fn rate(&self) -> SampleRate {
        SampleRate(self.config.sample_rate)
    }
}

/// What a run ends with.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Steps done.
    pub step: usize,
    /// Wall seconds spent, over all resumed runs.
    pub elapsed_s: f64,
    /// Smoothed training loss.
    pub loss: f64,
    /// Last validation SDR, mean over both stems and all items, dB.
    pub val_sdr: f64,
    /// Validation history: (step, SDR dB).
    pub history: Vec<(usize, f64)>,
}

/// Length-weighted draws of non-silent excerpts from a set of sources.
#[derive(Debug)]
pub struct Pool<'a> {
    sources: Vec<&'a Source>,
    cum: Vec<f64>,
}

impl<'a> Pool<'a> {
    /// A pool of `sources`.
    pub fn new(sources: impl IntoIterator<Item = &'a Source>) -> Self {
        let sources: Vec<&Source> = sources.into_iter().collect();
        let mut acc = 0.0;
        let cum = sources
            .iter()
            .map(|s| {
                acc += s.clean.len() as f64;
                acc
            })
            .collect();
        Self { sources, cum }
    }

    /// The rate of the pool's audio (8 kHz when empty).
    pub fn rate(&self) -> SampleRate {
        self.sources.first().map_or(SampleRate(8000), |s| s.rate)
    }

    /// Whether the pool has nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// `len` samples (clean or MP3-coded) from a random position that is not near-silent when one
    /// can be found; zero-padded if the source is shorter.
    pub fn draw(&self, rng: &mut StdRng, len: usize, coded: bool) -> Vec<f32> {
        let total = self.cum.last().copied().unwrap_or(0.0);
        let mut best: Option<(f32, &Source, usize)> = None;
        for _ in 0..12 {
            let r = rng.random::<f64>() * total;
            let i = self.cum.partition_point(|&c| c < r).min(self.sources.len() - 1);
            let s = self.sources[i];
            let start = rng.random_range(0..s.clean.len().saturating_sub(len).max(1));
            let end = (start + len).min(s.clean.len());
            let level = crate::fingerprint::augment::rms(&s.clean[start..end]);
            if best.is_none_or(|b| level > b.0) {
                best = Some((level, s, start));
            }
            if level > 1e-2 {
                break;
            }
        }
        let Some((_, s, start)) = best else { return vec![0.0; len] };
        let audio = if coded && s.coded.len() == s.clean.len() { &s.coded } else { &s.clean };
        let mut v = audio[start..(start + len).min(audio.len())].to_vec();
        v.resize(len, 0.0);
        v
    }
}

/// How [`Pool::fill`] strings excerpts together.
#[derive(Debug, Clone, Copy)]
pub struct Fill {
    /// Silence between excerpts, seconds (uniform in the range).
    pub gap_s: (f32, f32),
    /// Level of each excerpt relative to the others, dB (uniform in the range).
    pub level_db: (f32, f32),
}

impl Fill {
    /// Dialogue: lines with short pauses, each line at its own level.
    pub const SPEECH: Fill = Fill { gap_s: (0.05, 0.8), level_db: (-4.0, 4.0) };
    /// Effects: one after another with pauses.
    pub const SFX: Fill = Fill { gap_s: (0.0, 1.0), level_db: (-6.0, 3.0) };
    /// Music: back to back (sources are long; a short one is followed by another).
    pub const MUSIC: Fill = Fill { gap_s: (0.0, 0.0), level_db: (0.0, 0.0) };
}

/// `[start, end)` of `x` without the leading and trailing stretches quieter than 1% of its
/// peak: prompt files come padded with silence, which would otherwise stack up between lines.
fn trim_silence(x: &[f32]) -> (usize, usize) {
    let peak = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let thr = peak * 0.01;
    let start = x.iter().position(|v| v.abs() > thr).unwrap_or(0);
    let end = x.iter().rposition(|v| v.abs() > thr).map_or(x.len(), |i| i + 1);
    (start, end.max(start))
}

impl Pool<'_> {
    /// `len` samples of excerpts strung together with `fill`'s pauses and per-excerpt levels,
    /// beginning at a random point of a random pause-plus-excerpt. Sources are whole packages
    /// concatenated, so one excerpt usually covers the patch; another follows when a source
    /// runs out, so nothing is zero-padded.
    pub fn fill(&self, rng: &mut StdRng, len: usize, coded: bool, fill: Fill) -> Vec<f32> {
        let mut out = vec![0f32; len];
        if self.is_empty() || len == 0 {
            return out;
        }
        let rate = self.sources[0].rate.0;
        let gap = |rng: &mut StdRng| (uniform(rng, fill.gap_s) * rate as f32) as usize;
        let mut pos: isize = gap(rng) as isize;
        let mut first = true;
        // Bounded: a pool of silent sources must not spin forever.
        for _ in 0..256 {
            if pos >= len as isize {
                break;
            }
            let want = len as isize - pos.max(0);
            let mut x = self.draw(rng, want as usize + len, coded);
            let (a, b) = trim_silence(&x);
            x.truncate(b);
            x.drain(..a);
            if x.is_empty() {
                break;
            }
            if first {
                // Begin part-way through the first excerpt (music and long lines).
                let skip = rng.random_range(0..x.len());
                pos -= skip as isize;
                first = false;
            }
            let g = 10f32.powf(uniform(rng, fill.level_db) / 20.0);
            for (i, v) in x.iter().enumerate() {
                let j = pos + i as isize;
                if j >= len as isize {
                    break;
                }
                if j >= 0 {
                    out[j as usize] += g * v;
                }
            }
            pos += x.len() as isize + gap(rng) as isize;
        }
        out
    }
}

/// Fraction of `window`-sample windows of `x` whose RMS is within 20 dB of the whole's.
pub fn activity(x: &[f32], window: usize) -> f32 {
    let total = crate::fingerprint::augment::rms(x);
    let windows: Vec<&[f32]> = x.chunks(window.max(1)).collect();
    if total <= 0.0 || windows.is_empty() {
        return 0.0;
    }
    let on = windows.iter().filter(|w| crate::fingerprint::augment::rms(w) > 0.1 * total).count();
    on as f32 / windows.len() as f32
}

/// The three pools a mixture draws from.
#[derive(Debug)]
pub struct Pools<'a> {
    /// Speech.
    pub voice: Pool<'a>,
    /// Music.
    pub music: Pool<'a>,
    /// Sound effects.
    pub sfx: Pool<'a>,
}

impl<'a> Pools<'a> {
    /// Pools over `sources` by kind.
    pub fn new(sources: &'a [Source]) -> Self {
        let of = |k: Kind| Pool::new(sources.iter().filter(move |s| s.kind == k));
        Self { voice: of(Kind::Speech), music: of(Kind::Music), sfx: of(Kind::Sfx) }
    }
}

/// Uniform in `[lo, hi)`, or `lo` when the range is empty.
pub fn uniform(rng: &mut StdRng, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

fn scale_to_rms(x: &mut [f32], target: f32) {
    let r = crate::fingerprint::augment::rms(x);
    if r > 1e-5 {
        let g = target / r;
        x.iter_mut().for_each(|v| *v *= g);
    } else {
        x.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// One training or validation mixture of `len` samples: `(voice, background)` at their final
/// levels (the mixture is their sum, at `target_rms` times the recipe's random gain).
pub fn make_mixture(
    recipe: &MixRecipe,
    pools: &Pools,
    rng: &mut StdRng,
    len: usize,
    target_rms: f32,
) -> (Vec<f32>, Vec<f32>) {
    let coded = rng.random::<f32>() < recipe.p_coded;
    let with_voice = rng.random::<f32>() >= recipe.p_no_voice && !pools.voice.is_empty();
    let with_bg = (rng.random::<f32>() >= recipe.p_no_background || !with_voice)
        && !(pools.music.is_empty() && pools.sfx.is_empty());
    let mut voice =
        if with_voice { pools.voice.fill(rng, len, coded, Fill::SPEECH) } else { vec![0.0; len] };
    scale_to_rms(&mut voice, 1.0);
    let mut bg = vec![0.0; len];
    if with_bg {
        let use_sfx = pools.music.is_empty() || rng.random::<f32>() < recipe.p_sfx;
        let (pool, fill) = if use_sfx && !pools.sfx.is_empty() {
            (&pools.sfx, Fill::SFX)
        } else {
            (&pools.music, Fill::MUSIC)
        };
        bg = pool.fill(rng, len, coded, fill);
        // Training asks for no activity: skip the measurement on its hot path.
        if recipe.min_background_activity > 0.0 {
            let window = pool.rate().0 as usize;
            let mut best = activity(&bg, window);
            for _ in 0..20 {
                if best >= recipe.min_background_activity {
                    break;
                }
                let next = pool.fill(rng, len, coded, fill);
                let a = activity(&next, window);
                if a > best {
                    (bg, best) = (next, a);
                }
            }
        }
        scale_to_rms(&mut bg, 1.0);
        if !pools.sfx.is_empty() && rng.random::<f32>() < recipe.p_extra_sfx {
            let mut fx = pools.sfx.fill(rng, len, coded, Fill::SFX);
            scale_to_rms(&mut fx, 10f32.powf(uniform(rng, (-12.0, 0.0)) / 20.0));
            bg.iter_mut().zip(&fx).for_each(|(b, f)| *b += f);
            scale_to_rms(&mut bg, 1.0);
        }
    }
    let vbr = 10f32.powf(uniform(rng, recipe.vbr_db) / 20.0);
    voice.iter_mut().for_each(|v| *v *= vbr);
    let mix: Vec<f32> = voice.iter().zip(&bg).map(|(a, b)| a + b).collect();
    let r = crate::fingerprint::augment::rms(&mix);
    if r > 1e-6 {
        let g = target_rms * 10f32.powf(uniform(rng, recipe.gain_db) / 20.0) / r;
        voice.iter_mut().for_each(|v| *v *= g);
        bg.iter_mut().for_each(|v| *v *= g);
    }
    (voice, bg)
}

/// Network input, mixture magnitude and stem magnitudes of one patch, frames-major:
/// features and mixture `T * F`, targets `T * F * 2` (voice, background per bin).
pub fn patch_tensors(
    cfg: &Config,
    stft: &Stft,
    voice: &[f32],
    background: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let sv = stft.forward(voice);
    let sb = stft.forward(background);
    let nb = stft.n_bins();
    let (t, f) = (cfg.patch_frames, cfg.bins);
    let mut feats = Vec::with_capacity(t * f);
    let mut mix = Vec::with_capacity(t * f);
    let mut tgt = Vec::with_capacity(t * f * 2);
    for i in 0..t {
        for k in 0..f {
            let (v, b) = (sv[i * nb + k], sb[i * nb + k]);
            let m = (v + b).norm();
            feats.push(cfg.feature(m));
            mix.push(m);
            tgt.push(v.norm());
            tgt.push(b.norm());
        }
    }
    (feats, mix, tgt)
}

/// One batch for `step`: features `(B, T, F)`, mixture magnitudes `(B, T, F)`, targets
/// `(B, T, F, 2)`.
pub fn make_batch(
    opts: &TrainOptions,
    pools: &Pools,
    step: usize,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let cfg = &opts.config;
    let len = (cfg.patch_frames - 1) * cfg.hop;
    let stft = Stft::new(cfg.n_fft, cfg.hop);
    let items: Vec<_> = (0..opts.batch)
        .into_par_iter()
        .map(|i| {
            let mut rng = crate::optim::batch_rng(opts.seed, step, i);
            let (v, b) = make_mixture(&opts.mix, pools, &mut rng, len, cfg.target_rms);
            patch_tensors(cfg, &stft, &v, &b)
        })
        .collect();
    let (t, f, n) = (cfg.patch_frames, cfg.bins, opts.batch);
    let mut feats = Vec::with_capacity(n * t * f);
    let mut mix = Vec::with_capacity(n * t * f);
    let mut tgt = Vec::with_capacity(n * t * f * 2);
    for (a, m, g) in items {
        feats.extend(a);
        mix.extend(m);
        tgt.extend(g);
    }
    Ok((
        Tensor::from_vec(feats, (n, t, f), device)?,
        Tensor::from_vec(mix, (n, t, f), device)?,
        Tensor::from_vec(tgt, (n, t, f, 2), device)?,
    ))
}

/// A freshly initialised network for `cfg` (deterministic in `seed`) and its variables.
pub fn init_model(cfg: &Config, seed: u64, device: &Device) -> Result<(VarMap, UNet)> {
    let map = VarMap::new();
    let net = UNet::new(cfg, VarBuilder::from_varmap(&map, DType::F32, device))?;
    crate::optim::init_weights(&model::sorted_vars(&map), seed, model::init_std)?;
    Ok((map, net))
}

/// The mean loss of `net` over the batches of `steps` (e.g. a fixed held batch for tests).
pub fn batch_loss(
    net: &UNet,
    opts: &TrainOptions,
    pools: &Pools,
    steps: &[usize],
    device: &Device,
) -> Result<f64> {
    let mut total = 0.0;
    for &s in steps {
        let (x, mix, tgt) = make_batch(opts, pools, s, device)?;
        let m = net.forward(&x)?;
        total += f64::from(model::loss(&m, &mix, &tgt, opts.config.loss)?.to_scalar::<f32>()?);
    }
    Ok(total / steps.len().max(1) as f64)
}

fn update_running_stats(map: &VarMap, stats: &[BatchStats]) -> candle_core::Result<()> {
    let data = map.data().lock().map_err(|_| candle_core::Error::Msg("VarMap poisoned".into()))?;
    for s in stats {
        for (leaf, batch) in [("running_mean", &s.mean), ("running_var", &s.var)] {
            if let Some(var) = data.get(&format!("{}.{leaf}", s.prefix)) {
                let next = ((var.as_tensor() * 0.9)? + (batch * 0.1)?)?;
                var.set(&next)?;
            }
        }
    }
    Ok(())
}

/// Mean SDR over both stems of `sep` on validation items, dB.
pub fn validation_sdr(sep: &Separator, items: &[Item]) -> Result<f64> {
    let mut sum = 0.0;
    let mut n = 0;
    for item in items {
        let (v, b) = sep.separate(&item.mixture)?;
        let scores =
            eval::bss_eval([&item.voice, &item.background], [&v, &b], sep.rate().0 as usize);
        for s in scores.iter().filter(|s| s.sdr.is_finite()) {
            sum += s.sdr;
            n += 1;
        }
    }
    Ok(if n == 0 { f64::NAN } else { sum / n as f64 })
}

/// Train (or resume training) the separator; writes the model to `opts.out`.
pub fn train(opts: &TrainOptions, corpus: &Corpus, progress: &dyn Progress) -> Result<TrainState> {
    let device = if opts.cuda { Device::new_cuda(0)? } else { Device::Cpu };
    std::fs::create_dir_all(&opts.state).map_err(|e| Error::io(&opts.state, e))?;
    let (map, net) = init_model(&opts.config, opts.seed, &device)?;
    let vars = model::sorted_vars(&map);
    let trainable: Vec<(String, Var)> =
        vars.iter().filter(|(n, _)| model::is_trainable(n)).cloned().collect();
    let mut adam = crate::optim::Adam::new(trainable)?;
    let paths = crate::optim::CheckpointPaths::in_dir(&opts.state);
    let mut state = TrainState::default();
    if let Some(saved) = crate::optim::load_checkpoint(&map, &mut adam, &paths, &device)? {
        state = saved;
        tracing::info!("resuming at step {}", state.step);
        if state.step > opts.steps {
            return Err(Error::Invalid(format!(
                "the checkpoint in {} is at step {step}, past --steps {}: ask for at least \
                 {step} steps",
                opts.state.display(),
                opts.steps,
                step = state.step,
            )));
        }
    }
    let pools = Pools::new(&corpus.train);
    if pools.voice.is_empty() || (pools.music.is_empty() && pools.sfx.is_empty()) {
        return Err(Error::Invalid(
            "the training corpus needs speech and music or effects packages".into(),
        ));
    }
    let val_items = eval::corpus_items(
        &corpus.val,
        opts.val_items,
        opts.val_seconds,
        opts.rate(),
        opts.seed ^ 0x5eed,
        (-5.0, 5.0),
    );
    let card = |state: &TrainState| ModelCard {
        name: opts.out.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        config: opts.config.clone(),
        provenance: provenance(opts, corpus, state, model::parameter_count(&map)),
    };
    let sep = Separator::from_parts(card(&state), net, device.clone());
    progress.stage(Stage::Training);
    progress.set_total(opts.steps as u64);
    progress.advance(state.step as u64);
    let log_path = opts.state.join("log.csv");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;
    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let first_step = state.step;
    while state.step < opts.steps {
        if progress.is_cancelled() {
            // Keep the steps since the last checkpoint: batches are drawn by step number, so
            // the next run resumes exactly here.
            if state.step % opts.checkpoint_every != 0 {
                crate::optim::save_checkpoint(&map, &adam, &state, &paths)?;
            }
            return Err(Error::Cancelled);
        }
        let step = state.step;
        let (x, mix, tgt) = make_batch(opts, &pools, step, &device)?;
        let (masks, stats) = sep.net().forward_t(&x, true)?;
        let loss = model::loss(&masks, &mix, &tgt, opts.config.loss)?;
        let grads = loss.backward()?;
        let lr = crate::optim::lr_at(opts.lr, opts.warmup, opts.schedule(), step);
        adam.step(&grads, lr, opts.weight_decay, step + 1)?;
        update_running_stats(&map, &stats)?;
        let l = f64::from(loss.to_scalar::<f32>()?);
        state.loss =
            if state.step == 0 || state.loss == 0.0 { l } else { 0.95 * state.loss + 0.05 * l };
        state.step += 1;
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        progress.advance(1);
        let validate =
            (state.step % opts.val_every == 0 || state.step == opts.steps) && !val_items.is_empty();
        if validate {
            state.val_sdr = validation_sdr(&sep, &val_items)?;
            state.history.push((state.step, state.val_sdr));
        }
        let per_step = (state.elapsed_s - elapsed_before) / (state.step - first_step) as f64;
        progress.message(&format!(
            "loss {:.4} lr {lr:.2e} val SDR {:.2} dB ({per_step:.2} s/step)",
            state.loss, state.val_sdr
        ));
        use std::io::Write as _;
        let _ = writeln!(
            log,
            "{},{:.5},{:.5},{lr:.3e},{:.3},{:.1}",
            state.step, l, state.loss, state.val_sdr, state.elapsed_s
        );
        if state.step % opts.checkpoint_every == 0 || state.step == opts.steps {
            crate::optim::save_checkpoint(&map, &adam, &state, &paths)?;
        }
    }
    write_model(&map, &card(&state), &opts.out)?;
    Ok(state)
}

pub use crate::optim::{round_floats, write_card, write_model};

fn provenance(
    opts: &TrainOptions,
    corpus: &Corpus,
    state: &TrainState,
    params: usize,
) -> toml::Table {
    let rate = opts.rate();
    let pkgs = |v: &[Source]| -> toml::Value {
        toml::Value::Array(
            v.iter()
                .map(|s| {
                    let mut t = toml::Table::new();
                    t.insert("package".into(), s.package.clone().into());
                    t.insert("version".into(), s.version.clone().into());
                    t.insert("kind".into(), format!("{:?}", s.kind).to_lowercase().into());
                    t.insert("licence_file".into(), s.licence.clone().into());
                    t.insert(
                        "seconds".into(),
                        (s.clean.len() as f64 / f64::from(rate.0)).round().into(),
                    );
                    toml::Value::Table(t)
                })
                .collect(),
        )
    };
    let mut data = toml::Table::new();
    data.insert(
        "source".into(),
        "Debian packages via ../shared/data/fetch_training_audio.sh".into(),
    );
    data.insert(
        "mixtures".into(),
        "on the fly: speech packages as voice over music (and effects) packages as background"
            .into(),
    );
    data.insert("train_hours".into(), (Corpus::seconds(&corpus.train, rate) / 3600.0).into());
    data.insert("val_hours".into(), (Corpus::seconds(&corpus.val, rate) / 3600.0).into());
    data.insert("train".into(), pkgs(&corpus.train));
    data.insert("validation".into(), pkgs(&corpus.val));
    let mut training = toml::Table::new();
    let mut command = format!(
        "aniprint train separator --steps {} --batch {} --lr {} --seed {}",
        opts.steps, opts.batch, opts.lr, opts.seed
    );
    if opts.schedule() != opts.steps {
        command.push_str(&format!(" --schedule-steps {}", opts.schedule()));
    }
    if !opts.config.eca {
        command.push_str(" --no-eca");
    }
    if opts.config.norm == model::NormKind::Batch {
        command.push_str(" --norm batch");
    }
    if opts.config.loss == model::LossKind::L2 {
        command.push_str(" --loss l2");
    }
    training.insert("command".into(), command.into());
    training.insert("steps".into(), (state.step as i64).into());
    training.insert("batch".into(), (opts.batch as i64).into());
    training.insert("wall_time_s".into(), state.elapsed_s.round().into());
    training.insert("final_loss".into(), round_floats(state.loss.into()));
    training.insert("lr".into(), opts.lr.into());
    training.insert("seed".into(), (opts.seed as i64).into());
    training.insert("parameters".into(), (params as i64).into());
    training.insert("device".into(), if opts.cuda { "cuda" } else { "cpu (2 cores)" }.into());
    if let Ok(mix) = toml::Value::try_from(&opts.mix) {
        training.insert("mix".into(), round_floats(mix));
    }
    let mut metrics = toml::Table::new();
    metrics.insert("val_sdr_db_during_training".into(), round_floats(state.val_sdr.into()));
    metrics.insert(
        "val_note".into(),
        format!(
            "mean SDR over both stems, {} held-out mixtures of {} s, voice-to-background -5..5 dB",
            opts.val_items, opts.val_seconds
        )
        .into(),
    );
    let mut t = toml::Table::new();
    t.insert("data".into(), toml::Value::Table(data));
    t.insert("training".into(), toml::Value::Table(training));
    t.insert("metrics".into(), toml::Value::Table(metrics));
    t
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn source(kind: Kind, clean: Vec<f32>) -> Source {
        Source::uncoded("p", kind, SampleRate(8000), clean)
    }

    /// A 0.5 s "line" padded with 0.25 s of silence on both sides, as prompt files are.
    fn prompt(level: f32) -> Vec<f32> {
        let mut v = vec![0.0; 2000];
        v.extend((0..4000).map(|i| level * (i as f32 * 0.3).sin()));
        v.extend(vec![0.0; 2000]);
        v
    }

    #[test]
    fn trim_silence_keeps_the_sounding_span() {
        assert_eq!(trim_silence(&prompt(0.5)), (2001, 6000));
        assert_eq!(trim_silence(&[0.0; 10]), (0, 10));
        assert_eq!(trim_silence(&[]), (0, 0));
    }

    #[test]
    fn fill_strings_short_lines_across_the_whole_patch() {
        let sources: Vec<Source> = (0..4).map(|_| source(Kind::Speech, prompt(0.5))).collect();
        let pool = Pool::new(&sources);
        let len = 8000 * 6;
        let mut rng = StdRng::seed_from_u64(3);
        let x = pool.fill(&mut rng, len, false, Fill::SPEECH);
        assert_eq!(x.len(), len);
        // One 0.5 s line per ~1 s at most pauses: far more than the single prompt a plain
        // draw gives, and sound in every second of the patch.
        let active = x.iter().filter(|v| v.abs() > 1e-3).count() as f32 / len as f32;
        assert!(active > 0.3, "active fraction {active}");
        for second in x.chunks(8000) {
            assert!(second.iter().any(|v| v.abs() > 1e-3));
        }
        // Deterministic in the seed.
        assert_eq!(x, pool.fill(&mut StdRng::seed_from_u64(3), len, false, Fill::SPEECH));
    }

    #[test]
    fn fill_of_silent_or_empty_pools_is_silence() {
        let silent = [source(Kind::Sfx, vec![0.0; 100])];
        let mut rng = StdRng::seed_from_u64(1);
        assert!(
            Pool::new(&silent).fill(&mut rng, 1000, false, Fill::SFX).iter().all(|&v| v == 0.0)
        );
        let none: [Source; 0] = [];
        assert_eq!(Pool::new(&none).fill(&mut rng, 10, false, Fill::SFX), vec![0.0; 10]);
    }
}
