//! Match reports for legal teams: one CSV row per match region x ownership record overlapping
//! its reference range (rows of one region share a `match_id`, so shares can be summed), in the
//! fixed column order of [`COLUMNS`] (WORKFLOW.md §2), versioned by the first column,
//! `report_schema` ([`REPORT_SCHEMA`]).
//!
//! Conventions: UTF-8 with a header row; times as UTC ISO 8601 (`2024-05-01T12:00:00Z`);
//! media times in seconds with millisecond precision and as `HH:MM:SS.mmm`; every cell escaped
//! against spreadsheet formula injection ([`escape_cell`]); a region with no ownership record
//! still gets a row, with the rights columns empty and `owner_missing` = `true`. An ownership
//! record joins a region when its scope overlaps the matched reference range
//! ([`crate::rights::Scope::overlaps`]) and it is valid on the day the scan that found the
//! match ran.
//! `row_hash` is the SHA-256 of the row's other cells except `report_id` (unescaped, joined by
//! U+001F), for tamper evidence: the same facts hash the same in every report generated at the
//! same time.

pub mod evidence;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use sha2::{Digest, Sha256};

use crate::catalog::date::{Date, utc_iso};
use crate::catalog::{Catalog, MatchFilter, MatchRegion, MatchStatus, OwnershipRecord, Upload};
use crate::rights::Lookup;
use crate::units::Seconds;
use crate::{Error, Result};

/// The UTF-8 byte-order mark, which tells Excel a CSV is UTF-8 (`report --bom`, `csv_bom`).
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Version of the column layout; bump it when a column is added, removed, reordered or means
/// something else. 2: `season` and `episode` hold the episode's numbers (they were empty and
/// the catalog id), the id moved to the new `episode_id`, and `score_threshold` is the bar the
/// row's region passed (it was the scan's base threshold).
pub const REPORT_SCHEMA: u32 = 2;

/// The report's columns, in order.
pub const COLUMNS: [&str; 64] = [
    // report
    "report_schema",
    "report_id",
    "generated_at_utc",
    "tool_version",
    "fingerprint_model",
    "separator_model",
    "index_version",
    "score_threshold",
    // upload (query)
    "upload_id",
    "upload_file",
    "upload_source",
    "upload_sha256",
    "upload_duration_s",
    "upload_start_s",
    "upload_end_s",
    "upload_start_hms",
    "upload_end_hms",
    // reference
    "series",
    "season",
    "episode",
    "episode_id",
    "episode_title",
    "reference_file",
    "reference_sha256",
    "piece_id",
    "ref_start_s",
    "ref_end_s",
    "ref_start_hms",
    "ref_end_hms",
    // match
    "match_id",
    "match_type",
    "match_duration_s",
    "pct_of_upload",
    "pct_of_reference_piece",
    "longest_contiguous_s",
    "score",
    "confidence_band",
    "segments_voted",
    // rights
    "owner_missing",
    "rights_id",
    "rights_holder",
    "work_title",
    "work_kind",
    "isrc",
    "iswc",
    "other_ids",
    "rights_type",
    "share_pct",
    "territories",
    "territory_mode",
    "valid_from",
    "valid_to",
    "licence_type",
    "policy",
    // review
    "status",
    "status_reason",
    "reviewer",
    "reviewed_at_utc",
    "review_note",
    "dispute_deadline_utc",
    "rule",
    // evidence
    "evidence_ref",
    "created_at_utc",
    "row_hash",
];

/// What to report on and how to stamp it.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Which matches.
    pub filter: MatchFilter,
    /// Generation time (Unix ms, UTC): `generated_at_utc`, and part of `report_id`.
    pub now_ms: u64,
    /// `tool_version` (the CLI passes the crate version).
    pub tool_version: String,
    /// `evidence_ref` by match id, from [`evidence::write_clips`]; a match not in it keeps the
    /// evidence its record names, if any.
    pub evidence: BTreeMap<String, String>,
}

/// A built report: rows of unescaped cells in [`COLUMNS`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// 12 hex digits identifying this report (hash of its time, filter and rows).
    pub id: String,
    /// Rows, each with `COLUMNS.len()` cells.
    pub rows: Vec<Vec<String>>,
    /// Match regions reported.
    pub matches: usize,
    /// Of those, regions with no ownership record.
    pub owner_missing: usize,
}

