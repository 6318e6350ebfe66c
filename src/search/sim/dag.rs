//! Maintainer-style simulated histories: a mainline of merges and a few
//! direct commits; topic branches of 1-50 commits (log-uniform) forked 0-3
//! merges back and merged `--no-ff`, a few at a time; now and then a branch
//! forked from before the good end (a second base node), a back-merge of
//! mainline into a branch, and a criss-cross (two branches merging each
//! other). Kernels: a no-op commit has its first parent's kernel; a merge of
//! a branch that changed nothing has mainline's kernel, and a merge into a
//! mainline that changed nothing since the fork has the branch's kernel
//! (both "merges that bring nothing": never the culprit); every other commit
//! has a kernel of its own. The culprit is any node whose kernel differs
//! from all its parents' and that builds with its parents: on a branch, on
//! mainline, or (one trial in ten, when there is one) a merge whose kernel
//! is new (each branch is fine alone; together they crash).
//!
//! Invariant: equal kernel ids are the same code (so the same verdict); the
//! history is a valid [`Graph`] whose tip is the last mainline node.

use super::{History, Rng, Setting};
use crate::search::graph::{Direction, Graph};

struct Branch {
    tip: usize,
    /// The mainline node it forked from.
    fork: usize,
    /// Whether any commit of it (or merge into it) changed the kernel.
    changed: bool,
}

struct Builder {
    parents: Vec<Vec<usize>>,
    in_range: Vec<bool>,
    kernel: Vec<u32>,
    next_kernel: u32,
}

impl Builder {
    fn add(&mut self, parents: Vec<usize>, kernel: Option<u32>, in_range: bool) -> usize {
        let k = kernel.unwrap_or_else(|| {
            self.next_kernel += 1;
            self.next_kernel
        });
        self.parents.push(parents);
        self.in_range.push(in_range);
        self.kernel.push(k);
        self.parents.len() - 1
    }

    /// A commit on top of `parent`: a no-op (its parent's kernel) or a change.
    fn commit(&mut self, parent: usize, noop: bool) -> usize {
        let k = noop.then_some(self.kernel[parent]);
        self.add(vec![parent], k, true)
    }
}

/// Branch length: log-uniform in 1..=50.
fn branch_len(rng: &mut Rng) -> usize {
    (50f64.powf(rng.uniform())).floor().clamp(1.0, 50.0) as usize
}

/// A maintainer-style history of about `s.commits` range commits after the
/// good end (node 0), for `direction`.
pub fn generate(s: &Setting, direction: Direction, rng: &mut Rng) -> History {
    let mut b = Builder {
        parents: vec![vec![]],
        in_range: vec![false],
        kernel: vec![0],
        next_kernel: 0,
    };
    // Mainline nodes (merges and direct commits), oldest first.
    let mut mainline = vec![0usize];
    let mut open: Vec<Branch> = Vec::new();
    while b.parents.len() <= s.commits || !open.is_empty() {
        let growing = b.parents.len() <= s.commits;
        let r = rng.uniform();
        if growing && r < 0.15 {
            let tip = *mainline.last().expect("mainline");
            let c = b.commit(tip, rng.uniform() < s.noop);
            mainline.push(c);
        } else if growing && (open.len() < 2 || (open.len() < 5 && r < 0.55)) {
            // A topic branch forked 0-3 merges back (rarely: before the good end).
            let fork = if rng.uniform() < 0.03 {
                b.add(vec![], None, false)
            } else {
                mainline[mainline.len() - 1 - rng.below(4).min(mainline.len() - 1)]
            };
            let mut tip = fork;
            let mut changed = false;
            for _ in 0..branch_len(rng) {
                let noop = rng.uniform() < s.noop;
                changed |= !noop;
                tip = b.commit(tip, noop);
            }
            open.push(Branch { tip, fork, changed });
        } else if open.len() >= 2 && rng.uniform() < 0.08 {
            // Criss-cross: two branches merge each other.
            let (i, j) = (rng.below(open.len()), rng.below(open.len()));
            if i != j {
                let (ti, tj) = (open[i].tip, open[j].tip);
                open[i].tip = b.add(vec![ti, tj], None, true);
                open[j].tip = b.add(vec![tj, ti], None, true);
                open[i].changed = true;
                open[j].changed = true;
            }
        } else if !open.is_empty() && rng.uniform() < 0.05 {
            // A back-merge of mainline into a branch.
            let i = rng.below(open.len());
            let main = *mainline.last().expect("mainline");
            open[i].tip = b.add(vec![open[i].tip, main], None, true);
            open[i].changed = true;
        } else if !open.is_empty() {
            let br = open.remove(rng.below(open.len()));
            let main = *mainline.last().expect("mainline");
            let kernel = if !br.changed {
                Some(b.kernel[main]) // the branch brought nothing
            } else if b.kernel[main] == b.kernel[br.fork] && b.in_range[br.fork] && b.parents[br.tip].len() == 1 {
                Some(b.kernel[br.tip]) // mainline changed nothing since the fork
            } else {
                None
            };
            let m = b.add(vec![main, br.tip], kernel, true);
            mainline.push(m);
        }
    }
    // The tip: a mainline node (one more commit if mainline never moved).
    if mainline.len() == 1 {
        mainline.push(b.commit(0, false));
    }
    let tip = *mainline.last().expect("mainline");
    debug_assert_eq!(tip, b.parents.len() - 1);
    finish(s, direction, b, rng)
}

