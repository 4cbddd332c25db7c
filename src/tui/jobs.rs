//! Background work: jobs on worker threads that call the same library functions as the CLI
//! and report through [`JobReporter`] (a [`Progress`] that sends coalesced [`JobEvent`]s over
//! a crossbeam channel and cancels through a [`CancelToken`]), one inference worker that owns
//! the loaded models ([`Models`], each loaded on the first job that needs it), one training
//! worker (CPU-heavy runs queue there, never in front of ingest or scans), and a latest-wins
//! preview worker for spectrograms.
//!
//! Models come from the embedding program through [`Services`], so the library TUI does not
//! depend on how the binary finds them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::analyze::Analyzer;
use crate::catalog::{Catalog, MatchFilter};
use crate::config::Config;
use crate::index::{CatalogIndex, VectorStore};
use crate::ingest::{self, Indexing, IngestOptions};
use crate::media::write::AudioFormat;
use crate::media::{self, DecodeOptions, StreamSelect};
use crate::progress::{CancelToken, Progress, Stage};
use crate::report::{self, ReportOptions};
use crate::scan::{self, ScanOptions};
use crate::separate::{self, Separator};
use crate::units::SampleRate;
use crate::{Error, Result};

use super::action::{
    JobEvent, JobId, JobResult, JobSpec, Loaded, Preview, PreviewRequest, TrainModel, TrainSpec,
    Worker,
};
use super::app::Data;
use super::widgets::spectrogram::SpecImage;
use super::widgets::timeline::short_hms;

/// What the embedding program provides: the models and the dataset export, which live in the
/// binary. All default to "not available", so a plain library user gets a TUI that ingests
/// without fingerprints and says why scans and separations cannot run.
pub trait Services: Send + Sync {
    /// Load the fingerprinter (and separator). Called once, on the inference worker.
    fn load_analyzer(&self) -> Result<Analyzer> {
        Err(Error::Invalid("no models configured for this TUI".into()))
    }

    /// Load the separator for separate jobs. Called once, on the inference worker, by the
    /// first separate job.
    fn load_separator(&self) -> Result<Separator> {
        Err(Error::Invalid("no separator model configured for this TUI".into()))
    }

    /// Export the kept pieces of `catalog` into `out` (audio files + manifest.csv); returns a
    /// one-line summary.
    fn export_dataset(
        &self,
        catalog: &Catalog,
        out: &Path,
        progress: &dyn Progress,
    ) -> Result<String> {
        let _ = (catalog, out, progress);
        Err(Error::Invalid(
            "dataset export is not available here; use `aniprint export-pieces`".into(),
        ))
    }
}

/// [`Services`] with nothing: no models, no dataset export.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoServices;

impl Services for NoServices {}

/// Who acts, with which settings, at what time.
#[derive(Clone)]
pub struct Settings {
    /// The name the audit log records.
    pub who: String,
    /// Settings (review rules, ingest options).
    pub config: Config,
    /// The clock (Unix ms, UTC); fixed in tests.
    pub clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings").field("who", &self.who).finish_non_exhaustive()
    }
}

impl Settings {
    /// The current time by this clock.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }
}

/// What reaches the UI thread: input, job reports, previews, player failures, ticks.
#[derive(Debug)]
pub enum Event {
    /// A terminal event.
    Input(ratatui::crossterm::event::Event),
    /// A job reported.
    Job(JobEvent),
    /// A preview is ready.
    Preview(Box<Preview>),
    /// The audition player ended with an error: why.
    Player(String),
    /// The loader read the catalog.
    Loaded(Box<Loaded>),
    /// Time passed.
    Tick,
}

/// Minimum time between two progress events of one job.
const COALESCE: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Counters {
    item: String,
    items: (u64, u64),
    stage: Option<Stage>,
    total: u64,
    message: String,
    last_sent: Option<Instant>,
}

