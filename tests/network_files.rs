//! Issue 17, item 2: every route renders the node's addressing, and each rendered file is read
//! by the real reader of its format.
//!
//! - Bookworm: the NetworkManager keyfiles are loaded by libnm's keyfile reader
//!   (`NM.keyfile_read` through python3-gi and gir1.2-nm-1.0, tests/tools/nm_keyfile.py).
//! - Trixie: the `network-config` is checked against cloud-init's newest network-config schema
//!   (shared/upstream beside the repository, when there), converted by the installed cloud-init (`cloud-init devel
//!   net-convert`, as cloud-init does on the node) and rendered by `netplan generate`; the
//!   NetworkManager connections it makes are loaded by libnm again, the networkd files read.
//! - Bullseye: the `dhcpcd.conf` block is parsed per interface, and the shell function that
//!   puts it into the image's file is run twice (sh, dash, bash) and checked by shellcheck.
//!
//! - The first boot itself (firstrun.sh in a scratch root, root only) writes the keyfiles
//!   root-owned 0600 and the dhcpcd.conf block, once; after the first boot on Trixie, the
//!   scrubbed network-config is checked with cloud-init's own code.
//!
//! The renderers are called directly with `NetworkConfig` values, and the first-boot test sets
//! the node's network on the parsed profile through the library: the profile's `network:`
//! (issue 17, item 1) is parsed by another change; tests through `pinode render` follow it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use pinode::profile::network::{InterfaceConfig, Ipv4Config, Ipv6Config, NetworkConfig};
use pinode::render::network::{WifiNetwork, dhcpcd, keyfile, netplan};
use serde_json::{Value, json};

/// An SSID with every character that breaks naive quoting, and one of 32 bytes.
const HOSTILE_SSID: &str = "a'b\"c $(x) ü;z";
const PSK: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn static_v4(address: &str, gateway: Option<&str>) -> Ipv4Config {
    Ipv4Config::Static {
        address: address.parse().unwrap(),
        gateway: gateway.map(|g| g.parse().unwrap()),
    }
}

fn static_v6(address: &str, gateway: Option<&str>) -> Ipv6Config {
    Ipv6Config::Static {
        address: address.parse().unwrap(),
        gateway: gateway.map(|g| g.parse().unwrap()),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The profile's example: eth0 static with a gateway, name servers of both families and
/// two search domains, IPv6 automatic.
fn lab_static() -> InterfaceConfig {
    InterfaceConfig {
        ipv4: static_v4("192.168.1.10/24", Some("192.168.1.1")),
        ipv6: Ipv6Config::Auto,
        dns: vec![
            "192.168.1.1".parse().unwrap(),
            "2001:db8::53".parse().unwrap(),
        ],
        search: strings(&["lab.example", "corp-1.example"]),
    }
}

/// DHCP with the name servers given (they replace the network's), IPv6 off.
fn dhcp_own_dns_no_ipv6() -> InterfaceConfig {
    InterfaceConfig {
        ipv4: Ipv4Config::Dhcp,
        ipv6: Ipv6Config::Off,
        dns: vec!["9.9.9.9".parse().unwrap()],
        search: Vec::new(),
    }
}

/// Both families static, no name servers.
fn dual_static() -> InterfaceConfig {
    InterfaceConfig {
        ipv4: static_v4("10.0.2.15/24", Some("10.0.2.2")),
        ipv6: static_v6("2001:db8:1::15/64", Some("2001:db8:1::1")),
        dns: Vec::new(),
        search: Vec::new(),
    }
}

fn wifi() -> WifiNetwork<'static> {
    WifiNetwork {
        ssid: HOSTILE_SSID,
        psk_hex: PSK,
        country: "DE",
        hidden: true,
    }
}

/// libnm's reading of `files`, one JSON object each (tests/tools/nm_keyfile.py).
fn libnm(files: &[PathBuf]) -> Vec<Value> {
    let out = run(Command::new("/usr/bin/python3")
        .arg(repo().join("tests/tools/nm_keyfile.py"))
        .args(files));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// What libnm should read for `config` (the IPv4 and IPv6 settings of the connection).
fn expected_ip(config: &InterfaceConfig) -> (Value, Value) {
    let own_dns = !config.dns.is_empty();
    let dns = |v6: bool| -> Vec<String> {
        config
            .dns
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(|a| a.to_string())
            .collect()
    };
    let (method4, addresses4, gateway4) = match &config.ipv4 {
        Ipv4Config::Dhcp => ("auto", vec![], Value::Null),
        Ipv4Config::Static { address, gateway } => (
            "manual",
            vec![address.to_string()],
            gateway.map_or(Value::Null, |g| json!(g.to_string())),
        ),
    };
    let (method6, addresses6, gateway6) = match &config.ipv6 {
        Ipv6Config::Auto => ("auto", vec![], Value::Null),
        Ipv6Config::Off => ("disabled", vec![], Value::Null),
        Ipv6Config::Static { address, gateway } => (
            "manual",
            vec![address.to_string()],
            gateway.map_or(Value::Null, |g| json!(g.to_string())),
        ),
    };
    (
        json!({
            "method": method4, "addresses": addresses4, "gateway": gateway4, "dns": dns(false),
            "search": config.search, "routes": [],
            "ignore_auto_dns": own_dns && config.ipv4 == Ipv4Config::Dhcp,
        }),
        json!({
            "method": method6, "addresses": addresses6, "gateway": gateway6, "dns": dns(true),
            "search": [], "routes": [],
            "ignore_auto_dns": own_dns && config.ipv6 == Ipv6Config::Auto,
        }),
    )
}

/// MUST SHOW (Bookworm): libnm loads every keyfile pinode writes with the intended method,
/// addresses, gateway, name servers and search domains; the Wi-Fi one keeps a hostile SSID
/// byte-exact and its PSK.
#[test]
fn keyfiles_load_in_libnm_with_the_intended_addressing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("lab", lab_static()),
        ("dhcp-dns-no-ipv6", dhcp_own_dns_no_ipv6()),
        ("dual", dual_static()),
        ("default", InterfaceConfig::default()),
    ];
    let mut files = Vec::new();
    for (name, config) in &cases {
        let wired = keyfile::wired(config, &keyfile::wired_uuid("node-1")).unwrap();
        files.push(write(dir.path(), &format!("{name}-eth0"), &wired));
        let wireless =
            keyfile::wifi(&wifi(), config, &keyfile::wifi_uuid("node-1", HOSTILE_SSID)).unwrap();
        files.push(write(dir.path(), &format!("{name}-wlan0"), &wireless));
    }
    let read = libnm(&files);
    for ((name, config), pair) in cases.iter().zip(read.chunks(2)) {
        let (ipv4, ipv6) = expected_ip(config);
        let (wired, wireless) = (&pair[0], &pair[1]);
        assert_eq!(wired["type"], "802-3-ethernet", "{name}");
        assert_eq!(wired["interface"], "eth0", "{name}");
        assert_eq!(wired["id"], "pinode-eth0", "{name}");
        assert_eq!(wired["uuid"], keyfile::wired_uuid("node-1"), "{name}");
        assert_eq!(wireless["type"], "802-11-wireless", "{name}");
        assert_eq!(wireless["id"], "preconfigured", "{name}");
        for (connection, what) in [(wired, "eth0"), (wireless, "wlan0")] {
            assert_eq!(connection["ipv4"], ipv4, "{name} {what}");
            assert_eq!(connection["ipv6"], ipv6, "{name} {what}");
        }
        assert_eq!(wireless["ssid"], json!(HOSTILE_SSID.as_bytes()), "{name}");
        assert_eq!(wireless["psk"], PSK, "{name}");
        assert_eq!(wireless["hidden"], true, "{name}");
    }
    eprintln!("libnm read {} keyfiles", files.len());
}

