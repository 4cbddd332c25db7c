//! The match report CSV: a snapshot for a small catalog, the time-scoped rights join, "owner
//! missing" rows, filters, and formula-injection escaping (property tests).

#![allow(clippy::unwrap_used)]

#[path = "support/rights_fixture.rs"]
mod fixture;

use aniprint::catalog::{Band, Catalog, MatchFilter, MatchRegion, MatchStatus, Numbering, Stem};
use aniprint::report::{self, COLUMNS, ReportOptions, escape_cell, unescape_cell};
use aniprint::review::{self, Decision, ReviewConfig};
use aniprint::rights;
use fixture::{EP01, EP02, MIN, NOW, SERIES};
use proptest::prelude::*;

fn options(filter: MatchFilter) -> ReportOptions {
    ReportOptions {
        filter,
        now_ms: NOW + 60 * MIN,
        tool_version: "test".into(),
        evidence: Default::default(),
    }
}

/// Parse a report back: header and rows of unescaped cells.
fn parse(csv_text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::Reader::from_reader(csv_text.as_bytes());
    let header = rdr.headers().unwrap().iter().map(String::from).collect();
    let rows = rdr
        .records()
        .map(|r| r.unwrap().iter().map(|c| unescape_cell(c).to_string()).collect())
        .collect();
    (header, rows)
}

fn col(name: &str) -> usize {
    COLUMNS.iter().position(|c| *c == name).unwrap()
}

/// The example rights, two uploads, four matches in different states.
fn small_catalog() -> (tempfile::TempDir, Catalog) {
    let (d, cat) = fixture::catalog();
    rights::import(&cat, fixture::example_csv().as_bytes(), "ex.csv", "importer", NOW - MIN)
        .unwrap();
    let up1 = fixture::upload('1', 47.0, NOW);
    let regions = [
        // Inside the BGM cue (25-55 s of ep01): joins the two publishers, the master and the
        // series-wide record.
        fixture::region(&up1, Stem::Background, EP01, 0.0, (30.0, 50.0), 0.91, Band::High),
        // ep02's dialogue range (100-112 s): the voice record and the series-wide record.
        fixture::region(&up1, Stem::Voice, EP02, 35.0, (100.0, 112.0), 0.62, Band::Medium),
    ];
    cat.put_scan(&up1, &regions, &ReviewConfig::default(), NOW).unwrap();
    let mut up2 = fixture::upload('2', 60.0, NOW + MIN);
    up2.source = None;
    let regions = [
        // High and 35 s: confirmed by the default auto-rule.
        fixture::region(&up2, Stem::Mix, EP02, 6.0, (150.0, 185.0), 0.88, Band::High),
        fixture::region(&up2, Stem::Mix, EP01, 31.0, (200.0, 205.0), 0.4, Band::Low),
    ];
    cat.put_scan(&up2, &regions, &ReviewConfig::default(), NOW + MIN).unwrap();
    let cfg = ReviewConfig::default();
    let ids: Vec<String> =
        cat.matches(&MatchFilter::default()).unwrap().into_iter().map(|m| m.id).collect();
    let by = |ep: &str, start: f64| {
        cat.matches(&MatchFilter::default())
            .unwrap()
            .into_iter()
            .find(|m| m.episode == ep && m.episode_start.0 == start)
            .unwrap()
            .id
    };
    assert_eq!(ids.len(), 4);
    let dispute = Decision {
        reason: Some("fair_use".into()),
        note: Some("=cmd|' /C calc'!A0".into()),
        ..Decision::default()
    };
    review::set_status(
        &cat,
        &cfg,
        &by(EP01, 30.0),
        MatchStatus::Confirmed,
        Decision::default(),
        "alice",
        NOW + 2 * MIN,
    )
    .unwrap();
    review::set_status(
        &cat,
        &cfg,
        &by(EP02, 100.0),
        MatchStatus::Confirmed,
        Decision::default(),
        "alice",
        NOW + 2 * MIN,
    )
    .unwrap();
    review::set_status(
        &cat,
        &cfg,
        &by(EP02, 100.0),
        MatchStatus::Disputed,
        dispute,
        "bob",
        NOW + 3 * MIN,
    )
    .unwrap();
    let dismiss = Decision { reason: Some("false_positive".into()), ..Decision::default() };
    review::set_status(
        &cat,
        &cfg,
        &by(EP01, 200.0),
        MatchStatus::Dismissed,
        dismiss,
        "alice",
        NOW + 4 * MIN,
    )
    .unwrap();
    (d, cat)
}

