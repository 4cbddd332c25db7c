//! `aniprint train fingerprint`: train (or resume training) a model from the Debian corpus.

use std::path::PathBuf;

use aniprint::eval;
use aniprint::fingerprint::default_training_dir;
use aniprint::fingerprint::train::{self, TrainOptions};
use aniprint::progress::{Progress, Stage};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Ctx, Outcome};

/// Which model to train.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The contrastive fingerprinter (NT-Xent on clean/degraded pairs).
    Fingerprint(FingerprintArgs),
    /// The voice/background separator (U-Net + ECA, L1 loss on masked magnitudes).
    Separator(super::separate::TrainArgs),
}

/// Where a model trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainDevice {
    /// This machine's CPU cores.
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// The `--device` flag both trainers take, with `--cuda` as its older spelling.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct DeviceArgs {
    /// Where to train: `cpu`, or `cuda` (needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value_t = TrainDevice::Cpu)]
    device: TrainDevice,
    /// The same as `--device cuda`.
    #[arg(long, hide = true, conflicts_with = "device")]
    cuda: bool,
}

impl DeviceArgs {
    /// Whether training runs on CUDA; refused at once (before the corpus loads) when this
    /// build has no CUDA support.
    pub fn cuda(self) -> anyhow::Result<bool> {
        let cuda = self.cuda || self.device == TrainDevice::Cuda;
        if cuda && !cfg!(feature = "cuda") {
            anyhow::bail!(
                "--device cuda: this build has no CUDA support (build with --features cuda)"
            );
        }
        Ok(cuda)
    }
}

/// Options of `train fingerprint`.
#[derive(Debug, clap::Args)]
pub struct FingerprintArgs {
    /// The corpus made by ../shared/data/fetch_training_audio.sh.
    #[arg(long, default_value = "../data/corpus")]
    corpus: PathBuf,
    /// Checkpoints, decoded-audio cache and log; a run finding a checkpoint here resumes it.
    #[arg(long, default_value = "../train-state/fingerprint")]
    state: PathBuf,
    /// Decoded-audio cache (default: `cache` inside --state).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Where the finished model goes (default: the default model's folder in models/; for
    /// the default ensemble, its first member's, fingerprint-v10).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Optimiser steps (the default and the next option's are fingerprint-v10's, so a bare run
    /// retrains the default ensemble's first member, which it replaces without --out).
    #[arg(long, default_value_t = 10_000)]
    steps: usize,
    /// (anchor, positive) pairs per step.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Seed for initialisation and every batch.
    #[arg(long, default_value_t = 20_261_126)]
    seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// Steps between validation runs.
    #[arg(long, default_value_t = 250)]
    val_every: usize,
    /// Length of the learning-rate schedule if longer than --steps (as `train separator`).
    #[arg(long)]
    schedule_steps: Option<usize>,
    /// Cross-batch memory: embeddings of this many earlier rows join each step's negatives
    /// (0: only the batch's own). Meant for fine-tuning (--init): embeddings drift fast early
    /// in a run from scratch, and stored ones then stop resembling the model's.
    #[arg(long, default_value_t = 0)]
    memory: usize,
    /// Draw pairs in groups of this many from one source, within --group-window-s of each
    /// other, so a phrase and its near-repeats are each other's negatives (a negative of the
    /// batch holding the anchor's own audio, a loop or an overlap, is left out of the loss);
    /// 0: each pair on its own.
    #[arg(long, default_value_t = 0)]
    group: usize,
    /// See --group, seconds.
    #[arg(long, default_value_t = 32.0)]
    group_window_s: f32,
    /// Fine-tune: start from this model folder's weights (same config) instead of random ones.
    #[arg(long, value_name = "DIR")]
    init: Option<PathBuf>,
    /// Largest time shift of a positive against its anchor, seconds (either way; default
    /// 0.2, or the --degrade file's). Queries fall up to half a hop (0.25 s) from the nearest
    /// indexed segment.
    #[arg(long)]
    max_shift_s: Option<f32>,
    /// The positives' degradation recipe as TOML (fields of `Degrade`: p_noise, snr_db = [lo,
    /// hi], p_reverb, rt60_s, p_codec, p_leak, leak_snr_db, p_band, gain_db, max_shift_s; or a
    /// model card with a [training.degrade] table); fields left out keep the default's.
    #[arg(long, value_name = "FILE")]
    degrade: Option<PathBuf>,
    /// The model to train as TOML (a model card, its `[config]` table or any part of it, e.g.
    /// `[mel] n_mels = 128` or `[model] channels = [...]`); left out: the default model's.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// What the run is scored by every --val-every steps: `builtin` (400 degraded 1 s queries
    /// among 600 s of held-out audio, a second each) or `table6` (`eval fingerprint`'s Table 6
    /// under `all` at 1 and 3 s among 5.3 h of reference, what the targets are judged on; ~30 s
    /// each on 2 cores).
    #[arg(long, value_enum, default_value_t = ValKind::Builtin)]
    val: ValKind,
    /// Queries per length of `--val table6` (default 500).
    #[arg(long)]
    val_queries: Option<usize>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The trainer's validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ValKind {
    Builtin,
    Table6,
}

