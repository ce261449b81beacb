//! Which card gets the next node, and the questions around it.
//!
//! Three ways to name cards: one `--device` per node (unattended with `--yes`), one
//! `--device` for all nodes (a single reader; pinode waits while the cards are swapped), or
//! none (pinode watches for a card to be inserted and asks before writing it). Whatever the
//! way, the refusals of `pinode::device::safety` apply, and a card that already holds a node is
//! named in the question.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::term::prompt::{Prompter, Reply};
use pinode::bootfs::manifest::Manifest;
use pinode::device::discover::{BlockDevice, Located, SystemView};
use pinode::device::identity::{self, Identity};
use pinode::device::safety::{Overrides, assess, blocking, explain, one_line};
use pinode::image::Image;
use pinode::profile::NodeConfig;
use pinode::ui::{Untrusted, terminal_safe};

/// How often the disks are listed again while waiting for a card.
const POLL: Duration = Duration::from_millis(500);

pub enum Choice {
    Device(Box<BlockDevice>),
    Skip,
    Abort,
}

pub enum AfterFailure {
    Retry,
    Next,
    Abort,
}

/// How the cards were named: the `--device`s, and `--yes`.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    pub devices: Vec<PathBuf>,
    /// Write named cards without asking.
    pub yes: bool,
    /// What to say when standard input closes with a question pending: the options that
    /// ask nothing (see [`super::unattended::what_is_missing`]).
    pub when_closed: String,
}

pub struct Targets {
    devices: Vec<PathBuf>,
    yes: bool,
    view: SystemView,
    overrides: Overrides,
    image_len: u64,
    node_count: usize,
    prompter: Option<Prompter>,
    when_closed: String,
    /// Cards written in this run: (device, hostname).
    written: Vec<(PathBuf, String)>,
    /// Cards being written now (several at once): never offered for the next node, though
    /// their partition table is gone until their write ends.
    busy: Vec<PathBuf>,
}

/// Checks a device named on the command line (or typed at a prompt): a whole disk, and no
/// refusal that the flags do not lift.
pub fn check_named(
    view: &SystemView,
    path: &Path,
    image_len: Option<u64>,
    overrides: &Overrides,
) -> Result<BlockDevice, Error> {
    let disk = match view.locate(path)? {
        Located::Disk(disk) => disk,
        Located::Partition { partition, disk } => {
            return Err(Error::Refused(format!(
                "{} is a partition of {}: pinode writes whole cards; name the disk ({})",
                partition.display(),
                disk.path.display(),
                disk.path.display()
            )));
        }
    };
    let refusals = assess(&disk, image_len);
    let blocked = blocking(&refusals, overrides);
    if !blocked.is_empty() {
        return Err(Error::Refused(explain(&disk, &blocked, overrides)));
    }
    Ok(disk)
}

/// Refuses a batch that names one card twice: three nodes "written" to one card leave one
/// node and two lost ones. Compared by device number and backing file, not by name.
pub fn check_distinct(named: &[(PathBuf, BlockDevice)]) -> Result<(), Error> {
    for (i, (path_a, a)) in named.iter().enumerate() {
        for (path_b, b) in &named[..i] {
            if identity::overlap(&a.identities(), &b.identities()) {
                return Err(Error::Refused(format!(
                    "--device {} and --device {} are the same card ({}): one card cannot hold \
                     two nodes; give one --device per node, or a single --device for a reader \
                     the cards are swapped in",
                    path_b.display(),
                    path_a.display(),
                    a.path.display()
                )));
            }
        }
    }
    Ok(())
}

/// The base image's identities (the file, or the device and its backing file), so that a
/// card that *is* the base image is refused before it is overwritten by itself.
#[derive(Default)]
pub struct Source {
    paths: Vec<(PathBuf, Vec<Identity>)>,
}

impl Source {
    /// Adds `path` (followed through symlinks; a block device with its backing file).
    pub fn add(&mut self, view: &SystemView, path: &Path) {
        let mut ids: Vec<Identity> = Identity::of_path(path).into_iter().collect();
        if matches!(ids.first(), Some(Identity::Device { .. }))
            && let Ok(Located::Disk(disk) | Located::Partition { disk, .. }) = view.locate(path)
        {
            ids.extend(disk.identities());
        }
        if !ids.is_empty() {
            self.paths.push((path.to_path_buf(), ids));
        }
    }

