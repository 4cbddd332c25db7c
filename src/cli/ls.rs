//! `aniprint ls`: the catalog's series, episodes, pieces or scanned uploads as a table or JSON.

use std::collections::BTreeMap;

use aniprint::catalog::date::utc_iso;
use aniprint::catalog::{Catalog, Episode, MatchFilter, MatchStatus, Piece, PieceStatus, Upload};
use serde::Serialize;

use super::table::Table;
use super::{Ctx, Outcome};

/// What to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum What {
    /// One row per series.
    Series,
    /// One row per episode.
    #[default]
    Episodes,
    /// One row per piece.
    Pieces,
    /// One row per scanned upload, with its matches by review status.
    Uploads,
}

/// Arguments of `aniprint ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to list.
    #[arg(value_enum, default_value_t = What::Episodes)]
    what: What,
    /// Only this series (uploads: those with a match into it).
    #[arg(long, value_name = "NAME")]
    series: Option<String>,
    /// Only pieces with this status (pieces only).
    #[arg(long, value_enum)]
    status: Option<PieceStatus>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// A series with its totals.
#[derive(Debug, Serialize)]
struct SeriesRow {
    name: String,
    episodes: u64,
    pieces: u64,
    kept: u64,
    dropped: u64,
    duration_s: f64,
    created_ms: u64,
}

/// A piece with its times in seconds and its episode's context.
#[derive(Debug, Serialize)]
pub struct PieceRow {
    id: String,
    series: String,
    episode: String,
    episode_title: String,
    index: u32,
    start_s: f64,
    end_s: f64,
    duration_s: f64,
    status: PieceStatus,
    flags: Vec<&'static str>,
    rms_dbfs: f32,
    start_sample: u64,
    end_sample: u64,
    work_rate: u32,
}

/// A scanned upload and how many of its matches are in each review status.
#[derive(Debug, Serialize)]
struct UploadRow {
    #[serde(flatten)]
    upload: Upload,
    matches: BTreeMap<&'static str, u64>,
}

/// Rounded to the millisecond, as every listing shows times.
fn ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl PieceRow {
    fn order(&self) -> (&str, &str, &str, u32) {
        (&self.series, &self.episode_title, &self.episode, self.index)
    }

    fn new(p: &Piece, ep: Option<&Episode>) -> Self {
        let rate = ep.map(|e| e.work_rate).unwrap_or(aniprint::ingest::WORK_RATE);
        let (start, end) = p.span(rate);
        Self {
            id: p.id.clone(),
            series: ep.map(|e| e.series.clone()).unwrap_or_default(),
            episode: p.episode.clone(),
            episode_title: ep.map(|e| e.title.clone()).unwrap_or_default(),
            index: p.index,
            start_s: ms(start.0),
            end_s: ms(end.0),
            duration_s: ms(end.0 - start.0),
            status: p.status,
            flags: p.flags.iter().map(|f| f.as_str()).collect(),
            rms_dbfs: (p.rms_dbfs * 10.0).round() / 10.0,
            start_sample: p.start.0,
            end_sample: p.end.0,
            work_rate: rate.0,
        }
    }
}

/// Piece counts per status.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    keep: u64,
    drop: u64,
    unreviewed: u64,
}

impl Counts {
    fn add(&mut self, s: PieceStatus) {
        match s {
            PieceStatus::Keep => self.keep += 1,
            PieceStatus::Drop => self.drop += 1,
            PieceStatus::Unreviewed => self.unreviewed += 1,
        }
    }

    fn label(self) -> String {
        let parts: Vec<String> =
            [("keep", self.keep), ("drop", self.drop), ("new", self.unreviewed)]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(l, n)| format!("{n} {l}"))
                .collect();
        if parts.is_empty() { "-".into() } else { parts.join(", ") }
    }
}

fn counts_by_episode(pieces: &[Piece]) -> BTreeMap<&str, Counts> {
    let mut m: BTreeMap<&str, Counts> = BTreeMap::new();
    for p in pieces {
        m.entry(p.episode.as_str()).or_default().add(p.status);
    }
    m
}

