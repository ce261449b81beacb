//! kubeadm with CRI-O (issue 18), driven through the real binary: the rendered first-boot
//! files of every role pass shellcheck (and cloud-init's validator on the cloud-init route);
//! every kubeadm and kubelet configuration document parses (PyYAML) and every key in it is
//! a field of its upstream type; the discovery hash is the one OpenSSL computes from the
//! kept CA; the CA's keys are on server cards only, and only among the secrets; and the
//! whole first boot runs in a scratch root against named STAND-INS for apt-get, curl,
//! kubeadm, kubectl, systemctl, modprobe, sysctl and the swap tools, which record how they
//! were called (the kubeadm configuration's contents included).
//!
//! Upstream types checked against (data/kubeadm/, each file names its source and commit):
//! kubeadm.k8s.io/v1beta4 (kubernetes/kubernetes cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go,
//! as released with v1.31) and kubelet.config.k8s.io/v1beta1
//! (staging/src/k8s.io/kubelet/config/v1beta1/types.go).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::scratch::ScratchRoot;
use common::user_env::*;
use common::*;
use serde_json::Value;

const KUBEADM_FIELDS: &str = include_str!("../data/kubeadm/v1beta4-fields.txt");
const KUBELET_FIELDS: &str = include_str!("../data/kubeadm/kubelet-v1beta1-fields.txt");

/// One server founding the cluster alone, with a runner; no static address, so the API is
/// its mDNS name.
const FOUNDER: &str = "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: pi-admin
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: solo
  distribution: kubeadm
  runner:
    kind: gitlab
    url: https://gitlab.example.com
    token_env: GITLAB_RUNNER_TOKEN
nodes:
  - hostname: solo
    role: server
";

/// Three servers behind a VIP, and an agent.
const HA: &str = "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: pi-admin
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: kube
  distribution: kubeadm
  vip: 10.0.0.9
  kubeadm:
    version: v1.34
    pod_cidr: 10.244.0.0/16
nodes:
  - hostname: cp-[1-3]
    role: server
    network:
      ethernet:
        ipv4: 10.0.0.[11-13]/24
        gateway: 10.0.0.1
        dns: [10.0.0.1]
  - hostname: worker
    role: agent
";

fn profile(env: &UserEnv, name: &str, text: &str) -> PathBuf {
    write_profile(env.dir.path(), name, text)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The kept PKI's directory of `cluster`.
fn kept_pki(env: &UserEnv, cluster: &str) -> PathBuf {
    env.dir
        .path()
        .join(format!("state/clusters/{cluster}/kubeadm-pki"))
}

/// The discovery hash as kubeadm's documentation computes it:
/// `openssl x509 -pubkey -in ca.crt | openssl pkey -pubin -outform der | sha256sum`.
fn openssl_hash(ca: &Path) -> String {
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl x509 -pubkey -noout -in '{}' | openssl pkey -pubin -outform der | sha256sum",
        ca.display()
    )));
    format!("sha256:{}", out.split_whitespace().next().unwrap())
}

/// The field table of data/kubeadm: type → field → value type.
fn field_table() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut table: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in KUBEADM_FIELDS.lines().chain(KUBELET_FIELDS.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (path, kind) = line.split_once(' ').unwrap();
        let (ty, field) = path.split_once('.').unwrap();
        table
            .entry(ty.to_string())
            .or_default()
            .insert(field.to_string(), kind.to_string());
    }
    table
}

/// Checks `value` against `kind` (a row's value type), recursively; `at` names the place.
fn check_value(
    table: &BTreeMap<String, BTreeMap<String, String>>,
    kind: &str,
    value: &Value,
    at: &str,
) {
    if let Some(item) = kind.strip_prefix("[]") {
        let items = value
            .as_array()
            .unwrap_or_else(|| panic!("{at}: not a list"));
        for (i, v) in items.iter().enumerate() {
            check_value(table, item, v, &format!("{at}[{i}]"));
        }
        return;
    }
    match kind {
        "string" | "duration" => assert!(value.is_string(), "{at}: not a string: {value}"),
        "bool" => assert!(value.is_boolean(), "{at}: not a bool: {value}"),
        "int32" => assert!(value.is_i64(), "{at}: not an integer: {value}"),
        "map" => assert!(value.is_object(), "{at}: not a map"),
        "skip" => panic!("{at}: pinode sets a field it does not mean to"),
        ty => {
            let fields = table
                .get(ty)
                .unwrap_or_else(|| panic!("{at}: no type {ty} in data/kubeadm"));
            let object = value
                .as_object()
                .unwrap_or_else(|| panic!("{at}: not an object"));
            for (key, v) in object {
                let kind = fields
                    .get(key)
                    .unwrap_or_else(|| panic!("{at}.{key} is not a field of {ty}"));
                check_value(table, kind, v, &format!("{at}.{key}"));
            }
        }
    }
}

