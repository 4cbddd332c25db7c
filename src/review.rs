//! The match review workflow: reason codes, auto-review rules (the `[review]` section of the
//! settings file), and the review entry points the CLI and the TUI call.
//!
//! The states and allowed transitions are those of [`MatchStatus`] (WORKFLOW.md §3). Every
//! change goes through [`Catalog::set_match_status`] or [`Catalog::undo_match`], each of which
//! writes an audit record in the same transaction.
//!
//! Auto-rules run inside [`Catalog::put_scan`]: the first rule that applies to a new region sets
//! its status (`confirmed` by default), marks it `auto:<name>` and audits it as done by
//! `aniprint`; `review undo` reverts it like any reviewer decision. Everything no rule takes
//! stays pending.
//!
//! ```toml
//! [review]
//! dispute_days = 30
//!
//! [[review.rules]]
//! name = "high_long"      # recorded as rule "auto:high_long"
//! min_band = "high"       # low | medium | high
//! min_duration_s = 30.0   # upload-side length of the region
//! # min_score = 0.9       # optional
//! # stems = ["mix"]       # optional; empty: any stem
//! status = "confirmed"    # confirmed | dismissed (what pending may become)
//! ```

use serde::{Deserialize, Serialize};

use crate::catalog::date::Date;
use crate::catalog::matches::{Band, Undone};
use crate::catalog::{Catalog, MatchRegion, MatchStatus, StatusChange, Stem};
use crate::{Error, Result};

/// Reason codes for dismissals.
pub const DISMISS_REASONS: &[&str] =
    &["false_positive", "licensed", "own_content", "public_domain", "too_short"];

/// Reason codes for disputes (YouTube's).
pub const DISPUTE_REASONS: &[&str] =
    &["misidentified", "fair_use", "authorized", "original", "public_domain"];

/// One auto-review rule: a region that passes every test gets `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoRule {
    /// Name; the match's rule becomes `auto:<name>`.
    pub name: String,
    /// Lowest confidence band the rule takes.
    pub min_band: Band,
    /// Shortest region (upload side), in seconds.
    pub min_duration_s: f64,
    /// Lowest score, if any.
    pub min_score: Option<f32>,
    /// Only these stems (empty: any).
    pub stems: Vec<Stem>,
    /// The status to set: one `pending` may become (confirmed or dismissed).
    pub status: MatchStatus,
}

impl Default for AutoRule {
    fn default() -> Self {
        Self {
            name: "high_long".into(),
            min_band: Band::High,
            min_duration_s: 30.0,
            min_score: None,
            stems: Vec::new(),
            status: MatchStatus::Confirmed,
        }
    }
}

impl AutoRule {
    /// Whether this rule takes `m`.
    pub fn applies(&self, m: &MatchRegion) -> bool {
        m.band >= self.min_band
            && m.duration().0 >= self.min_duration_s
            && self.min_score.is_none_or(|s| m.score >= s)
            && (self.stems.is_empty() || self.stems.contains(&m.stem))
    }
}

/// The `[review]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewConfig {
    /// Days a dispute stays open before its deadline (when `--deadline` is not given).
    pub dispute_days: u32,
    /// Auto-review rules, tried in order; the first that applies wins. Default: one rule,
    /// `high_long` (high band and >= 30 s -> confirmed). `rules = []` turns them off.
    pub rules: Vec<AutoRule>,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self { dispute_days: 30, rules: vec![AutoRule::default()] }
    }
}

impl ReviewConfig {
    /// No auto-rules: every region stays pending.
    pub fn none() -> Self {
        Self { rules: Vec::new(), ..Self::default() }
    }

    /// The first rule that takes `m`, if any.
    pub fn decide(&self, m: &MatchRegion) -> Option<&AutoRule> {
        self.rules.iter().find(|r| r.applies(m))
    }

    /// Refuse rules that would make a transition `pending` does not allow, or lack a name.
    pub fn validate(&self) -> Result<()> {
        if !(1..=3650).contains(&self.dispute_days) {
            return Err(Error::Invalid(format!(
                "review dispute_days = {}: give 1 to 3650 days",
                self.dispute_days
            )));
        }
        for r in &self.rules {
            if r.name.is_empty() || !r.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::Invalid(format!(
                    "review rule {:?}: name it with letters, digits and _",
                    r.name
                )));
            }
            if !MatchStatus::Pending.can_become(r.status) {
                return Err(Error::Invalid(format!(
                    "review rule {}: a new match cannot become {} (confirmed or dismissed)",
                    r.name, r.status
                )));
            }
        }
        Ok(())
    }

    /// The default dispute deadline for a dispute opened at `now_ms`: the end (23:59:59 UTC)
    /// of the day `dispute_days` later.
    pub fn deadline_ms(&self, now_ms: u64) -> u64 {
        let day = Date::from_unix_ms(now_ms).add_days(self.dispute_days as i32 + 1);
        day.start_ms() - 1000
    }
}

