//! A flash run with nobody to answer: what it needs, and what to say when it lacks it.
//!
//! Questions are read from standard input. When it is closed (`</dev/null`, a cron job, a
//! pipe that ended) nobody can pick, swap or confirm a card, and "no answer" is not what
//! the person needs to hear: they need the command line that asks nothing, one `--device`
//! per node (named in node order) and `--yes`. This module says which nodes lack a card and
//! shows that command, built from the run's own options.

use super::FlashOptions;
use crate::commands::Sources;

/// Whether nobody needs to be asked: every node has its own named card (one card for one
/// node counts) and `--yes` was given. A single `--device` for several nodes asks for each
/// card to be swapped in.
pub fn unattended(devices: usize, yes: bool, nodes: usize) -> bool {
    yes && devices > 0 && (devices == nodes || nodes == 1)
}

/// The one-line error for a run that needs answers while standard input is closed: which
/// nodes lack a `--device`, or that `--yes` is missing, and the command line that asks
/// nothing. `hosts` are the nodes of the run, in order; `sources` are the run's global
/// options (catalog, cache, offline), kept in the command because `sudo` drops the
/// environment variables they may have come from.
pub fn what_is_missing(args: &FlashOptions, sources: &Sources, hosts: &[String]) -> String {
    let named = args.devices.len();
    // `check_flags` allows no device, one for all, or one per node; one for all serves the
    // first node in the command shown.
    let lacking: &[String] = if named >= hosts.len() {
        &[]
    } else {
        &hosts[named.min(1)..]
    };
    let command = command_line(args, sources, hosts);
    if lacking.is_empty() {
        return format!(
            "standard input is closed, so nobody can confirm writing the named card(s): add \
             --yes to write them without asking: {command}"
        );
    }
    let why = if named == 0 {
        "choose the cards"
    } else {
        "swap the cards in the reader"
    };
    format!(
        "standard input is closed, so nobody can {why}: name one card per node with --device, \
         in node order, and add --yes (no --device for {}): {command}",
        lacking.join(", ")
    )
}

/// The command that writes the nodes of `results` that were not written (failed, skipped,
/// not reached), each on the card it was meant for when it had one (a card pulled out and
/// put back, or replaced in the same reader, has the same name), `None` when every node was
/// written. The summary of a batch ends with it, so that redoing two cards of ten is one
/// line to copy.
pub(super) fn redo_command(
    args: &FlashOptions,
    sources: &Sources,
    results: &[super::NodeResult],
) -> Option<String> {
    let left: Vec<&super::NodeResult> = results
        .iter()
        .filter(|r| r.outcome != super::Outcome::Written)
        .collect();
    if left.is_empty() {
        return None;
    }
    let hosts: Vec<String> = left.iter().map(|r| r.hostname.clone()).collect();
    // Named cards only when every node left had one: `--device` is positional.
    let devices: Option<Vec<_>> = left.iter().map(|r| r.device.clone()).collect();
    let devices = devices.unwrap_or_default();
    let redo = FlashOptions {
        nodes: hosts.clone(),
        // Flags that apply only to named cards go when none is named.
        allow_non_removable: args.allow_non_removable && !devices.is_empty(),
        unmount: args.unmount && !devices.is_empty(),
        devices,
        ..args.clone()
    };
    Some(command_line(&redo, sources, &hosts))
}

