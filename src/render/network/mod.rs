//! A node's addressing (issue 17) in the files each first-boot route reads: NetworkManager
//! keyfiles on Bookworm ([`keyfile`]), `dhcpcd.conf` blocks on Bullseye ([`dhcpcd`]), and
//! the netplan v2 `network-config` of the cloud-init seed on Trixie ([`netplan`]).
//!
//! The input is [`NetworkConfig`] as the profile gives it. An interface left at the default
//! (DHCP, automatic IPv6, the network's own name servers) changes nothing: the OS keeps its
//! own configuration, and the files of profiles without `network:` stay the same bytes.
//!
//! Every renderer here is a pure function of public types, so that the tests can feed each
//! one to the real reader of its format (libnm, `netplan generate`, dhcpcd's option syntax).

pub mod dhcpcd;
pub mod keyfile;
pub mod netplan;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use secrecy::ExposeSecret;

use crate::plan::WifiPlan;
use crate::profile::network::{InterfaceConfig, Ipv6Config};
use crate::render::RenderError;

/// The Wi-Fi network a node joins, as the network files need it. The PSK is the derived
/// 64-hex-digit key (never the passphrase); every file that carries it is written mode 0600.
/// Its `Debug` leaves the key out: the key joins the network as well as the passphrase does.
#[derive(Clone, Copy)]
pub struct WifiNetwork<'a> {
    pub ssid: &'a str,
    pub psk_hex: &'a str,
    /// The regulatory domain (`DE`).
    pub country: &'a str,
    pub hidden: bool,
}

impl<'a> WifiNetwork<'a> {
    pub(crate) fn of(plan: &'a WifiPlan) -> WifiNetwork<'a> {
        WifiNetwork {
            ssid: &plan.ssid,
            psk_hex: plan.psk_hex.expose_secret(),
            country: &plan.country,
            hidden: plan.hidden,
        }
    }
}

impl std::fmt::Debug for WifiNetwork<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WifiNetwork")
            .field("ssid", &self.ssid)
            .field("psk_hex", &"[REDACTED]")
            .field("country", &self.country)
            .field("hidden", &self.hidden)
            .finish()
    }
}

/// Refuses what no route could carry faithfully, for the interface `name` (`eth0`, `wlan0`).
///
/// A search domain ends up on resolv.conf's `search` line, which is split at white space, and
/// dhcpcd's `static domain_search=` takes the names bare: a name with a space, a `;` or a
/// control character would silently become something else. DNS names on the wire are ASCII,
/// so an internationalised name must be given in its `xn--` form. The profile checks refuse
/// these with the line, by the same rule ([`crate::profile::values::dns_name`]); this is the
/// renderer's own guard.
pub(crate) fn check_interface(name: &str, config: &InterfaceConfig) -> Result<(), RenderError> {
    for domain in &config.search {
        crate::profile::values::dns_name(domain)
            .map_err(|e| RenderError(format!("{name}: the search domain {e}")))?;
    }
    if config.ipv6 == Ipv6Config::Off && config.dns.iter().any(IpAddr::is_ipv6) {
        return Err(RenderError(format!(
            "{name}: an IPv6 name server with IPv6 turned off (ipv6: off) cannot be reached"
        )));
    }
    Ok(())
}

/// The name servers by address family.
fn split_dns(dns: &[IpAddr]) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for server in dns {
        match server {
            IpAddr::V4(a) => v4.push(*a),
            IpAddr::V6(a) => v6.push(*a),
        }
    }
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_domains_must_be_dns_names() {
        let with = |search: &str| InterfaceConfig {
            search: vec![search.to_string()],
            ..InterfaceConfig::default()
        };
        for good in ["lab.example", "a-b.example.", "xn--bcher-kva.example"] {
            assert!(check_interface("eth0", &with(good)).is_ok(), "{good}");
        }
        // '_' as the profile check refuses it: one rule for both.
        for bad in [
            "",
            "a b",
            "a;b",
            "bücher.example",
            "a\nb",
            &"a".repeat(254),
            "a-b_c.example",
            " lab.example",
        ] {
            let err = check_interface("eth0", &with(bad)).unwrap_err().0;
            assert!(err.starts_with("eth0: the search domain"), "{err}");
        }
    }

    /// The key never reaches a log or an error through `{:?}`.
    #[test]
    fn debug_redacts_the_key() {
        let psk = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let wifi = WifiNetwork {
            ssid: "lab",
            psk_hex: psk,
            country: "DE",
            hidden: false,
        };
        let shown = format!("{wifi:?} {wifi:#?}");
        assert!(
            !shown.contains(psk) && !shown.contains("0123456789abcdef"),
            "{shown}"
        );
        assert!(
            shown.contains("\"lab\"") && shown.contains("[REDACTED]"),
            "{shown}"
        );
    }

    #[test]
    fn ipv6_servers_need_ipv6() {
        let config = InterfaceConfig {
            ipv6: Ipv6Config::Off,
            dns: vec!["2001:db8::53".parse().unwrap()],
            ..InterfaceConfig::default()
        };
        assert!(check_interface("wlan0", &config).is_err());
    }
}
