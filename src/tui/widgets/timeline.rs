//! The match timeline: the upload as one bar over the reference episode as another, the
//! matched stretches shaded on both (the selected one solid, others light, coloured and
//! glyphed by status), with connector marks that join the selected stretch's ends.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

use crate::catalog::MatchStatus;
use crate::tui::theme::Theme;

/// One matched stretch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelineSpan {
    /// Range in the upload, seconds.
    pub upload: (f64, f64),
    /// Range in the episode shown, seconds (none: the match is into another episode).
    pub episode: Option<(f64, f64)>,
    /// Review status.
    pub status: MatchStatus,
    /// The selected match.
    pub selected: bool,
}

/// Upload bar over reference bar, 3 rows (4 with a time scale).
#[derive(Debug, Clone)]
pub struct Timeline<'a> {
    /// Upload length, seconds.
    pub upload_len: f64,
    /// Episode length, seconds.
    pub episode_len: f64,
    /// Stretches to draw.
    pub spans: &'a [TimelineSpan],
    /// The play position set by a click, upload seconds (drawn as `▼` over the upload bar).
    pub marker: Option<f64>,
    /// Styles.
    pub theme: Theme,
}

const LABEL: u16 = 9;

/// Which bar a click in a timeline of `area` hit, and where: `(row, seconds)` with row 0 the
/// upload bar (and the row under it), 2 the episode bar; `None` outside the bars.
pub fn time_at(area: Rect, len: (f64, f64), col: u16, row: u16) -> Option<(u16, f64)> {
    if area.width <= LABEL + 2 || area.height < 3 || !area.contains((col, row).into()) {
        return None;
    }
    let bar_x = area.x + LABEL;
    let bar_w = area.width - LABEL;
    let r = row - area.y;
    if col < bar_x || r > 2 {
        return None;
    }
    let frac = f64::from(col - bar_x) / f64::from((bar_w - 1).max(1));
    let (r, l) = if r == 2 { (2, len.1) } else { (0, len.0) };
    Some((r, frac * l))
}

impl Widget for Timeline<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width <= LABEL + 2 || area.height < 3 {
            return;
        }
        let bar_x = area.x + LABEL;
        let bar_w = area.width - LABEL;
        let col = |t: f64, len: f64| -> u16 {
            if len <= 0.0 {
                return 0;
            }
            ((t / len).clamp(0.0, 1.0) * f64::from(bar_w - 1)).round() as u16
        };
        let dim = self.theme.dim();
        buf.set_string(area.x, area.y, "upload", dim);
        buf.set_string(area.x, area.y + 2, "episode", dim);
        for x in 0..bar_w {
            buf.set_string(bar_x + x, area.y, "─", dim);
            buf.set_string(bar_x + x, area.y + 2, "─", dim);
        }
        // Others first, the selected one on top.
        let mut spans: Vec<&TimelineSpan> = self.spans.iter().collect();
        spans.sort_by_key(|s| s.selected);
        for s in spans {
            let (_, style) = self.theme.status(s.status);
            let glyph = if s.selected { "█" } else { "▒" };
            let (a, b) = (col(s.upload.0, self.upload_len), col(s.upload.1, self.upload_len));
            for x in a..=b.max(a) {
                buf.set_string(bar_x + x, area.y, glyph, style);
            }
            if let Some((ea, eb)) = s.episode {
                let (a, b) = (col(ea, self.episode_len), col(eb, self.episode_len));
                for x in a..=b.max(a) {
                    buf.set_string(bar_x + x, area.y + 2, glyph, style);
                }
            }
        }
        if let Some(s) = self.spans.iter().find(|s| s.selected) {
            let style = self.theme.status(s.status).1;
            if let Some((ea, eb)) = s.episode {
                let pairs = [
                    (col(s.upload.0, self.upload_len), col(ea, self.episode_len)),
                    (col(s.upload.1, self.upload_len), col(eb, self.episode_len)),
                ];
                for (u, e) in pairs {
                    let glyph = match e as i32 - u as i32 {
                        d if d.abs() <= 1 => "│",
                        d if d > 0 => "╲",
                        _ => "╱",
                    };
                    // Half way between the two ends, so the eye follows the join.
                    let mid = ((u32::from(u) + u32::from(e)) / 2) as u16;
                    buf.set_string(bar_x + mid, area.y + 1, glyph, style);
                }
            }
        }
        if let Some(t) = self.marker {
            let x = bar_x + col(t, self.upload_len);
            buf.set_string(x, area.y + 1, "▲", self.theme.key());
        }
        let right =
            format!("up {} · ep {}", short_hms(self.upload_len), short_hms(self.episode_len));
        let right_w = right.chars().count() as u16;
        if area.height >= 4 && right_w + 6 <= bar_w {
            let y = area.y + 3;
            buf.set_string(bar_x, y, "0:00", dim);
            buf.set_string(bar_x + bar_w - right_w, y, right, dim);
        }
    }
}

/// `M:SS`, or `HH:MM:SS` from an hour on.
pub fn short_hms(s: f64) -> String {
    let t = s.max(0.0).round() as u64;
    let (h, m, sec) = (t / 3600, t % 3600 / 60, t % 60);
    if h > 0 { format!("{h:02}:{m:02}:{sec:02}") } else { format!("{m}:{sec:02}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_bars_and_the_join() {
        let spans = [
            TimelineSpan {
                upload: (0.0, 5.0),
                episode: Some((10.0, 15.0)),
                status: MatchStatus::Pending,
                selected: true,
            },
            TimelineSpan {
                upload: (15.0, 20.0),
                episode: None,
                status: MatchStatus::Confirmed,
                selected: false,
            },
        ];
        let tl = Timeline {
            upload_len: 20.0,
            episode_len: 20.0,
            spans: &spans,
            marker: None,
            theme: Theme::mono(),
        };
        let mut buf = Buffer::empty(Rect::new(0, 0, 40, 4));
        tl.render(buf.area, &mut buf);
        assert_eq!(
            buf,
            Buffer::with_lines([
                "upload   █████████──────────────▒▒▒▒▒▒▒▒",
                "                ╲       ╲               ",
                "episode  ───────────────█████████───────",
                "         0:00          up 0:20 · ep 0:20",
            ])
        );
        assert_eq!(short_hms(3725.0), "01:02:05");
        assert_eq!(short_hms(65.0), "1:05");
    }
}
