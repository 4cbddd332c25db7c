//! `aniprint separate`: split media files into voice and background stems; also the CLI of
//! `train separator` and `eval separator`, and the default stem splitter for ingest and scan.

use std::path::PathBuf;
use std::time::Instant;

use aniprint::analyze::StemSplitter;
use aniprint::media::write::AudioFormat;
use aniprint::progress::Progress;
use aniprint::separate::{DEFAULT_MODEL, Separator};
use candle_core::Device;

use super::bars::Bars;
use super::train::BarSink;
use super::{Ctx, Outcome};

/// The default separator, or `None` when no separator model is installed.
pub fn default_separator() -> anyhow::Result<Option<Separator>> {
    let dir = aniprint::fingerprint::models_dir().join(DEFAULT_MODEL);
    if !dir.join("card.toml").is_file() || !dir.join("weights.safetensors").is_file() {
        return Ok(None);
    }
    Ok(Some(Separator::load(&dir, &Device::Cpu)?))
}

/// [`default_separator`] as a stem splitter.
pub fn default_splitter() -> anyhow::Result<Option<Box<dyn StemSplitter>>> {
    Ok(default_separator()?.map(|s| Box::new(s) as Box<dyn StemSplitter>))
}

/// Arguments of `aniprint separate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Media files to separate (anything aniprint decodes; any length).
    #[arg(required = true, value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Folder for the stems, written as `<name>.voice.<ext>` and `<name>.background.<ext>`,
    /// `<name>` being the file name without its extension (the whole file name, then `-2`,
    /// `-3`..., when an earlier input of the batch took it).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AudioFormat::Wav)]
    format: AudioFormat,
    /// Model directory (default: models/separator-v2 in this source tree, or $ANIPRINT_MODELS).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

/// Separate each input; a file that fails is reported and the others still run.
pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let dir = args.model.unwrap_or_else(|| aniprint::fingerprint::models_dir().join(DEFAULT_MODEL));
    let sep = Separator::load(&dir, &Device::Cpu)?;
    std::fs::create_dir_all(&args.out)?;
    // A files bar and, under it, the current file's samples: an episode takes tens of
    // seconds, and the bar moves with each chunk the network finishes.
    let bars = Bars::new(&ctx.multi, args.inputs.len() as u64, "files", false);
    super::interrupt::install("the separation", "chunk");
    let mut failed = 0;
    let mut done = 0;
    let mut namer = aniprint::separate::StemNamer::default();
    for input in &args.inputs {
        bars.item(&input.to_string_lossy());
        let started = Instant::now();
        let result = aniprint::separate::separate_file(
            &sep,
            input,
            &args.out,
            &namer.name(input),
            args.format,
            &bars,
        );
        bars.done(1);
        match result {
            Ok(aniprint::separate::StemFiles { seconds, voice: v, background: b }) => {
                done += 1;
                if !ctx.quiet {
                    let wall = started.elapsed().as_secs_f64();
                    ctx.multi.suspend(|| {
                        println!(
                            "{}: {seconds:.1} s in {wall:.1} s ({:.0}x real time) -> {}, {}",
                            input.display(),
                            seconds / wall.max(1e-9),
                            v.display(),
                            b.display()
                        )
                    });
                }
            }
            Err(aniprint::Error::Cancelled) => {
                // Stems are written whole or not at all, so what is in --out is finished.
                bars.finish();
                eprintln!(
                    "aniprint: stopped; {done} of {} file(s) separated into {} ({failed} failed), \
                     the rest not started",
                    args.inputs.len(),
                    args.out.display()
                );
                return Ok(Outcome::Stopped);
            }
            Err(e) => {
                failed += 1;
                ctx.multi.suspend(|| eprintln!("{}: {e:#}", input.display()));
            }
        }
    }
    bars.finish();
    Ok(if failed == 0 { Outcome::Ok } else { Outcome::Partial })
}

