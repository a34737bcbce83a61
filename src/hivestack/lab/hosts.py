"""Lab hosts: systemd-nspawn containers (systemd as PID 1, sshd, python3) on an overlay over a cached base.

Each host gets its own network namespace (lab.network) and its own cgroup in both the unified and the
name=systemd hierarchies before nspawn starts: with `--keep-unit --register=no` every container would otherwise
land in one host cgroup and the containers' systemds would share (and stop) each other's units.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hivestack.lab.names import LabNames

CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"))
# Inside lab hosts the open-files limit cannot be raised past this (no CAP_SYS_RESOURCE here); say so explicitly.
NOFILE_LIMIT = 20_000
APT_PROXY = "http://100.64.0.1:3142"
EMULATED_MASKS = ("console-getty.service", "dbus.service", "dbus.socket", "systemd-logind.service", "ssh.service")
# An emulated host runs sshd per connection (inetd style) instead of an idle daemon under qemu.
SSHD_PER_CONNECTION = {
    "hivestack-sshd.socket": "[Socket]\nListenStream=22\nAccept=yes\n\n[Install]\nWantedBy=sockets.target\n",
    "hivestack-sshd@.service": (
        "[Service]\nRuntimeDirectory=sshd\nRuntimeDirectoryPreserve=yes\n"
        "ExecStart=-/usr/sbin/sshd -i\nStandardInput=socket\n"
    ),
}
WHEELS = "http://100.64.0.1:3141/"
# The host key Ansible, the tests and the drills verify (every SSH client here offers ed25519 first).
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"


class HostError(RuntimeError):
    pass


class HostDied(HostError):
    pass


@dataclass(frozen=True)
class HostSpec:
    stack: str
    name: str
    address: str
    netns: str
    base: Path  # lower layer: a ready root filesystem from lab.rootfs
    authorized_key: str
    arch: str  # the root filesystem's architecture: arm64 runs through qemu-user
    facts: dict[str, str]  # written to /etc/hivestack/host.json: what the topology says this host is

    @property
    def names(self) -> LabNames:
        return LabNames(self.stack)


def state_dir(root: Path, stack: str, host: str) -> Path:
    return root / ".hivestack" / "lab" / stack / "hosts" / host


def _cgroups(names: LabNames, host: str) -> list[Path]:
    return [base / names.cgroup(host) for base in CGROUP_ROOTS]


def _pid_file(names: LabNames, host: str) -> Path:
    return names.run_dir / "hosts" / f"{host}.pid"


def nspawn_pid(names: LabNames, host: str) -> int | None:
    """The host's nspawn process, if it is alive (checked against /proc, not trusted from the pid file)."""
    try:
        pid = int(_pid_file(names, host).read_text())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"systemd-nspawn" in cmdline and f"--machine={host}".encode() in cmdline else None


def _cgroup_tree(cg: Path) -> list[Path]:
    """The cgroup and every cgroup below it, deepest first. A running host's systemd makes and removes cgroups all
    the while (units start and stop); `os.walk` passes over a directory that vanishes while it is listed, where
    `Path.rglob` raises."""
    return [Path(top) for top, _dirs, _files in os.walk(cg, topdown=False)]


def cgroup_pids(names: LabNames, host: str) -> list[int]:
    """Every process in the host's cgroups."""
    return _pids_below(_cgroups(names, host))


def host_of(names: LabNames, pid: int, proc: Path = Path("/proc")) -> str | None:
    """The stack's host a process runs on, from the cgroups it is in (None: none of the stack's hosts, or gone).
    One read of /proc/<pid>/cgroup, where walking every host's cgroup tree would take hundreds."""
    prefix = f"/{names.cgroup_root}/"
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if path.startswith(prefix):
            return path[len(prefix) :].split("/", 1)[0]
    return None


