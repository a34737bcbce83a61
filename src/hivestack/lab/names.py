"""Names of everything a lab stack makes, so that two stacks never collide and `lab clean` finds leftovers.

Kernel names are short (interfaces: 15 characters), so each stack gets a 6-character tag derived from its
name; every network namespace the lab makes starts with `hs`, followed by the rest of the tag.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

NETNS_PREFIX = "hs"
RUN_ROOT = Path("/run/hivestack")  # tmpfs: the registry of live lab objects, gone with a reboot like they are


@dataclass(frozen=True)
class LabNames:
    stack: str

    @property
    def tag(self) -> str:
        return NETNS_PREFIX + hashlib.sha1(self.stack.encode()).hexdigest()[:4]

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

    def cgroup(self, host: str) -> str:
        """Relative cgroup path for one host (same path in the unified and name=systemd hierarchies)."""
        return f"hivestack/{self.tag}/{host}"
