//! The record of a finished bisection (`kcache/bisection/v3`,
//! `cache-schema/bisection.v3.json`): what `kcache bisections` lists and
//! the HTML report renders. Self-contained on purpose: the culprit's
//! author and files, the pooled runs per kernel and the binary diff of the
//! culprit's kernel against its parent's are taken when the bisection
//! ends, so its report renders the same after artifacts are evicted or
//! the repository moved on.
//!
//! Invariant: describes a [`Summary`]; never changes a verdict, and a
//! detail it cannot get (an evicted artifact, a git error) becomes a
//! stated gap in the record, never a failed bisection.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Confirmation, Outcome, Policy, Purpose, Summary, Totals};
use crate::exec::{BuildSource, Verdict};
use crate::git::Repo;
use crate::key::{CommitId, TestKey};
use crate::signature::KernelSignature;
use crate::store::{BisectionId, Cache, Outcome as RunOutcome};

/// v2 added `steps[].run_times` (issue 24: what ran at once), v3 the
/// culprit's revert check (`confirmation`, issue 33); v1 and v2 records
/// read as v3 records without them.
pub const BISECTION_SCHEMA: &str = "kcache/bisection/v3";

/// Changed symbols listed per changed section in the report.
const SYMBOLS_PER_SECTION: usize = 12;

/// What was bisected and how: the part of the record the caller knows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Setup {
    pub repo: String,
    pub good: Vec<CommitId>,
    pub bad: CommitId,
    /// The build command (for kbuild: the installed recipe's command).
    pub build: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    pub test: String,
    pub test_key: TestKey,
    pub runs: u32,
    pub policy: Policy,
    pub first_parent: bool,
    /// A fix bisection (`--fix`): `bad` is the older, crashing end and the
    /// answer is the first fixed commit. Absent: a cause bisection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fix: bool,
    /// No `--good` was given: the good end was (or is to be) found over
    /// release tags matching this glob; `good` then holds the tag found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good_tags: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BisectionRecord {
    pub schema: String,
    pub id: BisectionId,
    pub time: u64,
    pub host: String,
    #[serde(flatten)]
    pub setup: Setup,
    pub outcome: OutcomeRow,
    pub totals: Totals,
    pub wall_seconds: f64,
    pub notes: Vec<String>,
    /// Commits in the range (`bad` and its ancestors not reachable from a
    /// good commit).
    pub range_commits: usize,
    pub steps: Vec<StepRow>,
    pub kernels: Vec<KernelRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culprit: Option<CulpritRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchRow>,
    /// The earlier bisection of the same range, recipe and test this one
    /// picked up from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumes: Option<BisectionId>,
    /// The culprit's revert (fix) check on the crashing end; absent: no
    /// culprit, the check off, or a record from before v3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutcomeRow {
    pub kind: OutcomeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CommitId>,
    /// One sentence for people.
    pub text: String,
}

/// What kind of answer a bisection gave (`kind` in the record).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Culprit,
    Stopped,
    Inconclusive,
    NoCulprit,
}

/// Where a step's kernel came from: [`BuildSource`], with a reuse of
/// another host's build told apart as `remote`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepBuild {
    Built,
    Reused,
    Remote,
    Predicted,
    Failed,
    KnownBroken,
    TransientFailure,
}

