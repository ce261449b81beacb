//! MicroK8s clusters without booting (issue 18): the rendered first-boot files of every role
//! checked by shellcheck and PyYAML, every launch-configuration key against the list derived
//! from Canonical's sources (data/microk8s/launch-config-keys.txt), and the whole first-boot
//! chain (cloud-init's handover, then pinode-firstboot) run for real in a scratch root with STAND-INS
//! for `snap` and `microk8s` that record how they were called and the launch configuration
//! the snap's install hook found. Bad values are refused at FILE:LINE:COL.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::scratch::ScratchRoot;
use common::user_env::*;
use common::*;
use serde_json::{Value, json};

/// The join token of these tests (`K3S_TOKEN` in `UserEnv`): 34 characters, letters, digits
/// and '-', which MicroK8s accepts.
const TOKEN: &str = K3S_TOKEN;

const HEAD: &str = "version: 1
os:
  image: ubuntu-server-24.04-arm64
defaults:
  user:
    name: pi-admin
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
";

/// One server, alone.
const ALONE: &str = "cluster:
  name: solo
  token_env: K3S_TOKEN
  distribution: microk8s
nodes:
  - hostname: solo
    role: server
";

/// Three servers (HA, the founder at a static address, the API on a VIP) and an agent; the
/// runner on the founder.
const HA: &str = "cluster:
  name: mk
  token_env: K3S_TOKEN
  distribution: microk8s
  vip: 192.168.1.9
  microk8s:
    channel: 1.33/stable
    addons: [dns, metrics-server]
    extra_sans: [api.example.com]
    kubelet_args: [--max-pods=50]
  runner:
    kind: gitlab
    url: https://gitlab.example.com
    token_env: GITLAB_RUNNER_TOKEN
nodes:
  - hostname: mk-1
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.10/24
        gateway: 192.168.1.1
  - hostname: mk-[2-3]
    role: server
  - hostname: w-1
    role: agent
";

/// A server and an agent with no static address: the agent reaches the founder by mDNS,
/// installing from snap files on a mirror.
const PAIR: &str = "cluster:
  name: pair
  token_env: K3S_TOKEN
  distribution: microk8s
  microk8s:
    snaps:
      - snap: https://mirror.example/snaps/core20_2434.snap
        assert: https://mirror.example/snaps/core20_2434.assert
      - snap: https://mirror.example/snaps/microk8s_8147.snap
        assert: https://mirror.example/snaps/microk8s_8147.assert
nodes:
  - hostname: p-1
    role: server
  - hostname: p-2
    role: agent
";

fn profile(env: &UserEnv, name: &str, cluster: &str) -> PathBuf {
    write_profile(env.dir.path(), name, &format!("{HEAD}{cluster}"))
}

