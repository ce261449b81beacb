//! The image engine: applies a node's [`Customisation`] to a boot partition.
//!
//! Idempotent and minimal: files are rewritten only when their bytes differ, cmdline.txt and
//! config.txt keep every stock byte, and a manifest (`pinode/node.json`) records what pinode
//! added so that patching again with other values first takes the old values away. Patching
//! twice with the same values changes nothing the second time.

use serde::{Deserialize, Serialize};

use crate::bootfs::config_txt::ConfigTxt;
use crate::bootfs::{BootFs, BootFsError, Change, cmdline::Cmdline};
use crate::render::{CmdlineEdit, Customisation};

/// Where pinode records what it changed. Holds no secret.
pub const MANIFEST: &str = "pinode/node.json";
/// Where pinode keeps the image's own version of a file it replaces (Trixie's cloud-init
/// templates), to put it back when a later patch no longer needs the file.
pub const ORIGINALS: &str = "pinode/original";
/// Written by the node on first boot; stale once the card is customised again.
pub const STATUS_FILE: &str = "pinode-status.txt";

/// What pinode put on a boot partition, as recorded in [`MANIFEST`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub pinode: String,
    pub hostname: String,
    pub role: String,
    pub generation: String,
    pub init: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// cmdline.txt tokens that were not there before pinode.
    #[serde(default)]
    pub cmdline_added: Vec<String>,
    /// The image's own `key=value` tokens that pinode changed (put back when no longer set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmdline_replaced: Vec<String>,
    /// Files that did not exist before pinode (removed again when no longer wanted).
    #[serde(default)]
    pub files_created: Vec<String>,
    /// Files of the image that pinode replaced; the originals are under [`ORIGINALS`].
    #[serde(default)]
    pub files_replaced: Vec<String>,
}

impl Manifest {
    /// Reads the manifest of a boot partition, if it has a readable one.
    pub fn read(fs: &BootFs<'_>) -> Result<Option<Manifest>, BootFsError> {
        Ok(fs
            .read(MANIFEST)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }
}

/// What applying did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub files: Vec<(String, Change)>,
    pub removed: Vec<String>,
    pub restored: Vec<String>,
    pub cmdline: Change,
    pub cmdline_added: Vec<String>,
    pub config: Change,
}

/// Applies `c` to the open boot partition.
pub fn apply(fs: &mut BootFs<'_>, c: &Customisation) -> Result<ApplyReport, BootFsError> {
    let previous = Manifest::read(fs)?.unwrap_or_default();
    let mut report = ApplyReport::default();

    // cmdline.txt: take pinode's previous tokens away, then add this node's.
    let text = read_text(fs, "cmdline.txt")?.ok_or(BootFsError::Missing("cmdline.txt"))?;
    let mut cmdline = Cmdline::parse(&text);
    for token in &previous.cmdline_added {
        cmdline.remove(token);
    }
    for token in &previous.cmdline_replaced {
        if let Some((key, _)) = token.split_once('=')
            && cmdline.value_of(key).is_none()
        {
            cmdline.ensure(token);
        }
    }
    let baseline: Vec<String> = cmdline.tokens().map(str::to_string).collect();
    let mut tokens_replaced = Vec::new();
    for edit in &c.cmdline {
        match edit {
            CmdlineEdit::Ensure(token) => cmdline.ensure(token),
            CmdlineEdit::Set(key, value) => {
                if let Some(old) = cmdline.value_of(key).filter(|old| old != value) {
                    tokens_replaced.push(format!("{key}={old}"));
                }
                cmdline.set(key, value)
            }
        };
    }
    report.cmdline_added = cmdline
        .tokens()
        .filter(|t| !baseline.iter().any(|b| b == t))
        .map(str::to_string)
        .collect();
    report.cmdline = fs.write("cmdline.txt", cmdline.render().as_bytes())?;

    // config.txt: pinode's block at the end, only with lines not already in effect.
    let config_text = read_text(fs, "config.txt")?;
    let config = ConfigTxt::parse(config_text.as_deref().unwrap_or(""));
    let mut lines = Vec::new();
    if c.arm_64bit && !config.is_effective_everywhere("arm_64bit", "1") {
        lines.push("arm_64bit=1".to_string());
    }
    lines.extend(c.config_extra.iter().cloned());
    let rendered = config.render(&lines);
    report.config = if config_text.is_none() && lines.is_empty() {
        Change::Unchanged
    } else {
        fs.write("config.txt", rendered.as_bytes())?
    };

    // Files. A file of the image's own that pinode replaces is kept aside first, and put
    // back when a later patch no longer writes it.
    let mut created = Vec::new();
    let mut replaced = Vec::new();
    for file in &c.files {
        let was_created = previous.files_created.contains(&file.path);
        let was_replaced = previous.files_replaced.contains(&file.path);
        if !was_created && !was_replaced {
            if let Some(original) = fs.read(&file.path)? {
                copy_file(fs, &file.path, &original_path(&file.path), &original)?;
                replaced.push(file.path.clone());
            } else {
                created.push(file.path.clone());
            }
        } else {
            // pinode's own earlier version may hold secrets: clear it where it lies first.
            if fs.read(&file.path)?.as_deref() != Some(&file.contents[..]) {
                fs.scrub(&file.path)?;
            }
            if was_created {
                created.push(file.path.clone());
            } else {
                replaced.push(file.path.clone());
            }
        }
        let change = fs.write(&file.path, &file.contents)?;
        report.files.push((file.path.clone(), change));
    }
    let wanted = |path: &String| c.files.iter().any(|f| &f.path == path);
    for old in previous.files_created.iter().filter(|p| !wanted(p)) {
        fs.scrub(old)?;
        if fs.remove(old)? {
            report.removed.push(old.clone());
        }
    }
    for old in previous.files_replaced.iter().filter(|p| !wanted(p)) {
        if let Some(original) = fs.read(&original_path(old))? {
            fs.scrub(old)?;
            copy_file(fs, &original_path(old), old, &original)?;
            fs.remove(&original_path(old))?;
            report.restored.push(old.clone());
        }
    }
    if replaced.is_empty() {
        fs.remove(ORIGINALS)?;
    }
    if fs.remove(STATUS_FILE)? {
        report.removed.push(STATUS_FILE.to_string());
    }

    created.sort();
    replaced.sort();
    let manifest = Manifest {
        pinode: env!("CARGO_PKG_VERSION").to_string(),
        hostname: c.hostname.clone(),
        role: c.role.as_str().to_string(),
        generation: c.os.generation.as_str().to_string(),
        init: c.os.init.as_str().to_string(),
        instance_id: c.instance_id.clone(),
        cmdline_added: report.cmdline_added.clone(),
        cmdline_replaced: tokens_replaced,
        files_created: created,
        files_replaced: replaced,
    };
    let mut json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    json.push(b'\n');
    fs.write(MANIFEST, &json)?;
    Ok(report)
}

