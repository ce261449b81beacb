//! `network:` of a v1 profile (issue 17): each `ethernet:`/`wifi:` mapping parsed once where
//! it is written, merged into each node, and checked across the whole profile (an address
//! used twice, the gateway, the cluster's VIP).
//!
//! A node's interface overrides the defaults' **field by field** (`dns` and `search` as
//! whole lists), as `user:`, `ssh:` and `boot:` do: the gateway and name servers of a LAN
//! can sit in `defaults` and each node give only its address. Every problem is recorded
//! with the field it was written at, so `defaults.network.ethernet.gateway` is blamed once,
//! not once per node (see [`Once`]).

mod parse;
mod vip;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use super::schema::{ClusterSpec, Profile, Role};
use super::validate::Report;
use crate::profile::network::{InterfaceConfig, Ipv4Config, Ipv6Config, NetworkConfig};
use crate::ui::quoted;
use parse::{At, Ipv4Value, Ipv6Value, Pair, Parsed, pair};

/// The profile's names of the interfaces and what a message calls them.
const IFACES: [(&str, &str); 2] = [("ethernet", "eth0"), ("wifi", "wlan0")];

/// Problems reported once per field and kind: a default blamed for every node would repeat
/// one line per node.
#[derive(Default)]
struct Once(HashSet<(String, &'static str)>);

impl Once {
    fn error(&mut self, r: &mut Report, field: &str, kind: &'static str, message: String) {
        if self.0.insert((field.to_string(), kind)) {
            r.error(field, message);
        }
    }

    fn warn(&mut self, r: &mut Report, field: &str, kind: &'static str, message: String) {
        if self.0.insert((field.to_string(), kind)) {
            r.warn(field, message);
        }
    }
}

/// A static IPv4 address a node has, for the checks across nodes.
struct Owner {
    hostname: String,
    field: String,
}

/// The parsed `network:` mappings of a profile and what the nodes made of them so far.
pub(crate) struct Networks {
    defaults: Pair,
    entries: Vec<Pair>,
    once: Once,
    /// Every static address (IPv4 and IPv6) → its first owner.
    addresses: HashMap<IpAddr, Owner>,
    /// Every gateway a node uses → its field (for the VIP).
    gateways: Vec<(Ipv4Addr, String)>,
    /// Each server's static IPv4 networks (with their fields), in the order of the nodes.
    servers: Vec<(String, Vec<At<Ipv4Net>>)>,
    /// Whether any server / any agent has a known address (K3s gets `node-ip`).
    known: [bool; 2],
    /// Nodes without a known address (for `node_external_ip`).
    unknown: Vec<String>,
}

impl Networks {
    /// Parses `defaults.network` and every node's `network`, recording each value that is
    /// wrong on its own.
    pub(crate) fn parse(profile: &Profile, r: &mut Report) -> Networks {
        let defaults = pair("defaults", profile.defaults.network.as_ref(), false, r);
        let entries = profile
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| pair(&format!("nodes[{i}]"), n.network.as_ref(), true, r))
            .collect();
        Networks {
            defaults,
            entries,
            once: Once::default(),
            addresses: HashMap::new(),
            gateways: Vec::new(),
            servers: Vec::new(),
            known: [false; 2],
            unknown: Vec::new(),
        }
    }

    /// The network of host `index` of the `count` hosts that entry `entry` names.
    pub(crate) fn node(&mut self, host: Host<'_>, r: &mut Report) -> NetworkConfig {
        let mut config = NetworkConfig::default();
        let mut networks = Vec::new();
        for (i, (key, device)) in IFACES.into_iter().enumerate() {
            let node = self.entries.get(host.entry).and_then(|p| p[i].as_ref());
            let merged = Parsed::merge(self.defaults[i].as_ref(), node);
            let iface = self.interface(&host, key, device, &merged, r);
            if let (Ipv4Config::Static { address, .. }, Some(at)) = (&iface.ipv4, &merged.ipv4) {
                networks.push(At {
                    value: *address,
                    field: at.field.clone(),
                });
            }
            match i {
                0 => config.ethernet = iface,
                _ => config.wifi = iface,
            }
        }
        let known = config.known_ipv4().is_some();
        let server = host.role == Role::Server;
        self.known[usize::from(!server)] |= known;
        if !known {
            self.unknown.push(host.hostname.to_string());
        }
        if server {
            self.servers.push((host.hostname.to_string(), networks));
        }
        config
    }

    /// One interface of one host: its address taken from a range, and every check that
    /// needs the merged fields.
    fn interface(
        &mut self,
        host: &Host<'_>,
        key: &str,
        device: &str,
        p: &Parsed,
        r: &mut Report,
    ) -> InterfaceConfig {
        let ipv4 = self.address4(host, p, r);
        self.checks4(host, key, device, p, ipv4.as_ref(), r);
        let ipv6 = self.ipv6(host, key, device, p, r);
        self.dns6_without_ipv6(host, device, p, &ipv6, r);
        InterfaceConfig {
            ipv4: match ipv4 {
                Some(at) => Ipv4Config::Static {
                    address: at.value,
                    gateway: p.gateway.as_ref().map(|g| g.value),
                },
                None => Ipv4Config::Dhcp,
            },
            ipv6,
            dns: p
                .dns
                .as_ref()
                .map(|d| d.value.iter().map(|s| s.value).collect())
                .unwrap_or_default(),
            search: p
                .search
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_default(),
        }
    }

    /// The host's static IPv4 address: the entry's own, or its place in the entry's range;
    /// `None` for DHCP and for a range or an address that does not fit the entry.
    fn address4(&mut self, host: &Host<'_>, p: &Parsed, r: &mut Report) -> Option<At<Ipv4Net>> {
        match &p.ipv4 {
            None
            | Some(At {
                value: Ipv4Value::Dhcp,
                ..
            }) => None,
            Some(At {
                value: Ipv4Value::Static(net),
                field,
            }) => {
                if host.count > 1 && !field.starts_with("defaults") {
                    self.once.error(
                        r,
                        field,
                        "one-for-range",
                        format!(
                            "{} names {} nodes but this is one address: give them a range of \
                             {} addresses, e.g. {}",
                            quoted(host.pattern),
                            host.count,
                            host.count,
                            range_example(*net, host.count)
                        ),
                    );
                    None
                } else {
                    Some(At {
                        value: *net,
                        field: field.clone(),
                    })
                }
            }
            Some(At {
                value: Ipv4Value::Range { first, count },
                field,
            }) => {
                if u64::from(*count) != host.count {
                    self.once.error(
                        r,
                        field,
                        "range-length",
                        format!(
                            "this range has {count} address(es) but {} names {} node(s): a \
                             range node takes a range of the same length",
                            quoted(host.pattern),
                            host.count
                        ),
                    );
                    None
                } else {
                    let n = u32::from(first.addr()) + host.index as u32;
                    Ipv4Net::new(Ipv4Addr::from(n), first.prefix_len())
                        .ok()
                        .map(|value| At {
                            value,
                            field: field.clone(),
                        })
                }
            }
        }
    }

    /// The checks of a static IPv4 address: Wi-Fi without a network, used twice, the
    /// gateway inside its prefix and not the node itself, and what is missing.
    fn checks4(
        &mut self,
        host: &Host<'_>,
        key: &str,
        device: &str,
        p: &Parsed,
        ipv4: Option<&At<Ipv4Net>>,
        r: &mut Report,
    ) {
        let name = host.hostname;
        let wifi_without_network = key == "wifi" && !host.has_wifi;
        if let Some(at) = &ipv4 {
            if wifi_without_network {
                self.once.error(
                    r,
                    &at.field,
                    "no-wifi",
                    format!(
                        "a static Wi-Fi address needs a Wi-Fi network, and {name} has no \
                         `wifi:` (set it, or move the address to `ethernet:`)"
                    ),
                );
            }
            self.claim(IpAddr::V4(at.value.addr()), &at.field, name, r);
            if p.dns.is_none() {
                self.once.warn(
                    r,
                    &at.field,
                    "no-dns",
                    format!(
                        "with a static address {device} asks no DHCP server for name \
                         servers: give `dns:` (e.g. the router), or names resolve only \
                         through IPv6 router advertisements"
                    ),
                );
            }
        }
        match (&p.gateway, &ipv4) {
            (Some(gw), None)
                if !p.bad.ipv4
                    && matches!(
                        p.ipv4.as_ref().map(|a| a.value),
                        None | Some(Ipv4Value::Dhcp)
                    )
                    && written_with(&gw.field, p.ipv4.as_ref().map(|a| a.field.as_str())) =>
            {
                self.once.error(
                    r,
                    &gw.field,
                    "gateway-dhcp",
                    format!(
                        "a gateway goes with a static `ipv4` address, and {name}'s {device} \
                         uses DHCP (which hands out the route)"
                    ),
                );
            }
            (Some(gw), Some(at)) => {
                let net = at.value;
                if !net.contains(&gw.value) {
                    self.once.error(
                        r,
                        &gw.field,
                        "gateway-outside",
                        format!(
                            "{} is outside {} (the network {} of {}): the gateway must be \
                             reachable on the interface's own network",
                            gw.value,
                            net,
                            net.trunc(),
                            at.field
                        ),
                    );
                } else if net.prefix_len() <= 30
                    && (gw.value == net.network() || gw.value == net.broadcast())
                {
                    self.once.error(
                        r,
                        &gw.field,
                        "gateway-special",
                        format!(
                            "{} is the network or broadcast address of {}, not a router",
                            gw.value,
                            net.trunc()
                        ),
                    );
                }
                if gw.value == net.addr() {
                    self.once.error(
                        r,
                        &at.field,
                        "is-gateway",
                        format!(
                            "{name}'s address {} is also its gateway ({}): a node cannot \
                             route through itself",
                            net.addr(),
                            gw.field
                        ),
                    );
                }
                self.gateways.push((gw.value, gw.field.clone()));
            }
            (None, Some(at)) if !p.bad.gateway => self.once.warn(
                r,
                &at.field,
                "no-gateway",
                format!(
                    "no `gateway`: {device} reaches only {} (the first boot downloads K3s and \
                     the runner's images from the internet)",
                    at.value.trunc()
                ),
            ),
            _ => {}
        }
    }

    /// IPv6 addressing, and the checks of a static address and its `gateway6`.
    fn ipv6(
        &mut self,
        host: &Host<'_>,
        key: &str,
        device: &str,
        p: &Parsed,
        r: &mut Report,
    ) -> Ipv6Config {
        let name = host.hostname;
        let wifi_without_network = key == "wifi" && !host.has_wifi;
        let ipv6 = match p.ipv6.as_ref().map(|a| (a.value, &a.field)) {
            None | Some((Ipv6Value::Auto, _)) => Ipv6Config::Auto,
            Some((Ipv6Value::Off, _)) => Ipv6Config::Off,
            Some((Ipv6Value::Static(net), field)) => {
                if host.count > 1 && !field.starts_with("defaults") {
                    self.once.error(
                        r,
                        field,
                        "one6-for-range",
                        format!(
                            "{} names {} nodes but this is one IPv6 address: give the range's \
                             nodes their IPv6 addresses one by one (one node per entry)",
                            quoted(host.pattern),
                            host.count
                        ),
                    );
                }
                if wifi_without_network {
                    self.once.error(
                        r,
                        field,
                        "no-wifi6",
                        format!(
                            "a static Wi-Fi address needs a Wi-Fi network, and {name} has no \
                             `wifi:`"
                        ),
                    );
                }
                self.claim(IpAddr::V6(net.addr()), field, name, r);
                if p.gateway6.is_none() && !p.bad.gateway6 {
                    self.once.warn(
                        r,
                        field,
                        "no-gateway6",
                        format!(
                            "static ipv6 without gateway6: no IPv6 default route on \
                             Bookworm/Trixie ({device} reaches only {}; on Bullseye dhcpcd \
                             still takes routes from router advertisements)",
                            net.trunc()
                        ),
                    );
                }
                Ipv6Config::Static {
                    address: net,
                    gateway: p.gateway6.as_ref().map(|g| g.value),
                }
            }
        };
        if let Some(gw) = &p.gateway6
            && !p.bad.ipv6
        {
            match p.ipv6.as_ref().map(|a| (a.value, &a.field)) {
                Some((Ipv6Value::Static(net), field)) => {
                    if !(net.contains(&gw.value) || gw.value.is_unicast_link_local()) {
                        self.once.error(
                            r,
                            &gw.field,
                            "gateway6-outside",
                            format!(
                                "{} is neither inside {} ({field}) nor a link-local (fe80::/10) \
                                 address: the node could not reach it",
                                gw.value,
                                net.trunc()
                            ),
                        );
                    }
                    if gw.value == net.addr() {
                        self.once.error(
                            r,
                            field,
                            "is-gateway6",
                            format!("{name}'s IPv6 address {} is also its gateway6", net.addr()),
                        );
                    }
                }
                other if written_with(&gw.field, other.map(|(_, f)| f.as_str())) => {
                    self.once.error(
                        r,
                        &gw.field,
                        "gateway6-auto",
                        format!(
                            "gateway6 goes with a static `ipv6` address, and {name}'s {device} \
                         configures IPv6 automatically or not at all"
                        ),
                    )
                }
                _ => {}
            }
        }
        ipv6
    }

    /// An IPv6 name server on an interface with `ipv6: off` could never be asked; every
    /// route's renderer refuses it, so `profile check` says it first, at the server.
    fn dns6_without_ipv6(
        &mut self,
        host: &Host<'_>,
        device: &str,
        p: &Parsed,
        ipv6: &Ipv6Config,
        r: &mut Report,
    ) {
        let (Ipv6Config::Off, Some(dns)) = (ipv6, &p.dns) else {
            return;
        };
        let off = p.ipv6.as_ref().map_or("ipv6", |a| a.field.as_str());
        for server in dns.value.iter().filter(|s| s.value.is_ipv6()) {
            self.once.error(
                r,
                &server.field,
                "dns6-off",
                format!(
                    "{} is an IPv6 name server, and {}'s {device} has IPv6 turned off ({off}: \
                     off): it could not be reached (give an IPv4 name server, or turn IPv6 on)",
                    server.value, host.hostname
                ),
            );
        }
    }

    /// Records that `hostname` has `address` (written at `field`); a second owner is an error.
    fn claim(&mut self, address: IpAddr, field: &str, hostname: &str, r: &mut Report) {
        match self.addresses.get(&address) {
            None => {
                self.addresses.insert(
                    address,
                    Owner {
                        hostname: hostname.to_string(),
                        field: field.to_string(),
                    },
                );
            }
            Some(first) if first.field == field => self.once.error(
                r,
                field,
                "shared",
                format!(
                    "{address} would be the address of both {} and {hostname}: every node \
                     needs its own (give it per node, or a range to a range node)",
                    first.hostname
                ),
            ),
            Some(first) => {
                let message = format!(
                    "{address} is used twice: it is already {}'s address ({})",
                    first.hostname, first.field
                );
                self.once.error(r, field, "twice", message);
            }
        }
    }

    /// The checks that need every node: the VIP against the servers' addresses, and K3s
    /// arguments that would contradict the addresses pinode sets.
    pub(crate) fn finish(mut self, cluster: Option<&ClusterSpec>, r: &mut Report) {
        let Some(cluster) = cluster else {
            return;
        };
        if let Some(vip) = cluster.vip {
            self.vip(vip, r);
        }
        let k3s = cluster.k3s();
        for (name, args, known) in [
            ("server_args", &k3s.server_args, self.known[0]),
            ("agent_args", &k3s.agent_args, self.known[1]),
        ] {
            for (i, arg) in args.iter().enumerate() {
                let flag = match flag_name(arg) {
                    Some("node-ip" | "i") => "node-ip",
                    Some("node-external-ip") if k3s.node_external_ip => "node-external-ip",
                    _ => continue,
                };
                if known {
                    r.error(
                        format!("cluster.k3s.{name}[{i}]"),
                        format!(
                            "--{flag} is set by pinode from the nodes' static addresses \
                             (network:); remove it here"
                        ),
                    );
                }
            }
        }
        if k3s.node_external_ip && !self.unknown.is_empty() {
            let n = self.unknown.len();
            self.once.warn(
                r,
                "cluster.k3s.node_external_ip",
                "external-unknown",
                format!(
                    "{n} node(s) have no static address and get no node-external-ip: {}",
                    listed(&self.unknown)
                ),
            );
        }
    }
}

/// Where a host sits in the profile: what [`Networks::node`] needs to know.
pub(crate) struct Host<'a> {
    /// The node entry (`nodes[entry]`).
    pub(crate) entry: usize,
    /// The entry's hostname as written (`worker-[1-3]`).
    pub(crate) pattern: &'a str,
    pub(crate) hostname: &'a str,
    /// This host's position in the entry's range, and the range's length.
    pub(crate) index: u64,
    pub(crate) count: u64,
    pub(crate) role: Role,
    /// The node has a Wi-Fi network (`wifi:`).
    pub(crate) has_wifi: bool,
}

