//! `aniprint catalog`: statistics and housekeeping.

use std::io::Write;

use aniprint::catalog::PieceStatus;
use serde::Serialize;

use super::{Ctx, Outcome};

/// Subcommands of `aniprint catalog`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Record counts, total duration and size on disk.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Shrink the catalog file: drop the vector forests no search reads (catalogs from before
    /// forests were built on demand carry one per index) and rewrite the file without its free
    /// pages. Refuses while another aniprint process has the catalog open.
    Compact {
        /// Also remove every vector index of this fingerprint model (one the catalog no longer
        /// uses: its episodes were ingested again with the default model). Repeatable.
        #[arg(long, value_name = "MODEL")]
        drop_model: Vec<String>,
        /// Also rewrite the vector indexes stored as 32-bit floats (catalogs from before half
        /// floats) as 16-bit ones, as new indexes are: their vectors take half the space.
        #[arg(long)]
        f16: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove episodes and their pieces (the media files are not touched).
    Remove {
        /// Episode ids (see `aniprint ls`).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

/// The catalog's figures.
#[derive(Debug, Serialize)]
struct Stats {
    path: String,
    series: u64,
    episodes: u64,
    pieces: u64,
    kept: u64,
    dropped: u64,
    unreviewed: u64,
    duration_s: f64,
    uploads: u64,
    matches: u64,
    rights: u64,
    disk_bytes: u64,
    disk_bytes_per_episode: Option<u64>,
    /// Of `disk_bytes`, what the vector store takes: the vectors for the exact scan, the
    /// item map, and arroy's copy with its trees (only for indexes an approximate search has
    /// used; see `aniprint scan --search`).
    index_bytes: aniprint::index::DiskUsage,
}

/// Run a catalog subcommand.
pub fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let catalog = ctx.open_catalog()?;
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::Stats { json } => {
            let s = catalog.stats()?;
            let pieces = catalog.pieces()?;
            let count = |st: PieceStatus| pieces.iter().filter(|p| p.status == st).count() as u64;
            let duration_s: f64 = catalog.episodes()?.iter().map(|e| e.duration.0).sum();
            let index_bytes = aniprint::index::CatalogIndex::open(&catalog)?.disk_usage()?;
            let stats = Stats {
                path: catalog.path().display().to_string(),
                series: s.series,
                episodes: s.episodes,
                pieces: s.pieces,
                kept: count(PieceStatus::Keep),
                dropped: count(PieceStatus::Drop),
                unreviewed: count(PieceStatus::Unreviewed),
                duration_s: (duration_s * 1000.0).round() / 1000.0,
                uploads: s.uploads,
                matches: s.matches,
                rights: s.rights,
                disk_bytes: s.disk_bytes,
                disk_bytes_per_episode: (s.episodes > 0).then(|| s.disk_bytes / s.episodes),
                index_bytes,
            };
            if json {
                super::print_json(&stats)?;
            } else {
                writeln!(out, "catalog     {}", stats.path)?;
                writeln!(out, "series      {}", stats.series)?;
                writeln!(out, "episodes    {}", stats.episodes)?;
                writeln!(
                    out,
                    "pieces      {} ({} keep, {} drop, {} unreviewed)",
                    stats.pieces, stats.kept, stats.dropped, stats.unreviewed
                )?;
                writeln!(
                    out,
                    "duration    {} ({:.1} h)",
                    super::hms(duration_s),
                    duration_s / 3600.0
                )?;
                writeln!(out, "uploads     {} ({} match regions)", stats.uploads, stats.matches)?;
                writeln!(out, "rights      {} ownership records", stats.rights)?;
                writeln!(
                    out,
                    "disk        {} bytes ({})",
                    stats.disk_bytes,
                    mib(stats.disk_bytes)
                )?;
                if let Some(per) = stats.disk_bytes_per_episode {
                    writeln!(out, "per episode {per} bytes ({})", mib(per))?;
                }
                let ix = stats.index_bytes;
                writeln!(
                    out,
                    "vectors     {} (+ {} item map, {} arroy forests)",
                    mib(ix.vectors),
                    mib(ix.mapping),
                    mib(ix.arroy)
                )?;
            }
        }
        Command::Compact { drop_model, f16, json } => {
            let default = aniprint::fingerprint::DEFAULT_MODEL;
            if drop_model.iter().any(|m| m == default) {
                anyhow::bail!(
                    "{default} is the model in use: its indexes are what query and scan read"
                );
            }
            let ((models, dropped, converted), done) = catalog.compact(|c| {
                let index = aniprint::index::CatalogIndex::open(c)?;
                let models = drop_model
                    .iter()
                    .map(|m| index.drop_model(m).map(|(n, v)| (m.clone(), n, v)))
                    .collect::<aniprint::Result<Vec<_>>>()?;
                let converted = if f16 {
                    index.convert_precision(aniprint::index::Precision::F16)?
                } else {
                    Vec::new()
                };
                Ok((models, index.drop_unsearched_forests()?, converted))
            })?;
            let forests: Vec<String> = dropped.iter().map(ToString::to_string).collect();
            let converted: Vec<String> = converted.iter().map(ToString::to_string).collect();
            if json {
                #[derive(Serialize)]
                struct Compacted {
                    before_bytes: u64,
                    after_bytes: u64,
                    forests_dropped: Vec<String>,
                    /// Indexes rewritten as half floats (`--f16`).
                    converted_to_f16: Vec<String>,
                    /// (model, indexes, vectors) removed.
                    models_dropped: Vec<(String, usize, u64)>,
                }
                let c = Compacted {
                    before_bytes: done.before,
                    after_bytes: done.after,
                    forests_dropped: forests,
                    converted_to_f16: converted,
                    models_dropped: models,
                };
                super::print_json(&c)?;
            } else if !ctx.quiet {
                writeln!(out, "compacted   {} -> {}", mib(done.before), mib(done.after))?;
                writeln!(out, "forests     {} dropped (nothing searches them)", forests.len())?;
                for f in &forests {
                    writeln!(out, "            {f}")?;
                }
                if f16 {
                    writeln!(out, "f16         {} indexes converted", converted.len())?;
                }
                for (m, n, v) in &models {
                    writeln!(out, "model       {m}: {n} indexes, {v} vectors removed")?;
                }
            }
        }
        Command::Remove { ids } => {
            // Every id first: a typo in the last must not leave the first ones removed.
            let unknown: Vec<&String> = ids
                .iter()
                .filter(|id| matches!(catalog.episode(id), Err(aniprint::Error::NotFound { .. })))
                .collect();
            if !unknown.is_empty() {
                anyhow::bail!(
                    "no episode {} in the catalog (nothing removed)",
                    unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
            for id in &ids {
                let index = aniprint::index::CatalogIndex::open(&catalog)?;
                let prefix = format!("{id}-");
                catalog.remove_episode_with(id, |w| {
                    index.remove_pieces_with_prefix_in(w, &prefix).map(|_| ())
                })?;
                if !ctx.quiet {
                    writeln!(out, "removed {id}")?;
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / f64::from(1 << 20))
}
