//! Judging a syzbot bisection by its own evidence (issue 26): the line of
//! commits syzbot tested, rebuilt from the log ([`line`]), every run
//! classified against the bug, weighed with the noisy search's model
//! ([`bayes::line_posterior`]): the chance that the named culprit is the
//! first bad commit, and per good or bad verdict the chance it was wrong.
//! That runs-only chance is then calibrated ([`calibrate`]) against what the
//! runs cannot show: the probability users see is "the chance this result
//! is right", as labelled results measured it.
//!
//! # The line
//!
//! Node order follows the bisection itself: a commit judged good lies after
//! every earlier good one, a commit judged bad before every earlier bad
//! one. Distances come from git's `Bisecting: N revisions left` (the tested
//! commit is N + 1 commits before the current bad end); without them, the
//! middle of the interval. Untested commits between tested ones are
//! `Unknown` nodes (scaled down to at most [`Settings::max_nodes`]), so a
//! verdict that cut a large stretch carries the prior mass of that stretch.
//! Left of the good release lies one more release cycle (the good release
//! may be wrong too); right of the bisection's bad end, the newer bad
//! releases and the original commit, a cycle apart. The culprit sits right
//! after the last good commit (and its parent's kernel, when the log built
//! it). Equal signatures are one kernel and pool their runs; a step without
//! a signature is a kernel of its own.
//!
//! # Which bug
//!
//! The log's `crash:` trailer is the crash syzbot saw *on the culprit*
//! (syzkaller calls a kernel bad on any crash), not necessarily the bug
//! the bisection started from. That bug is what the start commit crashed
//! with ([`original_titles`]). When the culprit's title is another bug's
//! (not the same title, not the same function), the bisection may have
//! followed another bug: the culprit's probability is a mixture, with
//! [`Settings::same_bug`] the prior that the two titles are one bug
//! (runs of either title are evidence) and the rest on "they are two
//! bugs" (only the start commit's title is evidence; the other bug's
//! crashes are *other*, as in the search).
//!
//! Invariant: reads a parsed [`Log`] and nothing else (no cache, no git);
//! the posterior is `bayes`'s, never a model of its own.

mod calibrate;
mod line;
#[cfg(test)]
mod tests;

pub use calibrate::{
    fit_columns, predict_columns, Features, Logistic, CANDIDATES, FEATURES, FITTED, LAMBDA, MODEL, USED,
};

use std::path::PathBuf;

use crate::crash::{normalize_title, ClassCounts, RunClass, Target};
use crate::search::bayes::{self, Kernel, Model};
use crate::signature::KernelSignature;
use crate::syzlog::{
    self, Analysis, Confidence, Direction, Finding, Log, Purpose, ReplayReport, RunCounts, RunOutcome, Runs, Severity,
    Step, Verdict, VerdictDoubt, WEAK_EVIDENCE,
};
use line::Line;

/// The judge's settings, chosen on the dev logs (README "Judging a result
/// by its evidence").
#[derive(Debug, Clone)]
pub struct Settings {
    /// The search's model (`epsilon`, `prior_none` matter here).
    pub model: Model,
    /// Below this (calibrated) probability the culprit gets a
    /// `weak-evidence` finding. Chosen on out-of-fold probabilities of the
    /// dev labels (the most recall at >= 95% precision): see
    /// `tests/judge_dev.rs`.
    pub threshold: f64,
    /// Runs syzbot's `all runs:` shorthand counts for. It stands for 10
    /// VMs that all agreed, but runs of one kernel, image and reproducer
    /// are not independent draws: counted as 10 they make every `good`
    /// nearly certain, and the dev logs say they are not.
    pub runs_per_all: u32,
    /// The most nodes of a rebuilt line (untested stretches are scaled).
    pub max_nodes: f64,
    /// The prior that the culprit's crash title and an unrelated title the
    /// start commit crashed with are one bug (see "Which bug"). 1 trusts
    /// the trailer's title alone (the judge before the start commit's
    /// title was looked at).
    pub same_bug: f64,
    /// Turns the runs' posterior and the log's other features into the
    /// calibrated probability (see [`calibrate`]).
    pub calibration: Logistic,
}

