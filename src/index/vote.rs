//! Sequence (offset) voting: per-segment nearest neighbours become answers.
//!
//! A query clip's segment `q` that matches segment `s` of a reference piece votes for the
//! alignment `offset = s - q`. Audio that really is reused gives many votes for one
//! (piece, offset) pair, noise scatters them. [`vote`] ranks alignments for a short clip;
//! [`regions`] finds every stretch of a long upload that follows one alignment, and
//! [`episode_regions`] does the same in episode time, so that a stretch running across the
//! boundary between two consecutive pieces of an episode is one region.
//!
//! Similarities are cosines, computed from the L2 distance of unit vectors as `1 - d²/2`. Query
//! and reference segments sit on grids that are shifted by an unknown fraction of the hop, so a
//! true alignment shows up at `offset` and `offset + 1`: every comparison of offsets allows a
//! tolerance of one segment, and counts each query segment at most once per candidate.
//!
//! That grid shift also costs similarity (a query segment a quarter hop off its reference
//! segment is a different second of audio), enough that a musically similar passage elsewhere
//! that happens to sit on the query's grid can outscore the truth. [`vote_phases`] votes with
//! copies of the query shifted by fractions of a hop and keeps the best-supported alignment:
//! one phase always lies within `hop / (2 x phases)` of the reference grid.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Hit;
use crate::fingerprint::Fingerprints;

/// One aligned reference for a query clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Reference piece id.
    pub piece: String,
    /// Reference segment minus query segment: query segment `q` lines up with segment
    /// `q + offset_segments` of the piece.
    pub offset_segments: i64,
    /// Sum over agreeing query segments of the best cosine similarity of an agreeing hit.
    pub score: f32,
    /// Query segments that agree.
    pub votes: u32,
    /// First agreeing query segment.
    pub first_q: u32,
    /// Last agreeing query segment.
    pub last_q: u32,
}

/// Offsets within this many segments of each other count as the same alignment.
const TOLERANCE: i64 = 1;

/// Rank the (piece, offset) alignments supported by `hits` (`hits[q]` are the nearest stored
/// segments of query segment `q`, in query order) and return the best `top`.
///
/// A candidate centred on offset `o` collects, for each query segment, its best hit at
/// `o - 1 ..= o + 1`. Candidates of one piece closer than two tolerances share their votes, so
/// only the best of them is kept.
pub fn vote(hits: &[Vec<Hit>], top: usize) -> Vec<Candidate> {
    // (piece, offset) -> best similarity per query segment, in query order.
    let mut support: HashMap<(&str, i64), Vec<(u32, f32)>> = HashMap::new();
    for (q, seg_hits) in hits.iter().enumerate() {
        let q = q as u32;
        for h in seg_hits {
            let offset = i64::from(h.segment) - i64::from(q);
            let list = support.entry((h.piece.as_str(), offset)).or_default();
            let sim = h.similarity();
            match list.last_mut() {
                Some((lq, best)) if *lq == q => *best = best.max(sim),
                _ => list.push((q, sim)),
            }
        }
    }

    struct Scored<'a> {
        piece: &'a str,
        offset: i64,
        score: f32,
        narrow: f32,
        votes: u32,
        first_q: u32,
        last_q: u32,
    }
    let mut scored: Vec<Scored<'_>> = Vec::with_capacity(support.len());
    let mut merged: Vec<(u32, f32)> = Vec::new();
    for (&(piece, offset), own) in &support {
        merged.clear();
        for o in offset - TOLERANCE..=offset + TOLERANCE {
            if let Some(list) = support.get(&(piece, o)) {
                merged.extend_from_slice(list);
            }
        }
        merged.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        merged.dedup_by_key(|e| e.0); // keeps the best similarity of each query segment
        let score = merged.iter().map(|e| e.1).sum();
        let narrow = own.iter().map(|e| e.1).sum();
        let (first_q, last_q) =
            (merged.first().map_or(0, |e| e.0), merged.last().map_or(0, |e| e.0));
        let votes = merged.len() as u32;
        scored.push(Scored { piece, offset, score, narrow, votes, first_q, last_q });
    }
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.narrow.total_cmp(&a.narrow))
            .then(b.votes.cmp(&a.votes))
            .then(a.piece.cmp(b.piece))
            .then(a.offset.cmp(&b.offset))
    });
    let mut out: Vec<Candidate> = Vec::with_capacity(top);
    for s in scored {
        if out.len() >= top {
            break;
        }
        let shadowed = out
            .iter()
            .any(|c| c.piece == s.piece && (c.offset_segments - s.offset).abs() <= 2 * TOLERANCE);
        if !shadowed {
            out.push(Candidate {
                piece: s.piece.to_owned(),
                offset_segments: s.offset,
                score: s.score,
                votes: s.votes,
                first_q: s.first_q,
                last_q: s.last_q,
            });
        }
    }
    out
}

/// Whether a clip's best alignment is settled enough to skip a wider second search: at least
/// two query segments, and `share` of the clip's `segments`, agree on it. An approximate
/// search that misses a clip's true neighbours leaves its votes scattered, so a clip with a
/// clear majority is very likely answered as the exact search would answer it.
pub fn settled(best: Option<&Candidate>, segments: usize, share: f32) -> bool {
    best.is_some_and(|c| c.votes >= 2 && c.votes as f32 >= segments as f32 * share)
}

