//! Ownership records in and out: CSV import (all-or-nothing, every problem named by row and
//! column), single-record add, export that round-trips with import, and the share-conflict
//! check (shares of one work, rights type, territory and date over 100%).
//!
//! The CSV has a header row naming columns from [`COLUMNS`] in any order; only [`REQUIRED`]
//! ones must be present. `catalog/rights.example.csv` shows every column. Cells are read
//! through [`crate::report::unescape_cell`], so a file written by `rights export` (whose cells
//! are escaped against formula injection) imports back unchanged.

pub mod territory;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use crate::catalog::date::Date;
use crate::catalog::rights::RightsStored;
use crate::catalog::{
    Catalog, Episode, MatchRegion, OwnershipRecord, Policy, RightsType, TerritoryMode, WorkKind,
};
use crate::report::{escape_cell, unescape_cell};
use crate::units::Seconds;
use crate::{Error, Result};

/// Every column of the rights CSV, in the order `rights export` writes them.
pub const COLUMNS: [&str; 24] = [
    "rights_id",
    "rights_holder",
    "holder_id",
    "administrator",
    "work_title",
    "work_kind",
    "isrc",
    "iswc",
    "other_ids",
    "series",
    "episode",
    "piece",
    "start_s",
    "end_s",
    "rights_type",
    "share_pct",
    "territories",
    "territory_mode",
    "valid_from",
    "valid_to",
    "licence_type",
    "policy",
    "contact",
    "source_document",
];

/// Columns an import file must have (and cells that must not be empty).
pub const REQUIRED: [&str; 7] =
    ["rights_holder", "work_title", "work_kind", "series", "rights_type", "share_pct", "policy"];

/// Tolerance (seconds) when checking a time range against an episode's duration.
const DURATION_SLACK: f64 = 0.0005;

/// One validation problem, located by data row (1 = the first row under the header) and
/// column where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Data row, 1-based (none for the header or a single `rights add`).
    pub row: Option<usize>,
    /// Line in the file, 1-based, when it differs from `row + 1` or is useful to editors.
    pub line: Option<u64>,
    /// Column name.
    pub column: Option<String>,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.row, self.line) {
            (Some(r), Some(l)) => write!(f, "row {r} (line {l})")?,
            (Some(r), None) => write!(f, "row {r}")?,
            (None, Some(l)) => write!(f, "line {l}")?,
            (None, None) => {}
        }
        if let Some(c) = &self.column {
            if self.row.is_some() || self.line.is_some() {
                f.write_str(", ")?;
            }
            write!(f, "column {c}")?;
        }
        if self.row.is_some() || self.line.is_some() || self.column.is_some() {
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

/// An ownership record as text: column name -> cell (what a CSV row or `rights add` flags
/// give).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRecord {
    cells: BTreeMap<String, String>,
}

impl RawRecord {
    /// Set a cell (an unknown column is refused at validation).
    pub fn set(&mut self, column: &str, value: impl Into<String>) -> &mut Self {
        self.cells.insert(column.into(), value.into());
        self
    }

    /// A cell, trimmed; empty when absent.
    pub fn get(&self, column: &str) -> &str {
        self.cells.get(column).map_or("", |s| s.trim())
    }

    /// The record's cells as `rights export` writes them.
    pub fn from_record(r: &OwnershipRecord) -> Self {
        let mut raw = RawRecord::default();
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let secs = |s: Option<Seconds>| s.map(Seconds::millis_str).unwrap_or_default();
        let date = |d: Option<Date>| d.map(|d| d.to_string()).unwrap_or_default();
        raw.set("rights_id", &r.rights_id)
            .set("rights_holder", &r.rights_holder)
            .set("holder_id", opt(&r.holder_id))
            .set("administrator", opt(&r.administrator))
            .set("work_title", &r.work_title)
            .set("work_kind", r.work_kind.as_str())
            .set("isrc", opt(&r.isrc))
            .set("iswc", opt(&r.iswc))
            .set("other_ids", r.other_ids.join(";"))
            .set("series", &r.series)
            .set("episode", opt(&r.episode))
            .set("piece", opt(&r.piece))
            .set("start_s", secs(r.start))
            .set("end_s", secs(r.end))
            .set("rights_type", r.rights_type.as_str())
            .set("share_pct", format!("{}", r.share_pct))
            .set("territories", r.territories.join(","))
            .set("territory_mode", r.territory_mode.as_str())
            .set("valid_from", date(r.valid_from))
            .set("valid_to", date(r.valid_to))
            .set("licence_type", opt(&r.licence_type))
            .set("policy", r.policy.as_str())
            .set("contact", opt(&r.contact))
            .set("source_document", opt(&r.source_document));
        raw
    }
}