impl From<BuildSource> for StepBuild {
    fn from(b: BuildSource) -> StepBuild {
        match b {
            BuildSource::Built => StepBuild::Built,
            BuildSource::Reused => StepBuild::Reused,
            BuildSource::Predicted => StepBuild::Predicted,
            BuildSource::Failed => StepBuild::Failed,
            BuildSource::KnownBroken => StepBuild::KnownBroken,
            BuildSource::TransientFailure => StepBuild::TransientFailure,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRow {
    pub commit: CommitId,
    pub subject: String,
    /// `bisect`, or `signature-check` (built to compare with the culprit).
    pub purpose: Purpose,
    /// Index in the range, oldest first (`None`: outside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    pub build: StepBuild,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<KernelSignature>,
    pub verdict: Verdict,
    pub ok: u32,
    pub crash: u32,
    /// Infrastructure problems, boot failures, skipped runs.
    pub no_info: u32,
    pub titles: Vec<String>,
    pub runs_done: u32,
    pub runs_reused: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_from: Option<CommitId>,
    pub seconds: f64,
    /// When each run done in this step ran (the report's time line shows
    /// what ran at once); absent in v1 records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_times: Vec<RunTime>,
}

/// One run's start and end, in seconds since the Unix epoch (millisecond
/// precision): the end is when its record was made (its run id's
/// nanoseconds), the start that minus its `seconds`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RunTime {
    pub start: f64,
    pub end: f64,
}

impl RunTime {
    /// A run's time span from its record; `None` for a run id without
    /// kcache's time prefix (an imported run).
    pub fn of(run: &crate::store::RunRecord) -> Option<RunTime> {
        let nanos = u128::from_str_radix(run.run_id.split('-').next()?, 16).ok()?;
        let end = (nanos / 1_000_000) as f64 / 1000.0;
        let start = ((end - run.seconds) * 1000.0).round() / 1000.0;
        (nanos > 0).then_some(RunTime { start, end })
    }
}

/// One kernel (signature) and every run the cache pools on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KernelRow {
    pub signature: KernelSignature,
    /// The steps' commits with this kernel.
    pub commits: Vec<CommitId>,
    pub ok: u32,
    pub crash: u32,
    pub no_info: u32,
    pub titles: Vec<String>,
    /// Who produced the runs: host names (a team member's or a CI
    /// builder's), or the syzbot log they were imported from.
    pub sources: Vec<String>,
    /// The noisy search's posterior probability that the culprit is one
    /// of this kernel's commits (absent under `--policy classic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mass: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CulpritRow {
    pub commit: CommitId,
    pub subject: String,
    pub author: String,
    pub date: String,
    pub files: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<KernelSignature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<CommitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_signature: Option<KernelSignature>,
    /// Every parent but the first (a merge's other parents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_parents: Vec<CommitId>,
    /// A merge named because every parent was seen on the other side: the
    /// change comes from combining the branches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub combined: bool,
    /// The merges the culprit came in by, from the tip's first-parent line
    /// inwards (absent: it is on that line).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_by: Vec<super::MergeStep>,
    /// What differs between the parent's vmlinux and the culprit's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_diff: Option<Vec<SectionRow>>,
    /// Why there is no kernel diff, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_diff_missing: Option<String>,
    /// The crash report of a run on the culprit's kernel, from its kept
    /// console (`crate::title::excerpt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oops: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SectionRow {
    pub name: String,
    /// `changed`, `added` or `removed`.
    pub change: String,
    pub size_parent: Option<u64>,
    pub size_culprit: Option<u64>,
    /// `name (change, parent size -> culprit size)` per changed symbol.
    pub symbols: Vec<String>,
    pub symbols_omitted: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchRow {
    pub target: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    pub credible_set: Vec<CommitId>,
}

impl BisectionRecord {
    /// Said when a new bisection picks up from this one.
    pub fn resume_line(&self) -> String {
        format!(
            "resuming bisection {} of {} ({} steps, {}): its kernels and runs are in the cache",
            self.id,
            crate::utc(self.time),
            self.totals.steps,
            self.outcome.text
        )
    }

    /// Describes `summary`; `started` is when the bisection began.
    pub fn new(repo: &Repo, cache: &Cache, setup: Setup, summary: &Summary, started: u64) -> BisectionRecord {
        let positions = range_positions(repo, &setup);
        let steps: Vec<StepRow> = summary.steps.iter().map(|s| step_row(s, &positions, cache)).collect();
        let mut kernels = kernel_rows(cache, &setup.test_key, &steps);
        for row in &mut kernels {
            row.mass = summary
                .search
                .iter()
                .flat_map(|s| &s.kernels)
                .find(|k| k.signature == row.signature)
                .map(|k| k.mass);
        }
        let culprit = match &summary.outcome {
            Outcome::Culprit {
                commit,
                subject,
                signature,
                parents,
                combined,
                merged_by,
            } => Some(CulpritRow {
                combined: *combined,
                merged_by: merged_by.clone(),
                ..culprit_row(repo, cache, summary, commit, subject, signature, parents)
            }),
            _ => None,
        };
        BisectionRecord {
            schema: BISECTION_SCHEMA.to_string(),
            id: BisectionId::new(started),
            time: started,
            host: crate::store::host(),
            setup,
            outcome: outcome_row(&summary.outcome, summary.direction),
            totals: summary.totals.clone(),
            wall_seconds: summary.wall_seconds,
            notes: summary
                .notes
                .iter()
                .cloned()
                .chain(crate::warnings().into_iter().filter(|w| !summary.notes.contains(w)))
                .collect(),
            range_commits: positions.len(),
            steps,
            kernels,
            culprit,
            search: summary.search.as_ref().map(|s| SearchRow {
                target: s.target.clone(),
                probability: s.probability,
                credible_set: s.credible_set.clone(),
            }),
            resumes: None,
            confirmation: summary.confirmation.clone(),
        }
    }

    /// Whether `other` bisected the same range with the same recipe and test.
    /// A bisection without `--good` asks the same as an earlier one that
    /// walked back over the same tags (the tag it found is the good end the
    /// new walk will find again, from the cache).
    pub fn same_question(&self, other: &Setup) -> bool {
        let s = &self.setup;
        let same_good = if other.good.is_empty() && other.good_tags.is_some() {
            s.good_tags == other.good_tags
        } else {
            s.good == other.good
        };
        s.repo == other.repo
            && s.bad == other.bad
            && same_good
            && s.build == other.build
            && s.config == other.config
            && s.test_key == other.test_key
            && s.fix == other.fix
    }
}

impl Setup {
    /// What is being bisected: the options' revisions resolved to commits.
    pub fn new(
        repo: &Repo,
        opts: &super::Options,
        evaluator: &crate::exec::CommitEvaluator,
        policy: Policy,
    ) -> Result<Setup, crate::git::GitError> {
        let recipe = evaluator.recipe();
        let good = opts
            .goods
            .iter()
            .map(|g| repo.commit_id(g))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Setup {
            repo: repo_label(repo.dir()),
            good,
            bad: repo.commit_id(&opts.bad)?,
            build: recipe.build.clone(),
            config: recipe.config.as_ref().map(|c| c.display().to_string()),
            test: recipe.test.clone(),
            test_key: evaluator.test_key(),
            runs: recipe.runs,
            policy,
            first_parent: opts.first_parent,
            fix: opts.direction == crate::search::graph::Direction::Fix,
            good_tags: opts.goods.is_empty().then(|| opts.good_tags.clone()),
        })
    }
}

/// The newest recorded bisection that asked the same question as `setup`.
pub fn earlier(cache: &Cache, setup: &Setup) -> Option<BisectionRecord> {
    let all: Vec<(BisectionId, BisectionRecord)> = cache.bisections().ok()?;
    all.into_iter().map(|(_, r)| r).find(|r| r.same_question(setup))
}

/// Describes and keeps a finished bisection; a record that cannot be
/// written is said, and the bisection's result stands.
pub fn keep(
    repo: &Repo,
    cache: &Cache,
    setup: Setup,
    summary: &Summary,
    started: u64,
    resumes: Option<BisectionId>,
) -> BisectionRecord {
    let mut record = BisectionRecord::new(repo, cache, setup, summary, started);
    record.resumes = resumes;
    if let Err(e) = cache.put_bisection(&record.id, &record) {
        crate::warn(&format!("the record of this bisection was not kept: {e}"));
    }
    record
}

/// The recorded bisection whose id starts with `prefix` (ids are unique
/// by prefix, as git's commit ids).
pub fn find(cache: &Cache, prefix: &str) -> Result<BisectionRecord, FindError> {
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(FindError::Malformed(prefix.to_string()));
    }
    let all: Vec<(BisectionId, BisectionRecord)> = cache.bisections().map_err(FindError::Store)?;
    let mut hits: Vec<BisectionRecord> = all
        .into_iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .map(|(_, r)| r)
        .collect();
    match hits.len() {
        0 => Err(FindError::Missing(prefix.to_string())),
        1 => Ok(hits.remove(0)),
        n => Err(FindError::Ambiguous(prefix.to_string(), n)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("no recorded bisection has an id starting with {0} (`kcache bisections` lists them)")]
    Missing(String),
    #[error("{1} recorded bisections have ids starting with {0}: give more of the id")]
    Ambiguous(String, usize),
    #[error("{0:?} is not a bisection id (digits, a dash and hex digits, e.g. 1795494183-a1b2c3)")]
    Malformed(String),
    #[error(transparent)]
    Store(crate::store::StoreError),
}

/// One bisection in `kcache bisections --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed<'a> {
    pub id: &'a str,
    pub time: u64,
    pub repo: &'a str,
    pub good: &'a [CommitId],
    pub bad: &'a CommitId,
    pub outcome: &'a OutcomeRow,
    pub totals: &'a Totals,
    pub wall_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<&'a Confirmation>,
}

