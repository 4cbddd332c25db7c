//! Mel filterbank and log-power mel spectrogram, matching librosa: Slaney's mel scale and
//! area normalisation (`librosa.filters.mel` with `htk=False, norm="slaney"`,
//! <https://librosa.org/doc/0.11.0/generated/librosa.filters.mel.html>), power mel spectrogram
//! (`librosa.feature.melspectrogram(power=2.0, center=True, pad_mode="constant")`) and
//! `librosa.power_to_db(ref=1.0, amin=1e-10, top_db=None)`.

use serde::{Deserialize, Serialize};

use super::stft::Stft;

/// Parameters of a log-power mel spectrogram (the fingerprint model's front end).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MelConfig {
    /// Sample rate of the input, Hz (librosa `sr`).
    pub sample_rate: u32,
    /// FFT size and frame length in samples (`n_fft`).
    pub n_fft: usize,
    /// Samples between frames (`hop_length`).
    pub hop: usize,
    /// Number of mel bands (`n_mels`).
    pub n_mels: usize,
    /// Lowest band edge, Hz (`fmin`).
    pub fmin: f32,
    /// Highest band edge, Hz (`fmax`).
    pub fmax: f32,
}

impl Default for MelConfig {
    /// The paper's fingerprint front end: 8 kHz, 1024-point frames every 256 samples, 256 mel
    /// bands over 300..4000 Hz. A 1 s segment gives 256 x 32. (The default fingerprinter starts
    /// its bands at 100 Hz instead: see `FingerprintConfig::default`.)
    fn default() -> Self {
        Self { sample_rate: 8000, n_fft: 1024, hop: 256, n_mels: 256, fmin: 300.0, fmax: 4000.0 }
    }
}

impl MelConfig {
    /// Check the configuration before building a [`LogMel`] from it (e.g. one read from a
    /// model card): sizes nonzero and `0 <= fmin < fmax`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) naming the offending fields.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |what: String| Err(crate::Error::Invalid(format!("mel config: {what}")));
        if self.sample_rate == 0 || self.n_fft == 0 || self.hop == 0 || self.n_mels == 0 {
            return bad(format!(
                "sample_rate ({}), n_fft ({}), hop ({}) and n_mels ({}) must all be > 0",
                self.sample_rate, self.n_fft, self.hop, self.n_mels
            ));
        }
        if !(self.fmin >= 0.0 && self.fmin < self.fmax) {
            return bad(format!(
                "need 0 <= fmin < fmax, got fmin {} fmax {}",
                self.fmin, self.fmax
            ));
        }
        Ok(())
    }
}

// Slaney's mel scale (librosa.hz_to_mel / mel_to_hz with htk=False): linear below 1 kHz at
// 200/3 Hz per mel, logarithmic above with 27 mels per factor 6.4.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ { MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step() } else { hz / F_SP }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// Slaney-style mel filterbank, row-major `n_mels x (n_fft / 2 + 1)`.
///
/// Same values as `librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
/// fmax=fmax)` (defaults `htk=False`, `norm="slaney"`, float32): triangles between
/// consecutive mel-spaced frequencies, each scaled by `2 / (f_hi - f_lo)` so that every band has
/// the same area. Computed in f64 and rounded where librosa rounds.
pub fn mel_filterbank(
    sample_rate: u32,
    n_fft: usize,
    n_mels: usize,
    fmin: f32,
    fmax: f32,
) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    // np.fft.rfftfreq(n_fft, d=1/sr), with numpy's rounding.
    let bin_hz = 1.0 / (n_fft as f64 * (1.0 / f64::from(sample_rate)));
    let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * bin_hz).collect();
    // n_mels + 2 band edges, equally spaced in mel (np.linspace).
    let (mel_lo, mel_hi) = (hz_to_mel(f64::from(fmin)), hz_to_mel(f64::from(fmax)));
    let n_edges = n_mels + 2;
    let step = (mel_hi - mel_lo) / (n_edges - 1) as f64;
    let edges: Vec<f64> = (0..n_edges)
        .map(|i| mel_to_hz(if i == n_edges - 1 { mel_hi } else { mel_lo + i as f64 * step }))
        .collect();
    let mut weights = vec![0.0f32; n_mels * n_bins];
    for (m, row) in weights.chunks_exact_mut(n_bins).enumerate() {
        let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for (w, &f) in row.iter_mut().zip(&fft_freqs) {
            let lower = (f - lo) / (mid - lo);
            let upper = (hi - f) / (hi - mid);
            // librosa stores the triangle as float32, then scales it in place by enorm.
            let tri = lower.min(upper).max(0.0) as f32;
            *w = (f64::from(tri) * enorm) as f32;
        }
    }
    weights
}

