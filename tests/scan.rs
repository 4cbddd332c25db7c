//! `scan` and `query` of the binary on the fixtures: every reuse of `fixtures/truth.csv` found
//! with its boundaries, nothing else matched, rescans that replace instead of piling up, and a
//! clip looked up to its episode and offset. Mix only (`--no-separate`): no separator model is
//! committed, so the one reuse that only the background stem can find is left out.

// The whole crate is test code, helpers included (clippy.toml allows unwrap in #[test] only).
#![allow(clippy::unwrap_used)]

#[path = "support/tools.rs"]
mod tools;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// How far a region's ends may be from the truth, seconds (one hop of the segment grid).
const TOLERANCE_S: f64 = 0.5;
/// A region that explains no truth row may last at most this long, seconds.
const MAX_OTHER_S: f64 = 2.0;
/// Slack for ends that land exactly on the tolerance (they are sums of 0.5 s hops).
const EPS: f64 = 1e-6;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The binary with a given catalog, and no environment that could change its behaviour.
fn aniprint(catalog: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aniprint"));
    c.arg("--catalog").arg(catalog).env_remove("ANIPRINT_CATALOG").env_remove("RUST_LOG");
    c
}

/// Run, insisting on success; returns stdout.
fn ok<S: AsRef<OsStr>>(catalog: &Path, args: &[S]) -> String {
    let out: Output = aniprint(catalog).args(args).output().expect("aniprint runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?}: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Run and parse stdout as JSON, insisting on success.
fn json<S: AsRef<OsStr>>(catalog: &Path, args: &[S]) -> Value {
    let stdout = ok(catalog, args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn file_name(path: &str) -> String {
    Path::new(path).file_name().unwrap().to_string_lossy().into_owned()
}

/// A fresh catalog holding the fixture episodes, fingerprinted (mix only).
fn ingested() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let out = aniprint(&cat)
        .args(["-q", "ingest", "--no-separate"])
        .arg(fixtures().join("episodes"))
        .output()
        .unwrap();
    assert!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));
    (tmp, cat)
}

/// Episode id -> file name (`ep01.mkv`), as truth.csv names episodes.
fn episode_names(catalog: &Path) -> HashMap<String, String> {
    let eps = json(catalog, &["ls", "episodes", "--json"]);
    let names: HashMap<String, String> = eps
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap().into(), file_name(e["path"].as_str().unwrap())))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    names
}

fn scan<S: AsRef<OsStr>>(catalog: &Path, uploads: &[S]) -> Vec<Value> {
    let mut args: Vec<&OsStr> = ["-q", "scan", "--no-separate", "--json"].map(OsStr::new).into();
    args.extend(uploads.iter().map(AsRef::as_ref));
    json(catalog, &args).as_array().unwrap().clone()
}

#[derive(Debug, serde::Deserialize)]
struct Truth {
    upload: String,
    upload_start_s: f64,
    upload_end_s: f64,
    episode: String,
    episode_start_s: f64,
    episode_end_s: f64,
    note: String,
}

impl Truth {
    /// The reuse from ep01's English stream: the catalog holds the Japanese one (the default
    /// stream), which shares only the music, so only the background stem can find it
    /// (README: "the miss is the case the background stem exists for").
    fn needs_background(&self) -> bool {
        self.note.contains("eng stream")
    }

    /// Episode time minus upload time.
    fn shift(&self) -> f64 {
        self.episode_start_s - self.upload_start_s
    }
}

fn truth() -> Vec<Truth> {
    let mut rdr = csv::Reader::from_path(fixtures().join("truth.csv")).unwrap();
    let rows: Vec<Truth> = rdr.deserialize().collect::<Result<_, _>>().unwrap();
    assert_eq!(rows.len(), 8, "fixtures/truth.csv changed: {rows:?}");
    rows
}

/// One match region of a scan, with the upload and episode as truth.csv names them.
#[derive(Debug)]
struct Found {
    upload: String,
    episode: String,
    stem: String,
    upload_start: f64,
    upload_end: f64,
    episode_start: f64,
    episode_end: f64,
}

