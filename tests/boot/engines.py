"""The boot test's MicroK8s and kubeadm nodes (routes `microk8s` and `kubeadm` of e2e.py).

One founder per distribution boots and runs its first boot to the end against STAND-INS served
from 127.0.0.1 (tests/boot/standins.py: real packages, snaps and the snap store cannot be
downloaded here):
- `microk8s`: Ubuntu Server's layout (build-base-image.sh's ubuntu.img: `system-boot`,
  os-release ID=ubuntu, cloud-init, a stand-in `snap`); checks: the snap installed from the
  profile's channel, the launch configuration it found at install time (root-only, the keys
  pinode writes), the login user's kubeconfig from `microk8s config`, pinode's manifests
  (helm-controller and the runner) applied with `microk8s kubectl`, and the agent's card (prepared,
  not booted) joining the founder's address on port 25000 as a worker with the same token.
- `kubeadm`: Raspberry Pi OS Bookworm's layout with its swap (dphys-swapfile); checks: the
  stand-in packages from the right (pinned) repositories, signed-by keys, held; kernel modules
  and sysctls in effect and persisted; swap off for good; `kubeadm init --config` with the
  configuration pinode wrote (v1beta4, the bootstrap token, the control-plane endpoint) and the
  cluster CA pinode made offline in /etc/kubernetes/pki, whose hash equals the caCertHashes the
  agent's card carries and the hash of the CA kept in pinode's state directory; the CNI and
  pinode's manifests applied once.
Both: identity, host key, status, `pinode status` and `pinode kubeconfig` (the real binary),
and no secret (join token, runner token, password hash, host key, the CA key) on the FAT.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import yaml

import standins
import e2e_common
from e2e_common import PASSWORD_HASH, RUNNER_TOKEN, parse_record

FOUNDER_ADDRESS, GATEWAY, DNS = "10.0.2.15", "10.0.2.2", "10.0.2.3"
NODES = {"microk8s": ("e2e-m1", "e2e-m2"), "kubeadm": ("e2e-k1", "e2e-k2")}
IMAGES = {"microk8s": "ubuntu.img", "kubeadm": "firstrun.img"}
# Join tokens in each distribution's own form (given, so that the test knows them).
MICROK8S_TOKEN = "0123456789abcdef0123456789abcdef"
KUBEADM_TOKEN = "e2etok.0123456789abcdef"
CHANNEL = "1.33/stable"
REPO = "https://10.0.2.100"


def api(route: str) -> str:
    return f"https://{FOUNDER_ADDRESS}:{16443 if route == 'microk8s' else 6443}"


# The CI systems each engine route's founder serves: kubeadm, a distribution without a Helm
# controller of its own, carries Jenkins and GitHub (a token) beside GitLab (issue 19).
RUNNERS = {"microk8s": ["gitlab"], "kubeadm": ["gitlab", "jenkins", "github"]}


def profile(pubkey: Path, route: str) -> dict:
    """A founder with a static address and the runner, and an agent (prepared, not booted)."""
    founder, agent = NODES[route]
    if route == "microk8s":
        engine = {"microk8s": {"channel": CHANNEL}}
        token_env = "E2E_MICROK8S_TOKEN"
        os_ = {"image": "ubuntu-server-24.04-arm64", "init": "cloud-init"}
    else:
        engine = {"kubeadm": {
            "repository": f"{REPO}/{standins.CORE_PATH}/",
            "crio_repository": f"{REPO}/{standins.CRIO_PATH}/",
            "cni_manifest_url": f"{REPO}/{standins.FLANNEL_PATH}",
        }}
        token_env = "E2E_KUBEADM_TOKEN"
        os_ = {"image": "raspios-lite-arm64", "init": "firstrun"}
    return {
        "version": 1,
        "os": os_,
        "defaults": {
            "user": {"name": "alice", "ssh_authorized_keys_file": str(pubkey), "password_hash": PASSWORD_HASH,
                     "sudo": "nopasswd"},
            "ssh": {"enabled": True},
            "timezone": "Europe/Berlin",
        },
        "cluster": {
            "name": "e2e",
            "distribution": route,
            "token_env": token_env,
            **engine,
            "runner": e2e_common.ci_runners(pubkey.parent, RUNNERS[route], github_app=False),
        },
        "nodes": [
            {"hostname": founder, "role": "server",
             "network": {"ethernet": {"ipv4": f"{FOUNDER_ADDRESS}/24", "gateway": GATEWAY, "dns": [DNS]}}},
            {"hostname": agent, "role": "agent"},
        ],
    }


def token(route: str) -> str:
    return MICROK8S_TOKEN if route == "microk8s" else KUBEADM_TOKEN


def read_fat(image: Path, path: str) -> bytes | None:
    """A file of an image's FAT boot partition (mtools), None when it is not there."""
    from vm import boot_partition_offset
    offset = boot_partition_offset(image)
    r = subprocess.run(["mtype", "-i", f"{image}@@{offset}", f"::{path}"], capture_output=True,
                       env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    return r.stdout if r.returncode == 0 else None


def fat_files(image: Path) -> list[str]:
    from vm import boot_partition_offset
    offset = boot_partition_offset(image)
    r = subprocess.run(["mdir", "-/", "-b", "-i", f"{image}@@{offset}", "::"], capture_output=True, text=True,
                       env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    return [line.strip().removeprefix("::/") for line in r.stdout.splitlines() if line.strip()]


def records(node, name: str) -> list[dict]:
    r = node.sh(f"sudo -n cat /var/lib/pinode-e2e/{name}.log 2>/dev/null")
    return [parse_record(rec) for rec in r.stdout.split("---") if rec.strip()]


def ca_hash(pem: bytes) -> str:
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem, capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    import hashlib
    return "sha256:" + hashlib.sha256(der).hexdigest()


def documents(text: str) -> list[dict]:
    try:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError:
        return []


def check_microk8s(node, agent_image: Path) -> None:
    installs = [r for r in records(node, "snap") if r.get("args", "").startswith("install")]
    node.check("snap installed microk8s once, classic, from the profile's channel",
               len(installs) == 1 and installs[0].get("args", "").split() ==
               ["install", "microk8s", "--classic", f"--channel={CHANNEL}"], json.dumps(installs))
    launch = installs[0] if installs else {}
    node.check("the launch configuration was in place, root-only, when the snap was installed",
               launch.get("launch_mode") == "600 root", json.dumps(launch))
    config = documents(base64.b64decode(launch.get("launch_b64", "")).decode(errors="replace"))
    config = config[0] if config else {}
    node.check("launch configuration: a version and the founder's address among the extra SANs",
               bool(config.get("version")) and FOUNDER_ADDRESS in (config.get("extraSANs") or []), json.dumps(config))
    node.check("launch configuration: the founder joins nobody", "join" not in config, json.dumps(config))
    node.check("launch configuration: the join token as persistentClusterToken, the dns addon",
               config.get("persistentClusterToken") == MICROK8S_TOKEN
               and any(a.get("name") == "dns" for a in config.get("addons") or [] if isinstance(a, dict)),
               json.dumps({k: v for k, v in config.items() if k != "persistentClusterToken"}))
    calls = [r.get("args", "") for r in records(node, "microk8s")]
    node.check("microk8s status --wait-ready was awaited", any(c.startswith("status --wait-ready") for c in calls),
               json.dumps(calls))
    r = node.sh("id -nG alice")
    node.check("alice is in the microk8s group", "microk8s" in r.stdout.split(), r.stdout)
    applied = records(node, "kubectl-apply")
    files = " ".join(v for rec in applied for k, v in rec.items() if k == "file" or k.startswith("file"))
    text = json.dumps(applied)
    node.check("pinode's manifests applied with microk8s kubectl: helm-controller and the runner",
               "helm-controller" in text and "gitlab-runner" in text, text[:1500] + files)
    # The agent's card: its launch configuration joins the founder as a worker, same token.
    agent = [f for f in fat_files(agent_image) if "microk8s" in f and f.endswith((".yaml", ".yml"))]
    joined = {}
    for f in agent:
        for doc in documents((read_fat(agent_image, f) or b"").decode(errors="replace")):
            if "join" in doc:
                joined = doc["join"] if isinstance(doc["join"], dict) else {}
    url = str(joined.get("url", ""))
    node.check("the agent's card joins the founder's address on port 25000 with the token, as a worker",
               url.startswith(f"{FOUNDER_ADDRESS}:25000/{MICROK8S_TOKEN}") and joined.get("worker") is True,
               json.dumps(joined) + " " + " ".join(agent))


def check_kubeadm(node, agent_image: Path, state: Path) -> None:
    r = node.sh("cat /var/lib/pinode-e2e/apt.log 2>/dev/null")
    installed = dict(line.split()[1:3] for line in r.stdout.splitlines() if line.startswith("installed "))
    for name in ("kubelet", "kubeadm", "kubectl", "cri-o"):
        version, where, _ = standins.PACKAGES[name]
        node.check(f"{name} {version} installed (stand-in package)", installed.get(name) == version, r.stdout)
    for name, path in (("kubeadm", standins.CORE_PATH), ("cri-o", standins.CRIO_PATH)):
        r = node.sh(f"apt-cache policy {name}")
        node.check(f"{name} comes from the pinned repository {path}", f"{REPO}/{path}" in r.stdout, r.stdout)
    r = node.sh("cat /etc/apt/sources.list.d/* 2>/dev/null")
    node.check("both repositories are signed-by a key of their own",
               all(f"{REPO}/{p}" in r.stdout for p in (standins.CORE_PATH, standins.CRIO_PATH))
               and r.stdout.count("signed-by=") >= 2, r.stdout)
    r = node.sh("apt-mark showhold")
    node.check("kubelet, kubeadm and kubectl are held", {"kubelet", "kubeadm", "kubectl"} <= set(r.stdout.split()),
               r.stdout)
    r = node.sh("lsmod | awk '{print $1}'; echo ==; grep -h -v '^#' /etc/modules-load.d/*.conf")
    mods, mod_files = (r.stdout.split("==\n") + ["", ""])[:2]
    node.check("br_netfilter and overlay loaded, and listed in modules-load.d",
               {"br_netfilter", "overlay"} <= set(mods.split()) and {"br_netfilter", "overlay"} <= set(mod_files.split()),
               mod_files + r.stderr)
    keys = ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"]
    r = node.sh("sudo -n sysctl " + " ".join(keys))
    node.check("ip_forward and bridge-nf-call-ip(6)tables are 1 now",
               all(f"{k} = 1" in r.stdout for k in keys), r.stdout + r.stderr)
    r = node.sh("grep -h -v '^#' /etc/sysctl.d/*.conf | tr -d ' '")
    node.check("... and at every boot (sysctl.d)", all(f"{k}=1" in r.stdout.split() for k in keys), r.stdout[:1500])
    r = node.sh("swapon --show --noheadings | wc -l; systemctl is-enabled dphys-swapfile.service")
    lines = r.stdout.split()
    node.check("no swap, and Pi OS's dphys-swapfile off for good (not enabled)",
               lines[:1] == ["0"] and lines[1:2] != ["enabled"], r.stdout)
    calls = records(node, "kubeadm")
    inits = [c for c in calls if c.get("args", "").startswith("init")]
    node.check("kubeadm init ran once, with a config file", len(inits) == 1 and bool(inits[0].get("config_path")),
               json.dumps(calls)[:2000])
    init = inits[0] if inits else {}
    node.check("kubeadm init: no swap and CRI-O active when it ran",
               init.get("swap") == "0" and init.get("crio") == "active", json.dumps(init)[:500])
    docs = documents(base64.b64decode(init.get("config_b64", "")).decode(errors="replace"))
    kinds = {d.get("kind"): d for d in docs}
    node.check("the init configuration: InitConfiguration and ClusterConfiguration of kubeadm.k8s.io/v1beta4",
               {"InitConfiguration", "ClusterConfiguration"} <= set(kinds)
               and all(kinds[k].get("apiVersion") == "kubeadm.k8s.io/v1beta4"
                       for k in ("InitConfiguration", "ClusterConfiguration")), json.dumps(docs)[:2000])
    tokens = [t.get("token") for t in (kinds.get("InitConfiguration", {}).get("bootstrapTokens") or [])]
    node.check("InitConfiguration carries the bootstrap token", tokens == [KUBEADM_TOKEN], json.dumps(tokens))
    endpoint = kinds.get("ClusterConfiguration", {}).get("controlPlaneEndpoint")
    node.check("controlPlaneEndpoint is the founder's address", endpoint == f"{FOUNDER_ADDRESS}:6443", str(endpoint))
    node.check("the CA pinode made was in /etc/kubernetes/pki before kubeadm init",
               "./ca.crt" in init.get("pki", "") and "./ca.key" in init.get("pki", ""), init.get("pki", ""))
    kept = sorted(state.glob("clusters/e2e/**/ca.crt"))
    kept_hash = ca_hash(kept[0].read_bytes()) if kept else "?"
    node.check("the CA on the node is the one kept in pinode's state directory (same hash)",
               init.get("ca_hash") == kept_hash, f"{init.get('ca_hash')} vs {kept_hash} ({kept})")
    joins = []
    for f in fat_files(agent_image):
        if "kubeadm" in f and f.endswith((".yaml", ".yml")):
            joins += [d for d in documents((read_fat(agent_image, f) or b"").decode(errors="replace"))
                      if d.get("kind") == "JoinConfiguration"]
    discovery = (joins[0].get("discovery") or {}).get("bootstrapToken") or {} if joins else {}
    node.check("the agent's card: JoinConfiguration with caCertHashes = the founder's CA hash, never unsafe",
               discovery.get("caCertHashes") == [init.get("ca_hash")] and not discovery.get("unsafeSkipCAVerification")
               and discovery.get("token") == KUBEADM_TOKEN
               and discovery.get("apiServerEndpoint") == f"{FOUNDER_ADDRESS}:6443", json.dumps(joins)[:1500])
    r = node.sh("ls /etc/cni/net.d")
    node.check("CRI-O's own bridge network moved aside (flannel's is the cluster's)",
               "11-crio-ipv4-bridge.conflist" not in r.stdout.split()
               and "11-crio-ipv4-bridge.conflist.pinode-disabled" in r.stdout.split(), r.stdout + r.stderr)
    r = node.sh("sudo -n stat -c '%a %U' /etc/kubernetes/pki/ca.key")
    node.check("the CA key is root-only on the node", r.stdout.strip() == "600 root", r.stdout + r.stderr)
    applied = json.dumps(records(node, "kubectl-apply"))
    node.check("the CNI manifest and pinode's manifests (helm-controller, the runners) applied",
               "flannel" in applied and "helm-controller" in applied and "gitlab-runner" in applied
               and "pinode-jenkins" in applied and "pinode-github" in applied, applied[:2000])
    e2e_common.check_ci_on_node(node, "/var/lib/pinode/manifests", RUNNERS["kubeadm"], False,
                                {"00-pinode-helm-controller.yaml"})


def secrets(route: str, state: Path) -> dict[str, bytes]:
    found = {"join token": token(route).encode(), "runner token": RUNNER_TOKEN.encode(),
             **e2e_common.ci_fat_secrets(RUNNERS[route], github_app=False)}
    if route == "kubeadm":
        keys = sorted(state.glob("clusters/e2e/**/ca.key"))
        if keys:
            body = "".join(line for line in keys[0].read_text().splitlines() if not line.startswith("-----"))
            found["cluster CA key"] = body[8:68].encode()
    return found
