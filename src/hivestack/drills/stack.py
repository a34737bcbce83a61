"""What a drill needs to know about a stack: its topology, hosts, cells, gateways and how to reach them."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from hivestack.ansible import inventory
from hivestack.ansible.platform_vars import platform_vars
from hivestack.drills.catalog import Drill, Scope
from hivestack.drills.remote import SshShell
from hivestack.engines import CellEngine, Member, engine_for
from hivestack.topology import LoadedTopology
from hivestack.topology.model import Role
from hivestack.topology.ports import BY_NAME
from hivestack.topology.trust import GATEWAY


@dataclass
class Stack:
    root: Path
    name: str
    loaded: LoadedTopology
    outputs: dict[str, Any]
    _control_dir: str | None = None  # SSH control sockets, made on first use and removed by close()

    @cached_property
    def inventory(self) -> dict[str, Any]:
        return inventory.build(self.loaded, self.outputs, inventory.first_contact_record(self.root, self.name))

    @cached_property
    def platform(self) -> dict[str, Any]:
        return platform_vars(self.loaded)

    @cached_property
    def engine(self) -> CellEngine:
        return engine_for(self.platform["hivestack_db_engine"])

    @cached_property
    def shell(self) -> SshShell:
        self._control_dir = tempfile.mkdtemp(prefix="hivestack-drill-ssh-")
        return SshShell(self.inventory["_meta"]["hostvars"], self._control_dir)

    def close(self) -> None:
        if self._control_dir:
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None
            self.__dict__.pop("shell", None)

    @property
    def lab(self) -> dict[str, Any] | None:
        return self.outputs.get("lab")

    @property
    def cells(self) -> list[dict[str, Any]]:
        return self.platform["hivestack_all_cells"]

    def members(self, cell: dict[str, Any]) -> list[Member]:
        return self.engine.members(cell)

    @property
    def dcs(self) -> list[str]:
        return [dc.name for dc in self.loaded.topology.datacenters]

    @property
    def db_hosts(self) -> list[str]:
        return [h.name for h in self.loaded.placement.hosts if Role.db in h.roles]

    def gateways(self) -> dict[str, str]:
        """Front door URL per DC."""
        port = BY_NAME["gateway-https"].port
        return {gw["dc"]: f"https://{gw['address']}:{port}" for gw in self.platform["hivestack_gateways"]}

    @property
    def gateway_ca(self) -> str:
        """The CA the gateways' front door certificates chain to (a public stack output)."""
        try:
            return self.outputs["ca_certs"][GATEWAY]
        except KeyError:
            raise ValueError(f"stack {self.name} exports no gateway CA (ca_certs): bring it up again first") from None

    def scope_hosts(self, drill: Drill, target: str) -> list[str]:
        """The hosts the fault takes away."""
        if drill.scope is Scope.HOST:
            return [target]
        return [h.name for h in self.loaded.placement.hosts if h.dc == target]

    def scope_dcs(self, drill: Drill, target: str) -> set[str]:
        """The DCs whose gateways and members are inside the fault (none for the loss of one host)."""
        return {target} if drill.scope is Scope.DC else set()

    def validate_target(self, drill: Drill, target: str) -> None:
        if drill.scope is Scope.DC and target not in self.dcs:
            raise ValueError(f"unknown data center {target!r} (valid: {', '.join(self.dcs)})")
        if drill.scope is Scope.HOST and target not in self.db_hosts:
            raise ValueError(f"{target!r} is not a database host of this stack (valid: {', '.join(self.db_hosts)})")

    def led_from(self, drill: Drill, target: str) -> set[str]:
        """Cells whose writer (home member) is inside the fault."""
        inside = set(self.scope_hosts(drill, target))
        return {c["name"] for c in self.cells if self.members(c)[0].host in inside}
