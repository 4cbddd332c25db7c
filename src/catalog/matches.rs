//! Uploads, the match regions a scan finds in them, the review transitions of a match, and the
//! exclusion list that dismissals feed back to later scans.
//!
//! The scan pipeline's side of the contract is three calls:
//!
//! 1. [`Catalog::is_excluded`] before spending work on a candidate region (optional: `put_scan`
//!    drops excluded regions anyway);
//! 2. [`Catalog::put_scan`] with the [`Upload`] and every [`MatchRegion`] found, once per scan;
//!    it stores them, replaces the upload's earlier *pending* matches, keeps reviewed ones, and
//!    applies the auto-review rules of [`ReviewConfig`] in the same transaction;
//! 3. nothing else: reviewers take it from there (`aniprint review`, the TUI).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use heed::RwTxn;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::audit::{AuditAction, AuditRecord, TargetKind};
use super::{Catalog, Dbs};
use crate::review::{ReviewConfig, check_reason};
use crate::units::Seconds;
use crate::{Error, Result};

/// Who the audit log names for changes made by auto-review rules.
pub const RULE_ACTOR: &str = "aniprint";

/// A range counts as excluded when at least this fraction of it lies in one excluded range.
pub const EXCLUDED_FRACTION: f64 = 0.5;

/// Which stem of the upload (and of the reference) a match was found in: the index's stem
/// type, so scan results go into the catalog without conversion.
pub use crate::index::Stem;

/// Confidence band of a match score; ordered `Low < Medium < High`. The scan decides the band
/// (its thresholds belong to the fingerprint model).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// Likely a false positive; always left for a human.
    Low,
    /// Plausible.
    Medium,
    /// Strong evidence.
    High,
}

impl Band {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Low => "low",
            Band::Medium => "medium",
            Band::High => "high",
        }
    }
}

/// Review status of a match, mapped to Content ID's claim states (WORKFLOW.md §3).
///
/// Allowed transitions (anything else is refused with [`Error::InvalidTransition`]):
///
/// | from | to |
/// |---|---|
/// | pending | confirmed, dismissed |
/// | confirmed | disputed, dismissed |
/// | dismissed | pending (reopen) |
/// | disputed | confirmed (reinstated), dismissed (released), escalated |
/// | escalated | — (terminal) |
///
/// `review undo` reverts the last change whatever it was; it is not a transition.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum MatchStatus {
    /// Found by a scan, waiting for a reviewer.
    #[default]
    Pending,
    /// Reuse accepted (by a reviewer or an auto-rule); rights attach.
    Confirmed,
    /// False positive or licensed use.
    Dismissed,
    /// Contested by the counterparty; has a reason and a deadline.
    Disputed,
    /// Handed to legal for a formal notice; terminal.
    Escalated,
}

impl MatchStatus {
    /// Every status, in workflow order.
    pub const ALL: [MatchStatus; 5] = [
        MatchStatus::Pending,
        MatchStatus::Confirmed,
        MatchStatus::Dismissed,
        MatchStatus::Disputed,
        MatchStatus::Escalated,
    ];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchStatus::Pending => "pending",
            MatchStatus::Confirmed => "confirmed",
            MatchStatus::Dismissed => "dismissed",
            MatchStatus::Disputed => "disputed",
            MatchStatus::Escalated => "escalated",
        }
    }

    /// The statuses a match in this status may move to.
    pub fn next(self) -> &'static [MatchStatus] {
        use MatchStatus::*;
        match self {
            Pending => &[Confirmed, Dismissed],
            Confirmed => &[Disputed, Dismissed],
            Dismissed => &[Pending],
            Disputed => &[Confirmed, Dismissed, Escalated],
            Escalated => &[],
        }
    }

    /// Whether `self -> to` is an allowed transition.
    pub fn can_become(self, to: MatchStatus) -> bool {
        self.next().contains(&to)
    }
}

impl fmt::Display for MatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MatchStatus {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        MatchStatus::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            format!("unknown status {s:?} (pending, confirmed, dismissed, disputed, escalated)")
        })
    }
}

