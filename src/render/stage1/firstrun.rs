//! The `firstrun.sh` route (Bullseye, Bookworm): a script on the boot partition that the
//! kernel command line runs once through `systemd.run=`, early in boot (basic.target).
//!
//! It works on real Raspberry Pi OS and on plain Debian alike: where Raspberry Pi OS ships a
//! helper (`userconf`), it is used; otherwise the script does the same with standard tools.
//! The user from `userconf.txt` does not exist yet when it runs, so the first user is found
//! by uid 1000 and renamed here. Every step is idempotent, failures are logged and reported
//! in `pinode-status.txt` on the boot partition, and the script always ends by removing its
//! kernel command-line tokens and overwriting itself: it holds the Wi-Fi key.

use crate::osinfo::Generation;
use crate::plan::NodePlan;
use crate::profile::schema::SudoMode;
use crate::render::RenderError;
use crate::render::network::{WifiNetwork, dhcpcd, keyfile};
use crate::render::shell::{CORE, ShellProgram};

/// Name of the script on the boot partition (Imager uses the same).
pub(crate) const SCRIPT: &str = "firstrun.sh";

/// The identity steps of the first stage. Values come in through variables set above them.
const LIBRARY: &str = r##"
set_hostname() {
	write_file /etc/hostname 644 "$1
" || return 1
	if grep -q '^127\.0\.1\.1[[:space:]]' /etc/hosts 2>/dev/null; then
		sed -i "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1	$1/" /etc/hosts
	else
		printf '127.0.1.1\t%s\n' "$1" >>/etc/hosts
	fi
}

# setup_user NAME PASSWORD_HASH: make the first user (uid 1000) NAME.
setup_user() {
	first=$(getent passwd 1000 | cut -d: -f1)
	if [ -x /usr/lib/userconf-pi/userconf ] && [ -n "$first" ]; then
		# Raspberry Pi OS's own tool, as Imager runs it: renames the user when needed and,
		# renamed or not, retires the OS's first-boot rename wizard (cancel-rename).
		/usr/lib/userconf-pi/userconf "$1" "${2:-*}" || return 1
	elif [ -n "$first" ]; then
		# What userconf does, with standard tools.
		rename_first_user "$1" || return 1
	elif ! getent passwd "$1" >/dev/null; then
		useradd --create-home --uid 1000 --user-group --shell /bin/bash "$1" || return 1
	fi
	for group in adm dialout cdrom audio video plugdev games users input render netdev gpio i2c spi; do
		if getent group "$group" >/dev/null; then
			usermod --append --groups "$group" "$1" || return 1
		fi
	done
}

# set_password NAME HASH: an empty HASH locks password login (keys only).
set_password() {
	if [ -n "$2" ]; then
		printf '%s:%s\n' "$1" "$2" | chpasswd --encrypted
	else
		usermod --password '*' "$1"
	fi
}

# install_keys NAME KEYS
install_keys() {
	home=$(getent passwd "$1" | cut -d: -f6)
	[ -n "$home" ] || return 1
	if [ ! -d "$home" ]; then
		mkdir -p "$home" && chown "$1:" "$home" && chmod 750 "$home" || return 1
	fi
	mkdir -p "$home/.ssh" &&
		chmod 700 "$home/.ssh" &&
		write_file "$home/.ssh/authorized_keys" 600 "$2" &&
		chown -R "$1:" "$home/.ssh"
}

# configure_sudo NAME MODE (nopasswd | password)
configure_sudo() {
	# Raspberry Pi OS's rule for the original first user; pinode writes its own.
	rm -f /etc/sudoers.d/010_pi-nopasswd
	if [ "$2" = nopasswd ]; then
		write_file /etc/sudoers.d/010_pinode-nopasswd 440 "$1 ALL=(ALL) NOPASSWD: ALL
" || return 1
	else
		rm -f /etc/sudoers.d/010_pinode-nopasswd
	fi
	if getent group sudo >/dev/null; then
		usermod --append --groups sudo "$1" || return 1
	fi
	if command -v visudo >/dev/null 2>&1 && ! visudo -c -q >/dev/null 2>&1; then
		rm -f /etc/sudoers.d/010_pinode-nopasswd
		return 1
	fi
}

