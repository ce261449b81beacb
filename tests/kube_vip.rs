//! kube-vip for an HA control plane with `cluster.vip` (issue 17, item 4), through the real
//! binary: every server's boot content carries kube-vip's manifest (its RBAC exactly as
//! kube-vip publishes it, and the DaemonSet in ARP mode), which Kubernetes' own schemas
//! accept (PyPI `kubernetes-validate`, for the Kubernetes minor of the profile's K3s); no
//! agent carries it; and a server's first boot puts it in K3s's auto-deploy directory before
//! K3s is installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::scratch::ScratchRoot;
use common::user_env::*;
use common::*;
use serde_json::{Value, json};

const VIP: &str = "192.168.1.9";
/// The file in K3s's auto-deploy directory, and its place on the boot partition.
const MANIFEST: &str = "pinode-kube-vip.yaml";
const BOOT_MANIFEST: &str = "boot/pinode/k3s/pinode-kube-vip.yaml";
/// K3s's auto-deploy directory, inside the scratch root (/var/lib is its `varlib`).
const AUTO_DEPLOY: &str = "varlib/rancher/k3s/server/manifests";

/// The repository's HA profile (three servers, two agents) with the API on a VIP,
/// plus `extra` lines under `cluster:`.
fn ha_profile(env: &UserEnv, name: &str, extra: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/ha.yaml")).unwrap();
    let api = text
        .lines()
        .find(|l| l.trim_start().starts_with("api:"))
        .unwrap();
    let text = text.replace(api, format!("  vip: {VIP}\n{extra}").trim_end());
    assert!(text.contains(&format!("vip: {VIP}")));
    write_profile(env.dir.path(), name, &text)
}

/// The Kubernetes minor of the profile's K3s (`v1.33.5+k3s1` → `1.33.0`), as
/// kubernetes-validate names its schema sets.
fn kubernetes_version(profile: &Path) -> String {
    let text = std::fs::read_to_string(profile).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("version: v"))
        .unwrap();
    let mut parts = version.split('.');
    format!("{}.{}.0", parts.next().unwrap(), parts.next().unwrap())
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| &e["value"])
}

/// kube-vip's RBAC for a DaemonSet, object for object, as facts read from kube-vip/website
/// `content/manifests/rbac.yaml` (served at https://kube-vip.io/manifests/rbac.yaml; last
/// changed in commit 9ad90c600e0af8748cbad25b56b8a8d630f4e2b7, read at f5c870bf, 2026-08-19):
/// a ServiceAccount, the ClusterRole's rules and the binding between them.
fn kube_vip_rbac() -> Vec<Value> {
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| json!({"apiGroups": [group], "resources": resources, "verbs": verbs});
    let watch_update = ["list", "get", "watch", "update"];
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "kube-vip", "namespace": "kube-system"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
                     "name": "system:kube-vip-role"},
        "rules": [
            rule("", &["services/status"], &["update"]),
            rule("", &["services", "endpoints"], &watch_update),
            rule("", &["nodes"], &["list", "get", "watch", "update", "patch"]),
            rule("coordination.k8s.io", &["leases"], &["list", "get", "watch", "update", "create"]),
            rule("discovery.k8s.io", &["endpointslices"], &watch_update),
            rule("", &["pods"], &["list"]),
        ]}),
        json!({"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
               "metadata": {"name": "system:kube-vip-binding"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "system:kube-vip-role"},
               "subjects": [{"kind": "ServiceAccount", "name": "kube-vip", "namespace": "kube-system"}]}),
    ]
}

#[test]
fn servers_carry_a_valid_kube_vip_manifest_and_agents_none() {
    let env = UserEnv::new();
    let profile = ha_profile(&env, "vip.yaml", "");
    let minor = kubernetes_version(&profile);
    assert_eq!(minor, "1.33.0");
    let upstream_rbac = kube_vip_rbac();
    for (node, server) in [
        ("ha-1", true),
        ("ha-2", true),
        ("ha-3", true),
        ("edge-1", false),
        ("edge-2", false),
    ] {
        for generation in ["bookworm", "trixie"] {
            let out = env.render(&profile, node, generation);
            let manifest = out.join(BOOT_MANIFEST);
            let what = format!("{node} ({generation})");
            assert_eq!(manifest.exists(), server, "{what}");
            let stage = std::fs::read_to_string(out.join("boot/pinode/firstboot.sh")).unwrap();
            assert_eq!(stage.contains(MANIFEST), server, "{what}");
            if !server {
                assert!(!stage.contains("kube-vip"), "{what}");
                continue;
            }
            // Kubernetes' own schemas, strict (no field they do not know), for the K3s the
            // profile pins and for the newest Kubernetes kubernetes-validate knows.
            for version in [minor.as_str(), "1.37.0"] {
                run(Command::new("kubernetes-validate")
                    .args(["--strict", "-k", version])
                    .arg(&manifest));
            }
            let docs = yaml_documents(&manifest);
            assert_eq!(docs.len(), 4, "{what}");
            assert_eq!(
                &docs[..3],
                &upstream_rbac[..],
                "{what}: kube-vip's rbac.yaml"
            );
            let ds = &docs[3];
            assert_eq!(ds["kind"], "DaemonSet");
            assert_eq!(ds["metadata"]["namespace"], "kube-system");
            let pod = &ds["spec"]["template"]["spec"];
            assert_eq!(pod["hostNetwork"], true);
            assert_eq!(pod["serviceAccountName"], "kube-vip");
            let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"];
            assert!(
                terms
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["matchExpressions"][0]["key"]
                        == "node-role.kubernetes.io/control-plane"
                        && t["matchExpressions"][0]["operator"] == "Exists"),
                "{terms}"
            );
            assert_eq!(
                pod["tolerations"],
                json!([
                    {"effect": "NoSchedule", "operator": "Exists"},
                    {"effect": "NoExecute", "operator": "Exists"}
                ])
            );
            let container = &pod["containers"][0];
            assert_eq!(container["image"], "ghcr.io/kube-vip/kube-vip:v1.2.3");
            assert_eq!(container["args"], json!(["manager"]));
            assert_eq!(
                container["securityContext"]["capabilities"]["add"],
                json!(["NET_ADMIN", "NET_RAW"])
            );
            for (name, value) in [
                ("vip_arp", "true"),
                ("cp_enable", "true"),
                ("port", "6443"),
                ("address", VIP),
                ("vip_interface", "eth0"),
                ("vip_leaderelection", "true"),
                ("vip_leasename", "plndr-cp-lock"),
            ] {
                assert_eq!(env_value(container, name), Some(&json!(value)), "{name}");
            }
            assert_eq!(env_value(container, "svc_enable"), None);
            // Every server gets the same bytes: each server's K3s applies its copy.
            let first = env.render(&profile, "ha-1", "bookworm").join(BOOT_MANIFEST);
            assert_eq!(
                std::fs::read(&manifest).unwrap(),
                std::fs::read(first).unwrap(),
                "{what}"
            );
        }
    }
}

