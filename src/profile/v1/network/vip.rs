//! `cluster.vip` against the nodes' addresses: several servers, in each server's own
//! subnet (kube-vip's ARP mode announces it there), nobody's address and no gateway.

use std::net::{IpAddr, Ipv4Addr};

use super::super::validate::Report;
use super::{Networks, listed};

impl Networks {
    /// `cluster.vip`: several servers, in each server's own subnet, nobody's address.
    pub(super) fn vip(&mut self, vip: Ipv4Addr, r: &mut Report) {
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
