//! Training the fingerprinter: the corpus cache, (anchor, degraded positive) pair sampling,
//! NT-Xent with Adam, checkpoints that resume exactly, and a running validation hit rate.
//!
//! Reproducibility: every batch is drawn from an RNG seeded by `(seed, step)`, and the Adam
//! moments are checkpointed with the weights, so a run killed at any point and resumed takes the
//! same steps as one that never stopped.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::augment::{self, Convolver, NoiseColor};
use super::model::{self, Encoder, nt_xent_with_memory};
use super::{FingerprintConfig, Fingerprinter, FrontEnd, ModelCard};
use crate::dsp::{SAME_AUDIO, best_correlation};
use crate::media::{self, DecodeOptions};
use crate::progress::{Progress, Stage};
use crate::units::SampleRate;
use crate::{Error, Result};

/// What a source in the training corpus holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Music.
    Music,
    /// Speech.
    Speech,
    /// Sound effects.
    Sfx,
}

impl Kind {
    /// The manifest's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Music => "music",
            Kind::Speech => "speech",
            Kind::Sfx => "sfx",
        }
    }
}

/// One package of the corpus (or the files of one kind in it), decoded and concatenated at
/// the fingerprint rate.
#[derive(Debug, Clone)]
pub struct Source {
    /// Debian package name.
    pub package: String,
    /// Package version.
    pub version: String,
    /// What it holds.
    pub kind: Kind,
    /// Licence file, relative to the corpus root.
    pub licence: String,
    /// Sample rate of `clean` and `coded`.
    pub rate: SampleRate,
    /// Clean audio.
    pub clean: Vec<f32>,
    /// The same audio after a low-bitrate MP3 round trip, sample-aligned with `clean`.
    pub coded: Vec<f32>,
}

/// The corpus split into training and held-out validation packages.
#[derive(Debug, Default)]
pub struct Corpus {
    /// Packages training may see.
    pub train: Vec<Source>,
    /// Packages held out for validation and evaluation.
    pub val: Vec<Source>,
}

impl Source {
    /// A source whose "coded" copy is its clean audio (no MP3 round trip), with no version or
    /// licence: synthetic or fixture corpora for tests and checks.
    pub fn uncoded(package: &str, kind: Kind, rate: SampleRate, clean: Vec<f32>) -> Self {
        Self {
            package: package.into(),
            version: String::new(),
            kind,
            licence: String::new(),
            rate,
            coded: clean.clone(),
            clean,
        }
    }
}

impl Corpus {
    /// Total seconds in a split.
    pub fn seconds(sources: &[impl Borrow<Source>], rate: SampleRate) -> f64 {
        sources.iter().map(|s| s.borrow().clean.len() as f64).sum::<f64>() / f64::from(rate.0)
    }
}

/// Packages held out by default: whole packages, so validation never hears a recording (or a
/// composer's style, or a speaker) that training saw.
pub const DEFAULT_VAL_PACKAGES: &[&str] = &[
    "lincity-ng-data",
    "drascula-music",
    "asterisk-core-sounds-fr-wav",
    "fillets-ng-data",
    "boswars-data",
];

/// MP3 bitrate of the coded copy: low, as on re-uploaded clips (8 kHz MPEG-2.5 layer III).
const CODED_BITRATE: usize = 24_000;

#[derive(Debug, Deserialize)]
struct ManifestRow {
    path: String,
    kind: String,
    package: String,
    version: String,
    licence_file: String,
}

/// Load the corpus from `fetch_training_audio.sh`'s output, decoding into `cache` on first use.
pub fn load_corpus(
    corpus: &Path,
    cache: &Path,
    rate: SampleRate,
    val_packages: &[String],
    progress: &dyn Progress,
) -> Result<Corpus> {
    let manifest = corpus.join("manifest.csv");
    let mut rdr = csv::Reader::from_path(&manifest).map_err(|e| Error::Config {
        path: manifest.clone(),
        reason: format!(
            "cannot read the corpus manifest ({e}); run ../shared/data/fetch_training_audio.sh"
        ),
    })?;
    // One source per package and kind of file: a dialogue package may also ship its game's
    // music and effects (fillets-ng-data does), which must not count as voice.
    let mut by_pkg: BTreeMap<(String, Option<Kind>), Vec<ManifestRow>> = BTreeMap::new();
    let mut whole: BTreeMap<String, usize> = BTreeMap::new();
    for row in rdr.deserialize() {
        let row: ManifestRow = row?;
        *whole.entry(row.package.clone()).or_default() += 1;
        by_pkg.entry((row.package.clone(), file_kind(&row.kind, &row.path))).or_default().push(row);
    }
    std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
    progress.stage(Stage::Decoding);
    progress.set_total(by_pkg.len() as u64);
    let sources: Vec<Result<Option<Source>>> = by_pkg
        .into_par_iter()
        .map(|((pkg, kind), mut rows)| {
            rows.sort_by(|a, b| a.path.cmp(&b.path));
            let r = match kind {
                // A package split by kind caches each part under its own name.
                Some(kind) => {
                    let part = if rows.len() == whole[&pkg] {
                        pkg.clone()
                    } else {
                        format!("{pkg}.{}", kind.as_str())
                    };
                    load_package(corpus, cache, rate, &pkg, &part, kind, &rows)
                }
                None => Ok(None),
            };
            progress.advance(1);
            r
        })
        .collect();
    let mut out = Corpus::default();
    for s in sources {
        let Some(s) = s? else { continue };
        if val_packages.iter().any(|v| v == &s.package) {
            out.val.push(s);
        } else {
            out.train.push(s);
        }
    }
    Ok(out)
}

