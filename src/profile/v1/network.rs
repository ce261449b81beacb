//! `network:` of a v1 profile (issue 17): each `ethernet:`/`wifi:` mapping parsed once where
//! it is written, merged into each node, and checked across the whole profile (an address
//! used twice, the gateway, the cluster's VIP).
//!
//! A node's interface overrides the defaults' **field by field** (`dns` and `search` as
//! whole lists), as `user:`, `ssh:` and `boot:` do: the gateway and name servers of a LAN
//! can sit in `defaults` and each node give only its address. Every problem is recorded
//! with the field it was written at, so `defaults.network.ethernet.gateway` is blamed once,
//! not once per node (see [`Once`]).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::schema::{ClusterSpec, InterfaceSpec, NetworkSpec, Profile, Role};
use super::validate::Report;
use crate::profile::network::{InterfaceConfig, Ipv4Config, Ipv6Config, NetworkConfig};
use crate::ui::quoted;

/// A parsed value and the dotted path of the field it was written at.
#[derive(Debug, Clone)]
struct At<T> {
    value: T,
    field: String,
}

/// `ipv4:` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ipv4Value {
    Dhcp,
    Static(Ipv4Net),
    /// `A.B.C.[x-y]/P`: `count` consecutive addresses from `first`, one per node of a range.
    Range {
        first: Ipv4Net,
        count: u32,
    },
}

/// `ipv6:` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ipv6Value {
    Auto,
    Off,
    Static(Ipv6Net),
}

/// One `ethernet:` or `wifi:` mapping, parsed. A field that did not parse is `None` and
/// marked in `bad`: its error is recorded, and the checks that combine it with other fields
/// are skipped for the nodes using it (they would only repeat the problem in other words).
#[derive(Debug, Clone, Default)]
struct Parsed {
    ipv4: Option<At<Ipv4Value>>,
    gateway: Option<At<Ipv4Addr>>,
    ipv6: Option<At<Ipv6Value>>,
    gateway6: Option<At<Ipv6Addr>>,
    dns: Option<At<Vec<IpAddr>>>,
    search: Option<At<Vec<String>>>,
    bad: Bad,
}

/// Which fields of a mapping were written but did not parse.
#[derive(Debug, Clone, Copy, Default)]
struct Bad {
    ipv4: bool,
    gateway: bool,
    ipv6: bool,
    gateway6: bool,
}

impl Parsed {
    /// `node`'s fields where it writes them (even wrongly), else `defaults'`.
    fn merge(defaults: Option<&Parsed>, node: Option<&Parsed>) -> Parsed {
        let empty = Parsed::default();
        let (d, n) = (defaults.unwrap_or(&empty), node.unwrap_or(&empty));
        fn pick<T: Clone>(
            n: &Option<At<T>>,
            n_bad: bool,
            d: &Option<At<T>>,
            d_bad: bool,
        ) -> (Option<At<T>>, bool) {
            match (n, n_bad) {
                (Some(v), _) => (Some(v.clone()), false),
                (None, true) => (None, true),
                (None, false) => (d.clone(), d_bad),
            }
        }
        let (ipv4, ipv4_bad) = pick(&n.ipv4, n.bad.ipv4, &d.ipv4, d.bad.ipv4);
        let (gateway, gateway_bad) = pick(&n.gateway, n.bad.gateway, &d.gateway, d.bad.gateway);
        let (ipv6, ipv6_bad) = pick(&n.ipv6, n.bad.ipv6, &d.ipv6, d.bad.ipv6);
        let (gateway6, gateway6_bad) =
            pick(&n.gateway6, n.bad.gateway6, &d.gateway6, d.bad.gateway6);
        Parsed {
            ipv4,
            gateway,
            ipv6,
            gateway6,
            dns: n.dns.clone().or_else(|| d.dns.clone()),
            search: n.search.clone().or_else(|| d.search.clone()),
            bad: Bad {
                ipv4: ipv4_bad,
                gateway: gateway_bad,
                ipv6: ipv6_bad,
                gateway6: gateway6_bad,
            },
        }
    }
}

