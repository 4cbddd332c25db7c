//! `aniprint eval fingerprint`: the paper's Table 6 for a model; `eval stems`: what separation
//! buys retrieval; `eval separator` lives with the separator's CLI.

use std::path::PathBuf;

use aniprint::eval::{self, EvalOptions};
use aniprint::fingerprint::train::{self, DEFAULT_VAL_PACKAGES};
use aniprint::fingerprint::{DEFAULT_MODEL, Fingerprinter, models_dir};
use aniprint::index::{IndexOptions, Precision, Retry, SearchKind};
use candle_core::Device;

use super::train::BarSink;
use super::{Ctx, Outcome, print_json};

/// Which model to evaluate.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Hit rates of the fingerprinter on degraded queries (Top-1/3/10, exact and near).
    Fingerprint(FingerprintArgs),
    /// SDR/SIR of the separator beside the mixture and Ideal Ratio Mask baselines.
    Separator(super::separate::EvalArgs),
    /// Top-1 of reused dialogue under new music (and music under new dialogue): mix alone vs
    /// stems, with the installed (or given) separator.
    Stems(StemsArgs),
}

/// Options of `eval stems`.
#[derive(Debug, clap::Args)]
pub struct StemsArgs {
    /// The training corpus: references and queries come from its held-out packages only.
    #[arg(long)]
    corpus: PathBuf,
    /// Decoded-audio cache (shared with training).
    #[arg(long, default_value = "../train-state/fingerprint/cache")]
    cache: PathBuf,
    /// Separator model directory (default: the installed one).
    #[arg(long)]
    separator: Option<PathBuf>,
    /// Reference episodes (dialogue over music).
    #[arg(long, default_value_t = 60)]
    references: usize,
    /// Seconds per reference episode.
    #[arg(long, default_value_t = 60.0)]
    reference_s: f32,
    /// Queries per scenario and length.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Query lengths in seconds.
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    lengths: Vec<f32>,
    /// Query phases (as `eval fingerprint --phases`).
    #[arg(long, default_value_t = 4)]
    phases: usize,
    /// Reference grids (as `ingest --grids`).
    #[arg(long, default_value_t = aniprint::analyze::REFERENCE_GRIDS)]
    grids: usize,
    /// Seed for references and queries.
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Options of `eval fingerprint`.
#[derive(Debug, clap::Args)]
pub struct FingerprintArgs {
    /// A folder of reference audio (any media); queries are cut from it.
    #[arg(long, conflicts_with = "corpus", required_unless_present = "corpus")]
    refs: Option<PathBuf>,
    /// Or the training corpus: queries come from its held-out packages only.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// With --corpus: hours of training packages added to the index as distractors.
    #[arg(long, default_value_t = eval::DEFAULT_DISTRACTOR_HOURS)]
    distractor_hours: f64,
    /// Decoded-audio cache for --corpus (shared with training).
    #[arg(long, default_value = "../train-state/fingerprint/cache")]
    cache: PathBuf,
    /// Model directory (default: the committed model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Queries per length and condition.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Query lengths in seconds.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5")]
    lengths: Vec<f32>,
    /// Conditions: all (noise 0-10 dB + reverb + MP3), noise, reverb, codec, clean.
    #[arg(long, value_delimiter = ',', default_value = "all,noise,reverb,codec,clean")]
    conditions: Vec<String>,
    /// Seed for query positions and degradations.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Searches to score over the same queries: exact (flat L2), ann (arroy), or both.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "exact")]
    search: Vec<SearchKind>,
    /// arroy search_k (candidates examined per query segment) for --search ann.
    #[arg(long)]
    search_k: Option<usize>,
    /// arroy trees for --search ann (default: arroy's choice for the index size).
    #[arg(long)]
    n_trees: Option<usize>,
    /// Second-pass search_k for --search ann (0: no second pass).
    #[arg(long)]
    retry_search_k: Option<usize>,
    /// With --retry far: the distance over which a query segment gets the second pass.
    #[arg(long)]
    retry_distance: Option<f32>,
    /// Which segments get the second pass: in a query whose vote is not settled, those off its
    /// best alignment; or each one whose nearest first-pass candidate is farther than
    /// --retry-distance.
    #[arg(long, value_enum, default_value_t = Retry::default())]
    retry: Retry,
    /// Share of a query's segments that must agree for it to be settled (--retry unsettled).
    #[arg(long)]
    settled_share: Option<f32>,
    /// How the reference index stores its vectors (f16: as ingest stores them; f32: as
    /// catalogs from before half floats do).
    #[arg(long, value_enum, default_value_t = IndexOptions::default().precision)]
    precision: Precision,
    /// Query phases: also fingerprint each query shifted by k/N of a hop (a clip too short for
    /// that: up to half a hop either way, padded with silence), best alignment wins.
    #[arg(long, default_value_t = 1)]
    phases: usize,
    /// Reference grids per hop, as `ingest --grids` stores them (4: a segment every quarter
    /// hop; 1: the plain grid alone); queries keep the model's hop.
    #[arg(long, default_value_t = EvalOptions::default().grids)]
    grids: usize,
    /// A second model (same segment and hop) whose fingerprints stand beside --model's: each
    /// similarity is the mean of the two models' (a two-model ensemble).
    #[arg(long, value_name = "DIR")]
    ensemble: Option<PathBuf>,
    /// Nearest stored segments per query segment fed to voting.
    #[arg(long, default_value_t = EvalOptions::default().top_k)]
    top_k: usize,
    /// Voted alignments per query that verification re-ranks.
    #[arg(long, default_value_t = EvalOptions::default().verify_candidates)]
    verify_candidates: usize,
    /// Rank the voted alignments as voting left them, without checking every aligned segment
    /// against the reference (what `query` does; for comparison).
    #[arg(long)]
    no_verify: bool,
    /// Segment hop in seconds for references and queries (default: the model's, 0.5 s).
    #[arg(long)]
    hop_s: Option<f64>,
    /// Also score a competitor on the same queries: chromaprint (AcoustID's fingerprinter,
    /// what `fpcalc` computes), placed by exhaustive bit-error alignment.
    #[arg(long, value_enum, value_delimiter = ',')]
    baseline: Vec<Baseline>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Competitors `eval fingerprint --baseline` scores beside the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// Chromaprint (rusty-chromaprint, the `fpcalc` preset).
    Chromaprint,
}

/// Run `eval`.
pub fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let a = match cmd {
        Command::Fingerprint(a) => a,
        Command::Separator(a) => return super::separate::eval(a, ctx),
        Command::Stems(a) => return stems(a, ctx),
    };
    // Before hours of fingerprinting: a misspelt condition would only fail when its turn came.
    for c in &a.conditions {
        eval::condition(c)?;
    }
    let dir = a.model.unwrap_or_else(|| models_dir().join(DEFAULT_MODEL));
    let mut fp = Fingerprinter::load(&dir, &Device::Cpu)?;
    if let Some(other) = &a.ensemble {
        fp = fp.with_member(Fingerprinter::load(other, &Device::Cpu)?)?;
    }
    if let Some(h) = a.hop_s {
        let hop = (h * f64::from(fp.config().rate().0)).round() as usize;
        fp = fp.with_hop(hop)?;
    }
    let rate = fp.config().rate();
    let bar = eval_bar(ctx);
    let sink = BarSink(bar.clone());
    // Recorded noise comes from training packages outside the reference; with --refs there
    // are none, and the noise is synthetic (coloured) only.
    let (queries_from, train_pool) = match (a.refs, a.corpus) {
        (Some(refs), _) => (eval::sources_from_dir(&refs, rate, &sink)?, Vec::new()),
        (None, Some(corpus)) => {
            let val: Vec<String> = DEFAULT_VAL_PACKAGES.iter().map(|s| s.to_string()).collect();
            let c = train::load_corpus(&corpus, &a.cache, rate, &val, &sink)?;
            (c.val, c.train)
        }
        (None, None) => anyhow::bail!("give --refs DIR or --corpus DIR"),
    };
    let (distractors, noise) = eval::split_distractors(&train_pool, a.distractor_hours, rate);
    let opts = EvalOptions {
        queries: a.queries,
        lengths: a.lengths,
        conditions: a.conditions,
        seed: a.seed,
        search: a.search,
        phases: a.phases,
        grids: a.grids,
        top_k: a.top_k,
        verify: !a.no_verify,
        verify_candidates: a.verify_candidates,
        index: IndexOptions {
            search_k: a.search_k.unwrap_or(IndexOptions::default().search_k),
            n_trees: a.n_trees,
            retry_search_k: a.retry_search_k.unwrap_or(IndexOptions::default().retry_search_k),
            retry_distance: a.retry_distance.unwrap_or(IndexOptions::default().retry_distance),
            retry: a.retry,
            settled_share: a.settled_share.unwrap_or(IndexOptions::default().settled_share),
            precision: a.precision,
            ..IndexOptions::default()
        },
    };
    let mut report = eval::evaluate(&fp, &queries_from, &distractors, &noise, &opts, &sink)?;
    for b in &a.baseline {
        match b {
            Baseline::Chromaprint => report.rows.extend(eval::chromaprint::evaluate(
                &queries_from,
                &distractors,
                &noise,
                &opts,
                fp.config().hop,
                &sink,
            )?),
        }
    }
    bar.finish_and_clear();
    if a.json {
        print_json(&report)?;
    } else {
        print!("{}", report.table());
    }
    Ok(Outcome::Ok)
}