/// The kind of one corpus file: the manifest's kind of its package, except that files of a
/// speech package with no language in their path (`__en__`, `__nds__`, `__sr@latin__`,
/// `__en_US_f_Allison__`) are the game's music (a `music` folder) or effects.
fn file_kind(package_kind: &str, path: &str) -> Option<Kind> {
    let kind = match package_kind {
        "music" => Kind::Music,
        "speech" => Kind::Speech,
        "sfx" => Kind::Sfx,
        _ => return None,
    };
    if kind != Kind::Speech {
        return Some(kind);
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut folders: Vec<&str> = name.split("__").collect();
    folders.pop();
    let is_language = |c: &str| {
        let b = c.as_bytes();
        b.len() >= 2
            && b[..2].iter().all(u8::is_ascii_lowercase)
            && (b.len() == 2
                || (b.len() == 3 && b[2].is_ascii_lowercase())
                || b[2] == b'_'
                || b[2] == b'@')
    };
    Some(if folders.iter().any(|c| is_language(c)) {
        Kind::Speech
    } else if folders.contains(&"music") {
        Kind::Music
    } else {
        Kind::Sfx
    })
}

fn load_package(
    corpus: &Path,
    cache: &Path,
    rate: SampleRate,
    pkg: &str,
    part: &str,
    kind: Kind,
    rows: &[ManifestRow],
) -> Result<Option<Source>> {
    let clean_path = cache.join(format!("{part}.{}.f32", rate.0));
    let coded_path = cache.join(format!("{part}.{}.mp3.f32", rate.0));
    let clean = match read_f32(&clean_path) {
        Some(v) => v,
        None => {
            let mut all = Vec::new();
            let opts = DecodeOptions { rate, channels: 1, ..DecodeOptions::default() };
            for r in rows {
                match media::decode(&corpus.join(&r.path), &opts) {
                    Ok(v) => all.extend(v),
                    Err(e) => tracing::warn!("skipping {}: {e}", r.path),
                }
            }
            write_f32(&clean_path, &all)?;
            all
        }
    };
    if clean.len() < rate.0 as usize * 2 {
        return Ok(None);
    }
    let coded = match read_f32(&coded_path) {
        Some(v) if v.len() == clean.len() => v,
        _ => {
            let v = codec_round_trip(&clean, rate, &cache.join(format!("{part}.tmp.mp3")))?;
            write_f32(&coded_path, &v)?;
            v
        }
    };
    let first = &rows[0];
    Ok(Some(Source {
        package: pkg.to_string(),
        version: first.version.clone(),
        kind,
        licence: first.licence_file.clone(),
        rate,
        clean,
        coded,
    }))
}

/// Encode to low-bitrate MP3 and decode back, aligned sample for sample with the input.
pub fn codec_round_trip(clean: &[f32], rate: SampleRate, tmp: &Path) -> Result<Vec<f32>> {
    media::write::write_mp3(tmp, clean, rate, 1, CODED_BITRATE)?;
    let decoded =
        media::decode(tmp, &DecodeOptions { rate, channels: 1, ..DecodeOptions::default() });
    let _ = std::fs::remove_file(tmp);
    let decoded = decoded?;
    let lag = estimate_lag(clean, &decoded, 3000);
    let mut out: Vec<f32> = decoded.into_iter().skip(lag).collect();
    out.resize(clean.len(), 0.0);
    Ok(out)
}

/// The delay (0..max_lag samples) of `delayed` against `reference`, by cross-correlation over
/// the loudest few seconds.
fn estimate_lag(reference: &[f32], delayed: &[f32], max_lag: usize) -> usize {
    let win = 16_000.min(reference.len().saturating_sub(max_lag));
    if win == 0 {
        return 0;
    }
    // Pick the loudest window among a few candidates so silence does not decide.
    let starts: Vec<usize> =
        (0..8).map(|i| i * (reference.len() - win - max_lag).max(1) / 8).collect();
    let start = starts
        .into_iter()
        .max_by(|&a, &b| {
            augment::rms(&reference[a..a + win]).total_cmp(&augment::rms(&reference[b..b + win]))
        })
        .unwrap_or(0);
    let r = &reference[start..start + win];
    (0..max_lag)
        .filter(|l| start + l + win <= delayed.len())
        .max_by(|&a, &b| {
            let ca: f32 = r.iter().zip(&delayed[start + a..]).map(|(x, y)| x * y).sum();
            let cb: f32 = r.iter().zip(&delayed[start + b..]).map(|(x, y)| x * y).sum();
            ca.total_cmp(&cb)
        })
        .unwrap_or(0)
}

fn read_f32(path: &Path) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

fn write_f32(path: &Path, v: &[f32]) -> Result<()> {
    let tmp = path.with_extension("partial");
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// A degradation recipe: each step happens with its probability, with parameters drawn from
/// its range. Read from TOML by `train fingerprint --degrade FILE`; fields left out keep the
/// training recipe's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Degrade {
    /// Largest time shift of the positive, seconds (either way).
    pub max_shift_s: f32,
    /// Probability of using the low-bitrate MP3 copy.
    pub p_codec: f32,
    /// Probability of another source leaking in (what separation leaves behind).
    pub p_leak: f32,
    /// Leak level below the signal, dB (as an SNR range).
    pub leak_snr_db: (f32, f32),
    /// Probability of a synthetic room.
    pub p_reverb: f32,
    /// RT60 range, seconds.
    pub rt60_s: (f32, f32),
    /// Probability of background noise.
    pub p_noise: f32,
    /// SNR range, dB.
    pub snr_db: (f32, f32),
    /// Probability of band-limiting.
    pub p_band: f32,
    /// Gain range, dB.
    pub gain_db: (f32, f32),
    /// Probability of silencing the start or the end of the positive (either, evenly): what
    /// a short query's phase copy padded with silence looks like (see
    /// [`FingerprintConfig::phase_shifts`](crate::fingerprint::FingerprintConfig::phase_shifts)).
    /// 0 in the training recipe, which fingerprint-v6 was trained with.
    pub p_pad: f32,
    /// Longest silenced stretch, seconds.
    pub max_pad_s: f32,
}

impl Default for Degrade {
    fn default() -> Self {
        Self::train()
    }
}

impl Degrade {
    /// Reads a recipe from a TOML file (see [`Degrade`]; a model card's `[training.degrade]`
    /// table works too), checked by [`Degrade::validate`].
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut table: toml::Table = crate::config::read_toml(path)?;
        if let Some(toml::Value::Table(mut training)) = table.remove("training")
            && let Some(toml::Value::Table(d)) = training.remove("degrade")
        {
            table = d;
        }
        let d: Self = crate::config::from_table(table, path)?;
        d.validate().map_err(|reason| Error::Config { path: path.to_path_buf(), reason })?;
        Ok(d)
    }

    /// Why this recipe cannot be drawn from, if so: probabilities in [0, 1], ranges finite and
    /// ordered, rooms with a positive RT60, a shift of at most 1 s.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, p) in [
            ("p_codec", self.p_codec),
            ("p_leak", self.p_leak),
            ("p_reverb", self.p_reverb),
            ("p_noise", self.p_noise),
            ("p_band", self.p_band),
            ("p_pad", self.p_pad),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} = {p} is not a probability"));
            }
        }
        for (name, (lo, hi)) in [
            ("leak_snr_db", self.leak_snr_db),
            ("rt60_s", self.rt60_s),
            ("snr_db", self.snr_db),
            ("gain_db", self.gain_db),
        ] {
            // Drawing from an infinite or reversed range panics mid-batch; NaN fails here too.
            if !(lo.is_finite() && hi.is_finite() && (hi - lo).is_finite() && lo <= hi) {
                return Err(format!("{name} = [{lo}, {hi}] is not a finite, ordered range"));
            }
        }
        if self.rt60_s.0 <= 0.0 {
            return Err("rt60_s must be above 0 s".into());
        }
        if !(0.0..=1.0).contains(&self.max_shift_s) {
            return Err(format!("max_shift_s = {} is outside 0-1 s", self.max_shift_s));
        }
        if !(0.0..=1.0).contains(&self.max_pad_s) {
            return Err(format!("max_pad_s = {} is outside 0-1 s", self.max_pad_s));
        }
        Ok(())
    }

    /// The training recipe (broader than evaluation, so the model sees the eval conditions and
    /// more).
    pub fn train() -> Self {
        Self {
            max_shift_s: 0.2,
            p_codec: 0.5,
            p_leak: 0.3,
            leak_snr_db: (5.0, 20.0),
            p_reverb: 0.6,
            rt60_s: (0.2, 1.0),
            p_noise: 0.85,
            snr_db: (0.0, 20.0),
            p_band: 0.3,
            gain_db: (-12.0, 6.0),
            p_pad: 0.0,
            max_pad_s: 0.25,
        }
    }

    /// The evaluation condition of issue 3: noise 0-10 dB SNR + reverb + re-encode, all at once.
    pub fn eval_all() -> Self {
        Self {
            max_shift_s: 0.0,
            p_codec: 1.0,
            p_leak: 0.0,
            leak_snr_db: (5.0, 20.0),
            p_reverb: 1.0,
            rt60_s: (0.2, 0.8),
            p_noise: 1.0,
            snr_db: (0.0, 10.0),
            p_band: 0.0,
            gain_db: (0.0, 0.0),
            p_pad: 0.0,
            max_pad_s: 0.25,
        }
    }

    /// No degradation at all.
    pub fn clean() -> Self {
        Self { p_codec: 0.0, p_reverb: 0.0, p_noise: 0.0, ..Self::eval_all() }
    }

    /// Evaluation with only noise.
    pub fn noise_only() -> Self {
        Self { p_noise: 1.0, ..Self::clean() }
    }

    /// Evaluation with only reverb.
    pub fn reverb_only() -> Self {
        Self { p_reverb: 1.0, ..Self::clean() }
    }

    /// Evaluation with only the MP3 round trip.
    pub fn codec_only() -> Self {
        Self { p_codec: 1.0, ..Self::clean() }
    }

    /// Degrade `len` samples of `src` starting at `start`. `noise` supplies background and
    /// leakage (any source but `src` is fine; a recorded noise is picked 70% of the time,
    /// coloured noise otherwise).
    pub fn apply(
        &self,
        rng: &mut StdRng,
        conv: &mut Convolver,
        src: &Source,
        start: usize,
        len: usize,
        noise: &[impl Borrow<Source>],
    ) -> Vec<f32> {
        let rate = src.rate;
        let sr = rate.0 as usize;
        let audio = if rng.random::<f32>() < self.p_codec { &src.coded } else { &src.clean };
        // Half a second of context before the segment lets the room's tail come from real audio.
        let context = sr / 2;
        let begin = start.saturating_sub(context);
        let end = (start + len).min(audio.len());
        let mut x: Vec<f32> = audio[begin..end].to_vec();
        x.resize(start + len - begin, 0.0);
        if rng.random::<f32>() < self.p_leak && !noise.is_empty() {
            let other = random_clip(rng, noise, x.len());
            augment::add_noise_at_snr(&mut x, &other, uniform(rng, self.leak_snr_db));
        }
        if rng.random::<f32>() < self.p_reverb {
            let rt60 = uniform(rng, self.rt60_s);
            let rir = augment::synth_rir(rng, rate.0, rt60);
            x = conv.conv(&x, &rir);
        }
        let mut x = x.split_off(start - begin);
        if rng.random::<f32>() < self.p_noise {
            let n = if rng.random::<f32>() < 0.7 && !noise.is_empty() {
                random_clip(rng, noise, len)
            } else {
                let color = [NoiseColor::White, NoiseColor::Pink, NoiseColor::Brown]
                    [rng.random_range(0..3)];
                augment::coloured_noise(rng, color, len)
            };
            augment::add_noise_at_snr(&mut x, &n, uniform(rng, self.snr_db));
        }
        if rng.random::<f32>() < self.p_band {
            let low = rng.random_range(50.0..400.0);
            let high = rng.random_range(1500.0..(rate.0 as f32 * 0.48));
            augment::band_limit(&mut x, rate.0, low, high);
        }
        augment::apply_gain_db(&mut x, uniform(rng, self.gain_db));
        // Drawn last, and only when asked for, so a recipe without it keeps its random stream
        // (and the models trained with it stay reproducible).
        if self.p_pad > 0.0 && rng.random::<f32>() < self.p_pad {
            let n = rng.random_range(0..=((self.max_pad_s * sr as f32) as usize).min(x.len()));
            let at = if rng.random::<bool>() { 0 } else { x.len() - n };
            x[at..at + n].fill(0.0);
        }
        augment::normalize_peak(&mut x);
        x
    }
}

