//! The keymap: one table of `(scope, keys, command, label)` that dispatches keys, draws the
//! bottom key bar, fills the `?` help overlay and the `:` command palette (gitui's
//! `commands()` idea), so what the screen says is what the keys do. The palette and help also
//! list the typed commands of [`super::command::COMMANDS`]. `[tui.keys]` in `aniprint.toml`
//! rebinds normal-mode actions by name ([`Keymap::with_overrides`]); the app keeps the
//! resulting table, so dispatch, key bar, help and palette all follow it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Cmd;
use super::app::{App, Confirm, Mode, Screen};
use super::command::{self, TypedCommand};

/// One key, as the table writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// With Ctrl held.
    pub ctrl: bool,
}

const fn ch(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: false }
}

const fn ctrl(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: true }
}

const fn k(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

impl Key {
    /// Whether a key event is this key (Shift is part of the char, so it is ignored).
    pub fn matches(&self, ev: &KeyEvent) -> bool {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        ctrl == self.ctrl && ev.code == self.code
    }

    /// How help and the key bar write it.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Delete => "Del".into(),
            KeyCode::F(n) => format!("F{n}"),
            other => format!("{other:?}"),
        };
        if self.ctrl { format!("C-{base}") } else { base }
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere in normal mode.
    Global,
    /// List navigation in normal mode (every screen with a list).
    Nav,
    /// One screen in normal mode.
    Screen(Screen),
    /// Typing a list filter.
    Filter,
    /// The help overlay.
    Help,
    /// Typing the help filter.
    HelpFilter,
    /// The command palette.
    Palette,
    /// A text prompt.
    Prompt,
    /// The file picker's list.
    Picker,
    /// The file picker's path field.
    PickerPath,
    /// The review decision form.
    Decision,
    /// The rights record form.
    RightsForm,
    /// The quit question.
    ConfirmQuit,
    /// A yes/no question.
    ConfirmYesNo,
}

impl Scope {
    /// Heading in the help overlay.
    pub fn title(&self) -> &'static str {
        match self {
            Scope::Global => "Global",
            Scope::Nav => "Lists",
            Scope::Screen(s) => s.title(),
            Scope::Filter => "Filter",
            Scope::Help | Scope::HelpFilter => "Help",
            Scope::Palette => "Palette",
            Scope::Prompt => "Prompt",
            Scope::Picker | Scope::PickerPath => "File picker",
            Scope::Decision => "Decision",
            Scope::RightsForm => "Rights form",
            Scope::ConfirmQuit | Scope::ConfirmYesNo => "Question",
        }
    }
}

/// One entry of the keymap.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Where it applies.
    pub scope: Scope,
    /// The keys (first is shown in the key bar).
    pub keys: Cow<'static, [Key]>,
    /// What it does.
    pub cmd: Cmd,
    /// What help and the key bar call it.
    pub label: &'static str,
}

const fn b(scope: Scope, keys: &'static [Key], cmd: Cmd, label: &'static str) -> Binding {
    Binding { scope, keys: Cow::Borrowed(keys), cmd, label }
}

use KeyCode as C;
use Scope as S;

