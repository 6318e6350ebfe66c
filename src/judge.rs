//! Judging a syzbot bisection by its own evidence (issue 26): the line of
//! commits syzbot tested, rebuilt from the log, every run classified
//! against the bug's own title (the log's `crash:` trailer, normalized as
//! [`crate::crash`] does for the search), weighed with the noisy search's
//! model ([`bayes::line_posterior`]): the chance that the named culprit is
//! the first bad commit, and per good or bad verdict the chance it was wrong.
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
//! Invariant: reads a parsed [`Log`] and nothing else (no cache, no git);
//! the posterior is `bayes`'s, never a model of its own.

use std::path::PathBuf;

use crate::bisect::bayes::{self, Kernel, Model};
use crate::crash::{ClassCounts, RunClass, Target};
use crate::store::Outcome;
use crate::syzlog::{
    self, Analysis, Confidence, Direction, Finding, Log, Purpose, ReplayReport, RunCounts, RunOutcome, Runs, Severity,
    Step, Verdict, VerdictDoubt, WEAK_EVIDENCE,
};

/// The judge's settings, chosen on the dev logs (README "Judging a result
/// by its evidence").
#[derive(Debug, Clone)]
pub struct Settings {
    /// The search's model (`epsilon`, `prior_none` matter here).
    pub model: Model,
    /// Below this probability the culprit gets a `weak-evidence` finding.
    pub threshold: f64,
    /// Runs behind syzbot's `all runs:` shorthand (it runs 10 VMs).
    pub runs_per_all: u32,
    /// The most nodes of a rebuilt line (untested stretches are scaled).
    pub max_nodes: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            model: Model::default(),
            threshold: 0.5,
            runs_per_all: 10,
            max_nodes: 4000.0,
        }
    }
}

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
    let confidence = confidence(log, settings);
    if let Some(finding) = weak_evidence(&confidence, settings.threshold) {
        analysis.add_finding(finding);
    }
    analysis.confidence = Some(confidence);
    analysis
}

/// `log replay` with the judge's analysis of every log.
pub fn replay(files: &[PathBuf]) -> ReplayReport {
    syzlog::replay_with(files, analyze)
}

/// The finding for a culprit whose probability is below `threshold`,
/// naming the verdict most likely wrong.
fn weak_evidence(c: &Confidence, threshold: f64) -> Option<Finding> {
    let p = c.probability.filter(|p| *p < threshold)?;
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
    Some(Finding {
        rule: WEAK_EVIDENCE,
        severity: Severity::Warning,
        message: format!(
            "the log's own runs give the culprit a probability of {p:.2} of being the first bad commit{step}"
        ),
    })
}

