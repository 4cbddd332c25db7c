//! `aniprint scan` and `aniprint query`: find where uploads and clips reuse indexed audio.

use std::io::Write;
use std::path::PathBuf;

use aniprint::analyze::Analyzer;
use aniprint::fingerprint::Fingerprinter;
use aniprint::index::{CatalogIndex, SearchKind, VectorStore};
use aniprint::media::StreamSelect;
use aniprint::scan::{self, ScanOptions};
use candle_core::Device;

use super::bars::Bars;
use super::{Ctx, Outcome, print_json};

/// A catalog fingerprinted only by other models answers nothing for this build's model: say so
/// instead of reporting "no match".
fn warn_other_models(
    index: &CatalogIndex<&aniprint::catalog::Catalog>,
    model: &str,
) -> anyhow::Result<()> {
    use aniprint::index::VectorStore;
    let (mut ours, mut others) = (false, std::collections::BTreeSet::new());
    for key in index.keys()? {
        if index.len(&key)? == 0 {
            continue;
        }
        if key.model == model {
            ours = true;
        } else {
            others.insert(key.model);
        }
    }
    if !ours && !others.is_empty() {
        let others: Vec<String> = others.into_iter().collect();
        // Printed even with -q: every answer would silently be "no match".
        eprintln!(
            "aniprint: warning: this catalog holds fingerprints of {} only, and this build \
             searches with {model}: nothing can match. Ingest the episodes again (`aniprint \
             ingest PATH...`): episodes on record are fingerprinted again with {model}.",
            others.join(", ")
        );
    }
    Ok(())
}

/// Load the default models: the fingerprinter, and the separator unless `no_separate`.
pub fn load_analyzer(no_separate: bool) -> anyhow::Result<Analyzer> {
    let fp = Fingerprinter::load_default(&Device::Cpu)?;
    let splitter = if no_separate { None } else { super::separate::default_splitter()? };
    Ok(Analyzer::new(fp, splitter)?)
}

/// Arguments of `aniprint scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Uploads to scan (any media FFmpeg reads; folders are walked).
    #[arg(required = true, value_name = "UPLOAD")]
    paths: Vec<PathBuf>,
    /// Drop regions shorter than this, seconds [default: 2.5].
    #[arg(long, value_parser = non_negative)]
    min_duration: Option<f64>,
    /// Score floor: a region needs a mean similarity of at least THRESHOLD + 0.4/sqrt(segments)
    /// [default: 0.70, calibrated on the fixtures]; 0 to 1.
    #[arg(long, value_parser = unit_interval)]
    threshold: Option<f32>,
    /// Exact (flat L2) or approximate (arroy) search; `auto` takes exact below 10^6 segments in
    /// the largest index of the model (exact, and no forest to build), arroy from there on.
    #[arg(long, value_enum, default_value_t = SearchChoice::Auto)]
    search: SearchChoice,
    /// Only the mix: do not separate voice and background.
    #[arg(long)]
    no_separate: bool,
    /// Audio stream of the upload by index (default: the default stream).
    #[arg(long)]
    audio_stream: Option<usize>,
    /// Print JSON (one object per upload) instead of tables.
    #[arg(long)]
    json: bool,
    /// Where the upload came from (its URL or platform video id), for the report's
    /// `upload_source`; one upload file only. Without it a rescan keeps the earlier scan's, and
    /// a first scan takes the file's `purl` or `comment` tag when that is a web address (yt-dlp
    /// `--embed-metadata` writes the page's address there).
    #[arg(long, value_name = "TEXT")]
    source: Option<String>,
}

/// `scan --search` and `query --search`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum SearchChoice {
    /// By the catalog's size (`SearchKind::for_size`).
    Auto,
    /// Flat L2 over every stored vector.
    Exact,
    /// The arroy forest (built first if the catalog changed).
    Ann,
}

impl SearchChoice {
    /// The search this choice makes on `index` for `model`.
    fn resolve(self, index: &impl VectorStore, model: &str) -> anyhow::Result<SearchKind> {
        Ok(match self {
            SearchChoice::Auto => index.auto_search(model)?,
            SearchChoice::Exact => SearchKind::Exact,
            SearchChoice::Ann => SearchKind::Ann,
        })
    }
}

