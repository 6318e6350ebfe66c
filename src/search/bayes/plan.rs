//! Parallel work for the noisy search (issue 24): sets of tests for the
//! oracle's run slots, and the lookahead that tells the oracle which
//! commits to build speculatively.
//!
//! **Sets.** With one run slot the search is today's ([`Search::next`]).
//! With `k > 1` slots a batch of `n` runs costs `ceil(n / k)` run times,
//! so the question is what to put on the slots of one wave: more runs on
//! the best kernel tell less and less (they share its unknown `p`), while
//! runs on two kernels on either side of the likely boundary split the
//! hypotheses three ways. The rule, chosen with the wall-clock simulator
//! ([`sim::wallclock`](crate::search::sim::wallclock)): take the few best
//! single tests (by bits per wall second alone) and those that cut the
//! posterior mass nearest 1/4, 1/3, 2/3 and 3/4, then grow a set greedily
//! in chunks of `runs / 2` runs (a kernel gets at most its own batch), up
//! to one wave (`max(k, runs)` runs), adding the chunk that most raises the
//! set's *joint* mutual information per wall second, and stop when no
//! chunk raises it. Wall seconds of a set: its builds spread over the
//! oracle's build slots (a prefetched build costs only what is left of it)
//! plus its waves of runs. The joint information pools the hypotheses by
//! which of the candidates they change (a handful of patterns: O(n·M) to
//! pool, then each set costs patterns × 2^|set| × the p grid), the runs of
//! one pattern sharing `p`. Why these pieces (each was missing once and
//! the simulator showed it): the best tests alone all sit near the middle
//! of the mass, so without the spread candidates no set paid; a first pick
//! of a whole batch filled the wave, so sets grow in chunks; and costing a
//! set's builds side by side is right only because its unbuilt commits
//! head the wish list (below).
//!
//! **Lookahead.** Before each test (or set) the search clones its state,
//! applies each outcome of the tests about to run (a match, or a batch of
//! ok runs), most likely first, and asks the same chooser what it would
//! do next; then one more level under the likeliest branches. The commits
//! those choices would build, in that order, go to [`Oracle::prefetch`]
//! (after the unbuilt commits of the set itself, so an oracle with several
//! build slots builds a set's kernels side by side). A budget of choices
//! per step that shrinks with the graph ([`LOOKAHEAD_CHOICES`]) bounds its
//! cost.
//!
//! Invariant: decides only what to test and what to wish for; evidence is
//! taken in only through [`boundary`](super::boundary)'s bookkeeping
//! (`prepare_test`, `absorb`), and a lookahead never touches the real
//! state (it works on clones).

use std::collections::HashMap;

use super::boundary::{Gap, Prepared};
use super::choose::{Action, Candidate};
use super::posterior::{Posterior, Search};
use super::{p_at, Kernel, Oracle, P_GRID, RETEST_SHARE};
use crate::crash::RunClass;
use crate::search::graph::Direction;
use crate::signature::KernelSignature;

/// Single tests a set is grown from.
const SET_CANDIDATES: usize = 6;
/// Where, in the share of the mass below them, set members are looked for.
const SPREAD: [f64; 4] = [0.25, 1.0 / 3.0, 2.0 / 3.0, 0.75];
/// The most tests in one set.
const SET_MAX: usize = 4;
/// Choices the lookahead makes per step (each: one posterior and one
/// choice over every node, about as long as the step's own): between 2
/// (both outcomes of a single test) and 6 (both levels), as many as
/// [`LOOKAHEAD_WORK`] allows at `n · (W + P_GRID)` a choice: 2 on a
/// 15,000-commit DAG, 4 on a 10,000-commit line, 6 on small ranges.
const LOOKAHEAD_CHOICES: (usize, usize) = (2, 6);
const LOOKAHEAD_WORK: usize = 1_000_000;
/// The longest wish list handed to the oracle (at least its build slots).
const WISH_LEN: usize = 8;
/// How deep the lookahead wishes builds: two decisions with few build
/// slots; with a farm's (an engine's nodes), log2 of the slots, at most
/// [`DEEPEST`]: a build wished d decisions ahead is still running when
/// the search asks for it if d steps of runs take less than a build (10
/// runs of 1 minute on 16 machines, 10-minute builds), so the floor per
/// step is about a build's time / d, and d levels of both outcomes need
/// 2^(d+1) - 2 builds (docs/performance.md, "Wall time on M machines").
fn lookahead_levels(build_slots: u32) -> u32 {
    build_slots.max(1).ilog2().clamp(2, DEEPEST)
}
/// The deepest lookahead (4 levels: 30 choices, 30 builds wished).
const DEEPEST: u32 = 4;
/// Outcomes less likely than this are not looked into.
const UNLIKELY: f64 = 0.02;