#[test]
fn the_interface_comes_from_the_profile_when_given() {
    let env = UserEnv::new();
    let profile = ha_profile(&env, "end0.yaml", "  kube_vip:\n    interface: end0\n");
    // `profile check` says where the VIP will be announced.
    let said = run(env.pinode().args(["profile", "check"]).arg(&profile));
    assert!(
        said.contains(&format!(
            "  vip: {VIP} (kube-vip v1.2.3 on the servers' end0, ARP)\n"
        )),
        "{said}"
    );
    let out = env.render(&profile, "ha-2", "bookworm");
    let docs = yaml_documents(&out.join(BOOT_MANIFEST));
    let container = &docs[3]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(env_value(container, "vip_interface"), Some(&json!("end0")));

    // A name the kernel would refuse, and kube_vip without a VIP, are errors at their lines.
    let bad = ha_profile(&env, "bad.yaml", "  kube_vip:\n    interface: \"eth0:1\"\n");
    let out = output(env.pinode().args(["profile", "check"]).arg(&bad));
    let text = std::fs::read_to_string(&bad).unwrap();
    let line = text.lines().position(|l| l.contains("eth0:1")).unwrap() + 1;
    one_error_line(
        &out,
        &[
            &format!("bad.yaml:{line}:"),
            "cluster.kube_vip.interface",
            "interface name",
        ],
    );
    let no_vip = write_profile(
        env.dir.path(),
        "novip.yaml",
        &text.replace(&format!("  vip: {VIP}\n"), ""),
    );
    let out = output(env.pinode().args(["profile", "check"]).arg(&no_vip));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("novip.yaml:")
            && err.contains("cluster.kube_vip")
            && err.contains("cluster.vip"),
        "{err}"
    );
}

const FAKE_INSTALLER: &str = r#"#!/bin/sh
mkdir -p /var/lib/pinode-test
{
	printf 'args=%s\n' "$*"
	ls /var/lib/rancher/k3s/server/manifests/ 2>/dev/null | sed 's/^/manifest=/'
	echo ---
} >>/var/lib/pinode-test/install.log
mkdir -p /etc/rancher/k3s
echo 'apiVersion: v1 # a stand-in kubeconfig' >/etc/rancher/k3s/k3s.yaml
"#;

/// `node`'s whole first boot in a scratch root (firstrun.sh, then the second stage); returns
/// the root and what the stand-in K3s installer found when it ran.
fn first_boot(env: &UserEnv, profile: &Path, node: &str) -> (ScratchRoot, String) {
    let (root, _) = first_stage_in_scratch(env, profile, node, FAKE_INSTALLER, |_| {});
    let out = root.run("/usr/local/lib/pinode/firstboot.sh run");
    assert!(out.status.success(), "second stage: {}", stderr(&out));
    let log = std::fs::read_to_string(root.path("varlib/pinode-test/install.log")).unwrap();
    (root, log)
}

#[test]
fn a_server_places_kube_vip_before_k3s_starts_and_an_agent_never() {
    if !root_or_skip("runs the first-boot scripts in a mount namespace") {
        return;
    }
    let env = UserEnv::new();
    let profile = ha_profile(&env, "vip.yaml", "");
    for node in ["ha-1", "ha-2"] {
        let (root, log) = first_boot(&env, &profile, node);
        assert!(log.contains("args=server"), "{node}: {log}");
        // The installer starts K3s: the manifest was there already.
        assert!(
            log.contains(&format!("manifest={MANIFEST}\n")),
            "{node}: {log}"
        );
        let placed = root.path(&format!("{AUTO_DEPLOY}/{MANIFEST}"));
        assert_eq!(
            std::fs::read(&placed).unwrap(),
            std::fs::read(env.render(&profile, node, "bookworm").join(BOOT_MANIFEST)).unwrap()
        );
        assert_eq!(mode(&placed), 0o600);
    }
    let (root, log) = first_boot(&env, &profile, "edge-1");
    assert!(log.contains("args=agent"), "{log}");
    assert!(!log.contains("manifest="), "{log}");
    assert!(
        !root
            .path(&format!("varlib/rancher/k3s/server/manifests/{MANIFEST}"))
            .exists()
    );
}
