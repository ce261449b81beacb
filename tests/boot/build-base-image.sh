#!/bin/bash
# build-base-image.sh OUTDIR
#
# Builds (or reuses from a cache) a bootable arm64 Debian bookworm image laid out like
# Raspberry Pi OS Bookworm, without mounting anything, and writes into OUTDIR:
#   firstrun.img    cloud-init disabled (/etc/cloud/cloud-init.disabled): Imager firstrun.sh route
#   cloud-init.img  cloud-init active, NoCloud seed read from the FAT labelled "bootfs"
#   ubuntu.img      Ubuntu Server for Raspberry Pi's layout (system-boot, writable, os-release,
#                   cloud-init, a stand-in snap) on the same Debian root: the MicroK8s node
#   test-ca.pem, test-ca.key  test-only CA, trusted inside both images
#
# The rootfs is cached in ${PINODE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinode-e2e}:
#   base-<KB>.tar.zst   packages + initramfs (mmdebstrap; ~13 min under qemu-user)
#   rootfs-<KEY>/       rootfs.tar.zst (the finished rootfs) + test-ca.pem/.key
# KB hashes the package list and the "#>>> base" sections of this script, KEY hashes KB and
# the "#>>> customize" section: editing the image assembly below does not rebuild anything,
# editing the customisation costs ~1 min, the package list ~14 min. With both cached a run
# takes ~25 s. Entries unused for 14 days are removed.
# Needs root (mmdebstrap root mode, ownership of the extracted rootfs) and
# tests/boot/setup-host.sh's packages + binfmt handler.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "$0: must run as root" >&2
    exit 1
fi

OUT=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${PINODE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinode-e2e}

# Fixed MBR disk identifier: PARTUUIDs are 5e1fb007-01 / 5e1fb007-02.
DISKID=5e1fb007
FAT_VOLID=5e1fb007
BOOT_START=8192               # sectors (Pi OS Bookworm images before 2025-03)
BOOT_SECTORS=$((256 * 2048))  # 256 MiB
ROOT_START=$((BOOT_START + BOOT_SECTORS))

#>>> base: everything that shapes the slow part (packages, initramfs); hashed into the base key
PACKAGES=(
    systemd systemd-sysv udev dbus openssh-server sudo iproute2 curl ca-certificates
    network-manager linux-image-arm64 initramfs-tools kmod locales cloud-init util-linux
    procps less
    # beyond the minimal list: Pi OS has them and first boot needs them
    tzdata      # /usr/share/zoneinfo: pinode's firstrun.sh sets the time zone from it
    e2fsprogs   # fsck.ext4 for the root file system (fsck.repair=yes)
    dosfstools  # fsck.vfat for /boot/firmware (fstab pass 2)
    console-setup keyboard-configuration  # cloud-init's keyboard module restarts console-setup
    avahi-daemon libnss-mdns              # HOST.local, as on Pi OS
)
# Modules for MODULES=list: a virtio-pci disk with ext4 on it. Network modules are loaded
# later from the root file system (keeping virtio_net out of the initramfs also keeps its
# udev from renaming eth0 before the real root's rules apply).
INITRAMFS_MODULES=(virtio_pci virtio_mmio virtio_blk ext4 crc32c_generic)
#<<< base

SECONDS=0
T0=$(date +%s)
phase_start=$T0
phase() { # phase NAME: print the time of the phase that just ended
    local now; now=$(date +%s)
    printf 'build-base-image: %-34s %4ds (total %ds)\n' "$1" $((now - phase_start)) $((now - T0))
    phase_start=$now
}

# Two cache levels (see the top of this file)
section() { sed -n "/^#>>> $1/,/^#<<< $1/p" "$SELF"; }
KB=$( { printf '%s\n' "${PACKAGES[@]}" "${INITRAMFS_MODULES[@]}"; section base; } | sha256sum | cut -c1-16)
KEY=$( { echo "$KB"; section customize; } | sha256sum | cut -c1-16)
BASE_TAR="$CACHE/base-$KB.tar.zst"
ENTRY="$CACHE/rootfs-$KEY"
mkdir -p "$ENTRY" "$OUT"
echo "build-base-image: cache $CACHE (base $KB, rootfs $KEY)"

exec 9>"$CACHE/lock"
flock 9
# forget what nobody used for two weeks; mark what this run uses
find "$CACHE" -mindepth 1 -maxdepth 1 \( -name 'base-*' -o -name 'rootfs-*' \) -mtime +14 \
    -exec rm -rf {} + 2>/dev/null || true