/// The models and settings a scan ran with (the report's `fingerprint_model`, `separator_model`,
/// `index_version` and `score_threshold` columns).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanModels {
    /// Fingerprint model: name and weights hash, e.g. `fp-v1@3f2a9c1b`.
    pub fingerprint: String,
    /// Separator model: name and weights hash (empty when only the mix was scanned).
    pub separator: String,
    /// Vector index version (format and build), e.g. `arroy-0.9/2`.
    pub index: String,
    /// Base score threshold: a region was stored when its score reached [`ScanModels::bar`].
    pub score_threshold: f32,
    /// The part of a region's bar that shrinks with its length: `threshold_scale /
    /// sqrt(segments_voted)`. Scans recorded before it was kept used the default, which no
    /// option could change.
    #[serde(default = "default_threshold_scale")]
    pub threshold_scale: f32,
    /// Added to the bar of voice-stem regions (as `threshold_scale`, the default in older
    /// records).
    #[serde(default = "default_voice_margin")]
    pub voice_margin: f32,
}

/// The default of [`ScanModels::threshold_scale`] (and of the scan option it records).
pub const DEFAULT_THRESHOLD_SCALE: f32 = 0.4;
/// The default of [`ScanModels::voice_margin`] (and of the scan option it records).
pub const DEFAULT_VOICE_MARGIN: f32 = 0.1;

fn default_threshold_scale() -> f32 {
    DEFAULT_THRESHOLD_SCALE
}

fn default_voice_margin() -> f32 {
    DEFAULT_VOICE_MARGIN
}

/// The score a region of `stem` voted by `votes` segments must reach: `base`, plus `margin`
/// for the voice stem, plus `scale / sqrt(votes)` (scan applies it, the report shows it).
pub fn region_bar(base: f32, scale: f32, margin: f32, stem: Stem, votes: u32) -> f32 {
    let margin = if stem == Stem::Voice { margin } else { 0.0 };
    base + margin + scale / (votes.max(1) as f32).sqrt()
}

impl ScanModels {
    /// The score a region of `stem` voted by `votes` segments had to reach to be stored.
    pub fn bar(&self, stem: Stem, votes: u32) -> f32 {
        region_bar(self.score_threshold, self.threshold_scale, self.voice_margin, stem, votes)
    }
}

/// One scanned upload (the query side of the match report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// Stable id: the first 12 hex digits of the content's SHA-256 ([`Upload::make_id`]).
    pub id: String,
    /// Path at scan time (lossy UTF-8 for display; [`Upload::source_path`] reopens it).
    pub path: String,
    /// The path's bytes when they are not UTF-8, which `path` cannot hold
    /// ([`crate::catalog::path_fields`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<Vec<u8>>,
    /// Where it came from (URL, platform video id), if known.
    #[serde(default)]
    pub source: Option<String>,
    /// Full SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Decoded duration.
    pub duration: Seconds,
    /// When the scan ran (Unix ms, UTC).
    pub scanned_ms: u64,
    /// What the scan ran with.
    #[serde(default)]
    pub models: ScanModels,
    /// Index of the audio stream the scan decoded (none in scans recorded before it was kept:
    /// the file's default stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_stream: Option<usize>,
}

impl Upload {
    /// The file as scanned, to open again (evidence clips).
    pub fn source_path(&self) -> std::path::PathBuf {
        super::records::stored_path(&self.path, self.path_bytes.as_deref())
    }

    /// The upload id for a content hash (hex SHA-256): its first 12 digits.
    pub fn make_id(sha256: &str) -> String {
        sha256.chars().take(12).collect()
    }
}

/// The last review decision on a match (denormalised from the audit log for listings and
/// reports; the audit log stays the record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Reviewer (`$USER`, `--who`) or [`RULE_ACTOR`] for auto-rules.
    pub who: String,
    /// When (Unix ms, UTC).
    pub at_ms: u64,
    /// Reason code (dismissal or dispute code, or `auto:<rule>`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Free-text note.
    #[serde(default)]
    pub note: Option<String>,
    /// Dispute deadline (Unix ms, UTC), for disputed matches.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