/// The keymap.
pub const KEYMAP: &[Binding] = &[
    // Library
    b(S::Screen(Screen::Library), &[ch('a')], Cmd::Keep, "keep"),
    b(S::Screen(Screen::Library), &[ch('d')], Cmd::DropPiece, "drop"),
    b(S::Screen(Screen::Library), &[ch('u')], Cmd::Unreview, "unreviewed"),
    b(S::Screen(Screen::Library), &[ch(' ')], Cmd::Mark, "select"),
    b(S::Screen(Screen::Library), &[ch('h'), k(C::Left)], Cmd::FocusLeft, "episodes"),
    b(S::Screen(Screen::Library), &[ch('l'), k(C::Right)], Cmd::FocusRight, "pieces"),
    b(S::Screen(Screen::Library), &[ch('i')], Cmd::Ingest, "ingest…"),
    b(S::Screen(Screen::Library), &[ch('E')], Cmd::ExportDataset, "export dataset…"),
    b(S::Screen(Screen::Library), &[ch('S')], Cmd::Separate, "separate stems…"),
    // Jobs
    b(S::Screen(Screen::Jobs), &[ch('x'), k(C::Delete)], Cmd::CancelJob, "cancel job"),
    // Review
    b(S::Screen(Screen::Review), &[ch('c')], Cmd::Confirm, "confirm"),
    b(S::Screen(Screen::Review), &[ch('d')], Cmd::Dismiss, "dismiss…"),
    b(S::Screen(Screen::Review), &[ch('x')], Cmd::DismissExclude, "dismiss+exclude…"),
    b(S::Screen(Screen::Review), &[ch('D')], Cmd::Dispute, "dispute…"),
    b(S::Screen(Screen::Review), &[ch('e')], Cmd::Escalate, "escalate"),
    b(S::Screen(Screen::Review), &[ch('o')], Cmd::Reopen, "reopen"),
    b(S::Screen(Screen::Review), &[ch('u')], Cmd::Undo, "undo"),
    b(S::Screen(Screen::Review), &[ch('r')], Cmd::AttachRights, "attach rights…"),
    b(S::Screen(Screen::Review), &[ch('p')], Cmd::PlayUpload, "play upload"),
    b(S::Screen(Screen::Review), &[ch('P')], Cmd::PlayReference, "play reference"),
    b(S::Screen(Screen::Review), &[ch(' ')], Cmd::Mark, "select"),
    b(S::Screen(Screen::Review), &[ch('n')], Cmd::NextPending, "next pending"),
    b(S::Screen(Screen::Review), &[ch('N')], Cmd::PrevPending, "prev pending"),
    b(S::Screen(Screen::Review), &[ch('s')], Cmd::Scan, "scan uploads…"),
    // Rights
    b(S::Screen(Screen::Rights), &[ch('a')], Cmd::AddRights, "add"),
    b(S::Screen(Screen::Rights), &[ch('e'), k(C::Enter)], Cmd::EditRights, "edit"),
    b(S::Screen(Screen::Rights), &[ch('d'), k(C::Delete)], Cmd::DeleteRights, "delete"),
    b(S::Screen(Screen::Rights), &[ch('i')], Cmd::ImportRights, "import CSV…"),
    // Reports
    b(S::Screen(Screen::Reports), &[ch('x')], Cmd::ExportReport, "export CSV"),
    b(S::Screen(Screen::Reports), &[k(C::Enter), ch(' ')], Cmd::Open, "toggle / edit"),
    b(S::Screen(Screen::Reports), &[ch('h'), k(C::Left)], Cmd::FocusLeft, "previous value"),
    b(S::Screen(Screen::Reports), &[ch('l'), k(C::Right)], Cmd::FocusRight, "next value"),
    // Lists
    b(S::Nav, &[ch('j'), k(C::Down)], Cmd::Down, "down"),
    b(S::Nav, &[ch('k'), k(C::Up)], Cmd::Up, "up"),
    b(S::Nav, &[ch('g'), k(C::Home)], Cmd::Top, "top"),
    b(S::Nav, &[ch('G'), k(C::End)], Cmd::Bottom, "bottom"),
    b(S::Nav, &[ctrl('d'), k(C::PageDown)], Cmd::PageDown, "page down"),
    b(S::Nav, &[ctrl('u'), k(C::PageUp)], Cmd::PageUp, "page up"),
    b(S::Nav, &[ch('/')], Cmd::Filter, "filter"),
    b(S::Nav, &[k(C::Esc)], Cmd::Back, "clear filter / selection"),
    // Global
    b(S::Global, &[ch('?'), k(C::F(1))], Cmd::Help, "help"),
    b(S::Global, &[ch(':'), ctrl('p')], Cmd::Palette, "commands"),
    b(S::Global, &[k(C::Tab)], Cmd::NextScreen, "next screen"),
    b(S::Global, &[k(C::BackTab)], Cmd::PrevScreen, "previous screen"),
    b(S::Global, &[ch('1')], Cmd::Goto(Screen::Library), "Library"),
    b(S::Global, &[ch('2')], Cmd::Goto(Screen::Jobs), "Jobs"),
    b(S::Global, &[ch('3')], Cmd::Goto(Screen::Review), "Review"),
    b(S::Global, &[ch('4')], Cmd::Goto(Screen::Rights), "Rights"),
    b(S::Global, &[ch('5')], Cmd::Goto(Screen::Reports), "Reports"),
    b(S::Global, &[ctrl('r'), k(C::F(5))], Cmd::Refresh, "reload"),
    b(S::Global, &[ch('q'), ctrl('c')], Cmd::Quit, "quit"),
    // Filter
    b(S::Filter, &[k(C::Enter)], Cmd::Submit, "apply"),
    b(S::Filter, &[k(C::Esc)], Cmd::Back, "clear"),
    // Help
    b(S::Help, &[ch('j'), k(C::Down)], Cmd::Down, "scroll down"),
    b(S::Help, &[ch('k'), k(C::Up)], Cmd::Up, "scroll up"),
    b(S::Help, &[ch('/')], Cmd::Filter, "filter"),
    b(S::Help, &[k(C::Esc), ch('q'), ch('?'), k(C::F(1))], Cmd::Back, "close"),
    b(S::HelpFilter, &[k(C::Enter)], Cmd::Submit, "done"),
    b(S::HelpFilter, &[k(C::Esc)], Cmd::Back, "clear"),
    // Palette
    b(S::Palette, &[k(C::Enter)], Cmd::Submit, "run"),
    b(S::Palette, &[k(C::Down), ctrl('n')], Cmd::Down, "next"),
    b(S::Palette, &[k(C::Up), ctrl('k')], Cmd::Up, "previous"),
    b(S::Palette, &[k(C::Esc)], Cmd::Back, "close"),
    // Prompt
    b(S::Prompt, &[k(C::Enter)], Cmd::Submit, "ok"),
    b(S::Prompt, &[k(C::Esc)], Cmd::Back, "cancel"),
    // File picker: letters the list does not use start the path field (`update::on_key`).
    b(S::Picker, &[k(C::Enter)], Cmd::Open, "open/use"),
    b(S::Picker, &[ch(' ')], Cmd::Mark, "mark"),
    b(S::Picker, &[ch('i')], Cmd::Accept, "use marked"),
    b(S::Picker, &[ch('h'), k(C::Left), k(C::Backspace)], Cmd::UpDir, "parent"),
    b(S::Picker, &[ch('l'), k(C::Right)], Cmd::IntoDir, "into"),
    b(S::Picker, &[k(C::Tab)], Cmd::TypePath, "type path"),
    b(S::Picker, &[k(C::Esc)], Cmd::Back, "cancel"),
    b(S::Picker, &[ch('j'), k(C::Down)], Cmd::Down, "down"),
    b(S::Picker, &[ch('k'), k(C::Up)], Cmd::Up, "up"),
    b(S::Picker, &[ch('g'), k(C::Home)], Cmd::Top, "top"),
    b(S::Picker, &[ch('G'), k(C::End)], Cmd::Bottom, "bottom"),
    b(S::Picker, &[ctrl('d'), k(C::PageDown)], Cmd::PageDown, "page down"),
    b(S::Picker, &[ctrl('u'), k(C::PageUp)], Cmd::PageUp, "page up"),
    b(S::PickerPath, &[k(C::Enter)], Cmd::Submit, "use typed path"),
    b(S::PickerPath, &[k(C::Tab)], Cmd::GoToPath, "go to folder"),
    b(S::PickerPath, &[k(C::Esc)], Cmd::Back, "back to list"),
    // Decision
    b(S::Decision, &[k(C::Down)], Cmd::Down, "next reason"),
    b(S::Decision, &[k(C::Up)], Cmd::Up, "previous reason"),
    b(S::Decision, &[k(C::Enter)], Cmd::Submit, "apply"),
    b(S::Decision, &[k(C::Esc)], Cmd::Back, "cancel"),
    // Rights form
    b(S::RightsForm, &[k(C::Tab), k(C::Down), k(C::Enter)], Cmd::NextField, "next field"),
    b(S::RightsForm, &[k(C::BackTab), k(C::Up)], Cmd::PrevField, "previous field"),
    b(S::RightsForm, &[ctrl('s'), k(C::F(2))], Cmd::Submit, "save"),
    b(S::RightsForm, &[k(C::Esc)], Cmd::Back, "cancel"),
    // Questions
    b(S::ConfirmQuit, &[ch('c')], Cmd::CancelAndQuit, "cancel jobs and quit"),
    b(S::ConfirmQuit, &[ch('w')], Cmd::QuitWhenDone, "quit when they finish"),
    b(S::ConfirmQuit, &[k(C::Esc), ch('n')], Cmd::Back, "back"),
    b(S::ConfirmYesNo, &[ch('y')], Cmd::Yes, "yes"),
    b(S::ConfirmYesNo, &[ch('n'), k(C::Esc)], Cmd::No, "no"),
];