/// List what was asked for.
pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if args.status.is_some() && args.what != What::Pieces {
        // Silently listing everything would read as "all of them have that status".
        anyhow::bail!("--status filters pieces: `aniprint ls pieces --status ...`");
    }
    let catalog = ctx.open_catalog()?;
    let mut out = std::io::stdout().lock();
    let episodes: Vec<Episode> = catalog
        .episodes()?
        .into_iter()
        .filter(|e| args.series.as_ref().is_none_or(|s| *s == e.series))
        .collect();
    match args.what {
        What::Series => {
            let rows = series_rows(&catalog, &episodes)?;
            if args.json {
                return super::print_json(&rows).map(|()| Outcome::Ok);
            }
            let mut t =
                Table::new(&["SERIES", "EPISODES", "PIECES", "KEPT", "DROPPED", "DURATION"])
                    .right(&[1, 2, 3, 4, 5]);
            for r in rows {
                t.row(vec![
                    r.name,
                    r.episodes.to_string(),
                    r.pieces.to_string(),
                    r.kept.to_string(),
                    r.dropped.to_string(),
                    super::hms(r.duration_s),
                ]);
            }
            t.write(&mut out)?;
        }
        What::Episodes => {
            if args.json {
                // Records stored before numbers were kept show what their file names say, as
                // the table does.
                let shown: Vec<Episode> = episodes
                    .into_iter()
                    .map(|e| Episode { numbering: e.numbering(), ..e })
                    .collect();
                return super::print_json(&shown).map(|()| Outcome::Ok);
            }
            let pieces = catalog.pieces()?;
            let counts = counts_by_episode(&pieces);
            let mut t = Table::new(&[
                "SERIES", "ID", "TITLE", "EP", "DURATION", "LANG", "AUDIO", "PIECES", "STATUS",
                "PATH",
            ])
            .right(&[4, 6, 7]);
            for e in &episodes {
                t.row(vec![
                    e.series.clone(),
                    e.id.clone(),
                    e.title.clone(),
                    e.numbering().label(),
                    super::hms(e.duration.0),
                    e.language.clone().unwrap_or_else(|| "-".into()),
                    format!("#{}", e.audio_stream),
                    e.pieces.to_string(),
                    counts.get(e.id.as_str()).copied().unwrap_or_default().label(),
                    e.path.clone(),
                ]);
            }
            t.write(&mut out)?;
        }
        What::Uploads => {
            let series_of: BTreeMap<&str, &str> =
                episodes.iter().map(|e| (e.id.as_str(), e.series.as_str())).collect();
            let mut counts: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
            let mut touched = std::collections::BTreeSet::new();
            for m in catalog.matches(&MatchFilter::default())? {
                *counts
                    .entry(m.upload.clone())
                    .or_default()
                    .entry(m.status.as_str())
                    .or_default() += 1;
                if series_of.contains_key(m.episode.as_str()) {
                    touched.insert(m.upload);
                }
            }
            let rows: Vec<UploadRow> = catalog
                .uploads()?
                .into_iter()
                .filter(|u| args.series.is_none() || touched.contains(&u.id))
                .map(|u| UploadRow { matches: counts.remove(&u.id).unwrap_or_default(), upload: u })
                .collect();
            if args.json {
                return super::print_json(&rows).map(|()| Outcome::Ok);
            }
            let mut t =
                Table::new(&["ID", "FILE", "DURATION", "SCANNED", "MATCHES", "SOURCE"]).right(&[2]);
            for r in rows {
                let u = &r.upload;
                let matches: Vec<String> = MatchStatus::ALL
                    .iter()
                    .filter_map(|s| {
                        r.matches.get(s.as_str()).map(|n| format!("{n} {}", s.as_str()))
                    })
                    .collect();
                t.row(vec![
                    u.id.clone(),
                    u.path.rsplit('/').next().unwrap_or(&u.path).to_string(),
                    super::hms(u.duration.0),
                    utc_iso(u.scanned_ms),
                    if matches.is_empty() { "none".into() } else { matches.join(", ") },
                    u.source.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            t.write(&mut out)?;
        }
        What::Pieces => {
            let by_id: BTreeMap<&str, &Episode> =
                episodes.iter().map(|e| (e.id.as_str(), e)).collect();
            let mut rows: Vec<PieceRow> = catalog
                .pieces()?
                .iter()
                .filter(|p| args.status.is_none_or(|s| s == p.status))
                .filter_map(|p| match by_id.get(p.episode.as_str()) {
                    Some(ep) => Some(PieceRow::new(p, Some(ep))),
                    // A piece whose episode is filtered out by --series is not listed.
                    None if args.series.is_some() => None,
                    None => Some(PieceRow::new(p, None)),
                })
                .collect();
            // The order `ls episodes` shows, then time.
            rows.sort_by(|a, b| a.order().cmp(&b.order()));
            if args.json {
                return super::print_json(&rows).map(|()| Outcome::Ok);
            }
            let mut t = Table::new(&[
                "ID", "SERIES", "EPISODE", "#", "START", "END", "DURATION", "STATUS", "RMS",
                "FLAGS",
            ])
            .right(&[3, 4, 5, 6, 8]);
            for r in rows {
                t.row(vec![
                    r.id,
                    r.series,
                    r.episode_title,
                    r.index.to_string(),
                    super::hms(r.start_s),
                    super::hms(r.end_s),
                    format!("{:.3}", r.duration_s),
                    r.status.as_str().into(),
                    format!("{:.1}", r.rms_dbfs),
                    if r.flags.is_empty() { "-".into() } else { r.flags.join(",") },
                ]);
            }
            t.write(&mut out)?;
        }
    }
    Ok(Outcome::Ok)
}

fn series_rows(catalog: &Catalog, episodes: &[Episode]) -> anyhow::Result<Vec<SeriesRow>> {
    let pieces = catalog.pieces()?;
    let counts = counts_by_episode(&pieces);
    let mut rows = Vec::new();
    for s in catalog.series()? {
        let eps: Vec<&Episode> = episodes.iter().filter(|e| e.series == s.name).collect();
        if eps.is_empty() {
            continue;
        }
        let c = eps.iter().fold(Counts::default(), |mut acc, e| {
            let c = counts.get(e.id.as_str()).copied().unwrap_or_default();
            acc.keep += c.keep;
            acc.drop += c.drop;
            acc.unreviewed += c.unreviewed;
            acc
        });
        rows.push(SeriesRow {
            name: s.name,
            episodes: eps.len() as u64,
            pieces: c.keep + c.drop + c.unreviewed,
            kept: c.keep,
            dropped: c.drop,
            duration_s: ms(eps.iter().map(|e| e.duration.0).sum()),
            created_ms: s.created_ms,
        });
    }
    Ok(rows)
}
