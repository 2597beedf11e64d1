//! Where galleries live: named blobs, mutated by atomic [`ChangeSet`]s.
//!
//! - [`MemoryStore`]: a map in memory (tests, ephemeral galleries);
//! - [`FsStore`] (native only): a directory, one file per blob, committed by
//!   writing the manifest last with write-temp-then-rename;
//! - `idb::IdbStore` (wasm32 only): IndexedDB, used by the JS bindings.

pub mod fault;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod fault_tests;
#[cfg(not(target_arch = "wasm32"))]
pub mod fs;
#[cfg(target_arch = "wasm32")]
pub mod idb;
pub mod memory;

pub use crate::blob::{BlobRead, ChangeSet};
pub use fault::{FaultKind, Faults};
#[cfg(not(target_arch = "wasm32"))]
pub use fs::FsStore;
pub use memory::MemoryStore;

use crate::Result;

/// A store that can apply change sets: all of a change set or none of it.
pub trait BlobStore: BlobRead {
    /// Applies `changes` atomically: after an error the store still holds its
    /// previous state.
    fn apply(&mut self, changes: ChangeSet) -> Result<()>;
}
