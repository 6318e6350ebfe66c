//! Finished bisections, by id (`<unix seconds>-<hex>`, so the index's key
//! order is their time order). The store keeps them as it gets them: their
//! shape is `bisect::record`'s.
//!
//! Invariant: knows no field of a bisection record but its id.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::index::{Read, CF_BISECTIONS};
use super::{Cache, StoreError};

impl Cache {
    /// Keeps a finished bisection's record under `id`.
    pub fn put_bisection<T: Serialize>(&self, id: &str, record: &T) -> Result<(), StoreError> {
        self.write(|w| {
            w.put(CF_BISECTIONS, id, record);
            Ok(())
        })
    }

    /// Every recorded bisection, newest first.
    pub fn bisections<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, StoreError> {
        let mut all = self.index.read(|r| r.scan::<T>(CF_BISECTIONS, ""))?;
        all.reverse();
        Ok(all)
    }
}
