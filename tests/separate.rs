//! The separator end to end on synthetic audio: chunked inference equals whole-signal inference,
//! a tiny training run lowers the loss and resumes exactly, and `aniprint separate` writes stems.

// The whole crate is test code, helpers included (clippy.toml allows unwrap in #[test] only).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use aniprint::fingerprint::train::{Corpus, Kind, Source};
use aniprint::progress::{NoProgress, Progress};
use aniprint::separate::train::{self, Pools, TrainOptions};
use aniprint::separate::{ChunkPlan, Config, ModelCard, Separator};
use aniprint::units::SampleRate;
use candle_core::Device;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const RATE: u32 = 8000;

/// Syllable-like harmonic bursts with gliding pitch and pauses.
fn speechy(rng: &mut StdRng, seconds: f32) -> Vec<f32> {
    let n = (seconds * RATE as f32) as usize;
    let mut out = vec![0f32; n];
    let mut at = 0;
    while at < n {
        let dur = rng.random_range(1200..2400);
        let f0 = rng.random_range(110.0f32..240.0);
        let glide = rng.random_range(-0.3f32..0.3);
        let mut phase = 0f32;
        for i in 0..dur.min(n - at) {
            let t = i as f32 / dur as f32;
            let f = f0 * (1.0 + glide * t);
            phase += 2.0 * std::f32::consts::PI * f / RATE as f32;
            let env = (std::f32::consts::PI * t).sin();
            let mut v = 0.0;
            for h in 1..8 {
                v += (phase * h as f32).sin() / h as f32;
            }
            out[at + i] = 0.2 * env * v;
        }
        at += dur + rng.random_range(300..1200);
    }
    out
}

/// Sustained three-note chords that change every half second or so.
fn musicy(rng: &mut StdRng, seconds: f32) -> Vec<f32> {
    let n = (seconds * RATE as f32) as usize;
    let mut out = vec![0f32; n];
    let mut at = 0;
    while at < n {
        let dur = rng.random_range(3000..8000).min(n - at);
        let notes: Vec<f32> =
            (0..3).map(|_| 220.0 * 2f32.powf(rng.random_range(0..24) as f32 / 12.0)).collect();
        for i in 0..dur {
            let t = (at + i) as f32 / RATE as f32;
            out[at + i] =
                notes.iter().map(|f| 0.1 * (2.0 * std::f32::consts::PI * f * t).sin()).sum::<f32>();
        }
        at += dur;
    }
    out
}

/// Noise bursts.
fn sfx(rng: &mut StdRng, seconds: f32) -> Vec<f32> {
    let n = (seconds * RATE as f32) as usize;
    (0..n).map(|i| if (i / 2000) % 3 == 0 { rng.random_range(-0.3f32..0.3) } else { 0.0 }).collect()
}

fn source(name: &str, kind: Kind, clean: Vec<f32>) -> Source {
    Source { licence: "synthetic".into(), ..Source::uncoded(name, kind, SampleRate(RATE), clean) }
}

fn corpus() -> Corpus {
    let mut rng = StdRng::seed_from_u64(5);
    let split = |rng: &mut StdRng, tag: &str| {
        vec![
            source(&format!("speech-{tag}"), Kind::Speech, speechy(rng, 30.0)),
            source(&format!("music-{tag}"), Kind::Music, musicy(rng, 30.0)),
            source(&format!("sfx-{tag}"), Kind::Sfx, sfx(rng, 10.0)),
        ]
    };
    Corpus { train: split(&mut rng, "train"), val: split(&mut rng, "val") }
}

fn tiny() -> Config {
    Config {
        n_fft: 128,
        hop: 32,
        bins: 64,
        patch_frames: 64,
        channels: vec![4, 8, 8, 16, 16],
        ..Config::default()
    }
}