/// The first-boot script writes the keyfiles; the profile's values cannot break them: search
/// domains that are not DNS names are refused (resolv.conf would split them at the space), and
/// so is an IPv6 name server with IPv6 off.
#[test]
fn unusable_values_are_refused_by_every_renderer() {
    let bad_search = InterfaceConfig {
        search: strings(&["lab example"]),
        ..InterfaceConfig::default()
    };
    let v6_dns_off = InterfaceConfig {
        ipv6: Ipv6Config::Off,
        dns: vec!["2001:db8::53".parse().unwrap()],
        ..InterfaceConfig::default()
    };
    for config in [bad_search, v6_dns_off] {
        let e = keyfile::wired(&config, "u").unwrap_err().0;
        assert!(e.starts_with("eth0: "), "{e}");
        let e = keyfile::wifi(&wifi(), &config, "u").unwrap_err().0;
        assert!(e.starts_with("wlan0: "), "{e}");
        let e = dhcpcd::block(&config, None).unwrap_err().0;
        assert!(e.starts_with("eth0: "), "{e}");
        let network = NetworkConfig {
            ethernet: InterfaceConfig::default(),
            wifi: config.clone(),
        };
        let e = netplan::network_config(&network, Some(&wifi()))
            .unwrap_err()
            .0;
        assert!(e.starts_with("wlan0: "), "{e}");
    }
}

/// The network-config as YAML (it is JSON), checked against cloud-init's newest network-config
/// schema without `wifis`, which that schema leaves to netplan (shared/upstream/cloud-init).
fn check_schema(path: &Path) {
    let check = "import json,sys,yaml,jsonschema\n\
        schema=json.load(open(sys.argv[1])); doc=yaml.safe_load(open(sys.argv[2]))\n\
        doc['network'].pop('wifis', None)\n\
        v=jsonschema.validators.validator_for(schema)(schema)\n\
        errors=[e.message for e in v.iter_errors(doc)]\n\
        assert not errors, errors\n\
        bad=json.loads(json.dumps(doc)); bad['network']['ethernets']['eth0']['routes']=[{'via': 'x'}]\n\
        assert list(v.iter_errors(bad)), 'the schema does not check routes'\n";
    // The upstream schema is kept beside the repository (shared/upstream), not in it: a clean
    // checkout (CI) has none, and there `netplan generate` and cloud-init's own conversion
    // (below) are the checks.
    let schema = repo().join("../shared/upstream/cloud-init/main/schema-network-config-v2.json");
    if !schema.exists() {
        eprintln!(
            "NOTE: {} is not here: network-config checked by netplan and cloud-init only",
            schema.display()
        );
        return;
    }
    run(Command::new("/usr/bin/python3")
        .args(["-c", check])
        .arg(&schema)
        .arg(path));
}