/// The keymap in use: [`KEYMAP`] with the `[tui.keys]` overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap(pub Vec<Binding>);

impl Default for Keymap {
    fn default() -> Self {
        Self(KEYMAP.to_vec())
    }
}

/// A `[tui.keys]` value: one key or several (`confirm = "y"`, `down = ["J", "Down"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeySpec {
    /// One key.
    One(String),
    /// Several keys; the first is shown in the key bar.
    Many(Vec<String>),
}

impl KeySpec {
    fn keys(&self) -> Vec<&str> {
        match self {
            KeySpec::One(k) => vec![k.as_str()],
            KeySpec::Many(ks) => ks.iter().map(String::as_str).collect(),
        }
    }
}

/// Whether a scope's bindings can be rebound (the normal-mode ones).
fn rebindable(scope: Scope) -> bool {
    matches!(scope, Scope::Global | Scope::Nav | Scope::Screen(_))
}

/// The `[tui.keys]` name of a scope (`review.confirm`): the screen's name, `lists`, `global`.
fn scope_name(scope: Scope) -> String {
    match scope {
        Scope::Screen(s) => s.title().to_lowercase(),
        Scope::Nav => "lists".into(),
        _ => "global".into(),
    }
}

/// The `[tui.keys]` name of a command: `confirm`, `next_pending`, `goto_review`.
pub fn action_name(cmd: Cmd) -> String {
    if let Cmd::Goto(s) = cmd {
        return format!("goto_{}", s.title().to_lowercase());
    }
    let mut out = String::new();
    for (i, c) in format!("{cmd:?}").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every name `[tui.keys]` accepts (unqualified), sorted.
pub fn action_names() -> Vec<String> {
    let mut names: Vec<String> =
        KEYMAP.iter().filter(|b| rebindable(b.scope)).map(|b| action_name(b.cmd)).collect();
    names.sort();
    names.dedup();
    names
}

/// Parse a key as `[tui.keys]` writes it: a character (`y`, `Y`, `/`), `C-x` or `Ctrl-x`
/// for Ctrl, or a name: `Space`, `Enter`, `Esc`, `Tab`, `S-Tab`, `Up`, `Down`, `Left`,
/// `Right`, `PgUp`, `PgDn`, `Home`, `End`, `Del`, `Backspace`, `F1`..`F12` (names in any
/// case).
pub fn parse_key(text: &str) -> Option<Key> {
    let lower = text.to_ascii_lowercase();
    for prefix in ["c-", "ctrl-", "ctrl+"] {
        if lower.len() > prefix.len() && lower.starts_with(prefix) {
            let rest = parse_key(&text[prefix.len()..])?;
            return (!rest.ctrl).then_some(Key { ctrl: true, ..rest });
        }
    }
    let mut chars = text.chars();
    if let (Some(c), None) = (chars.next(), chars.clone().next()) {
        return Some(ch(c));
    }
    let code = match lower.as_str() {
        "space" => C::Char(' '),
        "enter" | "return" => C::Enter,
        "esc" | "escape" => C::Esc,
        "tab" => C::Tab,
        "s-tab" | "shift-tab" | "backtab" => C::BackTab,
        "up" => C::Up,
        "down" => C::Down,
        "left" => C::Left,
        "right" => C::Right,
        "pgup" | "pageup" => C::PageUp,
        "pgdn" | "pagedown" => C::PageDown,
        "home" => C::Home,
        "end" => C::End,
        "del" | "delete" => C::Delete,
        "backspace" => C::Backspace,
        f if f.starts_with('f') => match f[1..].parse::<u8>() {
            Ok(n @ 1..=12) => C::F(n),
            _ => return None,
        },
        _ => return None,
    };
    Some(k(code))
}

impl Keymap {
    /// [`KEYMAP`] with `[tui.keys]` applied: each entry names an action (`confirm`), or an
    /// action on one screen (`review.mark`, `lists.down`, `global.quit`), and replaces its
    /// keys. An unknown action, a key that does not parse, or a key another binding on the
    /// same screen already uses is an error that names it.
    pub fn with_overrides(
        overrides: &BTreeMap<String, KeySpec>,
    ) -> std::result::Result<Self, String> {
        let mut map = Self::default();
        let mut changed = vec![false; map.0.len()];
        for (name, spec) in overrides {
            let (scope, action) = match name.split_once('.') {
                Some((s, a)) => (Some(s), a),
                None => (None, name.as_str()),
            };
            let mut keys = Vec::new();
            for text in spec.keys() {
                keys.push(parse_key(text).ok_or_else(|| {
                    format!(
                        "[tui.keys] {name} = {text:?}: not a key (a character, C-x, or a name \
                         such as Enter, Esc, Tab, Space, Up, PgDn, F2)"
                    )
                })?);
            }
            if keys.is_empty() {
                return Err(format!("[tui.keys] {name}: no keys given"));
            }
            let mut hit = false;
            for (i, bnd) in map.0.iter_mut().enumerate() {
                if rebindable(bnd.scope)
                    && action_name(bnd.cmd) == action
                    && scope.is_none_or(|s| s == scope_name(bnd.scope))
                {
                    bnd.keys = Cow::Owned(keys.clone());
                    changed[i] = true;
                    hit = true;
                }
            }
            if !hit {
                return Err(format!(
                    "[tui.keys] {name}: unknown action (one of {}, optionally as \
                     screen.action, e.g. review.confirm)",
                    action_names().join(", ")
                ));
            }
        }
        // A key may do one thing per screen: check the changed bindings against the rest.
        for screen in Screen::ALL {
            let scopes = [Scope::Screen(screen), Scope::Nav, Scope::Global];
            let live: Vec<usize> =
                (0..map.0.len()).filter(|&i| scopes.contains(&map.0[i].scope)).collect();
            for &i in live.iter().filter(|&&i| changed[i]) {
                for &j in live.iter().filter(|&&j| j != i) {
                    let (a, b) = (&map.0[i], &map.0[j]);
                    if a.cmd == b.cmd {
                        continue;
                    }
                    if let Some(key) = a.keys.iter().find(|k| b.keys.contains(k)) {
                        return Err(format!(
                            "[tui.keys] {}: {} is already {} ({}) on the {} screen",
                            action_name(a.cmd),
                            key.label(),
                            action_name(b.cmd),
                            b.label,
                            screen.title()
                        ));
                    }
                }
            }
        }
        Ok(map)
    }
}

/// The scopes active now, most specific first.
pub fn active_scopes(app: &App) -> Vec<Scope> {
    match &app.mode {
        Mode::Normal => {
            vec![Scope::Screen(app.screen), Scope::Nav, Scope::Global]
        }
        Mode::Filter => vec![Scope::Filter],
        Mode::Help(h) if h.typing => vec![Scope::HelpFilter],
        Mode::Help(_) => vec![Scope::Help],
        Mode::Palette(_) => vec![Scope::Palette],
        Mode::Prompt(_) => vec![Scope::Prompt],
        Mode::Picker(p) if p.typing => vec![Scope::PickerPath],
        Mode::Picker(_) => vec![Scope::Picker],
        Mode::Decision(_) => vec![Scope::Decision],
        Mode::RightsForm(_) => vec![Scope::RightsForm],
        Mode::Confirm(Confirm::Quit) => vec![Scope::ConfirmQuit],
        Mode::Confirm(Confirm::DeleteRights(_)) => vec![Scope::ConfirmYesNo],
    }
}

/// The command a key triggers now, if any.
pub fn lookup(app: &App, ev: &KeyEvent) -> Option<Cmd> {
    let scopes = active_scopes(app);
    scopes.iter().find_map(|s| {
        app.keymap
            .0
            .iter()
            .find(|b| b.scope == *s && b.keys.iter().any(|k| k.matches(ev)))
            .map(|b| b.cmd)
    })
}

/// The bindings active now, for the key bar (most specific scope first, one per command).
pub fn active_bindings(app: &App) -> Vec<&Binding> {
    let mut out: Vec<&Binding> = Vec::new();
    for s in active_scopes(app) {
        for bnd in app.keymap.0.iter().filter(|b| b.scope == s) {
            if !out.iter().any(|o| o.cmd == bnd.cmd) && !matches!(bnd.cmd, Cmd::Goto(_)) {
                out.push(bnd);
            }
        }
    }
    out
}

/// The keys of a binding, joined for display: `j/↓`.
pub fn keys_label(bnd: &Binding) -> String {
    bnd.keys.iter().map(Key::label).collect::<Vec<_>>().join("/")
}

/// The help overlay's sections: scope title and (keys, label) lines, filtered; the typed
/// commands of the palette last.
pub fn help_sections(keymap: &Keymap, filter: &str) -> Vec<(&'static str, Vec<(String, String)>)> {
    let f = filter.to_lowercase();
    let hit = |keys: &str, label: &str| {
        f.is_empty() || label.to_lowercase().contains(&f) || keys.to_lowercase().contains(&f)
    };
    let mut out: Vec<(&'static str, Vec<(String, String)>)> = Vec::new();
    let mut add = |title: &'static str, keys: String, label: String| match out
        .iter_mut()
        .find(|(t, _)| *t == title)
    {
        Some((_, lines)) => lines.push((keys, label)),
        None => out.push((title, vec![(keys, label)])),
    };
    for bnd in &keymap.0 {
        let keys = keys_label(bnd);
        if hit(&keys, bnd.label) {
            add(bnd.scope.title(), keys, bnd.label.to_string());
        }
    }
    for c in command::COMMANDS {
        let keys = format!(":{}", c.name);
        if hit(&keys, c.args) || hit("", c.about) {
            // Arguments, then what it does on a line of its own: both are long.
            add("Palette commands", keys, c.args.to_string());
            add("Palette commands", String::new(), c.about.to_string());
        }
    }
    out
}

/// What a palette entry does when chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaletteItem {
    /// Run a keymap command.
    Cmd(Cmd),
    /// Start typing this command's arguments.
    Typed(&'static TypedCommand),
}

/// Palette entries for the current screen: `(label, keys, item)`, fuzzy-filtered by `query`
/// and best match first. Once `query` is a typed command with arguments, only that command.
pub fn palette_entries(app: &App, query: &str) -> Vec<(String, String, PaletteItem)> {
    if let Some(c) = command::command_of(query) {
        return vec![(c.usage(), String::new(), PaletteItem::Typed(c))];
    }
    let scopes = [Scope::Screen(app.screen), Scope::Nav, Scope::Global];
    let mut scored: Vec<(i64, String, String, PaletteItem)> = Vec::new();
    for bnd in app.keymap.0.iter().filter(|b| scopes.contains(&b.scope)) {
        if matches!(bnd.cmd, Cmd::Palette) {
            continue;
        }
        let label = match bnd.scope {
            Scope::Screen(s) => format!("{}: {}", s.title(), bnd.label),
            Scope::Global if matches!(bnd.cmd, Cmd::Goto(_)) => format!("go to {}", bnd.label),
            _ => bnd.label.to_string(),
        };
        if let Some(score) = fuzzy_score(&label, query) {
            scored.push((score, label, keys_label(bnd), PaletteItem::Cmd(bnd.cmd)));
        }
    }
    // Typed commands match on their name only: their argument lists would match anything.
    for c in command::COMMANDS {
        if let Some(score) = fuzzy_score(c.name, query) {
            scored.push((score, c.usage(), String::new(), PaletteItem::Typed(c)));
        }
    }
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    scored.into_iter().map(|(_, l, k, c)| (l, k, c)).collect()
}

/// A subsequence match score (higher is better), or `None` when `query` is not a subsequence
/// of `text` (case-insensitive). Consecutive and word-start matches score more.
pub fn fuzzy_score(text: &str, query: &str) -> Option<i64> {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let mut score = 0i64;
    let mut pos = 0usize;
    let mut last: Option<usize> = None;
    for q in query.to_lowercase().chars().filter(|c| !c.is_whitespace()) {
        let found = (pos..t.len()).find(|&i| t[i] == q)?;
        score += 1;
        if last.is_some_and(|l| l + 1 == found) {
            score += 3;
        }
        if found == 0 || !t[found - 1].is_alphanumeric() {
            score += 2;
        }
        last = Some(found);
        pos = found + 1;
    }
    Some(score * 100 - t.len() as i64)
}
