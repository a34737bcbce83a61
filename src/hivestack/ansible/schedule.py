"""When each playbook stage may start: after the stages it needs, and after every earlier stage on any of its hosts.

`STAGES` says what each stage needs (whose results it uses). Stages that need nothing of each other could run side
by side, but not on the same host: each installs packages and creates accounts, and apt's lock and the account
database's lock make a second writer fail rather than wait. So a stage also waits for every stage declared before it
that plays on one of its hosts. The hosts come from each playbook's `hosts:` patterns resolved against the
topology's inventory groups; a pattern this module cannot resolve counts as every host (never side by side).

Pure functions of the topology and the playbooks (no Pulumi), unit-tested; `stages.configure_hosts` turns the result
into the PlaybookRuns' `depends_on`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from hivestack.ansible import STAGES
from hivestack.ansible.inventory import memberships
from hivestack.topology import LoadedTopology

_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # a group or a host


def play_patterns(root: Path, stage: str) -> list[str]:
    """The `hosts:` pattern of every play in the stage's playbook."""
    path = root / "playbooks" / f"{stage}.yml"
    plays = yaml.safe_load(path.read_text()) or []
    patterns = [play.get("hosts") for play in plays if isinstance(play, dict) and "import_playbook" not in play]
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"playbooks/{stage}.yml: every play needs a `hosts:` pattern")
    return patterns


def hosts_of(pattern: str, groups: Mapping[str, frozenset[str]], every: frozenset[str]) -> frozenset[str]:
    """The hosts a pattern of group names joined by `:` or `,` names (a union); anything else names every host."""
    parts = [p.strip() for p in re.split(r"[:,]", pattern)]
    if not all(_NAME.fullmatch(p) for p in parts):
        return every  # exclusions, intersections, regexes: not resolved, so never side by side
    found: set[str] = set()
    for part in parts:
        found |= every if part == "all" else groups.get(part, frozenset({part}) & every)
    return frozenset(found)


def stage_hosts(root: Path, loaded: LoadedTopology) -> dict[str, frozenset[str]]:
    """Per stage, the hosts its plays run on in this topology."""
    every = frozenset(h.name for h in loaded.placement.hosts)
    groups: dict[str, set[str]] = {}
    for host in loaded.placement.hosts:
        for g in memberships(host):
            groups.setdefault(g, set()).add(host.name)
    frozen = {g: frozenset(members) for g, members in groups.items()}
    return {
        stage: frozenset().union(*(hosts_of(p, frozen, every) for p in play_patterns(root, stage))) for stage in STAGES
    }


def run_after(needs: Mapping[str, tuple[str, ...]], hosts: Mapping[str, frozenset[str]]) -> dict[str, tuple[str, ...]]:
    """Per stage (in declaration order), the stages it must wait for: those it needs, and every earlier one that
    shares a host with it. A stage that needs a later one, or one that does not exist, is a programming error."""
    order = list(needs)
    after: dict[str, tuple[str, ...]] = {}
    for i, stage in enumerate(order):
        for need in needs[stage]:
            if need not in order[:i]:
                raise ValueError(f"stage {stage!r} needs {need!r}, which is not declared before it")
        after[stage] = tuple(s for s in order[:i] if s in needs[stage] or hosts[s] & hosts[stage])
    return after