/// Convert power to decibels in place: `10 * log10(max(1e-10, x))`.
///
/// This is `librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)`; zero power gives -100 dB.
pub fn power_to_db(x: &mut [f32]) {
    for v in x {
        *v = 10.0 * v.max(1e-10).log10();
    }
}

/// One mel band's nonzero stretch of the filterbank.
#[derive(Debug, Clone)]
struct Band {
    /// First FFT bin with a nonzero weight.
    start: usize,
    /// Range of this band's weights in [`LogMel::weights`].
    weights: std::ops::Range<usize>,
}

/// Log-power mel spectrogram with a fixed [`MelConfig`], ready to run on many signals.
///
/// Holds the planned [`Stft`] and the filterbank in sparse form (each band keeps only its
/// nonzero bins, a few per band instead of `n_fft / 2 + 1`). `Send + Sync`; scratch buffers are
/// thread-local, so [`compute`](Self::compute) does not allocate once `out` and the current
/// thread's scratch have reached their size.
#[derive(Debug, Clone)]
pub struct LogMel {
    cfg: MelConfig,
    stft: Stft,
    bands: Vec<Band>,
    weights: Vec<f32>,
}

impl LogMel {
    /// Plan the STFT and build the filterbank for `cfg`.
    ///
    /// # Panics
    ///
    /// If `cfg.n_fft` or `cfg.hop` is zero; [`MelConfig::validate`] reports that as an error.
    pub fn new(cfg: MelConfig) -> Self {
        let stft = Stft::new(cfg.n_fft, cfg.hop);
        let n_bins = stft.n_bins();
        let dense = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax);
        let mut bands = Vec::with_capacity(cfg.n_mels);
        let mut weights = Vec::new();
        for row in dense.chunks_exact(n_bins) {
            let start = row.iter().position(|&w| w != 0.0).unwrap_or(0);
            let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
            let from = weights.len();
            weights.extend_from_slice(&row[start..end]);
            bands.push(Band { start, weights: from..weights.len() });
        }
        Self { cfg, stft, bands, weights }
    }

    /// The configuration this was built with.
    pub fn config(&self) -> &MelConfig {
        &self.cfg
    }

    /// Number of frames [`compute`](Self::compute) gives for `len` samples (`1 + len / hop`).
    pub fn n_frames(&self, len: usize) -> usize {
        self.stft.n_frames(len)
    }

    /// Log-power mel spectrogram of `signal` in dB, mel-major: `out[mel * n_frames + frame]`,
    /// so it can be viewed as a `(1, n_mels, n_frames)` tensor. `out` is cleared and resized.
    ///
    /// Same values as `librosa.power_to_db(librosa.feature.melspectrogram(y=signal, sr, n_fft,
    /// hop_length=hop, n_mels, fmin, fmax, power=2.0, center=True, pad_mode="constant"),
    /// ref=1.0, amin=1e-10, top_db=None)`. For the default config and 8000 samples this is
    /// 256 x 32.
    pub fn compute(&self, signal: &[f32], out: &mut Vec<f32>) {
        let n_frames = self.n_frames(signal.len());
        out.clear();
        out.resize(self.bands.len() * n_frames, 0.0);
        self.stft.for_each_frame(signal, |t, spectrum| {
            for (m, band) in self.bands.iter().enumerate() {
                let w = &self.weights[band.weights.clone()];
                let bins = &spectrum[band.start..band.start + w.len()];
                out[m * n_frames + t] = w.iter().zip(bins).map(|(w, c)| w * c.norm_sqr()).sum();
            }
        });
        power_to_db(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::goldens;

    #[test]
    fn power_to_db_basics() {
        let mut x = [1.0, 10.0, 0.01, 0.0, 1e-12];
        power_to_db(&mut x);
        assert_eq!(x[0], 0.0);
        assert!((x[1] - 10.0).abs() < 1e-6);
        assert!((x[2] + 20.0).abs() < 1e-5);
        assert!((x[3] + 100.0).abs() < 1e-4);
        assert_eq!(x[3], x[4]);
    }

    #[test]
    fn mel_scale_round_trips() {
        for hz in [0.0, 300.0, 999.0, 1000.0, 4000.0, 11025.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9 * hz.max(1.0));
        }
        // librosa.hz_to_mel([300, 1000, 4000]), rounded to 4 dp.
        assert!((hz_to_mel(300.0) - 4.5).abs() < 1e-4);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-4);
        assert!((hz_to_mel(4000.0) - 35.1638).abs() < 1e-4);
    }

    #[test]
    fn filterbank_rows_are_nonnegative_and_nonempty() {
        let c = MelConfig::default();
        let fb = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax);
        assert_eq!(fb.len(), 256 * 513);
        for row in fb.chunks_exact(513) {
            assert!(row.iter().all(|&w| w >= 0.0));
            assert!(row.iter().any(|&w| w > 0.0));
        }
    }

    #[test]
    fn filterbank_matches_librosa() {
        let g = goldens::load();
        let mut worst = 0.0f32;
        for fbg in &g.filterbanks {
            let fb = mel_filterbank(fbg.sample_rate, fbg.n_fft, fbg.n_mels, fbg.fmin, fbg.fmax);
            let n_bins = fbg.n_fft / 2 + 1;
            assert_eq!(fb.len(), fbg.n_mels * n_bins);
            assert_eq!(fbg.rows.len(), fbg.n_mels);
            for (m, (row, want)) in fb.chunks_exact(n_bins).zip(&fbg.rows).enumerate() {
                for (k, &w) in row.iter().enumerate() {
                    let expected = k
                        .checked_sub(want.start)
                        .and_then(|i| want.weights.get(i))
                        .copied()
                        .unwrap_or(0.0);
                    let err = (w - expected).abs() / expected.abs().max(1e-6);
                    worst = worst.max(err);
                    assert!(
                        err < 1e-5,
                        "sr {} n_fft {} mel {m} bin {k}: {w} vs {expected}",
                        fbg.sample_rate,
                        fbg.n_fft
                    );
                }
            }
        }
        eprintln!("filterbank max relative error: {worst:e}");
    }

    #[test]
    fn sparse_bands_cover_the_dense_filterbank() {
        let lm = LogMel::new(MelConfig::default());
        let c = lm.config();
        let dense = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax);
        let nnz = dense.iter().filter(|&&w| w != 0.0).count();
        assert_eq!(lm.bands.len(), 256);
        assert!(lm.weights.len() >= nnz && lm.weights.len() < 4 * 256 * 4, "{}", lm.weights.len());
    }

    // Absolute 1e-3 dB everywhere, including the quietest bands: the test signals keep white
    // noise under every tone, so no band's power falls into the f32 FFT's rounding noise (whose
    // size follows the frame's loudest bin), and digitally silent frames are exactly 0 -> -100 dB
    // on both sides. A relative criterion for tiny powers is therefore not needed.
    #[test]
    fn logmel_matches_librosa() {
        let g = goldens::load();
        let lm = LogMel::new(MelConfig::default());
        let mut out = vec![0.0; 3];
        let mut worst = (0.0f32, String::new());
        for sig in &g.signals {
            let x = sig.samples();
            let want = &sig.logmel;
            assert_eq!(lm.n_frames(x.len()), want.n_frames, "{}", sig.name);
            lm.compute(&x, &mut out);
            assert_eq!(out.len(), want.n_mels * want.n_frames);
            assert_eq!(out.len(), want.db.len());
            for (i, (&a, &b)) in out.iter().zip(&want.db).enumerate() {
                let err = (a - b).abs();
                let (m, t) = (i / want.n_frames, i % want.n_frames);
                if err > worst.0 {
                    worst = (err, format!("{} mel {m} frame {t}: {a} vs {b}", sig.name));
                }
                assert!(err < 1e-3, "{} mel {m} frame {t}: {a} dB vs librosa {b} dB", sig.name);
            }
        }
        eprintln!("log-mel max abs error vs librosa: {:e} dB at {}", worst.0, worst.1);
    }

    #[test]
    fn default_segment_shape_and_reuse() {
        let lm = LogMel::new(MelConfig::default());
        let x = goldens::noise(8000, 3);
        let mut out = Vec::new();
        lm.compute(&x, &mut out);
        assert_eq!(out.len(), 256 * 32);
        let first = out.clone();
        lm.compute(&x[..4000], &mut out);
        assert_eq!(out.len(), 256 * lm.n_frames(4000));
        lm.compute(&x, &mut out);
        assert_eq!(out, first);
        // An empty signal is one frame of centre padding: silence, the -100 dB floor.
        lm.compute(&[], &mut out);
        let floor = 10.0 * 1e-10f32.log10();
        assert_eq!(out, vec![floor; 256]);
    }

    #[test]
    fn config_validation() {
        assert!(MelConfig::default().validate().is_ok());
        let bad = MelConfig { hop: 0, ..MelConfig::default() };
        assert!(bad.validate().is_err());
        let bad = MelConfig { fmin: 5000.0, ..MelConfig::default() };
        assert!(bad.validate().is_err());
        let bad = MelConfig { fmax: f32::NAN, ..MelConfig::default() };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn config_serde_round_trip() {
        let c = MelConfig::default();
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<MelConfig>(&s).unwrap(), c);
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn types_are_send_and_sync() {
        assert_send_sync::<LogMel>();
        assert_send_sync::<Stft>();
    }
}