fn uniform(rng: &mut StdRng, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

fn random_clip(rng: &mut StdRng, pool: &[impl Borrow<Source>], len: usize) -> Vec<f32> {
    let s = pool[rng.random_range(0..pool.len())].borrow();
    let at = rng.random_range(0..s.clean.len().saturating_sub(len).max(1));
    let mut v = s.clean[at..(at + len).min(s.clean.len())].to_vec();
    v.resize(len, 0.0);
    v
}

/// Draws training positions: a kind (music, speech, effects at fixed odds), then a package by
/// its length, then a non-silent position.
#[derive(Debug)]
pub struct Sampler {
    by_kind: Vec<(Kind, f32, Vec<usize>, Vec<f64>)>,
}

impl Sampler {
    /// A sampler over `sources`.
    pub fn new(sources: &[Source]) -> Self {
        let odds = [(Kind::Music, 0.5), (Kind::Speech, 0.35), (Kind::Sfx, 0.15)];
        let by_kind = odds
            .iter()
            .filter_map(|&(k, p)| {
                let idx: Vec<usize> =
                    (0..sources.len()).filter(|&i| sources[i].kind == k).collect();
                if idx.is_empty() {
                    return None;
                }
                let mut acc = 0.0;
                let cum = idx
                    .iter()
                    .map(|&i| {
                        acc += sources[i].clean.len() as f64;
                        acc
                    })
                    .collect();
                Some((k, p, idx, cum))
            })
            .collect();
        Self { by_kind }
    }

    /// A (source index, start) whose `len` samples are not near-silent.
    pub fn draw(
        &self,
        rng: &mut StdRng,
        sources: &[Source],
        len: usize,
        margin: usize,
    ) -> (usize, usize) {
        let total: f32 = self.by_kind.iter().map(|k| k.1).sum();
        let mut fallback = (0, 0);
        for _ in 0..20 {
            let mut u = rng.random::<f32>() * total;
            let kind = self.by_kind.iter().find(|k| {
                u -= k.1;
                u <= 0.0
            });
            let Some((_, _, idx, cum)) = kind.or(self.by_kind.last()) else { break };
            let r = rng.random::<f64>() * cum.last().copied().unwrap_or(0.0);
            let i = idx[cum.partition_point(|&c| c < r).min(idx.len() - 1)];
            let n = sources[i].clean.len();
            if n < len + 2 * margin {
                continue;
            }
            let start = rng.random_range(margin..n - len - margin);
            fallback = (i, start);
            if augment::rms(&sources[i].clean[start..start + len]) > 3e-3 {
                return (i, start);
            }
        }
        fallback
    }
}

/// Everything a training run is told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOptions {
    /// The corpus from `fetch_training_audio.sh`.
    pub corpus: PathBuf,
    /// Where decoded audio is cached between runs.
    pub cache: PathBuf,
    /// Checkpoints and the training log (resumed from when present).
    pub state: PathBuf,
    /// Where the finished model (weights + card) is written.
    pub out: PathBuf,
    /// Optimiser steps.
    pub steps: usize,
    /// (anchor, positive) pairs per step.
    pub batch_pairs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps, then cosine decay to 5% of the peak.
    pub warmup: usize,
    /// Decoupled weight decay on matrices.
    pub weight_decay: f64,
    /// NT-Xent temperature.
    pub temperature: f64,
    /// Seed for initialisation and for every batch.
    pub seed: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Steps between validation runs.
    pub val_every: usize,
    /// Packages held out.
    pub val_packages: Vec<String>,
    /// Use CUDA.
    pub cuda: bool,
    /// Model and front end.
    pub fingerprint: FingerprintConfig,
    /// Degradations of positives.
    pub degrade: Degrade,
    /// Cross-batch memory: this many embeddings of earlier batches join every step's
    /// negatives (0: the batch alone, as v1-v3 were trained).
    #[serde(default)]
    pub memory: usize,
    /// Start from this model's weights instead of a random initialisation (fine-tuning; its
    /// config must equal `fingerprint`). Ignored when a checkpoint is resumed.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Length of the learning-rate schedule when it differs from `steps` (`None`: `steps`), as
    /// the separator's trainer has it.
    #[serde(default)]
    pub schedule_steps: Option<usize>,
    /// Pairs drawn in groups of this many from one source, within `group_window_s` of each
    /// other, so that a phrase and its near-repeats (a loop with another line over it, the
    /// same speaker) are each other's negatives; a negative of the batch whose clean audio is
    /// the anchor's own (an exact loop, an overlap) is left out of the loss (the `memory`
    /// bank's rows are kept out by source and hop only). 0 or 1: each pair drawn on its own
    /// (v1-v6).
    #[serde(default)]
    pub group: usize,
    /// See `group`, seconds.
    #[serde(default = "default_group_window")]
    pub group_window_s: f32,
}

