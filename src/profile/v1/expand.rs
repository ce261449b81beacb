//! Translating a v1 profile into the internal model (`crate::profile::node`): hostname
//! ranges expanded, defaults merged into each node, secrets picked into references.

use std::collections::HashMap;

use super::network::{Host, Networks};
use super::schema::{BootSpec, NodeSettings, Profile, Role, SshSpec, SudoMode, UserSpec};
use super::secrets;
use super::validate::Report;
use crate::profile::node::{BootConfig, NodeConfig, Password, Sourced, UserConfig, WifiConfig};
use crate::profile::values;

/// The largest range a hostname pattern may expand to.
const MAX_RANGE: u64 = 1000;

/// The most nodes a whole profile may expand to. Kubernetes documents 5,000 nodes as the
/// largest cluster it supports, and a Pi cluster is far smaller: twice that leaves room for
/// any real profile while a hostile one (20,000 entries of `[1-1000]`, 20 million nodes in a
/// 929 KB file) is refused before anything is allocated for its nodes.
const MAX_NODES: u64 = 10_000;

/// Expands every entry and merges defaults; records problems in `report`.
pub(crate) fn expand(profile: &Profile, report: &mut Report) -> Vec<NodeConfig> {
    // Count first (each pattern is only parsed), so that the limit holds before any node
    // or name is allocated.
    let total: u64 = profile
        .nodes
        .iter()
        .map(|n| hostname_count(&n.hostname).unwrap_or(0))
        .fold(0u64, u64::saturating_add);
    if total > MAX_NODES {
        report.error(
            "nodes",
            format!(
                "the nodes expand to {total} hosts; pinode handles at most {MAX_NODES} nodes \
                 in one profile (split it into several profiles)"
            ),
        );
        return Vec::new();
    }
    let mut nodes = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut networks = Networks::parse(profile, report);
    for (entry, node) in profile.nodes.iter().enumerate() {
        let field = format!("nodes[{entry}].hostname");
        let names = match expand_hostname(&node.hostname) {
            Ok(names) => names,
            Err(message) => {
                report.error(field, message);
                continue;
            }
        };
        let count = names.len() as u64;
        let has_wifi = match &node.wifi {
            Some(wifi) => wifi.is_some(),
            None => matches!(profile.defaults.wifi, Some(Some(_))),
        };
        for (index, hostname) in names.into_iter().enumerate() {
            if let Err(message) = values::hostname(&hostname) {
                report.error(field.clone(), message);
                continue;
            }
            if let Some(first) = seen.insert(hostname.clone(), entry) {
                report.error(
                    field.clone(),
                    format!("hostname {hostname} is used twice (also by nodes[{first}]); node names must be unique"),
                );
                continue;
            }
            let role = node.role.unwrap_or(Role::Agent);
            let network = networks.node(
                Host {
                    entry,
                    pattern: &node.hostname,
                    hostname: &hostname,
                    index: index as u64,
                    count,
                    role,
                    has_wifi,
                },
                report,
            );
            if let Some(mut config) = merge(
                &profile.defaults,
                &node.settings(),
                entry,
                hostname,
                role,
                report,
            ) {
                config.network = network;
                nodes.push(config);
            }
        }
    }
    networks.finish(profile.cluster.as_ref(), report);
    if let Some(cluster) = &profile.cluster {
        let servers = nodes.iter().filter(|n| n.role == Role::Server).count();
        // K3s and kubeadm keep etcd, which needs a majority; MicroK8s' dqlite has rules of
        // its own.
        if cluster.distribution == crate::engine::Distribution::Microk8s {
            // MicroK8s nodes join the founder itself; without a static address that is
            // FOUNDER.local, which stock Ubuntu Server cannot resolve.
            let founder = nodes.iter().find(|n| n.role == Role::Server);
            if nodes.len() > 1 && founder.is_some_and(|f| f.network.known_ipv4().is_none()) {
                report.warn(
                    "nodes",
                    "MicroK8s nodes join the first server at its address; it has no static \
                     one (network:), so they look up FOUNDER.local, which Ubuntu Server \
                     resolves only with avahi-daemon and libnss-mdns installed (the stock \
                     image has neither): give the first server a static address",
                );
            }
            for problem in crate::engine::microk8s::server_count_problems(servers) {
                if problem.warning {
                    report.warn("nodes", problem.message);
                } else {
                    report.error("nodes", problem.message);
                }
            }
        } else if let Some(warning) = values::server_count(servers) {
            report.warn("nodes", warning);
        }
        // kubeadm's controlPlaneEndpoint is one address for every node and kubeconfig: the
        // founder's, unless a VIP (or a load balancer named by cluster.api) stands for all
        // the servers. K3s' and MicroK8s' nodes balance over the servers by themselves.
        if cluster.distribution == crate::engine::Distribution::Kubeadm
            && servers > 1
            && cluster.vip.is_none()
            && cluster.api.is_none()
        {
            report.warn(
                "cluster",
                "kubeadm with several servers and neither cluster.vip nor cluster.api: the \
                 control-plane endpoint is the first server's address, so the API that nodes \
                 and kubectl use goes down with it; give a cluster.vip (kube-vip) for an HA \
                 endpoint",
            );
        }
    }
    nodes
}