fn tiny_opts(dir: &Path) -> TrainOptions {
    let mut o = TrainOptions::new(dir.join("corpus"), dir.join("state"), dir.join("model"));
    o.config = tiny();
    o.steps = 30;
    o.batch = 4;
    o.lr = 5e-3;
    o.warmup = 3;
    o.checkpoint_every = 5;
    o.val_every = 1000;
    o.val_items = 2;
    o.val_seconds = 3.0;
    o
}

fn relative_error_db(a: &[f32], b: &[f32]) -> f64 {
    let e: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let s: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    10.0 * (e / s.max(1e-20)).log10()
}

#[derive(Default)]
struct Recorder {
    total: AtomicU64,
    done: AtomicU64,
    calls: AtomicUsize,
    cancel: bool,
}

impl Progress for Recorder {
    fn set_total(&self, total: u64) {
        self.total.store(total, Relaxed);
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Relaxed);
        self.calls.fetch_add(1, Relaxed);
    }
    fn is_cancelled(&self) -> bool {
        self.cancel
    }
}

/// An untrained separator of the default shape (seed 11): its stems are not meaningful, but
/// it runs every code path a trained one does.
fn random_separator() -> Separator {
    let dev = Device::Cpu;
    let cfg = Config::default();
    let (_map, net) = train::init_model(&cfg, 11, &dev).unwrap();
    let card = ModelCard { name: "random".into(), config: cfg, provenance: toml::Table::new() };
    Separator::from_parts(card, net, dev)
}

#[test]
fn chunked_separation_equals_whole_signal_separation() {
    let sep = random_separator();
    let mut rng = StdRng::seed_from_u64(3);
    let (v, b) = (speechy(&mut rng, 14.0), musicy(&mut rng, 14.0));
    let mix: Vec<f32> = v.iter().zip(&b).map(|(x, y)| x + y).collect();
    // An odd length, so the last chunk is ragged.
    let mix = &mix[..mix.len() - 77];
    let (wv, wb) = sep.separate_with(mix, ChunkPlan::whole()).unwrap();
    assert_eq!(wv.len(), mix.len());
    let small = ChunkPlan { core: 256, context: 160, crossfade: 16, parallel: 1 };
    for plan in [small, ChunkPlan { parallel: 3, ..small }, ChunkPlan::default()] {
        let (cv, cb) = sep.separate_with(mix, plan).unwrap();
        let (ev, eb) = (relative_error_db(&cv, &wv), relative_error_db(&cb, &wb));
        eprintln!("{plan:?}: chunked vs whole {ev:.1} / {eb:.1} dB");
        assert!(ev < -40.0 && eb < -40.0, "{plan:?}: voice {ev:.1} dB, background {eb:.1} dB");
    }
    // Reporting: the bar's total is the input, it moves chunk by chunk to the end, and the
    // stems are the same; a cancelled job stops.
    let rec = Recorder::default();
    let (rv, rb) = sep.separate_reporting(mix, small, &rec).unwrap();
    assert_eq!((rv, rb), sep.separate_with(mix, small).unwrap());
    assert_eq!(rec.total.load(Relaxed), mix.len() as u64);
    assert_eq!(rec.done.load(Relaxed), mix.len() as u64);
    assert!(rec.calls.load(Relaxed) > 3, "{} advances", rec.calls.load(Relaxed));
    let stop = Recorder { cancel: true, ..Recorder::default() };
    assert!(matches!(sep.separate_reporting(mix, small, &stop), Err(aniprint::Error::Cancelled)));
    // The stems are not trivial: neither is silent, and they differ.
    assert!(relative_error_db(&wv, &wb) > -20.0);
    assert!(wv.iter().any(|x| x.abs() > 1e-4) && wb.iter().any(|x| x.abs() > 1e-4));
}

