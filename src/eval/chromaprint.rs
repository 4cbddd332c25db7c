//! Chromaprint, the AcoustID fingerprinter (`fpcalc`; here its pure-Rust port), scored on the
//! same Table 6 queries as aniprint's fingerprinter: what a user would pick instead.
//!
//! Chromaprint turns audio into one 32-bit word every 0.124 s (12 chroma bands through 16
//! Haar-like filters, each one to two bits); a word needs 20 frames of context (a 5-tap chroma
//! filter, then filters 16 frames wide), so a clip gives words only from about 2.7 s on. A
//! query is placed by sliding its words along every reference and counting differing bits
//! (what AcoustID's matcher does per candidate, here exhaustively); the alignments with the
//! fewest differing bits answer it, scored as [`evaluate`](super::evaluate) scores aniprint's
//! (right reference, offset within one hop).

use rayon::prelude::*;
use rusty_chromaprint::{Configuration, Fingerprinter};

use super::{Row, condition, draw_query, judge, query_rng};
use crate::fingerprint::augment::Convolver;
use crate::fingerprint::train::Source;
use crate::progress::{Progress, Stage};
use crate::{Error, Result};

/// Answers kept per query (Top-10 needs ten).
const ANSWERS: usize = 10;

/// Chromaprint's words for `audio` (mono, `rate` Hz), with the preset `fpcalc` uses.
pub fn words(audio: &[f32], rate: u32) -> Result<Vec<u32>> {
    let config = Configuration::preset_test2();
    let mut printer = Fingerprinter::new(&config);
    printer
        .start(rate, 1)
        .map_err(|e| Error::Invalid(format!("chromaprint at {rate} Hz: {e:?}")))?;
    let pcm: Vec<i16> =
        audio.iter().map(|&x| (x.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16).collect();
    printer.consume(&pcm);
    printer.finish();
    Ok(printer.fingerprint().to_vec())
}

/// Seconds between chromaprint words.
pub fn word_seconds() -> f64 {
    f64::from(Configuration::preset_test2().item_duration_in_seconds())
}

/// One placement of a query: reference index, first word, differing bits per word (0-32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Index of the reference.
    pub reference: usize,
    /// The reference word the query's first word lines up with.
    pub word: usize,
    /// Mean differing bits per word: 0 is identical, 16 is chance.
    pub errors: f32,
}

/// The `top` best placements of `query` among `references`, fewest differing bits first; a
/// placement within `apart` words of a better one on the same reference is left out. A query
/// without words has none.
pub fn place(query: &[u32], references: &[Vec<u32>], top: usize, apart: usize) -> Vec<Placement> {
    if query.is_empty() {
        return Vec::new();
    }
    let n = query.len();
    let mut best: Vec<Placement> = Vec::new();
    for (ri, r) in references.iter().enumerate() {
        if r.len() < n {
            continue;
        }
        let errors: Vec<u32> = (0..=r.len() - n)
            .map(|o| query.iter().zip(&r[o..o + n]).map(|(a, b)| (a ^ b).count_ones()).sum())
            .collect();
        // This reference's own best few, each at least `apart` from the ones before.
        let mut taken: Vec<usize> = Vec::new();
        let mut order: Vec<usize> = (0..errors.len()).collect();
        order.sort_by_key(|&o| (errors[o], o));
        for o in order {
            if taken.len() >= top {
                break;
            }
            if taken.iter().all(|&t| t.abs_diff(o) > apart) {
                taken.push(o);
                best.push(Placement {
                    reference: ri,
                    word: o,
                    errors: errors[o] as f32 / n as f32,
                });
            }
        }
    }
    best.sort_by(|a, b| {
        a.errors.total_cmp(&b.errors).then(a.reference.cmp(&b.reference)).then(a.word.cmp(&b.word))
    });
    best.truncate(top);
    best
}