touch "$ENTRY"
[ ! -e "$BASE_TAR" ] || touch "$BASE_TAR"

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/pinode-base.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
# 1. base rootfs (mmdebstrap: packages + initramfs), unless cached
# ---------------------------------------------------------------------------------------
ROOT="$WORK/rootfs"
need_binfmt() {
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        echo "build-base-image: no qemu-aarch64 binfmt handler: run tests/boot/setup-host.sh" >&2
        exit 1
    fi
}
have_root=no
#>>> base (continued)
if [ ! -s "$ENTRY/rootfs.tar.zst" ] && [ ! -s "$BASE_TAR" ]; then
    need_binfmt
    cat >"$WORK/initramfs.sh" <<'INITRAMFS'
#!/bin/sh
# Undo the diversion and build the initramfs once, as fast as possible.
set -eu
R=$1
shift
rm -f "$R/usr/sbin/update-initramfs"
chroot "$R" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
cat >"$R/etc/initramfs-tools/conf.d/pinode-e2e.conf" <<'EOF'
# pinode e2e: only the modules a virtio disk with ext4 needs (MODULES=most takes ~16 min
# under qemu-user); gzip needs no extra tool.
MODULES=list
COMPRESS=gzip
EOF
printf '%s\n' "$@" >>"$R/etc/initramfs-tools/modules"
start=$(date +%s)
chroot "$R" update-initramfs -c -k all
end=$(date +%s)
echo "build-base-image: update-initramfs (MODULES=list) took $((end - start))s"
ls -l "$R"/boot/
INITRAMFS
    chmod 755 "$WORK/initramfs.sh"

    inc=$(IFS=,; echo "${PACKAGES[*]}")
    mmdebstrap --arch=arm64 --variant=minbase --mode=root --format=directory \
        --include="$inc" \
        --aptopt='Acquire::Languages "none"' \
        --dpkgopt='force-unsafe-io' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.pinode-real --add /usr/sbin/update-initramfs' \
        --essential-hook='printf "#!/bin/sh\necho \"update-initramfs: diverted during the bootstrap (pinode e2e)\" >&2\nexit 0\n" >"$1/usr/sbin/update-initramfs"; chmod 755 "$1/usr/sbin/update-initramfs"' \
        --customize-hook="\"$WORK/initramfs.sh\" \"\$1\" ${INITRAMFS_MODULES[*]}" \
        --customize-hook='rm -f "$1"/var/log/*.log "$1"/var/log/apt/* "$1"/var/cache/debconf/*-old' \
        bookworm "$ROOT" \
        "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-updates main" \
        "deb http://deb.debian.org/debian-security bookworm-security main" \
        2>&1 | tee "$WORK/mmdebstrap.log" | grep -E '^(I: |E: |W: |build-base-image)|update-initramfs' || true
    if [ ! -x "$ROOT/usr/sbin/sshd" ] || ! ls "$ROOT"/boot/initrd.img-* >/dev/null 2>&1; then
        echo "build-base-image: mmdebstrap failed; last lines of its log:" >&2
        tail -n 40 "$WORK/mmdebstrap.log" >&2
        exit 1
    fi
    cp "$WORK/mmdebstrap.log" "$CACHE/base-$KB.mmdebstrap.log"
    phase "mmdebstrap (packages + initramfs)"
    tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$ROOT" -cf - . \
        | zstd -q -T0 -3 -o "$BASE_TAR.tmp"
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    have_root=yes
    phase "base tarball cached"
fi
#<<< base

# ---------------------------------------------------------------------------------------
# 2. finished rootfs: base + Pi OS conventions + test CA, unless cached
# ---------------------------------------------------------------------------------------
if [ ! -s "$ENTRY/rootfs.tar.zst" ]; then
    need_binfmt
    if [ "$have_root" = no ]; then
        mkdir -p "$ROOT"
        zstd -q -d -c "$BASE_TAR" | tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$ROOT" -xf -
        phase "cached base extracted"
    fi
    # a test-only CA per cache entry
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$ENTRY/test-ca.key" -out "$ENTRY/test-ca.pem" -days 3650 \
        -subj "/O=pinode e2e/CN=pinode e2e TEST-ONLY CA $KEY" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 600 "$ENTRY/test-ca.key"
    cp "$ENTRY/test-ca.pem" "$WORK/test-ca.pem"

#>>> customize
    cat >"$WORK/customize.sh" <<'CUSTOMIZE'
#!/bin/sh
set -eu
R=$1
WORK=$2
DISKID=$3
in_root() { chroot "$R" "$@"; }  # arm64 binaries through the qemu-user binfmt handler
# systemctl --root works offline from the host

# --- hostname, hosts, fstab (Pi OS Bookworm layout) ---
echo raspberrypi >"$R/etc/hostname"
cat >"$R/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters

127.0.1.1		raspberrypi
EOF
mkdir -p "$R/boot/firmware"
cat >"$R/etc/fstab" <<EOF
proc            /proc           proc    defaults          0       0
PARTUUID=$DISKID-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=$DISKID-02  /               ext4    defaults,noatime  0       1
EOF

# --- the first user: pi, uid/gid 1000, locked password, no keys (Pi OS since 2022-04) ---
for g in spi i2c gpio render netdev input plugdev; do
    in_root groupadd -f -r "$g"
done
groups=""
for g in adm dialout cdrom sudo audio video plugdev games users input render netdev spi i2c gpio; do
    if in_root getent group "$g" >/dev/null; then groups="$groups${groups:+,}$g"; fi
done
in_root useradd --create-home --uid 1000 --user-group --shell /bin/bash --groups "$groups" pi
in_root passwd --lock pi >/dev/null
# Subordinate ids for pi, as useradd gives a new user on Pi OS (rootless containers use them):
# pinode's rename of the first user must carry them over.
for f in subuid subgid; do
    grep -q '^pi:' "$R/etc/$f" 2>/dev/null || echo 'pi:100000:65536' >>"$R/etc/$f"
    chmod 644 "$R/etc/$f"
done
printf 'pi ALL=(ALL) NOPASSWD: ALL\n' >"$R/etc/sudoers.d/010_pi-nopasswd"
chmod 0440 "$R/etc/sudoers.d/010_pi-nopasswd"

# --- ssh: disabled, host keys regenerated on first start (like Pi OS) ---
systemctl --root="$R" disable ssh.service 2>/dev/null || true
rm -f "$R"/etc/ssh/ssh_host_*

# --- serial console login for debugging ---
systemctl --root="$R" enable serial-getty@ttyAMA0.service

# --- network: eth0 (no predictable names, as on a Pi), NetworkManager's automatic DHCP ---
mkdir -p "$R/etc/systemd/network"
ln -sf /dev/null "$R/etc/systemd/network/99-default.link"
systemctl --root="$R" enable NetworkManager.service

# --- test CA ---
install -m 644 "$WORK/test-ca.pem" "$R/usr/local/share/ca-certificates/pinode-e2e-test-ca.crt"
in_root update-ca-certificates >/dev/null

# --- Raspberry Pi OS boot-partition conventions (raspberrypi-sys-mods, userconf-pi) ---
SHIM="$R/usr/local/lib/pi-os-shim"
mkdir -p "$SHIM"
cat >"$SHIM/sshswitch" <<'EOF'
#!/bin/sh
# /boot/firmware/ssh or ssh.txt: enable and start sshd, delete the file (raspberrypi-sys-mods).
set -u
found=no
for f in /boot/firmware/ssh /boot/firmware/ssh.txt; do
    if [ -e "$f" ]; then
        found=yes
        rm -f "$f"
    fi
done
[ "$found" = yes ] || exit 0
sync
echo "sshswitch: enabling ssh"
systemctl enable ssh.service
systemctl start --no-block ssh.service
EOF
cat >"$SHIM/userconf" <<'EOF'
#!/bin/sh
# /boot/firmware/userconf.txt (name:crypthash): rename the uid-1000 user to name, set the
# hash, fix the sudoers rule, delete the file (userconf-pi).
set -u
FILE=/boot/firmware/userconf.txt
[ -e "$FILE" ] || exit 0
line=$(head -n 1 "$FILE" | tr -d '\r')
name=${line%%:*}
hash=${line#*:}
if [ -z "$name" ] || [ "$name" = "$line" ]; then
    echo "userconf: malformed $FILE" >&2
    rm -f "$FILE"
    exit 1
fi
old=$(getent passwd 1000 | cut -d: -f1)
if [ -z "$old" ]; then
    echo "userconf: no uid-1000 user, creating $name"
    useradd --create-home --uid 1000 --user-group --shell /bin/bash "$name" || exit 1
    old=$name
fi
if [ "$old" != "$name" ]; then
    echo "userconf: renaming $old to $name"
    oldgroup=$(getent group 1000 | cut -d: -f1)
    usermod --login "$name" "$old" || exit 1
    usermod --move-home --home "/home/$name" "$name" || exit 1
    if [ "$oldgroup" = "$old" ]; then
        groupmod --new-name "$name" "$old" || exit 1
    fi
    if [ -f /etc/sudoers.d/010_pi-nopasswd ]; then
        sed -i "s/^$old /$name /" /etc/sudoers.d/010_pi-nopasswd
    fi
fi
printf '%s:%s\n' "$name" "$hash" | chpasswd -e || exit 1
rm -f "$FILE"
sync
EOF
# Raspberry Pi OS's own host-key regeneration, shaped like the real one: raspberrypi-sys-mods
# (RPi-Distro, release 20240129), debian/raspberrypi-sys-mods.regenerate_ssh_host_keys.service
# and usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys. Unconditional: it deletes every
# host key, makes new ones and disables itself. So pinode's key survives only if pinode keeps
# this unit from running (disabled on the firstrun route, masked on the cloud-init route).
mkdir -p "$R/usr/lib/raspberrypi-sys-mods"
cat >"$R/usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys" <<'EOF'
#!/bin/sh -e

rm -f /etc/ssh/ssh_host_*_key*
ssh-keygen -A > /dev/null
systemctl -q disable regenerate_ssh_host_keys
EOF
chmod 755 "$R/usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys"
chmod 755 "$SHIM"/*

cat >"$R/etc/systemd/system/sshswitch.service" <<'EOF'
[Unit]
Description=Turn on SSH if /boot/firmware/ssh is present (pi-os-shim)
ConditionPathExistsGlob=/boot/firmware/ssh{,.txt}
RequiresMountsFor=/boot/firmware
After=regenerate_ssh_host_keys.service userconf.service
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/local/lib/pi-os-shim/sshswitch

[Install]
WantedBy=multi-user.target
EOF
cat >"$R/etc/systemd/system/userconf.service" <<'EOF'
[Unit]
Description=Apply /boot/firmware/userconf.txt (pi-os-shim)
ConditionPathExists=/boot/firmware/userconf.txt
RequiresMountsFor=/boot/firmware
After=systemd-remount-fs.service
Before=systemd-user-sessions.service ssh.service getty@tty1.service serial-getty@ttyAMA0.service

[Service]
Type=oneshot
ExecStart=/usr/local/lib/pi-os-shim/userconf

[Install]
WantedBy=multi-user.target
EOF
cat >"$R/lib/systemd/system/regenerate_ssh_host_keys.service" <<'EOF'
[Unit]
Description=Regenerate SSH host keys
Before=ssh.service
ConditionFileIsExecutable=/usr/bin/ssh-keygen

[Service]
Type=oneshot
ExecStart=/usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys

[Install]
WantedBy=multi-user.target
EOF
systemctl --root="$R" enable sshswitch.service userconf.service regenerate_ssh_host_keys.service

# --- cloud-init: NoCloud seed on the FAT labelled bootfs (Pi OS Trixie style) ---
mkdir -p "$R/etc/cloud/cloud.cfg.d"
cat >"$R/etc/cloud/cloud.cfg.d/99_pinode-test.cfg" <<'EOF'
# pinode e2e test image: seed from the boot partition, as Raspberry Pi OS Trixie does.
datasource_list: [NoCloud, None]
datasource:
  NoCloud:
    fs_label: bootfs
# No netplan/ifupdown here: let cloud-init write NetworkManager keyfiles.
system_info:
  network:
    renderers: [network-manager, networkd]
EOF
rm -rf "$R/var/lib/cloud"/* "$R/var/log/cloud-init"*

# --- locales: none generated (pinode generates what it needs) ---
if [ -f "$R/etc/locale.gen" ]; then
    sed -i 's/^\([^#]\)/# \1/' "$R/etc/locale.gen"
fi
rm -f "$R/etc/default/locale"

# --- a fresh machine-id on first boot ---
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
CUSTOMIZE
    chmod 755 "$WORK/customize.sh"
    "$WORK/customize.sh" "$ROOT" "$WORK" "$DISKID"
#<<< customize
    phase "rootfs customised"
    tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$ROOT" -cf - . \
        | zstd -q -T0 -3 -o "$ENTRY/rootfs.tar.zst.tmp"
    mv "$ENTRY/rootfs.tar.zst.tmp" "$ENTRY/rootfs.tar.zst"
    phase "rootfs tarball cached"
else
    echo "build-base-image: reusing cached rootfs $ENTRY/rootfs.tar.zst"
    mkdir -p "$ROOT"
    zstd -q -d -c "$ENTRY/rootfs.tar.zst" \
        | tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$ROOT" -xf -
    phase "cached rootfs extracted"
fi

# ---------------------------------------------------------------------------------------
# 3. boot partition (FAT32 "bootfs"), shared by both variants
# ---------------------------------------------------------------------------------------
kernel=$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -n 1)
initrd="$ROOT/boot/initrd.img-${kernel##*/vmlinuz-}"
mkdir -p "$WORK/bootfiles"
cp "$kernel" "$WORK/bootfiles/kernel8.img"
cp "$initrd" "$WORK/bootfiles/initramfs8"
cp "$REPO/fixtures/stock/bookworm/config.txt" "$WORK/bootfiles/config.txt"
printf 'Raspberry Pi reference 2024-11-19\nGenerated using pi-gen, https://github.com/RPi-Distro/pi-gen, 891df1e21ed2b6099a2e6a13e26c91dea44b34d4, stage2\n' \
    >"$WORK/bootfiles/issue.txt"