/// The derived key list: KEY → (FORMAT, SINCE).
fn known_keys() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/microk8s/launch-config-keys.txt"
    ))
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "{l}");
            (f[0].to_string(), (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

/// Every key of a launch configuration, nested ones as PARENT.CHILD / PARENT[].CHILD
/// (the maps of arguments are values: their keys are flags, not schema keys).
fn keys_of(config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in config.as_object().unwrap() {
        out.push(key.clone());
        if key.starts_with("extra") {
            continue;
        }
        match value {
            Value::Object(map) => out.extend(map.keys().map(|k| format!("{key}.{k}"))),
            Value::Array(items) => {
                for item in items.iter().filter_map(Value::as_object) {
                    out.extend(item.keys().map(|k| format!("{key}[].{k}")));
                }
            }
            _ => {}
        }
    }
    out
}

/// The launch configuration of a rendered node, parsed by PyYAML; every key is one MicroK8s
/// 1.27 (format 0.1.0) reads.
fn launch_config(rendered: &Path) -> Value {
    let path = rendered.join("boot/pinode/secrets/microk8s-launch.yaml");
    let config = pyyaml(&path);
    let known = known_keys();
    assert_eq!(config["version"], "0.1.0");
    for key in keys_of(&config) {
        let (format, since) = known
            .get(&key)
            .unwrap_or_else(|| panic!("{key} is no launch-configuration key"));
        assert_eq!(
            (format.as_str(), since.as_str()),
            ("0.1.0", "1.27"),
            "{key}"
        );
    }
    // The types of the cluster agent's Configuration (schema.go), which parses strictly:
    // strings, a bool, lists of strings, maps of strings keyed by --flag.
    for key in ["version", "persistentClusterToken"] {
        assert!(config.get(key).is_none_or(Value::is_string), "{key}");
    }
    if let Some(join) = config.get("join") {
        assert!(
            join["url"].is_string() && join["worker"].is_boolean(),
            "{join}"
        );
    }
    for san in config
        .get("extraSANs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        assert!(san.is_string(), "{san}");
    }
    for addon in config
        .get("addons")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        assert!(addon["name"].is_string(), "{addon}");
    }
    for (flag, value) in config["extraKubeletArgs"].as_object().unwrap() {
        assert!(
            flag.starts_with("--") && value.is_string(),
            "{flag}: {value}"
        );
    }
    config
}

#[test]
fn every_role_renders_files_that_check_out() {
    let env = UserEnv::new();
    let ha = profile(&env, "ha.yaml", HA);
    let check = env.check(&ha);
    assert!(
        check.contains(
            "microk8s: channel 1.33/stable from the Snap Store; addons dns, metrics-server"
        ),
        "{check}"
    );
    let cases = [
        (profile(&env, "alone.yaml", ALONE), "solo", "founder"),
        (ha.clone(), "mk-1", "founder"),
        (ha.clone(), "mk-2", "server"),
        (ha.clone(), "w-1", "agent"),
        (profile(&env, "pair.yaml", PAIR), "p-2", "agent"),
    ];
    for (profile, node, role) in cases {
        // Ubuntu Server's route, cloud-init: its user-data passes cloud-init's own validator.
        let out = env.render_for_image(&profile, node, &ubuntu());
        run(Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(out.join("boot/user-data")));
        let boot = out.join("boot");
        let script = boot.join("pinode/firstboot.sh");
        run(Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style"])
            .arg(&script));
        run(Command::new("sh").arg("-n").arg(&script));
        let config = launch_config(&out);
        let what = format!("{node} ({role})");
        match role {
            "founder" => {
                assert_eq!(config["persistentClusterToken"], TOKEN, "{what}");
                assert!(config.get("join").is_none(), "{what}");
                assert!(config["extraSANs"][0] == node, "{what}");
            }
            "server" => {
                assert_eq!(
                    config["join"],
                    json!({"url": format!("192.168.1.10:25000/{TOKEN}"), "worker": false}),
                    "{what}"
                );
                assert!(config.get("addons").is_none(), "{what}");
            }
            _ => {
                assert_eq!(config["join"]["worker"], true, "{what}");
                assert!(config.get("persistentClusterToken").is_none(), "{what}");
                assert!(config.get("extraSANs").is_none(), "{what}");
            }
        }
        // The snap's own defaults survive (our file replaces microk8s.default.yaml).
        assert_eq!(config["extraKubeletArgs"]["--cluster-dns"], "10.152.183.10");
        if node == "mk-1" {
            assert_eq!(
                config["addons"],
                json!([{"name": "dns"}, {"name": "metrics-server"}])
            );
            assert_eq!(config["extraKubeletArgs"]["--node-ip"], "192.168.1.10");
            assert_eq!(config["extraKubeletArgs"]["--max-pods"], "50");
            assert_eq!(
                config["extraSANs"],
                json!([
                    "mk-1",
                    "mk-1.local",
                    "192.168.1.10",
                    "192.168.1.9",
                    "api.example.com"
                ])
            );
            // kube-vip, for MicroK8s: its control-plane label, its API port.
            let docs = yaml_documents(&boot.join("pinode/microk8s/pinode-kube-vip.yaml"));
            let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
            let spec = &ds["spec"]["template"]["spec"];
            assert_eq!(
                spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                    ["nodeSelectorTerms"][0]["matchExpressions"][0]["key"],
                "node.kubernetes.io/microk8s-controlplane"
            );
            let env = spec["containers"][0]["env"].as_array().unwrap();
            assert!(env.contains(&json!({"name": "port", "value": "16443"})));
            assert!(env.contains(&json!({"name": "address", "value": "192.168.1.9"})));
        }
        if node == "mk-2" {
            assert!(
                config["extraSANs"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("192.168.1.9"))
            );
            assert!(!boot.join("pinode/microk8s/pinode-kube-vip.yaml").exists());
        }
        // The launch configuration holds the token: it is a secret file, and the token is in
        // no other file.
        for file in walk(&out) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if !file.ends_with("pinode/secrets/microk8s-launch.yaml") {
                assert!(!text.contains(TOKEN), "the token is in {}", file.display());
            }
        }
    }
}

