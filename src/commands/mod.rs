//! One module per subcommand.

pub mod cache;
pub mod devices;
pub mod download;
pub mod flash;
pub mod inspect;
pub mod kubeconfig;
pub mod os;
pub mod patch;
pub mod prepare;
pub mod profile;
pub mod render;
pub mod status;
pub mod wizard;
pub mod write;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;
use crate::term::progress::TerminalProgress;
use pinode::cache::resolve::Resolver;
use pinode::cache::store::Cache;
use pinode::profile::{LoadedProfile, NodeConfig};
use pinode::ui::terminal_safe;

/// Where images come from: the global `--catalog`, `--cache-dir` and `--offline`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub catalog: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub offline: bool,
}

impl From<&crate::cli::Global> for Sources {
    fn from(g: &crate::cli::Global) -> Self {
        Sources {
            catalog: g.catalog.clone(),
            cache_dir: g.cache_dir.clone(),
            offline: g.offline,
        }
    }
}

impl Sources {
    /// Whether the catalog comes over the network: a URL (the default), not a file.
    pub fn catalog_is_remote(&self) -> bool {
        self.catalog
            .as_deref()
            .is_none_or(|c| c.starts_with("https://") || c.starts_with("http://"))
    }

    pub fn resolver(&self) -> Result<Resolver, Error> {
        let cache = Cache::open(self.cache_dir.as_deref())?;
        Ok(Resolver::new(cache, self.catalog.clone(), self.offline))
    }
}

/// The cluster of `loaded`, for a command that reaches its nodes over SSH (`what` says
/// what the command does, for a profile without one), with every `--address` checked to
/// name one of its nodes: a misspelt host would otherwise be silently ignored.
pub fn reachable_cluster(
    loaded: &pinode::profile::LoadedProfile,
    addresses: &[pinode::remote::AddressOverride],
    what: &str,
) -> Result<pinode::plan::cluster::ClusterPlan, Error> {
    let plan = pinode::plan::cluster::ClusterPlan::of(loaded, pinode::edge::settings())
        .ok_or_else(|| Error::Usage(format!("{} has no cluster: {what}", loaded.path.display())))?;
    if let Some(a) = addresses
        .iter()
        .find(|a| !loaded.nodes.iter().any(|n| n.hostname == a.host))
    {
        return Err(Error::Usage(format!(
            "--address {}: the profile has no node {}",
            a.host, a.host
        )));
    }
    Ok(plan)
}

/// The command to run once a cluster's cards are written: `flash`'s summary and the
/// wizard's last screen end with it, so that the user knows how to follow the first boot.
pub fn status_next(profile: &std::path::Path) -> String {
    format!(
        "next: boot the nodes, then follow them until they are Ready with: pinode status \
         --profile {} --watch",
        crate::term::shell_word(&profile.display().to_string())
    )
}

/// Output settings shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
}

impl Output {
    /// Prints a line for humans (suppressed by `--json` and `-q`). Control characters that
    /// reached it from outside data are escaped here as a last line of defence; callers
    /// still wrap each outside value in [`Untrusted`](pinode::ui::Untrusted).
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.json && !self.quiet {
            stdout_line(&terminal_safe(line.as_ref()));
        }
    }

    /// Prints a note from the library (e.g. "note: generated the K3s token …") on stderr,
    /// as it comes: the text carries its own `note:` prefix.
    pub fn note(&self, line: &str) {
        eprintln!("{}", terminal_safe(line));
    }

    /// Prints a warning on stderr (suppressed by `-q`), escaped as [`Output::say`] is.
    pub fn warn(&self, line: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("warning: {}", terminal_safe(line.as_ref()));
        }
    }

    /// Progress bars, unless `--json`, `-q` or CI.
    pub fn progress(&self) -> TerminalProgress {
        if self.json {
            TerminalProgress::hidden()
        } else {
            TerminalProgress::detect(self.quiet)
        }
    }

    /// Tells the user that another pinode process holds the image they want.
    pub fn waiting_note(&self) -> impl FnOnce() + '_ {
        move || {
            if !self.quiet {
                eprintln!("waiting for another pinode process working on the same image…");
            }
        }
    }

    /// Prints one JSON document on stdout.
    pub fn json(&self, value: &serde_json::Value) {
        JSON_PRINTED.store(true, Ordering::SeqCst);
        stdout_line(&serde_json::to_string_pretty(value).unwrap_or_default());
    }

    /// With `--json`, makes sure a failed run still leaves exactly one JSON document on
    /// stdout: `{"error": "…"}` unless the command already printed its own (`prepare`
    /// prints one naming the nodes done, failed and not attempted). Called once, by
    /// `main`, for every command, so that no command can forget it: a script can always
    /// parse stdout, and reads the error there as well as on stderr.
    pub fn json_failure(&self, error: &Error) {
        if self.json && !JSON_PRINTED.load(Ordering::SeqCst) {
            self.json(&serde_json::json!({ "error": error.to_string() }));
        }
    }
}

