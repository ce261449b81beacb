#!/usr/bin/env python3
"""pinode benchmark: image-engine speed and memory against plain-tool baselines, in one run.

Builds two Raspberry Pi OS-shaped images (300 MiB and 3 GiB: MBR, 256 MiB FAT32 boot
partition with kernel-sized blobs and an overlays/ directory, ext4 root filled to about half
with incompressible data), then measures:

  patch      pinode patch on the 3 GiB image vs the 300 MiB image (target: < 100 ms, ratio <= 1.2)
  prepare    pinode prepare of one node vs `cp --sparse=always` of the same base (ratio <= 1.2)
             and vs the SHA-256 floor of its bytes (ratio <= 1.1); N nodes at once on C cores
             vs one node (N = C and N = 2C: <= ceil(N/C) x one node x 1.1), with peak RSS
  memory     peak RSS of every pinode run (target: < 64 MiB whatever the size)

and the cache (`--only cache`; an image of real files from /usr, 512 MiB, compressed once
the way pi-gen does it, `xz -6 -T0`, and single-threaded for a single-block file):

  xz multi   pinode decompressing a multi-block .img.xz into the cache (hashing, sparse
             writes, fsync included) vs `xz -dc -T0 > file` (target: ratio <= 1.1)
  xz single  the same for a single-block file vs `xz -dc > file` (target: ratio <= 1.1)
  download   pinode downloading a raw image from 127.0.0.1 (hashing included) vs
             `curl -o` of the same URL from the same server (target: ratio <= 1.2)

and card writing (`--only flash`; root: a loop device with direct I/O stands in for the card):

  flash      pinode flash --full of one node (write, flush, read back, SHA-256 compare) of the
             3 GiB image vs `dd bs=4M oflag=direct` plus `dd bs=4M iflag=direct | sha256sum`
             of the same bytes (target: ratio <= 1.15); also against `openssl dgst -sha256` in
             place of sha256sum, the faster hash, as a stricter baseline
  allocated  pinode flash (allocation-aware: only the blocks in use, read back) vs --full
             (target: <= 0.7x), write only and with the read-back, and Debian's `bmaptool
             copy` of the node's prepared image, with `bmaptool create`'s map and with
             pinode's `prepare --bmap` map
  memory     peak RSS of pinode flash on the 300 MiB and the 3 GiB image (target: < 64 MiB)

and several cards at once (`--only parallel`; root: three loop devices with direct I/O):

  parallel   pinode flash of three nodes onto three cards at once (--parallel 3) vs the same
             three in a row (--serial), from ONE zstd-compressed base (decompressed once per
             run, shared by the cards): wall time, bytes written, peak RSS; and one node onto
             one card from the same base, with `zstd -dc > file` alone (the decompression every
             run pays). On loop devices over one disk the cards share that disk's bandwidth,
             so three at once can hardly beat three in a row; hence a second run (1 GiB
             image) with each loop device throttled on its own to a card's rate, as real
             readers are independent devices (--card-rate W[:R] MB/s, default 40:80, cgroup
             v1 blkio; 0: off). Targets: at once <= 1.3x one card (decompression included)
             and <= 0.5x in a row.

The flash goals of issue 20 item 6 are explicit checks of `--only flash`: `flash --full
--no-verify` <= 1.05x `dd oflag=direct conv=fsync`, and allocation-aware write + verify <=
0.45x `--full` write + verify.

Usage: bench/bench.py [--workdir DIR] [--runs N] [--only engine|cache|flash|parallel] [--card-rate W[:R]]
                      [--record FILE]
(needs sfdisk, mkfs.vfat, mtools, mke2fs, xz, curl, bmaptool; flash needs root)
--record FILE also writes the output, with the machine it ran on, to FILE (the repository
keeps the latest full run in docs/performance.md).
The working directory keeps the images between runs (they take a minute or two to build).
"""

