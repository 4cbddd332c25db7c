//! Audio degradations for training and evaluating the fingerprinter: synthetic room reverb
//! (impulse response + FFT convolution), additive noise at a set SNR, gain, cheap-channel
//! band-limiting with RBJ biquads, coloured noise, and peak limiting. Everything works in place or
//! returns a new buffer of mono `f32` PCM; nothing here knows about clips, batches or models.

use std::f32::consts::{FRAC_1_SQRT_2, TAU};
use std::fmt;
use std::sync::Arc;

use rand::{Rng, RngExt};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// Longest synthetic impulse response, in seconds.
const MAX_RIR_SECONDS: f32 = 1.5;
/// Window after the direct path that holds the discrete early reflections, in seconds.
const EARLY_SECONDS: f32 = 0.020;
/// Earliest reflection after the direct path, in seconds.
const MIN_REFLECTION_SECONDS: f32 = 0.001;
/// Range of the direct-to-reverberant energy ratio drawn for each impulse response, in dB.
const DRR_DB: std::ops::Range<f32> = -3.0..6.0;
/// Filters with at most this many taps are convolved directly; that is faster than two FFTs and
/// exact.
const DIRECT_MAX_TAPS: usize = 32;

/// Synthesises a room impulse response with reverberation time `rt60` seconds.
///
/// The response is synthetic, since few recorded ones can be redistributed: a direct-path impulse
/// of amplitude 1 at t = 0, three to seven discrete early reflections in the first 20 ms, and a
/// diffuse tail of low-passed Gaussian noise (random cutoff, 0.2–0.45 × `sample_rate`) whose
/// echo density ramps up over those 20 ms and whose energy decays by 60 dB every `rt60` seconds.
/// The direct-to-reverberant ratio is drawn from -3..6 dB. The whole response is then scaled to
/// unit energy. Its length is `min(1.2 × rt60, 1.5 s) × sample_rate` samples (at least one).
/// A non-positive or non-finite `rt60`, or a zero `sample_rate`, gives the unit impulse `[1.0]`.
///
/// The tail is the usual diffuse-field model of exponentially decaying noise (as in Lehmann &
/// Johansson, "Diffuse reverberation model for efficient image-source simulation of room impulse
/// responses", IEEE TASLP 2010), without their image-source early part.
pub fn synth_rir<R: Rng + ?Sized>(rng: &mut R, sample_rate: u32, rt60: f32) -> Vec<f32> {
    if sample_rate == 0 || !rt60.is_finite() || rt60 <= 0.0 {
        return vec![1.0];
    }
    let sr = sample_rate as f32;
    let len = (((rt60 * 1.2).min(MAX_RIR_SECONDS) * sr).round() as usize).max(1);
    if len == 1 {
        return vec![1.0];
    }
    // Amplitude falls by 10^-3 (energy by 60 dB) over rt60 seconds.
    let decay_per_sample = 1000f32.ln() / (rt60 * sr);
    let envelope = |n: usize| (-decay_per_sample * n as f32).exp();
    let ramp = (EARLY_SECONDS * sr).max(1.0);

    let mut h = vec![0.0; len];
    fill_gaussian(rng, &mut h);
    let cutoff = rng.random_range(0.2..0.45) * sr;
    lowpass(&mut h, sample_rate, cutoff, FRAC_1_SQRT_2);
    h[0] = 0.0;
    for (n, v) in h.iter_mut().enumerate().skip(1) {
        *v *= envelope(n) * (n as f32 / ramp).min(1.0);
    }
    let tail_energy = energy(&h);
    if tail_energy > 0.0 {
        let drr_db = rng.random_range(DRR_DB);
        let gain = (10f64.powf(f64::from(-drr_db) / 10.0) / tail_energy).sqrt() as f32;
        h.iter_mut().for_each(|v| *v *= gain);
    }
    h[0] = 1.0;

    let first = ((MIN_REFLECTION_SECONDS * sr).ceil() as usize).max(1);
    let last = ((EARLY_SECONDS * sr) as usize).min(len - 1);
    if first <= last {
        for _ in 0..rng.random_range(3..=7) {
            let delay = rng.random_range(first..=last);
            let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            h[delay] += sign * rng.random_range(0.15..0.6) * envelope(delay);
        }
    }

    let total = energy(&h);
    if total > 0.0 {
        let inv = total.sqrt().recip() as f32;
        h.iter_mut().for_each(|v| *v *= inv);
    }
    h
}