/// `kcache bisections --json`: every recorded bisection, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Listing<'a> {
    pub schema: &'static str,
    pub bisections: Vec<Listed<'a>>,
}

impl<'a> Listing<'a> {
    pub fn of(records: &'a [BisectionRecord]) -> Listing<'a> {
        Listing {
            schema: "kcache/bisections/v1",
            bisections: records.iter().map(BisectionRecord::listed).collect(),
        }
    }
}

impl BisectionRecord {
    pub fn listed(&self) -> Listed<'_> {
        Listed {
            id: &self.id,
            time: self.time,
            repo: &self.setup.repo,
            good: &self.setup.good,
            bad: &self.setup.bad,
            outcome: &self.outcome,
            totals: &self.totals,
            wall_seconds: self.wall_seconds,
            confirmation: self.confirmation.as_ref(),
        }
    }
}

/// Each commit of the range and its index, oldest first.
fn range_positions(repo: &Repo, setup: &Setup) -> HashMap<CommitId, usize> {
    // A fix bisection's range runs from the bad (older) end to the good one.
    let (tip, ends): (&CommitId, Vec<&CommitId>) = match setup.fix {
        false => (&setup.bad, setup.good.iter().collect()),
        true => (setup.good.first().unwrap_or(&setup.bad), vec![&setup.bad]),
    };
    let ends: Vec<CommitId> = ends.into_iter().cloned().collect();
    let graph = repo.range_graph(tip, &ends, setup.first_parent).unwrap_or_default();
    let mut positions: HashMap<CommitId, usize> = HashMap::new();
    let in_range = graph.commits.iter().zip(&graph.in_range).filter(|(_, r)| **r);
    for (i, (c, _)) in in_range.enumerate() {
        positions.insert(c.clone(), i + 1);
    }
    // The base ends sit before the range (position 0).
    for g in &ends {
        positions.entry(g.clone()).or_insert(0);
    }
    positions
}

