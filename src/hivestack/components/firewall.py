"""Firewall allow rules between roles, one per service, derived from the least-privilege matrix."""

from __future__ import annotations

import pulumi

from hivestack.components import types
from hivestack.components.declared import Declared
from hivestack.topology.ports import Service


class FirewallRule(Declared):
    def __init__(self, service: Service, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            types.FIREWALL_RULE,
            service.name,
            {
                "service": service.name,
                "port": service.port,
                "protocol": "tcp",
                "target_role": service.role.value,
                "from_roles": sorted(r.value for r in service.clients),
                "from_cidrs": ["0.0.0.0/0"] if service.public else [],
            },
            opts,
        )
