//! NetworkManager keyfiles, the Bookworm form (and Raspberry Pi Imager's): the Wi-Fi
//! connection Imager calls `preconfigured`, and a wired connection for `eth0` when its
//! addressing is not the default.
//!
//! Imager writes no wired connection: Raspberry Pi OS Bookworm's eth0 runs on NetworkManager's
//! own "Wired connection 1" (Trixie's on netplan's `netplan-eth0`). That connection is not a
//! file of the image: NetworkManager makes it in memory, when a device appears, only if no
//! stored connection is compatible with the device (`device_realized` →
//! `have_connection_for_device` in src/core/settings/nm-settings.c). `pinode-eth0`, with
//! `interface-name=eth0` and no MAC address, is compatible with eth0, so the default one is
//! never made and nothing competes: no `autoconnect-priority` is needed. The files are written by the first boot
//! (`firstrun.sh` runs before NetworkManager starts), root-owned with mode 0600: NetworkManager
//! ignores a keyfile that others can read, and the Wi-Fi one holds the PSK.

use std::fmt::Write as _;

use crate::profile::network::{InterfaceConfig, Ipv4Config, Ipv6Config};
use crate::render::RenderError;

use super::{WifiNetwork, check_interface, split_dns};

/// Where the Wi-Fi connection goes (Imager's name for it).
pub const WIFI_PATH: &str = "/etc/NetworkManager/system-connections/preconfigured.nmconnection";
/// Where the wired connection goes.
pub const WIRED_PATH: &str = "/etc/NetworkManager/system-connections/pinode-eth0.nmconnection";

/// A stable connection UUID, so that preparing the same node twice gives the same files.
fn uuid(name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// The UUID of a node's Wi-Fi connection (the name predates the wired one: kept, so that
/// existing profiles give the same bytes).
pub fn wifi_uuid(hostname: &str, ssid: &str) -> String {
    uuid(&format!("pinode/{hostname}/wifi/{ssid}"))
}

/// The UUID of a node's wired connection.
pub fn wired_uuid(hostname: &str) -> String {
    uuid(&format!("pinode/{hostname}/ethernet/eth0"))
}

/// The SSID as a keyfile value. Plain names stay readable; anything else is written as
/// NetworkManager's list of byte values (`ssid=72;105;`), which round-trips every byte
/// without relying on keyfile escaping.
fn ssid_value(ssid: &str) -> String {
    let plain = ssid.chars().any(|c| c.is_ascii_alphabetic())
        && ssid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if plain {
        ssid.to_string()
    } else {
        ssid.bytes().map(|b| format!("{b};")).collect()
    }
}

/// `preconfigured.nmconnection`: the Wi-Fi network with `config`'s addressing.
pub fn wifi(
    wifi: &WifiNetwork<'_>,
    config: &InterfaceConfig,
    uuid: &str,
) -> Result<String, RenderError> {
    check_interface("wlan0", config)?;
    let hidden = if wifi.hidden { "hidden=true\n" } else { "" };
    Ok(format!(
        "[connection]\nid=preconfigured\nuuid={uuid}\ntype=wifi\n\n\
         [wifi]\nmode=infrastructure\nssid={ssid}\n{hidden}\n\
         [wifi-security]\nauth-alg=open\nkey-mgmt=wpa-psk\npsk={psk}\n\n\
         {ip}[proxy]\n",
        ssid = ssid_value(wifi.ssid),
        psk = wifi.psk_hex,
        ip = ip_sections(config),
    ))
}

/// `pinode-eth0.nmconnection`: eth0 with `config`'s addressing.
pub fn wired(config: &InterfaceConfig, uuid: &str) -> Result<String, RenderError> {
    check_interface("eth0", config)?;
    Ok(format!(
        "[connection]\nid=pinode-eth0\nuuid={uuid}\ntype=ethernet\ninterface-name=eth0\n\n\
         [ethernet]\n\n{ip}[proxy]\n",
        ip = ip_sections(config),
    ))
}

/// The `[ipv4]` and `[ipv6]` sections. The default interface gives exactly what Imager
/// writes (`method=auto` twice). Name servers given with DHCP replace the network's
/// (`ignore-auto-dns`), as on the other routes; search domains go with IPv4, where
/// NetworkManager applies them to the whole connection.
fn ip_sections(config: &InterfaceConfig) -> String {
    let (dns4, dns6) = split_dns(&config.dns);
    let own_dns = !config.dns.is_empty();
    let mut out = String::from("[ipv4]\n");
    match &config.ipv4 {
        Ipv4Config::Dhcp => out.push_str("method=auto\n"),
        Ipv4Config::Static { address, gateway } => {
            let _ = writeln!(out, "method=manual\naddress1={address}{}", via(gateway));
        }
    }
    if !dns4.is_empty() {
        let _ = writeln!(out, "dns={}", list(&dns4));
    }
    if !config.search.is_empty() {
        let _ = writeln!(out, "dns-search={}", list(&config.search));
    }
    if own_dns && config.ipv4 == Ipv4Config::Dhcp {
        out.push_str("ignore-auto-dns=true\n");
    }
    out.push_str("\n[ipv6]\naddr-gen-mode=default\n");
    match &config.ipv6 {
        Ipv6Config::Auto => out.push_str("method=auto\n"),
        Ipv6Config::Off => out.push_str("method=disabled\n"),
        Ipv6Config::Static { address, gateway } => {
            let _ = writeln!(out, "method=manual\naddress1={address}{}", via(gateway));
        }
    }
    if !dns6.is_empty() {
        let _ = writeln!(out, "dns={}", list(&dns6));
    }
    if own_dns && config.ipv6 == Ipv6Config::Auto {
        out.push_str("ignore-auto-dns=true\n");
    }
    out.push('\n');
    out
}

/// `,GATEWAY` after an address, or nothing.
fn via(gateway: &Option<impl std::fmt::Display>) -> String {
    gateway
        .as_ref()
        .map(|g| format!(",{g}"))
        .unwrap_or_default()
}

/// A keyfile list: every item followed by `;`. The items are addresses and checked DNS
/// names ([`check_interface`]), which need no escaping.
fn list(items: &[impl std::fmt::Display]) -> String {
    items.iter().map(|i| format!("{i};")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssid_forms() {
        assert_eq!(ssid_value("HomeNet"), "HomeNet");
        assert_eq!(ssid_value("a b"), "97;32;98;");
        assert_eq!(ssid_value("123"), "49;50;51;");
        assert_eq!(ssid_value("é"), "195;169;");
    }

    /// The default interface gives the sections Imager writes, so existing images keep
    /// their bytes.
    #[test]
    fn default_sections_are_imagers() {
        assert_eq!(
            ip_sections(&InterfaceConfig::default()),
            "[ipv4]\nmethod=auto\n\n[ipv6]\naddr-gen-mode=default\nmethod=auto\n\n"
        );
    }
}
