"""`hivestack lab clean`: remove what a crashed or interrupted lab run left behind, found by name, never by a
broad process match: host cgroups under hivestack/<tag>, overlay mounts under .hivestack/lab, namespaces whose
names carry the lab prefix, and processes recorded in /run/hivestack/<tag>."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hivestack.lab import hosts, network
from hivestack.lab.names import RUN_ROOT, LabNames


@dataclass
class Cleaned:
    hosts: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)


def known_stacks() -> list[str]:
    return sorted(p.read_text() for p in RUN_ROOT.glob("*/stack"))


def clean(root: Path, stack: str | None = None) -> Cleaned:
    """Clean one stack, or (stack None) every lab stack this machine has traces of."""
    done = Cleaned()
    stacks = [stack] if stack else known_stacks()
    for name in stacks:
        names = LabNames(name)
        for base in hosts.CGROUP_ROOTS:
            for cg in sorted((base / "hivestack" / names.tag).glob("*")):
                if cg.is_dir():
                    hosts.kill(names, cg.name)
                    done.hosts.append(f"{name}/{cg.name}")
        network.delete_network(names)
        shutil.rmtree(names.run_dir, ignore_errors=True)
    lab_dir = (root / ".hivestack" / "lab").resolve()
    scope = lab_dir / stack if stack else lab_dir
    for mount in _mounts_under(scope):
        subprocess.run(["umount", "--lazy", mount], check=False)
        done.mounts.append(mount)
    if stack is None:
        # Namespaces of stacks whose registry is gone too (e.g. after `rm -rf /run/hivestack`).
        for ns in network.list_lab_namespaces():
            subprocess.run(["ip", "netns", "delete", ns], check=False)
            done.namespaces.append(ns)
    else:
        prefix = LabNames(stack).tag
        done.namespaces = [ns for ns in network.list_lab_namespaces() if ns.startswith(prefix)]
        for ns in done.namespaces:
            subprocess.run(["ip", "netns", "delete", ns], check=False)
    return done


def _mounts_under(path: Path) -> list[str]:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return sorted((m for m in mounts if m.startswith(f"{path}/")), reverse=True)
