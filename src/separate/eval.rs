//! Separation quality: BSS-Eval SDR and SIR per stem, with the "mixture as estimate" floor and
//! the Ideal Ratio Mask ceiling beside every model, over reference folders or over validation
//! mixtures built from held-out corpus packages.
//!
//! Metric variant: BSS-Eval's decomposition (Vincent, Gribonval & Fevotte 2006, the paper's
//! formulas 4-5) computed framewise on 1 s windows as BSS-Eval v4 / museval does, with a
//! gain-only (length-1) distortion filter instead of museval's 512-tap one. In each window the
//! estimate is projected onto the true stem (`s_target`) and onto the span of both true stems;
//! what the second projection adds is `e_interf`, what it leaves is `e_artif`.
//! `SDR = 10 log10(|s_target|^2 / |e_interf + e_artif|^2)` (so per window it equals the
//! scale-invariant SDR) and `SIR = 10 log10(|s_target|^2 / |e_interf|^2)`. Windows where the true
//! stem is silent (60 dB below its mean window energy) are skipped; an item's score is the median
//! over its windows, and the report gives the mean and median over items. Being gain-only, the
//! variant forgives no filtering, so it reads a little lower than museval's default.

use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use super::Separator;
use super::model::Config;
use super::train::{MixRecipe, Pools, make_mixture};
use crate::dsp::Stft;
use crate::fingerprint::train::Source;
use crate::media::{self, DecodeOptions};
use crate::progress::{Progress, Stage};
use crate::units::SampleRate;
use crate::{Error, Result};

/// One evaluation item: a mixture and its true stems, all the same length, at the model rate.
#[derive(Debug, Clone)]
pub struct Item {
    /// A name for reports (folder name or `val-NNN`).
    pub name: String,
    /// The mixture.
    pub mixture: Vec<f32>,
    /// The true voice.
    pub voice: Vec<f32>,
    /// The true background.
    pub background: Vec<f32>,
}

/// SDR and SIR of one stem, dB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StemScores {
    /// Signal-to-distortion ratio.
    pub sdr: f64,
    /// Signal-to-interference ratio.
    pub sir: f64,
}

const EPS: f64 = 1e-9;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

/// `(SDR, SIR)` of estimate `e` of `s` with the other stem `o`, over one window.
fn window_scores(s: &[f32], o: &[f32], e: &[f32]) -> (f64, f64) {
    let (ss, oo, so) = (dot(s, s), dot(o, o), dot(s, o));
    let (es, eo, ee) = (dot(e, s), dot(e, o), dot(e, e));
    let target = es * es / ss;
    let det = ss * oo - so * so;
    // Energy of the projection onto span{s, o} (onto s alone when o is silent or collinear).
    let in_span = if det > 1e-9 * ss * oo && oo > 0.0 {
        let a0 = (es * oo - eo * so) / det;
        let a1 = (eo * ss - es * so) / det;
        a0 * es + a1 * eo
    } else {
        target
    };
    let interf = (in_span - target).max(0.0);
    let artif = (ee - in_span).max(0.0);
    let db = |num: f64, den: f64| 10.0 * ((num + EPS) / (den + EPS)).log10();
    (db(target, interf + artif), db(target, interf))
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// BSS-Eval scores of estimates `[voice, background]` against references, framewise over
/// `window`-sample windows (see the module doc); NaN where every window's reference is silent.
pub fn bss_eval(refs: [&[f32]; 2], ests: [&[f32]; 2], window: usize) -> [StemScores; 2] {
    let len = refs[0].len().min(refs[1].len()).min(ests[0].len()).min(ests[1].len());
    let window = window.max(1);
    let starts: Vec<usize> = (0..len / window).map(|i| i * window).collect();
    std::array::from_fn(|j| {
        let (s, o, e) = (refs[j], refs[1 - j], ests[j]);
        let energies: Vec<f64> =
            starts.iter().map(|&a| dot(&s[a..a + window], &s[a..a + window])).collect();
        let mean = energies.iter().sum::<f64>() / energies.len().max(1) as f64;
        let (mut sdr, mut sir) = (Vec::new(), Vec::new());
        for (&a, &en) in starts.iter().zip(&energies) {
            if en <= 1e-6 * mean || en <= 0.0 {
                continue;
            }
            let w = a..a + window;
            let (d, i) = window_scores(&s[w.clone()], &o[w.clone()], &e[w]);
            sdr.push(d);
            sir.push(i);
        }
        StemScores { sdr: median(&mut sdr), sir: median(&mut sir) }
    })
}

/// `n` validation mixtures of `seconds` from held-out sources, fixed by `seed`: speech over music
/// (or effects), voice-to-background ratio uniform in `vbr_db`, mixture at RMS 0.1.
pub fn corpus_items(
    val: &[Source],
    n: usize,
    seconds: f32,
    rate: SampleRate,
    seed: u64,
    vbr_db: (f32, f32),
) -> Vec<Item> {
    let pools = Pools::new(val);
    if pools.voice.is_empty() || (pools.music.is_empty() && pools.sfx.is_empty()) {
        return Vec::new();
    }
    let recipe = MixRecipe {
        vbr_db,
        gain_db: (0.0, 0.0),
        p_no_voice: 0.0,
        p_no_background: 0.0,
        p_sfx: 0.2,
        p_extra_sfx: 0.3,
        p_coded: 0.0,
        min_background_activity: 0.9,
    };
    let len = (seconds * rate.0 as f32) as usize;
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let (voice, background) = make_mixture(&recipe, &pools, &mut rng, len, 0.1);
            let mixture = voice.iter().zip(&background).map(|(a, b)| a + b).collect();
            Item { name: format!("val-{i:03}"), mixture, voice, background }
        })
        .collect()
}

