//! A node's network settings as the rest of pinode sees them (issue 17): per interface,
//! DHCP or a static address, with the gateway, name servers and search domains that go
//! with it. The profile's strings are parsed and checked into these types by
//! [`super::v1`]; the renderers turn them into each route's files (NetworkManager keyfiles,
//! dhcpcd.conf, netplan), and the cluster uses a known address instead of an mDNS name.
//!
//! The default is what Raspberry Pi Imager leaves: DHCP for IPv4, IPv6 as the OS configures
//! it ([`Ipv6Config::Auto`]), the network's own name servers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// Both interfaces a Raspberry Pi has: `eth0` and `wlan0`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkConfig {
    pub ethernet: InterfaceConfig,
    /// Applies only when the node has `wifi:` (the SSID and passphrase stay there).
    pub wifi: InterfaceConfig,
}

/// One interface's addressing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub ipv4: Ipv4Config,
    pub ipv6: Ipv6Config,
    /// Name servers; empty: those the network hands out.
    pub dns: Vec<IpAddr>,
    /// DNS search domains.
    pub search: Vec<String>,
}

/// IPv4 addressing of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Ipv4Config {
    #[default]
    Dhcp,
    /// A fixed address with its prefix (`192.168.1.10/24`), and the default route.
    Static {
        address: Ipv4Net,
        gateway: Option<Ipv4Addr>,
    },
}

/// IPv6 addressing of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Ipv6Config {
    /// IPv6 as each OS configures it by itself, as Imager leaves it: NetworkManager's
    /// `method=auto` on Bookworm and dhcpcd's default on Bullseye (SLAAC, DHCPv6 when router
    /// advertisements ask for it); on Trixie netplan writes nothing, so NetworkManager leaves
    /// IPv6 to the kernel (SLAAC only) unless IPv6 name servers make it `dhcp6: true`
    /// (docs/network-files.md).
    #[default]
    Auto,
    /// IPv6 disabled on the interface.
    Off,
    Static {
        address: Ipv6Net,
        gateway: Option<Ipv6Addr>,
    },
}

impl InterfaceConfig {
    /// The fixed IPv4 address, if any.
    pub fn static_ipv4(&self) -> Option<Ipv4Addr> {
        match self.ipv4 {
            Ipv4Config::Static { address, .. } => Some(address.addr()),
            Ipv4Config::Dhcp => None,
        }
    }

    /// True when nothing differs from the default (DHCP, automatic IPv6, no DNS settings):
    /// the renderers then leave the OS's own configuration alone.
    pub fn is_default(&self) -> bool {
        *self == InterfaceConfig::default()
    }
}

impl NetworkConfig {
    /// The node's known IPv4 address: the Ethernet one, else the Wi-Fi one. This is the
    /// address the cluster uses for the node (K3s `node-ip`, the founder's join address).
    pub fn known_ipv4(&self) -> Option<Ipv4Addr> {
        self.ethernet
            .static_ipv4()
            .or_else(|| self.wifi.static_ipv4())
    }
}
