//! `pinode`: parse, dispatch, print errors as one readable line each.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command, ProfileCommand};
use commands::Output;

fn main() -> ExitCode {
    // Library panics are caught at the image boundary and reported as errors; the default
    // hook would print a backtrace-style message first.
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Inspect(a) => a.json,
        Command::Patch(a) => a.json,
        Command::Prepare(a) => a.json,
        _ => false,
    };
    let out = Output {
        json,
        quiet: cli.global.quiet,
        verbose: cli.global.verbose,
    };
    let result = match &cli.command {
        Command::Profile(ProfileCommand::Check { profile }) => {
            commands::profile::check(profile, &out)
        }
        Command::Profile(ProfileCommand::Schema) => commands::profile::schema(&out),
        Command::Inspect(a) => commands::inspect::run(&a.target, &out),
        Command::Patch(a) => commands::patch::run(a, &out),
        Command::Prepare(a) => commands::prepare::run(a, &out),
        Command::Render(a) => commands::render::run(a, &out),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "pinode",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}
