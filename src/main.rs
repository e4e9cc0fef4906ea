//! The `vae` command: parse, run, and report any error as one red line.

use clap::Parser;
use std::io::IsTerminal;

fn main() {
    let cli = vae::cli::Cli::parse();
    if let Err(e) = vae::cli::run(cli) {
        let red = std::io::stderr().is_terminal();
        let (on, off) = if red { ("\x1b[1;31m", "\x1b[0m") } else { ("", "") };
        eprintln!("{on}Error:{off} {e:#}");
        std::process::exit(1);
    }
}