fn entropy(ps: &[f64]) -> f64 {
    ps.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.log2()).sum()
}

/// The hypotheses pooled by which of a few nodes they change: per pattern
/// (bit i set: node i changed), the posterior mass times its p weights.
struct Patterns {
    cells: Vec<[f64; P_GRID]>,
    masks: Vec<u32>,
    /// A changed kernel crashes (cause) or is the clean one (fix).
    changed_crashes: bool,
    epsilon: f64,
}

impl Patterns {
    /// Outcome distribution of `tests` (index into the pooled nodes, runs):
    /// P(y) for y in 0..2^len (bit i: test i matched), and the expected
    /// entropy of y given the hypothesis pattern.
    fn outcomes(&self, tests: &[(usize, u32)]) -> (Vec<f64>, f64) {
        let ny = 1usize << tests.len();
        let mut py = vec![0.0; ny];
        let mut h_cond = 0.0;
        let clean: Vec<f64> = tests
            .iter()
            .map(|&(_, b)| (1.0 - self.epsilon).powi(b as i32))
            .collect();
        let mut pym = vec![0.0; ny];
        let mut miss = vec![0.0; tests.len()];
        for (cell, &mask) in self.cells.iter().zip(&self.masks) {
            pym.iter_mut().for_each(|v| *v = 0.0);
            let mut mass = 0.0;
            for (j, &w) in cell.iter().enumerate() {
                if w <= 0.0 {
                    continue;
                }
                mass += w;
                for (i, &(node, b)) in tests.iter().enumerate() {
                    let crashing = (mask >> node & 1 == 1) == self.changed_crashes;
                    miss[i] = if crashing {
                        (1.0 - p_at(j)).powi(b as i32)
                    } else {
                        clean[i]
                    };
                }
                for (y, v) in pym.iter_mut().enumerate() {
                    let mut p = w;
                    for (i, m) in miss.iter().enumerate() {
                        p *= if y >> i & 1 == 1 { 1.0 - m } else { *m };
                    }
                    *v += p;
                }
            }
            if mass <= 0.0 {
                continue;
            }
            for (a, b) in py.iter_mut().zip(&pym) {
                *a += b;
            }
            let cond: Vec<f64> = pym.iter().map(|v| v / mass).collect();
            h_cond += mass * entropy(&cond);
        }
        (py, h_cond)
    }

    /// Mutual information (bits) between the outcomes of `tests` and the
    /// hypotheses.
    fn information(&self, tests: &[(usize, u32)]) -> f64 {
        if tests.is_empty() {
            return 0.0;
        }
        let (py, h_cond) = self.outcomes(tests);
        (entropy(&py) - h_cond).max(0.0)
    }
}

/// A set being grown: per candidate (index), the runs given to it.
type Alloc = Vec<(usize, u32)>;

/// A branch of the lookahead: its probability, the state and posterior
/// under it, and what the search would test there.
type Branch<'m, 'g> = (f64, Search<'m, 'g>, Posterior, Vec<(usize, u32)>);

impl Search<'_, '_> {
    /// The next action: today's single test with one run slot, a set with
    /// more.
    pub(super) fn choose<O: Oracle>(&self, oracle: &O, post: &Posterior) -> Action {
        if oracle.slots() <= 1 {
            return self.next(oracle, post);
        }
        self.plan_set(oracle, post)
    }