/// A [`Progress`] that reports one job over the event channel.
#[derive(Debug)]
pub struct JobReporter {
    id: JobId,
    tx: Sender<Event>,
    cancel: CancelToken,
    start: Instant,
    done: AtomicU64,
    state: Mutex<Counters>,
}

impl JobReporter {
    /// A reporter for job `id`.
    pub fn new(id: JobId, tx: Sender<Event>, cancel: CancelToken) -> Self {
        Self {
            id,
            tx,
            cancel,
            start: Instant::now(),
            done: AtomicU64::new(0),
            state: Mutex::new(Counters::default()),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Set the number of items (files) the job will go through.
    pub fn set_items(&self, total: u64) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).items = (0, total);
        self.send(true);
    }

    /// One item failed (the job goes on).
    pub fn failed(&self, item: &str, reason: &str) {
        let _ = self.tx.send(Event::Job(JobEvent::ItemFailed {
            id: self.id,
            item: item.into(),
            reason: reason.into(),
        }));
    }

    /// The job ended.
    pub fn finish(&self, result: JobResult) {
        self.send(true);
        let _ = self.tx.send(Event::Job(JobEvent::Finished {
            id: self.id,
            result,
            elapsed_ms: self.elapsed_ms(),
        }));
    }

    fn send(&self, force: bool) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if !force && s.last_sent.is_some_and(|t| now.duration_since(t) < COALESCE) {
            return;
        }
        s.last_sent = Some(now);
        let ev = JobEvent::Progress {
            id: self.id,
            item: s.item.clone(),
            items: s.items,
            stage: s.stage,
            units: (self.done.load(Ordering::Relaxed), s.total),
            message: s.message.clone(),
            elapsed_ms: self.elapsed_ms(),
        };
        drop(s);
        let _ = self.tx.send(Event::Job(ev));
    }
}

impl Progress for JobReporter {
    fn item(&self, name: &str) {
        {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if !s.item.is_empty() {
                s.items.0 += 1;
            }
            s.item = name.to_string();
            s.stage = None;
            s.total = 0;
        }
        self.done.store(0, Ordering::Relaxed);
        self.send(true);
    }

    fn stage(&self, stage: Stage) {
        {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if s.stage == Some(stage) {
                return;
            }
            s.stage = Some(stage);
            s.total = 0;
        }
        self.done.store(0, Ordering::Relaxed);
        self.send(false);
    }

    fn set_total(&self, total: u64) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).total = total;
        self.done.store(0, Ordering::Relaxed);
        self.send(false);
    }

    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.send(false);
    }

    fn message(&self, msg: &str) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).message = msg.to_string();
        self.send(false);
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// A model once loaded, or why it could not be (kept, so a missing model is not retried on
/// every job).
type Slot<T> = Option<std::result::Result<Arc<T>, String>>;

/// The models of the inference worker, each loaded on the first job that needs it and kept
/// for the session.
#[derive(Debug, Default)]
pub struct Models {
    analyzer: Slot<Analyzer>,
    separator: Slot<Separator>,
}

impl Models {
    /// The fingerprinter (with the separator when configured), loading it on first use.
    pub fn analyzer(
        &mut self,
        services: &dyn Services,
        rep: &dyn Progress,
    ) -> std::result::Result<Arc<Analyzer>, String> {
        self.analyzer
            .get_or_insert_with(|| {
                rep.message("loading models");
                services.load_analyzer().map(Arc::new).map_err(|e| e.to_string())
            })
            .clone()
    }