    /// An error when writing `disk` would overwrite the base image.
    pub fn refuse(&self, disk: &BlockDevice) -> Result<(), Error> {
        let target = disk.identities();
        match self
            .paths
            .iter()
            .find(|(_, ids)| identity::overlap(ids, &target))
        {
            None => Ok(()),
            Some((path, _)) => Err(Error::Refused(format!(
                "{} is the base image {} itself{}: writing it would destroy the image while \
                 reading it; copy the image elsewhere or name another card",
                disk.path.display(),
                path.display(),
                disk.backing_file
                    .as_deref()
                    .map(|f| format!(" (its loop device's backing file is {f})"))
                    .unwrap_or_default()
            ))),
        }
    }
}

impl Targets {
    /// `prompter`: standard input, when it was already opened (to see whether it is closed).
    pub fn new(
        naming: &TargetOptions,
        view: SystemView,
        overrides: Overrides,
        image_len: u64,
        node_count: usize,
        prompter: Option<Prompter>,
    ) -> Targets {
        Targets {
            devices: naming.devices.clone(),
            yes: naming.yes,
            view,
            overrides,
            image_len,
            node_count,
            prompter,
            when_closed: naming.when_closed.clone(),
            written: Vec::new(),
            busy: Vec::new(),
        }
    }

    /// Nobody needs to be asked: every node has its own named device and `--yes` was given.
    fn unattended(&self) -> bool {
        super::unattended::unattended(self.devices.len(), self.yes, self.node_count)
    }

    fn prompter(&mut self) -> &Prompter {
        self.prompter.get_or_insert_with(Prompter::new)
    }

    pub fn remember(&mut self, disk: &BlockDevice, hostname: &str) {
        self.written.push((disk.path.clone(), hostname.to_string()));
    }

    /// `disk` is being written: not a card for another node until [`Targets::done`].
    pub fn writing(&mut self, disk: &BlockDevice) {
        self.busy.push(disk.path.clone());
    }

    /// The write of `disk` ended (written or failed).
    pub fn done(&mut self, disk: &BlockDevice) {
        self.busy.retain(|p| p != &disk.path);
    }

    /// The card for node number `i`.
    pub fn choose(&mut self, i: usize, node: &NodeConfig) -> Result<Choice, Error> {
        match self.devices.len() {
            0 => self.watch_for_card(node),
            n if n == self.node_count => {
                let path = self.devices[i].clone();
                self.named(&path, node)
            }
            _ => {
                let path = self.devices[0].clone();
                if i > 0 || !self.written.is_empty() {
                    return self.swap_in(&path, node);
                }
                self.named(&path, node)
            }
        }
    }

    /// A device from the command line: checked, then confirmed unless `--yes`.
    fn named(&mut self, path: &Path, node: &NodeConfig) -> Result<Choice, Error> {
        let disk = check_named(&self.view, path, Some(self.image_len), &self.overrides)?;
        if self.yes {
            return Ok(Choice::Device(Box::new(disk)));
        }
        Ok(self.confirm(disk, node))
    }

    /// One reader, several cards: wait until the card in it is not the one just written.
    fn swap_in(&mut self, path: &Path, node: &NodeConfig) -> Result<Choice, Error> {
        loop {
            let question = format!(
                "Insert the card for {} into {} and press Enter (s: skip this node, a: abort):",
                node.hostname,
                path.display()
            );
            match self.prompter().ask(&question) {
                Reply::Line(l) if l.eq_ignore_ascii_case("s") => return Ok(Choice::Skip),
                Reply::Line(l) if l.eq_ignore_ascii_case("a") => return Ok(Choice::Abort),
                Reply::Line(_) => {}
                Reply::Closed | Reply::Pending => return Ok(self.nobody_to_ask(node)),
            }
            let disk = match check_named(&self.view, path, Some(self.image_len), &self.overrides) {
                Ok(disk) => disk,
                Err(e) => {
                    eprintln!("{}", terminal_safe(&e.to_string()));
                    continue;
                }
            };
            if let Some(host) = self.just_written(&disk) {
                eprintln!(
                    "{} still holds {}, written a moment ago: swap the card",
                    disk.path.display(),
                    Untrusted(&host)
                );
                continue;
            }
            if self.yes {
                return Ok(Choice::Device(Box::new(disk)));
            }
            return Ok(self.confirm(disk, node));
        }
    }

