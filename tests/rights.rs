//! Ownership records: the example import file, export round trip, validation errors named by
//! row and column, all-or-nothing import, and share conflicts.

#![allow(clippy::unwrap_used)]

#[path = "support/rights_fixture.rs"]
mod fixture;

use aniprint::Error;
use aniprint::catalog::{Catalog, OwnershipRecord, TargetKind};
use aniprint::rights::{self, Problem, RawRecord};
use fixture::{EP01, NOW, SERIES};

const HEADER: &str = "rights_holder,work_title,work_kind,series,episode,start_s,end_s,\
                      rights_type,share_pct,territories,territory_mode,valid_from,valid_to,policy";

fn import(cat: &Catalog, body: &str) -> aniprint::Result<aniprint::catalog::rights::RightsStored> {
    let text = format!("{HEADER}\n{body}");
    rights::import(cat, text.as_bytes(), "test.csv", "tester", NOW)
}

fn problems(e: Error) -> Vec<Problem> {
    match e {
        Error::Rejected { problems, .. } => problems,
        other => panic!("expected a rejection, got {other}"),
    }
}

/// Records without the fields the catalog sets.
fn content(mut r: Vec<OwnershipRecord>) -> Vec<OwnershipRecord> {
    for x in &mut r {
        x.created_by.clear();
        x.updated_by.clear();
        x.created_ms = 0;
        x.updated_ms = 0;
    }
    r
}

#[test]
fn example_file_imports_and_export_round_trips() {
    let (_d, cat) = fixture::catalog();
    let stored = rights::import(&cat, fixture::example_csv().as_bytes(), "ex.csv", "me", NOW)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((stored.created, stored.replaced), (5, 0));
    let recs = cat.rights().unwrap();
    let bgm = recs.iter().find(|r| r.rights_id == "r-bgm-001").unwrap();
    assert_eq!(bgm.iswc.as_deref(), Some("T-034.524.680-1"));
    assert_eq!(bgm.start.unwrap().0, 25.0);
    let master = recs.iter().find(|r| r.rights_id == "r-bgm-003").unwrap();
    assert_eq!(master.isrc.as_deref(), Some("JPX012400001"));
    assert!(!master.applies_in("KR") && master.applies_in("JP"));

    let mut exported = Vec::new();
    rights::write_csv(&recs, &mut exported).unwrap();
    let (_d2, fresh) = fixture::catalog();
    rights::import(&fresh, exported.as_slice(), "export.csv", "me", NOW + 1).unwrap();
    assert_eq!(content(fresh.rights().unwrap()), content(recs.clone()));
    let mut again = Vec::new();
    rights::write_csv(&fresh.rights().unwrap(), &mut again).unwrap();
    assert_eq!(String::from_utf8(again).unwrap(), String::from_utf8(exported.clone()).unwrap());

    // Importing the export into the same catalog replaces, never duplicates (and so never
    // conflicts with itself).
    let re = rights::import(&cat, exported.as_slice(), "export.csv", "me", NOW + 2).unwrap();
    assert_eq!((re.created, re.replaced), (0, 5));
    assert_eq!(cat.rights().unwrap().len(), 5);
    assert_eq!(cat.rights_record("r-av-001").unwrap().created_ms, NOW);
    assert_eq!(cat.audit_of(TargetKind::Rights, "r-av-001").unwrap().len(), 2);
}

#[test]
fn formula_like_cells_survive_export_and_import() {
    let (_d, cat) = fixture::catalog();
    let mut raw = RawRecord::default();
    raw.set("rights_holder", "=HYPERLINK(\"http://evil\")")
        .set("work_title", "'quoted title")
        .set("work_kind", "composition")
        .set("series", SERIES)
        .set("rights_type", "sync")
        .set("share_pct", "12.5")
        .set("policy", "track")
        .set("contact", "+81 3 1234 5678")
        .set("source_document", "@contract");
    let rec = rights::add(&cat, raw, "me", NOW).unwrap();
    assert_eq!(rec.rights_id, "r000001");
    let mut csv = Vec::new();
    rights::write_csv(&cat.rights().unwrap(), &mut csv).unwrap();
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""), "{text}");
    assert!(text.contains(",'+81 3 1234 5678,'@contract"), "{text}");
    assert!(text.contains(",''quoted title,"), "{text}");
    let (_d2, fresh) = fixture::catalog();
    rights::import(&fresh, csv.as_slice(), "x.csv", "me", NOW).unwrap();
    assert_eq!(content(fresh.rights().unwrap()), content(cat.rights().unwrap()));
}

