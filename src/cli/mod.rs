//! Command-line definitions (clap derive) and dispatch to the subcommands.

use std::path::PathBuf;

pub mod index_cmd;
pub mod info;
pub mod logging;
pub mod mount;
pub mod process;
pub mod source;
pub mod tune;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::cache::Mode;

/// nifuse: every NIfTI image in a directory as a directory of 3D volume files.
///
/// `nifuse mount data/ /mnt/vols` shows each 4D (or 5D+) image NAME of data/
/// as NAME.d/vol_0000.nii, vol_0001.nii, ...: single volumes that any tool
/// can open, synthesized on read from the source without copying it.
#[derive(Parser, Debug)]
#[command(name = "nifuse", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mount SOURCE at MOUNTPOINT (returns once the mount is live).
    Mount(MountArgs),
    /// Build and save the gzip access index of .nii.gz images ahead of mounting.
    Index {
        /// Images to index (.nii.gz, .img.gz pairs via their .hdr).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where indexes are kept [default: $XDG_CACHE_HOME/nifuse or ~/.cache/nifuse].
        #[arg(long, value_name = "DIR")]
        index_dir: Option<PathBuf>,
    },
    /// Show the header of NIfTI images as nifuse sees them (like fslhd / nib-ls).
    Info {
        /// Images (.nii, .nii.gz, .hdr).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON array instead of text.
        #[arg(long)]
        json: bool,
        /// Where gzip indexes are looked up [default: $XDG_CACHE_HOME/nifuse or ~/.cache/nifuse].
        #[arg(long, value_name = "DIR")]
        index_dir: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `nifuse manpage > /usr/local/share/man/man1/nifuse.1`.
    Manpage,
    /// Unmount a nifuse mount (also clears one whose daemon died).
    Umount {
        /// The mount point.
        mountpoint: PathBuf,
    },
}

/// `nifuse mount` options.
#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    /// Directory of NIfTI images to show (never modified), or an object-store
    /// prefix s3://BUCKET[/PREFIX].
    pub source: PathBuf,
    /// Empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Stay in the foreground, log to stderr; Ctrl-C unmounts.
    #[arg(short, long)]
    pub foreground: bool,
    /// Threads serving requests [default: number of cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
    /// Mount options, comma-separated, as sshfs and fstab take them: allow_other,
    /// allow_root, noexec, noatime, and nifuse's own cache_mode=, cache_size=,
    /// index_dir=, threads=, log_file=, verify=, endpoint_url=, region=, no_sign_request,
    /// metadata_ttl= (fstab words like defaults, noauto, nofail are ignored).
    #[arg(short = 'o', value_name = "OPTIONS", action = ArgAction::Append)]
    pub options: Vec<String>,
    /// Default cache mode of every image: fill or unchanged.
    #[arg(long, value_name = "MODE", default_value = "fill", value_parser = parse_mode)]
    pub cache_mode: Mode,
    /// Memory for all image caches together (e.g. 4G, 512M) [default: a quarter of RAM].
    #[arg(long, value_name = "BYTES", value_parser = crate::size::parse_size)]
    pub cache_size: Option<u64>,
    /// Where gzip access indexes are kept [default: $XDG_CACHE_HOME/nifuse or ~/.cache/nifuse].
    #[arg(long, value_name = "DIR")]
    pub index_dir: Option<PathBuf>,
    /// Log file in background mode [default: ~/.cache/nifuse/log/MOUNTPOINT.log].
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// How reads of .nii.gz files are checked against the gzip CRC-32: background
    /// (serve as the first pass decodes, check as it completes each member) or
    /// strict (serve nothing of a member before its CRC-32 was checked).
    #[arg(long, value_name = "MODE", default_value = "background", value_parser = parse_verify)]
    pub verify: crate::source::data::Verify,
    /// Leave the kernel's read-ahead for the mount as it is (by default, as root, it is raised to 1024 KiB).
    #[arg(long)]
    pub no_read_ahead: bool,
    /// Object stores: the S3 endpoint, e.g. http://127.0.0.1:9000 for MinIO or Ceph
    /// [default: AWS_ENDPOINT_URL, else AWS S3].
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Object stores: the region [default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Object stores: send anonymous requests (public buckets such as OpenNeuro's).
    #[arg(long)]
    pub no_sign_request: bool,
    /// Object stores: how long a directory listing is kept, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = source::DEFAULT_METADATA_TTL)]
    pub metadata_ttl: u64,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

fn parse_verify(s: &str) -> Result<crate::source::data::Verify, String> {
    s.parse()
}

/// Runs the parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Mount(args) => mount::mount(args),
        Command::Umount { mountpoint } => mount::umount(&mountpoint),
        Command::Info {
            files,
            json,
            index_dir,
        } => {
            logging::init_stderr(0);
            let dir = index_dir.unwrap_or_else(mount::default_index_dir);
            info::run(&files, json, &dir)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "nifuse", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| format!("writing the man page: {e}"))
        }
        Command::Index { files, index_dir } => {
            logging::init_stderr(0);
            let dir = index_dir.unwrap_or_else(mount::default_index_dir);
            index_cmd::run(&files, &dir)
        }
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("nifuse: {msg}");
            1
        }
    }
}

/// The arguments `mount -t nifuse SOURCE MOUNTPOINT -o OPTS` gives the
/// `mount.nifuse` helper (`mount.nifuse SOURCE MOUNTPOINT [-o OPTS] [-n] [-s] [-f] [-v]`),
/// as a `nifuse mount` command line.
pub fn mount_helper_args(args: &[String]) -> Vec<String> {
    let mut out = vec!["nifuse".to_string(), "mount".to_string()];
    let mut positional = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => {
                if let Some(opts) = it.next() {
                    out.push("-o".into());
                    out.push(opts.clone());
                }
            }
            "-v" => out.push("-v".into()),
            // mount(8)'s -n (no mtab), -s (sloppy), -f (fake) mean nothing here.
            "-n" | "-s" | "-f" => {}
            other => positional.push(other.to_string()),
        }
    }
    out.extend(positional);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_helper_translates_mount_8_arguments() {
        let args: Vec<String> = [
            "mount.nifuse",
            "/data",
            "/mnt/vols",
            "-n",
            "-o",
            "rw,allow_other,cache_size=4G",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            mount_helper_args(&args),
            [
                "nifuse",
                "mount",
                "-o",
                "rw,allow_other,cache_size=4G",
                "/data",
                "/mnt/vols"
            ]
        );
    }
}
