//! Contrastive audio fingerprints: 1 s log-mel segments every 0.5 s, through a CNN of
//! depthwise-separable convolutions, into 128-d unit vectors that survive noise, reverb,
//! re-encoding and separation leakage.
//!
//! This module owns the front end that turns 8 kHz mono audio into normalised patches
//! ([`FrontEnd`]), the encoder ([`model`]), loading committed weights ([`Fingerprinter`]), the
//! degradations used to train and evaluate it ([`augment`]) and training ([`train`]).

pub mod augment;
pub mod model;
pub mod train;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dsp::{LogMel, MelConfig};
use crate::units::{SampleRate, Seconds};
use crate::{Error, Result};
pub use model::{Encoder, ModelConfig};

/// The model directory name of the fingerprinter this build uses by default.
pub const DEFAULT_MODEL: &str = "fingerprint-e3";

/// Everything that fixes what a fingerprint means: front end, segmenting and encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FingerprintConfig {
    /// Log-mel front end (its sample rate is the rate audio is fingerprinted at).
    pub mel: MelConfig,
    /// Samples in one segment (1 s).
    pub segment: usize,
    /// Samples between segment starts (0.5 s).
    pub hop: usize,
    /// Dynamic range kept below each patch's peak, dB.
    pub range_db: f32,
    /// The encoder.
    pub model: ModelConfig,
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        // fingerprint-v6's shape: the paper's 256 mel bands (v3 had 64, v4 128; each doubling
        // gained points of Table 6, most at 1 s), but from 100 Hz instead of the paper's 300:
        // bass lines and voice fundamentals gained 2.2 / 1.3 / 1.6 points under `all` (v5 ->
        // v6). 0.42 s a training step of 128 pairs on this 2-core CPU with the fused ops.
        Self {
            mel: MelConfig { fmin: 100.0, ..MelConfig::default() },
            segment: 8000,
            hop: 4000,
            range_db: 80.0,
            model: ModelConfig::default(),
        }
    }
}

/// Lays `given` over `base` (tables merged key by key, anything else replaced); the dotted path
/// of a key `base` lacks is an error.
fn overlay(
    base: &mut toml::Table,
    given: toml::Table,
    prefix: &str,
) -> std::result::Result<(), String> {
    for (k, v) in given {
        let path = format!("{prefix}{k}");
        match (base.get_mut(&k), v) {
            (None, _) => return Err(format!("unknown field `{path}`")),
            (Some(toml::Value::Table(b)), toml::Value::Table(g)) => {
                overlay(b, g, &format!("{path}."))?
            }
            (Some(slot), v) => *slot = v,
        }
    }
    Ok(())
}

