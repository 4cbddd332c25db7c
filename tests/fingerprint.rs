//! The committed fingerprinter on the fixtures: a reused clip is found at the right offset, the
//! Table 6 evaluation gives hit rates a random model cannot, and a tiny training run learns.

use std::path::{Path, PathBuf};

use aniprint::eval::{self, EvalOptions};
use aniprint::fingerprint::train::{self, Corpus, Kind, Source, TrainOptions};
use aniprint::fingerprint::{FingerprintConfig, Fingerprinter, ModelConfig};
use aniprint::index::{Hit, vote};
use aniprint::media::{DecodeOptions, decode};
use aniprint::progress::NoProgress;
use aniprint::units::SampleRate;
use candle_core::Device;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(p)
}

fn load_8k(p: &str) -> Vec<f32> {
    let opts = DecodeOptions { rate: SampleRate(8000), channels: 1, ..DecodeOptions::default() };
    decode(&fixture(p), &opts).expect("decode fixture")
}

/// Exact search of every query row against every reference row, top `k` as hits.
fn search(
    refs: &aniprint::fingerprint::Fingerprints,
    q: &aniprint::fingerprint::Fingerprints,
    k: usize,
) -> Vec<Vec<Hit>> {
    (0..q.len())
        .map(|i| {
            let mut sims: Vec<(usize, f32)> = (0..refs.len())
                .map(|j| (j, refs.row(j).iter().zip(q.row(i)).map(|(a, b)| a * b).sum()))
                .collect();
            sims.sort_by(|a, b| b.1.total_cmp(&a.1));
            sims.into_iter()
                .take(k)
                .map(|(j, s)| Hit {
                    item: j as u32,
                    piece: "ep02".into(),
                    segment: j as u32,
                    distance: (2.0 - 2.0 * s).max(0.0).sqrt(),
                })
                .collect()
        })
        .collect()
}

#[test]
fn committed_model_finds_a_reused_clip_at_the_right_offset() {
    let fp = Fingerprinter::load_default(&Device::Cpu).expect("the committed model loads");
    let refs = fp.fingerprint(&load_8k("episodes/ep02.mp4")).unwrap();
    // up01 35-47 s is ep02 100-112 s at -6 dB, re-encoded: take 5 s from its middle.
    let up = load_8k("uploads/up01.mp4");
    let clip = &up[37 * 8000..42 * 8000];
    let q = fp.fingerprint(clip).unwrap();
    let cands = vote(&search(&refs, &q, 10), 3);
    let best = cands.first().expect("a candidate");
    let offset_s = best.offset_segments as f64 * fp.config().hop_seconds().0;
    assert!((offset_s - 102.0).abs() <= 0.5, "found at {offset_s} s, expected 102 s");
}

/// An ensemble card loads its members from the folders beside it and puts their vectors side
/// by side: unit vectors whose similarities are the mean of the members', which place the
/// reused clip as the single model does.
#[test]
fn an_ensemble_card_is_its_members_side_by_side() {
    let models = aniprint::fingerprint::models_dir();
    let ens = Fingerprinter::load(&models.join("fingerprint-e3"), &Device::Cpu).unwrap();
    let first = Fingerprinter::load(&models.join("fingerprint-v10"), &Device::Cpu).unwrap();
    let second = Fingerprinter::load(&models.join("fingerprint-v11"), &Device::Cpu).unwrap();
    assert_eq!((ens.card().name.as_str(), ens.dim(), first.dim()), ("fingerprint-e3", 256, 128));
    let up = load_8k("uploads/up01.mp4");
    let clip = &up[37 * 8000..42 * 8000];
    let (e, a, b) = (
        ens.fingerprint(clip).unwrap(),
        first.fingerprint(clip).unwrap(),
        second.fingerprint(clip).unwrap(),
    );
    assert_eq!(e.len(), a.len());
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
    for i in 0..e.len() {
        assert!((dot(e.row(i), e.row(i)) - 1.0).abs() < 1e-4);
        let mean = (dot(a.row(0), a.row(i)) + dot(b.row(0), b.row(i))) / 2.0;
        assert!((dot(e.row(0), e.row(i)) - mean).abs() < 1e-4);
    }
    let refs = ens.fingerprint(&load_8k("episodes/ep02.mp4")).unwrap();
    let best = vote(&search(&refs, &e, 10), 3).into_iter().next().expect("a candidate");
    let offset_s = best.offset_segments as f64 * ens.config().hop_seconds().0;
    assert!((offset_s - 102.0).abs() <= 0.5, "found at {offset_s} s, expected 102 s");
}

