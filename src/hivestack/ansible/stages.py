"""The playbook stages `pulumi up` runs, each a PlaybookRun that re-runs exactly when its inputs change, started
as soon as the stages it waits for (`schedule.run_after`) are done."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import yaml

from hivestack.ansible import STAGES
from hivestack.ansible.inventory import build, first_contact_record
from hivestack.ansible.playbook import PlaybookRun, PlaybookRunArgs
from hivestack.ansible.schedule import run_after, stage_hosts
from hivestack.topology import LoadedTopology

# Stages that copy a binary the project builds: the pinned inputs of that build are part of what they depend on,
# so a new pin reaches the hosts on the next `up`.
BUILT_TOOLS = {"kubernetes": "tools/kubernetes"}


def tools_digest(root: Path, wrapper: str) -> str:
    """sha256 over a tool wrapper's pinned inputs (go.mod, go.sum, its Go files), as tools/cached-go-build.sh
    keys them."""
    digest = hashlib.sha256()
    base = root / wrapper
    for path in sorted([base / "go.mod", base / "go.sum", *base.glob("*.go")]):
        digest.update(f"{path.name}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def secrets_used(root: Path, stage: str) -> tuple[str, ...]:
    """The generated secrets a stage's playbook hands to its roles (`hivestack_secrets.<name>`), in order.

    The playbook is the contract: roles receive secrets as their own variables, never `hivestack_secrets` itself
    (a unit test holds both), so a stage is sent only what it uses, and re-runs only when that changes.
    """
    text = (root / "playbooks" / f"{stage}.yml").read_text()
    used = re.findall(r"\bhivestack_secrets\.([A-Za-z_][A-Za-z0-9_]*)", text)
    if len(used) != text.count("hivestack_secrets"):
        raise ValueError(f"playbooks/{stage}.yml: name each secret as hivestack_secrets.<name>, nothing else")
    return tuple(dict.fromkeys(used))


def tls_domains(root: Path, stage: str) -> tuple[str, ...]:
    """The trust domains (fnmatch patterns) whose certificates a stage installs: every play that hands
    `hivestack_secrets.tls` to its roles lists them in its `hivestack_tls_domains` variable, so a stage is sent those
    domains alone and a new identity in another domain does not re-run it."""
    plays = yaml.safe_load((root / "playbooks" / f"{stage}.yml").read_text()) or []
    patterns: list[str] = []
    for play in plays:
        declared = (play.get("vars") or {}).get("hivestack_tls_domains")
        if re.search(r"\bhivestack_secrets\.tls\b", yaml.safe_dump(play)) and not declared:
            raise ValueError(f"playbooks/{stage}.yml: play {play.get('name')!r} uses hivestack_secrets.tls "
                             "without naming its domains in hivestack_tls_domains")  # fmt: skip
        patterns += declared or []
    return tuple(dict.fromkeys(patterns))


def only_domains(tls: Mapping[str, Any], patterns: tuple[str, ...]) -> dict[str, Any]:
    """The material of the domains that match one of `patterns`."""
    return {domain: v for domain, v in tls.items() if any(fnmatch.fnmatchcase(domain, p) for p in patterns)}


def stage_secrets(every: Mapping[str, Any], used: tuple[str, ...], domains: tuple[str, ...]) -> dict[str, Any]:
    """What a stage is sent of the generated secrets: those its playbook names, of TLS only its domains."""
    return {k: only_domains(every[k], domains) if k == "tls" else every[k] for k in used if k in every}


def configure_hosts(
    root: Path,
    loaded: LoadedTopology,
    lab_outputs: pulumi.Input[dict[str, Any]] | None,
    secrets: pulumi.Output[dict[str, Any]],
    triggers: list[pulumi.Input[Any]],
    depends_on: list[pulumi.Resource],
) -> list[PlaybookRun]:
    """One PlaybookRun per stage, in `STAGES` order; the inventory is built from the topology and the lab's outputs
    (if any)."""
    trust = first_contact_record(root, pulumi.get_stack())  # used where the lab did not make the hosts
    inventory = pulumi.Output.from_input(lab_outputs).apply(
        lambda lab: build(loaded, {"lab": lab} if lab else {}, trust)
    )
    after = run_after(STAGES, stage_hosts(root, loaded))
    runs: dict[str, PlaybookRun] = {}
    for stage in STAGES:
        used, domains = secrets_used(root, stage), tls_domains(root, stage)
        own = secrets.apply(lambda every, used=used, domains=domains: stage_secrets(every, used, domains))
        run = PlaybookRun(
            f"configure-{stage}",
            PlaybookRunArgs(
                root=root,
                playbook=f"{stage}.yml",
                inventory=inventory,
                secret_vars={"hivestack_secrets": own},
                triggers=[*triggers, *([tools_digest(root, BUILT_TOOLS[stage])] if stage in BUILT_TOOLS else [])],
            ),
            pulumi.ResourceOptions(depends_on=[*depends_on, *(runs[s] for s in after[stage])]),
        )
        runs[stage] = run
    return list(runs.values())
