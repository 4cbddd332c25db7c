//! `aniprint rights`: ownership records (import, add, list, remove, export).

use std::io::Write;
use std::path::PathBuf;

use aniprint::catalog::{Policy, RightsType, WorkKind, now_ms};
use aniprint::review::default_who;
use aniprint::rights::{self, RawRecord};
use anyhow::Context as _;

use super::table::Table;
use super::{Ctx, Outcome};

/// Subcommands of `aniprint rights`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Import ownership records from a CSV file (see catalog/rights.example.csv): every row is
    /// checked first, and either all are stored or none is. A row whose rights_id is already
    /// stored replaces that record.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Who to name in the audit log (default: $USER).
        #[arg(long, value_name = "NAME")]
        who: Option<String>,
    },
    /// Add one ownership record.
    Add(Box<AddArgs>),
    /// List ownership records.
    Ls {
        /// Only records of this series.
        #[arg(long, value_name = "NAME")]
        series: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove an ownership record.
    Rm {
        /// The record's id (see `aniprint rights ls`).
        id: String,
        /// Who to name in the audit log (default: $USER).
        #[arg(long, value_name = "NAME")]
        who: Option<String>,
    },
    /// Write every ownership record as CSV (the import format).
    Export {
        /// Output file; `-` for standard output.
        #[arg(short, long, value_name = "FILE", default_value = "-")]
        out: PathBuf,
        /// Start the file with a UTF-8 byte-order mark, for Excel on Windows (the `csv_bom`
        /// setting makes it the default; `rights import` reads either).
        #[arg(long)]
        bom: bool,
    },
}

/// Flags of `aniprint rights add`, one per CSV column.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Rights holder's name.
    #[arg(long)]
    holder: String,
    /// Holder's IPI / ISNI / society id.
    #[arg(long)]
    holder_id: Option<String>,
    /// Administrator or publisher.
    #[arg(long)]
    administrator: Option<String>,
    /// Title of the work.
    #[arg(long)]
    work: String,
    /// Kind of work.
    #[arg(long, value_enum)]
    kind: WorkKind,
    /// ISRC (recordings).
    #[arg(long)]
    isrc: Option<String>,
    /// ISWC (compositions).
    #[arg(long)]
    iswc: Option<String>,
    /// Other identifiers (ISAN, EIDR, UPC, internal), separated by `;`.
    #[arg(long)]
    other_ids: Option<String>,
    /// Scope: series name.
    #[arg(long)]
    series: String,
    /// Scope: episode id (default: the whole series).
    #[arg(long)]
    episode: Option<String>,
    /// Scope: piece id.
    #[arg(long)]
    piece: Option<String>,
    /// Scope: start of a time range in the episode (seconds or HH:MM:SS.mmm).
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Scope: end of that range.
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// Which right.
    #[arg(long, value_enum)]
    rights_type: RightsType,
    /// Share of that right, percent.
    #[arg(long, value_name = "PCT")]
    share: String,
    /// ISO 3166-1 alpha-2 codes separated by commas, or WW (default).
    #[arg(long, value_name = "CODES", default_value = "WW")]
    territories: String,
    /// The territories listed are where the record does NOT apply.
    #[arg(long)]
    exclude_territories: bool,
    /// First day the record applies (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// Last day the record applies (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    to: Option<String>,
    /// Licence type (exclusive, non-exclusive, sync licence, ...).
    #[arg(long)]
    licence: Option<String>,
    /// Policy for matching uploads.
    #[arg(long, value_enum)]
    policy: Policy,
    /// Contact for claims.
    #[arg(long)]
    contact: Option<String>,
    /// Contract or document reference.
    #[arg(long)]
    source_document: Option<String>,
    /// Record id (default: the next free r000001-style id); an existing id is replaced.
    #[arg(long)]
    id: Option<String>,
    /// Who to name in the audit log (default: $USER).
    #[arg(long, value_name = "NAME")]
    who: Option<String>,
}

