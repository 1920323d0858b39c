//! Writes the seed corpora: `seeds DIR` creates `DIR/<target>/<name>` for every
//! generated seed (valid headers, gzip streams, a genuine index file).

#[path = "../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let mut n = 0;
    for (target, name, bytes) in fuzz_checks::seeds() {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("create corpus dir");
        std::fs::write(d.join(format!("seed-{name}")), &bytes).expect("write seed");
        n += 1;
    }
    println!("wrote {n} seeds under {}", dir.display());
    let _ = std::fs::remove_dir_all(fuzz_checks::scratch_dir());
}