/// How far a match may run into a record's time range and still be a boundary touch, not use,
/// seconds: a match's ends are placed to about a hop (0.5 s).
pub const BOUNDARY_S: f64 = 0.5;

/// Where a record applies in the catalogue, resolved: a piece scope becomes its episode and
/// the piece's time range.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Series name.
    pub series: String,
    /// Episode id (none: every episode of the series).
    pub episode: Option<String>,
    /// Time range in the episode, seconds (none: all of it).
    pub range: Option<(f64, f64)>,
}

impl Scope {
    /// Whether a matched reference range (`series`, `episode`, `start..end`) falls in this
    /// scope: a time range must share more than [`BOUNDARY_S`] with it (or half of it, for a
    /// shorter match). A match's ends are placed to about a hop, so a record for the opening
    /// song (0-90 s) must not claim a scene matched from 89.6 s on.
    pub fn overlaps(&self, series: &str, episode: &str, start: Seconds, end: Seconds) -> bool {
        let need = BOUNDARY_S.min(0.5 * (end.0 - start.0));
        self.series == series
            && self.episode.as_deref().is_none_or(|e| e == episode)
            && self.range.is_none_or(|(a, b)| end.0.min(b) - start.0.max(a) > need)
    }
}

/// What validation and joins need from the catalog: series, episodes and piece spans.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    series: BTreeSet<String>,
    episodes: BTreeMap<String, Episode>,
    /// piece id -> (episode id, start s, end s)
    pieces: BTreeMap<String, (String, f64, f64)>,
}

impl Lookup {
    /// Read what is needed from the catalog.
    pub fn load(catalog: &Catalog) -> Result<Self> {
        let series = catalog.series()?.into_iter().map(|s| s.name).collect();
        let episodes: BTreeMap<String, Episode> =
            catalog.episodes()?.into_iter().map(|e| (e.id.clone(), e)).collect();
        let mut pieces = BTreeMap::new();
        for p in catalog.pieces()? {
            if let Some(ep) = episodes.get(&p.episode) {
                let (a, b) = p.span(ep.work_rate);
                pieces.insert(p.id.clone(), (p.episode.clone(), a.0, b.0));
            }
        }
        Ok(Self { series, episodes, pieces })
    }

    /// An episode by id.
    pub fn episode(&self, id: &str) -> Option<&Episode> {
        self.episodes.get(id)
    }

    /// A record's resolved scope.
    pub fn scope(&self, r: &OwnershipRecord) -> Scope {
        let piece = r.piece.as_ref().and_then(|p| self.pieces.get(p));
        let episode = r.episode.clone().or_else(|| piece.map(|p| p.0.clone()));
        let range = match (r.start, r.end, piece) {
            (Some(a), Some(b), _) => Some((a.0, b.0)),
            (_, _, Some(p)) => Some((p.1, p.2)),
            // A piece no longer in the catalog: nothing of the episode matches it.
            (_, _, None) if r.piece.is_some() => Some((0.0, 0.0)),
            _ => None,
        };
        Scope { series: r.series.clone(), episode, range }
    }

    /// The records that apply to a matched region: scope overlapping its reference range, and
    /// valid on `date`.
    pub fn rights_for<'a>(
        &self,
        records: &'a [OwnershipRecord],
        region: &MatchRegion,
        date: Date,
    ) -> Vec<&'a OwnershipRecord> {
        let Some(series) = self.episodes.get(&region.episode).map(|e| e.series.as_str()) else {
            return Vec::new();
        };
        records
            .iter()
            .filter(|r| r.valid_on(date))
            .filter(|r| {
                self.scope(r).overlaps(
                    series,
                    &region.episode,
                    region.episode_start,
                    region.episode_end,
                )
            })
            .collect()
    }
}