    /// The separator, loading it on first use.
    pub fn separator(
        &mut self,
        services: &dyn Services,
        rep: &dyn Progress,
    ) -> std::result::Result<Arc<Separator>, String> {
        self.separator
            .get_or_insert_with(|| {
                rep.message("loading the separator");
                services.load_separator().map(Arc::new).map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// Starts jobs and previews; owns the cancel tokens.
pub struct Runner {
    catalog: Arc<Catalog>,
    services: Arc<dyn Services>,
    settings: Settings,
    tx: Sender<Event>,
    next_id: JobId,
    cancels: HashMap<JobId, CancelToken>,
    inference: Sender<Queued>,
    training: Sender<Queued>,
    preview: Arc<(Mutex<Option<PreviewRequest>>, Condvar)>,
    loader: Sender<()>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("next_id", &self.next_id).finish_non_exhaustive()
    }
}

impl Runner {
    /// Start the inference and preview workers; events go to `tx`.
    pub fn new(
        catalog: Arc<Catalog>,
        services: Arc<dyn Services>,
        settings: Settings,
        tx: Sender<Event>,
    ) -> Self {
        let inference = start_worker("aniprint-inference", &catalog, &services, &settings, &tx);
        let training = start_worker("aniprint-train", &catalog, &services, &settings, &tx);
        let preview: Arc<(Mutex<Option<PreviewRequest>>, Condvar)> = Arc::default();
        {
            let (slot, tx) = (preview.clone(), tx.clone());
            std::thread::Builder::new()
                .name("aniprint-preview".into())
                .spawn(move || preview_worker(&slot, &tx))
                .map_err(|e| tracing::error!("cannot start the preview worker: {e}"))
                .ok();
        }
        let loader = start_loader(&catalog, &tx);
        Self {
            catalog,
            services,
            settings,
            tx,
            next_id: 1,
            cancels: HashMap::new(),
            inference,
            training,
            preview,
            loader,
        }
    }

    /// Ask for a full read of the catalog, answered by an [`Event::Loaded`]; false if the
    /// loader is gone.
    pub fn reload(&self) -> bool {
        self.loader.send(()).is_ok()
    }

    /// Start a job; returns its id. Model jobs queue on the inference worker, training runs
    /// on the training worker, others get a thread of their own.
    pub fn spawn(&mut self, spec: JobSpec) -> JobId {
        let id = self.next_id;
        self.next_id += 1;
        let cancel = CancelToken::new();
        self.cancels.insert(id, cancel.clone());
        let queue = match spec.worker() {
            Worker::Inference => Some((&self.inference, "inference")),
            Worker::Training => Some((&self.training, "training")),
            Worker::Own => None,
        };
        if let Some((queue, name)) = queue {
            if queue.send((id, spec, cancel)).is_err() {
                let rep = JobReporter::new(id, self.tx.clone(), CancelToken::new());
                rep.finish(JobResult::Failed(format!("the {name} worker is gone")));
            }
            return id;
        }
        let (catalog, services, settings, tx) =
            (self.catalog.clone(), self.services.clone(), self.settings.clone(), self.tx.clone());
        let started =
            std::thread::Builder::new().name(format!("aniprint-job-{id}")).spawn(move || {
                let rep = JobReporter::new(id, tx, cancel);
                let mut none = Models::default();
                let result =
                    caught(|| run_job(&catalog, &*services, &settings, &spec, &mut none, &rep))
                        .unwrap_or_else(JobResult::Failed);
                rep.finish(result);
            });
        if let Err(e) = started {
            let rep = JobReporter::new(id, self.tx.clone(), CancelToken::new());
            rep.finish(JobResult::Failed(format!("cannot start a thread: {e}")));
        }
        id
    }

    /// Ask a job to stop at its next check.
    pub fn cancel(&self, id: JobId) {
        if let Some(c) = self.cancels.get(&id) {
            c.cancel();
        }
    }

    /// Ask every job to stop.
    pub fn cancel_all(&self) {
        self.cancels.values().for_each(CancelToken::cancel);
    }

    /// Ask for a preview; a newer request replaces one not yet started.
    pub fn preview(&self, req: PreviewRequest) {
        let (slot, cv) = &*self.preview;
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(req);
        cv.notify_one();
    }
}

/// Run `f`, turning a panic into an error message: a bug in one job must fail that job (and
/// let the UI say so), not leave it shown as running, stop its worker's queue or, through the
/// terminal's panic hook, tear down the screen.
fn caught<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        format!("internal error (a panic: {what}); see the log")
    })
}