/// The runs' model (`epsilon`, `runs_per_all`, `same_bug`) as chosen on the
/// dev logs in issue 26; the calibration ([`FITTED`]) and the cut chosen by
/// cross-validation on the dev labels (issue 36).
impl Default for Settings {
    fn default() -> Settings {
        Settings {
            model: Model {
                epsilon: 0.02,
                prior_none: 0.05,
                ..Model::default()
            },
            threshold: 0.2,
            runs_per_all: 3,
            max_nodes: 4000.0,
            same_bug: 0.1,
            calibration: FITTED,
        }
    }
}

/// The runs syzbot's `all runs:` shorthand stands for (10 VMs), as shown
/// to users; the weighing counts [`Settings::runs_per_all`].
const SHORTHAND_RUNS: u32 = 10;

/// A title makes the start commit's bug when it is at least this share of
/// the start commit's crashes (and seen twice, or `all runs:`).
const ORIGINAL_SHARE: f64 = 0.2;

/// `log analyze` with the judge: the rules of [`syzlog::analyze`], plus
/// the culprit's confidence and, below the threshold, `weak-evidence`.
pub fn analyze(log: &Log) -> Analysis {
    analyze_with(log, &Settings::default())
}

pub fn analyze_with(log: &Log, settings: &Settings) -> Analysis {
    let mut analysis = syzlog::analyze(log);
    if log.culprit().is_none() {
        return analysis;
    }
    let observed = Observed::of(log);
    let bug = Bug::of(log, &observed);
    let confidence = confidence_of(log, &observed, bug.as_ref(), settings);
    if let Some(finding) = weak_evidence(bug.as_ref(), &confidence, settings.threshold) {
        analysis.add_finding(finding);
    }
    analysis.confidence = Some(confidence);
    analysis
}

/// `log replay` with the judge's analysis of every log.
pub fn replay(files: &[PathBuf]) -> ReplayReport {
    syzlog::replay_with(files, analyze)
}

/// [`replay`], scoring the judge's probabilities and flags against `labels`.
pub fn replay_labelled(files: &[PathBuf], labels: &syzlog::Labels) -> ReplayReport {
    syzlog::replay_labelled(files, labels, analyze)
}

/// The finding for a culprit whose probability is below `threshold`,
/// naming the verdict most likely wrong.
fn weak_evidence(bug: Option<&Bug>, c: &Confidence, threshold: f64) -> Option<Finding> {
    let p = c.probability.filter(|p| *p < threshold)?;
    let runs = c.runs_probability.map_or("none".to_string(), |r| format!("{r:.2}"));
    let step = match &c.weakest {
        Some(w) => format!(
            "; the likeliest wrong verdict: {} {} (line {}; runs: {}), wrong with chance {:.2}",
            w.verdict.as_str(),
            crate::short_id(&w.commit),
            w.line,
            w.runs,
            w.wrong
        ),
        None => String::new(),
    };
    let drift = match bug {
        Some(Bug::Drifted { original, culprit }) => format!(
            " (the culprit crashed with \"{}\", the start commit with \"{}\": maybe another bug)",
            culprit,
            original.titles.join("\" | \"")
        ),
        _ => String::new(),
    };
    Some(Finding {
        rule: WEAK_EVIDENCE,
        severity: Severity::Warning,
        message: format!("the culprit is right with a probability of {p:.2} (its runs alone: {runs}){drift}{step}"),
    })
}

/// The bug the runs are weighed against.
#[derive(Debug, Clone, PartialEq)]
enum Bug {
    /// The culprit's title and the start commit's are one bug (or the
    /// start commit tells nothing): runs of any of them match.
    One(Target),
    /// The culprit crashed with a title unrelated to the start commit's.
    Drifted { original: Target, culprit: String },
}

