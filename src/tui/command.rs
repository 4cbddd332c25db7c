//! Typed commands of the `:` palette (`separate PATH... --out DIR`, `train MODEL --corpus DIR
//! --steps N`): commands that take
//! arguments, which a key cannot give. One table ([`COMMANDS`]) feeds the palette's entries
//! and the help overlay; [`parse`] turns a typed line into a job (or a file picker, when the
//! paths are left out), so `update` only matches.

use std::path::PathBuf;

use super::action::{JobSpec, TrainModel, TrainSpec};
use super::app::PickFor;

/// What a typed command asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// Start this job.
    Spawn(JobSpec),
    /// Pick the inputs in the file picker first.
    Pick {
        /// What for.
        purpose: PickFor,
        /// The output folder already given.
        out: Option<PathBuf>,
    },
}

/// A command typed into the palette with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypedCommand {
    /// The first word.
    pub name: &'static str,
    /// Its arguments, as help writes them.
    pub args: &'static str,
    /// What it does.
    pub about: &'static str,
}

impl TypedCommand {
    /// `name args`, as the palette shows it.
    pub fn usage(&self) -> String {
        format!("{} {}", self.name, self.args)
    }
}

/// Every typed command.
pub const COMMANDS: &[TypedCommand] = &[
    TypedCommand {
        name: "separate",
        args: "PATH... [--out DIR]",
        about: "voice and background stems of media files or folders (job; default --out stems)",
    },
    TypedCommand {
        name: "train",
        args: "fingerprint|separator --corpus DIR --steps N [--state DIR] [--out DIR] [--cache DIR]",
        about: "train a model on the training worker (job; x stops it at the next step, \
                the same --state resumes it)",
    },
];

/// Where `:separate` writes stems unless `--out` says otherwise.
pub const DEFAULT_STEMS_DIR: &str = "stems";

/// The typed command `line` is, once its name is followed by a space (before that, the
/// palette still fuzzy-matches it like any entry).
pub fn command_of(line: &str) -> Option<&'static TypedCommand> {
    let line = line.trim_start();
    let (name, _) = line.split_once(char::is_whitespace)?;
    COMMANDS.iter().find(|c| c.name == name)
}

/// What `line` asks for, or why it cannot run; `None` when `line` is no typed command.
pub fn parse(line: &str) -> Option<Result<Typed, String>> {
    let cmd = command_of(line)?;
    Some(split_words(line).and_then(|words| match cmd.name {
        "separate" => separate(&words[1..]),
        "train" => train(&words[1..]).map(|t| Typed::Spawn(JobSpec::Train(t))),
        other => Err(format!("{other}: not a command")),
    }))
}

fn separate(words: &[String]) -> Result<Typed, String> {
    let mut paths = Vec::new();
    let mut out = None;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "--out" => out = Some(value(&mut it, "--out", "a folder")?),
            flag if flag.starts_with("--") => {
                return Err(format!("separate: unknown option {flag} (only --out DIR)"));
            }
            path => paths.push(PathBuf::from(path)),
        }
    }
    let out = out.map(PathBuf::from);
    if paths.is_empty() {
        return Ok(Typed::Pick { purpose: PickFor::Separate, out });
    }
    let out = out.unwrap_or_else(|| PathBuf::from(DEFAULT_STEMS_DIR));
    Ok(Typed::Spawn(JobSpec::Separate { paths, out }))
}

fn train(words: &[String]) -> Result<TrainSpec, String> {
    let usage = "train fingerprint|separator --corpus DIR --steps N";
    let mut model = None;
    let (mut corpus, mut steps, mut state, mut out, mut cache) = (None, None, None, None, None);
    let mut it = words.iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "--corpus" => corpus = Some(value(&mut it, "--corpus", "a folder")?),
            "--state" => state = Some(value(&mut it, "--state", "a folder")?),
            "--out" => out = Some(value(&mut it, "--out", "a folder")?),
            "--cache" => cache = Some(value(&mut it, "--cache", "a folder")?),
            "--steps" => {
                let n = value(&mut it, "--steps", "a number of steps")?;
                steps =
                    Some(n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("--steps needs a positive whole number, not '{n}'")
                    })?);
            }
            flag if flag.starts_with("--") => {
                return Err(format!(
                    "train: unknown option {flag} (--corpus, --steps, --state, --out, --cache)"
                ));
            }
            "fingerprint" if model.is_none() => model = Some(TrainModel::Fingerprint),
            "separator" if model.is_none() => model = Some(TrainModel::Separator),
            other if model.is_none() => {
                return Err(format!("train: fingerprint or separator, not '{other}'"));
            }
            other => return Err(format!("train: unexpected '{other}' ({usage})")),
        }
    }
    let model = model.ok_or_else(|| format!("train: which model? {usage}"))?;
    let corpus = corpus.ok_or_else(|| format!("train: --corpus DIR is needed ({usage})"))?;
    let steps = steps.ok_or_else(|| format!("train: --steps N is needed ({usage})"))?;
    Ok(TrainSpec {
        model,
        corpus: corpus.into(),
        steps,
        state: state.map(PathBuf::from),
        out: out.map(PathBuf::from),
        cache: cache.map(PathBuf::from),
    })
}

