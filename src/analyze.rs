//! Audio to per-stem fingerprints: the models' half of every pipeline. Ingest runs it on each
//! piece of an episode, scan and query on an upload, so both sides of a match go through the
//! same separation and the same front end.

use std::borrow::Cow;

use crate::Result;
use crate::fingerprint::{Fingerprinter, Fingerprints};
use crate::index::{IndexKey, Stem};
use crate::units::SampleRate;

/// Fingerprints of phase-shifted copies of one audio: `(shift in hops, fingerprints)`.
pub type PhasedFingerprints = Vec<(f64, Fingerprints)>;

/// Segment grids a reference piece is stored on by default: the plain one and three starting
/// a quarter, a half and three quarters of a hop in, a segment every eighth of a second in all
/// (see [`FingerprintConfig::grid_offsets`](crate::fingerprint::FingerprintConfig::grid_offsets)
/// for what it buys clip queries, and what it costs).
pub const REFERENCE_GRIDS: usize = 4;

/// Splits a mixture into (voice, background), same length and rate as the input.
pub trait StemSplitter: Send + Sync {
    /// Separate `mix` (mono, at [`StemSplitter::rate`]).
    fn split(&self, mix: &[f32]) -> Result<(Vec<f32>, Vec<f32>)>;
    /// The rate the splitter works at.
    fn rate(&self) -> SampleRate;
    /// Model name, for records.
    fn name(&self) -> String;
}

/// The fingerprinter, and the separator when stems are wanted.
pub struct Analyzer {
    fingerprinter: Fingerprinter,
    splitter: Option<Box<dyn StemSplitter>>,
    grids: usize,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("fingerprint", &self.fingerprinter.card().name)
            .field("separator", &self.splitter.as_ref().map(|s| s.name()))
            .field("grids", &self.grids)
            .finish()
    }
}

impl Analyzer {
    /// An analyzer from loaded models; without a splitter only the mix is fingerprinted.
    /// References are stored on [`REFERENCE_GRIDS`] grids.
    pub fn new(
        fingerprinter: Fingerprinter,
        splitter: Option<Box<dyn StemSplitter>>,
    ) -> Result<Self> {
        // Audio reaches both at one rate, unresampled: a separator of another rate would
        // silently give wrong stems.
        if let Some(s) = &splitter
            && s.rate() != fingerprinter.config().rate()
        {
            return Err(crate::Error::Invalid(format!(
                "separator {} works at {} and fingerprinter {} at {}: they must share a rate",
                s.name(),
                s.rate(),
                fingerprinter.card().name,
                fingerprinter.config().rate()
            )));
        }
        Ok(Self { fingerprinter, splitter, grids: REFERENCE_GRIDS })
    }

    /// The same analyzer storing references on `grids` segment grids (1: the plain grid only,
    /// half the vectors and fingerprinting of the default).
    pub fn with_grids(self, grids: usize) -> Self {
        Self { grids: grids.max(1), ..self }
    }

    /// Segment grids references are stored on.
    pub fn grids(&self) -> usize {
        self.grids
    }

    /// The rate audio must be given at.
    pub fn rate(&self) -> SampleRate {
        self.fingerprinter.config().rate()
    }

    /// The fingerprint model's name (part of every index key).
    pub fn model(&self) -> &str {
        &self.fingerprinter.card().name
    }

    /// The separator's name, if one is used.
    pub fn separator(&self) -> Option<String> {
        self.splitter.as_ref().map(|s| s.name())
    }

