//! Short-time Fourier transform and its inverse, with librosa's conventions: periodic Hann
//! window, `center=True` with zero ("constant") padding, frames hop by `hop` samples, and the
//! inverse is a windowed overlap-add divided by the window sum-square
//! (<https://librosa.org/doc/0.11.0/generated/librosa.stft.html>,
//! <https://librosa.org/doc/0.11.0/generated/librosa.istft.html>).
//!
//! Forward transforms use a real-input FFT (realfft), so a frame of `n_fft` samples costs one
//! complex FFT of `n_fft / 2` points. Per-call scratch lives in a thread-local buffer, so
//! [`Stft`] is `Send + Sync` and its hot methods allocate nothing once warmed up.

use std::cell::RefCell;
use std::f64::consts::PI;
use std::fmt;
use std::sync::Arc;

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// Single-precision complex number (rustfft's, re-exported).
pub type Complex32 = rustfft::num_complex::Complex<f32>;

/// Periodic Hann window of length `n`: `0.5 - 0.5 cos(2 pi i / n)`.
///
/// This is `scipy.signal.get_window("hann", n, fftbins=True)`, the window librosa uses. As in
/// scipy, `n == 1` gives `[1.0]` and `n == 0` an empty window.
pub fn hann_window(n: usize) -> Vec<f32> {
    if n <= 1 {
        return vec![1.0; n];
    }
    (0..n).map(|i| (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()) as f32).collect()
}

/// Reusable buffers for one thread's transforms; resized to whatever plan uses them.
#[derive(Default)]
struct Scratch {
    /// One windowed time frame (the FFT input, overwritten by it).
    frame: Vec<f32>,
    /// One frame's spectrum, `n_bins` values.
    spectrum: Vec<Complex32>,
    /// The FFT's own scratch.
    fft: Vec<Complex32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A planned STFT of a fixed size: `n_fft`-point frames, `hop` samples apart, Hann-windowed.
///
/// Build one per configuration and reuse it: construction plans the FFTs, the transforms only
/// run them.
#[derive(Clone)]
pub struct Stft {
    n_fft: usize,
    hop: usize,
    window: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

impl fmt::Debug for Stft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stft").field("n_fft", &self.n_fft).field("hop", &self.hop).finish()
    }
}

impl Stft {
    /// Plan an STFT with a periodic Hann window of `n_fft` samples.
    ///
    /// # Panics
    ///
    /// If `n_fft` or `hop` is zero.
    pub fn new(n_fft: usize, hop: usize) -> Self {
        assert!(n_fft > 0 && hop > 0, "Stft::new: n_fft ({n_fft}) and hop ({hop}) must be > 0");
        let mut planner = RealFftPlanner::<f32>::new();
        Self {
            n_fft,
            hop,
            window: hann_window(n_fft),
            forward: planner.plan_fft_forward(n_fft),
            inverse: planner.plan_fft_inverse(n_fft),
        }
    }