#[test]
fn validation_names_row_and_column() {
    let (_d, cat) = fixture::catalog();
    let body = format!(
        "A,Song,composition,{SERIES},{EP01},,,performance,50,JP,include,2024-01-01,,track\n\
         B,Song,composition,No Such Show,,,,performance,50,JP,include,,,track\n\
         C,Song,composition,{SERIES},0123456789ab,,,performance,50,JP,include,,,track\n\
         D,Song,composition,{SERIES},,,,performance,50,JP,include,2024-02-30,2023-01-01,track\n\
         E,Song,composition,{SERIES},,,,performance,50,\"JP,UK\",include,,,track\n\
         F,Song,composition,{SERIES},{EP01},230,250,performance,50,JP,include,,,track\n\
         G,Song,opera,{SERIES},,,,lyrics,150,WW,exclude,,,pirate\n\
         H,Song,composition,{SERIES},,10,20,performance,50,JP,include,,,track\n"
    );
    let err = import(&cat, &body).unwrap_err();
    let text = err.to_string();
    let ps = problems(err);
    let at = |row: usize, col: &str| {
        ps.iter().any(|p| p.row == Some(row) && p.column.as_deref() == Some(col))
    };
    assert!(!ps.iter().any(|p| p.row == Some(1)), "row 1 is valid: {text}");
    assert!(at(2, "series"), "{text}");
    assert!(at(3, "episode"), "{text}");
    assert!(at(4, "valid_from"), "{text}");
    assert!(at(5, "territories"), "{text}");
    assert!(at(6, "end_s"), "{text}");
    for col in ["work_kind", "rights_type", "share_pct", "territories", "policy"] {
        assert!(at(7, col), "{col}: {text}");
    }
    assert!(at(8, "start_s"), "{text}");
    // Nothing was stored, nothing audited.
    assert!(cat.rights().unwrap().is_empty());
    assert!(cat.audit_log().unwrap().is_empty());
    insta::assert_snapshot!("rights_validation_errors", text);
}

#[test]
fn excel_files_new_ids_and_apostrophes_import_as_written() {
    let (_d, cat) = fixture::catalog();
    // Excel's "CSV UTF-8" starts with a byte-order mark; the first row gets a new id that the
    // second row names itself, so the new one must skip it rather than be replaced by it; a
    // hand-written leading apostrophe is part of the title.
    let text = format!(
        "\u{feff}rights_id,{HEADER}\n\
         ,A,'Round Midnight,composition,{SERIES},,,,performance,10,JP,include,,,track\n\
         r000001,B,Other,composition,{SERIES},,,,performance,10,JP,include,,,track\n"
    );
    let stored = rights::import(&cat, text.as_bytes(), "excel.csv", "me", NOW)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((stored.created, stored.replaced), (2, 0));
    let recs = cat.rights().unwrap();
    assert_eq!(recs.len(), 2);
    let a = recs.iter().find(|r| r.rights_holder == "A").unwrap();
    assert_eq!((a.rights_id.as_str(), a.work_title.as_str()), ("r000002", "'Round Midnight"));
    assert_eq!(recs.iter().find(|r| r.rights_holder == "B").unwrap().rights_id, "r000001");
}

#[test]
fn header_problems_are_reported_before_rows() {
    let (_d, cat) = fixture::catalog();
    let text = "rights_holder,work_titel,series\nA,Song,Fixture Show\n";
    let ps = problems(rights::import(&cat, text.as_bytes(), "h.csv", "me", NOW).unwrap_err());
    assert!(ps.iter().any(|p| p.column.as_deref() == Some("work_titel")));
    for col in ["work_title", "work_kind", "rights_type", "share_pct", "policy"] {
        assert!(ps.iter().any(|p| p.column.as_deref() == Some(col)), "{col}");
    }
    assert!(ps.iter().all(|p| p.line == Some(1)));
}

