"""Run one playbook with ansible-runner and sum up what it did: per-host stats, failures, drift.

Everything the run needs is laid out in a private data directory under `<root>/.hivestack/run/` (mode 0700;
the inventory and the variables, secrets included, as 0600 files) that is removed afterwards, even when the
run fails or is interrupted. Secret values never reach a command line, and any that a task's output echoes are
blanked out of the failure messages and the drift report.

Self-contained on purpose: Pulumi's dynamic providers pickle the provider and call it in another process, so
nothing here may depend on state the program set up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

MASK = "********"
MESSAGE_CHARS = 300
# Shorter strings are not blanked out of messages: "on", "yes" or "1" would wreck them and are no secrets.
MIN_SECRET_CHARS = 4
# What a failure message keeps of a task's output (the exception shows the first MESSAGE_CHARS of it).
STORED_CHARS = 4000


@dataclass(frozen=True)
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Failure:
    host: str
    task: str
    message: str
    unreachable: bool = False


@dataclass(frozen=True)
class DriftItem:
    """A task that would change a host (check mode), with what it would change when the module tells."""

    task: str
    changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlaybookResult:
    playbook: str
    rc: int
    status: str
    hosts: dict[str, HostStats]
    duration_s: float
    failures: list[Failure] = field(default_factory=list)
    drift: dict[str, list[DriftItem]] = field(default_factory=dict)
    # Set when ansible-playbook failed outside any task (syntax error, unknown role, bad inventory): the end of
    # its output.
    error: str = ""

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.hosts.values())

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.failures

    def host_stats(self) -> dict[str, dict[str, int]]:
        return {host: asdict(stats) for host, stats in self.hosts.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlaybookResult:
        return cls(
            playbook=data["playbook"],
            rc=int(data["rc"]),
            status=data["status"],
            hosts={h: HostStats(**s) for h, s in data["hosts"].items()},
            duration_s=float(data["duration_s"]),
            failures=[Failure(**f) for f in data["failures"]],
            drift={h: [DriftItem(i["task"], tuple(i["changes"])) for i in items] for h, items in data["drift"].items()},
            error=data["error"],
        )

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise PlaybookFailed(self)


class PlaybookFailed(Exception):
    """A playbook run that failed; the message names each failed host, its task and the first words of why."""

    def __init__(self, result: PlaybookResult) -> None:
        self.result = result
        super().__init__(_failure_text(result))


def _one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _failure_text(result: PlaybookResult) -> str:
    head = f"playbook {result.playbook} failed (rc {result.rc}, {result.status})"
    lines = [
        f"  {f.host}{' (unreachable)' if f.unreachable else ''}: {f.task}: {_one_line(f.message)}"
        for f in result.failures
    ]
    if not lines:
        lines = [f"  {_one_line(result.error or 'no task failed; see the output of ansible-playbook')}"]
    return "\n".join([head, *lines])


def static_inventory(dynamic: Mapping[str, Any]) -> dict[str, Any]:
    """A dynamic inventory's `--list` JSON (groups plus `_meta.hostvars`) as a YAML inventory document."""
    hostvars: Mapping[str, Any] = (dynamic.get("_meta") or {}).get("hostvars") or {}
    everything: dict[str, Any] = {"hosts": {h: dict(v or {}) for h, v in hostvars.items()}, "children": {}}
    for name, body in dynamic.items():
        if name == "_meta":
            continue
        if isinstance(body, list):  # the short form: a group is just its hosts
            body = {"hosts": body}
        body = body or {}
        if name == "all":
            for host in body.get("hosts") or []:
                everything["hosts"].setdefault(host, {})
            if body.get("vars"):
                everything["vars"] = dict(body["vars"])
            for child in body.get("children") or []:
                everything["children"].setdefault(child, {})
            continue
        entry = everything["children"].setdefault(name, {})
        if body.get("hosts"):
            entry["hosts"] = dict.fromkeys(body["hosts"])
        if body.get("vars"):
            entry["vars"] = dict(body["vars"])
        if body.get("children"):
            entry["children"] = dict.fromkeys(body["children"])
    return {"all": everything}