/// Convolves `x` with the impulse response `h` and keeps the first `x.len()` samples (the tail
/// past the end of `x` is cut), then rescales the result so that its RMS equals that of `x`:
/// reverb changes the sound, not the loudness.
///
/// A silent result (silent `x`, or an `h` that is empty or all zeros) is returned as is. For many
/// calls, keep a [`Convolver`], which reuses its FFT plans and buffers.
pub fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    let mut y = convolve_raw(x, h);
    match_rms(&mut y, x);
    y
}

/// [`convolve`] without the RMS rescale: the first `x.len()` samples of the linear convolution.
pub(crate) fn convolve_raw(x: &[f32], h: &[f32]) -> Vec<f32> {
    Convolver::new().conv_raw(x, h)
}

/// Forward and inverse FFT plans of one length.
struct Plans {
    len: usize,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
}

/// Reusable FFT convolver: same results as [`convolve`], but the FFT plans and work buffers are
/// kept between calls, so convolving many clips of similar length plans once and allocates only
/// the output.
///
/// Each call costs two complex FFTs of the next power of two at or above
/// `x.len() + min(h.len(), x.len()) - 1`: `x` and `h` are packed into the real and imaginary parts
/// of one buffer and separated by conjugate symmetry. Filters of at most 32 taps are convolved
/// directly instead.
pub struct Convolver {
    planner: FftPlanner<f32>,
    plans: Option<Plans>,
    buf: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl Convolver {
    /// Creates a convolver with no plans yet; the first call plans its FFT length.
    pub fn new() -> Self {
        Self { planner: FftPlanner::new(), plans: None, buf: Vec::new(), scratch: Vec::new() }
    }

    /// Convolves `x` with `h`, with the same semantics as [`convolve`].
    pub fn conv(&mut self, x: &[f32], h: &[f32]) -> Vec<f32> {
        let mut y = self.conv_raw(x, h);
        match_rms(&mut y, x);
        y
    }

    /// The first `x.len()` samples of the linear convolution of `x` and `h`, unscaled.
    pub(crate) fn conv_raw(&mut self, x: &[f32], h: &[f32]) -> Vec<f32> {
        let n = x.len();
        // Taps at or past `n` cannot reach the first `n` output samples.
        let h = &h[..h.len().min(n)];
        if h.is_empty() {
            return vec![0.0; n];
        }
        if h.len() <= DIRECT_MAX_TAPS {
            return convolve_direct(x, h);
        }

        let fft_len = (n + h.len() - 1).next_power_of_two();
        let (forward, inverse) = self.plans_for(fft_len);
        // Pack x + i·s·h; s balances the two energies so neither drowns in the other's rounding.
        let (ex, eh) = (energy(x), energy(h));
        let s = if ex > 0.0 && eh > 0.0 { (ex / eh).sqrt() as f32 } else { 1.0 };
        self.buf.clear();
        self.buf.resize(fft_len, Complex::new(0.0, 0.0));
        for (b, &v) in self.buf.iter_mut().zip(x) {
            b.re = v;
        }
        for (b, &v) in self.buf.iter_mut().zip(h) {
            b.im = v * s;
        }
        let scratch_len = forward.get_inplace_scratch_len().max(inverse.get_inplace_scratch_len());
        if self.scratch.len() < scratch_len {
            self.scratch.resize(scratch_len, Complex::new(0.0, 0.0));
        }
        forward.process_with_scratch(&mut self.buf, &mut self.scratch[..scratch_len]);

        // Z = X + iS·H with X, H Hermitian: X[k] = (Z[k] + Z*[N-k]) / 2,
        // S·H[k] = (Z[k] - Z*[N-k]) / 2i. The product is Hermitian too, so fill both halves.
        let norm = 1.0 / (s * fft_len as f32);
        for k in 0..=fft_len / 2 {
            let j = (fft_len - k) % fft_len;
            let zk = self.buf[k];
            let zj = self.buf[j].conj();
            let xk = (zk + zj) * 0.5;
            let hk = (zk - zj) * Complex::new(0.0, -0.5);
            let yk = xk * hk * norm;
            self.buf[k] = yk;
            self.buf[j] = yk.conj();
        }
        inverse.process_with_scratch(&mut self.buf, &mut self.scratch[..scratch_len]);
        self.buf[..n].iter().map(|c| c.re).collect()
    }

    /// The plans for `len`, planned on first use and kept for the next call.
    fn plans_for(&mut self, len: usize) -> (Arc<dyn Fft<f32>>, Arc<dyn Fft<f32>>) {
        match &self.plans {
            Some(p) if p.len == len => (Arc::clone(&p.forward), Arc::clone(&p.inverse)),
            _ => {
                // The planner keeps its own cache, so alternating lengths do not re-plan either.
                let forward = self.planner.plan_fft_forward(len);
                let inverse = self.planner.plan_fft_inverse(len);
                self.plans = Some(Plans {
                    len,
                    forward: Arc::clone(&forward),
                    inverse: Arc::clone(&inverse),
                });
                (forward, inverse)
            }
        }
    }
}

impl Default for Convolver {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Convolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Convolver")
            .field("fft_len", &self.plans.as_ref().map(|p| p.len))
            .finish_non_exhaustive()
    }
}

