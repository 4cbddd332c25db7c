//! `aniprint bench`: speed and memory of the models and the search, as the README reports them.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use aniprint::index::bench::{self as search_bench, SearchBenchConfig};
use aniprint::index::{IndexOptions, Retry};
use aniprint::media::{DecodeOptions, decode};

use super::train::BarSink;
use super::{Ctx, Outcome};

/// What to measure.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Fingerprinting speed (front end + encoder, decode excluded) in x real time.
    Fingerprint {
        /// Audio to fingerprint (default: the fixture episodes, concatenated).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Repeat the input until it is at least this long, seconds.
        #[arg(long, default_value_t = 600.0)]
        seconds: f64,
        /// Model folder (default: the default model; an ensemble card runs every member).
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
    },
    /// Separation speed in x real time.
    Separate {
        /// Audio to separate (default: the fixture episodes, concatenated).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Repeat the input until it is at least this long, seconds.
        #[arg(long, default_value_t = 120.0)]
        seconds: f64,
        /// Frames each chunk contributes (default: the model's plan).
        #[arg(long)]
        core: Option<usize>,
        /// Chunks run at once (0: one per thread, at most 4).
        #[arg(long)]
        parallel: Option<usize>,
    },
    /// Vector search latency (exact and arroy) and index build on synthetic vectors.
    Search {
        /// Stored vectors.
        #[arg(long, default_value_t = 100_000)]
        vectors: usize,
        /// arroy search_k values to try.
        #[arg(long, value_delimiter = ',', default_value = "1000,2000,4000")]
        search_k: Vec<usize>,
        /// Second-pass search_k (0: no second pass).
        #[arg(long, default_value_t = IndexOptions::default().retry_search_k)]
        retry_search_k: usize,
        /// With --retry far: distances over which a query segment gets the second pass, each
        /// timed (2: none; default: the index default).
        #[arg(long, value_delimiter = ',')]
        retry_distance: Vec<f32>,
        /// Which segments get the second pass: in a clip whose vote is not settled, those off its
        /// best alignment; or each one whose nearest first-pass candidate is farther than
        /// --retry-distance.
        #[arg(long, value_enum, default_value_t = Retry::default())]
        retry: Retry,
        /// Share of a clip's segments that must agree for it to be settled.
        #[arg(long, default_value_t = IndexOptions::default().settled_share)]
        settled_share: f32,
        /// Norm of the noise that turns a stored vector into a query segment (0.75: cosine
        /// ~0.8 to it).
        #[arg(long, default_value_t = SearchBenchConfig::default().query_noise)]
        query_noise: f32,
        /// Directory for the benchmark catalog (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn audio(
    input: Option<PathBuf>,
    rate: aniprint::units::SampleRate,
    seconds: f64,
) -> anyhow::Result<Vec<f32>> {
    let opts = DecodeOptions { rate, channels: 1, ..DecodeOptions::default() };
    let files = match input {
        Some(p) => vec![p],
        None => ["ep01.mkv", "ep02.mp4", "ep03.webm"]
            .iter()
            .map(|f| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/episodes").join(f)
            })
            .collect(),
    };
    let mut one = Vec::new();
    for f in files {
        one.extend(decode(&f, &opts)?);
    }
    anyhow::ensure!(!one.is_empty(), "no audio decoded");
    let want = (seconds * f64::from(rate.0)) as usize;
    let mut out = Vec::with_capacity(want + one.len());
    while out.len() < want {
        out.extend_from_slice(&one);
    }
    Ok(out)
}

/// Peak resident memory of this process so far, MiB (Linux; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Run a benchmark and print its figures.
pub fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::Fingerprint { input, seconds, model } => {
            use aniprint::fingerprint::Fingerprinter;
            let fp = match model {
                Some(dir) => Fingerprinter::load(&dir, &candle_core::Device::Cpu)?,
                None => Fingerprinter::load_default(&candle_core::Device::Cpu)?,
            };
            let rate = fp.config().rate();
            let a = audio(input, rate, seconds)?;
            let secs = a.len() as f64 / f64::from(rate.0);
            // One warm-up pass on a minute, then the timed run.
            fp.fingerprint(&a[..a.len().min(60 * rate.0 as usize)])?;
            let t = Instant::now();
            let f = fp.fingerprint(&a)?;
            let wall = t.elapsed().as_secs_f64();
            writeln!(
                out,
                "fingerprint {}: {:.0} s of audio, {} segments in {:.2} s = {:.0}x real time ({:.0} segments/s), {} threads, peak RSS {:.0} MiB",
                fp.card().name,
                secs,
                f.len(),
                wall,
                secs / wall,
                f.len() as f64 / wall,
                rayon::current_num_threads(),
                peak_rss_mib()
            )?;
        }
        Command::Separate { input, seconds, core, parallel } => {
            let Some(sep) = super::separate::default_separator()? else {
                anyhow::bail!(
                    "no separator model installed (train one with `aniprint train separator`)"
                );
            };
            let default = aniprint::separate::ChunkPlan::default();
            let plan = aniprint::separate::ChunkPlan {
                core: core.unwrap_or(default.core),
                parallel: parallel.unwrap_or(default.parallel),
                ..default
            };
            let sep = sep.with_plan(plan);
            use aniprint::analyze::StemSplitter as _;
            let rate = sep.rate();
            let a = audio(input, rate, seconds)?;
            let secs = a.len() as f64 / f64::from(rate.0);
            let t = Instant::now();
            let _ = sep.split(&a)?;
            let wall = t.elapsed().as_secs_f64();
            writeln!(
                out,
                "separate {}: {:.0} s of audio in {:.2} s = {:.1}x real time, peak RSS {:.0} MiB",
                sep.name(),
                secs,
                wall,
                secs / wall,
                peak_rss_mib()
            )?;
        }
        Command::Search {
            vectors,
            search_k,
            retry_search_k,
            retry_distance,
            retry,
            settled_share,
            query_noise,
            dir,
        } => {
            let tmp;
            let dir = match dir {
                Some(d) => d,
                None => {
                    tmp = tempfile::tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            let cfg = SearchBenchConfig {
                vectors,
                search_ks: search_k,
                query_noise,
                retry_distances: retry_distance,
                options: IndexOptions {
                    retry_search_k,
                    retry,
                    settled_share,
                    ..IndexOptions::default()
                },
                ..SearchBenchConfig::default()
            };
            let bar = ctx.multi.add(indicatif::ProgressBar::new(0));
            let report = search_bench::run(&dir, &cfg, &BarSink(bar.clone()))?;
            bar.finish_and_clear();
            writeln!(out, "{report}")?;
            writeln!(out, "peak RSS {:.0} MiB", peak_rss_mib())?;
        }
    }
    Ok(Outcome::Ok)
}