/// Whether this run has printed its JSON document (one per run: see
/// [`Output::json_failure`]). A process-wide flag rather than a field, since `Output` is a
/// `Copy` value handed to every command.
static JSON_PRINTED: AtomicBool = AtomicBool::new(false);

/// Writes a line to stdout. A closed pipe (`pinode os list | head`) ends the program
/// quietly, as it does for other command-line tools, instead of a panic.
fn stdout_line(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Checks what `prepare` and `flash` will need for every node in `nodes` (files, variables,
/// secrets: [`pinode::plan::check`]) before anything is written or downloaded, so that one
/// run lists every problem of every node. A secret file others can read is a warning; every
/// other problem refuses the run, each on its own `error:` line.
pub fn check_needs(
    profile: &LoadedProfile,
    nodes: &[&NodeConfig],
    image: Option<&std::path::Path>,
    out: &Output,
) -> Result<(), Error> {
    use pinode::plan::check::{ProblemKind, check};
    let mut errors = Vec::new();
    for problem in check(profile, nodes, pinode::edge::settings(), image) {
        match problem.kind {
            ProblemKind::Exposed | ProblemKind::Advice => out.warn(problem.error.to_string()),
            ProblemKind::Environment | ProblemKind::Error => errors.push(problem.error),
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    pinode::profile::sort_by_position(&mut errors);
    Err(pinode::profile::ProfileError::Invalid(errors).into())
}

/// Loads a profile and shows its warnings.
pub fn load_profile(path: &std::path::Path, out: &Output) -> Result<LoadedProfile, Error> {
    let loaded = LoadedProfile::load(path)?;
    for w in &loaded.warnings {
        out.warn(w.to_string());
    }
    Ok(loaded)
}

/// The nodes named on the command line, or all of them.
pub fn select_nodes<'p>(
    profile: &'p LoadedProfile,
    names: &[String],
) -> Result<Vec<&'p NodeConfig>, Error> {
    if names.is_empty() {
        return Ok(profile.nodes.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            profile.node(name).ok_or_else(|| {
                let known: Vec<&str> = profile.nodes.iter().map(|n| n.hostname.as_str()).collect();
                Error::Usage(format!(
                    "{}: no node {} (the profile has {})",
                    profile.path.display(),
                    pinode::ui::quoted(name),
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// The one node `name` picks, or the only node when `name` is omitted.
pub fn single_node<'p>(
    profile: &'p LoadedProfile,
    name: Option<&str>,
) -> Result<&'p NodeConfig, Error> {
    match name {
        Some(name) => Ok(select_nodes(profile, &[name.to_string()])?[0]),
        None if profile.nodes.len() == 1 => Ok(&profile.nodes[0]),
        None => {
            let known: Vec<&str> = profile.nodes.iter().map(|n| n.hostname.as_str()).collect();
            Err(Error::Usage(format!(
                "the profile has several nodes; choose one with --node ({})",
                known.join(", ")
            )))
        }
    }
}

/// Human-readable size.
pub fn size(bytes: u64) -> String {
    pinode::ui::size::binary(bytes)
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub fn table<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> Vec<String> {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(header)
        .chain(rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i + 1 == N {
                        cell.clone()
                    } else {
                        format!("{cell:<width$}", width = widths[i])
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}