/// Validate one record against the catalog. Errors are `(column, message)` pairs, all of them.
pub fn parse_record(
    raw: &RawRecord,
    lookup: &Lookup,
) -> std::result::Result<OwnershipRecord, Vec<(String, String)>> {
    let mut errs: Vec<(String, String)> = Vec::new();
    let mut err = |col: &str, msg: String| errs.push((col.into(), msg));
    for col in raw.cells.keys() {
        if !COLUMNS.contains(&col.as_str()) {
            err(col, format!("unknown column; the columns are {}", COLUMNS.join(", ")));
        }
    }
    let opt = |col: &str| Some(raw.get(col).to_string()).filter(|s| !s.is_empty());
    let req = |col: &str, errs: &mut dyn FnMut(&str, String)| -> String {
        let v = raw.get(col).to_string();
        if v.is_empty() {
            errs(col, "required, but empty".into());
        }
        v
    };
    fn parsed<T: std::str::FromStr<Err = String>>(
        raw: &RawRecord,
        col: &str,
        err: &mut dyn FnMut(&str, String),
    ) -> Option<T> {
        let v = raw.get(col);
        if v.is_empty() {
            return None;
        }
        v.parse().map_err(|e| err(col, e)).ok()
    }

    let rights_id = raw.get("rights_id").to_string();
    if !rights_id.is_empty()
        && (rights_id.len() > 64
            || !rights_id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
    {
        err("rights_id", "use up to 64 letters, digits, '.', '_' or '-'".into());
    }
    let rights_holder = req("rights_holder", &mut err);
    let work_title = req("work_title", &mut err);
    let series = req("series", &mut err);
    let share_raw = req("share_pct", &mut err);
    for col in ["work_kind", "rights_type", "policy"] {
        if raw.get(col).is_empty() {
            err(col, "required, but empty".into());
        }
    }
    let work_kind: Option<WorkKind> = parsed(raw, "work_kind", &mut err);
    let rights_type: Option<RightsType> = parsed(raw, "rights_type", &mut err);
    let policy: Option<Policy> = parsed(raw, "policy", &mut err);
    let territory_mode: TerritoryMode =
        parsed(raw, "territory_mode", &mut err).unwrap_or(TerritoryMode::Include);
    let valid_from: Option<Date> = parsed(raw, "valid_from", &mut err);
    let valid_to: Option<Date> = parsed(raw, "valid_to", &mut err);
    if let (Some(f), Some(t)) = (valid_from, valid_to)
        && t < f
    {
        err("valid_to", format!("{t} is before valid_from {f}"));
    }

    let share_pct = match share_raw.trim_end_matches('%').trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 100.0 => s,
        Ok(_) => {
            err("share_pct", format!("{share_raw:?}: a share is more than 0 and at most 100"));
            0.0
        }
        Err(_) if share_raw.is_empty() => 0.0,
        Err(_) => {
            err("share_pct", format!("{share_raw:?} is not a number (write 50 or 12.5)"));
            0.0
        }
    };
    let territories = match territory::parse_list(raw.get("territories")) {
        Ok(t) => t,
        Err(e) => {
            err("territories", e);
            vec![territory::WORLDWIDE.into()]
        }
    };
    if territory_mode == TerritoryMode::Exclude && territories == [territory::WORLDWIDE] {
        err("territories", "excluding WW leaves nowhere: list the excluded countries".into());
    }
    let isrc = opt("isrc").and_then(|v| normalize_isrc(&v).map_err(|e| err("isrc", e)).ok());
    let iswc = opt("iswc").and_then(|v| normalize_iswc(&v).map_err(|e| err("iswc", e)).ok());
    let other_ids: Vec<String> = raw
        .get("other_ids")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();

    // Scope.
    if !series.is_empty() && !lookup.series.contains(&series) {
        err("series", format!("unknown series {series:?} (see `aniprint ls series`)"));
    }
    let mut episode = opt("episode");
    if let Some(e) = &episode {
        match lookup.episodes.get(e) {
            None => {
                err("episode", format!("unknown episode id {e:?} (see `aniprint ls episodes`)"))
            }
            Some(ep) if ep.series != series && !series.is_empty() => err(
                "episode",
                format!("episode {e} belongs to series {:?}, not {series:?}", ep.series),
            ),
            Some(_) => {}
        }
    }
    let piece = opt("piece");
    if let Some(p) = &piece {
        match lookup.pieces.get(p) {
            None => err("piece", format!("unknown piece id {p:?} (see `aniprint ls pieces`)")),
            Some((ep, ..)) => match &episode {
                Some(e) if e != ep => {
                    err("piece", format!("piece {p} is in episode {ep}, not {e}"));
                }
                Some(_) => {}
                None => {
                    if lookup.episodes.get(ep).is_some_and(|x| x.series != series) {
                        err("piece", format!("piece {p} is not in series {series:?}"));
                    }
                    episode = Some(ep.clone());
                }
            },
        }
    }
    let start = opt("start_s").and_then(|v| parse_time(&v).map_err(|e| err("start_s", e)).ok());
    let end = opt("end_s").and_then(|v| parse_time(&v).map_err(|e| err("end_s", e)).ok());
    let given = (!raw.get("start_s").is_empty(), !raw.get("end_s").is_empty());
    match given {
        (true, false) => err("end_s", "a time range needs both start_s and end_s".into()),
        (false, true) => err("start_s", "a time range needs both start_s and end_s".into()),
        (true, true) if piece.is_some() => {
            err("start_s", "give either a piece or a time range, not both".into());
        }
        (true, true) if episode.is_none() => {
            err("start_s", "a time range needs an episode (the range is inside it)".into());
        }
        _ => {}
    }
    if let (Some(a), Some(b)) = (start, end) {
        if b.0 <= a.0 {
            err("end_s", format!("end {} is not after start {}", b.hms(), a.hms()));
        }
        if let Some(ep) = episode.as_ref().and_then(|e| lookup.episodes.get(e)) {
            let dur = ep.duration.0;
            let col = if a.0 > dur + DURATION_SLACK { "start_s" } else { "end_s" };
            if b.0 > dur + DURATION_SLACK {
                err(
                    col,
                    format!(
                        "time range {}-{} is outside episode {} ({:?}, {})",
                        a.hms(),
                        b.hms(),
                        ep.id,
                        ep.title,
                        ep.duration.hms()
                    ),
                );
            }
        }
    }

    if !errs.is_empty() {
        return Err(errs);
    }
    let (Some(work_kind), Some(rights_type), Some(policy)) = (work_kind, rights_type, policy)
    else {
        return Err(vec![("work_kind".into(), "missing".into())]);
    };
    Ok(OwnershipRecord {
        rights_id,
        rights_holder,
        holder_id: opt("holder_id"),
        administrator: opt("administrator"),
        work_title,
        work_kind,
        isrc,
        iswc,
        other_ids,
        series,
        episode,
        piece,
        start,
        end,
        rights_type,
        share_pct,
        territories,
        territory_mode,
        valid_from,
        valid_to,
        licence_type: opt("licence_type"),
        policy,
        contact: opt("contact"),
        source_document: opt("source_document"),
        created_by: String::new(),
        created_ms: 0,
        updated_by: String::new(),
        updated_ms: 0,
    })
}