/// The STAND-IN for `snap`: records its arguments (stub.log) and, when it installs
/// MicroK8s, the launch configuration it found and its mode, then does what the install
/// hook and the cluster agent do with it (a copy in the launcher directory, umask 022,
/// renamed *.applied), creates the group `microk8s` as the configure hook does and the
/// revision link `current` as snapd does.
const STAND_IN_SNAP: &str = r#"
seen=/var/lib/pinode-test
mkdir -p "$seen"
case "$1" in
ack | wait) exit 0 ;;
install)
	case "$*" in *microk8s*) ;; *) exit 0 ;; esac
	config=/var/snap/microk8s/common/.microk8s.yaml
	cp "$config" "$seen/launch-config-seen.yaml" || exit 1
	stat -c %a "$config" >"$seen/launch-config-mode"
	mkdir -p /var/snap/microk8s/common/etc/launcher
	(umask 022; cp "$config" /var/snap/microk8s/common/etc/launcher/install.yaml)
	mv /var/snap/microk8s/common/etc/launcher/install.yaml /var/snap/microk8s/common/etc/launcher/install.yaml.applied
	getent group microk8s >/dev/null || groupadd microk8s
	mkdir -p /var/snap/microk8s/current
	;;
esac
"#;

/// The STAND-IN for `microk8s`: ready at once, a stand-in kubeconfig, and `kubectl` calls
/// recorded with the manifests they were given.
const STAND_IN_MICROK8S: &str = r#"
case "$1" in
status) echo "microk8s is running" ;;
config) echo 'apiVersion: v1 # a stand-in kubeconfig from microk8s config' ;;
kubectl)
	shift
	mkdir -p /var/lib/pinode-test
	{ echo "$*"; ls /var/lib/pinode/manifests; } >>/var/lib/pinode-test/kubectl.log
	;;
esac
"#;

/// The Ubuntu-shaped fixture (fixtures/make-images.sh `ubuntu-noble`): MicroK8s' OS.
fn ubuntu() -> PathBuf {
    fixture("ubuntu-noble")
}

/// The node's first stage in a scratch root (with the stand-ins, and `extra` run on the
/// root after them), then its second stage.
fn first_boot_with(
    env: &UserEnv,
    profile: &Path,
    node: &str,
    extra: impl FnOnce(&ScratchRoot),
) -> (ScratchRoot, PathBuf, bool, String) {
    let (root, rendered) = first_stage_in_scratch_for(
        env,
        profile,
        node,
        "stand-in snap file\n",
        Some(&ubuntu()),
        |root| {
            root.stub("snap", STAND_IN_SNAP);
            root.stub("microk8s", STAND_IN_MICROK8S);
            root.stub("sleep", "exit 0");
            extra(root);
        },
    );
    let (ok, log) = second_stage(&root);
    (root, rendered, ok, log)
}

fn first_boot(env: &UserEnv, profile: &Path, node: &str) -> (ScratchRoot, PathBuf, bool, String) {
    first_boot_with(env, profile, node, |_| {})
}

/// `firstboot.sh run` in the scratch root, where /var is a fresh tmpfs holding the scratch
/// root's lib, log and snap directories: nothing of the host's /var/snap is touched.
fn second_stage(root: &ScratchRoot) -> (bool, String) {
    std::fs::create_dir_all(root.path("varsnap")).unwrap();
    let r = root.path("");
    let r = r.display();
    let out = root.run(&format!(
        "mount -t tmpfs pinode-test-var /var && mkdir -p /var/lib /var/log /var/snap && \
         mount --bind {r}/varlib /var/lib && mount --bind {r}/varlog /var/log && \
         mount --bind {r}/varsnap /var/snap && /usr/local/lib/pinode/firstboot.sh run"
    ));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), log)
}

