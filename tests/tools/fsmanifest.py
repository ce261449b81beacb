#!/usr/bin/env python3
"""Prints a canonical manifest of the file system in an image file, read with e2fsprogs'
debugfs (ext2/3/4) or mtools (FAT): every path with its metadata and a SHA-256 of its
contents. Two file systems hold the same files exactly when their manifests are equal, which
is how the allocation-aware writing is checked against the image it came from.

Usage: fsmanifest.py ext4|fat IMAGE [MASK]   (IMAGE holds just the file system)

MASK: a regular expression whose matches are replaced before contents are hashed, for
values that are fresh on every run by design (pinode's cloud-init instance-id).

ext4: the tree is walked with `ls -p`; each path's full `stat` (mode, owner, size, all four
times, flags, extended attributes, extents) and its contents (`rdump`) are included.
FAT: `mdir -/ -a` (names, sizes, dates, attributes) and the contents (`mcopy -s`).
"""

import hashlib
import os
import re
import subprocess
import sys
import tempfile


MASK = None


def sha256_file(path):
    with open(path, "rb") as f:
        data = f.read()
    if MASK is not None:
        data = MASK.sub(b"<masked>", data)
    return hashlib.sha256(data).hexdigest()


def debugfs(image, commands):
    with tempfile.NamedTemporaryFile("w", suffix=".cmds") as f:
        f.write("\n".join(commands) + "\n")
        f.flush()
        out = subprocess.run(["debugfs", "-f", f.name, image], check=True,
                             capture_output=True, text=True, errors="replace")
    return out.stdout


def quote(path):
    return '"' + path.replace('"', '\\"') + '"'


def ext4_manifest(image):
    paths = []
    level = ["/"]
    while level:
        out = debugfs(image, [f"ls -p {quote(d)}" for d in level])
        # Outputs of consecutive commands are separated by "debugfs: ls -p ..." lines.
        current, nxt = None, []
        for line in out.splitlines():
            if line.startswith("debugfs: ls -p "):
                current = line[len("debugfs: ls -p "):].strip('"').replace('\\"', '"')
                continue
            parts = line.split("/")
            if current is None or len(parts) < 7 or parts[0] != "":
                continue
            name = "/".join(parts[5:-2])
            if name in (".", ".."):
                continue
            path = current.rstrip("/") + "/" + name
            paths.append(path)
            if int(parts[2], 8) & 0o170000 == 0o040000:
                nxt.append(path)
        level = nxt
    paths.sort()
    lines = []
    stats = debugfs(image, [f"stat {quote(p)}" for p in ["/"] + paths])
    lines.append(stats)
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["debugfs", "-R", f"rdump / {out}", image], check=True,
                       capture_output=True)
        for p in paths:
            local = out + p
            if os.path.isfile(local) and not os.path.islink(local):
                lines.append(f"{p} sha256={sha256_file(local)}")
    return "\n".join(lines)


def fat_manifest(image):
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    listing = subprocess.run(["mdir", "-/", "-a", "-i", image, "::"], check=True,
                             capture_output=True, text=True, env=env).stdout
    # The header names the volume's serial and label: keep it (it must be equal too), but
    # drop the free-space footer, which mdir computes and is compared by fsck anyway.
    lines = [l for l in listing.splitlines() if "bytes free" not in l]
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["mcopy", "-s", "-m", "-n", "-i", image, "::*", out], check=True,
                       capture_output=True, env=env)
        for root, _, files in sorted(os.walk(out)):
            for name in sorted(files):
                local = os.path.join(root, name)
                lines.append(f"{os.path.relpath(local, out)} sha256={sha256_file(local)}")
    return "\n".join(lines)


def main():
    global MASK
    kind, image = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        MASK = re.compile(sys.argv[3].encode())
    print(ext4_manifest(image) if kind == "ext4" else fat_manifest(image))


if __name__ == "__main__":
    main()