/// Options of `train separator`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The corpus made by ../shared/data/fetch_training_audio.sh.
    #[arg(long, default_value = "../data/corpus")]
    corpus: PathBuf,
    /// Decoded-audio cache (the fingerprinter's 8 kHz cache serves an 8 kHz model as is).
    #[arg(long, default_value = "../train-state/fp-probe/cache")]
    cache: PathBuf,
    /// Checkpoints and log; a run finding a checkpoint here resumes it.
    #[arg(long, default_value = "../train-state/separator")]
    state: PathBuf,
    /// Where the finished model goes (default: models/separator-v2 in this source tree).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Optimiser steps: the run stops and writes the model here (a later run with more steps
    /// resumes from the checkpoint).
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Length of the learning-rate schedule if longer than --steps: stop a long run early with
    /// a usable model and resume it later on the same schedule.
    #[arg(long, value_name = "N")]
    schedule_steps: Option<usize>,
    /// Patches (4.1 s mixtures) per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Peak learning rate (linear warm-up, cosine decay).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Seed for initialisation and every batch.
    #[arg(long, default_value_t = 20_261_126)]
    seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 50)]
    checkpoint_every: usize,
    /// Steps between validation runs (mean SDR on held-out mixtures).
    #[arg(long, default_value_t = 200)]
    val_every: usize,
    /// Channels of the five encoder levels.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    channels: Vec<usize>,
    /// Ablation: no Efficient Channel Attention.
    #[arg(long)]
    no_eca: bool,
    /// Normalisation (batch: the ablation).
    #[arg(long, default_value = "group", value_parser = ["group", "batch"])]
    norm: String,
    /// Loss on masked magnitudes (l2: the ablation).
    #[arg(long, default_value = "l1", value_parser = ["l1", "l2"])]
    loss: String,
    #[command(flatten)]
    device: super::train::DeviceArgs,
}

/// Run `train separator`.
pub fn train(a: TrainArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    use aniprint::fingerprint::train::{Corpus, load_corpus};
    use aniprint::separate::train::{self as st, TrainOptions};
    use aniprint::separate::{LossKind, NormKind};
    let out = a.out.unwrap_or_else(|| aniprint::fingerprint::models_dir().join(DEFAULT_MODEL));
    super::interrupt::install("training", "step");
    let mut opts = TrainOptions::new(a.corpus, a.state, out);
    opts.cache = a.cache;
    opts.steps = a.steps;
    opts.schedule_steps = a.schedule_steps;
    opts.batch = a.batch;
    opts.lr = a.lr;
    opts.seed = a.seed;
    opts.checkpoint_every = a.checkpoint_every;
    opts.val_every = a.val_every;
    opts.cuda = a.device.cuda()?;
    opts.config.channels = a.channels;
    opts.config.eca = !a.no_eca;
    opts.config.norm = if a.norm == "batch" { NormKind::Batch } else { NormKind::Group };
    opts.config.loss = if a.loss == "l2" { LossKind::L2 } else { LossKind::L1 };
    opts.config.validate().map_err(|e| anyhow::anyhow!("model config: {e}"))?;
    let bar = ctx.multi.add(indicatif::ProgressBar::new(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>10.bold} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise} eta {eta} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let sink = BarSink(bar.clone());
    let rate = opts.rate();
    let corpus = load_corpus(&opts.corpus, &opts.cache, rate, &opts.val_packages, &sink)?;
    tracing::info!(
        "corpus: {} training packages ({:.1} h), {} held out ({:.1} h)",
        corpus.train.len(),
        Corpus::seconds(&corpus.train, rate) / 3600.0,
        corpus.val.len(),
        Corpus::seconds(&corpus.val, rate) / 3600.0
    );
    bar.set_position(0);
    let state = st::train(&opts, &corpus, &sink)?;
    bar.finish_and_clear();
    if !ctx.quiet {
        println!(
            "trained {} steps in {:.0} s: loss {:.4}, validation SDR {:.2} dB -> {}",
            state.step,
            state.elapsed_s,
            state.loss,
            state.val_sdr,
            opts.out.display()
        );
    }
    Ok(Outcome::Ok)
}

