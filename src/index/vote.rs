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

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Hit;

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
        let shadowed = out.iter().any(|c| {
            c.piece == s.piece && (c.offset_segments - s.offset).abs() <= 2 * TOLERANCE
        });
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
    joined.retain(|r| r.obs.len() as u32 >= p.min_segments.max(1));
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
                    Obs { q: q as u32, track: id, grid, exact: grid as f64, sim: h.similarity(), piece: id }
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
                pieces: used.into_iter().map(|p| pieces[p as usize].0.clone()).collect(),
            }
        })
        .collect()
}

fn mean_sim(r: &Run) -> f32 {
    if r.obs.is_empty() { 0.0 } else { r.obs.iter().map(|o| o.sim).sum::<f32>() / r.obs.len() as f32 }
}
