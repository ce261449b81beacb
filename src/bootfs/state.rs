//! What a boot partition is set up to do (ssh, cgroups, a pending first boot, the node it was
//! prepared for, the node's own report), read back for `inspect`.

use serde::Serialize;

use super::cmdline::Cmdline;
use super::config_txt::ConfigTxt;
use super::manifest::Manifest;
use super::{BootFs, BootFsError};

/// Written by the node on first boot; stale once the card is customised again.
pub(crate) const STATUS_FILE: &str = "pinode-status.txt";

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

/// Reads a text file of the boot partition; `None` if it does not exist.
pub(super) fn read_text(
    fs: &BootFs<'_>,
    path: &'static str,
) -> Result<Option<String>, BootFsError> {
    match fs.read(path)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| BootFsError::NotText(path)),
    }
}