printf 'console=serial0,115200 console=tty1 root=PARTUUID=%s-02 rootfstype=ext4 fsck.repair=yes rootwait\n' "$DISKID" \
    >"$WORK/bootfiles/cmdline.txt"

rm -f "$WORK/boot.vfat"
# (mkfs.fat warns about the lower-case label; Raspberry Pi OS's is lower-case too)
mkfs.vfat -F 32 -n bootfs -i "$FAT_VOLID" -h "$BOOT_START" -C "$WORK/boot.vfat" $((BOOT_SECTORS / 2)) >/dev/null 2>&1
for f in kernel8.img initramfs8 config.txt cmdline.txt issue.txt; do
    mcopy -i "$WORK/boot.vfat" "$WORK/bootfiles/$f" "::$f"
done
phase "boot partition"

# ---------------------------------------------------------------------------------------
# 4. root partitions and disk images
# ---------------------------------------------------------------------------------------
used_kib=$(du -sk --apparent-size "$ROOT" | cut -f1)
# contents + 10% for ext4 metadata + free space (PINODE_E2E_FREE_MIB, default ~1 GiB; there
# is no resize on first boot, so a test that installs a lot, e.g. K3s, asks for more here)
free_mib=${PINODE_E2E_FREE_MIB:-1024}
root_mib=$(( (used_kib * 11 / 10 + free_mib * 1024) / 1024 + 1 ))
root_sectors=$((root_mib * 2048))
total_sectors=$((ROOT_START + root_sectors))