# configure_ssh ENABLED(yes|no) PASSWORD_AUTHENTICATION(yes|no). No daemon reload: the change
# takes effect with the reboot that follows this script, and a reload is slow on a small board.
configure_ssh() {
	write_file /etc/ssh/sshd_config.d/10-pinode.conf 644 "# Written by pinode on first boot.
PasswordAuthentication $2
" || return 1
	if [ "$1" = yes ]; then
		systemctl --no-reload enable ssh
	else
		systemctl --no-reload disable ssh
	fi
}

# install_host_key PRIVATE PUBLIC: the host key pinode made for this node (its public half is
# in pinode's known_hosts already), in place before sshd first starts: this script runs in
# kernel-command-line.target (systemd.unit= on cmdline.txt), before multi-user.target and ssh.
# The image's own host keys, if it has any, go: only pinode's key identifies the node.
# Raspberry Pi OS would replace it on the next boot: raspberrypi-sys-mods (RPi-Distro, release
# 20240129) ships regenerate_ssh_host_keys.service (WantedBy=multi-user.target,
# Before=ssh.service), whose script runs `rm -f /etc/ssh/ssh_host_*_key*`, `ssh-keygen -A` and
# then disables itself (usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys). It is
# disabled here, as it would have disabled itself, so that it never runs. The image's
# init=/usr/lib/raspberrypi-sys-mods/firstboot (the boot before this one, without systemd)
# runs the same script first; this script comes after it, so its keys are replaced here.
install_host_key() {
	rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub || return 1
	write_file /etc/ssh/ssh_host_ed25519_key 600 "$1" &&
		write_file /etc/ssh/ssh_host_ed25519_key.pub 644 "$2
" &&
		write_file /etc/ssh/sshd_config.d/05-pinode-host-key.conf 644 "# Written by pinode on first boot: the host key pinode made.
HostKey /etc/ssh/ssh_host_ed25519_key
" || return 1
	if systemctl --quiet is-enabled regenerate_ssh_host_keys.service 2>/dev/null; then
		systemctl --no-reload disable regenerate_ssh_host_keys.service || return 1
	fi
	return 0
}

set_timezone() {
	[ -e "/usr/share/zoneinfo/$1" ] || return 1
	ln -sf "/usr/share/zoneinfo/$1" /etc/localtime && write_file /etc/timezone 644 "$1
"
}

set_locale() {
	generate_locale "$1" || return 1
	write_file /etc/default/locale 644 "LANG=$1
"
}

