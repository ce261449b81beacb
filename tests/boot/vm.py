"""Boot a Pi-OS-shaped arm64 image under QEMU, the way a Raspberry Pi would.

Standard library only. Typical use::

    from vm import Vm
    vm = Vm("work/node.img", "work/vm", https_port=server.port)
    vm.start()
    if not vm.wait_for_ssh("alice", "work/id_ed25519", timeout=900):
        print(vm.tail_log())
    print(vm.ssh("alice", "work/id_ed25519", "hostname").stdout)
    vm.reboot_and_wait("alice", "work/id_ed25519")
    vm.stop()

Every boot reads the kernel and initramfs config.txt names (kernel8.img, initramfs8 by default) and cmdline.txt from the image's own FAT boot
partition (with mtools, no mounting), as the Pi firmware does, so first-boot programs that
edit cmdline.txt and reboot behave as on the real board. QEMU runs with -no-reboot: a guest
reboot ends QEMU and this module starts it again, until stop() (or a guest power-off, or
max_boots). Network: QEMU user networking with restrict=on (the guest reaches nothing but the
forwards below), ssh forwarded from 127.0.0.1:<ssh_port>, and the guest's TCP connections to
10.0.2.100:443 relayed (one relay process per connection, `socat`) to an HTTPS server on
127.0.0.1:<https_port>. The serial console of every boot is appended to WORKDIR/serial.log.
SSH: with known_hosts and host_key_alias (a cluster node: pinode's known_hosts of the cluster and
the node's name), every connection checks the guest's host key strictly against that file;
without them (a node whose key nobody made in advance), any key is accepted.
"""

from __future__ import annotations

import atexit
import os
import random
import shlex
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

QEMU = "qemu-system-aarch64"
GUEST_HTTPS_ADDR = "10.0.2.100"

# Connection options without the host key policy (see host_key_options).
SSH_BASE_OPTIONS = [
    "-o", "BatchMode=yes",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
    "-o", "ServerAliveInterval=5",
    "-o", "ServerAliveCountMax=3",
    "-o", "IdentitiesOnly=yes",
    "-o", "PasswordAuthentication=no",
    "-o", "KbdInteractiveAuthentication=no",
]


def host_key_options(known_hosts: str | os.PathLike | None, alias: str | None = None) -> list[str]:
    """The host key policy. With known_hosts (pinode's file of a cluster): strict checking
    against exactly that file, the key looked up under alias (the node's hostname, as pinode
    names it there, although the connection goes to 127.0.0.1 and a forwarded port), and no
    other way to trust a key. Without: any key is accepted (smoke.py, whose node is no
    cluster node and so has no host key made by pinode)."""
    if known_hosts is None:
        return ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "GlobalKnownHostsFile=/dev/null"]
    if not alias:
        raise ValueError("a known_hosts file needs the node's name (HostKeyAlias)")
    return ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"HostKeyAlias={alias}",
            "-o", "UpdateHostKeys=no", "-o", "CheckHostIP=no",
            "-o", "KnownHostsCommand=none", "-o", "VerifyHostKeyDNS=no"]


# Any host key (no known_hosts): for machines whose key nobody made in advance.
SSH_OPTIONS = [*SSH_BASE_OPTIONS, *host_key_options(None)]


def free_port() -> int:
    """A free TCP port on 127.0.0.1, picked at random (not a kernel-sequential one)."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(20000, 60999)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found on 127.0.0.1")


def mbr_partitions(image: str | os.PathLike) -> list[tuple[int, int, int]]:
    """(type, start_byte, size_bytes) of the MBR's primary partitions, in table order."""
    with open(image, "rb") as f:
        mbr = f.read(512)
    if len(mbr) != 512 or mbr[510:512] != b"\x55\xaa":
        raise ValueError(f"{image}: no MBR signature")
    parts = []
    for i in range(4):
        entry = mbr[446 + 16 * i: 446 + 16 * (i + 1)]
        ptype = entry[4]
        start, count = struct.unpack("<II", entry[8:16])
        if ptype and count:
            parts.append((ptype, start * 512, count * 512))
    return parts


def boot_partition_offset(image: str | os.PathLike) -> int:
    """Byte offset of the FAT boot partition (the first FAT-typed primary partition)."""
    for ptype, start, _ in mbr_partitions(image):
        if ptype in (0x0B, 0x0C, 0x0E, 0x06, 0x04, 0x01, 0xEF):
            return start
    raise ValueError(f"{image}: no FAT partition in the MBR")


