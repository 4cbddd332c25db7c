//! Signal processing shared by the models: STFT/iSTFT, mel filterbank, log-power mel, and the
//! cross-correlation that tells whether two clips hold the same audio.
//!
//! Everything follows librosa's conventions (centred frames with zero padding, periodic Hann
//! window, Slaney mel scale), so models trained on librosa features in Python see the same
//! numbers here; `fixtures/goldens/dsp.json` (written by `scripts/dsp_goldens.py`) pins that.

mod correlate;
mod mel;
mod stft;

pub use correlate::{SAME_AUDIO, best_correlation};

pub use mel::{LogMel, MelConfig, mel_filterbank, power_to_db};
pub use stft::{Complex32, Stft, hann_window};

/// librosa reference values from `fixtures/goldens/dsp.json`, for the unit tests.
#[cfg(test)]
mod goldens {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Goldens {
        pub signals: Vec<Signal>,
        pub istft: IstftGolden,
        pub filterbanks: Vec<Filterbank>,
    }

    impl Goldens {
        pub fn signal(&self, name: &str) -> &Signal {
            self.signals.iter().find(|s| s.name == name).unwrap()
        }
    }

    #[derive(Deserialize)]
    pub struct IstftGolden {
        pub signal: String,
        pub n_fft: usize,
        pub hop: usize,
        pub length: usize,
        pub spans: Vec<Span>,
    }

    #[derive(Deserialize)]
    pub struct Span {
        pub start: usize,
        pub samples: Vec<f32>,
    }

    #[derive(Deserialize)]
    pub struct Signal {
        pub name: String,
        pub scale: f32,
        pub pcm: Vec<i16>,
        pub stft: StftGolden,
        pub logmel: LogMelGolden,
    }

    impl Signal {
        /// The 16-bit samples as librosa saw them: `pcm / scale`, exact in f32.
        pub fn samples(&self) -> Vec<f32> {
            self.pcm.iter().map(|&v| f32::from(v) / self.scale).collect()
        }
    }

    #[derive(Deserialize)]
    pub struct StftGolden {
        pub n_fft: usize,
        pub hop: usize,
        pub n_frames: usize,
        pub frames: Vec<usize>,
        pub magnitude: Vec<Vec<f32>>,
        pub complex_frames: Vec<usize>,
        pub re: Vec<Vec<f32>>,
        pub im: Vec<Vec<f32>>,
    }

    #[derive(Deserialize)]
    pub struct LogMelGolden {
        pub n_mels: usize,
        pub n_frames: usize,
        pub db: Vec<f32>,
    }

    #[derive(Deserialize)]
    pub struct Filterbank {
        pub sample_rate: u32,
        pub n_fft: usize,
        pub n_mels: usize,
        pub fmin: f32,
        pub fmax: f32,
        pub rows: Vec<FilterbankRow>,
    }

    #[derive(Deserialize)]
    pub struct FilterbankRow {
        pub start: usize,
        pub weights: Vec<f32>,
    }

    pub fn load() -> Goldens {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/goldens/dsp.json");
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Deterministic white noise in [-0.5, 0.5) (xorshift64*), for round-trip tests.
    pub fn noise(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
                r as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }
}
