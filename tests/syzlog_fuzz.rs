//! Property tests: the parser never panics, whatever it is fed.

use proptest::prelude::*;

const FRAGMENTS: &[&str] = &[
    "bisecting cause commit starting from 434ed21389948a45c238f63258bd5aae4237e20b",
    "testing commit 434ed21389948a45c238f63258bd5aae4237e20b",
    "testing commit 434ed21389948a45c238f63258bd5aae4237e20b with gcc (GCC) 8.1.0",
    "testing release v5.15",
    "compiler: gcc (GCC) 10.2.1 20210217",
    "kernel signature: bfabc899c81353ac6de2387929cdd1037e264ad2ba1e992367460822f74d6123",
    "run #0: OK",
    "run #1: crashed: WARNING in x",
    "run #2: failed: broken console",
    "all runs: boot failed: can't ssh",
    "# git bisect bad 434ed21389948a45c238f63258bd5aae4237e20b",
    "434ed21389948a45c238f63258bd5aae4237e20b is the first bad commit",
    "commit 434ed21389948a45c238f63258bd5aae4237e20b",
    "Merge: a b",
    "    message",
    " net/x.c | 8 +++",
    " 1 file changed, 1 insertion(+)",
    "culprit signature: ab",
    "parent  signature: ab",
    "revisions tested: 16, total time: 3h1m2.5s (build: 1h, test: 1m)",
    "revisions tested: 99999999999999999999",
    "bisection is inconclusive, the first bad commit could be any of:",
    "parent commit 434ed21389948a45c238f63258bd5aae4237e20b wasn't tested",
    "first bad commit: 434ed21389948a45c238f63258bd5aae4237e20b title",
    "crash: WARNING in x",
    "error: too long",
    "",
    "[434ed21389948a45c238f63258bd5aae4237e20b] title",
    "# git bisect good 434ed21389948a45c238f63258bd5aae4237e20b",
    "# git bisect skip 434ed21389948a45c238f63258bd5aae4237e20b",
    "testing commit 534ed21389948a45c238f63258bd5aae4237e20b",
    "Bisecting: 7 revisions left to test after this (roughly 3 steps)",
    "Bisecting: 0 revisions left to test after this (roughly 0 steps)",
    "run #3: crashed: WARNING in y",
    "all runs: OK",
    "kernel signature:   ab",
    "previous signature: ab",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = kcache::syzlog::parse(&bytes);
    }

    #[test]
    fn shuffled_log_lines_never_panic(picks in proptest::collection::vec((0..FRAGMENTS.len(), ".{0,12}"), 0..200)) {
        let text: String = picks.iter().map(|(i, tail)| format!("{}{}\n", FRAGMENTS[*i], tail)).collect();
        if let Ok(log) = kcache::syzlog::parse(text.as_bytes()) {
            let a = kcache::syzlog::analyze(&log);
            prop_assert!(a.steps == log.steps.len());
            // The judge on any line syzbot could (or could not) have tested:
            // no panic, and probabilities that are probabilities.
            let judged = kcache::judge::analyze(&log);
            if let Some(c) = &judged.confidence {
                for p in c.probability.iter().chain(c.verdicts.iter().map(|v| &v.wrong)) {
                    prop_assert!((0.0..=1.0).contains(p), "{p}");
                }
            }
        }
    }
}