/// Scales `y` to the RMS of `reference`, unless either is silent.
fn match_rms(y: &mut [f32], reference: &[f32]) {
    let (target, actual) = (rms(reference), rms(y));
    if target > 0.0 && actual > 0.0 {
        let gain = target / actual;
        y.iter_mut().for_each(|v| *v *= gain);
    }
}

/// Direct O(n·m) convolution, first `x.len()` samples.
fn convolve_direct(x: &[f32], h: &[f32]) -> Vec<f32> {
    (0..x.len())
        .map(|t| h.iter().take(t + 1).enumerate().map(|(k, &hk)| hk * x[t - k]).sum())
        .collect()
}

/// Adds `noise` to `x` scaled so that the signal-to-noise ratio is `snr_db`: the power of `x` over
/// the power of the scaled noise. `noise` is cycled or truncated to `x.len()`.
///
/// If `x` or `noise` is empty or silent, or the gain is not finite (e.g. `snr_db` is -∞ or NaN),
/// `x` is left unchanged.
pub fn add_noise_at_snr(x: &mut [f32], noise: &[f32], snr_db: f32) {
    if x.is_empty() || noise.is_empty() {
        return;
    }
    let signal_power = energy(x) / x.len() as f64;
    let noise_power =
        noise.iter().cycle().take(x.len()).map(|&v| f64::from(v).powi(2)).sum::<f64>()
            / x.len() as f64;
    if signal_power <= 0.0 || noise_power <= 0.0 {
        return;
    }
    let gain = (signal_power / (noise_power * 10f64.powf(f64::from(snr_db) / 10.0))).sqrt();
    if !gain.is_finite() {
        return;
    }
    let gain = gain as f32;
    for (v, &n) in x.iter_mut().zip(noise.iter().cycle()) {
        *v += gain * n;
    }
}

/// Multiplies `x` by a gain of `db` decibels (amplitude factor 10^(db/20)).
pub fn apply_gain_db(x: &mut [f32], db: f32) {
    let gain = 10f32.powf(db / 20.0);
    x.iter_mut().for_each(|v| *v *= gain);
}

