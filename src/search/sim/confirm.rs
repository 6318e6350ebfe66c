//! The culprit's revert check (`bisect::confirm`) in the simulator, for
//! issue 33's measure: how many wrong culprits it catches, how many right
//! ones it fails to confirm, and what it costs.
//!
//! A node-level model, not a build: the revert of a named culprit C on
//! the crashing end is a kernel with every change of that end but C's, so
//! it has the bug exactly when the true culprit is not C (a history has
//! one culprit). It is a kernel of its own (one build, no pooled runs).
//! Runs follow the real check: up to N runs, N from the low end of the
//! bisected crash's measured rate on the culprit's and the crashing end's
//! kernels ([`rate_low`], [`runs_to_see`]); they stop at that
//! crash and go on past unrelated ones until N runs were informative (at
//! most [`MAX_RUNS`] more). A culprit whose kernel is its parent's is a
//! no-op (not checked, nothing built). Not modelled: reverts that conflict
//! (`cannot-revert`), builds that fail, and a crash that needs C together
//! with a later change.
//!
//! Invariant: deterministic for a seed; touches no file, process or cache.

use serde::Serialize;

use super::{classic, search_with, History, Rng, SimOracle, Trial, TARGET_TITLE};
use crate::crash::{rate_low, runs_to_see, RunClass, Target, MAX_RUNS};
use crate::search::bayes;

/// The check's verdict, as `bisect::ConfirmVerdict` minus the outcomes
/// the model has no cause for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    Confirmed,
    NotConfirmed,
    NoOp,
    Untested,
}

/// What the check did on one bisection's culprit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub verdict: Check,
    pub builds: u32,
    pub runs: u32,
}

/// Which rate the check's run count is chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateRule {
    /// The measured rate (matched / informative runs).
    Point,
    /// The low end of its 95% interval (what `bisect::confirm` does).
    LowEnd,
}

/// The noisy search on a history, then the check of its culprit (none
/// when it named none); `model.runs` is `--runs` (the run count when the
/// culprit's crash rate is unknown).
pub fn bayes_checked(h: &History, model: &bayes::Model, seed: u64, rule: RateRule) -> (Trial, Option<Checked>) {
    let mut oracle = SimOracle::new(h, seed);
    let (culprit, out) = search_with(h, model, &mut oracle);
    let trial = Trial {
        culprit,
        right: culprit == Some(h.culprit),
        builds: out.builds,
        runs: out.runs,
    };
    let target = Target::new([TARGET_TITLE]);
    let checked = culprit.map(|c| {
        // As `bisect::confirm`: the culprit's and the crashing end's kernels.
        let end = crashing_end(h);
        let mut pooled = oracle.runs.pooled(&h.signature(c), &target);
        if h.kernel[end] != h.kernel[c] {
            pooled.extend(oracle.runs.pooled(&h.signature(end), &target));
        }
        let n = runs_to_see(chosen_rate(&pooled, rule), model.runs);
        revert_check(h, c, n, &target, &mut Rng::new(check_seed(seed)))
    });
    (trial, checked)
}

/// Today's classic rule on a line, then the check with `--confirm-runs
/// n`: under classic every crash is the bisected one.
pub fn classic_checked(h: &History, runs: u32, n: u32, seed: u64) -> (Trial, Option<Checked>) {
    let trial = classic(h, runs, seed);
    let any_crash = Target::default();
    let checked = trial
        .culprit
        .map(|c| revert_check(h, c, n, &any_crash, &mut Rng::new(check_seed(seed))));
    (trial, checked)
}

/// The check's own runs draw from a stream apart from the search's.
fn check_seed(seed: u64) -> u64 {
    seed ^ 0x5EED_C0F1_12A7_0001
}

/// The crashing end: a cause bisection's newest node, a fix bisection's
/// oldest (the range's base).
fn crashing_end(h: &History) -> usize {
    match h.direction {
        crate::search::graph::Direction::Cause => h.kernel.len() - 1,
        crate::search::graph::Direction::Fix => 0,
    }
}

/// The rate the run count is chosen for: the matched share of
/// informative runs, or the low end of its interval (`None`: none
/// matched).
fn chosen_rate(runs: &[RunClass], rule: RateRule) -> Option<f64> {
    let matched = runs.iter().filter(|c| **c == RunClass::Match).count() as u32;
    let ok = runs.iter().filter(|c| **c == RunClass::Ok).count() as u32;
    match rule {
        RateRule::Point => (matched > 0).then(|| matched as f64 / (matched + ok) as f64),
        RateRule::LowEnd => rate_low(matched, matched + ok),
    }
}