class _Redactor:
    """Blanks secret values out of text that leaves the run (messages, task names, drift)."""

    def __init__(self, secret_vars: Mapping[str, Any]) -> None:
        values = {v for v in _leaves(secret_vars) if len(v) >= MIN_SECRET_CHARS}
        # Each line of a multi-line secret (a PEM key) too: tools echo them one line at a time.
        values |= {line.strip() for v in list(values) for line in v.splitlines() if len(line.strip()) >= 16}
        self._values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        return text


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, str):
        yield value
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def _message(res: Mapping[str, Any]) -> str:
    """Why a task failed, from its result: the module's msg, the failed loop item, stderr."""
    if res.get("censored"):  # no_log: Ansible already replaced the result
        return str(res["censored"])
    parts: list[str] = []
    msg = res.get("msg")
    if msg:
        parts.append(msg if isinstance(msg, str) else json.dumps(msg, default=str))
    for item in res.get("results") or []:
        if isinstance(item, Mapping) and item.get("failed"):
            label = item.get("_ansible_item_label", item.get("item"))
            parts.append(f"item {json.dumps(label, default=str)}: {_message(item)}")
            break
    for key in ("stderr", "module_stderr", "module_stdout"):
        text = res.get(key)
        if isinstance(text, str) and text.strip() and text.strip() not in " ".join(parts):
            parts.append(text.strip())
            break
    if not parts and res.get("rc") is not None:
        parts.append(f"rc {res['rc']}")
    return ": ".join(parts) or "failed"


def _changes(res: Mapping[str, Any]) -> list[str]:
    """What a changed result touches: the diff's headers (the file on the host), else the module's path or name,
    else the loop item's label."""
    found: list[str] = []
    diffs = res.get("diff")
    for diff in diffs if isinstance(diffs, list) else [diffs]:
        if isinstance(diff, Mapping):
            # A template's after_header is its rendering in Ansible's temporary directory: meaningless later.
            headers = [str(h) for h in (diff.get("before_header"), diff.get("after_header")) if h]
            found.extend([h for h in headers if not _is_temporary(h)][:1])
    if not found:
        args = (res.get("invocation") or {}).get("module_args") or {}
        # Last, a loop item's label: what a loop over drifted objects (not files) names.
        label = res.get("_ansible_item_label", res.get(str(res.get("ansible_loop_var", "item"))))
        for value in (res.get("path"), res.get("dest"), args.get("path"), args.get("dest"), args.get("name"), label):
            if value:
                found.append(value if isinstance(value, str) else json.dumps(value, default=str))
                break
    for item in res.get("results") or []:
        if isinstance(item, Mapping) and item.get("changed"):
            found.extend(_changes(item))
    return list(dict.fromkeys(found))


def _is_temporary(path: str) -> bool:
    return "/.ansible/tmp/" in path or "/ansible-tmp-" in path or "/ansible-local-" in path


class _Collector:
    """Keeps the events a result needs, in memory (nothing of them is written to disk)."""

    def __init__(self, check: bool) -> None:
        self.check = check
        self.stats: dict[str, dict[str, int]] | None = None
        self.failures: list[tuple[Failure, bool]] = []  # (failure, ignored)
        self.drift: dict[str, list[DriftItem]] = {}

    def __call__(self, event: dict[str, Any]) -> bool:
        kind, data = event.get("event"), event.get("event_data") or {}
        if kind in ("runner_on_failed", "runner_on_unreachable"):
            failure = Failure(
                host=str(data.get("host", "?")),
                task=str(data.get("task", "?")),
                message=_message(data.get("res") or {})[:STORED_CHARS],
                unreachable=kind == "runner_on_unreachable",
            )
            self.failures.append((failure, bool(data.get("ignore_errors"))))
        elif kind == "runner_on_ok" and self.check and (data.get("res") or {}).get("changed"):
            item = DriftItem(task=str(data.get("task", "?")), changes=tuple(_changes(data["res"])))
            self.drift.setdefault(str(data.get("host", "?")), []).append(item)
        elif kind == "playbook_on_stats":
            self.stats = {
                key: dict(data.get(key) or {})
                for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "processed")
            }
        return False

    def host_stats(self) -> dict[str, HostStats]:
        s = self.stats or {}
        hosts = sorted(set().union(*(s.get(k, {}) for k in s)))
        return {
            h: HostStats(
                ok=s.get("ok", {}).get(h, 0),
                changed=s.get("changed", {}).get(h, 0),
                failed=s.get("failures", {}).get(h, 0),
                unreachable=s.get("dark", {}).get(h, 0),
                skipped=s.get("skipped", {}).get(h, 0),
            )
            for h in hosts
        }

    def real_failures(self) -> list[Failure]:
        """Failures that stopped a host: not ignore_errors, not rescued by a block."""
        found = [f for f, ignored in self.failures if not ignored]
        if self.stats is None:
            return found
        stopped = {h for k in ("failures", "dark") for h, n in self.stats.get(k, {}).items() if n}
        rescued = {h for h, n in self.stats.get("rescued", {}).items() if n}
        found = [f for f in found if f.host in stopped]
        # A host whose earlier failures were rescued stopped at its last one.
        last = {f.host: f for f in found}
        return [f for f in found if f.host not in rescued or last[f.host] is f]