#[test]
fn a_tiny_training_run_lowers_the_loss_and_writes_a_loadable_model() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = tiny_opts(tmp.path());
    let corpus = corpus();
    let pools = Pools::new(&corpus.train);
    let dev = Device::Cpu;
    let held = [100_000, 100_001, 100_002];
    let (_map, init) = train::init_model(&opts.config, opts.seed, &dev).unwrap();
    let before = train::batch_loss(&init, &opts, &pools, &held, &dev).unwrap();
    let state = train::train(&opts, &corpus, &NoProgress).unwrap();
    assert_eq!(state.step, opts.steps);
    assert!(state.val_sdr.is_finite(), "validation ran at the last step");
    let sep = Separator::load(&opts.out, &dev).unwrap();
    let after = train::batch_loss(sep.net(), &opts, &pools, &held, &dev).unwrap();
    eprintln!("held-out loss {before:.4} -> {after:.4}");
    assert!(after < 0.85 * before, "loss {before:.4} -> {after:.4}");
    let card = std::fs::read_to_string(opts.out.join("card.toml")).unwrap();
    assert!(card.contains("speech-train") && card.contains("wall_time_s"), "{card}");
    let (v, b) = sep.separate(&corpus.val[0].clean[..20_000]).unwrap();
    assert_eq!((v.len(), b.len()), (20_000, 20_000));
    for n in [0, 1, 100, 129, 5000] {
        let (v, b) = sep.separate(&corpus.val[0].clean[..n]).unwrap();
        assert_eq!((v.len(), b.len()), (n, n));
        assert!(v.iter().chain(&b).all(|x| x.is_finite()));
    }
}

/// Cancels once `after` steps are done.
struct StopAfter {
    after: u64,
    done: std::sync::atomic::AtomicU64,
}

impl Progress for StopAfter {
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn is_cancelled(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::Relaxed) >= self.after
    }
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    let corpus = corpus();
    let dev = Device::Cpu;
    let straight = tempfile::tempdir().unwrap();
    let mut opts = tiny_opts(straight.path());
    opts.steps = 12;
    train::train(&opts, &corpus, &NoProgress).unwrap();
    let resumed = tempfile::tempdir().unwrap();
    let mut opts2 = tiny_opts(resumed.path());
    opts2.steps = 12;
    // Cancelled between checkpoints (every 5 steps): the steps since the last one are kept.
    let stop = StopAfter { after: 7, done: 0.into() };
    assert!(matches!(train::train(&opts2, &corpus, &stop), Err(aniprint::Error::Cancelled)));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(opts2.state.join("state.json")).unwrap()).unwrap();
    assert_eq!(saved["step"], 7);
    let state = train::train(&opts2, &corpus, &NoProgress).unwrap();
    assert_eq!(state.step, 12);
    let a = candle_core::safetensors::load(opts.out.join("weights.safetensors"), &dev).unwrap();
    let b = candle_core::safetensors::load(opts2.out.join("weights.safetensors"), &dev).unwrap();
    assert_eq!(a.len(), b.len());
    for (name, ta) in &a {
        let d = (ta - &b[name]).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6, "{name} differs after resume");
    }
}

#[test]
fn the_cli_writes_both_stems() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = tiny_opts(tmp.path());
    let dev = Device::Cpu;
    let (map, _) = train::init_model(&opts.config, 1, &dev).unwrap();
    let card = ModelCard {
        name: "tiny".into(),
        config: opts.config.clone(),
        provenance: toml::Table::new(),
    };
    let model = tmp.path().join("tiny");
    train::write_model(&map, &card, &model).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let audio = speechy(&mut rng, 3.0);
    // Two inputs with one file name in different folders: neither may overwrite the other.
    let input = tmp.path().join("clip.wav");
    let other = tmp.path().join("sub").join("clip.wav");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    let short = &audio[..audio.len() / 2];
    for (path, samples) in [(&input, &audio[..]), (&other, short)] {
        aniprint::media::write::write_audio(
            path,
            samples,
            SampleRate(RATE),
            1,
            aniprint::media::write::AudioFormat::Wav,
        )
        .unwrap();
    }
    let out = tmp.path().join("stems");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_aniprint"))
        .arg("--catalog")
        .arg(tmp.path().join("catalog"))
        .args(["separate", "--quiet"])
        .arg(&input)
        .arg(&other)
        .arg("--out")
        .arg(&out)
        .arg("--model")
        .arg(&model)
        .env_remove("RUST_LOG")
        .status()
        .unwrap();
    assert!(status.success());
    for (name, len) in [("clip", audio.len()), ("clip.wav", short.len())] {
        for stem in ["voice", "background"] {
            let path = out.join(format!("{name}.{stem}.wav"));
            let opts = aniprint::media::DecodeOptions {
                rate: SampleRate(RATE),
                channels: 1,
                ..Default::default()
            };
            let decoded = aniprint::media::decode(&path, &opts).unwrap();
            assert_eq!(decoded.len(), len, "{name} {stem}");
        }
    }
}

