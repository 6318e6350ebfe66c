//! The noisy search ([`crate::search::bayes`]) on a real repository: the range is
//! the commit graph between the ends (`git rev-list bad ^good`, merged
//! branches included; with `--first-parent` the bad commit's first-parent
//! line), read in one in-process walk ([`Repo::range_graph`]); commits are
//! built and tested through the cache ([`CommitEvaluator`]), and runs are
//! pooled per kernel as in every kcache bisection. Before the search, the
//! ends are settled ([`super::ends`]): the target learnt from the crashing
//! end, a good end found over release tags when none was given, merge
//! bases of a `--good` off the ancestry tested.
//!
//! Invariant: only adapts git and the cache to [`bayes::Oracle`]; every
//! decision is `bayes`'s.

use crate::key::CommitId;
use crate::serde_word;
use crate::signature::KernelSignature;
use std::collections::{HashMap, HashSet};

use super::oracle::GitOracle;
use super::{
    ends, history, BisectError, KernelReport, MergeStep, NoCulprit, Options, Outcome, Purpose, SearchReport, Summary,
};
use crate::crash::{ClassCounts, Target};
use crate::exec::speculate::Speculator;
use crate::exec::Evaluation;
use crate::exec::{CommitEvaluator, Evidence, Verdict};
use crate::git::Repo;
use crate::search::bayes::{self, Kernel, Oracle};
use crate::search::graph::{Direction, Graph};
use crate::store::{Cache, RunRecord};

/// Settings of the noisy search that the user gives.
#[derive(Debug, Clone)]
pub struct NoisyOptions {
    /// `--crash-title`: the target; empty: learned from the bad commit.
    pub crash_titles: Vec<String>,
    pub confidence: f64,
    pub max_runs: Option<u32>,
    pub max_builds: Option<u32>,
    /// Estimates of a build's and a run's seconds before any is measured.
    pub build_cost: f64,
    pub run_cost: f64,
}

impl Default for NoisyOptions {
    fn default() -> NoisyOptions {
        NoisyOptions {
            crash_titles: Vec::new(),
            confidence: 0.95,
            max_runs: None,
            max_builds: None,
            build_cost: 600.0,
            run_cost: 60.0,
        }
    }
}

/// The target: `--crash-title`, else the titles that dominate the
/// crashing end's crashes (its kernel is built and tested for it, up to
/// three batches while no title dominates).
fn learn_target(o: &mut GitOracle, noisy: &NoisyOptions, bad: usize, runs: u32) -> Result<Target, BisectError> {
    if !noisy.crash_titles.is_empty() {
        return Ok(Target::new(&noisy.crash_titles));
    }
    let Kernel::Signed(sig) = o.build(bad)? else {
        let failure = o.eval(bad).and_then(|e| e.failure.clone());
        return Err(BisectError::NoTarget(format!(
            "the bad commit {} does not build{}",
            crate::key::short(&o.nodes[bad]),
            failure.map_or_else(
                || " (a recorded failure; --retry-failed builds it again)".to_string(),
                |f| format!(": {}; the last lines of {}:\n{}", f.reason, f.log.display(), f.tail)
            )
        )));
    };
    let mut asked = 0;
    let timed_out_before = o.evaluator.runs_timed_out();
    for _ in 0..3 {
        let runs_now = o.cache.runs_shared(&sig, &o.evaluator.test_key(), runs)?;
        let titles: Vec<&str> = runs_now
            .iter()
            .filter(|r| r.outcome == crate::store::Outcome::Crash)
            .map(|r| r.title.as_deref().unwrap_or("crash"))
            .collect();
        if let Some(t) = Target::learn(&titles, 0.3) {
            if titles.len() >= 2 || runs_now.len() as u32 >= runs {
                (o.progress)(&format!("  target: {}", t.titles.join(" | ")));
                return Ok(t);
            }
        }
        // Runs without stopping at a crash: the titles' shares matter here.
        // (Until there is a target, every crash counts as a match.)
        o.batch(bad, &sig, runs, &|_| false, &Target::default())?;
        asked += runs;
    }
    // Every attempt that timed out (a batch makes up to twice its runs).
    let timed_out = o.evaluator.runs_timed_out() - timed_out_before;
    let recorded = o.cache.runs(&sig, &o.evaluator.test_key())?;
    Err(BisectError::NoTarget(no_dominant_crash(
        &o.nodes[bad],
        &recorded,
        asked,
        timed_out,
    )))
}