def stack_pids(names: LabNames) -> list[int]:
    """Every process in any host cgroup of the stack: what a destroy must leave none of."""
    return _pids_below([base / names.cgroup_root for base in CGROUP_ROOTS])


@contextlib.contextmanager
def _unless_vanished() -> Iterator[None]:
    """A cgroup that systemd removes while the lab reads it: its directory is gone (ENOENT), or, while the kernel
    tears it down, its files answer ENODEV. An emulated host starts sshd per connection, so every readiness probe
    makes and removes one."""
    try:
        yield
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError) and exc.errno != errno.ENODEV:
            raise


def _pids_below(cgroups: list[Path]) -> list[int]:
    """A cgroup that vanishes between listing and reading held no process worth naming."""
    pids: set[int] = set()
    for cg in cgroups:
        for sub in _cgroup_tree(cg):
            with _unless_vanished():
                pids.update(int(p) for p in (sub / "cgroup.procs").read_text().split())
    return sorted(pids)


def is_running(names: LabNames, host: str) -> bool:
    return nspawn_pid(names, host) is not None


def _mount_overlay(d: Path, base: Path) -> Path:
    upper, work, merged = d / "upper", d / "work", d / "merged"
    for p in (upper, work, merged):
        p.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(merged):
        options = f"lowerdir={base},upperdir={upper},workdir={work}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    return merged


def _personalize(spec: HostSpec, merged: Path) -> None:
    """What makes a copy of the base into this host: identity, access, and the apt proxy."""
    etc = merged / "etc"
    (etc / "hostname").write_text(f"{spec.name}\n")
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n{spec.address} {spec.name}\n")
    machine_id = etc / "machine-id"
    if not machine_id.exists() or machine_id.is_symlink():
        machine_id.unlink(missing_ok=True)
        machine_id.write_text("")  # systemd generates one at first boot
    ssh = merged / "root" / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = ssh / "authorized_keys"
    keys.write_text(spec.authorized_key.strip() + "\n")
    keys.chmod(0o600)
    # Under qemu-user every process carries its own emulator (~10 MB): an emulated host keeps only what a
    # server managed over SSH needs (no console login, no D-Bus/logind sessions).
    masked = EMULATED_MASKS if spec.arch == "arm64" else ("console-getty.service",)
    for unit in masked:
        link = etc / "systemd" / "system" / unit
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")
    if spec.arch == "arm64":
        for unit, text in SSHD_PER_CONNECTION.items():
            (etc / "systemd" / "system" / unit).write_text(text)
        wants = etc / "systemd" / "system" / "sockets.target.wants"
        wants.mkdir(exist_ok=True)
        if not (wants / "hivestack-sshd.socket").is_symlink():
            (wants / "hivestack-sshd.socket").symlink_to("/etc/systemd/system/hivestack-sshd.socket")
    _make_host_keys(merged)
    (etc / "hivestack").mkdir(exist_ok=True)
    (etc / "hivestack" / "host.json").write_text(json.dumps({"name": spec.name, **spec.facts}, indent=1) + "\n")
    (etc / "apt" / "apt.conf.d" / "01hivestack-proxy").write_text(f'Acquire::http::Proxy "{APT_PROXY}";\n')
    # PyPI for hosts: wheels built on this machine, as production installs from an internal index.
    (etc / "pip.conf").write_text(f"[global]\nno-index = true\nfind-links = {WHEELS}\ntrusted-host = 100.64.0.1\n")


def _make_host_keys(merged: Path) -> None:
    """The host's SSH identity, made natively on this machine when its overlay is made (once: a reboot keeps it).

    Left to the host, an emulated arm64 host spends its first boot making keys under qemu (the RSA key alone took
    46 s), and nobody outside would know which keys to expect. Made here, the inventory verifies them."""
    if not (merged / HOST_KEY).exists():
        subprocess.run(["ssh-keygen", "-q", "-A", "-f", str(merged)], check=True, capture_output=True)


