"""Production-shaped topologies at any scale: the sample-sz shape (5 same-city DCs + a remote DR site,
about 1,000 arm64 servers, 60 cells) multiplied by `scale` in cells, accounts, load and servers.

`python benchmarks/synthetic_topology.py 1` prints the committed inventories/sample-sz/topology.yaml.
"""

from __future__ import annotations

import ipaddress
import math
import sys
from typing import Any

import yaml

SAME_CITY = ["sz-a", "sz-b", "sz-c", "sz-d", "sz-e"]
DR_SITE = "gz-dr"
CELLS = 60
ACCOUNTS_PER_CELL = 5_000_000
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


def _pool(prefix: str, spec: tuple[str, list[str], int, int, int, int], scale: int) -> dict[str, Any]:
    suffix, roles, count, cpu, mem, cost = spec
    # Quorum pools keep one member per DC whatever the scale.
    n = count if "etcd" in roles else count * scale
    return _Flow(name=f"{prefix}-{suffix}", roles=roles, arch="arm64", count=n, cpu=cpu, memory_gb=mem, unit_cost=cost)


def _subnet(index: int, hosts: int) -> str:
    prefix = 32 - max(8, math.ceil(math.log2(hosts + 16)))
    size = 2 ** (32 - prefix)
    return str(ipaddress.ip_network((int(ipaddress.ip_address("10.64.0.0")) + index * size, prefix)))


def sample_shaped(scale: int = 1) -> dict[str, Any]:
    cells = CELLS * scale
    per_dc = sum(p[2] for p in POOLS) * scale
    datacenters = [
        {
            "name": dc,
            "subnet": _subnet(i, per_dc),
            "latency_ms": 0.4,
            "pools": [_pool(dc.removeprefix("sz-"), p, scale) for p in POOLS],
        }
        for i, dc in enumerate(SAME_CITY)
    ]
    datacenters.append(
        {
            "name": DR_SITE,
            "subnet": _subnet(len(SAME_CITY), per_dc),
            "latency_ms": 4,
            "remote": True,
            "pools": [_pool("gz", p, scale) for p in DR_POOLS],
        }
    )
    return {
        "name": "sample-sz",
        "city": "shenzhen",
        "currency": "CNY",
        "objectives": {
            "rto_seconds": 3,
            "rpo_writes": 0,
            "peak_transactions_per_day": 900_000_000 * scale,
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
        "datacenters": datacenters,
        "cells": [
            _Flow(
                name=f"cell-{i + 1:03d}",
                home=SAME_CITY[i % 5],
                replicas=[SAME_CITY[(i + 1) % 5], SAME_CITY[(i + 2) % 5]],
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
    )
    return header + yaml.dump(sample_shaped(scale), Dumper=_Dumper, sort_keys=False, width=200)


if __name__ == "__main__":
    sys.stdout.write(render(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
