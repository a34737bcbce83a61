"""Survivability rules: one implementation, enforced twice.

Validation applies them to facts derived from a topology file; the policy pack (policies/) applies them to facts
read back from the resources a Pulumi program declares. Both build the neutral `Facts` below and call `check`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

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
        if not q.member_dcs:
            out.append(Violation("quorum-no-dc-majority", q.path, f"{q.name} has no members"))
            continue
        dc, count = Counter(q.member_dcs).most_common(1)[0]
        if count >= majority(len(q.member_dcs)):
            out.append(
                Violation(
                    "quorum-no-dc-majority",
                    q.path,
                    f"{dc} holds {count} of {q.name}'s {len(q.member_dcs)} members, a majority: losing {dc} "
                    f"loses the quorum (spread members so no DC holds {majority(len(q.member_dcs))})",
                )
            )
    return out


def cell_spans_three_dcs(facts: Facts) -> list[Violation]:
    out = []
    for cell in facts.cells:
        same_city = sorted({d for d in cell.member_dcs if d in facts.same_city_dcs})
        if len(same_city) < 3:
            out.append(
                Violation(
                    "cell-spans-three-dcs",
                    cell.path,
                    f"cell {cell.name} has members in {len(same_city)} same-city DC(s) {same_city}; "
                    "at least 3 are needed",
                )
            )
    return out


def quorum_survives_dc_loss(facts: Facts) -> list[Violation]:
    out = []
    for q in facts.quorums:
        for lost in facts.same_city_dcs:
            left = sum(1 for d in q.member_dcs if d != lost)
            if q.member_dcs and left < majority(len(q.member_dcs)):
                out.append(
                    Violation(
                        "quorum-survives-dc-loss",
                        q.path,
                        f"after losing {lost}, {q.name} keeps {left} of {len(q.member_dcs)} members, "
                        f"below its quorum of {majority(len(q.member_dcs))}",
                    )
                )
    return out


def writer_after_loss(cell: CellLoad, lost: str) -> str | None:
    return next((d for d in cell.member_dcs if d != lost), None)


def role_load_after_loss(facts: Facts, role: str, lost: str) -> dict[str, float]:
    """Transactions per second each surviving DC must carry for `role` once `lost` is gone.

    Database load follows each cell's writer (the first surviving member); stateless roles share the whole
    load across surviving DCs in proportion to their capacity.
    """
    survivors = [d for d in facts.same_city_dcs if d != lost]
    if role == Role.db.value:
        load = dict.fromkeys(survivors, 0.0)
        for cell in facts.cells:
            writer = writer_after_loss(cell, lost)
            if writer in load:
                load[writer] += facts.peak_tps * cell.accounts / max(facts.accounts, 1)
        return load
    capacity = facts.role_tps.get(role, {})
    total = sum(capacity.get(d, 0.0) for d in survivors)
    return {d: facts.peak_tps * (capacity.get(d, 0.0) / total if total else 1 / len(survivors)) for d in survivors}


def capacity_survives_dc_loss(facts: Facts) -> list[Violation]:
    out = []
    for role, per_dc in facts.role_tps.items():
        # Report each short DC once, under the loss that hurts it most.
        worst: dict[str, tuple[float, str]] = {}
        for lost in facts.same_city_dcs:
            for dc, needed in role_load_after_loss(facts, role, lost).items():
                if needed > worst.get(dc, (0.0, ""))[0]:
                    worst[dc] = (needed, lost)
        for dc, (needed, lost) in worst.items():
            have = per_dc.get(dc, 0.0)
            if needed > have + 1e-9:
                out.append(
                    Violation(
                        "capacity-survives-dc-loss",
                        f"capacity.roles.{role}",
                        f"after losing {lost}, {dc} must carry {needed:,.0f} TPS of {role} load "
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
    missing = [d for d in facts.same_city_dcs if d not in facts.gateway_dcs]
    if missing:
        return [
            Violation(
                "gateway-in-every-dc",
                "datacenters",
                f"no gateway in {', '.join(missing)}: every same-city DC must route customers (multi-active)",
            )
        ]
    return []


def latency_within_budget(facts: Facts) -> list[Violation]:
    out = []
    dcs = list(facts.same_city_dcs)
    for i, a in enumerate(dcs):
        for b in dcs[i + 1 :]:
            one_way = facts.dc_latency_ms.get(a, 0.0) + facts.dc_latency_ms.get(b, 0.0)
            if one_way > facts.latency_budget_ms:
                out.append(
                    Violation(
                        "latency-within-budget",
                        "datacenters",
                        f"{a} to {b} is {one_way:g} ms one way, over the same-city budget of "
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
        QuorumGroup(role.value, f"pools with role {role.value}", tuple(h.dc for h in placement.by_role(role)))
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
    )