    /// No device named: take the one usable card, ask which of several, or wait for one.
    fn watch_for_card(&mut self, node: &NodeConfig) -> Result<Choice, Error> {
        loop {
            let cards = self.usable_cards()?;
            match cards.as_slice() {
                [] => {}
                [card] => return Ok(self.confirm(card.clone(), node)),
                several => {
                    eprintln!("Cards found:");
                    for (n, card) in several.iter().enumerate() {
                        eprintln!("  {}) {}", n + 1, terminal_safe(&one_line(card)));
                    }
                    let question = format!(
                        "Which one for {}? (number, Enter to look again, s: skip, a: abort)",
                        node.hostname
                    );
                    match self.prompter().ask(&question) {
                        Reply::Line(l) if l.eq_ignore_ascii_case("s") => return Ok(Choice::Skip),
                        Reply::Line(l) if l.eq_ignore_ascii_case("a") => return Ok(Choice::Abort),
                        Reply::Line(l) => {
                            if let Some(card) = l
                                .parse::<usize>()
                                .ok()
                                .and_then(|n| n.checked_sub(1))
                                .and_then(|n| cards.get(n))
                            {
                                return Ok(self.confirm(card.clone(), node));
                            }
                        }
                        Reply::Closed | Reply::Pending => return Ok(self.nobody_to_ask(node)),
                    }
                    continue;
                }
            }
            // Nothing usable: wait until a card is (a new disk, or media in an empty reader),
            // or for the user.
            self.prompter().show(&format!(
                "Insert the card for {} (Enter: look again, a device path, s: skip, a: abort):",
                node.hostname
            ));
            loop {
                match self.prompter().poll(POLL) {
                    Reply::Pending => {
                        if !self.usable_cards()?.is_empty() {
                            eprintln!();
                            break;
                        }
                    }
                    Reply::Line(l) if l.eq_ignore_ascii_case("s") => return Ok(Choice::Skip),
                    Reply::Line(l) if l.eq_ignore_ascii_case("a") => return Ok(Choice::Abort),
                    Reply::Line(l) if l.starts_with('/') => {
                        let typed = Overrides::default();
                        match check_named(&self.view, Path::new(&l), Some(self.image_len), &typed) {
                            Ok(disk) if self.busy.contains(&disk.path) => {
                                eprintln!(
                                    "{} is being written for another node",
                                    terminal_safe(&disk.path.display().to_string())
                                );
                                break;
                            }
                            Ok(disk) => return Ok(self.confirm(disk, node)),
                            Err(e) => {
                                eprintln!("{}", terminal_safe(&e.to_string()));
                                break;
                            }
                        }
                    }
                    Reply::Line(_) => break,
                    Reply::Closed => return Ok(self.nobody_to_ask(node)),
                }
            }
        }
    }

    /// Usable removable disks that do not hold a card written in this run.
    fn usable_cards(&self) -> Result<Vec<BlockDevice>, Error> {
        Ok(self
            .view
            .scan()?
            .into_iter()
            .filter(|d| assess(d, Some(self.image_len)).is_empty())
            .filter(|d| self.just_written(d).is_none())
            .filter(|d| !self.busy.contains(&d.path))
            .collect())
    }

    /// The node this run wrote to the card now in `disk`, if it is one of them.
    fn just_written(&self, disk: &BlockDevice) -> Option<String> {
        let host = contents(&disk.path).pinode_host?;
        self.written
            .iter()
            .any(|(path, h)| path == &disk.path && h == &host)
            .then_some(host)
    }

