//! The cloud-init route (Trixie, Ubuntu Server): a NoCloud seed on the boot partition.
//!
//! Every file is produced by serialising typed values, never by pasting strings into YAML, so
//! no value can change the document's structure. The serialisation is JSON, which is YAML too:
//! cloud-init reads YAML 1.1, where a plain `no` (Norway's keyboard and country code), `on` or
//! `12:30` is a boolean or a number; JSON quotes every string, so each arrives as written. The seed holds the
//! password hash and the Wi-Fi key until first boot; a final `runcmd` overwrites the files
//! that carry secrets and leaves harmless stubs behind (cloud-init re-reads the seed on every
//! boot, so the files must stay parseable).

use serde::Serialize;
use std::collections::BTreeMap;

use crate::osinfo::{OsFamily, OsInfo};
use crate::plan::NodePlan;
use crate::profile::schema::SudoMode;
use crate::render::RenderError;
use crate::render::network::{WifiNetwork, netplan};

/// Groups the first user of Raspberry Pi OS belongs to; cloud-init creates missing ones.
const GROUPS: &str =
    "adm,dialout,cdrom,audio,video,plugdev,games,users,input,render,netdev,gpio,i2c,spi,sudo";

/// The groups of Ubuntu's own default user, by release: what `ubuntu` would have had.
///
/// canonical/cloud-init `config/cloud.cfg.tmpl`, `system_info.default_user.groups` for the
/// ubuntu variant: `[adm, cdrom, dip, lxd, sudo]` since 9d815c6f (2023-07-20, release 23.3,
/// "Remove default membership in redundant groups": audio, dialout, floppy, netdev, plugdev
/// and video are served by udev rules today), which is what 24.04 ships (branch
/// ubuntu/noble, 7f86d440). 22.04 keeps the old list through the Ubuntu patch
/// `debian/patches/retain-old-groups.patch` (branch ubuntu/jammy, a3a35b79).
///
/// Every group here exists on Ubuntu Server for Raspberry Pi: the classic ones come from
/// base-passwd, `lxd` is made at image build time (livecd-rootfs `live-build/auto/config`,
/// because cloud-init would create it as a normal, not a system, group). A missing group is
/// not an error: cloud-init's `create_user` runs `groupadd` for it first
/// (cloudinit/distros/__init__.py, ubuntu/noble).
/// An unknown release gets the current list.
fn ubuntu_groups(release: Option<&str>) -> &'static str {
    let year_month = release
        .and_then(|r| r.split_once('.'))
        .and_then(|(y, m)| Some((y.parse::<u32>().ok()?, m.parse::<u32>().ok()?)));
    match year_month {
        // 23.10 was the first release with cloud-init 23.3.
        Some(ym) if ym < (23, 10) => {
            "adm,audio,cdrom,dialout,dip,floppy,lxd,netdev,plugdev,sudo,video"
        }
        _ => "adm,cdrom,dip,lxd,sudo",
    }
}

/// Runs last on the first boot: scrubs the secrets from the seed and leaves a status report.
/// Static text: it takes no values from the profile.
const FINISH_SCRIPT: &str = r#"boot="$1"
scrub() {
	[ -f "$1" ] || return 0
	if command -v shred >/dev/null 2>&1; then shred --zero --remove "$1"; else rm -f "$1"; fi
}
scrub "$boot/user-data"
printf '#cloud-config\n# pinode: the first-boot user-data held secrets and was removed after use.\n' >"$boot/user-data"
if [ -f "$boot/network-config" ] && grep -q 'access-points' "$boot/network-config"; then
	scrub "$boot/network-config"
	printf '# pinode: the Wi-Fi key was removed after first boot; the node keeps its network.\nnetwork:\n  config: disabled\n' >"$boot/network-config"
fi
printf 'pinode first boot of %s\ncloud-init: done\nfinished: %s\nlog: /var/log/cloud-init-output.log on the node\n' \
	"$(hostname)" "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" >"$boot/pinode-status.txt"
sync
"#;

/// Keeps Raspberry Pi OS from replacing the host key cloud-init installs. Static text.
///
/// raspberrypi-sys-mods (RPi-Distro, release 20240129) ships regenerate_ssh_host_keys.service:
/// WantedBy=multi-user.target, Before=ssh.service, default dependencies (so after
/// sysinit.target); its script deletes `/etc/ssh/ssh_host_*_key*`, runs `ssh-keygen -A` and
/// disables itself. cloud-init.service, where bootcmd and the ssh module run, is
/// Before=sysinit.target, so the service would run after cloud-init wrote pinode's key and
/// delete it. Its start job was queued at boot: disabling it is not enough, it is masked and
/// systemd reloaded, so the queued job fails instead of running.
const KEEP_HOST_KEY: &str = r#"systemctl --quiet is-enabled regenerate_ssh_host_keys.service 2>/dev/null || exit 0
systemctl --no-reload disable regenerate_ssh_host_keys.service
systemctl --no-reload mask regenerate_ssh_host_keys.service && systemctl daemon-reload
"#;

