//! Evaluation of the fingerprinter the way the paper measures it (its Table 6): references are
//! fingerprinted whole, queries of 1/3/5 s are cut at random offsets and degraded, each query is
//! answered by exact search plus sequence voting, and Top-1/Top-3/Top-10 hit rates are counted.
//!
//! "Exact" means the right reference and an offset less than one segment hop (0.5 s) from the
//! truth; "near" allows one more hop either way.

use std::path::Path;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::fingerprint::augment::{self, Convolver};
use crate::fingerprint::train::{Corpus, Degrade, Kind, Source, codec_round_trip};
use crate::fingerprint::{Fingerprinter, Fingerprints};
use crate::index::{Hit, vote};
use crate::media::{self, DecodeOptions};
use crate::progress::{Progress, Stage};
use crate::units::SampleRate;
use crate::{Error, Result};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Queries per length and condition.
    pub queries: usize,
    /// Query lengths, seconds.
    pub lengths: Vec<f32>,
    /// Conditions by name (see [`condition`]).
    pub conditions: Vec<String>,
    /// Hits kept per query segment before voting.
    pub top_k: usize,
    /// Seed for query positions and degradations.
    pub seed: u64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            queries: 1000,
            lengths: vec![1.0, 3.0, 5.0],
            conditions: ["all", "noise", "reverb", "codec", "clean"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            top_k: 20,
            seed: 7,
        }
    }
}

/// The degradation of a named condition: `all` (noise 0-10 dB SNR + reverb + MP3, together),
/// `noise`, `reverb`, `codec`, `clean`.
pub fn condition(name: &str) -> Result<Degrade> {
    Ok(match name {
        "all" => Degrade::eval_all(),
        "noise" => Degrade::noise_only(),
        "reverb" => Degrade::reverb_only(),
        "codec" => Degrade::codec_only(),
        "clean" => Degrade::clean(),
        other => {
            return Err(Error::Invalid(format!(
                "unknown condition {other:?} (all, noise, reverb, codec, clean)"
            )));
        }
    })
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Condition name.
    pub condition: String,
    /// Query length, seconds.
    pub length_s: f32,
    /// Queries scored.
    pub queries: usize,
    /// Top-1 exact, percent.
    pub top1_exact: f64,
    /// Top-1 near, percent.
    pub top1_near: f64,
    /// Top-3 exact, percent.
    pub top3_exact: f64,
    /// Top-10 exact, percent.
    pub top10_exact: f64,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Model name.
    pub model: String,
    /// Hours of reference audio searched.
    pub reference_hours: f64,
    /// Hours of it that queries are drawn from (held-out audio).
    pub query_hours: f64,
    /// Reference segments (vectors) searched.
    pub reference_segments: usize,
    /// Rows, by condition then length.
    pub rows: Vec<Row>,
}

impl Report {
    /// The table as aligned text.
    pub fn table(&self) -> String {
        let mut s = format!(
            "model {}: {:.2} h of reference ({} segments), queries from {:.2} h held out\n",
            self.model, self.reference_hours, self.reference_segments, self.query_hours
        );
        s.push_str("condition  length  queries  top1-exact  top1-near  top3-exact  top10-exact\n");
        for r in &self.rows {
            s.push_str(&format!(
                "{:<9} {:>5.0} s {:>8} {:>10.1}% {:>9.1}% {:>10.1}% {:>11.1}%\n",
                r.condition,
                r.length_s,
                r.queries,
                r.top1_exact,
                r.top1_near,
                r.top3_exact,
                r.top10_exact
            ));
        }
        s
    }
}