/// Build the report rows.
pub fn build(catalog: &Catalog, opts: &ReportOptions) -> Result<Report> {
    let lookup = Lookup::load(catalog)?;
    let rights = catalog.rights()?;
    let regions = catalog.matches(&opts.filter)?;
    let mut uploads: std::collections::BTreeMap<String, Upload> = Default::default();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut owner_missing = 0;
    for m in &regions {
        if !uploads.contains_key(&m.upload) {
            uploads.insert(m.upload.clone(), catalog.upload(&m.upload)?);
        }
        let upload = &uploads[&m.upload];
        // Rights are those valid when the scan that found the match ran (a reviewed match
        // outlives rescans of its upload).
        let date = Date::from_unix_ms(m.found_with(upload).1);
        let mut owners = lookup.rights_for(&rights, m, date);
        owners.sort_by(|a, b| a.rights_id.cmp(&b.rights_id));
        let piece_pct = piece_share(catalog, &lookup, m)?;
        if owners.is_empty() {
            owner_missing += 1;
            rows.push(row(opts, &lookup, upload, m, piece_pct, None));
        }
        for r in owners {
            rows.push(row(opts, &lookup, upload, m, piece_pct, Some(r)));
        }
    }
    let mut h = Sha256::new();
    h.update(opts.now_ms.to_le_bytes());
    h.update(format!("{:?}", opts.filter).as_bytes());
    for r in &mut rows {
        let hash = hex::encode(Sha256::digest(r.join("\u{1f}").as_bytes()));
        h.update(hash.as_bytes());
        r.push(hash);
    }
    let id = hex::encode(&h.finalize()[..6]);
    for r in &mut rows {
        r[1] = id.clone();
    }
    // The row hash covers every cell but itself and the report id (which depends on it).
    Ok(Report { id, rows, matches: regions.len(), owner_missing })
}

impl Report {
    /// Write the CSV: header row, then rows with every cell escaped.
    pub fn write_csv(&self, out: impl Write) -> Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(COLUMNS)?;
        for r in &self.rows {
            w.write_record(r.iter().map(|c| escape_cell(c).into_owned()))?;
        }
        w.flush().map_err(|e| Error::io("report", e))?;
        Ok(())
    }

    /// The CSV file's bytes, after a UTF-8 byte-order mark when `bom` (for Excel: `--bom`,
    /// `csv_bom`).
    pub fn to_csv_bytes(&self, bom: bool) -> Result<Vec<u8>> {
        let mut buf = if bom { UTF8_BOM.to_vec() } else { Vec::new() };
        self.write_csv(&mut buf)?;
        Ok(buf)
    }

    /// The CSV as a string.
    pub fn to_csv_string(&self) -> Result<String> {
        let mut buf = Vec::new();
        self.write_csv(&mut buf)?;
        String::from_utf8(buf).map_err(|e| Error::Invalid(format!("report is not UTF-8: {e}")))
    }
}

/// Percentage of the touched reference pieces' length the region covers (empty when the
/// pieces are not in the catalog).
fn piece_share(catalog: &Catalog, lookup: &Lookup, m: &MatchRegion) -> Result<Option<f64>> {
    let Some(ep) = lookup.episode(&m.episode) else { return Ok(None) };
    let mut total = 0.0;
    for p in catalog.pieces_of(&m.episode)? {
        let (a, b) = p.span(ep.work_rate);
        if a.0 < m.episode_end.0 && m.episode_start.0 < b.0 {
            total += b.0 - a.0;
        }
    }
    let len = m.episode_end.0 - m.episode_start.0;
    Ok((total > 0.0).then(|| 100.0 * len / total))
}