/// What netplan made from `network_config` in `root`: cloud-init's own conversion first
/// (`net-convert -O netplan`, the step that writes /etc/netplan/50-cloud-init.yaml on the
/// node), then `netplan generate`, which must succeed without an error or warning.
fn netplan_generate(root: &Path, network_config: &Path) -> PathBuf {
    run(Command::new("cloud-init")
        .args([
            "devel",
            "net-convert",
            "-k",
            "yaml",
            "-D",
            "debian",
            "-O",
            "netplan",
        ])
        .arg("-p")
        .arg(network_config)
        .arg("-d")
        .arg(root));
    let yaml = root.join("etc/netplan/50-cloud-init.yaml");
    assert!(yaml.exists(), "cloud-init wrote no netplan file");
    // As cloud-init from 23.1 on writes it (Debian 12's 22.4 writes 0644, which netplan
    // warns about).
    run(Command::new("chmod").arg("600").arg(&yaml));
    let _ = std::fs::remove_dir_all(root.join("run"));
    let out = output(
        Command::new("netplan")
            .args(["generate", "--root-dir"])
            .arg(root),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "netplan generate: {err}");
    assert!(
        !err.contains("Error") && !err.contains("WARNING"),
        "netplan generate: {err}"
    );
    yaml
}

/// MUST SHOW (Trixie): the network-config passes cloud-init's schema, cloud-init converts it
/// and `netplan generate` accepts it; the NetworkManager connections netplan makes carry the
/// intended method, addresses, default routes, name servers and search domains (libnm reads
/// them), the Wi-Fi one a hostile SSID byte-exact; with the networkd renderer the same
/// document gives the matching systemd-networkd settings.
#[test]
fn netplan_generate_accepts_the_network_config_and_renders_the_addressing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // Both interfaces static on one network: two default routes, told apart by metric.
        (
            "lab",
            NetworkConfig {
                ethernet: lab_static(),
                wifi: InterfaceConfig {
                    ipv4: static_v4("192.168.1.11/24", Some("192.168.1.1")),
                    ..InterfaceConfig::default()
                },
            },
            true,
        ),
        (
            "dhcp-dns-no-ipv6",
            NetworkConfig {
                ethernet: dhcp_own_dns_no_ipv6(),
                wifi: InterfaceConfig::default(),
            },
            false,
        ),
        (
            "dual",
            NetworkConfig {
                ethernet: dual_static(),
                wifi: dual_static(),
            },
            true,
        ),
    ];
    // Nothing to say: the image's own template stays, as before issue 17.
    assert_eq!(
        netplan::network_config(&NetworkConfig::default(), None).unwrap(),
        None
    );
    for (name, network, with_wifi) in &cases {
        let wifi = wifi();
        let text = netplan::network_config(network, with_wifi.then_some(&wifi))
            .unwrap()
            .unwrap();
        let path = write(dir.path(), &format!("{name}.network-config"), &text);
        check_schema(&path);
        let root = dir.path().join(name);
        netplan_generate(&root, &path);
        let connections = root.join("run/NetworkManager/system-connections");
        let mut files: Vec<PathBuf> = walk(&connections);
        files.sort();
        assert_eq!(
            files.len(),
            1 + usize::from(*with_wifi),
            "{name}: {files:?}"
        );
        let read = libnm(&files);
        let eth0 = read.iter().find(|c| c["interface"] == "eth0").unwrap();
        netplan_connection(name, eth0, &network.ethernet, 100);
        if *with_wifi {
            let wlan0 = read.iter().find(|c| c["interface"] == "wlan0").unwrap();
            netplan_connection(name, wlan0, &network.wifi, 600);
            assert_eq!(wlan0["ssid"], json!(HOSTILE_SSID.as_bytes()), "{name}");
            assert_eq!(wlan0["psk"], PSK, "{name}");
            assert_eq!(wlan0["hidden"], true, "{name}");
            // The key stays in root-only files: netplan's output. (cloud-init's own copy,
            // /etc/netplan/50-cloud-init.yaml, is 0600 from cloud-init 23.1 on, as on
            // Trixie: features.NETPLAN_CONFIG_ROOT_READ_ONLY; Debian 12's 22.4 writes 0644.)
            for file in &files {
                assert_eq!(mode(file) & 0o077, 0, "{} is private", file.display());
            }
        }
        networkd(dir.path(), name, &text, &network.ethernet);
    }
}

