//! The audit log: an append-only record of every review and curation change (match status,
//! piece status, rights records). Keys are a monotonically increasing `u64` sequence; nothing
//! in aniprint rewrites or deletes a record, and undo is a new record that points at the one
//! it reverts.

use heed::{RoTxn, RwTxn};
use serde::{Deserialize, Serialize};

use super::records::{Piece, PieceStatus};
use super::{Catalog, Dbs};
use crate::{Error, Result};

/// What kind of record an audit entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A match region (review status).
    Match,
    /// A piece (dataset curation status).
    Piece,
    /// An ownership record.
    Rights,
}

impl TargetKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Match => "match",
            TargetKind::Piece => "piece",
            TargetKind::Rights => "rights",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    /// A status change (`from` -> `to`).
    #[default]
    Set,
    /// The revert of an earlier record (`undoes`); `from`/`to` are the statuses it moved
    /// between.
    Undo,
    /// A record was created.
    Create,
    /// A record was replaced by a new version (a re-import with the same id).
    Replace,
    /// A record was deleted.
    Delete,
}

impl AuditAction {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Set => "set",
            AuditAction::Undo => "undo",
            AuditAction::Create => "create",
            AuditAction::Replace => "replace",
            AuditAction::Delete => "delete",
        }
    }
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log (1, 2, ...); also the key.
    pub seq: u64,
    /// When (Unix ms, UTC).
    pub at_ms: u64,
    /// Who (`$USER`, `--who`, or `aniprint` for auto-rules).
    pub who: String,
    /// Kind of the record changed.
    pub kind: TargetKind,
    /// Id of the record changed.
    pub target: String,
    /// What happened.
    pub action: AuditAction,
    /// Status before (status changes).
    #[serde(default)]
    pub from: Option<String>,
    /// Status after (status changes).
    #[serde(default)]
    pub to: Option<String>,
    /// Reason code.
    #[serde(default)]
    pub reason: Option<String>,
    /// Free-text note.
    #[serde(default)]
    pub note: Option<String>,
    /// Undo records: the `seq` reverted.
    #[serde(default)]
    pub undoes: Option<u64>,
    /// Dispute deadline set by this change (Unix ms, UTC).
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// Exclusion id this change added.
    #[serde(default)]
    pub exclusion_added: Option<String>,
    /// Exclusion id this change lifted.
    #[serde(default)]
    pub exclusion_removed: Option<String>,
}

impl AuditRecord {
    /// A `set` record with only the target and actor filled in (`seq` is assigned on append).
    pub fn new(who: &str, at_ms: u64, kind: TargetKind, target: &str) -> Self {
        Self {
            seq: 0,
            at_ms,
            who: who.into(),
            kind,
            target: target.into(),
            action: AuditAction::Set,
            from: None,
            to: None,
            reason: None,
            note: None,
            undoes: None,
            deadline_ms: None,
            exclusion_added: None,
            exclusion_removed: None,
        }
    }
}

impl Catalog {
    /// Append `rec` inside a write transaction; its `seq` is set to one past the last. Returns
    /// the seq.
    pub(super) fn append_audit(w: &mut RwTxn<'_>, d: &Dbs, mut rec: AuditRecord) -> Result<u64> {
        let seq = d.audit.last(w)?.map_or(1, |(k, _)| k + 1);
        rec.seq = seq;
        d.audit.put(w, &seq, &rec)?;
        d.audit_by_target.put(w, &target_key(rec.kind, &rec.target, seq), &())?;
        Ok(seq)
    }

    /// The audit records of one target, oldest first, inside a transaction.
    pub(super) fn audit_of_in(
        r: &RoTxn<'_>,
        d: &Dbs,
        kind: TargetKind,
        id: &str,
    ) -> Result<Vec<AuditRecord>> {
        let prefix = format!("{}/{id}/", kind.as_str());
        let mut out = Vec::new();
        for kv in d.audit_by_target.prefix_iter(r, &prefix)? {
            let (k, ()) = kv?;
            let seq: u64 = k[prefix.len()..]
                .parse()
                .map_err(|_| Error::Record { what: "audit index", reason: k.into() })?;
            if let Some(rec) = d.audit.get(r, &seq)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// The whole audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditRecord>> {
        self.read(|r, d| super::collect(d.audit.iter(r)?))
    }

    /// The audit records of one target (a match id, piece id or rights id), oldest first.
    pub fn audit_of(&self, kind: TargetKind, id: &str) -> Result<Vec<AuditRecord>> {
        self.read(|r, d| Self::audit_of_in(r, d, kind, id))
    }

    /// Set the curation status of several pieces in one transaction, with one audit record per
    /// piece whose status changes: either every id is found and all change, or nothing does.
    pub fn set_pieces_status_audited(
        &self,
        ids: &[String],
        status: PieceStatus,
        who: &str,
        note: Option<&str>,
        now_ms: u64,
    ) -> Result<Vec<Piece>> {
        self.write(|w, d| {
            let mut changed = Vec::with_capacity(ids.len());
            for id in ids {
                let mut p = d
                    .pieces
                    .get(w, id)?
                    .ok_or_else(|| Error::NotFound { kind: "piece", id: id.clone() })?;
                if p.status != status {
                    let rec = AuditRecord {
                        from: Some(p.status.as_str().into()),
                        to: Some(status.as_str().into()),
                        note: note.map(String::from),
                        ..AuditRecord::new(who, now_ms, TargetKind::Piece, id)
                    };
                    Self::append_audit(w, d, rec)?;
                    p.status = status;
                    d.pieces.put(w, id, &p)?;
                }
                changed.push(p);
            }
            Ok(changed)
        })
    }
}

fn target_key(kind: TargetKind, id: &str, seq: u64) -> String {
    format!("{}/{id}/{seq:020}", kind.as_str())
}