/// Parses the kubeadm configuration with PyYAML and checks every document, key by key,
/// against its upstream type. Returns the documents by kind.
fn checked_documents(path: &Path) -> BTreeMap<String, Value> {
    let table = field_table();
    let mut by_kind = BTreeMap::new();
    for doc in yaml_documents(path) {
        let kind = doc["kind"].as_str().unwrap().to_string();
        let api = doc["apiVersion"].as_str().unwrap();
        let expected = if kind == "KubeletConfiguration" {
            "kubelet.config.k8s.io/v1beta1"
        } else {
            "kubeadm.k8s.io/v1beta4"
        };
        assert_eq!(api, expected, "{kind}");
        check_value(&table, &kind, &doc, &kind);
        by_kind.insert(kind, doc);
    }
    by_kind
}

/// The boot partition's files of a rendered node.
fn boot_files(rendered: &Path) -> Vec<PathBuf> {
    walk(&rendered.join("boot"))
}

fn lint(rendered: &Path, generation: &str) {
    let boot = rendered.join("boot");
    let mut scripts = vec![boot.join("pinode/firstboot.sh")];
    if generation == "bookworm" {
        scripts.push(boot.join("firstrun.sh"));
    } else {
        run(Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(boot.join("user-data")));
    }
    for script in &scripts {
        run(Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style"])
            .arg(script));
        run(Command::new("sh").arg("-n").arg(script));
    }
}

