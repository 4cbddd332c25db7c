//! CPU-against-CUDA check of both models: the committed weights must give the same vectors and
//! stems on either device, a training step the same loss, and this prints how fast each is.
//!
//! It reads no media (synthetic audio, no FFmpeg), so the binary runs on a GPU machine that has
//! the CUDA driver and libraries but none of FFmpeg's:
//!
//! ```text
//! scripts/cuda/build.sh --example device_check      # or cargo build --release --features cuda ...
//! ANIPRINT_MODELS=models target-cuda/release/examples/device_check cuda
//! ```
//!
//! Without an argument (or with `cpu`) it compares the CPU with itself, which is what CI builds.
//! Exit status 2 when the devices disagree beyond the tolerances below (NaN counts as
//! disagreeing), 1 when the check itself cannot run (no device, no models).

use std::sync::Mutex;
use std::time::Instant;

use aniprint::fingerprint::Fingerprinter;
use aniprint::fingerprint::train::{
    Corpus, Kind, Source, TrainOptions, Validator, train_validated,
};
use aniprint::separate::Separator;
use aniprint::separate::train::TrainOptions as SeparatorOptions;
use aniprint::units::SampleRate;
use anyhow::{Context, Result, bail};
use candle_core::Device;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Cosine similarity under which two devices' vectors of one segment count as different.
const MIN_COSINE: f32 = 0.999;
/// Stem error (RMS of the difference over RMS of the stem) above which stems differ.
const MAX_STEM_ERROR: f32 = 1e-3;
/// Relative difference of training losses above which the devices' steps differ.
const MAX_LOSS_ERROR: f64 = 1e-3;

fn main() -> Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "cpu".into());
    let device = match which.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0).context("no CUDA device (built with --features cuda?)")?,
        other => bail!("device must be cpu or cuda, not {other}"),
    };
    let mut failures = Vec::new();
    failures.extend(check_fingerprints(&device)?);
    failures.extend(check_separation(&device)?);
    failures.extend(check_training(&device)?);
    if failures.is_empty() {
        println!("device_check {which}: the devices agree");
        Ok(())
    } else {
        for f in &failures {
            eprintln!("MISMATCH {f}");
        }
        std::process::exit(2);
    }
}

/// A deterministic stand-in for music: notes of three partials that change every 0.25-1 s.
fn music(rate: u32, seconds: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = (rate as f32 * seconds) as usize;
    let mut out = Vec::with_capacity(n);
    let (mut f0, mut left) = (220.0f32, 0usize);
    for i in 0..n {
        if left == 0 {
            f0 = 110.0 * 2f32.powf(rng.random_range(0..36) as f32 / 12.0);
            left = rng.random_range(rate as usize / 4..rate as usize);
        }
        left -= 1;
        let t = i as f32 / rate as f32;
        let tau = std::f32::consts::TAU;
        let s = (tau * f0 * t).sin()
            + 0.5 * (tau * 2.0 * f0 * t).sin()
            + 0.25 * (tau * 3.0 * f0 * t).sin();
        out.push(0.2 * s + 0.01 * (rng.random::<f32>() - 0.5));
    }
    out
}