impl FingerprintConfig {
    /// Reads a config from TOML (a model card, its `[config]` table, or any part of it: fields
    /// left out keep the default model's), checked as [`FrontEnd::validate`] does. A file that
    /// gives `mel.n_mels` (or `segment`, `mel.hop`) but not the encoder's `model.n_mels`
    /// (`model.n_frames`) gets the encoder sized to match.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Config { path: path.to_path_buf(), reason };
        let mut given: toml::Table = crate::config::read_toml(path)?;
        // A whole model card works too: its [config] table is the config.
        if let Some(toml::Value::Table(config)) = given.remove("config") {
            given = config;
        }
        let gives = |outer: &str, key: &str| {
            given.get(outer).and_then(|t| t.as_table()).is_some_and(|t| t.contains_key(key))
        };
        // Front-end sizes given alone size the encoder to match.
        let match_bands = gives("mel", "n_mels") && !gives("model", "n_mels");
        let match_frames =
            (given.contains_key("segment") || gives("mel", "hop")) && !gives("model", "n_frames");
        let mut merged = toml::Table::try_from(Self::default()).map_err(|e| bad(e.to_string()))?;
        overlay(&mut merged, given, "").map_err(bad)?;
        let mut cfg: Self = crate::config::from_table(merged, path)?;
        if match_bands {
            cfg.model.n_mels = cfg.mel.n_mels;
        }
        if match_frames && cfg.mel.hop > 0 {
            cfg.model.n_frames = 1 + cfg.segment / cfg.mel.hop;
        }
        FrontEnd::validate(&cfg).map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }

    /// The rate audio must be at.
    pub fn rate(&self) -> SampleRate {
        SampleRate(self.mel.sample_rate)
    }

    /// Seconds between segment starts.
    pub fn hop_seconds(&self) -> Seconds {
        Seconds(self.hop as f64 / f64::from(self.mel.sample_rate))
    }

    /// Number of segments in `len` samples (a clip shorter than one segment still gives one).
    pub fn n_segments(&self, len: usize) -> usize {
        if len <= self.segment { usize::from(len > 0) } else { 1 + (len - self.segment) / self.hop }
    }

    /// Where the segment grids of a reference stored on `grids` grids start, in samples into
    /// the audio: `g * hop / grids` for each grid `g`, the plain grid (0) first. Two grids
    /// store a segment every half hop, so a clip lies within a quarter hop of one: on Table 6
    /// (fingerprint-v6, `all`) 1 s queries go from 69.6 to 73.1% Top-1, 3 s from 90.1 to 91.0%,
    /// 5 s from 93.1 to 94.7%, for twice the stored vectors. Four (the default since session
    /// 14; fingerprint-e1): 76.8 / 91.5 / 95.2 -> 81.1 / 92.8 / 96.5% at 1 / 3 / 5 s, for
    /// twice that again; eight, 80.7% at 1 s: no further gain. (fingerprint-e3, the default
    /// since session 17, on four: 82.9 / 94.2 / 97.0%.)
    pub fn grid_offsets(&self, grids: usize) -> Vec<usize> {
        let grids = grids.max(1);
        (0..grids).map(|g| g * self.hop / grids).collect()
    }

    /// Sample shifts of `phases` sub-hop copies of a `len`-sample clip, shift 0 first; a
    /// positive shift starts the copy that much later, a negative one earlier (see
    /// [`phase_copy`](Self::phase_copy)). A clip that holds a whole segment at every shift
    /// `k * hop / phases` gets those. A shorter one (a 1 s clip is a single segment, which no
    /// later start leaves whole) gets shifts of at most half a hop either way instead, each copy
    /// padded with silence to a segment: nearer the reference grid, less padding. On Table 6
    /// that lifts 1 s queries from 67.0 to 69.6% Top-1 (fingerprint-v6, `all`, 1,000 queries);
    /// dropping those copies, as before, left a 1 s query up to a quarter second off the grid.
    pub fn phase_shifts(&self, len: usize, phases: usize) -> Vec<isize> {
        let phases = phases.max(1);
        let hop = self.hop as isize;
        let later = (0..phases).map(|k| (k * self.hop / phases) as isize);
        if len == 0 {
            vec![0]
        } else if len >= self.segment + (phases - 1) * self.hop / phases {
            later.collect()
        } else {
            // A copy starting after the clip's end would hold only silence.
            later
                .map(|s| if s > hop / 2 { s - hop } else { s })
                .filter(|&s| s <= 0 || (s as usize) < len)
                .collect()
        }
    }

    /// The copy of `audio` that starts `shift` samples later (earlier when negative, with that
    /// much silence in front); the front end pads a copy shorter than a segment at its end.
    pub fn phase_copy<'a>(&self, audio: &'a [f32], shift: isize) -> Cow<'a, [f32]> {
        match usize::try_from(shift) {
            Ok(s) => Cow::Borrowed(&audio[s.min(audio.len())..]),
            Err(_) => {
                let mut padded = vec![0.0; shift.unsigned_abs()];
                padded.extend_from_slice(audio);
                Cow::Owned(padded)
            }
        }
    }

    /// Start sample of segment `i`.
    pub fn segment_start(&self, i: usize) -> usize {
        i * self.hop
    }
}

/// Audio -> normalised log-mel patches, `(n_mels, n_frames)` each, mel-major.
#[derive(Debug)]
pub struct FrontEnd {
    cfg: FingerprintConfig,
    logmel: LogMel,
}

impl FrontEnd {
    /// A front end for `cfg`.
    pub fn new(cfg: &FingerprintConfig) -> Self {
        Self { cfg: cfg.clone(), logmel: LogMel::new(cfg.mel) }
    }

    /// Floats in one patch.
    pub fn patch_len(&self) -> usize {
        self.cfg.model.n_mels * self.cfg.model.n_frames
    }