#[test]
fn every_role_renders_checked_configuration_and_the_pki_only_on_servers() {
    let env = UserEnv::new();
    let ha = profile(&env, "ha.yaml", HA);
    let check = env.check(&ha);
    assert!(check.contains("kubeadm: Kubernetes v1.34"), "{check}");
    assert!(
        check.contains("servers need 1700 MB of RAM and 2 CPUs (kubeadm's preflight"),
        "{check}"
    );
    assert!(
        check.contains("join: a kubeadm bootstrap token, with the cluster CA pinned by its hash"),
        "{check}"
    );
    let mut tokens = Vec::new();
    for generation in ["bookworm", "trixie"] {
        for (node, role) in [
            ("cp-1", "founder"),
            ("cp-2", "server"),
            ("cp-3", "server"),
            ("worker", "agent"),
        ] {
            let rendered = env.render(&ha, node, generation);
            let what = format!("{node} {generation}");
            lint(&rendered, generation);
            let secrets = rendered.join("boot/pinode/secrets");
            let docs = checked_documents(&secrets.join("kubeadm-config.yaml"));
            let pki = kept_pki(&env, "kube");
            let hash = openssl_hash(&pki.join("ca.crt"));
            match role {
                "founder" => {
                    assert_eq!(
                        docs.keys().collect::<Vec<_>>(),
                        [
                            "ClusterConfiguration",
                            "InitConfiguration",
                            "KubeletConfiguration"
                        ]
                    );
                    let init = &docs["InitConfiguration"];
                    tokens.push(init["bootstrapTokens"][0]["token"].clone());
                    assert_eq!(init["bootstrapTokens"][0]["ttl"], "0s");
                    assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], "10.0.0.11");
                    let cluster = &docs["ClusterConfiguration"];
                    assert_eq!(cluster["controlPlaneEndpoint"], "10.0.0.9:6443");
                    assert_eq!(cluster["kubernetesVersion"], "stable-1.34");
                    assert_eq!(cluster["networking"]["podSubnet"], "10.244.0.0/16");
                    let kubelet = &docs["KubeletConfiguration"];
                    assert_eq!(kubelet["cgroupDriver"], "systemd");
                    assert_eq!(kubelet["failSwapOn"], true);
                }
                _ => {
                    assert_eq!(docs.keys().collect::<Vec<_>>(), ["JoinConfiguration"]);
                    let join = &docs["JoinConfiguration"];
                    let discovery = &join["discovery"]["bootstrapToken"];
                    assert_eq!(
                        discovery["caCertHashes"],
                        serde_json::json!([hash]),
                        "{what}"
                    );
                    assert_eq!(discovery["apiServerEndpoint"], "10.0.0.9:6443");
                    assert!(discovery.get("unsafeSkipCAVerification").is_none());
                    tokens.push(discovery["token"].clone());
                    // Joining servers add a control-plane instance; agents do not.
                    assert_eq!(
                        join.get("controlPlane").is_some(),
                        role == "server",
                        "{what}: {join}"
                    );
                }
            }
            // The PKI: on servers, every kept file once, among the secrets; agents carry no
            // key and no certificate at all (raw bytes of every file of the boot partition).
            let mut carried = Vec::new();
            for entry in std::fs::read_dir(&pki).unwrap() {
                let kept = std::fs::read(entry.unwrap().path()).unwrap();
                let body = &kept[30..kept.len() - 30];
                carried.extend(
                    boot_files(&rendered)
                        .into_iter()
                        .filter(|f| read_bytes_contains(f, body)),
                );
            }
            if role == "agent" {
                assert!(carried.is_empty(), "{what}: {carried:?}");
                assert!(!rendered.join("boot/pinode/kubeadm/kube-vip.yaml").exists());
            } else {
                assert_eq!(carried.len(), 8, "{what}: {carried:?}");
                for file in &carried {
                    assert!(file.starts_with(&secrets), "{}", file.display());
                }
                assert_eq!(
                    read(&secrets.join("kubeadm-pki-ca.key")),
                    read(&pki.join("ca.key"))
                );
                assert_eq!(
                    read(&secrets.join("kubeadm-pki-etcd-ca.crt")),
                    read(&pki.join("etcd-ca.crt"))
                );
                let vip = yaml_documents(&rendered.join("boot/pinode/kubeadm/kube-vip.yaml"));
                assert_eq!(vip[0]["kind"], "Pod");
                assert_eq!(
                    vip[0]["spec"]["volumes"][0]["hostPath"]["path"],
                    "/etc/kubernetes/admin.conf"
                );
            }
        }
    }
    // One token for the whole cluster: the founder's bootstrap token is what the others join with.
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "{tokens:?}");
    let token = tokens[0].as_str().unwrap();
    let kept = read(&env.dir.path().join("state/clusters/kube/kubeadm-token"));
    assert_eq!(kept.trim(), token);
    // The PKI is private, generated once.
    let pki = kept_pki(&env, "kube");
    assert_eq!(mode(&pki), 0o700);
    for entry in std::fs::read_dir(&pki).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o600);
    }
}

fn read_bytes_contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path)
        .unwrap_or_default()
        .windows(needle.len())
        .any(|w| w == needle)
}

/// What the stand-in for curl serves for every download (the repositories' keys).
const STAND_IN_KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nstand-in repository key\n-----END PGP PUBLIC KEY BLOCK-----\n";

/// The STAND-IN for kubeadm: prints a version, and for init/join records its arguments, the
/// configuration file it was given, and what the node held at that moment (the PKI, the
/// kube-vip manifest and which kubeconfig it mounts), then writes what kubeadm writes.
const STAND_IN_KUBEADM: &str = r#"case "$1" in
version) echo v1.33.5 ;;
init|join)
	mkdir -p /var/lib/pinode-test
	log=/var/lib/pinode-test/kubeadm.log
	{
		printf 'args=%s\n' "$*"
		if [ -f /etc/kubernetes/pki/ca.key ]; then echo 'pki=present'; else echo 'pki=absent'; fi
		if [ -f /etc/kubernetes/manifests/kube-vip.yaml ]; then
			printf 'kube-vip=%s\n' "$(grep -o '/etc/kubernetes/[a-z-]*admin.conf"' /etc/kubernetes/manifests/kube-vip.yaml | tail -n 1)"
		else
			echo 'kube-vip=absent'
		fi
		echo ---
	} >>"$log"
	cp "$3" "/var/lib/pinode-test/kubeadm-$1.yaml"
	# As kubeadm init does: a join command with the token.
	if [ "$1" = init ]; then
		token=$(grep -o '[a-z0-9]\{6\}\.[a-z0-9]\{16\}' "$3" | head -n 1)
		echo "kubeadm join example:6443 --token $token --discovery-token-ca-cert-hash sha256:0"
	fi
	mkdir -p /etc/kubernetes
	echo 'apiVersion: v1 # a stand-in kubelet kubeconfig' >/etc/kubernetes/kubelet.conf
	if [ "$1" = init ] || grep -q controlPlane "$3"; then
		echo 'apiVersion: v1 # a stand-in admin kubeconfig' >/etc/kubernetes/admin.conf
	fi
	;;
