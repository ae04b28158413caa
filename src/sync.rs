//! The atomics and cells every concurrent protocol in hotpool uses.
//!
//! Under `--cfg loom` these are loom's model-checked types, so the same
//! protocol code runs unchanged inside a loom model; otherwise they are
//! `core`'s.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