/// `sudo pinode flash …` with this run's options, a `--device` for every node (the named
/// one, else a placeholder naming the node) and `--yes`.
fn command_line(args: &FlashOptions, sources: &Sources, hosts: &[String]) -> String {
    let mut words = vec!["sudo pinode flash".to_string()];
    if let Some(catalog) = &sources.catalog {
        // A URL with credentials (user:password@, a token in the query) is not printed, as
        // nowhere else: this line ends up in terminals and CI logs.
        let shown = pinode::fetch::Redacted(catalog).to_string();
        words.push(if shown == *catalog {
            format!("--catalog {}", crate::term::shell_word(catalog))
        } else {
            "--catalog '<your catalog URL: not shown, it holds credentials>'".into()
        });
    }
    if let Some(dir) = &sources.cache_dir {
        words.push(format!(
            "--cache-dir {}",
            crate::term::shell_word(&dir.display().to_string())
        ));
    }
    if sources.offline {
        words.push("--offline".into());
    }
    words.push(format!(
        "--profile {}",
        crate::term::shell_word(&args.profile.display().to_string())
    ));
    for node in &args.nodes {
        words.push(format!("--node {}", crate::term::shell_word(node)));
    }
    if let Some(image) = &args.image {
        words.push(format!(
            "--image {}",
            crate::term::shell_word(&image.display().to_string())
        ));
    }
    for (flag, on) in [
        ("--no-verify", !args.verify),
        ("--full", args.full),
        ("--allow-non-removable", args.allow_non_removable),
        ("--unmount", args.unmount),
    ] {
        if on {
            words.push(flag.to_string());
        }
    }
    for (i, host) in hosts.iter().enumerate() {
        let device = match args.devices.get(i) {
            Some(path) => crate::term::shell_word(&path.display().to_string()),
            None => format!("<card for {host}>"),
        };
        words.push(format!("--device {device}"));
    }
    words.push("--yes".into());
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn options(devices: &[&str], yes: bool) -> FlashOptions {
        FlashOptions {
            profile: PathBuf::from("my lab.yaml"),
            nodes: Vec::new(),
            devices: devices.iter().map(PathBuf::from).collect(),
            yes,
            verify: true,
            full: false,
            allow_non_removable: true,
            unmount: false,
            image: None,
            at_once: 1,
        }
    }

    fn hosts() -> Vec<String> {
        ["cp", "worker-1", "worker-2"].map(String::from).to_vec()
    }

    #[test]
    fn asks_nothing_only_with_a_card_per_node_and_yes() {
        assert!(unattended(3, true, 3));
        assert!(unattended(1, true, 1));
        assert!(!unattended(3, false, 3));
        assert!(!unattended(1, true, 3), "one reader: the cards are swapped");
        assert!(!unattended(0, true, 1));
    }

    #[test]
    fn names_the_nodes_without_a_card_and_the_command_that_asks_nothing() {
        let none = what_is_missing(&options(&[], false), &Sources::default(), &hosts());
        assert_eq!(
            none,
            "standard input is closed, so nobody can choose the cards: name one card per node \
             with --device, in node order, and add --yes (no --device for cp, worker-1, \
             worker-2): sudo pinode flash --profile 'my lab.yaml' --allow-non-removable \
             --device <card for cp> --device <card for worker-1> --device <card for worker-2> \
             --yes"
        );
        let one = what_is_missing(&options(&["/dev/sdb"], true), &Sources::default(), &hosts());
        assert!(one.contains("swap the cards"), "{one}");
        assert!(
            one.contains("(no --device for worker-1, worker-2)"),
            "{one}"
        );
        assert!(
            one.contains("--device /dev/sdb --device <card for worker-1>"),
            "{one}"
        );
        let all = what_is_missing(
            &options(&["/dev/sdb", "/dev/sdc", "/dev/sdd"], false),
            &Sources::default(),
            &hosts(),
        );
        assert!(
            all.contains("add --yes to write them without asking"),
            "{all}"
        );
        assert!(all.ends_with("--device /dev/sdd --yes"), "{all}");
    }

    /// The global options of the run stay in the command: under `sudo` the environment
    /// variables they may have come from (PINODE_CATALOG, PINODE_CACHE_DIR) are gone.
    #[test]
    fn the_command_keeps_the_runs_catalog_cache_and_offline() {
        let sources = Sources {
            catalog: Some("/srv/my os list.json".into()),
            cache_dir: Some(PathBuf::from("/var/cache/pinode")),
            offline: true,
        };
        let text = what_is_missing(&options(&[], false), &sources, &hosts());
        assert!(
            text.contains(
                "sudo pinode flash --catalog '/srv/my os list.json' --cache-dir /var/cache/pinode \
                 --offline --profile 'my lab.yaml'"
            ),
            "{text}"
        );
        let secret = Sources {
            catalog: Some("https://user:s3cret@os.example/list.json?token=t0ken".into()),
            ..Sources::default()
        };
        let text = what_is_missing(&options(&[], false), &secret, &hosts());
        assert!(
            !text.contains("s3cret") && !text.contains("t0ken"),
            "{text}"
        );
        assert!(text.contains("--catalog '<your catalog URL"), "{text}");
    }
}