esac"#;

/// `node`'s whole first boot in a scratch root with the stand-ins: firstrun.sh, then the
/// second stage. Returns the root, the rendered folder and whether the stage succeeded.
fn first_boot(env: &UserEnv, profile: &Path, node: &str) -> (ScratchRoot, PathBuf, bool, String) {
    let (root, rendered) = first_stage_in_scratch(env, profile, node, STAND_IN_KEY, |root| {
        root.stub("kubeadm", STAND_IN_KUBEADM);
        for tool in [
            "apt-get",
            "apt-mark",
            "kubectl",
            "modprobe",
            "swapoff",
            "swapon",
            "dphys-swapfile",
        ] {
            root.stub(tool, "");
        }
        root.stub("sysctl", r#"[ "$1" = -n ] && echo 1; exit 0"#);
        // Trixie's rpi-swap is configured there: the stage turns it off with a drop-in.
        std::fs::create_dir_all(root.path("etc/rpi")).unwrap();
        std::fs::write(root.path("etc/rpi/swap.conf"), "[Main]\nMechanism=auto\n").unwrap();
        // What the cri-o package installs: its own bridge network (cri-o/packaging), which
        // the stage must move aside for the cluster's CNI.
        std::fs::create_dir_all(root.path("etc/cni/net.d")).unwrap();
        std::fs::write(
            root.path("etc/cni/net.d/11-crio-ipv4-bridge.conflist"),
            "{\"name\": \"crio\"}\n",
        )
        .unwrap();
    });
    let out = root.run("/usr/local/lib/pinode/firstboot.sh run");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (root, rendered, out.status.success(), log)
}

fn kubeadm_runs(root: &ScratchRoot) -> Vec<BTreeMap<String, String>> {
    read(&root.path("varlib/pinode-test/kubeadm.log"))
        .split("---\n")
        .filter(|r| !r.trim().is_empty())
        .map(|record| {
            record
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn the_first_boot_chain_installs_and_runs_kubeadm_in_each_role() {
    assert!(
        is_root(),
        "this test runs the first-boot scripts in a mount namespace and needs root (as CI has)"
    );
    let env = UserEnv::new();

    // The founder alone: init, the PKI in place first, its API pinned by mDNS.
    let solo = profile(&env, "solo.yaml", FOUNDER);
    let (root, rendered, ok, log) = first_boot(&env, &solo, "solo");
    assert!(ok, "{log}");
    let cni = root.path("etc/cni/net.d");
    assert!(
        !cni.join("11-crio-ipv4-bridge.conflist").exists()
            && cni
                .join("11-crio-ipv4-bridge.conflist.pinode-disabled")
                .exists(),
        "CRI-O's own bridge network must be moved aside"
    );
    let boot = root.boot();
    assert!(!boot.join("pinode/secrets").exists(), "secrets off the FAT");
    let stubs = root.stub_log();
    for call in [
        "modprobe overlay",
        "modprobe br_netfilter",
        "sysctl -p /etc/sysctl.d/90-pinode-kubeadm.conf",
        "dphys-swapfile swapoff",
        "dphys-swapfile uninstall",
        "swapoff -a",
        "https://pkgs.k8s.io/core:/stable:/v1.33/deb/Release.key",
        "https://pkgs.k8s.io/addons:/cri-o:/stable:/v1.33/deb/Release.key",
        "apt-get -o DPkg::Lock::Timeout=600 update -q",
        "apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends cri-o kubelet kubeadm kubectl",
        "apt-mark hold cri-o kubelet kubeadm kubectl",
        "systemctl enable --now crio.service",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f https://github.com/flannel-io/flannel/releases/download/v0.27.4/kube-flannel.yml",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf apply --server-side --force-conflicts -f /var/lib/pinode/manifests",
    ] {
        assert!(stubs.contains(call), "no `{call}` in:\n{stubs}");
    }
    // The manifests the founder applies: helm-controller (kubeadm has no HelmChart
    // controller of its own) and the runner.
    for name in [
        "00-pinode-helm-controller.yaml",
        "pinode-gitlab-runner.yaml",
        "pinode-gitlab-runner-token.yaml",
    ] {
        assert!(
            root.path(&format!("varlib/pinode/manifests/{name}"))
                .exists(),
            "{name}"
        );
    }
    // Packages before kubeadm; the CNI after it.
    let at = |s: &str| stubs.find(s).unwrap();
    assert!(
        at("--no-install-recommends cri-o") < at("kubeadm init")
            && at("kubeadm init") < at("kubectl --kubeconfig")
    );
    for (list, repo, key) in [
        (
            "pinode-kubernetes.list",
            "https://pkgs.k8s.io/core:/stable:/v1.33/deb/",
            "pinode-kubernetes.asc",
        ),
        (
            "pinode-cri-o.list",
            "https://pkgs.k8s.io/addons:/cri-o:/stable:/v1.33/deb/",
            "pinode-cri-o.asc",
        ),
    ] {
        assert_eq!(
            read(&root.path(&format!("etc/apt/sources.list.d/{list}"))),
            format!("deb [signed-by=/etc/apt/keyrings/{key}] {repo} /\n")
        );
        assert_eq!(
            read(&root.path(&format!("etc/apt/keyrings/{key}"))),
            STAND_IN_KEY
        );
    }
    assert_eq!(
        read(&root.path("etc/modules-load.d/pinode-kubeadm.conf"))
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["overlay", "br_netfilter"]
    );
    let sysctls = read(&root.path("etc/sysctl.d/90-pinode-kubeadm.conf"));
    for line in [
        "net.bridge.bridge-nf-call-iptables = 1",
        "net.bridge.bridge-nf-call-ip6tables = 1",
        "net.ipv4.ip_forward = 1",
    ] {
        assert!(sysctls.contains(line), "{sysctls}");
    }
    assert!(
        read(&root.path("etc/rpi/swap.conf.d/90-pinode-kubeadm.conf")).contains("Mechanism=none")
    );
    let runs = kubeadm_runs(&root);
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0]["args"],
        "init --config /etc/pinode/kubeadm/kubeadm.yaml"
    );
    assert_eq!(runs[0]["pki"], "present");
    // The configuration kubeadm read: the rendered one with the installed version.
    let given = read(&root.path("varlib/pinode-test/kubeadm-init.yaml"));
    let rendered_config = read(&rendered.join("boot/pinode/secrets/kubeadm-config.yaml"));
    assert_eq!(
        given,
        rendered_config.replace("\"stable-1.33\"", "\"v1.33.5\"")
    );
    assert_ne!(given, rendered_config);
    let pki = kept_pki(&env, "solo");
    for (kubeadm, kept, private) in [
        ("ca.crt", "ca.crt", false),
        ("ca.key", "ca.key", true),
        ("sa.key", "sa.key", true),
        ("etcd/ca.key", "etcd-ca.key", true),
        ("front-proxy-ca.crt", "front-proxy-ca.crt", false),
    ] {
        let placed = root.path(&format!("etc/kubernetes/pki/{kubeadm}"));
        assert_eq!(read(&placed), read(&pki.join(kept)), "{kubeadm}");
        assert_eq!(
            mode(&placed),
            if private { 0o600 } else { 0o644 },
            "{kubeadm}"
        );
    }
    assert_eq!(
        read(&root.path("home/pi-admin/.kube/config")),
        "apiVersion: v1 # a stand-in admin kubeconfig\n"
    );
    // Every node pins the API's mDNS name, the founder too (Go's resolver knows no mDNS).
    assert!(read(&root.path("etc/hosts")).contains("\tsolo.local # pinode-mdns\n"));
    let status = read(&boot.join("pinode-status.txt"));
    assert!(status.contains("kubeadm (server): ok"), "{status}");
    // The token kubeadm init prints is masked in the console output and the log.
    let token = read(&env.dir.path().join("state/clusters/solo/kubeadm-token"));
    let token = token.trim();
    assert!(given.contains(token), "the stand-in saw the token");
    let node_log = read(&root.path("varlog/pinode-firstboot.log"));
    assert!(node_log.contains("--token <bootstrap token>"), "{node_log}");
    for text in [&log, &node_log, &status] {
        assert!(!text.contains(token), "the bootstrap token leaked:\n{text}");
    }
    // A second boot does nothing.
    let again = root.run("/usr/local/lib/pinode/firstboot.sh run");
    assert!(again.status.success());
    assert_eq!(kubeadm_runs(&root).len(), 1);

    // HA: the founder runs kube-vip with super-admin.conf during init, admin.conf after.
    let ha = profile(&env, "ha.yaml", HA);
    let (root, _, ok, log) = first_boot(&env, &ha, "cp-1");
    assert!(ok, "{log}");
    let runs = kubeadm_runs(&root);
    assert_eq!(
        runs[0]["args"],
        "init --config /etc/pinode/kubeadm/kubeadm.yaml"
    );
    assert_eq!(runs[0]["kube-vip"], "/etc/kubernetes/super-admin.conf\"");
    let manifest = read(&root.path("etc/kubernetes/manifests/kube-vip.yaml"));
    assert!(
        manifest.contains("\"path\": \"/etc/kubernetes/admin.conf\""),
        "{manifest}"
    );
    assert!(!manifest.contains("super-admin"));
    let hash = openssl_hash(&kept_pki(&env, "kube").join("ca.crt"));

    // A joining server: the PKI first, kube-vip only after the join.
    let (root, _, ok, log) = first_boot(&env, &ha, "cp-2");
    assert!(ok, "{log}");
    let runs = kubeadm_runs(&root);
    assert_eq!(
        runs[0]["args"],
        "join --config /etc/pinode/kubeadm/kubeadm.yaml"
    );
    assert_eq!(runs[0]["pki"], "present");
    assert_eq!(runs[0]["kube-vip"], "absent");
    assert!(root.path("etc/kubernetes/manifests/kube-vip.yaml").exists());
    let joined = checked_documents(&root.path("varlib/pinode-test/kubeadm-join.yaml"));
    let join = &joined["JoinConfiguration"];
    assert!(join.get("controlPlane").is_some());
    assert_eq!(
        join["discovery"]["bootstrapToken"]["caCertHashes"],
        serde_json::json!([hash])
    );
    assert!(root.path("home/pi-admin/.kube/config").exists());
    assert!(
        !root.stub_log().contains("kubectl --kubeconfig"),
        "only the founder applies:\n{}",
        root.stub_log()
    );

    // The agent: no PKI, no kube-vip, no kubeconfig; the CA pinned by its hash.
    let (root, rendered, ok, log) = first_boot(&env, &ha, "worker");
    assert!(ok, "{log}");
    let runs = kubeadm_runs(&root);
    assert_eq!(
        runs[0]["args"],
        "join --config /etc/pinode/kubeadm/kubeadm.yaml"
    );
    assert_eq!(runs[0]["pki"], "absent");
    assert!(!root.path("etc/kubernetes/pki").exists());
    assert!(!root.path("etc/kubernetes/manifests/kube-vip.yaml").exists());
    let joined = checked_documents(&root.path("varlib/pinode-test/kubeadm-join.yaml"));
    let join = &joined["JoinConfiguration"];
    assert!(join.get("controlPlane").is_none());
    assert_eq!(
        join["discovery"]["bootstrapToken"]["caCertHashes"],
        serde_json::json!([hash])
    );
    assert!(!root.path("home/pi-admin/.kube").exists());
    // The token is a secret: root-only on the node, nowhere on the boot partition.
    let token = read(&env.dir.path().join("state/clusters/kube/kubeadm-token"));
    for file in walk(&root.boot()) {
        assert!(
            !read_bytes_contains(&file, token.trim().as_bytes()),
            "{}",
            file.display()
        );
    }
    assert_eq!(
        mode(&root.path("etc/pinode/secrets/kubeadm-config.yaml")),
        0o600
    );
    assert_eq!(mode(&root.path("etc/pinode/kubeadm/kubeadm.yaml")), 0o600);
    let _ = rendered;
}

/// Every bad value is refused in one run, each at its FILE:LINE:COL with its field.
#[test]
fn bad_values_are_refused_at_their_place() {
    let env = UserEnv::new();
    let text = "version: 1
defaults:
  user:
    name: pi-admin
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: kube
  distribution: kubeadm
  token_env: KUBEADM_TOKEN
  kubeadm:
    version: \"1.33\"
    crio_repository: ftp://mirror.example/crio
    pod_cidr: 10.244.0.0/33
    service_cidr: 10.96.0.1/12
nodes:
  - hostname: a
    role: server
";
    let path = profile(&env, "bad.yaml", text);
    let p = path.display().to_string();
    let out = output(
        env.pinode()
            .env("KUBEADM_TOKEN", "not-a-bootstrap-token-at-all")
            .args(["profile", "check", "--strict"])
            .arg(&path),
    );
    let err = stderr(&out);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
    for (line, col, field, says) in [
        (
            11,
            14,
            "cluster.kubeadm.version",
            "minor version such as v1.33",
        ),
        (
            12,
            22,
            "cluster.kubeadm.crio_repository",
            "http:// or https:// URL",
        ),
        (13, 15, "cluster.kubeadm.pod_cidr", "CIDR"),
        (
            14,
            19,
            "cluster.kubeadm.service_cidr",
            "did you mean 10.96.0.0/12?",
        ),
    ] {
        let want = format!("error: {p}:{line}:{col}: {field}: ");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&want) && l.contains(says)),
            "no {want}…{says} in:\n{err}"
        );
    }
    assert!(
        err.contains("cluster.token_env") && err.contains("[a-z0-9]{6}.[a-z0-9]{16}"),
        "{err}"
    );
    assert!(
        !err.contains("not-a-bootstrap-token-at-all"),
        "the token is never quoted"
    );
}