/// A time in seconds (`95.5`) or `[HH:]MM:SS[.mmm]`, rounded to milliseconds.
pub fn parse_time(s: &str) -> std::result::Result<Seconds, String> {
    let bad = || format!("{s:?} is not a time: write seconds (95.5) or HH:MM:SS.mmm");
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() > 3 {
        return Err(bad());
    }
    let mut total = 0.0;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let ok = !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || (last && c == '.'));
        let v: f64 = if ok { p.parse().map_err(|_| bad())? } else { return Err(bad()) };
        if i > 0 && v >= 60.0 {
            return Err(bad());
        }
        total = total * 60.0 + v;
    }
    if !total.is_finite() {
        return Err(bad());
    }
    Ok(Seconds((total * 1000.0).round() / 1000.0))
}

/// ISRC as `CCXXXYYNNNNN` (country, registrant, year, designation), hyphens dropped.
fn normalize_isrc(s: &str) -> std::result::Result<String, String> {
    let t: String = s.chars().filter(|c| *c != '-' && *c != ' ').collect::<String>();
    let t = t.to_ascii_uppercase();
    let b = t.as_bytes();
    let ok = b.len() == 12
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..5].iter().all(u8::is_ascii_alphanumeric)
        && b[5..].iter().all(u8::is_ascii_digit);
    if ok { Ok(t) } else { Err(format!("{s:?} is not an ISRC (like JP-ABC-24-00001)")) }
}