/// One NetworkManager connection netplan made, against the interface's configuration.
/// netplan writes the gateway as a default route of the interface's metric.
fn netplan_connection(name: &str, read: &Value, config: &InterfaceConfig, metric: u32) {
    let what = format!("{name} {}", read["interface"]);
    let (ipv4, ipv6) = (&read["ipv4"], &read["ipv6"]);
    let dns = |v6: bool| -> Vec<String> {
        config
            .dns
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .map(|a| a.to_string())
            .collect()
    };
    match &config.ipv4 {
        Ipv4Config::Dhcp => assert_eq!(ipv4["method"], "auto", "{what}"),
        Ipv4Config::Static { address, gateway } => {
            assert_eq!(ipv4["method"], "manual", "{what}");
            assert_eq!(ipv4["addresses"], json!([address.to_string()]), "{what}");
            let routes: Vec<String> = gateway
                .iter()
                .map(|g| format!("0.0.0.0/0 via {g} metric {metric}"))
                .collect();
            assert_eq!(ipv4["routes"], json!(routes), "{what}");
        }
    }
    assert_eq!(ipv4["dns"], json!(dns(false)), "{what}");
    assert_eq!(ipv4["search"], json!(config.search), "{what}");
    match &config.ipv6 {
        // IPv6 left to the kernel (its SLAAC), as with Imager's network-config, unless IPv6
        // name servers need NetworkManager to manage it.
        Ipv6Config::Auto if !dns(true).is_empty() => {
            assert_eq!(ipv6["method"], "auto", "{what}")
        }
        Ipv6Config::Auto => assert_eq!(ipv6["method"], "ignore", "{what}"),
        Ipv6Config::Off => assert_eq!(ipv6["method"], "disabled", "{what}"),
        Ipv6Config::Static { address, gateway } => {
            assert_eq!(ipv6["method"], "manual", "{what}");
            assert_eq!(ipv6["addresses"], json!([address.to_string()]), "{what}");
            let routes: Vec<String> = gateway
                .iter()
                .map(|g| format!("::/0 via {g} metric {metric}"))
                .collect();
            assert_eq!(ipv6["routes"], json!(routes), "{what}");
        }
    }
    if config.ipv6 != Ipv6Config::Off {
        assert_eq!(ipv6["dns"], json!(dns(true)), "{what}");
    }
    // Given name servers replace what DHCP (and DHCPv6/RA, when NetworkManager manages IPv6)
    // hands out: netplan's NetworkManager output ignores `dhcp4-overrides`, so the
    // passthrough's ignore-auto-dns must arrive.
    let own_dns = !config.dns.is_empty();
    assert_eq!(
        ipv4["ignore_auto_dns"],
        own_dns && config.ipv4 == Ipv4Config::Dhcp,
        "{what}"
    );
    assert_eq!(
        ipv6["ignore_auto_dns"],
        config.ipv6 == Ipv6Config::Auto && !dns(true).is_empty(),
        "{what}"
    );
}

/// The same document with `renderer: networkd`: the systemd-networkd settings of eth0.
fn networkd(dir: &Path, name: &str, text: &str, config: &InterfaceConfig) {
    let mut doc: Value = serde_json::from_str(text).unwrap();
    doc["network"]["renderer"] = json!("networkd");
    let path = write(
        dir,
        &format!("{name}.networkd.network-config"),
        &doc.to_string(),
    );
    let root = dir.join(format!("{name}-networkd"));
    netplan_generate(&root, &path);
    let unit =
        std::fs::read_to_string(root.join("run/systemd/network/10-netplan-eth0.network")).unwrap();
    let lines: Vec<&str> = unit.lines().collect();
    let has = |line: &str| lines.contains(&line);
    match &config.ipv4 {
        Ipv4Config::Dhcp => assert!(has("DHCP=ipv4") || has("DHCP=yes"), "{name}: {unit}"),
        Ipv4Config::Static { address, gateway } => {
            assert!(has(&format!("Address={address}")), "{name}: {unit}");
            if let Some(g) = gateway {
                assert!(has(&format!("Gateway={g}")), "{name}: {unit}");
                assert!(has("Metric=100"), "{name}: {unit}");
            }
        }
    }
    for server in &config.dns {
        assert!(has(&format!("DNS={server}")), "{name}: {unit}");
    }
    if !config.search.is_empty() {
        assert!(
            has(&format!("Domains={}", config.search.join(" "))),
            "{name}: {unit}"
        );
    }
    if config.ipv6 == Ipv6Config::Off {
        assert!(has("LinkLocalAddressing=no"), "{name}: {unit}");
        assert!(has("IPv6AcceptRA=no"), "{name}: {unit}");
    }
}

/// A dhcpcd.conf as a test reads it: per interface (`""` for the global part), its options in
/// order, `static NAME=VALUE` as `("static NAME", VALUE)` and a bare option as `(NAME, "")`.
fn parse_dhcpcd(conf: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = vec![(String::new(), Vec::new())];
    for line in conf.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        let rest = rest.trim();
        if keyword == "interface" {
            out.push((rest.to_string(), Vec::new()));
            continue;
        }
        let option = if keyword == "static" {
            let (name, value) = rest.split_once('=').expect("static NAME=VALUE");
            (format!("static {name}"), value.to_string())
        } else {
            (keyword.to_string(), rest.to_string())
        };
        out.last_mut().unwrap().1.push(option);
    }
    out
}

fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// MUST SHOW (Bullseye): the dhcpcd.conf block gives each interface exactly the options meant
/// (static address and routers, name servers of both families, search domains, IPv6 off or
/// static); wlan0 only on a node with Wi-Fi; a static IPv6 gateway, which dhcpcd cannot set, is
/// refused; interfaces at the default leave dhcpcd.conf alone.
#[test]
fn dhcpcd_blocks_give_each_interface_its_options() {
    let wlan = InterfaceConfig {
        ipv4: static_v4("192.168.1.11/24", Some("192.168.1.1")),
        ipv6: static_v6("2001:db8::11/64", None),
        ..InterfaceConfig::default()
    };
    let block = dhcpcd::block(&lab_static(), Some(&wlan)).unwrap().unwrap();
    assert!(
        block.starts_with(&format!("{}\n", dhcpcd::BEGIN)),
        "{block}"
    );
    assert!(block.ends_with(&format!("{}\n", dhcpcd::END)), "{block}");
    let parsed = parse_dhcpcd(&block);
    assert_eq!(
        parsed,
        vec![
            (String::new(), vec![]),
            (
                "eth0".to_string(),
                options(&[
                    ("static ip_address", "192.168.1.10/24"),
                    ("static routers", "192.168.1.1"),
                    ("static domain_name_servers", "192.168.1.1 2001:db8::53"),
                    ("static domain_search", "lab.example corp-1.example"),
                ])
            ),
            (
                "wlan0".to_string(),
                options(&[
                    ("static ip_address", "192.168.1.11/24"),
                    ("static routers", "192.168.1.1"),
                    ("static ip6_address", "2001:db8::11/64"),
                    ("ipv6ra_noautoconf", ""),
                    ("nodhcp6", ""),
                ])
            ),
        ]
    );

    let block = dhcpcd::block(&dhcp_own_dns_no_ipv6(), None)
        .unwrap()
        .unwrap();
    assert_eq!(
        parse_dhcpcd(&block)[1..],
        [(
            "eth0".to_string(),
            options(&[("static domain_name_servers", "9.9.9.9"), ("noipv6", "")])
        )]
    );
    // No Wi-Fi on the node: its addressing has no interface to go to.
    let block = dhcpcd::block(&InterfaceConfig::default(), None).unwrap();
    assert_eq!(block, None);
    let default = InterfaceConfig::default();
    assert_eq!(dhcpcd::block(&default, Some(&default)).unwrap(), None);
    let only_wifi = dhcpcd::block(&default, Some(&wlan)).unwrap().unwrap();
    assert_eq!(
        parse_dhcpcd(&only_wifi)
            .iter()
            .map(|(i, _)| i.as_str())
            .collect::<Vec<_>>(),
        ["", "wlan0"]
    );

    let err = dhcpcd::block(&dual_static(), None).unwrap_err().0;
    assert!(
        err.contains("eth0: a static IPv6 gateway cannot be set on Bullseye"),
        "{err}"
    );
}

/// The start of Raspberry Pi OS Bullseye's /etc/dhcpcd.conf (package dhcpcd5), abridged: the
/// global options and the commented examples at its end, which must stay as they are.
const PI_OS_DHCPCD_CONF: &str = "# A sample configuration for dhcpcd.
# See dhcpcd.conf(5) for details.

hostname
clientid
persistent
option rapid_commit
option domain_name_servers, domain_name, domain_search, host_name
option classless_static_routes
option interface_mtu
require dhcp_server_identifier
slaac private

# Example static IP configuration:
#interface eth0
#static ip_address=192.168.0.10/24
#static routers=192.168.0.1
#static domain_name_servers=192.168.0.1 8.8.8.8 fd51:42f8:caae:d92e::1
";

