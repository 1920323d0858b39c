//! The data of a view: which source bytes make any range of it, and how.
//!
//! A view's data is its output volumes one after another; output volume `i`
//! comes from source volume `volumes.get(i)`: the whole volume, or one plane
//! of it. A read is cut at output-volume boundaries; each piece is fetched
//! from the source array (through the caller's `fetch`: the image cache, the
//! gzip index or the file) as one run of bytes — contiguous for whole volumes
//! and z planes, strided for x and y planes, whose voxels are then picked out
//! with an `ndarray` view over the run (no index arithmetic by hand).

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, ShapeBuilder};

use super::Axis;
use super::shape::Shape;
use crate::error::{Error, Result};

/// Reads bytes of the source's data array: `fetch(offset, buf)` fills `buf`
/// from array offset `offset` (0 is the first voxel of the first volume).
pub type Fetch<'a> = dyn FnMut(u64, &mut [u8]) -> Result<()> + 'a;

thread_local! {
    /// Strided runs of source bytes (x and y planes).
    static SPAN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Whole voxels of one piece, before conversion or a partial copy.
    static VOXELS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The same voxels converted to float.
    static FLOATS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on exactly `len` bytes of the thread's buffer `cell` (contents
/// unspecified; the buffer grows to the largest request once). Re-entered
/// (never on the request path), it uses a one-off buffer.
pub fn scratch<R>(
    cell: &'static std::thread::LocalKey<RefCell<Vec<u8>>>,
    len: usize,
    f: impl FnOnce(&mut [u8]) -> R,
) -> R {
    cell.with(|c| match c.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0u8; len]),
    })
}

fn too_large() -> Error {
    Error::Invalid("read too large for this machine's address space".into())
}

fn size(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| too_large())
}

/// Fills `out` with the view's data bytes from data offset `start` (the
/// caller clamps the read to the data's length).
pub fn read_data(
    shape: &Shape,
    vol_bytes: u64,
    dims: [u64; 3],
    start: u64,
    out: &mut [u8],
    fetch: &mut Fetch,
) -> Result<()> {
    let out_vol = shape.out_vol_bytes();
    if out_vol == 0 {
        return Ok(());
    }
    let mut done = 0usize;
    while done < out.len() {
        let pos = start.saturating_add(done as u64);
        let (i, within) = (pos / out_vol, pos % out_vol);
        let n = size((out_vol - within).min((out.len() - done) as u64))?;
        let src = shape
            .volumes
            .get(i)
            .ok_or_else(|| Error::Invalid(format!("read past the end of the view at {pos}")))?;
        let base = src.checked_mul(vol_bytes).ok_or_else(too_large)?;
        let dst = &mut out[done..done + n];
        let bpv = shape.in_bpv;
        let contiguous_from = match shape.plane {
            None => Some(0),
            Some((Axis::Z, index)) => Some(index * dims[0] * dims[1] * bpv),
            Some(_) => None,
        };
        match (contiguous_from, shape.conversion) {
            // The stored bytes of a whole volume or a z plane: one run, as is.
            (Some(from), None) => fetch(base + from + within, dst)?,
            (_, conversion) => {
                let out_bpv = shape.out_bpv;
                let (v0, v1) = (within / out_bpv, (within + n as u64).div_ceil(out_bpv));
                let skip = size(within - v0 * out_bpv)?;
                scratch(&VOXELS, size((v1 - v0) * bpv)?, |voxels| -> Result<()> {
                    gather(shape, dims, base, v0, v1, voxels, fetch)?;
                    let Some(conv) = conversion else {
                        dst.copy_from_slice(voxels.get(skip..skip + n).ok_or_else(too_large)?);
                        return Ok(());
                    };
                    scratch(&FLOATS, size((v1 - v0) * out_bpv)?, |floats| {
                        conv.convert(voxels, floats)
                            .map_err(|e| Error::Invalid(e.to_string()))?;
                        dst.copy_from_slice(floats.get(skip..skip + n).ok_or_else(too_large)?);
                        Ok(())
                    })
                })?;
            }
        }
        done += n;
    }
    Ok(())
}

/// The stored bytes of voxels `v0..v1` of one output volume, whose source
/// volume starts at array offset `base`, into `dst` (`(v1 - v0) * in_bpv` bytes).
fn gather(
    shape: &Shape,
    dims: [u64; 3],
    base: u64,
    v0: u64,
    v1: u64,
    dst: &mut [u8],
    fetch: &mut Fetch,
) -> Result<()> {
    let [dx, dy, _] = dims;
    let bpv = shape.in_bpv;
    let b = size(bpv)?;
    let bad = |e: ndarray::ShapeError| Error::Invalid(format!("view gather: {e}"));
    match shape.plane {
        None => fetch(base + v0 * bpv, dst),
        Some((Axis::Z, index)) => fetch(base + (index * dx * dy + v0) * bpv, dst),
        Some((Axis::X, index)) => {
            // Plane voxel p is source voxel index + dx * p: a stride of dx.
            let count = v1 - v0;
            let span = (dx * (count - 1) + 1) * bpv;
            scratch(&SPAN, size(span)?, |run| {
                fetch(base + (index + dx * v0) * bpv, run)?;
                let shape = (size(count)?, b).strides((size(dx)? * b, 1));
                let from = ArrayView2::from_shape(shape, &*run).map_err(bad)?;
                let mut to = ArrayViewMut2::from_shape((size(count)?, b), dst).map_err(bad)?;
                to.assign(&from);
                Ok(())
            })
        }
        Some((Axis::Y, index)) => {
            // Plane voxel p = x + dx * z is source voxel x + dx * (index + dy * z):
            // rows of dx voxels, dx * dy apart; take whole rows, then the part asked for.
            let (z0, z1) = (v0 / dx, (v1 - 1) / dx);
            let rows = z1 - z0 + 1;
            let span = ((rows - 1) * dx * dy + dx) * bpv;
            let skip = size((v0 - z0 * dx) * bpv)?;
            scratch(&SPAN, size(span)?, |run| {
                fetch(base + (index * dx + z0 * dx * dy) * bpv, run)?;
                let (r, x) = (size(rows)?, size(dx)?);
                let shape = (r, x, b).strides((x * size(dy)? * b, b, 1));
                let from = ArrayView3::from_shape(shape, &*run).map_err(bad)?;
                let mut rows_buf = vec![0u8; r * x * b];
                let mut to =
                    ArrayViewMut3::from_shape((r, x, b), &mut rows_buf[..]).map_err(bad)?;
                to.assign(&from);
                let part = rows_buf.get(skip..skip + dst.len()).ok_or_else(too_large)?;
                dst.copy_from_slice(part);
                Ok(())
            })
        }
    }
}