/// Check a reason code against the new status: dismissals take [`DISMISS_REASONS`], disputes
/// require one of [`DISPUTE_REASONS`], other statuses take any snake_case code.
pub fn check_reason(to: MatchStatus, reason: Option<&str>) -> Result<()> {
    let list = match to {
        MatchStatus::Dismissed => Some(DISMISS_REASONS),
        MatchStatus::Disputed => Some(DISPUTE_REASONS),
        _ => None,
    };
    match (reason, list) {
        (None, _) if to == MatchStatus::Disputed => Err(Error::Invalid(format!(
            "a dispute needs --reason, one of: {}",
            DISPUTE_REASONS.join(", ")
        ))),
        (None, _) => Ok(()),
        (Some(r), Some(list)) if !list.contains(&r) => Err(Error::Invalid(format!(
            "reason {r:?} does not fit {to}; use one of: {}",
            list.join(", ")
        ))),
        (Some(r), None)
            if r.is_empty()
                || !r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
        {
            Err(Error::Invalid(format!("reason {r:?}: write reason codes in snake_case")))
        }
        _ => Ok(()),
    }
}

/// Who the audit log should name: `$USER` (or `$USERNAME`), else `unknown`.
pub fn default_who() -> String {
    ["USER", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// A reviewer's decision, as the CLI and TUI take it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    /// Reason code.
    pub reason: Option<String>,
    /// Free-text note.
    pub note: Option<String>,
    /// Dismissal: exclude the reference range from later scans.
    pub exclude: bool,
    /// Dispute deadline (default: [`ReviewConfig::deadline_ms`]).
    pub deadline_ms: Option<u64>,
}

/// Set a match's status with the settings' defaults filled in (the dispute deadline).
pub fn set_status(
    catalog: &Catalog,
    cfg: &ReviewConfig,
    id: &str,
    to: MatchStatus,
    decision: Decision,
    who: &str,
    now_ms: u64,
) -> Result<MatchRegion> {
    let deadline_ms = match to {
        MatchStatus::Disputed => Some(decision.deadline_ms.unwrap_or(cfg.deadline_ms(now_ms))),
        _ if decision.deadline_ms.is_some() => {
            return Err(Error::Invalid("--deadline goes with disputed only".into()));
        }
        _ => None,
    };
    let change = StatusChange {
        to,
        who: who.into(),
        reason: decision.reason,
        note: decision.note,
        exclude: decision.exclude,
        deadline_ms,
        now_ms,
    };
    catalog.set_match_status(id, &change)
}

/// Revert the last change of a match (see [`Catalog::undo_match`]).
pub fn undo(
    catalog: &Catalog,
    id: &str,
    who: &str,
    note: Option<&str>,
    now_ms: u64,
) -> Result<Undone> {
    catalog.undo_match(id, who, note, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_their_status() {
        assert!(check_reason(MatchStatus::Dismissed, Some("licensed")).is_ok());
        assert!(check_reason(MatchStatus::Dismissed, None).is_ok());
        assert!(check_reason(MatchStatus::Dismissed, Some("fair_use")).is_err());
        assert!(check_reason(MatchStatus::Disputed, None).is_err());
        assert!(check_reason(MatchStatus::Disputed, Some("fair_use")).is_ok());
        assert!(check_reason(MatchStatus::Confirmed, Some("ok_by_label")).is_ok());
        assert!(check_reason(MatchStatus::Confirmed, Some("Bad Code")).is_err());
    }

    #[test]
    fn the_review_section_parses_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("aniprint.toml");
        let text = "[review]\ndispute_days = 14\n\n[[review.rules]]\nname = \"long_mix\"\n\
                    min_band = \"medium\"\nmin_duration_s = 60.0\nstems = [\"mix\"]\n";
        std::fs::write(&p, text).unwrap();
        let cfg = crate::config::Config::load(&p).unwrap().review;
        assert_eq!(cfg.dispute_days, 14);
        assert_eq!(cfg.rules.len(), 1);
        let rule = &cfg.rules[0];
        assert_eq!((rule.min_band, rule.status), (Band::Medium, MatchStatus::Confirmed));
        std::fs::write(&p, "[[review.rules]]\nname = \"x\"\nstatus = \"escalated\"\n").unwrap();
        assert!(crate::config::Config::load(&p).unwrap_err().to_string().contains("cannot become"));
        std::fs::write(&p, "[review]\nrules = []\n").unwrap();
        assert!(crate::config::Config::load(&p).unwrap().review.rules.is_empty());
    }

    #[test]
    fn rules_validate_and_deadline_ends_the_day() {
        let mut cfg = ReviewConfig::default();
        assert!(cfg.validate().is_ok());
        cfg.rules[0].status = MatchStatus::Disputed;
        assert!(cfg.validate().is_err());
        let now = "2024-01-31".parse::<Date>().unwrap().start_ms() + 5_000;
        let deadline = ReviewConfig::default().deadline_ms(now);
        assert_eq!(crate::catalog::date::utc_iso(deadline), "2024-03-01T23:59:59Z");
    }
}