/// Start the thread that reads the whole catalog for the screens ([`Data::load`]), so a
/// large catalog never stalls the UI thread; returns where to ask. Requests that queue up
/// while it reads are answered by one read.
fn start_loader(catalog: &Arc<Catalog>, tx: &Sender<Event>) -> Sender<()> {
    let (ask, asked) = crossbeam_channel::unbounded::<()>();
    let (catalog, tx) = (catalog.clone(), tx.clone());
    std::thread::Builder::new()
        .name("aniprint-load".into())
        .spawn(move || {
            while asked.recv().is_ok() {
                let requests = 1 + asked.try_iter().count() as u32;
                let data = caught(|| Data::load(&catalog))
                    .and_then(|r| r.map_err(|e| format!("reading the catalog: {e}")));
                if tx.send(Event::Loaded(Box::new(Loaded { requests, data }))).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| tracing::error!("cannot start the catalog loader: {e}"))
        .ok();
    ask
}

/// A job on its way to a worker.
type Queued = (JobId, JobSpec, CancelToken);

/// Start a worker thread that runs the jobs sent to it one after the other, with models of
/// its own (loaded on first need); returns where to send them.
fn start_worker(
    name: &str,
    catalog: &Arc<Catalog>,
    services: &Arc<dyn Services>,
    settings: &Settings,
    tx: &Sender<Event>,
) -> Sender<Queued> {
    let (jobs, queue) = crossbeam_channel::unbounded::<Queued>();
    let (catalog, services, settings, tx) =
        (catalog.clone(), services.clone(), settings.clone(), tx.clone());
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut models = Models::default();
            for (id, spec, cancel) in queue {
                let rep = JobReporter::new(id, tx.clone(), cancel);
                let result =
                    caught(|| run_job(&catalog, &*services, &settings, &spec, &mut models, &rep))
                        .unwrap_or_else(|e| {
                            // Models a panic interrupted may be half-loaded: load them again.
                            models = Models::default();
                            JobResult::Failed(e)
                        });
                rep.finish(result);
            }
        })
        .map_err(|e| tracing::error!("cannot start the {name} worker: {e}"))
        .ok();
    jobs
}

/// Run one job to its end, loading the models it needs into `models` on first use.
/// Per-item failures become [`JobEvent::ItemFailed`]; the result says how the whole ended.
pub fn run_job(
    catalog: &Catalog,
    services: &dyn Services,
    settings: &Settings,
    spec: &JobSpec,
    models: &mut Models,
    rep: &JobReporter,
) -> JobResult {
    let outcome = match spec {
        JobSpec::Ingest { paths } => {
            let analyzer = models.analyzer(services, rep);
            ingest_job(catalog, settings, paths, analyzer, rep)
        }
        JobSpec::Scan { paths } => match models.analyzer(services, rep) {
            Ok(a) => scan_job(catalog, settings, paths, &a, rep),
            Err(why) => Err(Error::Invalid(format!("scanning needs the fingerprint model: {why}"))),
        },
        JobSpec::Separate { paths, out } => match models.separator(services, rep) {
            Ok(sep) => separate_job(paths, out, &sep, rep),
            Err(why) => Err(Error::Invalid(format!("separating needs the separator model: {why}"))),
        },
        JobSpec::Train(t) => train_job(t, rep),
        JobSpec::ExportDataset { out } => {
            rep.stage(Stage::Exporting);
            services.export_dataset(catalog, out, rep).map(|s| (s, Some(out.clone())))
        }
        JobSpec::ExportReport { filter, out, evidence } => {
            report_job(catalog, settings, filter, out, *evidence, rep)
        }
        JobSpec::ImportRights { path } => {
            rep.item(&path.display().to_string());
            rep.stage(Stage::Storing);
            match crate::rights::import_file(catalog, path, &settings.who, settings.now()) {
                Ok(s) => Ok((
                    format!(
                        "{} records ({} new, {} replaced)",
                        s.records.len(),
                        s.created,
                        s.replaced
                    ),
                    None,
                )),
                Err(Error::Rejected { what, problems }) => {
                    for p in &problems {
                        rep.failed(&what, &p.to_string());
                    }
                    Err(Error::Invalid(format!(
                        "{what}: {} problem(s), nothing was stored",
                        problems.len()
                    )))
                }
                Err(e) => Err(e),
            }
        }
    };
    match outcome {
        Ok((summary, output)) => JobResult::Done { summary, output },
        Err(Error::Cancelled) => JobResult::Cancelled,
        Err(e) => JobResult::Failed(e.to_string()),
    }
}

