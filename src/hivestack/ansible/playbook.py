"""A playbook run as a Pulumi resource: runs on create, and again whenever what it depends on changes.

What it depends on is summed up in `inputs_hash`, computed by the program: the playbooks and roles on disk and
the inventory, variables, secrets and triggers. A plain `up` with nothing changed runs nothing; any change is an
in-place update that runs the playbook again (playbooks are idempotent). Delete does nothing: destroying the
hosts removes what was configured on them, and un-configuring bare-metal servers is out of scope.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

SECRET_OUTPUTS = ["secret_vars"]
HASHED = ("inventory", "extravars", "secret_vars", "triggers")
INCLUDED_ROLE = re.compile(r"include_role:\s*\n\s+name:\s*([\w-]+)")


@dataclass
class PlaybookRunArgs:
    root: Path
    # Relative to <root>/playbooks/, e.g. "etcd.yml".
    playbook: str
    inventory: pulumi.Input[dict[str, Any]]
    extravars: pulumi.Input[dict[str, Any]] = field(default_factory=dict)
    # Secret: kept encrypted in the state, written only to a 0600 file for the run.
    secret_vars: pulumi.Input[dict[str, Any]] = field(default_factory=dict)
    # Extra values whose change runs the playbook again (e.g. the ids of the hosts it configures).
    triggers: pulumi.Input[list[Any]] = field(default_factory=list)


def _roles_of(base: Path, playbook: str) -> set[str]:
    """The roles a playbook runs, and the roles those include (e.g. `common`'s quiet package install)."""
    plays = yaml.safe_load((base / playbook).read_text()) or []
    pending = [
        r["role"] if isinstance(r, dict) else r
        for play in plays
        if isinstance(play, dict)
        for r in play.get("roles", [])
    ]
    found: set[str] = set()
    while pending:
        role = pending.pop()
        if role in found or not (base / "roles" / role).is_dir():
            continue
        found.add(role)
        for tasks in (base / "roles" / role).rglob("*.yml"):
            pending += INCLUDED_ROLE.findall(tasks.read_text())
    return found


def _files(root: Path, playbook: str) -> list[Path]:
    """The files a run reads: the playbook and every file of the roles it runs."""
    base = root / "playbooks"
    found = {base / playbook}
    for role in _roles_of(base, playbook):
        found.update(p for p in (base / "roles" / role).rglob("*") if p.is_file())
    # Editor and interpreter droppings change nothing a run does.
    return sorted(
        p for p in found if not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(base).parts)
    )


def files_digest(root: Path, playbook: str) -> str:
    """sha256 over the relative paths and contents of the files a run of `playbook` reads."""
    base = Path(root) / "playbooks"
    if not (base / playbook).is_file():
        raise FileNotFoundError(f"no playbook {base / playbook}")
    if ".." in Path(playbook).parts or Path(playbook).is_absolute():
        raise ValueError(f"playbook {playbook!r}: a path inside {base}, please")
    digest = hashlib.sha256()
    for path in _files(Path(root), playbook):
        content = path.read_bytes()
        digest.update(f"{path.relative_to(base).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def inputs_hash(
    files: str,
    inventory: Any,
    extravars: Any,
    secret_vars: Any,
    triggers: Any,
) -> str:
    """The resource's `inputs_hash`: `files` (from `files_digest`) and the canonical JSON of the values."""
    values = dict(zip(HASHED, (inventory, extravars, secret_vars, triggers), strict=True))
    return hashlib.sha256(f"{files}\0{canonical_json(values)}".encode()).hexdigest()


def _restore_ints(value: Any) -> Any:
    """Numbers cross the Pulumi wire as doubles: give the playbook back its 2379, not 2379.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_ints(v) for v in value]
    return value


class _PlaybookRunProvider(ResourceProvider):
    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        # Imported here, not pickled: the provider process imports it from the installed package. Isolated: the
        # provider process serves gRPC, which makes forking it (ansible-runner's pty) unsafe.
        from hivestack.ansible.runner import run_playbook_isolated

        result = run_playbook_isolated(
            Path(props["root"]),
            props["playbook"],
            _restore_ints(props.get("inventory") or {}),
            _restore_ints(props.get("extravars") or {}),
            _restore_ints(props.get("secret_vars") or {}),
        )
        result.raise_for_failure()
        return {
            **props,
            "changed": result.changed,
            "hosts": result.host_stats(),
            "duration_s": result.duration_s,
            "finished_at": time.time(),  # wall clock: tells a run of this `up` from an older one
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=uuid.uuid4().hex, outs=self._run(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # inputs_hash covers everything the run depends on (unknown during a preview until its inputs are known).
        changed = olds.get("inputs_hash") != news.get("inputs_hash")
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._run(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Nothing to undo: destroying the hosts removes what was configured on them; un-configuring bare-metal
        # servers is out of scope.
        return None


class PlaybookRun(Resource):
    """One playbook run. Outputs: `inputs_hash`, `changed` (tasks), `hosts` (per-host stats), `duration_s`,
    `finished_at` (Unix time)."""

    inputs_hash: pulumi.Output[str]
    changed: pulumi.Output[int]
    hosts: pulumi.Output[dict[str, dict[str, int]]]
    duration_s: pulumi.Output[float]
    finished_at: pulumi.Output[float]
    secret_vars: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, args: PlaybookRunArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        root = Path(args.root).resolve()
        files = files_digest(root, args.playbook)  # now: a missing playbook fails the preview, not the run
        secret_vars = pulumi.Output.secret(args.secret_vars)
        digest = pulumi.Output.all(args.inventory, args.extravars, secret_vars, args.triggers).apply(
            lambda v: inputs_hash(files, *v)
        )
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS))
        super().__init__(
            _PlaybookRunProvider(),
            name,
            {
                "root": str(root),
                "playbook": args.playbook,
                "inventory": args.inventory,
                "extravars": args.extravars,
                "secret_vars": secret_vars,
                "triggers": args.triggers,
                "inputs_hash": digest,
                "changed": None,
                "hosts": None,
                "duration_s": None,
                "finished_at": None,
            },
            opts,
        )
