"""Which roles listen on which ports, and which roles may reach them: the least-privilege matrix.

Firewall rules (components), the `common` role's allow lists and the policy pack all derive from this table.
A service marked `per_cell` has one port per cell: its base port plus CELL_PORT_STRIDE times the cell's position
in the topology, because one database host holds members of several cells (and one gateway fronts them all).
"""

from __future__ import annotations

from dataclasses import dataclass

from hivestack.topology.model import Role

# Every host listens for SSH; who may reach it is the topology's `management` section (platform_vars.ssh_sources).
SSH_PORT = 22
CELL_PORT_STRIDE = 10
# Ten ports per cell keep every per-cell block below apart from the others (distinct last digits) and from the
# fixed ports; MAX_CELLS bounds the blocks so they never reach the next service's range.
MAX_CELLS = 100


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    role: Role  # the role whose hosts listen
    clients: frozenset[Role]  # roles allowed to connect; empty with `public` for client-facing services
    public: bool = False  # reachable from customers' networks (only the gateways' front door)
    sensitive: bool = False  # a data or coordination port: never exposed beyond its roles
    per_cell: bool = False  # one port per cell: port + CELL_PORT_STRIDE * cell index
    management: bool = False  # also reachable from where operators come from (platform_vars.ssh_sources)

    def port_of(self, cell_index: int) -> int:
        return self.port + CELL_PORT_STRIDE * cell_index if self.per_cell else self.port


SERVICES: tuple[Service, ...] = (
    Service("etcd-client", 2379, Role.etcd, frozenset({Role.etcd, Role.gateway, Role.k8s_control}), sensitive=True),
    Service("etcd-peer", 2380, Role.etcd, frozenset({Role.etcd}), sensitive=True),
    # Applications reach a cell's database only through the gateways (which follow its writer).
    Service("mysql", 3306, Role.db, frozenset({Role.db, Role.gateway}), sensitive=True, per_cell=True),
    Service("galera-replication", 4567, Role.db, frozenset({Role.db}), sensitive=True, per_cell=True),
    Service("galera-ist", 4568, Role.db, frozenset({Role.db}), sensitive=True, per_cell=True),
    Service("galera-sst", 4444, Role.db, frozenset({Role.db}), sensitive=True, per_cell=True),
    Service("db-health", 9200, Role.db, frozenset({Role.gateway}), sensitive=True, per_cell=True),
    Service("gateway-db", 6032, Role.gateway, frozenset({Role.app}), sensitive=True, per_cell=True),
    # The front door speaks HTTPS only: no plain-HTTP port is listened on or opened (a redirect would invite
    # clients to send their requests in the clear first).
    Service("gateway-https", 8443, Role.gateway, frozenset(), public=True),
    Service("ledger-http", 8100, Role.app, frozenset({Role.gateway}), per_cell=True),
    # Kubernetes keeps its own etcd (one member per DC on the k8s-control hosts), apart from the GNS one above.
    Service("kube-etcd-client", 12379, Role.k8s_control, frozenset({Role.k8s_control}), sensitive=True),
    Service("kube-etcd-peer", 12380, Role.k8s_control, frozenset({Role.k8s_control}), sensitive=True),
    Service("kube-apiserver", 6443, Role.k8s_control, frozenset({Role.k8s_control, Role.k8s_worker, Role.gateway})),
    # Every DC's gateway fronts the API servers of all DCs (TCP, health-checked on /readyz): operators and workers
    # reach the API through the gateway of their own DC, so losing a DC never loses the API. Its own port, since a
    # small platform may put a gateway and an API server on one host.
    Service("gateway-kube-api", 7443, Role.gateway, frozenset({Role.k8s_worker, Role.app}), management=True),
)

BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES}


def sensitive_ports() -> dict[int, Service]:
    return {s.port: s for s in SERVICES if s.sensitive}


def host_ports() -> dict[str, int]:
    """The port of every service that has one per host rather than one per cell, keyed by service name (the
    playbooks' `hivestack_ports`; per-cell ports travel with each cell, see `cell_ports`)."""
    return {s.name: s.port for s in SERVICES if not s.per_cell}


def cell_ports(cell_index: int) -> dict[str, int]:
    """Every per-cell port of one cell, keyed by service name."""
    return {s.name: s.port_of(cell_index) for s in SERVICES if s.per_cell}