make_image() { # make_image NAME EXT4
    local name=$1 ext4=$2 img="$OUT/$1.img.tmp"
    rm -f "$img"
    truncate -s $((total_sectors * 512)) "$img"
    sfdisk --quiet --no-reread --no-tell-kernel "$img" <<EOF
label: dos
label-id: 0x$DISKID
unit: sectors

start=$BOOT_START, size=$BOOT_SECTORS, type=c
start=$ROOT_START, size=$root_sectors, type=83
EOF
    dd if="$WORK/boot.vfat" of="$img" bs=1M seek=$((BOOT_START / 2048)) conv=notrunc,sparse status=none
    dd if="$ext4" of="$img" bs=1M seek=$((ROOT_START / 2048)) conv=notrunc,sparse status=none
    mv "$img" "$OUT/$name.img"
    phase "$name.img"
}

# Raspberry Pi OS Bookworm's swap, in both Pi OS variants: dphys-swapfile makes /var/swap and
# turns it on at every boot. A STAND-IN shaped like the real unit (dphys-swapfile 20100506,
# dphys-swapfile.service: `dphys-swapfile setup` then `swapon`), small: kubeadm needs swap off
# (or tolerated), and pinode's first boot must turn it off for good.
cat >"$ROOT/usr/local/sbin/dphys-swapfile" <<'EOF'
#!/bin/sh
# A STAND-IN for Raspberry Pi OS's dphys-swapfile (pinode e2e boot test): setup/swapon/swapoff.
set -u
case "${1:-}" in
setup) [ -f /var/swap ] || { fallocate -l 64M /var/swap && chmod 600 /var/swap && mkswap /var/swap >/dev/null; } ;;
swapon) swapon /var/swap ;;
swapoff) swapoff /var/swap 2>/dev/null || true ;;
esac
EOF
chmod 755 "$ROOT/usr/local/sbin/dphys-swapfile"
cat >"$ROOT/etc/systemd/system/dphys-swapfile.service" <<'EOF'
[Unit]
Description=dphys-swapfile - set up, mount/unmount, and delete a swap file (STAND-IN, pinode e2e)
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/dphys-swapfile setup
ExecStart=/usr/local/sbin/dphys-swapfile swapon
ExecStop=/usr/local/sbin/dphys-swapfile swapoff
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/dphys-swapfile.service "$ROOT/etc/systemd/system/multi-user.target.wants/dphys-swapfile.service"
# The image's own Debian archive is out of reach (restricted network), so it has no apt
# sources: `apt-get update` on a node reads only the repositories pinode adds (the kubeadm
# node's stand-ins), instead of waiting for DNS and connection timeouts on the archive.
: >"$ROOT/etc/apt/sources.list"
rm -f "$ROOT"/etc/apt/sources.list.d/*.list "$ROOT"/etc/apt/sources.list.d/*.sources
# cloud-init variant: the rootfs as built
rm -f "$ROOT/etc/cloud/cloud-init.disabled" "$WORK/root.ext4"
mke2fs -q -t ext4 -L rootfs -E root_owner=0:0 -d "$ROOT" "$WORK/root.ext4" "${root_mib}M" >/dev/null
phase "ext4 (mke2fs -d)"
make_image cloud-init "$WORK/root.ext4"
# firstrun variant: the same file system plus /etc/cloud/cloud-init.disabled (debugfs, no mount)
: >"$WORK/empty"
chmod 644 "$WORK/empty"
debugfs -w -R "write $WORK/empty /etc/cloud/cloud-init.disabled" "$WORK/root.ext4" >/dev/null 2>&1
# Captured, not piped: with pipefail, grep -q exiting early could fail the check with SIGPIPE.
stat_out=$(debugfs -R "stat /etc/cloud/cloud-init.disabled" "$WORK/root.ext4" 2>/dev/null || true)
if ! grep -q 'User: *0 *Group: *0' <<<"$stat_out"; then
    echo "build-base-image: could not add /etc/cloud/cloud-init.disabled" >&2
    exit 1
fi
e2fsck -fn "$WORK/root.ext4" >/dev/null 2>&1
make_image firstrun "$WORK/root.ext4"
rm -f "$WORK/root.ext4"

# Ubuntu-shaped variant (the MicroK8s node): Ubuntu Server for Raspberry Pi's layout on this
# Debian root file system, since Ubuntu itself cannot be downloaded here. Boot partition
# "system-boot" with Ubuntu's file names (vmlinuz, initrd.img named by config.txt) and its
# stock NoCloud seed files, root labelled "writable", /etc/os-release of Ubuntu 24.04, no
# uid-1000 user (Ubuntu's cloud-init creates the first user), ssh enabled, no Pi OS services,
# no swap, and a STAND-IN snap (tests/boot/standins.py) where Ubuntu has snapd.
rm -f "$ROOT/etc/cloud/cloud-init.disabled" "$ROOT/etc/systemd/system/multi-user.target.wants/dphys-swapfile.service"
rm -f "$ROOT/etc/systemd/system/dphys-swapfile.service" "$ROOT/usr/local/sbin/dphys-swapfile"
chroot "$ROOT" userdel --remove pi
rm -f "$ROOT/etc/sudoers.d/010_pi-nopasswd"
for u in regenerate_ssh_host_keys sshswitch userconf; do
    rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/$u.service" "$ROOT/etc/systemd/system/$u.service" \
        "$ROOT/lib/systemd/system/$u.service"
done
systemctl --root="$ROOT" enable ssh.service
echo ubuntu >"$ROOT/etc/hostname"
sed -i 's/raspberrypi/ubuntu/' "$ROOT/etc/hosts"
rm -f "$ROOT/etc/os-release"
cat >"$ROOT/usr/lib/os-release" <<'EOF'
PRETTY_NAME="Ubuntu 24.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.3 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
EOF
ln -s ../usr/lib/os-release "$ROOT/etc/os-release"
rm -f "$ROOT/etc/cloud/cloud.cfg.d/99_pinode-test.cfg"
cat >"$ROOT/etc/cloud/cloud.cfg.d/99-fake_cloud.cfg" <<'EOF'
# pinode e2e, Ubuntu-shaped image: seed from the boot partition labelled system-boot, as
# Ubuntu Server for Raspberry Pi does (its 99-fake_cloud.cfg).
datasource_list: [NoCloud, None]
datasource:
  NoCloud:
    fs_label: system-boot
system_info:
  network:
    renderers: [network-manager, networkd]
EOF
python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import standins; print(standins.snap_script(), end="")' "$HERE" \
    >"$ROOT/usr/bin/snap"
chmod 755 "$ROOT/usr/bin/snap"
mkdir -p "$ROOT/usr/lib/snapd"
printf '#!/bin/sh\n# A STAND-IN for snapd (pinode e2e boot test): its presence is what pinode looks for.\nexec sleep infinity\n' \
    >"$ROOT/usr/lib/snapd/snapd"
chmod 755 "$ROOT/usr/lib/snapd/snapd"
# snapd's systemd environment generator puts /snap/bin on every service's PATH (snapd,
# usr/lib/systemd/system-environment-generators/snapd-env-generator); stand-in of the same.
mkdir -p "$ROOT/usr/lib/systemd/system-environment-generators"
printf '#!/bin/sh\n# A STAND-IN for snapd-env-generator (pinode e2e boot test).\necho "PATH=${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}:/snap/bin"\n' \
    >"$ROOT/usr/lib/systemd/system-environment-generators/snapd-env-generator"
chmod 755 "$ROOT/usr/lib/systemd/system-environment-generators/snapd-env-generator"
# Ubuntu's sudo finds snap commands (its /etc/sudoers secure_path ends in /snap/bin).
printf 'Defaults\tsecure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin"\n' \
    >"$ROOT/etc/sudoers.d/00-ubuntu-secure-path"
chmod 440 "$ROOT/etc/sudoers.d/00-ubuntu-secure-path"
mke2fs -q -t ext4 -L writable -E root_owner=0:0 -d "$ROOT" "$WORK/root.ext4" "${root_mib}M" >/dev/null
mkdir -p "$WORK/ubuntu-boot"
cp "$WORK/bootfiles/kernel8.img" "$WORK/ubuntu-boot/vmlinuz"
cp "$WORK/bootfiles/initramfs8" "$WORK/ubuntu-boot/initrd.img"
cp "$REPO/fixtures/stock/ubuntu/config.txt" "$WORK/ubuntu-boot/config.txt"
printf 'console=serial0,115200 multipath=off dwc_otg.lpm_enable=0 console=tty1 root=PARTUUID=%s-02 rootfstype=ext4 rootwait fixrtc\n' "$DISKID" \
    >"$WORK/ubuntu-boot/cmdline.txt"
for f in user-data network-config meta-data; do
    cp "$REPO/fixtures/stock/ubuntu/$f" "$WORK/ubuntu-boot/$f"
done
rm -f "$WORK/boot.vfat"
mkfs.vfat -F 32 -n system-boot -i "$FAT_VOLID" -h "$BOOT_START" -C "$WORK/boot.vfat" $((BOOT_SECTORS / 2)) >/dev/null 2>&1
for f in vmlinuz initrd.img config.txt cmdline.txt user-data network-config meta-data; do
    mcopy -i "$WORK/boot.vfat" "$WORK/ubuntu-boot/$f" "::$f"
done
make_image ubuntu "$WORK/root.ext4"
rm -f "$WORK/root.ext4"
cp "$ENTRY/test-ca.pem" "$OUT/test-ca.pem"
install -m 600 "$ENTRY/test-ca.key" "$OUT/test-ca.key"

echo "build-base-image: kernel $(basename "$kernel"), initramfs $(du -h "$WORK/bootfiles/initramfs8" | cut -f1), rootfs ${used_kib} KiB, p2 ${root_mib} MiB, disk id 0x$DISKID"
ls -ls "$OUT"/firstrun.img "$OUT"/cloud-init.img "$OUT"/ubuntu.img
printf 'build-base-image: done in %ds\n' $(( $(date +%s) - T0 ))
