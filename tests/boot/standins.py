"""STAND-INS for the boot test's MicroK8s and kubeadm nodes: what cannot be downloaded here.

Real Kubernetes packages (pkgs.k8s.io), CRI-O, snapd and the MicroK8s snap need the internet,
which the boot test does not have. In their place:

- `build_apt_repositories(www, gnupg_home)`: two signed apt repositories laid out like
  pkgs.k8s.io's flat repositories (`deb [signed-by=KEY] https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /`
  and `.../addons:/cri-o:/stable:/v1.33/deb/`), served by the test's HTTPS server, holding
  stand-in packages `kubelet`, `kubeadm`, `kubectl`, `cri-tools`, `kubernetes-cni` and `cri-o`
  (arm64, the versions below). Each package records its installation (postinst) and each
  command records how it was called, with the contents of any `--config` file, in
  /var/lib/pinode-e2e/ on the node and by POSTing to the host.
- `SNAP`: a stand-in `snap` for the Ubuntu-shaped image: it records `snap install microk8s ...`
  with the launch configuration it found at install time, and leaves a stand-in
  `/snap/bin/microk8s` that records every call.

Every stand-in says it is one, in its package description and its first comment line. The
commands answer only what pinode's first boot and `pinode status` / `pinode kubeconfig` ask:
`kubectl get nodes -o json` lists this node as Ready (the API's own shape), a kubeconfig is made
with openssl (signed by the cluster CA pinode placed in /etc/kubernetes/pki when there is one).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

K8S_VERSION = "1.33.5-1.1"       # pkgs.k8s.io's version form: upstream version, -1.1 revision
CRIO_VERSION = "1.33.4-1.1"
TOOLS_VERSION = "1.33.0-1.1"     # cri-tools
CNI_VERSION = "1.6.0-1.1"        # kubernetes-cni
CORE_PATH = "core:/stable:/v1.33/deb"
CRIO_PATH = "addons:/cri-o:/stable:/v1.33/deb"
FLANNEL_PATH = "flannel/v0.27.4/kube-flannel.yml"

# Shell shared by every stand-in: a record appended on the node and POSTed to the host.
RECORD = r"""
record() { # record NAME: stdin is appended to /var/lib/pinode-e2e/NAME.log and POSTed to the host
	mkdir -p /var/lib/pinode-e2e
	rec=$(cat)
	printf '%s\n---\n' "$rec" >>"/var/lib/pinode-e2e/$1.log"
	printf '%s\n' "$rec" | curl -sS --max-time 20 -X POST --data-binary @- "https://10.0.2.100/record/$1/$(hostname)" >/dev/null 2>&1 || true
}
"""

# A List of core/v1 Nodes as kubectl prints it, this node Ready.
NODES_JSON = r"""
nodes_json() {
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
                "creationTimestamp": "$now",
                "labels": {"kubernetes.io/arch": "arm64", "kubernetes.io/hostname": "$node", "kubernetes.io/os": "linux"},
                "name": "$node",
                "resourceVersion": "1",
                "uid": "00000000-0000-4000-8000-000000000000"
            },
            "status": {
                "conditions": [
                    {"lastHeartbeatTime": "$now", "lastTransitionTime": "$now",
                     "message": "kubelet is posting ready status", "reason": "KubeletReady",
                     "status": "True", "type": "Ready"}
                ],
                "nodeInfo": {"architecture": "arm64", "kubeletVersion": "v1.33.5", "operatingSystem": "linux"}
            }
        }
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
}
EOF
}
"""

# make_kubeconfig OUT SERVER [CA_CRT CA_KEY]: an admin kubeconfig as the distributions write
# them, its client certificate signed by the given CA (else by one made here).
MAKE_KUBECONFIG = r"""
make_kubeconfig() {
	out=$1 server=$2 ca_crt=${3:-} ca_key=${4:-}
	pki=$(mktemp -d)
	ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
	if [ -z "$ca_crt" ] || [ ! -f "$ca_crt" ] || [ ! -f "$ca_key" ]; then
		# shellcheck disable=SC2086
		openssl req -x509 $ec -days 2 -subj "/CN=stand-in-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
		ca_crt=$pki/ca.crt ca_key=$pki/ca.key
	fi
	# shellcheck disable=SC2086
	openssl req -new $ec -subj "/O=system:masters/CN=kubernetes-admin" -keyout "$pki/admin.key" -out "$pki/admin.csr" 2>/dev/null
	openssl x509 -req -in "$pki/admin.csr" -CA "$ca_crt" -CAkey "$ca_key" -CAcreateserial -CAserial "$pki/ca.srl" -days 2 \
		-out "$pki/admin.crt" 2>/dev/null
	mkdir -p "$(dirname "$out")"
	(umask 077 && cat >"$out" <<KUBECONFIG
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(base64 -w 0 "$ca_crt")
    server: $server
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: $(base64 -w 0 "$pki/admin.crt")
    client-key-data: $(base64 -w 0 "$pki/admin.key")
KUBECONFIG
	)
	rm -rf "$pki"
}
"""

# kubectl's arguments after its global flags; "apply" records what it applied.
KUBECTL_BODY = r"""
while [ "$#" -gt 0 ]; do
	case "$1" in
	--kubeconfig | -n | --namespace | --request-timeout | --context) shift 2 ;;
	--kubeconfig=* | --namespace=* | --request-timeout=* | --context=*) shift ;;
	*) break ;;
	esac