/// The first boot's `configure_dhcpcd`, run as the script runs it: the block goes after the
/// image's own lines, a second run (a power cut, a re-run) changes no byte, a changed block
/// replaces the old one, and the file keeps its mode. In sh, dash and bash; shellcheck-clean.
#[test]
fn dhcpcd_block_is_appended_once_and_replaced_on_a_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "configure.sh",
        &format!(
            "#!/bin/sh\nset -u\n{}\nconfigure_dhcpcd \"$1\" \"$2\"\n",
            dhcpcd::LIBRARY
        ),
    );
    run(Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .arg(&script));
    let first = dhcpcd::block(&lab_static(), None).unwrap().unwrap();
    let second = dhcpcd::block(&dual_static_without_v6_gateway(), None)
        .unwrap()
        .unwrap();
    for shell in ["sh", "dash", "bash"] {
        let conf = write(dir.path(), "dhcpcd.conf", PI_OS_DHCPCD_CONF);
        run(Command::new("chmod").arg("664").arg(&conf));
        let configure = |block: &str| {
            run(Command::new(shell).arg(&script).arg(&conf).arg(block));
            std::fs::read_to_string(&conf).unwrap()
        };
        let once = configure(&first);
        assert_eq!(once, format!("{PI_OS_DHCPCD_CONF}{first}"), "{shell}");
        assert_eq!(
            configure(&first),
            once,
            "{shell}: a second run changed the file"
        );
        let replaced = configure(&second);
        assert_eq!(replaced, format!("{PI_OS_DHCPCD_CONF}{second}"), "{shell}");
        assert_eq!(replaced.matches(dhcpcd::BEGIN).count(), 1, "{shell}");
        assert_eq!(
            mode(&conf) & 0o777,
            0o664,
            "{shell}: the file keeps its mode"
        );
        let parsed = parse_dhcpcd(&replaced);
        assert_eq!(parsed[0].1[0], ("hostname".to_string(), String::new()));
        assert_eq!(parsed.len(), 2, "{shell}: one interface block: {parsed:?}");
        assert!(!dir.path().join("dhcpcd.conf.pinode-new").exists());

        // An image whose file lacks the final newline, and one without the file.
        let conf = write(dir.path(), "dhcpcd.conf", "hostname");
        assert_eq!(configure(&first), format!("hostname\n{first}"), "{shell}");
        std::fs::remove_file(&conf).unwrap();
        assert_eq!(configure(&first), first, "{shell}");
        assert_eq!(mode(&conf) & 0o777, 0o644, "{shell}");
    }
}

fn dual_static_without_v6_gateway() -> InterfaceConfig {
    InterfaceConfig {
        ipv6: static_v6("2001:db8:1::15/64", None),
        ..dual_static()
    }
}

/// Trixie, after the first boot: the seed's network-config held the Wi-Fi key, and the finish
/// step replaced it with `network: {config: disabled}`. The installed cloud-init's own code
/// (stages.Init) finds the original config enabled and the stub disabled, and on a boot with
/// the stub it applies nothing: /etc/netplan/50-cloud-init.yaml, from which netplan makes the
/// node's connections at every boot, stays as the first boot wrote it, static addresses
/// included. Through the real binary: the profile's Wi-Fi is what puts the key in the file.
#[test]
fn the_scrubbed_network_config_leaves_the_first_boots_network_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({
        "version": 1,
        "defaults": {
            "user": {"name": "alice", "ssh_authorized_keys": [KEY_1]},
            "wifi": {"ssid": HOSTILE_SSID, "psk_env": "PINODE_TEST_PSK", "country": "DE"},
        },
        "nodes": [{"hostname": "cp"}],
    });
    let profile = write_profile(dir.path(), "p.yaml", &serde_yaml::to_string(&doc).unwrap());
    let out = dir.path().join("render");
    run(pinode()
        .env("PINODE_TEST_PSK", "correct horse battery staple")
        .args(["render", "--profile"])
        .arg(&profile)
        .args(["--generation", "trixie", "--out-dir"])
        .arg(&out));
    let boot = out.join("boot");
    let original = write(
        dir.path(),
        "first-boot.network-config",
        &std::fs::read_to_string(boot.join("network-config")).unwrap(),
    );
    let user_data = pyyaml(&boot.join("user-data"));
    let finish: Vec<String> = user_data["runcmd"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[3] == "pinode-finish")
        .expect("the finish step")
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    // The finish step, run on a copy of the boot partition.
    let scratch_boot = dir.path().join("boot");
    std::fs::create_dir_all(&scratch_boot).unwrap();
    for file in ["user-data", "network-config", "meta-data"] {
        std::fs::copy(boot.join(file), scratch_boot.join(file)).unwrap();
    }
    run(Command::new(&finish[0])
        .args(&finish[1..4])
        .arg(&scratch_boot));
    let stub = scratch_boot.join("network-config");
    let text = std::fs::read_to_string(&stub).unwrap();
    assert!(
        !text.contains("access-points") && !text.contains("password"),
        "{text}"
    );

    let check = r#"
import sys, tempfile, yaml
from unittest import mock
from cloudinit import helpers, sources, stages
from cloudinit.sources import NetworkConfigSource

class Seed(sources.DataSource):
    dsname = "NoCloud"
    def __init__(self, paths, netcfg):
        super().__init__({}, None, paths=paths)
        self._netcfg = netcfg
    @property
    def network_config(self):
        return self._netcfg

def init_with(path):
    tmp = tempfile.mkdtemp()
    init = stages.Init()
    init._cfg = {"system_info": {"distro": "debian", "paths": {"cloud_dir": tmp, "run_dir": tmp}}}
    init._paths = helpers.Paths({"cloud_dir": tmp, "run_dir": tmp})
    init.datasource = Seed(init._paths, yaml.safe_load(open(path)))
    init._distro = mock.MagicMock()
    return init

first = init_with(sys.argv[1])
cfg, src = first._find_networking_config()
assert src == NetworkConfigSource.DS and cfg["wifis"]["wlan0"], (cfg, src)

