//! The judge (`kcache::judge`) on the study's labels of the dev logs
//! (`../shared/bisect-logs/dev-labels.tsv`): REJECT is never wrong, the
//! chosen settings reach the target, and (ignored, a tuning aid) the
//! 5-fold cross-validation the README's figures come from.

use std::path::PathBuf;

use kcache::judge::{self, Settings};
use kcache::syzlog::{self, Analysis, Log, ResultVerdict, WEAK_EVIDENCE};

mod common;

fn shared() -> PathBuf {
    common::shared_file("bisect-logs")
}

/// A labelled dev log: its name, parsed, and whether the study found its
/// result wrong. Logs labelled `no output` are left out.
struct Labelled {
    name: String,
    log: Log,
    wrong: bool,
}

fn dev_labels() -> Vec<Labelled> {
    let path = shared().join("dev-labels.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (name, result) = (f.next()?, f.next()?);
            let wrong = match result {
                "correct" => false,
                "incorrect" => true,
                _ => return None,
            };
            let log = syzlog::parse_file(&shared().join(format!("dev/{name}.txt"))).unwrap();
            Some(Labelled {
                name: name.to_string(),
                log,
                wrong,
            })
        })
        .collect()
}

/// True and false positives of a flag for "this result is wrong", and how
/// many results are wrong.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Score {
    tp: usize,
    fp: usize,
    wrong: usize,
}

impl Score {
    fn of<'a>(flags: impl IntoIterator<Item = (bool, &'a Labelled)>) -> Score {
        let mut s = Score::default();
        for (flag, l) in flags {
            s.add(flag, l.wrong);
        }
        s
    }

    fn add(&mut self, flag: bool, wrong: bool) {
        self.tp += usize::from(flag && wrong);
        self.fp += usize::from(flag && !wrong);
        self.wrong += usize::from(wrong);
    }

    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }

    fn recall(&self) -> f64 {
        self.tp as f64 / self.wrong.max(1) as f64
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "precision {}/{} = {:.3}, recall {}/{} = {:.3}",
            self.tp,
            self.tp + self.fp,
            self.precision(),
            self.tp,
            self.wrong,
            self.recall()
        )
    }
}

fn rejected(a: &Analysis) -> bool {
    a.verdict == ResultVerdict::Reject
}

fn weak(a: &Analysis) -> bool {
    a.findings.iter().any(|f| f.rule == WEAK_EVIDENCE)
}

/// Any of the old warnings but `flaky-reproducer` (which alone is a poor
/// sign: most flaky reproducers still find the right commit).
fn structural(a: &Analysis) -> bool {
    a.findings
        .iter()
        .any(|f| f.rule != "flaky-reproducer" && f.rule != WEAK_EVIDENCE)
}

/// REJECT must never be wrong: every dev log the judge rejects is labelled
/// incorrect (a rule change that rejects a correct result fails here,
/// naming the log).
#[test]
fn reject_is_never_wrong_on_dev() {
    let labels = dev_labels();
    let mut rejects = 0;
    for l in &labels {
        let a = judge::analyze(&l.log);
        if rejected(&a) {
            rejects += 1;
            assert!(l.wrong, "{} is labelled correct but REJECTed: {:?}", l.name, a.findings);
        }
    }
    assert!(rejects >= 11, "REJECT caught {rejects} dev logs (11 before issue 26)");
}

/// The chosen settings on the dev labels (the README's figures):
/// REJECT + weak-evidence at least 95% precise and catching more than half
/// the wrong results.
#[test]
fn judge_on_dev_labels() {
    let labels = dev_labels();
    let analyses: Vec<(Analysis, &Labelled)> = labels.iter().map(|l| (judge::analyze(&l.log), l)).collect();
    let reject = Score::of(analyses.iter().map(|(a, l)| (rejected(a), *l)));
    let old = Score::of(analyses.iter().map(|(_, l)| {
        let v = syzlog::analyze(&l.log).verdict;
        (v == ResultVerdict::Reject || v == ResultVerdict::Warn, *l)
    }));
    let with_weak = Score::of(analyses.iter().map(|(a, l)| (rejected(a) || weak(a), *l)));
    let with_rules = Score::of(
        analyses
            .iter()
            .map(|(a, l)| (rejected(a) || weak(a) || structural(a), *l)),
    );
    // Results whose culprit crashed with another bug than the start
    // commit: the probability depends on `same_bug`.
    let at = |same_bug: f64, l: &Labelled| {
        let s = Settings {
            same_bug,
            ..Settings::default()
        };
        judge::confidence(&l.log, &s).probability
    };
    let drifted: Vec<&Labelled> = labels.iter().filter(|l| at(0.0, l) != at(1.0, l)).collect();
    println!(
        "culprit's title unrelated to the start commit's: {} results, {} wrong",
        drifted.len(),
        drifted.iter().filter(|l| l.wrong).count()
    );
    println!("REJECT: {reject}");
    println!("REJECT + the old warnings: {old}");
    println!("REJECT + weak-evidence: {with_weak}");
    println!("REJECT + weak-evidence + the old warnings but flaky-reproducer: {with_rules}");
    assert_eq!(reject.fp, 0, "REJECT is never wrong");
    assert!(
        with_weak.precision() >= 0.95 && with_weak.recall() >= 0.55,
        "REJECT + weak-evidence: {with_weak}"
    );
    assert!(
        with_rules.precision() >= 0.95 && with_rules.recall() >= 0.6,
        "with the old warnings: {with_rules}"
    );
}

/// A log judged under one setting: REJECTed, and the culprit's probability.
type Judged = (bool, Option<f64>);

/// One point of the settings grid.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    epsilon: f64,
    runs_per_all: u32,
    same_bug: f64,
    threshold: f64,
}

