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
use crate::signature::KernelSignature;
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
    /// Runs syzbot's `all runs:` shorthand counts for. It stands for 10
    /// VMs that all agreed, but runs of one kernel, image and reproducer
    /// are not independent draws: counted as 10 they make every `good`
    /// nearly certain, and the dev logs say they are not.
    pub runs_per_all: u32,
    /// The most nodes of a rebuilt line (untested stretches are scaled).
    pub max_nodes: f64,
}

/// Chosen on the dev logs only (README "Judging a result by its evidence"):
/// on a plateau where neighbouring settings flag the same logs.
impl Default for Settings {
    fn default() -> Settings {
        Settings {
            model: Model {
                epsilon: 0.02,
                prior_none: 0.05,
                ..Model::default()
            },
            threshold: 0.25,
            runs_per_all: 3,
            max_nodes: 4000.0,
        }
    }
}

/// The runs syzbot's `all runs:` shorthand stands for (10 VMs), as shown
/// to users; the weighing counts [`Settings::runs_per_all`].
const SHORTHAND_RUNS: u32 = 10;

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
            runs: run_counts(step, &target, SHORTHAND_RUNS),
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
fn evidence(log: &Log, target: &Target, runs_per_all: u32) -> Vec<(KernelSignature, ClassCounts)> {
    let mut out: Vec<(KernelSignature, ClassCounts)> = Vec::new();
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
    let mut p = Placer {
        steps: &log.steps,
        nodes: Vec::new(),
    };
    let bisect: Vec<usize> = (0..p.steps.len())
        .filter(|&i| p.steps[i].purpose == Purpose::Bisect)
        .collect();
    // The range's length in commits: git's first count, else 2^steps.
    let range = match bisect.first().and_then(|&i| p.steps[i].left) {
        Some(left) => 2.0 * (left as f64 + 1.0),
        None => 2f64.powi(bisect.len().min(30) as i32).max(2.0),
    };
    let pre_end = bisect.first().copied().unwrap_or(p.steps.len());
    let good_end = p.ends(pre_end, range);
    let last_good = p.bisection(&bisect, range).unwrap_or(good_end);
    p.culprit_after(last_good, culprit);
    p.nodes
}

struct Placer<'a> {
    steps: &'a [Step],
    nodes: Vec<Placed>,
}