/// Broken stretches, the culprit, the history.
fn finish(s: &Setting, direction: Direction, b: Builder, rng: &mut Rng) -> History {
    let n = b.parents.len();
    let mut broken = vec![false; n];
    let want = (s.broken * n as f64).round() as usize;
    let mut placed = 0;
    let mut tries = 0;
    while placed < want && tries < 10 * n {
        tries += 1;
        // A stretch follows first parents down from a random node.
        let mut x = 1 + rng.below(n - 1);
        for _ in 0..1 + rng.below(8) {
            if b.in_range[x] && !broken[x] && placed < want {
                broken[x] = true;
                placed += 1;
            }
            match b.parents[x].first() {
                Some(&p) if p > 0 => x = p,
                _ => break,
            }
        }
    }
    broken[n - 1] = false;
    broken[0] = false;
    let eligible = |x: usize| {
        b.in_range[x] && !broken[x] && b.parents[x].iter().all(|&p| b.kernel[p] != b.kernel[x] && !broken[p])
    };
    let merges: Vec<usize> = (0..n).filter(|&x| b.parents[x].len() > 1 && eligible(x)).collect();
    let singles: Vec<usize> = (0..n).filter(|&x| b.parents[x].len() <= 1 && eligible(x)).collect();
    let culprit = if !merges.is_empty() && (singles.is_empty() || rng.uniform() < 0.1) {
        merges[rng.below(merges.len())]
    } else if !singles.is_empty() {
        singles[rng.below(singles.len())]
    } else {
        n - 1
    };
    let fallback = !eligible(culprit);
    let mut kernel = b.kernel;
    if fallback {
        // No node could be named: make the tip a change of its own.
        kernel[culprit] = u32::MAX;
    }
    History {
        graph: Graph::new(b.parents, b.in_range).expect("a generated history is a valid graph"),
        kernel,
        broken,
        culprit,
        direction,
        p: s.p,
        e: s.e,
        build_seconds: s.build_seconds,
        run_seconds: s.run_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(commits: usize) -> Setting {
        Setting {
            commits,
            noop: 0.2,
            p: 1.0,
            e: 0.0,
            broken: 0.02,
            runs: 10,
            build_seconds: 600.0,
            run_seconds: 60.0,
        }
    }

    #[test]
    fn histories_have_merges_branches_and_consistent_kernels() {
        let mut merges = 0;
        let mut merge_culprits = 0;
        let mut in_branch = 0;
        for seed in 0..50 {
            let h = generate(&setting(300), Direction::Cause, &mut Rng::new(seed));
            let g = &h.graph;
            assert!(g.len() > 300);
            merges += (0..g.len()).filter(|&i| g.parents(i).len() > 1).count();
            merge_culprits += (g.parents(h.culprit).len() > 1) as usize;
            // Off the tip's first-parent line: inside a branch.
            let mut x = g.tip();
            let mut first_parent_line = vec![x];
            while let Some(&p) = g.parents(x).first() {
                first_parent_line.push(p);
                x = p;
            }
            in_branch += !first_parent_line.contains(&h.culprit) as usize;
            // Equal kernels, equal verdicts; the culprit differs from every parent.
            for i in 0..g.len() {
                for j in 0..i {
                    if h.kernel[i] == h.kernel[j] {
                        assert_eq!(h.bad(i), h.bad(j), "seed {seed}: {j} and {i} share a kernel");
                    }
                }
            }
            assert!(g.parents(h.culprit).iter().all(|&p| h.kernel[p] != h.kernel[h.culprit]));
            assert!(h.bad(g.tip()) && !h.bad(0));
            let fix = generate(&setting(300), Direction::Fix, &mut Rng::new(seed));
            assert!(!fix.bad(fix.graph.tip()) && fix.bad(0));
        }
        assert!(merges > 50 * 10, "{merges}");
        assert!((1..20).contains(&merge_culprits), "{merge_culprits}");
        assert!(in_branch > 25, "{in_branch}");
    }

    #[test]
    fn the_search_names_the_culprit_on_dags_in_both_directions() {
        let model = crate::search::bayes::Model::default();
        for direction in [Direction::Cause, Direction::Fix] {
            for seed in 0..20 {
                let h = generate(&setting(300), direction, &mut Rng::new(seed));
                let t = super::super::bayes(&h, &model, seed);
                assert!(t.right, "{direction:?} seed {seed}: {:?} for {}", t.culprit, h.culprit);
                let git = super::super::git_bisect(&h, 10, seed);
                assert!(
                    git.right || git.culprit.is_none(),
                    "git bisect {direction:?} seed {seed}"
                );
            }
        }
    }

    #[test]
    fn the_search_survives_noise_on_dags() {
        let model = crate::search::bayes::Model::default();
        let mut right = 0;
        for seed in 0..30 {
            let s = Setting {
                p: 0.3,
                e: 0.02,
                ..setting(300)
            };
            let direction = if seed % 2 == 0 {
                Direction::Cause
            } else {
                Direction::Fix
            };
            let h = generate(&s, direction, &mut Rng::new(seed));
            right += super::super::bayes(&h, &model, seed).right as u32;
        }
        assert!(right >= 28, "{right}/30");
    }
}
