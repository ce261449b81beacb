//! The first user, as Raspberry Pi OS makes it: shell code both routes share.
//!
//! Raspberry Pi OS renames its placeholder first user (uid 1000) with `userconf`
//! (RPi-Distro/userconf-pi 0.9, commit ca2620a3, 2023-08-29: `/usr/lib/userconf-pi/userconf`),
//! which Raspberry Pi Imager's `firstrun.sh` calls (raspberrypi/rpi-imager 72ad1179,
//! `src/customization_generator.cpp`). Its `rename_user` does, in this order:
//! `usermod -l NEW OLD`, `usermod -m -d /home/NEW NEW`, `groupmod -n NEW OLDGROUP`, rewrites
//! the `OLD:` lines of `/etc/subuid` and `/etc/subgid` to `NEW:` (rootless containers, such
//! as the runner's BuildKit, need the user's subordinate ids), and renames the user in
//! `/etc/sudoers.d/010_pi-nopasswd`; then, renamed or not, it runs `/usr/bin/cancel-rename
//! NEW`, which retires the OS's first-boot rename wizard (disables `userconfig.service`,
//! sets the boot behaviour, removes `/etc/ssh/sshd_config.d/rename_user.conf`).
//!
//! [`RENAME_FIRST_USER`] does the same with standard tools, so that it also works where
//! `userconf` is absent (plain Debian, the boot test's image); `cancel-rename` runs when
//! the OS has it. The sudoers rule of the old name is removed, not renamed: pinode writes
//! the user's own rule, and only when the profile asks for passwordless sudo.

/// `rename_first_user NEW`: the first user (uid 1000), if there is one and no user is
/// called NEW yet, becomes NEW, with its group, home and subordinate ids; then the OS's
/// `cancel-rename` runs when it has one and NEW exists. Idempotent. Static text.
pub(crate) const RENAME_FIRST_USER: &str = r#"# rename_owner FILE OLD NEW: the OLD: lines of a subuid/subgid file become NEW:.
rename_owner() {
	[ -f "$1" ] || return 0
	awk -F: -v old="$2" -v new="$3" 'BEGIN { OFS = ":" } $1 == old { $1 = new } { print }' "$1" >"$1.pinode-new" &&
		chmod --reference="$1" "$1.pinode-new" && mv -f "$1.pinode-new" "$1"
}

rename_first_user() {
	first=$(getent passwd 1000 | cut -d: -f1)
	if [ -n "$first" ] && [ "$first" != "$1" ] && ! getent passwd "$1" >/dev/null; then
		group=$(getent group 1000 | cut -d: -f1)
		usermod --login "$1" "$first" || return 1
		usermod --move-home --home "/home/$1" "$1" || return 1
		if [ -n "$group" ] && [ "$group" = "$first" ]; then
			groupmod --new-name "$1" "$group" || return 1
		fi
		rename_owner /etc/subuid "$first" "$1" || return 1
		rename_owner /etc/subgid "$first" "$1" || return 1
	fi
	if getent passwd "$1" >/dev/null && command -v cancel-rename >/dev/null 2>&1; then
		cancel-rename "$1" || return 1
	fi
	return 0
}
"#;

/// `write_nopasswd_rule NAME`: `/etc/sudoers.d/010_NAME-nopasswd`, mode 0440, as Raspberry
/// Pi Imager 2.x writes it on the cloud-init route (`runcmd`; its comment: the `sudo:` key
/// of a cloud-init user "is not reliably processed by all implementations"). The file is
/// written under a name with a dot, which sudo's `#includedir` skips, checked by `visudo`
/// and only then renamed into place: a broken rule never locks sudo. User names cannot
/// contain a dot (see `profile::values::user_name`), so sudo reads the final name. Static
/// text.
pub(crate) const WRITE_NOPASSWD_RULE: &str = r#"file="/etc/sudoers.d/010_$1-nopasswd"
printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$1" >"$file.pinode-new" && chmod 0440 "$file.pinode-new" || exit 1
if command -v visudo >/dev/null 2>&1 && ! visudo -c -q -f "$file.pinode-new" >/dev/null; then
	rm -f "$file.pinode-new"
	exit 1
fi
mv -f "$file.pinode-new" "$file"
"#;
