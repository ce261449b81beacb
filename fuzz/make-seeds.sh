#!/usr/bin/env bash
# fuzz/make-seeds.sh: (re)builds the hand-made seed inputs under fuzz/seeds/<target>/.
# Deterministic; needs sfdisk (fdisk), mkfs.vfat (dosfstools >= 4.2) and mtools. The seeds
# are committed, so this only needs running when a seed changes.
set -euo pipefail
cd "$(dirname "$0")"
repo=..
stock=$repo/fixtures/stock
out=seeds
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
export MTOOLS_SKIP_CHECK=1 SOURCE_DATE_EPOCH=1700000000
# Only this script's targets: other targets keep seeds of their own here.
rm -rf "$out"/{partition_table,boot_fat,profile,cmdline,config_txt}
mkdir -p "$out"/{partition_table,boot_fat,profile,cmdline,config_txt,allocation}

# Drops trailing all-zero 512-byte sectors: the harnesses pad inputs with zeros again.
strip_zeros() {
    python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
b = open(p, 'rb').read()
end = len(b.rstrip(b'\0'))
end = -(-end // 512) * 512
open(p, 'wb').write(b[:max(end, 512)])
PY
}

# --- partition_table: 64 KiB disks (the harness pads shorter inputs to 64 KiB) ---
disk() { # NAME LABEL SFDISK-SCRIPT
    local f=$w/$1.img
    truncate -s 64K "$f"
    printf '%s\n' "label: $2" "$3" | sfdisk -q --no-reread --no-tell-kernel "$f" >/dev/null
    cp "$f" "$out/partition_table/$1.bin"
    strip_zeros "$out/partition_table/$1.bin"
}
disk mbr dos "label-id: 0x5eedf00d
start=8, size=32, type=c
start=40, size=88, type=83"
disk mbr-extended dos "label-id: 0x0e0e0e0e
start=8, size=24, type=c
start=32, size=96, type=5
start=40, size=40, type=83
start=88, size=40, type=83"
disk gpt gpt "label-id: 7D6C5B4A-3928-4716-A5B4-C3D2E1F00700
first-lba: 34
last-lba: 94
start=34, size=30, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=7D6C5B4A-3928-4716-A5B4-C3D2E1F00701, name=bootfs
start=64, size=31, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=7D6C5B4A-3928-4716-A5B4-C3D2E1F00702, name=rootfs"
# The fixture images' MBR (p1 at 8192): partitions past the end of a 64 KiB disk.
truncate -s 64M "$w/big.img"
printf 'label: dos\nlabel-id: 0xb00c0012\nstart=8192, size=81920, type=c\nstart=90112, size=32768, type=83\n' |
    sfdisk -q --no-reread --no-tell-kernel "$w/big.img" >/dev/null
head -c 512 "$w/big.img" >"$out/partition_table/mbr-past-end.bin"

# --- boot_fat: the used start of small FAT12/16/32 boot partitions ---
files=$w/files
mkdir -p "$files/bookworm/overlays" "$files/trixie"
sed 's/ROOTDEV/PARTUUID=5eedf00d-02/' "$stock/bookworm/cmdline.txt" >"$files/bookworm/cmdline.txt"
cp "$stock/bookworm/config.txt" "$files/bookworm/config.txt"
printf 'Raspberry Pi reference 2024-11-19\nGenerated using pi-gen, https://github.com/RPi-Distro/pi-gen, 891df1e21ed2b6099a2e6a13e26c91dea44b34d4, stage2\n' >"$files/bookworm/issue.txt"
cp "$stock/overlays-README" "$files/bookworm/overlays/README"
sed 's/ROOTDEV/PARTUUID=5eedf00d-02/' "$stock/trixie/cmdline.txt" >"$files/trixie/cmdline.txt"
cp "$stock/trixie/config.txt" "$stock/trixie/user-data" "$stock/trixie/meta-data" \
    "$stock/trixie/network-config" "$files/trixie/"
find "$files" -exec touch -d @1700000000 {} +
fat() { # NAME FILES MKFS-ARGS... (last: size in KiB)
    local name=$1 src=$files/$2
    shift 2
    local f=$w/$name.fat
    mkfs.vfat --invariant -i 5EEDF00D -S 512 -s 1 -C "$f" "$@" >/dev/null 2>&1
    (cd "$src" && mcopy -i "$f" -s -m -Q -- * ::/)
    fsck.fat -n "$f" >/dev/null
    cp "$f" "$out/boot_fat/$name.bin"
    strip_zeros "$out/boot_fat/$name.bin"
}
fat fat12-bookworm bookworm -F 12 -n bootfs 512
fat fat16-trixie trixie -F 16 -n bootfs 3072
fat fat32-bookworm bookworm -F 32 -f 1 -n bootfs 34816
fat fat32-2fats-trixie trixie -F 32 -n boot 34816

# --- profile, cmdline, config_txt: the project's own text files ---
cp "$repo"/profiles/*.yaml "$out/profile/"
printf 'version: 1\nnodes:\n  - hostname: Bad_Host\n    wifi: {ssid: x}\n' >"$out/profile/invalid.yaml"
printf 'version: 1\nnodes: [{hostname: "n[01-03]", role: agent}]\ndefaults: {boot: {cmdline_extra: [a b]}}\n' \
    >"$out/profile/invalid-range.yaml"
for r in bullseye bookworm trixie; do
    cp "$stock/$r/cmdline.txt" "$out/cmdline/$r.txt"
done
{ cat "$stock/bookworm/cmdline.txt"; printf '\377e quiet\ns ds=nocloud;i=x\nr rootwait\nw console=\ne a=b\n'; } \
    >"$out/cmdline/bookworm-script.bin"
printf 'a  b\tc \r\nsecond line\n' >"$out/cmdline/crlf.txt"
for r in bullseye bookworm trixie; do
    cp "$stock/$r/config.txt" "$out/config_txt/$r.txt"
done
cp "$stock/bookworm/config.armhf.txt" "$out/config_txt/bookworm-armhf.txt"
{ cat "$stock/bookworm/config.armhf.txt"
  printf '# BEGIN pinode: managed block, rewritten on every patch\n[all]\narm_64bit=1\ndtparam=spi=on\n# END pinode\n'; } \
    >"$out/config_txt/patched.txt"
{ cat "$stock/trixie/config.txt"; printf '\377!\ndtparam=i2c_arm=on\ngpu_mem=16\n'; } >"$out/config_txt/trixie-script.bin"
printf 'a=1\r\n[pi4]\r\narm_64bit=1\r\n' >"$out/config_txt/crlf.txt"

# --- allocation: the used start of small ext4 and FAT file systems (the harness places the
# input at the start of a 64 MiB partition; what it does not cover reads as zeros). The ext4
# seeds are not byte-identical between runs: mke2fs -d copies each file's ctime, which touch
# cannot set (fixtures/make-images.sh fixes it with a debugfs pass; seeds do not need it). ---
mkdir -p "$w/files"
cp "$stock"/bookworm/* "$w/files/"
touch -d @1700000000 "$w/files"/* "$w/files"
fat_seed() { # NAME FAT-BITS MIB
    local f=$w/$1.fat
    truncate -s "$3M" "$f"
    mkfs.vfat -F "$2" -i 1234abcd --invariant "$f" >/dev/null
    mcopy -i "$f" "$stock/bookworm/config.txt" "$stock/bookworm/cmdline.txt" ::/
    mmd -i "$f" ::/overlays
    mcopy -i "$f" "$stock/overlays-README" ::/overlays/README
    cp "$f" "$out/allocation/$1.bin"
    strip_zeros "$out/allocation/$1.bin"
}
fat_seed fat12 12 1
fat_seed fat16 16 16
fat_seed fat32 32 40
ext4_seed() { # NAME BLOCK-SIZE MIB EXTRA-MKE2FS-OPTIONS...
    local name=$1 bs=$2 mib=$3 f=$w/$1.ext4
    shift 3
    truncate -s "${mib}M" "$f"
    E2FSPROGS_FAKE_TIME=1700000000 MKE2FS_CONFIG=$stock/mke2fs.conf mke2fs -q -F -t ext4 -b "$bs" \
        -U 11111111-2222-3333-4444-555555555555 -E root_owner=0:0,hash_seed=11111111-2222-3333-4444-555555555555 \
        -d "$w/files" "$@" "$f" 2>/dev/null
    # The used start only: metadata, bitmaps and the files come first.
    head -c 1M "$f" >"$out/allocation/$name.bin"
    strip_zeros "$out/allocation/$name.bin"
}
# Four 2 MiB groups (4 KiB blocks), flex_bg, two of them BLOCK_UNINIT, no journal.
ext4_seed ext4-4k 4096 8 -g 512 -N 128 -O ^has_journal
# 1 KiB blocks (first data block 1), sparse_super2, a journal.
ext4_seed ext4-1k 1024 4 -O sparse_super2

du -a "$out"/{partition_table,boot_fat,profile,cmdline,config_txt,allocation} | sort -k2
