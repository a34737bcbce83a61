"""Survivability rules: one implementation, enforced twice.

Validation applies them to facts derived from a topology file; the policy pack (policies/) applies them to facts
read back from the resources a Pulumi program declares. Both build the neutral `Facts` below and call `check`.

Every rule is linear in the DCs, members and cells: the worst loss is found by argument (the DC holding most of a
quorum, the slowest DC, the heaviest other DC), never by trying every DC against every other.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from hivestack.topology.model import Role, Topology
from hivestack.topology.placement import QUORUM_ROLES, Placement


@dataclass(frozen=True)
class QuorumGroup:
    name: str  # "etcd", "k8s-control" or "cell c01"
    path: str  # where it comes from, for messages: a topology path or a resource name
    member_dcs: tuple[str, ...]


@dataclass(frozen=True)
class CellLoad:
    name: str
    path: str
    member_dcs: tuple[str, ...]  # writer first, then backups in failover order
    accounts: int
    start: int
    end: int


@dataclass(frozen=True)
class Facts:
    same_city_dcs: tuple[str, ...]
    quorums: tuple[QuorumGroup, ...]
    cells: tuple[CellLoad, ...]
    routing_space: int
    accounts: int
    peak_tps: float
    # role -> DC -> transactions per second that DC's servers of that role carry at the allowed utilization
    role_tps: dict[str, dict[str, float]] = field(default_factory=dict)
    gateway_dcs: tuple[str, ...] = ()
    dc_latency_ms: dict[str, float] = field(default_factory=dict)
    latency_budget_ms: float = float("inf")
    # Where each DC is declared, for messages (a topology path); a DC without one is reported under "datacenters".
    dc_paths: dict[str, str] = field(default_factory=dict)

    @cached_property
    def city(self) -> frozenset[str]:
        return frozenset(self.same_city_dcs)

    def members_in_city(self, quorum: QuorumGroup) -> list[str]:
        """The members that count: the platform runs no quorum member in a remote site (etcd and the control plane
        are deployed on same-city hosts only, cell members are same-city by the model)."""
        return [d for d in quorum.member_dcs if d in self.city]

    def dc_path(self, dc: str) -> str:
        return self.dc_paths.get(dc, "datacenters")


@dataclass(frozen=True)
class Violation:
    rule: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


def majority(n: int) -> int:
    return n // 2 + 1


def quorum_no_dc_majority(facts: Facts) -> list[Violation]:
    out = []
    for q in facts.quorums:
        members = facts.members_in_city(q)
        if not members:
            out.append(Violation("quorum-no-dc-majority", q.path, f"{q.name} has no members in the city"))
            continue
        dc, count = Counter(members).most_common(1)[0]
        if count >= majority(len(members)):
            out.append(
                Violation(
                    "quorum-no-dc-majority",
                    q.path,
                    f"{dc} holds {count} of {q.name}'s {len(members)} members, a majority: losing {dc} "
                    f"loses the quorum (spread members so no DC holds {majority(len(members))})",
                )
            )
    return out


# Same-city DCs a cell's database, and a Kubernetes workload's replicas, must span: losing one leaves two.
MIN_DCS = 3


def cell_spans_three_dcs(facts: Facts) -> list[Violation]:
    out = []
    for cell in facts.cells:
        same_city = sorted({d for d in cell.member_dcs if d in facts.city})
        if len(same_city) < MIN_DCS:
            out.append(
                Violation(
                    "cell-spans-three-dcs",
                    cell.path,
                    f"cell {cell.name} has members in {len(same_city)} same-city DC(s) {same_city}; "
                    f"at least {MIN_DCS} are needed",
                )
            )
    return out


def quorum_survives_dc_loss(facts: Facts) -> list[Violation]:
    out = []
    for q in facts.quorums:
        members = facts.members_in_city(q)
        # Losing a DC takes exactly its own members: count them once instead of trying every DC.
        for lost, count in Counter(members).items():
            left = len(members) - count
            if left < majority(len(members)):
                out.append(
                    Violation(
                        "quorum-survives-dc-loss",
                        q.path,
                        f"after losing {lost}, {q.name} keeps {left} of {len(members)} members, "
                        f"below its quorum of {majority(len(members))}",
                    )
                )
    return out


@dataclass(frozen=True)
class WorstLoad:
    tps: float
    lost: str  # the loss that puts it there ("" when there is no other DC to lose: the load with all DCs up)

    @property
    def scenario(self) -> str:
        return f"after losing {self.lost}" if self.lost else "with every DC up"


def worst_load_after_loss(facts: Facts, role: str) -> dict[str, WorstLoad]:
    """For each same-city DC, the most `role` load it must carry with all DCs up or after the loss of any one
    other DC (losing a DC never lightens the others, so with two or more DCs this is the worst single loss).

    Database load follows each cell's writer (its first surviving member); stateless roles share the whole load
    across surviving DCs in proportion to their capacity, evenly when none has any. Found without trying every loss:
    a DC's database load grows only by the cells whose writer is lost and whose next member it holds, so its worst
    loss is the DC that hands it the most; a stateless share is largest when the DC with the most capacity among
    the others is the one lost.
    """
    city = facts.same_city_dcs
    if role == Role.db.value:
        healthy, moved = _writer_load(facts)
        worst = {d: WorstLoad(healthy.get(d, 0.0), next((x for x in city if x != d), "")) for d in city}
        for lost in city:
            for d, tps in moved.get(lost, {}).items():
                if d in worst and healthy.get(d, 0.0) + tps > worst[d].tps:
                    worst[d] = WorstLoad(healthy.get(d, 0.0) + tps, lost)
        return worst
    capacity = facts.role_tps.get(role, {})
    total = sum(capacity.get(d, 0.0) for d in city)
    heaviest = heapq.nlargest(2, city, key=lambda d: capacity.get(d, 0.0))
    worst = {}
    for d in city:
        lost = next((x for x in heaviest if x != d), "")
        survivors = len(city) - 1 if lost else len(city)
        tps = _share(facts.peak_tps, capacity.get(d, 0.0), total - capacity.get(lost, 0.0), survivors)
        worst[d] = WorstLoad(tps, lost)
    return worst


def _writer_load(facts: Facts) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Database load each same-city DC's writers carry while all is healthy, and, per DC that could be lost, the
    load that moves from it to each cell's next member."""
    healthy: dict[str, float] = {}
    moved: dict[str, dict[str, float]] = {}
    for cell in facts.cells:
        if not cell.member_dcs:
            continue
        tps = facts.peak_tps * cell.accounts / max(facts.accounts, 1)
        writer = cell.member_dcs[0]
        if writer in facts.city:
            healthy[writer] = healthy.get(writer, 0.0) + tps
        backup = next((d for d in cell.member_dcs if d != writer), None)
        if backup is not None:
            to = moved.setdefault(writer, {})
            to[backup] = to.get(backup, 0.0) + tps
    return healthy, moved