/// Table 6 rows for chromaprint (`search` = "chromaprint"): the queries [`super::evaluate`]
/// draws for the same sources, seed, conditions and lengths, an answer counted exact when it
/// names the right reference within `hop` samples of the truth. `nearest_distance` holds the
/// best placement's differing bits per word (of 32) instead of a vector distance.
pub fn evaluate(
    queries_from: &[Source],
    distractors: &[&Source],
    noise: &[&Source],
    opts: &super::EvalOptions,
    hop: usize,
    progress: &dyn Progress,
) -> Result<Vec<Row>> {
    let Some(rate) = queries_from.first().map(|s| s.rate) else {
        return Err(Error::Invalid("no reference audio to evaluate chromaprint on".into()));
    };
    let all: Vec<&Source> = queries_from.iter().chain(distractors.iter().copied()).collect();
    progress.stage(Stage::Fingerprinting);
    progress.set_total(all.len() as u64);
    let references = all
        .par_iter()
        .map(|s| {
            let w = words(&s.clean, rate.0);
            progress.advance(1);
            w
        })
        .collect::<Result<Vec<_>>>()?;
    super::check_lengths(queries_from, &opts.lengths, rate)?;
    let word_samples = word_seconds() * f64::from(rate.0);
    // Placements within a hop describe one alignment, as the main evaluator's voting has it.
    let apart = (hop as f64 / word_samples).floor() as usize;
    let total: usize = queries_from.iter().map(|s| s.clean.len()).sum();
    progress.stage(Stage::Evaluating);
    progress.set_total((opts.conditions.len() * opts.lengths.len() * opts.queries) as u64);
    let mut rows = Vec::new();
    for cname in &opts.conditions {
        let degrade = condition(cname)?;
        for &len_s in &opts.lengths {
            let len = (len_s * rate.0 as f32) as usize;
            let mut rng = query_rng(opts.seed, cname, len);
            let mut conv = Convolver::new();
            let queries: Vec<(usize, usize, Vec<f32>)> = (0..opts.queries)
                .map(|_| draw_query(&mut rng, &mut conv, queries_from, total, len, &degrade, noise))
                .collect::<Result<_>>()?;
            // Per query: Top-1 exact, Top-1 near, Top-3 exact, Top-10 exact, Top-1 same audio,
            // and the best placement's errors.
            let scored = queries
                .par_iter()
                .map(|(si, start, q)| {
                    let found = place(&words(q, rate.0)?, &references, ANSWERS, apart);
                    progress.advance(1);
                    let answers: Vec<(usize, f64)> =
                        found.iter().map(|p| (p.reference, p.word as f64 * word_samples)).collect();
                    let hit = judge(&answers, (*si, *start), len, hop, &all);
                    Ok((hit, found.first().map(|p| p.errors)))
                })
                .collect::<Result<Vec<_>>>()?;
            progress.check()?;
            let counts: [usize; 5] =
                std::array::from_fn(|k| scored.iter().filter(|(hit, _)| hit[k]).count());
            let errors: Vec<f32> = scored.iter().filter_map(|(_, e)| *e).collect();
            rows.push(Row::new("chromaprint", cname, len_s, opts.queries, &counts, errors));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// Chords that change every quarter second: music chromaprint can tell apart.
    fn music(seed: u64, seconds: usize) -> Vec<f32> {
        let rate = 8000;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(seconds * rate);
        for _ in 0..seconds * 4 {
            let notes: Vec<f32> =
                (0..3).map(|_| 220.0 * 2f32.powf(rng.random_range(0..24) as f32 / 12.0)).collect();
            for _ in 0..rate / 4 {
                let t = out.len() as f32 / rate as f32;
                let x: f32 = notes.iter().map(|f| (std::f32::consts::TAU * f * t).sin()).sum();
                out.push(0.2 * x);
            }
        }
        out
    }

    #[test]
    fn a_clip_is_placed_in_its_reference_at_its_offset() {
        let refs: Vec<Vec<f32>> = (0..3).map(|s| music(s, 30)).collect();
        let words_of: Vec<Vec<u32>> = refs.iter().map(|r| words(r, 8000).unwrap()).collect();
        // 6 s from 12.0 s of the second reference, a whole number of words in.
        let per_word = word_seconds() * 8000.0;
        let first = (12.0 * 8000.0 / per_word).round() as usize;
        let start = (first as f64 * per_word).round() as usize;
        let q = words(&refs[1][start..start + 6 * 8000], 8000).unwrap();
        assert!(!q.is_empty());
        let found = place(&q, &words_of, 3, 8);
        assert_eq!(found[0].reference, 1, "{found:?}");
        assert!(found[0].word.abs_diff(first) <= 1, "{found:?} vs word {first}");
        assert!(found[0].errors < 4.0, "{found:?}");
        // Another reference's best is near chance.
        assert!(found.iter().skip(1).all(|p| p.reference == 1 || p.errors > 8.0), "{found:?}");
    }

    #[test]
    fn a_one_second_clip_has_no_words_and_no_answer() {
        let q = words(&music(9, 1), 8000).unwrap();
        assert!(q.is_empty(), "{} words", q.len());
        assert!(place(&q, &[vec![0; 100]], 10, 8).is_empty());
    }

    #[test]
    fn placements_on_one_reference_keep_apart() {
        let r = vec![vec![0u32; 50]];
        let found = place(&[0, 0, 0], &r, 5, 8);
        assert_eq!(found.len(), 5);
        for (i, a) in found.iter().enumerate() {
            for b in &found[i + 1..] {
                assert!(a.word.abs_diff(b.word) > 8, "{found:?}");
            }
        }
    }
}