def _write_private(path: Path, text: str) -> None:
    """A file only its owner can read, from the first byte on."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _output_tail(private: Path, lines: int = 15) -> str:
    """The end of ansible-playbook's output from the run's artifacts, from its last error line on if any."""
    text = "".join(p.read_text(errors="replace") for p in sorted(private.glob("artifacts/*/stdout")))
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    for i in range(len(kept) - 1, -1, -1):
        if kept[i].lstrip().startswith(("ERROR", "[ERROR]")):
            return "\n".join(kept[i:])
    return "\n".join(kept)


class _Interrupts:
    """While a run is on, SIGINT and SIGTERM cancel it; afterwards they are delivered to the previous handlers.

    ansible-runner installs handlers of its own when called from the main thread and never restores them.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def cancelled(self) -> bool:
        return self.received is not None

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        self.received = number

    def __enter__(self) -> Callable[[], bool]:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self.cancelled

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self.received is not None:
            signal.raise_signal(self.received)


def control_dir(root: Path, inventory: Mapping[str, Any]) -> Path:
    """Where the SSH control sockets of runs against this inventory live: one directory per set of hosts and the way
    they are reached. ssh names a socket after the user, address and port alone, and two lab stacks use the same
    addresses (each behind its own namespace): in one shared directory a run against one stack would reuse a
    connection the other opened, to another host, without checking that host's key. The name is short: a socket's
    path must fit in 108 bytes."""
    hostvars = inventory.get("_meta", {}).get("hostvars", {})
    reached = sorted((h, v.get("ansible_host", ""), v.get("ansible_ssh_common_args", "")) for h, v in hostvars.items())
    digest = hashlib.sha256(json.dumps(reached).encode()).hexdigest()[:8]
    return root / ".hivestack" / "ssh-control" / digest


def run_playbook(
    root: Path,
    playbook: str,
    inventory: Mapping[str, Any],
    extravars: Mapping[str, Any],
    secret_vars: Mapping[str, Any],
    *,
    check: bool = False,
    diff: bool = False,
    tags: Sequence[str] | str | None = None,
    limit: str | None = None,
) -> PlaybookResult:
    """Run `<root>/playbooks/<playbook>` against `inventory` (the JSON of `hivestack.ansible.inventory.build`).

    `extravars` and `secret_vars` are both passed as extra variables (the highest precedence); a name may not be in
    both. `check` with `diff` fills `PlaybookResult.drift`. Never raises for a failed play: see
    `PlaybookResult.raise_for_failure`.
    """
    root = Path(root).resolve()
    book = root / "playbooks" / playbook
    if not book.is_file():
        raise FileNotFoundError(f"no playbook {book}")
    overlap = sorted(set(extravars) & set(secret_vars))
    if overlap:
        raise ValueError(f"variables both in extravars and secret_vars: {', '.join(overlap)}")
    run_base = root / ".hivestack" / "run"
    run_base.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The interrupt handlers wrap the clean-up: a signal is passed on only once the secrets are gone.
    with _Interrupts() as cancelled:
        private = Path(tempfile.mkdtemp(prefix=f"{book.stem}-", dir=run_base))  # mode 0700
        try:
            _write_private(private / "inventory" / "hosts.yml", yaml.safe_dump(static_inventory(inventory)))
            # ansible-runner passes env/extravars as `-e @file`: the values never appear on a command line.
            _write_private(private / "env" / "extravars", json.dumps({**extravars, **secret_vars}))
            return _run(
                root,
                book,
                playbook,
                private,
                control_dir=control_dir(root, inventory),
                redact=_Redactor(secret_vars),
                check=check,
                diff=diff,
                tags=tags,
                limit=limit,
                cancelled=cancelled,
            )
        finally:
            shutil.rmtree(private, ignore_errors=True)


