//! A Job object as the API server returns it, read as a [`JobReport`].
//!
//! The Job's terminal conditions decide: `Complete` (or, since 1.31,
//! `SuccessCriteriaMet`, set before the last pods are gone) is success;
//! `Failed` (or `FailureTarget`, its forerunner) is failure with the
//! controller's reason (`BackoffLimitExceeded`, `DeadlineExceeded`,
//! `FailedIndexes`, `PodFailurePolicy`). Without one, a Job is running
//! once a pod is ready or has finished, else queued (pods unscheduled,
//! pulling their image, or not created yet; also a suspended Job).
//!
//! Invariant: reads only; a Job with no status yet is queued, never an
//! error.

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};

use super::{JobName, JobReport, JobState, KubernetesError, ANNOTATION_STEP};
use crate::key::Key;

/// What `job` says, in the engine-neutral words.
pub fn report(job: &Job) -> Result<JobReport, KubernetesError> {
    let name = JobName::from_api(job.metadata.name.as_deref().unwrap_or_default());
    let unreadable = |problem: String| KubernetesError::Unreadable {
        name: name.clone(),
        problem,
    };
    if name.as_str().is_empty() {
        return Err(unreadable("no metadata.name".to_string()));
    }
    let step = match job.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_STEP)) {
        Some(hex) => Some(
            Key::from_hex(hex)
                .ok_or_else(|| unreadable(format!("annotation {ANNOTATION_STEP} is not a 64-hex hash: {hex:?}")))?,
        ),
        None => None,
    };
    let status = job.status.clone().unwrap_or_default();
    let count = |n: Option<i32>| n.map_or(0, |n| u32::try_from(n).unwrap_or(0));
    let indexes = |set: &Option<String>, field: &str| {
        index_set(set.as_deref().unwrap_or_default()).map_err(|p| unreadable(format!("status.{field}: {p}")))
    };
    Ok(JobReport {
        state: state(&status),
        step,
        active: count(status.active),
        ready: count(status.ready),
        succeeded: count(status.succeeded),
        failed: count(status.failed),
        completed_indexes: indexes(&status.completed_indexes, "completedIndexes")?,
        failed_indexes: indexes(&status.failed_indexes, "failedIndexes")?,
        name,
    })
}

fn state(status: &JobStatus) -> JobState {
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let holds = |kind: &str| conditions.iter().find(|c| c.type_ == kind && c.status == "True");
    if let Some(c) = holds("Failed").or_else(|| holds("FailureTarget")) {
        return JobState::Failed { reason: reason(c) };
    }
    if holds("Complete").or_else(|| holds("SuccessCriteriaMet")).is_some() {
        return JobState::Succeeded;
    }
    let started = status.ready.unwrap_or(0) > 0 || status.succeeded.unwrap_or(0) > 0 || status.failed.unwrap_or(0) > 0;
    if holds("Suspended").is_none() && started {
        JobState::Running
    } else {
        JobState::Queued
    }
}

/// `Reason: message`, as the controller wrote them.
fn reason(c: &JobCondition) -> String {
    let word = c.reason.as_deref().filter(|r| !r.is_empty()).unwrap_or(&c.type_);
    match c.message.as_deref().filter(|m| !m.is_empty()) {
        Some(message) => format!("{word}: {message}"),
        None => word.to_string(),
    }
}

/// The indexes of an Indexed Job's `completedIndexes` / `failedIndexes`:
/// `1,3-5,7` is 1, 3, 4, 5, 7 (the API's compressed form, ascending).
pub fn index_set(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("{part:?} is not an index or a range"))
        };
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(part)?, number(part)?),
        };
        if first > last {
            return Err(format!("range {part:?} runs backwards"));
        }
        out.extend(first..=last);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::index_set;

    #[test]
    fn index_sets_read_the_api_compressed_form() {
        assert_eq!(index_set(""), Ok(vec![]));
        assert_eq!(index_set("0"), Ok(vec![0]));
        assert_eq!(index_set("1,3-5,7"), Ok(vec![1, 3, 4, 5, 7]));
        assert!(index_set("3-1").unwrap_err().contains("backwards"));
        assert!(index_set("a").unwrap_err().contains("\"a\""));
    }
}