/// Why no target could be learnt, in words that say what the runs did.
fn no_dominant_crash(bad: &CommitId, recorded: &[RunRecord], asked: u32, timed_out: u32) -> String {
    let counts = ClassCounts::of(&Target::default(), recorded);
    let what = if timed_out > 0 && timed_out >= asked && recorded.is_empty() {
        format!("every one of its {timed_out} test runs timed out (no result): check the test and --test-timeout, or")
    } else if counts.matched == 0 && counts.ok == 0 && !recorded.is_empty() {
        format!(
            "none of its {} recorded runs told anything (infrastructure or boot failures){}: check the test, or",
            recorded.len(),
            if timed_out > 0 {
                format!(", and {timed_out} more timed out")
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "it does not show one dominant crash in {} runs ({}{}):",
            recorded.len(),
            counts.describe(),
            if timed_out > 0 {
                format!(", {timed_out} timed out")
            } else {
                String::new()
            }
        )
    };
    format!("the bad commit {}: {what} give --crash-title", crate::key::short(bad))
}

/// The search's view as `# kcache:` lines of the syzkaller-style log.
fn log_lines(r: &SearchReport) -> Vec<String> {
    let mut out = vec![format!("target: {}", r.target.join(" | "))];
    if let Some(p) = r.probability {
        out.push(format!("probability: {p:.4}"));
    }
    out.push(format!(
        "credible set (95%): {}",
        r.credible_set.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" ")
    ));
    for k in &r.kernels {
        out.push(format!("kernel {}: {}", k.signature, k.counts.describe()));
    }
    out
}

/// A good commit whose kernel the cache already saw crash with the target
/// (twice: once could be the error rate) stops the search before it blames
/// anything. Other crashes there are no contradiction; a bad side that does
/// not reproduce is the search's own "no culprit" answer.
fn check_good_side(o: &GitOracle, goods: &[CommitId], target: &Target) -> Result<(), BisectError> {
    for g in goods {
        let Some(record) = o.evaluator.cached_build_local(o.repo, o.cache, g)? else {
            continue;
        };
        let Some(signature) = record.signature else { continue };
        let runs = o.cache.runs(&signature, &o.evaluator.test_key())?;
        let counts = ClassCounts::of(target, &runs);
        if counts.matched >= 2 {
            return Err(BisectError::EndpointContradicted {
                side: "good",
                commit: g.clone(),
                signature,
                evidence: Evidence::of(&runs),
                verdict: Verdict::Bad,
            });
        }
    }
    Ok(())
}

/// The good end's kernel may only be built and tested during the search
/// (its next commit shares it, say): when it reproduces the crash, that is
/// the answer, whatever the search concluded from a range whose good end
/// is not good.
fn good_side_after_search(
    o: &GitOracle,
    goods: &[CommitId],
    target: &Target,
    outcome: Outcome,
) -> Result<Outcome, BisectError> {
    match check_good_side(o, goods, target) {
        Ok(()) => Ok(outcome),
        Err(e @ BisectError::EndpointContradicted { .. }) => Ok(Outcome::Stopped {
            reason: format!("the good end reproduces the crash: {e}"),
        }),
        Err(e) => Err(e),
    }
}