/// The culprit's probability given only the log's runs, and the chance
/// each verdict on the way was wrong.
pub fn confidence(log: &Log, settings: &Settings) -> Confidence {
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
    let Some(title) = log.trailer.as_ref().and_then(|t| t.crash_title.as_deref()) else {
        return undecided("the log has no crash title: its runs cannot be told apart from other bugs");
    };
    let target = Target::new([title]);
    let Some(line) = Line::build(log, culprit, settings) else {
        return undecided("the culprit is not among the tested commits");
    };
    let evidence = evidence(log, &target, settings.runs_per_all);
    let informative: u32 = evidence.iter().map(|(_, c)| c.informative()).sum();
    let mut out = Confidence {
        target: target.titles.first().cloned(),
        ..Confidence::default()
    };
    if informative < 2 {
        out.undecided = Some(format!(
            "{informative} run(s) matched the bug or ran clean: too few to weigh"
        ));
        return out;
    }
    let post = bayes::line_posterior(&settings.model, &line.kernels, &evidence);
    if std::env::var("JUDGE_DEBUG").is_ok() {
        for (i, k) in line.kernels.iter().enumerate() {
            if *k != Kernel::Unknown || post.mass[i] > 0.01 {
                let c = match k {
                    Kernel::Signed(l) => evidence
                        .iter()
                        .find(|(x, _)| x == l)
                        .map(|(_, c)| c.describe())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                eprintln!("{i} {:?} mass {:.3e} {c}", k, post.mass[i]);
            }
        }
        eprintln!("culprit {} none {}", line.culprit, post.none);
    }
    // P(first bad <= i): node i is bad.
    let mut bad_at = Vec::with_capacity(post.mass.len());
    let mut acc = 0.0;
    for m in &post.mass {
        acc += m;
        bad_at.push(acc);
    }
    out.probability = Some(post.mass[line.culprit]);
    out.no_culprit = Some(post.none);
    for (step, &node) in log.steps.iter().zip(&line.node_of_step) {
        let (Some(node), Some(verdict)) = (node, Log::effective_verdict(step)) else {
            continue;
        };
        let wrong = match verdict {
            Verdict::Good => bad_at[node],
            Verdict::Bad => 1.0 - bad_at[node],
            Verdict::Skip => continue,
        };
        out.verdicts.push(VerdictDoubt {
            line: step.line,
            commit: step.commit.clone(),
            verdict,
            runs: run_counts(step, &target, settings.runs_per_all),
            wrong: wrong.clamp(0.0, 1.0),
        });
    }
    out.weakest = out.verdicts.iter().max_by(|a, b| a.wrong.total_cmp(&b.wrong)).cloned();
    out
}

/// What a run says about the target.
fn classify(outcome: &RunOutcome, target: &Target) -> RunClass {
    match outcome {
        RunOutcome::Ok => RunClass::Ok,
        RunOutcome::Crashed(t) => target.classify(Outcome::Crash, Some(t)),
        RunOutcome::BootFailed(_) | RunOutcome::TestFailed(_) | RunOutcome::Infra(_) => RunClass::NoInfo,
    }
}

/// A step's runs as classes (`all runs:` stands for `runs_per_all` runs).
fn classes(step: &Step, target: &Target, runs_per_all: u32) -> Vec<RunClass> {
    match &step.runs {
        Runs::None => Vec::new(),
        Runs::All(o) => vec![classify(o, target); runs_per_all as usize],
        Runs::Each(runs) => runs.iter().map(|r| classify(&r.outcome, target)).collect(),
    }
}

fn run_counts(step: &Step, target: &Target, runs_per_all: u32) -> RunCounts {
    let mut c = RunCounts::default();
    for class in classes(step, target, runs_per_all) {
        match class {
            RunClass::Match => c.matched += 1,
            RunClass::Other => c.other += 1,
            RunClass::Ok => c.ok += 1,
            RunClass::NoInfo => c.no_info += 1,
        }
    }
    c
}

/// The label a step's kernel is pooled under: its signature, else its
/// commit (a kernel of its own).
fn kernel_label(step: &Step) -> String {
    match &step.signature {
        Some(sig) => sig.clone(),
        None => format!("commit {}", step.commit),
    }
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
fn evidence(log: &Log, target: &Target, runs_per_all: u32) -> Vec<(String, ClassCounts)> {
    let mut out: Vec<(String, ClassCounts)> = Vec::new();
    for step in log.steps.iter().filter(|s| s.tested()) {
        let label = kernel_label(step);
        let i = match out.iter().position(|(l, _)| *l == label) {
            Some(i) => i,
            None => {
                out.push((label, ClassCounts::default()));
                out.len() - 1
            }
        };
        for class in classes(step, target, runs_per_all) {
            out[i].1.add(class);
        }
    }
    out
}

/// A placed node before discretization.
struct Placed {
    pos: f64,
    kernel: Kernel,
    /// Steps (indices) whose commit this node is.
    steps: Vec<usize>,
    /// No untested commits between this node and the one before it.
    adjacent: bool,
}

/// The rebuilt line: kernels by node, where each step and the culprit sit.
struct Line {
    kernels: Vec<Kernel>,
    node_of_step: Vec<Option<usize>>,
    culprit: usize,
}

impl Line {
    fn build(log: &Log, culprit: &str, settings: &Settings) -> Option<Line> {
        let mut placed = place(log, culprit);
        placed.sort_by(|a, b| a.pos.total_cmp(&b.pos));
        let gaps: Vec<f64> = placed
            .windows(2)
            .map(|w| {
                if w[1].adjacent {
                    0.0
                } else {
                    (w[1].pos - w[0].pos - 1.0).round().max(0.0)
                }
            })
            .collect();
        let total: f64 = gaps.iter().sum::<f64>() + placed.len() as f64;
        let scale = (settings.max_nodes / total).min(1.0);
        let mut kernels = Vec::new();
        let mut node_of_step = vec![None; log.steps.len()];
        let mut culprit_node = None;
        for (i, p) in placed.into_iter().enumerate() {
            if i > 0 {
                let gap = gaps[i - 1];
                let scaled = if gap > 0.0 { (gap * scale).round().max(1.0) } else { 0.0 };
                kernels.extend(std::iter::repeat_n(Kernel::Unknown, scaled as usize));
            }
            for &s in &p.steps {
                node_of_step[s] = Some(kernels.len());
                if log.steps[s].commit == culprit && log.steps[s].purpose != Purpose::CulpritParent {
                    culprit_node = Some(kernels.len());
                }
            }
            kernels.push(p.kernel);
        }
        let culprit = culprit_node.filter(|&c| c > 0)?;
        Some(Line {
            kernels,
            node_of_step,
            culprit,
        })
    }
}

/// Places every tested commit on a number line (see the module docs).
fn place(log: &Log, culprit: &str) -> Vec<Placed> {
    let steps = &log.steps;
    let bisect: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].purpose == Purpose::Bisect)
        .collect();
    // Before the bisection: the original commit and releases, newest first,
    // until one is good (the bisection's good end).
    let pre_end = bisect.first().copied().unwrap_or(steps.len());
    let pre: Vec<usize> = (0..pre_end)
        .filter(|&i| matches!(steps[i].purpose, Purpose::Original | Purpose::Release(_)))
        .collect();
    let good_release = pre
        .iter()
        .copied()
        .find(|&i| Log::effective_verdict(&steps[i]) == Some(Verdict::Good));
    // The range's length in commits: git's first count, else 2^steps.
    let range = match bisect.first().and_then(|&i| steps[i].left) {
        Some(left) => 2.0 * (left as f64 + 1.0),
        None => 2f64.powi(bisect.len().min(30) as i32).max(2.0),
    };
    let mut nodes: Vec<Placed> = Vec::new();
    // Adds a node (or pools a commit tested again into its node): its index.
    let add = |nodes: &mut Vec<Placed>, pos: f64, step: Option<usize>, adjacent: bool| -> usize {
        if let Some(s) = step {
            if let Some(n) = nodes
                .iter()
                .position(|n| n.steps.first().is_some_and(|&f| steps[f].commit == steps[s].commit))
            {
                nodes[n].steps.push(s);
                return n;
            }
        }
        nodes.push(Placed {
            pos,
            kernel: step.map_or(Kernel::Unknown, |s| kernel_of(&steps[s])),
            steps: step.into_iter().collect(),
            adjacent,
        });
        nodes.len() - 1
    };
    // A release cycle before the good end: it may be wrong too.
    add(&mut nodes, -range, None, false);
    let mut last_good = add(&mut nodes, 0.0, good_release, false);
    // Right of the range: the bad end (the last pre step tested), then the
    // newer ones, a cycle apart, the original last.
    let right: Vec<usize> = pre.iter().copied().filter(|&i| Some(i) != good_release).collect();
    for (k, &i) in right.iter().rev().enumerate() {
        add(&mut nodes, range * (k as f64 + 1.0), Some(i), false);
    }
    if right.is_empty() {
        add(&mut nodes, range, None, false);
    }
    let (mut lo, mut hi) = (0.0, range);
    for &i in &bisect {
        let mid = (lo + hi) / 2.0;
        let pos = match steps[i].left {
            Some(left) if hi - left as f64 - 1.0 > lo && hi - left as f64 - 1.0 < hi => hi - left as f64 - 1.0,
            _ => mid,
        };
        let node = add(&mut nodes, pos, Some(i), false);
        match Log::effective_verdict(&steps[i]) {
            Some(Verdict::Good) => {
                lo = pos;
                last_good = node;
            }
            Some(Verdict::Bad) => hi = pos,
            _ => {}
        }
    }
    // The culprit sits right after the last good commit. Its parent, when
    // the log built it without testing it, is good by ancestry (git bisect
    // names a commit whose parents are good): right before the last good.
    let same_commit = |n: &Placed, i: usize| n.steps.first().is_some_and(|&f| steps[f].commit == steps[i].commit);
    let Some(c) = (0..steps.len())
        .find(|&i| steps[i].commit == culprit)
        .and_then(|ci| nodes.iter().position(|n| same_commit(n, ci)))
    else {
        return nodes;
    };
    let good = nodes[last_good].pos;
    if nodes[c].pos > good {
        // Between the last good and whatever came next, whatever the
        // (approximate) positions said.
        let next = nodes
            .iter()
            .enumerate()
            .filter(|&(i, n)| i != c && n.pos > good)
            .map(|(_, n)| n.pos)
            .fold(f64::INFINITY, f64::min);
        nodes[c].pos = if next.is_finite() {
            (good + next) / 2.0
        } else {
            good + 0.5
        };
        nodes[c].adjacent = true;
    }
    if let Some(p) = (0..steps.len()).find(|&i| steps[i].purpose == Purpose::CulpritParent) {
        if !nodes.iter().any(|n| same_commit(n, p)) {
            nodes[last_good].adjacent = true;
            add(&mut nodes, good - 0.25, Some(p), false);
        }
    }
    nodes
}