/// Reference sources from a folder of media files (each decoded at the model's rate, with an
/// MP3 round-trip copy for the codec condition).
pub fn sources_from_dir(
    dir: &Path,
    rate: SampleRate,
    progress: &dyn Progress,
) -> Result<Vec<Source>> {
    let (files, _) = crate::ingest::collect_inputs(&[dir.to_path_buf()], true);
    progress.stage(Stage::Decoding);
    progress.set_total(files.len() as u64);
    let opts = DecodeOptions { rate, channels: 1, ..DecodeOptions::default() };
    let tmp = std::env::temp_dir().join(format!("aniprint-eval-{}.mp3", std::process::id()));
    let mut out = Vec::new();
    for f in files {
        progress.advance(1);
        let clean = match media::decode(&f, &opts) {
            Ok(v) if v.len() > rate.0 as usize => v,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!("skipping {}: {e}", f.display());
                continue;
            }
        };
        let coded = codec_round_trip(&clean, rate, &tmp)?;
        out.push(Source {
            package: f.display().to_string(),
            version: String::new(),
            kind: Kind::Music,
            licence: String::new(),
            rate,
            clean,
            coded,
        });
    }
    Ok(out)
}

/// Evaluate `fp`: queries come from `queries_from`, the search runs over `queries_from` plus
/// `distractors` (audio no query comes from, making the search harder, as a real catalog would).
pub fn evaluate(
    fp: &Fingerprinter,
    queries_from: &[Source],
    distractors: &[Source],
    opts: &EvalOptions,
    progress: &dyn Progress,
) -> Result<Report> {
    let cfg = fp.config().clone();
    let rate = cfg.rate();
    let longest = opts.lengths.iter().copied().fold(0.0f32, f32::max);
    if !queries_from.iter().any(|s| s.clean.len() > (longest * rate.0 as f32) as usize + 1) {
        return Err(Error::Invalid(format!("no reference is longer than the {longest} s queries")));
    }
    progress.stage(Stage::Fingerprinting);
    let all: Vec<&Source> = queries_from.iter().chain(distractors).collect();
    progress.set_total(all.len() as u64);
    // Reference matrix: every segment of every source; `owner[i]` = (source, segment).
    let mut refs = Vec::new();
    let mut owner = Vec::new();
    for (si, s) in all.iter().enumerate() {
        let f = fp.fingerprint(&s.clean)?;
        owner.extend((0..f.len()).map(|j| (si, j as u32)));
        refs.extend(f.data);
        progress.advance(1);
    }
    let dim = cfg.model.dim;
    let n_ref = owner.len();
    let device = Device::Cpu;
    let ref_t = Tensor::from_vec(refs, (n_ref, dim), &device)?.t()?.contiguous()?;
    let names: Vec<String> = all.iter().map(|s| s.package.clone()).collect();
    let mut rows = Vec::new();
    progress.stage(Stage::Evaluating);
    progress.set_total((opts.conditions.len() * opts.lengths.len() * opts.queries) as u64);
    let total: usize = queries_from.iter().map(|s| s.clean.len()).sum();
    for cname in &opts.conditions {
        let degrade = condition(cname)?;
        for &len_s in &opts.lengths {
            let len = (len_s * rate.0 as f32) as usize;
            let mut rng = StdRng::seed_from_u64(opts.seed ^ hash_str(cname) ^ (len as u64) << 20);
            let mut conv = Convolver::new();
            let mut counts = [0usize; 4];
            let mut done = 0;
            // Draw queries in batches so the search runs as matrix products.
            let batch = 64;
            while done < opts.queries {
                let nb = batch.min(opts.queries - done);
                let mut qs = Vec::with_capacity(nb);
                while qs.len() < nb {
                    let (si, start) = pick(&mut rng, queries_from, total, len);
                    let s = &queries_from[si];
                    if augment::rms(&s.clean[start..start + len]) < 3e-3 {
                        continue;
                    }
                    let q = degrade.apply(
                        &mut rng,
                        &mut conv,
                        s,
                        start,
                        len,
                        distractors_or(distractors, queries_from),
                    );
                    qs.push((si, start, q));
                }
                let fps: Vec<Fingerprints> =
                    qs.iter().map(|(_, _, q)| fp.fingerprint(q)).collect::<Result<_>>()?;
                let rows_q: Vec<f32> = fps.iter().flat_map(|f| f.data.iter().copied()).collect();
                let nq = rows_q.len() / dim;
                let q_t = Tensor::from_vec(rows_q, (nq, dim), &device)?;
                let sims = q_t.matmul(&ref_t)?.to_vec2::<f32>()?;
                let mut row = 0;
                for ((si, start, _), f) in qs.iter().zip(&fps) {
                    let hits: Vec<Vec<Hit>> = (0..f.len())
                        .map(|_| {
                            let h = top_hits(&sims[row], opts.top_k, &owner, &names);
                            row += 1;
                            h
                        })
                        .collect();
                    let cands = vote(&hits, 10);
                    let truth_name = &queries_from[*si].package;
                    let is_at = |c: &crate::index::vote::Candidate, tol: f64| {
                        &c.piece == truth_name
                            && ((c.offset_segments as f64) * cfg.hop as f64 - *start as f64).abs()
                                < tol * cfg.hop as f64
                    };
                    if cands.first().is_some_and(|c| is_at(c, 1.0)) {
                        counts[0] += 1;
                    }
                    if cands.first().is_some_and(|c| is_at(c, 2.0)) {
                        counts[1] += 1;
                    }
                    if cands.iter().take(3).any(|c| is_at(c, 1.0)) {
                        counts[2] += 1;
                    }
                    if cands.iter().take(10).any(|c| is_at(c, 1.0)) {
                        counts[3] += 1;
                    }
                }
                done += nb;
                progress.advance(nb as u64);
                progress.check()?;
            }
            let pct = |c: usize| 100.0 * c as f64 / opts.queries.max(1) as f64;
            rows.push(Row {
                condition: cname.clone(),
                length_s: len_s,
                queries: opts.queries,
                top1_exact: pct(counts[0]),
                top1_near: pct(counts[1]),
                top3_exact: pct(counts[2]),
                top10_exact: pct(counts[3]),
            });
        }
    }
    let secs = |v: &[&Source]| {
        v.iter().map(|s| s.clean.len() as f64).sum::<f64>() / f64::from(rate.0) / 3600.0
    };
    Ok(Report {
        model: fp.card().name.clone(),
        reference_hours: secs(&all),
        query_hours: Corpus::seconds(queries_from, rate) / 3600.0,
        reference_segments: n_ref,
        rows,
    })
}

