"""Variables the playbooks read, derived from the topology: cells with their members and ports, the quorum
members, the simulated Kubernetes nodes, and each host's firewall allow list. The roles' `meta/argument_specs.yml`
describe the same shapes."""

from __future__ import annotations

from typing import Any

from hivestack.topology import LoadedTopology
from hivestack.topology.model import Role
from hivestack.topology.placement import Host
from hivestack.topology.ports import SERVICES, SSH_PORT, cell_ports, host_ports
from hivestack.topology.trust import KUBE_KWOK, KUBE_OPERATOR, KUBE_SERVICE_CIDR, cell_db_name, kube_api_name

# The database engine behind the seam (src/hivestack/engines); one per platform for now.
DB_ENGINE = "galera"


def _endpoint(host: Host) -> dict[str, str]:
    return {"name": host.name, "dc": host.dc, "address": str(host.address)}


def _kwok_hosts(control: list[Host]) -> dict[str, str]:
    hosts: dict[str, str] = {}
    for host in control:
        hosts.setdefault(host.dc, host.name)
    return hosts


def platform_vars(loaded: LoadedTopology) -> dict[str, Any]:
    topology, placement = loaded.topology, loaded.placement
    address = {h.name: str(h.address) for h in placement.hosts}
    same_city = [h for h in placement.hosts if not topology.datacenter(h.dc).remote]
    return {
        "hivestack_topology": topology.name,
        "hivestack_city": topology.city,
        "hivestack_db_engine": DB_ENGINE,
        # The ports matrix (hivestack.topology.ports): the one source of every port a role listens on or dials.
        "hivestack_ports": host_ports(),
        "hivestack_all_cells": [
            {
                "name": cell.name,
                "index": index,
                "home": cell.home,
                "range_start": cell.range.start,
                "range_end": cell.range.end,
                "db_name": cell_db_name(topology.name, cell.name),  # what clients check the writer's certificate for
                "members": [
                    {"host": m.host, "dc": m.dc, "address": address[m.host], "order": m.order}
                    for m in sorted(placement.cell_members[cell.name], key=lambda m: m.order)
                ],
                "ports": cell_ports(index),
            }
            for index, cell in enumerate(topology.cells)
        ],
        "hivestack_etcd_members": [_endpoint(h) for h in same_city if Role.etcd in h.roles],
        "hivestack_gateways": [_endpoint(h) for h in same_city if Role.gateway in h.roles],
        "hivestack_apps": [_endpoint(h) for h in same_city if Role.app in h.roles],
        # The Kubernetes control plane: one etcd member, API server, controller-manager and scheduler per host.
        "hivestack_k8s_control": [_endpoint(h) for h in same_city if Role.k8s_control in h.roles],
        # Each DC's kwok controller runs on the first k8s-control host of that DC: two would fight over its nodes.
        "hivestack_kwok_hosts": _kwok_hosts([h for h in same_city if Role.k8s_control in h.roles]),
        # The names RBAC and the certificates share (hivestack.topology.trust): one source for both.
        "hivestack_kube": {
            "api_name": kube_api_name(topology.name),
            "service_cidr": KUBE_SERVICE_CIDR,
            "operator_group": KUBE_OPERATOR.groups[0],
            "kwok_user": KUBE_KWOK.user,
        },
        # Kubernetes nodes of simulated pools: not inventory hosts (no server, no SSH); the kwok controller of each
        # DC registers and heartbeats the entries of its own DC.
        "hivestack_simulated_nodes": [
            {
                "name": n.name,
                "dc": n.dc,
                "pool": n.pool,
                "cpu": n.cpu,
                "memory_gb": n.memory_gb,
                "pods": n.pods,
                "labels": n.labels(topology.city),
            }
            for n in placement.simulated_nodes
        ],
    }


def ssh_sources(loaded: LoadedTopology, lab_mgmt: str | None = None) -> list[str]:
    """Where SSH may come from: the topology's management networks and bastions, and in the lab the core namespace
    the controller connects from (`lab_mgmt`, the lab's management address). Anywhere only when nothing says where
    operators come from: a firewall that shuts them out of every host is no default to fall into."""
    management = loaded.topology.management
    sources = {str(n) for n in management.networks} | {f"{a}/32" for a in management.bastions} if management else set()
    if lab_mgmt:
        sources.add(f"{lab_mgmt}/32")
    return sorted(sources) or ["0.0.0.0/0"]


def firewall_allow(loaded: LoadedTopology, host: Host, lab_mgmt: str | None = None) -> list[dict[str, Any]]:
    """What this host accepts beyond ICMP: SSH from management, and one entry per service it runs with the client
    addresses."""
    hosts = loaded.placement.hosts
    cell_index = {c.name: i for i, c in enumerate(loaded.topology.cells)}
    allow: list[dict[str, Any]] = [{"service": "ssh", "ports": [SSH_PORT], "sources": ssh_sources(loaded, lab_mgmt)}]
    for service in SERVICES:
        if service.role not in host.roles:
            continue
        if not service.per_cell:
            ports = [service.port]
        elif service.role is Role.db:
            ports = [service.port_of(cell_index[c]) for c in host.cells]  # only the cells this host holds
        else:
            ports = [service.port_of(i) for i in cell_index.values()]
        if not ports:
            continue
        sources = (
            ["0.0.0.0/0"]
            if service.public
            else [str(a) for a in sorted({h.address for h in hosts if service.clients & set(h.roles)})]
        )
        if service.management:
            sources += [s for s in ssh_sources(loaded, lab_mgmt) if s not in sources]
        allow.append({"service": service.name, "ports": ports, "sources": sources})
    return allow