/// Makes the image's first user (uid 1000) the profile's user, as Raspberry Pi OS's
/// `userconf` does (see [`super::user`]), before cloud-init's users module runs. The rule
/// giving the old `pi` passwordless sudo goes: the user's own is written below, and only
/// in `nopasswd` mode. Static text.
fn rename_first_user_script() -> String {
    format!(
        "{}rename_first_user \"$1\" || exit 1\nrm -f /etc/sudoers.d/010_pi-nopasswd\n",
        super::user::RENAME_FIRST_USER
    )
}

#[derive(Serialize)]
struct CloudConfig<'a> {
    bootcmd: Vec<Vec<String>>,
    hostname: &'a str,
    manage_etc_hosts: bool,
    users: Vec<CloudUser<'a>>,
    ssh_pwauth: bool,
    /// The host key pinode made (`ed25519_private`, `ed25519_public`).
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_keys: Option<BTreeMap<&'static str, &'a str>>,
    /// With `ssh_keys`: true. cloud-init's ssh module (cloudinit/config/cc_ssh.py, `handle`,
    /// 22.4.2 and main) first deletes `/etc/ssh/ssh_host_*key*` when this is true, then
    /// writes the keys of `ssh_keys`, and generates none when `ssh_keys` is given: the node
    /// ends up with pinode's key and no key baked into the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_deletekeys: Option<bool>,
    timezone: &'a str,
    locale: &'a str,
    runcmd: Vec<Vec<String>>,
}

#[derive(Serialize)]
struct CloudUser<'a> {
    name: &'a str,
    groups: &'static str,
    shell: &'static str,
    lock_passwd: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    hashed_passwd: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ssh_authorized_keys: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sudo: Option<&'static str>,
}

/// `user-data` for the image `os`: Raspberry Pi OS or Ubuntu Server.
///
/// On Ubuntu there is no placeholder first user to rename (the image has no uid 1000; its
/// `ubuntu` user is made by cloud-init only for `users: [default]`, which this `users` list
/// replaces) and no `regenerate_ssh_host_keys` service, so those Raspberry Pi OS steps are
/// not sent; the user gets Ubuntu's default groups ([`ubuntu_groups`]). Sudo is the same on
/// both: the `sudo` group (`%sudo ALL=(ALL:ALL) ALL` in both OSes' /etc/sudoers) for
/// `password` mode, and the rule file and cloud-init's `sudo:` for `nopasswd`.
pub(crate) fn user_data(plan: &NodePlan, os: &OsInfo) -> Result<String, RenderError> {
    let boot = os.boot_mount();
    let ubuntu = os.family == OsFamily::Ubuntu;
    let mut runcmd = Vec::new();
    if plan.ssh_enabled {
        runcmd.push(args(&["systemctl", "enable", "--now", "ssh"]));
    }
    if plan.user.sudo == SudoMode::Nopasswd {
        // Also as a file, as Imager 2.x does (see `super::user::WRITE_NOPASSWD_RULE`).
        runcmd.push(args(&[
            "sh",
            "-c",
            super::user::WRITE_NOPASSWD_RULE,
            "pinode-sudo",
            &plan.user.name,
        ]));
    }
    if plan.wifi.is_some() {
        runcmd.push(args(&[
            "sh",
            "-c",
            "command -v rfkill >/dev/null 2>&1 && rfkill unblock wifi; true",
        ]));
    }
    if plan.cluster.is_some() {
        // Hand over to the second stage (K3s and the runner): install it, which moves the
        // secrets off the boot partition, report and scrub, then start it.
        let script = format!("{boot}/{}", crate::render::stage2::SCRIPT);
        runcmd.push(args(&["sh", &script, "install", boot]));
    }
    runcmd.push(args(&["sh", "-c", FINISH_SCRIPT, "pinode-finish", boot]));
    if plan.cluster.is_some() {
        // The unit was installed without a reload (see firstboot.rs): load it now.
        runcmd.push(args(&["systemctl", "daemon-reload"]));
        runcmd.push(args(&[
            "systemctl",
            "start",
            "--no-block",
            "pinode-firstboot.service",
        ]));
    }
    // cloud-init's locale module fails on a locale that is not generated yet; bootcmd runs
    // before it. Once per instance, and the same code as the firstrun route.
    let generate_locale = format!(
        "{}
generate_locale \"$1\"\n",
        super::firstrun::GENERATE_LOCALE
    );
    let mut bootcmd = vec![args(&[
        "cloud-init-per",
        "once",
        "pinode-locale",
        "sh",
        "-c",
        &generate_locale,
        "pinode-locale",
        &plan.locale,
    ])];
    if !ubuntu {
        // The user becomes the first user (uid 1000) as on the firstrun route and as Raspberry
        // Pi OS tools expect: an image's placeholder first user is renamed before cloud-init's
        // users module runs, which then finds the user and sets keys, groups and password.
        bootcmd.push(args(&[
            "cloud-init-per",
            "once",
            "pinode-first-user",
            "sh",
            "-c",
            &rename_first_user_script(),
            "pinode-first-user",
            &plan.user.name,
        ]));
    }
    if plan.host_key.is_some() && !ubuntu {
        bootcmd.push(args(&[
            "cloud-init-per",
            "once",
            "pinode-host-key",
            "sh",
            "-c",
            KEEP_HOST_KEY,
        ]));
    }
    // The keyboard with the same code as the firstrun route: cloud-init's keyboard module
    // needs console-setup, which not every image has.
    let set_keyboard = format!("{}\nset_keyboard \"$1\"\n", super::firstrun::SET_KEYBOARD);
    runcmd.insert(
        0,
        args(&["sh", "-c", &set_keyboard, "pinode-keyboard", &plan.keyboard]),
    );
    let config = CloudConfig {
        bootcmd,
        hostname: &plan.hostname,
        manage_etc_hosts: true,
        users: vec![CloudUser {
            name: &plan.user.name,
            groups: if ubuntu {
                ubuntu_groups(os.release.as_deref())
            } else {
                GROUPS
            },
            shell: "/bin/bash",
            lock_passwd: plan.user.password_hash.is_none(),
            hashed_passwd: plan.user.password_hash.as_deref(),
            ssh_authorized_keys: plan.user.keys.iter().map(String::as_str).collect(),
            sudo: match plan.user.sudo {
                SudoMode::Nopasswd => Some("ALL=(ALL) NOPASSWD:ALL"),
                SudoMode::Password => None,
            },
        }],
        ssh_pwauth: plan.ssh_password_authentication,
        ssh_keys: plan.host_key.as_ref().map(|key| {
            BTreeMap::from([
                ("ed25519_private", key.private_openssh()),
                ("ed25519_public", key.public_line()),
            ])
        }),
        ssh_deletekeys: plan.host_key.as_ref().map(|_| true),
        timezone: &plan.timezone,
        locale: &plan.locale,
        runcmd,
    };
    let yaml = to_yaml(&config, "user-data")?;
    Ok(format!(
        "#cloud-config\n# Written by pinode {} for node {}. Holds secrets until first boot.\n{yaml}",
        env!("CARGO_PKG_VERSION"),
        plan.hostname
    ))
}

