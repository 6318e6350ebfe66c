//! The culprit's probability calibrated (issue 36): the runs' posterior
//! alone is overconfident, because about a third of wrong results are
//! wrong for reasons the runs do not show (the bisection followed another
//! bug, a config or build difference, a reproducer that found something
//! else). A small logistic regression on per-log features turns the runs'
//! posterior and what the log shows around it into "the chance this
//! result is right", as the study's labels of the dev logs measured it.
//!
//! The coefficients are data ([`FITTED`]), fitted by
//! `cargo test --release --locked --test judge_dev fit_calibration -- --ignored --nocapture`
//! (all labelled dev logs, [`LAMBDA`]); the same test's cross-validation
//! is the estimate quoted for unseen logs.
//!
//! Invariant: reads a parsed [`Log`] and the runs' posterior, nothing else.

use crate::crash::normalize_title;
use crate::syzlog::{Log, Purpose, RunOutcome, Runs, Verdict};

use super::{one_bug, Observed, Seen};

/// Every candidate feature, in [`Features::values`] order (the names the
/// fitting command prints). The model uses [`USED`]; the others were
/// tried (the fitting command compares them under cross-validation) and
/// added nothing the runs' posterior does not already say.
pub const CANDIDATES: [&str; FEATURES] = [
    "runs_logit",
    "ln_releases",
    "title_changed",
    "ln_crash_titles",
    "mixed_steps",
    "flaky",
    "skipped_or_failed_builds",
    "memory_bug",
];

pub const FEATURES: usize = 8;

/// The features the model uses (indices into [`CANDIDATES`]): the runs'
/// posterior, and how many releases the bisection went back across
/// before a good one (a long way back is where config, compiler and
/// unrelated-bug trouble the runs cannot show comes in).
pub const USED: [usize; MODEL] = [0, 1];

pub const MODEL: usize = 2;

/// The L2 penalty of the fit (on the weights, not the intercept): 0.3 to 3
/// score alike under cross-validation; 1 keeps every weight moderate.
pub const LAMBDA: f64 = 1.0;

/// The runs' posterior is clamped to this distance from 0 and 1 before
/// its logit is taken: beyond it the runs' model claims a certainty the
/// labels never support.
const RUNS_CLAMP: f64 = 0.005;

/// Steps with both crashes and clean runs, counted up to this many.
const MIXED_CAP: f64 = 5.0;

/// Skipped or unbuildable steps, counted up to this many.
const SKIP_CAP: f64 = 3.0;

/// One log's candidate features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    pub values: [f64; FEATURES],
}

impl Features {
    /// The features of `log` whose runs gave the culprit `runs_probability`.
    pub(super) fn of(log: &Log, observed: &Observed, runs_probability: f64) -> Features {
        let p = runs_probability.clamp(RUNS_CLAMP, 1.0 - RUNS_CLAMP);
        let releases = log
            .steps
            .iter()
            .filter(|s| matches!(s.purpose, Purpose::Release(_)))
            .count();
        let flag = |b: bool| f64::from(u8::from(b));
        Features {
            values: [
                (p / (1.0 - p)).ln(),
                (releases.max(1) as f64).ln(),
                flag(title_changed(log, observed)),
                (crash_titles(observed).max(1) as f64).ln(),
                (mixed_steps(observed) as f64).min(MIXED_CAP) / MIXED_CAP,
                flag(log.flaky),
                (skipped_or_failed(log) as f64).min(SKIP_CAP) / SKIP_CAP,
                flag(memory_bug(log)),
            ],
        }
    }

    /// The values the model uses, in [`USED`] order.
    pub fn used(&self) -> [f64; MODEL] {
        USED.map(|i| self.values[i])
    }
}

/// Steps git bisect skipped or whose kernel did not build or boot.
fn skipped_or_failed(log: &Log) -> usize {
    log.steps
        .iter()
        .filter(|s| {
            s.verdict == Some(Verdict::Skip)
                || !s.build_errors.is_empty()
                || matches!(
                    &s.runs,
                    Runs::All(RunOutcome::BootFailed(_) | RunOutcome::TestFailed(_))
                )
        })
        .count()
}

/// The culprit's crash is a memory-safety report (KASAN, KMSAN, a general
/// protection fault, a bad pointer): the class with the sharpest reports.
fn memory_bug(log: &Log) -> bool {
    let title = log
        .trailer
        .as_ref()
        .and_then(|t| t.crash_title.as_deref())
        .unwrap_or("");
    ["KASAN:", "KMSAN:", "general protection fault", "BUG: unable to handle"]
        .iter()
        .any(|p| title.starts_with(p))
}

/// The trailer's crash (what the culprit crashed with) is not the bug the
/// start commit crashed with: no title of the start commit's runs is the
/// same bug ([`one_bug`]). False when either side names no crash.
fn title_changed(log: &Log, observed: &Observed) -> bool {
    let Some(culprit) = log.trailer.as_ref().and_then(|t| t.crash_title.as_deref()) else {
        return false;
    };
    let Some(start) = log.steps.iter().position(|s| s.purpose == Purpose::Original) else {
        return false;
    };
    let titles = observed.titles(start);
    let culprit = normalize_title(culprit);
    !titles.is_empty() && !titles.iter().any(|t| one_bug(t, &culprit))
}

/// Distinct crash titles over every step's runs (normalized).
fn crash_titles(observed: &Observed) -> usize {
    let mut all: Vec<&str> = (0..observed.steps.len()).flat_map(|i| observed.titles(i)).collect();
    all.sort_unstable();
    all.dedup();
    all.len()
}