fn default_group_window() -> f32 {
    32.0
}

impl TrainOptions {
    /// Defaults for a corpus at `corpus`, state in `state`, the model written to `out`.
    pub fn new(corpus: PathBuf, state: PathBuf, out: PathBuf) -> Self {
        Self {
            cache: state.join("cache"),
            corpus,
            state,
            out,
            // fingerprint-v10's recipe, the default ensemble's first member: a run without
            // --out replaces it (`aniprint train` and the TUI's `:train` share these).
            steps: 10_000,
            batch_pairs: 256,
            lr: 2e-3,
            warmup: 200,
            weight_decay: 1e-4,
            temperature: 0.05,
            seed: 20_261_126,
            checkpoint_every: 100,
            val_every: 250,
            val_packages: DEFAULT_VAL_PACKAGES.iter().map(|s| s.to_string()).collect(),
            cuda: false,
            fingerprint: FingerprintConfig::default(),
            degrade: Degrade::train(),
            memory: 0,
            init: None,
            schedule_steps: None,
            group: 0,
            group_window_s: default_group_window(),
        }
    }

    /// Steps the learning-rate schedule spans.
    pub fn schedule(&self) -> usize {
        self.schedule_steps.unwrap_or(self.steps).max(self.steps)
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
    /// Last validation score, 0..1 (what the run's [`Validator`] measures; the built-in one:
    /// Top-1 of degraded 1 s queries).
    pub val_top1: f64,
    /// Validation history: (step, top1).
    pub history: Vec<(usize, f64)>,
}

/// Where a training pair's audio comes from: (training source index, anchor start sample).
pub type Origin = (usize, usize);

/// One training batch.
pub struct Batch {
    /// `pairs` anchor patches, then their positives.
    pub patches: Vec<f32>,
    /// Where each pair's audio comes from.
    pub origins: Vec<Origin>,
    /// Pairs `(i, j)`, `i < j`, of one group whose anchors hold the same audio (or start
    /// within a hop of each other): not each other's negatives.
    pub same: Vec<(usize, usize)>,
}

/// Build one batch of `pairs` (anchor, positive) pairs.
pub fn make_batch(
    opts: &TrainOptions,
    corpus: &Corpus,
    sampler: &Sampler,
    step: usize,
    pairs: usize,
) -> Batch {
    let cfg = &opts.fingerprint;
    let rate = cfg.rate();
    let seg = cfg.segment;
    let margin = (opts.degrade.max_shift_s * rate.0 as f32) as usize + 1;
    let group = opts.group.max(1);
    let window = (opts.group_window_s * rate.0 as f32) as usize;
    let items: Vec<(Vec<f32>, Vec<f32>, Origin)> = (0..pairs)
        .into_par_iter()
        .map_init(
            || (FrontEnd::new(cfg), Convolver::new(), Vec::new(), Vec::new()),
            |(fe, conv, scratch, padded), i| {
                let mut rng = crate::optim::batch_rng(opts.seed, step, i);
                let (si, start) = if group > 1 && i % group != 0 {
                    // The group's source and place come from its first pair's draw.
                    let mut first = crate::optim::batch_rng(opts.seed, step, i - i % group);
                    let (si, at) = sampler.draw(&mut first, &corpus.train, seg, margin);
                    (si, draw_near(&mut rng, &corpus.train[si].clean, at, window, seg, margin))
                } else {
                    sampler.draw(&mut rng, &corpus.train, seg, margin)
                };
                let src = &corpus.train[si];
                let shift = if margin > 1 {
                    rng.random_range(0..2 * margin) as isize - margin as isize
                } else {
                    0
                };
                let pstart = (start as isize + shift).max(0) as usize;
                let pos = opts.degrade.apply(&mut rng, conv, src, pstart, seg, &corpus.train);
                let mut a = Vec::with_capacity(fe.patch_len());
                fe.patch(&src.clean[start..start + seg], scratch, padded, &mut a);
                let mut p = Vec::with_capacity(fe.patch_len());
                fe.patch(&pos, scratch, padded, &mut p);
                (a, p, (si, start))
            },
        )
        .collect();
    let mut patches = Vec::with_capacity(2 * pairs * items.first().map_or(0, |x| x.0.len()));
    for (a, _, _) in &items {
        patches.extend_from_slice(a);
    }
    for (_, p, _) in &items {
        patches.extend_from_slice(p);
    }
    let origins: Vec<Origin> = items.into_iter().map(|x| x.2).collect();
    let same = same_audio_pairs(&origins, group, &corpus.train, seg, margin, cfg.hop);
    Batch { patches, origins, same }
}

/// A start within `window / 2` of `at` in `clean` whose `len` samples are not near-silent
/// (the last try when none is found).
fn draw_near(
    rng: &mut StdRng,
    clean: &[f32],
    at: usize,
    window: usize,
    len: usize,
    margin: usize,
) -> usize {
    let lo = at.saturating_sub(window / 2).max(margin);
    let hi = (at + window / 2).min(clean.len().saturating_sub(len + margin));
    if hi <= lo {
        return at;
    }
    let mut start = at;
    for _ in 0..20 {
        start = rng.random_range(lo..hi);
        if augment::rms(&clean[start..start + len]) > 3e-3 {
            break;
        }
    }
    start
}

/// The pairs of each group of `group` whose anchors start within `hop` of each other or whose
/// clean audio is the same (normalised cross-correlation at least [`SAME_AUDIO`] within
/// `margin` samples): the same test `eval` uses for a Top-1 answer that is the query's own
/// audio elsewhere.
fn same_audio_pairs(
    origins: &[Origin],
    group: usize,
    sources: &[Source],
    len: usize,
    margin: usize,
    hop: usize,
) -> Vec<(usize, usize)> {
    if group < 2 {
        return Vec::new();
    }
    let candidates: Vec<(usize, usize)> = (0..origins.len())
        .flat_map(|i| (i + 1..(i / group + 1) * group).map(move |j| (i, j)))
        .filter(|&(i, j)| j < origins.len() && origins[i].0 == origins[j].0)
        .collect();
    candidates
        .into_par_iter()
        .filter(|&(i, j)| {
            let (a, b) = (origins[i].1, origins[j].1);
            if a.abs_diff(b) < hop {
                return true;
            }
            let clean = &sources[origins[i].0].clean;
            let around = &clean[b.saturating_sub(margin)..(b + len + margin).min(clean.len())];
            best_correlation(&clean[a..a + len], around) >= SAME_AUDIO
        })
        .collect()
}

/// The additive mask of [`nt_xent_with_memory`] that takes each pair of `same` out of the
/// other's negatives (anchors and positives alike): `(2 pairs, 2 pairs)`, 0 or -1e9.
fn same_audio_mask(same: &[(usize, usize)], pairs: usize, device: &Device) -> Result<Tensor> {
    let n2 = 2 * pairs;
    let mut m = vec![0f32; n2 * n2];
    for &(i, j) in same {
        for a in [i, i + pairs] {
            for b in [j, j + pairs] {
                m[a * n2 + b] = -1e9;
                m[b * n2 + a] = -1e9;
            }
        }
    }
    Ok(Tensor::from_vec(m, (n2, n2), device)?)
}

/// What the trainer scores the model by every `val_every` steps (a hit rate in [0, 1]).
pub trait Validator {
    /// Shown in the log's first line and recorded in the model card.
    fn describe(&self) -> String;
    /// The score's key among the model card's metrics.
    fn metric(&self) -> &'static str;
    /// The `train fingerprint` flags that choose this validation ("" for the built-in one).
    fn flags(&self) -> String {
        String::new()
    }
    /// The score of `fp` (higher is better).
    fn score(&self, fp: &Fingerprinter) -> Result<f64>;
}

/// A fixed validation task: reference audio from held-out packages and degraded 1 s queries.
pub struct Validation {
    rate: usize,
    reference: Vec<f32>,
    queries: Vec<(usize, Vec<f32>)>,
}

impl Validation {
    /// `seconds` of reference audio taken evenly from the held-out sources, `n` queries.
    pub fn new(
        corpus: &Corpus,
        cfg: &FingerprintConfig,
        seconds: usize,
        n: usize,
        seed: u64,
    ) -> Self {
        let rate = cfg.rate().0 as usize;
        let per = seconds * rate / corpus.val.len().max(1);
        let mut reference = Vec::new();
        let mut spans = Vec::new();
        for s in &corpus.val {
            let take = per.min(s.clean.len());
            let at = (s.clean.len() - take) / 2;
            spans.push((reference.len(), s, at, take));
            reference.extend_from_slice(&s.clean[at..at + take]);
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut conv = Convolver::new();
        let degrade = Degrade::eval_all();
        let mut queries = Vec::with_capacity(n);
        let mut tries = 0;
        while queries.len() < n && tries < n * 20 && !spans.is_empty() {
            tries += 1;
            let (off, s, at, take) = spans[rng.random_range(0..spans.len())];
            if take < cfg.segment + 1 {
                continue;
            }
            let local = rng.random_range(0..take - cfg.segment);
            if augment::rms(&s.clean[at + local..at + local + cfg.segment]) < 3e-3 {
                continue;
            }
            let q = degrade.apply(&mut rng, &mut conv, s, at + local, cfg.segment, &corpus.val);
            queries.push((off + local, q));
        }
        Self { rate, reference, queries }
    }

    /// Top-1 rate: the nearest reference segment starts less than one hop from the truth.
    pub fn top1(&self, fp: &Fingerprinter) -> Result<f64> {
        let cfg = fp.config();
        let refs = fp.fingerprint(&self.reference)?;
        let fe = FrontEnd::new(cfg);
        let mut patches = Vec::new();
        for (_, q) in &self.queries {
            patches.extend(fe.patches(&q[..cfg.segment]));
        }
        let qs = fp.embed_patches(&patches)?;
        let mut hits = 0;
        for (k, (truth, _)) in self.queries.iter().enumerate() {
            let q = qs.row(k);
            let best = (0..refs.len())
                .map(|i| (i, refs.row(i).iter().zip(q).map(|(a, b)| a * b).sum::<f32>()))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |x| x.0);
            if (cfg.segment_start(best) as i64 - *truth as i64).unsigned_abs() < cfg.hop as u64 {
                hits += 1;
            }
        }
        Ok(hits as f64 / self.queries.len().max(1) as f64)
    }
}

impl Validator for Validation {
    fn describe(&self) -> String {
        format!(
            "top-1 of {} degraded (noise 0-10 dB + room + MP3) 1 s queries among {:.0} s of \
             held-out audio",
            self.queries.len(),
            self.reference.len() as f64 / self.rate.max(1) as f64
        )
    }