fn step_row(s: &super::Step, positions: &HashMap<CommitId, usize>, cache: &Cache) -> StepRow {
    let e = &s.eval;
    let build = match e.build {
        BuildSource::Reused if from_elsewhere(cache, e) => StepBuild::Remote,
        other => other.into(),
    };
    StepRow {
        commit: s.commit.clone(),
        subject: s.subject.clone(),
        purpose: s.purpose,
        position: positions.get(&s.commit).copied(),
        build,
        signature: e.signature.clone(),
        verdict: e.verdict,
        ok: e.evidence.ok,
        crash: e.evidence.crash,
        no_info: e.evidence.infra + e.evidence.boot_failed + e.evidence.skip,
        titles: e.evidence.titles.clone(),
        runs_done: e.effort.runs_done,
        runs_reused: e.effort.runs_reused,
        predicted_from: e.predicted_from.clone(),
        seconds: e.effort.build_seconds + e.effort.test_seconds,
        // The runs done in this step are the last `runs_done` of its runs
        // (pooled ones come first).
        run_times: e.runs[e.runs.len().saturating_sub(e.effort.runs_done as usize)..]
            .iter()
            .filter_map(RunTime::of)
            .collect(),
    }
}

/// A reused build made by another host (a team member through the
/// remote, or another machine sharing the cache directory).
fn from_elsewhere(cache: &Cache, e: &crate::exec::Evaluation) -> bool {
    let key = e.reference_key.unwrap_or(e.build_key);
    matches!(cache.view(|v| v.build(&key)), Ok(Some(b)) if b.host != crate::store::host())
}