second = init_with(sys.argv[2])
cfg, src = second._find_networking_config()
assert cfg is None and src == NetworkConfigSource.DS, (cfg, src)
second.apply_network_config(bring_up=True)
assert not second._distro.mock_calls, second._distro.mock_calls
print("cloud-init: the stub disables network configuration; nothing applied")
"#;
    let said = run(Command::new("/usr/bin/python3")
        .args(["-c", check])
        .arg(&original)
        .arg(&stub));
    eprintln!("{said}");

    // What the first boot left in /etc/netplan still gives the node its network.
    let root = dir.path().join("node");
    netplan_generate(&root, &original);
    let connections = walk(&root.join("run/NetworkManager/system-connections"));
    let read = libnm(&connections);
    assert!(
        read.iter()
            .any(|c| c["ssid"] == json!(HOSTILE_SSID.as_bytes())),
        "{read:?}"
    );
}

/// The node's first boot on the firstrun route, for real in a scratch root (root only): on
/// Bookworm the wired and Wi-Fi keyfiles land root-owned, mode 0600 (NetworkManager ignores a
/// keyfile others can read; the Wi-Fi one holds the PSK) and libnm reads the static
/// addressing from them; on Bullseye dhcpcd.conf gets one block per interface, and wlan0's
/// `ipv6: off` a sysctl drop-in that disables IPv6 in the kernel (dhcpcd's `noipv6` leaves the
/// kernel's SLAAC on), root-owned 0644. The script runs
/// twice, as after a power cut: nothing changes the second time. The plan is resolved from a
/// profile through the library, with the network set on the node (the profile's `network:`
/// comes with another change).
#[test]
fn the_first_boot_writes_the_network_files_root_only_and_once() {
    use pinode::edge::{Environment, Settings};
    use pinode::osinfo::{Generation, InitRoute, OsFamily, OsInfo};
    use pinode::plan::NodePlan;
    use pinode::profile::LoadedProfile;

    if !root_or_skip("runs firstrun.sh in a mount namespace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({
        "version": 1,
        "defaults": {
            "user": {"name": "alice", "ssh_authorized_keys": [KEY_1]},
            "wifi": {"ssid": HOSTILE_SSID, "psk": "correct horse battery staple", "country": "DE"},
        },
        "nodes": [{"hostname": "n1"}],
    });
    let path = write_profile(dir.path(), "p.yaml", &serde_yaml::to_string(&doc).unwrap());
    let profile = LoadedProfile::load(&path).unwrap();
    let mut node = profile.nodes[0].clone();
    let wlan = InterfaceConfig {
        ipv4: static_v4("192.168.1.11/24", Some("192.168.1.1")),
        ipv6: Ipv6Config::Off,
        ..InterfaceConfig::default()
    };
    node.network = NetworkConfig {
        ethernet: lab_static(),
        wifi: wlan.clone(),
    };
    let settings = Settings::from_environment(Environment::capture());
    let plan = NodePlan::resolve(&profile, &node, &settings).unwrap();
    for (generation, boot_dir) in [
        (Generation::Bookworm, "/boot/firmware"),
        (Generation::Bullseye, "/boot"),
    ] {
        let os = OsInfo {
            family: OsFamily::RaspberryPiOs,
            generation,
            release: None,
            init: InitRoute::Firstrun,
            pretty_name: None,
            cloud_init_installed: None,
            has_snapd: None,
            resolves_mdns: None,
            evidence: Vec::new(),
            chosen_by: None,
        };
        let content = pinode::render::render(&plan, &os).unwrap();
        let root = common::scratch::ScratchRoot::new(boot_dir);
        let script = &content
            .files
            .iter()
            .find(|f| f.path == "firstrun.sh")
            .unwrap()
            .contents;
        let checked = write(dir.path(), "firstrun.sh", &String::from_utf8_lossy(script));
        run(Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style"])
            .arg(&checked));
        let first_boot = || {
            std::fs::write(root.boot().join("firstrun.sh"), script).unwrap();
            std::fs::write(
                root.boot().join("cmdline.txt"),
                "console=tty1 root=PARTUUID=1234-02 rootwait\n",
            )
            .unwrap();
            let out = root.run(&format!("sh {boot_dir}/firstrun.sh"));
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success() && !log.contains("FAILED"), "{log}");
            log
        };
        let log = first_boot();
        let files = match generation {
            Generation::Bullseye => vec![
                root.path("etc/dhcpcd.conf"),
                root.path(dhcpcd::IPV6_OFF_PATH),
            ],
            _ => vec![
                root.path(keyfile::WIRED_PATH),
                root.path(keyfile::WIFI_PATH),
            ],
        };
        let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        first_boot();
        let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        assert_eq!(
            before, after,
            "{generation:?}: a second run changed the network files"
        );
        if generation == Generation::Bullseye {
            assert!(log.contains("ok: network addresses"), "{log}");
            let conf = std::fs::read_to_string(&files[0]).unwrap();
            let parsed = parse_dhcpcd(&conf);
            let names: Vec<&str> = parsed.iter().map(|(i, _)| i.as_str()).collect();
            assert_eq!(names, ["", "eth0", "wlan0"], "{conf}");
            assert_eq!(
                parsed[1].1[0],
                (
                    "static ip_address".to_string(),
                    "192.168.1.10/24".to_string()
                )
            );
            assert_eq!(
                parsed[2].1[0],
                (
                    "static ip_address".to_string(),
                    "192.168.1.11/24".to_string()
                )
            );
            assert!(parsed[2].1.contains(&("noipv6".to_string(), String::new())));
            // `noipv6` leaves the kernel's SLAAC on: wlan0 (ipv6: off) gets IPv6 disabled
            // by sysctl, eth0 (ipv6: auto) keeps it. Root-owned 0644, as systemd-sysctl reads.
            let sysctl = std::fs::read_to_string(&files[1]).unwrap();
            assert_eq!(
                sysctl_keys(&sysctl),
                [(
                    "net.ipv6.conf.wlan0.disable_ipv6".to_string(),
                    "1".to_string()
                )],
                "{sysctl}"
            );
            let meta = std::fs::metadata(&files[1]).unwrap();
            assert_eq!(
                (
                    std::os::unix::fs::MetadataExt::uid(&meta),
                    mode(&files[1]) & 0o777
                ),
                (0, 0o644)
            );
            continue;
        }
        assert!(
            !root.path(dhcpcd::IPV6_OFF_PATH).exists(),
            "NetworkManager's method=disabled turns IPv6 off itself"
        );
        assert!(log.contains("ok: wired network"), "{log}");
        for file in &files {
            let meta = std::fs::metadata(file).unwrap();
            assert_eq!(
                (
                    std::os::unix::fs::MetadataExt::uid(&meta),
                    mode(file) & 0o777
                ),
                (0, 0o600),
                "{}",
                file.display()
            );
        }
        let read = libnm(&files);
        let (ipv4, ipv6) = expected_ip(&lab_static());
        assert_eq!(read[0]["interface"], "eth0");
        assert_eq!((&read[0]["ipv4"], &read[0]["ipv6"]), (&ipv4, &ipv6));
        let (ipv4, ipv6) = expected_ip(&wlan);
        assert_eq!((&read[1]["ipv4"], &read[1]["ipv6"]), (&ipv4, &ipv6));
        assert_eq!(read[1]["ssid"], json!(HOSTILE_SSID.as_bytes()));
    }
}