done
case "$*" in
"get nodes -o json"*)
	nodes_json
	exit 0
	;;
get\ deployment* | get\ deploy*)
	echo 'Error from server (NotFound): deployments.apps "gitlab-runner" not found (stand-in)' >&2
	exit 1
	;;
apply*)
	{
		printf 'args=%s\n' "$*"
		files=''
		for a in "$@"; do
			if [ -d "$a" ]; then
				for f in "$a"/*; do
					[ -f "$f" ] && files="$files $f"
				done
			elif [ -f "$a" ]; then
				files="$files $a"
			fi
		done
		printf 'files=%s\n' "$files"
	} | record kubectl-apply
	echo "applied (stand-in)"
	exit 0
	;;
esac
printf 'args=%s\n' "$*" | record kubectl
exit 0
"""

KUBECTL = "#!/bin/sh\n# A STAND-IN for kubectl (pinode e2e boot test; real Kubernetes cannot be downloaded there).\nset -u\n" \
    + RECORD + NODES_JSON + KUBECTL_BODY

KUBEADM = "#!/bin/sh\n# A STAND-IN for kubeadm (pinode e2e boot test; real Kubernetes cannot be downloaded there).\nset -u\n" \
    + RECORD + MAKE_KUBECONFIG + r"""
config=''
prev=''
for a in "$@"; do
	case "$a" in --config=*) config=${a#--config=} ;; esac
	[ "$prev" = --config ] && config=$a
	prev=$a
done
{
	printf 'args=%s\n' "$*"
	if [ -n "$config" ]; then
		printf 'config_path=%s\n' "$config"
		printf 'config_b64=%s\n' "$(base64 -w 0 "$config" 2>/dev/null)"
	fi
	printf 'pki=%s\n' "$(cd /etc/kubernetes/pki 2>/dev/null && find . -type f | sort | tr '\n' ' ')"
	if [ -f /etc/kubernetes/pki/ca.crt ]; then
		printf 'ca_hash=sha256:%s\n' "$(openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)"
	fi
	printf 'swap=%s\n' "$(swapon --show --noheadings 2>/dev/null | wc -l)"
	printf 'crio=%s\n' "$(systemctl is-active crio.service 2>/dev/null)"
} | record kubeadm
case "${1:-}" in
version)
	case "$*" in
	*short*) echo v1.33.5 ;;
	*) echo "kubeadm version: &version.Info{Major:\"1\", Minor:\"33\", GitVersion:\"v1.33.5\"} (stand-in)" ;;
	esac
	;;
init)
	make_kubeconfig /etc/kubernetes/admin.conf https://127.0.0.1:6443 /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/ca.key
	cp /etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf
	: >/etc/kubernetes/kubelet.conf
	;;
join) mkdir -p /etc/kubernetes && : >/etc/kubernetes/kubelet.conf ;;
esac
exit 0
"""

# A long-running service's stand-in binary: it only waits.
def daemon(name: str) -> str:
    return (f"#!/bin/sh\n# A STAND-IN for {name} (pinode e2e boot test): it only waits, as a service would.\n"
            "exec sleep infinity\n")


def unit(description: str, binary: str) -> str:
    return (f"[Unit]\nDescription={description} (STAND-IN, pinode e2e boot test)\n\n"
            f"[Service]\nExecStart={binary}\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n")


POSTINST = """#!/bin/sh
# A STAND-IN package's postinst (pinode e2e boot test): records the installation.
set -e
mkdir -p /var/lib/pinode-e2e
printf 'installed %s %s\\n' "$DPKG_MAINTSCRIPT_PACKAGE" "$(dpkg-query -W -f '${Version}' "$DPKG_MAINTSCRIPT_PACKAGE")" >>/var/lib/pinode-e2e/apt.log
exit 0
"""

# name -> (version, repository path, {file: (mode, contents)})
PACKAGES: dict[str, tuple[str, str, dict[str, tuple[int, str]]]] = {
    "kubeadm": (K8S_VERSION, CORE_PATH, {
        "usr/bin/kubeadm": (0o755, KUBEADM),
        # As the real package: kubeadm's drop-in for the kubelet unit.
        "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (0o644, "[Service]\n# STAND-IN drop-in\n"),
    }),
    "kubelet": (K8S_VERSION, CORE_PATH, {
        "usr/bin/kubelet": (0o755, daemon("kubelet")),
        "usr/lib/systemd/system/kubelet.service": (0o644, unit("kubelet: The Kubernetes Node Agent", "/usr/bin/kubelet")),
    }),
    "kubectl": (K8S_VERSION, CORE_PATH, {"usr/bin/kubectl": (0o755, KUBECTL)}),
    "cri-tools": (TOOLS_VERSION, CORE_PATH, {"usr/bin/crictl": (0o755, daemon("crictl"))}),
    "kubernetes-cni": (CNI_VERSION, CORE_PATH, {"opt/cni/bin/.stand-in": (0o644, "STAND-IN\n")}),
    "cri-o": (CRIO_VERSION, CRIO_PATH, {
        "usr/bin/crio": (0o755, daemon("crio")),
        "usr/lib/systemd/system/crio.service": (0o644, unit("Container Runtime Interface for OCI (CRI-O)", "/usr/bin/crio")),
        # As the real package: CRI-O's own bridge network, which the cluster's CNI replaces.
        "etc/cni/net.d/11-crio-ipv4-bridge.conflist": (0o644, '{"cniVersion": "1.0.0", "name": "crio", '
                                                       '"plugins": [{"type": "bridge", "bridge": "cni0"}]}\n'),
    }),
}


def _deb(out_dir: Path, name: str, version: str, files: dict[str, tuple[int, str]]) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pkg"
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: arm64\n"
            "Maintainer: pinode e2e boot test <e2e@pinode.invalid>\nSection: admin\nPriority: optional\n"
            f"Description: STAND-IN for {name} (pinode's e2e boot test)\n"
            " Records how it was installed and called; real packages cannot be downloaded there.\n")
        postinst = root / "DEBIAN" / "postinst"
        postinst.write_text(POSTINST)
        postinst.chmod(0o755)
        for path, (mode, text) in files.items():
            f = root / path
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
            f.chmod(mode)
        deb = out_dir / f"{name}_{version}_arm64.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)],
                       check=True, capture_output=True)
        return deb


def _flat_repository(repo: Path, gnupg_home: Path, key_id: str) -> None:
    """Packages, Release and InRelease (signed) of a flat repository at `repo`."""
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, check=True,
                              capture_output=True, text=True).stdout
    (repo / "Packages").write_text(packages)
    (repo / "Packages.gz").write_bytes(gzip.compress(packages.encode(), mtime=0))
    lines = ["Origin: pinode e2e stand-in", "Label: pinode e2e stand-in (pkgs.k8s.io layout)",
             "Architectures: arm64", "Date: " + subprocess.run(["date", "-Ru"], capture_output=True, text=True).stdout.strip()]
    for field, algo in (("MD5Sum", "md5"), ("SHA256", "sha256")):
        lines.append(f"{field}:")
        for name in ("Packages", "Packages.gz"):
            data = (repo / name).read_bytes()
            lines.append(f" {hashlib.new(algo, data).hexdigest()} {len(data)} {name}")
    (repo / "Release").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, GNUPGHOME=str(gnupg_home))
    for f in ("InRelease", "Release.gpg"):
        (repo / f).unlink(missing_ok=True)
    subprocess.run(["gpg", "--batch", "--yes", "--local-user", key_id, "--clearsign", "-o", str(repo / "InRelease"),
                    str(repo / "Release")], check=True, env=env, capture_output=True)
    subprocess.run(["gpg", "--batch", "--yes", "--local-user", key_id, "--armor", "--detach-sign",
                    "-o", str(repo / "Release.gpg"), str(repo / "Release")], check=True, env=env, capture_output=True)
    key = subprocess.run(["gpg", "--batch", "--armor", "--export", key_id], check=True, env=env,
                         capture_output=True).stdout
    (repo / "Release.key").write_bytes(key)


def build_apt_repositories(www: Path, gnupg_home: Path) -> dict[str, str]:
    """The two stand-in repositories under `www`; returns {path: signing key fingerprint}."""
    shutil.rmtree(gnupg_home, ignore_errors=True)  # a fresh key each run
    gnupg_home.mkdir(parents=True)
    gnupg_home.chmod(0o700)
    env = dict(os.environ, GNUPGHOME=str(gnupg_home))
    try:
        return _signed_repositories(www, gnupg_home, env)
    finally:
        # gpg started an agent for this home: stop it (a process of this run's own).
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)


def _signed_repositories(www: Path, gnupg_home: Path, env: dict) -> dict[str, str]:
    uid = "pinode e2e TEST-ONLY apt signing key (stand-in for pkgs.k8s.io)"
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "1d"],
                   check=True, env=env, capture_output=True)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys", uid], check=True, env=env,
                             capture_output=True, text=True).stdout
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    out = {}
    for path in (CORE_PATH, CRIO_PATH):
        repo = www / path
        repo.mkdir(parents=True, exist_ok=True)
        for name, (version, where, files) in PACKAGES.items():
            if where == path:
                _deb(repo, name, version, files)
        _flat_repository(repo, gnupg_home, fpr)
        out[path] = fpr
    flannel = www / FLANNEL_PATH
    flannel.parent.mkdir(parents=True, exist_ok=True)
    flannel.write_text("# A STAND-IN for flannel's kube-flannel.yml (pinode e2e boot test)\n"
                       "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-flannel\n")
    return out


# The Ubuntu-shaped image's snap: installs a stand-in MicroK8s.
MICROK8S = "#!/bin/sh\n# A STAND-IN for /snap/bin/microk8s (pinode e2e boot test; snaps cannot be downloaded there).\nset -u\n" \
    + RECORD + NODES_JSON + MAKE_KUBECONFIG + r"""
{
	printf 'args=%s\n' "$*"
} | record microk8s
case "${1:-}" in
status) echo "microk8s is running (stand-in)" ;;
config)
	[ -f /var/snap/microk8s/current/credentials/client.config ] ||
		make_kubeconfig /var/snap/microk8s/current/credentials/client.config "https://$(hostname -I | cut -d' ' -f1):16443"
	cat /var/snap/microk8s/current/credentials/client.config
	;;
kubectl)
	shift
	""" + KUBECTL_BODY.replace("\n", "\n\t") + r"""
	;;
esac
exit 0
"""

SNAP = "#!/bin/sh\n# A STAND-IN for snap (pinode e2e boot test; the snap store cannot be reached there).\nset -u\n" \
    + RECORD + r"""
launch=/var/snap/microk8s/common/.microk8s.yaml
{
	printf 'args=%s\n' "$*"
	if [ "${1:-}" = install ] && [ -f "$launch" ]; then
		printf 'launch_mode=%s\n' "$(stat -c '%a %U' "$launch")"
		printf 'launch_b64=%s\n' "$(base64 -w 0 "$launch")"
	fi
} | record snap
case "${1:-}" in
install)
	mkdir -p /snap/bin /var/snap/microk8s/current/credentials
	cat >/snap/bin/microk8s <<'STANDIN'
@MICROK8S@
STANDIN
	chmod 755 /snap/bin/microk8s
	getent group microk8s >/dev/null || groupadd --system microk8s
	# What the snap's install hook and its cluster agent do with a launch configuration: the
	# hook copies it into the launcher directory, the agent applies it and renames its copy.
	if [ -f "$launch" ]; then
		mkdir -p /var/snap/microk8s/common/etc/launcher
		cp "$launch" /var/snap/microk8s/common/etc/launcher/install.yaml
		mv /var/snap/microk8s/common/etc/launcher/install.yaml /var/snap/microk8s/common/etc/launcher/install.yaml.applied
	fi
	echo "microk8s (@CHANNEL@) installed (stand-in)"
	;;
esac
exit 0
"""


def snap_script() -> str:
    return SNAP.replace("@MICROK8S@", MICROK8S).replace("@CHANNEL@", "from the stand-in store")