type JobOutput = Result<(String, Option<PathBuf>)>;

fn ingest_job(
    catalog: &Catalog,
    settings: &Settings,
    paths: &[PathBuf],
    analyzer: std::result::Result<Arc<Analyzer>, String>,
    rep: &JobReporter,
) -> JobOutput {
    let cfg = &settings.config;
    let stream = cfg.audio_lang.clone().map_or(StreamSelect::Default, StreamSelect::Language);
    let opts = IngestOptions {
        series: None,
        recursive: true,
        decode: DecodeOptions { stream, rate: SampleRate(cfg.work_rate), channels: 1 },
        crop: cfg.crop(),
    };
    let (files, bad) = ingest::collect_inputs(paths, opts.recursive);
    for (p, e) in &bad {
        rep.failed(&p.display().to_string(), &e.to_string());
    }
    rep.set_items(files.len() as u64);
    let mut report = match &analyzer {
        Ok(a) => {
            let index = CatalogIndex::open(catalog)?;
            let ix = Indexing { analyzer: a, index: &index };
            ingest::ingest_paths_indexed(catalog, &files, &opts, Some(&ix), rep)?
        }
        Err(_) => ingest::ingest_paths(catalog, &files, &opts, rep)?,
    };
    for (p, e) in &report.failed {
        rep.failed(&p.display().to_string(), &e.to_string());
    }
    if let Some(e) = report.stopped.take() {
        return Err(e);
    }
    let mut summary = format!(
        "{} ingested, {} already present{}, {} failed",
        report.ok.len(),
        report.skipped.len(),
        ingest::again_note(report.reindexed.len()),
        report.failed.len() + bad.len()
    );
    if let Err(why) = &analyzer {
        summary.push_str(&format!(" (not fingerprinted: {why})"));
    }
    Ok((summary, None))
}

fn scan_job(
    catalog: &Catalog,
    settings: &Settings,
    paths: &[PathBuf],
    analyzer: &Analyzer,
    rep: &JobReporter,
) -> JobOutput {
    let index = CatalogIndex::open(catalog)?;
    let opts =
        ScanOptions { search: index.auto_search(analyzer.model())?, ..ScanOptions::default() };
    let mut regions = 0;
    let batch = each_input(paths, rep, |f| {
        let o = scan::scan_file(catalog, &index, analyzer, f, &opts, &settings.config.review, rep)?;
        regions += o.regions.len();
        Ok(())
    })?;
    let Batch { files, failed, .. } = batch;
    Ok((format!("{files} uploads scanned, {regions} regions, {failed} failed"), None))
}

/// Run `each` on every media file under `paths` (folders walked), reporting each file that
/// cannot be found or fails with its reason and going on with the rest; a cancel or a catalog
/// failure stops the batch.
fn each_input(
    paths: &[PathBuf],
    rep: &JobReporter,
    mut each: impl FnMut(&Path) -> Result<()>,
) -> Result<Batch> {
    let (files, bad) = ingest::collect_inputs(paths, true);
    for (p, e) in &bad {
        rep.failed(&p.display().to_string(), &e.to_string());
    }
    rep.set_items(files.len() as u64);
    let mut failed = bad.len();
    for f in &files {
        rep.check()?;
        rep.item(&f.display().to_string());
        match each(f) {
            Ok(()) => {}
            Err(e @ (Error::Cancelled | Error::Catalog(_))) => return Err(e),
            Err(e) => {
                failed += 1;
                rep.failed(&f.display().to_string(), &e.to_string());
            }
        }
    }
    Ok(Batch { files: files.len(), done: files.len() + bad.len() - failed, failed })
}