fn found(outcomes: &[Value], names: &HashMap<String, String>) -> Vec<Found> {
    let f = |r: &Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    let mut out = Vec::new();
    for o in outcomes {
        let upload = file_name(o["upload"]["path"].as_str().unwrap());
        for r in o["regions"].as_array().unwrap() {
            let ep = r["episode"].as_str().unwrap();
            out.push(Found {
                upload: upload.clone(),
                episode: names.get(ep).cloned().unwrap_or_else(|| ep.into()),
                stem: r["stem"].as_str().unwrap().into(),
                upload_start: f(r, "upload_start"),
                upload_end: f(r, "upload_end"),
                episode_start: f(r, "episode_start"),
                episode_end: f(r, "episode_end"),
            });
        }
    }
    out
}

/// The four end errors of `r` against `t`: upload start, upload end, episode start, end.
fn errors(r: &Found, t: &Truth) -> [f64; 4] {
    [
        r.upload_start - t.upload_start_s,
        r.upload_end - t.upload_end_s,
        r.episode_start - t.episode_start_s,
        r.episode_end - t.episode_end_s,
    ]
}

/// `r` is (part of) the reuse `t`: same upload and episode, overlapping upload ranges, and
/// the same alignment within the tolerance.
fn explains(t: &Truth, r: &Found) -> bool {
    r.upload == t.upload
        && r.episode == t.episode
        && r.upload_start < t.upload_end_s
        && r.upload_end > t.upload_start_s
        && ((r.episode_start - r.upload_start) - t.shift()).abs() <= TOLERANCE_S + EPS
}

#[test]
fn scan_finds_every_mix_reuse_within_half_a_second_and_nothing_else() {
    let (_tmp, cat) = ingested();
    let names = episode_names(&cat);
    let outcomes = scan(&cat, &[fixtures().join("uploads")]);
    let mut scanned: Vec<String> =
        outcomes.iter().map(|o| file_name(o["upload"]["path"].as_str().unwrap())).collect();
    scanned.sort();
    assert_eq!(scanned, ["up01.mp4", "up02.mkv", "up03.m4a", "up04.mp3", "up05.webm"]);
    let separated = outcomes.iter().all(|o| o["upload"]["models"]["separator"] != "");
    let regions = found(&outcomes, &names);
    let listing = regions
        .iter()
        .map(|r| {
            format!(
                "\n  {} {:.3}-{:.3} <- {} {:.3}-{:.3} ({})",
                r.upload,
                r.upload_start,
                r.upload_end,
                r.episode,
                r.episode_start,
                r.episode_end,
                r.stem
            )
        })
        .collect::<String>();

    let truth = truth();
    for t in &truth {
        if t.needs_background() && !separated {
            eprintln!("not checked without a separator: {} <- {}", t.upload, t.episode);
            continue;
        }
        let hit = regions.iter().find(|r| {
            r.upload == t.upload
                && r.episode == t.episode
                && errors(r, t).iter().all(|e| e.abs() <= TOLERANCE_S + EPS)
        });
        assert!(
            hit.is_some(),
            "no region within {TOLERANCE_S} s of {} {}-{} <- {} {}-{} ({}); regions:{listing}",
            t.upload,
            t.upload_start_s,
            t.upload_end_s,
            t.episode,
            t.episode_start_s,
            t.episode_end_s,
            t.note
        );
    }
    // up04 is all new audio, and the new stretches of the others match nothing.
    for r in &regions {
        if !truth.iter().any(|t| explains(t, r)) {
            assert!(
                r.upload_end - r.upload_start <= MAX_OTHER_S,
                "a region that is no reuse: {r:?}; regions:{listing}"
            );
        }
    }
}