def _run(
    root: Path,
    book: Path,
    playbook: str,
    private: Path,
    *,
    control_dir: Path,
    redact: _Redactor,
    check: bool,
    diff: bool,
    tags: Sequence[str] | str | None,
    limit: str | None,
    cancelled: Callable[[], bool],
) -> PlaybookResult:
    import ansible_runner  # here: a program that only declares PlaybookRun resources does not need it

    collector = _Collector(check=check)
    envvars = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(root / "playbooks" / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        # ansible-runner turns host key checking off unless told; Ansible's own `StrictHostKeyChecking=no` would
        # then come first on ssh's command line and win over the inventory's known_hosts settings.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # SSH control sockets in the project's private state directory (0700), kept warm from one stage to the next.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        # The venv's ansible-playbook, whichever PATH the caller (a Pulumi provider process) has.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
    }
    flags = [*(["--check"] if check else []), *(["--diff"] if diff else [])]
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(root / "playbooks"),
        playbook=str(book),
        inventory=str(private / "inventory" / "hosts.yml"),
        envvars=envvars,
        cmdline=" ".join(flags) or None,
        tags=",".join(tags) if isinstance(tags, list | tuple) else tags,
        limit=limit,
        quiet=True,
        # ansible.cfg's fact cache applies, not a jsonfile cache in the artifacts.
        fact_cache_type="memory",
        event_handler=collector,
        cancel_callback=cancelled,
    )
    duration = time.monotonic() - started
    # No exit status: ansible-playbook was killed by a signal (pexpect keeps only the signal number, privately).
    rc = runner.rc if runner.rc is not None else 254
    failures = [
        Failure(host=f.host, task=redact(f.task), message=redact(f.message), unreachable=f.unreachable)
        for f in collector.real_failures()
    ]
    drift = {
        host: [DriftItem(task=redact(i.task), changes=tuple(redact(c) for c in i.changes)) for i in items]
        for host, items in collector.drift.items()
    }
    return PlaybookResult(
        playbook=playbook,
        rc=rc,
        status=str(runner.status),
        hosts=collector.host_stats(),
        duration_s=round(duration, 2),
        failures=failures,
        drift=drift,
        error=_error(private, runner.rc, redact) if rc != 0 and not failures else "",
    )


def _error(private: Path, rc: int | None, redact: _Redactor) -> str:
    tail = redact(_output_tail(private))
    if tail:
        return tail
    return "ansible-playbook was killed by a signal" if rc is None else f"ansible-playbook exited {rc} without output"


def run_playbook_isolated(
    root: Path,
    playbook: str,
    inventory: Mapping[str, Any],
    extravars: Mapping[str, Any],
    secret_vars: Mapping[str, Any],
    **options: Any,
) -> PlaybookResult:
    """`run_playbook` in a fresh Python process (the request, secrets included, goes through a pipe).

    For callers that must not fork: ansible-runner forks a pty for ansible-playbook, and a process serving gRPC
    (Pulumi's dynamic provider) crashes now and then in that child (SIGSEGV before ansible-playbook starts: gRPC's
    fork handlers). Starting Python with subprocess does not run them.
    """
    request = {
        "root": str(root),
        "playbook": playbook,
        "inventory": inventory,
        "extravars": extravars,
        "secret_vars": secret_vars,
        "options": options,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "hivestack.ansible.runner"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = [line for line in _Redactor(secret_vars)(proc.stderr).splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise RuntimeError(f"playbook {playbook}: the runner process failed: {_one_line(detail)}")
    return PlaybookResult.from_dict(json.loads(proc.stdout))


def _main() -> int:
    """`python -m hivestack.ansible.runner`: a JSON request on stdin, the PlaybookResult as JSON on stdout."""
    request = json.load(sys.stdin)
    result = run_playbook(
        Path(request["root"]),
        request["playbook"],
        request["inventory"],
        request["extravars"],
        request["secret_vars"],
        **request["options"],
    )
    json.dump(result.to_dict(), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