#[test]
fn report_csv_snapshot() {
    let (_d, cat) = small_catalog();
    let rep = report::build(&cat, &options(MatchFilter::default())).unwrap();
    assert_eq!(rep.matches, 4);
    // ep02 150-185 s and ep01 200-205 s: only the series-wide record; nothing is ownerless
    // because the series record covers everything.
    assert_eq!(rep.owner_missing, 0);
    let text = rep.to_csv_string().unwrap();
    let (header, rows) = parse(&text);
    assert_eq!(header, COLUMNS);
    assert!(rows.iter().all(|r| r.len() == COLUMNS.len()));
    // Rows of one region share the match id; shares of the BGM cue add up per rights type.
    let bgm: Vec<&Vec<String>> =
        rows.iter().filter(|r| r[col("ref_start_s")] == "30.000").collect();
    assert_eq!(bgm.len(), 4);
    assert!(bgm.iter().all(|r| r[col("match_id")] == bgm[0][col("match_id")]));
    let perf: f64 = bgm
        .iter()
        .filter(|r| r[col("rights_type")] == "performance")
        .map(|r| r[col("share_pct")].parse::<f64>().unwrap())
        .sum();
    assert_eq!(perf, 100.0);
    // The injected note is escaped in the file.
    assert!(text.contains("'=cmd|"), "{text}");
    insta::assert_snapshot!("report_csv", text);
}

#[test]
fn a_region_without_rights_is_flagged_owner_missing() {
    let (_d, cat) = fixture::catalog();
    let up = fixture::upload('3', 60.0, NOW);
    let r = fixture::region(&up, Stem::Mix, EP01, 0.0, (10.0, 20.0), 0.8, Band::Medium);
    cat.put_scan(&up, &[r], &ReviewConfig::none(), NOW).unwrap();
    let rep = report::build(&cat, &options(MatchFilter::default())).unwrap();
    assert_eq!((rep.rows.len(), rep.owner_missing), (1, 1));
    let row = &rep.rows[0];
    assert_eq!(row[col("owner_missing")], "true");
    for c in &COLUMNS[col("rights_id")..=col("policy")] {
        assert_eq!(row[col(c)], "", "{c}");
    }
    assert_eq!(row[col("status")], "pending");
    assert_eq!(row[col("pct_of_upload")], "16.667");
    assert_eq!(row[col("pct_of_reference_piece")], "5.556");
    assert_eq!(row[col("upload_start_hms")], "00:00:00.000");
    assert_eq!(row[col("ref_end_hms")], "00:00:20.000");
    assert_eq!(row[col("generated_at_utc")], "2024-05-01T13:00:00Z");
    assert_eq!(row[col("row_hash")].len(), 64);
}

#[test]
fn rows_give_season_episode_and_the_bar_their_region_passed() {
    let (_d, cat) = fixture::catalog();
    // Numbers on record (container tags) win; a record without them is read from its file
    // name, as a catalog stored before they were kept is.
    let mut tagged = fixture::episode("aaaaaaaaaaaa", SERIES, "Show S2 - 07 (1080p)", 100.0);
    tagged.numbering = Numbering { season: Some("3".into()), episode: Some("12".into()) };
    let named = fixture::episode("bbbbbbbbbbbb", SERIES, "[Group] Show S2 - 07 (1080p)", 100.0);
    for ep in [&tagged, &named] {
        cat.insert_episode(ep, &fixture::pieces(ep)).unwrap();
    }
    let up = fixture::upload('5', 60.0, NOW);
    let regions = [
        fixture::region(&up, Stem::Mix, &tagged.id, 0.0, (10.0, 20.0), 0.8, Band::Medium),
        fixture::region(&up, Stem::Voice, &named.id, 20.0, (50.0, 54.5), 0.9, Band::High),
        fixture::region(&up, Stem::Mix, EP01, 30.0, (10.0, 20.0), 0.8, Band::Medium),
    ];
    cat.put_scan(&up, &regions, &ReviewConfig::none(), NOW).unwrap();
    let rep = report::build(&cat, &options(MatchFilter::default())).unwrap();
    let row = |id: &str| rep.rows.iter().find(|r| r[col("episode_id")] == id).unwrap();
    let numbers = |id| {
        let r = row(id);
        (r[col("season")].clone(), r[col("episode")].clone(), r[col("episode_title")].clone())
    };
    assert_eq!(numbers(&tagged.id), ("3".into(), "12".into(), "Show S2 - 07 (1080p)".into()));
    assert_eq!(numbers(&named.id), ("2".into(), "7".into(), "[Group] Show S2 - 07 (1080p)".into()));
    assert_eq!(numbers(EP01), ("".into(), "1".into(), "ep01".into()));
    // The fixture scan's rule: 0.5, +0.1 for voice, +0.4/sqrt(segments voted).
    assert_eq!(row(&tagged.id)[col("segments_voted")], "20");
    assert_eq!(row(&tagged.id)[col("score_threshold")], format!("{:.4}", 0.5 + 0.4 / 20f32.sqrt()));
    assert_eq!(row(&named.id)[col("segments_voted")], "9");
    assert_eq!(row(&named.id)[col("score_threshold")], "0.7333");
}