    /// Shows the card and what is on it, and asks.
    fn confirm(&mut self, disk: BlockDevice, node: &NodeConfig) -> Choice {
        let now = contents(&disk.path);
        let mut holds = now.text.clone();
        if let Some(host) = &now.pinode_host
            && host != &node.hostname
        {
            holds = format!("{holds}: another node than {}", node.hostname);
        }
        // `holds` and the description are read from the card and sysfs: escaped, so that a
        // card cannot repaint this question (each part is escaped where it is made, too).
        eprintln!(
            "{}: {}, {}, {}\n  holds now: {}",
            Untrusted(&disk.path.display().to_string()),
            disk.description(),
            pinode::ui::size::card(disk.size_bytes),
            disk.kind_and_bus(),
            Untrusted(&holds),
        );
        let question = format!(
            "Erase it and write {}? Everything on it will be lost.",
            node.hostname
        );
        match self.prompter().confirm(&question) {
            Some(true) => Choice::Device(Box::new(disk)),
            Some(false) => {
                eprintln!("{} not written", node.hostname);
                Choice::Skip
            }
            None => self.nobody_to_ask(node),
        }
    }

    /// After a failed card: retry, go on, or stop. Unattended runs go on to the next node
    /// (the summary and the exit status report the failure).
    pub fn after_failure(&mut self, node: &NodeConfig) -> AfterFailure {
        if self.unattended() {
            return AfterFailure::Next;
        }
        let question = format!(
            "{} failed. r: retry (with another card if you like), s: skip it, a: abort",
            node.hostname
        );
        loop {
            match self.prompter().ask(&question) {
                Reply::Line(l) if l.eq_ignore_ascii_case("r") => return AfterFailure::Retry,
                Reply::Line(l) if l.eq_ignore_ascii_case("s") => return AfterFailure::Next,
                Reply::Line(l) if l.eq_ignore_ascii_case("a") => return AfterFailure::Abort,
                Reply::Line(_) => continue,
                Reply::Closed | Reply::Pending => return AfterFailure::Abort,
            }
        }
    }

    /// Standard input closed while a question about `node` was pending (it was open at the
    /// start, or the run would have stopped before any work): the batch stops, saying which
    /// options ask nothing; the summary tells what was written.
    fn nobody_to_ask(&self, node: &NodeConfig) -> Choice {
        eprintln!(
            "\nerror: no answer for {}: {}",
            node.hostname,
            terminal_safe(&self.when_closed)
        );
        Choice::Abort
    }
}

/// What the card at `path` holds now, in one line (escaped), for a question before it is
/// erased (`pinode write` asks it too).
pub fn holds_now(path: &Path) -> String {
    contents(path).text
}

/// What a card holds now, for the question before it is erased.
struct Contents {
    text: String,
    pinode_host: Option<String>,
}

fn contents(path: &Path) -> Contents {
    let mut image = match Image::open(path, false) {
        Ok(image) => image,
        Err(_) => {
            return Contents {
                text: partitions_only(path),
                pinode_host: None,
            };
        }
    };
    let manifest = image.with_boot_fs(|fs| Manifest::read(fs)).ok().flatten();
    let parts = image.table().partitions.len();
    if let Some(m) = manifest {
        return Contents {
            text: format!(
                "pinode node {} ({}, {})",
                Untrusted(&m.hostname),
                m.role.as_str(),
                m.generation.as_str()
            ),
            pinode_host: Some(m.hostname),
        };
    }
    let os = image
        .detect_os(None, None)
        .ok()
        .and_then(|os| os.pretty_name.clone().or(Some(os.generation.to_string())));
    Contents {
        text: format!(
            "{} ({parts} partitions, not prepared by pinode)",
            os.map(|name| Untrusted(&name).to_string())
                .unwrap_or_else(|| "a Raspberry Pi boot partition".into())
        ),
        pinode_host: None,
    }
}

/// For a card without a Raspberry Pi boot partition: how many partitions it has, if any.
fn partitions_only(path: &Path) -> String {
    let table = pinode::disk::open(path, false)
        .ok()
        .and_then(|(file, len, _)| {
            let mut disk = pinode::disk::OverlayDisk::new(file, len);
            pinode::guard::contain(|| pinode::disk::read_partition_table(&mut disk, len))
                .ok()?
                .ok()
        });
    match table {
        Some(t) => format!(
            "{} partition table with {} partition(s), no Raspberry Pi boot partition",
            t.kind,
            t.partitions.len()
        ),
        None => "no partition table (empty, or data pinode does not recognise)".into(),
    }
}