# Wi-Fi is soft-blocked on Raspberry Pi OS until a country is set.
unblock_wifi() {
	if command -v rfkill >/dev/null 2>&1; then
		rfkill unblock wifi 2>/dev/null
	fi
	for f in /var/lib/systemd/rfkill/*:wlan; do
		if [ -e "$f" ]; then
			echo 0 >"$f"
		fi
	done
	return 0
}

# configure_wifi PATH CONTENT
configure_wifi() {
	write_file "$1" 600 "$2" && unblock_wifi
}

# finish BOOT_DIR SCRIPT: leave a report, restore a normal boot, remove every secret.
finish() {
	sed -i -e 's# systemd\.run=[^ ]*##g' -e 's# systemd\.run_success_action=[^ ]*##g' \
		-e 's# systemd\.unit=kernel-command-line\.target##g' "$1/cmdline.txt"
	if [ -n "$FAILED" ]; then
		result="failed: $FAILED"
		write_status failed
	else
		result=ok
		write_status ok
	fi
	write_file "$1/pinode-status.txt" 644 "pinode first boot of $NODE_HOSTNAME
firstrun: $result
finished: $(date -u '+%Y-%m-%dT%H:%M:%SZ')
log: $PINODE_LOG on the node
"
	log "firstrun $result"
	# Raspberry Pi OS's userconf tool retires the service that would delete this file.
	scrub "$1/userconf.txt"
	scrub "$2"
	sync
}
"##;

/// `set_keyboard LAYOUT`: the console and X keyboard layout. Shared with the cloud-init route:
/// cloud-init's own keyboard module fails on images without console-setup.
pub(crate) const SET_KEYBOARD: &str = r#"set_keyboard() {
	printf 'XKBMODEL="pc105"\nXKBLAYOUT="%s"\nXKBVARIANT=""\nXKBOPTIONS=""\nBACKSPACE="guess"\n' "$1" >/etc/default/keyboard.pinode-new &&
		chmod 644 /etc/default/keyboard.pinode-new && mv -f /etc/default/keyboard.pinode-new /etc/default/keyboard
}
"#;

/// `generate_locale LOCALE`: enables LOCALE in /etc/locale.gen and generates it, unless it
/// is there already. Shared with the cloud-init route, whose locale module needs it done first.
pub(crate) const GENERATE_LOCALE: &str = r#"generate_locale() {
	command -v locale-gen >/dev/null 2>&1 && [ -f /etc/locale.gen ] || return 0
	pattern=$(printf '%s' "$1" | sed 's/[.]/[.]/g')
	grep -q "^$pattern " /etc/locale.gen && return 0
	if grep -q "^# *$pattern " /etc/locale.gen; then
		sed -i "s/^# *\($pattern \)/\1/" /etc/locale.gen
	else
		charset=$(awk -v l="$1" '$1 == l { print $2; exit }' /usr/share/i18n/SUPPORTED 2>/dev/null)
		printf '%s %s\n' "$1" "${charset:-UTF-8}" >>/etc/locale.gen
	fi
	locale-gen >/dev/null
}
"#;

/// Renders `firstrun.sh` for `plan` on `generation`.
pub(crate) fn render(plan: &NodePlan, generation: Generation) -> Result<String, RenderError> {
    let boot_dir = generation.boot_mount();
    let mut p = ShellProgram::default();
    p.comment(format!(
        "pinode {} first-boot script for node {}.",
        env!("CARGO_PKG_VERSION"),
        plan.hostname
    ))
    .comment(format!(
        "Run once by systemd.run= from {boot_dir}/cmdline.txt; it removes itself and its"
    ))
    .comment("cmdline.txt tokens when done, and the system reboots (systemd.run_success_action).")
    .comment("It contains secrets until then: do not share it.")
    .library(CORE)
    .library(LIBRARY)
    .library(super::user::RENAME_FIRST_USER)
    .library(GENERATE_LOCALE)
    .library(SET_KEYBOARD);
    p.var("PINODE_STAGE", "firstrun")?
        .var("BOOT_DIR", boot_dir)?
        .var("SCRIPT", &format!("{boot_dir}/{SCRIPT}"))?
        .var("NODE_HOSTNAME", &plan.hostname)?
        .var("USER_NAME", &plan.user.name)?
        .var(
            "USER_PASSWORD_HASH",
            plan.user.password_hash.as_deref().unwrap_or(""),
        )?;
    p.step(r#"log "configuring node $NODE_HOSTNAME""#)
        .step(r#"step "hostname" set_hostname "$NODE_HOSTNAME""#)
        .step(r#"step "user" setup_user "$USER_NAME" "$USER_PASSWORD_HASH""#)
        .step(r#"step "password" set_password "$USER_NAME" "$USER_PASSWORD_HASH""#);
    if !plan.user.keys.is_empty() {
        let keys: String = plan.user.keys.iter().map(|k| format!("{k}\n")).collect();
        p.var("USER_SSH_KEYS", &keys)?;
        p.step(r#"step "ssh keys" install_keys "$USER_NAME" "$USER_SSH_KEYS""#);
    }
    let sudo = match plan.user.sudo {
        SudoMode::Nopasswd => "nopasswd",
        SudoMode::Password => "password",
    };
    p.var("SUDO_MODE", sudo)?
        .var("SSH_ENABLED", yes_no(plan.ssh_enabled))?
        .var(
            "SSH_PASSWORD_AUTHENTICATION",
            yes_no(plan.ssh_password_authentication),
        )?;
    p.step(r#"step "sudo" configure_sudo "$USER_NAME" "$SUDO_MODE""#)
        .step(r#"step "ssh" configure_ssh "$SSH_ENABLED" "$SSH_PASSWORD_AUTHENTICATION""#);
    if let Some(key) = &plan.host_key {
        // A secret in a secret file: the script scrubs itself when it is done (`finish`).
        p.var("HOST_KEY_PRIVATE", key.private_openssh())?
            .var("HOST_KEY_PUBLIC", key.public_line())?;
        p.step(r#"step "ssh host key" install_host_key "$HOST_KEY_PRIVATE" "$HOST_KEY_PUBLIC""#);
    }
    network(&mut p, plan, generation)?;
    p.var("TIMEZONE", &plan.timezone)?
        .var("LOCALE", &plan.locale)?
        .var("KEYBOARD", &plan.keyboard)?;
    p.step(r#"step "timezone" set_timezone "$TIMEZONE""#)
        .step(r#"step "locale" set_locale "$LOCALE""#)
        .step(r#"step "keyboard" set_keyboard "$KEYBOARD""#);
    if plan.cluster.is_some() {
        // Hand over to the second stage, which runs once the network is up.
        p.step(r#"step "k3s first-boot service" sh "$BOOT_DIR/pinode/firstboot.sh" install "$BOOT_DIR""#);
    }
    p.step(r#"finish "$BOOT_DIR" "$SCRIPT""#);
    Ok(p.render())
}

/// The Wi-Fi network and the node's addressing, in the files of `generation`'s network stack:
/// dhcpcd and wpa_supplicant on Bullseye, NetworkManager keyfiles later. Interfaces left at
/// the default add nothing (the script stays the same bytes as before issue 17).
fn network(
    p: &mut ShellProgram,
    plan: &NodePlan,
    generation: Generation,
) -> Result<(), RenderError> {
    let bullseye = generation == Generation::Bullseye;
    if bullseye {
        let wifi = plan.wifi.as_ref().map(|_| &plan.network.wifi);
        if let Some(block) = dhcpcd::block(&plan.network.ethernet, wifi)? {
            p.library(dhcpcd::LIBRARY);
            p.var("DHCPCD_FILE", dhcpcd::PATH)?
                .var("DHCPCD_BLOCK", &block)?;
            match dhcpcd::ipv6_off(&plan.network.ethernet, wifi) {
                // `noipv6` leaves the kernel's SLAAC on: the sysctl drop-in turns IPv6 off.
                Some(sysctl) => {
                    p.var("IPV6_OFF_FILE", dhcpcd::IPV6_OFF_PATH)?
                        .var("IPV6_OFF_CONFIG", &sysctl)?;
                    p.step(
                        r#"step "network addresses" configure_dhcpcd "$DHCPCD_FILE" "$DHCPCD_BLOCK" "$IPV6_OFF_FILE" "$IPV6_OFF_CONFIG""#,
                    );
                }
                None => {
                    p.step(
                        r#"step "network addresses" configure_dhcpcd "$DHCPCD_FILE" "$DHCPCD_BLOCK""#,
                    );
                }
            }
        }
    } else if !plan.network.ethernet.is_default() {
        let content = keyfile::wired(&plan.network.ethernet, &keyfile::wired_uuid(&plan.hostname))?;
        // Mode 0600: NetworkManager ignores a keyfile that others can read.
        p.var("WIRED_FILE", keyfile::WIRED_PATH)?
            .var("WIRED_CONFIG", &content)?;
        p.step(r#"step "wired network" write_file "$WIRED_FILE" 600 "$WIRED_CONFIG""#);
    }
    if let Some(wifi) = &plan.wifi {
        let (path, content) = if bullseye {
            (
                "/etc/wpa_supplicant/wpa_supplicant.conf".to_string(),
                crate::plan::wifi::wpa_supplicant_conf(wifi),
            )
        } else {
            (
                keyfile::WIFI_PATH.to_string(),
                keyfile::wifi(
                    &WifiNetwork::of(wifi),
                    &plan.network.wifi,
                    &keyfile::wifi_uuid(&plan.hostname, &wifi.ssid),
                )?,
            )
        };
        p.var("WIFI_FILE", &path)?.var("WIFI_CONFIG", &content)?;
        p.step(r#"step "wi-fi" configure_wifi "$WIFI_FILE" "$WIFI_CONFIG""#);
    }
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The kernel command-line tokens that make the firmware run the script once.
pub(crate) fn cmdline_tokens(generation: Generation) -> [(&'static str, String); 3] {
    [
        (
            "systemd.run",
            format!("{}/{SCRIPT}", generation.boot_mount()),
        ),
        ("systemd.run_success_action", "reboot".to_string()),
        ("systemd.unit", "kernel-command-line.target".to_string()),
    ]
}