import argparse
import contextlib
import hashlib
import http.server
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAeT4pnjR2kaK8bT0MsxNPRa1m2qYFztbnGgveCr63E bench@pinode"


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def build_image(path, total_mib, root_fill_mib, work):
    """A Pi-OS-shaped image, built without mounting."""
    if os.path.exists(path):
        return
    boot_mib = 256
    tmp = path + ".building"
    for f in (tmp, work + "/boot.fat", work + "/root.ext4"):
        if os.path.exists(f):
            os.remove(f)
    # Boot partition: FAT32 like Raspberry Pi OS, with real-sized firmware stand-ins.
    sh("truncate", "-s", f"{boot_mib}M", work + "/boot.fat")
    sh("mkfs.vfat", "-F", "32", "-n", "bootfs", work + "/boot.fat", stdout=subprocess.DEVNULL)
    files = work + "/bootfiles"
    shutil.rmtree(files, ignore_errors=True)
    os.makedirs(files + "/overlays")
    for name, size in [("kernel8.img", 9 * MIB), ("kernel_2712.img", 9 * MIB), ("initramfs8", 12 * MIB),
                       ("start4.elf", 2 * MIB), ("bcm2711-rpi-4-b.dtb", 55000), ("fixup4.dat", 5400)]:
        with open(os.path.join(files, name), "wb") as f:
            f.write(os.urandom(size))
    for i in range(300):
        with open(os.path.join(files, "overlays", f"overlay-{i}.dtbo"), "wb") as f:
            f.write(os.urandom(3000))
    stock = os.path.join(REPO, "fixtures/stock/bookworm")
    shutil.copy(os.path.join(stock, "config.txt"), files)
    with open(os.path.join(stock, "cmdline.txt")) as f:
        cmdline = f.read().replace("ROOTDEV", "PARTUUID=5e1105e1-02")
    with open(os.path.join(files, "cmdline.txt"), "w") as f:
        f.write(cmdline)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    sh("mcopy", "-s", "-i", work + "/boot.fat", *[os.path.join(files, n) for n in os.listdir(files)], "::/", env=env)
    # Root partition: ext4 with os-release and incompressible data.
    rootdir = work + "/rootfs"
    shutil.rmtree(rootdir, ignore_errors=True)
    os.makedirs(rootdir + "/etc")
    os.makedirs(rootdir + "/usr/lib")
    shutil.copy(os.path.join(REPO, "fixtures/stock/os-release/debian-12"), rootdir + "/usr/lib/os-release")
    os.symlink("../usr/lib/os-release", rootdir + "/etc/os-release")
    os.makedirs(rootdir + "/data")
    chunk = os.urandom(MIB)
    for i in range(root_fill_mib // 64):
        with open(f"{rootdir}/data/blob{i}", "wb") as f:
            for _ in range(64):
                f.write(chunk[i % 7:] + chunk[:i % 7])
    root_mib = total_mib - 4 - boot_mib
    sh("mke2fs", "-q", "-t", "ext4", "-L", "rootfs", "-d", rootdir, work + "/root.ext4", f"{root_mib}M")
    sh("truncate", "-s", f"{total_mib}M", tmp)
    table = f"label: dos\nlabel-id: 0x5e1105e1\nstart=8192, size={boot_mib * 2048}, type=c\nstart={8192 + boot_mib * 2048}, type=83\n"
    sh("sfdisk", "-q", tmp, input=table.encode())
    sh("dd", f"if={work}/boot.fat", f"of={tmp}", "bs=1M", "seek=4", "conv=notrunc,sparse", "status=none")
    sh("dd", f"if={work}/root.ext4", f"of={tmp}", "bs=1M", f"seek={4 + boot_mib}", "conv=notrunc,sparse", "status=none")
    for f in (work + "/boot.fat", work + "/root.ext4"):
        os.remove(f)
    shutil.rmtree(rootdir)
    shutil.rmtree(files)
    os.rename(tmp, path)


def timed(args, env=None):
    """Runs a command; returns (seconds, peak RSS of the child in KiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr.decode()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, peak if peak > before else None


def peak_rss(args, env=None):
    """Peak RSS (KiB) of one run, measured by GNU time (ru_maxrss of RUSAGE_CHILDREN is a maximum
    over all children so far, so it cannot isolate one run)."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=True)
    return int(proc.stderr.decode().strip().splitlines()[-1])


def profile(path, hostname):
    with open(path, "w") as f:
        f.write(f"""version: 1
os:
  init: auto
defaults:
  user:
    name: bench
    ssh_authorized_keys: ["{KEY}"]
  wifi: {{ssid: "Bench Net", psk: "bench passphrase", country: GB}}
nodes:
  - hostname: {hostname}
""")


def fleet_profile(path, count):
    """The bench profile with `count` nodes (bench-1 ... bench-COUNT)."""
    profile(path, f"bench-[1-{count}]")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=os.path.join(REPO, "target/bench"))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--only", choices=["engine", "cache", "flash", "parallel"])
    ap.add_argument("--card-rate", default="40:80", metavar="W[:R]",
                    help="parallel: also run with each card throttled to W MB/s write, R MB/s read "
                         "(default 40:80; R defaults to 2 x W; 0: no throttled run)")
    ap.add_argument("--record", metavar="FILE", help="also write the output to FILE (Markdown)")
    args = ap.parse_args()
    if args.record:
        sys.stdout = _Tee(sys.stdout)
    work = args.workdir
    os.makedirs(work, exist_ok=True)
    sh("cargo", "build", "--release", "--quiet", cwd=REPO)
    pinode = os.path.join(REPO, "target/release/pinode")
    ok = True
    if args.only in (None, "engine"):
        ok &= bench_engine(args, work, pinode)
    if args.only in (None, "cache"):
        ok &= bench_cache(args, work, pinode)
    if args.only in (None, "flash"):
        ok &= bench_flash(args, work, pinode)
    if args.only in (None, "parallel"):
        ok &= bench_parallel(args, work, pinode)
    if args.record:
        write_record(args.record, sys.stdout.captured.getvalue(), " ".join(sys.argv[1:]))
    return 0 if ok else 1


class _Tee:
    """Prints as usual and keeps a copy for --record."""

    def __init__(self, out):
        import io
        self.out, self.captured = out, io.StringIO()

    def write(self, text):
        self.captured.write(text)
        return self.out.write(text)

    def flush(self):
        self.out.flush()