/// The revert of `named` on the crashing end, tested for `n` informative
/// runs against `target`.
pub fn revert_check(h: &History, named: usize, n: u32, target: &Target, rng: &mut Rng) -> Checked {
    let parent = h.graph.parents(named).first().copied();
    if parent.is_some_and(|p| h.kernel[p] == h.kernel[named]) {
        return Checked {
            verdict: Check::NoOp,
            builds: 0,
            runs: 0,
        };
    }
    let still_bad = named != h.culprit;
    let (mut matched, mut ok, mut runs) = (0u32, 0u32, 0u32);
    while matched == 0 && ok < n && runs < n + MAX_RUNS {
        runs += 1;
        let title = h.run_kernel(still_bad, rng);
        match title.map(|t| target.classify_crash(Some(t))) {
            None => ok += 1,
            Some(RunClass::Match) => matched += 1,
            Some(_) => {}
        }
    }
    let verdict = match (matched, ok) {
        (m, _) if m > 0 => Check::NotConfirmed,
        (_, 0) => Check::Untested,
        _ => Check::Confirmed,
    };
    Checked {
        verdict,
        builds: 1,
        runs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::sim::Setting;

    fn setting(p: f64, e: f64) -> Setting {
        Setting {
            commits: 300,
            noop: 0.9,
            p,
            e,
            broken: 0.02,
            runs: 10,
            build_seconds: 600.0,
            run_seconds: 60.0,
        }
    }

    #[test]
    fn the_right_culprit_is_confirmed_and_a_wrong_one_caught() {
        let h = History::generate(&setting(1.0, 0.0), &mut Rng::new(3));
        let target = Target::new([TARGET_TITLE]);
        let right = revert_check(&h, h.culprit, 3, &target, &mut Rng::new(1));
        assert_eq!(right.verdict, Check::Confirmed);
        assert_eq!((right.builds, right.runs), (1, 3));
        let after = (h.culprit + 1..h.kernel.len())
            .find(|&i| h.kernel[i] != h.kernel[i - 1])
            .expect("a kernel change after the culprit");
        let wrong = revert_check(&h, after, 3, &target, &mut Rng::new(1));
        assert_eq!(wrong.verdict, Check::NotConfirmed);
        assert_eq!(wrong.runs, 1, "a reliable reproducer shows it at once");
    }

    #[test]
    fn unrelated_crashes_neither_confirm_nor_refute_under_a_title() {
        let h = History::generate(&setting(1.0, 1.0), &mut Rng::new(3));
        let target = Target::new([TARGET_TITLE]);
        let c = revert_check(&h, h.culprit, 3, &target, &mut Rng::new(1));
        assert_eq!(c.verdict, Check::Untested, "every run crashed with another title");
        assert_eq!(c.runs, 3 + MAX_RUNS);
        // Under classic any crash counts: the right culprit looks wrong.
        let any = revert_check(&h, h.culprit, 3, &Target::default(), &mut Rng::new(1));
        assert_eq!(any.verdict, Check::NotConfirmed);
    }

    #[test]
    fn a_culprit_with_its_parents_kernel_is_a_no_op() {
        let h = History::generate(&setting(1.0, 0.0), &mut Rng::new(5));
        let same = (1..h.kernel.len()).find(|&i| h.kernel[i] == h.kernel[i - 1]).unwrap();
        let c = revert_check(&h, same, 3, &Target::new([TARGET_TITLE]), &mut Rng::new(1));
        assert_eq!((c.verdict, c.builds, c.runs), (Check::NoOp, 0, 0));
    }

    #[test]
    fn the_search_and_its_check_agree_on_an_easy_history() {
        let h = History::generate(&setting(0.7, 0.02), &mut Rng::new(11));
        let model = bayes::Model {
            runs: 10,
            ..bayes::Model::default()
        };
        let (trial, checked) = bayes_checked(&h, &model, 11, RateRule::LowEnd);
        assert!(trial.right);
        assert_eq!(checked.map(|c| c.verdict), Some(Check::Confirmed));
    }
}
