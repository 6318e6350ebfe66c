//! The line of commits a syzbot log tested, rebuilt (see the parent module's
//! docs, "The line"): tested commits placed on a number line, untested
//! stretches as unknown commits, the culprit right after the last good.
//!
//! Invariant: positions only; no runs, no titles, no probabilities.

use crate::search::bayes::Kernel;
use crate::syzlog::{Log, Purpose, Step, Verdict};

use super::{kernel_of, Settings};

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
pub(super) struct Line {
    pub kernels: Vec<Kernel>,
    pub node_of_step: Vec<Option<usize>>,
    pub culprit: usize,
}

impl Line {
    pub fn build(log: &Log, culprit: &str, settings: &Settings) -> Option<Line> {
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
