//! The FSL files of a selection of volumes (`vol_K.bval`, `vols_A-B.bvec`,
//! `b0.bval`, ...): one row of b-values, or 3 rows (x, y, z) of vector
//! components, each token copied as written in the source, one space between
//! tokens, each row ended by `\n` (so an empty selection gives empty rows).
//! Sizes are computed from the token lengths without building the file.

use super::{Gradients, Number};

/// The token of volume `k` picked by `pick`, or None past the last volume.
type Pick<'a> = dyn Fn(usize) -> Option<&'a Number> + 'a;

/// Length of one row of the tokens of `vols`, newline included.
fn row_len(vols: &[u64], pick: &Pick<'_>) -> Option<u64> {
    let mut len = vols.len().saturating_sub(1) as u64 + 1;
    for &k in vols {
        len += pick(usize::try_from(k).ok()?)?.text().len() as u64;
    }
    Some(len)
}

/// Appends one row of the tokens of `vols` to `out`.
fn write_row(out: &mut Vec<u8>, vols: &[u64], pick: &Pick<'_>) -> Option<()> {
    for (i, &k) in vols.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(pick(usize::try_from(k).ok()?)?.text().as_bytes());
    }
    out.push(b'\n');
    Some(())
}

impl Gradients {
    fn bval_pick<'a>(&'a self) -> impl Fn(usize) -> Option<&'a Number> + 'a {
        |k| self.bvals.get(k)
    }

    fn bvec_pick<'a>(&'a self, axis: usize) -> impl Fn(usize) -> Option<&'a Number> + 'a {
        move |k| self.bvecs.get(k).map(|v| &v[axis])
    }

    /// The `.bval` file of volumes `vols` (in that order): None if one of
    /// them is past the last volume.
    pub fn bval_file(&self, vols: &[u64]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.bval_len(vols)?).ok()?);
        write_row(&mut out, vols, &self.bval_pick())?;
        Some(out)
    }

    /// The `.bvec` file of volumes `vols`: 3 rows (x, y, z); None if one of
    /// them is past the last volume.
    pub fn bvec_file(&self, vols: &[u64]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.bvec_len(vols)?).ok()?);
        for axis in 0..3 {
            write_row(&mut out, vols, &self.bvec_pick(axis))?;
        }
        Some(out)
    }

    /// The size in bytes of [`bval_file`](Self::bval_file), without building it.
    pub fn bval_len(&self, vols: &[u64]) -> Option<u64> {
        row_len(vols, &self.bval_pick())
    }

    /// The size in bytes of [`bvec_file`](Self::bvec_file), without building it.
    pub fn bvec_len(&self, vols: &[u64]) -> Option<u64> {
        (0..3)
            .map(|axis| row_len(vols, &self.bvec_pick(axis)))
            .sum()
    }
}
