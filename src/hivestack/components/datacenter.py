"""A data center and its server pools."""

from __future__ import annotations

import pulumi

from hivestack.components import types
from hivestack.components.declared import Declared
from hivestack.topology import DataCenter as DataCenterModel
from hivestack.topology import ServerPool as ServerPoolModel


class DataCenter(Declared):
    def __init__(self, dc: DataCenterModel, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            types.DATACENTER,
            dc.name,
            {"name": dc.name, "subnet": str(dc.subnet), "remote": dc.remote, "latency_ms": dc.latency_ms},
            opts,
        )


class ServerPool(Declared):
    def __init__(self, dc: str, pool: ServerPoolModel, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            types.SERVER_POOL,
            pool.name,
            {
                "name": pool.name,
                "dc": dc,
                "roles": [r.value for r in pool.roles],
                "arch": pool.arch.value,
                "count": pool.count,
                "cpu": pool.cpu,
                "memory_gb": pool.memory_gb,
                "unit_cost": pool.unit_cost,
                "pods": pool.pods,
                "simulated": pool.simulated,
            },
            opts,
        )
