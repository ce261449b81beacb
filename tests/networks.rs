//! Issue 17, items 1, 3 and 4's refusals: `network:` in the profile, every refusal named as
//! FILE:LINE:COL: field in one run, and the cluster's addresses in the rendered K3s config
//! (node-ip, tls-san, the address agents join, no /etc/hosts pin when an address is known).
//! Driven through the real binary; the K3s config is read back with PyYAML.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::user_env::*;
use common::*;
use serde_json::{Value, json};

/// Every refusal of items 1 and 4 that fits in one profile (several servers, so the VIP's
/// other refusals are in `ONE_SERVER`).
const EVERY_REFUSAL: &str = "version: 1
defaults:
  user:
    name: alice
    ssh_authorized_keys: [\"KEY\"]
  network:
    ethernet:
      gateway: 192.168.1.1
      dns: [192.168.1.1, dns.example]
      search: [lab.example, bad_name.example]
    wifi:
      ipv4: 192.168.1.[60-61]/24
cluster:
  name: lab
  vip: 10.9.9.9
nodes:
  - hostname: cp-[1-3]
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.[10-12]/24
  - hostname: worker-[1-3]
    network:
      ethernet:
        ipv4: 192.168.1.[21-22]/24
  - hostname: dup
    network:
      ethernet:
        ipv4: 192.168.1.11/24
  - hostname: gw
    network:
      ethernet:
        ipv4: 192.168.1.1/24
  - hostname: out
    network:
      ethernet:
        ipv4: 192.168.1.30/24
        gateway: 192.168.2.1
  - hostname: bad-addr
    network:
      ethernet:
        ipv4: 192.168.1.300/24
  - hostname: bad-prefix
    network:
      ethernet:
        ipv4: 192.168.1.40/33
  - hostname: nowifi
    network:
      wifi:
        ipv4: 192.168.1.50/24
  - hostname: v6
    network:
      ethernet:
        ipv4: 192.168.1.70/24
        ipv6: 2001:db8::abc
  - hostname: v6gw
    network:
      ethernet:
        ipv4: 192.168.1.71/24
        ipv6: 2001:db8::71/64
        gateway6: 2001:db9::1
  - hostname: dhcpgw
    network:
      ethernet:
        ipv4: dhcp
        gateway: 192.168.1.1
  - hostname: one-for-two-[1-2]
    network:
      ethernet:
        ipv4: 192.168.1.80/24
  - hostname: vipnode
    network:
      ethernet:
        ipv4: 10.9.9.9/24
        gateway: 10.9.9.1
  - hostname: v6off
    network:
      ethernet:
        ipv4: 192.168.1.72/24
        ipv6: off
        dns:
          - 192.168.1.1
          - 2001:db8::53
";

/// (unique text of the line, the value's text in it, field, what the message says).
const EVERY: [(&str, &str, &str, &str); 17] = [
    (
        "dns: [",
        "dns.example",
        "defaults.network.ethernet.dns[1]",
        "\"dns.example\" is not an IP address",
    ),
    (
        "search: [",
        "bad_name.example",
        "defaults.network.ethernet.search[1]",
        "is not a DNS domain name",
    ),
    (
        "[60-61]",
        "192.168",
        "defaults.network.wifi.ipv4",
        "belongs to a range node",
    ),
    (
        "vip: 10.9.9.9",
        "10.9.9.9",
        "cluster.vip",
        "10.9.9.9 is also vipnode's address (nodes[12].network.ethernet.ipv4)",
    ),
    (
        "vip: 10.9.9.9",
        "10.9.9.9",
        "cluster.vip",
        "10.9.9.9 is outside the network (192.168.1.0/24) of server(s) cp-1, cp-2, cp-3",
    ),
    (
        "[21-22]",
        "192.168",
        "nodes[1].network.ethernet.ipv4",
        "this range has 2 address(es) but \"worker-[1-3]\" names 3 node(s)",
    ),
    (
        "192.168.1.11/24",
        "192.168",
        "nodes[2].network.ethernet.ipv4",
        "192.168.1.11 is used twice: it is already cp-2's address (nodes[0].network.ethernet.ipv4)",
    ),
    (
        "192.168.1.1/24",
        "192.168",
        "nodes[3].network.ethernet.ipv4",
        "gw's address 192.168.1.1 is also its gateway (defaults.network.ethernet.gateway)",
    ),
    (
        "192.168.2.1",
        "192.168",
        "nodes[4].network.ethernet.gateway",
        "192.168.2.1 is outside 192.168.1.30/24",
    ),
    (
        "192.168.1.300/24",
        "192.168",
        "nodes[5].network.ethernet.ipv4",
        "is not a valid IPv4 address",
    ),
    (
        "192.168.1.40/33",
        "192.168",
        "nodes[6].network.ethernet.ipv4",
        "the prefix length must be a number from 1 to 32",
    ),
    (
        "192.168.1.50/24",
        "192.168",
        "nodes[7].network.wifi.ipv4",
        "a static Wi-Fi address needs a Wi-Fi network, and nowifi has no `wifi:`",
    ),
    (
        "2001:db8::abc",
        "2001",
        "nodes[8].network.ethernet.ipv6",
        "is not an IPv6 address with its prefix",
    ),
    (
        "2001:db9::1",
        "2001",
        "nodes[9].network.ethernet.gateway6",
        "2001:db9::1 is neither inside 2001:db8::/64",
    ),
    (
        // Eight spaces: the defaults' gateway line has six.
        "        gateway: 192.168.1.1",
        "192",
        "nodes[10].network.ethernet.gateway",
        "a gateway goes with a static `ipv4` address, and dhcpgw's eth0 uses DHCP",
    ),
    (
        "192.168.1.80/24",
        "192.168",
        "nodes[11].network.ethernet.ipv4",
        "\"one-for-two-[1-2]\" names 2 nodes but this is one address: give them a range of 2 \
         addresses, e.g. 192.168.1.[80-81]/24",
    ),
    (
        "2001:db8::53",
        "2001",
        "nodes[13].network.ethernet.dns[1]",
        "2001:db8::53 is an IPv6 name server, and v6off's eth0 has IPv6 turned off \
         (nodes[13].network.ethernet.ipv6: off)",
    ),
];

/// A VIP with one server, and the VIP equal to the gateway.
const ONE_SERVER: &str = "version: 1
defaults:
  user:
    name: alice
    ssh_authorized_keys: [\"KEY\"]
cluster:
  name: solo
  vip: 192.168.1.1
  k3s:
    server_args: [--disable=traefik, --node-ip=192.168.1.10]
nodes:
  - hostname: solo
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.10/24
        gateway: 192.168.1.1
        dns: [192.168.1.1]
";

const ONE: [(&str, &str, &str, &str); 3] = [
    (
        "server_args:",
        "--node-ip",
        "cluster.k3s.server_args[1]",
        "--node-ip is set by pinode from the nodes' static addresses (network:); remove it here",
    ),
    (
        "vip: 192",
        "192",
        "cluster.vip",
        "a virtual IP is for an HA control plane of several servers, and this profile has 1 server(s)",
    ),
    (
        "vip: 192",
        "192",
        "cluster.vip",
        "192.168.1.1 is also a gateway (nodes[0].network.ethernet.gateway)",
    ),
];

/// The 1-based line and column of `value` on the one line of `text` containing `line`.
fn position(text: &str, line: &str, value: &str) -> (usize, usize) {
    let found: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(line))
        .collect();
    assert_eq!(found.len(), 1, "{line:?} must be on exactly one line");
    let (n, l) = found[0];
    (n + 1, l.find(value).expect("the value is on its line") + 1)
}

/// Runs `profile check` on `text` and asserts that its errors are exactly `expected`.
fn assert_errors(text: &str, expected: &[(&str, &str, &str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let text = text.replace("KEY", KEY_1);
    let profile = write_profile(dir.path(), "p.yaml", &text);
    let out = output(pinode().args(["profile", "check"]).arg(&profile));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "nothing is called valid");
    let p = profile.display().to_string();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    for (line, value, field, says) in expected {
        let (l, c) = position(&text, line, value);
        let want = format!("error: {p}:{l}:{c}: {field}: ");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&want) && e.contains(says)),
            "no {want}…{says} in:\n{err}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "exactly these errors:\n{err}");
}

#[test]
fn every_network_refusal_is_named_in_one_run() {
    assert_errors(EVERY_REFUSAL, &EVERY);
    assert_errors(ONE_SERVER, &ONE);
}

/// A profile in the test's folder: the common header (a user, a cluster) and `rest`.
fn profile(env: &UserEnv, name: &str, rest: &str) -> PathBuf {
    write_profile(env.dir.path(), name, &profile_yaml("", "", rest))
}

/// The boot folder of `node` rendered for `generation`.
fn render_boot(env: &UserEnv, profile: &Path, node: &str, generation: &str) -> PathBuf {
    env.render(profile, node, generation).join("boot")
}

/// The K3s config.yaml of a rendered node, as PyYAML reads it.
fn k3s_config(boot: &Path) -> Value {
    pyyaml(&boot.join("pinode/k3s/config.yaml"))
}

/// The SANs of a server's config.
fn sans(config: &Value) -> Vec<&str> {
    config["tls-san"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// QEMU's user network (the boot test's): 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3.
const STATIC: &str = "cluster:
  name: lab
  token_env: K3S_TOKEN
  k3s:
    node_external_ip: true
    tls_san: [api.lab.example, 10.0.2.15]
nodes:
  - hostname: cp
    role: server
    network:
      ethernet:
        ipv4: 10.0.2.15/24
        gateway: 10.0.2.2
        dns: [10.0.2.3]
  - hostname: worker-[1-2]
    role: agent
    network:
      ethernet:
        ipv4: 10.0.2.[21-22]/24
        gateway: 10.0.2.2
        dns: [10.0.2.3]
  - hostname: roamer
    role: agent
";

#[test]
fn a_static_profile_gives_k3s_the_addresses() {
    let env = UserEnv::new();
    let profile = profile(&env, "static.yaml", STATIC);
    let said = env.check(&profile);
    assert!(said.contains("  api: https://10.0.2.15:6443\n"), "{said}");
    for (node, how) in [
        (
            "worker-1",
            "eth0 10.0.2.21/24, joins https://10.0.2.15:6443 (cp's static address)",
        ),
        (
            "worker-2",
            "eth0 10.0.2.22/24, joins https://10.0.2.15:6443 (cp's static address)",
        ),
        (
            "roamer",
            "joins https://10.0.2.15:6443 (cp's static address)",
        ),
    ] {
        let line = said
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{node} ")))
            .unwrap_or_else(|| panic!("no line for {node}:\n{said}"));
        assert!(line.ends_with(how), "{line}");
    }
    for generation in ["bookworm", "trixie"] {
        let cp = render_boot(&env, &profile, "cp", generation);
        let config = k3s_config(&cp);
        assert_eq!(config["node-ip"], "10.0.2.15", "{config}");
        assert_eq!(config["node-external-ip"], "10.0.2.15", "{config}");
        // The address once, though the profile names it too.
        assert_eq!(
            sans(&config),
            ["cp", "cp.local", "10.0.2.15", "api.lab.example"]
        );
        assert!(config.get("server").is_none());
        for (agent, ip) in [("worker-1", "10.0.2.21"), ("worker-2", "10.0.2.22")] {
            let boot = render_boot(&env, &profile, agent, generation);
            let config = k3s_config(&boot);
            assert_eq!(config["server"], "https://10.0.2.15:6443", "{agent}");
            assert_eq!(config["node-ip"], ip, "{agent}");
            assert!(config.get("tls-san").is_none());
            // The founder's address is known: nothing to pin in /etc/hosts.
            assert!(
                !boot.join("pinode/pinode-hosts.service").exists(),
                "{agent}"
            );
        }
        // An agent without an address of its own still joins the founder's.
        let boot = render_boot(&env, &profile, "roamer", generation);
        let config = k3s_config(&boot);
        assert_eq!(config["server"], "https://10.0.2.15:6443");
        assert!(config.get("node-ip").is_none());
        assert!(config.get("node-external-ip").is_none());
        assert!(!boot.join("pinode/pinode-hosts.service").exists());
    }
}

/// Three servers (one on DHCP), two agents, a VIP.
const VIP: &str = "cluster:
  name: ha
  token_env: K3S_TOKEN
  vip: 192.168.1.9
nodes:
  - hostname: cp-[1-2]
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.[10-11]/24
        gateway: 192.168.1.1
        dns: [192.168.1.1]
  - hostname: cp-3
    role: server
  - hostname: worker-[1-2]
    role: agent
    network:
      ethernet:
        ipv4: 192.168.1.[21-22]/24
        gateway: 192.168.1.1
        dns: [192.168.1.1]
";

#[test]
fn a_vip_is_every_servers_san_and_every_joining_nodes_server() {
    let env = UserEnv::new();
    let profile = profile(&env, "vip.yaml", VIP);
    let said = env.check(&profile);
    assert!(said.contains("  api: https://192.168.1.9:6443\n"), "{said}");
    for generation in ["bookworm", "trixie"] {
        for (node, ip) in [
            ("cp-1", Some("192.168.1.10")),
            ("cp-2", Some("192.168.1.11")),
            ("cp-3", None),
        ] {
            let boot = render_boot(&env, &profile, node, generation);
            let config = k3s_config(&boot);
            let mut want = vec![node.to_string(), format!("{node}.local")];
            want.extend(ip.map(str::to_string));
            want.push("192.168.1.9".into());
            assert_eq!(sans(&config), want, "{node} {generation}");
            assert_eq!(config.get("node-ip").and_then(Value::as_str), ip);
            match node {
                "cp-1" => {
                    assert_eq!(config["cluster-init"], json!(true));
                    assert!(config.get("server").is_none());
                }
                _ => assert_eq!(config["server"], "https://192.168.1.9:6443", "{node}"),
            }
            assert!(!boot.join("pinode/pinode-hosts.service").exists());
        }
        for node in ["worker-1", "worker-2"] {
            let boot = render_boot(&env, &profile, node, generation);
            let config = k3s_config(&boot);
            assert_eq!(config["server"], "https://192.168.1.9:6443", "{node}");
            assert!(config.get("tls-san").is_none());
        }
    }
}

/// A profile that writes the defaults out (`dhcp`, `auto`) renders the same bytes as one
/// without `network:`, and so does a cluster without addresses: the founder's mDNS name is
/// still pinned. (tests/reproducible.rs pins the bytes of the example profiles themselves.)
#[test]
fn default_addressing_changes_no_byte() {
    let env = UserEnv::new();
    let rest = "cluster:
  name: lab
  token_env: K3S_TOKEN
nodes:
  - hostname: cp
    role: server
  - hostname: worker
    role: agent
";
    let plain = profile(&env, "plain.yaml", rest);
    let spelled = write_profile(
        env.dir.path(),
        "spelled.yaml",
        &profile_yaml(
            "",
            "  network:\n    ethernet:\n      ipv4: dhcp\n      ipv6: auto\n    wifi:\n      ipv4: dhcp\n",
            rest,
        ),
    );
    for generation in ["bookworm", "trixie"] {
        for node in ["cp", "worker"] {
            let mut trees = Vec::new();
            for (i, profile) in [&plain, &spelled].into_iter().enumerate() {
                let out = env.dir.path().join(format!("same-{i}-{node}-{generation}"));
                run(env
                    .pinode()
                    .env("SOURCE_DATE_EPOCH", "1700000000")
                    .env("PINODE_TEST_SEED", "networks")
                    .args(["render", "--profile"])
                    .arg(profile)
                    .args(["--node", node, "--generation", generation, "--out-dir"])
                    .arg(&out));
                let files: Vec<(PathBuf, Vec<u8>)> = walk(&out)
                    .into_iter()
                    .map(|p| {
                        (
                            p.strip_prefix(&out).unwrap().to_path_buf(),
                            std::fs::read(&p).unwrap(),
                        )
                    })
                    .collect();
                trees.push(files);
            }
            assert!(trees[0] == trees[1], "{node} {generation} differs");
            let boot = env
                .dir
                .path()
                .join(format!("same-0-{node}-{generation}/boot"));
            let config = k3s_config(&boot);
            assert!(config.get("node-ip").is_none());
            assert_eq!(
                boot.join("pinode/pinode-hosts.service").exists(),
                node == "worker",
                "without an address the agent pins cp.local"
            );
            if node == "worker" {
                assert_eq!(config["server"], "https://cp.local:6443");
            }
        }
    }
    let said = env.check(&plain);
    assert!(
        said.contains(
            "joins https://cp.local:6443 (cp.local pinned in /etc/hosts at each boot: no static \
             address known)"
        ),
        "{said}"
    );
}

/// The issue's shape, as written there (the VIP with the three servers item 4 asks for).
const ISSUE_SHAPE: &str = "version: 1
defaults:
  user:
    name: alice
    ssh_authorized_keys: [\"KEY\"]
  network:
    ethernet:                  # eth0
      ipv4: dhcp               # dhcp | ADDRESS/PREFIX
      ipv6: auto               # auto (SLAAC + DHCPv6, as Imager does) | off | ADDRESS/PREFIX
    wifi:                      # wlan0; SSID and passphrase stay under `wifi:`
      ipv4: dhcp
nodes:
  - hostname: cp-[1-3]
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.[10-12]/24
        gateway: 192.168.1.1
        dns: [192.168.1.1]
        search: [lab.example]
  - hostname: worker-[1-3]
    role: agent
    network:
      ethernet:
        ipv4: 192.168.1.[21-23]/24   # a range node takes a range of the same length
        gateway: 192.168.1.1
cluster:
  name: lab
  vip: 192.168.1.9                # HA only, see 4
";

/// The issue's profile is accepted by `profile check` and by the JSON Schema `pinode
/// profile schema` prints (checked with python3-jsonschema); a misspelt key is refused by
/// both.
#[test]
fn the_issues_shape_is_the_contract_of_check_and_schema() {
    let env = UserEnv::new();
    let text = ISSUE_SHAPE.replace("KEY", KEY_1);
    let profile = write_profile(env.dir.path(), "issue.yaml", &text);
    let said = env.check(&profile);
    assert!(
        said.contains("eth0 192.168.1.23/24, joins https://192.168.1.9:6443"),
        "{said}"
    );
    let schema = env.dir.path().join("schema.json");
    std::fs::write(&schema, run(pinode().args(["profile", "schema"]))).unwrap();
    let validate = |profile: &Path| {
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(
                "import json,sys,yaml,jsonschema\n\
                 schema=json.load(open(sys.argv[1]))\n\
                 doc=yaml.safe_load(open(sys.argv[2]))\n\
                 jsonschema.validators.validator_for(schema)(schema).validate(doc)",
            )
            .arg(&schema)
            .arg(profile)
            .output()
            .unwrap()
    };
    let out = validate(&profile);
    assert!(out.status.success(), "{}", stderr(&out));
    let typo = write_profile(
        env.dir.path(),
        "typo.yaml",
        &text.replace(
            "gateway: 192.168.1.1\n        dns",
            "gatway: 192.168.1.1\n        dns",
        ),
    );
    let out = validate(&typo);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("gatway"), "{}", stderr(&out));
    let out = output(env.pinode().args(["profile", "check"]).arg(&typo));
    let err = stderr(&out);
    assert!(
        err.contains("nodes[0].network.ethernet.gatway: unknown field `gatway`")
            && err.contains("did you mean `gateway`?"),
        "{err}"
    );
}

/// Servers on DHCP: the VIP cannot be checked against their network, which is said (a
/// warning, as is `node_external_ip` for nodes without an address); `--node-ip` is the
/// user's to give when pinode knows no address.
#[test]
fn a_vip_over_dhcp_servers_is_a_warning() {
    let env = UserEnv::new();
    let text = profile_yaml(
        "",
        "",
        "cluster:
  name: dv
  token_env: K3S_TOKEN
  vip: 192.168.1.9
  k3s:
    node_external_ip: true
    server_args: [--node-ip=192.168.1.10]
nodes:
  - hostname: s-[1-3]
    role: server
  - hostname: a
    network:
      ethernet:
        ipv4: 192.168.1.20/24
        gateway: 192.168.1.1
        dns: [192.168.1.1]
",
    );
    let profile = write_profile(env.dir.path(), "dv.yaml", &text);
    let out = output(env.pinode().args(["profile", "check"]).arg(&profile));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let p = profile.display().to_string();
    for (line, value, field, says) in [
        (
            "vip:",
            "192",
            "cluster.vip",
            "server(s) s-1, s-2, s-3 get their address by DHCP, so pinode cannot check that \
             192.168.1.9 is in their subnet",
        ),
        (
            "node_external_ip:",
            "true",
            "cluster.k3s.node_external_ip",
            "3 node(s) have no static address and get no node-external-ip: s-1, s-2, s-3",
        ),
    ] {
        let (l, c) = position(&text, line, value);
        let want = format!("warning: {p}:{l}:{c}: {field}: ");
        assert!(
            err.lines()
                .any(|e| e.starts_with(&want) && e.contains(says)),
            "no {want}…{says} in:\n{err}"
        );
    }
    assert!(!err.contains("error: "), "{err}");
}

/// A static IPv6 address without `gateway6` is a warning, like IPv4's missing gateway: the
/// routes differ (dhcpcd on Bullseye takes routes from router advertisements, NetworkManager
/// with `method=manual` and netplan with `accept-ra: false` get no IPv6 default route).
#[test]
fn static_ipv6_without_gateway6_is_a_warning() {
    let env = UserEnv::new();
    let text = profile_yaml(
        "",
        "",
        "nodes:
  - hostname: v6
    network:
      ethernet:
        ipv4: 192.168.1.20/24
        gateway: 192.168.1.1
        dns: [192.168.1.1]
        ipv6: 2001:db8::20/64
  - hostname: v6gw
    network:
      ethernet:
        ipv4: 192.168.1.21/24
        gateway: 192.168.1.1
        dns: [192.168.1.1]
        ipv6: 2001:db8::21/64
        gateway6: fe80::1
",
    );
    let profile = write_profile(env.dir.path(), "v6.yaml", &text);
    let out = output(env.pinode().args(["profile", "check"]).arg(&profile));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let (l, c) = position(&text, "2001:db8::20/64", "2001");
    let want = format!(
        "warning: {}:{l}:{c}: nodes[0].network.ethernet.ipv6: static ipv6 without gateway6: \
         no IPv6 default route on Bookworm/Trixie",
        profile.display()
    );
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("gateway6")).collect();
    assert!(
        warnings.len() == 1 && warnings[0].starts_with(&want),
        "no {want} (only) in:\n{err}"
    );
}