#[test]
fn a_reviewed_match_keeps_the_models_of_the_scan_that_found_it() {
    let (_d, cat) = fixture::catalog();
    let up = fixture::upload('5', 60.0, NOW);
    let first = fixture::region(&up, Stem::Mix, EP01, 0.0, (10.0, 40.0), 0.8, Band::Medium);
    cat.put_scan(&up, std::slice::from_ref(&first), &ReviewConfig::none(), NOW).unwrap();
    review::set_status(
        &cat,
        &ReviewConfig::none(),
        &first.computed_id(),
        MatchStatus::Confirmed,
        Decision::default(),
        "rev",
        NOW + 1,
    )
    .unwrap();
    // A rescan a day later with another fingerprinter replaces the upload's record.
    let mut again = up.clone();
    again.scanned_ms = NOW + 24 * 60 * MIN;
    again.models.fingerprint = "fp-next@89abcdef".into();
    let new = fixture::region(&again, Stem::Voice, EP02, 45.0, (0.0, 10.0), 0.8, Band::Medium);
    cat.put_scan(&again, &[first, new], &ReviewConfig::none(), again.scanned_ms).unwrap();
    let rep = report::build(&cat, &options(MatchFilter::default())).unwrap();
    let model_of = |stem: &str| {
        let row = rep.rows.iter().find(|r| r[col("match_type")] == stem).unwrap();
        row[col("fingerprint_model")].clone()
    };
    assert_eq!(model_of("mix"), "fp-test@0123abcd");
    assert_eq!(model_of("voice"), "fp-next@89abcdef");
}

#[test]
fn time_scoped_rights_join_only_overlapping_ranges() {
    let (_d, cat) = fixture::catalog();
    let mut raw = rights::RawRecord::default();
    raw.set("rights_holder", "Cue Owner")
        .set("work_title", "Cue")
        .set("work_kind", "composition")
        .set("series", SERIES)
        .set("episode", EP01)
        .set("start_s", "60")
        .set("end_s", "90")
        .set("rights_type", "sync")
        .set("share_pct", "100")
        .set("policy", "track")
        .set("valid_from", "2024-01-01");
    rights::add(&cat, raw.clone(), "me", NOW).unwrap();
    // A record valid only before the scan date never joins.
    raw.set("valid_from", "2020-01-01").set("valid_to", "2023-12-31").set("rights_holder", "Old");
    rights::add(&cat, raw, "me", NOW).unwrap();
    let up = fixture::upload('4', 300.0, NOW);
    // (episode range, joins?)
    let cases = [
        ((30.0, 60.0), false), // ends where the cue starts
        ((30.0, 60.5), false), // a boundary touch: ends are placed to about a hop
        ((30.0, 61.0), true),
        ((89.9, 120.0), false),
        ((89.0, 120.0), true),
        ((90.0, 120.0), false), // starts where the cue ends
        ((65.0, 70.0), true),   // inside
        ((0.0, 200.0), true),   // around
        ((100.0, 130.0), false),
    ];
    let regions: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (r, _))| {
            fixture::region(&up, Stem::Mix, EP01, i as f64 * 40.0, *r, 0.8, Band::Medium)
        })
        .collect();
    cat.put_scan(&up, &regions, &ReviewConfig::none(), NOW).unwrap();
    // In another episode the same times never join.
    let other = fixture::region(&up, Stem::Voice, EP02, 0.0, (60.0, 90.0), 0.8, Band::Medium);
    cat.put_scan(&up, &[regions.clone(), vec![other]].concat(), &ReviewConfig::none(), NOW)
        .unwrap();
    let rep = report::build(&cat, &options(MatchFilter::default())).unwrap();
    assert_eq!(rep.rows.len(), cases.len() + 1);
    for (i, (range, joins)) in cases.iter().enumerate() {
        let row = rep
            .rows
            .iter()
            .find(|r| {
                r[col("episode_id")] == EP01
                    && r[col("ref_start_s")] == format!("{:.3}", range.0)
                    && r[col("ref_end_s")] == format!("{:.3}", range.1)
            })
            .unwrap();
        let holder = &row[col("rights_holder")];
        assert_eq!(holder == "Cue Owner", *joins, "case {i} {range:?}");
        assert_eq!(row[col("owner_missing")] == "true", !joins, "case {i}");
    }
    let other_row = rep.rows.iter().find(|r| r[col("episode_id")] == EP02).unwrap();
    assert_eq!(other_row[col("owner_missing")], "true");
}

