//! The cloud-init seed's `network-config` (netplan v2), the Trixie form. cloud-init hands a
//! version 2 config to netplan as it is, and netplan renders NetworkManager connections
//! (`renderer: NetworkManager`, as Raspberry Pi OS and Imager have it).
//!
//! Serialised as JSON, which is YAML too (see `stage1::cloudinit`): no value can change the
//! document's structure, and an SSID such as `ON` or `no` stays a string.
//!
//! After the first boot the seed's copy is replaced by `network: {config: disabled}` when it
//! held the Wi-Fi key (`stage1::cloudinit`'s finish step). The node keeps its addresses: on
//! every later boot cloud-init finds the config disabled and returns before rendering
//! anything (cloudinit/stages.py, `Init.apply_network_config` → `_find_networking_config`,
//! which strips the top-level `network` key and asks `net.is_disabled_cfg`; the same in
//! 22.4.2 and in main at 04eacd06, 2026-08), so `/etc/netplan/50-cloud-init.yaml` stays as
//! the first boot wrote it (mode 0600 from cloud-init 23.1 on:
//! `features.NETPLAN_CONFIG_ROOT_READ_ONLY`), and netplan's systemd generator makes the same
//! NetworkManager connections from it at each boot. netplan itself never reads the seed.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::profile::network::{InterfaceConfig, Ipv4Config, Ipv6Config, NetworkConfig};
use crate::render::RenderError;

use super::{WifiNetwork, check_interface, split_dns};

/// Route metrics: NetworkManager's defaults for Ethernet and Wi-Fi. netplan refuses two
/// default routes of the same metric ("Conflicting default route declarations"), which a
/// node with both interfaces static on one network would otherwise have.
const ETHERNET_METRIC: u32 = 100;
const WIFI_METRIC: u32 = 600;

#[derive(Serialize)]
struct Document<'a> {
    network: Network<'a>,
}

#[derive(Serialize)]
struct Network<'a> {
    version: u8,
    renderer: &'static str,
    ethernets: BTreeMap<&'static str, Interface<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    wifis: BTreeMap<&'static str, Interface<'a>>,
}

/// One interface. Only `dhcp4` and `optional` are written for an interface at the default,
/// as before issue 17; the other keys appear only when they say something.
#[derive(Serialize)]
struct Interface<'a> {
    dhcp4: bool,
    optional: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dhcp6: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nameservers: Option<Nameservers<'a>>,
    #[serde(rename = "dhcp4-overrides", skip_serializing_if = "Option::is_none")]
    dhcp4_overrides: Option<Overrides>,
    #[serde(rename = "accept-ra", skip_serializing_if = "Option::is_none")]
    accept_ra: Option<bool>,
    #[serde(rename = "link-local", skip_serializing_if = "Option::is_none")]
    link_local: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    networkmanager: Option<NetworkManager>,
    #[serde(rename = "regulatory-domain", skip_serializing_if = "Option::is_none")]
    regulatory_domain: Option<&'a str>,
    #[serde(rename = "access-points", skip_serializing_if = "Option::is_none")]
    access_points: Option<BTreeMap<&'a str, AccessPoint>>,
}

#[derive(Serialize)]
struct Route {
    to: &'static str,
    via: String,
    metric: u32,
}

#[derive(Serialize)]
struct Nameservers<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    search: Vec<&'a str>,
}

#[derive(Serialize)]
struct Overrides {
    #[serde(rename = "use-dns")]
    use_dns: bool,
}

