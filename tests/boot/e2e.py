#!/usr/bin/python3
"""End-to-end boot test: pinode-prepared cluster nodes boot under QEMU and provision themselves.

One command, as root, after `tests/boot/setup-host.sh` and `cargo build --release`:

    python3 tests/boot/e2e.py [--work DIR] [--route firstrun|cloud-init]...

It builds (or reuses, cached by content) a bootable arm64 Debian image laid out like Raspberry
Pi OS (build-base-image.sh), writes a cluster profile full of hostile values, runs
`pinode prepare`, and boots the nodes one after another under qemu-system-aarch64 with the
kernel command line taken from each image's own cmdline.txt. QEMU user networking is
restricted (`restrict=on`); the only way out is a relay to an HTTPS server on 127.0.0.1 that
serves a recording stand-in for the K3s install script (the real one needs the internet); on
servers the stand-in also leaves a stand-in `k3s` command that answers `k3s kubectl get nodes
-o json` (this node Ready), so that `pinode status` has a cluster view to read.
Every SSH connection to a node checks its host key strictly against the known_hosts file pinode
keeps for the cluster (in the route's PINODE_STATE_DIR, WORK/ROUTE/state), under the node's
name: each one shows that the node's key is the one pinode made; a copy of that file with
another key is refused. Over SSH with the profile's key it checks the hostname, the user, sudo,
key login and no password login, the cgroup tokens, how the installer ran (version, role,
server URL, token file), /etc/rancher/k3s/config.yaml, the runner manifests (on the first server only), that no
secret (the node's private host key among them) is left anywhere on the FAT partition (its raw
bytes), the status files (the FAT's text file; /var/lib/pinode/status.json: modes, keys, no
secret), what `pinode status --json` (the real binary, the test key in an ssh-agent, the
forwarded port as --address) says of the node, that hostile values arrived byte-exact, and
that a second boot does nothing again. On the founders, the real `pinode kubeconfig --merge`
fetches the stand-in's K3s-shaped kubeconfig into a kubeconfig with two other contexts, read
back with kubectl. The image's host-key regeneration is Pi OS's (an unconditional unit that
deletes every key): pinode must keep it from running.
On the firstrun route the K3s cluster CA is kept (one render outside CI, as for kubeadm): the
servers hold its files root-only in /var/lib/rancher/k3s/server/tls before the installer runs
(the stand-in records their hash), the agent holds none, no CA key byte is left on any FAT,
and every node's token is K10<hashlib over the server's server-ca.crt>::server:<secret>.

Roles booted: the first server (HA founder, with the runner), a second HA server and an agent
on the firstrun route, and the first server again on the cloud-init route, which installs K3s
without internet (`cluster.airgap`): stand-ins of the release's files (k3s-arm64 = the stand-in
k3s command, a zstd images archive of `docker save`'s layout, sha256sum-arm64.txt, install.sh)
are served from 127.0.0.1 into pinode's cache during `prepare`, and the node boots with no
relay at all: its first boot must complete from the card, run the installer with
INSTALL_K3S_SKIP_DOWNLOAD=true, and leave none of the files on the FAT; and a third server
whose first boot fails on purpose (its install URL answers 404): `pinode status` must say
"first boot failed" with the reason line from that node's own log, and exit 1. The agent boots from
a card that `pinode flash` wrote and verified: a loop device larger than the image and filled
with random bytes first, which QEMU boots as its disk. pinode writes only the blocks in use, so
before the boot the card's partitions must pass `fsck.fat -n` and `e2fsck -fn` and hold exactly
the files of the prepared image (tests/tools/fsmanifest.py). The routes `microk8s` and
`kubeadm` boot one founder per further distribution against stand-ins (engines.py,
standins.py). Exit status 0 when every check
passed; the last line is "N passed, N failed".
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import engines  # noqa: E402
import standins  # noqa: E402
import e2e_common  # noqa: E402
from e2e_common import PASSWORD_HASH, RUNNER_TOKEN, parse_record  # noqa: E402
from https_server import HttpsServer  # noqa: E402
from smoke import TIMINGS, T0, Checks, Phase, run, serial_excerpt  # noqa: E402
from vm import SSH_BASE_OPTIONS, Vm, host_key_options  # noqa: E402

# Hostile values: quotes, command substitutions, backslashes, unicode and a newline.
SSID = "e2e 'n' \"$(x)\" `id` \\ ü\nx"
PASSPHRASE = "pass 'phrase' \"$(reboot)\" `id` \\ ;&|<>*?"
K3S_TOKEN = "k3s'tok\"en$(reboot)`id`\\;&|<>*?-0123456789"
K3S_VERSION = "v1.33.5+k3s1"
API = "https://e2e-1.cluster.internal:6443"
INSTALL_URL = "https://10.0.2.100/k3s-install.sh"
# One node per route with a static Ethernet address: what QEMU's user network hands out by
# DHCP anyway (10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3), written as a fixed address.
STATIC_NODE = {"firstrun": "e2e-2", "cloud-init": "e2e-1", "microk8s": "e2e-m1", "kubeadm": "e2e-k1"}
STATIC_ADDRESS, STATIC_GATEWAY, STATIC_DNS = "10.0.2.15", "10.0.2.2", "10.0.2.3"
VIP = "10.0.2.9"

# Pieces of the stand-in installers: the record of how it was run, and the kubeconfig a
# server's install leaves.
_RECORD = r"""mkdir -p /var/lib/pinode-e2e
record=$( {
	printf 'args=%s\n' "$*"
	env | grep -E '^(INSTALL_K3S_|K3S_)' | sort
	printf 'token_b64=%s\n' "$(base64 -w 0 "$K3S_TOKEN_FILE")"
	# The custom CA pinode placed before K3s first starts (servers): its hash, as K3s computes
	# the token's (the SHA-256 of server-ca.crt as stored), and its directory's mode.
	if [ -f /var/lib/rancher/k3s/server/tls/server-ca.crt ]; then
		printf 'ca_sha256=%s\n' "$(sha256sum /var/lib/rancher/k3s/server/tls/server-ca.crt | cut -d' ' -f1)"
		printf 'ca_dir=%s\n' "$(stat -c '%a %U' /var/lib/rancher/k3s/server/tls)"
	fi
} )
printf '%s\n---\n' "$record" >>/var/lib/pinode-e2e/install.log
"""
_REPORT = r"""printf '%s\n' "$record" | curl -sS --max-time 20 -X POST --data-binary @- "https://10.0.2.100/installed/$(hostname)" || true
"""
_KUBECONFIG = r"""if [ "${1:-}" = server ]; then
	# /etc/rancher/k3s/k3s.yaml in the shape K3s writes it (root-only, the cluster, context
	# and user all "default", the server https://127.0.0.1:6443), with a CA and an admin
	# client certificate made here by openssl in place of K3s's own.
	mkdir -p /etc/rancher/k3s
	pki=$(mktemp -d)
	ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
	# shellcheck disable=SC2086
	openssl req -x509 $ec -days 2 -subj "/CN=k3s-server-ca@$(date +%s)" -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
	# shellcheck disable=SC2086
	openssl req -new $ec -subj "/O=system:masters/CN=system:admin" -keyout "$pki/admin.key" -out "$pki/admin.csr" 2>/dev/null
	openssl x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
		-out "$pki/admin.crt" 2>/dev/null
	umask 077
	cat >/etc/rancher/k3s/k3s.yaml <<KUBECONFIG
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w 0 "$pki/ca.crt")
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: $(base64 -w 0 "$pki/admin.crt")
    client-key-data: $(base64 -w 0 "$pki/admin.key")
KUBECONFIG
	chmod 600 /etc/rancher/k3s/k3s.yaml
	rm -rf "$pki"
	umask 022
"""

# The stand-in `k3s` command: what the stand-in installer leaves on servers, and on the
# air-gap route the stand-in for the release's k3s-arm64 itself.
K3S_STANDIN = r"""#!/bin/sh
# A STAND-IN for k3s, left by the stand-in installer of pinode's e2e boot test (real K3s cannot
# be downloaded there). It answers only `k3s kubectl get nodes -o json [...]`, as kubectl prints
# it (a List of core/v1 Nodes in the API's own shape), listing this node with Ready True; every
# other command fails, as the runner's Deployment lookup does before the chart has run.
if [ "$#" -ge 5 ] && [ "$1 $2 $3 $4 $5" = "kubectl get nodes -o json" ]; then
	node=$(hostname)
	now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	cat <<EOF
{
    "apiVersion": "v1",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "annotations": {"k3s.io/node-args": "[\"server\"]"},
                "creationTimestamp": "$now",
                "labels": {
                    "kubernetes.io/arch": "arm64",
                    "kubernetes.io/hostname": "$node",
                    "kubernetes.io/os": "linux",
                    "node-role.kubernetes.io/control-plane": "true"
                },
                "name": "$node",
                "resourceVersion": "1",
                "uid": "00000000-0000-4000-8000-000000000000"
            },
            "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]},
            "status": {
                "conditions": [
                    {"lastHeartbeatTime": "$now", "lastTransitionTime": "$now",
                     "message": "kubelet has sufficient memory available", "reason": "KubeletHasSufficientMemory",
                     "status": "False", "type": "MemoryPressure"},
                    {"lastHeartbeatTime": "$now", "lastTransitionTime": "$now",
                     "message": "kubelet is posting ready status", "reason": "KubeletReady",
                     "status": "True", "type": "Ready"}
                ],
                "nodeInfo": {"architecture": "arm64", "kubeletVersion": "v1.33.5+k3s1", "operatingSystem": "linux"}
            }
        }
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}
EOF
	exit 0
