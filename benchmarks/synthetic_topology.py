"""Production-shaped topologies at any scale: the sample-sz shape (5 same-city DCs + a remote DR site,
about 1,000 arm64 servers, 60 cells) grown by `scale` as far as the model allows.

The model bounds a topology (64 DCs, 100,000 servers, 100 cells: per-cell port blocks), so a scale does not
multiply everything: the same-city DCs grow first (up to the 63 that leave room for the DR site), then the pools of
every DC, to the largest whole multiple of the sample's servers that fits; cells grow up to 100, and the accounts,
load and routing space follow the cells (each keeps the sample's 5 million accounts and its share of the load).
`growth(scale)` says what a scale becomes.

`python benchmarks/synthetic_topology.py 1` prints the committed inventories/sample-sz/topology.yaml.
"""

from __future__ import annotations

import ipaddress
import math
import string
import sys
from dataclasses import dataclass
from typing import Any

import yaml

from hivestack.topology.model import MAX_DATACENTERS, MAX_SERVERS
from hivestack.topology.ports import MAX_CELLS

SAME_CITY_DCS = 5
DR_SITE = "gz-dr"
CELLS = 60
ACCOUNTS_PER_CELL = 5_000_000
TRANSACTIONS_PER_CELL_DAY = 15_000_000  # 900 million on the sample's peak day, over its 60 cells
KEYS_PER_CELL = 10_000_000
# (pool suffix, roles, servers per DC at scale 1, cores, memory GB, cost per server-year in CNY)
POOLS = [
    ("gw", ["gateway"], 10, 64, 256, 42_000),
    ("app", ["app"], 80, 64, 256, 42_000),
    ("db", ["db"], 24, 64, 512, 60_000),
    ("ctl", ["etcd", "k8s-control"], 1, 32, 128, 30_000),
    ("ceph", ["storage"], 40, 32, 128, 48_000),
    ("k8s", ["k8s-worker"], 45, 64, 256, 42_000),
]
DR_POOLS = [("dr-db", ["db"], 24, 64, 512, 60_000), ("dr-ceph", ["storage"], 16, 32, 128, 48_000)]


class _Flow(dict):
    """A mapping written on one line, so the sample stays readable."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(_Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))


@dataclass(frozen=True)
class Growth:
    """What a scale grows into, within the model's limits."""

    scale: int  # asked for
    same_city_dcs: int
    servers_scale: int  # the sample's servers (quorum pools aside) times this, spread over the same-city DCs
    cells: int

    @property
    def pool_scale(self) -> float:
        """How much larger each same-city DC's pools are than the sample's (1 while the DCs are still growing)."""
        return self.servers_scale * SAME_CITY_DCS / self.same_city_dcs

    def servers(self) -> int:
        same_city = sum(_count(p, self.pool_scale) for p in POOLS)
        return self.same_city_dcs * same_city + sum(_count(p, self.servers_scale) for p in DR_POOLS)

    def __str__(self) -> str:
        return (
            f"{self.same_city_dcs} same-city DCs and a DR site, {self.servers_scale}x the servers, {self.cells} cells"
        )


def growth(scale: int) -> Growth:
    dcs = min(SAME_CITY_DCS * scale, MAX_DATACENTERS - 1)  # one DC is left for the DR site
    cells = min(CELLS * scale, MAX_CELLS)
    servers_scale = scale
    while Growth(scale, dcs, servers_scale, cells).servers() > MAX_SERVERS:
        servers_scale -= 1
    return Growth(scale, dcs, servers_scale, cells)


def _count(spec: tuple[str, list[str], int, int, int, int], factor: float) -> int:
    # Quorum pools keep one member per DC whatever the scale.
    return spec[2] if "etcd" in spec[1] else math.floor(spec[2] * factor)


