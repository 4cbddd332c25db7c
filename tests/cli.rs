//! The `aniprint` binary on the fixtures: ingest, bad input, re-ingest, listing, curation,
//! export, and a kill -9 in the middle of a batch.

// The whole crate is test code, helpers included (clippy.toml allows unwrap in #[test] only).
#![allow(clippy::unwrap_used)]

#[path = "support/tools.rs"]
mod tools;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn episodes_dir() -> PathBuf {
    fixtures().join("episodes")
}

/// The binary with a given catalog, and no environment that could change its behaviour.
fn aniprint(catalog: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aniprint"));
    c.arg("--catalog").arg(catalog).env_remove("ANIPRINT_CATALOG").env_remove("RUST_LOG");
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run<S: AsRef<OsStr>>(catalog: &Path, args: &[S]) -> Run {
    let out: Output = aniprint(catalog).args(args).output().expect("aniprint runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run and parse stdout as JSON, insisting on success.
fn json<S: AsRef<OsStr>>(catalog: &Path, args: &[S]) -> Value {
    let r = run(catalog, args);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn episodes(catalog: &Path) -> Vec<Value> {
    json(catalog, &["ls", "episodes", "--json"]).as_array().unwrap().clone()
}

fn pieces(catalog: &Path) -> Vec<Value> {
    json(catalog, &["ls", "pieces", "--json"]).as_array().unwrap().clone()
}

fn ingest_ok<S: AsRef<OsStr>>(catalog: &Path, args: &[S]) -> Run {
    let mut all: Vec<&OsStr> = vec![OsStr::new("ingest")];
    all.extend(args.iter().map(AsRef::as_ref));
    let r = run(catalog, &all);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    r
}

/// Ingest options for tests about bookkeeping (pieces, failures, resume, export) rather than
/// the models: mix vectors on one grid. Separation is four fifths of a debug build's ingest
/// time; the first test here and tests/scan.rs run the default (stems, four grids).
const LIGHT: [&str; 3] = ["--no-separate", "--grids", "1"];

/// [`ingest_ok`] with [`LIGHT`] first.
fn ingest_light<S: AsRef<OsStr>>(catalog: &Path, args: &[S]) -> Run {
    let mut all: Vec<&OsStr> = LIGHT.iter().map(OsStr::new).collect();
    all.extend(args.iter().map(AsRef::as_ref));
    ingest_ok(catalog, &all)
}

#[test]
fn ingest_cuts_each_fixture_episode_in_its_quiet_gap_and_reingest_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let r = ingest_ok(&cat, &[episodes_dir()]);
    assert!(r.stdout.contains("3 ingested, 0 already present, 0 failed"), "{}", r.stdout);

    let eps = episodes(&cat);
    assert_eq!(eps.len(), 3);
    for e in &eps {
        assert_eq!(e["series"], "episodes");
        assert_eq!(e["language"], "jpn");
        assert_eq!(e["pieces"], 2);
    }
    let ps = pieces(&cat);
    assert_eq!(ps.len(), 6);
    // fixtures/README.md: the primary quiet gap of each episode, on the decoded timeline
    // (ep01.mkv decodes 21.3 ms late because Matroska keeps the AAC priming samples).
    let gaps = [
        ("ep01", 176.4213, 177.2213, 63.0),
        ("ep02", 182.6, 183.4, 57.0),
        ("ep03", 178.3, 179.0, 36.0),
    ];
    for (title, lo, hi, rest) in gaps {
        let mut mine: Vec<&Value> = ps.iter().filter(|p| p["episode_title"] == title).collect();
        mine.sort_by_key(|p| p["index"].as_u64());
        assert_eq!(mine.len(), 2, "{title}");
        let cut = mine[0]["end_s"].as_f64().unwrap();
        assert_eq!(mine[0]["start_s"].as_f64(), Some(0.0));
        assert_eq!(mine[1]["start_s"].as_f64(), Some(cut), "{title}: pieces are contiguous");
        assert!(cut > lo - 0.05 && cut < hi + 0.05, "{title}: cut at {cut} s, gap {lo}-{hi} s");
        assert!((cut - (lo + hi) / 2.0).abs() < 0.6, "{title}: cut at {cut} s");
        let last = mine[1]["duration_s"].as_f64().unwrap();
        assert!((last - rest).abs() < 1.0, "{title}: remainder {last} s, expected ~{rest} s");
        assert_eq!(mine[0]["status"], "unreviewed");
    }

    // Same files again: nothing new.
    let r = ingest_ok(&cat, &[episodes_dir()]);
    assert!(r.stdout.contains("0 ingested, 3 already present, 0 failed"), "{}", r.stdout);
    // A renamed copy elsewhere is the same content: still nothing new.
    let other = tmp.path().join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    let renamed = other.join("renamed copy.mp4");
    std::fs::copy(episodes_dir().join("ep02.mp4"), &renamed).unwrap();
    let r = ingest_ok(&cat, &[&renamed]);
    assert!(r.stdout.contains("0 ingested, 1 already present"), "{}", r.stdout);
    assert_eq!((episodes(&cat).len(), pieces(&cat).len()), (3, 6));

    let series = json(&cat, &["ls", "series", "--json"]);
    assert_eq!(series[0]["name"], "episodes");
    assert_eq!(series[0]["episodes"], 3);
    assert_eq!(series[0]["pieces"], 6);
    let text = run(&cat, &["ls"]);
    assert_eq!(text.code, 0);
    assert!(text.stdout.starts_with("SERIES"), "{}", text.stdout);
    assert_eq!(text.stdout.lines().count(), 4, "{}", text.stdout);
    // The episode numbers come from the file names ("ep01.mkv") and are stored at ingest.
    for e in episodes(&cat) {
        let n = e["title"].as_str().unwrap().trim_start_matches("ep0").to_string();
        assert_eq!(e["numbering"], serde_json::json!({ "episode": n }), "{e}");
        assert!(text.stdout.contains(&format!(" E{n} ")), "{}", text.stdout);
    }
    let stats = json(&cat, &["catalog", "stats", "--json"]);
    assert_eq!((stats["episodes"].as_u64(), stats["pieces"].as_u64()), (Some(3), Some(6)));
    assert!(stats["disk_bytes"].as_u64().unwrap() > 0);
    // Vectors for the exact scan, and no arroy forest at this size (nothing searches one).
    assert!(stats["index_bytes"]["vectors"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["index_bytes"]["arroy"].as_u64(), Some(0), "{stats}");

    // Compacting keeps every record and vector; the model in use cannot be dropped.
    let refused =
        run(&cat, &["catalog", "compact", "--drop-model", aniprint::fingerprint::DEFAULT_MODEL]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("is the model in use"), "{}", refused.stderr);
    // Ingest writes half floats already: `--f16` has nothing to convert.
    let done = json(&cat, &["catalog", "compact", "--f16", "--json"]);
    assert!(done["after_bytes"].as_u64() <= done["before_bytes"].as_u64(), "{done}");
    assert_eq!(done["converted_to_f16"].as_array().map(Vec::len), Some(0), "{done}");
    let after = json(&cat, &["catalog", "stats", "--json"]);
    assert_eq!((after["episodes"].as_u64(), after["pieces"].as_u64()), (Some(3), Some(6)));
    assert_eq!(after["index_bytes"]["vectors"], stats["index_bytes"]["vectors"], "{after}");
}

#[test]
fn settings_that_cannot_mean_anything_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let ep = episodes_dir().join("ep03.webm");
    let ep = ep.to_str().unwrap();
    let dir = episodes_dir().to_string_lossy().into_owned();
    for args in [
        vec!["scan", "--threshold", "70", ep],
        vec!["scan", "--threshold", "NaN", ep],
        vec!["scan", "--min-duration", "-1", ep],
        vec!["query", "--top", "0", ep],
        vec!["scan", "--source", "https://video.example/x", ep, ep],
        vec!["scan", "--source", "https://video.example/x", &dir],
        vec!["ls", "episodes", "--status", "keep"],
        vec!["--config", "no-such-settings.toml", "ingest", "--no-index", ep],
        vec!["eval", "separator", "--corpus", "no-such-corpus", "--vbr-db", "5,-5"],
        vec!["eval", "separator", "--corpus", "no-such-corpus", "--vbr-db", "NaN,1"],
    ] {
        let r = run(&cat, &args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        // Refused for the bad value, not for the corpus it never got to read.
        if args.contains(&"--vbr-db") {
            assert!(r.stderr.contains("--vbr-db"), "{args:?}: {}", r.stderr);
        }
    }
    // A settings file that would cut no sensible pieces names the setting.
    let toml = tmp.path().join("bad.toml");
    std::fs::write(&toml, "piece_seconds = 0.0\n").unwrap();
    let r = run(&cat, &["--config", toml.to_str().unwrap(), "ingest", "--no-index", ep]);
    assert!(r.code == 2 && r.stderr.contains("piece_seconds"), "{}", r.stderr);
    // catalog remove checks every id before removing any.
    ingest_ok(&cat, &["--no-index", ep]);
    let id = episodes(&cat)[0]["id"].as_str().unwrap().to_string();
    let r = run(&cat, &["catalog", "remove", &id, "0123456789ab"]);
    assert!(r.code == 2 && r.stderr.contains("0123456789ab"), "{}", r.stderr);
    assert_eq!(episodes(&cat).len(), 1);
}

#[test]
fn every_bad_input_fails_alone_with_its_file_and_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let empty_dir = tmp.path().join("no media here");
    std::fs::create_dir(&empty_dir).unwrap();
    std::fs::write(empty_dir.join("notes.txt"), "not media").unwrap();
    let missing = tmp.path().join("missing.mkv");
    let bad = fixtures().join("bad");
    let expected = [
        ("empty.wav", "empty file"),
        ("noaudio.mkv", "no audio stream"),
        ("notmedia.txt", "not a media file"),
        ("random.mkv", "not a media file"),
        ("silent.wav", "silent"),
        ("truncated.mp4", "not a media file"),
        ("truncated_faststart.mp4", "truncated"),
    ];
    // A good file first and last: the batch must go on past every failure.
    let mut args: Vec<PathBuf> = vec![episodes_dir().join("ep03.webm")];
    args.extend(expected.iter().map(|(f, _)| bad.join(f)));
    args.push(empty_dir.clone());
    args.push(missing.clone());
    args.push(episodes_dir().join("ep02.mp4"));
    let mut cmd = vec![PathBuf::from("ingest")];
    cmd.extend(LIGHT.map(PathBuf::from));
    cmd.extend(args);
    let r = run(&cat, &cmd);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("2 ingested, 0 already present, 9 failed"), "{}", r.stdout);

    let failures: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("failed: ")).collect();
    assert_eq!(failures.len(), 9, "{}", r.stderr);
    let line_for = |p: &Path| {
        let name = p.display().to_string();
        failures
            .iter()
            .find(|l| l.starts_with(&format!("failed: {name}: ")))
            .unwrap_or_else(|| panic!("no failure line for {name} in:\n{}", r.stderr))
            .to_string()
    };
    for (file, cause) in expected {
        let line = line_for(&bad.join(file));
        assert!(line.contains(cause), "{file}: {line}");
    }
    assert!(line_for(&empty_dir).contains("no media files found"));
    assert!(line_for(&missing).contains("No such file"));
    // Everything good is in the catalog.
    assert_eq!(episodes(&cat).len(), 2);
}

#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_ingested() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("show");
    std::fs::create_dir(&dir).unwrap();
    let name = OsStr::from_bytes(b"ep\xff\xfe 03.webm");
    let file = dir.join(name);
    std::fs::copy(episodes_dir().join("ep03.webm"), &file).unwrap();
    let cat = tmp.path().join("cat");
    ingest_light(&cat, &[&file]);
    let eps = episodes(&cat);
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0]["pieces"], 2);
    assert_eq!(eps[0]["series"], "show");
    // Folder walking finds it too (and knows it already).
    let r = ingest_light(&cat, &[&dir]);
    assert!(r.stdout.contains("1 already present"), "{}", r.stdout);
    let info = run(&cat, &[OsStr::new("info"), file.as_os_str()]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    assert!(info.stdout.contains("opus"), "{}", info.stdout);
    // The catalog keeps the name's bytes, so export opens the source again.
    let out = tmp.path().join("out");
    let args = [OsStr::new("export-pieces"), OsStr::new("--all"), OsStr::new("--out")];
    let r = run(&cat, &[&args[..], &[out.as_os_str()]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (_, rows) = read_manifest(&out.join("manifest.csv"));
    assert_eq!(rows.len(), 2);
    // Scanned as an upload (it matches itself), it is opened again for evidence clips.
    let r = run(
        &cat,
        &[OsStr::new("-q"), OsStr::new("scan"), OsStr::new("--no-separate"), file.as_os_str()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let csv = tmp.path().join("r.csv");
    let args = [OsStr::new("report"), OsStr::new("--evidence"), OsStr::new("ev"), OsStr::new("-o")];
    let r = aniprint(&cat).current_dir(tmp.path()).args(args).arg(&csv).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.contains("ev/") && text.contains("-upload.flac"), "{text}");
}

#[test]
fn info_shows_both_audio_streams_of_ep01_with_their_languages() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let ep01 = episodes_dir().join("ep01.mkv");
    let v = json(&cat, &[OsStr::new("info"), OsStr::new("--json"), ep01.as_os_str()]);
    let streams = v[0]["streams"].as_array().unwrap();
    let audio: Vec<&Value> = streams.iter().filter(|s| s["kind"] == "audio").collect();
    assert_eq!(audio.len(), 2);
    assert_eq!(
        (audio[0]["language"].as_str(), audio[1]["language"].as_str()),
        (Some("jpn"), Some("eng"))
    );
    assert_eq!(
        (audio[0]["default"].as_bool(), audio[1]["default"].as_bool()),
        (Some(true), Some(false))
    );
    for a in &audio {
        assert_eq!(
            (a["codec"].as_str(), a["sample_rate"].as_u64(), a["channels"].as_u64()),
            (Some("aac"), Some(48_000), Some(2))
        );
    }
    assert!((v[0]["duration_s"].as_f64().unwrap() - 240.02).abs() < 0.05);
    // The episode number ingest would record (from "ep01"); no source address in its tags.
    assert_eq!(v[0]["numbering"], serde_json::json!({ "episode": "1" }));
    assert_eq!(v[0]["source"], Value::Null);

    let text = run(&cat, &[OsStr::new("info"), ep01.as_os_str()]);
    assert_eq!(text.code, 0);
    for needle in
        ["matroska", "00:04:00", "episode   E1", "jpn", "eng", "Japanese", "English", "48000"]
    {
        assert!(text.stdout.contains(needle), "{needle} in {}", text.stdout);
    }
    // A file that is not media: named, and the exit code says so.
    let bad = fixtures().join("bad/random.mkv");
    let r = run(&cat, &[OsStr::new("info"), bad.as_os_str()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("random.mkv"), "{}", r.stderr);
}

#[test]
fn audio_lang_and_audio_stream_pick_the_english_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let ep01 = episodes_dir().join("ep01.mkv");
    for (i, flag) in [["--audio-lang", "eng"], ["--audio-stream", "2"]].iter().enumerate() {
        let cat = tmp.path().join(format!("cat{i}"));
        ingest_light(&cat, &[OsStr::new(flag[0]), OsStr::new(flag[1]), ep01.as_os_str()]);
        let eps = episodes(&cat);
        assert_eq!(
            (eps[0]["audio_stream"].as_u64(), eps[0]["language"].as_str()),
            (Some(2), Some("eng"))
        );
    }
    // The default is the stream marked default: jpn.
    let cat = tmp.path().join("default");
    ingest_light(&cat, &[&ep01]);
    assert_eq!(episodes(&cat)[0]["language"], "jpn");
    // A language the file lacks is a per-file failure that says what the file has.
    let cat = tmp.path().join("fre");
    let r = run(
        &cat,
        &[OsStr::new("ingest"), OsStr::new("--audio-lang"), OsStr::new("fre"), ep01.as_os_str()],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("ep01.mkv: no audio stream with language fre; the file has #1 jpn, #2 eng"),
        "{}",
        r.stderr
    );
}

fn read_manifest(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rd = csv::Reader::from_path(path).unwrap();
    let header = rd.headers().unwrap().iter().map(str::to_string).collect();
    let rows = rd.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    (header, rows)
}

#[test]
fn export_writes_kept_pieces_and_a_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    // A series name a spreadsheet would run as a formula.
    ingest_light(
        &cat,
        &[OsStr::new("--series"), OsStr::new("=HYPERLINK(\"x\")"), episodes_dir().as_os_str()],
    );
    let ps = pieces(&cat);
    let by_title = |t: &str| -> Vec<String> {
        let mut v: Vec<&Value> = ps.iter().filter(|p| p["episode_title"] == t).collect();
        v.sort_by_key(|p| p["index"].as_u64());
        v.iter().map(|p| p["id"].as_str().unwrap().to_string()).collect()
    };
    let (ep02, ep03) = (by_title("ep02"), by_title("ep03"));
    let r = run(&cat, &["pieces", "set", &ep02[1], &ep03[0], "--status", "keep"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // An episode id stands for all its pieces.
    let ep01_id = ps.iter().find(|p| p["episode_title"] == "ep01").unwrap()["episode"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(run(&cat, &["pieces", "set", &ep01_id, "--status", "drop"]).code, 0);
    let kept = json(&cat, &["ls", "pieces", "--status", "keep", "--json"]);
    assert_eq!(kept.as_array().unwrap().len(), 2);

    let out = tmp.path().join("out");
    let r = run(&cat, &[OsStr::new("export-pieces"), OsStr::new("--out"), out.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (header, rows) = read_manifest(&out.join("manifest.csv"));
    assert_eq!(
        header,
        [
            "series",
            "episode",
            "piece",
            "start_s",
            "end_s",
            "duration_s",
            "language",
            "source_file",
            "sha256",
            "file",
            "voice_file",
            "background_file"
        ]
    );
    assert_eq!(rows.len(), 2);
    let eps = episodes(&cat);
    for row in &rows {
        assert_eq!(row[0], "'=HYPERLINK(\"x\")", "formula cells are escaped");
        let ep = eps.iter().find(|e| e["id"] == row[1].as_str()).unwrap();
        assert_eq!(row[6], "jpn");
        assert_eq!(row[7], ep["path"].as_str().unwrap());
        assert_eq!(row[8], ep["sha256"].as_str().unwrap());
        let p = ps.iter().find(|p| p["id"] == row[2].as_str()).unwrap();
        let (start, end, dur): (f64, f64, f64) =
            (row[3].parse().unwrap(), row[4].parse().unwrap(), row[5].parse().unwrap());
        assert_eq!(row[3].split('.').nth(1).map(str::len), Some(3), "millisecond precision");
        assert!((start - p["start_s"].as_f64().unwrap()).abs() < 1e-3);
        assert!((end - p["end_s"].as_f64().unwrap()).abs() < 1e-3);
        assert!((dur - (end - start)).abs() < 2e-3);
        // The file: <series>/<episode-id>/<piece-id>.wav, 44.1 kHz, channels as the source.
        let wav = out.join("=HYPERLINK(\"x\")").join(&row[1]).join(format!("{}.wav", row[2]));
        assert!(row[9].ends_with(&format!("/{}/{}.wav", row[1], row[2])), "file {}", row[9]);
        assert_eq!((row[10].as_str(), row[11].as_str()), ("", ""), "no stems without --stems");
        let reader =
            hound::WavReader::open(&wav).unwrap_or_else(|e| panic!("{}: {e}", wav.display()));
        let spec = reader.spec();
        assert_eq!(spec.sample_rate, 44_100);
        let want_ch = if ep["title"] == "ep03" { 1 } else { 2 };
        assert_eq!(spec.channels, want_ch, "{}", ep["title"]);
        let secs = f64::from(reader.duration()) / 44_100.0;
        assert!(
            (secs - dur).abs() < 0.01,
            "{}: {secs} s of audio, manifest says {dur} s",
            wav.display()
        );
    }
    // A series the catalog lacks is refused: a typo must not empty the manifest.
    let args = [OsStr::new("export-pieces"), OsStr::new("--series"), OsStr::new("Typo")];
    let r = run(&cat, &[&args[..], &[OsStr::new("--out"), out.as_os_str()]].concat());
    assert!(r.code == 2 && r.stderr.contains("no series \"Typo\""), "{}", r.stderr);
    assert_eq!(read_manifest(&out.join("manifest.csv")).1.len(), 2);

    // --all adds unreviewed pieces but never dropped ones; flac at 16 kHz.
    let out_all = tmp.path().join("out_all");
    let r = run(
        &cat,
        &[
            OsStr::new("export-pieces"),
            OsStr::new("--all"),
            OsStr::new("--format"),
            OsStr::new("flac"),
            OsStr::new("--rate"),
            OsStr::new("16000"),
            OsStr::new("--out"),
            out_all.as_os_str(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (_, rows) = read_manifest(&out_all.join("manifest.csv"));
    let mut got: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    got.sort();
    let mut want: Vec<&str> = ep02.iter().chain(&ep03).map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want);
    let flac =
        out_all.join("=HYPERLINK(\"x\")").join(&rows[0][1]).join(format!("{}.flac", rows[0][2]));
    assert!(std::fs::metadata(&flac).unwrap().len() > 10_000);
}

/// One series at a time builds one dataset: an export with `--series` keeps the other series'
/// rows an earlier export left in the folder (while their files are there) and replaces its
/// own series' rows, so a piece dropped since is no longer listed.
#[test]
fn export_of_one_series_keeps_the_other_series_in_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let b_wav = fixtures().join("plain/speech.wav");
    ingest_light(
        &cat,
        &[OsStr::new("--series"), OsStr::new("A"), episodes_dir().join("ep03.webm").as_os_str()],
    );
    ingest_light(&cat, &[OsStr::new("--series"), OsStr::new("B"), b_wav.as_os_str()]);
    assert_eq!(run(&cat, &["pieces", "keep-all"]).code, 0);
    let out = tmp.path().join("out");
    let export = |series: &str| {
        let args = ["export-pieces", "--series", series, "--out", out.to_str().unwrap()];
        let r = run(&cat, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let rows = read_manifest(&out.join("manifest.csv")).1;
        let listed: Vec<(String, String)> =
            rows.into_iter().map(|r| (r[0].clone(), r[2].clone())).collect();
        (r.stdout, listed)
    };
    let (_, a) = export("A");
    assert_eq!(a.len(), 2, "{a:?}");
    let (stdout, both) = export("B");
    assert!(stdout.contains("also lists 2 pieces an earlier export wrote there"), "{stdout}");
    assert_eq!(both.iter().filter(|(s, _)| s == "A").count(), 2, "{both:?}");
    assert_eq!(both.iter().filter(|(s, _)| s == "B").count(), 1, "{both:?}");
    // Drop one of A's pieces: exporting A again lists A's kept piece and still B's.
    assert_eq!(run(&cat, &["pieces", "set", &a[0].1, "--status", "drop"]).code, 0);
    let (_, now) = export("A");
    let want = vec![
        ("A".to_string(), a[1].1.clone()),
        both.iter().find(|(s, _)| s == "B").unwrap().clone(),
    ];
    assert_eq!(now, want);
    // B's file gone: B is no longer listed.
    let b_row =
        read_manifest(&out.join("manifest.csv")).1.into_iter().find(|r| r[0] == "B").unwrap();
    std::fs::remove_file(out.join(&b_row[9])).unwrap();
    let (_, now) = export("A");
    assert_eq!(now, want[..1]);
}

#[test]
fn export_fails_only_the_pieces_whose_source_moved_or_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("show");
    std::fs::create_dir(&src).unwrap();
    for f in ["ep01.mkv", "ep02.mp4", "ep03.webm"] {
        std::fs::copy(episodes_dir().join(f), src.join(f)).unwrap();
    }
    let cat = tmp.path().join("cat");
    ingest_light(&cat, &[&src]);
    assert_eq!(run(&cat, &["pieces", "keep-all"]).code, 0);
    std::fs::rename(src.join("ep01.mkv"), tmp.path().join("moved.mkv")).unwrap();
    // Same size, different bytes: only the hash can tell.
    let p = src.join("ep02.mp4");
    let mut bytes = std::fs::read(&p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();

    let out = tmp.path().join("out");
    let r = run(&cat, &[OsStr::new("export-pieces"), OsStr::new("--out"), out.as_os_str()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("2 pieces exported, 4 failed"), "{}", r.stdout);
    let failures: Vec<&str> =
        r.stderr.lines().filter(|l| l.starts_with("failed: piece ")).collect();
    assert_eq!(failures.len(), 4, "{}", r.stderr);
    assert_eq!(
        failures.iter().filter(|l| l.contains("ep01.mkv is missing (moved or deleted")).count(),
        2,
        "{}",
        r.stderr
    );
    assert_eq!(
        failures.iter().filter(|l| l.contains("ep02.mp4 changed since ingest (sha256")).count(),
        2,
        "{}",
        r.stderr
    );
    let (_, rows) = read_manifest(&out.join("manifest.csv"));
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r[7].ends_with("ep03.webm")));
    // With every source gone, nothing is exported: the manifest stays as it was.
    std::fs::rename(src.join("ep03.webm"), tmp.path().join("moved.webm")).unwrap();
    let r = run(&cat, &[OsStr::new("export-pieces"), OsStr::new("--out"), out.as_os_str()]);
    assert!(r.stdout.contains("0 pieces exported, 6 failed"), "{}", r.stdout);
    assert!(r.stdout.contains("left as it was"), "{}", r.stdout);
    assert_eq!(read_manifest(&out.join("manifest.csv")).1, rows);
}

#[test]
fn unknown_piece_ids_change_nothing_and_an_empty_catalog_lists_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    assert_eq!(json(&cat, &["ls", "pieces", "--json"]), Value::Array(vec![]));
    assert_eq!(json(&cat, &["ls", "series", "--json"]), Value::Array(vec![]));
    ingest_light(&cat, &[episodes_dir().join("ep03.webm")]);
    let id = pieces(&cat)[0]["id"].as_str().unwrap().to_string();
    let r = run(&cat, &["pieces", "set", &id, "nope-000000000", "--status", "drop"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("piece nope-000000000 not found"), "{}", r.stderr);
    assert!(pieces(&cat).iter().all(|p| p["status"] == "unreviewed"));
    let r = run(&cat, &["export-pieces", "--out", &tmp.path().join("o").display().to_string()]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("no pieces with status keep"), "{}", r.stdout);
}

/// Copies of the fixture episodes with distinct bytes (a metadata tag differs, the audio is
/// untouched), so each is a distinct episode. `None` without the ffmpeg CLI.
fn variants(dir: &Path, copies: usize) -> Option<Vec<PathBuf>> {
    if !tools::have_ffmpeg() {
        eprintln!("skipped: the ffmpeg CLI is not installed");
        return None;
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    for i in 0..copies {
        for f in ["ep01.mkv", "ep02.mp4", "ep03.webm"] {
            let dst = dir.join(format!("v{i}_{f}"));
            let ok = Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-i"])
                .arg(episodes_dir().join(f))
                .args(["-map", "0", "-c", "copy", "-metadata", &format!("comment=variant {i}")])
                .arg(&dst)
                .status()
                .unwrap();
            assert!(ok.success(), "ffmpeg made {}", dst.display());
            out.push(dst);
        }
    }
    Some(out)
}

/// Start `aniprint ingest` on `dir`; once `n` episodes are in the catalog, call `act` with the
/// child (still running or already done) and return what it reported.
fn when_episodes_land(
    cat: &Path,
    dir: &Path,
    n: usize,
    act: impl FnOnce(&mut std::process::Child),
) -> Output {
    let mut child = aniprint(cat)
        .arg("ingest")
        .args(LIGHT)
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() || episodes(cat).len() >= n {
            break;
        }
        assert!(Instant::now() < deadline, "ingest made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    act(&mut child);
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn kill_9_mid_batch_then_rerun_completes_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let batch = tmp.path().join("batch");
    let Some(files) = variants(&batch, 4) else { return };
    let cat = tmp.path().join("cat");
    let out = when_episodes_land(&cat, &batch, 1, |child| {
        // Child::kill sends SIGKILL on Unix: no chance to clean up.
        let _ = child.kill();
    });
    let at_kill = episodes(&cat).len();
    eprintln!("killed with {at_kill} of {} episodes stored ({:?})", files.len(), out.status);
    assert!(at_kill >= 1);

    let r = ingest_light(&cat, &[&batch]);
    let summary = r.stdout.lines().last().unwrap();
    let n = |word: &str| -> usize {
        let before = summary.split(word).next().unwrap();
        before.trim_end().rsplit([' ', ',']).next().unwrap().parse().unwrap()
    };
    assert_eq!(n(" ingested") + n(" already present"), files.len(), "{summary}");
    assert!(n(" already present") >= at_kill, "{summary}");

    let eps = episodes(&cat);
    assert_eq!(eps.len(), files.len());
    let mut hashes: Vec<&str> = eps.iter().map(|e| e["sha256"].as_str().unwrap()).collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), files.len(), "no episode twice");
    let ps = pieces(&cat);
    assert_eq!(ps.len(), 2 * files.len(), "every episode has all its pieces, once");
    for e in &eps {
        let mine = ps.iter().filter(|p| p["episode"] == e["id"]).count() as u64;
        assert_eq!(Some(mine), e["pieces"].as_u64());
    }
    let stats = json(&cat, &["catalog", "stats", "--json"]);
    assert_eq!(stats["episodes"].as_u64(), Some(files.len() as u64));
}

#[test]
fn a_file_that_disappears_mid_batch_fails_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let batch = tmp.path().join("batch");
    let Some(files) = variants(&batch, 2) else { return };
    // Sorted last, so it is still waiting when it vanishes.
    let victim = batch.join("zz_victim.mkv");
    std::fs::rename(files.last().unwrap(), &victim).unwrap();
    let cat = tmp.path().join("cat");
    let out = when_episodes_land(&cat, &batch, 1, |_| {
        std::fs::remove_file(&victim).unwrap();
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stdout.contains(&format!("{} ingested", files.len())) {
        eprintln!("skipped: the batch finished before the file could vanish");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("failed: {}: No such file", victim.display())), "{stderr}");
    assert!(
        stdout.contains(&format!("{} ingested, 0 already present, 1 failed", files.len() - 1)),
        "{stdout}"
    );
    assert_eq!(episodes(&cat).len(), files.len() - 1);
}

#[test]
fn train_fingerprint_refuses_bad_settings_before_loading_any_audio() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let missing = tmp.path().join("no-corpus");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "p_codec = 2.0\n").unwrap();
    let wide = tmp.path().join("wide.toml");
    std::fs::write(&wide, "[mel]\nn_mels = 512\n").unwrap();
    let v5_card = aniprint::fingerprint::models_dir().join("fingerprint-v5").join("card.toml");
    let base = ["train", "fingerprint", "--corpus", missing.to_str().unwrap()];
    for (extra, says) in [
        (vec!["--val-queries", "10"], "--val-queries is for --val table6".to_string()),
        (vec!["--degrade", bad.to_str().unwrap()], format!("{}: p_codec", bad.display())),
        (vec!["--max-shift-s", "5"], "--max-shift-s: max_shift_s = 5".to_string()),
        (vec!["--config", wide.to_str().unwrap()], format!("{}", wide.display())),
        (vec!["--device", "gpu"], "invalid value 'gpu' for '--device <DEVICE>'".to_string()),
        // Without --out a v5-shaped run would replace fingerprint-v10, the default ensemble's
        // first member, and leave the ensemble unloadable.
        (
            vec!["--config", v5_card.to_str().unwrap()],
            "which it would replace: give --out".to_string(),
        ),
        (vec!["--cuda", "--device", "cpu"], "'--cuda' cannot be used with".to_string()),
    ]
    .into_iter()
    .chain(
        [vec!["--device", "cuda"], vec!["--cuda"]]
            .into_iter()
            .filter(|_| !cfg!(feature = "cuda"))
            .map(|a| (a, "--device cuda: this build has no CUDA support".to_string())),
    ) {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let r = run(&cat, &args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains(&says), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("no-corpus"), "{args:?} got as far as the corpus: {}", r.stderr);
    }
}
