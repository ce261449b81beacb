//! `dhcpcd.conf` blocks, the Bullseye form: dhcpcd configures both interfaces there (its
//! `interface` blocks; dhcpcd.conf(5)), NetworkManager is not installed.
//!
//! The first boot puts pinode's lines between two marker lines at the end of the image's own
//! `/etc/dhcpcd.conf` ([`LIBRARY`]'s `configure_dhcpcd`): a second run replaces the block and
//! never adds one, and everything outside the markers stays as the image had it.

use std::fmt::Write as _;

use crate::profile::network::{InterfaceConfig, Ipv4Config, Ipv6Config};
use crate::render::RenderError;

use super::{check_interface, split_dns};

/// The image's dhcpcd configuration.
pub const PATH: &str = "/etc/dhcpcd.conf";
/// The first line of pinode's block. `configure_dhcpcd` matches it whole (a sed address).
pub const BEGIN: &str = "# pinode network: begin";
/// The last line of pinode's block.
pub const END: &str = "# pinode network: end";

/// The sysctl drop-in that turns IPv6 off on the interfaces with `ipv6: off` ([`ipv6_off`]).
pub const IPV6_OFF_PATH: &str = "/etc/sysctl.d/90-pinode-ipv6-off.conf";

/// `configure_dhcpcd FILE BLOCK [SYSCTL_FILE SYSCTL]`: FILE without pinode's old block, then
/// BLOCK; with four arguments also SYSCTL_FILE replaced by SYSCTL, mode 0644 (`write_file`
/// of the core library). The file keeps the owner and mode the image gave it (`cp -p`) and is
/// replaced in one `mv`. Static text: the block arrives as a quoted variable.
pub const LIBRARY: &str = r#"
# configure_dhcpcd FILE BLOCK [SYSCTL_FILE SYSCTL]: pinode's block in dhcpcd.conf, replaced
# on a second run; with SYSCTL_FILE, the sysctl drop-in that turns IPv6 off.
configure_dhcpcd() {
	tmp="$1.pinode-new"
	if [ -f "$1" ]; then
		cp -p "$1" "$tmp" &&
			sed '/^# pinode network: begin$/,/^# pinode network: end$/d' "$1" >"$tmp" || return 1
		if [ -s "$tmp" ] && [ -n "$(tail -c 1 "$tmp")" ]; then
			echo >>"$tmp"
		fi
	else
		(umask 022 && : >"$tmp") || return 1
	fi
	printf '%s' "$2" >>"$tmp" && mv -f "$tmp" "$1" || return 1
	if [ "$#" -ge 4 ]; then
		write_file "$3" 644 "$4"
	fi
}
"#;

/// The interfaces [`block`] configures: eth0 unless at the default, wlan0 when the node has
/// Wi-Fi and it is not at the default.
fn interfaces<'a>(
    ethernet: &'a InterfaceConfig,
    wifi: Option<&'a InterfaceConfig>,
) -> Vec<(&'static str, &'a InterfaceConfig)> {
    let mut interfaces = Vec::new();
    if !ethernet.is_default() {
        interfaces.push(("eth0", ethernet));
    }
    if let Some(wifi) = wifi.filter(|w| !w.is_default()) {
        interfaces.push(("wlan0", wifi));
    }
    interfaces
}

/// The content of [`IPV6_OFF_PATH`]: `net.ipv6.conf.IF.disable_ipv6 = 1` for each interface
/// of [`block`] with `ipv6: off`; `None` when there is none.
///
/// dhcpcd's `noipv6` alone leaves IPv6 on: dhcpcd then skips its own IPv6 setup of the
/// interface, and with it the step that would turn the kernel's router-advertisement
/// handling off (dhcpcd 8.1.2: `O_NOIPV6` in src/if-options.c; `if_setup_inet6` not called
/// in src/dhcpcd.c; src/if-linux.c: "If not doing autoconf, don't disable the kernel from
/// doing it"), so the kernel's own SLAAC still gives the interface addresses. The keys are per
/// interface: systemd-sysctl applies them at boot, and udev (systemd's 99-systemd.rules runs
/// `systemd-sysctl --prefix=/net/ipv6/conf/$name`) again when the interface appears, so wlan0,
/// whose driver loads later, gets its key too.
pub fn ipv6_off(ethernet: &InterfaceConfig, wifi: Option<&InterfaceConfig>) -> Option<String> {
    let off: Vec<&str> = interfaces(ethernet, wifi)
        .into_iter()
        .filter(|(_, config)| config.ipv6 == Ipv6Config::Off)
        .map(|(name, _)| name)
        .collect();
    if off.is_empty() {
        return None;
    }
    let mut out =
        String::from("# Written by pinode on first boot: IPv6 off (ipv6: off in the profile).\n");
    for name in off {
        let _ = writeln!(out, "net.ipv6.conf.{name}.disable_ipv6 = 1");
    }
    Some(out)
}