def _pool(prefix: str, spec: tuple[str, list[str], int, int, int, int], factor: float) -> dict[str, Any]:
    suffix, roles, _, cpu, mem, cost = spec
    count = _count(spec, factor)
    return _Flow(
        name=f"{prefix}-{suffix}", roles=roles, arch="arm64", count=count, cpu=cpu, memory_gb=mem, unit_cost=cost
    )


def _subnet(index: int, hosts: int) -> str:
    prefix = 32 - max(8, math.ceil(math.log2(hosts + 16)))
    size = 2 ** (32 - prefix)
    return str(ipaddress.ip_network((int(ipaddress.ip_address("10.64.0.0")) + index * size, prefix)))


def _dc_name(index: int) -> str:
    """sz-a .. sz-z, then sz-aa, sz-ab, ...: the sample's five names first."""
    letters = string.ascii_lowercase
    return "sz-" + (letters[index] if index < 26 else letters[index // 26 - 1] + letters[index % 26])


def sample_shaped(scale: int = 1) -> dict[str, Any]:
    g = growth(scale)
    cells = g.cells
    city = [_dc_name(i) for i in range(g.same_city_dcs)]
    # Every DC numbers its hosts in a block of the same size: that of the largest DC.
    per_dc = max(sum(_count(p, g.pool_scale) for p in POOLS), sum(_count(p, g.servers_scale) for p in DR_POOLS))
    datacenters = [
        {
            "name": dc,
            "subnet": _subnet(i, per_dc),
            "latency_ms": 0.4,
            "pools": [_pool(dc.removeprefix("sz-"), p, g.pool_scale) for p in POOLS],
        }
        for i, dc in enumerate(city)
    ]
    datacenters.append(
        {
            "name": DR_SITE,
            "subnet": _subnet(len(city), per_dc),
            "latency_ms": 4,
            "remote": True,
            "pools": [_pool("gz", p, g.servers_scale) for p in DR_POOLS],
        }
    )
    return {
        "name": "sample-sz",
        "city": "shenzhen",
        "currency": "CNY",
        "objectives": {
            "rto_seconds": 3,
            "rpo_writes": 0,
            "peak_transactions_per_day": TRANSACTIONS_PER_CELL_DAY * cells,
            "peak_factor": 3,
            "accounts": ACCOUNTS_PER_CELL * cells,
            "latency_budget_ms": 2,
        },
        "capacity": {
            "max_utilization": 0.7,
            "roles": {
                "gateway": {"tps_per_core": 100},
                "app": {"tps_per_core": 5},
                "db": {"tps_per_core": 15},
            },
        },
        "routing": {"key": "customer-id", "space": KEYS_PER_CELL * cells},
        # Operators come from the operations network, or through one bastion per same-city DC: SSH from nowhere else.
        "management": {"networks": ["172.16.0.0/24"], "bastions": [f"172.16.1.{i + 1}" for i in range(len(city))]},
        "datacenters": datacenters,
        "cells": [
            _Flow(
                name=f"cell-{i + 1:03d}",
                home=city[i % len(city)],
                replicas=[city[(i + 1) % len(city)], city[(i + 2) % len(city)]],
                dr=DR_SITE,
                range={"start": i * KEYS_PER_CELL, "end": (i + 1) * KEYS_PER_CELL},
                accounts=ACCOUNTS_PER_CELL,
            )
            for i in range(cells)
        ],
    }


def render(scale: int) -> str:
    header = (
        "# Production-shaped sample: Shenzhen, 5 same-city DCs + a remote DR site in Guangzhou,\n"
        "# about 1,000 arm64 servers in the city, 60 cells of 5 million accounts, 900 million transactions\n"
        "# on the peak day. Written by `python benchmarks/synthetic_topology.py 1`.\n"
        if scale == 1
        else f"# The sample-sz shape grown {scale}x as far as the model allows: {growth(scale)}.\n"
    )
    return header + yaml.dump(sample_shaped(scale), Dumper=_Dumper, sort_keys=False, width=200)


if __name__ == "__main__":
    sys.stdout.write(render(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