impl Point {
    fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.model.epsilon = self.epsilon;
        s.runs_per_all = self.runs_per_all;
        s.same_bug = self.same_bug;
        s.threshold = self.threshold;
        s
    }
}

const THRESHOLDS: [f64; 9] = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5];

/// How a training set chooses its settings.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// The most recall of REJECT + weak-evidence at precision >= 95%.
    MostRecall,
    /// The most `tp - 19 fp`: a flag must be right 19 times in 20 at the
    /// margin, not only on average (the target's 95% as a price per false
    /// alarm), then precision >= 95% overall.
    Margin,
}

/// The settings a training set chooses by `rule`; among equals the more
/// precise, then the middle of the plateau (the median point, in grid
/// order).
fn choose(rule: Rule, points: &[Point], flags: &[Vec<bool>], train: &[&Labelled], index: &[usize]) -> Point {
    let scores: Vec<Score> = (0..points.len())
        .map(|p| Score::of(index.iter().zip(train).map(|(&i, l)| (flags[p][i], *l))))
        .collect();
    let ok: Vec<usize> = (0..points.len()).filter(|&p| scores[p].precision() >= 0.95).collect();
    let key = |s: &Score| match rule {
        Rule::MostRecall => (s.tp as i64, -(s.fp as i64)),
        Rule::Margin => (s.tp as i64 - 19 * s.fp as i64, -(s.fp as i64)),
    };
    let best = ok
        .iter()
        .map(|&p| key(&scores[p]))
        .max()
        .expect("some setting is 95% precise (REJECT alone is)");
    let plateau: Vec<usize> = ok.into_iter().filter(|&p| key(&scores[p]) == best).collect();
    points[plateau[plateau.len() / 2]]
}

/// Tuning aid and the honest estimate (not a check):
/// `cargo test --release --test judge_dev cross -- --ignored --nocapture`.
/// 5 folds, stratified by label in name order; per fold the settings are
/// chosen on the other four ([`choose`]) and scored on it; the sums over
/// the held-out folds are the estimate the README quotes.
#[test]
#[ignore]
fn cross_validate_judge_on_dev_labels() {
    let labels = dev_labels();
    let mut points = Vec::new();
    for epsilon in [0.01, 0.02] {
        for runs_per_all in [2, 3, 5] {
            for same_bug in [0.0, 0.1, 0.2, 0.3, 0.5, 1.0] {
                for threshold in THRESHOLDS {
                    points.push(Point {
                        epsilon,
                        runs_per_all,
                        same_bug,
                        threshold,
                    });
                }
            }
        }
    }
    // Flags per point and log: a probability depends on all but the cut.
    let mut flags: Vec<Vec<bool>> = Vec::with_capacity(points.len());
    let mut probability: Option<(Point, Vec<Judged>)> = None;
    for p in &points {
        let same = probability.as_ref().is_some_and(|(q, _)| {
            q.epsilon == p.epsilon && q.runs_per_all == p.runs_per_all && q.same_bug == p.same_bug
        });
        if !same {
            let s = p.settings();
            let v = labels
                .iter()
                .map(|l| {
                    let a = judge::analyze_with(&l.log, &s);
                    (rejected(&a), a.confidence.and_then(|c| c.probability))
                })
                .collect();

            probability = Some((*p, v));
        }
        let v = &probability.as_ref().unwrap().1;
        flags.push(
            v.iter()
                .map(|(r, prob)| *r || prob.is_some_and(|x| x < p.threshold))
                .collect(),
        );
    }
    for (p, f) in points.iter().zip(&flags) {
        let s = Score::of(f.iter().zip(&labels).map(|(f, l)| (*f, l)));
        println!("{p:?}: {s}");
    }
    // Stratified folds: the i-th log of each label (in name order) goes to fold i % 5.
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| (labels[a].wrong, &labels[a].name).cmp(&(labels[b].wrong, &labels[b].name)));
    let mut fold = vec![0; labels.len()];
    let mut seen = [0usize; 2];
    for &i in &order {
        let k = usize::from(labels[i].wrong);
        fold[i] = seen[k] % 5;
        seen[k] += 1;
    }
    let structural: Vec<bool> = labels.iter().map(|l| structural(&judge::analyze(&l.log))).collect();
    for rule in [Rule::MostRecall, Rule::Margin] {
        let mut held_out = Score::default();
        let mut with_rules = Score::default();
        for k in 0..5 {
            let train: Vec<usize> = (0..labels.len()).filter(|&i| fold[i] != k).collect();
            let train_labels: Vec<&Labelled> = train.iter().map(|&i| &labels[i]).collect();
            let chosen = choose(rule, &points, &flags, &train_labels, &train);
            let p = points.iter().position(|q| *q == chosen).unwrap();
            let mut s = Score::default();
            for i in (0..labels.len()).filter(|&i| fold[i] == k) {
                s.add(flags[p][i], labels[i].wrong);
                held_out.add(flags[p][i], labels[i].wrong);
                with_rules.add(flags[p][i] || structural[i], labels[i].wrong);
                if flags[p][i] && !labels[i].wrong {
                    println!("{rule:?} fold {k}: false alarm on {}", labels[i].name);
                }
            }
            println!("{rule:?} fold {k}: chose {chosen:?}; held out: {s}");
        }
        println!("{rule:?}: held-out folds together (REJECT + weak-evidence): {held_out}");
        println!("{rule:?}: the same + the old warnings but flaky-reproducer: {with_rules}");
        let all: Vec<usize> = (0..labels.len()).collect();
        let every: Vec<&Labelled> = labels.iter().collect();
        println!(
            "{rule:?} on all of dev: {:?}",
            choose(rule, &points, &flags, &every, &all)
        );
    }
}