/// One matched region: an upload time range that reuses an episode time range, in one stem.
///
/// The scan fills the measured fields; [`Catalog::put_scan`] owns `id`, `status`, `rule`,
/// `review`, `created_ms` and `updated_ms` (whatever the caller puts there is overwritten).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchRegion {
    /// Stable id ([`MatchRegion::make_id`]): the same region found again by a later scan of the
    /// same upload keeps its id, so its review survives the rescan.
    pub id: String,
    /// Upload id.
    pub upload: String,
    /// Stem the match was found in.
    pub stem: Stem,
    /// Start of the region in the upload.
    pub upload_start: Seconds,
    /// End of the region in the upload.
    pub upload_end: Seconds,
    /// Reference episode id.
    pub episode: String,
    /// Reference piece ids the region touches, in time order.
    #[serde(default)]
    pub pieces: Vec<String>,
    /// Start of the reused range in the episode.
    pub episode_start: Seconds,
    /// End of the reused range in the episode.
    pub episode_end: Seconds,
    /// Match score (model-specific; higher is stronger).
    pub score: f32,
    /// Confidence band of the score.
    pub band: Band,
    /// Longest contiguous run of agreeing segments inside the region.
    #[serde(default)]
    pub longest_contiguous: Seconds,
    /// How many query segments voted for this region's offset.
    #[serde(default)]
    pub segments_voted: u32,
    /// Path to evidence (clip pair, spectrogram PNG), if the scan wrote any.
    #[serde(default)]
    pub evidence: Option<String>,
    /// Review status.
    #[serde(default)]
    pub status: MatchStatus,
    /// `auto:<rule name>` when the current status was set by an auto-review rule.
    #[serde(default)]
    pub rule: Option<String>,
    /// The decision that set the current status (none while untouched).
    #[serde(default)]
    pub review: Option<Review>,
    /// When first stored (Unix ms, UTC).
    #[serde(default)]
    pub created_ms: u64,
    /// When last changed (Unix ms, UTC).
    #[serde(default)]
    pub updated_ms: u64,
    /// What the scan that found it ran with. A rescan replaces the upload's record but keeps
    /// reviewed matches, whose report rows must still name their own scan's models. `None` in
    /// records from before it was kept (the upload's apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<ScanModels>,
}

impl MatchRegion {
    /// What the scan that found it ran with, and when (Unix ms): its own record, else (a match
    /// stored before they were kept) the upload's.
    pub fn found_with<'a>(&'a self, upload: &'a Upload) -> (&'a ScanModels, u64) {
        let ms = if self.created_ms > 0 { self.created_ms } else { upload.scanned_ms };
        (self.models.as_ref().unwrap_or(&upload.models), ms)
    }

    /// The stable id of a region: 12 hex digits of the SHA-256 of the upload id, stem, episode
    /// id and the four range ends rounded to whole seconds.
    pub fn make_id(
        upload: &str,
        stem: Stem,
        episode: &str,
        upload_range: (Seconds, Seconds),
        episode_range: (Seconds, Seconds),
    ) -> String {
        let r = |s: Seconds| s.0.round() as i64;
        let key = format!(
            "{upload}\x1f{}\x1f{episode}\x1f{}\x1f{}\x1f{}\x1f{}",
            stem.as_str(),
            r(upload_range.0),
            r(upload_range.1),
            r(episode_range.0),
            r(episode_range.1)
        );
        hex::encode(&Sha256::digest(key.as_bytes())[..6])
    }

    /// This region's id by [`MatchRegion::make_id`].
    pub fn computed_id(&self) -> String {
        Self::make_id(
            &self.upload,
            self.stem,
            &self.episode,
            (self.upload_start, self.upload_end),
            (self.episode_start, self.episode_end),
        )
    }

    /// Length of the region (upload side).
    pub fn duration(&self) -> Seconds {
        Seconds((self.upload_end.0 - self.upload_start.0).max(0.0))
    }

    /// Whether `other` is this region found again, with its ends moved: the same upload, stem
    /// and episode, an alignment within a second, and upload ranges that share at least half
    /// of the shorter one. A rescan (another model, a rebuilt index) moves ends by a hop or
    /// two, which can change the id's whole seconds; a reviewed match must not come back as a
    /// new pending one beside it.
    pub fn same_reuse(&self, other: &MatchRegion) -> bool {
        let offset = |m: &MatchRegion| m.episode_start.0 - m.upload_start.0;
        let shared = self.upload_end.0.min(other.upload_end.0)
            - self.upload_start.0.max(other.upload_start.0);
        self.upload == other.upload
            && self.stem == other.stem
            && self.episode == other.episode
            && (offset(self) - offset(other)).abs() <= 1.0
            && shared > 0.0
            && shared >= 0.5 * self.duration().0.min(other.duration().0)
    }
}