fn status_json(root: &ScratchRoot) -> Value {
    serde_json::from_str(&read(&root.path("varlib/pinode/status.json"))).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn seen_config(root: &ScratchRoot) -> Value {
    let text = read(&root.path("varlib/pinode-test/launch-config-seen.yaml"));
    let body = text.split_once('\n').unwrap().1;
    serde_json::from_str(body).unwrap()
}

/// No byte of the token on the boot partition, and the secret root-only on the node.
fn secrets_off_the_fat(root: &ScratchRoot) {
    assert!(!root.boot().join("pinode/secrets").exists());
    for file in walk(&root.boot()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the token is left in {}",
            file.display()
        );
    }
    let kept = root.path("etc/pinode/secrets/microk8s-launch.yaml");
    assert_eq!(mode(&kept), 0o600);
    assert_eq!(mode(&root.path("etc/pinode/secrets")), 0o700);
    assert_eq!(
        read(&root.path("varlib/pinode-test/launch-config-mode")),
        "600\n"
    );
    let placed = root.path("varsnap/microk8s/common/.microk8s.yaml");
    assert_eq!(mode(&placed), 0o600);
    let applied = root.path("varsnap/microk8s/common/etc/launcher/install.yaml.applied");
    assert_eq!(
        mode(&applied),
        0o600,
        "the install hook's copy is root's only"
    );
}

fn in_group(root: &ScratchRoot, group: &str, user: &str) -> bool {
    read(&root.path("etc/group")).lines().any(|l| {
        l.starts_with(&format!("{group}:"))
            && l.rsplit(':').next().unwrap().split(',').any(|u| u == user)
    })
}

#[test]
fn the_first_boot_chain_installs_microk8s_in_each_role() {
    assert!(
        is_root(),
        "this test runs the first-boot scripts in a mount namespace and needs root (as CI has)"
    );
    let env = UserEnv::new();
    let ha = profile(&env, "ha.yaml", HA);

    // The founder: installs from the channel, carries the token, applies the manifests.
    let (root, rendered, ok, log) = first_boot(&env, &ha, "mk-1");
    assert!(ok, "{log}");
    let stubs = root.stub_log();
    assert!(
        stubs.contains(
            "snap wait system seed.loaded\nsnap install microk8s --classic --channel=1.33/stable\n"
        ),
        "{stubs}"
    );
    let seen = seen_config(&root);
    assert_eq!(seen, {
        let text = read(&rendered.join("boot/pinode/secrets/microk8s-launch.yaml"));
        serde_json::from_str::<Value>(text.split_once('\n').unwrap().1).unwrap()
    });
    assert_eq!(seen["persistentClusterToken"], TOKEN);
    secrets_off_the_fat(&root);
    assert!(
        in_group(&root, "microk8s", "pi-admin"),
        "{}",
        read(&root.path("etc/group"))
    );
    assert!(
        stubs.contains("microk8s status --wait-ready --timeout 600"),
        "{stubs}"
    );
    assert_eq!(
        read(&root.path("home/pi-admin/.kube/config")),
        "apiVersion: v1 # a stand-in kubeconfig from microk8s config\n"
    );
    assert_eq!(mode(&root.path("home/pi-admin/.kube/config")), 0o600);
    let kubectl = read(&root.path("varlib/pinode-test/kubectl.log"));
    assert!(
        kubectl.starts_with("apply --server-side --force-conflicts -f /var/lib/pinode/manifests\n")
            && kubectl.contains("pinode-gitlab-runner.yaml")
            && kubectl.contains("pinode-kube-vip.yaml"),
        "{kubectl}"
    );
    let status = read(&root.boot().join("pinode-status.txt"));
    assert!(
        status.contains(
            "microk8s (server, founds the cluster (dqlite HA with the other servers)): ok"
        ),
        "{status}"
    );
    assert!(root.path("varlib/pinode/firstboot.done").exists());
    // A second boot does nothing.
    let (ok, log) = second_stage(&root);
    assert!(ok && log.contains("nothing to do"), "{log}");
    assert_eq!(root.stub_log().matches("snap install").count(), 1);

    // A second server joins the founder's static address, as a control-plane node.
    let (root, _, ok, log) = first_boot(&env, &ha, "mk-2");
    assert!(ok, "{log}");
    let seen = seen_config(&root);
    assert_eq!(
        seen["join"],
        json!({"url": format!("192.168.1.10:25000/{TOKEN}"), "worker": false})
    );
    assert!(!root.path("varlib/pinode-test/kubectl.log").exists());
    assert!(root.path("home/pi-admin/.kube/config").exists());

    // The agent joins as a worker.
    let (root, _, ok, log) = first_boot(&env, &ha, "w-1");
    assert!(ok, "{log}");
    let seen = seen_config(&root);
    assert_eq!(
        seen["join"],
        json!({"url": format!("192.168.1.10:25000/{TOKEN}"), "worker": true})
    );
    assert!(seen.get("persistentClusterToken").is_none());
    secrets_off_the_fat(&root);
    let stubs = root.stub_log();
    assert!(!stubs.contains("microk8s status"), "{stubs}");
    assert!(!root.path("home/pi-admin/.kube/config").exists());
    assert!(in_group(&root, "microk8s", "pi-admin"));
    let status = read(&root.boot().join("pinode-status.txt"));
    assert!(status.contains("microk8s (agent): ok"), "{status}");
}

