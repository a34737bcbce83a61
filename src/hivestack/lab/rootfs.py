"""The cached Debian base root filesystem that every lab host runs on (the lower layer of its overlay).

One base per architecture, built once with debootstrap and reused while its key (suite, architecture, package
list, format version) matches. arm64 bases are real aarch64 trees, run through qemu-user via binfmt_misc.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

SUITE = "bookworm"
ARCHES = ("amd64", "arm64")
# python3 for Ansible, iputils-ping for reachability tests; everything else comes later through the apt proxy.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "iproute2",
    "sudo",
    "iputils-ping",
    "ca-certificates",
)
# Bump whenever the build or the post-build tweaks change, so that old caches stop matching.
FORMAT_VERSION = 1

# Units masked in every host: wait-online cannot succeed without a network manager inside (the lab configures
# addresses from outside), and the apt timers are useless (apt runs only from playbooks, through the apt proxy)
# and would race playbooks for the dpkg lock.
MASKED_UNITS = ("systemd-networkd-wait-online.service", "apt-daily.timer", "apt-daily-upgrade.timer")

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_AARCH64_RULE = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")  # shipped by qemu-user-static
APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))

_CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "DEBIAN_FRONTEND": "noninteractive",
}
_TAIL_LINES = 25


class RootfsError(Exception):
    """A base root filesystem could not be built; carries the failing command and the tail of its output."""

    def __init__(self, message: str, command: list[str] | None = None, output: str = "") -> None:
        self.command = command
        self.output = output
        text = message
        if command:
            text += f"\ncommand: {' '.join(command)}"
        tail = output.strip().splitlines()[-_TAIL_LINES:]
        if tail:
            text += "\noutput (tail):\n  " + "\n  ".join(tail)
        super().__init__(text)


def cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "hivestack" / "rootfs"


def base_key(arch: str) -> str:
    _check_arch(arch)
    spec = {"suite": SUITE, "arch": arch, "packages": sorted(PACKAGES), "format": FORMAT_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def ensure_base(arch: str, progress: Callable[[str], None] | None = None) -> Path:
    """Return the directory of a ready base for `arch`, building it first if the cache has none."""
    say = progress or (lambda _line: None)
    name = f"{arch}-{base_key(arch)}"
    root = cache_root()
    final = root / name
    # The rename below is the only way a complete tree gets this name, so existence means ready.
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{name}.lock", say) as lock_fd:
        if final.is_dir():  # another process built it while we waited
            return final
        partial = root / f"{name}.partial"
        _remove_tree(partial)  # left over by an interrupted build; we hold the lock, so nobody else owns it
        try:
            _build(arch, partial, say, lock_fd)
            os.sync()  # the rename must not become durable before the tree it names
            partial.rename(final)
        except BaseException:
            _remove_tree(partial)
            raise
    return final


def ensure_arm64_emulation() -> None:
    """Make aarch64 binaries runnable here: binfmt_misc mounted, qemu-aarch64 registered with the F flag.

    F (fix binary) makes the kernel open the interpreter once, at registration, so it works inside chroots and
    containers whose trees do not contain it. Bases therefore carry no copy of qemu: a copy would only rescue a
    registration without F, and only at that registration's interpreter path.
    """
    if not (BINFMT_DIR / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], "cannot mount binfmt_misc")
    entry = BINFMT_DIR / "qemu-aarch64"
    if entry.exists():
        if _binfmt_ready(entry):
            return
        # Registered without F (or disabled): it would need the interpreter inside every tree; replace it.
        entry.write_text("-1")
    if not QEMU_AARCH64_RULE.is_file():
        raise RootfsError(f"{QEMU_AARCH64_RULE} is missing: install qemu-user-static to run arm64 hosts")
    rule = next(
        line.strip() for line in QEMU_AARCH64_RULE.read_text().splitlines() if line.strip() and line[0] not in "#;"
    )
    fields = rule.split(":")
    if len(fields) != 8:
        raise RootfsError(f"unexpected binfmt rule in {QEMU_AARCH64_RULE}: {rule}")
    if "F" not in fields[7]:
        fields[7] += "F"
    try:
        (BINFMT_DIR / "register").write_text(":".join(fields))
    except OSError as exc:
        if not (entry.exists() and _binfmt_ready(entry)):  # else another process registered it just before us
            raise RootfsError(f"cannot register qemu-aarch64 with binfmt_misc: {exc}") from exc
    if not _binfmt_ready(entry):
        raise RootfsError(f"qemu-aarch64 registered but not enabled with the F flag:\n{entry.read_text()}")


def _binfmt_ready(entry: Path) -> bool:
    status = entry.read_text().splitlines()
    flags = next((line.split(":", 1)[1] for line in status if line.startswith("flags:")), "")
    return bool(status) and status[0] == "enabled" and "F" in flags


def _check_arch(arch: str) -> None:
    if arch not in ARCHES:
        raise ValueError(f"unsupported architecture {arch!r} (valid: {', '.join(ARCHES)})")


def _native_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _build(arch: str, target: Path, say: Callable[[str], None], lock_fd: int) -> None:
    native = _native_arch()
    if arch != native:
        if arch != "arm64":
            raise RootfsError(f"cannot build an {arch} base on an {native} machine (only arm64 is emulated)")
        say("arm64: enabling qemu-aarch64 through binfmt_misc")
        ensure_arm64_emulation()
    mirror = debian_mirror()
    log = target / "debootstrap" / "debootstrap.log"
    # Always two stages: the same path for native and emulated builds, and a progress line between them.
    started = time.monotonic()
    say(f"debootstrap {arch}: 1st stage (download, unpack)")
    _run(
        [
            "debootstrap",
            "--foreign",
            f"--arch={arch}",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(target),
            mirror,
        ],
        f"debootstrap {arch} 1st stage failed",
        log=log,
        lock_fd=lock_fd,
    )
    say(f"debootstrap {arch}: 2nd stage (configure{', emulated' if arch != native else ''})")
    _run(
        ["chroot", str(target), "/debootstrap/debootstrap", "--second-stage"],
        f"debootstrap {arch} 2nd stage failed",
        log=log,
        env=_CHROOT_ENV,
        lock_fd=lock_fd,
    )
    say(f"debootstrap {arch}: configuring the base")
    _configure(target, mirror, emulated=arch != native)
    say(f"debootstrap {arch}: done in {time.monotonic() - started:.0f} s")


def _configure(root: Path, mirror: str, emulated: bool) -> None:
    """Tweaks every host needs; each one is idempotent."""
    etc = root / "etc"
    _write(etc / "apt" / "sources.list", f"deb {mirror} {SUITE} main\n")
    _write(
        etc / "apt" / "apt.conf.d" / "90hivestack-no-recommends",
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n',
    )
    # Hosts must not share SSH identities: drop the keys made at install time, regenerate the missing ones at
    # boot. `sshd -t` (Debian's first ExecStartPre) refuses to run without keys, so generate them before it.
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    units = etc / "systemd" / "system"
    (units / "ssh.service.d").mkdir(parents=True, exist_ok=True)
    _write(
        units / "ssh.service.d" / "hostkeys.conf",
        "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n",
    )
    for unit in MASKED_UNITS:
        for wanted in units.glob(f"*.wants/{unit}"):
            wanted.unlink()
        _symlink(units / unit, "/dev/null")
    if emulated:
        # Setting up a unit's credentials fails with EINVAL under qemu-user (7.2), so every unit that loads one
        # (tmpfiles, sysusers: boot-critical) would fail. The lab passes no credentials: drop the directives.
        for service in sorted((root / "lib" / "systemd" / "system").glob("*.service")):
            if re.search(r"^LoadCredential=", service.read_text(errors="replace"), re.MULTILINE):
                (units / f"{service.name}.d").mkdir(exist_ok=True)
                _write(units / f"{service.name}.d" / "no-credentials.conf", "[Service]\nLoadCredential=\n")
    # With an empty /etc/machine-id, systemd copies the D-Bus id if that is a regular file: every host would get
    # the base's id. A symlink is skipped, and D-Bus reads each host's own id through it.
    _symlink(root / "var" / "lib" / "dbus" / "machine-id", "/etc/machine-id")
    # debootstrap copies the build machine's hostname and resolver: nspawn names each host, and the resolver is
    # unreachable from hosts (lookups would wait for it once hosts have a default route).
    (etc / "hostname").unlink(missing_ok=True)
    _write(etc / "resolv.conf", "")
    # Package lists (~50 MB) are stale as soon as the lab points apt at its proxy; the second stage leaves the
    # downloaded packages (~55 MB) behind.
    for leftover in [
        *(root / "var" / "lib" / "apt" / "lists").glob("*_*"),
        *(root / "var" / "cache" / "apt" / "archives").glob("*.deb"),
    ]:
        leftover.unlink()


# Both replace instead of writing through: an absolute symlink in the tree would resolve on the build machine.
def _write(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    path.write_text(text)


def _symlink(path: Path, target: str) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)


def debian_mirror(suite: str = SUITE) -> str:
    """The Debian mirror this machine's apt uses for `suite` (deb822 `.sources` files or `sources.list`)."""
    directory, legacy = APT_SOURCES
    for path in sorted(directory.glob("*.sources")) if directory.is_dir() else []:
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = {
                key.strip().lower(): value.split()
                for key, _, value in (
                    line.partition(":") for line in stanza.splitlines() if ":" in line and line[0] not in "# \t"
                )
            }
            if "deb" in fields.get("types", []) and suite in fields.get("suites", []) and fields.get("uris"):
                return fields["uris"][0].rstrip("/")
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            words = [word for word in line.split() if not word.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1].rstrip("/")
    raise RootfsError(f"no apt source for Debian {suite} found in {directory}/*.sources or {legacy}")