fn small_eval(fp: &Fingerprinter) -> f64 {
    let rate = fp.config().rate();
    let refs = eval::sources_from_dir(&fixture("episodes"), rate, &NoProgress)
        .expect("decode the fixture episodes");
    // 1 s under every degradation at once: among 12 minutes of references, 3 s noisy queries
    // were easy enough that random weights placed up to 82% of them.
    let opts = EvalOptions {
        queries: 60,
        lengths: vec![1.0],
        conditions: vec!["all".into()],
        ..EvalOptions::default()
    };
    // Recorded noise from audio that is not among the references.
    let noise = eval::sources_from_dir(&fixture("plain"), rate, &NoProgress)
        .expect("decode the plain fixtures");
    let noise: Vec<_> = noise.iter().collect();
    let report =
        eval::evaluate(fp, &refs, &[], &noise, &opts, &NoProgress).expect("evaluation runs");
    report.rows[0].top1_exact
}

#[test]
fn eval_on_fixtures_beats_a_random_model() {
    let trained = Fingerprinter::load_default(&Device::Cpu).unwrap();
    let hit = small_eval(&trained);
    // The same architecture with random weights.
    let map = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&map, candle_core::DType::F32, &Device::Cpu);
    let card = trained.card().clone();
    let encoder = aniprint::fingerprint::Encoder::new(&card.config.model, vb).unwrap();
    reseed(&map, 20261128);
    let random = Fingerprinter::from_parts(card, encoder, Device::Cpu);
    let chance = small_eval(&random);
    eprintln!("top-1 at 1 s under all: trained {hit}%, random weights {chance}%");
    assert!(
        hit >= 60.0 && hit >= chance + 25.0,
        "trained model: top-1 {hit}% on 1 s fixture queries under all, random weights {chance}%"
    );
}

/// Top-10 scores ten answers however few candidates verification re-ranks: those past
/// `verify_candidates` follow in their voted order (before, Top-10 became Top-N).
#[test]
fn top_10_counts_ten_answers_with_fewer_verified() {
    let fp = Fingerprinter::load_default(&Device::Cpu).unwrap();
    let refs = eval::sources_from_dir(&fixture("episodes"), fp.config().rate(), &NoProgress)
        .expect("decode the fixture episodes");
    let run = |verify_candidates: usize| {
        // One clip copy on one reference grid: hard enough that Top-1 misses some (the
        // fixture references are few).
        let opts = EvalOptions {
            queries: 60,
            lengths: vec![1.0],
            conditions: vec!["all".into()],
            phases: 1,
            grids: 1,
            verify_candidates,
            ..EvalOptions::default()
        };
        let report = eval::evaluate(&fp, &refs, &[], &[], &opts, &NoProgress).unwrap();
        let r = &report.rows[0];
        (r.top1_exact, r.top10_exact)
    };
    let (_, ten) = run(10);
    let (one_top1, one_top10) = run(1);
    assert_eq!(one_top10, ten, "the same ten candidates, in another order");
    assert!(one_top10 > one_top1, "Top-10 {one_top10}% vs Top-1 {one_top1}% with one verified");
}

/// Candle's CPU initialisers draw from an unseeded generator: give every variable seeded
/// uniform values with its initialiser's mean and spread, so the baseline is the same each run.
fn reseed(map: &candle_nn::VarMap, seed: u64) {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let vars = map.data().lock().expect("the variables");
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let var = &vars[name];
        let values: Vec<f32> =
            var.flatten_all().and_then(|t| t.to_vec1()).expect("a variable's values");
        let n = values.len() as f32;
        let mean = values.iter().sum::<f32>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
        // Uniform on mean +- sqrt(3) std has that spread.
        let half = std * 3f32.sqrt();
        let fresh: Vec<f32> =
            (0..values.len()).map(|_| mean + half * rng.random_range(-1f32..1.0)).collect();
        let t = candle_core::Tensor::from_vec(fresh, var.shape(), &Device::Cpu).expect("a tensor");
        var.set(&t).expect("same shape");
    }
}