/// Items from `dir/<item>/{mixture,voice,background}.<any audio extension>`, decoded to mono at
/// `rate` and cut to their common length.
pub fn items_from_dir(dir: &Path, rate: SampleRate, progress: &dyn Progress) -> Result<Vec<Item>> {
    let mut folders: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    progress.stage(Stage::Decoding);
    progress.set_total(folders.len() as u64);
    let opts = DecodeOptions { rate, channels: 1, ..DecodeOptions::default() };
    let mut items = Vec::new();
    for folder in folders {
        let find = |stem: &str| stem_file(&folder, stem);
        let (Some(m), Some(v), Some(b)) = (find("mixture"), find("voice"), find("background"))
        else {
            tracing::warn!("{}: no mixture/voice/background files, skipped", folder.display());
            progress.advance(1);
            continue;
        };
        let (mut mixture, mut voice, mut background) =
            (media::decode(&m, &opts)?, media::decode(&v, &opts)?, media::decode(&b, &opts)?);
        let len = mixture.len().min(voice.len()).min(background.len());
        mixture.truncate(len);
        voice.truncate(len);
        background.truncate(len);
        let name = folder.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        items.push(Item { name, mixture, voice, background });
        progress.advance(1);
    }
    if items.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no item folders with mixture, voice and background audio",
            dir.display()
        )));
    }
    Ok(items)
}

/// The media file named `stem` (any audio extension; the first by name) in `folder`.
fn stem_file(folder: &Path, stem: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir(folder)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_stem().and_then(|s| s.to_str()) == Some(stem) && media::is_media_path(p))
        .min()
}

/// Writes `items` as `dir/<item>/{mixture,voice,background}.wav` (mono at `rate`), the layout
/// [`items_from_dir`] reads back: the same mixtures for another separator to run on.
pub fn dump_items(items: &[Item], dir: &Path, rate: SampleRate) -> Result<()> {
    use crate::media::write::{AudioFormat, write_audio};
    for item in items {
        let folder = dir.join(&item.name);
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
        if item.mixture.iter().any(|x| x.abs() > 1.0) {
            // 16-bit WAV clips it; the models here see it unclipped.
            tracing::warn!("{}: the mixture peaks above full scale and is clipped", item.name);
        }
        for (stem, audio) in
            [("mixture", &item.mixture), ("voice", &item.voice), ("background", &item.background)]
        {
            write_audio(&folder.join(format!("{stem}.wav")), audio, rate, 1, AudioFormat::Wav)?;
        }
    }
    Ok(())
}