def write_record(path, output, argv):
    def first_line(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    with open(path, "w") as f:
        f.write("# Performance: the latest full benchmark run\n\n")
        f.write("Written by `bench/bench.py --record docs/performance.md` (see the README's Performance\n"
                "section for what each measurement means). Times are medians; every baseline ran in\n"
                "the same run, alternating with pinode, on the same files and the same loop device.\n\n")
        f.write(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
        f.write(f"- command: `bench/bench.py {argv}`\n")
        f.write(f"- machine: {os.cpu_count()} CPUs ({cpu}), kernel {os.uname().release}; load average at "
                f"the end (1, 5, 15 min): {' '.join(open('/proc/loadavg').read().split()[:3])}\n")
        f.write(f"- pinode: {first_line(os.path.join(REPO, 'target/release/pinode'), '--version')}; "
                f"{first_line('xz', '--version')}; {first_line('bmaptool', '--version')}; "
                f"{first_line('dd', '--version')}\n\n")
        f.write("```\n" + output.strip() + "\n```\n")


def bench_engine(args, work, pinode):

    print("building images (kept in", work, "for the next run)...", flush=True)
    small, large = work + "/pi-300M.img", work + "/pi-3G.img"
    build_image(small, 300, 24, work)
    build_image(large, 3072, 1536, work)
    for name in ("a", "b"):
        profile(f"{work}/{name}.yaml", f"bench-{name}")
    env = dict(os.environ, CI="true")

    rows = []
    # patch: alternate two hostnames so every run really writes.
    patch_times = {}
    patch_rss = {}
    for label, image in (("300 MiB", small), ("3 GiB", large)):
        copy = image + ".patch"
        sh("cp", "--sparse=always", image, copy)
        samples = []
        for i in range(args.runs):
            t, _ = timed([pinode, "patch", copy, "--profile", f"{work}/{'ab'[i % 2]}.yaml"], env)
            samples.append(t)
        patch_times[label] = statistics.median(samples)
        patch_rss[label] = peak_rss([pinode, "patch", copy, "--profile", f"{work}/a.yaml"], env)
        os.remove(copy)

    # prepare vs cp --sparse=always, same base, same file system, warm cache. pinode's output
    # is fsync'ed and hashed when it returns, so the baselines are given three ways: the plain
    # copy, the copy made durable, and that plus the SHA-256 CI needs (openssl: SHA-NI, unlike
    # coreutils' sha256sum, which is 8x slower here).
    out = work + "/out"
    prep, cp, cp_sync, cp_sum = [], [], [], []
    copy = out + "/copy.img"
    for _ in range(max(3, args.runs // 2)):
        for series, command in (
            (cp, ["cp", "--sparse=always", large, copy]),
            (cp_sync, ["sh", "-c", f"cp --sparse=always '{large}' '{copy}' && sync '{copy}'"]),
            (cp_sum, ["sh", "-c", f"cp --sparse=always '{large}' '{copy}' && sync '{copy}' && openssl dgst -sha256 -r '{copy}' > '{copy}.sha256'"]),
            (prep, [pinode, "prepare", "--profile", f"{work}/a.yaml", "--image", large, "--out-dir", out]),
        ):
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            sh("sync")
            t, _ = timed(command, env)
            series.append(t)
    # N nodes at once: one per core, so N = C should cost one node's time and N = 2C two
    # (the goal: ceil(N/C) x one node x 1.1). Alternated with single-node runs, medians.
    cores = os.cpu_count() or 1
    fleets = {}
    for n in sorted({cores, 2 * cores}):
        fleet_profile(f"{work}/fleet-{n}.yaml", n)
        fleets[n] = {"times": [], "single": []}
    for _ in range(max(3, args.runs // 2)):
        for n, series in fleets.items():
            for key, yaml in (("single", f"{work}/a.yaml"), ("times", f"{work}/fleet-{n}.yaml")):
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                sh("sync")
                t, _ = timed([pinode, "prepare", "--profile", yaml, "--image", large, "--out-dir", out], env)
                series[key].append(t)
    for n, series in fleets.items():
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        series["rss"] = peak_rss([pinode, "prepare", "--profile", f"{work}/fleet-{n}.yaml", "--image", large,
                                  "--out-dir", out], env)
    prep_rss = peak_rss([pinode, "prepare", "--profile", f"{work}/a.yaml", "--image", large, "--out-dir", out], env)
    prep_small_rss = peak_rss([pinode, "prepare", "--profile", f"{work}/a.yaml", "--image", small, "--out-dir", out], env)
    shutil.rmtree(out)

    # The floor for prepare: SHA-256 of every byte of the 3 GiB output, on one core.
    hash_floor = sha256_seconds(os.path.getsize(large))

    ms = lambda s: f"{s * 1000:.1f} ms"
    med = statistics.median
    r_patch = patch_times["3 GiB"] / patch_times["300 MiB"]
    r_prep = med(prep) / med(cp)
    rows = [
        ("patch, 300 MiB image", ms(patch_times["300 MiB"]), "", f"{patch_rss['300 MiB'] / 1024:.1f} MiB"),
        ("patch, 3 GiB image", ms(patch_times["3 GiB"]), f"{r_patch:.2f}x of 300 MiB (target <= 1.2, < 100 ms)", f"{patch_rss['3 GiB'] / 1024:.1f} MiB"),
        ("cp --sparse=always", ms(med(cp)), "", ""),
        ("cp --sparse=always + sync", ms(med(cp_sync)), "", ""),
        ("cp + sync + openssl sha256", ms(med(cp_sum)), "", ""),
        ("sha256 of 3 GiB (floor)", ms(hash_floor), "", ""),
        ("prepare 1 node, 3 GiB", ms(med(prep)),
         f"{r_prep:.2f}x cp; {med(prep) / med(cp_sync):.2f}x cp+sync; {med(prep) / med(cp_sum):.2f}x cp+sync+sha256",
         f"{prep_rss / 1024:.1f} MiB"),
        ("prepare 1 node, 300 MiB", "", "", f"{prep_small_rss / 1024:.1f} MiB"),
        ("prepare 1 node vs floor", "", f"{med(prep) / hash_floor:.2f}x sha256 floor (target <= 1.1)", ""),
    ]
    fleet_checks = []
    for n, series in fleets.items():
        one = med(series["single"])
        goal = -(-n // cores) * one * 1.1
        rows.append((f"prepare {n} nodes at once, 3 GiB", ms(med(series["times"])),
                     f"{med(series['times']) / one:.2f}x one node ({ms(one)}); goal <= {ms(goal)}",
                     f"{series['rss'] / 1024:.1f} MiB"))
        fleet_checks.append((f"prepare {n} nodes on {cores} cores <= ceil({n}/{cores}) x one node x 1.1",
                             med(series["times"]) <= goal))
        fleet_checks.append((f"prepare {n} nodes: peak RSS < 64 MiB x {min(n, cores)} nodes at once",
                             series["rss"] < 64 * 1024 * min(n, cores)))
    print(f"\n{'measurement':<28} {'median time':>12}  {'ratio':<58} {'peak RSS':>9}")
    for name, t, ratio, rss in rows:
        print(f"{name:<28} {t:>12}  {ratio:<58} {rss:>9}")
    print(f"\nruns: {args.runs} (patch), {len(prep)} (prepare and each baseline); cpus: {os.cpu_count()}; "
          f"N-node runs alternated with one-node runs; load average now: "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])} (a loaded machine: medians, compare ratios)")
    checks = [
        ("patch 3 GiB < 100 ms", patch_times["3 GiB"] < 0.1),
        ("patch 3 GiB <= 1.2x 300 MiB", r_patch <= 1.2),
        ("prepare <= 1.2x cp --sparse=always", r_prep <= 1.2),
        ("prepare <= cp + sync + openssl sha256", med(prep) <= med(cp_sum)),
        ("prepare 1 node <= 1.1x the SHA-256 floor", med(prep) <= 1.1 * hash_floor),
        *fleet_checks,
        ("peak RSS < 64 MiB", max(prep_rss, prep_small_rss, *patch_rss.values()) < 64 * 1024),
    ]
    return report(checks)


def report(checks):
    for name, ok in checks:
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    return all(ok for _, ok in checks)


class _FileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with sendfile(2), so that the server is not what limits the clients."""

    def copyfile(self, source, outputfile):
        self.wfile.flush()
        self.connection.sendfile(source)

    def log_message(self, *a):
        pass


def serve(directory):
    handler = lambda *a, **kw: _FileHandler(*a, directory=directory, **kw)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def build_usr_image(path, size):
    """`size` bytes of real files (binaries, libraries, text) from /usr: compressible the way
    an OS image is, unlike random data."""
    if os.path.exists(path):
        return
    tmp = path + ".building"
    with open(tmp, "wb") as out:
        tar = subprocess.Popen(["tar", "cf", "-", "--ignore-failed-read", "/usr/lib", "/usr/share", "/usr/bin"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        left = size
        while left:
            chunk = tar.stdout.read(min(left, 1 << 20))
            if not chunk:
                break
            out.write(chunk)
            left -= len(chunk)
        tar.kill()
        tar.wait()
        out.truncate(size)
    os.rename(tmp, path)


def bench_cache(args, work, pinode):
    raw = work + "/usr-512M.img"
    multi, single = raw + ".multi.xz", raw + ".single.xz"
    print("building the cache benchmark image (kept for the next run)...", flush=True)
    build_usr_image(raw, 512 * MIB)
    for path, threads in ((multi, "0"), (single, "1")):
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as f:
                sh("xz", "-6", "-c", f"-T{threads}", raw, stdout=f)
            os.rename(path + ".tmp", path)
    sha = file_sha256(raw)
    blocks = lambda p: sum(1 for line in subprocess.run(["xz", "--robot", "-lv", p], capture_output=True,
                                                       text=True, check=True).stdout.splitlines()
                           if line.startswith("block\t"))
    srv_dir = work + "/srv"
    os.makedirs(srv_dir, exist_ok=True)
    for path in (raw, multi, single):
        link = os.path.join(srv_dir, os.path.basename(path))
        if not os.path.exists(link):
            os.link(path, link)
    server = serve(srv_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    cache = work + "/cache"
    env = dict(os.environ, CI="true", PINODE_CACHE_DIR=cache)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(var, None)
    out_file = work + "/xz-out.img"
    runs = max(3, args.runs // 2)
    med = statistics.median

    def pinode_download(url):
        return [pinode, "download", "--json", "--os", url, "--sha256", sha]

    def decompress_series(url):
        """pinode's decompression alone: the download stays in the cache, image.img goes."""
        shutil.rmtree(cache, ignore_errors=True)
        proc = subprocess.run(pinode_download(url), env=env, capture_output=True, text=True, check=True)
        image = json.loads(proc.stdout)["path"]
        times = []
        for _ in range(runs):
            os.remove(image)
            sh("sync")
            t, _ = timed(pinode_download(url), env)
            times.append(t)
        rss = peak_rss_after_remove(image, pinode_download(url), env)
        return times, rss

    def baseline(argv):
        times = []
        for _ in range(runs):
            if os.path.exists(out_file):
                os.remove(out_file)
            sh("sync")
            t, _ = timed(["sh", "-c", argv])
            times.append(t)
        return times

    xz_multi = baseline(f"xz -dc -T0 '{multi}' > '{out_file}'")
    xz_multi_sync = baseline(f"xz -dc -T0 '{multi}' > '{out_file}' && sync '{out_file}'")
    pin_multi, rss_multi = decompress_series(base + os.path.basename(multi))
    xz_single = baseline(f"xz -dc '{single}' > '{out_file}'")
    pin_single, rss_single = decompress_series(base + os.path.basename(single))
    # Multi-threaded xz holds a few blocks per thread (pi-gen's: 24 MiB each) whatever the
    # image size; the reference is xz's own footprint on the same file.
    rss_xz_multi = peak_rss(["xz", "-dc", "-T0", multi])

    # Downloads of the raw image: curl vs pinode (which hashes as it writes, then fsyncs).
    curl, curl_sync, pin_dl = [], [], []
    url = base + os.path.basename(raw)
    for _ in range(runs):
        for series, argv in ((curl, ["curl", "-sS", "-o", out_file, url]),
                             (curl_sync, ["sh", "-c", f"curl -sS -o '{out_file}' '{url}' && sync '{out_file}'"]),
                             (pin_dl, pinode_download(url))):
            shutil.rmtree(cache, ignore_errors=True)
            if os.path.exists(out_file):
                os.remove(out_file)
            sh("sync")
            t, _ = timed(argv, env)
            series.append(t)
    shutil.rmtree(cache, ignore_errors=True)
    rss_dl = peak_rss(pinode_download(url), env)
    server.shutdown()
    if os.path.exists(out_file):
        os.remove(out_file)

    ms = lambda s: f"{s * 1000:.0f} ms"
    r_multi, r_single, r_dl = med(pin_multi) / med(xz_multi), med(pin_single) / med(xz_single), med(pin_dl) / med(curl)
    size_mib = os.path.getsize(raw) / MIB
    rows = [
        (f"xz -dc -T0 ({blocks(multi)} blocks)", ms(med(xz_multi)), "", ""),
        ("xz -dc -T0 + sync", ms(med(xz_multi_sync)), "", f"{rss_xz_multi / 1024:.1f} MiB"),
        ("pinode, multi-block .xz", ms(med(pin_multi)), f"{r_multi:.2f}x xz -T0; {med(pin_multi) / med(xz_multi_sync):.2f}x xz -T0 + sync", f"{rss_multi / 1024:.1f} MiB"),
        ("xz -dc (1 block)", ms(med(xz_single)), "", ""),
        ("pinode, single-block .xz", ms(med(pin_single)), f"{r_single:.2f}x xz", f"{rss_single / 1024:.1f} MiB"),
        (f"curl -o ({size_mib:.0f} MiB)", ms(med(curl)), f"{size_mib / med(curl):.0f} MiB/s", ""),
        ("curl -o + sync", ms(med(curl_sync)), "", ""),
        ("pinode download (+sha256)", ms(med(pin_dl)), f"{r_dl:.2f}x curl; {med(pin_dl) / med(curl_sync):.2f}x curl + sync", f"{rss_dl / 1024:.1f} MiB"),
    ]
    print(f"\n{'cache measurement':<28} {'median time':>12}  {'ratio':<58} {'peak RSS':>9}")
    for name, t, ratio, rss in rows:
        print(f"{name:<28} {t:>12}  {ratio:<58} {rss:>9}")
    print(f"\nruns: {runs} each; cpus: {os.cpu_count()}")
    return report([
        ("multi-block .xz <= 1.1x xz -dc -T0", r_multi <= 1.1),
        ("single-block .xz <= 1.1x xz -dc", r_single <= 1.1),
        ("download <= 1.2x curl -o", r_dl <= 1.2),
        ("multi-block peak RSS <= xz -dc -T0's", rss_multi <= rss_xz_multi),
        ("single-block and download peak RSS < 64 MiB", max(rss_single, rss_dl) < 64 * 1024),
    ])


def peak_rss_after_remove(image, argv, env):
    os.remove(image)
    return peak_rss(argv, env)


def sha256_seconds(size):
    """Time to SHA-256 `size` bytes in memory with Python's OpenSSL-backed hashlib."""
    import hashlib
    block = bytes(1 << 20)
    h = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(size // len(block)):
        h.update(block)
    return time.perf_counter() - start




def used_bytes(image):
    """What the image's file systems count as used (dumpe2fs: blocks - free; fsck.fat: the
    area before the data clusters plus the clusters in use), and the bytes outside any
    partition. Read through read-only loop devices at the partitions' offsets."""
    parts = json.loads(subprocess.run(["sfdisk", "-J", image], check=True, capture_output=True,
                                      text=True).stdout)["partitiontable"]["partitions"]
    used, inside = 0, 0
    for p in parts:
        offset, length = p["start"] * 512, p["size"] * 512
        inside += length
        loop = subprocess.run(["losetup", "-r", "-f", "--show", "-o", str(offset), "--sizelimit", str(length), image],
                              check=True, capture_output=True, text=True).stdout.strip()
        try:
            if p["type"] == "83":
                text = subprocess.run(["dumpe2fs", "-h", loop], check=True, capture_output=True, text=True).stdout
                field = lambda name: int(next(l for l in text.splitlines() if l.startswith(name)).split(":")[1])
                used += (field("Block count") - field("Free blocks")) * field("Block size")
            else:
                text = subprocess.run(["fsck.fat", "-n", "-v", loop], capture_output=True, text=True).stdout
                lines = text.splitlines()
                data_start = int(next(l for l in lines if l.startswith("Data area starts at byte")).split()[5])
                cluster = int(next(l for l in lines if "bytes per cluster" in l).split()[0])
                clusters = int(next(l for l in lines if "data clusters" in l).split()[0])
                in_use = int(lines[-1].rsplit(", ", 1)[1].split("/")[0])
                used += data_start + in_use * cluster + (length - data_start - clusters * cluster)
        finally:
            subprocess.run(["losetup", "-d", loop])
    return used, os.path.getsize(image) - inside


def bench_flash(args, work, pinode):
    if os.geteuid() != 0:
        print("flash: skipped (needs root for a loop device)")
        return True
    small, large = work + "/pi-300M.img", work + "/pi-3G.img"
    print("building images (kept in", work, "for the next run)...", flush=True)
    build_image(small, 300, 24, work)
    build_image(large, 3072, 1536, work)
    profile(f"{work}/a.yaml", "bench-a")
    env = dict(os.environ, CI="true")
    size = os.path.getsize(large)
    # bmaptool's inputs: the node's prepared image with pinode's .bmap, and bmaptool's own map
    # of the same file (`bmaptool create`: the blocks the file stores, holes left out).
    prepared_dir = work + "/bmap"
    shutil.rmtree(prepared_dir, ignore_errors=True)
    sh(pinode, "prepare", "--bmap", "--profile", f"{work}/a.yaml", "--image", large, "--out-dir", prepared_dir,
       stdout=subprocess.DEVNULL, env=env)
    prepared = prepared_dir + "/bench-a.img"
    own_bmap = prepared_dir + "/bmaptool-create.bmap"
    sh("bmaptool", "-q", "create", "-o", own_bmap, prepared)
    import re
    mapped = lambda bmap: int(re.search(r"<MappedBlocksCount>\s*(\d+)\s*</MappedBlocksCount>",
                                        open(bmap).read()).group(1)) * 4096
    backing = work + "/card.bin"
    with open(backing, "wb") as f:
        f.truncate(size + 64 * MIB)
    # Direct I/O on the loop device: the backing file's page cache does not absorb the writes
    # or serve the read-back, as no card reader would.
    dev = subprocess.run(["losetup", "-f", "--show", "--direct-io=on", backing], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        def dd_baseline(hasher):
            return ["sh", "-c",
                    f"dd if='{large}' of={dev} bs=4M oflag=direct conv=fsync status=none && "
                    f"dd if={dev} bs=4M iflag=direct,count_bytes count={size} status=none | {hasher} >/dev/null"]
        flash = lambda image: [pinode, "flash", "--profile", f"{work}/a.yaml", "--image", image,
                               "--device", dev, "--yes", "--allow-non-removable"]
        bmaptool = lambda bmap: ["bmaptool", "-q", "copy", "--bmap", bmap, prepared, dev]
        dd_write = ["dd", f"if={large}", f"of={dev}", "bs=4M", "oflag=direct", "conv=fsync", "status=none"]
        series = {k: [] for k in ("dd_sum", "dd_ssl", "full", "ours", "dd_w", "full_w", "ours_w", "bmap_own", "bmap_ours")}
        for _ in range(max(3, args.runs // 2)):
            for key, command in (("dd_sum", dd_baseline("sha256sum")),
                                 ("dd_ssl", dd_baseline("openssl dgst -sha256")),
                                 ("full", flash(large) + ["--full"]),
                                 ("ours", flash(large)),
                                 ("dd_w", dd_write),
                                 ("full_w", flash(large) + ["--full", "--no-verify"]),
                                 ("ours_w", flash(large) + ["--no-verify"]),
                                 ("bmap_own", bmaptool(own_bmap)),
                                 ("bmap_ours", bmaptool(prepared + ".bmap"))):
                sh("sync")
                t, _ = timed(command, env)
                series[key].append(t)
        report_json = subprocess.run(flash(large) + ["--json"], env=env, check=True, capture_output=True,
                                     text=True).stdout
        card_report = json.loads(report_json)["nodes"][0]["report"]
        written, ranges = card_report["bytes"], card_report["ranges"]
        used, outside = used_bytes(prepared)
        rss_large = peak_rss(flash(large), env)
        rss_small = peak_rss(flash(small), env)
        rss_full = peak_rss(flash(large) + ["--full"], env)
    finally:
        subprocess.run(["losetup", "-d", dev])
        os.remove(backing)
    med = lambda key: statistics.median(series[key])
    gib = lambda n: f"{n / (1 << 30):.2f} GiB"
    rows = [
        ("dd oflag=direct + dd | sha256sum", "dd_sum", gib(size), "yes", ""),
        ("dd oflag=direct + dd | openssl sha256", "dd_ssl", gib(size), "yes", ""),
        ("pinode flash --full", "full", gib(size), "yes",
         f"{med('full') / med('dd_sum'):.2f}x dd+sha256sum, {med('full') / med('dd_ssl'):.2f}x dd+openssl"),
        ("pinode flash (allocation-aware)", "ours", gib(written), "written blocks",
         f"{med('ours') / med('full'):.2f}x --full, {med('ours') / med('dd_ssl'):.2f}x dd+openssl"),
        ("write only: dd oflag=direct conv=fsync", "dd_w", gib(size), "no", ""),
        ("write only: pinode --full --no-verify", "full_w", gib(size), "no", f"{med('full_w') / med('dd_w'):.2f}x dd"),
        ("write only: pinode --no-verify", "ours_w", gib(written), "no",
         f"{med('ours_w') / med('full_w'):.2f}x --full, {med('ours_w') / med('dd_w'):.2f}x dd"),
        ("bmaptool copy, bmaptool create's map", "bmap_own", gib(mapped(own_bmap)), "image side only",
         f"pinode: {med('ours_w') / med('bmap_own'):.2f}x (write only), {med('ours') / med('bmap_own'):.2f}x (with read-back)"),
        ("bmaptool copy, pinode prepare --bmap", "bmap_ours", gib(mapped(prepared + ".bmap")), "image side only", ""),
    ]
    print(f"\n{'flash, 3 GiB image (1.5 GiB of files)':<40} {'median':>8}  {'written':>9}  {'read back':<15}  ratio")
    for name, key, wrote, verify, ratio in rows:
        print(f"{name:<40} {med(key):>7.2f}s  {wrote:>9}  {verify:<15}  {ratio}")
    print(f"peak RSS of pinode flash: {rss_small / 1024:.1f} MiB (300 MiB image), "
          f"{rss_large / 1024:.1f} MiB (3 GiB image), {rss_full / 1024:.1f} MiB (3 GiB, --full)")
    print(f"runs: {len(series['ours'])} each, alternating; cpus: {os.cpu_count()}")
    budget = used + outside + ranges * 8192
    print(f"bytes written: {written} in {ranges} ranges; the file systems count {used} bytes used "
          f"(dumpe2fs, fsck.fat), {outside} bytes lie outside them; written / (used + outside) = "
          f"{written / (used + outside):.4f}")
    shutil.rmtree(prepared_dir, ignore_errors=True)
    return report([
        ("bytes written <= used + metadata + outside (+ 4 KiB rounding per range)", written <= budget),
        ("flash --full <= 1.15x dd + dd | sha256sum", med("full") / med("dd_sum") <= 1.15),
        ("allocation-aware flash <= 0.7x flash --full (write + verify)", med("ours") / med("full") <= 0.7),
        ("allocation-aware write <= 0.7x --full write", med("ours_w") / med("full_w") <= 0.7),
        # Issue 20, item 6: a plain write costs what dd costs; allocation-aware pays off.
        ("goal: flash --full --no-verify <= 1.05x dd oflag=direct conv=fsync",
         med("full_w") / med("dd_w") <= 1.05),
        ("goal: allocation-aware write + verify <= 0.45x --full write + verify",
         med("ours") / med("full") <= 0.45),
        ("flash peak RSS < 64 MiB", max(rss_large, rss_small, rss_full) < 64 * 1024),
    ])


def fleet_profile(path, hosts):
    """One profile with several nodes (a server and agents), for the parallel bench."""
    with open(path, "w") as f:
        f.write(f"""version: 1
os:
  init: auto
defaults:
  user:
    name: bench
    ssh_authorized_keys: ["{KEY}"]
nodes:
""")
        for i, host in enumerate(hosts):
            f.write(f"  - hostname: {host}\n    role: {'server' if i == 0 else 'agent'}\n")


def compressed_base(image):
    """The image as the .img.zst a user would download (made once, kept in the work directory)."""
    base = image + ".zst"
    if not os.path.exists(base):
        sh("zstd", "-q", "-T0", "-3", "-o", base + ".part", image)
        os.rename(base + ".part", base)
    return base


def card_rates(text):
    """--card-rate W[:R] in MB/s (10^6 bytes): R defaults to 2 x W, as card readers read
    about twice as fast as they write; 0 turns the throttled run off."""
    write, _, read = text.partition(":")
    write = float(write)
    return None if write <= 0 else (write, float(read) if read else 2 * write)


@contextlib.contextmanager
def throttled_cards(devs, write_mbps, read_mbps):
    """A cgroup v1 blkio group in which each card has its own write and read limit.

    The loop devices all sit on one disk, so unthrottled they share its bandwidth and three
    at once can hardly beat three in a row. Real cards are independent devices of 20-90 MB/s
    each: a per-device limit well below the disk's bandwidth makes each loop device such a
    card (the limits are per device, so three cards get three times the bandwidth of one).
    The writer uses O_DIRECT, so its I/O is issued by the throttled process itself (cgroup v1
    does not throttle buffered writeback)."""
    group = f"/sys/fs/cgroup/blkio/pinode-bench-{os.getpid()}"
    os.mkdir(group)
    try:
        for dev in devs:
            majmin = subprocess.run(["lsblk", "-dno", "MAJ:MIN", dev], check=True, capture_output=True,
                                    text=True).stdout.strip()
            for knob, mbps in (("write_bps_device", write_mbps), ("read_bps_device", read_mbps)):
                with open(f"{group}/blkio.throttle.{knob}", "w") as f:
                    f.write(f"{majmin} {int(mbps * 1e6)}\n")
        yield group
    finally:
        # Every process run in the group has exited by now (each is waited for).
        os.rmdir(group)


def in_group(group, argv):
    """argv run inside the cgroup: the shell joins it, then becomes the command (same PID), so
    every thread of the command is throttled and GNU time still measures the command."""
    return ["sh", "-c", 'echo $$ > "$0/tasks" && exec "$@"', group] + argv


def bench_parallel(args, work, pinode):
    """Three cards at once vs three in a row, from one compressed base (issue 20, item 1):
    on the bare loop devices (one disk's bandwidth shared by all cards), then with each
    loop device throttled to a card's own rate (--card-rate)."""
    if os.geteuid() != 0:
        print("parallel: skipped (needs root for loop devices)")
        return True
    large, small = work + "/pi-3G.img", work + "/pi-1G.img"
    print("building images (kept in", work, "for the next run)...", flush=True)
    build_image(large, 3072, 1536, work)
    hosts = ["fleet-1", "fleet-2", "fleet-3"]
    fleet_profile(f"{work}/fleet.yaml", hosts)
    fleet_profile(f"{work}/one.yaml", hosts[:1])
    ok = True

    run = three_cards(args, work, pinode, large, None)
    print_three_cards(run, "three cards, one .img.zst (3 GiB image)")
    print("unthrottled: the three loop devices share one virtual disk, so three cards at once "
          "share one disk's bandwidth\n(real card readers are independent devices: see the "
          "throttled run below)")
    ok &= report([
        ("three cards at once faster than three in a row", run.med("parallel") < run.med("serial")),
        ("peak RSS of three cards at once < 3 x 18 MiB + 64 MiB", max(run.rss["parallel"]) < (3 * 18 + 64) * 1024),
    ])

    rates = card_rates(args.card_rate)
    if rates is None:
        return ok
    # A 1 GiB image (half full, like the others) keeps the throttled run to a few minutes:
    # at card rates, one card's write and read-back take about 20 s.
    build_image(small, 1024, 512, work)
    run = three_cards(args, work, pinode, small, rates)
    write, read = rates
    print_three_cards(run, f"cards at {write:g} MB/s write, {read:g} MB/s read (1 GiB image)")
    per_card = run.written / 3
    floor = per_card / (write * 1e6) + per_card / (read * 1e6)
    one, par, ser = run.med("one"), run.med("parallel"), run.med("serial")
    print(f"throttled: each loop device limited on its own (cgroup v1 blkio), like independent card "
          f"readers;\none card's write + read-back at these rates alone: {floor:.2f}s; "
          f"at once / (one card + decompression): {par / one:.2f}; at once / in a row: {par / ser:.2f}")
    return ok & report([
        ("throttled: three cards at once <= 1.3 x one card (write + read-back + decompression)", par <= 1.3 * one),
        ("throttled: three cards at once <= 0.5 x three in a row", par <= 0.5 * ser),
        ("throttled: peak RSS of three cards at once < 3 x 18 MiB + 64 MiB",
         max(run.rss["parallel"]) < (3 * 18 + 64) * 1024),
    ])


class ThreeCards:
    """One series of the parallel bench: times per command, peak RSS, bytes written."""

    def __init__(self, size):
        self.size, self.series, self.rss, self.written = size, {}, {"parallel": [], "serial": []}, 0

    def med(self, key):
        return statistics.median(self.series[key])


def three_cards(args, work, pinode, image, rates):
    """Three nodes at once, in a row, and one alone, alternating, on three fresh loop devices
    (throttled to `rates` = (write, read) MB/s each when given), and the decompression alone."""
    base = compressed_base(image)
    scratch = work + "/scratch"
    os.makedirs(scratch, exist_ok=True)
    # The decompressed base goes to TMPDIR (see `flash`'s scratch_dir), here beside the cards.
    env = dict(os.environ, CI="true", TMPDIR=scratch, PINODE_STATE_DIR=work + "/fleet-state")
    run = ThreeCards(os.path.getsize(image))
    devs, backings = [], []
    try:
        for i in range(3):
            backing = f"{work}/fleet-card{i}.bin"
            with open(backing, "wb") as f:
                f.truncate(run.size + 64 * MIB)
            backings.append(backing)
            devs.append(subprocess.run(["losetup", "-f", "--show", "--direct-io=on", backing], check=True,
                                       capture_output=True, text=True).stdout.strip())
        with (throttled_cards(devs, *rates) if rates else contextlib.nullcontext()) as group:
            def flash(profile, cards, extra):
                argv = [pinode, "flash", "--profile", profile, "--image", base, "--yes", "--allow-non-removable"]
                for d in cards:
                    argv += ["--device", d]
                argv += extra
                return in_group(group, argv) if group else argv

            def discard():
                # The cards' old blocks go (loop devices punch holes in their files): every run
                # starts from empty cards, and the disk does not fill up. Not throttled: it
                # runs outside the group.
                for d in devs:
                    subprocess.run(["blkdiscard", d], stderr=subprocess.DEVNULL)
                sh("sync")

            commands = {
                "parallel": flash(f"{work}/fleet.yaml", devs, ["--parallel", "3"]),
                "serial": flash(f"{work}/fleet.yaml", devs, ["--serial"]),
                "one": flash(f"{work}/one.yaml", devs[:1], []),
                "unzstd": ["sh", "-c", f"zstd -q -dc '{base}' > '{scratch}/plain.img' && sync && rm '{scratch}/plain.img'"],
            }
            run.series = {k: [] for k in commands}
            for _ in range(max(2, args.runs // 3)):
                for key, argv in commands.items():
                    discard()
                    if key in run.rss:
                        start = time.perf_counter()
                        run.rss[key].append(peak_rss(argv, env))
                        run.series[key].append(time.perf_counter() - start)
                    else:
                        t, _ = timed(argv, env)
                        run.series[key].append(t)
            discard()
            summary = json.loads(subprocess.run(commands["parallel"] + ["--json"], env=env, check=True,
                                                capture_output=True, text=True).stdout)
            run.written = sum(n["report"]["bytes"] for n in summary["nodes"])
    finally:
        # Only the loop devices made here are detached.
        for d in devs:
            subprocess.run(["losetup", "-d", d])
        for b in backings:
            os.remove(b)
    return run


def print_three_cards(run, title):
    med = run.med
    gib = lambda n: f"{n / (1 << 30):.2f} GiB"
    print(f"\n{title:<44} {'median':>8}  {'written':>9}  {'peak RSS':>9}  ratio")
    rows = [
        ("zstd -dc > file (the decompression alone)", "unzstd", gib(run.size), "", ""),
        ("one node, one card (+ decompression)", "one", gib(run.written / 3), "", ""),
        ("three nodes, in a row (--serial)", "serial", gib(run.written), f"{max(run.rss['serial']) / 1024:.1f} MiB",
         f"{med('serial') / med('one'):.2f}x one card"),
        ("three nodes, at once (--parallel 3)", "parallel", gib(run.written),
         f"{max(run.rss['parallel']) / 1024:.1f} MiB",
         f"{med('parallel') / med('serial'):.2f}x in a row, {med('parallel') / med('one'):.2f}x one card"),
    ]
    for name, key, wrote, peak, ratio in rows:
        print(f"{name:<44} {med(key):>7.2f}s  {wrote:>9}  {peak:>9}  {ratio}")
    print(f"runs: {len(run.series['parallel'])} each, alternating; cpus: {os.cpu_count()}; "
          f"load average now: {' '.join(open('/proc/loadavg').read().split()[:3])}")

if __name__ == "__main__":
    sys.exit(main())