/// Copies `from` (whose bytes are `contents`) to `to`, timestamps included.
fn copy_file(
    fs: &mut BootFs<'_>,
    from: &str,
    to: &str,
    contents: &[u8],
) -> Result<(), BootFsError> {
    fs.write(to, contents)?;
    if let Some(times) = fs.times(from)? {
        fs.set_times(to, times)?;
    }
    Ok(())
}

fn original_path(path: &str) -> String {
    format!("{ORIGINALS}/{path}")
}

fn read_text(fs: &BootFs<'_>, path: &'static str) -> Result<Option<String>, BootFsError> {
    match fs.read(path)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| BootFsError::NotText(path)),
    }
}

/// What a boot partition is set up to do, for `inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct BootState {
    /// sshd will be enabled (`ssh` or `ssh.txt` present).
    pub ssh: bool,
    /// The memory cgroup is enabled on the kernel command line.
    pub cgroups: bool,
    /// `arm_64bit=1` is in effect for every board.
    pub arm_64bit: bool,
    /// A first-boot customisation is pending (firstrun.sh armed, or a cloud-init seed).
    pub firstboot: bool,
    /// The hostname the card was prepared for.
    pub hostname: Option<String>,
    /// pinode's record, when pinode prepared the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinode: Option<Manifest>,
    /// The node's first-boot report, when it has booted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Reads the customisation state of a boot partition mounted at `boot_mount` on the node.
pub fn boot_state(fs: &BootFs<'_>, boot_mount: &str) -> Result<BootState, BootFsError> {
    let cmdline = read_text(fs, "cmdline.txt")?.map(|t| Cmdline::parse(&t));
    let config = read_text(fs, "config.txt")?.map(|t| ConfigTxt::parse(&t));
    let manifest = Manifest::read(fs)?;
    let has = |t: &str| cmdline.as_ref().is_some_and(|c| c.contains(t));
    let firstrun_armed = match cmdline.as_ref().and_then(|c| c.value_of("systemd.run")) {
        Some(script) => {
            let on_fat = script
                .strip_prefix(boot_mount)
                .unwrap_or(script)
                .trim_start_matches('/');
            fs.is_file(on_fat)?
        }
        None => false,
    };
    let user_data = read_text(fs, "user-data")?;
    let seeded = user_data.as_deref().is_some_and(|u| {
        u.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    }) && cmdline
        .as_ref()
        .is_some_and(|c| c.value_of("ds").is_some_and(|v| v.starts_with("nocloud")));
    let seeded_hostname = user_data
        .as_deref()
        .and_then(|u| serde_yaml::from_str::<serde_yaml::Value>(u).ok())
        .and_then(|v| {
            v.get("hostname")
                .and_then(|h| h.as_str())
                .map(str::to_string)
        });
    let arm_64bit = config.as_ref().is_some_and(|c| {
        c.is_effective_everywhere("arm_64bit", "1")
            || c.previous_block().iter().any(|l| l.trim() == "arm_64bit=1")
    });
    let status = read_text(fs, STATUS_FILE)?;
    Ok(BootState {
        ssh: fs.is_file("ssh")? || fs.is_file("ssh.txt")?,
        cgroups: has("cgroup_enable=memory"),
        arm_64bit,
        firstboot: firstrun_armed || seeded,
        hostname: manifest
            .as_ref()
            .map(|m| m.hostname.clone())
            .or(seeded_hostname),
        pinode: manifest,
        status,
    })
}