/// Scores another tool's separations of `items`, read from `dir/<item>/{voice,background}.<any
/// audio extension>` (decoded to mono at `rate`, cut or padded with silence to the item's
/// length), as the method `name`. An item without both files is an error naming the folder.
pub fn score_estimates(
    name: &str,
    items: &[Item],
    dir: &Path,
    rate: SampleRate,
    progress: &dyn Progress,
) -> Result<MethodReport> {
    let opts = DecodeOptions { rate, channels: 1, ..DecodeOptions::default() };
    progress.stage(Stage::Evaluating);
    progress.set_total(items.len() as u64);
    let mut scores = Vec::with_capacity(items.len());
    for item in items {
        let folder = dir.join(&item.name);
        let read = |stem: &str| -> Result<Vec<f32>> {
            let file = stem_file(&folder, stem)
                .ok_or_else(|| Error::Invalid(format!("{}: no {stem} audio", folder.display())))?;
            let mut x = media::decode(&file, &opts)?;
            x.resize(item.mixture.len(), 0.0);
            Ok(x)
        };
        let (v, b) = (read("voice")?, read("background")?);
        let refs = [item.voice.as_slice(), item.background.as_slice()];
        scores.push((item.name.clone(), bss_eval(refs, [&v, &b], rate.0 as usize)));
        progress.advance(1);
    }
    Ok(MethodReport::new(name, "external".into(), scores))
}

/// The Ideal Ratio Mask oracle at `cfg`'s STFT: `|V| / sqrt(|V|^2 + |B|^2)` (and likewise for
/// the background) on the mixture, mixture phase, inverse STFT.
pub fn irm_estimate(cfg: &Config, voice: &[f32], background: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let stft = Stft::new(cfg.n_fft, cfg.hop);
    let len = voice.len().min(background.len());
    let (sv, sb) = (stft.forward(&voice[..len]), stft.forward(&background[..len]));
    let n = stft.n_frames(len);
    let mut ev = Vec::with_capacity(sv.len());
    let mut eb = Vec::with_capacity(sv.len());
    for (&v, &b) in sv.iter().zip(&sb) {
        let (pv, pb) = (v.norm_sqr(), b.norm_sqr());
        let den = (pv + pb).sqrt().max(1e-12);
        let x = v + b;
        ev.push(x * (pv.sqrt() / den));
        eb.push(x * (pb.sqrt() / den));
    }
    (stft.inverse(&ev, n, len), stft.inverse(&eb, n, len))
}

/// Mean and median over items, dB.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
}

impl Summary {
    fn of(values: impl Iterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
        let mean = if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
        Self { mean, median: median(&mut v) }
    }
}

/// One method's scores (a model or a baseline).
#[derive(Debug, Clone, Serialize)]
pub struct MethodReport {
    /// `mixture`, `irm`, the model's name, or another tool's (`score_estimates`).
    pub method: String,
    /// ECA / norm / loss of a model (for ablation tables), empty for baselines, `external` for
    /// another tool's estimates.
    pub variant: String,
    /// Voice SDR.
    pub voice_sdr: Summary,
    /// Voice SIR.
    pub voice_sir: Summary,
    /// Background SDR.
    pub background_sdr: Summary,
    /// Background SIR.
    pub background_sir: Summary,
    /// Mean over both stems of the per-item SDRs.
    pub mean_sdr: f64,
    /// Separation speed: audio seconds per wall-clock second (models only).
    pub x_realtime: Option<f64>,
    /// Per-item scores `[voice, background]`.
    pub items: Vec<(String, [StemScores; 2])>,
}

impl MethodReport {
    fn new(method: &str, variant: String, items: Vec<(String, [StemScores; 2])>) -> Self {
        let pick = |j: usize, sdr: bool| {
            Summary::of(items.iter().map(move |(_, s)| if sdr { s[j].sdr } else { s[j].sir }))
        };
        let both = Summary::of(items.iter().flat_map(|(_, s)| [s[0].sdr, s[1].sdr]));
        Self {
            method: method.to_string(),
            variant,
            voice_sdr: pick(0, true),
            voice_sir: pick(0, false),
            background_sdr: pick(1, true),
            background_sir: pick(1, false),
            mean_sdr: both.mean,
            x_realtime: None,
            items,
        }
    }
}

/// An evaluation: every method on the same items.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Number of items.
    pub items: usize,
    /// Total audio, seconds.
    pub seconds: f64,
    /// Which metric variant (see the module doc).
    pub metric: String,
    /// Baselines and models.
    pub methods: Vec<MethodReport>,
}