    /// Pools the hypotheses by which of `nodes` they change.
    fn patterns(&self, post: &Posterior, nodes: &[usize]) -> Patterns {
        let n = self.graph.len();
        let mut at: HashMap<u32, usize> = HashMap::new();
        let mut cells: Vec<[f64; P_GRID]> = Vec::new();
        let mut masks = Vec::new();
        for h in 0..=n {
            let mass = if h < n { post.mass[h] } else { post.none };
            if mass <= 0.0 {
                continue;
            }
            let mask = if h < n {
                nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, &t)| self.graph.is_ancestor(h, t))
                    .fold(0u32, |m, (i, _)| m | 1 << i)
            } else {
                0 // none changes nothing
            };
            let c = *at.entry(mask).or_insert_with(|| {
                cells.push([0.0; P_GRID]);
                masks.push(mask);
                cells.len() - 1
            });
            for (v, w) in cells[c].iter_mut().zip(post.p_weights(h)) {
                *v += mass * w;
            }
        }
        Patterns {
            cells,
            masks,
            changed_crashes: self.direction == Direction::Cause,
            epsilon: self.model.epsilon,
        }
    }

    /// The set for the run slots (see the module doc); one test when one
    /// is best, `Done` when nothing is worth its cost.
    pub(super) fn plan_set<O: Oracle>(&self, oracle: &O, post: &Posterior) -> Action {
        let slots = oracle.slots().max(1);
        let run = oracle.run_cost().max(1e-6);
        let mut cands = self.candidates(oracle, post);
        if cands.is_empty() {
            return Action::Done;
        }
        let alone = |c: &Candidate| c.gain / (c.build + run * c.batch.div_ceil(slots) as f64);
        cands.sort_by(|a, b| alone(b).total_cmp(&alone(a)).then(a.node.cmp(&b.node)));
        let cands = self.spread(post, cands);
        let nodes: Vec<usize> = cands.iter().map(|c| c.node).collect();
        let pat = self.patterns(post, &nodes);
        let chunk = (self.model.runs / RETEST_SHARE).max(1);
        let cap = slots.max(self.model.runs.max(1));
        let score = |alloc: &Alloc| -> f64 {
            let wall = set_builds(&cands, alloc, oracle.build_slots()) + run * waves(alloc, slots) as f64;
            expected_information(&pat, &cands, alloc) / wall.max(1e-9)
        };
        let mut set: Alloc = Vec::new();
        let mut best = 0.0;
        loop {
            let used: u32 = set.iter().map(|(_, r)| r).sum();
            let mut pick: Option<(Alloc, f64)> = None;
            for (i, c) in cands.iter().enumerate() {
                let have = set.iter().position(|(j, _)| *j == i);
                if have.is_none() && set.len() >= SET_MAX {
                    continue;
                }
                // A candidate's own batch is the most it gets in one set.
                let add = chunk.min(c.batch);
                let given = have.map_or(0, |at| set[at].1);
                if used + add > cap || given + add > c.batch.max(chunk) {
                    continue;
                }
                let mut next = set.clone();
                match have {
                    Some(at) => next[at].1 += add,
                    None => next.push((i, add)),
                }
                let s = score(&next);
                if pick.as_ref().is_none_or(|(_, b)| s > *b) {
                    pick = Some((next, s));
                }
            }
            match pick {
                Some((next, s)) if s > best * (1.0 + 1e-9) => {
                    set = next;
                    best = s;
                }
                _ => break,
            }
        }
        match set.as_slice() {
            [] => Action::Done,
            [(i, r)] => Action::Test(cands[*i].node, *r),
            _ => Action::Set(set.iter().map(|&(i, r)| (cands[i].node, r)).collect()),
        }
    }

    /// The candidates a set is grown from (`ranked`: best alone first): the
    /// best few alone (they are near the middle of the mass, or cheap:
    /// built ahead), and those that cut the mass nearest a quarter, a third,
    /// two thirds and three quarters (the members of a good set sit apart;
    /// the best alone are all near each other).
    fn spread(&self, post: &Posterior, ranked: Vec<Candidate>) -> Vec<Candidate> {
        let mass: Vec<[f64; 1]> = post.mass.iter().map(|&m| [m]).collect();
        let below = self.graph.ancestor_sums(&mass);
        let mut out: Vec<Candidate> = ranked.iter().take(SET_CANDIDATES / 2).copied().collect();
        for f in SPREAD {
            let near = ranked
                .iter()
                .min_by(|a, b| (below[a.node][0] - f).abs().total_cmp(&(below[b.node][0] - f).abs()));
            if let Some(c) = near {
                if !out.iter().any(|o| o.node == c.node) {
                    out.push(*c);
                }
            }
        }
        out
    }

    /// Tests a set at once: builds what it needs (the oracle was told
    /// through `prefetch`, so builds can overlap), then one `run_set`. The
    /// builds no slot has started come first: while the search waits for
    /// one, the build slots finish the others (asked first, a build under
    /// way would be waited for before the next one even started, and the
    /// set's builds, costed side by side, would run one after the other).
    pub(super) fn test_set<O: Oracle>(&mut self, oracle: &mut O, tests: &[(usize, u32)]) -> Result<(), O::Error> {
        let mut batches: Vec<(usize, KernelSignature, u32)> = Vec::new();
        let mut reserved = 0;
        let mut ordered = tests.to_vec();
        ordered.sort_by(|a, b| oracle.build_cost(b.0).total_cmp(&oracle.build_cost(a.0)));
        for (t, n) in ordered {
            if let Prepared::Run { signature, budget } = self.prepare_test(oracle, t, n, reserved)? {
                // Two commits of a set may turn out to have one kernel.
                if batches.iter().any(|(_, s, _)| *s == signature) {
                    continue;
                }
                reserved += budget;
                batches.push((t, signature, budget));
            }
        }
        if batches.is_empty() {
            return Ok(());
        }
        let results = oracle.run_set(&batches, &self.target)?;
        let cost = oracle.run_cost();
        for (i, (t, _, budget)) in batches.iter().enumerate() {
            let classes = results.get(i).cloned().unwrap_or_default();
            self.absorb(*t, *budget, classes, cost);
        }
        Ok(())
    }

    /// Tells the oracle what to build ahead ([`Self::lookahead`]).
    pub(super) fn prefetch<O: Oracle>(&self, oracle: &mut O, post: &Posterior, action: &Action) {
        if !oracle.builds_ahead() {
            return;
        }
        let wanted = self.lookahead(oracle, post, action);
        oracle.prefetch(&wanted);
    }

    /// The commits to build ahead of `action`: its own unbuilt commits, then
    /// those the search would build next under each outcome, most likely
    /// first, one more level under the likeliest branches; at most
    /// [`LOOKAHEAD_CHOICES`] choices and [`WISH_LEN`] commits.
    pub(super) fn lookahead<O: Oracle>(&self, oracle: &O, post: &Posterior, action: &Action) -> Vec<usize> {
        let tests = tests_of(action);
        let mut wanted: Vec<usize> = Vec::new();
        self.wish(&tests, &mut wanted);
        let mut frontier: Vec<Branch<'_, '_>> = vec![(1.0, self.clone(), post.clone(), tests)];
        let per_choice = self.graph.len() * (self.graph.width() + P_GRID);
        let slots = oracle.build_slots();
        let levels = lookahead_levels(slots);
        // Both outcomes of every level: 2 + 4 + ... + 2^levels.
        let most = match levels {
            2 => LOOKAHEAD_CHOICES.1,
            deeper => (1usize << (deeper + 1)) - 2,
        };
        let budget = (LOOKAHEAD_WORK / per_choice.max(1)).clamp(LOOKAHEAD_CHOICES.0, most);
        let mut choices = 0;
        for _level in 0..levels {
            let mut next_level = Vec::new();
            for (prob, state, post, tests) in &frontier {
                if tests.is_empty() {
                    continue;
                }
                for (p_y, y) in state.likely_outcomes(post, tests) {
                    if choices >= budget {
                        break;
                    }
                    let mut s = state.clone();
                    s.imagine(tests, y);
                    let p2 = s.posterior();
                    let then = s.would_test(oracle, &p2);
                    choices += 1;
                    s.wish(&then, &mut wanted);
                    next_level.push((prob * p_y, s, p2, then));
                }
            }
            next_level.sort_by(|a, b| b.0.total_cmp(&a.0));
            frontier = next_level;
        }
        wanted.truncate(WISH_LEN.max(slots as usize));
        wanted
    }

    /// Adds the commits of `tests` that need a build to `wanted`.
    fn wish(&self, tests: &[(usize, u32)], wanted: &mut Vec<usize>) {
        for &(t, _) in tests {
            if self.kernels[t] == Kernel::Unknown && !wanted.contains(&t) {
                wanted.push(t);
            }
        }
    }

    /// The outcomes of `tests` (bit i: test i matched) at least
    /// [`UNLIKELY`], most likely first.
    fn likely_outcomes(&self, post: &Posterior, tests: &[(usize, u32)]) -> Vec<(f64, usize)> {
        let nodes: Vec<usize> = tests.iter().map(|(t, _)| *t).collect();
        let pat = self.patterns(post, &nodes);
        let indexed: Vec<(usize, u32)> = tests.iter().enumerate().map(|(i, &(_, b))| (i, b)).collect();
        let (py, _) = pat.outcomes(&indexed);
        let mut out: Vec<(f64, usize)> = py.into_iter().enumerate().map(|(y, p)| (p, y)).collect();
        out.retain(|(p, _)| *p >= UNLIKELY);
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out
    }

    /// Applies a hypothetical outcome: each unbuilt commit gets a kernel of
    /// its own, each test a match (`y` bit set) or a batch of ok runs.
    fn imagine(&mut self, tests: &[(usize, u32)], y: usize) {
        for (i, &(t, b)) in tests.iter().enumerate() {
            if self.kernels[t] == Kernel::Unknown {
                self.set_kernel(t, Kernel::Signed(KernelSignature::of_label(&format!("lookahead {t}"))));
            }
            let Some(g) = self.group[t] else { continue };
            let classes = if y >> i & 1 == 1 {
                vec![RunClass::Match]
            } else {
                vec![RunClass::Ok; b as usize]
            };
            self.groups[g].runs_here += classes.len() as u32;
            self.record(g, &classes);
        }
    }

    /// What the loop would test next in this state (nothing when it would
    /// end or check the base side).
    fn would_test<O: Oracle>(&self, oracle: &O, post: &Posterior) -> Vec<(usize, u32)> {
        if post.none >= self.model.confidence {
            return Vec::new();
        }
        let (k, prob) = post.best();
        if prob < self.model.confidence {
            return tests_of(&self.choose(oracle, post));
        }
        match self.boundary_gap(post, k) {
            Gap::Build(i) => vec![(i, self.model.runs.max(1))],
            Gap::Run(i, n) => vec![(i, n)],
            _ => Vec::new(),
        }
    }
}

