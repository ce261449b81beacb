#!/bin/sh
# Host setup for pinode's boot tests (Debian bookworm, run as root). Idempotent.
#  - adds bookworm-backports (qemu-system-arm / qemu-user-static 10.x must match the
#    machine's qemu-utils 10.x from backports; bookworm's 7.2 refuses to install next to it)
#  - installs what build-base-image.sh and vm.py/smoke.py need
#  - registers the aarch64 binfmt handler (no systemd on the host)
set -eu

if [ "$(id -u)" != 0 ]; then
    echo "setup-host.sh: must run as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# 1. bookworm-backports
if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null; then
    echo "setup-host: adding bookworm-backports to the apt sources"
    cat > /etc/apt/sources.list.d/pinode-bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

# build-base-image.sh: mmdebstrap (+ arch-test, keyring), systemctl --root (systemd, not
# running), mkfs.vfat + mcopy, mke2fs -d + debugfs, sfdisk, openssl (test CA), zstd (cache)
# vm.py / https_server.py / smoke.py: python3, mtools, socat (guestfwd relay), ssh, ssh-keygen
# standins.py: dpkg-dev (dpkg-scanpackages) and gnupg for the stand-in apt repositories;
# engines.py: python3-yaml
PKGS_MAIN="mmdebstrap arch-test debian-archive-keyring binfmt-support systemd mtools dosfstools
e2fsprogs fdisk util-linux socat openssl openssh-client python3 python3-yaml ca-certificates xz-utils zstd
dpkg-dev gnupg"
PKGS_BPO="qemu-system-arm qemu-user-static"

missing=""
for p in $PKGS_MAIN $PKGS_BPO; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed'; then
        missing="$missing $p"
    fi
done
# qemu-system-arm must be the 10.x one (from backports)
if dpkg-query -W -f='${Version}\n' qemu-system-arm 2>/dev/null | grep -q '^1:[0-7]\.'; then
    missing="$missing qemu-system-arm"
fi

if [ -n "$missing" ]; then
    echo "setup-host: installing:$missing"
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $PKGS_MAIN
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends -t bookworm-backports $PKGS_BPO
else
    echo "setup-host: all packages present"
fi

# 2. binfmt for aarch64 (no systemd here)
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    if [ -e /usr/share/binfmts/qemu-aarch64 ]; then
        # binfmt-support style (bookworm's qemu-user-static 7.x)
        update-binfmts --enable qemu-aarch64
    elif [ -e /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
        # systemd-binfmt style (qemu-user-binfmt 10.x from backports); no systemd here,
        # so write the line to the kernel ourselves. Flag F: the interpreter is opened
        # now, so it works inside the arm64 chroot of mmdebstrap.
        grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | grep . > /proc/sys/fs/binfmt_misc/register
    else
        echo "setup-host: no binfmt definition for qemu-aarch64 found" >&2
        exit 1
    fi
fi
if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    echo "setup-host: qemu-aarch64 binfmt handler is not enabled" >&2
    exit 1
fi
if [ ! -x /usr/bin/qemu-system-aarch64 ]; then
    echo "setup-host: qemu-system-aarch64 missing" >&2
    exit 1
fi
echo "setup-host: ok ($(qemu-system-aarch64 --version | head -n1); binfmt qemu-aarch64 enabled)"
