//! Unit newtypes: sample counts, seconds, segment indices and sample rates are different things,
//! and most offset bugs in fingerprint matching are unit mix-ups.

use serde::{Deserialize, Serialize};

/// A sample rate in Hz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SampleRate(pub u32);

/// A count or position in samples (per channel) at some [`SampleRate`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Samples(pub u64);

/// A time or duration in seconds.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
pub struct Seconds(pub f64);

/// The index of a fingerprint segment inside a piece (segment `i` starts at `i * hop`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct SegmentIdx(pub u32);

impl SampleRate {
    /// Seconds spanned by `n` samples at this rate.
    pub fn seconds(self, n: Samples) -> Seconds {
        Seconds(n.0 as f64 / f64::from(self.0))
    }

    /// `n` samples at this rate, counted at rate `to` instead (to the nearest sample).
    pub fn rescale(self, n: Samples, to: SampleRate) -> Samples {
        let (from, to) = (u128::from(self.0.max(1)), u128::from(to.0));
        Samples(((u128::from(n.0) * to + from / 2) / from) as u64)
    }

    /// Samples spanned by `s` seconds at this rate, rounded to the nearest sample (negative
    /// times clamp to zero).
    pub fn samples(self, s: Seconds) -> Samples {
        Samples((s.0 * f64::from(self.0)).round().max(0.0) as u64)
    }
}

impl Seconds {
    /// Whole milliseconds, rounded half away from zero (negative times clamp to zero): what
    /// both [`Seconds::hms`] and [`Seconds::millis_str`] print, so the two never differ.
    fn millis(self) -> u64 {
        (self.0.max(0.0) * 1000.0).round() as u64
    }

    /// `S.mmm`: seconds with millisecond precision (`{:.3}` would round halves to even, and
    /// disagree with [`Seconds::hms`] by a millisecond on exact halves such as 10.0625 s).
    pub fn millis_str(self) -> String {
        let ms = self.millis();
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }

    /// `HH:MM:SS.mmm`, the form legal teams paste into spreadsheets.
    pub fn hms(self) -> String {
        let total_ms = self.millis();
        let (h, rem) = (total_ms / 3_600_000, total_ms % 3_600_000);
        let (m, rem) = (rem / 60_000, rem % 60_000);
        format!("{h:02}:{m:02}:{:02}.{:03}", rem / 1000, rem % 1000)
    }
}

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} s", self.0)
    }
}

impl std::fmt::Display for SampleRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        let sr = SampleRate(48_000);
        assert_eq!(sr.samples(Seconds(1.5)), Samples(72_000));
        assert_eq!(sr.seconds(Samples(24_000)), Seconds(0.5));
        assert_eq!(sr.samples(Seconds(-1.0)), Samples(0));
    }

    #[test]
    fn hms_has_millisecond_precision() {
        assert_eq!(Seconds(0.0).hms(), "00:00:00.000");
        assert_eq!(Seconds(3723.0456).hms(), "01:02:03.046");
        assert_eq!(Seconds(59.9996).hms(), "00:01:00.000");
    }

    #[test]
    fn rescales_to_the_nearest_sample() {
        let (a, b) = (SampleRate(16_000), SampleRate(44_100));
        assert_eq!(a.rescale(Samples(16_000), b), Samples(44_100));
        assert_eq!(a.rescale(Samples(1), b), Samples(3)); // 2.75625
        assert_eq!(a.rescale(Samples(176_800 * 16), SampleRate(48_000)), Samples(176_800 * 48));
        assert_eq!(a.rescale(Samples(16_001), SampleRate(8_000)), Samples(8_001)); // 8000.5 up
    }

    #[test]
    fn seconds_and_hms_forms_round_alike() {
        // 80,500 samples at 8 kHz: an exact half millisecond, where `{:.3}` rounds to even.
        let s = Seconds(80_500.0 / 8_000.0);
        assert_eq!((s.millis_str().as_str(), s.hms().as_str()), ("10.063", "00:00:10.063"));
        assert_eq!(Seconds(3723.0456).millis_str(), "3723.046");
        assert_eq!(Seconds(0.0).millis_str(), "0.000");
        assert_eq!(Seconds(-1.0).millis_str(), "0.000");
    }
}
