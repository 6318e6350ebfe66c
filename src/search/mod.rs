//! The search model: the commit DAG of a range ([`graph`]), the noisy
//! posterior search over it ([`bayes`]) and the simulator that tests and
//! tunes it ([`sim`]: simulated lines and DAGs, flaky runs, a wall clock).
//!
//! Invariant: pure, no I/O. Nothing here reads a file, runs a command or
//! touches the cache: it depends only on value types (`crash`'s targets
//! and run classes, `signature`'s `KernelSignature`, `key`'s ids), never on
//! `store`, `git`, `child`, `vm`, `kernel`, `exec` or `bisect`. The drivers
//! in `bisect` feed it verdicts through its `Oracle` trait.

pub mod bayes;
pub mod graph;
pub mod sim;