/// The two interfaces, in the order of [`IFACES`].
type Pair = [Option<Parsed>; 2];

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
        let name = host.hostname;
        let ipv4 = match &p.ipv4 {
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
        };
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
        InterfaceConfig {
            ipv4: match ipv4 {
                Some(at) => Ipv4Config::Static {
                    address: at.value,
                    gateway: p.gateway.as_ref().map(|g| g.value),
                },
                None => Ipv4Config::Dhcp,
            },
            ipv6,
            dns: p.dns.as_ref().map(|d| d.value.clone()).unwrap_or_default(),
            search: p
                .search
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_default(),
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
        let k3s = &cluster.k3s;
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

    /// `cluster.vip`: several servers, in each server's own subnet, nobody's address.
    fn vip(&mut self, vip: Ipv4Addr, r: &mut Report) {
        let field = "cluster.vip";
        let servers = self.servers.len();
        if servers < 2 {
            r.error(
                field,
                format!(
                    "a virtual IP is for an HA control plane of several servers, and this \
                     profile has {servers} server(s): remove `vip` (the API is the server's \
                     own address), or add servers (three is the usual number)"
                ),
            );
        }
        if vip.is_unspecified()
            || vip.is_loopback()
            || vip.is_multicast()
            || vip.is_broadcast()
            || vip.is_link_local()
        {
            r.error(
                field,
                format!(
                    "{vip} cannot be a virtual IP: give an unused address of the servers' network"
                ),
            );
            return;
        }
        if let Some(owner) = self.addresses.get(&IpAddr::V4(vip)) {
            r.error(
                field,
                format!(
                    "{vip} is also {}'s address ({}): the virtual IP must be an address no \
                     node has",
                    owner.hostname, owner.field
                ),
            );
        }
        if let Some((_, gw)) = self.gateways.iter().find(|(g, _)| *g == vip) {
            r.error(
                field,
                format!("{vip} is also a gateway ({gw}): the virtual IP must be an unused address"),
            );
        }
        let mut outside = Vec::new();
        let mut dhcp = Vec::new();
        for (host, nets) in &self.servers {
            if nets.is_empty() {
                dhcp.push(host.clone());
                continue;
            }
            match nets.iter().find(|n| n.value.contains(&vip)) {
                None => outside.push((host.clone(), nets[0].value.trunc())),
                Some(net) => {
                    let n = net.value;
                    if n.prefix_len() <= 30 && (vip == n.network() || vip == n.broadcast()) {
                        self.once.error(
                            r,
                            field,
                            "vip-special",
                            format!("{vip} is the network or broadcast address of {}", n.trunc()),
                        );
                    }
                }
            }
        }
        if !outside.is_empty() {
            let hosts: Vec<String> = outside.iter().map(|(h, _)| h.clone()).collect();
            let mut nets: Vec<String> = Vec::new();
            for (_, net) in &outside {
                if !nets.contains(&net.to_string()) {
                    nets.push(net.to_string());
                }
            }
            r.error(
                field,
                format!(
                    "{vip} is outside the network ({}) of server(s) {}: kube-vip in ARP mode \
                     announces the virtual IP on the servers' own subnet, so every server \
                     must be in it",
                    listed(&nets),
                    listed(&hosts)
                ),
            );
        }
        if !dhcp.is_empty() {
            r.warn(
                field,
                format!(
                    "server(s) {} get their address by DHCP, so pinode cannot check that {vip} \
                     is in their subnet: kube-vip in ARP mode needs it there, and outside the \
                     DHCP pool (or give the servers static addresses under network:)",
                    listed(&dhcp)
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

/// Parses both interfaces of one `network:` mapping written at `at`.
fn pair(at: &str, spec: Option<&NetworkSpec>, range_ok: bool, r: &mut Report) -> Pair {
    let Some(spec) = spec else {
        return [None, None];
    };
    [
        spec.ethernet
            .as_ref()
            .map(|s| interface(&format!("{at}.network.ethernet"), s, range_ok, r)),
        spec.wifi
            .as_ref()
            .map(|s| interface(&format!("{at}.network.wifi"), s, range_ok, r)),
    ]
}

/// Parses one interface mapping, recording each value that is wrong on its own.
fn interface(at: &str, s: &InterfaceSpec, range_ok: bool, r: &mut Report) -> Parsed {
    let mut p = Parsed::default();
    let mut fail = |field: String, message: String| r.error(field, message);
    if let Some(text) = &s.ipv4 {
        let field = format!("{at}.ipv4");
        match parse_ipv4(text, range_ok) {
            Ok(value) => p.ipv4 = Some(At { value, field }),
            Err(e) => {
                fail(field, e);
                p.bad.ipv4 = true;
            }
        }
    }
    if let Some(text) = &s.gateway {
        let field = format!("{at}.gateway");
        match parse_router4(text) {
            Ok(value) => p.gateway = Some(At { value, field }),
            Err(e) => {
                fail(field, e);
                p.bad.gateway = true;
            }
        }
    }
    if let Some(text) = &s.ipv6 {
        let field = format!("{at}.ipv6");
        match parse_ipv6(text) {
            Ok(value) => p.ipv6 = Some(At { value, field }),
            Err(e) => {
                fail(field, e);
                p.bad.ipv6 = true;
            }
        }
    }
    if let Some(text) = &s.gateway6 {
        let field = format!("{at}.gateway6");
        match parse_router6(text) {
            Ok(value) => p.gateway6 = Some(At { value, field }),
            Err(e) => {
                fail(field, e);
                p.bad.gateway6 = true;
            }
        }
    }
    // A wrong name server or domain is reported and left out: no other check needs them.
    if let Some(list) = &s.dns {
        let mut servers = Vec::new();
        for (i, text) in list.iter().enumerate() {
            match parse_name_server(text) {
                Ok(ip) => servers.push(ip),
                Err(e) => fail(format!("{at}.dns[{i}]"), e),
            }
        }
        p.dns = Some(At {
            value: servers,
            field: format!("{at}.dns"),
        });
    }
    if let Some(list) = &s.search {
        for (i, name) in list.iter().enumerate() {
            if let Err(e) = dns_name(name) {
                fail(format!("{at}.search[{i}]"), e);
            }
        }
        p.search = Some(At {
            value: list.iter().map(|s| s.trim().to_string()).collect(),
            field: format!("{at}.search"),
        });
    }
    p
}

const IPV4_FORMS: &str = "dhcp, ADDRESS/PREFIX such as 192.168.1.10/24, or on a range node a range such as \
     192.168.1.[21-23]/24";

/// `dhcp`, `A.B.C.D/P` or (when `range_ok`) `A.B.C.[x-y]/P`.
fn parse_ipv4(text: &str, range_ok: bool) -> Result<Ipv4Value, String> {
    let t = text.trim();
    if t == "dhcp" {
        return Ok(Ipv4Value::Dhcp);
    }
    let shown = quoted(t);
    let Some((address, prefix)) = t.rsplit_once('/') else {
        let hint = if t.parse::<Ipv4Addr>().is_ok() {
            format!(": give the prefix length too, e.g. {t}/24")
        } else {
            format!(" (expected {IPV4_FORMS})")
        };
        return Err(format!(
            "{shown} is not an IPv4 address with its prefix{hint}"
        ));
    };
    let prefix: u8 = match prefix.parse() {
        Ok(p) if (1..=32).contains(&p) => p,
        _ => {
            return Err(format!(
                "{shown}: the prefix length must be a number from 1 to 32 (24 for a \
                 255.255.255.0 network)"
            ));
        }
    };
    let Some(open) = address.find('[') else {
        let ip: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("{shown} is not a valid IPv4 address (expected {IPV4_FORMS})"))?;
        let net = Ipv4Net::new(ip, prefix).map_err(|e| format!("{shown}: {e}"))?;
        check_host(net)?;
        return Ok(Ipv4Value::Static(net));
    };
    if !range_ok {
        return Err(format!(
            "{shown} is a range of addresses, which belongs to a range node (worker-[1-3]), \
             not to defaults"
        ));
    }
    let bad = || {
        format!(
            "{shown} is not a valid address range: vary the last number only, e.g. \
             192.168.1.[21-23]/24"
        )
    };
    let head = &address[..open];
    let range = address[open + 1..].strip_suffix(']').ok_or_else(bad)?;
    if !head.ends_with('.') || format!("{head}0").parse::<Ipv4Addr>().is_err() {
        return Err(bad());
    }
    let (from, to) = range.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 3 && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u8>().ok())
            .flatten()
    };
    let (Some(from), Some(to)) = (number(from), number(to)) else {
        return Err(bad());
    };
    if from > to {
        return Err(format!(
            "{shown}: the range counts down; write [{to}-{from}]"
        ));
    }
    let first: Ipv4Addr = format!("{head}{from}").parse().map_err(|_| bad())?;
    for n in from..=to {
        let ip = Ipv4Addr::from(u32::from(first) + u32::from(n - from));
        let net = Ipv4Net::new(ip, prefix).map_err(|e| format!("{shown}: {e}"))?;
        check_host(net).map_err(|e| format!("{shown}: {e}"))?;
    }
    Ok(Ipv4Value::Range {
        first: Ipv4Net::new(first, prefix).map_err(|e| format!("{shown}: {e}"))?,
        count: u32::from(to - from) + 1,
    })
}

/// An address a node can have on its network.
fn check_host(net: Ipv4Net) -> Result<(), String> {
    let ip = net.addr();
    let what = if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.is_link_local() {
        Some("a link-local address (169.254.0.0/16, chosen by the interface itself)")
    } else if net.prefix_len() <= 30 && ip == net.network() {
        Some("the network address of its prefix")
    } else if net.prefix_len() <= 30 && ip == net.broadcast() {
        Some("the broadcast address of its prefix")
    } else {
        None
    };
    match what {
        Some(what) => Err(format!("{net}: {ip} is {what}, not a node's address")),
        None => Ok(()),
    }
}

/// A gateway: a plain IPv4 unicast address.
fn parse_router4(text: &str) -> Result<Ipv4Addr, String> {
    let t = text.trim();
    let ip: Ipv4Addr = t.parse().map_err(|_| {
        format!(
            "{} is not an IPv4 address (a gateway is written without prefix, e.g. 192.168.1.1)",
            quoted(t)
        )
    })?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        return Err(format!("{ip} cannot be a gateway"));
    }
    Ok(ip)
}

/// `auto`, `off` or `ADDRESS/PREFIX`.
fn parse_ipv6(text: &str) -> Result<Ipv6Value, String> {
    let t = text.trim();
    match t {
        "auto" => return Ok(Ipv6Value::Auto),
        "off" => return Ok(Ipv6Value::Off),
        _ => {}
    }
    let shown = quoted(t);
    let expected = "expected auto, off, or ADDRESS/PREFIX such as 2001:db8::10/64";
    let (address, prefix) = t
        .rsplit_once('/')
        .ok_or_else(|| format!("{shown} is not an IPv6 address with its prefix ({expected})"))?;
    let ip: Ipv6Addr = address
        .parse()
        .map_err(|_| format!("{shown} is not a valid IPv6 address ({expected})"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=128).contains(p))
        .ok_or_else(|| format!("{shown}: the prefix length must be a number from 1 to 128"))?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_unicast_link_local() {
        return Err(format!(
            "{shown}: {ip} is not a node's address (unspecified, loopback, multicast or \
             link-local)"
        ));
    }
    Ipv6Net::new(ip, prefix)
        .map(Ipv6Value::Static)
        .map_err(|e| format!("{shown}: {e}"))
}

/// An IPv6 gateway: unicast, often link-local (fe80::1).
fn parse_router6(text: &str) -> Result<Ipv6Addr, String> {
    let t = text.trim();
    let ip: Ipv6Addr = t.parse().map_err(|_| {
        format!(
            "{} is not an IPv6 address (a gateway is written without prefix, e.g. fe80::1)",
            quoted(t)
        )
    })?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a gateway"));
    }
    Ok(ip)
}