impl Bug {
    /// `None` when neither the trailer nor the start commit names a crash.
    fn of(log: &Log, observed: &Observed) -> Option<Bug> {
        let original = original_titles(log);
        let Some(culprit) = log.trailer.as_ref().and_then(|t| t.crash_title.as_deref()) else {
            // No `crash:` trailer (older or cut logs): the start commit's
            // crash is the bug.
            return original.map(Bug::One);
        };
        let Some(original) = original else {
            return Some(Bug::One(Target::new([culprit])));
        };
        let culprit = normalize_title(culprit);
        let one = |t: &String| one_bug(t, &culprit);
        if original.titles.iter().any(one) || seen_together(log, observed, &original, &culprit) {
            let mut both = original.titles;
            both.push(culprit);
            return Some(Bug::One(Target::new(both)));
        }
        Some(Bug::Drifted { original, culprit })
    }
}

/// The titles the start commit crashed with: every title that is at least
/// [`ORIGINAL_SHARE`] of its crashes and seen twice (or `all runs:`).
/// `None` when it did not crash, or no title stands out (one crash among
/// clean runs says little about which bug the reproducer finds).
fn original_titles(log: &Log) -> Option<Target> {
    let step = log.steps.iter().find(|s| s.purpose == Purpose::Original)?;
    match &step.runs {
        Runs::All(RunOutcome::Crashed(t)) => Some(Target::new([t])),
        Runs::Each(_) => {
            let titles = step.crash_titles();
            Target::learn(&titles, ORIGINAL_SHARE).filter(|_| titles.len() >= 2)
        }
        _ => None,
    }
}

/// One tested kernel (other than the start commit's) crashed with the
/// culprit's title and with the start commit's in the runs of one step:
/// one reproducer on one kernel showing both, two faces of one bug (a
/// kernel that only ever shows one of them is what a second bug looks like).
/// `culprit` is normalized.
fn seen_together(log: &Log, observed: &Observed, original: &Target, culprit: &str) -> bool {
    let later = (0..log.steps.len()).filter(|&i| log.steps[i].purpose != Purpose::Original);
    later.map(|i| observed.titles(i)).any(|titles| {
        let of_original = |t: &&str| original.titles.iter().any(|o| one_bug(o, t));
        titles.len() >= 2 && titles.iter().any(of_original) && titles.iter().any(|t| one_bug(t, culprit))
    })
}

/// Two titles name one bug: equal once normalized, or crashing in the same
/// function (`KASAN: slab-out-of-bounds Read in f` and `KASAN:
/// use-after-free Write in f`), or one of them is `corrupted` (the report
/// lost the frame: it cannot tell).
#[cfg(test)]
fn same_bug(a: &str, b: &str) -> bool {
    one_bug(&normalize_title(a), &normalize_title(b))
}

/// [`same_bug`] of two normalized titles.
fn one_bug(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (crash_function(a), crash_function(b)) {
        (Some(fa), Some(fb)) => fa == fb || fa == "corrupted" || fb == "corrupted",
        _ => false,
    }
}

/// The function a title names: the word after its last ` in `.
fn crash_function(title: &str) -> Option<&str> {
    let (_, rest) = title.rsplit_once(" in ")?;
    rest.split_whitespace().next()
}

/// The calibration's features of `log` (`None` when the runs cannot decide:
/// no probability to calibrate), for fitting [`Logistic`] on labelled logs.
pub fn features(log: &Log, settings: &Settings) -> Option<Features> {
    let observed = Observed::of(log);
    let c = confidence_of(log, &observed, Bug::of(log, &observed).as_ref(), settings);
    c.runs_probability.map(|p| Features::of(log, &observed, p))
}

/// What one target's posterior says.
struct Weighed {
    probability: f64,
    no_culprit: f64,
    /// Per step: the chance its verdict was wrong (None: no verdict).
    wrong: Vec<Option<f64>>,
}

/// The culprit's calibrated probability, its probability given only the
/// log's runs, and the chance each verdict on the way was wrong.
pub fn confidence(log: &Log, settings: &Settings) -> Confidence {
    let observed = Observed::of(log);
    confidence_of(log, &observed, Bug::of(log, &observed).as_ref(), settings)
}

