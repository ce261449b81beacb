//! One `ethernet:`/`wifi:` mapping of a v1 profile, parsed where it is written: each value
//! checked on its own (an address and its prefix, a range, a gateway, name servers, search
//! domains), with the field it came from for the checks that combine them
//! ([`super::Networks`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::super::schema::{InterfaceSpec, NetworkSpec};
use super::super::validate::Report;
use crate::ui::quoted;

/// A parsed value and the dotted path of the field it was written at.
#[derive(Debug, Clone)]
pub(super) struct At<T> {
    pub(super) value: T,
    pub(super) field: String,
}

/// `ipv4:` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ipv4Value {
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
pub(super) enum Ipv6Value {
    Auto,
    Off,
    Static(Ipv6Net),
}

/// One `ethernet:` or `wifi:` mapping, parsed. A field that did not parse is `None` and
/// marked in `bad`: its error is recorded, and the checks that combine it with other fields
/// are skipped for the nodes using it (they would only repeat the problem in other words).
#[derive(Debug, Clone, Default)]
pub(super) struct Parsed {
    pub(super) ipv4: Option<At<Ipv4Value>>,
    pub(super) gateway: Option<At<Ipv4Addr>>,
    pub(super) ipv6: Option<At<Ipv6Value>>,
    pub(super) gateway6: Option<At<Ipv6Addr>>,
    /// The name servers, each with its own field (`…dns[1]`), for the checks that blame one.
    pub(super) dns: Option<At<Vec<At<IpAddr>>>>,
    pub(super) search: Option<At<Vec<String>>>,
    pub(super) bad: Bad,
}

/// Which fields of a mapping were written but did not parse.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Bad {
    pub(super) ipv4: bool,
    pub(super) gateway: bool,
    pub(super) ipv6: bool,
    pub(super) gateway6: bool,
}

impl Parsed {
    /// `node`'s fields where it writes them (even wrongly), else `defaults'`.
    pub(super) fn merge(defaults: Option<&Parsed>, node: Option<&Parsed>) -> Parsed {
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

/// The two interfaces, in the order of [`super::IFACES`].
pub(super) type Pair = [Option<Parsed>; 2];

/// Parses both interfaces of one `network:` mapping written at `at`.
pub(super) fn pair(at: &str, spec: Option<&NetworkSpec>, range_ok: bool, r: &mut Report) -> Pair {
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
            let field = format!("{at}.dns[{i}]");
            match parse_name_server(text) {
                Ok(value) => servers.push(At { value, field }),
                Err(e) => fail(field, e),
            }
        }
        p.dns = Some(At {
            value: servers,
            field: format!("{at}.dns"),
        });
    }
    if let Some(list) = &s.search {
        for (i, name) in list.iter().enumerate() {
            // Checked as it is stored: trimmed.
            if let Err(e) = crate::profile::values::dns_name(name.trim()) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