/// A name server: an IPv4 or IPv6 unicast address.
fn parse_name_server(text: &str) -> Result<IpAddr, String> {
    let t = text.trim();
    let ip: IpAddr = t.parse().map_err(|_| {
        format!(
            "{} is not an IP address (name servers are given by address, e.g. 192.168.1.1)",
            quoted(t)
        )
    })?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!("{ip} cannot be a name server"));
    }
    Ok(ip)
}

/// A DNS search domain: dot-separated labels of letters, digits and '-' (RFC 1123), at
/// most 253 characters.
fn dns_name(name: &str) -> Result<(), String> {
    let shown = quoted(name);
    let name = name.trim().strip_suffix('.').unwrap_or(name.trim());
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{shown} is not a DNS domain name (labels of a-z, 0-9 and '-' separated by dots, \
             e.g. lab.example)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::LoadedProfile;

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
    fn ipv4_forms() {
        assert_eq!(parse_ipv4("dhcp", false), Ok(Ipv4Value::Dhcp));
        assert_eq!(
            parse_ipv4("10.0.2.15/24", false),
            Ok(Ipv4Value::Static("10.0.2.15/24".parse().unwrap()))
        );
        assert_eq!(
            parse_ipv4("192.168.1.[21-23]/24", true),
            Ok(Ipv4Value::Range {
                first: "192.168.1.21/24".parse().unwrap(),
                count: 3
            })
        );
        assert!(
            parse_ipv4("192.168.1.[21-23]/24", false)
                .unwrap_err()
                .contains("not to defaults")
        );
        assert!(
            parse_ipv4("10.0.2.15", false)
                .unwrap_err()
                .contains("10.0.2.15/24")
        );
        assert!(parse_ipv4("10.0.2.15/33", false).is_err());
        assert!(
            parse_ipv4("10.0.2.0/24", false)
                .unwrap_err()
                .contains("network address")
        );
        assert!(
            parse_ipv4("10.0.2.255/24", false)
                .unwrap_err()
                .contains("broadcast")
        );
        assert!(parse_ipv4("10.0.2.[250-256]/24", true).is_err());
        assert!(
            parse_ipv4("10.0.2.[254-255]/24", true)
                .unwrap_err()
                .contains("broadcast")
        );
        assert!(parse_ipv4("10.0.[1-2].3/24", true).is_err());
        assert!(
            parse_ipv4("10.0.2.[3-1]/24", true)
                .unwrap_err()
                .contains("counts down")
        );
        assert!(parse_ipv4("127.0.0.1/8", false).is_err());
        assert!(parse_ipv4("10.0.0.1/31", false).is_ok());
    }

    #[test]
    fn ipv6_and_names() {
        assert_eq!(parse_ipv6("auto"), Ok(Ipv6Value::Auto));
        assert_eq!(parse_ipv6("off"), Ok(Ipv6Value::Off));
        assert!(parse_ipv6("2001:db8::10/64").is_ok());
        assert!(parse_ipv6("2001:db8::10").is_err());
        assert!(parse_ipv6("fe80::1/64").is_err());
        assert!(parse_router6("fe80::1").is_ok());
        assert!(parse_name_server("2606:4700:4700::1111").is_ok());
        assert!(parse_name_server("dns.example").is_err());
        assert!(dns_name("lab.example").is_ok());
        assert!(dns_name("lab.example.").is_ok());
        assert!(dns_name("-lab.example").is_err());
        assert!(dns_name("lab..example").is_err());
        assert!(dns_name("lab_x.example").is_err());
        assert_eq!(
            range_example("10.0.0.10/24".parse().unwrap(), 3),
            "10.0.0.[10-12]/24"
        );
    }
}