    fn metric(&self) -> &'static str {
        "val_top1_1s_noise_reverb_mp3"
    }

    fn score(&self, fp: &Fingerprinter) -> Result<f64> {
        self.top1(fp)
    }
}

/// Train (or resume training) the fingerprinter with the built-in validation ([`Validation`]:
/// 400 degraded 1 s queries among 600 s of held-out audio); writes the model to `opts.out`.
pub fn train(opts: &TrainOptions, corpus: &Corpus, progress: &dyn Progress) -> Result<TrainState> {
    let validation = Validation::new(corpus, &opts.fingerprint, 600, 400, opts.seed ^ 0x5eed);
    train_validated(opts, corpus, progress, &validation)
}

/// [`train`] scored every `val_every` steps by `validator` instead of the built-in validation.
pub fn train_validated(
    opts: &TrainOptions,
    corpus: &Corpus,
    progress: &dyn Progress,
    validator: &dyn Validator,
) -> Result<TrainState> {
    if opts.group > 1 && !(opts.group_window_s.is_finite() && opts.group_window_s >= 1.0) {
        // A window under a segment would make a group one place drawn N times.
        return Err(Error::Invalid(format!(
            "--group-window-s {} must be at least 1 s",
            opts.group_window_s
        )));
    }
    let device = model::device(opts.cuda)?;
    std::fs::create_dir_all(&opts.state).map_err(|e| Error::io(&opts.state, e))?;
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &device);
    let encoder = Encoder::new(&opts.fingerprint.model, vb)?;
    let vars = model::sorted_vars(&map);
    crate::optim::init_weights(&vars, opts.seed, model::init_std)?;
    let mut adam = crate::optim::Adam::new(vars)?;
    let paths = crate::optim::CheckpointPaths::in_dir(&opts.state);
    let mut state = TrainState::default();
    let memory_path = opts.state.join("memory.safetensors");
    let mut memory = Memory::new(opts.memory, opts.fingerprint.model.dim);
    let run = RunRecord {
        fingerprint: opts.fingerprint.clone(),
        degrade: opts.degrade.clone(),
        validation: validator.metric().to_string(),
        group: (opts.group, opts.group_window_s),
    };
    // Before loading: a checkpoint of another shape would fail there with a less clear error.
    if paths.weights.is_file() && paths.state.is_file() {
        run.check(&opts.state)?;
    }
    if let Some(saved) = crate::optim::load_checkpoint(&map, &mut adam, &paths, &device)? {
        state = saved;
        tracing::info!("resuming at step {}", state.step);
        if opts.memory > 0 {
            memory.load(&memory_path, state.step)?;
        }
    } else if let Some(init) = &opts.init {
        init_from(&map, init, &opts.fingerprint)?;
        tracing::info!("starting from {}", init.display());
    }
    run.save(&opts.state)?;
    let sampler = Sampler::new(&corpus.train);
    tracing::info!("validation: {}", validator.describe());
    let cfg = &opts.fingerprint;
    let card = |state: &TrainState| ModelCard {
        name: opts.out.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        config: cfg.clone(),
        members: Vec::new(),
        provenance: provenance(opts, corpus, state, validator),
    };
    let fp = Fingerprinter::from_parts(card(&state), encoder, device.clone());
    progress.stage(Stage::Training);
    progress.set_total(opts.steps as u64);
    progress.advance(state.step as u64);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.state.join("log.csv"))
        .map_err(|e| Error::io(opts.state.join("log.csv"), e))?;
    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let (m, f) = (cfg.model.n_mels, cfg.model.n_frames);
    while state.step < opts.steps {
        if progress.is_cancelled() {
            // Keep the steps since the last checkpoint: batches are drawn by step number, so
            // the next run resumes exactly here.
            if state.step % opts.checkpoint_every != 0 {
                memory.save(&memory_path, state.step)?;
                crate::optim::save_checkpoint(&map, &adam, &state, &paths)?;
            }
            return Err(Error::Cancelled);
        }
        let step = state.step;
        let batch = make_batch(opts, corpus, &sampler, step, opts.batch_pairs);
        let x = Tensor::from_vec(batch.patches, (2 * opts.batch_pairs, m, f), &device)?;
        let z = fp.encoder.forward(&x)?;
        let bank = memory.negatives(&batch.origins, opts.fingerprint.hop, &device)?;
        let same = if batch.same.is_empty() {
            None
        } else {
            Some(same_audio_mask(&batch.same, opts.batch_pairs, &device)?)
        };
        let loss = nt_xent_with_memory(
            &z,
            bank.as_ref().map(|(m, mask)| (m, mask)),
            same.as_ref(),
            opts.temperature,
        )?;
        let grads = loss.backward()?;
        memory.push(&z, &batch.origins)?;
        let lr = crate::optim::lr_at(opts.lr, opts.warmup, opts.schedule(), step);
        adam.step(&grads, lr, opts.weight_decay, step + 1)?;
        let l = f64::from(loss.to_scalar::<f32>()?);
        state.loss = if step == 0 || state.loss == 0.0 { l } else { 0.98 * state.loss + 0.02 * l };
        state.step += 1;
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        progress.advance(1);
        if state.step % opts.val_every == 0 || state.step == opts.steps {
            state.val_top1 = validator.score(&fp)?;
            state.history.push((state.step, state.val_top1));
        }
        progress.message(&format!(
            "loss {:.3} lr {lr:.2e} val top-1 {:.1}%",
            state.loss,
            100.0 * state.val_top1
        ));
        use std::io::Write as _;
        let _ = writeln!(
            log,
            "{},{:.4},{:.4},{lr:.3e},{:.4},{:.1}",
            state.step, l, state.loss, state.val_top1, state.elapsed_s
        );
        if state.step % opts.checkpoint_every == 0 || state.step == opts.steps {
            memory.save(&memory_path, state.step)?;
            crate::optim::save_checkpoint(&map, &adam, &state, &paths)?;
        }
    }
    crate::optim::write_model(&map, &card(&state), &opts.out)?;
    Ok(state)
}

