"""Capacity and cost: servers each pool needs to carry the peak with any one DC lost, and what it all costs."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

from hivestack.topology import LoadedTopology, Role
from hivestack.topology.survivability import facts_from_topology, worst_load_after_loss

# The yardstick: figures reported for WeBank's same-city multi-active platform.
REFERENCE = {
    "name": "WeBank (reported)",
    "peak_transactions_per_day": 900_000_000,
    "cost_per_account_year": 2.0,
    "currency": "CNY",
}


@dataclass(frozen=True)
class PoolPlan:
    dc: str
    pool: str
    roles: list[str]
    arch: str
    servers: int
    needed: int  # servers needed for the peak with the worst single-DC loss absorbed
    basis: str  # "load" when sized by transactions, "placement" when by quorum/failure-domain needs
    headroom_pct: float
    cost_year: float


@dataclass(frozen=True)
class DcPlan:
    dc: str
    remote: bool
    servers: int
    needed: int
    cores: int
    cost_year: float


@dataclass(frozen=True)
class Plan:
    topology: str
    currency: str
    peak_tps: float
    peak_transactions_per_day: int
    accounts: int
    pools: list[PoolPlan]
    dcs: list[DcPlan]
    servers: int
    needed: int
    cost_year: float
    cost_per_account_year: float
    reference: dict[str, object]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def plan(loaded: LoadedTopology) -> Plan:
    topology = loaded.topology
    facts = facts_from_topology(topology, loaded.placement)
    util = topology.capacity.max_utilization
    # For each DC and load role: the most load that DC carries in any scenario (nothing lost, or one DC lost), from
    # the very function the capacity rule checks, so the plan sizes for exactly what validation demands.
    worst = {(dc, role): w.tps for role in facts.role_tps for dc, w in worst_load_after_loss(facts, role).items()}

    pools: list[PoolPlan] = []
    for dc in topology.datacenters:
        # Summed once per DC, not once per pool: a DC may hold 64 pools.
        role_cores: Counter[Role] = Counter()
        for p in dc.pools:
            role_cores.update(dict.fromkeys(p.roles, p.count * p.cpu))
        for pool in dc.pools:
            load_roles = [r for r in pool.roles if r in topology.capacity.roles and dc.same_city]
            if load_roles:
                needed_cores = 0.0
                for role in load_roles:
                    share = pool.count * pool.cpu / role_cores[role]
                    per_core = topology.capacity.roles[role].tps_per_core * util
                    needed_cores += worst.get((dc.name, role.value), 0.0) * share / per_core
                needed = math.ceil(needed_cores / pool.cpu - 1e-9)
                basis = "load"
            else:
                needed, basis = pool.count, "placement"
            pools.append(
                PoolPlan(
                    dc=dc.name,
                    pool=pool.name,
                    roles=[r.value for r in pool.roles],
                    arch=pool.arch.value,
                    servers=pool.count,
                    needed=needed,
                    basis=basis,
                    headroom_pct=round(100 * (pool.count - needed) / pool.count, 1),
                    cost_year=pool.count * pool.unit_cost,
                )
            )
    dcs = [
        DcPlan(
            dc=dc.name,
            remote=dc.remote,
            servers=sum(p.count for p in dc.pools),
            needed=sum(p.needed for p in pools if p.dc == dc.name),
            cores=sum(p.count * p.cpu for p in dc.pools),
            cost_year=sum(p.cost_year for p in pools if p.dc == dc.name),
        )
        for dc in topology.datacenters
    ]
    cost = sum(p.cost_year for p in pools)
    return Plan(
        topology=topology.name,
        currency=topology.currency.value,
        peak_tps=round(facts.peak_tps, 1),
        peak_transactions_per_day=topology.objectives.peak_transactions_per_day,
        accounts=topology.objectives.accounts,
        pools=pools,
        dcs=dcs,
        servers=sum(d.servers for d in dcs),
        needed=sum(d.needed for d in dcs),
        cost_year=cost,
        cost_per_account_year=round(cost / topology.objectives.accounts, 4),
        reference=REFERENCE,
    )