fn kernel_rows(cache: &Cache, test_key: &TestKey, steps: &[StepRow]) -> Vec<KernelRow> {
    let mut rows: Vec<KernelRow> = Vec::new();
    for s in steps {
        let Some(sig) = &s.signature else { continue };
        if let Some(row) = rows.iter_mut().find(|r| &r.signature == sig) {
            if !row.commits.contains(&s.commit) {
                row.commits.push(s.commit.clone());
            }
            continue;
        }
        let runs = cache.view(|v| v.runs(sig, test_key)).unwrap_or_default();
        let mut row = KernelRow {
            signature: sig.clone(),
            commits: vec![s.commit.clone()],
            ok: 0,
            crash: 0,
            no_info: 0,
            titles: Vec::new(),
            sources: Vec::new(),
            mass: None,
        };
        for r in &runs {
            match r.outcome {
                RunOutcome::Ok => row.ok += 1,
                RunOutcome::Crash => row.crash += 1,
                _ => row.no_info += 1,
            }
            if let Some(t) = r.title.as_ref().filter(|t| !row.titles.contains(t)) {
                row.titles.push(t.clone());
            }
            let source = r.source.clone().unwrap_or_else(|| r.host.clone());
            if !row.sources.contains(&source) {
                row.sources.push(source);
            }
        }
        rows.push(row);
    }
    rows
}

fn outcome_row(outcome: &Outcome, direction: crate::search::graph::Direction) -> OutcomeRow {
    let first = match direction {
        crate::search::graph::Direction::Cause => "first bad commit",
        crate::search::graph::Direction::Fix => "first fixed commit",
    };
    match outcome {
        Outcome::Culprit {
            commit,
            subject,
            combined,
            merged_by,
            ..
        } => OutcomeRow {
            kind: OutcomeKind::Culprit,
            commit: Some(commit.clone()),
            candidates: Vec::new(),
            text: format!(
                "the {first} is {} (\"{subject}\"){}{}",
                commit.short(),
                if *combined {
                    ", a merge whose every parent is on the other side: the change comes from combining the branches"
                } else {
                    ""
                },
                super::merged_by_words(merged_by)
            ),
        },
        Outcome::Stopped { reason } => OutcomeRow {
            kind: OutcomeKind::Stopped,
            commit: None,
            candidates: Vec::new(),
            text: format!("stopped: {reason}"),
        },
        Outcome::Inconclusive { candidates } => OutcomeRow {
            kind: OutcomeKind::Inconclusive,
            commit: None,
            candidates: candidates.clone(),
            text: format!(
                "inconclusive: the {first} is one of {} commits that could not be told apart",
                candidates.len()
            ),
        },
        Outcome::NoBoundary { reason } => OutcomeRow {
            kind: OutcomeKind::NoCulprit,
            commit: None,
            candidates: Vec::new(),
            text: format!("no culprit: {reason}"),
        },
    }
}

