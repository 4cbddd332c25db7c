//! `aniprint report`: the match report CSV for legal teams.

use std::io::Write;
use std::path::PathBuf;

use aniprint::catalog::date::parse_utc;
use aniprint::catalog::{MatchFilter, MatchStatus, now_ms};
use aniprint::report::{self, ReportOptions};

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
    let opts = ReportOptions {
        filter: MatchFilter {
            statuses: args.status,
            upload: args.upload,
            series: args.series,
            episode: None,
            since_ms,
        },
        now_ms: now_ms(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
    };
    let rep = report::build(&catalog, &opts)?;
    if args.out.as_os_str() == "-" {
        rep.write_csv(std::io::stdout().lock())?;
    } else {
        let mut buf = Vec::new();
        rep.write_csv(&mut buf)?;
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
    Ok(Outcome::Ok)
}