/// The value after `flag`.
fn value<'a>(
    it: &mut impl Iterator<Item = &'a String>,
    flag: &str,
    what: &str,
) -> Result<String, String> {
    it.next()
        .filter(|v| !v.starts_with("--"))
        .cloned()
        .ok_or_else(|| format!("{flag} needs {what}"))
}

/// Split a command line into words as a shell would, without expansion: whitespace separates,
/// `'...'` and `"..."` quote (paths with spaces), `\` escapes the next char.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                let next = chars.next().ok_or("a \\ ends the line: nothing to escape")?;
                word.get_or_insert_default().push(next);
            }
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unclosed {q}"));
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell_without_expansion() {
        let w = split_words(r#"separate "My Show/ep 1.mkv" 'a b' c\ d  --out x"#).unwrap();
        assert_eq!(w, ["separate", "My Show/ep 1.mkv", "a b", "c d", "--out", "x"]);
        assert_eq!(split_words("a ''").unwrap(), ["a", ""]);
        assert_eq!(split_words("a 'b").unwrap_err(), "unclosed '");
    }

    #[test]
    fn separate_takes_paths_and_an_out_folder() {
        assert_eq!(command_of("separate"), None);
        assert_eq!(
            parse("separate a.mkv dir --out /tmp/s"),
            Some(Ok(Typed::Spawn(JobSpec::Separate {
                paths: vec!["a.mkv".into(), "dir".into()],
                out: "/tmp/s".into()
            })))
        );
        let spec = parse("  separate a.mkv").unwrap().unwrap();
        let stems = JobSpec::Separate { paths: vec!["a.mkv".into()], out: "stems".into() };
        assert_eq!(spec, Typed::Spawn(stems));
        // No paths: pick them.
        let pick = Typed::Pick { purpose: PickFor::Separate, out: Some("x".into()) };
        assert_eq!(parse("separate --out x"), Some(Ok(pick)));
        assert_eq!(parse("separate a --out").unwrap().unwrap_err(), "--out needs a folder");
        assert!(parse("separate a --format flac").unwrap().unwrap_err().contains("--format"));
        assert_eq!(parse("ingest a"), None);
    }

    #[test]
    fn train_needs_a_model_a_corpus_and_steps() {
        let spec = |line: &str| match parse(line) {
            Some(Ok(Typed::Spawn(JobSpec::Train(t)))) => Ok(t),
            Some(Err(e)) => Err(e),
            other => panic!("{other:?}"),
        };
        let t = spec("train separator --steps 200 --corpus ../data/corpus --state /s").unwrap();
        assert_eq!(
            t,
            TrainSpec {
                model: TrainModel::Separator,
                corpus: "../data/corpus".into(),
                steps: 200,
                state: Some("/s".into()),
                out: None,
                cache: None,
            }
        );
        let t = spec("train fingerprint --corpus c --steps 5 --out m --cache k").unwrap();
        assert_eq!(
            (t.out.as_deref(), t.cache.as_deref()),
            (Some("m".as_ref()), Some("k".as_ref()))
        );
        assert_eq!(t.state_dir(), PathBuf::from("../train-state/fingerprint"));
        let err = |line: &str| spec(line).unwrap_err();
        assert!(err("train --corpus c --steps 5").starts_with("train: which model?"));
        assert_eq!(err("train vocoder"), "train: fingerprint or separator, not 'vocoder'");
        assert!(err("train separator --steps 5").starts_with("train: --corpus DIR is needed"));
        assert!(err("train separator --corpus c").starts_with("train: --steps N is needed"));
        assert_eq!(
            err("train separator --corpus c --steps 0"),
            "--steps needs a positive whole number, not '0'"
        );
        assert!(err("train separator --corpus c --steps 5 --lr 1").contains("unknown option --lr"));
        assert!(err("train separator fingerprint").starts_with("train: unexpected 'fingerprint'"));
    }
}
