//! The `rights`, `review`, `report` and `pieces set` commands of the binary, on a catalog built
//! through the library (episodes inserted, a scan stored with `put_scan`).

#![allow(clippy::unwrap_used)]

#[path = "support/rights_fixture.rs"]
mod fixture;

use std::path::Path;
use std::process::Command;

use aniprint::catalog::{Band, Catalog, MatchFilter, Stem};
use aniprint::review::ReviewConfig;
use fixture::{EP01, EP02, NOW};
use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(catalog: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_aniprint"))
        .arg("--catalog")
        .arg(catalog)
        .args(args)
        .env_remove("ANIPRINT_CATALOG")
        .env_remove("RUST_LOG")
        .env("USER", "cli-user")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(catalog: &Path, args: &[&str]) -> String {
    let r = run(catalog, args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout
}

fn json(catalog: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(catalog, args)).unwrap()
}

/// Two matches: one auto-confirmed (high, 40 s), one pending. Returns their ids.
fn scanned(dir: &Path) -> (String, String) {
    let cat = Catalog::open(dir).unwrap();
    for (id, title, dur) in [(EP01, "ep01", 240.02), (EP02, "ep02", 240.0)] {
        let ep = fixture::episode(id, fixture::SERIES, title, dur);
        cat.insert_episode(&ep, &fixture::pieces(&ep)).unwrap();
    }
    let up = fixture::upload('f', 90.0, NOW);
    let a = fixture::region(&up, Stem::Mix, EP01, 0.0, (20.0, 60.0), 0.96, Band::High);
    let b = fixture::region(&up, Stem::Voice, EP02, 50.0, (100.0, 110.0), 0.7, Band::Medium);
    cat.put_scan(&up, &[a.clone(), b.clone()], &ReviewConfig::default(), NOW).unwrap();
    assert_eq!(cat.matches(&MatchFilter::default()).unwrap().len(), 2);
    (a.computed_id(), b.computed_id())
}

#[test]
fn rights_review_and_report_commands() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path();
    let (a, b) = scanned(cat);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/rights.example.csv");

    let out = ok(cat, &["rights", "import", example.to_str().unwrap()]);
    assert!(out.contains("5 records stored (5 new, 0 replaced)"), "{out}");
    assert_eq!(json(cat, &["rights", "ls", "--json"]).as_array().unwrap().len(), 5);
    let id = ok(
        cat,
        &[
            "rights",
            "add",
            "--holder",
            "New Label",
            "--work",
            "Theme",
            "--kind",
            "sound_recording",
            "--series",
            "Fixture Show",
            "--episode",
            EP02,
            "--start",
            "00:00:00",
            "--end",
            "90",
            "--rights-type",
            "master",
            "--share",
            "100",
            "--policy",
            "monetize",
            "--territories",
            "jp,us",
            "--from",
            "2024-01-01",
        ],
    );
    assert_eq!(id.trim(), "r000001");
    let bad = run(
        cat,
        &[
            "rights",
            "add",
            "--holder",
            "X",
            "--work",
            "Theme",
            "--kind",
            "sound_recording",
            "--series",
            "Fixture Show",
            "--episode",
            EP02,
            "--start",
            "0",
            "--end",
            "300",
            "--rights-type",
            "master",
            "--share",
            "10",
            "--policy",
            "track",
            "--territories",
            "XX",
        ],
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("column territories") && bad.stderr.contains("column end_s"));
    let exported = tempfile::NamedTempFile::new().unwrap();
    ok(cat, &["rights", "export", "-o", exported.path().to_str().unwrap()]);
    let csv = std::fs::read_to_string(exported.path()).unwrap();
    assert_eq!(csv.lines().count(), 7);
    ok(cat, &["rights", "rm", "r000001"]);

    let pending = json(cat, &["review", "ls", "--status", "pending", "--json"]);
    assert_eq!(pending.as_array().unwrap().len(), 1);
    assert_eq!(pending[0]["id"], b.as_str());
    let table = ok(cat, &["review", "ls", "--series", "Fixture Show"]);
    assert!(table.contains("confirmed (auto:high_long)"), "{table}");

    let refused = run(cat, &["review", "set", &b, "escalated"]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("cannot go from pending to escalated"), "{}", refused.stderr);
    let out = ok(
        cat,
        &["review", "set", &b, "dismissed", "--reason", "licensed", "--exclude", "--note", "ok'd"],
    );
    assert!(out.contains("excluded from scans"), "{out}");
    assert_eq!(json(cat, &["review", "exclusions", "--json"]).as_array().unwrap().len(), 1);
    let out = ok(
        cat,
        &[
            "review",
            "set",
            &a,
            "disputed",
            "--reason",
            "fair_use",
            "--deadline",
            "2024-06-30",
            "--who",
            "legal",
        ],
    );
    assert!(out.contains("deadline 2024-06-30T23:59:59Z"), "{out}");
    let out = ok(cat, &["review", "undo", &a]);
    assert!(out.contains("disputed -> confirmed"), "{out}");
    let log = json(cat, &["review", "log", &a, "--json"]);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[1]["who"], "legal");
    assert_eq!(log[2]["who"], "cli-user");
    assert_eq!(log[2]["action"], "undo");

    let piece = format!("{EP01}-000000000");
    ok(cat, &["pieces", "set", &piece, "--status", "drop", "--note", "clipping"]);
    let plog = json(cat, &["review", "log", &piece, "--json"]);
    assert_eq!(plog[0]["to"], "drop");
    assert_eq!(plog[0]["note"], "clipping");

    let report = dir.path().join("report.csv");
    let out = ok(cat, &["report", "-o", report.to_str().unwrap(), "--status", "confirmed"]);
    assert!(out.contains("1 matches (0 without an owner)"), "{out}");
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.starts_with("report_schema,report_id,generated_at_utc,"));
    // a (ep01 20-60 s) joins the series record and the three BGM cue records (25-55 s).
    assert_eq!(text.lines().count(), 5, "{text}");
    let none = ok(cat, &["report", "--since", "2999-01-01"]);
    assert_eq!(none.lines().count(), 1);
    let bad_upload = run(cat, &["report", "--upload", "nope"]);
    assert_eq!(bad_upload.code, 2);
    assert!(bad_upload.stderr.contains("upload nope not found"), "{}", bad_upload.stderr);
}

