//! Turning pooled test runs into a verdict. Runs are kept as evidence, never
//! folded into a bit: the verdict is recomputed from all of them each time.

use serde::Serialize;

use crate::store::{Outcome, RunRecord};

/// A bisection step's verdict: the log format's (one type for both).
pub use crate::syzlog::Verdict;

/// Counts of run outcomes on one (signature, test key).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Evidence {
    pub ok: u32,
    pub crash: u32,
    pub infra: u32,
    pub boot_failed: u32,
    pub skip: u32,
    /// Distinct crash titles, in order of first appearance.
    pub titles: Vec<String>,
}

impl Evidence {
    pub fn of(runs: &[RunRecord]) -> Evidence {
        let mut e = Evidence::default();
        for r in runs {
            match r.outcome {
                Outcome::Ok => e.ok += 1,
                Outcome::Crash => {
                    e.crash += 1;
                    if let Some(t) = &r.title {
                        if !e.titles.contains(t) {
                            e.titles.push(t.clone());
                        }
                    }
                }
                Outcome::Infra => e.infra += 1,
                Outcome::BootFailed => e.boot_failed += 1,
                Outcome::Skip => e.skip += 1,
            }
        }
        e
    }

    pub fn total(&self) -> u32 {
        self.ok + self.crash + self.infra + self.boot_failed + self.skip
    }

    /// Any crash is bad; no crash with at least half the runs ok is good;
    /// anything else (mostly infrastructure or boot trouble) is skip.
    /// `None` when there is no evidence at all.
    pub fn verdict(&self) -> Option<Verdict> {
        if self.total() == 0 {
            None
        } else if self.crash > 0 {
            Some(Verdict::Bad)
        } else if self.ok * 2 >= self.total() {
            Some(Verdict::Good)
        } else {
            Some(Verdict::Skip)
        }
    }

    /// Whether more runs could change the verdict (a crash is final).
    pub fn needs_more(&self, wanted: u32) -> bool {
        self.crash == 0 && self.total() < wanted
    }
}

/// The run count that shows a crash of a known rate (the simulator's
/// revert check uses it too, so it lives beside the run classes).
pub use crate::crash::{runs_to_see, MAX_RUNS, MIN_RUNS};

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ok: u32, crash: u32, infra: u32) -> Evidence {
        Evidence {
            ok,
            crash,
            infra,
            ..Default::default()
        }
    }

    #[test]
    fn verdict_rule() {
        assert_eq!(e(0, 0, 0).verdict(), None);
        assert_eq!(e(9, 1, 0).verdict(), Some(Verdict::Bad));
        assert_eq!(e(5, 0, 5).verdict(), Some(Verdict::Good));
        assert_eq!(e(4, 0, 6).verdict(), Some(Verdict::Skip));
        assert!(!e(1, 1, 0).needs_more(10));
        assert!(e(3, 0, 0).needs_more(10));
        assert!(!e(10, 0, 0).needs_more(10));
    }
}
