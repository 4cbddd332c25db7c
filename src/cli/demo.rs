//! `aniprint demo`: the README's main job on the bundled fixtures, with an embedded catalog:
//! ingest the fixture episodes, scan the fixture uploads, and print every match region next to
//! the fixtures' ground truth.

use std::io::Write;
use std::path::{Path, PathBuf};

use aniprint::catalog::{Catalog, MatchRegion};
use aniprint::index::CatalogIndex;
use aniprint::ingest::{self, IngestOptions};
use aniprint::media::DecodeOptions;
use aniprint::scan::{self, ScanOptions};

use super::bars::Bars;
use super::{Ctx, Outcome};

/// Arguments of `aniprint demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The fixtures folder (episodes/, uploads/, truth.csv).
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
    /// Keep the demo catalog here instead of a temporary one.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Only the mix: do not separate voice and background.
    #[arg(long)]
    no_separate: bool,
}

#[derive(Debug, serde::Deserialize)]
struct Truth {
    upload: String,
    upload_start_s: f64,
    upload_end_s: f64,
    episode: String,
    episode_start_s: f64,
    episode_end_s: f64,
    note: String,
}

/// Run the demo and print found/missed ground-truth reuses.
pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let tmp;
    let dir = match &args.keep {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let catalog = Catalog::open(&dir)?;
    let index = CatalogIndex::open(&catalog)?;
    let analyzer = super::scan::load_analyzer(args.no_separate)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "catalog: {} (models: {}, separator: {})",
        dir.display(),
        analyzer.model(),
        analyzer.separator().unwrap_or_else(|| "none".into())
    )?;
    let opts = IngestOptions { decode: DecodeOptions::default(), ..IngestOptions::default() };
    let (files, _) = ingest::collect_inputs(&[args.fixtures.join("episodes")], false);
    let bars = Bars::new(&ctx.multi, files.len() as u64, "episodes", true);
    let ix = ingest::Indexing { analyzer: &analyzer, index: &index };
    let mut report = ingest::ingest_paths_indexed(&catalog, &files, &opts, Some(&ix), &bars)?;
    bars.finish();
    if let Some(e) = report.stopped.take() {
        return Err(e.into());
    }
    for (p, ep) in report.ok.iter().chain(&report.skipped).chain(&report.reindexed) {
        writeln!(
            out,
            "ingested {}  ->  {} ({} pieces, {:.1} s)",
            p.display(),
            ep.id,
            ep.pieces,
            ep.duration.0
        )?;
    }
    let (uploads, _) = ingest::collect_inputs(&[args.fixtures.join("uploads")], false);
    let bars = Bars::new(&ctx.multi, uploads.len() as u64, "uploads", true);
    let sopts = ScanOptions::default();
    let config = ctx.config()?;
    let mut found: Vec<(String, MatchRegion)> = Vec::new();
    for u in &uploads {
        use aniprint::progress::Progress;
        bars.item(&u.to_string_lossy());
        let o = scan::scan_file(&catalog, &index, &analyzer, u, &sopts, &config.review, &bars)?;
        let name = file_name(u);
        found.extend(o.regions.into_iter().map(|r| (name.clone(), r)));
    }
    bars.finish();
    let ep_name = |id: &str| {
        catalog
            .episode(id)
            .map(|e| file_name(Path::new(&e.path)))
            .unwrap_or_else(|_| id.to_string())
    };
    writeln!(out, "\nmatch regions found:")?;
    writeln!(
        out,
        "  {:<10} {:>15}  {:<10} {:>17}  {:<10} {:>5}  {:<6}",
        "upload", "upload range s", "episode", "episode range s", "stem", "score", "band"
    )?;
    for (u, r) in &found {
        writeln!(
            out,
            "  {:<10} {:>6.2} - {:>6.2}  {:<10} {:>7.2} - {:>7.2}  {:<10} {:>5.2}  {:<6}",
            u,
            r.upload_start.0,
            r.upload_end.0,
            ep_name(&r.episode),
            r.episode_start.0,
            r.episode_end.0,
            r.stem.as_str(),
            r.score,
            r.band.as_str()
        )?;
    }
    let mut rdr = csv::Reader::from_path(args.fixtures.join("truth.csv"))?;
    let truth: Vec<Truth> = rdr.deserialize().collect::<Result<_, _>>()?;
    writeln!(out, "\nground truth (fixtures/truth.csv):")?;
    let mut missed = 0;
    let mut used = vec![false; found.len()];
    for t in &truth {
        // A region is this reuse when it overlaps it in the upload, in the right episode, on
        // the same alignment (within a second): the right episode at the wrong place is a
        // false match.
        let is_this = |u: &str, r: &MatchRegion| {
            u == t.upload
                && ep_name(&r.episode) == t.episode
                && r.upload_start.0 < t.upload_end_s
                && r.upload_end.0 > t.upload_start_s
                && ((r.episode_start.0 - r.upload_start.0) - (t.episode_start_s - t.upload_start_s))
                    .abs()
                    < 1.0
        };
        let best = found
            .iter()
            .enumerate()
            .filter(|(_, (u, r))| is_this(u, r))
            .max_by(|a, b| a.1.1.score.total_cmp(&b.1.1.score));
        match best {
            Some((i, (_, r))) => {
                // Every stem's region for this reuse counts as found, not as a false match.
                for (j, (u, o)) in found.iter().enumerate() {
                    if is_this(u, o) {
                        used[j] = true;
                    }
                }
                used[i] = true;
                writeln!(
                    out,
                    "  found   {:<10} {:>6.2}-{:>6.2} <- {:<10} {:>6.2}-{:>6.2}  (errors: start {:+.2} s, end {:+.2} s; {})  {}",
                    t.upload,
                    t.upload_start_s,
                    t.upload_end_s,
                    t.episode,
                    t.episode_start_s,
                    t.episode_end_s,
                    r.upload_start.0 - t.upload_start_s,
                    r.upload_end.0 - t.upload_end_s,
                    r.stem.as_str(),
                    t.note
                )?;
            }
            None => {
                missed += 1;
                writeln!(
                    out,
                    "  MISSED  {:<10} {:>6.2}-{:>6.2} <- {:<10} {:>6.2}-{:>6.2}  {}",
                    t.upload,
                    t.upload_start_s,
                    t.upload_end_s,
                    t.episode,
                    t.episode_start_s,
                    t.episode_end_s,
                    t.note
                )?;
            }
        }
    }
    let false_regions: Vec<_> =
        found.iter().zip(&used).filter(|(_, u)| !**u).map(|(f, _)| f).collect();
    writeln!(
        out,
        "\n{} of {} reuses found, {} other region(s)",
        truth.len() - missed,
        truth.len(),
        false_regions.len()
    )?;
    for (u, r) in false_regions {
        writeln!(
            out,
            "  other: {u} {:.2}-{:.2} <- {} {:.2}-{:.2} ({}, score {:.2})",
            r.upload_start.0,
            r.upload_end.0,
            ep_name(&r.episode),
            r.episode_start.0,
            r.episode_end.0,
            r.stem.as_str(),
            r.score
        )?;
    }
    // A demo reports misses; it does not fail on them (the tests hold the bar).
    Ok(Outcome::Ok)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