    /// Frame length in samples (the FFT size).
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Samples between the starts of consecutive frames.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Frequency bins per frame: `n_fft / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Number of frames [`forward`](Self::forward) gives for `len` samples with `center=true`.
    ///
    /// The signal is padded by `n_fft / 2` on each side, so for even `n_fft` this is librosa's
    /// `1 + len / hop`.
    pub fn n_frames(&self, len: usize) -> usize {
        let padded = len + 2 * (self.n_fft / 2);
        if padded < self.n_fft { 0 } else { 1 + (padded - self.n_fft) / self.hop }
    }

    /// Complex STFT, frames-major: `out[frame * n_bins + bin]`.
    ///
    /// `center=true`: the signal is padded by `n_fft / 2` zeros on each side (librosa >= 0.10's
    /// default `pad_mode="constant"`), so frame `t` is centred on sample `t * hop`. Bins follow
    /// numpy's `rfft` convention, `X[k] = sum_n x[n] w[n] e^{-2 pi i k n / n_fft}`, unnormalised.
    pub fn forward(&self, signal: &[f32]) -> Vec<Complex32> {
        let n_bins = self.n_bins();
        let mut out = Vec::with_capacity(self.n_frames(signal.len()) * n_bins);
        self.for_each_frame(signal, |_, spectrum| out.extend_from_slice(spectrum));
        out
    }

    /// Power spectrogram `|X|^2`, frames-major like [`forward`](Self::forward), into `out`
    /// (cleared and resized; no allocation when it is already large enough).
    pub fn power(&self, signal: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.reserve(self.n_frames(signal.len()) * self.n_bins());
        self.for_each_frame(signal, |_, spectrum| {
            out.extend(spectrum.iter().map(|c| c.norm_sqr()));
        });
    }

    /// Run `f(frame_index, spectrum)` on every frame's spectrum, in order.
    ///
    /// `f` must not call back into an [`Stft`] on this thread: the thread-local scratch is
    /// borrowed while it runs (doing so panics with a `BorrowMutError`).
    pub(crate) fn for_each_frame(&self, signal: &[f32], mut f: impl FnMut(usize, &[Complex32])) {
        let n_frames = self.n_frames(signal.len());
        if n_frames == 0 {
            return;
        }
        let n_fft = self.n_fft;
        let pad = n_fft / 2;
        let len = signal.len();
        SCRATCH.with_borrow_mut(|s| {
            s.frame.resize(n_fft, 0.0);
            s.spectrum.resize(self.n_bins(), Complex32::default());
            s.fft.resize(self.forward.get_scratch_len(), Complex32::default());
            for t in 0..n_frames {
                // Frame t covers padded samples [t*hop, t*hop + n_fft), i.e. signal samples
                // [t*hop - pad, t*hop - pad + n_fft); outside the signal they are zero.
                let start = t * self.hop;
                let lo = pad.saturating_sub(start).min(n_fft);
                let hi = (len + pad).saturating_sub(start).min(n_fft).max(lo);
                s.frame[..lo].fill(0.0);
                s.frame[hi..].fill(0.0);
                let src = &signal[start + lo - pad..start + hi - pad];
                for ((y, &x), &w) in s.frame[lo..hi].iter_mut().zip(src).zip(&self.window[lo..hi]) {
                    *y = x * w;
                }
                self.forward
                    .process_with_scratch(&mut s.frame, &mut s.spectrum, &mut s.fft)
                    .expect("STFT buffers are sized from the plan");
                f(t, &s.spectrum);
            }
        });
    }

    /// Inverse STFT of a frames-major spectrogram (`spec[frame * n_bins + bin]`, as
    /// [`forward`](Self::forward) lays it out), returning exactly `len` samples.
    ///
    /// librosa.istft semantics with `center=true`: each frame is inverse-transformed
    /// (`irfft`, normalised by `1 / n_fft`; the imaginary parts of the DC and Nyquist bins are
    /// ignored), windowed and overlap-added, then divided by the sum of squared windows wherever
    /// that sum is nonzero; the first `n_fft / 2` samples (the centre padding) are dropped and
    /// the result is cut or zero-padded to `len`. So `inverse(&forward(x), n, x.len())`
    /// reconstructs `x` whenever the window overlap covers every sample (e.g. `hop <= n_fft/2`).
    ///
    /// # Panics
    ///
    /// If `spec.len() != n_frames * n_bins`.
    pub fn inverse(&self, spec: &[Complex32], n_frames: usize, len: usize) -> Vec<f32> {
        let n_fft = self.n_fft;
        let n_bins = self.n_bins();
        assert_eq!(
            spec.len(),
            n_frames * n_bins,
            "Stft::inverse: spectrogram has {} values, expected {n_frames} frames x {n_bins} bins",
            spec.len()
        );
        let pad = n_fft / 2;
        // Only padded samples [pad, pad + len) are kept; accumulate just that span.
        let mut out = vec![0.0f32; len];
        let mut wss = vec![0.0f32; len];
        let scale = 1.0 / n_fft as f32;
        SCRATCH.with_borrow_mut(|s| {
            s.frame.resize(n_fft, 0.0);
            s.spectrum.resize(n_bins, Complex32::default());
            s.fft.resize(self.inverse.get_scratch_len(), Complex32::default());
            for (t, bins) in spec.chunks_exact(n_bins).enumerate() {
                let start = t * self.hop;
                if start >= pad + len {
                    break;
                }
                // Frame sample k lands on output sample start + k - pad.
                let lo = pad.saturating_sub(start);
                let hi = (pad + len - start).min(n_fft);
                if lo >= hi {
                    continue;
                }
                s.spectrum.copy_from_slice(bins);
                s.spectrum[0].im = 0.0;
                if n_fft.is_multiple_of(2) {
                    s.spectrum[n_bins - 1].im = 0.0;
                }
                self.inverse
                    .process_with_scratch(&mut s.spectrum, &mut s.frame, &mut s.fft)
                    .expect("iSTFT buffers are sized from the plan");
                let dst = start + lo - pad..start + hi - pad;
                for (((y, q), &x), &w) in out[dst.clone()]
                    .iter_mut()
                    .zip(&mut wss[dst])
                    .zip(&s.frame[lo..hi])
                    .zip(&self.window[lo..hi])
                {
                    *y += x * scale * w;
                    *q += w * w;
                }
            }
        });
        // librosa divides where the window sum-square exceeds the smallest normal float.
        for (y, &q) in out.iter_mut().zip(&wss) {
            if q > f32::MIN_POSITIVE {
                *y /= q;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::goldens;

    #[test]
    fn hann_is_periodic_and_matches_scipy() {
        let w = hann_window(8);
        // scipy.signal.get_window("hann", 8, fftbins=True), rounded to 4 dp.
        let want = [0.0, 0.1464, 0.5, 0.8536, 1.0, 0.8536, 0.5, 0.1464];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{w:?}");
        }
        assert_eq!(hann_window(1), vec![1.0]);
        assert!(hann_window(0).is_empty());
    }

    #[test]
    fn frame_counts_follow_librosa() {
        let stft = Stft::new(1024, 256);
        assert_eq!(stft.n_bins(), 513);
        assert_eq!(stft.n_frames(8000), 32);
        assert_eq!(stft.n_frames(12000), 47);
        assert_eq!(stft.n_frames(0), 1);
        assert_eq!(stft.n_frames(255), 1);
        assert_eq!(stft.n_frames(256), 2);
        let x = vec![0.5f32; 1000];
        assert_eq!(stft.forward(&x).len(), stft.n_frames(1000) * 513);
    }

    #[test]
    fn power_is_squared_magnitude_of_forward() {
        let stft = Stft::new(512, 128);
        let x = goldens::noise(3000, 11);
        let spec = stft.forward(&x);
        let mut pow = vec![1.0; 7];
        stft.power(&x, &mut pow);
        assert_eq!(pow.len(), spec.len());
        for (p, c) in pow.iter().zip(&spec) {
            assert_eq!(*p, c.norm_sqr());
        }
    }

    #[test]
    fn forward_matches_librosa_stft() {
        let g = goldens::load();
        let mut worst = 0.0f32;
        for sig in &g.signals {
            let x = sig.samples();
            let gs = &sig.stft;
            let stft = Stft::new(gs.n_fft, gs.hop);
            assert_eq!(stft.n_frames(x.len()), gs.n_frames, "{}", sig.name);
            let spec = stft.forward(&x);
            let n_bins = stft.n_bins();
            for (&t, want) in gs.frames.iter().zip(&gs.magnitude) {
                let got = &spec[t * n_bins..(t + 1) * n_bins];
                // Errors of an f32 FFT scale with the frame's energy, not with the bin's.
                let peak = want.iter().fold(1e-3f32, |m, &v| m.max(v));
                for (k, (c, &m)) in got.iter().zip(want).enumerate() {
                    let err = (c.norm() - m).abs() / peak;
                    worst = worst.max(err);
                    assert!(err < 1e-5, "{} frame {t} bin {k}: {} vs {m}", sig.name, c.norm());
                }
            }
            for ((&t, re), im) in gs.complex_frames.iter().zip(&gs.re).zip(&gs.im) {
                let got = &spec[t * n_bins..(t + 1) * n_bins];
                let peak = re.iter().chain(im).fold(1e-3f32, |m, &v| m.max(v.abs()));
                for (k, c) in got.iter().enumerate() {
                    let err = (c.re - re[k]).abs().max((c.im - im[k]).abs()) / peak;
                    assert!(
                        err < 1e-5,
                        "{} frame {t} bin {k}: {c} vs {}+{}i",
                        sig.name,
                        re[k],
                        im[k]
                    );
                }
            }
        }
        eprintln!("stft max error relative to frame peak: {worst:e}");
    }

    #[test]
    fn inverse_matches_librosa_istft_of_a_masked_stft() {
        let g = goldens::load();
        let gi = &g.istft;
        let x = g.signal(&gi.signal).samples();
        let stft = Stft::new(gi.n_fft, gi.hop);
        let n_bins = stft.n_bins();
        let n_frames = stft.n_frames(x.len());
        let mut spec = stft.forward(&x);
        // The mask scripts/dsp_goldens.py applies, computed in f64 and stored as f32 as numpy does.
        for (i, c) in spec.iter_mut().enumerate() {
            let (t, k) = ((i / n_bins) as f64, (i % n_bins) as f64);
            *c *= (0.5 + 0.5 * (0.05 * k + 0.3 * t).cos()) as f32;
        }
        let y = stft.inverse(&spec, n_frames, gi.length);
        assert_eq!(y.len(), gi.length);
        let mut worst = 0.0f32;
        for span in &gi.spans {
            for (i, &want) in span.samples.iter().enumerate() {
                let n = span.start + i;
                let err = (y[n] - want).abs();
                worst = worst.max(err);
                assert!(err < 1e-5, "sample {n}: {} vs librosa {want}", y[n]);
            }
        }
        eprintln!("istft max abs error vs librosa: {worst:e}");
    }

    fn round_trip(n_fft: usize, hop: usize, len: usize) {
        let stft = Stft::new(n_fft, hop);
        let x = goldens::noise(len, n_fft as u64 + len as u64);
        let n_frames = stft.n_frames(len);
        let y = stft.inverse(&stft.forward(&x), n_frames, len);
        assert_eq!(y.len(), len);
        let err = x.iter().zip(&y).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-4, "n_fft {n_fft} hop {hop} len {len}: max error {err}");
    }

    #[test]
    fn inverse_reconstructs_the_signal() {
        for len in [20_000, 16_001, 777] {
            round_trip(1024, 256, len);
            round_trip(2048, 512, len);
        }
        round_trip(512, 128, 1);
    }

    #[test]
    fn inverse_pads_or_cuts_to_len() {
        let stft = Stft::new(256, 64);
        let x = goldens::noise(1000, 5);
        let spec = stft.forward(&x);
        let n = stft.n_frames(x.len());
        let short = stft.inverse(&spec, n, 500);
        assert_eq!(short.len(), 500);
        let long = stft.inverse(&spec, n, 1500);
        assert_eq!(long.len(), 1500);
        assert!(long[1000 + 256..].iter().all(|&v| v == 0.0));
        for (a, b) in x.iter().zip(&long).take(1000) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    #[should_panic(expected = "expected 3 frames")]
    fn inverse_rejects_wrong_shape() {
        Stft::new(8, 2).inverse(&[Complex32::default(); 14], 3, 4);
    }
}