/// `review ls --json`, sorted by id: (id, status, stem, episode, upload range, episode range).
fn matches(catalog: &Path) -> Vec<(String, String, String, String, [f64; 4])> {
    let v = json(catalog, &["review", "ls", "--json"]);
    let mut out: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap().to_string();
            let f = |k: &str| m[k].as_f64().unwrap();
            (
                s("id"),
                s("status"),
                s("stem"),
                s("episode"),
                [f("upload_start"), f("upload_end"), f("episode_start"), f("episode_end")],
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn rescanning_an_upload_replaces_its_matches_instead_of_adding_copies() {
    let (_tmp, cat) = ingested();
    let up01 = fixtures().join("uploads/up01.mp4");
    let up05 = fixtures().join("uploads/up05.webm");
    let first = scan(&cat, &[&up01, &up05]);
    let before = matches(&cat);
    let regions: usize = first.iter().map(|o| o["regions"].as_array().unwrap().len()).sum();
    assert_eq!(before.len(), regions, "{before:?}");
    assert!(before.len() >= 4, "the truth has 4 mix reuses in up01 and up05: {before:?}");
    assert!(before.iter().all(|m| m.1 == "pending"), "{before:?}");

    let again = scan(&cat, &[&up05]);
    assert_eq!(again.len(), 1);
    let up05_first =
        first.iter().find(|o| o["upload"]["path"].as_str().unwrap().ends_with("up05.webm"));
    assert_eq!(again[0]["upload"]["id"], up05_first.unwrap()["upload"]["id"], "same upload");
    assert_eq!(matches(&cat), before, "the rescan of up05 changed the catalog's matches");

    // A reviewed match survives a rescan as it is, and is not stored again beside itself.
    let id = again[0]["regions"][0]["id"].as_str().unwrap().to_string();
    ok(&cat, &["-q", "review", "set", &id, "confirmed", "--who", "test"]);
    let reviewed = matches(&cat);
    let confirmed: Vec<_> = reviewed.iter().filter(|m| m.1 == "confirmed").collect();
    assert_eq!(confirmed.len(), 1, "{reviewed:?}");
    assert_eq!(confirmed[0].0, id);
    scan(&cat, &[&up05]);
    assert_eq!(matches(&cat), reviewed, "the rescan after a review changed the matches");
    // --source names where an upload came from; a rescan without it keeps it.
    assert_eq!(again[0]["upload"]["source"], Value::Null, "the fixture has no source tag");
    let given = "https://video.example/watch?v=up05";
    let args = ["-q", "scan", "--no-separate", "--json", "--source", given];
    let with_source = json(&cat, &[&args[..], &[up05.to_str().unwrap()]].concat());
    assert_eq!(with_source[0]["upload"]["source"], given);
    assert_eq!(scan(&cat, &[&up05])[0]["upload"]["source"], given);
    assert_eq!(matches(&cat), reviewed, "a rescan with --source changed the matches");
    // ls uploads: each scanned upload once, its source and its matches by status.
    let ups = json(&cat, &["ls", "uploads", "--json"]);
    let ups = ups.as_array().unwrap();
    assert_eq!(ups.len(), 2, "{ups:?}");
    let row = ups.iter().find(|u| u["id"] == again[0]["upload"]["id"]).unwrap();
    assert_eq!(row["source"], given);
    assert_eq!(row["matches"]["confirmed"], 1, "{row}");
    let table = ok(&cat, &["ls", "uploads"]);
    assert!(table.contains("up05.webm") && table.contains(given), "{table}");
    assert!(table.contains("1 confirmed"), "{table}");
    let stats = json(&cat, &["catalog", "stats", "--json"]);
    assert_eq!(stats["uploads"], 2, "{stats}");
    assert_eq!(stats["matches"].as_u64(), Some(reviewed.len() as u64), "{stats}");
    assert_eq!(stats["rights"], 0, "{stats}");
}

/// Cut `seconds` of `src` from `start` into a WAV file with the ffmpeg CLI.
fn cut(src: &Path, start: f64, seconds: f64, dst: &Path) {
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-ss", &start.to_string()])
        .args(["-t", &seconds.to_string(), "-i"])
        .arg(src)
        .args(["-vn", "-c:a", "pcm_s16le"])
        .arg(dst)
        .status()
        .unwrap();
    assert!(ok.success(), "ffmpeg cut {}", dst.display());
}

#[test]
fn query_places_three_and_one_second_clips_in_their_episode() {
    if !tools::have_ffmpeg() {
        eprintln!("skipped: the ffmpeg CLI is not installed");
        return;
    }
    let (tmp, cat) = ingested();
    let names = episode_names(&cat);
    let ep02 = names.iter().find(|(_, n)| *n == "ep02.mp4").unwrap().0.clone();
    // ep02.mp4 decodes on the master timeline (fixtures/README.md), so the clip starts at
    // exactly 101.7 s of the episode; 101.7 is off the 0.5 s segment grid.
    let start = 101.7;
    let clip = tmp.path().join("clip.wav");
    cut(&fixtures().join("episodes/ep02.mp4"), start, 3.0, &clip);

    // Ingest kept no arroy forest (a catalog this size is searched exactly); `--search ann`
    // builds them.
    let forest_bytes = || {
        let catalog = aniprint::catalog::Catalog::open(&cat).unwrap();
        aniprint::index::CatalogIndex::open(&catalog).unwrap().disk_usage().unwrap().arroy
    };
    assert_eq!(forest_bytes(), 0);
    // The default search (auto: exact at this size) and arroy (two passes, over forests it
    // builds first: ingest kept none) give the same answer here.
    for (phases, tolerance, search) in
        [(None, 0.15, None), (Some("1"), 0.5, None), (None, 0.15, Some("ann"))]
    {
        let mut args = vec!["query", clip.to_str().unwrap(), "--json", "--top", "3"];
        args.extend(phases.map(|p| ["--phases", p]).into_iter().flatten());
        args.extend(search.map(|s| ["--search", s]).into_iter().flatten());
        let answers = json(&cat, &args);
        let answers = answers.as_array().unwrap();
        assert!((1..=3).contains(&answers.len()), "{args:?}: {answers:?}");
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a["rank"].as_u64(), Some(i as u64 + 1), "{args:?}: {answers:?}");
        }
        let best = &answers[0];
        assert_eq!(best["episode"], ep02.as_str(), "{args:?}: {answers:?}");
        assert_eq!(best["title"], "ep02");
        let offset = best["offset_s"].as_f64().unwrap();
        assert!(
            (offset - start).abs() <= tolerance,
            "{args:?}: offset {offset} s, truth {start} s (tolerance {tolerance} s): {answers:?}"
        );
    }
    assert!(forest_bytes() > 0);

    // A 1 s clip is one segment, so no copy shifted later holds a whole one. From 101.625 s,
    // with padded copies shifted 1/8 s either way (`--phases 4`), one of them lands on the
    // plain grid. Without shifted copies (`--phases 1`), only the grids ingest adds a quarter,
    // half and three quarters of a hop in hold the clip's second from 101.625, 101.75 and
    // 101.875 s: the plain grid alone would answer 1/8 or 1/4 s off.
    for (start, phases) in [(101.625, "4"), (101.625, "1"), (101.75, "1"), (101.875, "1")] {
        let short = tmp.path().join(format!("short-{start}.wav"));
        cut(&fixtures().join("episodes/ep02.mp4"), start, 1.0, &short);
        let args =
            ["query", short.to_str().unwrap(), "--json", "--search", "exact", "--phases", phases];
        let answers = json(&cat, &args);
        let best = answers.as_array().and_then(|a| a.first()).expect("an answer for the 1 s clip");
        assert_eq!(best["episode"], ep02.as_str(), "{answers:?}");
        let offset = best["offset_s"].as_f64().unwrap();
        assert!(
            (offset - start).abs() <= 0.1,
            "1 s clip, {phases} phases: offset {offset} s, truth {start} s"
        );
    }
}