/// ISWC as `T-DDD.DDD.DDD-C`, with its check digit verified.
fn normalize_iswc(s: &str) -> std::result::Result<String, String> {
    let t: String = s.chars().filter(|c| !"-. ".contains(*c)).collect::<String>();
    let t = t.to_ascii_uppercase();
    let bad = || format!("{s:?} is not an ISWC (like T-034.524.680-1)");
    let digits = t.strip_prefix('T').ok_or_else(bad)?;
    if digits.len() != 10 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let d: Vec<u32> = digits.bytes().map(|c| u32::from(c - b'0')).collect();
    let sum: u32 = 1 + d[..9].iter().enumerate().map(|(i, v)| (i as u32 + 1) * v).sum::<u32>();
    let check = (10 - sum % 10) % 10;
    if check != d[9] {
        return Err(format!("{s:?}: the ISWC check digit should be {check}"));
    }
    Ok(format!("T-{}.{}.{}-{}", &digits[..3], &digits[3..6], &digits[6..9], &digits[9..]))
}

/// Shares of one work over 100% somewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The records whose shares add up, by id.
    pub ids: Vec<String>,
    /// Their total, percent.
    pub total_pct: f64,
    /// The work (title or identifier).
    pub work: String,
    /// The rights type.
    pub rights_type: RightsType,
    /// A territory where they overlap (`other` for any territory not named by them).
    pub territory: String,
    /// A date where they overlap (none: from the beginning).
    pub date: Option<Date>,
    /// An episode where they overlap (none: any episode).
    pub episode: Option<String>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shares of {} ({}) add up to {}% in {} {} {}: records {}",
            self.work,
            self.rights_type,
            self.total_pct,
            self.territory,
            self.date.map_or("with no start date".into(), |d| format!("on {d}")),
            self.episode.as_ref().map_or("in the series".into(), |e| format!("in episode {e}")),
            self.ids.join(", ")
        )
    }
}