fn tests_of(action: &Action) -> Vec<(usize, u32)> {
    match action {
        Action::Test(t, b) => vec![(*t, *b)],
        Action::Set(v) => v.clone(),
        Action::Done => Vec::new(),
    }
}

/// Waves of runs a set takes on `slots` run slots.
fn waves(alloc: &Alloc, slots: u32) -> u32 {
    alloc.iter().map(|(_, r)| r).sum::<u32>().div_ceil(slots)
}

/// Wall seconds of a set's builds on `build_slots` slots: longest first,
/// each to the slot free soonest.
fn set_builds(cands: &[Candidate], alloc: &Alloc, build_slots: u32) -> f64 {
    let mut costs: Vec<f64> = alloc
        .iter()
        .map(|&(i, _)| cands[i].build)
        .filter(|c| *c > 0.0)
        .collect();
    costs.sort_by(|a, b| b.total_cmp(a));
    let mut slot = vec![0.0f64; build_slots.max(1) as usize];
    for c in costs {
        let s = slot
            .iter_mut()
            .min_by(|a, b| a.total_cmp(b))
            .expect("at least one build slot");
        *s += c;
    }
    slot.into_iter().fold(0.0, f64::max)
}

/// The set's information, its builds' failures taken into account: the
/// expectation over which of its unbuilt commits build.
fn expected_information(pat: &Patterns, cands: &[Candidate], alloc: &Alloc) -> f64 {
    let risky: Vec<usize> = (0..alloc.len()).filter(|&i| cands[alloc[i].0].broken > 0.0).collect();
    let mut total = 0.0;
    for survive in 0..1usize << risky.len() {
        let mut p = 1.0;
        let mut tests = Vec::with_capacity(alloc.len());
        for (i, &(c, r)) in alloc.iter().enumerate() {
            let builds = match risky.iter().position(|&x| x == i) {
                Some(bit) => {
                    let ok = survive >> bit & 1 == 1;
                    p *= if ok { 1.0 - cands[c].broken } else { cands[c].broken };
                    ok
                }
                None => true,
            };
            if builds {
                tests.push((c, r));
            }
        }
        if p > 0.0 {
            total += p * pat.information(&tests);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::Target;
    use crate::search::bayes::Model;
    use crate::search::sim::wallclock::{trial, Clocked, Schedule};
    use crate::search::sim::{History, Rng, Setting, TARGET_TITLE};

    fn line(seed: u64, build: f64, run: f64, p: f64) -> History {
        let s = Setting::wallclock(300, p, build, run);
        History::generate(&s, &mut Rng::new(seed))
    }

    fn parallel(build_slots: u32) -> Schedule {
        Schedule::Parallel {
            run_slots: 10,
            build_slots,
        }
    }

    #[test]
    fn the_lookahead_goes_deeper_only_on_a_farm() {
        let levels: Vec<u32> = [1, 2, 4, 7, 8, 16, 64].map(lookahead_levels).to_vec();
        assert_eq!(levels, [2, 2, 2, 2, 3, 4, 4]);
    }

    #[test]
    fn sets_are_chosen_when_two_kernels_tell_more_per_second() {
        let h = line(1, 300.0, 60.0, 1.0);
        let model = Model::default();
        let s = Search::new(&model, Target::new([TARGET_TITLE]), &h.graph, Direction::Cause);
        let post = s.posterior();
        // Two build slots: two kernels cost one build time and one wave.
        let two = Clocked::new(&h, parallel(2), 1);
        let Action::Set(set) = s.choose(&two, &post) else {
            panic!("no set: {:?}", s.choose(&two, &post))
        };
        assert_eq!(set.len(), 2, "{set:?}");
        let (a, b) = (set[0].0.min(set[1].0), set[0].0.max(set[1].0));
        assert!(b - a > 30, "two regions of the range: {set:?}");
        assert!(set.iter().map(|(_, r)| r).sum::<u32>() <= 10, "one wave: {set:?}");
        // One build slot: the second build would double the wait.
        let one = Clocked::new(&h, parallel(1), 1);
        assert!(matches!(s.choose(&one, &post), Action::Test(..)));
        // One run slot: today's choice.
        let seq = Clocked::new(&h, Schedule::Sequential, 1);
        assert_eq!(s.choose(&seq, &post), s.next(&seq, &post));
    }

    #[test]
    fn the_wish_list_holds_the_next_choice_under_each_outcome() {
        let h = line(2, 600.0, 300.0, 1.0);
        let model = Model::default();
        let s = Search::new(&model, Target::new([TARGET_TITLE]), &h.graph, Direction::Cause);
        let post = s.posterior();
        let oracle = Clocked::new(&h, parallel(2), 2);
        let action = s.choose(&oracle, &post);
        let tests = tests_of(&action);
        let wanted = s.lookahead(&oracle, &post, &action);
        assert_eq!(wanted[..tests.len()], tests.iter().map(|t| t.0).collect::<Vec<_>>()[..]);
        let outcomes = s.likely_outcomes(&post, &tests);
        assert!(outcomes.len() >= 2, "{outcomes:?}");
        for (_, y) in outcomes.iter().take(2) {
            let mut then = s.clone();
            then.imagine(&tests, *y);
            let p2 = then.posterior();
            for (t, _) in then.would_test(&oracle, &p2) {
                assert!(wanted.contains(&t), "outcome {y}: {t} not in {wanted:?}");
            }
        }
    }

    #[test]
    fn prefetch_builds_what_the_search_then_asks_for() {
        let model = Model::default();
        let (mut hits, mut asked) = (0, 0);
        for seed in 0..10 {
            let h = line(seed, 600.0, 300.0, 1.0);
            let t = trial(&h, &model, parallel(2), seed);
            assert!(t.right, "seed {seed}: {t:?}");
            hits += t.hits;
            asked += t.asked;
        }
        // The first build of a bisection cannot be guessed; most others are.
        assert!(hits * 2 >= asked, "{hits} of {asked} builds were ready or under way");
    }
}