fn culprit_row(
    repo: &Repo,
    cache: &Cache,
    summary: &Summary,
    commit: &CommitId,
    subject: &str,
    signature: &Option<KernelSignature>,
    parents: &[(CommitId, Option<KernelSignature>)],
) -> CulpritRow {
    let header = repo
        .run(&["show", "-s", "--format=%an <%ae>%n%aD", commit.as_str()])
        .unwrap_or_default();
    let mut header = header.lines();
    let files = repo
        .run(&[
            "diff-tree",
            "--no-commit-id",
            "--name-only",
            "-r",
            "--root",
            commit.as_str(),
        ])
        .unwrap_or_default();
    let (parent, parent_signature) = parents.first().cloned().unzip();
    let other_parents = parents.iter().skip(1).map(|(p, _)| p.clone()).collect();
    let (kernel_diff, kernel_diff_missing) = match kernel_diff(cache, summary, commit, parent.as_ref()) {
        Ok(d) => (Some(d), None),
        Err(why) => (None, Some(why)),
    };
    CulpritRow {
        commit: commit.clone(),
        subject: subject.to_string(),
        author: header.next().unwrap_or_default().to_string(),
        date: header.next().unwrap_or_default().to_string(),
        files: files.lines().map(str::to_string).collect(),
        signature: signature.clone(),
        parent,
        parent_signature: parent_signature.flatten(),
        other_parents,
        combined: false,
        merged_by: Vec::new(),
        kernel_diff,
        kernel_diff_missing,
        oops: signature.as_ref().and_then(|s| culprit_oops(cache, s)),
    }
}

/// The first crash report found in the kept consoles of the crashing runs
/// on the culprit's kernel.
fn culprit_oops(cache: &Cache, signature: &KernelSignature) -> Option<String> {
    let runs = cache.view(|v| v.runs_by_test_key(signature)).ok()?;
    runs.values()
        .flatten()
        .filter(|r| r.outcome == RunOutcome::Crash && r.log_blob.is_some())
        .find_map(|r| crate::title::excerpt(&cache.console_of(r)?, 80))
}

/// The sections and symbols that differ between the parent's and the
/// culprit's stored vmlinux.
fn kernel_diff(
    cache: &Cache,
    summary: &Summary,
    culprit: &CommitId,
    parent: Option<&CommitId>,
) -> Result<Vec<SectionRow>, String> {
    let parent = parent.ok_or("the culprit has no parent")?;
    let dir = tempfile::tempdir_in(cache.dir()).map_err(|e| e.to_string())?;
    let vmlinux_of = |commit: &CommitId, sub: &str| -> Result<std::path::PathBuf, String> {
        let step = summary
            .steps
            .iter()
            .find(|s| &s.commit == commit && s.eval.signature.is_some())
            .ok_or_else(|| format!("{} was not built in this bisection", commit.short()))?;
        let key = step.eval.reference_key.unwrap_or(step.eval.build_key);
        let record = cache
            .build(&key)
            .ok()
            .flatten()
            .ok_or_else(|| format!("the build record of {} is gone", commit.short()))?;
        let restored = cache
            .restore(&record.artifacts, &dir.path().join(sub))
            .map_err(|e| format!("the artifacts of {} cannot be restored: {e}", commit.short()))?;
        restored
            .into_iter()
            .next()
            .ok_or_else(|| format!("the build of {} kept no artifact", commit.short()))
    };
    let (a, b) = (vmlinux_of(parent, "parent")?, vmlinux_of(culprit, "culprit")?);
    let report = crate::signature::diff_files(&a, &b, Some(SYMBOLS_PER_SECTION)).map_err(|e| e.to_string())?;
    Ok(report.sections.iter().map(section_row).collect())
}

fn section_row(s: &crate::signature::SectionChange) -> SectionRow {
    let size = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    SectionRow {
        name: s.name.clone(),
        change: crate::serde_word(&s.change),
        size_parent: s.size_a,
        size_culprit: s.size_b,
        symbols: s
            .symbols
            .iter()
            .map(|y| {
                format!(
                    "{} ({}, {} -> {} bytes)",
                    y.name,
                    crate::serde_word(&y.change),
                    size(y.size_a),
                    size(y.size_b)
                )
            })
            .collect(),
        symbols_omitted: s.symbols_omitted,
    }
}

/// The repository path as recorded (absolute when it can be).
pub fn repo_label(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}
