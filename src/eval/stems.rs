//! What separation buys retrieval: reused dialogue under new music, and reused music under new
//! dialogue, searched with the mix alone and with stems.
//!
//! References are "episodes" of dialogue over music built from held-out packages. They are
//! separated and fingerprinted the way ingest does it (mix, voice and background, each in its
//! own index, on the analyzer's reference grids). A *dialogue* query keeps a stretch of one
//! reference's clean dialogue and lays it over music that no reference contains; a *music*
//! query keeps a stretch of one reference's music under dialogue that no reference contains.
//! Each query is analysed like an upload (the same separator, the same phase voting) and
//! answered three ways: the mix against the mix index (what a mix-only tool does), the reused
//! stem against its own index, and every stem against its own index with the best-supported
//! answer winning (what `scan`/`query` do); answers are phase-voted and verified as `query`
//! does them. Top-1 is "exact" as in [`super::evaluate`]: the right reference within one hop of
//! the true offset.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::{GridRefs, hash_str};
use crate::Result;
use crate::analyze::Analyzer;
use crate::fingerprint::Fingerprints;
use crate::fingerprint::augment::rms;
use crate::fingerprint::train::{Kind, Source};
use crate::index::vote::{VERIFY_CANDIDATES, grid_shift, verify, vote_phases};
use crate::index::{IndexKey, Stem};
use crate::progress::{Progress, Stage};
use crate::separate::train::{Fill, Pool, uniform};

/// What to build and ask.
#[derive(Debug, Clone)]
pub struct StemEvalOptions {
    /// Reference episodes.
    pub references: usize,
    /// Seconds per reference.
    pub reference_s: f32,
    /// Queries per scenario and length.
    pub queries: usize,
    /// Query lengths, seconds.
    pub lengths: Vec<f32>,
    /// Voice-to-background ratio of references and queries, dB (uniform).
    pub vbr_db: (f32, f32),
    /// Hits kept per query segment before voting.
    pub top_k: usize,
    /// Query phases (see [`super::EvalOptions::phases`]).
    pub phases: usize,
    /// Seed for references and queries.
    pub seed: u64,
}