/// Second-order IIR section, normalised so that a0 = 1.
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    /// RBJ cookbook low-pass or high-pass
    /// (<https://www.w3.org/TR/audio-eq-cookbook/>); `cutoff` must lie in (0, Nyquist).
    fn rbj(sample_rate: u32, cutoff: f32, q: f32, highpass: bool) -> Self {
        let w0 = std::f64::consts::TAU * f64::from(cutoff) / f64::from(sample_rate);
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * f64::from(q.max(1e-3)));
        let a0 = 1.0 + alpha;
        let (b0, b1) = if highpass {
            ((1.0 + cos) / 2.0, -(1.0 + cos))
        } else {
            ((1.0 - cos) / 2.0, 1.0 - cos)
        };
        Self { b: [b0 / a0, b1 / a0, b0 / a0], a: [-2.0 * cos / a0, (1.0 - alpha) / a0] }
    }

    /// Filters `x` in place from zero state (transposed direct form II, `f64` state).
    fn process(&self, x: &mut [f32]) {
        let ([b0, b1, b2], [a1, a2]) = (self.b, self.a);
        let (mut z1, mut z2) = (0.0f64, 0.0f64);
        for v in x {
            let input = f64::from(*v);
            let out = b0 * input + z1;
            z1 = b1 * input - a1 * out + z2;
            z2 = b2 * input - a2 * out;
            *v = out as f32;
        }
    }
}

/// Highest usable cutoff, as a fraction of the Nyquist frequency.
const MAX_CUTOFF_OF_NYQUIST: f32 = 0.999;

/// Low-pass biquad (RBJ cookbook, 12 dB/octave; `q` = 0.707 is Butterworth), in place from zero
/// state. A cutoff at or above Nyquist leaves `x` unchanged; one below 1 Hz is raised to 1 Hz.
pub fn lowpass(x: &mut [f32], sample_rate: u32, cutoff_hz: f32, q: f32) {
    let nyquist = sample_rate as f32 / 2.0;
    if sample_rate == 0 || cutoff_hz.is_nan() || cutoff_hz >= nyquist {
        return;
    }
    let cutoff = cutoff_hz.clamp(1.0_f32.min(nyquist / 2.0), nyquist * MAX_CUTOFF_OF_NYQUIST);
    Biquad::rbj(sample_rate, cutoff, q, false).process(x);
}

/// High-pass biquad (RBJ cookbook, 12 dB/octave; `q` = 0.707 is Butterworth), in place from zero
/// state. A cutoff at or below 0 Hz leaves `x` unchanged; one at or above Nyquist is lowered to
/// just below it.
pub fn highpass(x: &mut [f32], sample_rate: u32, cutoff_hz: f32, q: f32) {
    let nyquist = sample_rate as f32 / 2.0;
    if sample_rate == 0 || cutoff_hz.is_nan() || cutoff_hz <= 0.0 {
        return;
    }
    let cutoff = cutoff_hz.min(nyquist * MAX_CUTOFF_OF_NYQUIST);
    Biquad::rbj(sample_rate, cutoff, q, true).process(x);
}

/// Band-limits `x` like a cheap channel (phone speaker, laptop mic): a 4th-order high-pass at
/// `low_hz` then a 4th-order low-pass at `high_hz`, each two passes of a Butterworth-Q (0.707)
/// biquad. See [`highpass`] and [`lowpass`] for out-of-range cutoffs.
pub fn band_limit(x: &mut [f32], sample_rate: u32, low_hz: f32, high_hz: f32) {
    for _ in 0..2 {
        highpass(x, sample_rate, low_hz, FRAC_1_SQRT_2);
    }
    for _ in 0..2 {
        lowpass(x, sample_rate, high_hz, FRAC_1_SQRT_2);
    }
}