fn confidence_of(log: &Log, observed: &Observed, bug: Option<&Bug>, settings: &Settings) -> Confidence {
    let undecided = |why: &str| Confidence {
        undecided: Some(why.to_string()),
        ..Confidence::default()
    };
    let Some(culprit) = log.culprit() else {
        return undecided("the bisection named no culprit");
    };
    if log.direction == Direction::Fix {
        return undecided("a fix bisection: only cause bisections are judged");
    }
    let Some(bug) = bug else {
        return undecided(
            "neither the log's crash title nor its start commit's runs name the bug: its runs cannot be told apart from other bugs",
        );
    };
    let Some(line) = Line::build(log, culprit, settings) else {
        return undecided("the culprit is not among the tested commits");
    };
    // (target, weight) per hypothesis; the first is "one bug".
    let hypotheses: Vec<(Target, f64)> = match bug {
        Bug::One(t) => vec![(t.clone(), 1.0)],
        Bug::Drifted { original, culprit } => {
            let mut both = original.titles.clone();
            both.push(culprit.clone());
            vec![
                (Target::new(both), settings.same_bug),
                (original.clone(), 1.0 - settings.same_bug),
            ]
        }
    };
    // Runs are shown against the start commit's bug when it differs.
    let shown = hypotheses.last().map(|(t, _)| t.clone()).unwrap_or_default();
    let mut out = Confidence {
        target: shown.titles.first().cloned(),
        ..Confidence::default()
    };
    let informative: u32 = evidence(log, observed, &hypotheses[0].0, settings.runs_per_all)
        .iter()
        .map(|(_, c)| c.informative())
        .sum();
    if informative < 2 {
        out.undecided = Some(format!(
            "{informative} run(s) matched the bug or ran clean: too few to weigh"
        ));
        return out;
    }
    let mut probability = 0.0;
    let mut no_culprit = 0.0;
    let mut wrong = vec![None; log.steps.len()];
    for (target, weight) in hypotheses.iter().filter(|(_, w)| *w > 0.0) {
        let w = weigh(log, observed, &line, target, settings);
        probability += weight * w.probability;
        no_culprit += weight * w.no_culprit;
        for (acc, step) in wrong.iter_mut().zip(&w.wrong) {
            if let Some(x) = step {
                *acc = Some(acc.unwrap_or(0.0) + weight * x);
            }
        }
    }
    let runs_probability = probability.clamp(0.0, 1.0);
    out.runs_probability = Some(runs_probability);
    let features = Features::of(log, observed, runs_probability);
    out.probability = Some(settings.calibration.probability(&features));
    out.no_culprit = Some(no_culprit.clamp(0.0, 1.0));
    for (i, (step, wrong)) in log.steps.iter().zip(wrong).enumerate() {
        let (Some(wrong), Some(verdict)) = (wrong, Log::effective_verdict(step)) else {
            continue;
        };
        out.verdicts.push(VerdictDoubt {
            line: step.line,
            commit: step.commit.clone(),
            verdict,
            runs: run_counts(observed, i, &shown),
            wrong: wrong.clamp(0.0, 1.0),
        });
    }
    out.weakest = out.verdicts.iter().max_by(|a, b| a.wrong.total_cmp(&b.wrong)).cloned();
    out
}

/// The posterior of `line` with the runs classified against `target`.
fn weigh(log: &Log, observed: &Observed, line: &Line, target: &Target, settings: &Settings) -> Weighed {
    let evidence = evidence(log, observed, target, settings.runs_per_all);
    let post = bayes::line_posterior(&settings.model, &line.kernels, &evidence);
    // P(first bad <= i): node i is bad.
    let mut bad_at = Vec::with_capacity(post.mass.len());
    let mut acc = 0.0;
    for m in &post.mass {
        acc += m;
        bad_at.push(acc);
    }
    let wrong = log
        .steps
        .iter()
        .zip(&line.node_of_step)
        .map(|(step, &node)| match (node, Log::effective_verdict(step)) {
            (Some(node), Some(Verdict::Good)) => Some(bad_at[node]),
            (Some(node), Some(Verdict::Bad)) => Some(1.0 - bad_at[node]),
            _ => None,
        })
        .collect();
    Weighed {
        probability: post.mass[line.culprit],
        no_culprit: post.none,
        wrong,
    }
}
/// A run as the judge reads it: its crash title normalized once, however
/// many targets it is classified against.
#[derive(Debug, Clone)]
enum Seen {
    Ok,
    Crash(String),
    /// Boot failures, failed tests, infrastructure trouble.
    NoInfo,
}

