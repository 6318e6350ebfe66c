//! `kcache lookup`: what the cache knows about a build or a signature,
//! with per-test-key evidence and the verdict it gives.

use crate::signature::KernelSignature;
use serde::Serialize;

use super::evidence::{Evidence, Verdict};
use crate::crash::{ClassCounts, Target};
use crate::key::{BuildKey, TestKey};
use crate::store::{ArtifactState, BuildRecord, Cache, KnownSignature, SignatureRecord, StoreError, View};

#[derive(Debug, Clone, Serialize)]
pub struct TestEvidence {
    pub test_key: TestKey,
    pub runs: u32,
    pub evidence: Evidence,
    pub verdict: Option<Verdict>,
    /// Where imported runs came from (`syzbot-log:...`), if any.
    pub sources: Vec<String>,
    /// The runs classified against a target (`--crash-title`), as the noisy
    /// search sees them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassCounts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lookup {
    pub build: Option<BuildRecord>,
    pub signature: Option<KernelSignature>,
    pub artifacts: Vec<ArtifactState>,
    /// Every build key known to have produced the signature.
    pub builds: Vec<SignatureRecord>,
    /// Commits whose signature came from imported logs.
    pub known: Vec<KnownSignature>,
    pub tests: Vec<TestEvidence>,
}

impl Lookup {
    pub fn found(&self) -> bool {
        self.build.is_some() || !self.builds.is_empty() || !self.known.is_empty() || !self.tests.is_empty()
    }
}

pub fn by_build_key(cache: &Cache, key: &BuildKey, target: Option<&Target>) -> Result<Lookup, StoreError> {
    if cache.remote().is_some() {
        // Read through to the remote: the build, then every run on its kernel.
        if let Some(sig) = cache.build(key)?.and_then(|b| b.signature) {
            cache.pull_runs(&sig, None)?;
        }
    }
    cache.view(|v| {
        let build = v.build(key)?;
        match build.as_ref().and_then(|b| b.signature.clone()) {
            Some(sig) => {
                let mut l = signature_view(v, &sig, target)?;
                l.artifacts = v.artifact_states(&build.as_ref().map(|b| b.artifacts.clone()).unwrap_or_default())?;
                l.build = build;
                Ok(l)
            }
            None => Ok(Lookup {
                build,
                signature: None,
                artifacts: Vec::new(),
                builds: Vec::new(),
                known: Vec::new(),
                tests: Vec::new(),
            }),
        }
    })
}

pub fn by_signature(cache: &Cache, signature: &KernelSignature, target: Option<&Target>) -> Result<Lookup, StoreError> {
    cache.pull_runs(signature, None)?;
    cache.view(|v| signature_view(v, signature, target))
}

fn signature_view(v: &View, signature: &KernelSignature, target: Option<&Target>) -> Result<Lookup, StoreError> {
    let builds = v.builds_with_signature(signature)?;
    let artifacts = match builds.first() {
        Some(b) => v.artifact_states(&b.artifacts)?,
        None => Vec::new(),
    };
    let tests = v
        .runs_by_test_key(signature)?
        .into_iter()
        .map(|(test_key, runs)| {
            let evidence = Evidence::of(&runs);
            let mut sources: Vec<String> = runs.iter().filter_map(|r| r.source.clone()).collect();
            sources.sort();
            sources.dedup();
            TestEvidence {
                test_key,
                runs: runs.len() as u32,
                verdict: evidence.verdict(),
                evidence,
                sources,
                classes: target.map(|t| ClassCounts::of(t, &runs)),
            }
        })
        .collect();
    Ok(Lookup {
        build: None,
        signature: Some(signature.clone()),
        artifacts,
        builds,
        known: v.known_with_signature(signature)?,
        tests,
    })
}
