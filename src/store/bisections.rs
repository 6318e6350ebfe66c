//! Finished bisections, by id (`<unix seconds>-<hex>`, so the index's key
//! order is their time order). The store keeps them as it gets them: their
//! shape is `bisect::record`'s.
//!
//! Invariant: knows no field of a bisection record but its id.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::index::{Read, CF_BISECTIONS};
use super::{Cache, StoreError};

hex_string_id!(
    /// A bisection's id: `<unix seconds, 10 digits>-<6 hex>`, so ids sort
    /// by time and are unique per bisection.
    BisectionId
);

impl BisectionId {
    /// The id of a bisection that started at `started` (unix seconds).
    pub fn new(started: u64) -> BisectionId {
        let unique = super::RunId::fresh();
        BisectionId(format!("{started:010}-{}", &unique[unique.len() - 6..]))
    }
}

impl Cache {
    /// Keeps a finished bisection's record under `id`.
    pub fn put_bisection<T: Serialize>(&self, id: &BisectionId, record: &T) -> Result<(), StoreError> {
        self.write(|w| {
            w.put(CF_BISECTIONS, id, record);
            Ok(())
        })
    }

    /// Every recorded bisection, newest first.
    pub fn bisections<T: DeserializeOwned>(&self) -> Result<Vec<(BisectionId, T)>, StoreError> {
        let all = self.index.read(|r| r.scan::<T>(CF_BISECTIONS, ""))?;
        Ok(all.into_iter().rev().map(|(id, r)| (BisectionId(id), r)).collect())
    }
}
