//! Settings, layered: compiled-in defaults < config file (`aniprint.toml` in the catalog
//! directory, or `--config FILE`) < environment < command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::media::crop::CropConfig;
use crate::units::Seconds;
use crate::{Error, Result};

/// aniprint's settings file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Nominal piece length in seconds.
    pub piece_seconds: f64,
    /// How far (seconds) a piece boundary may move to find a quiet point.
    pub piece_search_seconds: f64,
    /// A last remainder shorter than this (seconds) merges into the previous piece.
    pub min_last_piece_seconds: f64,
    /// Working sample rate for ingest, in Hz.
    pub work_rate: u32,
    /// Preferred audio language (ISO 639-2), when no stream is chosen on the command line.
    pub audio_lang: Option<String>,
    /// Start report and rights CSVs with a UTF-8 byte-order mark ([`crate::report::UTF8_BOM`]):
    /// Excel on Windows reads a CSV without one in the system code page (Shift-JIS in Japan),
    /// which garbles every Japanese title and holder name.
    pub csv_bom: bool,
    /// Match review: dispute deadline and auto-review rules (`[review]`).
    pub review: crate::review::ReviewConfig,
    /// The terminal UI: theme preset and colour overrides (`[tui]`, `[tui.colors]`).
    pub tui: TuiConfig,
}

/// `[tui]`: how the terminal UI looks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuiConfig {
    /// `"dark"` (default) or `"light"`.
    pub theme: crate::tui::theme::Preset,
    /// Semantic colour overrides by name (`confirmed = "green"`, `pending = "#d7af00"`); the
    /// names are [`crate::tui::theme::COLOR_NAMES`].
    pub colors: BTreeMap<String, String>,
    /// Key overrides by action name (`confirm = "y"`, `"review.mark" = "m"`), see
    /// [`crate::tui::keymap::Keymap::with_overrides`].
    pub keys: BTreeMap<String, crate::tui::keymap::KeySpec>,
}

impl TuiConfig {
    /// Check every colour and key override (the error names the key).
    pub fn validate(&self) -> std::result::Result<(), String> {
        crate::tui::theme::Theme::from_config(self)?;
        crate::tui::keymap::Keymap::with_overrides(&self.keys)?;
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        let crop = CropConfig::default();
        Self {
            piece_seconds: crop.piece.0,
            piece_search_seconds: crop.search.0,
            min_last_piece_seconds: crop.min_last.0,
            work_rate: crate::ingest::WORK_RATE.0,
            audio_lang: None,
            csv_bom: false,
            review: crate::review::ReviewConfig::default(),
            tui: TuiConfig::default(),
        }
    }
}

/// Reads the TOML file `path` as `T`; an error names the file (and toml's key and line).
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    toml::from_str(&text).map_err(|e| toml_error(path, &e))
}

/// `table` (read from `path`) as `T`; an error names the file.
pub fn from_table<T: serde::de::DeserializeOwned>(table: toml::Table, path: &Path) -> Result<T> {
    table.try_into().map_err(|e: toml::de::Error| toml_error(path, &e))
}

fn toml_error(path: &Path, e: &toml::de::Error) -> Error {
    Error::Config { path: path.into(), reason: e.to_string().trim_end().to_string() }
}