/// One alignment from [`vote_phases`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhasedCandidate {
    /// The winning phase's candidate (its `offset_segments` is on that phase's grid).
    pub candidate: Candidate,
    /// Where the query's first sample lines up in the piece, in hops (fractional).
    pub offset_hops: f64,
    /// Mean similarity of support per query segment of the winning phase (segments without an
    /// agreeing hit count 0): comparable across phases with different segment counts.
    pub support: f32,
}

/// [`vote`] for phase-shifted copies of one query: `phases[i] = (shift, hits)`, where `shift`
/// is how far (in hops, `-1 < shift < 1`) the copy starts after the query (before it when
/// negative: a short clip's copy padded in front), and `hits[q]` are
/// the nearest stored segments of the copy's segment `q`. Alignments within a hop of a better
/// one on the same piece are dropped; the best `top` by [`PhasedCandidate::support`] return.
pub fn vote_phases(phases: &[(f64, Vec<Vec<Hit>>)], top: usize) -> Vec<PhasedCandidate> {
    let mut all: Vec<PhasedCandidate> = Vec::new();
    for (shift, hits) in phases {
        let n = hits.len().max(1) as f32;
        all.extend(vote(hits, top).into_iter().map(|c| PhasedCandidate {
            offset_hops: c.offset_segments as f64 - shift,
            support: c.score / n,
            candidate: c,
        }));
    }
    all.sort_by(|a, b| {
        b.support
            .total_cmp(&a.support)
            .then(b.candidate.votes.cmp(&a.candidate.votes))
            .then(a.candidate.piece.cmp(&b.candidate.piece))
            .then(a.offset_hops.total_cmp(&b.offset_hops))
    });
    let mut out: Vec<PhasedCandidate> = Vec::with_capacity(top);
    for c in all {
        if out.len() >= top {
            break;
        }
        let shadowed = out.iter().any(|k| {
            k.candidate.piece == c.candidate.piece && (k.offset_hops - c.offset_hops).abs() < 1.0
        });
        if !shadowed {
            out.push(c);
        }
    }
    out
}

/// The phase shift (in hops, as [`vote_phases`] takes it) of the hits a query copy shifted by
/// `shift` hops gets from a reference grid starting `grid` hops into each piece: a stored
/// segment `j` on it starts at `j + grid` hops, so its offsets read as if the copy had started
/// that much earlier. A denser reference grid is how a clip too short for later copies of its
/// own (a 1 s clip is one segment) still lands near a stored segment.
pub fn grid_shift(shift: f64, grid: f64) -> f64 {
    shift - grid
}

/// How many voted alignments [`verify`] is given: verification may promote one that voting
/// ranked low, so it sees more than the one or few answers asked for.
pub const VERIFY_CANDIDATES: usize = 10;

/// Re-rank voted alignments by checking them: for each candidate, every segment of the query
/// copy whose grid lies closest to the candidate's alignment is compared with the stored
/// segment the alignment puts it on, and the candidate's `support` becomes their mean cosine
/// similarity. Voting only sees each segment's top-k neighbours, so an alignment whose
/// segments narrowly miss the top-k (a noisy query, or an approximate search that skipped
/// them) scores low there; verification reads the reference directly and does not care how
/// the candidate was found. `phases[i] = (shift in hops, fingerprints)` as in
/// [`vote_phases`]. A piece may be stored on several grids, `grids[g]` hops into it (see
/// [`grid_shift`]; `&[0.0]` for the plain grid only); `reference(piece, g)` gives its vectors
/// on grid `g`, and the (copy, grid) pair whose segments line up best is read. Candidates whose piece
/// is unknown, or where fewer than half the query's segments land inside the piece, keep their
/// voted support. Sorted by the new support.
pub fn verify<'a>(
    mut cands: Vec<PhasedCandidate>,
    phases: &[(f64, &Fingerprints)],
    grids: &[f64],
    mut reference: impl FnMut(&str, usize) -> Option<&'a Fingerprints>,
) -> Vec<PhasedCandidate> {
    // Every (copy, grid) pair as one shift: a grid that sits later is the same as the copy
    // starting that much earlier. Copy-major, so that of two pairs equally
    // near the grid the earlier copy is read: a short clip's later copies are padded with
    // silence, and the unshifted copy on another grid holds all of the clip.
    let pairs: Vec<(f64, usize, &Fingerprints)> = phases
        .iter()
        .flat_map(|(s, f)| grids.iter().enumerate().map(move |(g, o)| (grid_shift(*s, *o), g, *f)))
        .collect();
    for c in &mut cands {
        // The first pair whose segments sit nearest to stored segment starts, among the grids
        // the piece is stored on (a catalog may hold older episodes on the plain grid only).
        let off = |s: f64| {
            let x = s + c.offset_hops;
            // Rounded so that pairs equally near compare equal and keep their order.
            ((x - x.round()).abs() * 1e6).round()
        };
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.sort_by(|a, b| off(pairs[*a].0).total_cmp(&off(pairs[*b].0)));
        let Some((shift, f, r)) = order.into_iter().find_map(|i| {
            let (shift, g, f) = pairs[i];
            reference(&c.candidate.piece, g).map(|r| (shift, f, r))
        }) else {
            continue;
        };
        let base = (shift + c.offset_hops).round() as i64;
        let (mut sum, mut n) = (0f32, 0usize);
        for q in 0..f.len() {
            let j = base + q as i64;
            if j < 0 || j as usize >= r.len() || f.dim != r.dim {
                continue;
            }
            sum += f.row(q).iter().zip(r.row(j as usize)).map(|(a, b)| a * b).sum::<f32>();
            n += 1;
        }
        if n > 0 && 2 * n >= f.len() {
            c.support = sum / n as f32;
        }
    }
    cands.sort_by(|a, b| {
        b.support.total_cmp(&a.support).then(a.candidate.piece.cmp(&b.candidate.piece))
    });
    cands
}

