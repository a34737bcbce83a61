"""The survivability rules stay linear (no DC compared with every other) and say what trying every loss would say.

The facts are built directly, beyond what the model admits, so that a quadratic rule shows as minutes, not
milliseconds; the shortcuts are checked against brute force over every loss on random facts.
"""

from __future__ import annotations

import random
import time
from itertools import combinations

import pytest

from hivestack.topology.model import Role
from hivestack.topology.survivability import (
    CellLoad,
    Facts,
    QuorumGroup,
    check,
    latency_within_budget,
    quorum_survives_dc_loss,
    worst_load_after_loss,
)

pytestmark = pytest.mark.unit


def random_facts(rng: random.Random, dcs: int, cells: int) -> Facts:
    names = [f"dc-{i}" for i in range(dcs)]
    city = names[: max(dcs - 1, 1)]  # the last one is a remote site when there are several
    cell_loads = []
    quorums = [QuorumGroup("etcd", "etcd", tuple(rng.choice(names) for _ in range(rng.randint(1, 7))))]
    for i in range(cells):
        members = tuple(rng.sample(city, min(len(city), rng.randint(1, 4))))
        cell_loads.append(CellLoad(f"c{i}", f"cells.{i}", members, rng.randint(1, 100), i, i + 1))
        quorums.append(QuorumGroup(f"cell c{i}", f"cells.{i}", members))

    def capacity() -> dict[str, float]:
        return {d: rng.choice([0.0, 0.0, rng.uniform(1, 1000)]) for d in city}

    return Facts(
        same_city_dcs=tuple(city),
        quorums=tuple(quorums),
        cells=tuple(cell_loads),
        routing_space=cells,
        accounts=sum(c.accounts for c in cell_loads),
        peak_tps=rng.uniform(100, 10_000),
        role_tps={Role.db.value: capacity(), Role.app.value: capacity(), Role.gateway.value: capacity()},
        gateway_dcs=tuple(rng.sample(city, rng.randint(0, len(city)))),
        dc_latency_ms={d: rng.choice([0.2, 0.5, 1.0, 1.5]) for d in city},
        latency_budget_ms=2.0,
    )


def load_after_loss(facts: Facts, role: str, lost: str) -> dict[str, float]:
    """Brute force for one scenario: the `role` load each surviving same-city DC carries once `lost` is gone ("" for
    none). A cell writes in its first member that survives; a stateless role's peak is shared by the survivors in
    proportion to their capacity, evenly when none has any."""
    survivors = [d for d in facts.same_city_dcs if d != lost]
    if role == Role.db.value:
        load = dict.fromkeys(survivors, 0.0)
        for cell in facts.cells:
            writer = next((d for d in cell.member_dcs if d != lost), None)
            if writer in load:
                load[writer] += facts.peak_tps * cell.accounts / facts.accounts
        return load
    capacity = facts.role_tps[role]
    rest = sum(capacity[d] for d in survivors)
    return {d: facts.peak_tps * (capacity[d] / rest if rest else 1 / len(survivors)) for d in survivors}


def test_rules_are_linear_in_dcs_and_cells():
    # 4,000 DCs and 4,000 cells: every rule that tried each DC against each other took minutes here.
    facts = random_facts(random.Random(1), 4000, 4000)
    start = time.perf_counter()
    check(facts)
    assert time.perf_counter() - start < 3


@pytest.mark.parametrize("seed", range(40))
def test_worst_load_is_the_worst_over_every_loss(seed: int):
    rng = random.Random(seed)
    facts = random_facts(rng, rng.randint(1, 7), rng.randint(0, 12))
    city = facts.same_city_dcs
    for role in facts.role_tps:
        brute: dict[str, float] = {}
        for lost in ["", *city]:  # nothing lost, then every DC in turn
            for dc, tps in load_after_loss(facts, role, lost).items():
                brute[dc] = max(brute.get(dc, 0.0), tps)
        worst = worst_load_after_loss(facts, role)
        assert {dc: w.tps for dc, w in worst.items()} == pytest.approx(brute)
        for dc, w in worst.items():  # and the loss it names is one that puts that load there
            assert w.lost != dc and (w.lost in city if len(city) > 1 else w.lost == "")
            assert load_after_loss(facts, role, w.lost)[dc] == pytest.approx(w.tps)


@pytest.mark.parametrize("seed", range(40))
def test_quorum_losses_are_those_trying_every_dc_finds(seed: int):
    rng = random.Random(seed)
    facts = random_facts(rng, rng.randint(1, 7), rng.randint(0, 12))
    city = set(facts.same_city_dcs)
    expected = set()
    for q in facts.quorums:
        members = [d for d in q.member_dcs if d in city]  # a remote site runs no quorum member
        for lost in facts.same_city_dcs:
            left = sum(1 for d in members if d != lost)
            if members and left < len(members) // 2 + 1:
                expected.add((q.path, lost))
    found = {(v.path, v.message.split(",")[0].removeprefix("after losing ")) for v in quorum_survives_dc_loss(facts)}
    assert found == expected


@pytest.mark.parametrize("seed", range(40))
def test_latency_names_every_dc_with_a_partner_over_budget(seed: int):
    rng = random.Random(seed)
    facts = random_facts(rng, rng.randint(1, 9), 0)
    latency = facts.dc_latency_ms
    over = {
        frozenset(pair)
        for pair in combinations(facts.same_city_dcs, 2)
        if latency[pair[0]] + latency[pair[1]] > facts.latency_budget_ms
    }
    reported = {frozenset(v.message.split(" is ")[0].split(" to ")) for v in latency_within_budget(facts)}
    assert reported <= over  # nothing within budget is reported
    assert {d for pair in reported for d in pair} == {d for pair in over for d in pair}