impl Placer<'_> {
    fn same_commit(&self, node: usize, step: usize) -> bool {
        self.nodes[node]
            .steps
            .first()
            .is_some_and(|&f| self.steps[f].commit == self.steps[step].commit)
    }

    fn node_of(&self, step: usize) -> Option<usize> {
        (0..self.nodes.len()).find(|&n| self.same_commit(n, step))
    }

    /// Adds a node (or pools a commit tested again into its node): its index.
    fn add(&mut self, pos: f64, step: Option<usize>, adjacent: bool) -> usize {
        if let Some(n) = step.and_then(|s| self.node_of(s)) {
            self.nodes[n].steps.extend(step);
            return n;
        }
        self.nodes.push(Placed {
            pos,
            kernel: step.map_or(Kernel::Unknown, |s| kernel_of(&self.steps[s])),
            steps: step.into_iter().collect(),
            adjacent,
        });
        self.nodes.len() - 1
    }

    /// The steps before the bisection (the original commit, then releases
    /// newest first until one is good): the good release at 0 with a
    /// release cycle before it (it may be wrong too); the rest right of the
    /// range, the last tested (the range's bad end) first, a cycle apart.
    /// Returns the good end's node.
    fn ends(&mut self, pre_end: usize, range: f64) -> usize {
        let steps = self.steps;
        let pre: Vec<usize> = (0..pre_end)
            .filter(|&i| matches!(steps[i].purpose, Purpose::Original | Purpose::Release(_)))
            .collect();
        let good_release = pre
            .iter()
            .copied()
            .find(|&i| Log::effective_verdict(&steps[i]) == Some(Verdict::Good));
        self.add(-range, None, false);
        let good_end = self.add(0.0, good_release, false);
        let right: Vec<usize> = pre.into_iter().filter(|&i| Some(i) != good_release).collect();
        for (k, &i) in right.iter().rev().enumerate() {
            self.add(range * (k as f64 + 1.0), Some(i), false);
        }
        if right.is_empty() {
            self.add(range, None, false);
        }
        good_end
    }

    /// The bisection's steps inside (0, range): a tested commit sits git's
    /// `left + 1` commits before the current bad end (the middle when that
    /// does not fit); a good moves the good end up, a bad the bad end down.
    /// Returns the last good's node.
    fn bisection(&mut self, bisect: &[usize], range: f64) -> Option<usize> {
        let (mut lo, mut hi) = (0.0, range);
        let mut last_good = None;
        for &i in bisect {
            let pos = match self.steps[i].left.map(|left| hi - left as f64 - 1.0) {
                Some(pos) if pos > lo && pos < hi => pos,
                _ => (lo + hi) / 2.0,
            };
            let node = self.add(pos, Some(i), false);
            match Log::effective_verdict(&self.steps[i]) {
                Some(Verdict::Good) => {
                    lo = pos;
                    last_good = Some(node);
                }
                Some(Verdict::Bad) => hi = pos,
                _ => {}
            }
        }
        last_good
    }

    /// The culprit sits right after the last good commit, whatever the
    /// (approximate) positions said. Its parent, when the log built it
    /// without testing it, is good by ancestry (git bisect names a commit
    /// whose parents are good): right before the last good.
    fn culprit_after(&mut self, last_good: usize, culprit: &str) {
        let steps = self.steps;
        let Some(c) = (0..steps.len())
            .find(|&i| steps[i].commit == culprit)
            .and_then(|i| self.node_of(i))
        else {
            return;
        };
        let good = self.nodes[last_good].pos;
        if self.nodes[c].pos > good {
            let next = self
                .nodes
                .iter()
                .enumerate()
                .filter(|&(i, n)| i != c && n.pos > good)
                .map(|(_, n)| n.pos)
                .fold(f64::INFINITY, f64::min);
            self.nodes[c].pos = if next.is_finite() {
                (good + next) / 2.0
            } else {
                good + 0.5
            };
            self.nodes[c].adjacent = true;
        }
        if let Some(p) = (0..steps.len()).find(|&i| steps[i].purpose == Purpose::CulpritParent) {
            if self.node_of(p).is_none() {
                self.nodes[last_good].adjacent = true;
                self.add(good - 0.25, Some(p), false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TITLE: &str = "KASAN: use-after-free Read in f";

    fn hash(i: usize) -> String {
        format!("{:040x}", i + 1)
    }

    /// A cause bisection: the original commit, a good release, then bisect
    /// steps `(left, verdict, matching runs, ok runs)`; the last bad one is
    /// named. Every step has its own kernel.
    fn log_text(original: (u32, u32), steps: &[(u32, Verdict, u32, u32)], title: Option<&str>) -> String {
        let mut s = format!("bisecting cause commit starting from {}\n", hash(0));
        let runs = |s: &mut String, matched: u32, ok: u32| {
            for r in 0..matched + ok {
                let outcome = if r < matched {
                    format!("crashed: {TITLE}")
                } else {
                    "OK".into()
                };
                s.push_str(&format!("run #{r}: {outcome}\n"));
            }
        };
        s.push_str(&format!("testing commit {}\nkernel signature: {:064x}\n", hash(0), 100));
        runs(&mut s, original.0, original.1);
        s.push_str(&format!(
            "testing release v5.15\ntesting commit {}\nkernel signature: {:064x}\n",
            hash(1),
            101
        ));
        runs(&mut s, 0, 10);
        let mut culprit = hash(0);
        for (i, (left, verdict, matched, ok)) in steps.iter().enumerate() {
            let h = hash(i + 2);
            s.push_str(&format!(
                "Bisecting: {left} revisions left to test after this (roughly 3 steps)\n"
            ));
            s.push_str(&format!(
                "[{h}] subject {i}\ntesting commit {h}\nkernel signature: {:064x}\n",
                102 + i
            ));
            runs(&mut s, *matched, *ok);
            s.push_str(&format!("# git bisect {} {h}\n", verdict.as_str()));
            if *verdict == Verdict::Bad {
                culprit = h;
            }
        }
        s.push_str(&format!(
            "{culprit} is the first bad commit\ncommit {culprit}\nAuthor: A <a@b>\nDate:   now\n\n    subject\n\n mm/x.c | 1 +\n 1 file changed, 1 insertion(+)\n\n"
        ));
        s.push_str("revisions tested: 9, total time: 1h0m0s (build: 30m0s, test: 30m0s)\n");
        s.push_str(&format!("first bad commit: {culprit} subject\n"));
        if let Some(t) = title {
            s.push_str(&format!("crash: {t}\nreport line\n"));
        }
        s
    }

    /// A good at 64 commits into a 128-commit range, then six bad steps
    /// down to the culprit right after it; bad kernels match `matched` of 10.
    fn halving(matched: u32) -> Vec<(u32, Verdict, u32, u32)> {
        let mut steps = vec![(63, Verdict::Good, 0, 10)];
        for left in [31, 15, 7, 3, 1, 0] {
            steps.push((left, Verdict::Bad, matched, 10 - matched));
        }
        steps
    }

    fn judged(text: &str) -> Analysis {
        analyze(&syzlog::parse(text.as_bytes()).expect("a log"))
    }

    #[test]
    fn a_culprit_with_strong_evidence_gets_high_confidence() {
        let a = judged(&log_text((10, 0), &halving(10), Some(TITLE)));
        let c = a.confidence.expect("judged");
        let p = c.probability.expect("decided");
        assert!(p > 0.95, "{p}");
        assert!(!a.findings.iter().any(|f| f.rule == WEAK_EVIDENCE));
        assert_eq!(c.verdicts.len(), 9, "original, release and seven bisect steps");
        assert!(c.verdicts.iter().all(|v| v.wrong < 0.05), "{:?}", c.verdicts);
    }

    /// The reproducer fires in 2 of 10 runs on bad kernels: a good with 10
    /// clean runs is wrong with chance 0.8^10 per commit it cut, and it cut
    /// 64: that good is the likely wrong step.
    #[test]
    fn a_good_on_a_flaky_reproducer_is_the_likely_wrong_step() {
        let a = judged(&log_text((2, 8), &halving(2), Some(TITLE)));
        let c = a.confidence.clone().expect("judged");
        let p = c.probability.expect("decided");
        assert!(p < Settings::default().threshold, "{p}");
        let weakest = c.weakest.expect("a weakest verdict");
        assert_eq!(weakest.commit, hash(2), "the bisection's first good");
        assert_eq!(weakest.verdict, Verdict::Good);
        assert_eq!(weakest.runs.ok, 10);
        assert!(weakest.wrong > 0.5, "{}", weakest.wrong);
        let finding = a
            .findings
            .iter()
            .find(|f| f.rule == WEAK_EVIDENCE)
            .expect("weak-evidence");
        assert!(finding.message.contains(&hash(2)[..12]), "{}", finding.message);
        assert_eq!(a.verdict, syzlog::ResultVerdict::Warn);
    }

    #[test]
    fn crashes_with_other_titles_are_no_evidence() {
        // Every bad step crashed with another bug only: syzbot called them
        // bad, the runs say nothing about this bug.
        let text =
            log_text((10, 0), &halving(10), Some(TITLE)).replace(&format!("crashed: {TITLE}"), "crashed: WARNING in g");
        let with_original = text.replacen("crashed: WARNING in g", &format!("crashed: {TITLE}"), 10);
        let c = judged(&with_original).confidence.expect("judged");
        assert!(c.probability.expect("decided") < 0.25, "{c:?}");
    }

    #[test]
    fn equal_signatures_pool_and_identical_kernels_cannot_hold_the_culprit() {
        // The culprit's kernel is the last good's: it cannot be the first bad.
        let text = log_text((10, 0), &halving(10), Some(TITLE));
        let good_sig = format!("{:064x}", 102);
        let culprit_sig = format!("{:064x}", 102 + 6);
        let c = judged(&text.replace(&culprit_sig, &good_sig))
            .confidence
            .expect("judged");
        assert_eq!(c.probability, Some(0.0));
    }

    #[test]
    fn what_cannot_be_decided_is_said() {
        let c = judged(&log_text((10, 0), &halving(10), None))
            .confidence
            .expect("judged");
        assert_eq!(c.probability, None);
        assert!(c.undecided.unwrap().contains("no crash title"));
        // One run in all that tells anything.
        let mut single = log_text((1, 0), &[(0, Verdict::Bad, 0, 0)], Some(TITLE));
        single = single.replace("run #0: OK\nrun #1: OK\nrun #2: OK\nrun #3: OK\nrun #4: OK\nrun #5: OK\nrun #6: OK\nrun #7: OK\nrun #8: OK\nrun #9: OK\n", "");
        let c = judged(&single).confidence.expect("judged");
        assert_eq!(c.probability, None, "{c:?}");
        assert!(c.undecided.unwrap().contains("too few"));
    }
}