/// How [`regions`] and [`episode_regions`] chain segment hits into regions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionParams {
    /// Offsets (in segments) this close to a region's current offset extend it.
    pub tolerance: i64,
    /// Query segments without an agreeing hit that may lie inside one region.
    pub max_gap: u32,
    /// Regions with fewer agreeing query segments are dropped (4 segments at a 0.5 s hop: a
    /// 2.5 s stretch).
    pub min_segments: u32,
    /// Hits below this cosine similarity are ignored.
    pub min_similarity: f32,
    /// A region's first and last agreeing segments must reach this similarity; weaker ones at
    /// either end are trimmed off. A segment that only half overlaps the reuse (or is audio
    /// merely like the episode's next second) still clears `min_similarity`, which is kept low
    /// so a region holds together through noisy middles; its edges need more.
    pub edge_similarity: f32,
    /// Seconds between segment starts (query and reference).
    pub hop_s: f64,
    /// Seconds one segment spans.
    pub segment_s: f64,
}

impl Default for RegionParams {
    fn default() -> Self {
        Self {
            tolerance: 1,
            max_gap: 2,
            min_segments: 4,
            min_similarity: 0.0,
            edge_similarity: 0.0,
            hop_s: 0.5,
            segment_s: 1.0,
        }
    }
}

/// A stretch of the query that follows one alignment with one reference piece.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// Reference piece id.
    pub piece: String,
    /// Reference segment minus query segment (the most supported offset of the stretch).
    pub offset_segments: i64,
    /// First query segment of the stretch.
    pub q_start: u32,
    /// Last query segment of the stretch (inclusive).
    pub q_end: u32,
    /// Mean cosine similarity of the agreeing hits.
    pub score: f32,
    /// Query segments with an agreeing hit.
    pub votes: u32,
}

/// Where a piece sits in its episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PiecePlacement {
    /// Episode id.
    pub episode: String,
    /// Start of the piece in the episode, seconds.
    pub start_s: f64,
}

/// A stretch of the query that follows one alignment with one episode, possibly across several
/// of its pieces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRegion {
    /// Episode id.
    pub episode: String,
    /// Episode time minus query time, seconds (sim-weighted over the agreeing hits).
    pub offset_s: f64,
    /// First query segment of the stretch.
    pub q_start: u32,
    /// Last query segment of the stretch (inclusive).
    pub q_end: u32,
    /// Start of the stretch in the query, seconds.
    pub query_start_s: f64,
    /// End of the stretch in the query, seconds (end of its last segment).
    pub query_end_s: f64,
    /// Start of the matched audio in the episode, seconds.
    pub episode_start_s: f64,
    /// End of the matched audio in the episode, seconds.
    pub episode_end_s: f64,
    /// Mean cosine similarity of the agreeing hits.
    pub score: f32,
    /// Query segments with an agreeing hit.
    pub votes: u32,
    /// The longest run of consecutive query segments with an agreeing hit.
    #[serde(default)]
    pub longest_run: u32,
    /// The pieces whose segments matched, in episode order.
    pub pieces: Vec<String>,
}

/// One agreeing hit: its query segment, similarity, grid offset, exact offset, piece.
#[derive(Clone, Copy, Debug)]
struct Obs {
    q: u32,
    track: u32,
    grid: i64,
    exact: f64,
    sim: f32,
    piece: u32,
}

#[derive(Debug)]
struct Run {
    track: u32,
    anchor: i64,
    last_q: u32,
    /// Best agreeing hit per query segment, in query order.
    obs: Vec<Obs>,
}

impl Run {
    fn first_q(&self) -> u32 {
        self.obs.first().map_or(0, |o| o.q)
    }

    /// The grid offset with the highest summed similarity.
    fn mode(&self) -> i64 {
        let mut by: HashMap<i64, f32> = HashMap::new();
        for o in &self.obs {
            *by.entry(o.grid).or_default() += o.sim;
        }
        by.into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map_or(self.anchor, |(g, _)| g)
    }

    fn absorb(&mut self, other: Run) {
        let mut all = std::mem::take(&mut self.obs);
        all.extend(other.obs);
        all.sort_by(|a, b| a.q.cmp(&b.q).then(b.sim.total_cmp(&a.sim)));
        all.dedup_by_key(|o| o.q);
        self.last_q = all.last().map_or(self.last_q, |o| o.q);
        self.obs = all;
    }
}