/// How many hosts `pattern` names, without expanding it.
fn hostname_count(pattern: &str) -> Result<u64, String> {
    Ok(match parse_pattern(pattern)? {
        Some(p) => p.end - p.start + 1,
        None => 1,
    })
}

/// `worker-[1-3]` → worker-1, worker-2, worker-3; `n[08-10]` keeps the zero padding.
pub fn expand_hostname(pattern: &str) -> Result<Vec<String>, String> {
    let Some(Pattern {
        prefix,
        start,
        end,
        width,
        suffix,
    }) = parse_pattern(pattern)?
    else {
        return Ok(vec![pattern.to_string()]);
    };
    Ok((start..=end)
        .map(|n| format!("{prefix}{n:0width$}{suffix}"))
        .collect())
}

/// A hostname pattern with one numeric range.
struct Pattern<'a> {
    prefix: &'a str,
    start: u64,
    end: u64,
    width: usize,
    suffix: &'a str,
}

/// Parses `prefix[from-to]suffix`; `None` for a plain name.
fn parse_pattern(pattern: &str) -> Result<Option<Pattern<'_>>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(None);
    };
    let bad = || {
        format!(
            "{} is not a valid hostname pattern: use one numeric range such as worker-[1-3]",
            crate::ui::quoted(pattern)
        )
    };
    let close = pattern[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(bad)?;
    let (prefix, range, suffix) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    if suffix.contains(['[', ']']) {
        return Err(bad());
    }
    let (from, to) = range.split_once('-').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.chars().all(|c| c.is_ascii_digit());
    if !digits(from) || !digits(to) {
        return Err(bad());
    }
    let (start, end): (u64, u64) = (
        from.parse().map_err(|_| bad())?,
        to.parse().map_err(|_| bad())?,
    );
    if start > end {
        return Err(format!(
            "the range [{range}] counts down; write [{to}-{from}]"
        ));
    }
    if end - start + 1 > MAX_RANGE {
        return Err(format!(
            "the range [{range}] has more than {MAX_RANGE} nodes"
        ));
    }
    let width = if from.len() > 1 && from.starts_with('0') {
        from.len()
    } else {
        0
    };
    Ok(Some(Pattern {
        prefix,
        start,
        end,
        width,
        suffix,
    }))
}