/// What [`each_input`] got through.
struct Batch {
    /// Media files found (unreadable paths not counted).
    files: usize,
    /// Files `each` succeeded on.
    done: usize,
    /// Unreadable paths and failed files.
    failed: usize,
}

/// Write the report CSV, cutting evidence clips first when asked.
fn report_job(
    catalog: &Catalog,
    settings: &Settings,
    filter: &MatchFilter,
    out: &Path,
    evidence: bool,
    rep: &JobReporter,
) -> JobOutput {
    rep.stage(Stage::Exporting);
    let mut opts = ReportOptions {
        filter: filter.clone(),
        now_ms: settings.now(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        evidence: Default::default(),
    };
    let mut clips = String::new();
    if evidence {
        let dir = crate::report::evidence::dir_beside(out);
        let regions = catalog.matches(filter)?;
        let mut eo = crate::report::evidence::EvidenceOptions::new(&dir);
        eo.relative_to = out.parent().map(Path::to_path_buf);
        let ev = crate::report::evidence::write_clips(catalog, &regions, &eo, rep)?;
        clips = format!("; {} evidence clips in {}", ev.written, dir.display());
        if let Some(e) = ev.failed.first() {
            // The report is still worth having; the summary says what it lacks.
            clips += &format!(" ({} source(s) without clips: {e})", ev.failed.len());
        }
        opts.evidence = ev.refs;
    }
    let r = report::build(catalog, &opts)?;
    write_atomic(out, &r.to_csv_bytes(settings.config.csv_bom)?)?;
    Ok((
        format!(
            "report {}: {} rows, {} matches ({} without an owner){clips}",
            r.id,
            r.rows.len(),
            r.matches,
            r.owner_missing
        ),
        Some(out.to_path_buf()),
    ))
}

/// Separate every media file under `paths` into stems in `out`; a file that fails is reported
/// with its reason and the others go on (as `aniprint separate` does).
fn separate_job(paths: &[PathBuf], out: &Path, sep: &Separator, rep: &JobReporter) -> JobOutput {
    let mut seconds = 0.0;
    let mut namer = separate::StemNamer::default();
    let Batch { done, failed, .. } = each_input(paths, rep, |f| {
        let name = namer.name(f);
        seconds += separate::separate_file(sep, f, out, &name, AudioFormat::Wav, rep)?.seconds;
        Ok(())
    })?;
    Ok((
        format!("{done} separated ({}), {failed} failed", short_hms(seconds)),
        Some(out.to_path_buf()),
    ))
}

/// Train (or resume) a model with the library trainer, as `aniprint train` does: load the
/// corpus (decoded into the cache on first use), then step until `steps`, checkpointing as
/// the trainer does. Cancel stops at the next step with a checkpoint there; the next run with
/// the same state folder resumes from it.
fn train_job(spec: &TrainSpec, rep: &JobReporter) -> JobOutput {
    rep.check()?;
    let state = spec.state_dir();
    let out = match &spec.out {
        Some(out) => out.clone(),
        None => spec.model.default_dir()?,
    };
    let corpus = spec.corpus.clone();
    match spec.model {
        TrainModel::Fingerprint => {
            use crate::fingerprint::train::{self as ft, TrainOptions};
            let mut opts = TrainOptions::new(corpus, state, out);
            opts.steps = spec.steps;
            opts.cache = spec.cache.clone().unwrap_or(opts.cache);
            let rate = opts.fingerprint.rate();
            let corpus = ft::load_corpus(&opts.corpus, &opts.cache, rate, &opts.val_packages, rep)?;
            rep.check()?;
            let s = ft::train(&opts, &corpus, rep)?;
            let summary = format!(
                "{} steps ({} in all): loss {:.3}, validation top-1 {:.1}%",
                s.step,
                short_hms(s.elapsed_s),
                s.loss,
                100.0 * s.val_top1
            );
            Ok((summary, Some(opts.out)))
        }
        TrainModel::Separator => {
            use crate::separate::train::{self as st, TrainOptions};
            let mut opts = TrainOptions::new(corpus, state, out);
            opts.steps = spec.steps;
            opts.cache = spec.cache.clone().unwrap_or(opts.cache);
            let rate = opts.rate();
            let corpus = crate::fingerprint::train::load_corpus(
                &opts.corpus,
                &opts.cache,
                rate,
                &opts.val_packages,
                rep,
            )?;
            rep.check()?;
            let s = st::train(&opts, &corpus, rep)?;
            let summary = format!(
                "{} steps ({} in all): loss {:.4}, validation SDR {:.2} dB",
                s.step,
                short_hms(s.elapsed_s),
                s.loss,
                s.val_sdr
            );
            Ok((summary, Some(opts.out)))
        }
    }
}

/// Write `data` to `path` through a temporary sibling (`<path>.tmp`) and a rename, so readers
/// never see half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, data).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Rate previews decode at.
const PREVIEW_RATE: u32 = 16_000;

/// A decoded stretch: file, stream, start and end in ms.
type PreviewKey = (PathBuf, Option<usize>, u64, u64);

fn preview_worker(slot: &(Mutex<Option<PreviewRequest>>, Condvar), tx: &Sender<Event>) {
    let mut cache: HashMap<PreviewKey, std::result::Result<SpecImage, String>> = HashMap::new();
    loop {
        let req = {
            let (lock, cv) = slot;
            let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(r) = guard.take() {
                    break r;
                }
                guard = cv.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
        };
        if cache.len() > 64 {
            cache.clear();
        }
        let mut side = |path: &Path, stream: Option<usize>, a: f64, b: f64| {
            let key = (path.to_path_buf(), stream, (a * 1000.0) as u64, (b * 1000.0) as u64);
            cache
                .entry(key)
                .or_insert_with(|| caught(|| decode_range(path, stream, a, b)).and_then(|r| r))
                .clone()
        };
        let (up, ua, ub) = &req.upload;
        let upload = side(up, None, *ua, *ub);
        let (ep, stream, ea, eb) = &req.reference;
        let reference = side(ep, Some(*stream), *ea, *eb);
        let preview = Preview { match_id: req.match_id, upload, reference };
        if tx.send(Event::Preview(Box::new(preview))).is_err() {
            return;
        }
    }
}

/// Decode only `a..b` seconds of a file (stopping at `b`) and compute its spectrogram.
pub fn decode_range(
    path: &Path,
    stream: Option<usize>,
    a: f64,
    b: f64,
) -> std::result::Result<SpecImage, String> {
    let opts = DecodeOptions {
        stream: stream.map_or(StreamSelect::Default, StreamSelect::Index),
        rate: SampleRate(PREVIEW_RATE),
        channels: 1,
    };
    let mut src = media::open(path, &opts).map_err(|e| e.to_string())?;
    let (start, end) =
        ((a * f64::from(PREVIEW_RATE)) as usize, (b * f64::from(PREVIEW_RATE)) as usize);
    let mut pos = 0usize;
    let mut out = Vec::with_capacity(end.saturating_sub(start));
    while pos < end {
        let Some(chunk) = src.next_chunk().map_err(|e| e.to_string())? else { break };
        let (c0, c1) = (pos, pos + chunk.len());
        if c1 > start {
            out.extend_from_slice(&chunk[start.saturating_sub(c0)..(end.min(c1) - c0)]);
        }
        pos = c1;
    }
    if out.is_empty() {
        return Err(format!("{}: nothing to decode at {a:.1}-{b:.1} s", path.display()));
    }
    Ok(SpecImage::compute(&out, PREVIEW_RATE, 160))
}