/// Which matches [`Catalog::matches`] returns; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchFilter {
    /// Only these statuses.
    pub statuses: Vec<MatchStatus>,
    /// Only this upload.
    pub upload: Option<String>,
    /// Only matches into episodes of this series.
    pub series: Option<String>,
    /// Only matches into this episode.
    pub episode: Option<String>,
    /// Only matches created or changed at or after this time (Unix ms, UTC).
    pub since_ms: Option<u64>,
}

/// A reference range that later scans must not match again (from a dismissal with
/// `--exclude`). It applies to every stem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exclusion {
    /// `<episode>/<match id>`.
    pub id: String,
    /// Episode id.
    pub episode: String,
    /// Start of the excluded range.
    pub start: Seconds,
    /// End of the excluded range.
    pub end: Seconds,
    /// The dismissed match it came from.
    pub match_id: String,
    /// Who dismissed it.
    pub who: String,
    /// When (Unix ms, UTC).
    pub created_ms: u64,
}

impl Exclusion {
    fn key(episode: &str, match_id: &str) -> String {
        format!("{episode}/{match_id}")
    }

    /// Whether at least [`EXCLUDED_FRACTION`] of `start..end` lies in this range (a zero-length
    /// range: whether it lies inside).
    pub fn covers(&self, start: Seconds, end: Seconds) -> bool {
        let len = end.0 - start.0;
        if len <= 0.0 {
            return self.start.0 <= start.0 && start.0 <= self.end.0;
        }
        let overlap = end.0.min(self.end.0) - start.0.max(self.start.0);
        overlap >= EXCLUDED_FRACTION * len
    }
}

/// What [`Catalog::put_scan`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanStored {
    /// Regions stored (pending or auto-reviewed).
    pub stored: usize,
    /// Pending matches of an earlier scan of this upload that were removed.
    pub replaced: usize,
    /// Regions that already had a reviewed match (the same id, or the same reuse with its ends
    /// moved), kept as reviewed (not overwritten).
    pub kept_reviewed: usize,
    /// Regions dropped because their reference range is excluded.
    pub excluded: usize,
    /// Regions given to the same id twice in one call (the higher score was kept).
    pub duplicates: usize,
    /// `(match id, rule)` for each region an auto-rule reviewed.
    pub auto_reviewed: Vec<(String, String)>,
}

/// A review decision for [`Catalog::set_match_status`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// New status.
    pub to: MatchStatus,
    /// Who decides (goes to the audit log).
    pub who: String,
    /// Reason code: required for disputes, one of [`crate::review::DISMISS_REASONS`] /
    /// [`crate::review::DISPUTE_REASONS`] for dismissals and disputes.
    pub reason: Option<String>,
    /// Free-text note.
    pub note: Option<String>,
    /// Dismissal only: add the reference range to the exclusion list.
    pub exclude: bool,
    /// Disputes only (required there): when the dispute must be resolved (Unix ms, UTC).
    pub deadline_ms: Option<u64>,
    /// The time of the change (Unix ms, UTC).
    pub now_ms: u64,
}

/// What [`Catalog::undo_match`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Undone {
    /// The match after the undo.
    pub region: MatchRegion,
    /// The audit record that was reverted.
    pub reverted: AuditRecord,
    /// The audit record of the undo itself.
    pub record: AuditRecord,
}