/// Whether a gateway written at `gateway` is meant for this interface although it gets
/// its address automatically: the node wrote it, or the same mapping said `dhcp`/`auto`
/// (`address`, the field of the addressing, `None` when nobody wrote one). A gateway in
/// `defaults` beside no addressing serves the nodes with static addresses and is not used
/// by the others.
fn written_with(gateway: &str, address: Option<&str>) -> bool {
    let mapping = |f: &str| f.rsplit_once('.').map(|(m, _)| m.to_string());
    !gateway.starts_with("defaults") || address.is_some_and(|a| mapping(a) == mapping(gateway))
}

/// At most five names, then how many more.
fn listed(items: &[String]) -> String {
    let mut text = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        text.push_str(&format!(" and {} more", items.len() - 5));
    }
    text
}

/// The flag an item of `server_args`/`agent_args` names (`--node-ip=x` → `node-ip`).
fn flag_name(arg: &str) -> Option<&str> {
    let arg = arg.trim();
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    Some(body.split(['=', ' ', '\t']).next().unwrap_or(body))
}

/// `192.168.1.10/24` with 3 nodes → `192.168.1.[10-12]/24`.
fn range_example(net: Ipv4Net, count: u64) -> String {
    let [a, b, c, d] = net.addr().octets();
    let last = (u64::from(d) + count - 1).min(254);
    format!("{a}.{b}.{c}.[{d}-{last}]/{}", net.prefix_len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::LoadedProfile;
    use std::net::IpAddr;

    /// A node's interface overrides the defaults' field by field; lists as a whole; a range
    /// gives each node its own address.
    #[test]
    fn nodes_merge_field_by_field() {
        let text = "version: 1
defaults:
  user: {name: a, password_hash: \"$6$s$h\"}
  network:
    ethernet: {gateway: 10.0.0.1, dns: [10.0.0.1], search: [lab.example], ipv6: off}
nodes:
  - hostname: w-[1-2]
    network: {ethernet: {ipv4: \"10.0.0.[21-22]/24\", dns: [10.0.0.2, 10.0.0.3]}}
  - hostname: d
";
        let loaded = LoadedProfile::parse(std::path::Path::new("p.yaml"), text)
            .unwrap_or_else(|e| panic!("{e}"));
        let eth = |n: usize| loaded.nodes[n].network.ethernet.clone();
        assert_eq!(
            eth(1).ipv4,
            Ipv4Config::Static {
                address: "10.0.0.22/24".parse().unwrap(),
                gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
            }
        );
        assert_eq!(eth(0).static_ipv4(), Some(Ipv4Addr::new(10, 0, 0, 21)));
        assert_eq!(
            eth(0).dns,
            [
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "10.0.0.3".parse().unwrap()
            ]
        );
        assert_eq!(eth(0).search, ["lab.example"]);
        assert_eq!(eth(0).ipv6, Ipv6Config::Off);
        // The DHCP node keeps its DHCP (the defaults' gateway serves static nodes only) and
        // gets the name servers, search domains and IPv6 setting.
        assert_eq!(eth(2).ipv4, Ipv4Config::Dhcp);
        assert_eq!(eth(2).dns, ["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(loaded.nodes[2].network.known_ipv4(), None);
        assert!(loaded.nodes[2].network.wifi.is_default());
    }

    #[test]
    fn a_range_is_suggested_for_a_range_node() {
        assert_eq!(
            range_example("10.0.0.10/24".parse().unwrap(), 3),
            "10.0.0.[10-12]/24"
        );
        assert_eq!(flag_name("--node-ip=1.2.3.4"), Some("node-ip"));
        assert_eq!(flag_name("-i 1.2.3.4"), Some("i"));
        assert_eq!(flag_name("1.2.3.4"), None);
    }
}