/// Scan each upload, store its regions as pending matches and print them.
pub fn run_scan(args: ScanArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if args.source.is_some() && (args.paths.len() != 1 || args.paths[0].is_dir()) {
        // One source for many files would put one upload's address on every row.
        anyhow::bail!("--source names one upload's origin: give exactly one upload file");
    }
    let config = ctx.config()?;
    let catalog = ctx.open_catalog()?;
    let index = CatalogIndex::open(&catalog)?;
    let analyzer = load_analyzer(args.no_separate)?;
    warn_other_models(&index, analyzer.model())?;
    let defaults = ScanOptions::default();
    let search = args.search.resolve(&index, analyzer.model())?;
    tracing::info!("scan searches {}", search.as_str());
    let opts = ScanOptions {
        search,
        min_duration_s: args.min_duration.unwrap_or(defaults.min_duration_s),
        threshold: args.threshold.unwrap_or(defaults.threshold),
        stream: args.audio_stream.map_or(StreamSelect::Default, StreamSelect::Index),
        source: args.source.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        ..defaults
    };
    let (files, mut failed) = aniprint::ingest::collect_inputs(&args.paths, true);
    let bars = Bars::new(&ctx.multi, files.len() as u64, "uploads", true);
    let mut outcomes = Vec::new();
    for f in &files {
        bars_item(&bars, f);
        match scan::scan_file(&catalog, &index, &analyzer, f, &opts, &config.review, &bars) {
            Ok(o) => outcomes.push(o),
            Err(e @ aniprint::Error::Catalog(_)) => return Err(e.into()),
            Err(e) => failed.push((f.clone(), e)),
        }
    }
    bars.finish();
    if args.json {
        print_json(&outcomes)?;
    } else if !ctx.quiet {
        let mut out = std::io::stdout().lock();
        for o in &outcomes {
            writeln!(
                out,
                "{}  ({}, {:.1} s): {} region(s)",
                o.upload.path,
                o.upload.id,
                o.upload.duration.0,
                o.regions.len()
            )?;
            for r in &o.regions {
                let ep = catalog.episode(&r.episode).ok();
                writeln!(
                    out,
                    "  {}  {} - {}  <-  {} {} {} - {}  {:<10}  score {:.2} ({})  {}",
                    r.id,
                    r.upload_start.hms(),
                    r.upload_end.hms(),
                    ep.as_ref().map_or("?", |e| e.series.as_str()),
                    ep.as_ref().map_or(r.episode.as_str(), |e| e.title.as_str()),
                    r.episode_start.hms(),
                    r.episode_end.hms(),
                    r.stem.as_str(),
                    r.score,
                    r.band.as_str(),
                    r.status,
                )?;
            }
        }
    }
    for (_, e) in &failed {
        eprintln!("failed: {e}");
    }
    Ok(if failed.is_empty() { Outcome::Ok } else { Outcome::Partial })
}

fn bars_item(bars: &Bars, f: &std::path::Path) {
    use aniprint::progress::Progress;
    bars.item(&f.to_string_lossy());
}

/// Arguments of `aniprint query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// A short clip (a few seconds) to look up.
    clip: PathBuf,
    /// Answers to print.
    #[arg(long, default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    top: usize,
    /// Approximate (arroy, two passes: within 0.5 point of exact's Top-1 on real fingerprints;
    /// p99 54 ms per stem and phase for a 3 s clip among 10^6 segments; the forest is built
    /// first if the catalog changed) or exact (flat L2, linear in the catalog); `auto` takes
    /// exact below 10^6 segments in the largest index of the model, as scan does.
    #[arg(long, value_enum, default_value_t = SearchChoice::Auto)]
    search: SearchChoice,
    /// Only the mix: do not separate voice and background.
    #[arg(long)]
    no_separate: bool,
    /// Sub-hop shifts of the clip voted together (1 = only the segment grid; more is slower
    /// and more exact: 4 puts one copy within 1/16 s of a stored segment). The extra grids a
    /// catalog stores (ingest stores four by default) place 1 s clips, whose later copies are
    /// padded with silence.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=16))]
    phases: u16,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Look a clip up and print the ranked answers.
pub fn run_query(args: QueryArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let catalog = ctx.open_catalog()?;
    let index = CatalogIndex::open(&catalog)?;
    let analyzer = load_analyzer(args.no_separate)?;
    warn_other_models(&index, analyzer.model())?;
    let search = args.search.resolve(&index, analyzer.model())?;
    let answers = scan::query_file(
        &catalog,
        &index,
        &analyzer,
        &args.clip,
        args.top,
        search,
        usize::from(args.phases),
        &aniprint::progress::NoProgress,
    )?;
    if args.json {
        print_json(&answers)?;
        return Ok(Outcome::Ok);
    }
    let mut out = std::io::stdout().lock();
    if answers.is_empty() {
        writeln!(out, "no match")?;
    }
    for a in &answers {
        let others: Vec<String> =
            a.other_stems.iter().map(|o| format!("{} {:.2}", o.stem.as_str(), o.score)).collect();
        writeln!(
            out,
            "{}. {} / {} ({})  at {} ({:.3} s)  piece {}  {}  score {:.2}{}, {} segments",
            a.rank,
            a.series,
            a.title,
            a.episode,
            aniprint::units::Seconds(a.offset_s).hms(),
            a.offset_s,
            a.piece,
            a.stem.as_str(),
            a.score,
            if others.is_empty() {
                String::new()
            } else {
                format!(" (also {})", others.join(", "))
            },
            a.votes
        )?;
    }
    Ok(Outcome::Ok)
}

/// A cosine similarity floor: a number from 0 to 1 (`70` meant as a percent would match
/// nothing, a negative one everything).
fn unit_interval(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number from 0 to 1")),
    }
}

/// A length in seconds: a finite number, 0 or more.
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}
