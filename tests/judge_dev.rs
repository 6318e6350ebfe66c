//! The judge (`kcache::judge`) on the study's labels of the dev logs
//! (`../shared/bisect-logs/dev-labels.tsv`): REJECT is never wrong; the
//! calibrated probability and the flags, estimated by 5-fold
//! cross-validation only (the figures quoted for unseen logs); the
//! shipped coefficients and cut are what the fitting command gives; and
//! `log replay --labels` prints the reliability table.
//!
//! The fitting command (prints the coefficients to paste into
//! `src/judge/calibrate.rs` and the cut for `Settings::default`):
//! `cargo test --release --locked --test judge_dev fit_calibration -- --ignored --nocapture`.

use std::path::PathBuf;

use kcache::judge::{
    self, fit_columns, predict_columns, Features, Logistic, Settings, CANDIDATES, FEATURES, FITTED, LAMBDA, MODEL, USED,
};
use kcache::syzlog::{self, Calibration, FlagScore, Log, ResultVerdict};

mod common;

fn shared() -> PathBuf {
    common::shared_file("bisect-logs")
}

/// A labelled dev result as the judge sees it with its default settings.
struct Judged {
    name: String,
    wrong: bool,
    rejected: bool,
    /// The calibration's features (`None`: the runs cannot decide).
    features: Option<Features>,
}

/// Every dev log labelled `correct` or `incorrect`, in name order (`no
/// output` ones named no culprit to judge).
fn dev_labels() -> Vec<(String, Log, bool)> {
    let path = shared().join("dev-labels.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: Vec<(String, Log, bool)> = text
        .lines()
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
            Some((name.to_string(), log, wrong))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn judged() -> Vec<Judged> {
    let settings = Settings::default();
    dev_labels()
        .into_iter()
        .map(|(name, log, wrong)| Judged {
            rejected: judge::analyze(&log).verdict == ResultVerdict::Reject,
            features: judge::features(&log, &settings),
            name,
            wrong,
        })
        .collect()
}

const FOLDS: usize = 5;

/// Stratified folds: the i-th result of each label (in name order) goes
/// to fold i % 5.
fn folds(items: &[&Judged]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| (items[a].wrong, &items[a].name).cmp(&(items[b].wrong, &items[b].name)));
    let mut fold = vec![0; items.len()];
    let mut seen = [0usize; 2];
    for &i in &order {
        let k = usize::from(items[i].wrong);
        fold[i] = seen[k] % FOLDS;
        seen[k] += 1;
    }
    fold
}

/// Fits on `items` (those with features).
fn fit(items: &[&Judged], lambda: f64) -> Logistic {
    let (xs, right): (Vec<Features>, Vec<bool>) =
        items.iter().filter_map(|j| j.features.map(|f| (f, !j.wrong))).unzip();
    Logistic::fit(&xs, &right, lambda)
}

/// Every item's probability from a model fitted on the other folds.
fn out_of_fold(items: &[&Judged], lambda: f64) -> Vec<Option<f64>> {
    let fold = folds(items);
    let mut out = vec![None; items.len()];
    for k in 0..FOLDS {
        let train: Vec<&Judged> = (0..items.len()).filter(|&i| fold[i] != k).map(|i| items[i]).collect();
        let model = fit(&train, lambda);
        for i in (0..items.len()).filter(|&i| fold[i] == k) {
            out[i] = items[i].features.map(|f| model.probability(&f));
        }
    }
    out
}

/// The cross-validated Brier score of a model on candidate columns `set`
/// (the folds of [`cross_validate`]; results without features are skipped).
fn brier_of_columns(items: &[&Judged], set: &[usize]) -> f64 {
    let row = |f: &Features| set.iter().map(|&c| f.values[c]).collect::<Vec<f64>>();
    let fold = folds(items);
    let (mut sum, mut n) = (0.0, 0);
    for k in 0..FOLDS {
        let (rows, right): (Vec<Vec<f64>>, Vec<bool>) = (0..items.len())
            .filter(|&i| fold[i] != k)
            .filter_map(|i| items[i].features.map(|f| (row(&f), !items[i].wrong)))
            .unzip();
        let w = fit_columns(&rows, &right, LAMBDA);
        for i in (0..items.len()).filter(|&i| fold[i] == k) {
            if let Some(f) = items[i].features {
                sum += (predict_columns(&w, &row(&f)) - f64::from(u8::from(!items[i].wrong))).powi(2);
                n += 1;
            }
        }
    }
    sum / n.max(1) as f64
}

/// The cuts tried for `weak-evidence` (probability of right below it).
const CUTS: [f64; 12] = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6];

fn flag(j: &Judged, p: Option<f64>, cut: f64) -> bool {
    j.rejected || p.is_some_and(|p| p < cut)
}

