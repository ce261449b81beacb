//! The command line, as `docs/cli.md` fixes it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use pinode::osinfo::{Generation, InitRoute};
use pinode::sink::file::Compression;

/// Provision Raspberry Pi nodes for a K3s cluster from one YAML profile.
#[derive(Debug, Parser)]
#[command(name = "pinode", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Without a command: the wizard.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The heading of the options every command takes, so that `pinode CMD --help` shows a
/// command's own options apart from them.
const GLOBAL: &str = "Global options";

#[derive(Debug, Args)]
pub struct Global {
    /// More detail: why the OS generation and first-boot route were chosen (inspect,
    /// prepare, render), each file written or changed (patch, render), how a card is written
    /// (flash).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,
    /// The OS catalog (Imager OS list v4), a URL or a file [default: Raspberry Pi's].
    #[arg(long, global = true, value_name = "URL|FILE", env = "PINODE_CATALOG", help_heading = GLOBAL)]
    pub catalog: Option<String>,
    /// Where downloads and base images are kept [default: $XDG_CACHE_HOME/pinode].
    #[arg(long, global = true, value_name = "DIR", env = "PINODE_CACHE_DIR", help_heading = GLOBAL)]
    pub cache_dir: Option<PathBuf>,
    /// Use only the cache (and its copy of the catalog); never touch the network.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub offline: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Questions in the terminal, a saved profile, then cards or image files (the default).
    Wizard,
    /// Validate profiles and print their JSON Schema.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Show an image's or card's partitions, OS generation and customisation state.
    Inspect(InspectArgs),
    /// Customise an existing image file or card in place (cost: the size of the change).
    Patch(PatchArgs),
    /// Write one ready image per node (no root, the base image untouched).
    Prepare(PrepareArgs),
    /// Write a node's first-boot files and boot-file edits to a folder, touching no image.
    Render(RenderArgs),
    /// The images the OS catalog offers.
    #[command(subcommand)]
    Os(OsCommand),
    /// Download an image into the cache, verify it and decompress it once.
    Download(DownloadArgs),
    /// Show or empty the image cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// List the disks a card could be written to, each with a verdict (Linux).
    Devices(DevicesArgs),
    /// Write and verify one card per node, one after another (Linux, needs write access to
    /// the card).
    Flash(FlashArgs),
    /// Write an image prepared earlier (HOST.img, .img.xz/.zst/.gz, a CI artifact) to a card,
    /// checked against its .sha256 first, written and read back as flash does (Linux).
    Write(WriteArgs),
    /// Fetch the cluster's kubeconfig from its founding server over SSH (checked against
    /// pinode's known_hosts) and write it to a file or merge it into your kubeconfig.
    Kubeconfig(KubeconfigArgs),
    /// Show where each node is after the flash (first boot, K3s, Ready, the runner), read
    /// over SSH with pinode's known_hosts; --watch waits until all are Ready.
    Status(StatusArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Validate a profile and print the expanded node list.
    Check {
        /// The profile (YAML) to check.
        profile: PathBuf,
        /// Treat what this machine lacks as errors (an unset `*_env` variable, CI without a
        /// cluster token): exit 1, as `prepare` would.
        #[arg(long)]
        strict: bool,
    },
    /// Print the profile format's JSON Schema.
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum OsCommand {
    /// List the catalog's images with their aliases.
    List {
        /// Also fetch every remote sub-list (third-party systems); slower.
        #[arg(long)]
        all: bool,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// A catalog alias (raspios-lite-arm64, raspios-lite-arm64@2025-10-01) or an https://
    /// URL [default: the profile's os.image, else raspios-lite-arm64].
    #[arg(long = "os", value_name = "ALIAS|URL")]
    pub os: Option<String>,
    /// SHA-256 of the uncompressed image (required for a URL).
    #[arg(long)]
    pub sha256: Option<String>,
    /// Take os.image and os.sha256 from this profile.
    #[arg(long, short)]
    pub profile: Option<PathBuf>,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show what the cache holds.
    List {
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Delete every cached image and catalog copy (entries in use are left alone).
    Clean,
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Also list loop devices.
    #[arg(long)]
    pub all: bool,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
// The card options say how they apply to flash's several cards.
#[command(
    mut_arg("yes", |a| a.help("Do not ask before writing a card named with --device")),
    mut_arg("full", |a| a.help(FLASH_FULL)),
    mut_arg("allow_non_removable", |a| a.help(
        "Accept a disk that is not removable (a loop device, a USB-SATA bridge that hides the \
         flag); only with --device"
    )),
    mut_arg("unmount", |a| a.help(
        "Unmount the card's mounted partitions first; only with --device"
    )),
)]
pub struct FlashArgs {
    /// The profile (YAML) that describes the nodes.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// Flash only these nodes (repeatable), in this order; default: all, in profile order.
    #[arg(long = "node", value_name = "HOST")]
    pub nodes: Vec<String>,
    /// The card to write: once for every node (cards are swapped in the same reader), or once
    /// per node, in order. Default: ask, and watch for a card to be inserted.
    #[arg(long = "device", value_name = "PATH")]
    pub devices: Vec<PathBuf>,
    /// Cards written at once (1-16; default 4, also for --parallel alone) when several
    /// nodes get several cards: one --device per node, or cards inserted one after another
    /// (each gets the next node as it is confirmed). A failed card does not stop the others;
    /// the summary names the nodes to redo.
    #[arg(
        long,
        value_name = "N",
        num_args = 0..=1,
        default_missing_value = "4",
        value_parser = clap::value_parser!(u16).range(1..=16),
        conflicts_with = "serial"
    )]
    pub parallel: Option<u16>,
    /// One card after another (as --parallel 1): a failed card can be retried at once.
    #[arg(long)]
    pub serial: bool,
    #[command(flatten)]
    pub card: CardArgs,
    /// The base image (raw, .xz, .gz or .zst); default: the profile's os.image.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// One JSON document on stdout (the summary); questions still go to stderr.
    #[arg(long)]
    pub json: bool,
}

/// How a card is written: the options `flash` and `write` share. Their help is `write`'s
/// (one card); `FlashArgs` words four of them for several cards named or found.
#[derive(Debug, Args)]
pub struct CardArgs {
    /// Do not ask before writing the card.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Skip reading the card back.
    #[arg(long)]
    pub no_verify: bool,
    /// Write every byte of the image, free space included. By default only the blocks the
    /// .bmap names are written, or without one those the image's file systems use.
    #[arg(long)]
    pub full: bool,
    /// Accept a disk that is not removable (a loop device, a USB-SATA bridge that hides the
    /// flag).
    #[arg(long)]
    pub allow_non_removable: bool,
    /// Unmount the card's mounted partitions first.
    #[arg(long)]
    pub unmount: bool,
}

/// `flash --full`'s help: flash has no .bmap, only the file systems.
const FLASH_FULL: &str = "Write every byte of the image, free space included. By default only \
the blocks the image's ext4 and FAT file systems use are written (plus their metadata, the \
partition table and anything outside a known file system), and only those are read back";

#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The prepared image: HOST.img, or HOST.img.xz / .zst / .gz. Its .sha256 and .bmap
    /// beside it are used when present. Never modified.
    pub image: PathBuf,
    /// The card to write (a whole disk, e.g. /dev/sdb or /dev/mmcblk0).
    #[arg(long, value_name = "PATH")]
    pub device: PathBuf,
    #[command(flatten)]
    pub card: CardArgs,
    /// One JSON document on stdout (the card's report); questions still go to stderr.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An image file (.img) or a block device.
    pub target: PathBuf,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PatchArgs {
    /// The image file (.img) or card to change in place.
    pub target: PathBuf,
    /// The profile (YAML) that describes the nodes.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// The node to apply (may be omitted when the profile has exactly one).
    #[arg(long, value_name = "HOST")]
    pub node: Option<String>,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The profile (YAML) that describes the nodes.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// The folder HOST.img (or HOST.img.xz|zst) and its .sha256 are written to; created
    /// when missing.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// The base image (raw, .xz, .gz or .zst); default: the profile's os.image when it is a
    /// local path.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Prepare only these nodes (repeatable); default: all.
    #[arg(long = "node", value_name = "HOST")]
    pub nodes: Vec<String>,
    /// Compress each image (HOST.img.xz, HOST.img.zst), with a .sha256 of the compressed
    /// file.
    #[arg(long, value_enum, default_value = "none")]
    pub compress: Compression,
    /// Also write HOST.img.bmap: the blocks the image's file systems use, for
    /// `bmaptool copy HOST.img[.xz] /dev/sdX`, which then writes and checks only those.
    #[arg(long)]
    pub bmap: bool,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The profile (YAML) that describes the nodes.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// The node to render (may be omitted when the profile has exactly one).
    #[arg(long, value_name = "HOST")]
    pub node: Option<String>,
    /// The folder the files are written to (boot/, cmdline.txt.append, config.txt.append,
    /// README.txt); created when missing.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Read the OS generation from this image (read-only) and show the edited cmdline.txt
    /// and config.txt; default: the profile's os.image when it is a local path.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Render for this generation without an image.
    #[arg(long, value_enum, conflicts_with = "image")]
    pub generation: Option<Generation>,
    /// First-boot route (overrides the profile's os.init).
    #[arg(long, value_enum)]
    pub init: Option<InitRoute>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The profile (YAML) of the cluster.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// Only this node (repeatable) [default: every node of the profile].
    #[arg(long, value_name = "HOST")]
    pub node: Vec<String>,
    /// Poll until every node is Ready (and the runner running), one fails, or --timeout
    /// passes; a table on a terminal, one line per change otherwise.
    #[arg(long)]
    pub watch: bool,
    /// How long to wait in all (with --watch) or for each connection: 90s, 15m, 1h.
    #[arg(long, value_name = "DUR", default_value = "15m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// One JSON document on stdout: every node's state and timings.
    #[arg(long)]
    pub json: bool,
    /// Reach HOST at this address instead of HOST.local (repeatable).
    #[arg(long, value_name = "HOST=IP[:PORT]")]
    pub address: Vec<pinode::remote::AddressOverride>,
}

/// The longest `--timeout`: a week (a deadline beyond the clock's range would not be one).
const MAX_TIMEOUT: u64 = 7 * 24 * 3600;

/// `90`, `90s`, `15m`, `1h`: a duration of whole seconds, minutes or hours (1 s to a week).
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?} is not a duration from 1s to 168h: use e.g. 90s, 15m or 1h");
    let (number, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => (&s[..at], &s[at..]),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
    .filter(|s| (1..=MAX_TIMEOUT).contains(s))
    .ok_or_else(bad)?;
    Ok(std::time::Duration::from_secs(seconds))
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The profile (YAML) of the cluster.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// Merge into $KUBECONFIG (its first file), else ~/.kube/config: only this cluster's
    /// cluster, user and context are replaced; the earlier file is kept as FILE.bak.
    #[arg(long, conflicts_with = "output", required_unless_present = "output")]
    pub merge: bool,
    /// Write the cluster's kubeconfig alone to this file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The name of the cluster, user and context [default: the profile's cluster.name].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// With --merge: make it the current context (it is anyway when there was none).
    #[arg(long, requires = "merge")]
    pub set_current: bool,
    /// Reach HOST at this address instead of HOST.local (repeatable).
    #[arg(long, value_name = "HOST=IP[:PORT]")]
    pub address: Vec<pinode::remote::AddressOverride>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every argument and option of every (sub)command, at any depth, says what it is for in
    /// `--help`; the global options are listed under their own heading.
    #[test]
    fn durations_parse_in_seconds_minutes_and_hours() {
        use std::time::Duration;
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in [
            "",
            "0",
            "0s",
            "m",
            "5x",
            "-1s",
            "1.5m",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
                if arg.is_global_set() && arg.get_help_heading() != Some(GLOBAL) {
                    missing.push(format!("{path} {id}: global, not under {GLOBAL:?}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {}: no about", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "pinode", &mut missing);
        assert!(missing.is_empty(), "without help:\n{}", missing.join("\n"));
    }
}