#[test]
fn csvs_for_excel_start_with_a_byte_order_mark_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cat = &dir.path().join("cat");
    scanned(cat);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/rights.example.csv");
    ok(cat, &["rights", "import", example.to_str().unwrap()]);
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    ok(cat, &["-q", "report", "-o", &path("plain.csv")]);
    ok(cat, &["-q", "report", "--bom", "-o", &path("excel.csv")]);
    assert!(read("plain.csv").starts_with(b"report_schema,"));
    assert!(read("excel.csv").starts_with(&[BOM, b"report_schema,"].concat()));
    // The rest is the same report.
    let (plain, excel) = (read("plain.csv"), read("excel.csv"));
    let rows = |b: &[u8]| String::from_utf8_lossy(b).lines().count();
    assert_eq!(rows(&plain), rows(&excel[3..]));
    // The setting makes it the default; rights export too, and import reads it back.
    std::fs::write(cat.join("aniprint.toml"), "csv_bom = true\n").unwrap();
    ok(cat, &["-q", "report", "-o", &path("setting.csv")]);
    assert!(read("setting.csv").starts_with(BOM));
    ok(cat, &["-q", "rights", "export", "-o", &path("rights.csv")]);
    assert!(read("rights.csv").starts_with(BOM));
    let holders = || {
        let v = json(cat, &["rights", "ls", "--json"]);
        let mut h: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r["rights_id"], r["rights_holder"]))
            .collect();
        h.sort();
        h
    };
    let before = holders();
    assert_eq!(before.len(), 5);
    let r = ok(cat, &["rights", "import", &path("rights.csv")]);
    assert!(r.contains("5 records stored (0 new, 5 replaced)"), "{r}");
    assert_eq!(holders(), before);
}