fn score(items: &[&Judged], probabilities: &[Option<f64>], cut: f64) -> FlagScore {
    let mut s = FlagScore::default();
    for (j, p) in items.iter().zip(probabilities) {
        s.add(flag(j, *p, cut), j.wrong);
    }
    s
}

/// The cut with the most recall at >= 95% precision on `items`' held-out
/// probabilities; among equals the middle of the plateau.
fn choose_cut(items: &[&Judged], probabilities: &[Option<f64>]) -> f64 {
    let ok: Vec<(f64, FlagScore)> = CUTS
        .iter()
        .map(|&c| (c, score(items, probabilities, c)))
        .filter(|(_, s)| s.precision() >= 0.95)
        .collect();
    let best = ok.iter().map(|(_, s)| s.flagged_wrong).max().unwrap_or(0);
    let plateau: Vec<f64> = ok
        .iter()
        .filter(|(_, s)| s.flagged_wrong == best)
        .map(|(c, _)| *c)
        .collect();
    plateau.get(plateau.len() / 2).copied().unwrap_or(CUTS[0])
}

/// The honest estimate: out-of-fold probabilities (Brier, reliability)
/// and, per outer fold, a cut chosen by an inner cross-validation of the
/// other four folds, scored on the held-out fold.
struct CrossValidated {
    calibration: Calibration,
    /// Flags with each fold's own cut, summed over the held-out folds.
    flags: FlagScore,
    cuts: Vec<f64>,
    /// The cut the out-of-fold probabilities of all of dev choose (shipped).
    cut: f64,
}

fn cross_validate(all: &[Judged], lambda: f64) -> CrossValidated {
    let items: Vec<&Judged> = all.iter().collect();
    let probabilities = out_of_fold(&items, lambda);
    let fold = folds(&items);
    let mut flags = FlagScore::default();
    let mut cuts = Vec::new();
    for k in 0..FOLDS {
        let train: Vec<&Judged> = (0..items.len()).filter(|&i| fold[i] != k).map(|i| items[i]).collect();
        let cut = choose_cut(&train, &out_of_fold(&train, lambda));
        cuts.push(cut);
        for i in (0..items.len()).filter(|&i| fold[i] == k) {
            flags.add(flag(items[i], probabilities[i], cut), items[i].wrong);
        }
    }
    let scored: Vec<(f64, bool)> = items
        .iter()
        .zip(&probabilities)
        .filter_map(|(j, p)| p.map(|p| (p, !j.wrong)))
        .collect();
    let undecided = probabilities.iter().filter(|p| p.is_none()).count();
    CrossValidated {
        calibration: Calibration::of(&scored, undecided, flags),
        flags,
        cuts,
        cut: choose_cut(&items, &probabilities),
    }
}

fn print_calibration(c: &Calibration) {
    let mut s = String::new();
    kcache::report::calibration_text(&mut s, c);
    print!("{s}");
}

/// REJECT must never be wrong: every dev log the judge rejects is labelled
/// incorrect (a rule change that rejects a correct result fails here,
/// naming the log).
#[test]
fn reject_is_never_wrong_on_dev() {
    let all = judged();
    for j in all.iter().filter(|j| j.rejected) {
        assert!(j.wrong, "{} is labelled correct but REJECTed", j.name);
    }
    let rejects = all.iter().filter(|j| j.rejected).count();
    assert!(rejects >= 11, "REJECT caught {rejects} dev logs (11 before issue 26)");
}

/// The cross-validated figures (the expectations quoted for unseen logs),
/// with a margin: Brier score, the reliability of every tenth with 20 or
/// more results, and the flags with cuts chosen on training folds only.
#[test]
fn calibration_holds_under_cross_validation() {
    let all = judged();
    let cv = cross_validate(&all, LAMBDA);
    let c = &cv.calibration;
    print_calibration(c);
    println!("cuts per fold: {:?}; chosen on all out-of-fold: {}", cv.cuts, cv.cut);
    assert!(c.brier <= 0.17, "cross-validated Brier {:.3}", c.brier);
    assert!(
        c.brier < c.base_rate_brier - 0.06,
        "{:.3} vs {:.3}",
        c.brier,
        c.base_rate_brier
    );
    for b in c.reliability.iter().filter(|b| b.count >= 20) {
        assert!(
            (b.mean_probability - b.fraction_right).abs() <= 0.10,
            "{:.1}-{:.1}: {} results, mean {:.2}, right {:.2}",
            b.low,
            b.high,
            b.count,
            b.mean_probability,
            b.fraction_right
        );
    }
    assert!(
        cv.flags.precision() >= 0.93 && cv.flags.recall() >= 0.5,
        "held-out flags: {}/{} precise, {}/{} recall",
        cv.flags.flagged_wrong,
        cv.flags.flagged,
        cv.flags.flagged_wrong,
        cv.flags.wrong
    );
}