fn merge(
    defaults: &NodeSettings,
    node: &NodeSettings,
    entry: usize,
    hostname: String,
    role: Role,
    report: &mut Report,
) -> Option<NodeConfig> {
    let at = format!("nodes[{entry}]");
    // Each field comes from the node if it sets it, else from defaults.
    let pick = |n: bool| {
        if n {
            at.clone()
        } else {
            "defaults".to_string()
        }
    };

    let (du, nu) = (
        defaults.user.clone().unwrap_or_default(),
        node.user.clone().unwrap_or_default(),
    );
    let name = nu.name.clone().or(du.name.clone());
    // Keys and password are each replaced as a whole: a node that gives its own keys does not
    // also inherit the default ones.
    let node_keys = nu.ssh_authorized_keys.is_some() || nu.ssh_authorized_keys_file.is_some();
    let keys_from = if node_keys { &nu } else { &du };
    let keys_at = format!("{}.user", pick(node_keys));
    let node_password = nu.password_hash.is_some() || nu.password_env.is_some();
    let password_from: &UserSpec = if node_password { &nu } else { &du };
    let password_at = format!("{}.user", pick(node_password));
    let password = match (
        &password_from.password_hash,
        secrets::one(secrets::password(&password_at, password_from)),
    ) {
        (Some(hash), _) => Password::Hash(hash.clone()),
        (None, Some(plain)) => Password::Plain(plain),
        (None, None) => Password::None,
    };
    let sudo = nu.sudo.or(du.sudo).unwrap_or(SudoMode::Nopasswd);
    let keys = keys_from.ssh_authorized_keys.clone().unwrap_or_default();
    let keys_file = keys_from
        .ssh_authorized_keys_file
        .clone()
        .map(|value| Sourced {
            value,
            field: format!("{keys_at}.ssh_authorized_keys_file"),
        });

    let Some(name) = name else {
        report.error(
            format!("{at}.user"),
            format!("node {hostname} has no user: set defaults.user.name"),
        );
        return None;
    };

    let (ds, ns) = (
        defaults.ssh.clone().unwrap_or_default(),
        node.ssh.clone().unwrap_or_default(),
    );
    let ssh = SshSpec {
        enabled: ns.enabled.or(ds.enabled),
        password_authentication: ns.password_authentication.or(ds.password_authentication),
    };
    let ssh_enabled = ssh.enabled.unwrap_or(true);

    let has_keys = !keys.is_empty() || keys_file.is_some();
    let has_password = !password.is_none();
    if !has_keys && !has_password {
        report.error(
            format!("{at}.user"),
            format!("node {hostname} has no way to log in: give ssh_authorized_keys, ssh_authorized_keys_file or a password"),
        );
    } else if !ssh_enabled && !has_password {
        report.error(
            format!(
                "{}.ssh.enabled",
                pick(node.ssh.as_ref().is_some_and(|s| s.enabled.is_some()))
            ),
            format!("node {hostname} would have SSH off and no password: nobody could log in"),
        );
    } else if ssh_enabled && !has_keys && ssh.password_authentication == Some(false) {
        report.error(
            format!("{at}.ssh.password_authentication"),
            format!("node {hostname} would accept neither keys nor passwords over SSH: give a key or allow password authentication"),
        );
    } else if has_keys && ssh.password_authentication == Some(true) && !has_password {
        report.warn(
            format!("{at}.ssh"),
            "password_authentication is on but the user has no password",
        );
    }
    if sudo == SudoMode::Password && !has_password {
        report.error(
            format!("{}.user.sudo", pick(nu.sudo.is_some())),
            format!(
                "node {hostname}: `sudo: password` needs a password (password_hash or password_env)"
            ),
        );
    }
    let (wifi, wifi_at) = match &node.wifi {
        Some(w) => (w.as_ref(), format!("{at}.wifi")),
        None => (
            defaults.wifi.as_ref().and_then(Option::as_ref),
            "defaults.wifi".into(),
        ),
    };
    // Validation has made sure there is exactly one passphrase source.
    let wifi = wifi.and_then(|w| {
        Some(WifiConfig {
            ssid: w.ssid.clone(),
            psk: secrets::one(secrets::wifi_psk(&wifi_at, w))?,
            country: w.country.clone(),
            hidden: w.hidden,
        })
    });

    let (db, nb) = (
        defaults.boot.clone().unwrap_or_default(),
        node.boot.clone().unwrap_or_default(),
    );
    let boot = BootSpec {
        cgroups: nb.cgroups.or(db.cgroups),
        arm_64bit: nb.arm_64bit.or(db.arm_64bit),
        cmdline_extra: nb.cmdline_extra.or(db.cmdline_extra),
        config_extra: nb.config_extra.or(db.config_extra),
    };

    Some(NodeConfig {
        hostname,
        role,
        user: UserConfig {
            name,
            keys,
            keys_file,
            password,
            sudo,
        },
        ssh_enabled,
        ssh_password_authentication: ssh.password_authentication,
        wifi,
        timezone: node
            .timezone
            .clone()
            .or(defaults.timezone.clone())
            .unwrap_or_else(|| "Etc/UTC".into()),
        locale: node
            .locale
            .clone()
            .or(defaults.locale.clone())
            .unwrap_or_else(|| "en_GB.UTF-8".into()),
        keyboard: node
            .keyboard
            .clone()
            .or(defaults.keyboard.clone())
            .unwrap_or_else(|| "gb".into()),
        boot: BootConfig {
            cgroups: boot.cgroups.unwrap_or(true),
            arm_64bit: boot.arm_64bit.unwrap_or(true),
            cmdline_extra: boot.cmdline_extra.unwrap_or_default(),
            config_extra: boot.config_extra.unwrap_or_default(),
        },
        // Filled by the caller from `network:` (see `super::network`).
        network: Default::default(),
        storage: match (node.storage, defaults.storage) {
            (Some(value), _) => Sourced {
                value,
                field: format!("{at}.storage"),
            },
            (None, Some(value)) => Sourced {
                value,
                field: "defaults.storage".into(),
            },
            (None, None) => Sourced {
                value: Default::default(),
                field: format!("{at}.hostname"),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            expand_hostname("worker-[1-3]").unwrap(),
            ["worker-1", "worker-2", "worker-3"]
        );
        assert_eq!(expand_hostname("n[08-10]").unwrap(), ["n08", "n09", "n10"]);
        assert_eq!(
            expand_hostname("rack[1-2]-pi").unwrap(),
            ["rack1-pi", "rack2-pi"]
        );
        assert_eq!(expand_hostname("plain").unwrap(), ["plain"]);
        assert!(
            expand_hostname("w-[3-1]")
                .unwrap_err()
                .contains("counts down")
        );
        assert!(expand_hostname("w-[1-3").is_err());
        assert!(expand_hostname("w-[a-c]").is_err());
        assert!(expand_hostname("w-[1-2]-[1-2]").is_err());
        assert!(expand_hostname("w-[1-5000]").is_err());
    }
}
