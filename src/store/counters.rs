//! The hit/miss/time-saved counters of `kcache stats`, and the deltas a
//! process has counted but not yet written.
//!
//! Invariant: counting never touches the disk. Deltas ride along in the next
//! index batch the cache writes (the record they count), or are written
//! once when the last handle on the cache closes.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One counter. The name is what the index stores: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    BuildHits,
    BuildMisses,
    TestHits,
    TestMisses,
    SavedBuildMs,
    SavedTestMs,
    DeterminismConflicts,
    BuildsPredicted,
    PredictionContradictions,
    RemoteHits,
    RemoteMisses,
    RemoteErrors,
    RemoteBytesDown,
    RemoteBytesUp,
}

impl Counter {
    /// The counter's key in the index and its name in `kcache stats`.
    pub fn name(self) -> &'static str {
        match self {
            Counter::BuildHits => "build_hits",
            Counter::BuildMisses => "build_misses",
            Counter::TestHits => "test_hits",
            Counter::TestMisses => "test_misses",
            Counter::SavedBuildMs => "saved_build_ms",
            Counter::SavedTestMs => "saved_test_ms",
            Counter::DeterminismConflicts => "determinism_conflicts",
            Counter::BuildsPredicted => "builds_predicted",
            Counter::PredictionContradictions => "prediction_contradictions",
            Counter::RemoteHits => "remote_hits",
            Counter::RemoteMisses => "remote_misses",
            Counter::RemoteErrors => "remote_errors",
            Counter::RemoteBytesDown => "remote_bytes_down",
            Counter::RemoteBytesUp => "remote_bytes_up",
        }
    }
}

/// Deltas counted since the last index write.
#[derive(Debug, Default)]
pub(crate) struct Pending(Mutex<BTreeMap<Counter, i64>>);

impl Pending {
    pub(crate) fn add(&self, deltas: &[(Counter, i64)]) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for &(c, d) in deltas.iter().filter(|(_, d)| *d != 0) {
            *p.entry(c).or_default() += d;
        }
    }

    /// Everything counted so far; the caller writes it or gives it back.
    pub(crate) fn take(&self) -> Vec<(Counter, i64)> {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *p).into_iter().collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_add_up_and_are_taken_once() {
        let p = Pending::default();
        p.add(&[(Counter::BuildHits, 1), (Counter::SavedBuildMs, 0)]);
        p.add(&[(Counter::BuildHits, 2)]);
        assert_eq!(p.take(), vec![(Counter::BuildHits, 3)]);
        assert!(p.is_empty());
    }
}
