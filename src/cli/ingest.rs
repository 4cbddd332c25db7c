//! `aniprint ingest`: files and folders into the catalog, with bars and a summary.

use std::io::Write;
use std::path::PathBuf;

use aniprint::ingest::{self, IngestOptions};
use aniprint::media::{DecodeOptions, StreamSelect};
use aniprint::units::SampleRate;

use super::bars::Bars;
use super::{Ctx, Outcome};

/// Arguments of `aniprint ingest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Media files, or folders whose media files to ingest (by extension).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Series name for every file (default: the name of each file's folder).
    #[arg(long, value_name = "NAME")]
    series: Option<String>,
    /// Also ingest media in sub-folders of folder arguments.
    #[arg(short, long)]
    recursive: bool,
    /// Decode the audio stream with this index in the container (see `aniprint info`).
    #[arg(long, value_name = "INDEX", conflicts_with = "audio_lang")]
    audio_stream: Option<usize>,
    /// Decode the first audio stream tagged with this language (ISO 639-2: jpn, eng, ...).
    #[arg(long, value_name = "LANG")]
    audio_lang: Option<String>,
    /// Only catalog records: no fingerprints (the episode cannot be matched until re-ingested).
    #[arg(long)]
    no_index: bool,
    /// Fingerprint only the mix: do not separate voice and background.
    #[arg(long)]
    no_separate: bool,
    /// Segment grids each piece is stored on: 4 (default) adds three starting a quarter, half
    /// and three quarters of a hop in, which `query` reads to place short clips (1 s: 81.1%
    /// Top-1 on Table 6 with fingerprint-e1, against 76.8% on 2 grids; fingerprint-e3, the
    /// default, 82.9%); 2 or 1 halve or quarter the vectors and the fingerprinting. `scan` reads
    /// the plain grid either way.
    #[arg(long, value_name = "N", default_value_t = aniprint::analyze::REFERENCE_GRIDS as u8,
          value_parser = clap::value_parser!(u8).range(1..=8))]
    grids: u8,
}

/// Ingest and print what happened to each file; failures make the outcome partial.
pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let config = ctx.config()?;
    let catalog = ctx.open_catalog()?;
    let stream = match (args.audio_stream, args.audio_lang.or(config.audio_lang.clone())) {
        (Some(i), _) => StreamSelect::Index(i),
        (None, Some(lang)) => StreamSelect::Language(lang),
        (None, None) => StreamSelect::Default,
    };
    let opts = IngestOptions {
        series: args.series,
        recursive: args.recursive,
        decode: DecodeOptions { stream, rate: SampleRate(config.work_rate), channels: 1 },
        crop: config.crop(),
    };

    // Expand folders here so the overall bar knows the file count; the library then sees
    // plain files (and still reports any that vanish before their turn).
    let (files, mut failed) = ingest::collect_inputs(&args.paths, opts.recursive);
    super::interrupt::install("the ingest", "file");
    let bars = Bars::new(&ctx.multi, files.len() as u64, "files", true);
    let result = if args.no_index {
        ingest::ingest_paths(&catalog, &files, &opts, &bars)
    } else {
        let analyzer = super::scan::load_analyzer(args.no_separate)?.with_grids(args.grids.into());
        let index = aniprint::index::CatalogIndex::open(&catalog)?;
        let ix = ingest::Indexing { analyzer: &analyzer, index: &index };
        ingest::ingest_paths_indexed(&catalog, &files, &opts, Some(&ix), &bars)
    };
    bars.finish();
    let mut report = result?;
    let stopped = report.stopped.take();
    failed.extend(report.failed);

    let mut out = std::io::stdout().lock();
    if !ctx.quiet {
        for (path, ep) in &report.ok {
            writeln!(
                out,
                "ingested  {}  ->  {}  {} pieces  {}  {}",
                path.display(),
                ep.id,
                ep.pieces,
                super::hms(ep.duration.0),
                stream_label(ep),
            )?;
        }
        for (path, ep) in &report.skipped {
            writeln!(
                out,
                "present   {}  =  {} ({}, {})",
                path.display(),
                ep.id,
                ep.title,
                ep.path
            )?;
        }
        for (path, ep) in &report.reindexed {
            writeln!(
                out,
                "indexed   {}  =  {} ({}): fingerprinted again for the models in use",
                path.display(),
                ep.id,
                ep.title
            )?;
        }
        writeln!(
            out,
            "{} ingested, {} already present{}, {} failed (catalog {})",
            report.ok.len(),
            report.skipped.len(),
            aniprint::ingest::again_note(report.reindexed.len()),
            failed.len(),
            catalog.path().display()
        )?;
    }
    out.flush()?;
    drop(out);
    for (path, e) in &failed {
        eprintln!("failed: {}", aniprint::ingest::failure_line(path, e));
    }
    // After the account of what was done (stored, and skipped by a rerun).
    if let Some(e) = stopped {
        return Err(e.into());
    }
    Ok(if failed.is_empty() { Outcome::Ok } else { Outcome::Partial })
}

fn stream_label(ep: &aniprint::catalog::Episode) -> String {
    format!("audio #{} {}", ep.audio_stream, ep.language.as_deref().unwrap_or("und"))
}