/// Settings netplan passes to NetworkManager unchanged (`networkmanager.passthrough`).
#[derive(Serialize)]
struct NetworkManager {
    passthrough: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct AccessPoint {
    password: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    hidden: bool,
}

/// `network-config`: eth0, and wlan0 when the node has Wi-Fi. `None` when there is no Wi-Fi
/// and eth0 is at the default: the image's own template (all comments) then leaves
/// cloud-init's default networking in place.
pub fn network_config(
    network: &NetworkConfig,
    wifi: Option<&WifiNetwork<'_>>,
) -> Result<Option<String>, RenderError> {
    if wifi.is_none() && network.ethernet.is_default() {
        return Ok(None);
    }
    check_interface("eth0", &network.ethernet)?;
    let ethernets = BTreeMap::from([("eth0", interface(&network.ethernet, ETHERNET_METRIC))]);
    let mut wifis = BTreeMap::new();
    if let Some(wifi) = wifi {
        check_interface("wlan0", &network.wifi)?;
        let mut wireless = interface(&network.wifi, WIFI_METRIC);
        wireless.regulatory_domain = Some(wifi.country);
        wireless.access_points = Some(BTreeMap::from([(
            wifi.ssid,
            AccessPoint {
                password: wifi.psk_hex.to_string(),
                hidden: wifi.hidden,
            },
        )]));
        wifis.insert("wlan0", wireless);
    }
    let document = Document {
        network: Network {
            version: 2,
            renderer: "NetworkManager",
            ethernets,
            wifis,
        },
    };
    serde_json::to_string_pretty(&document)
        .map(|json| Some(json + "\n"))
        .map_err(|e| RenderError(format!("network-config: {e}")))
}

/// One interface's keys. At the default: DHCP, as Imager writes it.
///
/// IPv6 `auto` says nothing, as Imager's network-config does: netplan's NetworkManager output
/// is then `method=ignore`, which leaves IPv6 to the kernel (SLAAC from router
/// advertisements). Only IPv6 name servers make it `dhcp6: true` (`method=auto`): netplan
/// would otherwise write them under `method=manual` without an address, a connection
/// NetworkManager rejects. (Saying `dhcp6: true` always is worse: Debian 12's cloud-init 22.4,
/// which renders NetworkManager files itself where there is no netplan, as in the boot test's
/// image, then files the IPv4 default route under `[ipv6]`.)
///
/// `off` is `link-local: []` and `accept-ra: false` (networkd) plus NetworkManager's own
/// `ipv6.method=disabled` through netplan's passthrough, since netplan has no key that makes
/// it. The default route is written `0.0.0.0/0`, not `default`, which cloud-init 22.4 cannot
/// parse.
fn interface(config: &InterfaceConfig, metric: u32) -> Interface<'_> {
    let mut out = Interface {
        dhcp4: true,
        optional: true,
        dhcp6: None,
        addresses: Vec::new(),
        routes: Vec::new(),
        nameservers: None,
        dhcp4_overrides: None,
        accept_ra: None,
        link_local: None,
        networkmanager: None,
        regulatory_domain: None,
        access_points: None,
    };
    if config.is_default() {
        return out;
    }
    if let Ipv4Config::Static { address, gateway } = &config.ipv4 {
        out.dhcp4 = false;
        out.addresses.push(address.to_string());
        if let Some(gateway) = gateway {
            out.routes.push(Route {
                to: "0.0.0.0/0",
                via: gateway.to_string(),
                metric,
            });
        }
    }
    match &config.ipv6 {
        // IPv6 name servers need IPv6 managed by NetworkManager: with nothing said, netplan
        // writes them under `method=manual` without an address, which NetworkManager rejects.
        Ipv6Config::Auto if config.dns.iter().any(IpAddr::is_ipv6) => out.dhcp6 = Some(true),
        Ipv6Config::Auto => {}
        Ipv6Config::Off => {
            out.dhcp6 = Some(false);
            out.accept_ra = Some(false);
            out.link_local = Some(Vec::new());
            passthrough(&mut out, "ipv6.method", "disabled");
        }
        Ipv6Config::Static { address, gateway } => {
            out.dhcp6 = Some(false);
            out.accept_ra = Some(false);
            out.addresses.push(address.to_string());
            if let Some(gateway) = gateway {
                out.routes.push(Route {
                    to: "::/0",
                    via: gateway.to_string(),
                    metric,
                });
            }
        }
    }
    let (dns4, dns6) = split_dns(&config.dns);
    if !config.dns.is_empty() || !config.search.is_empty() {
        out.nameservers = Some(Nameservers {
            addresses: dns4
                .iter()
                .map(ToString::to_string)
                .chain(dns6.iter().map(ToString::to_string))
                .collect(),
            search: config.search.iter().map(String::as_str).collect(),
        });
    }
    if !config.dns.is_empty() {
        // The given servers replace the network's, as on the other routes. netplan's
        // NetworkManager writer never reads `dhcp4-overrides` (canonical/netplan src/nm.c;
        // doc/netplan-yaml.md: "Currently only has an effect on the networkd back end"), so
        // NetworkManager is told through the passthrough; the override stays for networkd.
        if out.dhcp4 {
            out.dhcp4_overrides = Some(Overrides { use_dns: false });
            passthrough(&mut out, "ipv4.ignore-auto-dns", "true");
        }
        if out.dhcp6 == Some(true) {
            passthrough(&mut out, "ipv6.ignore-auto-dns", "true");
        }
    }
    out
}

/// Adds one NetworkManager setting to the interface's `networkmanager.passthrough`.
fn passthrough(out: &mut Interface<'_>, key: &'static str, value: &'static str) {
    out.networkmanager
        .get_or_insert_with(|| NetworkManager {
            passthrough: BTreeMap::new(),
        })
        .passthrough
        .insert(key, value);
}