/// Spectral colour of [`coloured_noise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseColor {
    /// Flat power spectrum.
    White,
    /// Power falling 3 dB per octave (1/f).
    Pink,
    /// Power falling 6 dB per octave (1/f²), above a few hertz.
    Brown,
}

/// Generates `len` samples of zero-mean Gaussian-based noise of the given colour with RMS 1, for
/// when no recorded noise is at hand.
///
/// Pink is white noise through Paul Kellet's refined pinking filter (musicdsp.org, "Pink noise
/// filter"; within ±0.05 dB of 1/f down to 2e-4 × the sample rate); brown is white noise through a
/// leaky integrator (pole 0.995). Both filters run past a warm-up first so the start is
/// stationary. A noise of fewer than two samples is all zeros (no RMS to normalise).
pub fn coloured_noise<R: Rng + ?Sized>(rng: &mut R, color: NoiseColor, len: usize) -> Vec<f32> {
    let warmup = match color {
        NoiseColor::White => 0,
        NoiseColor::Pink => 4096,
        NoiseColor::Brown => 1024,
    };
    let mut out = vec![0.0; len + warmup];
    fill_gaussian(rng, &mut out);
    match color {
        NoiseColor::White => {}
        NoiseColor::Pink => {
            let mut b = [0.0f32; 7];
            for v in &mut out {
                let w = *v;
                b[0] = 0.99886 * b[0] + w * 0.055_517_9;
                b[1] = 0.99332 * b[1] + w * 0.075_075_9;
                b[2] = 0.96900 * b[2] + w * 0.153_852;
                b[3] = 0.86650 * b[3] + w * 0.310_485_6;
                b[4] = 0.55000 * b[4] + w * 0.532_952_2;
                b[5] = -0.7616 * b[5] - w * 0.016_898;
                *v = b.iter().sum::<f32>() + w * 0.5362;
                b[6] = w * 0.115_926;
            }
        }
        NoiseColor::Brown => {
            let mut acc = 0.0f32;
            for v in &mut out {
                acc = 0.995 * acc + *v;
                *v = acc;
            }
        }
    }
    out.drain(..warmup);
    if len > 0 {
        let mean = out.iter().map(|&v| f64::from(v)).sum::<f64>() / len as f64;
        out.iter_mut().for_each(|v| *v -= mean as f32);
    }
    let r = rms(&out);
    if r > 0.0 {
        out.iter_mut().for_each(|v| *v /= r);
    }
    out
}

/// Scales `x` down so that its peak magnitude is at most 1 (a limiter for after mixing); a signal
/// already within [-1, 1] is left unchanged.
pub fn normalize_peak(x: &mut [f32]) {
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 1.0 && peak.is_finite() {
        let inv = peak.recip();
        x.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Root-mean-square level of `x`; 0 for an empty signal.
pub fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (energy(x) / x.len() as f64).sqrt() as f32
}

/// Sum of squares, accumulated in `f64`.
fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v).powi(2)).sum()
}