impl Report {
    /// A plain-text table: mean (median) per stem and metric.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} items, {:.0} s of audio; {}\n{:<22} {:<18} {:>15} {:>15} {:>15} {:>15} {:>9} {:>8}\n",
            self.items,
            self.seconds,
            self.metric,
            "method",
            "variant",
            "voice SDR",
            "voice SIR",
            "bg SDR",
            "bg SIR",
            "mean SDR",
            "x RT"
        );
        let cell = |s: Summary| format!("{:>6.2} ({:>6.2})", s.mean, s.median);
        for m in &self.methods {
            out.push_str(&format!(
                "{:<22} {:<18} {:>15} {:>15} {:>15} {:>15} {:>9.2} {:>8}\n",
                m.method,
                m.variant,
                cell(m.voice_sdr),
                cell(m.voice_sir),
                cell(m.background_sdr),
                cell(m.background_sir),
                m.mean_sdr,
                m.x_realtime.map(|x| format!("{x:.1}")).unwrap_or_default()
            ));
        }
        out.push_str("cells: mean (median) over items, dB; x RT: audio seconds per second\n");
        out
    }

    /// The figures a model card keeps, for `method`.
    pub fn card_metrics(&self, method: &str) -> Option<toml::Table> {
        let m = self.methods.iter().find(|m| m.method == method)?;
        let mut t = toml::Table::new();
        t.insert("items".into(), (self.items as i64).into());
        t.insert("metric".into(), self.metric.clone().into());
        t.insert("mean_sdr_db".into(), m.mean_sdr.into());
        t.insert("voice_sdr_db".into(), m.voice_sdr.mean.into());
        t.insert("voice_sir_db".into(), m.voice_sir.mean.into());
        t.insert("background_sdr_db".into(), m.background_sdr.mean.into());
        t.insert("background_sir_db".into(), m.background_sir.mean.into());
        if let Some(x) = m.x_realtime {
            t.insert("x_realtime".into(), x.into());
        }
        for (name, key) in [("mixture", "mixture_mean_sdr_db"), ("irm", "irm_mean_sdr_db")] {
            if let Some(b) = self.methods.iter().find(|b| b.method == name) {
                t.insert(key.into(), b.mean_sdr.into());
            }
        }
        match super::train::round_floats(toml::Value::Table(t)) {
            toml::Value::Table(t) => Some(t),
            _ => None,
        }
    }
}