impl Default for StemEvalOptions {
    fn default() -> Self {
        Self {
            references: 60,
            reference_s: 60.0,
            queries: 200,
            lengths: vec![3.0, 5.0],
            vbr_db: (-5.0, 5.0),
            top_k: 20,
            phases: 4,
            seed: 11,
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct StemRow {
    /// `dialogue` (reused voice, new music) or `music` (reused music, new dialogue).
    pub scenario: String,
    /// Query length, seconds.
    pub length_s: f32,
    /// Queries asked.
    pub queries: usize,
    /// Top-1 exact of the mix against the mix index, percent.
    pub mix_top1: f64,
    /// Top-1 exact of the reused stem against its own index, percent.
    pub stem_top1: f64,
    /// Top-1 exact of the best-supported answer over all stems, percent.
    pub all_stems_top1: f64,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct StemReport {
    /// Fingerprint model.
    pub model: String,
    /// Separator model.
    pub separator: String,
    /// Hours of reference audio (per stem index).
    pub reference_hours: f64,
    /// Rows, by scenario then length.
    pub rows: Vec<StemRow>,
}

impl StemReport {
    /// The table as aligned text.
    pub fn table(&self) -> String {
        let mut s = format!(
            "fingerprint {}, separator {}: {:.2} h of reference per stem\n\
             scenario  length  queries  mix->mix  stem->stem  all stems\n",
            self.model, self.separator, self.reference_hours
        );
        for r in &self.rows {
            s.push_str(&format!(
                "{:<9} {:>4.0} s {:>8} {:>8.1}% {:>10.1}% {:>9.1}%\n",
                r.scenario, r.length_s, r.queries, r.mix_top1, r.stem_top1, r.all_stems_top1
            ));
        }
        s
    }
}

/// One stem's references, on each segment grid ingest stores them on.
struct StemIndex {
    grids: Vec<GridRefs>,
    /// Where each grid starts, in hops (see [`grid_shift`]).
    grid_hops: Vec<f64>,
}

/// A voted answer: (reference, offset of the query's first sample in samples, support).
type Answer = (usize, f64, f32);

impl StemIndex {
    /// The best alignment of a phase-voted query after verification (as `query` answers), if
    /// any segment found anything.
    fn answer(
        &self,
        phased: &[(f64, Fingerprints)],
        names: &[String],
        top_k: usize,
        hop: usize,
    ) -> Result<Option<Answer>> {
        let mut voted = Vec::with_capacity(phased.len() * self.grids.len());
        for (shift, f) in phased {
            if f.is_empty() {
                continue;
            }
            let q = Tensor::from_slice(&f.data, (f.len(), f.dim), &Device::Cpu)?;
            for (grid, at) in self.grids.iter().zip(&self.grid_hops) {
                voted.push((grid_shift(*shift, *at), grid.search(&q, top_k, names)?));
            }
        }
        let copies: Vec<(f64, &Fingerprints)> = phased.iter().map(|(s, f)| (*s, f)).collect();
        let cands =
            verify(vote_phases(&voted, VERIFY_CANDIDATES), &copies, &self.grid_hops, |p, g| {
                let i = names.iter().position(|n| n == p)?;
                self.grids.get(g)?.per_source.get(i)
            });
        Ok(cands.into_iter().next().and_then(|c| {
            let r = names.iter().position(|n| *n == c.candidate.piece)?;
            Some((r, c.offset_hops * hop as f64, c.support))
        }))
    }
}

/// Dialogue over music, the stems kept apart: `(voice, music)`, voice-to-music ratio drawn from
/// `vbr_db`, the sum at RMS 0.1.
fn scene(
    voice: &Pool,
    music: &Pool,
    rng: &mut StdRng,
    len: usize,
    vbr_db: (f32, f32),
) -> (Vec<f32>, Vec<f32>) {
    let mut v = voice.fill(rng, len, false, Fill::SPEECH);
    let mut m = music.fill(rng, len, false, Fill::MUSIC);
    let (rv, rm) = (rms(&v).max(1e-6), rms(&m).max(1e-6));
    let gv = 10f32.powf(uniform(rng, vbr_db) / 20.0) / rv;
    v.iter_mut().for_each(|x| *x *= gv);
    m.iter_mut().for_each(|x| *x /= rm);
    let mix_rms = rms(&v.iter().zip(&m).map(|(a, b)| a + b).collect::<Vec<_>>()).max(1e-6);
    let g = 0.1 / mix_rms;
    v.iter_mut().for_each(|x| *x *= g);
    m.iter_mut().for_each(|x| *x *= g);
    (v, m)
}

/// Run the comparison on held-out `sources` (speech and music) with `analyzer`, which must
/// have a separator. Sources are split in two by index: one half builds the references, the
/// other provides the new music and dialogue that queries are laid over.
pub fn evaluate_stems(
    analyzer: &Analyzer,
    sources: &[Source],
    opts: &StemEvalOptions,
    progress: &dyn Progress,
) -> Result<StemReport> {
    let Some(separator) = analyzer.separator() else {
        return Err(crate::Error::Invalid(
            "the stem comparison needs a separator model (none is installed)".into(),
        ));
    };
    let half = |kind: Kind, odd: bool| {
        Pool::new(
            sources
                .iter()
                .filter(|s| s.kind == kind)
                .enumerate()
                .filter_map(move |(i, s)| (i % 2 == usize::from(odd)).then_some(s)),
        )
    };
    let (ref_voice, new_voice) = (half(Kind::Speech, false), half(Kind::Speech, true));
    let (ref_music, new_music) = (half(Kind::Music, false), half(Kind::Music, true));
    if [&ref_voice, &new_voice, &ref_music, &new_music].iter().any(|p| p.is_empty()) {
        return Err(crate::Error::Invalid(
            "the stem comparison needs at least two speech and two music sources".into(),
        ));
    }
    let rate = analyzer.rate();
    let cfg = analyzer.fingerprinter().config().clone();
    let len = (opts.reference_s * rate.0 as f32) as usize;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let scenes: Vec<(Vec<f32>, Vec<f32>)> = (0..opts.references)
        .map(|_| scene(&ref_voice, &ref_music, &mut rng, len, opts.vbr_db))
        .collect();
    let names: Vec<String> = (0..scenes.len()).map(|i| format!("ep{i:03}")).collect();

    // Reference side: separate and fingerprint each scene as ingest would.
    progress.stage(Stage::Fingerprinting);
    progress.set_total(scenes.len() as u64);
    let stems = [Stem::Mix, Stem::Voice, Stem::Background];
    // Per index key (stem and grid), each reference's vectors, in reference order.
    let mut built: BTreeMap<IndexKey, Vec<Fingerprints>> = BTreeMap::new();
    for (v, m) in &scenes {
        let mix: Vec<f32> = v.iter().zip(m).map(|(a, b)| a + b).collect();
        for (key, f) in analyzer.analyze_reference(&mix)? {
            built.entry(key).or_default().push(f);
        }
        progress.advance(1);
        progress.check()?;
    }
    let dim = analyzer.fingerprinter().dim();
    let mut indexes: Vec<StemIndex> =
        stems.iter().map(|_| StemIndex { grids: Vec::new(), grid_hops: Vec::new() }).collect();
    // Keys sort by stem, then grid offset: each stem's plain grid comes first.
    for (key, per_ref) in built {
        let k = stems.iter().position(|s| *s == key.stem).unwrap_or(0);
        indexes[k].grids.push(GridRefs::new(per_ref, dim)?);
        indexes[k].grid_hops.push(f64::from(key.offset) / cfg.hop as f64);
    }

    // Query side.
    progress.stage(Stage::Evaluating);
    progress.set_total((2 * opts.lengths.len() * opts.queries) as u64);
    let mut rows = Vec::new();
    for scenario in ["dialogue", "music"] {
        let reused = if scenario == "dialogue" { Stem::Voice } else { Stem::Background };
        for &len_s in &opts.lengths {
            let qlen = (len_s * rate.0 as f32) as usize;
            if qlen >= len {
                continue;
            }
            let mut rng =
                StdRng::seed_from_u64(opts.seed ^ hash_str(scenario) ^ (qlen as u64) << 20);
            // Top-1 exact: mix -> mix, reused stem -> its index, best over all stems.
            let mut counts = [0usize; 3];
            let hop = cfg.hop as f64;
            let mut asked = 0;
            let mut tries = 0;
            while asked < opts.queries && tries < opts.queries * 50 {
                tries += 1;
                let r = rng.random_range(0..scenes.len());
                let start = rng.random_range(0..len - qlen);
                let (v, m) = &scenes[r];
                let kept = if reused == Stem::Voice {
                    &v[start..start + qlen]
                } else {
                    &m[start..start + qlen]
                };
                // The reused stem must be there to be found (dialogue has pauses).
                if rms(kept) < 0.02 {
                    continue;
                }
                let (new_v, new_m) = scene(&new_voice, &new_music, &mut rng, qlen, opts.vbr_db);
                // The new stem at a voice-to-background ratio drawn like the references'.
                let vbr = 10f32.powf(uniform(&mut rng, opts.vbr_db) / 20.0);
                let (other, level) = if reused == Stem::Voice {
                    (&new_m, rms(kept) / vbr)
                } else {
                    (&new_v, rms(kept) * vbr)
                };
                let g = level / rms(other).max(1e-6);
                let query: Vec<f32> = kept.iter().zip(other).map(|(a, b)| a + g * b).collect();
                let found = |a: &Option<Answer>| {
                    a.is_some_and(|(ri, off, _)| ri == r && (off - start as f64).abs() < hop)
                };
                let mut best: Option<Answer> = None;
                for (stem, phased) in analyzer.analyze_phases(&query, opts.phases)? {
                    let k = stems.iter().position(|s| *s == stem).unwrap_or(0);
                    let ans = indexes[k].answer(&phased, &names, opts.top_k, cfg.hop)?;
                    counts[0] += usize::from(stem == Stem::Mix && found(&ans));
                    counts[1] += usize::from(stem == reused && found(&ans));
                    if let Some(a) = ans
                        && best.is_none_or(|b| a.2 > b.2)
                    {
                        best = Some(a);
                    }
                }
                counts[2] += usize::from(found(&best));
                asked += 1;
                progress.advance(1);
                progress.check()?;
            }
            let pct = |c: usize| 100.0 * c as f64 / asked.max(1) as f64;
            rows.push(StemRow {
                scenario: scenario.to_string(),
                length_s: len_s,
                queries: asked,
                mix_top1: pct(counts[0]),
                stem_top1: pct(counts[1]),
                all_stems_top1: pct(counts[2]),
            });
        }
    }
    Ok(StemReport {
        model: analyzer.model().to_string(),
        separator,
        reference_hours: scenes.len() as f64 * f64::from(opts.reference_s) / 3600.0,
        rows,
    })
}