/// The committed separator beats "mixture as estimate" on the fixture mixtures
/// (`fixtures/stems`, espeak-ng dialogue over SoX music, made by `fixtures/make.sh`) by a clear
/// margin, and a random network of the same shape does not: flat masks score the mixture.
#[test]
fn committed_weights_beat_the_mixture_on_fixture_mixtures() {
    use aniprint::separate::eval;
    let dev = Device::Cpu;
    let sep = Separator::load_default(&dev).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stems");
    let items = eval::items_from_dir(&dir, sep.rate(), &NoProgress).unwrap();
    assert_eq!(items.len(), 2);
    let cfg = sep.config().clone();
    let (_, net) = train::init_model(&cfg, 5, &dev).unwrap();
    let card = ModelCard { name: "random".into(), config: cfg, provenance: toml::Table::new() };
    let random = Separator::from_parts(card, net, dev.clone());
    let models = [("committed".to_string(), &sep), ("random".to_string(), &random)];
    let report = eval::evaluate(&models, &items, true, &NoProgress).unwrap();
    let mean = |name: &str| report.methods.iter().find(|m| m.method == name).unwrap().mean_sdr;
    let (mix, committed, rand) = (mean("mixture"), mean("committed"), mean("random"));
    assert!(committed > mix + 3.0, "committed {committed:.2} dB vs mixture {mix:.2} dB");
    assert!(rand < mix + 1.0, "random {rand:.2} dB vs mixture {mix:.2} dB");
    // Both stems gain, not one at the other's expense.
    let m = report.methods.iter().find(|m| m.method == "committed").unwrap();
    let x = report.methods.iter().find(|m| m.method == "mixture").unwrap();
    assert!(m.voice_sdr.mean > x.voice_sdr.mean && m.background_sdr.mean > x.background_sdr.mean);
}