/// Under CI pinode never generates the cluster's CA (a throw-away machine would make a new
/// one every run): `profile check` says so, `render` refuses; once the PKI is kept (and
/// the token given), CI uses it.
#[test]
fn under_ci_the_pki_is_never_generated() {
    let env = UserEnv::new();
    let text = FOUNDER.replace(
        "  distribution: kubeadm\n",
        "  distribution: kubeadm\n  token_env: KUBEADM_TOKEN\n",
    );
    let path = profile(&env, "ci.yaml", &text);
    let ci = || {
        let mut cmd = env.pinode();
        cmd.env("CI", "true")
            .env("KUBEADM_TOKEN", "abcdef.0123456789abcdef");
        cmd
    };
    let refusal = "CI is set and this kubeadm cluster has no kept PKI yet";
    let out = output(ci().args(["profile", "check"]).arg(&path));
    assert!(stderr(&out).contains(refusal), "{}", stderr(&out));
    let out = output(
        ci().args(["render", "--profile"])
            .arg(&path)
            .args(["--node", "solo", "--generation", "bookworm", "--out-dir"])
            .arg(env.dir.path().join("refused")),
    );
    one_error_line(&out, &[refusal]);
    assert!(!kept_pki(&env, "solo").exists());
    // Kept once outside CI, it is used under CI.
    run(env
        .pinode()
        .env("KUBEADM_TOKEN", "abcdef.0123456789abcdef")
        .args(["render", "--profile"])
        .arg(&path)
        .args(["--node", "solo", "--generation", "bookworm", "--out-dir"])
        .arg(env.dir.path().join("not-ci")));
    let kept = read(&kept_pki(&env, "solo").join("ca.crt"));
    run(ci()
        .args(["render", "--profile"])
        .arg(&path)
        .args(["--node", "solo", "--generation", "trixie", "--out-dir"])
        .arg(env.dir.path().join("ci")));
    assert_eq!(
        read(
            &env.dir
                .path()
                .join("ci/boot/pinode/secrets/kubeadm-pki-ca.crt")
        ),
        kept
    );
}
