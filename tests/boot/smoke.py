#!/usr/bin/python3
"""Boot smoke test: pinode-prepared images really boot and provision under QEMU.

Also the template for the real end-to-end test. Run as root (the image build needs it),
after tests/boot/setup-host.sh and `cargo build --release`:

    python3 tests/boot/smoke.py [--work /var/tmp/pinode-smoke] [--only firstrun|cloud-init]

Phases (each timed):
  1. build-base-image.sh WORK/base       firstrun.img, cloud-init.img, test CA (cached rootfs)
  2. a fresh ed25519 key (ssh-keygen) and a one-node profile (hostname smoke, user alice)
  3. pinode prepare --profile ... --image WORK/base/<variant>.img --out-dir WORK/<variant>/out
  4. copy the result, boot it (vm.Vm), wait for SSH as alice with the key
  5. checks over SSH; the serial log of every boot is in WORK/<variant>/vm/serial.log

Exit status 0 when every check passed. The last line is "N passed, N failed".
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from https_server import HttpsServer  # noqa: E402
from vm import Vm, boot_partition_files, read_boot_file  # noqa: E402

T0 = time.monotonic()
TIMINGS: list[tuple[str, float]] = []


class Phase:
    """with Phase("name"): ... prints how long the phase took."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.start = time.monotonic()
        print(f"--- {self.name} ...", flush=True)
        return self

    def __exit__(self, *exc):
        took = time.monotonic() - self.start
        TIMINGS.append((self.name, took))
        status = "" if exc[0] is None else f" (failed: {exc[1]!r})"
        print(f"--- {self.name}: {took:.1f}s{status} [total {time.monotonic() - T0:.0f}s]", flush=True)


class Checks:
    """Check results; safe to use from several threads (e2e.py boots nodes in parallel)."""

    def __init__(self):
        self.results: list[tuple[str, bool, str]] = []
        self._lock = threading.Lock()

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        mark = "PASS" if ok else "FAIL"
        with self._lock:
            self.results.append((name, ok, detail))
            print(f"  [{mark}] {name}" + (f": {detail.strip()[:300]}" if detail and not ok else ""), flush=True)
        return ok

    def failed_for(self, prefix: str) -> int:
        with self._lock:
            return sum(1 for name, ok, _ in self.results if not ok and name.startswith(prefix))

    @property
    def failed(self) -> int:
        return sum(1 for _, ok, _ in self.results if not ok)

    @property
    def passed(self) -> int:
        return sum(1 for _, ok, _ in self.results if ok)


def run(argv, **kw) -> subprocess.CompletedProcess:
    print("  $ " + shlex.join(str(a) for a in argv), flush=True)
    return subprocess.run([str(a) for a in argv], **kw)


def write_profile(path: Path, pubkey: Path, init: str) -> None:
    # JSON is YAML: no quoting surprises.
    profile = {
        "version": 1,
        "os": {"image": "raspios-lite-arm64", "init": init},
        "defaults": {
            "user": {
                "name": "alice",
                "ssh_authorized_keys_file": str(pubkey),
                "sudo": "nopasswd",
            },
            "ssh": {"enabled": True},
            "wifi": None,
            "timezone": "Europe/London",
            "locale": "en_GB.UTF-8",
            "keyboard": "gb",
        },
        "cluster": None,
        "nodes": [{"hostname": "smoke", "role": "server"}],
    }
    path.write_text(json.dumps(profile, indent=2) + "\n")


def boot_file_text(image: Path, name: str, tmp: Path) -> str | None:
    dest = tmp / f"peek-{name.replace('/', '_')}"
    try:
        read_boot_file(image, name, dest)
    except subprocess.CalledProcessError:
        return None
    return dest.read_text(errors="replace")


def serial_excerpt(vm: Vm, needles=("pinode", "firstrun", "Failed", "FAILED", "cloud-init", "userconf",
                                    "sshswitch", "Power down", "Restarting", "systemd.run")) -> str:
    lines = [line for line in vm.log_text().splitlines() if any(n in line for n in needles)]
    return "\n".join(lines[-80:])


