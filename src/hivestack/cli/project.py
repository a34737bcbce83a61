"""Where the project is, what a stack is configured with, and how to run the project's Pulumi."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hivestack.cli.errors import CannotRun


def root() -> Path:
    """The checkout this package was installed from (editable install), else the nearest Pulumi project above cwd."""
    for candidate in (Path(__file__).resolve().parents[3], *Path.cwd().resolve().parents, Path.cwd().resolve()):
        if (candidate / "Pulumi.yaml").is_file() and (candidate / "stacks").is_dir():
            return candidate
    raise CannotRun("not inside a Hivestack checkout (no Pulumi.yaml with a stacks/ directory)")


def stack_config(stack: str) -> dict[str, Any]:
    path = root() / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in path.parent.glob("Pulumi.*.yaml"))
        raise CannotRun(f"{path}: no such stack (known: {', '.join(known)})")
    return (yaml.safe_load(path.read_text()) or {}).get("config", {})


def topology_path(stack: str) -> Path:
    config = stack_config(stack)
    if "hivestack:topology" not in config:
        raise CannotRun(f"stacks/Pulumi.{stack}.yaml: hivestack:topology is not set")
    return root() / config["hivestack:topology"]


def pulumi(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    script = root() / "scripts" / "pulumi"
    return subprocess.run([str(script), *args], capture_output=capture, text=True, check=False)


def select_stack(stack: str) -> None:
    proc = pulumi("stack", "select", "--create", "--secrets-provider", "passphrase", stack, capture=True)
    if proc.returncode != 0:
        raise CannotRun(f"pulumi stack select {stack}: {proc.stderr.strip() or proc.stdout.strip()}")


def stack_outputs(stack: str) -> dict[str, Any]:
    proc = pulumi("stack", "output", "--json", "--stack", stack, capture=True)
    if proc.returncode != 0:
        raise CannotRun(f"cannot read the outputs of stack {stack!r}: {proc.stderr.strip()}")
    return json.loads(proc.stdout or "{}")


def stack_secret_output(stack: str, name: str) -> str:
    """One output in plain text, secret or not: for writing to a 0600 file, never to print."""
    proc = pulumi("stack", "output", "--show-secrets", "--stack", stack, name, capture=True)
    if proc.returncode != 0:
        raise CannotRun(f"cannot read output {name!r} of stack {stack!r}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass(frozen=True)
class StaleLock:
    path: Path
    pid: int
    timestamp: str


def backend_dir() -> Path:
    """The file backend scripts/pulumi uses (HIVESTACK_BACKEND_DIR, default .hivestack/state)."""
    return Path(os.environ.get("HIVESTACK_BACKEND_DIR") or root() / ".hivestack" / "state")


def clear_stale_locks(stack: str) -> list[StaleLock]:
    """Remove the stack's locks whose Pulumi process, on this machine, is gone (a run that was killed or lost its
    session); a lock of a live process, or of another machine, is left alone. Returns what was removed."""
    removed = []
    here = socket.gethostname()
    for path in sorted((backend_dir() / ".pulumi" / "locks").glob(f"**/{stack}/*.json")):
        try:
            lock = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pid = lock.get("pid")
        if lock.get("hostname") != here or not isinstance(pid, int) or _alive(pid):
            continue
        path.unlink(missing_ok=True)
        removed.append(StaleLock(path, pid, str(lock.get("timestamp", "?"))))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
