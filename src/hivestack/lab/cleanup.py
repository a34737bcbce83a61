"""`hivestack lab clean`: remove what a crashed or interrupted lab run left behind, found by name, never by a
broad process match: host cgroups under hivestack/<tag>, overlay mounts under .hivestack/lab, namespaces whose
names carry the lab prefix, and processes recorded in /run/hivestack/<tag>; with --all also the apt proxy and
wheel server that every stack shares."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hivestack.lab import hosts, network
from hivestack.lab.names import RUN_ROOT, LabNames, tag_pattern


@dataclass
class Cleaned:
    hosts: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)


def known_labs() -> list[LabNames]:
    """Every lab this machine has traces of (any clone), by tag: run directories, host cgroups, namespaces."""
    tags = {p.name for p in RUN_ROOT.glob("*")}
    tags |= {p.name for base in hosts.CGROUP_ROOTS for p in (base / "hivestack").glob("*")}
    tags |= {ns.split("-", 1)[0] for ns in network.list_lab_namespaces()}
    labs = []
    for tag in sorted(t for t in tags if re.fullmatch(tag_pattern(), t)):
        stack_file = RUN_ROOT / tag / "stack"
        labs.append(LabNames(stack_file.read_text() if stack_file.exists() else tag, fixed_tag=tag))
    return labs


def clean(root: Path, stack: str | None = None) -> Cleaned:
    """Clean one stack of this checkout, or (stack None) every lab this machine has traces of."""
    done = Cleaned()
    for names in [LabNames(stack)] if stack else known_labs():
        name = names.stack
        for base in hosts.CGROUP_ROOTS:
            for cg in sorted((base / names.cgroup_root).glob("*")):
                if cg.is_dir():
                    hosts.kill(names, cg.name)
                    done.hosts.append(f"{name}/{cg.name}")
        network.delete_network(names)
        shutil.rmtree(names.run_dir, ignore_errors=True)
    lab_dir = (root / ".hivestack" / "lab").resolve()
    # One stack: this checkout's overlays of it. All: host overlays of any checkout.
    pattern = rf"{re.escape(str(lab_dir / stack))}/.*" if stack else r".*/\.hivestack/lab/[^/]+/hosts/[^/]+/merged"
    for mount in _mounts_matching(pattern):
        subprocess.run(["umount", "--lazy", mount], check=False)
        done.mounts.append(mount)
    if stack is None:
        network.stop_shared_services()
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


def _mounts_matching(pattern: str) -> list[str]:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return sorted((m for m in mounts if re.fullmatch(pattern, m)), reverse=True)
