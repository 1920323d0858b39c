//! `nifuse index FILE...`: builds and saves gzip access indexes ahead of time,
//! with a progress bar per file and a summary line.

use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::fs::image::{self, NotImage};

/// Indexes every file; fails (after trying them all) if any could not be indexed.
pub fn run(files: &[std::path::PathBuf], index_dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(index_dir)
        .map_err(|e| format!("index directory {}: {e}", index_dir.display()))?;
    let started = Instant::now();
    let (mut built, mut skipped, mut failed, mut checkpoints) = (0, 0, 0, 0);
    for file in files {
        let shown = file.display().to_string();
        let path = match std::fs::canonicalize(file) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("nifuse index: {shown}: {e}");
                failed += 1;
                continue;
            }
        };
        let img = match image::probe_file(&path, &shown, Some(index_dir)) {
            Ok((_, img)) => img,
            Err(NotImage::Quiet) => {
                eprintln!("nifuse index: {shown}: not a NIfTI file name (.nii.gz, .hdr); skipped");
                skipped += 1;
                continue;
            }
            Err(NotImage::Reason(why)) => {
                eprintln!("nifuse index: {shown}: not an image nifuse can split: {why}");
                failed += 1;
                continue;
            }
        };
        if !img.data.is_gzip() {
            eprintln!("nifuse index: {shown}: not compressed, needs no index; skipped");
            skipped += 1;
            continue;
        }
        let bar = ProgressBar::new(img.data.version().size).with_message(shown.clone());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let result = img.data.build_index(&mut |pos, len| {
            bar.set_length(len);
            bar.set_position(pos);
        });
        bar.finish_and_clear();
        match result {
            Ok(n) => {
                eprintln!(
                    "nifuse index: {shown}: {n} checkpoints, {} volumes",
                    img.layout.n_vols()
                );
                built += 1;
                checkpoints += n;
            }
            Err(e) => {
                eprintln!("nifuse index: {e}");
                failed += 1;
            }
        }
    }
    eprintln!(
        "nifuse index: {built} indexed ({checkpoints} checkpoints), {skipped} skipped, {failed} failed \
         in {:.1} s; indexes in {}",
        started.elapsed().as_secs_f64(),
        index_dir.display()
    );
    if failed > 0 {
        Err(format!(
            "{failed} of {} files could not be indexed",
            files.len()
        ))
    } else {
        Ok(())
    }
}