impl Catalog {
    /// Store one scan of an upload, in one write transaction:
    ///
    /// - the [`Upload`] record is written (replacing an earlier one with the same id);
    /// - every *pending* match of an earlier scan of this upload is deleted;
    /// - each region gets its stable id ([`MatchRegion::make_id`]), `upload` = `upload.id`,
    ///   status pending, `created_ms` = `updated_ms` = `now_ms`;
    /// - a region whose id already holds a *reviewed* (non-pending) match, or that is a
    ///   reviewed match found again with its ends moved ([`MatchRegion::same_reuse`]), is not
    ///   written: the reviewed match is kept as it was reviewed (counted in `kept_reviewed`);
    /// - a region whose reference range is excluded ([`Catalog::is_excluded`]) is dropped;
    /// - two regions with the same id: the higher score is kept;
    /// - a region with an empty or reversed time range, or into an episode the catalog does
    ///   not hold, fails the whole call (nothing is written);
    /// - the first auto-review rule of `review` that applies ([`ReviewConfig::decide`]) sets
    ///   the status (e.g. `confirmed`), `rule` = `auto:<name>`, and writes an audit record by
    ///   [`RULE_ACTOR`]; a reviewer can `review undo` it like any other change.
    ///
    /// Pass `&ReviewConfig::none()` to store everything as pending.
    pub fn put_scan(
        &self,
        upload: &Upload,
        regions: &[MatchRegion],
        review: &ReviewConfig,
        now_ms: u64,
    ) -> Result<ScanStored> {
        review.validate()?;
        if upload.id.is_empty() {
            return Err(Error::Invalid("put_scan: the upload has no id".into()));
        }
        // Normalise outside the transaction (it may be retried).
        let mut batch: BTreeMap<String, MatchRegion> = BTreeMap::new();
        let mut duplicates = 0;
        for r in regions {
            let ok = |a: Seconds, b: Seconds| {
                a.0.is_finite() && b.0.is_finite() && 0.0 <= a.0 && a.0 < b.0
            };
            if !ok(r.upload_start, r.upload_end) || !ok(r.episode_start, r.episode_end) {
                return Err(Error::Invalid(format!(
                    "put_scan: region {}-{} of the upload / {}-{} of episode {} is not a time \
                     range",
                    r.upload_start, r.upload_end, r.episode_start, r.episode_end, r.episode
                )));
            }
            let mut m = r.clone();
            m.upload = upload.id.clone();
            m.id = m.computed_id();
            m.status = MatchStatus::Pending;
            m.rule = None;
            m.review = None;
            m.created_ms = now_ms;
            m.updated_ms = now_ms;
            m.models = Some(upload.models.clone());
            match batch.get(&m.id) {
                Some(old) => {
                    duplicates += 1;
                    if m.score > old.score {
                        batch.insert(m.id.clone(), m);
                    }
                }
                None => {
                    batch.insert(m.id.clone(), m);
                }
            }
        }
        self.write(|w, d| {
            let mut out = ScanStored { duplicates, ..ScanStored::default() };
            d.uploads.put(w, &upload.id, upload)?;
            let prefix = format!("{}/", upload.id);
            let keys: Vec<String> = d
                .matches_by_upload
                .prefix_iter(w, &prefix)?
                .map(|r| r.map(|(k, ())| k.to_string()))
                .collect::<heed::Result<_>>()?;
            let mut reviewed = Vec::new();
            for key in keys {
                let id = &key[prefix.len()..];
                match d.matches.get(w, id)? {
                    Some(m) if m.status != MatchStatus::Pending => reviewed.push(m),
                    _ => {
                        d.matches.delete(w, id)?;
                        d.matches_by_upload.delete(w, &key)?;
                        out.replaced += 1;
                    }
                }
            }
            for m in batch.values() {
                if d.episodes.get(w, &m.episode)?.is_none() {
                    return Err(Error::NotFound { kind: "episode", id: m.episode.clone() });
                }
                if reviewed.iter().any(|r| r.id == m.id || r.same_reuse(m)) {
                    out.kept_reviewed += 1;
                    continue;
                }
                if excluded_in(w, d, &m.episode, m.episode_start, m.episode_end)? {
                    out.excluded += 1;
                    continue;
                }
                let mut m = m.clone();
                // A match with a history is pending because someone put it back (undid the
                // rule's decision, reopened it): a rescan must not decide it again.
                let decided_before = d
                    .audit_by_target
                    .prefix_iter(w, &format!("{}/{}/", TargetKind::Match.as_str(), m.id))?
                    .next()
                    .is_some();
                if let Some(rule) = review.decide(&m).filter(|_| !decided_before) {
                    let reason = format!("auto:{}", rule.name);
                    let rec = AuditRecord {
                        action: AuditAction::Set,
                        from: Some(MatchStatus::Pending.as_str().into()),
                        to: Some(rule.status.as_str().into()),
                        reason: Some(reason.clone()),
                        ..AuditRecord::new(RULE_ACTOR, now_ms, TargetKind::Match, &m.id)
                    };
                    Self::append_audit(w, d, rec)?;
                    m.status = rule.status;
                    m.rule = Some(reason.clone());
                    m.review = Some(Review {
                        who: RULE_ACTOR.into(),
                        at_ms: now_ms,
                        reason: Some(reason.clone()),
                        note: None,
                        deadline_ms: None,
                    });
                    out.auto_reviewed.push((m.id.clone(), reason));
                }
                d.matches.put(w, &m.id, &m)?;
                d.matches_by_upload.put(w, &format!("{prefix}{}", m.id), &())?;
                out.stored += 1;
            }
            Ok(out)
        })
    }