    /// Check that the front end can feed the encoder: the encoder takes the lowest
    /// `model.n_mels` mel bands (all of them when the two agree, as they should), and every
    /// frame of a segment.
    pub fn validate(cfg: &FingerprintConfig) -> Result<()> {
        cfg.mel.validate()?;
        let frames = 1 + cfg.segment / cfg.mel.hop;
        if cfg.model.n_mels > cfg.mel.n_mels || cfg.model.n_frames != frames || cfg.hop == 0 {
            return Err(Error::Invalid(format!(
                "fingerprint config: the encoder takes {}x{} patches but the front end gives {}x{}",
                cfg.model.n_mels, cfg.model.n_frames, cfg.mel.n_mels, frames
            )));
        }
        if !(cfg.range_db.is_finite() && cfg.range_db > 0.0) {
            return Err(Error::Invalid(format!(
                "fingerprint config: range_db {} must be above 0 dB",
                cfg.range_db
            )));
        }
        if let Some(problem) = cfg.model.problem() {
            return Err(Error::Invalid(format!("fingerprint config: encoder: {problem}")));
        }
        Ok(())
    }

    /// Append the patch of one segment (`segment` samples; shorter input is zero-padded) to `out`.
    /// Values are the log-power mel relative to the patch's peak, clamped to `range_db` below it
    /// and scaled to [-1, 1]: gain does not change a fingerprint.
    pub fn patch(
        &self,
        segment: &[f32],
        scratch: &mut Vec<f32>,
        padded: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        let seg = if segment.len() >= self.cfg.segment {
            &segment[..self.cfg.segment]
        } else {
            padded.clear();
            padded.extend_from_slice(segment);
            padded.resize(self.cfg.segment, 0.0);
            padded.as_slice()
        };
        self.logmel.compute(seg, scratch);
        // The encoder sees the lowest `model.n_mels` bands (mel-major, so a prefix). Model v1
        // was trained this way on 64 of 256 bands, i.e. 300-813 Hz (see its card).
        // The reference level is the peak over all bands, as v1 was trained.
        let n = self.patch_len();
        let peak = scratch.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        scratch.truncate(n);
        let range = self.cfg.range_db;
        out.extend(scratch.iter().take(n).map(|&v| (v - peak).max(-range) / (range / 2.0) + 1.0));
        // A config whose frame count differs from the STFT's is a bug, but never a short patch.
        if scratch.len() < n {
            out.resize(out.len() + n - scratch.len(), -1.0);
        }
    }

    /// Patches of every segment of `samples` (at the config's rate).
    pub fn patches(&self, samples: &[f32]) -> Vec<f32> {
        let n = self.cfg.n_segments(samples.len());
        let mut out = Vec::with_capacity(n * self.patch_len());
        let (mut scratch, mut padded) = (Vec::new(), Vec::new());
        for i in 0..n {
            let start = self.cfg.segment_start(i);
            let end = (start + self.cfg.segment).min(samples.len());
            self.patch(&samples[start..end], &mut scratch, &mut padded, &mut out);
        }
        out
    }
}

/// A segment whose samples all stay under this (-80 dBFS) is silence (ingest's test too).
pub const SILENT_PEAK: f32 = 1e-4;

/// A model card: the config plus where the weights came from and how good they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Model name, e.g. `fingerprint-v1`.
    pub name: String,
    /// What fixes the fingerprint.
    pub config: FingerprintConfig,
    /// An ensemble's members, model folders beside this one (the first gives `config`); this
    /// card then has no weights of its own, and each segment's vector is the members' unit
    /// vectors side by side ([`side_by_side`]). Empty for a single model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Free-form provenance: data, command, steps, wall time, metrics.
    #[serde(flatten)]
    pub provenance: toml::Table,
}

/// Fingerprints of one signal: `n` unit vectors of `dim` floats, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprints {
    /// Vector width.
    pub dim: usize,
    /// Row-major vectors.
    pub data: Vec<f32>,
}