@contextlib.contextmanager
def _locked(path: Path, say: Callable[[str], None]) -> Iterator[int]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process building {path.stem}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle.fileno()


def _remove_tree(path: Path) -> None:
    """Delete a (partial) tree, unmounting first what debootstrap may have left mounted inside it."""
    if not path.exists():
        return
    for mount in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    # Deleting through a bind mount of the machine's /dev (debootstrap makes those when run in a container) would
    # delete the machine's own files.
    if left := _mounts_under(path):
        raise RootfsError(f"cannot unmount {', '.join(left)}; not deleting {path}")
    shutil.rmtree(path)


def _mounts_under(path: Path) -> list[str]:
    prefix = f"{path}/"
    mounts = (
        re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    )
    return [mount for mount in mounts if mount.startswith(prefix)]


def _run(
    command: list[str],
    failure: str,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    lock_fd: int | None = None,
) -> None:
    # The child inherits the build lock, so if this process dies its orphaned debootstrap keeps the tree locked
    # until it exits too. Its own session lets an interrupted build kill its whole process group before the
    # partial tree is deleted.
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,
        pass_fds=() if lock_fd is None else (lock_fd,),
    ) as proc:
        try:
            output, _ = proc.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    if proc.returncode != 0:
        # debootstrap prints only "see the log"; the reason is in its own log file.
        if log is not None and log.is_file():
            output += f"\n--- {log} ---\n" + log.read_text(errors="replace")
        raise RootfsError(f"{failure} (exit {proc.returncode})", command, output)