/// References on two grids (ingest stores four since session 14) place 1 s clips that the
/// plain grid leaves up to a quarter second off, through exact search and through arroy (one
/// index per grid, the per-grid second pass). Noise (synthetic here), reverb and MP3 together,
/// as Table 6's `all`: 84.7% on one grid, 97.3% on two when written.
#[test]
fn a_second_reference_grid_places_one_second_clips() {
    use aniprint::index::SearchKind;
    let fp = Fingerprinter::load_default(&Device::Cpu).unwrap();
    let refs = eval::sources_from_dir(&fixture("episodes"), fp.config().rate(), &NoProgress)
        .expect("decode the fixture episodes");
    let run = |grids: usize| {
        let opts = EvalOptions {
            queries: 150,
            lengths: vec![1.0],
            conditions: vec!["all".into()],
            search: vec![SearchKind::Exact, SearchKind::Ann],
            // One copy of the clip: only the reference grids bring a segment near it.
            phases: 1,
            grids,
            ..EvalOptions::default()
        };
        let report = eval::evaluate(&fp, &refs, &[], &[], &opts, &NoProgress).unwrap();
        (report.rows[0].top1_exact, report.rows[1].top1_exact, report.reference_segments)
    };
    let (one, one_ann, one_n) = run(1);
    let (two, two_ann, two_n) = run(2);
    assert!(two_n >= 2 * one_n - 6, "{two_n} segments on two grids, {one_n} on one");
    assert!(two >= one + 5.0 && two >= 85.0, "1 s under all: two grids {two}%, one grid {one}%");
    assert!(two_ann >= two - 5.0, "arroy {two_ann}% vs exact {two}% (one grid: {one_ann}%)");
}

#[test]
fn chromaprint_baseline_finds_clean_clips_and_scores_the_same_queries() {
    let rate = SampleRate(8000);
    let refs = eval::sources_from_dir(&fixture("episodes"), rate, &NoProgress)
        .expect("decode the fixture episodes");
    let opts = EvalOptions {
        queries: 20,
        lengths: vec![1.0, 5.0],
        conditions: vec!["clean".into()],
        ..EvalOptions::default()
    };
    let rows = eval::chromaprint::evaluate(&refs, &[], &[], &opts, 4000, &NoProgress)
        .expect("chromaprint evaluation runs");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.search == "chromaprint" && r.queries == 20));
    // A 1 s clip is shorter than a chromaprint word's context: no answer at all.
    assert_eq!(rows[0].top1_exact, 0.0, "{rows:?}");
    // Clean 5 s clips of three episodes are found where they were cut.
    assert!(rows[1].top1_exact >= 80.0, "{rows:?}");
}

fn tiny_corpus() -> Corpus {
    let rate = SampleRate(8000);
    let mk = |name: &str, kind: Kind| Source::uncoded(name, kind, rate, load_8k(name));
    Corpus {
        train: vec![mk("episodes/ep02.mp4", Kind::Music), mk("plain/speech.wav", Kind::Speech)],
        val: vec![mk("episodes/ep03.webm", Kind::Music)],
    }
}

#[test]
fn a_tiny_training_run_lowers_the_loss_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts =
        TrainOptions::new(dir.path().into(), dir.path().join("state"), dir.path().join("model"));
    opts.fingerprint = FingerprintConfig {
        model: ModelConfig {
            channels: vec![8, 16, 16, 32, 32, 32, 64, 64],
            dim: 16,
            head_hidden: 8,
            ..ModelConfig::default()
        },
        ..FingerprintConfig::default()
    };
    opts.steps = 30;
    opts.batch_pairs = 16;
    opts.warmup = 5;
    opts.lr = 3e-3;
    opts.checkpoint_every = 10;
    opts.val_every = 1000;
    let corpus = tiny_corpus();
    let state = train::train(&opts, &corpus, &NoProgress).unwrap();
    let log = std::fs::read_to_string(dir.path().join("state/log.csv")).unwrap();
    let losses: Vec<f64> = log.lines().filter_map(|l| l.split(',').nth(1)?.parse().ok()).collect();
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(last < first - 0.1, "loss went {first:.3} -> {last:.3}");
    assert!(dir.path().join("model/weights.safetensors").is_file());
    let card = std::fs::read_to_string(dir.path().join("model/card.toml")).unwrap();
    assert!(card.contains("val_top1_1s_noise_reverb_mp3"), "{card}");
    // Resuming a finished run does nothing more and reports the same state.
    let again = train::train(&opts, &corpus, &NoProgress).unwrap();
    assert_eq!(again.step, state.step);

    // A run cancelled between checkpoints keeps its steps and resumes to the same weights,
    // with and without a cross-batch memory (which the checkpoint must carry).
    let uninterrupted = tempfile::tempdir().unwrap();
    for memory in [0, 48] {
        let same = if memory == 0 {
            opts.out.clone()
        } else {
            let d = uninterrupted.path();
            let o = TrainOptions {
                memory,
                state: d.join("state"),
                out: d.join("model"),
                ..opts.clone()
            };
            train::train(&o, &corpus, &NoProgress).unwrap();
            o.out
        };
        let dir2 = tempfile::tempdir().unwrap();
        let mut opts2 = TrainOptions { memory, ..opts.clone() };
        (opts2.state, opts2.out) = (dir2.path().join("state"), dir2.path().join("model"));
        let stop = StopAfter(13, 0.into());
        assert!(matches!(train::train(&opts2, &corpus, &stop), Err(aniprint::Error::Cancelled)));
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(opts2.state.join("state.json")).unwrap())
                .unwrap();
        assert_eq!(saved["step"], 13);
        assert_eq!(train::train(&opts2, &corpus, &NoProgress).unwrap().step, 30);
        let dev = Device::Cpu;
        let a = candle_core::safetensors::load(same.join("weights.safetensors"), &dev).unwrap();
        let b =
            candle_core::safetensors::load(opts2.out.join("weights.safetensors"), &dev).unwrap();
        for (name, ta) in &a {
            let d = (ta - &b[name]).unwrap().abs().unwrap().max_all().unwrap();
            assert!(
                d.to_scalar::<f32>().unwrap() < 1e-6,
                "{name} differs after resume (memory {memory})"
            );
        }
    }

    // Fine-tuning starts from the trained weights: its first loss is the trained model's.
    let dir3 = tempfile::tempdir().unwrap();
    let mut opts3 = opts.clone();
    (opts3.state, opts3.out, opts3.steps) = (dir3.path().join("state"), dir3.path().join("m"), 1);
    opts3.init = Some(opts.out.clone());
    train::train(&opts3, &corpus, &NoProgress).unwrap();
    let log = std::fs::read_to_string(opts3.state.join("log.csv")).unwrap();
    let tuned: f64 = log.lines().next().and_then(|l| l.split(',').nth(1)?.parse().ok()).unwrap();
    assert!(tuned < losses[0] - 0.1, "fine-tune starts at {tuned:.3}, scratch at {:.3}", losses[0]);
    // A model of another shape is refused, naming its card.
    let mut other = opts3.clone();
    other.state = dir3.path().join("state2");
    other.fingerprint.model.dim = 32;
    let err = train::train(&other, &corpus, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("card.toml"), "{err}");
}

