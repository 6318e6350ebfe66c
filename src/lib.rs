//! kcache: a content-addressed build cache and bisect accelerator for Linux
//! kernel bisection.
//!
//! # Code map
//!
//! | module        | concept |
//! |---------------|---------|
//! | [`signature`] | syzkaller-compatible kernel signatures of ELF files; `diff` explains why two differ |
//! | [`report`]    | text renderings of results (JSON is each result's own `Serialize`) |
//!
//! # Layering
//!
//! `signature` depends on nothing else in the crate. The CLI (`src/main.rs`)
//! only parses arguments, calls the library and prints; it holds no logic.

pub mod report;
pub mod signature;
pub mod syzlog;