#[test]
fn filters_select_matches() {
    let (_d, cat) = small_catalog();
    let count = |f: MatchFilter| report::build(&cat, &options(f)).unwrap().matches;
    let st = |s: &[MatchStatus]| MatchFilter { statuses: s.to_vec(), ..MatchFilter::default() };
    assert_eq!(count(st(&[MatchStatus::Confirmed])), 2);
    assert_eq!(count(st(&[MatchStatus::Disputed, MatchStatus::Dismissed])), 2);
    let up1 = fixture::upload('1', 0.0, 0).id;
    assert_eq!(count(MatchFilter { upload: Some(up1), ..MatchFilter::default() }), 2);
    assert_eq!(count(MatchFilter { series: Some("Nope".into()), ..MatchFilter::default() }), 0);
    // Changed since NOW + 3 min: the dispute and the dismissal.
    let since = MatchFilter { since_ms: Some(NOW + 3 * MIN), ..MatchFilter::default() };
    assert_eq!(count(since), 2);
}

proptest! {
    #[test]
    fn escaping_never_leaves_a_formula_start_and_round_trips(
        cell in "\\PC{0,12}|[=+\\-@\t\r'][ -~]{0,8}"
    ) {
        let e = escape_cell(&cell);
        prop_assert!(!e.starts_with(['=', '+', '-', '@', '\t', '\r']));
        prop_assert_eq!(unescape_cell(&e), cell.as_str());
    }

    #[test]
    fn escaped_csv_reads_back_to_the_original_cells(
        cells in proptest::collection::vec("[=+\\-@\t\r' a-z,\"\n]{0,6}", 1..6)
    ) {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(cells.iter().map(|c| escape_cell(c).into_owned())).unwrap();
        let bytes = w.into_inner().unwrap();
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
        let rec = rdr.records().next().unwrap().unwrap();
        for (got, want) in rec.iter().zip(&cells) {
            prop_assert!(!got.starts_with(['=', '+', '-', '@', '\t', '\r']));
            prop_assert_eq!(unescape_cell(got), want.as_str());
        }
    }
}