def smoke_variant(variant: str, args, base: Path, key: Path, checks: Checks) -> None:
    init = "firstrun" if variant == "firstrun" else "cloud-init"
    vdir = args.work / variant
    if vdir.exists():
        shutil.rmtree(vdir)
    (vdir / "out").mkdir(parents=True)
    profile = vdir / "profile.yaml"
    write_profile(profile, key.with_suffix(".pub"), init)

    with Phase(f"{variant}: pinode prepare"):
        r = run([args.pinode, "prepare", "--profile", profile, "--image", base / f"{variant}.img",
                 "--out-dir", vdir / "out"], capture_output=True, text=True)
        print(r.stdout + r.stderr, end="")
        if not checks.check(f"{variant}: pinode prepare exits 0", r.returncode == 0, r.stderr):
            return
    prepared = vdir / "out" / "smoke.img"
    r = run([args.pinode, "inspect", prepared], capture_output=True, text=True)
    print(r.stdout + r.stderr, end="")
    print("  boot partition:", " ".join(sorted(boot_partition_files(prepared))))
    print("  cmdline.txt:", (boot_file_text(prepared, "cmdline.txt", vdir) or "").strip())

    with Phase(f"{variant}: copy image"):
        image = vdir / "smoke.img"
        run(["cp", "--sparse=always", prepared, image], check=True)

    www = vdir / "www"
    www.mkdir()
    (www / "probe.txt").write_text("pinode-e2e-probe\n")
    srv = HttpsServer(www, vdir / "https", base / "test-ca.pem", base / "test-ca.key").start()
    vm = Vm(image, vdir / "vm", https_port=srv.port)
    print(f"  ssh port {vm.ssh_port}, https port {srv.port}, serial log {vm.log_path}")
    try:
        with Phase(f"{variant}: boot until SSH as alice"):
            vm.start()
            up = vm.wait_for_ssh("alice", key, timeout=args.timeout)
            print(f"  boots so far: {vm.boots}; {json.dumps([{k: b.get(k) for k in ('boot', 'seconds', 'how')} for b in vm.boot_log])}")
        if not checks.check(f"{variant}: SSH as alice with the key", up,
                            f"boots={vm.boots} powered_off={vm.powered_off} failed={vm.failed}"):
            print("  serial log excerpt:\n" + serial_excerpt(vm))
            print("  serial log tail:\n" + vm.tail_log(40))
            return

        with Phase(f"{variant}: wait until the boot has settled"):
            # SSH answers before provisioning is over: on the cloud-init route sshd is
            # started by the `ssh` file, then cloud-init regenerates host keys, sets
            # PasswordAuthentication and restarts sshd (connections reset) until cloud-final.
            r = vm.settle("alice", key, timeout=600)
            out = "" if r is None else (r.stdout + r.stderr).strip()
            print("  " + out.replace("\n", "\n  "))
            checks.check(f"{variant}: boot settles (systemd/cloud-init done)", r is not None, out)

        with Phase(f"{variant}: checks"):
            def sh(cmd: str) -> subprocess.CompletedProcess:
                return vm.ssh("alice", key, cmd, timeout=60)

            r = sh("hostname")
            checks.check(f"{variant}: hostname is smoke", r.stdout.strip() == "smoke", r.stdout + r.stderr)
            r = sh("sudo -n true")
            checks.check(f"{variant}: sudo -n true", r.returncode == 0, r.stderr)
            r = sh("sudo -n sshd -T | grep -i '^passwordauthentication no'")
            checks.check(f"{variant}: sshd PasswordAuthentication no", r.returncode == 0, r.stdout + r.stderr)
            r = sh("cat /proc/cmdline")
            checks.check(f"{variant}: /proc/cmdline has cgroup_enable=memory",
                         "cgroup_enable=memory" in r.stdout.split(), r.stdout)
            r = sh("test ! -e /boot/firmware/firstrun.sh")
            checks.check(f"{variant}: /boot/firmware/firstrun.sh is gone", r.returncode == 0)
            r = sh("cat /boot/firmware/pinode-status.txt")
            want = "firstrun: ok" if variant == "firstrun" else "cloud-init: done"
            checks.check(f"{variant}: pinode-status.txt says '{want}'", want in r.stdout, r.stdout + r.stderr)
            if variant == "firstrun":
                r = sh("grep -c 'systemd.run' /boot/firmware/cmdline.txt")
                checks.check(f"{variant}: cmdline.txt no longer has systemd.run", r.stdout.strip() == "0",
                             r.stdout)
            r = sh("systemctl --failed --no-legend --plain")
            checks.check(f"{variant}: no failed systemd units", r.returncode == 0 and not r.stdout.strip(),
                         r.stdout + r.stderr)
            if variant == "cloud-init":
                r = sh("cloud-init status --long")
                checks.check(f"{variant}: cloud-init status: done (no module failed)",
                             "status: done" in r.stdout, r.stdout + r.stderr)
            # the test CA and the guestfwd relay: the e2e test's way to serve files to the node
            r = sh("curl -sS --max-time 20 https://10.0.2.100/probe.txt")
            checks.check(f"{variant}: guest fetches https://10.0.2.100/ (test CA trusted)",
                         r.stdout.strip() == "pinode-e2e-probe", r.stdout + r.stderr)
            # information for the e2e writer
            r = sh("id; cat /etc/timezone; cat /etc/default/locale; locale -a; "
                   "cat /sys/fs/cgroup/cgroup.controllers; systemctl is-enabled ssh; "
                   "sudo -n cat /var/log/pinode-firstboot.log 2>/dev/null | tail -n 20; "
                   "systemctl --failed --no-legend; nmcli -t -f NAME,DEVICE,TYPE connection show --active; "
                   "systemd-analyze 2>/dev/null | head -n 1; "
                   "if [ ! -e /etc/cloud/cloud-init.disabled ]; then cloud-init status --long; "
                   "sudo -n grep -h -i -E 'warn|fail|error' /var/log/cloud-init-output.log | head -n 20; fi")
            print("  guest state:\n" + "\n".join("    " + line for line in (r.stdout + r.stderr).splitlines()))

        with Phase(f"{variant}: reboot and SSH again"):
            before = vm.boots
            ok = vm.reboot_and_wait("alice", key, timeout=600)
            checks.check(f"{variant}: reboot restarts QEMU and SSH comes back",
                         ok and vm.boots == before + 1, f"boots {before} -> {vm.boots}")
            r = vm.ssh("alice", key, "hostname")
            checks.check(f"{variant}: still smoke after reboot", r.stdout.strip() == "smoke", r.stdout + r.stderr)
    finally:
        vm.stop()
        srv.stop()
        print(f"  boots: {json.dumps([{k: b.get(k) for k in ('boot', 'seconds', 'how')} for b in vm.boot_log])}")
        reqs = srv.requests()
        print(f"  https requests: {[(q['method'], q['path'], q['status']) for q in reqs]}")
        if checks.failed:
            print("  serial log excerpt:\n" + serial_excerpt(vm))