impl AddArgs {
    fn raw(&self) -> RawRecord {
        let mut r = RawRecord::default();
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        r.set("rights_id", o(&self.id))
            .set("rights_holder", &self.holder)
            .set("holder_id", o(&self.holder_id))
            .set("administrator", o(&self.administrator))
            .set("work_title", &self.work)
            .set("work_kind", self.kind.as_str())
            .set("isrc", o(&self.isrc))
            .set("iswc", o(&self.iswc))
            .set("other_ids", o(&self.other_ids))
            .set("series", &self.series)
            .set("episode", o(&self.episode))
            .set("piece", o(&self.piece))
            .set("start_s", o(&self.start))
            .set("end_s", o(&self.end))
            .set("rights_type", self.rights_type.as_str())
            .set("share_pct", &self.share)
            .set("territories", &self.territories)
            .set("territory_mode", if self.exclude_territories { "exclude" } else { "include" })
            .set("valid_from", o(&self.from))
            .set("valid_to", o(&self.to))
            .set("licence_type", o(&self.licence))
            .set("policy", self.policy.as_str())
            .set("contact", o(&self.contact))
            .set("source_document", o(&self.source_document));
        r
    }
}

/// Run a rights subcommand.
pub fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let catalog = ctx.open_catalog()?;
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::Import { file, who } => {
            let who = who.unwrap_or_else(default_who);
            let stored = rights::import_file(&catalog, &file, &who, now_ms())?;
            if !ctx.quiet {
                writeln!(
                    out,
                    "{}: {} records stored ({} new, {} replaced)",
                    file.display(),
                    stored.records.len(),
                    stored.created,
                    stored.replaced
                )?;
            }
        }
        Command::Add(args) => {
            let who = args.who.clone().unwrap_or_else(default_who);
            let rec = rights::add(&catalog, args.raw(), &who, now_ms())?;
            if !ctx.quiet {
                writeln!(out, "{}", rec.rights_id)?;
            }
        }
        Command::Ls { series, json } => {
            let recs: Vec<_> = catalog
                .rights()?
                .into_iter()
                .filter(|r| series.as_ref().is_none_or(|s| *s == r.series))
                .collect();
            if json {
                return super::print_json(&recs).map(|()| Outcome::Ok);
            }
            let mut t = Table::new(&[
                "ID", "HOLDER", "WORK", "KIND", "TYPE", "SHARE", "SCOPE", "TERR", "VALID", "POLICY",
            ])
            .right(&[5]);
            for r in &recs {
                let terr = match r.territory_mode {
                    aniprint::catalog::TerritoryMode::Include => r.territories.join(","),
                    aniprint::catalog::TerritoryMode::Exclude => {
                        format!("not {}", r.territories.join(","))
                    }
                };
                let d = |d: Option<aniprint::catalog::date::Date>| {
                    d.map(|d| d.to_string()).unwrap_or_else(|| "..".into())
                };
                let valid = if r.valid_from.is_none() && r.valid_to.is_none() {
                    "always".into()
                } else {
                    format!("{}/{}", d(r.valid_from), d(r.valid_to))
                };
                t.row(vec![
                    r.rights_id.clone(),
                    r.rights_holder.clone(),
                    r.work_title.clone(),
                    r.work_kind.as_str().into(),
                    r.rights_type.as_str().into(),
                    format!("{}%", r.share_pct),
                    rights::scope_label(r),
                    terr,
                    valid,
                    r.policy.as_str().into(),
                ]);
            }
            t.write(&mut out)?;
        }
        Command::Rm { id, who } => {
            let who = who.unwrap_or_else(default_who);
            let rec = catalog.remove_rights(&id, &who, now_ms())?;
            if !ctx.quiet {
                writeln!(
                    out,
                    "removed {} ({} / {})",
                    rec.rights_id, rec.rights_holder, rec.work_title
                )?;
            }
        }
        Command::Export { out: path, bom } => {
            let recs = catalog.rights()?;
            let mut buf = Vec::new();
            if bom || ctx.config()?.csv_bom {
                buf.extend_from_slice(aniprint::report::UTF8_BOM);
            }
            rights::write_csv(&recs, &mut buf)?;
            if path.as_os_str() == "-" {
                out.write_all(&buf)?;
            } else {
                write_atomic(&path, &buf)?;
                if !ctx.quiet {
                    writeln!(out, "{}: {} records", path.display(), recs.len())?;
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

/// Write a file through a temporary sibling and a rename, so readers never see half of it.
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
