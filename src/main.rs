//! The `nifuse` command: parse the arguments, run the subcommand, exit with its status.

use clap::Parser;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let helper = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "mount.nifuse");
    // Installed as /sbin/mount.nifuse, `mount -t nifuse` and /etc/fstab work.
    let cli = if helper {
        nifuse::cli::Cli::parse_from(nifuse::cli::mount_helper_args(&args))
    } else {
        nifuse::cli::Cli::parse()
    };
    std::process::exit(nifuse::cli::run(cli));
}