/// Options of `eval separator`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Folder of items, one sub-folder each with mixture, voice and background audio files.
    #[arg(long, conflicts_with = "corpus", required_unless_present = "corpus")]
    mixtures: Option<PathBuf>,
    /// Or the training corpus: mixtures are built from its held-out packages only.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Decoded-audio cache for --corpus (shared with training).
    #[arg(long, default_value = "../train-state/fp-probe/cache")]
    cache: PathBuf,
    /// With --corpus: number of mixtures.
    #[arg(long, default_value_t = 50)]
    items: usize,
    /// With --corpus: seconds per mixture.
    #[arg(long, default_value_t = 25.0)]
    seconds: f32,
    /// With --corpus: voice-to-background ratio range in dB, `LOW,HIGH`.
    #[arg(long, value_delimiter = ',', default_value = "-5,5", allow_hyphen_values = true)]
    vbr_db: Vec<f32>,
    /// With --corpus: seed for the mixtures.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Model directory; repeat to compare models (default: the committed model).
    #[arg(long, value_name = "DIR")]
    model: Vec<PathBuf>,
    /// The paper's ablation in small: compare the full model with its ECA-off, BatchNorm and L2
    /// variants (each trained separately with `train separator --no-eca | --norm batch |
    /// --loss l2 --out models/separator-v2-<variant>`); without --model, evaluates those of
    /// models/separator-v2{,-no-eca,-batchnorm,-l2} that exist.
    #[arg(long)]
    ablation: bool,
    /// Also write the items as DIR/<item>/{mixture,voice,background}.wav, for another separator
    /// to run on (see scripts/spleeter_baseline.py).
    #[arg(long, value_name = "DIR")]
    dump: Option<PathBuf>,
    /// Score another separator's output beside the models: DIR/<item>/{voice,background}.<audio>
    /// for every item (the items --dump wrote); the method is named after DIR. Repeatable.
    #[arg(long, value_name = "DIR")]
    estimates: Vec<PathBuf>,
    /// Write the first model's figures into its card.toml under [metrics.eval].
    #[arg(long)]
    update_card: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Run `eval separator`.
pub fn eval(a: EvalArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    use aniprint::fingerprint::train::{DEFAULT_VAL_PACKAGES, load_corpus};
    use aniprint::separate::eval as se;
    let models_dir = aniprint::fingerprint::models_dir();
    let dirs: Vec<PathBuf> = if !a.model.is_empty() {
        a.model.clone()
    } else if a.ablation {
        ["", "-no-eca", "-batchnorm", "-l2"]
            .iter()
            .map(|v| models_dir.join(format!("{DEFAULT_MODEL}{v}")))
            .filter(|d| d.join("card.toml").is_file())
            .collect()
    } else {
        vec![models_dir.join(DEFAULT_MODEL)]
    };
    if dirs.is_empty() {
        anyhow::bail!("no separator models found under {}", models_dir.display());
    }
    // Checked before any model or audio is loaded.
    let vbr = match a.vbr_db.as_slice() {
        [lo, hi] => (*lo, *hi),
        [x] => (*x, *x),
        _ => anyhow::bail!("--vbr-db takes LOW,HIGH"),
    };
    if !(vbr.0.is_finite() && vbr.1.is_finite() && vbr.0 <= vbr.1) {
        anyhow::bail!("--vbr-db takes LOW,HIGH in dB with LOW <= HIGH, not {},{}", vbr.0, vbr.1);
    }
    let seps: Vec<Separator> =
        dirs.iter().map(|d| Separator::load(d, &Device::Cpu)).collect::<Result<_, _>>()?;
    let rate = seps[0].rate();
    let bar = super::eval::eval_bar(ctx);
    let sink = BarSink(bar.clone());
    let items = match (&a.mixtures, &a.corpus) {
        (Some(dir), _) => se::items_from_dir(dir, rate, &sink)?,
        (None, Some(corpus)) => {
            let val: Vec<String> = DEFAULT_VAL_PACKAGES.iter().map(|s| s.to_string()).collect();
            let c = load_corpus(corpus, &a.cache, rate, &val, &sink)?;
            se::corpus_items(&c.val, a.items, a.seconds, rate, a.seed, vbr)
        }
        (None, None) => anyhow::bail!("give --mixtures DIR or --corpus DIR"),
    };
    if items.is_empty() {
        anyhow::bail!("no evaluation items (the held-out packages need speech and music)");
    }
    let names: Vec<String> = dirs
        .iter()
        .map(|d| d.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    let models: Vec<(String, &Separator)> = names.iter().cloned().zip(seps.iter()).collect();
    if let Some(dir) = &a.dump {
        se::dump_items(&items, dir, rate)?;
    }
    let mut report = se::evaluate(&models, &items, true, &sink)?;
    for dir in &a.estimates {
        let name = dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |s| s.to_string_lossy().into_owned());
        report.methods.push(se::score_estimates(&name, &items, dir, rate, &sink)?);
    }
    bar.finish_and_clear();
    if a.update_card
        && let Some(metrics) = report.card_metrics(&names[0])
    {
        let mut card = seps[0].card().clone();
        let entry = card
            .provenance
            .entry("metrics")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = entry {
            t.insert("eval".into(), toml::Value::Table(metrics));
        }
        aniprint::separate::train::write_card(&card, &dirs[0])?;
    }
    if a.json {
        super::print_json(&report)?;
    } else {
        print!("{}", report.table());
    }
    Ok(Outcome::Ok)
}
