"""What the topology implies without being written twice: hosts, addresses, labels, quorum members, and the
Kubernetes nodes that simulated pools stand for (nodes without a server: they get no address and no host)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from hivestack.topology.model import Arch, Cell, LocatedValueError, Role, Topology

# Addresses below this offset in every DC subnet are left to routers and management (the .1 is the DC router).
FIRST_HOST_OFFSET = 10
QUORUM_ROLES = (Role.etcd, Role.k8s_control)


def node_labels(city: str, dc: str, arch: Arch, pool: str) -> dict[str, str]:
    """The labels every host and node carries: where it is (region, zone), what it runs (arch), which pool."""
    return {
        "topology.kubernetes.io/region": city,
        "topology.kubernetes.io/zone": dc,
        "kubernetes.io/arch": arch.value,
        "hivestack.io/pool": pool,
    }


@dataclass(frozen=True)
class Host:
    name: str
    dc: str
    pool: str
    roles: tuple[Role, ...]
    arch: Arch
    cpu: int
    memory_gb: float
    address: ipaddress.IPv4Address
    cells: tuple[str, ...] = ()

    def labels(self, city: str) -> dict[str, str]:
        """Kubernetes-style labels; also used for Ansible groups and storage failure domains."""
        return node_labels(city, self.dc, self.arch, self.pool)


@dataclass(frozen=True)
class SimulatedNode:
    """A Kubernetes node of a simulated pool, registered and kept alive by its DC's kwok controller."""

    name: str
    dc: str
    pool: str
    arch: Arch
    cpu: int
    memory_gb: float
    pods: int

    def labels(self, city: str) -> dict[str, str]:
        return node_labels(city, self.dc, self.arch, self.pool)


@dataclass(frozen=True)
class CellMember:
    dc: str
    host: str
    order: int  # 0 is the writer while healthy; higher numbers are backups in failover order


@dataclass(frozen=True)
class Placement:
    hosts: list[Host]
    cell_members: dict[str, list[CellMember]] = field(default_factory=dict)
    simulated_nodes: list[SimulatedNode] = field(default_factory=list)

    def by_role(self, role: Role) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]


def place(topology: Topology) -> Placement:
    """Expand pools into hosts and put each cell's database members on the db hosts of their DCs."""
    hosts: list[Host] = []
    nodes: list[SimulatedNode] = []
    for i, dc in enumerate(topology.datacenters):
        served = [pool for pool in dc.pools if not pool.simulated]
        # Checked on the counts, before a single host is built (the model bounds their sum).
        needed = sum(pool.count for pool in served)
        room = max(dc.subnet.num_addresses - FIRST_HOST_OFFSET - 1, 0)  # keep the broadcast address free
        if needed > room:
            raise LocatedValueError(
                f"datacenters.{i}.subnet",
                f"{dc.subnet} has room for {room} hosts but the pools of {dc.name} need {needed}",
                ["a larger subnet or fewer servers"],
            )
        nodes += [
            SimulatedNode(f"{pool.name}-{n}", dc.name, pool.name, pool.arch, pool.cpu, pool.memory_gb, pool.pods)
            for pool in dc.pools
            if pool.simulated
            for n in range(1, pool.count + 1)
        ]
        dc_hosts = [(pool, n) for pool in served for n in range(1, pool.count + 1)]
        for offset, (pool, n) in enumerate(dc_hosts):
            hosts.append(
                Host(
                    name=f"{pool.name}-{n}",
                    dc=dc.name,
                    pool=pool.name,
                    roles=tuple(pool.roles),
                    arch=pool.arch,
                    cpu=pool.cpu,
                    memory_gb=pool.memory_gb,
                    address=dc.subnet.network_address + FIRST_HOST_OFFSET + offset,
                )
            )
    _require_kwok_hosts(topology, hosts)
    db_hosts: dict[str, list[Host]] = {}
    for h in hosts:
        if Role.db in h.roles:
            db_hosts.setdefault(h.dc, []).append(h)
    members = {cell.name: _members_of(i, cell, db_hosts) for i, cell in enumerate(topology.cells)}
    cells_on: dict[str, list[str]] = {}
    for cell_name, cell_members in members.items():
        for m in cell_members:
            cells_on.setdefault(m.host, []).append(cell_name)
    hosts = [_with_cells(h, tuple(cells_on.get(h.name, ()))) for h in hosts]
    return Placement(hosts=hosts, cell_members=members, simulated_nodes=nodes)


def _require_kwok_hosts(topology: Topology, hosts: list[Host]) -> None:
    """A DC's simulated nodes live and die with it: its own kwok controller, on its k8s-control hosts, keeps them.

    A DC without such a host would need another DC's controller, and cutting the DC would leave its nodes alive.
    """
    control_dcs = {h.dc for h in hosts if Role.k8s_control in h.roles}
    for i, dc in enumerate(topology.datacenters):
        for j, pool in enumerate(dc.pools):
            if pool.simulated and dc.name not in control_dcs:
                raise LocatedValueError(
                    f"datacenters.{i}.pools.{j}.simulated",
                    f"{dc.name} has no k8s-control host to run the kwok controller of pool {pool.name}",
                    [f"a pool with role k8s-control in {dc.name}, or real servers for {pool.name}"],
                )


def _members_of(index: int, cell: Cell, db_hosts: dict[str, list[Host]]) -> list[CellMember]:
    """One member on one of the db hosts of each of the cell's DCs, in the cell's failover order.

    A member DC without db hosts is refused where it is named: leaving its member out would make the next DC the
    writer, or a cell that looks spread over enough DCs while one of them holds nothing.
    """
    members = []
    for order, dc in enumerate(cell.member_dcs):
        candidates = db_hosts.get(dc)
        if not candidates:
            raise LocatedValueError(
                f"cells.{index}.home" if order == 0 else f"cells.{index}.replicas.{order - 1}",
                f"{dc} has no db hosts, so cell {cell.name} has no member there",
                [f"a pool with role db in {dc}, or another DC for the cell"],
            )
        slot = _stable_slot(cell.name, len(candidates))
        members.append(CellMember(dc=dc, host=candidates[slot].name, order=order))
    return members


def _stable_slot(name: str, size: int) -> int:
    # A cell keeps its host when other cells are added or removed: derive the slot from the name, not the order.
    return sum(name.encode()) % size


def _with_cells(host: Host, cells: tuple[str, ...]) -> Host:
    return Host(**{**host.__dict__, "cells": cells})
