//! A log-mel spectrogram drawn with upper half blocks: each cell shows two pixels, the upper
//! one as the foreground colour of `▀` and the lower one as the background (WORKFLOW.md §6).
//! Without colour it falls back to shade glyphs, one value per cell.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::Widget;

use crate::dsp::{LogMel, MelConfig};
use crate::tui::theme::{Theme, shade};

/// Dynamic range shown, dB below the loudest pixel.
const RANGE_DB: f32 = 70.0;

/// A computed spectrogram: `db[band * frames + frame]`, band 0 the lowest frequency.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecImage {
    /// Mel bands.
    pub bands: usize,
    /// Time frames.
    pub frames: usize,
    /// Log power, dB.
    pub db: Vec<f32>,
}

impl SpecImage {
    /// The log-mel spectrogram of mono `samples` at `rate` Hz, about `max_frames` frames wide.
    pub fn compute(samples: &[f32], rate: u32, max_frames: usize) -> Self {
        let bands = 48;
        let hop = (samples.len() / max_frames.max(1)).max(128);
        let cfg = MelConfig {
            sample_rate: rate,
            n_fft: 512,
            hop,
            n_mels: bands,
            fmin: 50.0,
            fmax: rate as f32 / 2.0,
        };
        let mel = LogMel::new(cfg);
        let mut db = Vec::new();
        mel.compute(samples, &mut db);
        let frames = db.len().checked_div(bands).unwrap_or(0);
        Self { bands, frames, db }
    }

    /// A synthetic image from a function of (band, frame), for tests.
    pub fn from_fn(bands: usize, frames: usize, f: impl Fn(usize, usize) -> f32) -> Self {
        let mut db = Vec::with_capacity(bands * frames);
        for b in 0..bands {
            for t in 0..frames {
                db.push(f(b, t));
            }
        }
        Self { bands, frames, db }
    }

    /// The mean dB of bands `b0..b1` over frames `t0..t1` (clamped, non-empty).
    fn cell(&self, b0: usize, b1: usize, t0: usize, t1: usize) -> f32 {
        let (b1, t1) = (b1.clamp(b0 + 1, self.bands), t1.clamp(t0 + 1, self.frames));
        let mut sum = 0.0;
        let mut n = 0.0;
        for b in b0..b1 {
            for t in t0..t1 {
                sum += self.db[b * self.frames + t];
                n += 1.0;
            }
        }
        if n > 0.0 { sum / n } else { f32::MIN }
    }
}

/// Draws a [`SpecImage`] stretched over the area, low frequencies at the bottom.
#[derive(Debug, Clone, Copy)]
pub struct Spectrogram<'a> {
    image: &'a SpecImage,
    theme: Theme,
}

impl<'a> Spectrogram<'a> {
    /// A spectrogram widget.
    pub fn new(image: &'a SpecImage, theme: Theme) -> Self {
        Self { image, theme }
    }
}

impl Widget for Spectrogram<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let img = self.image;
        if area.is_empty() || img.bands == 0 || img.frames == 0 {
            return;
        }
        let top = img.db.iter().copied().fold(f32::MIN, f32::max);
        let floor = top - RANGE_DB;
        let norm = |db: f32| ((db - floor) / RANGE_DB).clamp(0.0, 1.0);
        let (w, h) = (usize::from(area.width), usize::from(area.height));
        let px_rows = h * 2;
        // Pixel row `py` (0 at the top) covers these bands.
        let bands_of = |py: usize| {
            let from_bottom = px_rows - 1 - py;
            let b0 = from_bottom * img.bands / px_rows;
            let b1 = (from_bottom + 1) * img.bands / px_rows;
            (b0, b1)
        };
        for x in 0..w {
            let t0 = x * img.frames / w;
            let t1 = (x + 1) * img.frames / w;
            for y in 0..h {
                let (ub0, ub1) = bands_of(2 * y);
                let (lb0, lb1) = bands_of(2 * y + 1);
                let upper = norm(img.cell(ub0, ub1, t0, t1));
                let lower = norm(img.cell(lb0, lb1, t0, t1));
                let pos = (area.x + x as u16, area.y + y as u16);
                let Some(cell) = buf.cell_mut(pos) else { continue };
                match (self.theme.heat(upper), self.theme.heat(lower)) {
                    (Some(fg), Some(bg)) => {
                        cell.set_symbol("▀").set_style(Style::new().fg(fg).bg(bg));
                    }
                    _ => {
                        cell.set_symbol(shade((upper + lower) / 2.0));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_rendering_puts_energy_where_it_is() {
        // Loud low bands in the first half of the time axis, silence elsewhere.
        let img = SpecImage::from_fn(8, 8, |b, t| if b < 4 && t < 4 { 0.0 } else { -100.0 });
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 2));
        Spectrogram::new(&img, Theme::mono()).render(buf.area, &mut buf);
        assert_eq!(buf, Buffer::with_lines(["    ", "██  "]));
    }

    #[test]
    fn colour_rendering_uses_half_blocks() {
        let img = SpecImage::from_fn(4, 2, |b, _| if b >= 2 { 0.0 } else { -100.0 });
        let mut buf = Buffer::empty(Rect::new(0, 0, 2, 1));
        Spectrogram::new(&img, Theme::preset(crate::tui::theme::Preset::Dark))
            .render(buf.area, &mut buf);
        let cell = &buf[(0, 0)];
        assert_eq!(cell.symbol(), "▀");
        // Upper pixel (high bands) loud: bright foreground over a dark background.
        assert_ne!(cell.fg, cell.bg);
    }

    #[test]
    fn a_tone_lands_in_one_band() {
        let rate = 16_000;
        let tone: Vec<f32> = (0..rate)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / rate as f32).sin())
            .collect();
        let img = SpecImage::compute(&tone, rate as u32, 50);
        assert_eq!(img.bands, 48);
        assert!(img.frames >= 50);
        let mid = img.frames / 2;
        let loudest = (0..img.bands)
            .max_by(|&a, &b| img.db[a * img.frames + mid].total_cmp(&img.db[b * img.frames + mid]))
            .unwrap();
        // 1 kHz sits in the lower half of a 50..8000 Hz mel axis.
        assert!((8..24).contains(&loudest), "band {loudest}");
    }
}