/// An agent whose founder has no static address: its mDNS name is pinned, then resolved
/// into the join URL before the snap reads it (MicroK8s refuses a host name there). The
/// snap comes from the mirror's files: ack, then install, MicroK8s last and --classic.
#[test]
fn an_mdns_founder_is_resolved_and_snap_files_are_installed_in_order() {
    assert!(is_root(), "this test needs root (as CI has)");
    let env = UserEnv::new();
    let pair = profile(&env, "pair.yaml", PAIR);
    let (root, rendered, ok, log) = first_boot(&env, &pair, "p-2");
    assert!(ok, "{log}");
    let boot_config = read(&rendered.join("boot/pinode/secrets/microk8s-launch.yaml"));
    assert!(boot_config.contains(&format!("\"p-1.local:25000/{TOKEN}\"")));
    let seen = seen_config(&root);
    assert_eq!(
        seen["join"],
        json!({"url": format!("10.0.0.5:25000/{TOKEN}"), "worker": true})
    );
    assert!(read(&root.path("etc/hosts")).contains("10.0.0.5\tp-1.local # pinode-mdns\n"));
    let stubs = root.stub_log();
    let snap_calls: Vec<&str> = stubs
        .lines()
        .filter(|l| l.starts_with("snap ") && !l.starts_with("snap wait"))
        .collect();
    assert_eq!(
        snap_calls,
        [
            "snap ack /var/lib/pinode/snaps/core20_2434.assert",
            "snap install /var/lib/pinode/snaps/core20_2434.snap",
            "snap ack /var/lib/pinode/snaps/microk8s_8147.assert",
            "snap install --classic /var/lib/pinode/snaps/microk8s_8147.snap",
        ]
    );
    for url in [
        "https://mirror.example/snaps/core20_2434.snap",
        "https://mirror.example/snaps/microk8s_8147.assert",
    ] {
        assert!(stubs.contains(url), "{stubs}");
    }
    secrets_off_the_fat(&root);
}

/// A `.local` founder that does not resolve: the stage fails before the snap is installed,
/// saying why (a join URL needs the founder's IP address), and the next boot tries again.
#[test]
fn an_unresolvable_founder_fails_with_the_reason() {
    assert!(is_root(), "this test needs root (as CI has)");
    let env = UserEnv::new();
    let pair = profile(&env, "pair.yaml", PAIR);
    let (root, _, ok, _) = first_boot_with(&env, &pair, "p-2", |root| {
        root.stub(
            "getent",
            "case \"$1\" in ahostsv4) exit 2 ;; esac\nexec /usr/bin/getent \"$@\"",
        );
    });
    assert!(!ok);
    let status = status_json(&root);
    assert_eq!(status["last_error"], "microk8s launch configuration");
    assert_eq!(
        status["reason"],
        "cannot resolve p-1.local, the founder: a MicroK8s join needs its IP address (gave up after 6 attempts)"
    );
    assert!(!root.stub_log().contains("snap install"));
    assert!(!root.path("varlib/pinode/firstboot.done").exists());
}

/// A snap whose install hook did not take the launch configuration (another file first in
/// its search order, /etc/microk8s.yaml) fails the stage at once with that reason, not after
/// the 40-minute wait; the next boot does not install the snap again.
#[test]
fn a_launch_configuration_the_snap_did_not_take_fails_at_once() {
    assert!(is_root(), "this test needs root (as CI has)");
    let env = UserEnv::new();
    let alone = profile(&env, "alone.yaml", ALONE);
    let (root, _, ok, _) = first_boot_with(&env, &alone, "solo", |root| {
        root.stub(
            "snap",
            "case \"$1\" in install) mkdir -p /var/snap/microk8s/current; groupadd -f microk8s ;; esac",
        );
    });
    assert!(!ok);
    let status = status_json(&root);
    assert_eq!(
        status["last_error"],
        "microk8s launch configuration applied"
    );
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .starts_with("the MicroK8s snap did not take pinode's launch configuration"),
        "{status}"
    );
    assert!(!root.stub_log().contains("sleep 10"), "no waiting");
    // The next boot: the snap is there (not installed again), its agent has applied the file.
    let launcher = root.path("varsnap/microk8s/common/etc/launcher");
    std::fs::create_dir_all(&launcher).unwrap();
    std::fs::write(launcher.join("install.yaml.applied"), "").unwrap();
    let (ok, log) = second_stage(&root);
    assert!(ok, "{log}");
    assert_eq!(root.stub_log().matches("snap install").count(), 1);
}