impl Config {
    /// Load `path` over the defaults; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let cfg: Self = toml::from_str(&text)
                    .map_err(|e| Error::Config { path: path.into(), reason: e.to_string() })?;
                cfg.review
                    .validate()
                    .map_err(|e| Error::Config { path: path.into(), reason: e.to_string() })?;
                cfg.tui.validate().map_err(|reason| Error::Config { path: path.into(), reason })?;
                cfg.validate_ingest()
                    .map_err(|reason| Error::Config { path: path.into(), reason })?;
                Ok(cfg)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// [`Config::load`], for a file the user named: a missing one is an error, not defaults
    /// (a typo in `--config` would otherwise ingest hours with the default piece lengths).
    pub fn load_named(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Config { path: path.into(), reason: "no such file".into() });
        }
        Self::load(path)
    }

    /// The ingest settings make sense: piece lengths fixed at ingest cannot be changed later,
    /// and a zero, negative or not-a-number length would cut millions of one-sample pieces.
    fn validate_ingest(&self) -> std::result::Result<(), String> {
        let finite = |name: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} = {v}: must be between {lo} and {hi}"))
            }
        };
        finite("piece_seconds", self.piece_seconds, 10.0, 3600.0)?;
        finite("piece_search_seconds", self.piece_search_seconds, 0.0, self.piece_seconds / 2.0)?;
        finite("min_last_piece_seconds", self.min_last_piece_seconds, 0.0, self.piece_seconds)?;
        if !(8_000..=192_000).contains(&self.work_rate) {
            return Err(format!("work_rate = {}: must be 8000 to 192000 Hz", self.work_rate));
        }
        Ok(())
    }

    /// The config file that belongs to a catalog directory.
    pub fn path_in(catalog: &Path) -> PathBuf {
        catalog.join("aniprint.toml")
    }

    /// The cropping settings.
    pub fn crop(&self) -> CropConfig {
        CropConfig {
            piece: Seconds(self.piece_seconds),
            search: Seconds(self.piece_search_seconds),
            min_last: Seconds(self.min_last_piece_seconds),
            ..CropConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_settings_that_make_no_pieces_are_refused_and_a_named_file_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        for bad in [
            "piece_seconds = 0.0",
            "piece_seconds = nan",
            "piece_seconds = inf",
            "piece_seconds = -180.0",
            "piece_search_seconds = 120.0",
            "min_last_piece_seconds = -1.0",
            "work_rate = 0",
        ] {
            std::fs::write(&p, format!("{bad}\n")).unwrap();
            let e = Config::load(&p).unwrap_err().to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(e.contains(key) && e.contains("a.toml"), "{bad}: {e}");
        }
        let missing = dir.path().join("typo.tom");
        assert_eq!(Config::load(&missing).unwrap(), Config::default());
        assert!(Config::load_named(&missing).unwrap_err().to_string().contains("no such file"));
    }

    #[test]
    fn file_overrides_defaults_and_rejects_typos() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("aniprint.toml");
        assert_eq!(Config::load(&p).unwrap(), Config::default());
        std::fs::write(&p, "piece_seconds = 60.0\n").unwrap();
        assert_eq!(Config::load(&p).unwrap().crop().piece, Seconds(60.0));
        std::fs::write(&p, "piece_secs = 60.0\n").unwrap();
        assert!(Config::load(&p).is_err());
    }

    #[test]
    fn tui_theme_and_colour_overrides() {
        use crate::tui::theme::{Preset, Theme};
        use ratatui::style::Color;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("aniprint.toml");
        std::fs::write(
            &p,
            "[tui]\ntheme = \"light\"\n[tui.colors]\nconfirmed = \"green\"\npending = \"#d7af00\"\n",
        )
        .unwrap();
        let cfg = Config::load(&p).unwrap();
        assert_eq!(cfg.tui.theme, Preset::Light);
        let theme = Theme::from_config(&cfg.tui).unwrap();
        assert_eq!(theme.palette.confirmed, Color::Green);
        assert_eq!(theme.palette.pending, Color::Rgb(0xd7, 0xaf, 0x00));
        assert_eq!(theme.palette.title, Theme::preset(Preset::Light).palette.title);
        assert_ne!(Theme::preset(Preset::Light), Theme::preset(Preset::Dark));

        let err = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Config::load(&p).unwrap_err().to_string()
        };
        assert!(err("[tui]\ntheme = \"solarized\"\n").contains("solarized"));
        assert!(err("[tui.colors]\nconfirmd = \"green\"\n").contains("confirmd"));
        assert!(err("[tui.colors]\npending = \"#d7af\"\n").contains("pending"));
        assert!(err("[tui.colors]\npending = \"chartreuse\"\n").contains("chartreuse"));

        std::fs::write(&p, "[tui.keys]\nconfirm = \"y\"\ndown = [\"J\", \"Down\"]\n").unwrap();
        assert_eq!(Config::load(&p).unwrap().tui.keys.len(), 2);
        assert!(err("[tui.keys]\nconfrim = \"y\"\n").contains("confrim"));
        assert!(err("[tui.keys]\nconfirm = \"Meta-y\"\n").contains("Meta-y"));
        assert!(err("[tui.keys]\nconfirm = \"q\"\n").contains("quit"));
    }
}