/// Score every model in `models` (name, separator) and, with `baselines`, the mixture and IRM
/// (at the first model's STFT) on `items`.
pub fn evaluate(
    models: &[(String, &Separator)],
    items: &[Item],
    baselines: bool,
    progress: &dyn Progress,
) -> Result<Report> {
    let rate = models.first().map_or(8000, |(_, s)| s.rate().0) as usize;
    let mut methods = Vec::new();
    progress.stage(Stage::Evaluating);
    progress.set_total((items.len() * (models.len() + usize::from(baselines))) as u64);
    if baselines {
        let mut mix = Vec::new();
        let mut irm = Vec::new();
        for item in items {
            let refs = [item.voice.as_slice(), item.background.as_slice()];
            let m = &item.mixture;
            mix.push((item.name.clone(), bss_eval(refs, [m, m], rate)));
            if let Some((_, sep)) = models.first() {
                let (v, b) = irm_estimate(sep.config(), &item.voice, &item.background);
                irm.push((item.name.clone(), bss_eval(refs, [&v, &b], rate)));
            }
            progress.advance(1);
        }
        methods.push(MethodReport::new("mixture", String::new(), mix));
        if !irm.is_empty() {
            methods.push(MethodReport::new("irm", String::new(), irm));
        }
    }
    for (name, sep) in models {
        let mut scores = Vec::new();
        let mut wall = 0.0;
        for item in items {
            progress.check()?;
            let t = Instant::now();
            let (v, b) = sep.separate(&item.mixture)?;
            wall += t.elapsed().as_secs_f64();
            let refs = [item.voice.as_slice(), item.background.as_slice()];
            scores.push((item.name.clone(), bss_eval(refs, [&v, &b], rate)));
            progress.advance(1);
        }
        let c = sep.config();
        let variant = format!(
            "{} {} {}",
            if c.eca { "eca" } else { "no-eca" },
            format!("{:?}", c.norm).to_lowercase(),
            format!("{:?}", c.loss).to_lowercase()
        );
        let mut m = MethodReport::new(name, variant, scores);
        let audio: f64 = items.iter().map(|i| i.mixture.len() as f64).sum::<f64>() / rate as f64;
        m.x_realtime = Some(audio / wall.max(1e-9));
        methods.push(m);
    }
    Ok(Report {
        items: items.len(),
        seconds: items.iter().map(|i| i.mixture.len() as f64).sum::<f64>() / rate as f64,
        metric: "BSS-Eval SDR/SIR, 1 s windows, gain-only distortion filter (median per item)"
            .into(),
        methods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[test]
    fn dumped_items_score_as_estimates_and_a_missing_one_is_named() {
        let len = 8000 * 3;
        let items: Vec<Item> = (0..2)
            .map(|i| {
                let voice = tone(300.0 + 100.0 * i as f32, 0.3, len);
                let background = tone(1500.0, 0.2, len);
                let mixture = voice.iter().zip(&background).map(|(a, b)| a + b).collect();
                Item { name: format!("val-{i:03}"), mixture, voice, background }
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        dump_items(&items, dir.path(), SampleRate(8000)).unwrap();
        let back = items_from_dir(dir.path(), SampleRate(8000), &NoProgress).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back[1].voice.iter().zip(&items[1].voice).all(|(a, b)| (a - b).abs() < 1e-4));
        // The true stems as another tool's estimates: near-perfect scores.
        let m =
            score_estimates("truth", &items, dir.path(), SampleRate(8000), &NoProgress).unwrap();
        assert_eq!(m.items.len(), 2);
        assert!(m.items.iter().all(|(_, s)| s[0].sdr > 40.0 && s[1].sdr > 40.0), "{:?}", m.items);
        std::fs::remove_file(dir.path().join("val-001").join("background.wav")).unwrap();
        let err = score_estimates("truth", &items, dir.path(), SampleRate(8000), &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(err.contains("val-001") && err.contains("background"), "{err}");
    }

    fn tone(freq: f32, amp: f32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 8000.0).sin())
            .collect()
    }

    #[test]
    fn perfect_estimates_score_high_and_the_mixture_scores_its_ratio() {
        let len = 8000 * 4;
        // 500 Hz and 1250 Hz: whole cycles in a 1 s window, so exactly orthogonal.
        let v = tone(500.0, 0.2, len);
        let b = tone(1250.0, 0.1, len);
        let mix: Vec<f32> = v.iter().zip(&b).map(|(x, y)| x + y).collect();
        let perfect = bss_eval([&v, &b], [&v, &b], 8000);
        assert!(perfect.iter().all(|s| s.sdr > 60.0 && s.sir > 60.0), "{perfect:?}");
        let floor = bss_eval([&v, &b], [&mix, &mix], 8000);
        // Voice is 6.02 dB above the background; both metrics equal the ratio.
        let r = 20.0 * 2f64.log10();
        assert!((floor[0].sdr - r).abs() < 0.01 && (floor[0].sir - r).abs() < 0.01, "{floor:?}");
        assert!((floor[1].sdr + r).abs() < 0.01 && (floor[1].sir + r).abs() < 0.01, "{floor:?}");
        // Noise in the estimate lowers SDR but not SIR.
        let noisy: Vec<f32> = v
            .iter()
            .enumerate()
            .map(|(i, x)| x + 0.02 * (((i * 7919) % 13) as f32 - 6.0) / 6.0)
            .collect();
        let s = bss_eval([&v, &b], [&noisy, &b], 8000);
        assert!(s[0].sdr < 30.0 && s[0].sir > 40.0, "{s:?}");
    }

    #[test]
    fn silent_reference_windows_are_skipped() {
        let len = 8000 * 3;
        let mut v = tone(500.0, 0.2, len);
        v[8000..16000].iter_mut().for_each(|x| *x = 0.0);
        let b = tone(1250.0, 0.2, len);
        let s = bss_eval([&v, &b], [&v, &b], 8000);
        assert!(s[0].sdr.is_finite() && s[0].sdr > 60.0);
        let silent = vec![0.0; len];
        assert!(bss_eval([&silent, &b], [&v, &b], 8000)[0].sdr.is_nan());
    }

    #[test]
    fn the_irm_oracle_is_near_perfect_on_disjoint_spectra() {
        let len = 8000 * 3;
        let v = tone(500.0, 0.2, len);
        let b = tone(2500.0, 0.2, len);
        let (ev, eb) = irm_estimate(&Config::default(), &v, &b);
        let s = bss_eval([&v, &b], [&ev, &eb], 8000);
        assert!(s[0].sdr > 30.0 && s[1].sdr > 30.0, "{s:?}");
    }
}