/// Runs the noisy search on a repository: a cause bisection (`--bad`
/// crashes, `--good` does not) or a fix bisection (`--bad` is the older,
/// crashing end, `--good` the newer one that does not).
pub fn bisect(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    opts: &Options,
    noisy: &NoisyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Summary, BisectError> {
    let mut session = super::session::Session::open(repo, cache, opts)?;
    cache.clean_stale();
    evaluator.set_prediction(opts.predict);
    let runs = evaluator.runs_wanted();
    let crashing = session.bad.clone();
    let speculator = Speculator::start(evaluator, repo, cache, noisy.max_builds)?;
    let mut oracle = GitOracle {
        repo,
        cache,
        evaluator,
        nodes: vec![crashing.clone()],
        steps: Vec::new(),
        log: session.take_log(),
        progress,
        build_seconds: (0.0, 0),
        run_seconds: (0.0, 0),
        estimates: (noisy.build_cost, noisy.run_cost),
        evals: HashMap::new(),
        reported: HashSet::new(),
        known: Vec::new(),
        seen_runs: HashSet::new(),
        runs_made: Default::default(),
        speculator,
        predictions: Default::default(),
    };
    let target = learn_target(&mut oracle, noisy, 0, runs)?;
    let mut notes = Vec::new();
    if session.goods.is_empty() {
        let good = ends::walk_back_tags(&mut oracle, &crashing, &opts.good_tags, &target, &mut notes)?;
        session.goods = vec![good];
    }
    let goods = session.goods.clone();
    let direction = opts.direction;
    if direction == Direction::Cause {
        check_good_side(&oracle, &goods, &target)?;
        ends::check_merge_bases(&mut oracle, &crashing, &goods, &target, &mut notes)?;
    }
    let (tip, bases) = match direction {
        Direction::Cause => (session.bad.clone(), goods.clone()),
        Direction::Fix => (goods[0].clone(), vec![session.bad.clone()]),
    };
    let mut range = repo.range_graph(&tip, &bases, opts.first_parent)?;
    if direction == Direction::Fix {
        // The crashing end is a base node (checked, and the target's source).
        range.ensure_base(&crashing);
    }
    let graph = Graph::new(range.parents.clone(), range.in_range.clone())?;
    oracle.nodes = range.commits.clone();
    oracle.known = oracle.look_up_all()?;
    oracle.predictions.range = (0..graph.len()).map(|i| graph.in_range(i)).collect();
    oracle.refresh_predictions()?;
    let cached = oracle.known.iter().filter(|k| **k != Kernel::Unknown).count();
    (oracle.progress)(&super::session::cached_line(cached, graph.len()));
    let merges = (0..graph.len()).filter(|&i| graph.parents(i).len() > 1).count();
    (oracle.progress)(&format!(
        "noisy {} search over {} commits ({}), confidence {}",
        serde_word(&direction),
        graph.range_len(),
        match (opts.first_parent, merges) {
            (true, _) => "first-parent line".to_string(),
            (false, 0) => "a line".to_string(),
            (false, m) => format!("a DAG with {m} merge{}", if m == 1 { "" } else { "s" }),
        },
        noisy.confidence
    ));
    let model = bayes::Model {
        confidence: noisy.confidence,
        runs,
        max_runs: noisy.max_runs,
        max_builds: noisy.max_builds,
        ..bayes::Model::default()
    };
    let (out, contradictions) =
        search_checking_predictions(&model, &target, &graph, direction, &mut oracle, &mut notes)?;
    oracle.show_speculation();
    if let Some(note) = oracle.speculator.take().map(Speculator::finish).and_then(|s| s.note()) {
        notes.push(note);
    }
    let (outcome, probability, undecided) = outcome_of(&oracle, &graph, &out);
    let outcome = match direction {
        Direction::Cause => good_side_after_search(&oracle, &goods, &target, outcome)?,
        Direction::Fix => outcome,
    };
    let mut kernels = Vec::new();
    // The search's kernels are the signatures the oracle gave it.
    for (k, signature) in out
        .kernels
        .iter()
        .filter_map(|k| Some((k, KernelSignature::parse(&k.signature).ok()?)))
    {
        let runs = cache.runs(&signature, &oracle.evaluator.test_key())?;
        kernels.push(KernelReport {
            signature,
            commits: k.commits.iter().map(|&i| oracle.nodes[i].clone()).collect(),
            counts: ClassCounts::of(&target, &runs),
            mass: k.mass,
        });
    }
    let report = SearchReport {
        policy: super::Policy::Bayes,
        target: target.titles.clone(),
        probability,
        credible_set: out.credible.iter().map(|&i| oracle.nodes[i].clone()).collect(),
        undecided,
        kernels,
    };
    for line in log_lines(&report) {
        oracle.log.note(&line)?;
    }
    session.log = oracle.log;
    let mut summary = session.close(repo, outcome, oracle.steps, notes, Some(report))?;
    summary.totals.prediction_contradictions = contradictions;
    summary.good = goods;
    summary.direction = direction;
    Ok(summary)
}

/// The search, its answer checked against every prediction it rests on
/// (`GitOracle::check_predictions`); a contradicted prediction is said in
/// `notes`, and the search runs again without prediction. The outcome and
/// the number of contradicted predictions.
fn search_checking_predictions(
    model: &bayes::Model,
    target: &Target,
    graph: &Graph,
    direction: Direction,
    oracle: &mut GitOracle,
    notes: &mut Vec<String>,
) -> Result<(bayes::Outcome, usize), BisectError> {
    let mut contradictions = 0;
    loop {
        let out = bayes::search(model, target.clone(), graph, direction, oracle)?;
        record_untested_builds(oracle)?;
        let boundary: Vec<usize> = match out.ending {
            bayes::Ending::Culprit { index, .. } => {
                std::iter::once(index).chain(graph.parents(index).to_vec()).collect()
            }
            _ => Vec::new(),
        };
        let alarms = oracle.check_predictions(&boundary)?;
        if alarms.is_empty() {
            return Ok((out, contradictions));
        }
        contradictions += alarms.len();
        notes.extend(alarms);
        oracle.drop_predictions()?;
    }
}

/// Builds the search made but never tested (a parent built for the
/// boundary check whose kernel had runs already) are steps too.
fn record_untested_builds(o: &mut GitOracle) -> Result<(), BisectError> {
    let mut untested: Vec<(usize, Evaluation)> = o
        .evals
        .iter()
        .filter(|(c, _)| !o.reported.contains(*c))
        .filter_map(|(c, e)| Some((o.nodes.iter().position(|n| n == c)?, e.clone())))
        .collect();
    untested.sort_by_key(|(i, _)| *i);
    for (i, e) in untested {
        o.reported.insert(o.nodes[i].clone());
        o.record_step(i, e, Purpose::SignatureCheck)?;
    }
    Ok(())
}

/// The search's ending as the bisection's outcome, the culprit's
/// probability, and the ending in words when it names no culprit.
fn outcome_of(o: &GitOracle, graph: &Graph, out: &bayes::Outcome) -> (Outcome, Option<f64>, Option<String>) {
    let commit_of = |i: usize| o.nodes[i].clone();
    let sig_of = |i: usize| {
        o.eval(i).and_then(|e| e.signature.clone()).or_else(|| {
            out.kernels
                .iter()
                .find(|k| k.commits.contains(&i))
                .and_then(|k| KernelSignature::parse(&k.signature).ok())
        })
    };
    match &out.ending {
        bayes::Ending::Culprit {
            index,
            probability,
            merge,
            ..
        } => {
            let merged_by = history::merge_path(graph, *index, graph.tip())
                .into_iter()
                .map(|m| MergeStep {
                    subject: o.repo.subject(&o.nodes[m]).unwrap_or_default(),
                    commit: commit_of(m),
                })
                .collect();
            let outcome = Outcome::Culprit {
                commit: commit_of(*index),
                subject: o.repo.subject(&o.nodes[*index]).unwrap_or_default(),
                signature: sig_of(*index),
                parents: graph
                    .parents(*index)
                    .iter()
                    .map(|&p| (commit_of(p), sig_of(p)))
                    .collect(),
                combined: *merge,
                merged_by,
            };
            (outcome, Some(*probability), None)
        }
        bayes::Ending::NoCulprit { probability, direction } => {
            let reason = match direction {
                Direction::Cause => NoCulprit::DoesNotReproduce {
                    probability: *probability,
                },
                Direction::Fix => NoCulprit::NotFixed {
                    probability: *probability,
                },
            };
            (Outcome::NoBoundary { reason }, Some(*probability), None)
        }
        bayes::Ending::Undecided { credible, .. } => (
            Outcome::Inconclusive {
                candidates: credible.iter().map(|&i| commit_of(i)).collect(),
            },
            None,
            Some(out.ending.to_string()),
        ),
        other => (
            Outcome::Stopped {
                reason: other.to_string(),
            },
            None,
            Some(other.to_string()),
        ),
    }
}