/// `meta-data` with a fresh instance-id, so cloud-init treats every preparation as new.
pub(crate) fn meta_data(plan: &NodePlan, instance_id: &str) -> Result<String, RenderError> {
    let mut map = BTreeMap::new();
    map.insert("instance-id", instance_id);
    map.insert("local-hostname", plan.hostname.as_str());
    to_yaml(&map, "meta-data")
}

/// A new instance-id: `pinode-<hostname>-<12 random hex digits>`.
pub(crate) fn new_instance_id(hostname: &str) -> Result<String, RenderError> {
    let mut bytes = [0u8; 6];
    let seed = crate::entropy::test_seed();
    crate::entropy::fill(
        &mut bytes,
        &format!("instance-id:{hostname}"),
        seed.as_deref(),
    )
    .map_err(|e| RenderError(format!("no randomness for the instance-id: {e}")))?;
    Ok(format!("pinode-{hostname}-{}", hex::encode(bytes)))
}

/// `network-config` (netplan v2, [`crate::render::network::netplan`]): eth0, and the Wi-Fi
/// network with its key. `None` when the node has no Wi-Fi and eth0 is at the default.
pub(crate) fn network_config(plan: &NodePlan) -> Result<Option<String>, RenderError> {
    let wifi = plan.wifi.as_ref().map(WifiNetwork::of);
    netplan::network_config(&plan.network, wifi.as_ref())
}

/// YAML in its JSON form (see the module comment), with a final newline.
fn to_yaml(value: &impl Serialize, what: &str) -> Result<String, RenderError> {
    serde_json::to_string_pretty(value)
        .map(|json| json + "\n")
        .map_err(|e| RenderError(format!("{what}: {e}")))
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ubuntu_groups_follow_the_release() {
        let old = "adm,audio,cdrom,dialout,dip,floppy,lxd,netdev,plugdev,sudo,video";
        assert_eq!(ubuntu_groups(Some("22.04")), old);
        assert_eq!(ubuntu_groups(Some("20.04")), old);
        assert_eq!(ubuntu_groups(Some("23.10")), "adm,cdrom,dip,lxd,sudo");
        assert_eq!(ubuntu_groups(Some("24.04")), "adm,cdrom,dip,lxd,sudo");
        assert_eq!(ubuntu_groups(None), "adm,cdrom,dip,lxd,sudo");
    }
}
