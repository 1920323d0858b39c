//! Segment CRCs: the CRC-32 of every run of decoded bytes between consecutive
//! boundaries, recorded by the first pass and checked by every later read.
//!
//! Boundaries are every deflate block boundary the pass meets (so every
//! checkpoint is one), every volume start, every member start and end, and a
//! grid of [`SEG_MAX`] bytes (so no segment is longer: a read decodes at most
//! that much past its end to check its last segment). Within a member the
//! segment CRCs combine (crc32 combine) into the member's CRC, which the
//! trailer confirms; a saved index whose segments do not combine into its
//! members' and checkpoints' CRCs is rejected on load.

use std::collections::VecDeque;

use super::index::{Index, Seg, UNKNOWN_IN};

/// Longest segment: reads decode at most this far past their last byte.
pub const SEG_MAX: u64 = 128 << 10;

/// CRC-32 of `a || b` from the CRCs of `a` and `b` (`len_b` bytes).
pub fn combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial_len(crc_a, 0);
    h.combine(&crc32fast::Hasher::new_with_initial_len(crc_b, len_b));
    h.finalize()
}

/// The next fixed boundary after `from`: the grid point or a volume start.
pub fn next_fixed(from: u64, starts: &[u64]) -> u64 {
    let grid = (from / SEG_MAX + 1).saturating_mul(SEG_MAX);
    let i = starts.partition_point(|&s| s <= from);
    starts.get(i).map_or(grid, |&s| s.min(grid))
}

/// The segments a cursor at segment boundary `from` checks to read up to
/// `to`: from the one starting at `from` to the first ending at or after `to`.
pub fn checklist(index: &Index, from: u64, to: u64) -> VecDeque<Seg> {
    let i = index.segs.partition_point(|s| s.end <= from);
    let mut out = VecDeque::new();
    for s in index.segs.iter().skip(i) {
        out.push_back(*s);
        if s.end >= to {
            break;
        }
    }
    out
}

/// Decoded bytes after a served byte that also count as enough inflating
/// without error (highly compressible data holds many in little input).
pub const DECODED_MARGIN: u64 = 4 << 20;

/// The decoded offset before which bytes are safe to serve once the
/// inflater has read compressed bytes up to `pos` without error: bytes of
/// verified members, and bytes whose compressed data lies at least `margin`
/// bytes before `pos` (garbage can decode for a while before inflate fails),
/// or that lie [`DECODED_MARGIN`] before the end of what was decoded.
pub fn safe_before(index: &Index, pos: u64, margin: u64) -> u64 {
    let mut best = index.verified_to();
    let far = index.covered().saturating_sub(DECODED_MARGIN);
    let i = index.segs.partition_point(|s| s.end <= far);
    if let Some(s) = i.checked_sub(1).and_then(|i| index.segs.get(i)) {
        best = best.max(s.end);
    }
    for s in index.segs.iter().rev() {
        if s.in_end == UNKNOWN_IN {
            break;
        }
        if s.in_end.saturating_add(margin) <= pos {
            best = best.max(s.end);
            break;
        }
    }
    for c in index.cps.iter().rev() {
        if (c.bitpos / 8).saturating_add(margin) <= pos {
            best = best.max(c.out);
            break;
        }
    }
    best.min(index.covered())
}

/// Structural and CRC consistency of the segments with the members and checkpoints.
pub fn validate(index: &Index) -> Result<(), String> {
    let mut prev = 0u64;
    for s in &index.segs {
        if s.end <= prev {
            return Err(format!("empty or unordered segment ending at {}", s.end));
        }
        prev = s.end;
    }
    let covered = index.covered();
    let is_boundary = |x: u64| x == 0 || index.segs.binary_search_by_key(&x, |s| s.end).is_ok();
    let mut member_starts: Vec<u64> = index.members.iter().map(|m| m.start).collect();
    member_starts.extend(index.cps.iter().map(|c| c.member_out));
    member_starts.sort_unstable();
    member_starts.dedup();
    let mut expect = 0;
    for m in &index.members {
        if m.start != expect || m.end < m.start || m.end > covered || !is_boundary(m.end) {
            return Err(format!("bad member {}..{}", m.start, m.end));
        }
        expect = m.end;
    }
    if let Some(&x) = member_starts
        .iter()
        .find(|&&x| !is_boundary(x) || x > covered)
    {
        return Err(format!("member start {x} is not a segment boundary"));
    }
    for c in &index.cps {
        if !is_boundary(c.out) {
            return Err(format!("checkpoint at {} is not a segment boundary", c.out));
        }
    }
    // One walk over the boundaries with the running CRC of the current
    // member: every member end and checkpoint must agree with it.
    let (mut crc, mut prev, mut mi, mut ci) = (0u32, 0u64, 0usize, 0usize);
    for k in 0..=index.segs.len() {
        if let Some(s) = k.checked_sub(1).and_then(|i| index.segs.get(i)) {
            crc = combine(crc, s.crc, s.end - prev);
            prev = s.end;
        }
        let pos = prev;
        while let Some(m) = index.members.get(mi).filter(|m| m.end == pos) {
            if m.crc != if m.start == pos { 0 } else { crc } {
                return Err(format!(
                    "member {}..{}: its segment CRCs do not combine into its CRC",
                    m.start, m.end
                ));
            }
            mi += 1;
        }
        while let Some(c) = index.cps.get(ci).filter(|c| c.out == pos) {
            if c.crc != if c.member_out == pos { 0 } else { crc } {
                return Err(format!(
                    "checkpoint at {} disagrees with its segment CRCs",
                    c.out
                ));
            }
            ci += 1;
        }
        if member_starts.binary_search(&pos).is_ok() {
            crc = 0;
        }
    }
    if ci != index.cps.len() || mi != index.members.len() {
        return Err("checkpoints or members outside the segments".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_matches_a_whole_hash() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let (a, b) = data.split_at(37_000);
        let c = combine(crc32fast::hash(a), crc32fast::hash(b), b.len() as u64);
        assert_eq!(c, crc32fast::hash(&data));
        assert_eq!(combine(7, 0, 0), 7);
    }

    #[test]
    fn fixed_boundaries() {
        assert_eq!(next_fixed(0, &[]), SEG_MAX);
        assert_eq!(next_fixed(5, &[3, 100]), 100);
        assert_eq!(next_fixed(SEG_MAX, &[SEG_MAX]), 2 * SEG_MAX);
    }
}
