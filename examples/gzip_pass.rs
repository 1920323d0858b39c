//! Measures the first pass of nifuse's gzip index against a one-shot zlib-rs
//! inflate of the same file, in the same process (run by
//! `scripts/bench_gzip_first.py`):
//!
//! `cargo run --release --example gzip_pass -- FILE.gz ROUNDS [VOLUME_BYTES HEADER_BYTES]`
//!
//! Each round (interleaved): the whole compressed file is read into memory
//! (not timed), then inflated at once into a buffer of the decoded size with
//! flate2 on zlib-rs (the inflater nifuse uses), and separately the first
//! pass of a fresh `GzAccess` runs over the file (from the page cache) to
//! the end, recording checkpoints and segment CRCs and checking the CRC-32.
//! Prints one line per round (wall time, and CPU time of the process: the
//! pass also uses its read-ahead thread) and `median one-shot S pass S ratio R`
//! (wall time).

use std::time::Instant;

use flate2::{Decompress, FlushDecompress, Status};
use nifuse::source::gzindex::GzAccess;

/// CPU time (user + system) of the whole process so far, in seconds.
fn cpu() -> f64 {
    // SAFETY: getrusage only writes the rusage struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: gzip_pass FILE.gz ROUNDS [VOLUME_BYTES HEADER_BYTES]";
    let path = std::path::PathBuf::from(args.get(1).ok_or(usage)?);
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).ok_or(usage)?;
    let vol: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
    let header: u64 = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(352);
    let comp = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let isize = u32::from_le_bytes(
        comp[comp.len() - 4..]
            .try_into()
            .map_err(|_| "short file")?,
    );
    // Touch the whole output buffer once so that no round pays page faults.
    let mut out = vec![1u8; isize as usize + 1];
    let (mut one, mut pass) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let c0 = cpu();
        let t = Instant::now();
        let mut d = Decompress::new_gzip(15);
        let st = d
            .decompress(&comp, &mut out, FlushDecompress::Finish)
            .map_err(|e| e.to_string())?;
        let n = d.total_out();
        one.push(t.elapsed().as_secs_f64());
        let one_cpu = cpu() - c0;
        if st != Status::StreamEnd || n != u64::from(isize) {
            return Err(format!("one-shot inflate ended at {n} bytes ({st:?})"));
        }
        let starts: Vec<u64> = (0..)
            .map(|k| header + k * vol)
            .take_while(|&s| s < n)
            .collect();
        let c0 = cpu();
        let t = Instant::now();
        let a = GzAccess::open(&path, starts, None).map_err(|e| e.to_string())?;
        a.build_all(&mut |_, _| {}).map_err(|e| e.to_string())?;
        pass.push(t.elapsed().as_secs_f64());
        let pass_cpu = cpu() - c0;
        println!(
            "round {}: one-shot {:.1} ms (cpu {:.1} ms), first pass {:.1} ms (cpu {:.1} ms; {} checkpoints, {} bytes)",
            round + 1,
            one[round] * 1e3,
            one_cpu * 1e3,
            pass[round] * 1e3,
            pass_cpu * 1e3,
            a.checkpoint_count(),
            a.inflated_bytes()
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (o, p) = (median(&mut one), median(&mut pass));
    println!("median one-shot {o:.4} pass {p:.4} ratio {:.3}", o / p);
    Ok(())
}