    /// The fingerprinter.
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }

    /// The stems this analyzer produces.
    pub fn stems(&self) -> Vec<Stem> {
        if self.splitter.is_some() {
            vec![Stem::Mix, Stem::Voice, Stem::Background]
        } else {
            vec![Stem::Mix]
        }
    }

    /// The index key of `stem` for this model.
    pub fn key(&self, stem: Stem) -> IndexKey {
        IndexKey::new(self.model(), stem)
    }

    /// The mix and, with a separator and when `separate`, each stem.
    fn split<'a>(&self, audio: &'a [f32], separate: bool) -> Result<Vec<(Stem, Cow<'a, [f32]>)>> {
        let mut stems = vec![(Stem::Mix, Cow::Borrowed(audio))];
        if let Some(s) = self.splitter.as_ref().filter(|_| separate) {
            let (voice, background) = s.split(audio)?;
            stems.push((Stem::Voice, Cow::Owned(voice)));
            stems.push((Stem::Background, Cow::Owned(background)));
        }
        Ok(stems)
    }

    /// [`Analyzer::analyze`] for phase-shifted copies of `audio` (`(shift in hops,
    /// fingerprints)` per stem, the unshifted copy first): the shifts of
    /// [`FingerprintConfig::phase_shifts`](crate::fingerprint::FingerprintConfig::phase_shifts),
    /// fractions of a hop, negative for a clip too short to shift later. Separation runs once.
    pub fn analyze_phases(
        &self,
        audio: &[f32],
        phases: usize,
    ) -> Result<Vec<(Stem, PhasedFingerprints)>> {
        let cfg = self.fingerprinter.config();
        let shifts = cfg.phase_shifts(audio.len(), phases);
        self.split(audio, true)?
            .into_iter()
            .map(|(stem, a)| {
                let copies = shifts
                    .iter()
                    .map(|&s| {
                        let f = self.fingerprinter.fingerprint(&cfg.phase_copy(&a, s))?;
                        Ok((s as f64 / cfg.hop as f64, f))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((stem, copies))
            })
            .collect()
    }

    /// Fingerprints of the mix and, with a separator, of each stem. `audio` is mono at
    /// [`Analyzer::rate`].
    pub fn analyze(&self, audio: &[f32]) -> Result<Vec<(Stem, Fingerprints)>> {
        self.split(audio, true)?
            .into_iter()
            .map(|(stem, a)| Ok((stem, self.fingerprinter.fingerprint(&a)?)))
            .collect()
    }

    /// The indexes a reference piece is stored in: per stem, one per segment grid of
    /// [`Analyzer::grids`], the plain grid first.
    pub fn reference_keys(&self) -> Vec<IndexKey> {
        let offsets = self.fingerprinter.config().grid_offsets(self.grids);
        self.stems()
            .into_iter()
            .flat_map(|stem| offsets.iter().map(move |&o| self.key(stem).at_offset(o as u32)))
            .collect()
    }

    /// What a reference piece stores: its fingerprints for each of
    /// [`Analyzer::reference_keys`], keyed by the index each goes to. Separation runs once.
    pub fn analyze_reference(&self, audio: &[f32]) -> Result<Vec<(IndexKey, Fingerprints)>> {
        self.analyze_reference_for(audio, &self.reference_keys())
    }

    /// [`Analyzer::analyze_reference`] for some of the indexes only (an episode on record that
    /// lacks them): the separator runs only when a separated stem is asked for.
    pub fn analyze_reference_for(
        &self,
        audio: &[f32],
        keys: &[IndexKey],
    ) -> Result<Vec<(IndexKey, Fingerprints)>> {
        let stems = self.split(audio, keys.iter().any(|k| k.stem != Stem::Mix))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some((_, a)) = stems.iter().find(|(s, _)| *s == key.stem) else { continue };
            let o = (key.offset as usize).min(a.len());
            out.push((key.clone(), self.fingerprinter.fingerprint(&a[o..])?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A splitter that says it works at 16 kHz.
    struct Wideband;

    impl StemSplitter for Wideband {
        fn split(&self, mix: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((mix.to_vec(), vec![0.0; mix.len()]))
        }
        fn rate(&self) -> SampleRate {
            SampleRate(16_000)
        }
        fn name(&self) -> String {
            "wideband".into()
        }
    }

    #[test]
    fn a_separator_of_another_rate_is_refused() {
        let fp = Fingerprinter::load_default(&candle_core::Device::Cpu).unwrap();
        assert_eq!(fp.config().rate(), SampleRate(8_000));
        let e = Analyzer::new(fp, Some(Box::new(Wideband))).unwrap_err().to_string();
        assert!(e.contains("wideband") && e.contains("16000 Hz"), "{e}");
    }
}