fi
echo "k3s stand-in (pinode e2e boot test): only 'kubectl get nodes -o json' is answered" >&2
exit 1
"""

# The stand-in for https://get.k3s.io: records how it was called, on the node and (by POSTing)
# on the host, and leaves what the first-boot program expects from a real install.
FAKE_INSTALLER = ("#!/bin/sh\nset -u\n" + _RECORD + _REPORT + _KUBECONFIG
                  + "\tcat >/usr/local/bin/k3s <<'STANDIN'\n" + K3S_STANDIN
                  + "STANDIN\n\tchmod 755 /usr/local/bin/k3s\nfi\n")

# The stand-in for the tag's install.sh on the air-gap route (cluster.airgap): run from the
# card with INSTALL_K3S_SKIP_DOWNLOAD=true, it records how it was run and leaves the
# kubeconfig, like the other; it reports nothing to the host (the node has no route there)
# and leaves /usr/local/bin/k3s alone, as the real one does when told to skip the download.
AIRGAP_INSTALLER = "#!/bin/sh\nset -u\n" + _RECORD + _KUBECONFIG + "fi\n"

# The route whose node installs K3s from its card (cluster.airgap) and boots with no relay to
# any server; the release's files as K3s publishes them (k3s-io/k3s releases).
AIRGAP_ROUTE = "cloud-init"
AIRGAP_DIR = "/boot/firmware/pinode/k3s/airgap"
AIRGAP_IMAGES = "k3s-airgap-images-arm64.tar.zst"


def airgap_release(www: Path) -> dict[str, bytes]:
    """STAND-INS of a K3s release under www/releases/<tag>/ (k3s-arm64, the zstd images
    archive, sha256sum-arm64.txt) and www/install.sh; returns the files by name. The binary is
    the stand-in k3s command; the archive has the layout `docker save` writes (manifest.json,
    repositories, blobs) around random bytes, so that megabytes travel to the card and off it."""
    tag = www / "releases" / K3S_VERSION
    tag.mkdir(parents=True)
    tree = www.parent / "airgap-archive"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "blobs").mkdir(parents=True)
    (tree / "manifest.json").write_text(json.dumps([{"Config": "blobs/config.json", "Layers": ["blobs/layer.tar"],
                                                     "RepoTags": ["docker.io/rancher/mirrored-pause:3.6"]}]))
    (tree / "repositories").write_text("{}")
    (tree / "blobs" / "config.json").write_text("{}")
    (tree / "blobs" / "layer.tar").write_bytes(os.urandom(8 << 20))
    run(["tar", "--zstd", "-cf", tag / AIRGAP_IMAGES, "-C", tree, "manifest.json", "repositories", "blobs"], check=True)
    files = {"k3s-arm64": K3S_STANDIN.encode(), AIRGAP_IMAGES: (tag / AIRGAP_IMAGES).read_bytes(),
             "install.sh": AIRGAP_INSTALLER.encode()}
    (tag / "k3s-arm64").write_bytes(files["k3s-arm64"])
    (www / "install.sh").write_bytes(files["install.sh"])
    sums = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in ("k3s-arm64", AIRGAP_IMAGES))
    (tag / "sha256sum-arm64.txt").write_text(sums)
    # A STAND-IN Helm repository (index.yaml in Helm's format: entries.<chart>[].version, urls,
    # digest = SHA-256 of the archive) of tiny charts, for the runners' chartContent.
    charts = www / "charts"
    charts.mkdir()
    entries = {}
    for chart, version in AIRGAP_CHARTS.items():
        src = www.parent / "airgap-chart-src" / chart
        shutil.rmtree(src.parent, ignore_errors=True)
        (src / "templates").mkdir(parents=True)
        (src / "Chart.yaml").write_text(f"apiVersion: v2\nname: {chart}\nversion: {version}\n"
                                        f"description: STAND-IN chart for pinode's boot test, not the real {chart}\n")
        (src / "templates" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stand-in\n")
        archive = charts / f"{chart}-{version}.tgz"
        run(["tar", "czf", archive, "-C", src.parent, chart], check=True)
        files[f"chart {chart}"] = archive.read_bytes()
        entries[chart] = [{"apiVersion": "v2", "name": chart, "version": version,
                           "digest": hashlib.sha256(archive.read_bytes()).hexdigest(), "urls": [archive.name]}]
    (charts / "index.yaml").write_text(json.dumps({"apiVersion": "v1", "entries": entries}))
    return files

# A user's kubeconfig with two other clusters, for `pinode kubeconfig --merge`.
OTHER_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
    insecure-skip-tls-verify: true
- name: dev
  cluster: {server: 'https://dev.example:443', certificate-authority-data: REVW}
contexts:
- name: prod
  context: {cluster: prod, user: prod-admin, namespace: web}
- name: dev
  context:
    cluster: dev
    user: dev-user
users:
- name: prod-admin
  user: {token: prod-token}
- name: dev-user
  user:
    username: dev
    password: dev-pass
current-context: prod
preferences: {}
"""

# The keys of /var/lib/pinode/status.json: the fields of FirstBootStatus (src/status/mod.rs,
# which refuses unknown ones).
FIRST_BOOT_KEYS = {"version", "stage", "state", "step", "started", "finished", "last_error", "reason",
                   "root_write_bytes_per_second"}
STATE_DIR = "/var/lib/pinode"
STATUS_JSON = f"{STATE_DIR}/status.json"


# The K3s routes' founder serves all four CI systems (GitHub through a GitHub App).
K3S_RUNNERS = ["gitlab", "jenkins", "github", "forgejo"]
# The air-gap route's runners: their charts are embedded from the stand-in Helm repository
# served with the release files (ARC's OCI pull is tested against a stand-in registry in
# tests/airgap_charts.rs, not here); Forgejo's runner has no chart.
AIRGAP_RUNNERS = ["gitlab", "jenkins", "forgejo"]
AIRGAP_CHARTS = {"gitlab-runner": "0.86.0", "jenkins": "5.9.53"}


def runners_of(route: str) -> list[str]:
    return AIRGAP_RUNNERS if route == AIRGAP_ROUTE else K3S_RUNNERS


def profile(pubkey: Path, init: str) -> dict:
    return {
        "version": 1,
        "os": {"image": "raspios-lite-arm64", "init": init},
        "defaults": {
            "user": {"name": "alice", "ssh_authorized_keys_file": str(pubkey), "password_hash": PASSWORD_HASH,
                     "sudo": "nopasswd"},
            "ssh": {"enabled": True},
            "wifi": {"ssid": SSID, "psk_env": "E2E_WIFI_PSK", "country": "DE"},
            "timezone": "Europe/Berlin",
            "locale": "en_GB.UTF-8",
            "keyboard": "de",
        },
        "cluster": {
            "name": "e2e",
            "token_env": "E2E_K3S_TOKEN",
            "api": API,
            # kube-vip's manifest goes onto every server (K3s is a stand-in: nothing runs it);
            # in the static node's prefix, as pinode requires.
            "vip": VIP,
            "k3s": {"version": K3S_VERSION, "install_url": INSTALL_URL, "server_args": ["--disable=traefik"]},
            # Every CI system (issue 19): each runner's manifests and Secrets on the founder.
            "runner": e2e_common.ci_runners(pubkey.parent, K3S_RUNNERS, github_app=True),
        },
        "nodes": [
            {"hostname": name, "role": "server",
             **({"network": {"ethernet": {"ipv4": f"{STATIC_ADDRESS}/24", "gateway": STATIC_GATEWAY,
                                          "dns": [STATIC_DNS]}}} if STATIC_NODE[init] == name else {})}
            for name in ("e2e-1", "e2e-2", "e2e-3")
        ] + [{"hostname": "e2e-agent", "role": "agent"}],
    }


def psk_hex(ssid: str, passphrase: str) -> str:
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


def nm_ssid(value: str) -> bytes:
    if value.endswith(";"):
        return bytes(int(b) for b in value.rstrip(";").split(";"))
    return value.encode()


def known_hosts_entries(path: Path) -> dict[str, str]:
    """name -> "TYPE BASE64" of a known_hosts file (names comma-separated or one a line)."""
    entries = {}
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            for name in fields[0].split(","):
                entries[name] = f"{fields[1]} {fields[2]}"
    return entries