impl Fingerprints {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Vector `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// A loaded fingerprinter: front end + encoder with trained weights.
#[derive(Debug)]
pub struct Fingerprinter {
    card: ModelCard,
    encoder: Encoder,
    device: Device,
    batch: usize,
    /// An ensemble's other members, whose vectors stand beside this encoder's.
    beside: Vec<Fingerprinter>,
}

/// Several models' fingerprints of the same segments as one unit vector per segment: each row
/// the models' rows side by side, each scaled by `1/sqrt(models)`, so a dot product is the mean
/// of the models' similarities.
pub fn side_by_side(parts: &[Fingerprints]) -> Fingerprints {
    let scale = 1.0 / (parts.len().max(1) as f32).sqrt();
    let n = parts.iter().map(Fingerprints::len).min().unwrap_or(0);
    let dim = parts.iter().map(|p| p.dim).sum();
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        for p in parts {
            data.extend(p.row(i).iter().map(|v| v * scale));
        }
    }
    Fingerprints { dim, data }
}

/// Where models live: `ANIPRINT_MODELS`, else the `models/` folder of this source tree.
pub fn models_dir() -> PathBuf {
    std::env::var_os("ANIPRINT_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// The model folder a training run writes when given no `--out`: the default model's, or,
/// when the default is an ensemble (no weights of its own), its first member's.
pub fn default_training_dir() -> Result<PathBuf> {
    let dir = models_dir().join(DEFAULT_MODEL);
    if !dir.join("card.toml").is_file() {
        return Ok(dir);
    }
    // An unreadable card must not read as "no members": training would then overwrite it.
    let card = read_card(&dir)?;
    Ok(card.members.first().map_or(dir, |first| models_dir().join(first)))
}

/// Read a model card.
pub fn read_card(dir: &Path) -> Result<ModelCard> {
    crate::config::read_toml(&dir.join("card.toml"))
}

impl Fingerprinter {
    /// Load the default model from [`models_dir`].
    pub fn load_default(device: &Device) -> Result<Self> {
        Self::load(&models_dir().join(DEFAULT_MODEL), device)
    }

    /// Load `dir/card.toml` and `dir/weights.safetensors`, or an ensemble card's members.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let card = read_card(dir)?;
        if !card.members.is_empty() {
            return Self::load_ensemble(dir, card, device);
        }
        FrontEnd::validate(&card.config)?;
        let weights = dir.join("weights.safetensors");
        if !weights.is_file() {
            let missing = std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "model weights missing (train them with `aniprint train fingerprint`; an ensemble's \
                 card names its models in `members = [...]` instead)",
            );
            return Err(Error::io(&weights, missing));
        }
        // SAFETY: the weights file is memory-mapped read-only; aniprint never writes a model
        // file in place (training writes a new file and renames it).
        #[allow(unsafe_code)]
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device)? };
        let encoder = Encoder::new(&card.config.model, vb)?;
        Ok(Self::from_parts(card, encoder, device.clone()))
    }

    /// An ensemble card's members, from the folders beside `dir`: all must cut the audio
    /// alike (segment, hop, rate), and the card's config must be its first member's.
    fn load_ensemble(dir: &Path, card: ModelCard, device: &Device) -> Result<Self> {
        let card_path = dir.join("card.toml");
        let bad = |reason: String| Error::Config { path: card_path.clone(), reason };
        let parent = dir.parent().unwrap_or(Path::new("."));
        let mut first: Option<Self> = None;
        for name in &card.members {
            // Read the member's card before loading it: a card naming itself (or a member
            // naming it back) would otherwise recurse until the stack overflows.
            let member =
                read_card(&parent.join(name)).map_err(|e| bad(format!("member {name}: {e}")))?;
            if !member.members.is_empty() {
                return Err(bad(format!("member {name} is itself an ensemble")));
            }
            let m = Self::load(&parent.join(name), device)
                .map_err(|e| bad(format!("member {name}: {e}")))?;
            first = Some(match first {
                None => m,
                Some(f) => f.with_member(m).map_err(|e| bad(e.to_string()))?,
            });
        }
        let Some(mut first) = first else { unreachable!("load calls this with members") };
        if card.config != first.card.config {
            return Err(bad(format!("[config] is not its first member's ({})", first.card.name)));
        }
        first.card = card;
        Ok(first)
    }

    /// This model with `member`'s vectors beside its own (an ensemble named `this+member`):
    /// both must cut the audio alike (segment, hop, rate), and `member` must be one model.
    pub fn with_member(mut self, member: Self) -> Result<Self> {
        let (a, b) = (self.config(), member.config());
        if (a.segment, a.hop, a.rate()) != (b.segment, b.hop, b.rate()) {
            return Err(Error::Invalid(format!(
                "{} and {} cut the audio differently (segment, hop or rate)",
                self.card.name, member.card.name
            )));
        }
        if !member.beside.is_empty() {
            return Err(Error::Invalid(format!("{} is itself an ensemble", member.card.name)));
        }
        self.card.name = format!("{}+{}", self.card.name, member.card.name);
        self.beside.push(member);
        Ok(self)
    }

    /// Wrap an encoder (e.g. one being trained).
    pub fn from_parts(card: ModelCard, encoder: Encoder, device: Device) -> Self {
        Self { card, encoder, device, batch: 256, beside: Vec::new() }
    }

    /// Width of the vectors [`Fingerprinter::fingerprint`] gives (an ensemble's members'
    /// widths added up).
    pub fn dim(&self) -> usize {
        self.card.config.model.dim + self.beside.iter().map(Fingerprinter::dim).sum::<usize>()
    }

    /// The same model on another segment grid: a segment every `hop` samples instead of its
    /// card's (a denser reference grid trades index size for alignment; see `eval --hop-s`).
    pub fn with_hop(mut self, hop: usize) -> Result<Self> {
        if hop == 0 || hop > self.card.config.segment {
            return Err(Error::Invalid(format!(
                "hop of {hop} samples: must be 1..={} (one segment)",
                self.card.config.segment
            )));
        }
        self.card.config.hop = hop;
        self.beside = self.beside.into_iter().map(|m| m.with_hop(hop)).collect::<Result<_>>()?;
        Ok(self)
    }

    /// The card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The config.
    pub fn config(&self) -> &FingerprintConfig {
        &self.card.config
    }

    /// Embed ready-made patches (`n * patch_len` floats).
    pub fn embed_patches(&self, patches: &[f32]) -> Result<Fingerprints> {
        if !self.beside.is_empty() {
            // The patches are the first member's front end's: the others would be fed wrong.
            return Err(Error::Invalid(format!(
                "{} is an ensemble: embed its members' patches with each member",
                self.card.name
            )));
        }
        self.embed_own(patches)
    }

    /// [`Fingerprinter::embed_patches`] with this encoder alone.
    fn embed_own(&self, patches: &[f32]) -> Result<Fingerprints> {
        let m = &self.card.config.model;
        let plen = m.n_mels * m.n_frames;
        let mut data = Vec::with_capacity(patches.len() / plen.max(1) * m.dim);
        for chunk in patches.chunks(self.batch * plen) {
            let b = chunk.len() / plen;
            let x = Tensor::from_slice(chunk, (b, m.n_mels, m.n_frames), &self.device)?;
            let z = self.encoder.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
            data.extend_from_slice(&z);
        }
        Ok(Fingerprints { dim: m.dim, data })
    }

    /// Fingerprint a whole signal at the config's rate: one vector per segment. A silent
    /// segment (peak under [`SILENT_PEAK`]) gets a zero vector: its patch, scaled to its own
    /// peak, would be the same constant for every silence, so silence would match silence in
    /// every episode. Searches give a zero vector no neighbours; a stored one is 0.5 from
    /// every unit vector, under any match threshold.
    pub fn fingerprint(&self, samples: &[f32]) -> Result<Fingerprints> {
        let mut fps = if self.beside.is_empty() {
            self.fingerprint_one(samples)?
        } else {
            let mut parts = vec![self.fingerprint_one(samples)?];
            // Members are single models: the silence pass below covers their rows too.
            for m in &self.beside {
                parts.push(m.fingerprint_one(samples)?);
            }
            side_by_side(&parts)
        };
        let cfg = &self.card.config;
        let dim = fps.dim;
        for (i, row) in fps.data.chunks_exact_mut(dim.max(1)).enumerate() {
            let start = cfg.segment_start(i).min(samples.len());
            let end = (start + cfg.segment).min(samples.len());
            if samples[start..end].iter().all(|x| x.abs() < SILENT_PEAK) {
                row.fill(0.0);
            }
        }
        Ok(fps)
    }

    /// [`Fingerprinter::fingerprint`] with this encoder alone.
    fn fingerprint_one(&self, samples: &[f32]) -> Result<Fingerprints> {
        let cfg = &self.card.config;
        let n = cfg.n_segments(samples.len());
        // The front end runs on all cores in chunks; the encoder batches across them.
        let chunk = self.batch;
        let patches: Vec<Vec<f32>> = (0..n.div_ceil(chunk))
            .into_par_iter()
            .map_init(
                || (FrontEnd::new(cfg), Vec::new(), Vec::new()),
                |(fe, scratch, padded), c| {
                    let mut out = Vec::with_capacity(chunk * fe.patch_len());
                    for i in c * chunk..((c + 1) * chunk).min(n) {
                        let start = cfg.segment_start(i);
                        let end = (start + cfg.segment).min(samples.len());
                        fe.patch(&samples[start..end], scratch, padded, &mut out);
                    }
                    out
                },
            )
            .collect();
        let mut all =
            Fingerprints { dim: cfg.model.dim, data: Vec::with_capacity(n * cfg.model.dim) };
        for p in patches {
            all.data.extend(self.embed_own(&p)?.data);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_shifts_keep_a_whole_segment_or_stay_within_half_a_hop() {
        let cfg = FingerprintConfig::default(); // segment 8000, hop 4000
        assert_eq!(cfg.phase_shifts(24_000, 4), vec![0, 1000, 2000, 3000]);
        assert_eq!(cfg.phase_shifts(11_000, 4), vec![0, 1000, 2000, 3000]);
        // Too short for a whole segment 3000 samples later: the copies straddle the start.
        assert_eq!(cfg.phase_shifts(10_999, 4), vec![0, 1000, 2000, -1000]);
        assert_eq!(cfg.phase_shifts(8_000, 4), vec![0, 1000, 2000, -1000]);
        assert_eq!(cfg.phase_shifts(8_000, 8), vec![0, 500, 1000, 1500, 2000, -1500, -1000, -500]);
        assert_eq!(cfg.phase_shifts(24_000, 0), vec![0]);
        assert_eq!(cfg.phase_shifts(3_000, 1), vec![0]);
        // Nothing to shift, or copies that would start past the end: left out.
        assert_eq!(cfg.phase_shifts(0, 4), vec![0]);
        assert_eq!(cfg.phase_shifts(1_500, 4), vec![0, 1000, -1000]);
        assert_eq!(cfg.grid_offsets(2), vec![0, 2000]);
        assert_eq!(cfg.grid_offsets(0), vec![0]);
    }

    #[test]
    fn an_ensemble_naming_itself_is_refused_not_recursed_into() {
        let dir = tempfile::tempdir().unwrap();
        let e3 = std::fs::read_to_string(models_dir().join("fingerprint-e3/card.toml")).unwrap();
        let mut card: toml::Table = toml::from_str(&e3).unwrap();
        card.insert("members".into(), toml::Value::Array(vec!["loop".into()]));
        std::fs::create_dir(dir.path().join("loop")).unwrap();
        std::fs::write(dir.path().join("loop/card.toml"), toml::to_string(&card).unwrap()).unwrap();
        let e = Fingerprinter::load(&dir.path().join("loop"), &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("itself an ensemble"), "{e}");
    }

    #[test]
    fn silent_segments_get_zero_vectors() {
        let fp = Fingerprinter::load_default(&Device::Cpu).unwrap();
        // 1 s of tone, 2 s of digital silence, 1 s of tone, at 8 kHz.
        let tone = |n: usize| (0..n).map(|i| (i as f32 * 0.3).sin() * 0.5).collect::<Vec<_>>();
        let mut audio = tone(8000);
        audio.extend(std::iter::repeat_n(0.0, 16_000));
        audio.extend(tone(8000));
        let fps = fp.fingerprint(&audio).unwrap();
        let norms: Vec<f32> =
            (0..fps.len()).map(|i| fps.row(i).iter().map(|x| x * x).sum::<f32>()).collect();
        // Segments start every 0.5 s: those wholly inside the silence (1.0-2.0, 1.5-2.5,
        // 2.0-3.0 s) are zero, the others unit length.
        assert_eq!(norms.len(), 7);
        for (i, n) in norms.iter().enumerate() {
            let silent = (2..=4).contains(&i);
            assert!(if silent { *n == 0.0 } else { (n - 1.0).abs() < 1e-3 }, "{i}: {norms:?}");
        }
    }

    #[test]
    fn phase_copies_start_later_or_earlier_with_silence() {
        let cfg = FingerprintConfig::default();
        let x: Vec<f32> = (1..=10).map(|i| i as f32).collect();
        assert_eq!(&*cfg.phase_copy(&x, 0), &x[..]);
        assert_eq!(&*cfg.phase_copy(&x, 3), &x[3..]);
        assert!(cfg.phase_copy(&x, 30).is_empty());
        let early = cfg.phase_copy(&x, -2);
        assert_eq!(&early[..2], &[0.0, 0.0]);
        assert_eq!(&early[2..], &x[..]);
        // Every copy of a 1 s clip is one (padded) segment.
        let clip = vec![0.1f32; 8000];
        for s in cfg.phase_shifts(clip.len(), 4) {
            assert_eq!(cfg.n_segments(cfg.phase_copy(&clip, s).len()), 1, "shift {s}");
        }
    }

    #[test]
    fn a_config_file_fills_in_defaults_and_matches_the_encoder_to_the_bands() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let c = FingerprintConfig::from_file(&write("m.toml", "[mel]\nn_mels = 128\n")).unwrap();
        assert_eq!((c.mel.n_mels, c.model.n_mels), (128, 128));
        assert_eq!(c.model.channels, ModelConfig::default().channels);
        let wide = "[model]\nchannels = [32, 64, 128, 256, 512, 512, 1024, 1024]\n";
        let c = FingerprintConfig::from_file(&write("w.toml", wide)).unwrap();
        assert_eq!((c.mel.n_mels, c.model.channels[7]), (256, 1024));
        let both = "[mel]\nn_mels = 128\n[model]\nn_mels = 64\n";
        let c = FingerprintConfig::from_file(&write("both.toml", both)).unwrap();
        assert_eq!((c.mel.n_mels, c.model.n_mels), (128, 64));
        // A whole model card gives its [config]; the default config is the default model's
        // (training without --config retrains the default model's shape).
        let card = models_dir().join(DEFAULT_MODEL).join("card.toml");
        let default_card = read_card(card.parent().unwrap()).unwrap().config;
        assert_eq!(FingerprintConfig::from_file(&card).unwrap(), default_card);
        assert_eq!(FingerprintConfig::default(), default_card);
        // An encoder wider than the front end, one that does not reach 1x1, or an unknown
        // field is refused naming the file.
        for (name, text) in [
            ("bad.toml", "[mel]\nn_mels = 128\n[model]\nn_mels = 256\n"),
            ("typo.toml", "[mel]\nnmels = 128\n"),
            ("big.toml", "[mel]\nn_mels = 512\n"),
            ("dim.toml", "[model]\ndim = 0\n"),
        ] {
            let err = FingerprintConfig::from_file(&write(name, text)).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
            assert!(name != "typo.toml" || err.contains("mel.nmels"), "{err}");
        }
    }

    #[test]
    fn segment_counts() {
        let c = FingerprintConfig::default();
        assert_eq!(c.n_segments(0), 0);
        assert_eq!(c.n_segments(100), 1);
        assert_eq!(c.n_segments(8000), 1);
        assert_eq!(c.n_segments(11_999), 1);
        assert_eq!(c.n_segments(12_000), 2);
        assert_eq!(c.hop_seconds(), Seconds(0.5));
    }

    #[test]
    fn patches_are_gain_invariant_and_bounded() {
        let c = FingerprintConfig::default();
        let fe = FrontEnd::new(&c);
        // Tones over a noise floor: pure tones alone would fall under the absolute -100 dB
        // floor of power_to_db in places, which no front end can make gain-invariant.
        let mut seed = 1u32;
        let sig: Vec<f32> = (0..16_000)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                (i as f32 * 0.07).sin() * 0.3 + (i as f32 * 0.013).sin() * 0.1 + noise * 0.01
            })
            .collect();
        let quiet: Vec<f32> = sig.iter().map(|s| s * 0.1).collect();
        let a = fe.patches(&sig);
        let b = fe.patches(&quiet);
        assert_eq!(a.len(), 3 * fe.patch_len());
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(diff < 1e-3, "{diff}");
    }
}
