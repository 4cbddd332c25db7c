//! The one semantic theme: every status has a glyph and a colour, so colour is never the only
//! signal; with `NO_COLOR` set (<https://no-color.org>) the glyphs and text attributes remain.
//! `[tui] theme = "dark" | "light"` in `aniprint.toml` picks a [`Preset`] and `[tui.colors]`
//! overrides single colours by their [`Palette`] name (`confirmed = "green"`,
//! `pending = "#d7af00"`).

use ratatui::style::{Color, Modifier, Style};
use serde::{Deserialize, Serialize};

use crate::catalog::{Band, MatchStatus, PieceStatus};
use crate::config::TuiConfig;

/// A built-in set of colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// For dark terminal backgrounds.
    #[default]
    Dark,
    /// For light terminal backgrounds.
    Light,
}

/// The semantic colours, each overridable from `[tui.colors]` by its field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    /// Secondary text: ids, units, hints; also dismissed matches and unreviewed pieces.
    pub dim: Color,
    /// Headings, titles and the focused pane's border.
    pub title: Color,
    /// Background of the row under the cursor.
    pub cursor: Color,
    /// Keys in the key bar and help.
    pub key: Color,
    /// Good news: finished jobs, kept pieces, high confidence.
    pub ok: Color,
    /// Needs attention: medium confidence.
    pub warn: Color,
    /// Failures, dropped pieces, low confidence.
    pub error: Color,
    /// Selected for a bulk action.
    pub marked: Color,
    /// Confirmed matches.
    pub confirmed: Color,
    /// Pending matches.
    pub pending: Color,
    /// Disputed matches.
    pub disputed: Color,
    /// Dismissed matches.
    pub dismissed: Color,
    /// Escalated matches.
    pub escalated: Color,
}

/// The names `[tui.colors]` accepts, in [`Palette`] order.
pub const COLOR_NAMES: &[&str] = &[
    "dim",
    "title",
    "cursor",
    "key",
    "ok",
    "warn",
    "error",
    "marked",
    "confirmed",
    "pending",
    "disputed",
    "dismissed",
    "escalated",
];

impl Palette {
    /// A preset's colours.
    pub fn preset(p: Preset) -> Self {
        match p {
            Preset::Dark => Self {
                dim: Color::DarkGray,
                title: Color::Cyan,
                cursor: Color::Rgb(40, 48, 64),
                key: Color::Yellow,
                ok: Color::Green,
                warn: Color::Yellow,
                error: Color::Red,
                marked: Color::Magenta,
                confirmed: Color::Green,
                pending: Color::Yellow,
                disputed: Color::Red,
                dismissed: Color::DarkGray,
                escalated: Color::Magenta,
            },
            Preset::Light => Self {
                dim: Color::Rgb(118, 118, 118),
                title: Color::Rgb(0, 95, 175),
                cursor: Color::Rgb(215, 225, 240),
                key: Color::Rgb(175, 95, 0),
                ok: Color::Rgb(0, 128, 0),
                warn: Color::Rgb(175, 135, 0),
                error: Color::Rgb(192, 0, 0),
                marked: Color::Rgb(135, 0, 135),
                confirmed: Color::Rgb(0, 128, 0),
                pending: Color::Rgb(175, 135, 0),
                disputed: Color::Rgb(192, 0, 0),
                dismissed: Color::Rgb(138, 138, 138),
                escalated: Color::Rgb(135, 0, 135),
            },
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut Color> {
        Some(match name {
            "dim" => &mut self.dim,
            "title" => &mut self.title,
            "cursor" => &mut self.cursor,
            "key" => &mut self.key,
            "ok" => &mut self.ok,
            "warn" => &mut self.warn,
            "error" => &mut self.error,
            "marked" => &mut self.marked,
            "confirmed" => &mut self.confirmed,
            "pending" => &mut self.pending,
            "disputed" => &mut self.disputed,
            "dismissed" => &mut self.dismissed,
            "escalated" => &mut self.escalated,
            _ => return None,
        })
    }

    /// Set the colour called `name` from a ratatui colour name (`green`, `lightred`), an
    /// index (`214`) or `#rrggbb`; the error names the key.
    pub fn set(&mut self, name: &str, value: &str) -> std::result::Result<(), String> {
        let Some(slot) = self.slot(name) else {
            return Err(format!(
                "[tui.colors] {name}: unknown colour name (one of {})",
                COLOR_NAMES.join(", ")
            ));
        };
        *slot = value.parse::<Color>().map_err(|_| {
            format!("[tui.colors] {name} = {value:?}: not a colour (a name such as \"green\", or \"#rrggbb\")")
        })?;
        Ok(())
    }
}

/// Named styles, looked up by meaning rather than by colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Whether colours are used at all (false under `NO_COLOR`).
    pub color: bool,
    /// The colours used when `color` is true.
    pub palette: Palette,
}

impl Default for Theme {
    fn default() -> Self {
        Self::from_env()
    }
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

impl Theme {
    /// The dark preset, with colours unless `NO_COLOR` is set to a non-empty value.
    pub fn from_env() -> Self {
        Self { color: !no_color(), palette: Palette::preset(Preset::Dark) }
    }