/// A stand-in for speech: noise through a moving resonance, switched on and off like syllables.
fn speech(rate: u32, seconds: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = (rate as f32 * seconds) as usize;
    let (mut y1, mut y2) = (0f32, 0f32);
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let fc = 500.0 + 400.0 * (t * 3.1).sin();
            let r = 0.97f32;
            let w = std::f32::consts::TAU * fc / rate as f32;
            let x = rng.random::<f32>() - 0.5;
            let y = x + 2.0 * r * w.cos() * y1 - r * r * y2;
            (y2, y1) = (y1, y);
            let on = if (t * 4.0).fract() < 0.6 { 1.0 } else { 0.05 };
            0.05 * y * on
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// Seconds per call of `f`, after one warm-up call, over `runs` calls.
fn time<T>(runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<(T, f64)> {
    let mut out = f()?;
    let t = Instant::now();
    for _ in 0..runs {
        out = f()?;
    }
    Ok((out, t.elapsed().as_secs_f64() / runs as f64))
}

fn check_fingerprints(device: &Device) -> Result<Vec<String>> {
    let cpu = Fingerprinter::load_default(&Device::Cpu)?;
    let dev = Fingerprinter::load_default(device)?;
    let rate = cpu.config().rate().0;
    let seconds = 600.0;
    let mut audio = music(rate, seconds, 1);
    for (a, s) in audio.iter_mut().zip(speech(rate, seconds, 2)) {
        *a += s;
    }
    let (want, cpu_s) = time(1, || Ok(cpu.fingerprint(&audio)?))?;
    let (got, dev_s) = time(3, || Ok(dev.fingerprint(&audio)?))?;
    if want.len() != got.len() || want.dim != got.dim {
        let (a, b) = ((want.len(), want.dim), (got.len(), got.dim));
        return Ok(vec![format!("fingerprints: CPU gave {a:?} (segments, dims), device {b:?}")]);
    }
    // NaN must fail and stay: `f32::min` would skip it.
    let worst = (0..want.len())
        .map(|i| cosine(want.row(i), got.row(i)))
        .fold(1f32, |w, c| if w.is_nan() || c >= w { w } else { c });
    println!(
        "fingerprint {}: {} segments x {} dims; worst cosine to CPU {worst:.6}; \
         CPU {:.0}x, device {:.0}x real time",
        cpu.card().name,
        want.len(),
        want.dim,
        seconds as f64 / cpu_s,
        seconds as f64 / dev_s
    );
    let mut failures = Vec::new();
    if worst.is_nan() || worst < MIN_COSINE {
        failures.push(format!("fingerprints: worst cosine {worst} < {MIN_COSINE}"));
    }
    Ok(failures)
}

fn check_separation(device: &Device) -> Result<Vec<String>> {
    let cpu = Separator::load_default(&Device::Cpu)?;
    let dev = Separator::load_default(device)?;
    let rate = cpu.rate().0;
    let seconds = 60.0;
    let mut mix = music(rate, seconds, 3);
    for (a, s) in mix.iter_mut().zip(speech(rate, seconds, 4)) {
        *a += s;
    }
    let ((cv, cb), cpu_s) = time(1, || Ok(cpu.separate(&mix)?))?;
    let ((dv, db), dev_s) = time(3, || Ok(dev.separate(&mix)?))?;
    let err = |a: &[f32], b: &[f32]| {
        if a.len() != b.len() {
            return f32::INFINITY;
        }
        let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        rms(&d) / rms(a).max(1e-9)
    };
    let (ev, eb) = (err(&cv, &dv), err(&cb, &db));
    println!(
        "separate {}: voice error {ev:.2e}, background error {eb:.2e} (RMS of difference / RMS); \
         CPU {:.1}x, device {:.1}x real time",
        cpu.card().name,
        seconds as f64 / cpu_s,
        seconds as f64 / dev_s
    );
    let mut failures = Vec::new();
    if [ev, eb].iter().any(|e| e.is_nan() || *e > MAX_STEM_ERROR) {
        failures.push(format!("stems: errors {ev:.2e} / {eb:.2e} > {MAX_STEM_ERROR:.0e}"));
    }
    Ok(failures)
}

/// Scores nothing: the check times steps, and the built-in validation fingerprints minutes.
struct NoValidation;

impl Validator for NoValidation {
    fn describe(&self) -> String {
        "none (device check)".into()
    }
    fn metric(&self) -> &'static str {
        "none"
    }
    fn score(&self, _fp: &Fingerprinter) -> Result<f64, aniprint::Error> {
        Ok(0.0)
    }
}

fn synthetic_corpus(rate: SampleRate) -> Corpus {
    let source = |package: &str, kind, clean| Source::uncoded(package, kind, rate, clean);
    Corpus {
        train: vec![
            source("music", Kind::Music, music(rate.0, 300.0, 5)),
            source("speech", Kind::Speech, speech(rate.0, 300.0, 6)),
            source("sfx", Kind::Sfx, speech(rate.0, 60.0, 7)),
        ],
        val: Vec::new(),
    }
}

/// Which trainer [`train_steps`] runs.
#[derive(Clone, Copy)]
enum Trainer {
    Fingerprint,
    Separator,
}

/// When each training step ended (the trainers advance their progress once a step).
#[derive(Default)]
struct StepClock(Mutex<Vec<Instant>>);

impl aniprint::progress::Progress for StepClock {
    fn advance(&self, n: u64) {
        // Resuming reports the steps already done as one advance of 0 here.
        if n > 0 {
            self.0.lock().expect("clock").push(Instant::now());
        }
    }
}

/// Runs `steps` steps of `trainer` from the default seed on the CPU or the CUDA device: the
/// loss of each step (from the run's log), and the mean seconds a step after the first (set-up,
/// the first step's kernel loading and the final write left out).
fn train_steps(
    trainer: Trainer,
    cuda: bool,
    steps: usize,
    batch: usize,
) -> Result<(Vec<f64>, f64)> {
    let dir = tempfile::tempdir()?;
    let (state, out) = (dir.path().join("state"), dir.path().join("out"));
    let clock = StepClock::default();
    match trainer {
        Trainer::Fingerprint => {
            let mut opts = TrainOptions::new(dir.path().into(), state.clone(), out);
            (opts.steps, opts.batch_pairs, opts.cuda) = (steps, batch, cuda);
            (opts.val_every, opts.checkpoint_every) = (usize::MAX, usize::MAX);
            let corpus = synthetic_corpus(opts.fingerprint.rate());
            train_validated(&opts, &corpus, &clock, &NoValidation)?;
        }
        Trainer::Separator => {
            let mut opts = SeparatorOptions::new(dir.path().into(), state.clone(), out);
            opts.config = Separator::load_default(&Device::Cpu)?.config().clone();
            (opts.steps, opts.batch, opts.cuda) = (steps, batch, cuda);
            (opts.val_every, opts.checkpoint_every) = (usize::MAX, usize::MAX);
            let corpus = synthetic_corpus(opts.rate());
            aniprint::separate::train::train(&opts, &corpus, &clock)?;
        }
    }
    let log = std::fs::read_to_string(state.join("log.csv"))?;
    // Both trainers log `step,loss,smoothed,lr,validation,elapsed_s`.
    let losses: Vec<f64> = log.lines().filter_map(|l| l.split(',').nth(1)?.parse().ok()).collect();
    let ends = clock.0.into_inner().expect("clock");
    let per_step = match (ends.first(), ends.last()) {
        (Some(a), Some(b)) if ends.len() > 1 => (*b - *a).as_secs_f64() / (ends.len() - 1) as f64,
        _ => f64::NAN,
    };
    Ok((losses, per_step))
}

fn check_training(device: &Device) -> Result<Vec<String>> {
    let cuda = device.is_cuda();
    let mut failures = Vec::new();
    for (trainer, name, batch) in
        [(Trainer::Fingerprint, "fingerprint", 128), (Trainer::Separator, "separator", 8)]
    {
        let steps = 5;
        let (want, cpu_s) = train_steps(trainer, false, steps, batch)?;
        let (got, dev_s) = train_steps(trainer, cuda, steps, batch)?;
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1e-9))
            .fold(0f64, |w, d| if w.is_nan() || d <= w { w } else { d });
        println!(
            "train {name}, batch {batch}: losses CPU {want:.4?}, device {got:.4?} (worst relative \
             difference {worst:.2e}); CPU {cpu_s:.3} s, device {dev_s:.3} s a step"
        );
        if want.len() != steps || got.len() != steps || worst.is_nan() || worst > MAX_LOSS_ERROR {
            failures.push(format!("{name} training losses differ by {worst:.2e}"));
        }
        if cuda {
            // Throughput at batches a GPU is meant for; no CPU comparison (minutes there).
            for big in [4 * batch, 16 * batch] {
                let (_, s) = train_steps(trainer, true, 20, big)?;
                println!("train {name} on the device, batch {big}: {s:.3} s a step");
            }
        }
    }
    Ok(failures)
}