/// pinode's block for eth0 and, when the node has Wi-Fi, wlan0; `None` when both are left at
/// the default (the image's dhcpcd.conf is then not touched).
///
/// Per interface: `static ip_address=` with `static routers=` (a static address means no
/// DHCP lease is asked for), `static domain_name_servers=` and `static domain_search=` (they
/// replace what a lease hands out: dhcpcd's hooks see `new_domain_name_servers`, which
/// `append_config` in dhcpcd's src/script.c overwrites with the static value). IPv6: `noipv6` turns dhcpcd's IPv6 off (the
/// kernel's goes off through [`ipv6_off`]'s sysctl drop-in); a static address is
/// `static ip6_address=` with `ipv6ra_noautoconf` and `nodhcp6` (no other address next to
/// it). dhcpcd has no option for a static IPv6 route: it takes IPv6 routes from router
/// advertisements only, so a static IPv6 gateway is refused rather than dropped.
pub fn block(
    ethernet: &InterfaceConfig,
    wifi: Option<&InterfaceConfig>,
) -> Result<Option<String>, RenderError> {
    let interfaces = interfaces(ethernet, wifi);
    if interfaces.is_empty() {
        return Ok(None);
    }
    let mut out =
        format!("{BEGIN}\n# Written by pinode on first boot; a second run replaces these lines.\n");
    for (name, config) in interfaces {
        check_interface(name, config)?;
        let _ = writeln!(out, "interface {name}");
        if let Ipv4Config::Static { address, gateway } = &config.ipv4 {
            let _ = writeln!(out, "static ip_address={address}");
            if let Some(gateway) = gateway {
                let _ = writeln!(out, "static routers={gateway}");
            }
        }
        let (dns4, dns6) = split_dns(&config.dns);
        let servers: Vec<String> = dns4
            .iter()
            .map(ToString::to_string)
            .chain(dns6.iter().map(ToString::to_string))
            .collect();
        if !servers.is_empty() {
            let _ = writeln!(out, "static domain_name_servers={}", servers.join(" "));
        }
        if !config.search.is_empty() {
            let _ = writeln!(out, "static domain_search={}", config.search.join(" "));
        }
        match &config.ipv6 {
            Ipv6Config::Auto => {}
            Ipv6Config::Off => out.push_str("noipv6\n"),
            Ipv6Config::Static {
                gateway: Some(_), ..
            } => {
                return Err(RenderError(format!(
                    "{name}: a static IPv6 gateway cannot be set on Bullseye: its dhcpcd \
                     learns IPv6 routes from router advertisements only (leave out the IPv6 \
                     gateway, or use a Bookworm or Trixie image)"
                )));
            }
            Ipv6Config::Static {
                address,
                gateway: None,
            } => {
                let _ = writeln!(out, "static ip6_address={address}");
                out.push_str("ipv6ra_noautoconf\nnodhcp6\n");
            }
        }
    }
    let _ = writeln!(out, "{END}");
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shell function's sed addresses are the markers, byte for byte.
    #[test]
    fn library_matches_the_markers() {
        assert!(LIBRARY.contains(&format!("/^{BEGIN}$/,/^{END}$/d")));
    }

    #[test]
    fn default_interfaces_leave_dhcpcd_alone() {
        let default = InterfaceConfig::default();
        assert_eq!(block(&default, Some(&default)).unwrap(), None);
    }
}