/// A sysctl.d file as systemd-sysctl reads it (sysctl.d(5)): `KEY = VALUE` lines, `#` and
/// `;` comments; a key may be written with `/` instead of `.`.
fn sysctl_keys(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';']))
        .map(|l| {
            let (key, value) = l.split_once('=').expect("KEY = VALUE");
            (key.trim().replace('/', "."), value.trim().to_string())
        })
        .collect()
}

/// cloud-init renders NetworkManager files itself where the image has no netplan (Debian 12's
/// cloud-init 22.4, as in the boot test's image): the QEMU user network's addressing (the
/// boot test's static node) still arrives as a static connection that libnm reads, with the
/// default route in `[ipv4]`.
#[test]
fn cloud_init_without_netplan_renders_the_static_address_too() {
    let dir = tempfile::tempdir().unwrap();
    let network = NetworkConfig {
        ethernet: InterfaceConfig {
            ipv4: static_v4("10.0.2.15/24", Some("10.0.2.2")),
            ipv6: Ipv6Config::Auto,
            dns: vec!["10.0.2.3".parse().unwrap()],
            search: strings(&["lab.example"]),
        },
        wifi: InterfaceConfig::default(),
    };
    let text = netplan::network_config(&network, None).unwrap().unwrap();
    let path = write(dir.path(), "network-config", &text);
    let root = dir.path().join("root");
    run(Command::new("cloud-init")
        .args(["devel", "net-convert", "-k", "yaml", "-D", "debian"])
        .args(["-O", "network-manager", "-p"])
        .arg(&path)
        .arg("-d")
        .arg(&root));
    let files = walk(&root.join("etc/NetworkManager/system-connections"));
    assert_eq!(files.len(), 1, "{files:?}");
    let read = libnm(&files);
    let eth0 = &read[0];
    assert_eq!(eth0["interface"], "eth0");
    assert_eq!(eth0["ipv4"]["method"], "manual");
    assert_eq!(eth0["ipv4"]["addresses"], json!(["10.0.2.15/24"]));
    let routes = eth0["ipv4"]["routes"].as_array().unwrap();
    assert!(
        routes.len() == 1
            && routes[0]
                .as_str()
                .unwrap()
                .starts_with("0.0.0.0/0 via 10.0.2.2 "),
        "{routes:?}"
    );
    assert_eq!(eth0["ipv4"]["dns"], json!(["10.0.2.3"]));
    assert_eq!(eth0["ipv4"]["search"], json!(["lab.example"]));
    assert_eq!(eth0["ipv6"]["routes"], json!([]));
}