/// The cross-batch memory: the newest `capacity` embeddings of earlier steps, oldest first,
/// each with the audio it came from, so a row never meets its own audio again as a negative.
/// It is saved beside each checkpoint (written before the checkpoint's state, so a kill in
/// between resumes with a memory at most one checkpoint newer: harmless, but not bit-exact).
struct Memory {
    capacity: usize,
    dim: usize,
    rows: Vec<f32>,
    /// Where each row's audio comes from.
    origins: Vec<Origin>,
}

impl Memory {
    fn new(capacity: usize, dim: usize) -> Self {
        Self { capacity, dim, rows: Vec::new(), origins: Vec::new() }
    }

    fn len(&self) -> usize {
        self.origins.len()
    }

    /// The stored rows, `(len, dim)`, and an additive mask, `(2 * pairs, len)`, that hides
    /// from each batch row the stored rows of the same moment: the same source, anchors less
    /// than `hop` samples apart (what search counts as the same answer; positives sit within
    /// +-0.2 s of their anchor). The sampler draws with replacement, and a stored copy of the
    /// same second is a positive, not a negative. In-batch pairs are not masked (as in v1-v3:
    /// two of 128 random draws rarely meet). `None` while empty.
    fn negatives(
        &self,
        batch: &[Origin],
        hop: usize,
        device: &candle_core::Device,
    ) -> Result<Option<(Tensor, Tensor)>> {
        let len = self.len();
        if len == 0 {
            return Ok(None);
        }
        let mut mask = vec![0f32; 2 * batch.len() * len];
        for (i, &(src, start)) in batch.iter().enumerate() {
            for (j, &(s, t)) in self.origins.iter().enumerate() {
                if s == src && start.abs_diff(t) < hop {
                    mask[i * len + j] = -1e9;
                    mask[(i + batch.len()) * len + j] = -1e9;
                }
            }
        }
        let rows = Tensor::from_slice(&self.rows, (len, self.dim), device)?;
        let mask = Tensor::from_vec(mask, (2 * batch.len(), len), device)?;
        Ok(Some((rows, mask)))
    }

    /// Add a batch's embeddings (`[anchors; positives]`), dropping the oldest beyond capacity.
    fn push(&mut self, z: &Tensor, origins: &[Origin]) -> Result<()> {
        if self.capacity == 0 {
            return Ok(());
        }
        self.rows.extend(z.detach().flatten_all()?.to_vec1::<f32>()?);
        self.origins.extend_from_slice(origins);
        self.origins.extend_from_slice(origins);
        self.trim();
        Ok(())
    }

    fn trim(&mut self) {
        let excess = self.len().saturating_sub(self.capacity);
        self.rows.drain(..excess * self.dim);
        self.origins.drain(..excess);
    }

    /// Save the memory as it stands after `step` steps.
    fn save(&self, path: &Path, step: usize) -> Result<()> {
        if self.capacity == 0 {
            // A memory left from an earlier run with one would not match later steps.
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
                _ => Ok(()),
            };
        }
        let cpu = candle_core::Device::Cpu;
        let rows = Tensor::from_slice(&self.rows, (self.len(), self.dim), &cpu)?;
        let flat: Vec<i64> = self.origins.iter().flat_map(|&(s, t)| [s as i64, t as i64]).collect();
        let origins = Tensor::from_vec(flat, (self.len(), 2), &cpu)?;
        let step = Tensor::new(&[step as i64], &cpu)?;
        let tensors =
            std::collections::HashMap::from([("rows", rows), ("origins", origins), ("step", step)]);
        let tmp = path.with_extension("partial");
        candle_core::safetensors::save(&tensors, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Load the memory saved after `step` steps. One saved at another step (a kill between it
    /// and the checkpoint, or a run without memory in between) is not this run's: start empty.
    fn load(&mut self, path: &Path, step: usize) -> Result<()> {
        if !path.is_file() {
            return Ok(());
        }
        let bad = |reason: String| Error::Config { path: path.into(), reason };
        let t = candle_core::safetensors::load(path, &candle_core::Device::Cpu)?;
        let saved = match t.get("step") {
            Some(s) => s.to_vec1::<i64>()?.first().copied(),
            None => None,
        };
        if saved != Some(step as i64) {
            tracing::warn!(
                "{}: saved at step {saved:?}, the checkpoint is at {step}; starting an empty memory",
                path.display()
            );
            return Ok(());
        }
        let (Some(rows), Some(origins)) = (t.get("rows"), t.get("origins")) else {
            return Err(bad("no `rows` and `origins` tensors".into()));
        };
        if rows.dim(1)? != self.dim || origins.dim(0)? != rows.dim(0)? {
            return Err(bad(format!(
                "memory of {:?} rows for {:?} origins, the model's vectors are {}-d",
                rows.dims(),
                origins.dims(),
                self.dim
            )));
        }
        self.rows = rows.flatten_all()?.to_vec1::<f32>()?;
        let flat = origins.flatten_all()?.to_vec1::<i64>()?;
        self.origins = flat.chunks(2).map(|c| (c[0] as usize, c[1] as usize)).collect();
        self.trim();
        Ok(())
    }
}

/// Load the weights of the model in `dir` into `map` (fine-tuning), checking that its config
/// is the one being trained.
fn init_from(map: &VarMap, dir: &Path, cfg: &FingerprintConfig) -> Result<()> {
    let card = super::read_card(dir)?;
    if card.config != *cfg {
        return Err(Error::Config {
            path: dir.join("card.toml"),
            reason: "its model config differs from the one being trained".into(),
        });
    }
    let mut m = map.clone();
    m.load(dir.join("weights.safetensors"))?;
    Ok(())
}

/// What a run in a state folder was started with (`run.toml`), so that resuming it with
/// another model shape, recipe or validation is refused instead of mixing the two.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct RunRecord {
    fingerprint: FingerprintConfig,
    degrade: Degrade,
    validation: String,
    /// `--group` and `--group-window-s` (a record from before they existed reads 0).
    #[serde(default = "no_group")]
    group: (usize, f32),
}

fn no_group() -> (usize, f32) {
    (0, default_group_window())
}

impl RunRecord {
    const FILE: &'static str = "run.toml";