/// Every point (work, rights type, scope position, territory, date) where the shares of
/// `records` exceed 100%, keeping those that involve at least one id in `involving` (all, when
/// empty). Two records concern the same work when they have the same work kind and the same
/// ISWC (compositions) or ISRC (recordings), or, when one of them lacks it, the same title
/// (case-insensitive) ([`works`]); their scopes must overlap (same series; same episode or
/// series-wide; overlapping time ranges).
pub fn conflicts(
    records: &[OwnershipRecord],
    lookup: &Lookup,
    involving: &BTreeSet<String>,
) -> Vec<Conflict> {
    let mut kinds: BTreeMap<(String, String, RightsType), Vec<&OwnershipRecord>> = BTreeMap::new();
    for r in records {
        kinds
            .entry((r.series.clone(), r.work_kind.to_string(), r.rights_type))
            .or_default()
            .push(r);
    }
    let mut groups: BTreeMap<GroupKey, Vec<(&OwnershipRecord, Scope)>> = BTreeMap::new();
    for ((series, _, rights_type), recs) in kinds {
        for (work, members) in works(recs) {
            let group = groups.entry((series.clone(), work, rights_type)).or_default();
            group.extend(members.into_iter().map(|r| (r, lookup.scope(r))));
        }
    }
    let mut out: Vec<Conflict> = Vec::new();
    let mut seen: BTreeSet<Vec<String>> = BTreeSet::new();
    for ((_, work, rights_type), group) in groups {
        if group.len() < 2
            || (!involving.is_empty()
                && !group.iter().any(|(r, _)| involving.contains(&r.rights_id)))
        {
            continue;
        }
        let mut episodes: Vec<Option<&str>> =
            group.iter().filter_map(|(_, s)| s.episode.as_deref()).map(Some).collect();
        episodes.push(None);
        episodes.sort();
        episodes.dedup();
        let mut times: Vec<Option<f64>> =
            group.iter().filter_map(|(_, s)| s.range.map(|r| Some(r.0))).collect();
        times.push(None);
        times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        times.dedup();
        let mut dates: Vec<Option<Date>> =
            group.iter().filter_map(|(r, _)| r.valid_from).map(Some).collect();
        dates.push(None);
        dates.sort();
        dates.dedup();
        let mut territories: Vec<&str> = group
            .iter()
            .flat_map(|(r, _)| r.territories.iter().map(String::as_str))
            .filter(|t| *t != territory::WORLDWIDE)
            .collect();
        territories.push("");
        territories.sort();
        territories.dedup();
        for ep in &episodes {
            for t in &times {
                for d in &dates {
                    for terr in &territories {
                        let active: Vec<&OwnershipRecord> = group
                            .iter()
                            .filter(|(r, s)| {
                                s.episode.as_deref().is_none_or(|e| Some(e) == *ep)
                                    && match (s.range, t) {
                                        (None, _) => true,
                                        (Some((a, b)), Some(t)) => a <= *t && *t < b,
                                        (Some(_), None) => false,
                                    }
                                    && match d {
                                        Some(d) => r.valid_on(*d),
                                        None => r.valid_from.is_none(),
                                    }
                                    && r.applies_in(terr)
                            })
                            .map(|(r, _)| *r)
                            .collect();
                        let total: f64 = active.iter().map(|r| r.share_pct).sum();
                        if total <= 100.0 + 1e-9 {
                            continue;
                        }
                        let mut ids: Vec<String> =
                            active.iter().map(|r| r.rights_id.clone()).collect();
                        ids.sort();
                        if (!involving.is_empty() && !ids.iter().any(|i| involving.contains(i)))
                            || !seen.insert(ids.clone())
                        {
                            continue;
                        }
                        out.push(Conflict {
                            ids,
                            total_pct: (total * 1000.0).round() / 1000.0,
                            work: work.clone(),
                            rights_type,
                            territory: if terr.is_empty() {
                                "other".into()
                            } else {
                                terr.to_string()
                            },
                            date: *d,
                            episode: ep.map(String::from),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Records whose shares add up: series, work, rights type.
type GroupKey = (String, String, RightsType);

/// The work's identifier: ISWC for a composition, ISRC for a recording.
fn work_id(r: &OwnershipRecord) -> Option<&str> {
    match r.work_kind {
        WorkKind::Composition => r.iswc.as_deref(),
        WorkKind::SoundRecording => r.isrc.as_deref(),
        _ => None,
    }
}

/// The title, case and spacing aside.
fn title_key(r: &OwnershipRecord) -> String {
    r.work_title.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

/// Records of one series, work kind and rights type, grouped by work (with its label): two
/// are the same work when they carry the same identifier, or when one lacks it and the titles
/// agree (a record entered with its ISWC and one without are one composition). A record
/// without an identifier can so join two whose identifiers differ: the conflict then names
/// all of them, for a person to sort out.
fn works(recs: Vec<&OwnershipRecord>) -> Vec<(String, Vec<&OwnershipRecord>)> {
    let titles: Vec<String> = recs.iter().map(|r| title_key(r)).collect();
    let same = |i: usize, j: usize| match (work_id(recs[i]), work_id(recs[j])) {
        (Some(x), Some(y)) => x == y,
        _ => titles[i] == titles[j],
    };
    // Union-find over the (few) records.
    let mut parent: Vec<usize> = (0..recs.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..recs.len() {
        for j in i + 1..recs.len() {
            if same(i, j) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut by_root: BTreeMap<usize, Vec<&OwnershipRecord>> = BTreeMap::new();
    for (i, r) in recs.iter().enumerate() {
        let k = root(&mut parent, i);
        by_root.entry(k).or_default().push(*r);
    }
    by_root
        .into_values()
        .map(|members| {
            let kind = members[0].work_kind;
            let label = match members.iter().find_map(|r| work_id(r)) {
                Some(id) => format!("{kind} {id}"),
                None => format!("{kind} {:?}", title_key(members[0])),
            };
            (label, members)
        })
        .collect()
}

/// A record to validate, with where it came from.
#[derive(Debug, Clone)]
struct Located {
    row: Option<usize>,
    line: Option<u64>,
    raw: RawRecord,
}

/// Validate and store records, all or nothing; `what` names the source in errors, `note` goes
/// to the audit log.
fn store(
    catalog: &Catalog,
    rows: Vec<Located>,
    what: &str,
    note: &str,
    who: &str,
    now_ms: u64,
) -> Result<RightsStored> {
    let lookup = Lookup::load(catalog)?;
    let mut problems = Vec::new();
    let mut records = Vec::new();
    let mut origin: Vec<(Option<usize>, Option<u64>)> = Vec::new();
    let mut ids: BTreeMap<String, Option<usize>> = BTreeMap::new();
    for loc in rows {
        match parse_record(&loc.raw, &lookup) {
            Ok(r) => {
                if !r.rights_id.is_empty()
                    && let Some(first) = ids.insert(r.rights_id.clone(), loc.row)
                {
                    problems.push(Problem {
                        row: loc.row,
                        line: loc.line,
                        column: Some("rights_id".into()),
                        message: format!(
                            "{} is also used by row {}",
                            r.rights_id,
                            first.map_or("?".into(), |r| r.to_string())
                        ),
                    });
                }
                records.push(r);
                origin.push((loc.row, loc.line));
            }
            Err(errs) => problems.extend(errs.into_iter().map(|(c, m)| Problem {
                row: loc.row,
                line: loc.line,
                column: Some(c),
                message: m,
            })),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Rejected { what: what.into(), problems });
    }
    catalog.put_rights(&records, who, note, now_ms, |all, new| {
        let new_ids: BTreeSet<String> = new.iter().map(|r| r.rights_id.clone()).collect();
        let found = conflicts(all, &lookup, &new_ids);
        if found.is_empty() {
            return Ok(());
        }
        let problems = found
            .into_iter()
            .map(|c| {
                // Name the conflict at the last new row involved.
                let at = new.iter().rposition(|r| c.ids.contains(&r.rights_id));
                let (row, line) = at.map_or((None, None), |i| origin[i]);
                let names: Vec<String> = c
                    .ids
                    .iter()
                    .map(|id| match new.iter().position(|r| &r.rights_id == id) {
                        Some(i) => match origin[i].0 {
                            Some(row) => format!("row {row}"),
                            None => "this record".into(),
                        },
                        None => format!("stored {id}"),
                    })
                    .collect();
                Problem {
                    row,
                    line,
                    column: Some("share_pct".into()),
                    message: format!("ownership conflict: {} ({})", c, names.join(", ")),
                }
            })
            .collect();
        Err(Error::Rejected { what: what.into(), problems })
    })
}

/// Import a rights CSV from `input`: every row is validated, then all are stored in one
/// transaction, or none is. `source` names the file in messages and the audit log.
pub fn import(
    catalog: &Catalog,
    input: impl Read,
    source: &str,
    who: &str,
    now_ms: u64,
) -> Result<RightsStored> {
    let mut rdr =
        csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::None).from_reader(input);
    // Spreadsheets saving "CSV UTF-8" (Excel) start the file with a byte-order mark, which the
    // csv crate keeps in the first header.
    let header: Vec<String> = rdr
        .headers()?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 { h.trim_start_matches('\u{feff}') } else { h };
            unescape_cell(h).trim().to_string()
        })
        .collect();
    let mut problems = Vec::new();
    for (i, h) in header.iter().enumerate() {
        if !COLUMNS.contains(&h.as_str()) {
            problems.push(Problem {
                row: None,
                line: Some(1),
                column: Some(if h.is_empty() { format!("#{}", i + 1) } else { h.clone() }),
                message: format!("unknown column; the columns are {}", COLUMNS.join(", ")),
            });
        } else if header[..i].contains(h) {
            problems.push(Problem {
                row: None,
                line: Some(1),
                column: Some(h.clone()),
                message: "column given twice".into(),
            });
        }
    }
    for req in REQUIRED {
        if !header.iter().any(|h| h == req) {
            problems.push(Problem {
                row: None,
                line: Some(1),
                column: Some(req.into()),
                message: "required column missing from the header".into(),
            });
        }
    }
    if !problems.is_empty() {
        return Err(Error::Rejected { what: source.into(), problems });
    }
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths { pos, expected_len, len } => Error::Rejected {
                what: source.into(),
                problems: vec![Problem {
                    row: Some(i + 1),
                    line: pos.as_ref().map(|p| p.line()),
                    column: None,
                    message: format!("{len} cells, the header has {expected_len}"),
                }],
            },
            _ => Error::Csv(e),
        })?;
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let mut raw = RawRecord::default();
        for (h, cell) in header.iter().zip(rec.iter()) {
            raw.set(h, unescape_cell(cell));
        }
        rows.push(Located { row: Some(i + 1), line: rec.position().map(|p| p.line()), raw });
    }
    store(catalog, rows, source, &format!("import {source}"), who, now_ms)
}

/// [`import`] from a file.
pub fn import_file(catalog: &Catalog, path: &Path, who: &str, now_ms: u64) -> Result<RightsStored> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let name = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    import(catalog, std::io::BufReader::new(f), &name, who, now_ms)
}

/// Validate and store one record (from `rights add`); returns it with its id.
pub fn add(catalog: &Catalog, raw: RawRecord, who: &str, now_ms: u64) -> Result<OwnershipRecord> {
    let rows = vec![Located { row: None, line: None, raw }];
    let mut stored = store(catalog, rows, "rights add", "rights add", who, now_ms)?;
    stored.records.pop().ok_or_else(|| Error::Invalid("nothing stored".into()))
}

/// Write records as a rights CSV (header [`COLUMNS`], cells escaped with
/// [`crate::report::escape_cell`]); [`import`] reads it back to the same records.
pub fn write_csv(records: &[OwnershipRecord], out: impl Write) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS)?;
    for r in records {
        let raw = RawRecord::from_record(r);
        w.write_record(COLUMNS.iter().map(|c| escape_cell(raw.get(c)).into_owned()))?;
    }
    w.flush().map_err(|e| Error::io("rights csv", e))?;
    Ok(())
}

/// A short description of a record's scope: `Series`, `Series / ep <id>`,
/// `... / piece <id>`, `... / 00:01:30.000-00:03:00.000`.
pub fn scope_label(r: &OwnershipRecord) -> String {
    let mut s = r.series.clone();
    if let Some(e) = &r.episode {
        s.push_str(&format!(" / ep {e}"));
    }
    if let Some(p) = &r.piece {
        s.push_str(&format!(" / piece {p}"));
    }
    if let (Some(a), Some(b)) = (r.start, r.end) {
        s.push_str(&format!(" / {}-{}", a.hms(), b.hms()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_normalise_and_check() {
        assert_eq!(normalize_isrc("jp-abc-24-00001").unwrap(), "JPABC2400001");
        assert!(normalize_isrc("JP-ABC-24-0001").is_err());
        assert_eq!(normalize_iswc("T0345246801").unwrap(), "T-034.524.680-1");
        assert!(normalize_iswc("T-034.524.680-2").unwrap_err().contains("check digit"));
    }

    #[test]
    fn a_match_touching_a_range_by_less_than_a_hop_is_not_in_it() {
        let op = Scope { series: "S".into(), episode: Some("e".into()), range: Some((0.0, 90.0)) };
        let at = |a: f64, b: f64| op.overlaps("S", "e", Seconds(a), Seconds(b));
        assert!(!at(89.6, 150.0), "0.4 s of the opening's range");
        assert!(at(88.0, 150.0));
        assert!(at(10.0, 20.0));
        // A match shorter than a second needs half of itself inside.
        assert!(at(89.7, 90.2) && !at(89.8, 90.5));
        assert!(!op.overlaps("S", "other", Seconds(10.0), Seconds(20.0)));
        let whole = Scope { range: None, ..op.clone() };
        assert!(whole.overlaps("S", "e", Seconds(300.0), Seconds(301.0)));
    }

    #[test]
    fn times_parse_in_both_forms() {
        assert_eq!(parse_time("95.5").unwrap(), Seconds(95.5));
        assert_eq!(parse_time("01:35.5").unwrap(), Seconds(95.5));
        assert_eq!(parse_time("00:01:35.500").unwrap(), Seconds(95.5));
        assert_eq!(parse_time("1.23456").unwrap(), Seconds(1.235));
        assert!(parse_time("1:75").is_err());
        assert!(parse_time("-3").is_err());
        assert!(parse_time("abc").is_err());
    }
}