/// The shipped coefficients and cut are what the fitting command gives
/// on the dev labels (data in the source, not hand-edited).
#[test]
fn shipped_model_is_the_fit() {
    let all = judged();
    let items: Vec<&Judged> = all.iter().collect();
    let fitted = fit(&items, LAMBDA);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-3;
    assert!(close(fitted.intercept, FITTED.intercept), "{fitted:?} vs {FITTED:?}");
    for i in 0..MODEL {
        assert!(
            close(fitted.weights[i], FITTED.weights[i]),
            "{}: {fitted:?} vs {FITTED:?}",
            CANDIDATES[USED[i]]
        );
    }
    assert_eq!(cross_validate(&all, LAMBDA).cut, Settings::default().threshold);
}

/// `log replay --labels` prints the Brier score and the reliability table
/// (in-sample here: the shipped model was fitted on these logs), and the
/// same in its JSON, schema v2.
#[test]
fn replay_prints_the_reliability_table() {
    let labels = shared().join("dev-labels.tsv");
    let dev = shared().join("dev");
    let replay = |json: &[&str], labels: &std::path::Path| {
        let mut cmd = common::kcache();
        cmd.args(["log", "replay"])
            .args(json)
            .arg("--labels")
            .arg(labels)
            .arg(&dev);
        cmd.output().unwrap()
    };
    let out = replay(&[], &labels);
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decided = judged().iter().filter(|j| j.features.is_some()).count();
    assert!(
        text.contains(&format!(
            "calibration against labels: {decided} results with a probability"
        )),
        "{text}"
    );
    assert!(text.contains("Brier score: 0."), "{text}");
    let rows = text.lines().filter(|l| l.trim_start().starts_with("0.")).count();
    assert!(rows >= 5, "{rows} reliability rows: {text}");

    let out = replay(&["--json"], &labels);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], "kcache/log-replay/v2");
    let c = &doc["calibration"];
    assert_eq!(c["results"], decided);
    let counts: u64 = c["reliability"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counts as usize, decided);
    assert!(c["brier"].as_f64().unwrap() < c["base_rate_brier"].as_f64().unwrap());

    // A labels file with a bad line: a clear error naming it, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("labels.tsv");
    std::fs::write(&bad, "log\tresult\nLog_1\tperhaps\n").unwrap();
    let out = replay(&[], &bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("labels.tsv, line 2") && stderr.contains("perhaps"),
        "{stderr}"
    );
}

/// The fitting command: the coefficients on all of dev (paste into
/// `FITTED`), the cut the out-of-fold probabilities choose (paste into
/// `Settings::default`), and the cross-validated figures per penalty.
#[test]
#[ignore]
fn fit_calibration() {
    let all = judged();
    for lambda in [0.1, 0.3, 1.0, 3.0, 10.0] {
        let cv = cross_validate(&all, lambda);
        let f = cv.flags;
        println!(
            "lambda {lambda}: CV Brier {:.4}; held-out flags {}/{} precise, recall {}/{}; cuts {:?}, chosen {}",
            cv.calibration.brier, f.flagged_wrong, f.flagged, f.flagged_wrong, f.wrong, cv.cuts, cv.cut
        );
    }
    let items: Vec<&Judged> = all.iter().collect();
    println!("cross-validated Brier by features (lambda {LAMBDA}):");
    let mut sets: Vec<Vec<usize>> = (0..FEATURES).map(|c| vec![c]).collect();
    sets.extend(
        (0..FEATURES)
            .filter(|c| !USED.contains(c))
            .map(|c| [&USED[..], &[c]].concat()),
    );
    sets.push(USED.to_vec());
    sets.push((0..FEATURES).collect());
    for set in sets {
        let names: Vec<&str> = set.iter().map(|&c| CANDIDATES[c]).collect();
        println!("  {:.4} {}", brier_of_columns(&items, &set), names.join(" + "));
    }
    let cv = cross_validate(&all, LAMBDA);
    print_calibration(&cv.calibration);
    // Per result: the out-of-fold probability and the features, to read
    // the false alarms and misses.
    for (j, p) in items.iter().zip(out_of_fold(&items, LAMBDA)) {
        let f = j.features.map(|f| f.values.map(|v| format!("{v:.2}")).join(" "));
        println!(
            "result {} wrong={} rejected={} oof={:.3} features={}",
            j.name,
            j.wrong,
            j.rejected,
            p.unwrap_or(f64::NAN),
            f.unwrap_or_default()
        );
    }
    let m = fit(&items, LAMBDA);
    println!("pub const FITTED: Logistic = Logistic {{");
    println!("    intercept: {:.4},", m.intercept);
    println!("    weights: [");
    for (w, name) in m.weights.iter().zip(USED.map(|i| CANDIDATES[i])) {
        println!("        {w:.4}, // {name}");
    }
    println!("    ],\n}};");
    println!("threshold: {}", cv.cut);
}