    /// The `[tui]` settings' preset and colour overrides; `NO_COLOR` still turns colour off.
    pub fn from_config(cfg: &TuiConfig) -> std::result::Result<Self, String> {
        let mut palette = Palette::preset(cfg.theme);
        for (name, value) in &cfg.colors {
            palette.set(name, value)?;
        }
        Ok(Self { color: !no_color(), palette })
    }

    /// A preset with colours on (tests and previews).
    pub fn preset(p: Preset) -> Self {
        Self { color: true, palette: Palette::preset(p) }
    }

    /// A monochrome theme (tests and `NO_COLOR`).
    pub fn mono() -> Self {
        Self { color: false, palette: Palette::preset(Preset::Dark) }
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
        self.fg(self.palette.dim)
    }

    /// Headings and titles.
    pub fn title(&self) -> Style {
        self.fg(self.palette.title).add_modifier(Modifier::BOLD)
    }

    /// The row under the cursor.
    pub fn cursor(&self) -> Style {
        if self.color {
            Style::new().bg(self.palette.cursor).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// Borders of the focused pane.
    pub fn focus_border(&self) -> Style {
        self.fg(self.palette.title)
    }

    /// Borders of other panes.
    pub fn border(&self) -> Style {
        self.dim()
    }

    /// Keys in the key bar and help.
    pub fn key(&self) -> Style {
        self.fg(self.palette.key).add_modifier(Modifier::BOLD)
    }

    /// Good news: finished jobs, confirmations.
    pub fn ok(&self) -> Style {
        self.fg(self.palette.ok)
    }

    /// Needs attention.
    pub fn warn(&self) -> Style {
        self.fg(self.palette.warn)
    }

    /// Failures and validation errors.
    pub fn error(&self) -> Style {
        self.fg(self.palette.error).add_modifier(Modifier::BOLD)
    }

    /// Selected for a bulk action.
    pub fn marked(&self) -> Style {
        self.fg(self.palette.marked).add_modifier(Modifier::BOLD)
    }

    /// A match status: glyph and style (confirmed green, pending yellow, disputed red,
    /// dismissed grey, escalated magenta in the dark preset).
    pub fn status(&self, s: MatchStatus) -> (&'static str, Style) {
        let p = &self.palette;
        match s {
            MatchStatus::Pending => ("?", self.fg(p.pending)),
            MatchStatus::Confirmed => ("✓", self.fg(p.confirmed)),
            MatchStatus::Dismissed => ("✗", self.fg(p.dismissed)),
            MatchStatus::Disputed => ("!", self.fg(p.disputed)),
            MatchStatus::Escalated => ("⚑", self.fg(p.escalated)),
        }
    }

    /// A piece's curation status: glyph and style.
    pub fn piece(&self, s: PieceStatus) -> (&'static str, Style) {
        match s {
            PieceStatus::Unreviewed => ("·", self.dim()),
            PieceStatus::Keep => ("+", self.fg(self.palette.ok)),
            PieceStatus::Drop => ("-", self.fg(self.palette.error)),
        }
    }

    /// A confidence band's style.
    pub fn band(&self, b: Band) -> Style {
        match b {
            Band::High => self.fg(self.palette.ok),
            Band::Medium => self.fg(self.palette.warn),
            Band::Low => self.fg(self.palette.error),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_preset_differs_and_no_color_keeps_glyphs() {
        let (dark, light) = (Theme::preset(Preset::Dark), Theme::preset(Preset::Light));
        assert_eq!(dark.status(MatchStatus::Confirmed).1.fg, Some(Color::Green));
        assert_ne!(dark.status(MatchStatus::Pending), light.status(MatchStatus::Pending));
        assert_ne!(dark.cursor(), light.cursor());
        assert_eq!(Theme::mono().status(MatchStatus::Disputed), ("!", Style::new()));
    }
}
