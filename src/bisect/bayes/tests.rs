//! Unit tests of the posterior, the choice of action and the line case.

use super::posterior::Search;
use super::*;

fn line_search_with(kernels: &[(usize, &str)], counts: &[(&str, u32, u32)], len: usize) -> Posterior {
    let mut ks = vec![Kernel::Unknown; len];
    for (i, sig) in kernels {
        ks[*i] = Kernel::Signed(sig.to_string());
    }
    let evidence: Vec<(String, ClassCounts)> = counts
        .iter()
        .map(|(sig, m, o)| {
            (
                sig.to_string(),
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
    s.set_kernel(5, Kernel::Signed("a".into()));
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