/// Run `train`.
pub fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let a = match cmd {
        Command::Fingerprint(a) => a,
        Command::Separator(a) => return super::separate::train(a, ctx),
    };
    if a.val == ValKind::Builtin && a.val_queries.is_some() {
        anyhow::bail!("--val-queries is for --val table6");
    }
    let replaces_default = a.out.is_none();
    let out = match a.out {
        Some(out) => out,
        None => default_training_dir()?,
    };
    super::interrupt::install("training", "step");
    let mut opts = TrainOptions::new(a.corpus, a.state, out);
    if let Some(cache) = a.cache {
        opts.cache = cache;
    }
    opts.steps = a.steps;
    opts.batch_pairs = a.batch;
    opts.lr = a.lr;
    opts.seed = a.seed;
    opts.checkpoint_every = a.checkpoint_every;
    opts.val_every = a.val_every;
    opts.cuda = a.device.cuda()?;
    opts.schedule_steps = a.schedule_steps;
    opts.memory = a.memory;
    opts.group = a.group;
    opts.group_window_s = a.group_window_s;
    opts.init = a.init;
    if let Some(file) = &a.config {
        opts.fingerprint = aniprint::fingerprint::FingerprintConfig::from_file(file)?;
    }
    if let Some(file) = &a.degrade {
        opts.degrade = train::Degrade::from_file(file)?;
    }
    if replaces_default {
        // Without --out the run replaces an installed model: one of another shape would leave
        // the default ensemble unloadable (its config must be its first member's).
        if let Ok(card) = aniprint::fingerprint::read_card(&opts.out)
            && card.config != opts.fingerprint
        {
            anyhow::bail!(
                "this run's config differs from {}'s, which it would replace: give --out",
                opts.out.display()
            );
        }
    }
    if let Some(shift) = a.max_shift_s {
        opts.degrade.max_shift_s = shift;
        opts.degrade.validate().map_err(|e| anyhow::anyhow!("--max-shift-s: {e}"))?;
    }
    let bar = ctx.multi.add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10.bold} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise} eta {eta} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let sink = BarSink(bar.clone());
    let corpus = train::load_corpus(
        &opts.corpus,
        &opts.cache,
        opts.fingerprint.rate(),
        &opts.val_packages,
        &sink,
    )?;
    let rate = opts.fingerprint.rate();
    tracing::info!(
        "corpus: {} training packages ({:.1} h), {} held out ({:.1} h)",
        corpus.train.len(),
        train::Corpus::seconds(&corpus.train, rate) / 3600.0,
        corpus.val.len(),
        train::Corpus::seconds(&corpus.val, rate) / 3600.0
    );
    bar.set_position(0);
    let state = match a.val {
        ValKind::Builtin => train::train(&opts, &corpus, &sink)?,
        ValKind::Table6 => {
            let hours = eval::DEFAULT_DISTRACTOR_HOURS;
            let v = eval::Table6Validation::new(
                &corpus,
                rate,
                hours,
                a.val_queries.unwrap_or(500),
                vec![1.0, 3.0],
            );
            train::train_validated(&opts, &corpus, &sink, &v)?
        }
    };
    bar.finish_and_clear();
    if !ctx.quiet {
        println!(
            "trained {} steps in {:.0} s: loss {:.3}, validation top-1 {:.1}% -> {}",
            state.step,
            state.elapsed_s,
            state.loss,
            100.0 * state.val_top1,
            opts.out.display()
        );
    }
    Ok(Outcome::Ok)
}

/// A progress sink drawing one bar with a message (training and evaluation).
pub struct BarSink(pub ProgressBar);

impl Progress for BarSink {
    fn stage(&self, stage: Stage) {
        self.0.set_prefix(stage.label());
    }
    fn set_total(&self, total: u64) {
        self.0.set_length(total);
        self.0.set_position(0);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn message(&self, msg: &str) {
        self.0.set_message(msg.to_string());
        if self.0.is_hidden() && self.0.position().is_multiple_of(25) {
            eprintln!("step {}/{} {msg}", self.0.position(), self.0.length().unwrap_or(0));
        }
    }
    fn is_cancelled(&self) -> bool {
        super::interrupt::requested()
    }
}
