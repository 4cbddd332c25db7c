//! Normalised cross-correlation of two signals: whether one holds a copy of the other.

/// The correlation from which two clips count as the same audio (a loop, a duplicated file):
/// `eval`'s "same audio" answers and the trainer's masked negatives.
pub const SAME_AUDIO: f32 = 0.9;

/// The largest normalised cross-correlation of `a` against every placement of it inside `b`
/// (0 when `b` is shorter than `a`), by FFT.
pub fn best_correlation(a: &[f32], b: &[f32]) -> f32 {
    let (la, lb) = (a.len(), b.len());
    if la == 0 || lb < la {
        return 0.0;
    }
    let n = (la + lb).next_power_of_two();
    let mut planner = realfft::RealFftPlanner::<f32>::new();
    let (fwd, inv) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
    let spectrum = |x: &mut Vec<f32>| {
        x.resize(n, 0.0);
        let mut out = fwd.make_output_vec();
        fwd.process(x, &mut out).map(|_| out)
    };
    let mut ar: Vec<f32> = a.iter().rev().copied().collect();
    let mut bp = b.to_vec();
    let (Ok(fa), Ok(fb)) = (spectrum(&mut ar), spectrum(&mut bp)) else { return 0.0 };
    let mut prod: Vec<_> = fa.iter().zip(&fb).map(|(x, y)| x * y).collect();
    let mut corr = inv.make_output_vec();
    if inv.process(&mut prod, &mut corr).is_err() {
        return 0.0;
    }
    let ea: f64 = a.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let mut prefix = vec![0.0f64; lb + 1];
    for (i, &x) in b.iter().enumerate() {
        prefix[i + 1] = prefix[i] + f64::from(x) * f64::from(x);
    }
    (0..=lb - la)
        .map(|lag| {
            let eb = prefix[lag + la] - prefix[lag];
            // A (near-)silent placement holds no copy: dividing the FFT's rounding noise
            // there by its tiny energy would score it far above 1.
            if eb <= 1e-6 * ea {
                return 0.0;
            }
            let c = f64::from(corr[lag + la - 1]) / n as f64;
            (c / (ea * eb).sqrt().max(1e-12)).clamp(-1.0, 1.0) as f32
        })
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn noise(seed: u64, n: usize) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn silence_after_the_audio_is_no_copy_of_it() {
        let a = noise(3, 500);
        let mut b = noise(4, 1000);
        b.extend(std::iter::repeat_n(0.0, 1000));
        let c = best_correlation(&a, &b);
        assert!(c < 0.3, "{c}");
        // A quiet but real copy still counts.
        let mut quiet = vec![0.0; 300];
        quiet.extend(a.iter().map(|x| 1e-3 * x));
        quiet.extend(std::iter::repeat_n(0.0, 300));
        assert!(best_correlation(&a, &quiet) > 0.999);
    }

    #[test]
    fn correlation_finds_a_copy_anywhere_and_rejects_other_audio() {
        let b = noise(1, 3000);
        let copy = b[1234..1234 + 800].iter().map(|x| 0.3 * x).collect::<Vec<_>>();
        assert!(best_correlation(&copy, &b) > 0.999);
        assert!(best_correlation(&noise(2, 800), &b) < 0.3);
        assert_eq!(best_correlation(&b, &copy), 0.0);
        assert_eq!(best_correlation(&[], &b), 0.0);
    }
}
