//! Cutting long audio into pieces (the curation unit) at quiet points, streaming: the cropper
//! holds at most one piece plus the search window and the minimum tail, never the whole file.
//!
//! Each boundary is placed at the centre of the quietest `window` (100 ms) within `search`
//! (+-10 s) of the nominal boundary, so no piece starts mid-word; a last remainder shorter than
//! `min_last` (30 s) merges into the previous piece.

use serde::{Deserialize, Serialize};

use crate::units::{SampleRate, Samples, Seconds};

/// Cropping settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CropConfig {
    /// Nominal piece length.
    pub piece: Seconds,
    /// How far from the nominal boundary a cut may move.
    pub search: Seconds,
    /// Length of the window whose energy picks the cut.
    pub window: Seconds,
    /// A last remainder shorter than this merges into the previous piece.
    pub min_last: Seconds,
}

impl Default for CropConfig {
    fn default() -> Self {
        Self {
            piece: Seconds(180.0),
            search: Seconds(10.0),
            window: Seconds(0.1),
            min_last: Seconds(30.0),
        }
    }
}

/// A piece cut from the stream: where it lies and its (mono) samples.
#[derive(Debug, Clone, PartialEq)]
pub struct CutPiece {
    /// First sample (inclusive), at the cropper's rate.
    pub start: Samples,
    /// Last sample (exclusive).
    pub end: Samples,
    /// The piece's audio.
    pub samples: Vec<f32>,
}

/// Streaming cropper over mono samples.
#[derive(Debug)]
pub struct Cropper {
    piece: usize,
    search: usize,
    window: usize,
    step: usize,
    min_last: usize,
    /// Samples from `buf_start` on.
    buf: Vec<f32>,
    buf_start: u64,
}

impl Cropper {
    /// A cropper for audio at `rate`.
    pub fn new(cfg: CropConfig, rate: SampleRate) -> Self {
        let n = |s: Seconds| rate.samples(s).0 as usize;
        let window = n(cfg.window).max(1);
        Self {
            piece: n(cfg.piece).max(1),
            search: n(cfg.search).min(n(cfg.piece) / 2),
            window,
            // 10 ms steps: fine enough to land in a pause between words.
            step: (window / 10).max(1),
            min_last: n(cfg.min_last),
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// Feed mono samples; returns the pieces that are now final.
    pub fn push(&mut self, samples: &[f32]) -> Vec<CutPiece> {
        self.buf.extend_from_slice(samples);
        let mut out = Vec::new();
        // A cut near piece+search is final only once min_last more samples prove it is no tail.
        while self.buf.len() >= self.piece + self.search + self.min_last.max(self.window) {
            let cut = self.best_cut(self.piece + self.search);
            out.push(self.emit(cut));
        }
        out
    }

    /// End of stream: the remaining pieces.
    pub fn finish(mut self) -> Vec<CutPiece> {
        let mut out = Vec::new();
        // The remainder after the nominal boundary decides: under min_last it merges.
        while self.buf.len() >= self.piece + self.min_last.max(1) {
            let cut = self.best_cut(self.buf.len() - self.min_last.max(self.window));
            out.push(self.emit(cut));
        }
        if !self.buf.is_empty() {
            let len = self.buf.len();
            out.push(self.emit(len));
        }
        out
    }

    /// Quietest window centre within +-search of the nominal boundary, at most `max_cut`.
    fn best_cut(&self, max_cut: usize) -> usize {
        let lo = self.piece.saturating_sub(self.search).max(self.window);
        let hi = (self.piece + self.search).min(max_cut);
        if hi <= lo {
            return self.piece.min(max_cut).max(1);
        }
        // Running sum of squares over the window, sliding by `step`.
        let energy = |start: usize| -> f64 {
            self.buf[start..start + self.window].iter().map(|&x| f64::from(x) * f64::from(x)).sum()
        };
        let mut best = (f64::INFINITY, self.piece);
        let mut pos = lo - self.window / 2;
        while pos + self.window / 2 <= hi {
            let e = energy(pos);
            let centre = pos + self.window / 2;
            // Ties go to the cut nearest the nominal boundary.
            let closer = centre.abs_diff(self.piece) < best.1.abs_diff(self.piece);
            if e < best.0 - 1e-12 || ((e - best.0).abs() <= 1e-12 && closer) {
                best = (e, centre);
            }
            pos += self.step;
        }
        best.1
    }

    fn emit(&mut self, cut: usize) -> CutPiece {
        let rest = self.buf.split_off(cut);
        let samples = std::mem::replace(&mut self.buf, rest);
        let start = self.buf_start;
        self.buf_start += cut as u64;
        CutPiece { start: Samples(start), end: Samples(self.buf_start), samples }
    }
}

/// Crop a whole buffer at once (tests and short files).
pub fn crop(samples: &[f32], rate: SampleRate, cfg: CropConfig) -> Vec<CutPiece> {
    let mut c = Cropper::new(cfg, rate);
    let mut out = c.push(samples);
    out.extend(c.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: SampleRate = SampleRate(1000);

    fn cfg() -> CropConfig {
        CropConfig {
            piece: Seconds(180.0),
            search: Seconds(10.0),
            window: Seconds(0.1),
            min_last: Seconds(30.0),
        }
    }

    /// Loud noise-like signal with quiet gaps at the given seconds.
    fn signal(len_s: f64, quiet_at: &[f64]) -> Vec<f32> {
        let n = SR.samples(Seconds(len_s)).0 as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / 1000.0;
                if quiet_at.iter().any(|q| (t - q).abs() < 0.1) {
                    0.0
                } else {
                    ((i * 7919) % 101) as f32 / 101.0 - 0.5
                }
            })
            .collect()
    }

    #[test]
    fn cuts_in_the_quiet_gap_near_the_boundary() {
        let pieces = crop(&signal(400.0, &[184.0, 362.0]), SR, cfg());
        let bounds: Vec<u64> = pieces.iter().map(|p| p.end.0).collect();
        assert_eq!(pieces.len(), 3, "{bounds:?}");
        assert!((184_000i64 - bounds[0] as i64).abs() <= 60, "{bounds:?}");
        assert!((362_000i64 - bounds[1] as i64).abs() <= 60, "{bounds:?}");
        assert_eq!(bounds[2], 400_000);
    }

    #[test]
    fn short_remainder_merges_into_previous_piece() {
        let pieces = crop(&signal(200.0, &[]), SR, cfg());
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].end, Samples(200_000));
    }

    #[test]
    fn long_remainder_stays_a_piece() {
        let pieces = crop(&signal(240.0, &[]), SR, cfg());
        assert_eq!(pieces.len(), 2);
        assert!(pieces[1].end.0 - pieces[1].start.0 >= 30_000);
    }

    #[test]
    fn short_file_is_one_piece() {
        let pieces = crop(&signal(8.0, &[]), SR, cfg());
        assert_eq!(pieces.len(), 1);
        assert_eq!((pieces[0].start, pieces[0].end), (Samples(0), Samples(8000)));
    }

    #[test]
    fn streaming_equals_whole() {
        let sig = signal(700.0, &[175.0, 365.0, 540.0]);
        let whole = crop(&sig, SR, cfg());
        let mut c = Cropper::new(cfg(), SR);
        let mut streamed = Vec::new();
        for chunk in sig.chunks(4321) {
            streamed.extend(c.push(chunk));
        }
        streamed.extend(c.finish());
        assert_eq!(whole, streamed);
        // Contiguous and complete.
        assert_eq!(streamed[0].start, Samples(0));
        for w in streamed.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert_eq!(streamed.last().map(|p| p.end), Some(Samples(700_000)));
    }
}
