//! The `vae` command: parse, run, and report any error as one red line.

use clap::Parser;
use clap::error::ErrorKind;
use std::io::IsTerminal;

fn fail(message: &str, code: i32) -> ! {
    let red = std::io::stderr().is_terminal();
    let (on, off) = if red { ("\x1b[1;31m", "\x1b[0m") } else { ("", "") };
    eprintln!("{on}Error:{off} {message}");
    std::process::exit(code);
}

fn main() {
    // The binary owns its main thread: every kernel it runs flushes subnormals (see
    // `vae::core::fpmode`; library callers get the same inside the pool's jobs and epochs).
    vae::core::fpmode::flush_denormals_on_this_thread();
    let cli = match vae::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                // clap's first paragraph says what is wrong (a missing argument's name is on
                // its second line); the rest is usage, which --help gives.
                let text = e.to_string();
                let what: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
                fail(&format!("{} (see --help)", what.join(" ").trim_start_matches("error: ")), 2)
            }
        },
    };
    if let Err(e) = vae::cli::run(cli) {
        // Ctrl-C is the user's choice, not a failure: say what was kept, exit as SIGINT does.
        if let Some(interrupted @ vae::run::RunError::Interrupted { .. }) = e.downcast_ref() {
            eprintln!("{interrupted}");
            std::process::exit(130);
        }
        fail(&vae::cli::error_line(&e), 1);
    }
}