#[test]
fn import_is_all_or_nothing() {
    let (_d, cat) = fixture::catalog();
    import(&cat, &format!("A,Song,composition,{SERIES},,,,performance,40,JP,include,,,track\n"))
        .unwrap();
    let before = (cat.rights().unwrap(), cat.audit_log().unwrap());
    // Two good rows, then one bad: none of the three is stored.
    let body = format!(
        "B,Other,composition,{SERIES},,,,performance,10,JP,include,,,track\n\
         C,Third,composition,{SERIES},,,,performance,10,JP,include,,,track\n\
         D,Fourth,composition,{SERIES},,,,performance,ten,JP,include,,,track\n"
    );
    let ps = problems(import(&cat, &body).unwrap_err());
    assert_eq!(ps.len(), 1);
    assert_eq!((ps[0].row, ps[0].column.as_deref()), (Some(3), Some("share_pct")));
    // A conflict found inside the write transaction aborts it too.
    let body = format!(
        "B,Other,composition,{SERIES},,,,performance,10,JP,include,,,track\n\
         C,Song,composition,{SERIES},,,,performance,61,JP,include,,,track\n"
    );
    let ps = problems(import(&cat, &body).unwrap_err());
    assert_eq!((ps[0].row, ps[0].column.as_deref()), (Some(2), Some("share_pct")));
    assert_eq!((cat.rights().unwrap(), cat.audit_log().unwrap()), before);
}