#[test]
fn table6_validation_scores_a_run_and_names_itself_in_the_card() {
    use aniprint::fingerprint::train::Validator;
    let corpus = tiny_corpus();
    // Queries from ep03 (held out), searched among it; ep02 and the speech give recorded noise.
    let v = eval::Table6Validation::new(&corpus, SampleRate(8000), 0.0, 30, vec![3.0]);
    assert!(v.describe().contains("30 queries"), "{}", v.describe());
    let trained = Fingerprinter::load_default(&Device::Cpu).unwrap();
    let hit = v.score(&trained).unwrap();
    assert!(hit > 0.3, "the committed model scores {hit}");

    // A tiny run scored by it records the score under the validator's own key.
    let dir = tempfile::tempdir().unwrap();
    let mut opts =
        TrainOptions::new(dir.path().into(), dir.path().join("state"), dir.path().join("model"));
    opts.fingerprint.model = ModelConfig {
        channels: vec![8, 8, 8, 8, 8, 8, 16, 16],
        dim: 16,
        head_hidden: 8,
        ..ModelConfig::default()
    };
    (opts.steps, opts.batch_pairs, opts.warmup, opts.val_every) = (4, 8, 1, 2);
    let state = train::train_validated(&opts, &corpus, &NoProgress, &v).unwrap();
    assert_eq!(state.history.len(), 2);
    assert!(state.history.iter().all(|&(_, h)| (0.0..=1.0).contains(&h)));
    let card = std::fs::read_to_string(dir.path().join("model/card.toml")).unwrap();
    assert!(card.contains("val_table6_all_top1_mean"), "{card}");
    assert!(card.contains("--val table6 --val-queries 30"), "{card}");
    assert!(!card.contains("val_top1_1s_noise_reverb_mp3"), "{card}");
    // Resuming that state with another validation or model shape is refused, naming the flag.
    opts.steps = 6;
    let err = train::train(&opts, &corpus, &NoProgress).unwrap_err().to_string();
    assert!(err.contains("run.toml") && err.contains("--val"), "{err}");
    let mut other = opts.clone();
    other.fingerprint.model.head_hidden = 4;
    let err = train::train_validated(&other, &corpus, &NoProgress, &v).unwrap_err().to_string();
    assert!(err.contains("--config") && !err.contains("--val"), "{err}");
}

/// Cancels once `.0` steps are done.
struct StopAfter(u64, std::sync::atomic::AtomicU64);

impl aniprint::progress::Progress for StopAfter {
    fn advance(&self, n: u64) {
        self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn is_cancelled(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::Relaxed) >= self.0
    }
}