/// A snap install that fails is reported with snapd's own last line, after the retries.
#[test]
fn a_failed_snap_install_is_reported_with_the_real_reason() {
    assert!(is_root(), "this test needs root (as CI has)");
    let env = UserEnv::new();
    let alone = profile(&env, "alone.yaml", ALONE);
    let (root, _) = first_stage_in_scratch_for(&env, &alone, "solo", "", Some(&ubuntu()), |root| {
        root.stub("sleep", "exit 0");
        root.stub(
            "snap",
            "case \"$1\" in wait) exit 0 ;; esac\necho 'error: cannot install \"microk8s\": Get https://api.snapcraft.io: dial tcp: lookup api.snapcraft.io: no such host' >&2\nexit 1",
        );
    });
    let (ok, _) = second_stage(&root);
    assert!(!ok);
    let status = status_json(&root);
    assert_eq!(status["last_error"], "microk8s install");
    assert_eq!(
        status["reason"],
        "snap install microk8s --channel=1.33/stable failed: error: cannot install \"microk8s\": Get https://api.snapcraft.io: dial tcp: lookup api.snapcraft.io: no such host (gave up after 6 attempts)"
    );
}

/// Every bad MicroK8s value in one run, each at its FILE:LINE:COL, and a token MicroK8s
/// would refuse.
#[test]
fn bad_values_are_refused_at_their_place() {
    let env = UserEnv::new();
    let text = format!(
        "{HEAD}cluster:
  name: bad
  token_env: SHORT_TOKEN
  distribution: microk8s
  microk8s:
    channel: 1.26/stable
    addons: [dns, Bad_Addon]
    extra_sans: [ok.example, not a name]
    kubelet_args: [--max-pods=5, max-pods, --kubeconfig=/tmp/x]
    snaps:
      - snap: http://mirror.example/microk8s_1.snap
        assert: https://mirror.example/microk8s_1.txt
nodes:
  - hostname: a
    role: server
"
    );
    let path = write_profile(env.dir.path(), "bad.yaml", &text);
    let p = path.display().to_string();
    let out = output(
        env.pinode()
            .env("SHORT_TOKEN", "0123456789abcdef")
            .args(["profile", "check"])
            .arg(&path),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for (line, col, field, says) in [
        (
            13,
            14,
            "cluster.microk8s.channel",
            "reads no launch configuration",
        ),
        (
            14,
            19,
            "cluster.microk8s.addons[1]",
            "is not a MicroK8s addon name",
        ),
        (
            15,
            30,
            "cluster.microk8s.extra_sans[1]",
            "neither an IP address nor a DNS name",
        ),
        (
            16,
            34,
            "cluster.microk8s.kubelet_args[1]",
            "must be --NAME=VALUE",
        ),
        (
            16,
            44,
            "cluster.microk8s.kubelet_args[2]",
            "set by the MicroK8s snap",
        ),
        (
            18,
            15,
            "cluster.microk8s.snaps[0].snap",
            "must be an https:// URL",
        ),
        (
            19,
            17,
            "cluster.microk8s.snaps[0].assert",
            "must name a .assert file",
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
        !err.contains("0123456789abcdef"),
        "the token is quoted:\n{err}"
    );

    // The short token, alone: refused where it is named, without its value.
    let text = format!("{HEAD}{}", ALONE.replace("K3S_TOKEN", "SHORT_TOKEN"));
    let path = write_profile(env.dir.path(), "short.yaml", &text);
    let out = output(
        env.pinode()
            .env("SHORT_TOKEN", "0123456789abcdef")
            .args(["render", "--profile"])
            .arg(&path)
            .args(["--node", "solo", "--image"])
            .arg(ubuntu())
            .arg("--out-dir")
            .arg(env.dir.path().join("short-out")),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cluster.token_env")
            && err.contains("16 characters: MicroK8s needs at least 32")
            && !err.contains("0123456789abcdef"),
        "{err}"
    );
}