    /// One upload by id.
    pub fn upload(&self, id: &str) -> Result<Upload> {
        self.read(|r, d| {
            d.uploads.get(r, id)?.ok_or_else(|| Error::NotFound { kind: "upload", id: id.into() })
        })
    }

    /// Every upload, by id.
    pub fn uploads(&self) -> Result<Vec<Upload>> {
        self.read(|r, d| super::collect(d.uploads.iter(r)?))
    }

    /// The matches `filter` selects, ordered by upload, upload start time, then id.
    pub fn matches(&self, filter: &MatchFilter) -> Result<Vec<MatchRegion>> {
        let mut out: Vec<MatchRegion> = self.read(|r, d| {
            let all: Vec<MatchRegion> = match &filter.upload {
                Some(u) => {
                    let prefix = format!("{u}/");
                    let mut v = Vec::new();
                    for kv in d.matches_by_upload.prefix_iter(r, &prefix)? {
                        let (k, ()) = kv?;
                        if let Some(m) = d.matches.get(r, &k[prefix.len()..])? {
                            v.push(m);
                        }
                    }
                    v
                }
                None => super::collect(d.matches.iter(r)?)?,
            };
            let mut series_of: BTreeMap<String, Option<String>> = BTreeMap::new();
            let mut keep = Vec::new();
            for m in all {
                if !filter.statuses.is_empty() && !filter.statuses.contains(&m.status) {
                    continue;
                }
                if filter.episode.as_ref().is_some_and(|e| *e != m.episode) {
                    continue;
                }
                if filter.since_ms.is_some_and(|s| m.updated_ms.max(m.created_ms) < s) {
                    continue;
                }
                if let Some(want) = &filter.series {
                    if !series_of.contains_key(&m.episode) {
                        let s = d.episodes.get(r, &m.episode)?.map(|e| e.series);
                        series_of.insert(m.episode.clone(), s);
                    }
                    if series_of[&m.episode].as_ref() != Some(want) {
                        continue;
                    }
                }
                keep.push(m);
            }
            Ok(keep)
        })?;
        out.sort_by(|a, b| {
            (&a.upload, a.upload_start.0, &a.id)
                .partial_cmp(&(&b.upload, b.upload_start.0, &b.id))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(out)
    }

    /// One match by id.
    pub fn match_(&self, id: &str) -> Result<MatchRegion> {
        self.read(|r, d| {
            d.matches.get(r, id)?.ok_or_else(|| Error::NotFound { kind: "match", id: id.into() })
        })
    }

    /// Change a match's review status, in one transaction with its audit record (and its
    /// exclusion, with `exclude`). Refused unless the transition is allowed
    /// ([`MatchStatus::next`]), the reason code fits the new status
    /// ([`crate::review::check_reason`]), and a dispute has a deadline. Reopening a dismissed
    /// match (`dismissed -> pending`) lifts the exclusion its dismissal added.
    pub fn set_match_status(&self, id: &str, change: &StatusChange) -> Result<MatchRegion> {
        check_reason(change.to, change.reason.as_deref())?;
        if change.exclude && change.to != MatchStatus::Dismissed {
            return Err(Error::Invalid(format!(
                "--exclude goes with dismissed only, not {}",
                change.to
            )));
        }
        if change.to == MatchStatus::Disputed && change.deadline_ms.is_none() {
            return Err(Error::Invalid("a dispute needs a deadline".into()));
        }
        self.write(|w, d| {
            let mut m = d
                .matches
                .get(w, id)?
                .ok_or_else(|| Error::NotFound { kind: "match", id: id.into() })?;
            if !m.status.can_become(change.to) {
                return Err(Error::InvalidTransition {
                    kind: "match",
                    id: id.into(),
                    from: m.status.as_str().into(),
                    to: change.to.as_str().into(),
                    allowed: allowed_list(m.status),
                });
            }
            let mut rec = AuditRecord {
                action: AuditAction::Set,
                from: Some(m.status.as_str().into()),
                to: Some(change.to.as_str().into()),
                reason: change.reason.clone(),
                note: change.note.clone(),
                deadline_ms: change.deadline_ms.filter(|_| change.to == MatchStatus::Disputed),
                ..AuditRecord::new(&change.who, change.now_ms, TargetKind::Match, id)
            };
            let key = Exclusion::key(&m.episode, id);
            if change.exclude {
                let ex = Exclusion {
                    id: key.clone(),
                    episode: m.episode.clone(),
                    start: m.episode_start,
                    end: m.episode_end,
                    match_id: id.into(),
                    who: change.who.clone(),
                    created_ms: change.now_ms,
                };
                d.exclusions.put(w, &key, &ex)?;
                rec.exclusion_added = Some(key);
            } else if m.status == MatchStatus::Dismissed && d.exclusions.delete(w, &key)? {
                rec.exclusion_removed = Some(key);
            }
            m.status = change.to;
            m.rule = None;
            m.review = Some(Review {
                who: change.who.clone(),
                at_ms: change.now_ms,
                reason: change.reason.clone(),
                note: change.note.clone(),
                deadline_ms: rec.deadline_ms,
            });
            m.updated_ms = change.now_ms;
            Self::append_audit(w, d, rec)?;
            d.matches.put(w, id, &m)?;
            Ok(m)
        })
    }

    /// Revert the last change of a match that is not itself undone (so repeated undos walk back
    /// through its history), whatever the transition table says, and audit the undo. The
    /// match's status, rule and review go back to what the change before it set (or to
    /// untouched pending); an exclusion the change added is lifted, one it lifted is restored.
    pub fn undo_match(
        &self,
        id: &str,
        who: &str,
        note: Option<&str>,
        now_ms: u64,
    ) -> Result<Undone> {
        self.write(|w, d| {
            let mut m = d
                .matches
                .get(w, id)?
                .ok_or_else(|| Error::NotFound { kind: "match", id: id.into() })?;
            let history = Self::audit_of_in(w, d, TargetKind::Match, id)?;
            let mut effective = effective_changes(&history);
            let last = effective.pop().ok_or_else(|| {
                Error::Invalid(format!("match {id} has no review change to undo"))
            })?;
            let (from, to) = (status_of(&last.from)?, status_of(&last.to)?);
            if to != m.status {
                return Err(Error::Invalid(format!(
                    "match {id} is {} but its last change set {to}: the catalog was changed \
                     outside aniprint; set the status explicitly",
                    m.status
                )));
            }
            let mut rec = AuditRecord {
                action: AuditAction::Undo,
                from: Some(to.as_str().into()),
                to: Some(from.as_str().into()),
                note: note.map(String::from),
                undoes: Some(last.seq),
                ..AuditRecord::new(who, now_ms, TargetKind::Match, id)
            };
            if let Some(key) = &last.exclusion_added
                && d.exclusions.delete(w, key)?
            {
                rec.exclusion_removed = Some(key.clone());
            }
            if let Some(key) = &last.exclusion_removed {
                let ex = Exclusion {
                    id: key.clone(),
                    episode: m.episode.clone(),
                    start: m.episode_start,
                    end: m.episode_end,
                    match_id: id.into(),
                    who: who.into(),
                    created_ms: now_ms,
                };
                d.exclusions.put(w, key, &ex)?;
                rec.exclusion_added = Some(key.clone());
            }
            m.status = from;
            match effective.last() {
                Some(prev) => {
                    m.rule = prev.reason.clone().filter(|r| r.starts_with("auto:"));
                    m.review = Some(Review {
                        who: prev.who.clone(),
                        at_ms: prev.at_ms,
                        reason: prev.reason.clone(),
                        note: prev.note.clone(),
                        deadline_ms: prev.deadline_ms,
                    });
                }
                None => {
                    m.rule = None;
                    m.review = None;
                }
            }
            m.updated_ms = now_ms;
            let seq = Self::append_audit(w, d, rec.clone())?;
            d.matches.put(w, id, &m)?;
            Ok(Undone { region: m, reverted: last, record: AuditRecord { seq, ..rec } })
        })
    }

    /// Whether a reference range is excluded: at least [`EXCLUDED_FRACTION`] of
    /// `start..end` of `episode` lies in one range a dismissal excluded. The scan may call this
    /// before storing a candidate; [`Catalog::put_scan`] checks it too.
    pub fn is_excluded(&self, episode: &str, start: Seconds, end: Seconds) -> Result<bool> {
        self.read(|r, d| {
            let prefix = format!("{episode}/");
            for kv in d.exclusions.prefix_iter(r, &prefix)? {
                if kv?.1.covers(start, end) {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Every exclusion, by episode.
    pub fn exclusions(&self) -> Result<Vec<Exclusion>> {
        self.read(|r, d| super::collect(d.exclusions.iter(r)?))
    }
}

fn excluded_in(
    w: &RwTxn<'_>,
    d: &Dbs,
    episode: &str,
    start: Seconds,
    end: Seconds,
) -> Result<bool> {
    let prefix = format!("{episode}/");
    for kv in d.exclusions.prefix_iter(w, &prefix)? {
        if kv?.1.covers(start, end) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The changes of one target's history still in effect, oldest first: undo records and the
/// records they undid are left out.
fn effective_changes(history: &[AuditRecord]) -> Vec<AuditRecord> {
    let undone: BTreeSet<u64> = history.iter().filter_map(|r| r.undoes).collect();
    history
        .iter()
        .filter(|r| r.action == AuditAction::Set && !undone.contains(&r.seq))
        .cloned()
        .collect()
}

fn status_of(s: &Option<String>) -> Result<MatchStatus> {
    s.as_deref().unwrap_or_default().parse().map_err(|e| Error::Record { what: "audit", reason: e })
}

fn allowed_list(from: MatchStatus) -> String {
    let next: Vec<&str> = from.next().iter().map(|s| s.as_str()).collect();
    if next.is_empty() { "none, it is final".into() } else { next.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_recorded_before_the_rule_was_kept_read_as_the_default_rule() {
        let old: ScanModels = serde_json::from_str(
            r#"{"fingerprint":"fp@1","separator":"","index":"arroy-0.9/exact","score_threshold":0.7}"#,
        )
        .unwrap();
        assert_eq!((old.threshold_scale, old.voice_margin), (0.4, 0.1));
        // 0.7 + 0.4/sqrt(16) = 0.8 for the mix; the voice stem needs 0.1 more.
        assert!((old.bar(Stem::Mix, 16) - 0.8).abs() < 1e-6);
        assert!((old.bar(Stem::Voice, 16) - 0.9).abs() < 1e-6);
        let given = ScanModels { threshold_scale: 0.0, voice_margin: 0.0, ..old };
        assert_eq!(given.bar(Stem::Voice, 16), 0.7);
    }
}
