//! The one semantic theme: every status has a glyph and a colour, so colour is never the only
//! signal; with `NO_COLOR` set (<https://no-color.org>) the glyphs and text attributes remain.

use ratatui::style::{Color, Modifier, Style};

use crate::catalog::{Band, MatchStatus, PieceStatus};

/// Named styles, looked up by meaning rather than by colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Whether colours are used at all (false under `NO_COLOR`).
    pub color: bool,
}

impl Default for Theme {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to a non-empty value.
    pub fn from_env() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self { color: !no_color }
    }

    /// A monochrome theme (tests and `NO_COLOR`).
    pub fn mono() -> Self {
        Self { color: false }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color { Style::new().fg(c) } else { Style::new() }
    }

    /// Body text.
    pub fn text(&self) -> Style {
        Style::new()
    }

    /// Secondary text: ids, units, hints.
    pub fn dim(&self) -> Style {
        if self.color { Style::new().fg(Color::DarkGray) } else { Style::new() }
    }

    /// Headings and titles.
    pub fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The row under the cursor.
    pub fn cursor(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Rgb(40, 48, 64)).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// Borders of the focused pane.
    pub fn focus_border(&self) -> Style {
        self.fg(Color::Cyan)
    }

    /// Borders of other panes.
    pub fn border(&self) -> Style {
        self.dim()
    }

    /// Keys in the key bar and help.
    pub fn key(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// Good news: finished jobs, confirmations.
    pub fn ok(&self) -> Style {
        self.fg(Color::Green)
    }

    /// Needs attention.
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow)
    }

    /// Failures and validation errors.
    pub fn error(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Selected for a bulk action.
    pub fn marked(&self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }

    /// A match status: glyph and style (confirmed green, pending yellow, disputed red,
    /// dismissed grey, escalated magenta).
    pub fn status(&self, s: MatchStatus) -> (&'static str, Style) {
        match s {
            MatchStatus::Pending => ("?", self.fg(Color::Yellow)),
            MatchStatus::Confirmed => ("✓", self.fg(Color::Green)),
            MatchStatus::Dismissed => ("✗", self.dim()),
            MatchStatus::Disputed => ("!", self.fg(Color::Red)),
            MatchStatus::Escalated => ("⚑", self.fg(Color::Magenta)),
        }
    }

    /// A piece's curation status: glyph and style.
    pub fn piece(&self, s: PieceStatus) -> (&'static str, Style) {
        match s {
            PieceStatus::Unreviewed => ("·", self.dim()),
            PieceStatus::Keep => ("+", self.fg(Color::Green)),
            PieceStatus::Drop => ("-", self.fg(Color::Red)),
        }
    }

    /// A confidence band's style.
    pub fn band(&self, b: Band) -> Style {
        match b {
            Band::High => self.fg(Color::Green),
            Band::Medium => self.fg(Color::Yellow),
            Band::Low => self.fg(Color::Red),
        }
    }

    /// Heat-map colour for a value in 0..=1 (magma-like ramp), or `None` without colour.
    pub fn heat(&self, v: f32) -> Option<Color> {
        if !self.color {
            return None;
        }
        const STOPS: [(u8, u8, u8); 6] = [
            (0, 0, 4),
            (40, 11, 84),
            (101, 21, 110),
            (182, 54, 121),
            (251, 136, 97),
            (252, 253, 191),
        ];
        let v = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
        let i = (v.floor() as usize).min(STOPS.len() - 2);
        let t = v - i as f32;
        let mix = |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * t).round() as u8;
        let (a, b) = (STOPS[i], STOPS[i + 1]);
        Some(Color::Rgb(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2)))
    }
}

/// Shade glyphs for a value in 0..=1, for heat maps without colour.
pub fn shade(v: f32) -> &'static str {
    const RAMP: [&str; 5] = [" ", "░", "▒", "▓", "█"];
    RAMP[((v.clamp(0.0, 1.0) * 4.0).round() as usize).min(4)]
}