def main() -> int:
    ap = argparse.ArgumentParser(description="pinode boot smoke test under QEMU")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("PINODE_SMOKE_WORK", "/var/tmp/pinode-smoke")))
    ap.add_argument("--pinode", type=Path, default=REPO / "target" / "release" / "pinode")
    ap.add_argument("--only", choices=["firstrun", "cloud-init"], action="append",
                    help="run only this variant (repeatable); default: both")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for SSH per variant")
    ap.add_argument("--skip-build", action="store_true", help="reuse WORK/base as it is")
    args = ap.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.pinode.exists():
        print(f"error: {args.pinode} missing: run cargo build --release", file=sys.stderr)
        return 1

    checks = Checks()
    base = args.work / "base"
    if not args.skip_build:
        with Phase("build base images"):
            r = run(["bash", HERE / "build-base-image.sh", base])
            if not checks.check("build-base-image.sh exits 0", r.returncode == 0):
                print(f"{checks.passed} passed, {checks.failed} failed")
                return 1

    with Phase("ssh key"):
        key = args.work / "id_ed25519"
        for p in (key, key.with_suffix(".pub")):
            if p.exists():
                p.unlink()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "smoke@pinode-e2e", "-f", key], check=True)

    for variant in args.only or ["firstrun", "cloud-init"]:
        try:
            smoke_variant(variant, args, base, key, checks)
        except Exception as e:  # report and go on with the next variant
            checks.check(f"{variant}: ran without an exception", False, repr(e))

    print("\ntimings:")
    for name, took in TIMINGS:
        print(f"  {name:40s} {took:7.1f}s")
    print(f"  {'total':40s} {time.monotonic() - T0:7.1f}s")
    print(f"\n{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
