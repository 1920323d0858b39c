//! Invariant checks shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`, which
//! include this file with `#[path]`) and by `tests/fuzz_regressions.rs`, which
//! replays saved crash inputs through the very same functions.
//!
//! Every `check_*` function takes the raw fuzz input (`&[u8]`) and panics (via
//! `assert!`) when an invariant breaks; it must never panic otherwise. Inputs are
//! decoded with `Input`, which reads numbers from the front and yields zeros
//! once the bytes run out, so that every byte string is a valid input.

#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nifuse::nifti::{
    DataType, ECODE_AFNI, Field, FieldTable, FormatError, Header, INTENT_TIME_SERIES, ImageLayout,
    Kind, MAX_VOX_OFFSET, NIFTI1, NIFTI2, Version, datatype, parse_extensions,
};
use nifuse::source::gzindex::{GzAccess, GzError, IndexKey, IndexState};

// ---------------------------------------------------------------------------
// Input decoding

/// Reads fixed-size numbers off the front of the fuzz input; zeros past the end.
pub struct Input<'a> {
    pub b: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Input { b }
    }
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.b.len());
        out[..n].copy_from_slice(&self.b[..n]);
        self.b = &self.b[n..];
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.b)
    }
}

/// A tiny deterministic PRNG (xorshift64*), for read patterns derived from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish in `0..n` (0 if `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

mod gzip_index;
mod gzip_stream;
mod header;
mod seeds;

pub use gzip_index::*;
pub use gzip_stream::*;
pub use header::*;
pub use seeds::*;