    /// Refuses a resume whose settings differ from the recorded ones (a state folder from
    /// before the record was kept passes).
    fn check(&self, state: &Path) -> Result<()> {
        let path = state.join(Self::FILE);
        if !path.is_file() {
            return Ok(());
        }
        let saved: Self = crate::config::read_toml(&path)?;
        let differs = [
            (saved.fingerprint != self.fingerprint, "--config (the model shape)"),
            (saved.degrade != self.degrade, "--degrade / --max-shift-s (the recipe)"),
            (saved.validation != self.validation, "--val (the validation)"),
            (saved.group.0.max(1) != self.group.0.max(1), "--group (how pairs are drawn)"),
            (
                self.group.0 > 1 && saved.group.1 != self.group.1,
                "--group-window-s (how pairs are drawn)",
            ),
        ];
        let what: Vec<&str> = differs.iter().filter(|d| d.0).map(|d| d.1).collect();
        if what.is_empty() {
            return Ok(());
        }
        Err(Error::Config {
            path,
            reason: format!(
                "this checkpoint was trained with another {}; resume it with the flags it \
                 started with, or give a new --state",
                what.join(", ")
            ),
        })
    }

    fn save(&self, state: &Path) -> Result<()> {
        let path = state.join(Self::FILE);
        let text = toml::to_string(self)
            .map_err(|e| Error::Config { path: path.clone(), reason: e.to_string() })?;
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }
}

/// The command-line flags that give `d` (none for the default recipe).
fn degrade_flags(d: &Degrade) -> String {
    let default = Degrade::train();
    if *d == default {
        String::new()
    } else if *d == (Degrade { max_shift_s: d.max_shift_s, ..default }) {
        format!(" --max-shift-s {}", d.max_shift_s)
    } else {
        " --degrade FILE (the [training.degrade] table)".into()
    }
}

fn provenance(
    opts: &TrainOptions,
    corpus: &Corpus,
    state: &TrainState,
    validator: &dyn Validator,
) -> toml::Table {
    let rate = opts.fingerprint.rate();
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
    data.insert("train_hours".into(), (Corpus::seconds(&corpus.train, rate) / 3600.0).into());
    data.insert("val_hours".into(), (Corpus::seconds(&corpus.val, rate) / 3600.0).into());
    data.insert("train".into(), pkgs(&corpus.train));
    data.insert("validation".into(), pkgs(&corpus.val));
    data.insert(
        "rooms".into(),
        format!(
            "synthetic impulse responses (exponentially decaying noise, RT60 {}-{} s)",
            opts.degrade.rt60_s.0, opts.degrade.rt60_s.1
        )
        .into(),
    );
    let mut training = toml::Table::new();
    training.insert(
        "command".into(),
        format!(
            "aniprint train fingerprint --corpus DIR --steps {} --batch {} --lr {} --seed {}{}{}{}{}{}",
            opts.steps,
            opts.batch_pairs,
            opts.lr,
            opts.seed,
            if opts.memory > 0 { format!(" --memory {}", opts.memory) } else { String::new() },
            opts.init.as_ref().map_or(String::new(), |p| format!(" --init {}", p.display())),
            opts.schedule_steps.map_or(String::new(), |n| format!(" --schedule-steps {n}"))
                + &if opts.group > 1 {
                    format!(" --group {} --group-window-s {}", opts.group, opts.group_window_s)
                } else {
                    String::new()
                },
            degrade_flags(&opts.degrade) + &validator.flags(),
            // Always: the code's default config moves with the default model (v3's card once
            // read as a 256-band command), so a card names its own shape.
            " --config FILE (the card's [config] table)",
        )
        .into(),
    );
    training.insert("steps".into(), (state.step as i64).into());
    training.insert("wall_time_s".into(), state.elapsed_s.round().into());
    training.insert("final_loss".into(), state.loss.into());
    training.insert("lr".into(), opts.lr.into());
    training.insert("temperature".into(), opts.temperature.into());
    training.insert("batch_pairs".into(), (opts.batch_pairs as i64).into());
    training.insert("seed".into(), (opts.seed as i64).into());
    if opts.memory > 0 {
        training.insert("memory".into(), (opts.memory as i64).into());
    }
    if let Some(init) = &opts.init {
        let name = init.file_name().map(|s| s.to_string_lossy().into_owned());
        training.insert("init".into(), name.unwrap_or_default().into());
    }
    if opts.schedule() != opts.steps {
        training.insert("schedule_steps".into(), (opts.schedule() as i64).into());
    }
    if opts.degrade != Degrade::train()
        && let Ok(toml::Value::Table(t)) = toml::Value::try_from(&opts.degrade)
    {
        training.insert("degrade".into(), crate::optim::round_floats(toml::Value::Table(t)));
    }
    let mut metrics = toml::Table::new();
    metrics.insert(validator.metric().into(), state.val_top1.into());
    metrics.insert("validation".into(), validator.describe().into());
    let mut t = toml::Table::new();
    t.insert("data".into(), toml::Value::Table(data));
    t.insert("training".into(), toml::Value::Table(training));
    t.insert("metrics".into(), toml::Value::Table(metrics));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_hides_a_rows_own_audio_and_keeps_the_newest() {
        let dev = candle_core::Device::Cpu;
        let mut m = Memory::new(6, 2);
        assert!(m.negatives(&[(0, 0)], 4000, &dev).unwrap().is_none());
        let z = Tensor::new(&[[1f32, 0.], [0., 1.], [1., 0.], [0., 1.]], &dev).unwrap();
        m.push(&z, &[(0, 0), (1, 50_000)]).unwrap();
        m.push(&z, &[(2, 0), (3, 0)]).unwrap();
        m.push(&z, &[(0, 3_999), (1, 46_000)]).unwrap();
        // Each push stores anchors then positives; capacity 6 keeps the newest six rows.
        let newest = [(2, 0), (3, 0), (0, 3_999), (1, 46_000), (0, 3_999), (1, 46_000)];
        assert_eq!(m.origins, newest);
        let (rows, mask) = m.negatives(&[(0, 0), (1, 50_000)], 4000, &dev).unwrap().unwrap();
        assert_eq!(rows.dims(), [6, 2]);
        let mask = mask.to_vec2::<f32>().unwrap();
        // Pair 0 is the same moment as the stored (0, 3999) rows (under one 4000-sample hop
        // apart), pair 1 is not (a whole hop from (1, 46000)); anchors and positives alike.
        let hidden = |r: &[f32]| r.iter().map(|&v| v < -1.0).collect::<Vec<_>>();
        let own = [false, false, true, false, true, false];
        assert_eq!(hidden(&mask[0]), own);
        assert_eq!(hidden(&mask[2]), own);
        assert_eq!(hidden(&mask[1]), [false; 6]);
        assert_eq!(hidden(&mask[3]), [false; 6]);

        // Saved after step 5, it loads back at step 5 only.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.safetensors");
        m.save(&path, 5).unwrap();
        let mut back = Memory::new(6, 2);
        back.load(&path, 6).unwrap();
        assert_eq!(back.len(), 0);
        back.load(&path, 5).unwrap();
        assert_eq!((back.rows.clone(), back.origins.clone()), (m.rows.clone(), m.origins.clone()));
        // A run without memory removes the file.
        Memory::new(0, 2).save(&path, 7).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn files_of_a_speech_package_without_a_language_are_music_or_effects() {
        let k = |kind: &str, path: &str| file_kind(kind, path);
        let s = "speech/fillets-ng-data/";
        assert_eq!(
            k("speech", &format!("{s}games__fillets-ng__sound__aztec__en__bot-x.ogg")),
            Some(Kind::Speech)
        );
        assert_eq!(
            k("speech", &format!("{s}games__fillets-ng__music__rybky01.ogg")),
            Some(Kind::Music)
        );
        assert_eq!(
            k("speech", &format!("{s}games__fillets-ng__sound__share__sp-dead.ogg")),
            Some(Kind::Sfx)
        );
        for voice in [
            "speech/a/asterisk__sounds__en_US_f_Allison__your.wav",
            "speech/k/ktuberling__sounds__nds__brill.wav",
            "speech/k/ktuberling__sounds__sr@ijekavian__nos.ogg",
        ] {
            assert_eq!(k("speech", voice), Some(Kind::Speech), "{voice}");
        }
        // Only speech packages are looked into; unknown kinds are skipped.
        assert_eq!(k("music", "music/x/games__x__sound__share__a.ogg"), Some(Kind::Music));
        assert_eq!(k("sfx", "sfx/x/a__music__b.ogg"), Some(Kind::Sfx));
        assert_eq!(k("noise", "x/a.ogg"), None);
    }

    #[test]
    fn padding_silences_an_end_after_every_other_draw() {
        let x: Vec<f32> = (0..16_000).map(|i| ((i as f32) * 0.05).sin() * 0.3).collect();
        let src = Source::uncoded("tone", Kind::Music, SampleRate(8000), x);
        let none: [&Source; 0] = [];
        let plain = Degrade::train();
        let padded = Degrade { p_pad: 1.0, max_pad_s: 0.25, ..plain.clone() };
        let mut conv = Convolver::new();
        let mut silenced = 0;
        for seed in 0..20 {
            let a =
                plain.apply(&mut StdRng::seed_from_u64(seed), &mut conv, &src, 4000, 8000, &none);
            let b =
                padded.apply(&mut StdRng::seed_from_u64(seed), &mut conv, &src, 4000, 8000, &none);
            // Everything else drew the same numbers: b is a, silenced at one end and then peak
            // normalised again.
            let zeros_front = b.iter().take_while(|&&v| v == 0.0).count();
            let zeros_back = b.iter().rev().take_while(|&&v| v == 0.0).count();
            assert!(zeros_front.max(zeros_back) <= 2000, "seed {seed}: {zeros_front} {zeros_back}");
            silenced += zeros_front.max(zeros_back);
            let (lo, hi) = if zeros_front >= zeros_back {
                (zeros_front, b.len())
            } else {
                (0, b.len() - zeros_back)
            };
            let peak = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
            let scale = peak(&a[lo..hi]) / peak(&b[lo..hi]);
            assert!(
                a[lo..hi].iter().zip(&b[lo..hi]).all(|(p, q)| (p - q * scale).abs() < 1e-4),
                "seed {seed}"
            );
        }
        assert!(silenced > 20 * 500, "{silenced} samples silenced over 20 draws");
        assert!(Degrade { max_pad_s: 2.0, ..padded }.validate().unwrap_err().contains("max_pad_s"));
    }

    #[test]
    fn a_degrade_file_overrides_only_its_fields_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let d = Degrade::from_file(&write("hard.toml", "p_noise = 1.0\nsnr_db = [0.0, 12.0]\n"))
            .unwrap();
        assert_eq!(d, Degrade { p_noise: 1.0, snr_db: (0.0, 12.0), ..Degrade::train() });
        assert_eq!(degrade_flags(&d), " --degrade FILE (the [training.degrade] table)");
        assert_eq!(
            degrade_flags(&Degrade { max_shift_s: 0.3, ..Degrade::train() }),
            " --max-shift-s 0.3"
        );
        assert_eq!(degrade_flags(&Degrade::train()), "");
        for (name, text, says) in [
            ("p.toml", "p_codec = 1.5\n", "p_codec"),
            ("r.toml", "snr_db = [10.0, 0.0]\n", "snr_db"),
            ("u.toml", "p_nosie = 1.0\n", "p_nosie"),
            ("t.toml", "rt60_s = [0.0, 1.0]\n", "rt60_s"),
        ] {
            let path = write(name, text);
            let err = Degrade::from_file(&path).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(says), "{err}");
        }
        // A card's [training.degrade] is read from the whole card.
        let card = write("card.toml", "name = \"x\"\n[training.degrade]\np_codec = 0.9\n");
        assert_eq!(Degrade::from_file(&card).unwrap().p_codec, 0.9);
        let inf = Degrade { snr_db: (0.0, f32::INFINITY), ..Degrade::train() };
        assert!(inf.validate().unwrap_err().contains("snr_db"));
        let missing = dir.path().join("missing.toml");
        assert!(Degrade::from_file(&missing).unwrap_err().to_string().contains("missing.toml"));
    }