/// Chain per-query-segment observations into runs (the shared core of [`regions`] and
/// [`episode_regions`]). `per_q[q]` holds segment q's observations.
fn chain(per_q: &[Vec<Obs>], p: &RegionParams, merge_tolerance: i64) -> Vec<Run> {
    let tol = p.tolerance.max(0);
    let mut open: Vec<Run> = Vec::new();
    let mut closed: Vec<Run> = Vec::new();
    for (q, obs) in per_q.iter().enumerate() {
        let q = q as u32;
        let mut used = vec![false; obs.len()];
        for run in &mut open {
            let best = obs
                .iter()
                .enumerate()
                .filter(|(_, o)| o.track == run.track && (o.grid - run.anchor).abs() <= tol)
                .max_by(|a, b| a.1.sim.total_cmp(&b.1.sim));
            if let Some((i, o)) = best {
                used[i] = true;
                run.anchor = o.grid;
                run.last_q = q;
                run.obs.push(*o);
            }
        }
        // Unclaimed hits start runs, best first, one per (track, offset +- tolerance).
        let mut order: Vec<usize> = (0..obs.len()).filter(|&i| !used[i]).collect();
        order.sort_by(|&a, &b| obs[b].sim.total_cmp(&obs[a].sim));
        let fresh_from = open.len();
        for i in order {
            let o = obs[i];
            let dup = open[fresh_from..]
                .iter()
                .any(|r| r.track == o.track && (r.anchor - o.grid).abs() <= tol);
            if !dup {
                open.push(Run { track: o.track, anchor: o.grid, last_q: q, obs: vec![o] });
            }
        }
        // Runs that have gone quiet for longer than the gap allowance end here.
        let mut i = 0;
        while i < open.len() {
            if q.saturating_sub(open[i].last_q) > p.max_gap {
                closed.push(open.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }
    closed.append(&mut open);

    // Join runs of one track whose offsets agree and whose query spans touch or overlap
    // (a run interrupted by a longer dropout, or split where the offset jittered).
    closed.sort_by_key(|r| (r.track, r.first_q(), r.last_q));
    let mut joined: Vec<Run> = Vec::with_capacity(closed.len());
    for run in closed {
        let mode = run.mode();
        let target = joined.iter_mut().rev().take(64).find(|j| {
            j.track == run.track
                && run.first_q() <= j.last_q + p.max_gap + 1
                && (j.mode() - mode).abs() <= merge_tolerance
        });
        match target {
            Some(j) => j.absorb(run),
            None => joined.push(run),
        }
    }
    for run in &mut joined {
        let keep_from = run.obs.iter().position(|o| o.sim >= p.edge_similarity);
        let keep_to = run.obs.iter().rposition(|o| o.sim >= p.edge_similarity);
        match (keep_from, keep_to) {
            (Some(a), Some(b)) => {
                run.obs.truncate(b + 1);
                run.obs.drain(..a);
            }
            _ => run.obs.clear(),
        }
        run.last_q = run.obs.last().map_or(run.last_q, |o| o.q);
    }
    joined.retain(|r| !r.obs.is_empty() && r.obs.len() as u32 >= p.min_segments.max(1));
    joined.sort_by_key(|r| (r.first_q(), r.track, r.last_q));
    joined
}

/// Find every stretch of a long query that reuses one reference piece at one alignment.
///
/// `hits[q]` are the nearest stored segments of query segment `q`. Consecutive query segments
/// whose hits agree on (piece, offset +- tolerance) form a run; up to `max_gap` segments without
/// an agreeing hit may interrupt it; runs of one piece and offset that touch are merged; runs
/// with fewer than `min_segments` agreeing segments are dropped. A clip reused twice gives two
/// regions (two offsets), two episodes back to back give two regions (two pieces). Sorted by
/// start.
pub fn regions(hits: &[Vec<Hit>], params: &RegionParams) -> Vec<Region> {
    let mut pieces: Vec<&str> = Vec::new();
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let per_q: Vec<Vec<Obs>> = hits
        .iter()
        .enumerate()
        .map(|(q, hs)| {
            hs.iter()
                .filter(|h| h.similarity() >= params.min_similarity)
                .map(|h| {
                    let id = *ids.entry(h.piece.as_str()).or_insert_with(|| {
                        pieces.push(h.piece.as_str());
                        pieces.len() as u32 - 1
                    });
                    let grid = i64::from(h.segment) - q as i64;
                    Obs {
                        q: q as u32,
                        track: id,
                        grid,
                        exact: grid as f64,
                        sim: h.similarity(),
                        piece: id,
                    }
                })
                .collect()
        })
        .collect();
    chain(&per_q, params, params.tolerance)
        .into_iter()
        .map(|r| Region {
            piece: pieces[r.track as usize].to_owned(),
            offset_segments: r.mode(),
            q_start: r.first_q(),
            q_end: r.last_q,
            score: mean_sim(&r),
            votes: r.obs.len() as u32,
        })
        .collect()
}

/// [`regions`] in episode time: `place(piece)` says which episode a piece belongs to and where
/// it starts (`None`: the piece is unknown, its hits are ignored). Hits from consecutive pieces
/// of one episode that agree on the episode-time offset form one region, so reuse running
/// across a piece boundary is reported once. Offsets are compared on the hop grid (piece starts
/// need not be multiples of the hop: the exact offset is the sim-weighted mean over the hits).
pub fn episode_regions(
    hits: &[Vec<Hit>],
    params: &RegionParams,
    mut place: impl FnMut(&str) -> Option<PiecePlacement>,
) -> Vec<EpisodeRegion> {
    let hop = if params.hop_s > 0.0 { params.hop_s } else { 0.5 };
    let mut episodes: Vec<String> = Vec::new();
    let mut pieces: Vec<(String, f64)> = Vec::new();
    // piece -> (piece index, episode index, start) or None if unknown.
    let mut placed: HashMap<String, Option<(u32, u32, f64)>> = HashMap::new();
    let mut per_q: Vec<Vec<Obs>> = Vec::with_capacity(hits.len());
    for (q, hs) in hits.iter().enumerate() {
        let mut obs = Vec::with_capacity(hs.len());
        for h in hs.iter().filter(|h| h.similarity() >= params.min_similarity) {
            let slot = match placed.get(&h.piece) {
                Some(slot) => *slot,
                None => {
                    let slot = place(&h.piece).map(|pl| {
                        let e = match episodes.iter().position(|e| *e == pl.episode) {
                            Some(e) => e,
                            None => {
                                episodes.push(pl.episode);
                                episodes.len() - 1
                            }
                        };
                        pieces.push((h.piece.clone(), pl.start_s));
                        (pieces.len() as u32 - 1, e as u32, pl.start_s)
                    });
                    placed.insert(h.piece.clone(), slot);
                    slot
                }
            };
            let Some((piece, episode, start)) = slot else { continue };
            let exact = start + f64::from(h.segment) * hop - q as f64 * hop;
            obs.push(Obs {
                q: q as u32,
                track: episode,
                grid: (exact / hop).round() as i64,
                exact,
                sim: h.similarity(),
                piece,
            });
        }
        per_q.push(obs);
    }
    // Piece grids are shifted against each other by a fraction of the hop: rounding to the
    // common grid can move a hit by one more step, so joining runs allows one step more.
    chain(&per_q, params, params.tolerance + 1)
        .into_iter()
        .map(|r| {
            let mode = r.mode();
            let near: Vec<&Obs> =
                r.obs.iter().filter(|o| (o.grid - mode).abs() <= params.tolerance + 1).collect();
            let weight: f64 = near.iter().map(|o| f64::from(o.sim.max(1e-6))).sum();
            let offset_s = if weight > 0.0 {
                near.iter().map(|o| o.exact * f64::from(o.sim.max(1e-6))).sum::<f64>() / weight
            } else {
                mode as f64 * hop
            };
            let mut used: Vec<u32> = r.obs.iter().map(|o| o.piece).collect();
            used.sort_by(|a, b| pieces[*a as usize].1.total_cmp(&pieces[*b as usize].1));
            used.dedup();
            let (q_start, q_end) = (r.first_q(), r.last_q);
            let query_start_s = f64::from(q_start) * hop;
            let query_end_s = f64::from(q_end) * hop + params.segment_s;
            EpisodeRegion {
                episode: episodes[r.track as usize].clone(),
                offset_s,
                q_start,
                q_end,
                query_start_s,
                query_end_s,
                episode_start_s: query_start_s + offset_s,
                episode_end_s: query_end_s + offset_s,
                score: mean_sim(&r),
                votes: r.obs.len() as u32,
                longest_run: longest_run(&r),
                pieces: used.into_iter().map(|p| pieces[p as usize].0.clone()).collect(),
            }
        })
        .collect()
}

/// The longest run of consecutive query segments among a run's hits.
fn longest_run(r: &Run) -> u32 {
    let mut qs: Vec<u32> = r.obs.iter().map(|o| o.q).collect();
    qs.sort_unstable();
    qs.dedup();
    let (mut best, mut cur) = (0, 0);
    for (i, &q) in qs.iter().enumerate() {
        cur = if i > 0 && qs[i - 1] + 1 == q { cur + 1 } else { 1 };
        best = best.max(cur);
    }
    best
}

fn mean_sim(r: &Run) -> f32 {
    if r.obs.is_empty() {
        0.0
    } else {
        r.obs.iter().map(|o| o.sim).sum::<f32>() / r.obs.len() as f32
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hit(piece: &str, segment: u32, sim: f32) -> Hit {
        // sim = 1 - d^2/2  =>  d = sqrt(2 (1 - sim))
        Hit { item: 0, piece: piece.into(), segment, distance: (2.0 * (1.0 - sim)).max(0.0).sqrt() }
    }

    /// Unit vectors: `n` rows of width 4, row `i` along axis `i % 4` with a little of the
    /// next axis so neighbours differ.
    fn unit_rows(n: usize, salt: usize) -> Fingerprints {
        let mut data = Vec::with_capacity(n * 4);
        for i in 0..n {
            let mut v = [0f32; 4];
            v[(i + salt) % 4] = 1.0;
            v[(i + salt + 1) % 4] = 0.2;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            data.extend(v.iter().map(|x| x / norm));
        }
        Fingerprints { dim: 4, data }
    }

    fn cand(piece: &str, offset_hops: f64, support: f32) -> PhasedCandidate {
        PhasedCandidate {
            candidate: Candidate {
                piece: piece.into(),
                offset_segments: offset_hops.round() as i64,
                score: support,
                votes: 1,
                first_q: 0,
                last_q: 0,
            },
            offset_hops,
            support,
        }
    }

    #[test]
    fn verification_promotes_the_alignment_whose_segments_all_agree() {
        // The query is segments 10..16 of "truth"; voting ranked a look-alike first.
        let truth = unit_rows(40, 0);
        let other = unit_rows(40, 2);
        let query = Fingerprints { dim: 4, data: truth.data[10 * 4..16 * 4].to_vec() };
        let cands = vec![cand("other", 3.0, 0.9), cand("truth", 10.0, 0.5), cand("gone", 1.0, 0.4)];
        let refs = |p: &str| match p {
            "truth" => Some(&truth),
            "other" => Some(&other),
            _ => None,
        };
        let out = verify(cands, &[(0.0, &query)], &[0.0], |p, _| refs(p));
        assert_eq!(out[0].candidate.piece, "truth");
        assert!((out[0].support - 1.0).abs() < 1e-5, "{}", out[0].support);
        assert!(out[1].support < 0.9);
        // Unknown pieces keep their voted support.
        assert_eq!(out.iter().find(|c| c.candidate.piece == "gone").unwrap().support, 0.4);
    }

    #[test]
    fn verification_uses_the_phase_nearest_the_grid_and_ignores_half_outside_alignments() {
        let truth = unit_rows(20, 0);
        let query = Fingerprints { dim: 4, data: truth.data[4 * 4..10 * 4].to_vec() };
        let wrong = unit_rows(6, 1);
        // Alignment 4.5 hops: the copy shifted by 0.5 hop lands on the grid (4.5 + 0.5 = 5), so
        // that copy is read; give it the true segments 5..11.
        let shifted = Fingerprints { dim: 4, data: truth.data[5 * 4..11 * 4].to_vec() };
        let out =
            verify(vec![cand("t", 4.5, 0.1)], &[(0.0, &wrong), (0.5, &shifted)], &[0.0], |_, _| {
                Some(&truth)
            });
        assert!((out[0].support - 1.0).abs() < 1e-5);
        // Mostly past the piece's end: keeps the voted support.
        let out = verify(vec![cand("t", 18.0, 0.3)], &[(0.0, &query)], &[0.0], |_, _| Some(&truth));
        assert_eq!(out[0].support, 0.3);
        let _ = query;
    }

    #[test]
    fn verification_reads_the_reference_grid_nearest_the_alignment() {
        // Grid 1 of "t" starts half a hop in: its segment j is the true segment j + 0.5.
        let grid0 = unit_rows(20, 0);
        let grid1 = unit_rows(20, 3);
        // The query is grid 1's segments 4..8: it starts 4.5 hops into the piece.
        let query = Fingerprints { dim: 4, data: grid1.data[4 * 4..8 * 4].to_vec() };
        let refs = |_: &str, g: usize| Some(if g == 1 { &grid1 } else { &grid0 });
        let out = verify(vec![cand("t", 4.5, 0.1)], &[(0.0, &query)], &[0.0, 0.5], refs);
        assert!((out[0].support - 1.0).abs() < 1e-5, "{}", out[0].support);
        // On the plain grid only, the same alignment reads grid 0 and does not agree.
        let out = verify(vec![cand("t", 4.5, 0.1)], &[(0.0, &query)], &[0.0], refs);
        assert!(out[0].support < 0.9, "{}", out[0].support);
        // A padded later copy exactly on grid 0 loses to the unshifted copy on grid 1 (equally
        // near): the earlier copy is read.
        let padded = unit_rows(4, 1);
        let out =
            verify(vec![cand("t", 4.5, 0.1)], &[(0.0, &query), (0.5, &padded)], &[0.0, 0.5], refs);
        assert!((out[0].support - 1.0).abs() < 1e-5, "{}", out[0].support);
        // A piece missing from grid 1 (ingested before it existed) is read on grid 0.
        let only_plain = |_: &str, g: usize| (g == 0).then_some(&grid0);
        let query0 = Fingerprints { dim: 4, data: grid0.data[4 * 4..8 * 4].to_vec() };
        let out = verify(vec![cand("t", 4.0, 0.1)], &[(0.0, &query0)], &[0.0, 0.5], only_plain);
        assert!((out[0].support - 1.0).abs() < 1e-5, "{}", out[0].support);
        let out = verify(vec![cand("t", 4.5, 0.1)], &[(0.0, &query0)], &[0.0, 0.5], only_plain);
        assert!(out[0].support != 0.1, "verified on grid 0, not left as voted");
        assert_eq!(grid_shift(0.25, 0.5), -0.25);
        assert_eq!(grid_shift(0.25, 0.0), 0.25);
    }

    /// A tiny deterministic generator for distractor hits.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    /// `nq` query segments, each with `noise` random distractors from 500 pieces, plus the
    /// planted matches `(q range, piece, reference segment of the range's first q)`.
    fn upload(
        nq: u32,
        noise: usize,
        planted: &[(std::ops::RangeInclusive<u32>, &str, u32)],
    ) -> Vec<Vec<Hit>> {
        let mut rng = Lcg(nq as u64);
        (0..nq)
            .map(|q| {
                let mut hs: Vec<Hit> = (0..noise)
                    .map(|_| {
                        let p = format!("noise{:03}-000000000", rng.next() % 500);
                        hit(&p, (rng.next() % 359) as u32, 0.2 + (rng.next() % 40) as f32 / 100.0)
                    })
                    .collect();
                for (range, piece, seg0) in planted {
                    if range.contains(&q) {
                        let jitter = (rng.next() % 2) as u32; // half-hop grid shift
                        hs.push(hit(piece, seg0 + (q - range.start()) + jitter, 0.85));
                    }
                }
                hs.sort_by(|a, b| a.distance.total_cmp(&b.distance));
                hs
            })
            .collect()
    }

    #[test]
    fn vote_finds_clip() {
        let hits = upload(5, 9, &[(0..=4, "ep1-000000000", 100)]);
        let c = &vote(&hits, 3)[0];
        assert_eq!(c.piece, "ep1-000000000");
        assert!((c.offset_segments - 100).abs() <= 1);
        assert_eq!((c.votes, c.first_q, c.last_q), (5, 0, 4));
        assert!(vote(&[], 3).is_empty());
    }

    #[test]
    fn phases_prefer_the_aligned_copy_and_report_a_fractional_offset() {
        // Phase 0 sits between grid points of the truth (mediocre similarity) and exactly on a
        // similar passage elsewhere; phase 0.5 lines up with the truth.
        let seg = |piece: &str, s0: u32, sim: f32, n: u32| -> Vec<Vec<Hit>> {
            (0..n).map(|q| vec![hit(piece, s0 + q, sim)]).collect()
        };
        let mut p0 = seg("truth-000000000", 40, 0.90, 5);
        for (q, h) in seg("other-000000000", 7, 0.93, 5).into_iter().enumerate() {
            p0[q].extend(h);
        }
        let p1 = seg("truth-000000000", 41, 0.99, 4);
        let out = vote_phases(&[(0.0, p0.clone()), (0.5, p1)], 5);
        assert_eq!(out[0].candidate.piece, "truth-000000000");
        assert!((out[0].offset_hops - 40.5).abs() < 1e-9);
        assert!(out[0].support > 0.98);
        // The truth's phase-0 alignment is within a hop of the winner: shadowed, not repeated.
        assert_eq!(out.iter().filter(|c| c.candidate.piece == "truth-000000000").count(), 1);
        // One phase alone is plain voting.
        let one = vote_phases(&[(0.0, p0)], 5);
        assert_eq!(one[0].candidate.piece, "other-000000000");
        assert!(vote_phases(&[], 3).is_empty());
    }

    #[test]
    fn weak_edges_are_trimmed_off_a_region() {
        // Segments 0..10 follow one alignment; the first and last two are weak (half-overlap).
        let hits: Vec<Vec<Hit>> = (0..10u32)
            .map(|q| {
                let sim = if (2..8).contains(&q) { 0.95 } else { 0.6 };
                vec![hit("ep1-000000000", 50 + q, sim)]
            })
            .collect();
        let loose = regions(&hits, &params());
        assert_eq!(spans(&loose), vec![("ep1-000000000", 50, 0, 9)]);
        let strict = RegionParams { edge_similarity: 0.7, ..params() };
        assert_eq!(spans(&regions(&hits, &strict)), vec![("ep1-000000000", 50, 2, 7)]);
        // Nothing strong enough: no region.
        let none = RegionParams { edge_similarity: 0.99, ..params() };
        assert!(regions(&hits, &none).is_empty());
    }

    fn params() -> RegionParams {
        RegionParams { min_segments: 4, ..RegionParams::default() }
    }

    fn spans(rs: &[Region]) -> Vec<(&str, i64, u32, u32)> {
        rs.iter().map(|r| (r.piece.as_str(), r.offset_segments, r.q_start, r.q_end)).collect()
    }

    #[test]
    fn regions_at_start_and_end() {
        let hits = upload(60, 10, &[(0..=9, "A-000000000", 50), (48..=59, "B-000000000", 0)]);
        let rs = regions(&hits, &params());
        assert_eq!(rs.len(), 2, "{rs:?}");
        assert_eq!((rs[0].piece.as_str(), rs[0].q_start, rs[0].q_end), ("A-000000000", 0, 9));
        assert!((rs[0].offset_segments - 50).abs() <= 1);
        assert_eq!((rs[1].piece.as_str(), rs[1].q_start, rs[1].q_end), ("B-000000000", 48, 59));
        assert!((rs[1].offset_segments + 48).abs() <= 1);
        assert!(rs.iter().all(|r| r.score > 0.8 && r.votes == r.q_end - r.q_start + 1));
    }

    #[test]
    fn same_clip_twice_gives_two_regions() {
        let hits = upload(80, 10, &[(5..=15, "A-000000000", 100), (40..=50, "A-000000000", 100)]);
        let rs = regions(&hits, &params());
        let got: Vec<(u32, u32)> = rs.iter().map(|r| (r.q_start, r.q_end)).collect();
        assert_eq!(got, vec![(5, 15), (40, 50)], "{rs:?}");
        assert!((rs[0].offset_segments - 95).abs() <= 1);
        assert!((rs[1].offset_segments - 60).abs() <= 1);
    }

    #[test]
    fn back_to_back_episodes() {
        let hits = upload(40, 10, &[(0..=19, "A-000000000", 10), (20..=39, "B-000000000", 200)]);
        let rs = regions(&hits, &params());
        let got: Vec<(&str, u32, u32)> =
            rs.iter().map(|r| (r.piece.as_str(), r.q_start, r.q_end)).collect();
        assert_eq!(got, vec![("A-000000000", 0, 19), ("B-000000000", 20, 39)], "{rs:?}");
    }

    #[test]
    fn gaps_are_bridged_up_to_the_limit() {
        // Two missing segments inside: one region. Five missing: two regions.
        let mut hits = upload(30, 6, &[(0..=29, "A-000000000", 0)]);
        for q in [10, 11] {
            hits[q].retain(|h| h.piece != "A-000000000");
        }
        assert_eq!(spans(&regions(&hits, &params())).len(), 1);
        for hs in &mut hits[12..15] {
            hs.retain(|h| h.piece != "A-000000000");
        }
        let rs = regions(&hits, &params());
        let got: Vec<(u32, u32)> = rs.iter().map(|r| (r.q_start, r.q_end)).collect();
        assert_eq!(got, vec![(0, 9), (15, 29)], "{rs:?}");
    }

    #[test]
    fn short_runs_are_dropped() {
        let hits = upload(30, 10, &[(10..=12, "A-000000000", 0)]);
        assert!(regions(&hits, &params()).is_empty());
        let p = RegionParams { min_segments: 3, ..params() };
        assert_eq!(regions(&hits, &p).len(), 1);
    }

    #[test]
    fn episode_regions_cross_piece_boundaries() {
        // Episode E: piece 0 starts at 0 s (359 segments), piece 1 at 179.73 s. The upload
        // reuses episode time 170 s .. 190 s from its 4th second on.
        let hop = 0.5;
        let p1_start = 179.73;
        let mut hits = upload(50, 8, &[]);
        for q in 8..48u32 {
            let t = 170.0 + f64::from(q - 8) * hop; // episode time of query segment q
            let (piece, seg) = if t + 1.0 <= 179.5 {
                ("E-000000000", (t / hop).round() as u32)
            } else if t >= p1_start {
                ("E-000179730", ((t - p1_start) / hop).round() as u32)
            } else {
                continue; // straddles the cut: no good match in either piece
            };
            hits[q as usize].insert(0, hit(piece, seg, 0.9));
        }
        let place = |p: &str| match p {
            "E-000000000" => Some(PiecePlacement { episode: "E".into(), start_s: 0.0 }),
            "E-000179730" => Some(PiecePlacement { episode: "E".into(), start_s: p1_start }),
            _ => None,
        };
        let piecewise = regions(&hits, &params());
        assert_eq!(piecewise.len(), 2, "{piecewise:?}");
        let rs = episode_regions(&hits, &params(), place);
        assert_eq!(rs.len(), 1, "{rs:?}");
        let r = &rs[0];
        assert_eq!((r.episode.as_str(), r.q_start, r.q_end), ("E", 8, 47));
        assert_eq!(r.pieces, vec!["E-000000000".to_string(), "E-000179730".to_string()]);
        assert!((r.offset_s - 166.0).abs() <= 0.5, "{}", r.offset_s);
        assert!((r.query_start_s - 4.0).abs() < 1e-9 && (r.query_end_s - 24.5).abs() < 1e-9);
        assert!((r.episode_start_s - 170.0).abs() <= 0.5);
        // Segments 26 and 27 straddle the cut: 38 votes, the longest run 28..=47.
        assert_eq!((r.votes, r.longest_run), (38, 20));
    }

    #[test]
    fn unknown_pieces_are_ignored_in_episode_time() {
        let hits = upload(20, 10, &[(0..=19, "A-000000000", 0)]);
        assert!(episode_regions(&hits, &params(), |_| None).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// A planted alignment wins over random distractors, even when some segments miss it.
        #[test]
        fn vote_recovers_planted_offset(
            nq in 5u32..40,
            offset in 0u32..300,
            k in 1usize..12,
            seed in any::<u64>(),
            present in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let mut rng = Lcg(seed);
            let mut hits: Vec<Vec<Hit>> = Vec::new();
            let mut planted = 0;
            for q in 0..nq {
                let mut hs: Vec<Hit> = (0..k).map(|_| {
                    let p = format!("p{:03}-000000000", rng.next() % 200);
                    hit(&p, (rng.next() % 400) as u32, (rng.next() % 70) as f32 / 100.0)
                }).collect();
                // At least 3 and at least 60% of the segments carry the true hit.
                if present[q as usize] || planted < 3 || planted * 5 < (q + 1) * 3 {
                    planted += 1;
                    let seg = q + offset + (rng.next() % 2) as u32;
                    hs.push(hit("true-000000000", seg, 0.7 + (rng.next() % 30) as f32 / 100.0));
                }
                hits.push(hs);
            }
            let c = &vote(&hits, 5)[0];
            prop_assert_eq!(c.piece.as_str(), "true-000000000");
            prop_assert!((c.offset_segments - i64::from(offset)).abs() <= 1);
            prop_assert_eq!(c.votes, planted);
        }

        /// Pure noise never builds a candidate with more than 4 agreeing segments.
        #[test]
        fn vote_rejects_noise(nq in 1u32..40, k in 1usize..10, seed in any::<u64>()) {
            let mut rng = Lcg(seed);
            let hits: Vec<Vec<Hit>> = (0..nq).map(|_| (0..k).map(|_| {
                let p = format!("p{:03}-000000000", rng.next() % 200);
                hit(&p, (rng.next() % 400) as u32, (rng.next() % 100) as f32 / 100.0)
            }).collect()).collect();
            let cands = vote(&hits, 10);
            prop_assert!(cands.iter().all(|c| c.votes <= 4), "{:?}", cands.first());
            prop_assert!(regions(&hits, &params()).is_empty());
        }
    }
}