/// Steps whose runs both crashed and ran clean: how flaky the reproducer
/// was along the way.
fn mixed_steps(observed: &Observed) -> usize {
    observed
        .steps
        .iter()
        .filter(|(runs, _)| {
            runs.iter().any(|r| matches!(r, Seen::Crash(_))) && runs.iter().any(|r| matches!(r, Seen::Ok))
        })
        .count()
}

/// A logistic model on the [`USED`] features:
/// P(right) = 1 / (1 + exp(-(intercept + weights . x))).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logistic {
    pub intercept: f64,
    pub weights: [f64; MODEL],
}

/// Fitted on the dev labels (149 results with a probability: 70 right)
/// with [`LAMBDA`]; the command is in the module docs.
pub const FITTED: Logistic = Logistic {
    intercept: -0.3729,
    weights: [
        0.3923,  // runs_logit
        -0.9624, // ln_releases
    ],
};

/// Newton steps of the fit: the penalized log-likelihood is strictly
/// concave, so it converges in a handful; this is a ceiling.
const MAX_NEWTON_STEPS: usize = 100;

impl Logistic {
    /// The chance the result is right.
    pub fn probability(&self, x: &Features) -> f64 {
        let z = self.intercept + self.weights.iter().zip(x.used()).map(|(w, v)| w * v).sum::<f64>();
        sigmoid(z)
    }

    /// The L2-penalized maximum-likelihood fit on the [`USED`] features.
    /// `right[i]` is whether result `i` was right.
    pub fn fit(xs: &[Features], right: &[bool], lambda: f64) -> Logistic {
        let rows: Vec<Vec<f64>> = xs.iter().map(|x| x.used().to_vec()).collect();
        let w = fit_columns(&rows, right, lambda);
        let mut weights = [0.0; MODEL];
        weights.copy_from_slice(&w[1..]);
        Logistic {
            intercept: w[0],
            weights,
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The L2-penalized logistic fit of any columns (Newton's method; the
/// intercept, first in the result, is not penalized): for comparing
/// candidate features.
pub fn fit_columns(rows: &[Vec<f64>], right: &[bool], lambda: f64) -> Vec<f64> {
    let d = rows.first().map_or(0, Vec::len) + 1;
    let with_one = |r: &[f64]| std::iter::once(1.0).chain(r.iter().copied()).collect::<Vec<f64>>();
    let mut w = vec![0.0; d];
    for _ in 0..MAX_NEWTON_STEPS {
        let mut gradient = vec![0.0; d];
        let mut hessian = vec![vec![0.0; d]; d];
        for (row, &y) in rows.iter().zip(right) {
            let r = with_one(row);
            let p = sigmoid(w.iter().zip(&r).map(|(a, b)| a * b).sum());
            let residual = p - f64::from(u8::from(y));
            for i in 0..d {
                gradient[i] += residual * r[i];
                for j in 0..d {
                    hessian[i][j] += p * (1.0 - p) * r[i] * r[j];
                }
            }
        }
        for i in 1..d {
            gradient[i] += lambda * w[i];
            hessian[i][i] += lambda;
        }
        let step = solve(hessian, gradient);
        for (wi, s) in w.iter_mut().zip(&step) {
            *wi -= s;
        }
        if step.iter().all(|s| s.abs() < 1e-10) {
            break;
        }
    }
    w
}

/// The probability of right under columns' weights `w` (from [`fit_columns`]).
pub fn predict_columns(w: &[f64], row: &[f64]) -> f64 {
    sigmoid(w[0] + w[1..].iter().zip(row).map(|(a, b)| a * b).sum::<f64>())
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting. `a` is
/// a penalized Hessian: symmetric positive definite, never singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let d = b.len();
    for c in 0..d {
        let pivot = (c..d)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, pivot);
        b.swap(c, pivot);
        for r in c + 1..d {
            let f = a[r][c] / a[c][c];
            let (above, below) = a.split_at_mut(r);
            for (x, p) in below[0][c..].iter_mut().zip(&above[c][c..]) {
                *x -= f * p;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; d];
    for c in (0..d).rev() {
        let rest: f64 = (c + 1..d).map(|k| a[c][k] * x[k]).sum();
        x[c] = (b[c] - rest) / a[c][c];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fit recovers a known split of the labels by one feature.
    #[test]
    fn fit_follows_the_labels() {
        let mut rows = Vec::new();
        let mut ys = Vec::new();
        for i in 0..200 {
            let changed = f64::from(u8::from(i % 2 == 0));
            rows.push(vec![0.0, changed]);
            // Rows with the feature are right 1 in 10, the others 9 in 10.
            ys.push(if changed > 0.0 { i % 20 == 0 } else { i % 20 != 1 });
        }
        let w = fit_columns(&rows, &ys, 0.01);
        assert!(w[2] < -3.0, "{w:?}");
        let with = predict_columns(&w, &[0.0, 1.0]);
        let without = predict_columns(&w, &[0.0, 0.0]);
        assert!(
            (with - 0.1).abs() < 0.01 && (without - 0.9).abs() < 0.01,
            "{with} {without}"
        );
    }

    #[test]
    fn solve_inverts_a_small_system() {
        let x = solve(vec![vec![4.0, 1.0], vec![1.0, 3.0]], vec![1.0, 2.0]);
        assert!((x[0] - 1.0 / 11.0).abs() < 1e-12 && (x[1] - 7.0 / 11.0).abs() < 1e-12);
    }
}
