//! `aniprint report`: the match report CSV for legal teams.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use aniprint::catalog::date::parse_utc;
use aniprint::catalog::{MatchFilter, MatchStatus, now_ms};
use aniprint::report::evidence::{self, EvidenceOptions};
use aniprint::report::{self, ReportOptions};

use super::bars::Bars;
use super::{Ctx, Outcome};

/// Arguments of `aniprint report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only matches with this status (repeatable; default: all).
    #[arg(long, value_enum)]
    status: Vec<MatchStatus>,
    /// Only matches found or changed since this UTC date (YYYY-MM-DD or
    /// YYYY-MM-DDTHH:MM:SSZ).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Only matches of this upload.
    #[arg(long, value_name = "ID")]
    upload: Option<String>,
    /// Only matches into this series.
    #[arg(long, value_name = "NAME")]
    series: Option<String>,
    /// Output file; `-` for standard output.
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    out: PathBuf,
    /// Also cut each match's stretch of the upload and of the episode into DIR (FLAC, 44.1
    /// kHz, `<match_id>-upload.flac` and `<match_id>-reference.flac`, listed in
    /// DIR/SHA256SUMS) and name them in `evidence_ref`. Sources are checked against the
    /// SHA-256 on record first.
    #[arg(long, value_name = "DIR")]
    evidence: Option<PathBuf>,
    /// Start the file with a UTF-8 byte-order mark, so that Excel on Windows reads Japanese
    /// names as written (the `csv_bom` setting makes it the default).
    #[arg(long)]
    bom: bool,
    /// Longest evidence clip, seconds: a longer match is evidenced by its beginning.
    #[arg(long, value_name = "S", default_value_t = 60.0, value_parser = positive, requires = "evidence")]
    evidence_max_s: f64,
}

/// A positive, finite number of seconds.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// Build the report and write it.
pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let catalog = ctx.open_catalog()?;
    let since_ms = args
        .since
        .map(|s| parse_utc(&s).map_err(|e| anyhow::anyhow!("--since: {e}")))
        .transpose()?;
    if let Some(u) = &args.upload {
        catalog.upload(u)?;
    }
    let mut opts = ReportOptions {
        filter: MatchFilter {
            statuses: args.status,
            upload: args.upload,
            series: args.series,
            episode: None,
            since_ms,
        },
        now_ms: now_ms(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        evidence: Default::default(),
    };
    let mut outcome = Outcome::Ok;
    if let Some(dir) = &args.evidence {
        let regions = catalog.matches(&opts.filter)?;
        let sources: BTreeSet<(&str, &str)> = regions
            .iter()
            .flat_map(|m| [("u", m.upload.as_str()), ("e", m.episode.as_str())])
            .collect();
        let mut eo = EvidenceOptions::new(dir);
        eo.max_s = args.evidence_max_s;
        eo.relative_to = (args.out.as_os_str() != "-")
            .then(|| args.out.parent().map(Path::to_path_buf).unwrap_or_default());
        let bars = Bars::new(&ctx.multi, sources.len() as u64, "sources", true);
        let ev = evidence::write_clips(&catalog, &regions, &eo, &bars)?;
        bars.finish();
        for e in &ev.failed {
            eprintln!("aniprint: evidence: {e}");
            outcome = Outcome::Partial;
        }
        if !ctx.quiet {
            eprintln!(
                "evidence: {} clip(s) in {} for {} of {} match(es)",
                ev.written,
                dir.display(),
                ev.refs.len(),
                regions.len()
            );
        }
        opts.evidence = ev.refs;
    }
    let rep = report::build(&catalog, &opts)?;
    let buf = rep.to_csv_bytes(args.bom || ctx.config()?.csv_bom)?;
    if args.out.as_os_str() == "-" {
        std::io::stdout().lock().write_all(&buf)?;
    } else {
        super::rights::write_atomic(&args.out, &buf)?;
        if !ctx.quiet {
            writeln!(
                std::io::stdout(),
                "{}: report {}, {} rows, {} matches ({} without an owner)",
                args.out.display(),
                rep.id,
                rep.rows.len(),
                rep.matches,
                rep.owner_missing
            )?;
        }
    }
    Ok(outcome)
}