#[test]
fn a_work_entered_with_and_without_its_iswc_is_one_work() {
    let head =
        "rights_holder,work_title,work_kind,iswc,series,rights_type,share_pct,territories,policy";
    let rows = |b_iswc: &str| {
        format!(
            "{head}\nA,Song,composition,T-034.524.680-1,{SERIES},performance,60,WW,track\n\
             B,song,composition,{b_iswc},{SERIES},performance,60,WW,track\n"
        )
    };
    // The same title, one record without the ISWC: one composition, 120%.
    let (_d, cat) = fixture::catalog();
    let e = rights::import(&cat, rows("").as_bytes(), "w.csv", "me", NOW).unwrap_err();
    let text = e.to_string();
    assert!(problems(e).iter().any(|p| p.message.contains("120%")), "{text}");
    // Two ISWCs are two compositions, whatever their titles.
    let (_d, cat) = fixture::catalog();
    rights::import(&cat, rows("T-000.000.001-0").as_bytes(), "w.csv", "me", NOW)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn share_conflicts_need_the_same_work_type_territory_date_and_scope() {
    let row = |holder: &str,
               title: &str,
               ep: &str,
               range: &str,
               ty: &str,
               share: u32,
               terr: &str,
               mode: &str,
               from: &str,
               to: &str| {
        format!(
            "{holder},{title},composition,{SERIES},{ep},{range},{ty},{share},\"{terr}\",{mode},\
             {from},{to},track\n"
        )
    };
    let cases: &[(&str, &str, bool)] = &[
        // (first row, second row, conflict?)
        (
            &row("A", "Song", "", ",", "performance", 60, "JP", "include", "", ""),
            &row("B", "song ", "", ",", "performance", 50, "JP,US", "include", "", ""),
            true,
        ),
        // Different territories.
        (
            &row("A", "Song", "", ",", "performance", 60, "JP", "include", "", ""),
            &row("B", "Song", "", ",", "performance", 50, "US", "include", "", ""),
            false,
        ),
        // Worldwide except JP vs US.
        (
            &row("A", "Song", "", ",", "performance", 60, "JP", "exclude", "", ""),
            &row("B", "Song", "", ",", "performance", 50, "US", "include", "", ""),
            true,
        ),
        // Worldwide except JP vs JP only.
        (
            &row("A", "Song", "", ",", "performance", 60, "JP", "exclude", "", ""),
            &row("B", "Song", "", ",", "performance", 50, "JP", "include", "", ""),
            false,
        ),
        // Different rights types.
        (
            &row("A", "Song", "", ",", "performance", 60, "WW", "include", "", ""),
            &row("B", "Song", "", ",", "mechanical", 50, "WW", "include", "", ""),
            false,
        ),
        // Different works.
        (
            &row("A", "Song", "", ",", "performance", 60, "WW", "include", "", ""),
            &row("B", "Other song", "", ",", "performance", 50, "WW", "include", "", ""),
            false,
        ),
        // Consecutive periods.
        (
            &row("A", "Song", "", ",", "sync", 60, "WW", "include", "2020-01-01", "2022-12-31"),
            &row("B", "Song", "", ",", "sync", 50, "WW", "include", "2023-01-01", ""),
            false,
        ),
        // Overlapping by one day.
        (
            &row("A", "Song", "", ",", "sync", 60, "WW", "include", "2020-01-01", "2023-01-01"),
            &row("B", "Song", "", ",", "sync", 50, "WW", "include", "2023-01-01", ""),
            true,
        ),
        // Open start vs bounded.
        (
            &row("A", "Song", "", ",", "sync", 60, "WW", "include", "", "2023-01-01"),
            &row("B", "Song", "", ",", "sync", 50, "WW", "include", "2022-06-01", "2022-07-01"),
            true,
        ),
        // Same episode, disjoint time ranges.
        (
            &row("A", "Song", EP01, "0,30", "master", 60, "WW", "include", "", ""),
            &row("B", "Song", EP01, "30,60", "master", 50, "WW", "include", "", ""),
            false,
        ),
        // Same episode, overlapping time ranges.
        (
            &row("A", "Song", EP01, "0,30", "master", 60, "WW", "include", "", ""),
            &row("B", "Song", EP01, "29.5,60", "master", 50, "WW", "include", "", ""),
            true,
        ),
        // Series-wide vs one episode.
        (
            &row("A", "Song", "", ",", "master", 60, "WW", "include", "", ""),
            &row("B", "Song", EP01, "100,120", "master", 50, "WW", "include", "", ""),
            true,
        ),
        // Different episodes.
        (
            &row("A", "Song", EP01, ",", "master", 60, "WW", "include", "", ""),
            &row("B", "Song", fixture::EP02, ",", "master", 50, "WW", "include", "", ""),
            false,
        ),
    ];
    for (i, (a, b, conflict)) in cases.iter().enumerate() {
        // In one file...
        let (_d, cat) = fixture::catalog();
        let got = import(&cat, &format!("{a}{b}"));
        assert_eq!(got.is_err(), *conflict, "case {i} in one file: {got:?}");
        if let Err(e) = got {
            let text = e.to_string();
            let ps = problems(e);
            assert_eq!(ps.len(), 1, "case {i}: {text}");
            assert_eq!((ps[0].row, ps[0].column.as_deref()), (Some(2), Some("share_pct")));
            assert!(ps[0].message.contains("110%"), "case {i}: {text}");
        }
        // ...and against a stored record.
        let (_d, cat) = fixture::catalog();
        import(&cat, a).unwrap();
        let got = import(&cat, b);
        assert_eq!(got.is_err(), *conflict, "case {i} against stored: {got:?}");
        if let Err(e) = got {
            assert!(e.to_string().contains("stored r000001"), "case {i}: {e}");
        }
    }
}

#[test]
fn add_and_remove_are_audited() {
    let (_d, cat) = fixture::catalog();
    let mut raw = RawRecord::default();
    raw.set("rights_holder", "Kumo")
        .set("work_title", "OP")
        .set("work_kind", "sound_recording")
        .set("series", SERIES)
        .set("episode", EP01)
        .set("start_s", "0")
        .set("end_s", "00:01:30")
        .set("rights_type", "master")
        .set("share_pct", "100%")
        .set("policy", "block");
    let rec = rights::add(&cat, raw.clone(), "alice", NOW).unwrap();
    assert_eq!(rec.end.unwrap().0, 90.0);
    // The same record again would make 200%.
    let e = rights::add(&cat, raw, "alice", NOW).unwrap_err().to_string();
    assert!(e.contains("rights add: 1 problem(s)") && e.contains("200%"), "{e}");
    cat.remove_rights(&rec.rights_id, "bob", NOW + 1).unwrap();
    assert!(cat.rights().unwrap().is_empty());
    let log = cat.audit_of(TargetKind::Rights, &rec.rights_id).unwrap();
    let summary: Vec<(String, &str)> =
        log.iter().map(|r| (r.who.clone(), r.action.as_str())).collect();
    assert_eq!(summary, [("alice".to_string(), "create"), ("bob".to_string(), "delete")]);
    assert!(matches!(cat.remove_rights("r000001", "bob", NOW), Err(Error::NotFound { .. })));
}
