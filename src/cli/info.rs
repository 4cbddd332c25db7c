//! `aniprint info`: what a media file holds, as FFmpeg sees it.

use std::io::Write;
use std::path::PathBuf;

use aniprint::catalog::Numbering;
use aniprint::media::{self, StreamInfo, StreamKind};
use serde::Serialize;

use super::table::Table;
use super::{Ctx, Outcome};

/// Arguments of `aniprint info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Media files to describe.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print a JSON array (one object per readable file) instead of text.
    #[arg(long)]
    json: bool,
}

/// One file's description, for `--json`.
#[derive(Debug, Serialize)]
struct FileInfo {
    file: String,
    format: String,
    duration_s: Option<f64>,
    streams: Vec<StreamInfo>,
    tags: serde_json::Map<String, serde_json::Value>,
    /// Season and episode number as `ingest` would record them.
    numbering: Numbering,
    /// Where the file came from, as `scan` would record it (its `purl`/`comment` tag).
    source: Option<String>,
}

/// Describe each file; unreadable ones are reported and make the outcome partial.
pub fn run(args: Args, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut infos = Vec::new();
    let mut failed = 0usize;
    for file in &args.files {
        match media::probe(file) {
            Ok(info) => infos.push(FileInfo {
                numbering: aniprint::ingest::numbering(file, &info.tags),
                source: info.source_url(),
                file: file.to_string_lossy().into_owned(),
                format: info.format,
                duration_s: info.duration.map(|d| (d.0 * 1000.0).round() / 1000.0),
                streams: info.streams,
                tags: info
                    .tags
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect(),
            }),
            Err(e) => {
                failed += 1;
                eprintln!("failed: {e}");
            }
        }
    }
    if args.json {
        super::print_json(&infos)?;
    } else {
        let mut out = std::io::stdout().lock();
        for (i, info) in infos.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write_text(&mut out, info)?;
        }
    }
    Ok(if failed == 0 { Outcome::Ok } else { Outcome::Partial })
}

fn write_text(out: &mut impl Write, info: &FileInfo) -> std::io::Result<()> {
    writeln!(out, "{}", info.file)?;
    writeln!(out, "  format    {}", info.format)?;
    match info.duration_s {
        Some(d) => writeln!(out, "  duration  {} ({d:.3} s)", aniprint::units::Seconds(d).hms())?,
        None => writeln!(out, "  duration  unknown")?,
    }
    if !info.numbering.is_empty() {
        writeln!(out, "  episode   {}", info.numbering.label())?;
    }
    if let Some(s) = &info.source {
        writeln!(out, "  source    {s}")?;
    }
    for (k, v) in &info.tags {
        writeln!(out, "  tag       {k} = {}", v.as_str().unwrap_or_default())?;
    }
    let mut t = Table::new(&["#", "KIND", "CODEC", "LANG", "DEFAULT", "RATE", "CH", "TITLE"])
        .right(&[0, 5, 6]);
    for s in &info.streams {
        let kind = match s.kind {
            StreamKind::Audio => "audio",
            StreamKind::Video => "video",
            StreamKind::Subtitle => "subtitle",
            StreamKind::Other => "other",
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        t.row(vec![
            s.index.to_string(),
            kind.into(),
            s.codec.clone(),
            opt(s.language.clone()),
            if s.default { "yes" } else { "no" }.into(),
            opt(s.sample_rate.map(|r| r.to_string())),
            opt(s.channels.map(|c| c.to_string())),
            opt(s.title.clone()),
        ]);
    }
    let mut buf = Vec::new();
    t.write(&mut buf)?;
    for line in String::from_utf8_lossy(&buf).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}