def read_boot_file(image: str | os.PathLike, name: str, dest: str | os.PathLike) -> None:
    """Copy ::name from the image's FAT boot partition to dest (mtools, no mounting)."""
    offset = boot_partition_offset(image)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    subprocess.run(["mcopy", "-n", "-o", "-i", f"{image}@@{offset}", f"::{name}", str(dest)],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def boot_partition_files(image: str | os.PathLike) -> list[str]:
    """File names in the root directory of the boot partition."""
    offset = boot_partition_offset(image)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    out = subprocess.run(["mdir", "-b", "-i", f"{image}@@{offset}", "::"], check=True, env=env,
                         capture_output=True, text=True).stdout
    return [line.rstrip("/").rsplit("/", 1)[-1] for line in out.splitlines() if line.strip()]


def firmware_files(config_txt: str) -> tuple[str, str]:
    """The kernel and initramfs the Pi firmware loads, from config.txt: `kernel=NAME` and
    `initramfs NAME followkernel` (Ubuntu's vmlinuz / initrd.img), else the 64-bit defaults
    with `auto_initramfs=1` (Pi OS: kernel8.img, initramfs8). Conditional sections are read
    as the virt machine's "Pi" would: every line counts, the last one wins."""
    kernel, initrd = "kernel8.img", "initramfs8"
    for line in config_txt.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("kernel="):
            kernel = line.split("=", 1)[1].strip()
        elif line.startswith("initramfs "):
            initrd = line.split()[1]
    return kernel, initrd


def qemu_cmdline(cmdline_txt: str) -> str:
    """cmdline.txt as the kernel should see it under QEMU: the Pi consoles
    (console=serial0,115200 console=tty1) become console=ttyAMA0 (the virt machine's PL011)."""
    tokens = cmdline_txt.strip().split()
    out: list[str] = []
    placed = False
    for tok in tokens:
        if tok.startswith("console=serial0") or tok == "console=tty1" or tok.startswith("console=ttyAMA0"):
            if not placed:
                out.append("console=ttyAMA0")
                placed = True
            continue
        out.append(tok)
    if not placed:
        out.insert(0, "console=ttyAMA0")
    return " ".join(out)


class Vm:
    """One emulated Raspberry Pi booting IMAGE (used in place: pass a copy)."""

    def __init__(self, image, workdir, https_port: int | None = None, *,
                 memory_mib: int = 2048, smp: int = 2, ssh_port: int | None = None,
                 guestfwd: dict[int, int] | None = None, cmdline_prefix: str = "",
                 max_boots: int = 20, log_name: str = "serial.log", qemu: str = QEMU,
                 extra_args: list[str] | None = None, known_hosts: str | os.PathLike | None = None,
                 host_key_alias: str | None = None):
        """https_port: guest 10.0.2.100:443 is relayed to 127.0.0.1:https_port.
        guestfwd: more relays, {guest port on 10.0.2.100: host port on 127.0.0.1}.
        cmdline_prefix: tokens put before cmdline.txt, as the Pi firmware does
        (e.g. "cgroup_disable=memory"; note that mainline kernels have no cgroup_enable=
        to undo that, only the Raspberry Pi kernel has).
        known_hosts, host_key_alias: every SSH connection checks the guest's host key strictly
        against this file under this name (see host_key_options); without, any key is taken."""
        self.image = Path(image).resolve()
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.https_port = https_port
        self.memory_mib = memory_mib
        self.smp = smp
        self.ssh_port = ssh_port or free_port()
        self.guestfwd = dict(guestfwd or {})
        if https_port:
            self.guestfwd[443] = https_port
        self.cmdline_prefix = cmdline_prefix
        self.max_boots = max_boots
        self.qemu = qemu
        self.extra_args = list(extra_args or [])
        self.known_hosts = None if known_hosts is None else Path(known_hosts)
        self.host_key_alias = host_key_alias
        host_key_options(self.known_hosts, host_key_alias)  # refuses a file without a name
        self.log_path = self.workdir / log_name
        self.boots = 0                 # how many times QEMU was started
        self.boot_log: list[dict] = []  # per boot: start, end, exit code, cmdline, how it ended
        self.powered_off = False       # the guest powered off (not a reboot): not restarted
        self.failed: str | None = None  # QEMU could not run / boot files unreadable
        self._proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._boot_changed = threading.Condition(self._lock)
        atexit.register(self.stop)

    # ---------------------------------------------------------------- life cycle
    def start(self) -> "Vm":
        if self._thread is not None:
            raise RuntimeError("already started")
        if not self.image.exists():
            raise FileNotFoundError(self.image)
        self._stopping.clear()
        _exit_on_sigterm()
        self._thread = threading.Thread(target=self._run, name=f"vm-{self.image.name}", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """QEMU is running now, or will be started again (between two boots)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop QEMU (and with it the relays it started) and stop restarting it."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._kill_group(proc, timeout)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @staticmethod
    def _kill_group(proc: subprocess.Popen, timeout: float) -> None:
        # QEMU runs in its own session: its process group id is its PID, and the
        # guestfwd relays it forks are in that group too.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout)
                # relays may outlive QEMU by a moment
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return
            except subprocess.TimeoutExpired:
                continue

    # ---------------------------------------------------------------- boots
    def _log(self, text: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"\n===== vm.py {time.strftime('%H:%M:%S')} {text} =====\n")

    def _boot_files(self, n: int) -> tuple[Path, Path, str]:
        d = self.workdir / "boot-files"
        d.mkdir(exist_ok=True)
        config = d / "config.txt"
        config.unlink(missing_ok=True)
        read_boot_file(self.image, "config.txt", config)
        kernel_name, initrd_name = firmware_files(config.read_text(encoding="utf-8", errors="replace"))
        kernel, initrd, cmdline = d / "kernel", d / "initramfs", d / "cmdline.txt"
        for name, dest in ((kernel_name, kernel), (initrd_name, initrd), ("cmdline.txt", cmdline)):
            if dest.exists():
                dest.unlink()
            read_boot_file(self.image, name, dest)
        text = cmdline.read_text(encoding="utf-8", errors="replace")
        append = qemu_cmdline(text)
        if self.cmdline_prefix:
            append = f"{self.cmdline_prefix} {append}"
        return kernel, initrd, append

    def qemu_argv(self, kernel, initrd, append) -> list[str]:
        netdev = f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22"
        for guest_port, host_port in sorted(self.guestfwd.items()):
            relay = f"socat - TCP:127.0.0.1:{int(host_port)}"
            netdev += f",guestfwd=tcp:{GUEST_HTTPS_ADDR}:{int(guest_port)}-cmd:{relay}"
        return [
            self.qemu, "-M", "virt", "-cpu", "cortex-a72", "-smp", str(self.smp),
            "-m", str(self.memory_mib), "-nographic", "-no-reboot",
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
            "-drive", f"file={self.image},if=virtio,format=raw",
            "-device", "virtio-rng-pci",
            "-netdev", netdev,
            "-device", "virtio-net-pci,netdev=n0,romfile=",
            *self.extra_args,
        ]

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self.boots >= self.max_boots:
                    self._log(f"max_boots={self.max_boots} reached: not starting QEMU again")
                    self.failed = f"max_boots={self.max_boots} reached"
                    break
                n = self.boots + 1
                try:
                    kernel, initrd, append = self._boot_files(n)
                except (subprocess.CalledProcessError, OSError, ValueError) as e:
                    err = getattr(e, "stderr", b"") or b""
                    self.failed = f"boot {n}: cannot read the boot partition: {e} {err!r}"
                    self._log(self.failed)
                    break
                argv = self.qemu_argv(kernel, initrd, append)
                self._log(f"boot {n}: {append}")
                with open(self.log_path, "a", encoding="utf-8") as f:
                    f.write("===== qemu: " + shlex.join(argv) + "\n")
                log_start = self.log_path.stat().st_size
                started = time.monotonic()
                logf = open(self.log_path, "ab")
                try:
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                finally:
                    logf.close()
                with self._boot_changed:
                    self._proc = proc
                    self.boots = n
                    self.boot_log.append({"boot": n, "started": time.time(), "cmdline": append,
                                          "pid": proc.pid})
                    self._boot_changed.notify_all()
                if self._stopping.is_set():  # stop() raced with the start
                    self._kill_group(proc, 10)
                rc = proc.wait()
                # relays (socat) of this boot end with their connection; make sure
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                elapsed = time.monotonic() - started
                with open(self.log_path, "rb") as f:
                    f.seek(log_start)
                    tail = f.read().decode("utf-8", "replace")
                how = "stopped" if self._stopping.is_set() else (
                    "power-off" if "reboot: Power down" in tail else
                    "reboot" if "reboot: Restarting system" in tail else
                    f"qemu exited {rc}")
                with self._boot_changed:
                    self.boot_log[-1].update(ended=time.time(), seconds=round(elapsed, 1),
                                             exit_code=rc, how=how)
                    self._boot_changed.notify_all()
                self._log(f"boot {n} ended after {elapsed:.0f}s: {how}")
                if self._stopping.is_set():
                    break
                if how == "power-off":
                    self.powered_off = True
                    break
                if rc != 0:
                    self.failed = f"boot {n}: QEMU exited with {rc} after {elapsed:.0f}s"
                    break
        finally:
            with self._boot_changed:
                self._proc = None
                self._boot_changed.notify_all()

    def wait_for_boot(self, n: int, timeout: float) -> bool:
        """Wait until QEMU has been started at least n times."""
        deadline = time.monotonic() + timeout
        with self._boot_changed:
            while self.boots < n:
                left = deadline - time.monotonic()
                if left <= 0 or not self.running:
                    return self.boots >= n
                self._boot_changed.wait(min(left, 1.0))
        return True

    # ---------------------------------------------------------------- ssh
    def ssh_options(self, known_hosts: str | os.PathLike | None = None) -> list[str]:
        """ssh's options for this guest: its host key checked against self.known_hosts (or
        against known_hosts, to show that another file is refused)."""
        return [*SSH_BASE_OPTIONS, *host_key_options(known_hosts or self.known_hosts, self.host_key_alias)]

    def ssh_argv(self, user: str, key, command: str | None = None,
                 known_hosts: str | os.PathLike | None = None) -> list[str]:
        argv = ["ssh", *self.ssh_options(known_hosts), "-i", str(key), "-p", str(self.ssh_port),
                f"{user}@127.0.0.1"]
        if command is not None:
            argv += ["--", command]
        return argv

    def ssh(self, user: str, key, command: str, timeout: float = 120.0,
            check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
        """Run command (a shell string) on the guest; stdout/stderr captured as text."""
        try:
            return subprocess.run(self.ssh_argv(user, key, command), capture_output=True, text=True,
                                  timeout=timeout, check=check, input=input,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(e.cmd, 255, stdout=_text(e.stdout),
                                               stderr=_text(e.stderr) + f"\n(timed out after {timeout}s)")

    def wait_for_ssh(self, user: str, key, timeout: float = 900.0, min_boot: int = 0) -> bool:
        """True once `ssh user@guest true` succeeds (on boot min_boot or later); False on
        timeout, or when QEMU will not run again (power-off, failure, stopped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if self.boots >= max(min_boot, 1):
                r = self.ssh(user, key, "true", timeout=30)
                if r.returncode == 0:
                    return True
            time.sleep(3)
        return False

    def wait_for_command(self, user: str, key, command: str, timeout: float = 600.0,
                         ok_codes=(0,), interval: float = 5.0) -> subprocess.CompletedProcess | None:
        """Run command until its exit status is in ok_codes (retrying through SSH failures,
        e.g. while cloud-init restarts sshd); the last result, or None if SSH never answered."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline and self.running:
            left = max(5.0, deadline - time.monotonic())
            r = self.ssh(user, key, command, timeout=left)
            if r.returncode != 255:
                last = r
                if r.returncode in ok_codes:
                    return r
            time.sleep(interval)
        return last

    def settle(self, user: str, key, timeout: float = 600.0) -> subprocess.CompletedProcess | None:
        """Wait until the boot is over: systemd's start-up jobs are done (running/degraded)
        and, where cloud-init is enabled, cloud-init has finished all its stages."""
        return self.wait_for_command(
            user, key,
            "systemctl is-system-running --wait; "
            "if [ ! -e /etc/cloud/cloud-init.disabled ] && command -v cloud-init >/dev/null; then "
            "cloud-init status --wait >/dev/null 2>&1; cloud-init status; fi; true",
            timeout=timeout)

    def reboot_and_wait(self, user: str, key, timeout: float = 600.0,
                        command: str = "sudo -n systemctl reboot") -> bool:
        """Reboot the guest (QEMU ends and is started again from the FAT's files) and wait
        for SSH on the new boot. The reboot command is sent again if QEMU has not ended
        within 90 s (e.g. sshd was restarting when it was sent)."""
        deadline = time.monotonic() + timeout
        before = self.boots
        while self.boots == before:
            left = deadline - time.monotonic()
            if left <= 0 or not self.running:
                return False
            self.ssh(user, key, command, timeout=30)
            self.wait_for_boot(before + 1, min(90.0, max(1.0, deadline - time.monotonic())))
        return self.wait_for_ssh(user, key, max(1.0, deadline - time.monotonic()), min_boot=before + 1)

    # ---------------------------------------------------------------- logs
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail_log(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def grep_log(self, needle: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if needle in line]


def _exit_on_sigterm() -> None:
    """Make SIGTERM exit through SystemExit, so that atexit/finally stop QEMU (it runs in
    its own session and would outlive this process). Only if nobody set a handler yet."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def handler(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, handler)


def _text(b) -> str:
    if b is None:
        return ""
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return b