fn row(
    opts: &ReportOptions,
    lookup: &Lookup,
    u: &Upload,
    m: &MatchRegion,
    piece_pct: Option<f64>,
    r: Option<&OwnershipRecord>,
) -> Vec<String> {
    let ep = lookup.episode(&m.episode);
    let numbering = ep.map(|e| e.numbering()).unwrap_or_default();
    let s3 = Seconds::millis_str;
    let opt = |o: Option<&String>| o.cloned().unwrap_or_default();
    let review = m.review.as_ref();
    let models = m.found_with(u).0;
    let pct_upload = if u.duration.0 > 0.0 {
        format!("{:.3}", 100.0 * m.duration().0 / u.duration.0)
    } else {
        String::new()
    };
    let mut cells = vec![
        REPORT_SCHEMA.to_string(),
        String::new(), // report_id, filled in once every row is known
        utc_iso(opts.now_ms),
        opts.tool_version.clone(),
        models.fingerprint.clone(),
        models.separator.clone(),
        models.index.clone(),
        // The bar this region passed, not the base: with the base a short region's score looks
        // further above the line than it was.
        // Records too old to count their segments cannot say which bar they passed.
        if m.segments_voted == 0 {
            String::new()
        } else {
            format!("{:.4}", models.bar(m.stem, m.segments_voted))
        },
        u.id.clone(),
        u.path.clone(),
        opt(u.source.as_ref()),
        u.sha256.clone(),
        s3(u.duration),
        s3(m.upload_start),
        s3(m.upload_end),
        m.upload_start.hms(),
        m.upload_end.hms(),
        ep.map(|e| e.series.clone()).unwrap_or_default(),
        opt(numbering.season.as_ref()),
        opt(numbering.episode.as_ref()),
        m.episode.clone(),
        ep.map(|e| e.title.clone()).unwrap_or_default(),
        ep.map(|e| e.path.clone()).unwrap_or_default(),
        ep.map(|e| e.sha256.clone()).unwrap_or_default(),
        m.pieces.join(";"),
        s3(m.episode_start),
        s3(m.episode_end),
        m.episode_start.hms(),
        m.episode_end.hms(),
        m.id.clone(),
        m.stem.as_str().into(),
        s3(m.duration()),
        pct_upload,
        piece_pct.map(|p| format!("{p:.3}")).unwrap_or_default(),
        s3(m.longest_contiguous),
        format!("{:.4}", m.score),
        m.band.as_str().into(),
        m.segments_voted.to_string(),
        r.is_none().to_string(),
    ];
    match r {
        Some(r) => cells.extend([
            r.rights_id.clone(),
            r.rights_holder.clone(),
            r.work_title.clone(),
            r.work_kind.as_str().into(),
            opt(r.isrc.as_ref()),
            opt(r.iswc.as_ref()),
            r.other_ids.join(";"),
            r.rights_type.as_str().into(),
            format!("{}", r.share_pct),
            r.territories.join(","),
            r.territory_mode.as_str().into(),
            r.valid_from.map(|d| d.to_string()).unwrap_or_default(),
            r.valid_to.map(|d| d.to_string()).unwrap_or_default(),
            opt(r.licence_type.as_ref()),
            r.policy.as_str().into(),
        ]),
        None => cells.extend(std::iter::repeat_n(String::new(), 15)),
    }
    cells.extend([
        m.status.as_str().into(),
        opt(review.and_then(|v| v.reason.as_ref())),
        review.map(|v| v.who.clone()).unwrap_or_default(),
        review.map(|v| utc_iso(v.at_ms)).unwrap_or_default(),
        opt(review.and_then(|v| v.note.as_ref())),
        review
            .and_then(|v| v.deadline_ms)
            .filter(|_| m.status == MatchStatus::Disputed)
            .map(utc_iso)
            .unwrap_or_default(),
        opt(m.rule.as_ref()),
        opt(opts.evidence.get(&m.id).or(m.evidence.as_ref())),
        utc_iso(m.created_ms),
    ]);
    debug_assert_eq!(cells.len(), COLUMNS.len() - 1);
    cells
}

/// What [`escape_cell`] prefixes a `'` to: spreadsheet formula starts, and `'` itself.
const FORMULA_STARTS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];

/// Escape a CSV cell against spreadsheet formula injection (OWASP "CSV injection"): a cell
/// starting with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`, which
/// spreadsheets show as text. A cell that already starts with `'` gets one too, so that
/// [`unescape_cell`] can undo exactly what this did.
pub fn escape_cell(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Undo [`escape_cell`]: drop the leading `'` it adds, and only that one (a hand-written
/// `'Round Midnight` keeps its apostrophe).
pub fn unescape_cell(cell: &str) -> &str {
    cell.strip_prefix('\'').filter(|rest| rest.starts_with(FORMULA_STARTS)).unwrap_or(cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_formula_starts_and_quotes() {
        assert_eq!(escape_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(escape_cell("-1"), "'-1");
        assert_eq!(escape_cell("\tx"), "'\tx");
        assert_eq!(escape_cell("'quoted"), "''quoted");
        assert_eq!(escape_cell("plain = text"), "plain = text");
        assert_eq!(unescape_cell("''quoted"), "'quoted");
        for cell in ["=SUM(A1)", "-1", "'quoted", "''", "plain", "'Round Midnight", ""] {
            assert_eq!(unescape_cell(&escape_cell(cell)), cell);
        }
        // A hand-written apostrophe that escaping did not add is part of the text.
        assert_eq!(unescape_cell("'Round Midnight"), "'Round Midnight");
        assert_eq!(unescape_cell("'=1"), "=1");
        assert_eq!(COLUMNS.len(), 64);
    }
}
