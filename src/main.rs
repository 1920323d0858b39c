//! The `nifuse` command: parse the arguments, run the subcommand, exit with its status.

use clap::Parser;

fn main() {
    let cli = nifuse::cli::Cli::parse();
    std::process::exit(nifuse::cli::run(cli));
}