def host_key(root: Path, stack: str, host: str) -> str:
    """The host's ed25519 public key (`ssh-ed25519 AAAA...`), as known_hosts lists it."""
    line = (state_dir(root, stack, host) / "upper" / f"{HOST_KEY}.pub").read_text().split()
    return f"{line[0]} {line[1]}"


def start(spec: HostSpec, root: Path) -> int:
    """Make the host's overlay its own and boot it (idempotent: a running host is left alone)."""
    pid = nspawn_pid(spec.names, spec.name)
    if pid is not None:
        return pid
    d = state_dir(root, spec.stack, spec.name)
    d.mkdir(parents=True, exist_ok=True)
    (d / "base").write_text(str(spec.base))  # a restart after a fault needs only the name
    (d / "netns").write_text(spec.netns)
    (d / "arch").write_text(spec.arch)
    _personalize(spec, _mount_overlay(d, spec.base))
    return _boot(spec.names, root, spec.name)


def restart(names: LabNames, root: Path, host: str) -> int:
    """Boot a stopped or killed host again on its kept overlay (what it wrote survives, as on a real server)."""
    pid = nspawn_pid(names, host)
    if pid is not None:
        return pid
    d = state_dir(root, names.stack, host)
    if not (d / "base").exists():
        raise HostError(f"{host}: no overlay in {d}; was the host ever created in stack {names.stack!r}?")
    _mount_overlay(d, Path((d / "base").read_text()))
    return _boot(names, root, host)


def _boot(names: LabNames, root: Path, host: str) -> int:
    _reap_orphans(names, host)
    d = state_dir(root, names.stack, host)
    cgroups = _cgroups(names, host)
    for cg in cgroups:
        cg.mkdir(parents=True, exist_ok=True)
    command = [
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--boot",
        f"--machine={host}",
        f"--hostname={host}",
        f"--directory={d / 'merged'}",
        f"--network-namespace-path=/run/netns/{(d / 'netns').read_text()}",
        f"--rlimit=RLIMIT_NOFILE={NOFILE_LIMIT}",
        "--console=passive",
        # A host owns its network namespace as a server owns its NICs: the common role's firewall needs this.
        "--capability=CAP_NET_ADMIN",
        # The machine's resolver is unreachable from hosts: keep the base's empty resolv.conf.
        "--resolv-conf=off",
    ]
    if (d / "arch").read_text() == "arm64":
        # qemu-user (7.2) shifts real-time signals by 2: nspawn's SIGRTMIN+3 (halt) would arrive as SIGRTMIN+1
        # (rescue). Asking for SIGRTMIN+5 makes the emulated systemd see SIGRTMIN+3.
        command.append("--kill-signal=SIGRTMIN+5")

    # nspawn must start inside the host's own cgroups: a shell moves itself there, then becomes nspawn. Not a
    # Python preexec_fn: the caller is a multi-threaded gRPC server (a Pulumi provider), where code run between
    # fork and exec can deadlock, and the host then never boots.
    enter = "; ".join(f'echo $$ > "{cg / "cgroup.procs"}"' for cg in cgroups)
    with (d / "console.log").open("ab") as out:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", f'{enter}; exec "$@"', "sh", *command],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the short-lived process that started it (a Pulumi provider)
        )
    _CHILDREN[proc.pid] = proc
    pid_file = _pid_file(names, host)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(proc.pid))
    return proc.pid


# nspawn processes this process started: their exit status explains a host that died while booting.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def stop(names: LabNames, host: str, timeout: float = 15.0) -> None:
    """Shut the host down through its own systemd (SIGTERM to nspawn asks PID 1 to halt); then make sure no
    process of the host survives (orphans included) and release its cgroups."""
    pid = nspawn_pid(names, host)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        _wait_gone(pid, timeout)
    _reap_orphans(names, host)


