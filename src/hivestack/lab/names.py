"""Names of everything a lab stack makes, so that two stacks never collide and `lab clean` finds leftovers.

Kernel names are short (interfaces: 15 characters), so each stack gets a 6-character tag derived from its
name and the checkout it runs from (two clones' `lab` stacks are two labs); every network namespace the lab
makes starts with `hs`, followed by the rest of the tag.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

NETNS_PREFIX = "hs"
# tmpfs: the registry of live lab objects, gone with a reboot like they are.
RUN_ROOT = Path("/run/hivestack")
CHECKOUT = Path(__file__).resolve().parents[3]  # the clone this (editable) package runs from


@dataclass(frozen=True)
class LabNames:
    stack: str
    fixed_tag: str | None = None  # `lab clean --all` knows leftovers by tag only

    @property
    def tag(self) -> str:
        if self.fixed_tag:
            return self.fixed_tag
        return NETNS_PREFIX + hashlib.sha1(f"{CHECKOUT}:{self.stack}".encode()).hexdigest()[:4]

    @property
    def core_ns(self) -> str:
        return f"{self.tag}-core"

    def router_ns(self, dc_index: int) -> str:
        return f"{self.tag}-r{dc_index}"

    def host_ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    @property
    def run_dir(self) -> Path:
        """Pid files, sockets and the list of made objects; `lab clean` reads it."""
        return RUN_ROOT / self.tag

    @property
    def cgroup_root(self) -> str:
        """Relative cgroup path holding every host of the stack (same path in both hierarchies)."""
        return f"hivestack/{self.tag}"

    def cgroup(self, host: str) -> str:
        """Relative cgroup path for one host (same path in the unified and name=systemd hierarchies)."""
        return f"{self.cgroup_root}/{host}"


def tag_pattern() -> str:
    return rf"{NETNS_PREFIX}[0-9a-f]{{4}}"
