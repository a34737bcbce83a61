"""Which roles listen on which ports, and which roles may reach them: the least-privilege matrix.

Firewall rules (components), the `common` role's allow lists and the policy pack all derive from this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from hivestack.topology.model import Role


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    role: Role  # the role whose hosts listen
    clients: frozenset[Role]  # roles allowed to connect; empty with `public` for client-facing services
    public: bool = False  # reachable from customers' networks (only the gateways' front door)
    sensitive: bool = False  # a data or coordination port: never exposed beyond its roles


SERVICES: tuple[Service, ...] = (
    Service("etcd-client", 2379, Role.etcd, frozenset({Role.etcd, Role.gateway, Role.k8s_control}), sensitive=True),
    Service("etcd-peer", 2380, Role.etcd, frozenset({Role.etcd}), sensitive=True),
    Service("mysql", 3306, Role.db, frozenset({Role.db, Role.gateway, Role.app}), sensitive=True),
    Service("galera-replication", 4567, Role.db, frozenset({Role.db}), sensitive=True),
    Service("galera-ist", 4568, Role.db, frozenset({Role.db}), sensitive=True),
    Service("galera-sst", 4444, Role.db, frozenset({Role.db}), sensitive=True),
    Service("db-health", 9200, Role.db, frozenset({Role.gateway}), sensitive=True),
    Service("gateway-http", 8080, Role.gateway, frozenset(), public=True),
    Service("ledger-http", 8081, Role.app, frozenset({Role.gateway})),
    Service("kube-apiserver", 6443, Role.k8s_control, frozenset({Role.k8s_control, Role.k8s_worker, Role.gateway})),
)


def sensitive_ports() -> dict[int, Service]:
    return {s.port: s for s in SERVICES if s.sensitive}
