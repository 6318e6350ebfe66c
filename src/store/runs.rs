//! Test runs: appended per kernel signature and test key, pooled from
//! the remote when the local tier does not settle the question. A run's
//! console (a zstd blob) travels with it: uploaded before its record,
//! fetched and verified when the run is pulled.

use super::index::{Read, CF_PENDING, CF_RUNS};
use super::{upload, Cache, Outcome, RunId, RunRecord, StoreError, RUN_SCHEMA};
use crate::key::TestKey;
use crate::signature;
use crate::signature::KernelSignature;

impl Cache {
    /// Appends one run. Run ids are unique, so this never overwrites.
    pub fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.record_runs(std::slice::from_ref(run))
    }

    pub fn record_runs(&self, runs: &[RunRecord]) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        if let Some(bad) = runs.iter().find(|r| !signature::is_signature(&r.signature)) {
            return Err(StoreError::BadSignature(bad.signature.to_string()));
        }
        let upload = self.writable_remote().is_some();
        let pending = self.write(|w| {
            let mut pending = Vec::new();
            for run in runs {
                let key = run_key(&run.signature, &run.test_key, &run.run_id);
                w.put(CF_RUNS, &key, run);
                if upload {
                    let p = upload::pending_run(&key);
                    w.put(CF_PENDING, &p, &0u8);
                    pending.push(p);
                }
            }
            Ok(pending)
        })?;
        self.upload_later(pending);
        Ok(())
    }

    /// Runs on a signature under a test key from both tiers: the remote is
    /// asked only when the local runs are fewer than `wanted` and show no
    /// crash. Remote runs are backfilled into the local index.
    pub fn runs_shared(
        &self,
        signature: &KernelSignature,
        test_key: &TestKey,
        wanted: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let runs = self.runs(signature, test_key)?;
        let settled = runs.iter().any(|r| r.outcome == Outcome::Crash) || runs.len() >= wanted as usize;
        if settled || self.pull_runs(signature, Some(test_key))? == 0 {
            return Ok(runs);
        }
        self.runs(signature, test_key)
    }

    /// Copies the remote's runs on `signature` (under one test key, or
    /// all) into the local index; returns how many were new.
    pub fn pull_runs(&self, signature: &KernelSignature, test_key: Option<&TestKey>) -> Result<usize, StoreError> {
        let Some(remote) = &self.remote else { return Ok(0) };
        let dir = match test_key {
            Some(k) => format!("runs/{signature}/{}", k.to_hex()),
            None => format!("runs/{signature}"),
        };
        let local: std::collections::HashSet<RunId> = self
            .index
            .read(|r| r.scan::<RunRecord>(CF_RUNS, &format!("{dir}/").replacen("runs/", "", 1)))?
            .into_iter()
            .map(|(_, r)| r.run_id)
            .collect();
        let fresh: Vec<RunRecord> = remote
            .records::<RunRecord>(&dir)
            .into_iter()
            .map(|f| {
                let writer = Some(f.writer_label());
                (f.stem, RunRecord { writer, ..f.record })
            })
            .filter(|(stem, r)| {
                let filed_right =
                    r.signature == *signature && test_key.is_none_or(|k| r.test_key == *k) && r.schema == RUN_SCHEMA;
                if !filed_right {
                    let holds = format!(
                        "a {} record of kernel {}",
                        r.schema,
                        crate::short_id(r.signature.as_str())
                    );
                    remote.misfiled(&dir, stem, &holds);
                }
                filed_right
            })
            .map(|(_, r)| r)
            .filter(|r| !local.contains(&r.run_id))
            .collect();
        let fresh = self.fetch_consoles(remote, fresh)?;
        if !fresh.is_empty() {
            self.write(|w| {
                for r in &fresh {
                    w.put(CF_RUNS, &run_key(&r.signature, &r.test_key, &r.run_id), r);
                }
                Ok(())
            })?;
        }
        Ok(fresh.len())
    }

    /// Fetches the console each pulled run names, verified against its
    /// hash (as any blob), before the run is recorded here: a kept run's
    /// console is then local, so `verify` checks it and the report shows
    /// it. A console the remote lacks or that does not verify is dropped
    /// from this cache's copy of the run (the run itself still counts); a
    /// run whose console could not be fetched because the remote went down
    /// is not recorded yet (the next pull takes it, console and all).
    fn fetch_consoles(&self, remote: &super::Remote, runs: Vec<RunRecord>) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::with_capacity(runs.len());
        for mut run in runs {
            if let Some(key) = run.log_blob {
                if !self.blobs.contains(&key) && !remote.fetch_blob(&key, &self.blobs)? {
                    if remote.is_down() {
                        continue;
                    }
                    run.log_blob = None;
                }
            }
            out.push(run);
        }
        Ok(out)
    }

    /// Keeps a run's console output (content-addressed, zstd): the
    /// key goes in the run's `log_blob`; `gc` counts and evicts it as any
    /// blob.
    pub fn put_console(&self, console: &[u8]) -> Result<crate::key::Key, StoreError> {
        Ok(self.blobs.put_bytes(console)?.key)
    }

    /// A run's kept console output, if any (evicted or never kept: `None`).
    pub fn console_of(&self, run: &RunRecord) -> Option<Vec<u8>> {
        run.log_blob.as_ref().and_then(|k| self.blobs.get_bytes(k).ok())
    }

    /// Every run on a signature under one test key, oldest first.
    pub fn runs(&self, signature: &KernelSignature, test_key: &TestKey) -> Result<Vec<RunRecord>, StoreError> {
        self.view(|v| v.runs(signature, test_key))
    }
}

pub fn run_key(signature: &KernelSignature, test_key: &TestKey, run_id: &RunId) -> String {
    format!("{signature}/{}/{run_id}", test_key.to_hex())
}
