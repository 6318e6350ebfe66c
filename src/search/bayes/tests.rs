//! Unit tests of the posterior, the choice of action and the line case.

use super::posterior::Search;
use super::*;

/// Parents per node, written as slices.
fn dag(parents: &[&[usize]]) -> Vec<Vec<usize>> {
    parents.iter().map(|p| p.to_vec()).collect()
}

fn line_search_with(kernels: &[(usize, &str)], counts: &[(&str, u32, u32)], len: usize) -> Posterior {
    let mut ks = vec![Kernel::Unknown; len];
    for (i, sig) in kernels {
        ks[*i] = Kernel::labelled(sig);
    }
    let evidence: Vec<(KernelSignature, ClassCounts)> = counts
        .iter()
        .map(|(sig, m, o)| {
            (
                KernelSignature::of_label(sig),
                ClassCounts {
                    matched: *m,
                    ok: *o,
                    ..ClassCounts::default()
                },
            )
        })
        .collect();
    line_posterior(&Model::default(), &ks, &evidence)
}

#[test]
fn equal_kernels_can_never_hold_the_boundary() {
    // 0 good .. 10 bad; 3 and 7 share a kernel: 4..=7 impossible.
    let post = line_search_with(&[(3, "a"), (7, "a")], &[], 11);
    for k in 4..=7 {
        assert_eq!(post.mass[k], 0.0, "k={k}");
    }
    assert_eq!(post.mass[0], 0.0, "the good end is never the culprit");
    assert!(post.mass[3] > 0.0 && post.mass[8] > 0.0);
}

#[test]
fn a_match_moves_the_mass_left_and_oks_move_it_right() {
    let post = line_search_with(&[(5, "a")], &[("a", 1, 0)], 11);
    let left: f64 = post.mass[1..=5].iter().sum();
    assert!(left > 0.9, "{left}");
    let post = line_search_with(&[(5, "a")], &[("a", 0, 60)], 11);
    let right: f64 = post.mass[6..].iter().sum();
    assert!(right > 0.9, "{right}");
}

#[test]
fn other_crashes_and_no_info_do_not_move_the_boundary() {
    let model = Model::default();
    let graph = Graph::line(11);
    let mut s = Search::new(&model, Target::new(["BUG in f"]), &graph, Direction::Cause);
    s.set_kernel(5, Kernel::labelled("a"));
    let before = s.posterior().mass;
    s.record(0, &[RunClass::Other; 10]);
    s.record(0, &[RunClass::NoInfo; 5]);
    assert_eq!(s.posterior().mass, before);
}

#[test]
fn credible_set_and_information() {
    let post = line_search_with(&[], &[], 5);
    let (set, mass) = post.credible(0.95);
    assert_eq!(set.len(), 4);
    assert!(mass > 0.94);
    let model = Model::default();
    let graph = Graph::line(5);
    let s = Search::new(&model, Target::default(), &graph, Direction::Cause);
    let info: Vec<f64> = s.information(&post, [10, 5]).iter().map(|i| i[0]).collect();
    // Testing the middle tells most; the good endpoint tells least.
    assert!(info[2] >= info[1] && info[2] >= info[3], "{info:?}");
    assert!(info[0] < info[2]);
}

// ---- DAGs: the search over merges, with the simulator as the oracle ----

use crate::search::sim::{self, History};

/// A history on `parents` (node 0 the base; every other node in range),
/// kernel ids per node, the culprit, a perfect reproducer.
fn history(parents: Vec<Vec<usize>>, kernel: Vec<u32>, culprit: usize, direction: Direction, p: f64) -> History {
    let n = parents.len();
    let in_range = (0..n).map(|i| i > 0).collect();
    History {
        graph: Graph::new(parents, in_range).unwrap(),
        kernel,
        broken: vec![false; n],
        culprit,
        direction,
        p,
        e: 0.0,
        build_seconds: 600.0,
        run_seconds: 60.0,
    }
}

fn search_sim(h: &History, seed: u64) -> Outcome {
    let mut oracle = sim::SimOracle::new(h, seed);
    let target = Target::new([sim::TARGET_TITLE]);
    match search(&Model::default(), target, &h.graph, h.direction, &mut oracle) {
        Ok(o) => o,
        Err(never) => match never {},
    }
}

fn culprit_of(out: &Outcome) -> Option<(usize, bool)> {
    match out.ending {
        Ending::Culprit { index, merge, .. } => Some((index, merge)),
        _ => None,
    }
}

/// 0 base; mainline 1, 2; a branch 3, 4, 5 forked at 1; 6 merges it
/// (`--no-ff`); 7 on mainline.
fn merged_branch() -> Vec<Vec<usize>> {
    vec![vec![], vec![0], vec![1], vec![1], vec![3], vec![4], vec![2, 5], vec![6]]
}

#[test]
fn a_bug_brought_by_a_merged_branch_is_blamed_on_its_commit_not_the_merge() {
    for direction in [Direction::Cause, Direction::Fix] {
        for p in [1.0, 0.5] {
            for seed in 0..5 {
                let h = history(merged_branch(), (0..8).collect(), 4, direction, p);
                let out = search_sim(&h, seed);
                assert_eq!(
                    culprit_of(&out),
                    Some((4, false)),
                    "{direction:?} p {p} seed {seed}: {}",
                    out.ending
                );
            }
        }
    }
}