impl Seen {
    fn of(outcome: &RunOutcome) -> Seen {
        match outcome {
            RunOutcome::Ok => Seen::Ok,
            RunOutcome::Crashed(t) => Seen::Crash(normalize_title(t)),
            RunOutcome::BootFailed(_) | RunOutcome::TestFailed(_) | RunOutcome::Infra(_) => Seen::NoInfo,
        }
    }

    /// What it says about `target` (as [`Target::classify`] says it).
    fn class(&self, target: &Target) -> RunClass {
        match self {
            Seen::Ok => RunClass::Ok,
            Seen::NoInfo => RunClass::NoInfo,
            Seen::Crash(t) if target.is_empty() || target.titles.contains(t) => RunClass::Match,
            Seen::Crash(_) => RunClass::Other,
        }
    }
}

/// Every step's runs, read once.
struct Observed {
    /// Per step: its runs (one for `all runs:`) and whether that one is
    /// the shorthand.
    steps: Vec<(Vec<Seen>, bool)>,
}

impl Observed {
    fn of(log: &Log) -> Observed {
        let steps = log
            .steps
            .iter()
            .map(|step| match &step.runs {
                Runs::None => (Vec::new(), false),
                Runs::All(o) => (vec![Seen::of(o)], true),
                Runs::Each(runs) => (runs.iter().map(|r| Seen::of(&r.outcome)).collect(), false),
            })
            .collect();
        Observed { steps }
    }

    /// Step `i`'s runs as classes (`all runs:` stands for `runs_per_all`).
    fn classes<'a>(&'a self, i: usize, target: &'a Target, runs_per_all: u32) -> impl Iterator<Item = RunClass> + 'a {
        let (runs, all) = &self.steps[i];
        let times = if *all { runs_per_all as usize } else { 1 };
        runs.iter()
            .flat_map(move |r| std::iter::repeat_n(r.class(target), times))
    }

    /// Step `i`'s distinct crash titles (normalized).
    fn titles(&self, i: usize) -> Vec<&str> {
        let mut t: Vec<&str> = self.steps[i]
            .0
            .iter()
            .filter_map(|r| match r {
                Seen::Crash(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    }
}

/// Step `i`'s runs against `target`, as shown to users (`all runs:` as
/// the 10 runs it stands for).
fn run_counts(observed: &Observed, i: usize, target: &Target) -> RunCounts {
    let mut c = RunCounts::default();
    for class in observed.classes(i, target, SHORTHAND_RUNS) {
        match class {
            RunClass::Match => c.matched += 1,
            RunClass::Other => c.other += 1,
            RunClass::Ok => c.ok += 1,
            RunClass::NoInfo => c.no_info += 1,
        }
    }
    c
}

/// The kernel a step's runs are pooled under: its signature, else its
/// commit (a kernel of its own), as the search's signature type.
fn kernel_label(step: &Step) -> KernelSignature {
    KernelSignature::of_label(&match &step.signature {
        Some(sig) => sig.clone(),
        None => format!("commit {}", step.commit),
    })
}

/// What a step's node is: a kernel with runs or a signature, or one that
/// tells nothing (it did not build).
fn kernel_of(step: &Step) -> Kernel {
    if step.signature.is_some() || step.tested() {
        Kernel::Signed(kernel_label(step))
    } else {
        Kernel::Broken
    }
}

/// Runs per kernel label, pooled over every step with that kernel.
fn evidence(log: &Log, observed: &Observed, target: &Target, runs_per_all: u32) -> Vec<(KernelSignature, ClassCounts)> {
    let mut out: Vec<(KernelSignature, ClassCounts)> = Vec::new();
    for (s, step) in log.steps.iter().enumerate().filter(|(_, s)| s.tested()) {
        let label = kernel_label(step);
        let i = match out.iter().position(|(l, _)| *l == label) {
            Some(i) => i,
            None => {
                out.push((label, ClassCounts::default()));
                out.len() - 1
            }
        };
        for class in observed.classes(s, target, runs_per_all) {
            out[i].1.add(class);
        }
    }
    out
}