fn distractors_or<'a>(distractors: &'a [Source], fallback: &'a [Source]) -> &'a [Source] {
    if distractors.is_empty() { fallback } else { distractors }
}

fn hash_str(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// A source (weighted by length) and a start with `len` samples inside it.
fn pick(rng: &mut StdRng, sources: &[Source], total: usize, len: usize) -> (usize, usize) {
    loop {
        let mut r = rng.random_range(0..total.max(1));
        for (i, s) in sources.iter().enumerate() {
            if r < s.clean.len() {
                if s.clean.len() > len + 1 {
                    return (i, rng.random_range(0..s.clean.len() - len));
                }
                break;
            }
            r -= s.clean.len();
        }
    }
}

/// The `k` most similar reference segments as hits (distance from cosine for unit vectors).
fn top_hits(sims: &[f32], k: usize, owner: &[(usize, u32)], names: &[String]) -> Vec<Hit> {
    let mut idx: Vec<usize> = (0..sims.len()).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Vec::new();
    }
    idx.select_nth_unstable_by(k - 1, |&a, &b| sims[b].total_cmp(&sims[a]));
    idx.truncate(k);
    idx.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]));
    idx.into_iter()
        .map(|i| Hit {
            item: i as u32,
            piece: names[owner[i].0].clone(),
            segment: owner[i].1,
            distance: (2.0 - 2.0 * sims[i]).max(0.0).sqrt(),
        })
        .collect()
}
