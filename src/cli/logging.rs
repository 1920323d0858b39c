//! Logging set-up: stderr in the foreground, a file in the background.
//! `-v` gives info, `-vv` debug; `RUST_LOG` overrides both.

use std::path::{Path, PathBuf};

fn builder(verbose: u8) -> env_logger::Builder {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    b.format_timestamp_millis();
    b
}

/// Logs to stderr.
pub fn init_stderr(verbose: u8) {
    let _ = builder(verbose).try_init();
}

/// Logs to the file at `path` (appending), creating its directory.
pub fn init_file(path: &Path, verbose: u8) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("log directory {}: {e}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("log file {}: {e}", path.display()))?;
    let _ = builder(verbose)
        .target(env_logger::Target::Pipe(Box::new(file)))
        .try_init();
    Ok(())
}

/// `$XDG_CACHE_HOME`, else `~/.cache`, else `/tmp`.
pub fn cache_home() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x);
    }
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from("/tmp"),
        |h| PathBuf::from(h).join(".cache"),
    )
}

/// `~/.cache/nifuse/log/<mount point with / as _>.log`.
pub fn default_log_path(mountpoint: &Path) -> PathBuf {
    let name: String = mountpoint
        .to_string_lossy()
        .trim_start_matches('/')
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    cache_home()
        .join("nifuse")
        .join("log")
        .join(format!("{name}.log"))
}