/// Speed figures for sizing (not a timed test): `GLIBC_TUNABLES=... cargo test --release --test
/// separate -- --ignored --nocapture speed`. `SEP_BATCH` sets the training batch (default 8).
#[test]
#[ignore]
fn speed() {
    use std::time::Instant;
    let dev = Device::Cpu;
    let cfg = Config::default();
    let (map, net) = train::init_model(&cfg, 11, &dev).unwrap();
    eprintln!("parameters: {}", aniprint::separate::model::parameter_count(&map));
    let x = candle_core::Tensor::randn(0f32, 1.0, (1, 256, 256), &dev).unwrap();
    net.forward(&x).unwrap();
    let t = Instant::now();
    for _ in 0..3 {
        net.forward(&x).unwrap();
    }
    let per_patch = t.elapsed().as_secs_f64() / 3.0;
    eprintln!(
        "forward 1x256x256: {:.1} ms ({:.1}x real time per 4.1 s patch)",
        per_patch * 1e3,
        4.096 / per_patch
    );
    let card =
        ModelCard { name: "random".into(), config: cfg.clone(), provenance: toml::Table::new() };
    let sep = Separator::from_parts(card, net, dev.clone());
    let mut rng = StdRng::seed_from_u64(3);
    let mix: Vec<f32> =
        speechy(&mut rng, 60.0).iter().zip(musicy(&mut rng, 60.0)).map(|(a, b)| a + b).collect();
    let t = Instant::now();
    sep.separate(&mix).unwrap();
    let wall = t.elapsed().as_secs_f64();
    eprintln!("separate 60 s: {wall:.2} s ({:.1}x real time)", 60.0 / wall);
    let corpus = corpus();
    let pools = Pools::new(&corpus.train);
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = TrainOptions::new(tmp.path().into(), tmp.path().join("s"), tmp.path().join("m"));
    opts.batch = std::env::var("SEP_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let t = Instant::now();
    let (xb, mb, tb) = train::make_batch(&opts, &pools, 0, &dev).unwrap();
    let data = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..2 {
        let (m, _) = sep.net().forward_t(&xb, true).unwrap();
        let l = aniprint::separate::model::loss(&m, &mb, &tb, cfg.loss).unwrap();
        let _g = l.backward().unwrap();
    }
    let step = t.elapsed().as_secs_f64() / 2.0;
    eprintln!(
        "train step batch {}: data {:.2} s, forward+backward {:.2} s",
        opts.batch, data, step
    );
}

/// `eval stems` with the installed models (the default fingerprinter, however wide its
/// vectors) on synthetic dialogue and music: it runs end to end and places reused audio far
/// above chance (the right one of 4 references within 0.5 s: about 1%; measured 42-50%).
#[test]
fn the_stem_comparison_runs_with_the_installed_models() {
    use aniprint::analyze::Analyzer;
    use aniprint::eval::stems::{StemEvalOptions, evaluate_stems};
    use aniprint::fingerprint::Fingerprinter;
    let fp = Fingerprinter::load_default(&Device::Cpu).unwrap();
    let sep = Separator::load_default(&Device::Cpu).unwrap();
    let analyzer = Analyzer::new(fp, Some(Box::new(sep))).unwrap();
    let c = corpus();
    let sources: Vec<Source> = c.train.into_iter().chain(c.val).collect();
    let opts = StemEvalOptions {
        references: 4,
        reference_s: 12.0,
        queries: 12,
        lengths: vec![3.0],
        phases: 1,
        ..StemEvalOptions::default()
    };
    let report = evaluate_stems(&analyzer, &sources, &opts, &NoProgress).unwrap();
    assert_eq!(report.model, aniprint::fingerprint::DEFAULT_MODEL);
    assert_eq!(report.rows.len(), 2, "{report:?}");
    assert!(report.rows.iter().all(|r| r.all_stems_top1 >= 25.0), "{report:?}");
}

#[path = "support/event_log.rs"]
mod event_log;
use event_log::EventLog;

#[test]
fn separating_a_file_reports_every_stage_to_its_end() {
    let sep = random_separator();
    let out = tempfile::tempdir().unwrap();
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad/silent.wav");
    let log = EventLog::default();
    let files = aniprint::separate::separate_file(
        &sep,
        &input,
        out.path(),
        "silent",
        aniprint::media::write::AudioFormat::Wav,
        &log,
    )
    .unwrap();
    assert!(files.voice.is_file() && files.background.is_file());
    let events = log.0.into_inner().unwrap();
    // The export moves one step a stem (it sat at 0% until the next file).
    let export = events.iter().position(|e| e == "stage exporting").unwrap();
    assert_eq!(events[export + 1..], ["total 2", "advance 1", "advance 1"], "{events:?}");
    // Separation reported its whole input before the export began.
    let separating = events.iter().position(|e| e == "stage separating").unwrap();
    let total: u64 = events[separating + 1].strip_prefix("total ").unwrap().parse().unwrap();
    let done: u64 = events[separating + 2..export]
        .iter()
        .map(|e| e.strip_prefix("advance ").unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(done, total);
}