/// A progress bar for an evaluation (`eval fingerprint`, `eval stems`, `eval separator`).
pub(super) fn eval_bar(ctx: &Ctx) -> indicatif::ProgressBar {
    let bar = ctx.multi.add(indicatif::ProgressBar::new(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>14.bold} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Run `eval stems`.
fn stems(a: StemsArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    use aniprint::analyze::{Analyzer, StemSplitter};
    use aniprint::eval::stems::{StemEvalOptions, evaluate_stems};
    use aniprint::separate::Separator;
    let fp = Fingerprinter::load_default(&Device::Cpu)?;
    let splitter: Box<dyn StemSplitter> = match a.separator {
        Some(dir) => Box::new(Separator::load(&dir, &Device::Cpu)?),
        None => super::separate::default_splitter()?.ok_or_else(|| {
            anyhow::anyhow!("no separator model is installed; pass --separator DIR")
        })?,
    };
    let analyzer = Analyzer::new(fp, Some(splitter))?.with_grids(a.grids);
    let bar = eval_bar(ctx);
    let sink = BarSink(bar.clone());
    let val: Vec<String> = DEFAULT_VAL_PACKAGES.iter().map(|s| s.to_string()).collect();
    let corpus = train::load_corpus(&a.corpus, &a.cache, analyzer.rate(), &val, &sink)?;
    let opts = StemEvalOptions {
        references: a.references,
        reference_s: a.reference_s,
        queries: a.queries,
        lengths: a.lengths,
        phases: a.phases,
        seed: a.seed,
        ..StemEvalOptions::default()
    };
    let report = evaluate_stems(&analyzer, &corpus.val, &opts, &sink)?;
    bar.finish_and_clear();
    if a.json {
        print_json(&report)?;
    } else {
        print!("{}", report.table());
    }
    Ok(Outcome::Ok)
}
