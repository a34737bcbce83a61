"""Which processes expose a secret in their command line or environment.

Both are readable in /proc while the process runs (a command line by every user, an environment by its owner and
root), so a secret handed to a program that way is exposed on the machine: secrets go in 0600 files or through
stdin instead. A `Sampler` reads the process table every 50 ms in a thread and keeps every exposure it saw.

The lab's hosts are systemd-nspawn containers on this machine's kernel, so their processes are in this machine's
/proc as well: one sampler on the controller sees the controller and every host, and a `locate` callable (e.g.
`hivestack.lab.hosts.host_of`) names the host each process runs on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

CONTROLLER = "controller"
INTERVAL_S = 0.05
# A shorter value would be found in unrelated text by chance; generated secrets are much longer.
MIN_SECRET_CHARS = 8
MASK = "********"


@dataclass(frozen=True)
class Process:
    pid: int
    where: str  # CONTROLLER, or the lab host the process runs on
    argv: tuple[str, ...]
    environ: tuple[str, ...] | None  # None: not readable, so this sample says nothing about it

    @property
    def command(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class Exposure:
    where: str
    pid: int
    secret: str  # the secret's name, never its value
    place: str  # "command line" or "environment"
    command: str  # with every secret blanked out

    def __str__(self) -> str:
        return f"{self.where} pid {self.pid} ({self.command[:300]}): {self.secret} in its {self.place}"


def _check(secrets: Mapping[str, str]) -> None:
    short = sorted(name for name, value in secrets.items() if len(value) < MIN_SECRET_CHARS)
    if short:
        raise ValueError(f"secrets shorter than {MIN_SECRET_CHARS} characters cannot be told apart: {short}")


def blank(text: str, secrets: Mapping[str, str]) -> str:
    for value in sorted(secrets.values(), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def exposures(table: Iterable[Process], secrets: Mapping[str, str]) -> list[Exposure]:
    """Every (process, secret, place) where a secret's value appears in the process's command line or environment."""
    _check(secrets)
    found = []
    for process in table:
        for place, items in (("command line", process.argv), ("environment", process.environ or ())):
            for name, value in secrets.items():
                if any(value in item for item in items):
                    found.append(Exposure(process.where, process.pid, name, place, blank(process.command, secrets)))
    return found


def _split(raw: bytes) -> tuple[str, ...]:
    """NUL-separated strings (a process that rewrote its title may have dropped the trailing NUL)."""
    return tuple(raw.rstrip(b"\0").decode("utf-8", "replace").split("\0")) if raw else ()


def _program(base: Path) -> bytes:
    """A process's start time and the bounds of its environment (fields 22, 50 and 51 of /proc/<pid>/stat): the
    bounds move when the process starts another program."""
    fields = (base / "stat").read_bytes().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
    return b" ".join((fields[19], fields[47], fields[48]))


def read_table(
    locate: Callable[[int], str | None], proc: Path = Path("/proc"), last: dict[int, bytes] | None = None
) -> list[Process]:
    """The processes now running (kernel threads and zombies have no command line and are left out), each placed by
    `locate` (pid -> host, None for the controller).

    With `last` (pid -> what identified the program it ran when it was last read), only processes that are new or
    have started another program since are read and returned, and `last` is brought up to date. A program's
    environment is what it was started with, and a secret it was handed stays in its command line or environment as
    long as it runs, so a program read once needs no second reading: this keeps a sampler cheap enough not to slow
    what it watches. A program is identified by its command line, its start time (a reused pid) and where its
    environment lies in memory (a new program on the same pid, even with the same arguments); one whose
    environment could not be read is read again at the next sample.
    """
    table = []
    alive: set[int] = set()
    with os.scandir(proc) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            base = Path(entry.path)
            try:
                cmdline = (base / "cmdline").read_bytes()
            except OSError:
                continue  # gone since the directory was listed
            if not cmdline:
                continue
            pid = int(entry.name)
            identity = b""
            if last is not None:
                alive.add(pid)
                try:
                    identity = cmdline + b"\0" + _program(base)
                except OSError:
                    continue  # gone
                if last.get(pid) == identity:
                    continue
            environ: tuple[str, ...] | None
            try:
                environ = _split((base / "environ").read_bytes())
            except PermissionError:
                environ = None
            except OSError:
                continue  # gone
            if last is not None and environ is not None:
                last[pid] = identity
            table.append(Process(pid, locate(pid) or CONTROLLER, _split(cmdline), environ))
    if last is not None:
        for pid in last.keys() - alive:
            del last[pid]
    return table


@dataclass
class SampleReport:
    samples: int = 0
    exposures: list[Exposure] = field(default_factory=list)  # each (where, pid, secret, place) once
    seen: dict[str, set[str]] = field(default_factory=dict)  # marker -> where a command held it
    environments_read: dict[str, int] = field(default_factory=dict)  # where -> processes whose environment was read
    longest_gap_s: float = 0.0


class Sampler:
    """Samples the process table every `interval` seconds in a thread, from `with` until its end.

    Each sample reads the processes started (or running another command) since the one before: `locate` names the
    host of each (pid -> host, None for the controller; e.g. `hivestack.lab.hosts.host_of`); `markers` are strings
    whose appearance in a command (its arguments joined by spaces) is recorded with where it ran, so a test can tell
    it sampled the processes it meant to watch.
    """

    def __init__(
        self,
        secrets: Mapping[str, str],
        locate: Callable[[int], str | None],
        markers: Sequence[str] = (),
        interval: float = INTERVAL_S,
        proc: Path = Path("/proc"),
    ) -> None:
        _check(secrets)
        self._secrets, self._locate, self._markers = dict(secrets), locate, tuple(markers)
        self._interval, self._proc = interval, proc
        self._report = SampleReport(seen={m: set() for m in self._markers})
        self._known: set[tuple[str, int, str, str]] = set()
        self._last: dict[int, bytes] = {}  # pid -> what identified its program when last read (read_table)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exposure-sampler", daemon=True)
        self._error: BaseException | None = None
        self._last_sample: float | None = None

    def sample(self) -> None:
        """Read the process table once and record what it shows."""
        now = time.monotonic()
        if self._last_sample is not None:
            self._report.longest_gap_s = max(self._report.longest_gap_s, now - self._last_sample)
        self._last_sample = now
        table = read_table(self._locate, self._proc, self._last)
        report = self._report
        report.samples += 1
        for process in table:
            if process.environ is not None:
                report.environments_read[process.where] = report.environments_read.get(process.where, 0) + 1
            for marker in self._markers:
                if marker in process.command:
                    report.seen[marker].add(process.where)
        for exposure in exposures(table, self._secrets):
            key = (exposure.where, exposure.pid, exposure.secret, exposure.place)
            if key not in self._known:
                self._known.add(key)
                report.exposures.append(exposure)

    def _run(self) -> None:
        try:
            while True:  # at least one sample, however short the block
                started = time.monotonic()
                self.sample()
                if self._stop.wait(max(0.0, self._interval - (time.monotonic() - started))):
                    return
        except BaseException as exc:  # reported by __exit__: a sampler that died must not pass for a clean one
            self._error = exc

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"the process sampler failed: {self._error!r}") from self._error

    @property
    def report(self) -> SampleReport:
        return self._report