#[test]
fn criss_cross_merges() {
    // Branches A (2, 3) and B (4, 5) from 1; 6 = A merges B, 7 = B merges A;
    // mainline 8 merges 6, the tip 9 merges 7.
    let parents = dag(&[&[], &[0], &[1], &[2], &[1], &[4], &[3, 5], &[5, 3], &[1, 6], &[8, 7]]);
    for (culprit, seed) in [(4, 0), (3, 1), (5, 2), (2, 3)] {
        let h = history(parents.clone(), (0..10).collect(), culprit, Direction::Cause, 1.0);
        let out = search_sim(&h, seed);
        assert_eq!(
            culprit_of(&out),
            Some((culprit, false)),
            "culprit {culprit}: {}",
            out.ending
        );
    }
}

#[test]
fn a_merge_is_named_only_when_every_parent_was_seen_good() {
    // A (2, 3) and B (4, 5) from 1, each fine alone; 6 merges A, 7 merges
    // B: together they crash. 8 on top.
    let parents = dag(&[&[], &[0], &[1], &[2], &[1], &[4], &[1, 3], &[6, 5], &[7]]);
    for direction in [Direction::Cause, Direction::Fix] {
        let h = history(parents.clone(), (0..9).collect(), 7, direction, 1.0);
        let out = search_sim(&h, 3);
        assert_eq!(culprit_of(&out), Some((7, true)), "{direction:?}: {}", out.ending);
        assert!(
            out.ending.to_string().contains("combining the branches"),
            "{}",
            out.ending
        );
        // Every parent was built and seen on its side.
        for parent in [6, 5] {
            let k = out
                .kernels
                .iter()
                .find(|k| k.commits.contains(&parent))
                .expect("parent built");
            match direction {
                Direction::Cause => assert!(k.counts.matched == 0 && k.counts.ok >= 10, "{k:?}"),
                Direction::Fix => assert!(k.counts.matched > 0, "{k:?}"),
            }
        }
    }
}

#[test]
fn a_merge_or_commit_with_a_parents_kernel_is_never_blamed() {
    // The branch 2, 3 (from 1) changes nothing; 4 on mainline brings the
    // bug; 5 merges the branch and has 4's kernel; 6, a no-op on top.
    let parents = vec![vec![], vec![0], vec![1], vec![2], vec![1], vec![4, 3], vec![5]];
    let kernel = vec![0, 1, 1, 1, 4, 4, 4];
    for seed in 0..5 {
        let h = history(parents.clone(), kernel.clone(), 4, Direction::Cause, 1.0);
        let out = search_sim(&h, seed);
        assert_eq!(culprit_of(&out), Some((4, false)), "seed {seed}: {}", out.ending);
    }
    // The posterior: with 4 and 5 known equal, 5 is impossible; with 6 too, 6 is.
    let model = Model::default();
    let graph = Graph::new(parents, (0..7).map(|i| i > 0).collect()).unwrap();
    let mut s = Search::new(&model, Target::default(), &graph, Direction::Cause);
    for i in [4, 5, 6] {
        s.set_kernel(i, Kernel::labelled("k4"));
    }
    let post = s.posterior();
    assert_eq!((post.mass[5], post.mass[6]), (0.0, 0.0));
    assert!(post.mass[4] > 0.0);
}

#[test]
fn equal_kernels_on_two_branches_rule_out_what_only_one_has() {
    // Branches A (2, 3) and B (4, 5) forked at 1; 3 and 5 share a kernel:
    // the culprit is 1 or not an ancestor of either (not 2..=5).
    let parents = vec![vec![], vec![0], vec![1], vec![2], vec![1], vec![4], vec![3, 5]];
    let graph = Graph::new(parents, (0..7).map(|i| i > 0).collect()).unwrap();
    let model = Model::default();
    let mut s = Search::new(&model, Target::default(), &graph, Direction::Cause);
    s.set_kernel(3, Kernel::labelled("x"));
    s.set_kernel(5, Kernel::labelled("x"));
    let post = s.posterior();
    for k in 2..=5 {
        assert_eq!(post.mass[k], 0.0, "k={k}");
    }
    assert!(post.mass[1] > 0.0 && post.mass[6] > 0.0);
}

#[test]
fn a_fix_inside_a_branch_and_the_line_case() {
    let h = history(merged_branch(), (0..8).collect(), 5, Direction::Fix, 0.7);
    assert_eq!(culprit_of(&search_sim(&h, 1)), Some((5, false)));
    // On a line (what --first-parent gives), the fix is found too.
    let line: Vec<Vec<usize>> = (0..40).map(|i| if i == 0 { vec![] } else { vec![i - 1] }).collect();
    let h = history(line, (0..40).collect(), 23, Direction::Fix, 0.5);
    let out = search_sim(&h, 2);
    assert_eq!(culprit_of(&out), Some((23, false)), "{}", out.ending);
    assert!(out.ending.to_string().contains("first fixed commit"));
}
