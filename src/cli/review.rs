//! `aniprint review`: the match review workflow from the command line (list, set, undo, log).

use std::io::Write;

use aniprint::catalog::date::{Date, parse_utc, utc_iso};
use aniprint::catalog::{AuditRecord, MatchFilter, MatchStatus, now_ms};
use aniprint::review::{self, Decision, default_who};
use serde::Serialize;

use super::table::Table;
use super::{Ctx, Outcome};

/// Subcommands of `aniprint review`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List matches.
    Ls {
        /// Only matches with this status (repeatable).
        #[arg(long, value_enum)]
        status: Vec<MatchStatus>,
        /// Only matches into this series.
        #[arg(long, value_name = "NAME")]
        series: Option<String>,
        /// Only matches of this upload.
        #[arg(long, value_name = "ID")]
        upload: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a match's status: pending -> confirmed|dismissed; confirmed -> disputed|dismissed;
    /// dismissed -> pending; disputed -> confirmed|dismissed|escalated.
    Set {
        /// The match id (see `aniprint review ls`).
        id: String,
        /// The new status.
        #[arg(value_enum)]
        status: MatchStatus,
        /// Reason code. Dismissed: false_positive, licensed, own_content, public_domain,
        /// too_short. Disputed (required): misidentified, fair_use, authorized, original,
        /// public_domain.
        #[arg(long, value_name = "CODE")]
        reason: Option<String>,
        /// Free-text note for the audit log.
        #[arg(long)]
        note: Option<String>,
        /// With dismissed: stop later scans from matching this reference range.
        #[arg(long)]
        exclude: bool,
        /// With disputed: the deadline (YYYY-MM-DD, meaning the end of that day, or
        /// YYYY-MM-DDTHH:MM:SSZ; UTC); default from the settings' review.dispute_days.
        #[arg(long, value_name = "DATE")]
        deadline: Option<String>,
        /// Who to name in the audit log (default: $USER).
        #[arg(long, value_name = "NAME")]
        who: Option<String>,
    },
    /// Revert the last change of a match (repeat to walk further back); the undo is audited.
    Undo {
        /// The match id.
        id: String,
        /// Free-text note for the audit log.
        #[arg(long)]
        note: Option<String>,
        /// Who to name in the audit log (default: $USER).
        #[arg(long, value_name = "NAME")]
        who: Option<String>,
    },
    /// Show the audit log (of one match, piece or rights record, given its id).
    Log {
        /// Only records about this id.
        id: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the reference ranges excluded from scans by dismissals.
    Exclusions {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// An audit record with a readable time, for `review log --json`.
#[derive(Debug, Serialize)]
struct LogRow<'a> {
    at_utc: String,
    #[serde(flatten)]
    record: &'a AuditRecord,
}

/// Run a review subcommand.
pub fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let catalog = ctx.open_catalog()?;
    let mut out = std::io::stdout().lock();
    match cmd {
        Command::Ls { status, series, upload, json } => {
            let filter = MatchFilter { statuses: status, series, upload, ..MatchFilter::default() };
            let matches = catalog.matches(&filter)?;
            if json {
                return super::print_json(&matches).map(|()| Outcome::Ok);
            }
            let mut t = Table::new(&[
                "MATCH",
                "STATUS",
                "BAND",
                "SCORE",
                "STEM",
                "UPLOAD",
                "UPLOAD AT",
                "EPISODE",
                "EPISODE AT",
                "DUR",
            ])
            .right(&[3, 9]);
            for m in &matches {
                let status = match &m.rule {
                    Some(rule) => format!("{} ({rule})", m.status),
                    None => m.status.to_string(),
                };
                t.row(vec![
                    m.id.clone(),
                    status,
                    m.band.as_str().into(),
                    format!("{:.3}", m.score),
                    m.stem.as_str().into(),
                    m.upload.clone(),
                    format!("{}-{}", super::hms(m.upload_start.0), super::hms(m.upload_end.0)),
                    m.episode.clone(),
                    format!("{}-{}", super::hms(m.episode_start.0), super::hms(m.episode_end.0)),
                    format!("{:.1}s", m.duration().0),
                ]);
            }
            t.write(&mut out)?;
        }
        Command::Set { id, status, reason, note, exclude, deadline, who } => {
            let cfg = ctx.config()?;
            // A date alone means the end of that day (UTC).
            let deadline_ms = deadline
                .map(|d| match d.parse::<Date>() {
                    Ok(day) => Ok(day.add_days(1).start_ms() - 1000),
                    Err(_) => parse_utc(&d).map_err(|e| anyhow::anyhow!("--deadline: {e}")),
                })
                .transpose()?;
            let who = who.unwrap_or_else(default_who);
            let decision = Decision { reason, note, exclude, deadline_ms };
            let m =
                review::set_status(&catalog, &cfg.review, &id, status, decision, &who, now_ms())?;
            if !ctx.quiet {
                let deadline = m
                    .review
                    .as_ref()
                    .and_then(|r| r.deadline_ms)
                    .map(|d| format!(", deadline {}", utc_iso(d)))
                    .unwrap_or_default();
                let excl = if exclude { ", reference range excluded from scans" } else { "" };
                writeln!(out, "{id}: {}{deadline}{excl}", m.status)?;
            }
        }
        Command::Undo { id, note, who } => {
            let who = who.unwrap_or_else(default_who);
            let u = review::undo(&catalog, &id, &who, note.as_deref(), now_ms())?;
            if !ctx.quiet {
                writeln!(
                    out,
                    "{id}: {} -> {} (undid #{} by {})",
                    u.record.from.as_deref().unwrap_or("?"),
                    u.region.status,
                    u.reverted.seq,
                    u.reverted.who
                )?;
            }
        }
        Command::Log { id, json } => {
            let log: Vec<AuditRecord> = match &id {
                Some(id) => catalog.audit_log()?.into_iter().filter(|r| &r.target == id).collect(),
                None => catalog.audit_log()?,
            };
            if json {
                let rows: Vec<LogRow<'_>> =
                    log.iter().map(|r| LogRow { at_utc: utc_iso(r.at_ms), record: r }).collect();
                return super::print_json(&rows).map(|()| Outcome::Ok);
            }
            let mut t = Table::new(&[
                "#",
                "WHEN (UTC)",
                "WHO",
                "KIND",
                "ID",
                "ACTION",
                "FROM",
                "TO",
                "REASON",
                "NOTE",
            ])
            .right(&[0]);
            for r in &log {
                let mut action = r.action.as_str().to_string();
                if let Some(u) = r.undoes {
                    action.push_str(&format!(" #{u}"));
                }
                let mut note = r.note.clone().unwrap_or_default();
                for (what, ex) in [("+excl", &r.exclusion_added), ("-excl", &r.exclusion_removed)] {
                    if ex.is_some() {
                        note = if note.is_empty() { what.into() } else { format!("{note} {what}") };
                    }
                }
                t.row(vec![
                    r.seq.to_string(),
                    utc_iso(r.at_ms),
                    r.who.clone(),
                    r.kind.as_str().into(),
                    r.target.clone(),
                    action,
                    r.from.clone().unwrap_or_default(),
                    r.to.clone().unwrap_or_default(),
                    r.reason.clone().unwrap_or_default(),
                    note,
                ]);
            }
            t.write(&mut out)?;
        }
        Command::Exclusions { json } => {
            let ex = catalog.exclusions()?;
            if json {
                return super::print_json(&ex).map(|()| Outcome::Ok);
            }
            let mut t = Table::new(&["EPISODE", "RANGE", "MATCH", "WHO", "WHEN (UTC)"]);
            for e in &ex {
                t.row(vec![
                    e.episode.clone(),
                    format!("{}-{}", e.start.hms(), e.end.hms()),
                    e.match_id.clone(),
                    e.who.clone(),
                    utc_iso(e.created_ms),
                ]);
            }
            t.write(&mut out)?;
        }
    }
    Ok(Outcome::Ok)
}
