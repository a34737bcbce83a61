"""One server. Where it comes from is the backend's business; what it is comes from the topology."""

from __future__ import annotations

from typing import Protocol

import pulumi

from hivestack.components import types
from hivestack.components.declared import Declared
from hivestack.topology import Host as HostModel


class HostBackend(Protocol):
    """Makes (or finds) the machine behind a Host. `name` is the value of the stack's `hostBackend` setting."""

    name: str

    def provision(self, host: HostModel, parent: pulumi.Resource) -> None: ...

    def ready(self) -> list[pulumi.Resource]:
        """Called once every host is provisioned: what host configuration must wait for (and re-run when it is
        replaced)."""
        ...

    def instances(self) -> list[pulumi.Input[str]]:
        """One value per machine that changes exactly when the machine is made anew (a fresh disk): host
        configuration runs again when one does. Not a resource id, which a machine made again keeps."""
        ...

    def outputs(self) -> dict[str, object] | None:
        """How to reach the hosts (exported as the stack output `lab`), or None when the inventory says it all."""
        ...


class BareMetal:
    """Existing servers listed in the inventory, reached over SSH by the playbooks: nothing to create, and a
    preview connects to nothing."""

    name = "baremetal"

    def provision(self, host: HostModel, parent: pulumi.Resource) -> None:
        return None

    def ready(self) -> list[pulumi.Resource]:
        return []

    def instances(self) -> list[pulumi.Input[str]]:
        return []  # existing servers: a rebuilt one is configured again by changing its inventory or a role

    def outputs(self) -> dict[str, object] | None:
        return None


class Host(Declared):
    def __init__(
        self,
        host: HostModel,
        city: str,
        backend: HostBackend,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            types.HOST,
            host.name,
            {
                "name": host.name,
                "dc": host.dc,
                "pool": host.pool,
                "roles": [r.value for r in host.roles],
                "arch": host.arch.value,
                "machine": host.arch.machine,
                "cpu": host.cpu,
                "memory_gb": host.memory_gb,
                "address": str(host.address),
                "cells": list(host.cells),
                "labels": host.labels(city),
                "backend": backend.name,
            },
            opts,
        )
        backend.provision(host, self)