def kill(names: LabNames, host: str) -> None:
    """A host crash: every process of the host killed at once, no shutdown."""
    for pid in cgroup_pids(names, host):
        _signal(pid, signal.SIGKILL)
    _reap_orphans(names, host)


def remove(names: LabNames, root: Path, host: str) -> None:
    """Stop the host and delete its overlay and files (its network namespace belongs to lab.network)."""
    stop(names, host)
    d = state_dir(root, names.stack, host)
    merged = d / "merged"
    if os.path.ismount(merged):
        subprocess.run(["umount", str(merged)], check=True)
    shutil.rmtree(d, ignore_errors=True)
    _pid_file(names, host).unlink(missing_ok=True)


def _reap_orphans(names: LabNames, host: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while pids := cgroup_pids(names, host):
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise HostError(f"{host}: processes {pids} survive SIGKILL")
        time.sleep(0.05)
    for cg in _cgroups(names, host):
        for sub in _cgroup_tree(cg):
            with _unless_vanished():
                sub.rmdir()


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        time.sleep(0.05)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# A boot that shows no progress for this long is stuck; one that keeps progressing may take up to BOOT_LIMIT_S
# (an emulated host on busy cores boots slowly, but steadily).
BOOT_STALL_S = 60.0
BOOT_LIMIT_S = 600.0


@dataclass
class _BootProgress:
    """Signs that a booting host is getting somewhere: its console grows, its set of processes changes."""

    console: Path
    pids: tuple[int, ...] = ()
    console_size: int = 0
    last_change: float = 0.0

    def observe(self, names: LabNames, host: str, now: float) -> None:
        pids = tuple(cgroup_pids(names, host))
        size = self.console.stat().st_size if self.console.exists() else 0
        if pids != self.pids or size != self.console_size:
            self.pids, self.console_size, self.last_change = pids, size, now

    def describe(self, now: float) -> str:
        lines = self.console.read_text(errors="replace").splitlines() if self.console.exists() else []
        last = next((line.strip() for line in reversed(lines) if line.strip()), "nothing")
        return (
            f"last sign of progress {now - self.last_change:.0f} s ago; {len(self.pids)} processes in the host; "
            f"its console's last line: {last[-160:]!r}"
        )


def wait_ready(mgmt: list[str], names: LabNames, root: Path, host: str, address: str) -> float:
    """Poll until the host's sshd greets over the management path; returns the seconds it took.

    Waits as long as the boot progresses (up to BOOT_LIMIT_S), gives up after BOOT_STALL_S without progress and
    then says what it was waiting for and what it last saw. Raises HostDied at once if the host's nspawn process
    exits meanwhile."""
    start = time.monotonic()
    progress = _BootProgress(state_dir(root, names.stack, host) / "console.log", last_change=start)
    while True:
        try:
            probe = subprocess.run(
                [*mgmt, "nc", "-w", "1", address, "22"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=5,
            )
            greeted = probe.stdout.startswith(b"SSH-")
        except subprocess.TimeoutExpired:
            greeted = False  # a machine busy with other stacks: no answer yet, like silence
        if greeted:
            return time.monotonic() - start
        alive, status = _started_process_state(names, host)
        if not alive:
            raise HostDied(f"{host}: its nspawn process exited while booting (exit status {status})")
        now = time.monotonic()
        progress.observe(names, host, now)
        if now - progress.last_change > BOOT_STALL_S or now - start > BOOT_LIMIT_S:
            raise HostError(
                f"{host}: waited {now - start:.0f} s for sshd's greeting at {address}:22; {progress.describe(now)}"
            )
        time.sleep(0.1)


def _started_process_state(names: LabNames, host: str) -> tuple[bool, int | None]:
    """Whether the host's recorded process lives, and its exit status when this process started it."""
    try:
        pid = int(_pid_file(names, host).read_text())
    except (OSError, ValueError):
        return False, None
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None, proc.returncode
    return nspawn_pid(names, host) is not None, None