    /// Grouped draws: negatives holding the anchor's own audio (a loop's next turn, an
    /// overlap) are found and masked; other audio of the same source stays a negative.
    #[test]
    fn a_loops_next_turn_is_not_a_negative() {
        let mut rng = StdRng::seed_from_u64(5);
        let turn: Vec<f32> = (0..16_000).map(|_| rng.random_range(-0.5f32..0.5)).collect();
        let mut clean: Vec<f32> = turn.iter().cycle().take(160_000).copied().collect();
        // The last 4 s are other audio.
        for x in &mut clean[144_000..] {
            *x = rng.random_range(-0.5f32..0.5);
        }
        let src = Source::uncoded("loop", Kind::Music, SampleRate(8000), clean);
        let sources = [src.clone(), src];
        let (len, margin, hop) = (8000, 1601, 4000);
        let origins = [
            (0, 10_000),
            (0, 10_000 + 3 * 16_000 + 900), // three turns on, 0.11 s off: same audio
            (0, 10_000 + 8_000),            // half a turn on: other audio
            (0, 145_000),                   // the other audio
            (0, 10_000),                    // another group: never compared
            (1, 12_000),
            (0, 146_000), // a hop from row 3 but in another group
            (1, 13_000),  // within a hop of row 5: an overlap
        ];
        let same = same_audio_pairs(&origins, 4, &sources, len, margin, hop);
        assert_eq!(same, vec![(0, 1), (5, 7)]);
        assert!(same_audio_pairs(&origins, 1, &sources, len, margin, hop).is_empty());

        let mask = same_audio_mask(&same, 8, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        // Anchor 0 is hidden from anchor 1 and positive 1 (row 9), and the other way round;
        // its own positive (row 8) and row 2 stay.
        for (a, b) in [(0, 1), (0, 9), (8, 1), (8, 9), (1, 0), (9, 8)] {
            assert_eq!(mask[a][b], -1e9, "({a}, {b})");
        }
        for (a, b) in [(0, 8), (0, 2), (1, 9), (0, 0)] {
            assert_eq!(mask[a][b], 0.0, "({a}, {b})");
        }

        // A group's later draws stay within half the window of its first.
        let mut rng = StdRng::seed_from_u64(6);
        for _ in 0..50 {
            let s = draw_near(&mut rng, &sources[0].clean, 80_000, 32_000, len, margin);
            assert!(s.abs_diff(80_000) <= 16_000 && s + len + margin <= 160_000);
        }
    }
}
