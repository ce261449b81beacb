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

/// `configure_dhcpcd FILE BLOCK`: FILE without pinode's old block, then BLOCK. The file keeps
/// the owner and mode the image gave it (`cp -p`) and is replaced in one `mv`. Static text: the block arrives as a quoted variable.
pub const LIBRARY: &str = r#"
# configure_dhcpcd FILE BLOCK: pinode's block in dhcpcd.conf, replaced on a second run.
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
	printf '%s' "$2" >>"$tmp" && mv -f "$tmp" "$1"
}
"#;

/// pinode's block for eth0 and, when the node has Wi-Fi, wlan0; `None` when both are left at
/// the default (the image's dhcpcd.conf is then not touched).
///
/// Per interface: `static ip_address=` with `static routers=` (a static address means no
/// DHCP lease is asked for), `static domain_name_servers=` and `static domain_search=` (they
/// replace what a lease hands out: dhcpcd's hooks see `new_domain_name_servers`, which
/// `append_config` in dhcpcd's src/script.c overwrites with the static value). IPv6: `noipv6` turns it off; a static address is
/// `static ip6_address=` with `ipv6ra_noautoconf` and `nodhcp6` (no other address next to
/// it). dhcpcd has no option for a static IPv6 route: it takes IPv6 routes from router
/// advertisements only, so a static IPv6 gateway is refused rather than dropped.
pub fn block(
    ethernet: &InterfaceConfig,
    wifi: Option<&InterfaceConfig>,
) -> Result<Option<String>, RenderError> {
    let mut interfaces = Vec::new();
    if !ethernet.is_default() {
        interfaces.push(("eth0", ethernet));
    }
    if let Some(wifi) = wifi.filter(|w| !w.is_default()) {
        interfaces.push(("wlan0", wifi));
    }
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
