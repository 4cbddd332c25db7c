//! `aniprint pieces`: curation of pieces (keep / drop).

use std::io::Write;

use aniprint::catalog::{Catalog, PieceStatus};

use super::{Ctx, Outcome};

/// Subcommands of `aniprint pieces`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Set the status of pieces (or of every piece of an episode, given its id).
    Set {
        /// Piece ids (see `aniprint ls pieces`) or episode ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// The new status.
        #[arg(long, value_enum)]
        status: PieceStatus,
        /// Free-text note for the audit log.
        #[arg(long)]
        note: Option<String>,
        /// Who to name in the audit log (default: $USER).
        #[arg(long, value_name = "NAME")]
        who: Option<String>,
    },
    /// Mark every unreviewed piece `keep` (dropped pieces stay dropped).
    KeepAll {
        /// Only the pieces of these episodes (repeatable).
        #[arg(long, value_name = "ID")]
        episode: Vec<String>,
    },
}

/// Change statuses in one transaction, audited: all or nothing.
pub fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let catalog = ctx.open_catalog()?;
    let (mut who, mut note) = (None, None);
    let (ids, status) = match cmd {
        Command::Set { ids, status, note: n, who: w } => {
            (who, note) = (w, n);
            (expand(&catalog, &ids)?, status)
        }
        Command::KeepAll { episode } => {
            let pieces = if episode.is_empty() {
                catalog.pieces()?
            } else {
                let mut v = Vec::new();
                for e in &episode {
                    catalog.episode(e)?;
                    v.extend(catalog.pieces_of(e)?);
                }
                v
            };
            let ids = pieces
                .into_iter()
                .filter(|p| p.status == PieceStatus::Unreviewed)
                .map(|p| p.id)
                .collect();
            (ids, PieceStatus::Keep)
        }
    };
    let who = who.unwrap_or_else(aniprint::review::default_who);
    let changed = catalog.set_pieces_status_audited(
        &ids,
        status,
        &who,
        note.as_deref(),
        aniprint::catalog::now_ms(),
    )?;
    if !ctx.quiet {
        writeln!(std::io::stdout(), "{} pieces set to {}", changed.len(), status.as_str())?;
    }
    Ok(Outcome::Ok)
}

/// Piece ids as given; an episode id stands for all of its pieces.
fn expand(catalog: &Catalog, ids: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for id in ids {
        if !id.contains('-')
            && let Ok(ep) = catalog.episode(id)
        {
            out.extend(catalog.pieces_of(&ep.id)?.into_iter().map(|p| p.id));
            continue;
        }
        out.push(id.clone());
    }
    Ok(out)
}