def _share(peak_tps: float, capacity: float, survivors_capacity: float, survivors: int) -> float:
    """A stateless role's load on one survivor: in proportion to capacity, or evenly when no survivor has any."""
    return peak_tps * (capacity / survivors_capacity if survivors_capacity else 1 / survivors)


def capacity_survives_dc_loss(facts: Facts) -> list[Violation]:
    out = []
    for role, per_dc in facts.role_tps.items():
        # Each short DC is reported once, under the loss that hurts it most.
        for dc, worst in worst_load_after_loss(facts, role).items():
            have = per_dc.get(dc, 0.0)
            if worst.tps > have + 1e-9:
                out.append(
                    Violation(
                        "capacity-survives-dc-loss",
                        f"capacity.roles.{role}",
                        f"{worst.scenario}, {dc} must carry {worst.tps:,.0f} TPS of {role} load "
                        f"but its servers carry {have:,.0f} (add {role} servers in {dc})",
                    )
                )
    return out


def customer_ranges_partition(facts: Facts) -> list[Violation]:
    out = []
    cursor = 0
    previous = None
    for cell in sorted(facts.cells, key=lambda c: (c.start, c.end)):
        if cell.start > cursor:
            out.append(
                Violation(
                    "customer-ranges-partition",
                    cell.path,
                    f"keys {cursor}..{cell.start - 1} belong to no cell "
                    f"(ranges must cover 0..{facts.routing_space - 1})",
                )
            )
        elif cell.start < cursor and previous is not None:
            out.append(
                Violation(
                    "customer-ranges-partition",
                    cell.path,
                    f"range {cell.start}..{cell.end - 1} of {cell.name} overlaps {previous.name} "
                    f"(which ends at {cursor - 1})",
                )
            )
        if cell.end > cursor:
            cursor, previous = cell.end, cell
    if cursor < facts.routing_space:
        out.append(
            Violation(
                "customer-ranges-partition",
                "cells",
                f"keys {cursor}..{facts.routing_space - 1} belong to no cell (ranges must cover the routing space)",
            )
        )
    return out