/// An episode ingested with `--no-index` is on record at the working rate (16 kHz) while the
/// models work at 8 kHz: a later ingest fingerprints it at the same piece times, and a clip of
/// it is placed where it was cut from.
#[test]
fn an_episode_ingested_without_fingerprints_is_fingerprinted_by_a_later_ingest() {
    if !tools::have_ffmpeg() {
        eprintln!("skipped: the ffmpeg CLI is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let ep = fixtures().join("episodes/ep02.mp4");
    let out = ok(&cat, &[OsStr::new("ingest"), OsStr::new("--no-index"), ep.as_os_str()]);
    assert!(out.contains("1 ingested"), "{out}");
    let out = ok(&cat, &[OsStr::new("ingest"), OsStr::new("--no-separate"), ep.as_os_str()]);
    assert!(out.contains("1 fingerprinted again, 0 failed"), "{out}");
    // Past the first piece (the second starts near 180 s): its bounds were rescaled too.
    let start = 201.3;
    let clip = tmp.path().join("clip.wav");
    cut(&ep, start, 3.0, &clip);
    let answers = json(&cat, &["query", clip.to_str().unwrap(), "--json"]);
    let best = answers.as_array().and_then(|a| a.first()).expect("an answer");
    let offset = best["offset_s"].as_f64().unwrap();
    assert!((offset - start).abs() <= 0.15, "offset {offset} s, truth {start} s: {answers:?}");
}

/// A catalog fingerprinted only by another model cannot answer: `query` says so on stderr
/// instead of a bare "no match".
#[test]
fn a_catalog_of_another_model_is_named() {
    use aniprint::catalog::Catalog;
    use aniprint::fingerprint::Fingerprints;
    use aniprint::index::{CatalogIndex, IndexKey, Stem, VectorStore};
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    {
        let catalog = Catalog::open(&cat).unwrap();
        let index = CatalogIndex::open(&catalog).unwrap();
        let mut data = vec![0f32; 3 * 128];
        for (i, row) in data.chunks_mut(128).enumerate() {
            row[i] = 1.0;
        }
        let key = IndexKey::new("fingerprint-v0", Stem::Mix);
        index.add_piece(&key, "000000000000-000000000", &Fingerprints { dim: 128, data }).unwrap();
    }
    let clip = fixtures().join("uploads/up01.mp4");
    let out = aniprint(&cat)
        .args(["query", "--no-separate", "--search", "exact"])
        .arg(&clip)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("fingerprints of fingerprint-v0 only"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no match"));
}

/// Ingesting again episodes that are on record without vectors of the models in use (here:
/// ingested with `--no-separate`, so no voice or background index) fingerprints them again
/// from their sources, at the piece boundaries on record: the vectors equal a fresh ingest's,
/// and a third run finds nothing to do. One episode (two pieces): each run separates it.
#[test]
fn reingest_fills_in_missing_stems_as_a_fresh_ingest_would() {
    use aniprint::catalog::Catalog;
    use aniprint::fingerprint::DEFAULT_MODEL;
    use aniprint::index::{CatalogIndex, IndexKey, Stem};
    let tmp = tempfile::tempdir().unwrap();
    let ep = fixtures().join("episodes").join("ep03.webm");
    let cat = tmp.path().join("cat");
    ok(
        &cat,
        &[OsStr::new("-q"), OsStr::new("ingest"), OsStr::new("--no-separate"), ep.as_os_str()],
    );
    let again = |cat: &Path| {
        let out = aniprint(cat).arg("ingest").arg(&ep).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = again(&cat);
    assert!(
        out.contains("0 ingested, 0 already present, 1 fingerprinted again, 0 failed"),
        "{out}"
    );
    let out = again(&cat);
    assert!(out.contains("0 ingested, 1 already present, 0 failed"), "{out}");
    let fresh = tmp.path().join("fresh");
    let out = again(&fresh);
    assert!(out.contains("1 ingested"), "{out}");
    let (a, b) = (Catalog::open(&cat).unwrap(), Catalog::open(&fresh).unwrap());
    let (ia, ib) = (CatalogIndex::open(&a).unwrap(), CatalogIndex::open(&b).unwrap());
    let pieces = a.pieces().unwrap();
    assert_eq!(pieces.len(), b.pieces().unwrap().len());
    // Every stem on every reference grid (the plain one, and those a quarter, half and three
    // quarters of a 4,000-sample hop in).
    let card =
        aniprint::fingerprint::read_card(&aniprint::fingerprint::models_dir().join(DEFAULT_MODEL))
            .unwrap();
    let offsets = card.config.grid_offsets(aniprint::analyze::REFERENCE_GRIDS);
    assert_eq!(offsets, [0, 1000, 2000, 3000]);
    let keys = [Stem::Mix, Stem::Voice, Stem::Background].into_iter().flat_map(|stem| {
        offsets.iter().map(move |&o| IndexKey::new(DEFAULT_MODEL, stem).at_offset(o as u32))
    });
    for key in keys {
        let stem = &key;
        for p in &pieces {
            let va = ia.piece_vectors(&key, &p.id).unwrap();
            let vb = ib.piece_vectors(&key, &p.id).unwrap();
            let (va, vb) = (va.expect("reindexed vectors"), vb.expect("fresh vectors"));
            assert_eq!(va.len(), vb.len(), "{stem:?} {}", p.id);
            let worst =
                va.data.iter().zip(&vb.data).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "{stem:?} {}: {worst}", p.id);
        }
    }
}

/// Loudness envelope (RMS per 50 ms at 16 kHz) of an audio file.
fn envelope(path: &Path) -> Vec<f64> {
    let samples =
        aniprint::media::decode(path, &aniprint::media::DecodeOptions::default()).unwrap();
    samples
        .chunks(800)
        .map(|c| (c.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let var = |x: &[f64], m: f64| x.iter().map(|v| (v - m).powi(2)).sum::<f64>();
    cov / (var(a, ma) * var(b, mb)).sqrt()
}

#[test]
fn report_evidence_cuts_both_stretches_of_each_match_from_the_files_on_record() {
    let (tmp, cat) = ingested();
    // A copy, so that it can be moved away below.
    let up = tmp.path().join("upload copy.mp4");
    std::fs::copy(fixtures().join("uploads/up01.mp4"), &up).unwrap();
    let found = scan(&cat, &[&up]);
    let regions = found[0]["regions"].as_array().unwrap().clone();
    assert_eq!(regions.len(), 2, "up01 reuses ep01 and ep02: {regions:?}");
    let out = tmp.path().join("out");
    let csv = out.join("report.csv");
    let dir = out.join("evidence");
    let args: Vec<&OsStr> = vec![
        "-q".as_ref(),
        "report".as_ref(),
        "-o".as_ref(),
        csv.as_os_str(),
        "--evidence".as_ref(),
        dir.as_os_str(),
        "--evidence-max-s".as_ref(),
        "8".as_ref(),
    ];
    std::fs::create_dir_all(&out).unwrap();
    ok(&cat, &args);
    let sums: HashMap<String, String> = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|l| {
            let (h, n) = l.split_once("  ").unwrap();
            (n.to_string(), h.to_string())
        })
        .collect();
    assert_eq!(sums.len(), 4, "{sums:?}");
    let mut rdr = csv::Reader::from_path(&csv).unwrap();
    let header = rdr.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|c| c == name).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let id = &r[col("match_id")];
        let want = format!("evidence/{id}-upload.flac;evidence/{id}-reference.flac");
        assert_eq!(&r[col("evidence_ref")], want);
        let len = r[col("match_duration_s")].parse::<f64>().unwrap().min(8.0);
        let clips: Vec<PathBuf> = r[col("evidence_ref")].split(';').map(|p| out.join(p)).collect();
        for clip in &clips {
            let bytes = std::fs::read(clip).unwrap();
            let name = file_name(clip.to_str().unwrap());
            assert_eq!(sums[&name], hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
            let secs = envelope(clip).len() as f64 * 0.05;
            assert!((secs - len).abs() < 0.1, "{name}: {secs} s, the match {len} s");
        }
        // The two sides are the same audio (re-encoded, 6 dB down): their loudness moves alike.
        let r = pearson(&envelope(&clips[0]), &envelope(&clips[1]));
        assert!(r > 0.8, "{id}: envelopes correlate {r:.3}");
    }

    // The upload moved since the scan: its clips cannot be cut, the report is still written,
    // without evidence, the exit status says some items failed, and stderr names the file.
    std::fs::rename(&up, tmp.path().join("moved.mp4")).unwrap();
    let (csv2, dir2) = (out.join("again.csv"), tmp.path().join("evidence2"));
    let mut args2 = args.clone();
    args2[3] = csv2.as_os_str();
    args2[5] = dir2.as_os_str();
    let r = aniprint(&cat).args(&args2).output().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("upload copy.mp4: missing"), "{stderr}");
    let text = std::fs::read_to_string(&csv2).unwrap();
    assert!(!text.contains("-upload.flac"), "{text}");
}