def host_key_slice(path: Path) -> bytes:
    """60 characters of a kept OpenSSH ed25519 private key file, from its private seed, and
    within one line of the base64 body: the line breaks are kept in firstrun.sh (a quoted shell
    string) and written as \\n in cloud-init's user-data (JSON), so a slice across a break
    would be found in neither."""
    lines = [line.strip() for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("-----")]
    raw = base64.b64decode("".join(lines))
    marker = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
    at = raw.index(marker) + len(marker)
    public = raw[at:at + 32]
    # The private half holds the 32-byte seed followed by the public key (its last copy).
    seed = raw.rindex(public) - 32
    first, last = -(-seed * 4 // 3), (seed + 32) * 8 // 6  # base64 characters of seed bits only
    best, start = None, 0
    for line in lines:
        overlap = min(last, start + len(line)) - max(first, start)
        if len(line) >= 60 and (best is None or overlap > best[0]):
            best = (overlap, line[min(max(first - start, 0), len(line) - 60):][:60])
        start += len(line)
    if best is None or best[0] < 30:
        raise ValueError(f"{path}: no 60-character line holds the private seed")
    return best[1].encode()


class Node:
    """One booted node and the checks on it."""

    def __init__(self, name: str, role: str, route: str, image: Path, work: Path, srv: HttpsServer, key: Path,
                 checks: Checks, timeout: float, pinode: Path, profile: Path, state: Path, env: dict):
        self.name, self.role, self.route = name, role, route
        # The distribution: the engine routes' own, K3s on the others.
        self.engine = route if route in engines.NODES else "k3s"
        self.api = engines.api(route) if self.engine != "k3s" else API
        self.state = state
        self.key, self.checks, self.srv = key, checks, srv
        self.label = f"{route} {name} ({role})"
        self.work = work
        # pinode's state directory of this route: the cluster's known_hosts and host keys.
        self.cluster_dir = state / "clusters" / "e2e"
        self.known_hosts = self.cluster_dir / "known_hosts"
        # The air-gap node has no relay at all: the guest reaches nothing outside itself.
        self.airgap = route == AIRGAP_ROUTE
        self.vm = Vm(image, work / "vm", https_port=None if self.airgap else srv.port, known_hosts=self.known_hosts,
                     host_key_alias=name)
        self.timeout = timeout
        self.pinode, self.profile, self.env = pinode, profile, env

    def sh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.vm.ssh("alice", self.key, command, timeout=timeout)

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        return self.checks.check(f"{self.label}: {what}", ok, detail)

    def boot(self) -> bool:
        with Phase(f"{self.label}: boot until SSH as alice"):
            self.vm.start()
            up = self.vm.wait_for_ssh("alice", self.key, timeout=self.timeout)
        if not self.check("SSH login with the profile's key, the host key checked against pinode's known_hosts",
                          up, f"boots={self.vm.boots}; {self.why_no_login()}" if not up else ""):
            print("  serial log excerpt:\n" + serial_excerpt(self.vm))
            return False
        # SSH answers before the boot is over (cloud-init restarts sshd, for one); then the
        # second stage runs once the network is up: give both time to finish.
        with Phase(f"{self.label}: wait for the boot and pinode-firstboot"):
            self.vm.settle("alice", self.key, timeout=900)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                r = self.sh("sudo -n test -e /var/lib/pinode/firstboot.done && echo done; "
                            "systemctl is-failed pinode-firstboot.service || true")
                if "done" in r.stdout or r.stdout.strip().endswith("failed"):
                    break
                time.sleep(10)
        return True

    def why_no_login(self) -> str:
        """After a failed wait for SSH: whether a login with any host key works (then the VM's
        key is not the one pinode made), and what ssh said with pinode's file."""
        strict = self.sh("true", timeout=60)
        argv = ["ssh", *SSH_BASE_OPTIONS, *host_key_options(None), "-i", str(self.key), "-p", str(self.vm.ssh_port),
                "alice@127.0.0.1", "cat /etc/ssh/ssh_host_ed25519_key.pub"]
        try:
            loose = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return f"with pinode's known_hosts: {strict.stderr.strip()}; with any key: timed out"
        return (f"with pinode's known_hosts: {strict.stderr.strip()}; with any key: exit {loose.returncode} "
                f"{loose.stdout.strip()} {loose.stderr.strip()}; pinode's: {known_hosts_entries(self.known_hosts).get(self.name)}")

    def host_keys(self) -> None:
        """The node's key is the one pinode made: every connection so far checked it strictly
        against pinode's known_hosts; here the key file on the node is compared with it too, and
        a copy of the file that holds another key for the node is refused by ssh."""
        entries = known_hosts_entries(self.known_hosts)
        mine = entries.get(self.name)
        self.check("pinode's known_hosts has this node's key (HOST and HOST.local)",
                   mine is not None and entries.get(f"{self.name}.local") == mine, str(entries))
        # sudo: cloud-init 22.4 writes ssh_keys' public half 0600 too (cc_ssh.py, CONFIG_KEY_TO_FILE),
        # and without a final line break: the key file comes last.
        r = self.sh("sudo -n stat -c '%a %U' /etc/ssh/ssh_host_ed25519_key; sudo -n cat /etc/ssh/ssh_host_ed25519_key.pub")
        lines = r.stdout.splitlines()
        node_key = " ".join(lines[1].split()[:2]) if len(lines) > 1 else ""
        self.check("the node's ed25519 host key is the one pinode made", bool(mine) and node_key == mine,
                   f"node: {node_key!r}, pinode: {mine!r}")
        self.check("the private host key is root-only on the node", lines[:1] == ["600 root"], r.stdout + r.stderr)
        # The image's regenerate_ssh_host_keys.service (shaped like Pi OS's: it deletes every
        # key and disables itself) was kept from running: disabled (firstrun) or masked
        # (cloud-init), and never started.
        if self.route == "microk8s":
            # Ubuntu has no such unit; its cloud-init writes pinode's key (checked above).
            r = self.sh("systemctl cat regenerate_ssh_host_keys.service >/dev/null 2>&1 || echo none")
            self.check("no Pi OS host-key regeneration on the Ubuntu image", r.stdout.strip() == "none", r.stdout)
        r = self.sh("systemctl is-enabled regenerate_ssh_host_keys.service; "
                    "systemctl show -p ExecMainStartTimestampMonotonic --value regenerate_ssh_host_keys.service")
        state = r.stdout.split()
        if self.route != "microk8s":
            self.check("Pi OS's regenerate_ssh_host_keys.service was kept from running (disabled or masked, never started)",
                       state[:1] in (["disabled"], ["masked"]) and state[1:] == ["0"], r.stdout + r.stderr)
        other = self.work / "other_host_key"
        for p in (other, other.with_suffix(".pub")):
            p.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "another@e2e", "-f", other], check=True)
        other_key = " ".join(other.with_suffix(".pub").read_text().split()[:2])
        copy = self.work / "known_hosts.other-key"
        rewritten = []
        for line in self.known_hosts.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and not line.startswith("#"):
                line = " ".join([fields[0], other_key, *fields[3:]])
            rewritten.append(line)
        copy.write_text("\n".join(rewritten) + "\n")
        r = subprocess.run(self.vm.ssh_argv("alice", self.key, "true", known_hosts=copy),
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.check("a copy of pinode's known_hosts with another key for the node is refused (host key verification failed)",
                   known_hosts_entries(copy).get(self.name) == other_key and r.returncode == 255
                   and "Host key verification failed" in r.stderr, f"exit {r.returncode}: {r.stderr}")

    def identity(self) -> None:
        r = self.sh("hostname")
        self.check("hostname", r.stdout.strip() == self.name, r.stdout + r.stderr)
        r = self.sh("id -un; id -u")
        self.check("user alice is uid 1000", r.stdout.split() == ["alice", "1000"], r.stdout)
        r = self.sh("sudo -n true")
        self.check("sudo without a password", r.returncode == 0, r.stderr)
        # The image's first user (pi) became alice as Pi OS's userconf renames it: subuid and
        # subgid follow (rootless containers need them), the image's sudoers rule for pi goes;
        # on the cloud-init route the rule is a file of its own, as Imager 2.x writes it.
        if self.route == "microk8s":
            self.identity_ubuntu()
        else:
            self.identity_pi_os()
        self.identity_common()

    def identity_ubuntu(self) -> None:
        """Ubuntu's image has no first user: cloud-init creates alice with Ubuntu's groups."""
        r = self.sh("id -nG alice; echo ==; cat /etc/os-release")
        self.check("Ubuntu image: alice in sudo and adm (Ubuntu's default user groups)",
                   {"sudo", "adm"} <= set(r.stdout.split("==")[0].split()), r.stdout)
        self.check("the node runs the Ubuntu-shaped image (os-release ID=ubuntu)", "ID=ubuntu" in r.stdout, r.stdout)

    def identity_pi_os(self) -> None:
        r = self.sh("cat /etc/subuid; echo ==; cat /etc/subgid; echo ==; sudo -n ls /etc/sudoers.d; echo ==; "
                    "sudo -n stat -c '%a %U' /etc/sudoers.d/010_alice-nopasswd 2>&1; "
                    "sudo -n cat /etc/sudoers.d/010_alice-nopasswd 2>&1")
        subuid, subgid, sudoers, rule = (r.stdout.split("==\n") + ["", "", "", ""])[:4]
        owners = [[line.split(":")[0] for line in text.splitlines() if line] for text in (subuid, subgid)]
        self.check("subuid/subgid: pi's ranges (the image has one each) are alice's now",
                   owners == [["alice"], ["alice"]], r.stdout)
        self.check("no sudoers rule for pi left", "010_pi-nopasswd" not in sudoers.split(), sudoers)
        if self.route == "cloud-init":
            self.check("/etc/sudoers.d/010_alice-nopasswd: 440 root, NOPASSWD for alice",
                       rule.splitlines()[:2] == ["440 root", "alice ALL=(ALL) NOPASSWD: ALL"], rule)

    def identity_common(self) -> None:
        r = self.sh("sudo -n grep -c '^alice:' /etc/shadow; sudo -n awk -F: '$1 == \"alice\" { print $2 }' /etc/shadow")
        self.check("password hash set byte-exact", r.stdout.split("\n")[1].strip() == PASSWORD_HASH, r.stdout)
        # Password login is off: the server offers nothing but publickey.
        argv = ["ssh", *self.vm.ssh_options(), "-o", "PubkeyAuthentication=no",
                "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "BatchMode=yes",
                "-p", str(self.vm.ssh_port), "alice@127.0.0.1", "true"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.check("password login is refused (only publickey offered)",
                   r.returncode != 0 and "Permission denied (publickey)" in r.stderr, r.stderr)
        r = self.sh("cat /proc/cmdline")
        tokens = r.stdout.split()
        self.check("cgroup tokens on the kernel command line",
                   all(t in tokens for t in ("cgroup_memory=1", "cgroup_enable=memory", "cgroup_enable=cpuset")), r.stdout)
        self.check("no first-boot tokens left", not any(t.startswith(("systemd.run", "systemd.unit")) for t in tokens), r.stdout)
        r = self.sh("grep -qw memory /sys/fs/cgroup/cgroup.controllers")
        self.check("memory cgroup enabled", r.returncode == 0)
        if self.engine != "k3s":
            return  # the engine routes' profiles have no Wi-Fi
        r = self.sh("sudo -n sh -c 'cat /etc/NetworkManager/system-connections/*.nmconnection "
                    "/etc/netplan/*.yaml /run/NetworkManager/system-connections/*.nmconnection' 2>/dev/null")
        text = r.stdout
        if self.route == "firstrun":
            section = text[text.find("id=preconfigured"):]
            fields = dict(line.split("=", 1) for line in section.splitlines() if "=" in line)
            self.check("Wi-Fi SSID byte-exact (NetworkManager keyfile)", nm_ssid(fields.get("ssid", "")) == SSID.encode(), text)
            self.check("Wi-Fi PSK byte-exact", fields.get("psk") == psk_hex(SSID, PASSPHRASE), text)
        elif self.sh("test -d /etc/netplan").returncode == 0:
            self.check("Wi-Fi PSK in the netplan cloud-init rendered", psk_hex(SSID, PASSPHRASE) in text, text[:400])
        else:
            # The test image has no netplan (Pi OS Trixie does), and cloud-init 22.4 renders
            # `wifis` only through netplan: it says so in its log. That line proves the seed's
            # Wi-Fi stanza reached cloud-init; the PSK's bytes are checked on the firstrun route
            # and in the rendered-seed tests.
            r = self.sh("sudo -n grep -c 'Wifi configuration is only available to distros with netplan' "
                        "/var/log/cloud-init.log")
            self.check("Wi-Fi stanza reached cloud-init (no netplan on the test image to render it)",
                       r.stdout.strip() not in ("", "0"), r.stdout + r.stderr)

    def network(self) -> None:
        """The static node's eth0 is configured with a fixed address (NetworkManager's
        connection method manual, whichever route wrote it) and holds it; the others use DHCP."""
        # The gateway is ipv4.gateway in pinode's keyfile (firstrun route) and a default route
        # in cloud-init's own NetworkManager rendering (route1=0.0.0.0/0,GW): the kernel's
        # default route is what both must give.
        r = self.sh("c=$(nmcli -g GENERAL.CONNECTION device show eth0); echo \"$c\"; "
                    "nmcli -g ipv4.method,ipv4.addresses,ipv4.dns connection show \"$c\"; "
                    "ip -4 -o addr show dev eth0; ip -4 route show default dev eth0")
        lines = r.stdout.splitlines()
        if self.name == STATIC_NODE[self.route]:
            self.check("eth0: NetworkManager method manual with the profile's address and DNS, "
                       "the default route via the profile's gateway",
                       lines[1:4] == ["manual", f"{STATIC_ADDRESS}/24", STATIC_DNS]
                       and any(line.startswith(f"default via {STATIC_GATEWAY} ") for line in lines[5:]),
                       r.stdout + r.stderr)
            self.check("eth0 holds the static address (no DHCP lease)",
                       f"inet {STATIC_ADDRESS}/24" in r.stdout and "dynamic" not in (lines[4:5] or [""])[0],
                       r.stdout)
        else:
            self.check("eth0: DHCP (method auto) without a static address", lines[1:2] == ["auto"], r.stdout + r.stderr)

    def cluster(self) -> None:
        if self.engine == "microk8s":
            engines.check_microk8s(self, self.agent_image)
            return
        if self.engine == "kubeadm":
            engines.check_kubeadm(self, self.agent_image, self.state)
            return
        server = self.role != "agent"
        r = self.sh("sudo -n cat /var/lib/pinode-e2e/install.log")
        runs = [parse_record(rec) for rec in r.stdout.split("---") if rec.strip()]
        if not self.check("the K3s installer ran once", len(runs) == 1, r.stdout + r.stderr):
            return
        run_ = runs[0]
        if self.airgap:
            self.airgap_install(run_)
        else:
            self.check("installer version", run_.get("INSTALL_K3S_VERSION") == K3S_VERSION, str(run_))
        self.check("installer role", run_.get("args") == ("server" if server else "agent"), str(run_))
        self.check("installer token file", run_.get("K3S_TOKEN_FILE") == "/etc/pinode/secrets/k3s-token", str(run_))
        self.check("cluster token byte-exact", base64.b64decode(run_.get("token_b64", "")) == self.k3s_token().encode(),
                   str(run_))
        if self.route == "firstrun":
            self.k3s_ca(run_)
        if server:
            self.check("no K3S_URL for a server", "K3S_URL" not in run_, str(run_))
        else:
            self.check("agent joins the API (K3S_URL)", run_.get("K3S_URL") == API, str(run_))
        if not self.airgap:
            posted = [q for q in self.srv.requests() if q["path"] == f"/installed/{self.name}"]
            self.check("the installer reported to the host", len(posted) >= 1)

        r = self.sh("sudo -n stat -c %a /etc/rancher/k3s/config.yaml; sudo -n cat /etc/rancher/k3s/config.yaml")
        mode, _, body = r.stdout.partition("\n")
        try:
            config = json.loads(body)
        except ValueError:
            config = {}
        self.check("config.yaml is root-only", mode.strip() == "600", mode)
        self.check("config.yaml node-name and token-file",
                   config.get("node-name") == self.name and config.get("token-file") == "/etc/pinode/secrets/k3s-token", body)
        if self.role == "founder":
            self.check("config.yaml: cluster-init on the first server", config.get("cluster-init") is True, body)
        if self.role in ("server", "agent"):
            self.check("config.yaml: server is the API", config.get("server") == API, body)
        if self.name == STATIC_NODE[self.route]:
            self.check("config.yaml: node-ip is the static address", config.get("node-ip") == STATIC_ADDRESS, body)
        else:
            self.check("config.yaml: no node-ip without a static address", "node-ip" not in config, body)
        if server:
            sans = config.get("tls-san", [])
            self.check("config.yaml: tls-san has hostname, hostname.local and the VIP",
                       self.name in sans and f"{self.name}.local" in sans and VIP in sans, body)
            if self.name == STATIC_NODE[self.route]:
                self.check("config.yaml: tls-san has the static address", STATIC_ADDRESS in sans, body)
            self.check("config.yaml: extra server args", config.get("disable") == "traefik", body)

        r = self.sh("sudo -n ls /var/lib/rancher/k3s/server/manifests 2>/dev/null")
        manifests = r.stdout.split()
        if self.role == "founder":
            e2e_common.check_ci_on_node(self, "/var/lib/rancher/k3s/server/manifests", runners_of(self.route), True,
                                        {"pinode-kube-vip.yaml"})
            wanted_names = [("Forgejo runner", "code.forgejo.org/forgejo/runner:")]
            if not self.airgap:
                wanted_names += [("Jenkins", "https://charts.jenkins.io"), ("GitHub ARC", "gha-runner-scale-set-controller")]
            for name, wanted in wanted_names:
                r = self.sh(f"sudo -n grep -l -F '{wanted}' /var/lib/rancher/k3s/server/manifests/*.yaml")
                self.check(f"{name}'s manifest names {wanted}", r.returncode == 0, r.stdout + r.stderr)
            r = self.sh("sudo -n cat /var/lib/rancher/k3s/server/manifests/pinode-gitlab-runner.yaml")
            text = r.stdout
            try:
                charts = [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == "HelmChart"]
            except yaml.YAMLError:
                charts = []
            spec = charts[0]["spec"] if charts else {}
            self.check("HelmChart for gitlab-runner with the arm64 node selector",
                       (spec.get("chart") == "gitlab-runner" or "chartContent" in spec)
                       and "kubernetes.io/arch" in spec.get("valuesContent", ""), text[:300])
            if self.airgap:
                for chart, file in (("gitlab-runner", "pinode-gitlab-runner.yaml"), ("jenkins", "pinode-jenkins.yaml")):
                    r = self.sh(f"sudo -n cat /var/lib/rancher/k3s/server/manifests/{file}")
                    try:
                        docs = [d for d in yaml.safe_load_all(r.stdout) if isinstance(d, dict) and d.get("kind") == "HelmChart"]
                        embedded = base64.b64decode(docs[0]["spec"]["chartContent"])
                        repo = docs[0]["spec"].get("repo")
                    except (yaml.YAMLError, IndexError, KeyError, ValueError):
                        embedded, repo = b"", "?"
                    self.check(f"air-gap: {chart}'s HelmChart embeds the served chart (chartContent, no repo)",
                               embedded == self.airgap_files[f"chart {chart}"] and repo is None, r.stdout[:300])
            for deprecated in ("runnerRegistrationToken", "tags", "locked", "runUntagged"):
                self.check(f"no deprecated runner key {deprecated}", deprecated not in text)
            r = self.sh("cat ~/.kube/config; echo ===; sudo -n cat /etc/rancher/k3s/k3s.yaml")
            mine, _, root = r.stdout.partition("===\n")
            self.check("kubeconfig copied for alice (K3s's k3s.yaml)",
                       "client-key-data:" in root and mine == root, r.stdout[:200] + r.stderr)
        else:
            self.check("no runner manifests off the first server; kube-vip on servers only",
                       manifests == (["pinode-kube-vip.yaml"] if server else []), r.stdout)

    def kept_k3s_ca(self) -> Path:
        return self.cluster_dir / "k3s-ca"

    def k3s_token(self) -> str:
        """The token the node must have: with a kept CA (the firstrun route keeps one), the
        full token pinning it, its hash computed here by hashlib over server-ca.crt as stored
        (k3s-io/docs docs/cli/token.md, "Secure"); else the bare secret."""
        ca = self.kept_k3s_ca() / "server-ca.crt"
        if not ca.exists():
            return K3S_TOKEN
        return f"K10{hashlib.sha256(ca.read_bytes()).hexdigest()}::server:{K3S_TOKEN}"

    def k3s_ca(self, run_: dict) -> None:
        """The cluster's CA: on servers, root-only in K3s's TLS directory before K3s started,
        the very files pinode keeps; on agents, nowhere; the token pins it."""
        tls = "/var/lib/rancher/k3s/server/tls"
        kept = self.kept_k3s_ca()
        token = self.k3s_token()
        r = self.sh("sudo -n cat /etc/pinode/secrets/k3s-token")
        self.check("the node's token file pins the kept CA (K10<hashlib over server-ca.crt>::server:...)",
                   token.startswith("K10") and r.stdout == token, r.stderr)
        if self.role == "agent":
            r = self.sh(f"sudo -n ls -d {tls} 2>&1; sudo -n ls /etc/pinode/secrets")
            self.check("no CA files on the agent (no K3s TLS directory, no k3s-ca secret)",
                       "No such file" in r.stdout and "k3s-ca" not in r.stdout, r.stdout)
            return
        files = ["server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key", "request-header-ca.crt",
                 "request-header-ca.key", "etcd/peer-ca.crt", "etcd/peer-ca.key", "etcd/server-ca.crt",
                 "etcd/server-ca.key", "service.key"]
        r = self.sh(f"sudo -n stat -c '%a %U %n' {tls} {tls}/etcd "
                    + " ".join(f"{tls}/{f}" for f in files))
        lines = r.stdout.splitlines()
        self.check("the CA's directories are root-only (700 root)",
                   lines[:2] == [f"700 root {tls}", f"700 root {tls}/etcd"], r.stdout + r.stderr)
        self.check("every CA file is on the server, root-only (600 root)",
                   len(lines) == 2 + len(files) and all(l.startswith("600 root ") for l in lines[2:]),
                   r.stdout + r.stderr)
        r = self.sh(f"sudo -n sha256sum {tls}/server-ca.crt {tls}/etcd/peer-ca.key")
        got = dict(reversed(line.split()) for line in r.stdout.splitlines())
        for name, flat in (("server-ca.crt", "server-ca.crt"), ("etcd/peer-ca.key", "etcd-peer-ca.key")):
            self.check(f"{name} on the server is the kept one",
                       got.get(f"{tls}/{name}") == hashlib.sha256((kept / flat).read_bytes()).hexdigest(), r.stdout)
        r = self.sh(f"sudo -n cat {tls}/server-ca.crt")
        served = hashlib.sha256(r.stdout.encode()).hexdigest()
        self.check("the token's CA hash is hashlib over the server's server-ca.crt", token[3:67] == served,
                   f"{token[3:67]} != {served}")
        self.check("the CA was in place, root-only, when the installer ran (stand-in's record)",
                   run_.get("ca_sha256") == served and run_.get("ca_dir") == "700 root", str(run_))

    def airgap_install(self, run_: dict) -> None:
        """cluster.airgap: K3s installed from the card's files, nothing fetched, the FAT empty of them."""
        self.check("air-gap: the installer ran with INSTALL_K3S_SKIP_DOWNLOAD=true (no version to fetch)",
                   run_.get("INSTALL_K3S_SKIP_DOWNLOAD") == "true" and "INSTALL_K3S_VERSION" not in run_, str(run_))
        files = self.airgap_files
        r = self.sh(f"sudo -n stat -c '%a %U' /usr/local/bin/k3s; sudo -n sha256sum /usr/local/bin/k3s "
                    f"/var/lib/rancher/k3s/agent/images/{AIRGAP_IMAGES} /etc/pinode/k3s-install.sh")
        lines = r.stdout.splitlines()
        sums = {line.split()[1]: line.split()[0] for line in lines[1:] if len(line.split()) == 2}
        self.check("air-gap: /usr/local/bin/k3s is the card's binary, 755 root",
                   lines[:1] == ["755 root"] and sums.get("/usr/local/bin/k3s") == hashlib.sha256(files["k3s-arm64"]).hexdigest(),
                   r.stdout + r.stderr)
        self.check("air-gap: the images archive is in K3s's agent/images",
                   sums.get(f"/var/lib/rancher/k3s/agent/images/{AIRGAP_IMAGES}") == hashlib.sha256(files[AIRGAP_IMAGES]).hexdigest(),
                   r.stdout + r.stderr)
        self.check("air-gap: the installer is the card's, root-only",
                   sums.get("/etc/pinode/k3s-install.sh") == hashlib.sha256(files["install.sh"]).hexdigest(), r.stdout)
        r = self.sh(f"ls -A /boot/firmware/pinode/k3s; if [ -e {AIRGAP_DIR} ]; then echo STILL-THERE; fi")
        self.check("air-gap: the FAT holds none of the release files afterwards",
                   r.returncode == 0 and "STILL-THERE" not in r.stdout and "airgap" not in r.stdout.split(), r.stdout + r.stderr)
        self.check("air-gap: the node asked the host's HTTPS server nothing (no relay)", self.srv.requests() == [],
                   str(self.srv.requests())[:300])

    def secrets(self) -> dict[str, bytes]:
        host_key = self.cluster_dir / "host-keys" / f"{self.name}_ed25519"
        if self.engine != "k3s":
            return {**engines.secrets(self.engine, self.state), "password hash": PASSWORD_HASH.encode(),
                    "private host key": host_key_slice(host_key)}
        return {
            **e2e_common.ci_fat_secrets(runners_of(self.route), github_app=True),
            "cluster token": K3S_TOKEN.encode(),
            "runner token": RUNNER_TOKEN.encode(),
            "Wi-Fi PSK": psk_hex(SSID, PASSPHRASE).encode(),
            "password hash": PASSWORD_HASH.encode(),
            "private host key": host_key_slice(host_key),
            **self.k3s_ca_key_slices(),
        }

    def k3s_ca_key_slices(self) -> dict[str, bytes]:
        """60 characters of every kept K3s CA key (firstrun route), as searched for on the FAT."""
        found = {}
        for key in sorted(self.kept_k3s_ca().glob("*.key")):
            body = "".join(line for line in key.read_text().splitlines() if not line.startswith("-----"))
            found[f"K3s CA key {key.name}"] = body[8:68].encode()
        return found

    def secrets_gone(self) -> None:
        """Not a byte of any secret on the FAT partition: files, freed clusters, anything."""
        secrets = self.secrets()
        self.check("the host key slice searched for is from the private half (not in known_hosts)",
                   secrets["private host key"] not in self.known_hosts.read_bytes(), secrets["private host key"].decode())
        # Searched on the node: moving 256 MiB out of an emulated machine is slow.
        r = self.sh("sudo -n blockdev --getsize64 /dev/vda1")
        self.check("the raw FAT partition is readable", r.returncode == 0 and int(r.stdout.strip() or 0) > 1 << 20, r.stderr)
        # One pass over the partition for every secret at once, plus a string that is there
        # (cmdline.txt's) to show the search works. Patterns go in on stdin.
        runner_secrets = {"runner token", *e2e_common.ci_fat_secrets(runners_of(self.route), github_app=True)}
        wanted = {name: value for name, value in secrets.items() if name not in runner_secrets or self.role == "founder"}
        patterns = [b"cgroup_enable=memory", *wanted.values()]
        r = subprocess.run(self.vm.ssh_argv("alice", self.key, "sudo -n grep -a -o -F -f /dev/stdin /dev/vda1 | sort | uniq -c"),
                           input=b"\n".join(patterns) + b"\n", capture_output=True, timeout=600)
        found = r.stdout
        self.check("the search finds what is there (cmdline.txt)", b"cgroup_enable=memory" in found, found.decode(errors="replace"))
        for name, value in wanted.items():
            self.check(f"no {name} anywhere on the FAT partition", value not in found)
        r = self.sh("ls /boot/firmware /boot/firmware/pinode")
        self.check("no secret files on the boot partition",
                   all(x not in r.stdout.split() for x in ("firstrun.sh", "userconf.txt", "secrets")), r.stdout)
        r = self.sh("sudo -n stat -c '%a %U' /etc/pinode/secrets; sudo -n find /etc/pinode/secrets -type f "
                    "-exec stat -c '%a %U %n' {} +")
        lines = r.stdout.splitlines()
        self.check("the secrets live root-only on the node (/etc/pinode/secrets 700, every file 600)",
                   lines[:1] == ["700 root"] and len(lines) > 1 and all(l.startswith("600 root ") for l in lines[1:]),
                   r.stdout + r.stderr)

    def status(self) -> None:
        r = self.sh("cat /boot/firmware/pinode-status.txt")
        first = "firstrun: ok" if self.route in ("firstrun", "kubeadm") else "cloud-init: done"
        self.check(f"status file: {first}", first in r.stdout, r.stdout)
        self.check(f"status file: {self.engine} ok", f"{self.engine} (" in r.stdout and "): ok" in r.stdout, r.stdout)
        # /var/lib/pinode/status.json, what `pinode status` reads.
        r = self.sh(f"sudo -n stat -c '%a %U' {STATE_DIR}; sudo -n stat -c '%a %U' {STATUS_JSON}")
        modes = r.stdout.splitlines()
        self.check(f"{STATE_DIR} is 700 root", modes[:1] == ["700 root"], r.stdout + r.stderr)
        self.check("status.json is 644 root", modes[1:2] == ["644 root"], r.stdout + r.stderr)
        r = self.sh(f"sudo -n cat {STATUS_JSON}")
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            doc = None
        self.check("status.json parses as JSON with FirstBootStatus's keys",
                   isinstance(doc, dict) and set(doc) == FIRST_BOOT_KEYS, r.stdout + r.stderr)
        doc = doc if isinstance(doc, dict) else {}
        self.check("status.json: stage firstboot, state ok, no error",
                   (doc.get("version"), doc.get("stage"), doc.get("state"), doc.get("last_error"), doc.get("reason"))
                   == (1, "firstboot", "ok", None, None) and bool(doc.get("started")) and bool(doc.get("finished")),
                   r.stdout)
        found = [name for name, value in self.secrets().items() if value in r.stdout.encode()]
        self.check("status.json holds no secret", bool(r.stdout) and not found, ", ".join(found))
        # The second stage measures the root device's write speed once (64 MiB, O_DIRECT, fsync).
        speed = doc.get("root_write_bytes_per_second")
        self.check("status.json: the root device's measured write speed (bytes/s)",
                   isinstance(speed, int) and not isinstance(speed, bool) and speed > 0, r.stdout)
        r = self.sh("cat /boot/firmware/pinode-status.txt; sudo -n ls /var/lib/pinode")
        self.check("status file: the root write speed; no probe file left in /var/lib/pinode",
                   "root file system write speed: " in r.stdout and "write-speed." not in r.stdout, r.stdout)

    def run_status(self, json_output: bool) -> tuple[subprocess.CompletedProcess, dict, dict]:
        """The real `pinode status` for this node alone, through its forwarded SSH port, with
        pinode's known_hosts and the test key in an ssh-agent, printed for the log; with
        `json_output`, also the report and this node's entry ({} when it does not parse)."""
        argv = [self.pinode, "status", "--profile", self.profile, "--node", self.name,
                "--address", f"{self.name}={self.address}", *(["--json"] if json_output else [])]
        r = run(argv, capture_output=True, text=True, env=self.env, timeout=180)
        shown = "pinode status --json" if json_output else "pinode status"
        print(f"  {self.label}: {shown} (exit {r.returncode}):\n" + r.stdout + r.stderr, end="", flush=True)
        report, node = {}, {}
        if json_output:
            try:
                report = json.loads(r.stdout)
                node = report["nodes"][0]
            except (ValueError, KeyError, IndexError, TypeError):
                report, node = {}, {}
        return r, report, node

    @property
    def address(self) -> str:
        """The node's forwarded SSH port, as `--address` takes it."""
        return f"127.0.0.1:{self.vm.ssh_port}"

    def pinode_status(self) -> None:
        """The real `pinode status` against this node through its forwarded SSH port, with
        pinode's known_hosts (strict) and the test key from an ssh-agent, as a user runs it.
        The K3s installer is a stand-in: its stand-in `k3s` on servers lists the node Ready;
        an agent has no cluster view of its own (installed, running); the founder's runner is not
        running (no real chart), so only the second server is done (exit 0), the others exit 3."""
        want_state, want_line = ("installed", "installed, running") if self.role == "agent" else ("ready", "node Ready")
        want_rc = 0 if self.role == "server" else 3
        r, report, node = self.run_status(json_output=True)
        self.check(f"pinode status --json exits {want_rc}", r.returncode == want_rc, r.stderr)
        self.check(f"pinode status --json: state {want_state}, no reason",
                   node.get("state") == want_state and "reason" not in node, json.dumps(node))
        self.check("pinode status --json: this node, its address, role and runner",
                   report.get("cluster") == "e2e" and len(report.get("nodes", [])) == 1 and node.get("host") == self.name
                   and node.get("address") == self.address
                   and node.get("role") == ("agent" if self.role == "agent" else "server")
                   and node.get("runner") is (self.role == "founder")
                   and report.get("ready") is (want_rc == 0) and report.get("failed") is False, json.dumps(report))
        first_boot = node.get("first_boot") or {}
        self.check("pinode status --json: first_boot stage firstboot, state ok, no reason",
                   set(first_boot) == FIRST_BOOT_KEYS and first_boot.get("stage") == "firstboot"
                   and first_boot.get("state") == "ok" and first_boot.get("reason") is None
                   and first_boot.get("last_error") is None, json.dumps(first_boot))
        speed = first_boot.get("root_write_bytes_per_second")
        self.check("pinode status --json: first_boot has the measured root write speed",
                   isinstance(speed, int) and not isinstance(speed, bool) and speed > 0, json.dumps(first_boot))
        r, _, _ = self.run_status(json_output=False)
        self.check(f"pinode status: '{self.name}: {want_line}', exit {want_rc}",
                   r.returncode == want_rc and r.stdout.startswith(f"{self.name}: {want_line}"), r.stdout + r.stderr)
        self.check("pinode status: the root device's write speed", "root device writes at " in r.stdout, r.stdout)

    def kubeconfig(self) -> None:
        """The real `pinode kubeconfig --merge` against the founder through its forwarded
        port, into a kubeconfig that holds two other contexts, read back with kubectl (a real
        kubeconfig reader): the others unchanged, the new context at the profile's API with
        the node's own CA and admin certificate, 0600, and a second run changes nothing."""
        kubectl = shutil.which("kubectl")
        if not self.check("kubectl is installed (Debian's kubernetes-client, .ci/run)", kubectl is not None):
            return
        config = self.work / "kubeconfig"
        config.write_text(OTHER_KUBECONFIG)
        config.chmod(0o600)

        def view() -> dict:
            r = run([kubectl, "config", "view", "--raw", "-o", "json"], capture_output=True, text=True,
                    env=dict(os.environ, KUBECONFIG=str(config)))
            try:
                return json.loads(r.stdout) if r.returncode == 0 else {}
            except ValueError:
                return {}

        def named(doc: dict, kind: str, names: tuple) -> list:
            return [e for e in doc.get(kind) or [] if e.get("name") in names]

        others = {kind: named(view(), kind, ("prod", "dev", "prod-admin", "dev-user"))
                  for kind in ("clusters", "contexts", "users")}
        argv = [self.pinode, "kubeconfig", "--profile", self.profile, "--merge",
                "--address", f"{self.name}={self.address}"]
        env = dict(self.env, KUBECONFIG=str(config))
        r = run(argv, capture_output=True, text=True, env=env, timeout=180)
        print(f"  {self.label}: pinode kubeconfig --merge (exit {r.returncode}):\n" + r.stdout + r.stderr, end="", flush=True)
        self.check("pinode kubeconfig --merge exits 0", r.returncode == 0, r.stderr)
        after = view()
        self.check("kubectl reads the merged kubeconfig; the other two contexts are unchanged, current-context kept",
                   bool(after) and all(named(after, kind, ("prod", "dev", "prod-admin", "dev-user")) == entries
                                       for kind, entries in others.items()) and after.get("current-context") == "prod",
                   json.dumps(after)[:1500])
        source = {"k3s": "cat /etc/rancher/k3s/k3s.yaml", "microk8s": "microk8s config",
                  "kubeadm": "cat /etc/kubernetes/admin.conf"}[self.engine]
        node = self.sh(f"sudo -n {source}").stdout
        ca = next((l.split(":", 1)[1].strip() for l in node.splitlines() if "certificate-authority-data:" in l), "?")
        cert = next((l.split(":", 1)[1].strip() for l in node.splitlines() if "client-certificate-data:" in l), "?")
        cluster = (named(after, "clusters", ("e2e",)) or [{}])[0].get("cluster", {})
        context = (named(after, "contexts", ("e2e",)) or [{}])[0].get("context", {})
        user = (named(after, "users", ("e2e",)) or [{}])[0].get("user", {})
        self.check("the new context e2e: the profile's API, the node's CA and admin certificate",
                   cluster.get("server") == self.api and cluster.get("certificate-authority-data") == ca
                   and context == {"cluster": "e2e", "user": "e2e"} and user.get("client-certificate-data") == cert,
                   json.dumps([cluster.get("server"), context, sorted(user)]))
        self.check("the merged kubeconfig is 0600", config.stat().st_mode & 0o777 == 0o600, oct(config.stat().st_mode))
        first = config.read_bytes()
        r = run(argv, capture_output=True, text=True, env=env, timeout=180)
        self.check("a second pinode kubeconfig --merge changes nothing", r.returncode == 0 and config.read_bytes() == first,
                   r.stderr)

    def first_boot_failed(self) -> None:
        """A node whose install URL answers 404 (its HTTPS server serves no installer): the
        first boot fails after its retries, status.json and the FAT's text file say so, and
        `pinode status` shows "first boot failed" with the reason line of the node's own log
        and exits 1."""
        r = self.sh("systemctl is-failed pinode-firstboot.service")
        self.check("pinode-firstboot.service failed", r.stdout.strip() == "failed", r.stdout)
        r = self.sh(f"sudo -n cat {STATUS_JSON}")
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            doc = {}
        reason = doc.get("reason") or ""
        self.check("status.json: state failed at k3s install, curl's 404 as the reason",
                   doc.get("state") == "failed" and doc.get("last_error") == "k3s install"
                   and f"cannot download the K3s installer from {INSTALL_URL}: curl: (22)" in reason
                   and "404" in reason and reason.endswith("(gave up after 6 attempts)"), r.stdout + r.stderr)
        r = self.sh("sudo -n cat /var/log/pinode-firstboot.log")
        marker = " pinode firstboot: "
        lines = [line.split(marker, 1)[1] for line in r.stdout.splitlines() if marker in line]
        gave_up = [line for line in lines if line.endswith("attempts)")]
        log_reason = gave_up[-1] if gave_up else None
        self.check("the node's log has the reason line, and it is status.json's", log_reason == reason,
                   "\n".join(lines[-8:]))
        r = self.sh("cat /boot/firmware/pinode-status.txt")
        self.check("status file: k3s failed at k3s install", "failed: k3s install (the next boot tries again)" in r.stdout,
                   r.stdout)
        r, report, node = self.run_status(json_output=True)
        self.check("pinode status --json exits 1", r.returncode == 1, r.stderr)
        self.check("pinode status --json: first_boot_failed at k3s install, the log's reason line, its last lines",
                   node.get("state") == "first_boot_failed" and node.get("step") == "k3s install"
                   and node.get("reason") == log_reason and bool(log_reason)
                   and any(log_reason in line for line in node.get("log_tail", []))
                   and report.get("failed") is True and report.get("ready") is False, json.dumps(report))
        r, _, _ = self.run_status(json_output=False)
        self.check("pinode status: 'first boot failed at k3s install: REASON', exit 1",
                   r.returncode == 1 and r.stdout.startswith(f"{self.name}: first boot failed at k3s install: {log_reason}"),
                   r.stdout + r.stderr)

    def second_boot(self) -> None:
        with Phase(f"{self.label}: second boot"):
            before = self.sh("sudo -n wc -l < /var/log/pinode-firstboot.log").stdout.strip()
            ok = self.vm.reboot_and_wait("alice", self.key, timeout=900)
            self.check("reboots and SSH comes back", ok)
            time.sleep(20)
            r = self.sh("sudo -n grep -c '^args=' /var/lib/pinode-e2e/install.log")
            self.check("second boot: the installer did not run again", r.stdout.strip() == "1", r.stdout)
            r = self.sh("systemctl show -p ConditionResult --value pinode-firstboot.service")
            self.check("second boot: pinode-firstboot skipped by its done-marker", r.stdout.strip() == "no", r.stdout)
            r = self.sh("sudo -n grep -c 'firstrun' /var/log/pinode-firstboot.log; hostname")
            self.check("second boot: nothing else ran either", r.stdout.split()[-1] == self.name, r.stdout)
            after = self.sh("sudo -n wc -l < /var/log/pinode-firstboot.log").stdout.strip()
            self.check("second boot: the first-boot log did not grow", before == after, f"{before} -> {after}")


# The routes: K3s on both first-boot routes, and one per further distribution.
ROUTES = ["firstrun", "cloud-init", "microk8s", "kubeadm"]
IMAGES = {"firstrun": "firstrun.img", "cloud-init": "cloud-init.img", **engines.IMAGES}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("PINODE_E2E_WORK", "/var/tmp/pinode-e2e")))
    ap.add_argument("--pinode", type=Path, default=REPO / "target" / "release" / "pinode")
    ap.add_argument("--route", choices=ROUTES, action="append", help="default: all of them")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for SSH per node")
    ap.add_argument("--jobs", type=int, default=2, help="nodes booted at the same time (default 2)")
    ap.add_argument("--skip-build", action="store_true", help="reuse WORK/base as it is")
    ap.add_argument("--only", action="append", metavar="NODE", help="boot only these nodes (for development)")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    if not args.pinode.exists():
        print(f"error: {args.pinode} missing: run cargo build --release", file=sys.stderr)
        return 1

    base = work / "base"
    if not args.skip_build:
        with Phase("build base images (cached rootfs)"):
            r = run(["bash", HERE / "build-base-image.sh", base])
            if not checks.check("build-base-image.sh exits 0", r.returncode == 0):
                return 1

    key = work / "id_ed25519"
    for p in (key, key.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e@pinode", "-f", key], check=True)

    www = work / "www"
    shutil.rmtree(www, ignore_errors=True)
    www.mkdir()
    (www / "k3s-install.sh").write_text(FAKE_INSTALLER)
    # The engine routes' stand-in apt repositories (pkgs.k8s.io's layout) and CNI manifest.
    standins.build_apt_repositories(www, work / "gnupg")
    # The broken node's server: no installer, so the install URL answers 404.
    www_broken = work / "www-broken"
    shutil.rmtree(www_broken, ignore_errors=True)
    www_broken.mkdir()
    # SOURCE_DATE_EPOCH: the FAT timestamps of the files pinode writes, so that the card `flash`
    # writes and the image `prepare` wrote minutes earlier can be compared file by file.
    env = dict(os.environ, **e2e_common.CI_ENV, E2E_K3S_TOKEN=K3S_TOKEN, E2E_RUNNER_TOKEN=RUNNER_TOKEN, E2E_WIFI_PSK=PASSPHRASE, CI="true",
               E2E_MICROK8S_TOKEN=engines.MICROK8S_TOKEN, E2E_KUBEADM_TOKEN=engines.KUBEADM_TOKEN,
               SOURCE_DATE_EPOCH=str(int(time.time())))
    # pinode's state directory (host keys, known_hosts) per route, fresh each run: each route's
    # nodes get keys of their own, and nothing of the invoking user's ~/.local/state is used.
    envs = {route: dict(env, PINODE_STATE_DIR=str(work / route / "state")) for route in ROUTES}
    # The air-gap route's release: served from 127.0.0.1 to `pinode prepare` (into its cache,
    # through the test CA), never to the node.
    airgap_www = work / "www-airgap"
    shutil.rmtree(airgap_www, ignore_errors=True)
    airgap_files = airgap_release(airgap_www)
    shutil.rmtree(work / "https-airgap", ignore_errors=True)  # its request log: this run's only
    airgap_srv = HttpsServer(airgap_www, work / "https-airgap", base / "test-ca.pem", base / "test-ca.key").start()
    envs[AIRGAP_ROUTE].update(SSL_CERT_FILE=str(base / "test-ca.pem"), PINODE_CACHE_DIR=str(work / AIRGAP_ROUTE / "cache"))

    # Longest first, so that two lanes end at about the same time.
    plan = {
        "firstrun": [("e2e-1", "founder"), ("e2e-agent", "agent"), ("e2e-2", "server"), ("e2e-3", "broken")],
        "cloud-init": [("e2e-1", "founder")],
        # The engine routes boot their founder; their agent is prepared (its card is read).
        **{route: [(nodes[0], "founder")] for route, nodes in engines.NODES.items()},
    }
    jobs = []
    for route in args.route or ROUTES:
        rdir = work / route
        shutil.rmtree(rdir, ignore_errors=True)
        (rdir / "out").mkdir(parents=True)
        profile_path = rdir / "profile.yaml"
        doc = engines.profile(key.with_suffix(".pub"), route) if route in engines.NODES else profile(key.with_suffix(".pub"), route)
        if route == AIRGAP_ROUTE:
            doc["cluster"]["airgap"] = True
            doc["cluster"]["runner"] = [dict(r, **({"chart_repo": f"https://127.0.0.1:{airgap_srv.port}/charts"}
                                                   if r["kind"] in ("gitlab", "jenkins") else {}))
                                        for r in e2e_common.ci_runners(key.parent, AIRGAP_RUNNERS, github_app=True)]
            doc["cluster"]["k3s"].update(release_url=f"https://127.0.0.1:{airgap_srv.port}/releases",
                                         install_url=f"https://127.0.0.1:{airgap_srv.port}/install.sh")
        profile_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        plan[route] = [(n, r) for n, r in plan[route] if not args.only or n in args.only]
        names = [n for n, _ in plan[route]]
        if not names:
            continue
        if route in ("kubeadm", "firstrun"):
            # Under CI pinode never generates a cluster CA (a throw-away machine would make a
            # new one every run): it is made once where the state is kept, as pinode's error
            # advises, by a run without CI; the prepare below, under CI, uses the kept one.
            # (K3s: the firstrun route keeps one, so its nodes pin it; the cloud-init route
            # keeps none and its nodes get the bare token, as CI without a kept CA does.)
            with Phase(f"{route}: the cluster PKI, made once outside CI (pinode render)"):
                r = run([args.pinode, "render", "--profile", profile_path, "--node", names[0], "--generation",
                         "bookworm", "--out-dir", rdir / "render"], capture_output=True, text=True,
                        env=dict(envs[route], CI="false"))
                checks.check(f"{route}: pinode render (not CI) keeps the cluster PKI",
                             r.returncode == 0 and any((rdir / "state").glob("clusters/e2e/*/*ca.key")), r.stderr)
        with Phase(f"{route}: pinode prepare {' '.join(names)}"):
            prepared = names + [n for n in engines.NODES.get(route, ())[1:] if n not in names]
            argv = [args.pinode, "prepare", "--profile", profile_path, "--image", base / IMAGES[route],
                    "--out-dir", rdir / "out"] + [a for n in prepared for a in ("--node", n)]
            r = run(argv, capture_output=True, text=True, env=envs[route])
            print(r.stdout + r.stderr, end="")
            if not checks.check(f"{route}: pinode prepare exits 0", r.returncode == 0, r.stderr):
                continue
        if route == AIRGAP_ROUTE:
            asked = sorted(q["path"] for q in airgap_srv.requests())
            tag = K3S_VERSION.replace("+", "%2B")
            releases = sorted(p for p in asked if not p.startswith("/charts/"))
            checks.check(f"{route}: air-gap: prepare fetched each release file once (tag URL-encoded)",
                         releases == sorted([f"/releases/{tag}/{n}" for n in ("k3s-arm64", AIRGAP_IMAGES, "sha256sum-arm64.txt")]
                                            + ["/install.sh"]), str(asked))
            # The index is read once per runner that names the repository, each archive once.
            chart_paths = [p for p in asked if p.startswith("/charts/")]
            checks.check(f"{route}: air-gap: prepare read the chart repository's index and each chart's archive once",
                         set(chart_paths) == {"/charts/index.yaml", *(f"/charts/{c}-{v}.tgz" for c, v in AIRGAP_CHARTS.items())}
                         and all(chart_paths.count(f"/charts/{c}-{v}.tgz") == 1 for c, v in AIRGAP_CHARTS.items()),
                         str(asked))
            cached = work / route / "cache" / "releases" / "k3s" / K3S_VERSION
            release_files = {n: b for n, b in airgap_files.items() if not n.startswith("chart ")}
            checks.check(f"{route}: air-gap: the release files are in pinode's cache, verified",
                         all((cached / n).is_file() and (cached / n).read_bytes() == b for n, b in release_files.items()),
                         str(sorted(p.name for p in cached.glob("*"))))
        known = known_hosts_entries(rdir / "state" / "clusters" / "e2e" / "known_hosts")
        checks.check(f"{route}: pinode's known_hosts names every node prepared (HOST and HOST.local)",
                     all(n in known and known.get(f"{n}.local") == known[n] for n in names), str(known))
        jobs += [(route, name, role) for name, role in plan[route]]
    airgap_srv.stop()
    # The broken node spends five minutes in its retries, idle: it starts early.
    jobs.sort(key=lambda job: ["founder", "broken", "agent", "server"].index(job[2]))

    def flash_card(route: str, name: str, ndir: Path) -> Path | None:
        backing = ndir / "card.bin"
        prepared = work / route / "out" / f"{name}.img"
        size = prepared.stat().st_size
        # Random bytes throughout, so that any block the allocation-aware write wrongly skips
        # holds garbage, and the checks below or the boot fail.
        with open(backing, "wb") as f:
            for _ in range((size >> 20) + 256):
                f.write(os.urandom(1 << 20))
        dev = run(["losetup", "-f", "--show", backing], capture_output=True, text=True, check=True).stdout.strip()
        with Phase(f"{route}/{name}: pinode flash to {dev}"):
            argv = [args.pinode, "flash", "--profile", work / route / "profile.yaml", "--image", base / IMAGES[route],
                    "--node", name, "--device", dev, "--yes", "--allow-non-removable", "--json"]
            r = run(argv, capture_output=True, text=True, env=envs[route])
            ok = r.returncode == 0
            try:
                report = json.loads(r.stdout)["nodes"][0]["report"]
                verified = ok and report["verified"] is True
            except (ValueError, KeyError, IndexError, TypeError):
                report, verified = {}, False
            checks.check(f"{route}/{name}: pinode flash writes and verifies the card", ok and verified,
                         r.stderr + r.stdout[-2000:])
            written = report.get("bytes", size)
            checks.check(f"{route}/{name}: only the blocks in use were written ({written >> 20} of {size >> 20} MiB)",
                         report.get("allocation_aware") is True and written < size * 0.8, json.dumps(report))
        if not (ok and verified):
            run(["losetup", "-d", dev])
            return None
        with Phase(f"{route}/{name}: the card's file systems against the prepared image"):
            same_filesystems(f"{route}/{name}", Path(dev), prepared)
        return Path(dev)

    def same_filesystems(label: str, card: Path, prepared: Path) -> None:
        """fsck both file systems on the card, and compare every file (metadata and contents)
        with the prepared image of the same node, through read-only loop devices at the
        partitions' offsets (this kernel has no partition support for loop devices)."""
        table = json.loads(run(["sfdisk", "-J", prepared], capture_output=True, text=True, check=True).stdout)
        parts = table["partitiontable"]["partitions"]
        for index, (kind, fsck) in enumerate([("fat", ["fsck.fat", "-n"]), ("ext4", ["e2fsck", "-fn"])]):
            offset, length = parts[index]["start"] * 512, parts[index]["size"] * 512
            loops = []
            try:
                for source in (card, prepared):
                    loops.append(run(["losetup", "-r", "-f", "--show", "-o", str(offset), "--sizelimit", str(length),
                                      source], capture_output=True, text=True, check=True).stdout.strip())
                r = run(fsck + [loops[0]], capture_output=True, text=True)
                checks.check(f"{label}: {fsck[0]} {fsck[1]} on the card's {kind} partition is clean",
                             r.returncode == 0, r.stdout[-2000:] + r.stderr[-1000:])
                manifests = []
                for loop in loops:
                    m = run(["python3", HERE.parent / "tools" / "fsmanifest.py", kind, loop,
                             r"pinode-[a-z0-9-]+-[0-9a-f]{12}"], capture_output=True, text=True)
                    manifests.append(m.stdout if m.returncode == 0 else f"failed: {m.stderr}")
                expected = set(manifests[1].splitlines())
                differ = [line for line in manifests[0].splitlines() if line not in expected]
                checks.check(f"{label}: every file on the card's {kind} partition equals the prepared image's "
                             f"({len(manifests[1].splitlines())} manifest lines)",
                             manifests[0] == manifests[1] and not manifests[0].startswith("failed"),
                             "\n".join(differ[:20]) or manifests[0][:500])
            finally:
                for loop in loops:
                    run(["losetup", "-d", loop])

    def boot_and_check(route: str, name: str, role: str) -> None:
        ndir = work / route / name
        ndir.mkdir()
        image = ndir / "node.img"
        card = None
        if route == "firstrun" and role == "agent":
            # This node boots from a card `pinode flash` wrote: a loop device bigger than the
            # image, as cards are, and QEMU boots the device itself.
            card = flash_card(route, name, ndir)
            if card is None:
                return
            image = card
        else:
            run(["cp", "--sparse=always", work / route / "out" / f"{name}.img", image], check=True)
        srv = HttpsServer(www_broken if role == "broken" else www, ndir / "https", base / "test-ca.pem",
                          base / "test-ca.key").start()
        node = Node(name, role, route, image, ndir, srv, key, checks, args.timeout, args.pinode.resolve(),
                    work / route / "profile.yaml", work / route / "state", dict(envs[route], SSH_AUTH_SOCK=agent_sock))
        if route in engines.NODES:
            node.agent_image = work / route / "out" / f"{engines.NODES[route][1]}.img"
        node.airgap_files = airgap_files
        failed_before = checks.failed_for(node.label)
        try:
            if role == "broken" and node.boot():
                with Phase(f"{node.label}: checks"):
                    node.host_keys()
                    node.secrets_gone()
                    node.first_boot_failed()
            elif role != "broken" and node.boot():
                with Phase(f"{node.label}: checks"):
                    node.host_keys()
                    node.identity()
                    node.network()
                    node.cluster()
                    node.secrets_gone()
                    node.status()
                    node.pinode_status()
                    if role == "founder":
                        node.kubeconfig()
                if route == "firstrun" and role == "founder":
                    node.second_boot()
        except Exception as e:  # report, then go on with the next node
            node.check("ran without an exception", False, repr(e))
        finally:
            node.vm.stop()
            srv.stop()
            if card is not None:
                run(["losetup", "-d", card])
            if checks.failed_for(node.label) > failed_before:
                print(f"  {node.label}: serial log excerpt:\n" + serial_excerpt(node.vm), flush=True)

    # The nodes are independent (the installer is a stand-in, so nobody joins anybody), and an
    # emulated boot is mostly single-threaded work: two at a time nearly halve the wall time
    # on two cores.
    # `pinode status` logs in with the user's own credentials (ssh-agent or ~/.ssh, as root's
    # home here): the test key goes into an ssh-agent of this run's own, stopped by its PID.
    agent_dir = Path(tempfile.mkdtemp(prefix="pinode-e2e-agent-"))
    agent_sock = str(agent_dir / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", agent_sock], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(agent_sock) or agent.poll() is not None:
                break
            time.sleep(0.1)
        r = run(["ssh-add", key], capture_output=True, text=True, env=dict(os.environ, SSH_AUTH_SOCK=agent_sock))
        checks.check("the test key is in an ssh-agent for pinode status", r.returncode == 0, r.stderr)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for future in [pool.submit(boot_and_check, *job) for job in jobs]:
                future.result()
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        shutil.rmtree(agent_dir, ignore_errors=True)

    print("\ntimings:")
    for name, took in TIMINGS:
        print(f"  {name:55s} {took:7.1f}s")
    print(f"  {'total':55s} {time.monotonic() - T0:7.1f}s")
    print(f"\n{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