def cells_hold_accounts(facts: Facts) -> list[Violation]:
    total = sum(c.accounts for c in facts.cells)
    if total < facts.accounts:
        return [
            Violation(
                "cells-hold-accounts",
                "cells",
                f"cells are sized for {total:,} accounts but the objectives ask for {facts.accounts:,}",
            )
        ]
    return []


def gateway_in_every_dc(facts: Facts) -> list[Violation]:
    with_gateway = set(facts.gateway_dcs)
    return [
        Violation(
            "gateway-in-every-dc",
            facts.dc_path(d),
            f"no gateway in {d}: every same-city DC must route customers (multi-active)",
        )
        for d in facts.same_city_dcs
        if d not in with_gateway
    ]


def latency_within_budget(facts: Facts) -> list[Violation]:
    """Each DC against the slowest other DC (its worst partner): every DC over budget with someone is reported,
    under the slower DC of the pair, without comparing every pair."""
    latency = {d: facts.dc_latency_ms.get(d, 0.0) for d in facts.same_city_dcs}
    slowest = heapq.nlargest(2, latency, key=latency.__getitem__)
    out = []
    reported: set[frozenset[str]] = set()
    for a in facts.same_city_dcs:
        b = next((d for d in slowest if d != a), None)
        if b is None or frozenset((a, b)) in reported:
            continue
        one_way = latency[a] + latency[b]
        if one_way > facts.latency_budget_ms:
            reported.add(frozenset((a, b)))
            slow, fast = (b, a) if latency[b] >= latency[a] else (a, b)
            out.append(
                Violation(
                    "latency-within-budget",
                    facts.dc_path(slow),
                    f"{slow} to {fast} is {one_way:g} ms one way, over the same-city budget of "
                    f"{facts.latency_budget_ms:g} ms",
                )
            )
    return out


RULES: dict[str, Callable[[Facts], list[Violation]]] = {
    "quorum-no-dc-majority": quorum_no_dc_majority,
    "cell-spans-three-dcs": cell_spans_three_dcs,
    "quorum-survives-dc-loss": quorum_survives_dc_loss,
    "capacity-survives-dc-loss": capacity_survives_dc_loss,
    "customer-ranges-partition": customer_ranges_partition,
    "cells-hold-accounts": cells_hold_accounts,
    "gateway-in-every-dc": gateway_in_every_dc,
    "latency-within-budget": latency_within_budget,
}


def check(facts: Facts, rules: list[str] | None = None) -> list[Violation]:
    return [v for name in rules or list(RULES) for v in RULES[name](facts)]


def facts_from_topology(topology: Topology, placement: Placement) -> Facts:
    same_city = tuple(dc.name for dc in topology.same_city_dcs)
    quorums = [
        QuorumGroup(role.value, _first_pool_path(topology, role), tuple(h.dc for h in placement.by_role(role)))
        for role in QUORUM_ROLES
    ]
    cells = []
    for i, cell in enumerate(topology.cells):
        member_dcs = tuple(m.dc for m in placement.cell_members[cell.name])
        quorums.append(QuorumGroup(f"cell {cell.name}", f"cells.{i}", member_dcs))
        cells.append(CellLoad(cell.name, f"cells.{i}", member_dcs, cell.accounts, cell.range.start, cell.range.end))
    util = topology.capacity.max_utilization
    role_tps = {
        role.value: {
            dc.name: sum(p.count * p.cpu for p in dc.pools if role in p.roles) * rc.tps_per_core * util
            for dc in topology.same_city_dcs
        }
        for role, rc in topology.capacity.roles.items()
    }
    return Facts(
        same_city_dcs=same_city,
        quorums=tuple(quorums),
        cells=tuple(cells),
        routing_space=topology.routing.space,
        accounts=topology.objectives.accounts,
        peak_tps=topology.objectives.peak_tps,
        role_tps=role_tps,
        gateway_dcs=tuple(sorted({h.dc for h in placement.by_role(Role.gateway)})),
        dc_latency_ms={dc.name: dc.latency_ms for dc in topology.same_city_dcs},
        latency_budget_ms=topology.objectives.latency_budget_ms,
        dc_paths={dc.name: f"datacenters.{i}" for i, dc in enumerate(topology.datacenters)},
    )


def _first_pool_path(topology: Topology, role: Role) -> str:
    """Where a quorum is declared, for messages: its first same-city pool (or the DCs, when it has none)."""
    for i, dc in enumerate(topology.datacenters):
        for j, pool in enumerate(dc.pools):
            if dc.same_city and role in pool.roles:
                return f"datacenters.{i}.pools.{j}.roles"
    return "datacenters"
