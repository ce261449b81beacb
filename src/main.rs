//! `pinode`: parse, dispatch, print errors as one readable line each.

mod cli;
mod commands;
mod error;
mod term;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{CacheCommand, Cli, Command, OsCommand, ProfileCommand};
use commands::Output;

fn main() -> ExitCode {
    // The environment is read once, here; the library reads the typed settings (pinode::edge).
    pinode::edge::init(pinode::edge::Settings::from_environment(
        pinode::edge::Environment::capture(),
    ));
    // Panics inside the image boundary become ordinary errors (see pinode::guard); any other
    // is a bug, reported as one error line rather than Rust's multi-line message.
    std::panic::set_hook(Box::new(|info| {
        if !pinode::guard::is_contained() {
            let message = info.payload_as_str().unwrap_or("panic");
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            // The message may quote outside data (a panic names the string it sliced).
            eprintln!(
                "error: internal error, please report it: {}{at}",
                pinode::ui::Untrusted(message)
            );
        }
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A command line clap refuses still leaves one JSON document on stdout when it
            // asks for --json (help and --version are not failures and print as usual).
            if e.use_stderr() && std::env::args_os().skip(1).any(|a| a == "--json") {
                // clap's message up to the blank line before its usage lines.
                let text = e.to_string();
                let message: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(|l| l.trim().trim_start_matches("error: "))
                    .collect();
                Output {
                    json: true,
                    quiet: false,
                    verbose: 0,
                }
                .json_failure(&error::Error::Usage(message.join(" ")));
            }
            e.exit()
        }
    };
    // SIGINT/SIGTERM/SIGHUP remove pinode's temporary files before the process ends.
    if let Err(e) = pinode::cleanup::install(|signal| std::process::exit(128 + signal)) {
        eprintln!(
            "warning: cannot handle interruptions ({e}); an interrupted run may leave temporary files"
        );
    }
    let command = cli.command.unwrap_or(Command::Wizard);
    let json = match &command {
        Command::Inspect(a) => a.json,
        Command::Patch(a) => a.json,
        Command::Prepare(a) => a.json,
        Command::Os(OsCommand::List { json, .. }) => *json,
        Command::Download(a) => a.json,
        Command::Cache(CacheCommand::List { json }) => *json,
        Command::Devices(a) => a.json,
        Command::Flash(a) => a.json,
        Command::Write(a) => a.json,
        Command::Status(a) => a.json,
        _ => false,
    };
    let out = Output {
        json,
        quiet: cli.global.quiet,
        verbose: cli.global.verbose,
    };
    let sources = commands::Sources::from(&cli.global);
    let result = match &command {
        Command::Wizard => commands::wizard::run(&sources, &out),
        Command::Profile(ProfileCommand::Check { profile, strict }) => {
            commands::profile::check(profile, *strict, &out)
        }
        Command::Profile(ProfileCommand::Schema) => commands::profile::schema(&out),
        Command::Inspect(a) => commands::inspect::run(&a.target, &out),
        Command::Patch(a) => commands::patch::run(a, &sources, &out),
        Command::Prepare(a) => commands::prepare::run(a, &sources, &out),
        Command::Os(OsCommand::List { all, .. }) => commands::os::list(*all, &sources, &out),
        Command::Download(a) => commands::download::run(a, &sources, &out),
        Command::Cache(CacheCommand::List { .. }) => commands::cache::list(&sources, &out),
        Command::Cache(CacheCommand::Clean) => commands::cache::clean(&sources, &out),
        Command::Render(a) => commands::render::run(a, &sources, &out),
        Command::Devices(a) => commands::devices::run(a, &out),
        Command::Flash(a) => commands::flash::run(a, &sources, &out),
        Command::Write(a) => commands::write::run(a, &out),
        Command::Kubeconfig(a) => commands::kubeconfig::run(a, &out),
        Command::Status(a) => commands::status::run(a, &out),
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
            out.json_failure(&e);
            // Errors quote outside data (paths, labels, catalog text): no control character
            // of it reaches the terminal.
            for line in e.to_string().lines() {
                eprintln!("error: {}", pinode::ui::Untrusted(line));
            }
            ExitCode::from(e.exit_code())
        }
    }
}