/// Fills `out` with independent standard normal samples (Box–Muller).
fn fill_gaussian<R: Rng + ?Sized>(rng: &mut R, out: &mut [f32]) {
    for pair in out.chunks_mut(2) {
        // 1 - u lies in (0, 1], so the log is finite.
        let u1 = 1.0 - rng.random::<f32>();
        let u2 = rng.random::<f32>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (TAU * u2).sin_cos();
        pair[0] = radius * cos;
        if let Some(second) = pair.get_mut(1) {
            *second = radius * sin;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const SR: u32 = 8000;

    fn sine(freq: f32, len: usize) -> Vec<f32> {
        (0..len).map(|n| (TAU * freq * n as f32 / SR as f32).sin()).collect()
    }

    fn db(power_ratio: f64) -> f64 {
        10.0 * power_ratio.log10()
    }

    fn random_signal(rng: &mut StdRng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn full_direct(x: &[f32], h: &[f32]) -> Vec<f64> {
        (0..x.len())
            .map(|t| {
                (0..h.len().min(t + 1)).map(|k| f64::from(h[k]) * f64::from(x[t - k])).sum::<f64>()
            })
            .collect()
    }

    /// RT60 from Schroeder backward integration, fitting the decay between -15 and -45 dB (past
    /// the direct path and early reflections, before the truncated end).
    fn schroeder_rt60(h: &[f32]) -> f64 {
        let mut edc: Vec<f64> = h.iter().map(|&v| f64::from(v).powi(2)).collect();
        for i in (0..edc.len() - 1).rev() {
            edc[i] += edc[i + 1];
        }
        let total = edc[0];
        let points: Vec<(f64, f64)> = edc
            .iter()
            .enumerate()
            .map(|(i, &e)| (i as f64 / f64::from(SR), db(e / total)))
            .filter(|&(_, l)| (-45.0..=-15.0).contains(&l))
            .collect();
        let n = points.len() as f64;
        let (mt, ml) = points.iter().fold((0.0, 0.0), |(a, b), &(t, l)| (a + t / n, b + l / n));
        let (cov, var) = points
            .iter()
            .fold((0.0, 0.0), |(c, v), &(t, l)| (c + (t - mt) * (l - ml), v + (t - mt).powi(2)));
        -60.0 / (cov / var)
    }

    /// Least-squares slope of log10 power against log10 frequency (Welch, Hann, 1024-point) over
    /// `lo..hi` Hz.
    fn spectral_slope(x: &[f32], lo: f64, hi: f64) -> f64 {
        let n = 1024;
        let fft = FftPlanner::<f32>::new().plan_fft_forward(n);
        let window: Vec<f32> =
            (0..n).map(|i| 0.5 - 0.5 * (TAU * i as f32 / n as f32).cos()).collect();
        let mut psd = vec![0.0f64; n / 2];
        for seg in x.chunks_exact(n) {
            let mut buf: Vec<Complex<f32>> =
                seg.iter().zip(&window).map(|(&v, &w)| Complex::new(v * w, 0.0)).collect();
            fft.process(&mut buf);
            for (p, c) in psd.iter_mut().zip(&buf) {
                *p += f64::from(c.norm_sqr());
            }
        }
        let points: Vec<(f64, f64)> = psd
            .iter()
            .enumerate()
            .map(|(k, &p)| (k as f64 * f64::from(SR) / n as f64, p))
            .filter(|&(f, _)| f >= lo && f <= hi)
            .map(|(f, p)| (f.log10(), p.log10()))
            .collect();
        let m = points.len() as f64;
        let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), &(f, p)| (a + f / m, b + p / m));
        let (cov, var) = points
            .iter()
            .fold((0.0, 0.0), |(c, v), &(f, p)| (c + (f - mx) * (p - my), v + (f - mx).powi(2)));
        cov / var
    }

    #[test]
    fn add_noise_hits_the_requested_snr() {
        let mut rng = StdRng::seed_from_u64(1);
        let clean = sine(440.0, 8000);
        // Shorter than the signal, so it is cycled.
        let noise = coloured_noise(&mut rng, NoiseColor::Pink, 3000);
        for snr in [-5.0f32, 0.0, 10.0, 30.0] {
            let mut x = clean.clone();
            add_noise_at_snr(&mut x, &noise, snr);
            let added: Vec<f32> = x.iter().zip(&clean).map(|(a, b)| a - b).collect();
            let measured = db(energy(&clean) / energy(&added));
            assert!((measured - f64::from(snr)).abs() < 0.1, "asked {snr} dB, got {measured:.3}");
        }
    }

    #[test]
    fn add_noise_leaves_silence_alone() {
        let mut x = vec![0.0f32; 100];
        add_noise_at_snr(&mut x, &[1.0, -1.0], 10.0);
        assert!(x.iter().all(|&v| v == 0.0));
        let mut y = sine(100.0, 100);
        let before = y.clone();
        add_noise_at_snr(&mut y, &[0.0; 10], 10.0);
        add_noise_at_snr(&mut y, &[], 10.0);
        assert_eq!(y, before);
    }

    #[test]
    fn gain_and_peak_limit() {
        let mut x = vec![0.25f32, -0.5];
        apply_gain_db(&mut x, 20.0 * 2f32.log10());
        assert!((x[0] - 0.5).abs() < 1e-6 && (x[1] + 1.0).abs() < 1e-6);
        apply_gain_db(&mut x, 6.0);
        normalize_peak(&mut x);
        assert!((x[1] + 1.0).abs() < 1e-6 && (x[0] - 0.5).abs() < 1e-6);
        let mut quiet = vec![0.1f32, -0.2];
        normalize_peak(&mut quiet);
        assert_eq!(quiet, [0.1, -0.2]);
        assert!((rms(&[3.0, -4.0, 3.0, -4.0]) - 3.5355).abs() < 1e-4);
        assert_eq!(rms(&[]), 0.0);
    }

    /// Steady-state attenuation of a sine, in dB, skipping the filter's start-up transient.
    fn attenuation_db(freq: f32, filter: impl Fn(&mut [f32])) -> f64 {
        let x = sine(freq, 8000);
        let mut y = x.clone();
        filter(&mut y);
        db(energy(&x[2000..]) / energy(&y[2000..]))
    }

    #[test]
    fn lowpass_response_matches_the_bilinear_butterworth() {
        // RBJ with Q = 1/sqrt(2) is the bilinear-transformed Butterworth prewarped at the cutoff:
        // |H(f)|^2 = 1 / (1 + (tan(pi f / fs) / tan(pi fc / fs))^4). At 3 kHz with fc = 1 kHz and
        // fs = 8 kHz that is 30.63 dB, steeper than the analogue 19.1 dB because 3 kHz is near
        // Nyquist.
        let lp = |x: &mut [f32]| lowpass(x, SR, 1000.0, FRAC_1_SQRT_2);
        let stop = attenuation_db(3000.0, lp);
        assert!((stop - 30.63).abs() < 0.1, "3 kHz attenuated by {stop:.2} dB");
        let pass = attenuation_db(200.0, lp);
        assert!(pass.abs() < 1.0, "200 Hz attenuated by {pass:.3} dB");
    }

    #[test]
    fn highpass_and_band_limit() {
        let hp = |x: &mut [f32]| highpass(x, SR, 1000.0, FRAC_1_SQRT_2);
        assert!(attenuation_db(200.0, hp) > 25.0);
        assert!(attenuation_db(3000.0, hp).abs() < 1.0);
        let band = |x: &mut [f32]| band_limit(x, SR, 300.0, 3000.0);
        assert!(attenuation_db(1000.0, band).abs() < 1.0);
        assert!(attenuation_db(60.0, band) > 40.0);
        assert!(attenuation_db(3800.0, band) > 20.0);
        // A low-pass at Nyquist has nothing to remove.
        let mut x = sine(3000.0, 100);
        let before = x.clone();
        lowpass(&mut x, SR, 4000.0, FRAC_1_SQRT_2);
        assert_eq!(x, before);
    }

    #[test]
    fn rir_has_the_asked_length_energy_and_decay() {
        let mut rng = StdRng::seed_from_u64(7);
        let h = synth_rir(&mut rng, SR, 0.5);
        assert_eq!(h.len(), 4800);
        assert!((energy(&h) - 1.0).abs() < 1e-4);
        let tenth = h.len() / 10;
        let drop = db(energy(&h[..tenth]) / energy(&h[h.len() - tenth..]));
        assert!(drop > 40.0, "last tenth only {drop:.1} dB below the first");
        let peak = h.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_eq!(h[0], peak, "the direct path is the strongest tap");

        assert_eq!(synth_rir(&mut rng, SR, 3.0).len(), 12000, "capped at 1.5 s");
        assert_eq!(synth_rir(&mut rng, SR, 0.0), [1.0]);
        assert_eq!(synth_rir(&mut rng, SR, f32::NAN), [1.0]);
    }

    #[test]
    fn rir_decay_time_matches_rt60() {
        for (seed, rt60) in [(1u64, 0.3f64), (2, 0.5), (3, 0.8), (4, 1.2), (5, 0.5), (6, 0.3)] {
            let mut rng = StdRng::seed_from_u64(seed);
            let h = synth_rir(&mut rng, SR, rt60 as f32);
            let measured = schroeder_rt60(&h);
            let err = (measured - rt60).abs() / rt60;
            assert!(err < 0.1, "asked {rt60} s, Schroeder gives {measured:.3} s");
        }
    }

    #[test]
    fn convolving_with_a_unit_impulse_returns_the_input() {
        let mut rng = StdRng::seed_from_u64(3);
        let x = random_signal(&mut rng, 1000);
        assert_eq!(convolve(&x, &[1.0]), x);
        // Long enough to take the FFT path.
        let mut impulse = vec![0.0f32; 300];
        impulse[0] = 1.0;
        let y = convolve(&x, &impulse);
        assert_eq!(y.len(), x.len());
        assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn fft_convolution_matches_direct_convolution() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut conv = Convolver::new();
        // Direct path, FFT path, h longer than x, and scales far apart.
        for (n, m, h_scale) in [(50, 7, 1.0), (300, 33, 1.0), (257, 100, 1e-3), (64, 200, 50.0)] {
            let x = random_signal(&mut rng, n);
            let h: Vec<f32> = random_signal(&mut rng, m).iter().map(|v| v * h_scale).collect();
            let want = full_direct(&x, &h);
            let peak = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for got in [convolve_raw(&x, &h), conv.conv_raw(&x, &h)] {
                assert_eq!(got.len(), n);
                for (g, w) in got.iter().zip(&want) {
                    assert!((f64::from(*g) - w).abs() < 1e-5 * peak, "{n}x{m}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn convolve_keeps_loudness_and_reuses_plans() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut conv = Convolver::default();
        for _ in 0..3 {
            let x = random_signal(&mut rng, 8000);
            let h = synth_rir(&mut rng, SR, 0.6);
            let y = conv.conv(&x, &h);
            assert!((rms(&y) - rms(&x)).abs() < 1e-4 * rms(&x));
        }
        assert!(format!("{conv:?}").contains("Some(16384)"));
        assert_eq!(convolve(&[0.0; 10], &[1.0, 0.5]), [0.0; 10]);
        assert_eq!(convolve(&[1.0; 10], &[]), [0.0; 10]);
        assert!(convolve(&[], &[1.0]).is_empty());
        fn is_send<T: Send>() {}
        is_send::<Convolver>();
    }

    #[test]
    fn noise_colours_have_unit_rms_and_their_slopes() {
        let mut rng = StdRng::seed_from_u64(6);
        let len = 1 << 16;
        let mut slopes = Vec::new();
        for color in [NoiseColor::White, NoiseColor::Pink, NoiseColor::Brown] {
            let x = coloured_noise(&mut rng, color, len);
            assert_eq!(x.len(), len);
            assert!((rms(&x) - 1.0).abs() < 1e-4);
            slopes.push(spectral_slope(&x, 50.0, 2000.0));
        }
        let [white, pink, brown] = slopes[..] else { unreachable!() };
        assert!(white.abs() < 0.1, "white slope {white:.3}");
        assert!((-1.15..-0.85).contains(&pink), "pink slope {pink:.3}");
        assert!((-2.2..-1.6).contains(&brown), "brown slope {brown:.3}");
        assert!(coloured_noise(&mut rng, NoiseColor::Pink, 0).is_empty());
    }
}