/// The clips of `report --evidence`, cut from the fixture files through the library: stretches
/// that overlap, one that runs past the end of its episode, a match whose upload is gone and
/// one whose episode record was removed.
#[test]
fn evidence_keeps_both_clips_of_a_match_or_neither() {
    use aniprint::ingest::{self, IngestOptions};
    use aniprint::progress::NoProgress;
    use aniprint::report::evidence::{self, EvidenceOptions};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(dir.path().join("cat")).unwrap();
    let eps = [fixtures.join("episodes/ep01.mkv"), fixtures.join("episodes/ep03.webm")];
    let done = ingest::ingest_paths(&cat, &eps, &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(done.ok.len(), 2, "{:?}", done.failed);
    let id_of = |name: &str| {
        let all = cat.episodes().unwrap();
        all.iter().find(|e| e.path.ends_with(name)).unwrap().id.clone()
    };
    let (ep01, ep03) = (id_of("ep01.mkv"), id_of("ep03.webm"));
    let real = fixtures.join("uploads/up01.mp4");
    let mut up = fixture::upload('a', 47.0, NOW);
    up.path = real.to_string_lossy().into_owned();
    up.sha256 = ingest::sha256_file(&real, &NoProgress).unwrap();
    up.size_bytes = std::fs::metadata(&real).unwrap().len();
    let mut gone = fixture::upload('b', 20.0, NOW);
    gone.path = dir.path().join("gone.mp4").to_string_lossy().into_owned();
    let r = |u, stem, ep: &str, at, range| fixture::region(u, stem, ep, at, range, 0.9, Band::High);
    let ours = [
        r(&up, Stem::Mix, &ep01, 0.0, (30.0, 50.0)),
        r(&up, Stem::Background, &ep01, 0.0, (30.0, 50.0)), // the same two stretches
        r(&up, Stem::Mix, &ep01, 35.0, (235.0, 245.0)),     // ep01 ends at 240.02 s
        r(&up, Stem::Mix, &ep03, 25.0, (100.0, 104.0)),
    ];
    cat.put_scan(&up, &ours, &ReviewConfig::none(), NOW).unwrap();
    cat.put_scan(&gone, &[r(&gone, Stem::Mix, &ep03, 0.0, (0.0, 8.0))], &ReviewConfig::none(), NOW)
        .unwrap();
    let regions = cat.matches(&MatchFilter::default()).unwrap();
    let out = dir.path().join("evidence");
    let ev =
        evidence::write_clips(&cat, &regions, &EvidenceOptions::new(&out), &NoProgress).unwrap();

    let gone_id = &regions.iter().find(|m| m.upload == gone.id).unwrap().id;
    assert_eq!(ev.refs.len(), 4, "{:?}", ev.refs);
    assert!(!ev.refs.contains_key(gone_id));
    let [failure] = ev.failed.as_slice() else { panic!("{:?}", ev.failed) };
    assert!(failure.to_string().contains("gone.mp4: missing"), "{failure}");
    // The gone upload's episode clip was cut (ep03 came first) and then dropped with it.
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".flac"))
        .collect();
    assert_eq!((files.len(), ev.written), (8, 8), "{files:?}");
    assert!(!files.iter().any(|f| f.starts_with(gone_id.as_str())), "{files:?}");
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 8, "{sums}");
    let secs = |f: &str| {
        let opts = aniprint::media::DecodeOptions::default();
        aniprint::media::decode(&out.join(f), &opts).unwrap().len() as f64 / 16_000.0
    };
    let clip = |m: &MatchRegion, side: &str| format!("{}-{side}.flac", m.id);
    for m in regions.iter().filter(|m| m.upload == up.id) {
        let (u, e) = (secs(&clip(m, "upload")), secs(&clip(m, "reference")));
        let want = m.upload_end.0 - m.upload_start.0;
        assert!((u - want).abs() < 0.05, "{}: upload clip {u} s, match {want} s", m.id);
        // The stretch past ep01's end ends with the audio.
        let want = want.min(240.02 - m.episode_start.0);
        assert!((e - want).abs() < 0.05, "{}: episode clip {e} s, want {want} s", m.id);
    }
    // Overlapping stretches are cut alike.
    let [a, b] = [Stem::Mix, Stem::Background].map(|s| {
        let m = regions.iter().find(|m| m.stem == s && m.episode_start.0 == 30.0).unwrap();
        std::fs::read(out.join(clip(m, "reference"))).unwrap()
    });
    assert_eq!(a, b);

    // A match whose episode record is gone fails alone; a second run into the folder rewrites
    // the clips it cuts and keeps the hashes of the others.
    cat.remove_episode(&ep03).unwrap();
    let ev =
        evidence::write_clips(&cat, &regions, &EvidenceOptions::new(&out), &NoProgress).unwrap();
    assert_eq!(ev.refs.len(), 3, "{:?}", ev.refs);
    assert!(ev.failed.iter().any(|e| e.to_string().contains("not found")), "{:?}", ev.failed);
    assert_eq!(std::fs::read_to_string(out.join("SHA256SUMS")).unwrap(), sums);
}
