"""The capacity and cost planner."""

from __future__ import annotations

import pytest

from hivestack.plan import REFERENCE, plan
from hivestack.topology import load_topology
from tests.conftest import LAB_TOPOLOGY, SAMPLE_TOPOLOGY

pytestmark = pytest.mark.unit


def test_sample_plan_absorbs_a_dc_loss_with_headroom():
    result = plan(load_topology(SAMPLE_TOPOLOGY))
    assert result.peak_tps == pytest.approx(900_000_000 / 86_400 * 3, rel=1e-3)
    load_pools = [p for p in result.pools if p.basis == "load"]
    assert load_pools and all(0 < p.needed <= p.servers for p in load_pools)
    assert result.servers == 1040
    assert result.cost_per_account_year == pytest.approx(result.cost_year / 300_000_000, rel=1e-3)
    assert result.reference == REFERENCE


def test_db_need_follows_the_writers_of_a_lost_dc():
    """Losing sz-a moves its cells' writers to their first replica (sz-b): sz-b needs the most db servers
    in that scenario, and every DC is symmetric in the sample, so all need the same."""
    result = plan(load_topology(SAMPLE_TOPOLOGY))
    db = {p.dc: p.needed for p in result.pools if "db" in p.roles and p.basis == "load"}
    assert len(set(db.values())) == 1
    # 24 of 60 cells write in one DC after a loss: 40 % of the peak on that DC's db servers.
    needed_tps = 0.4 * result.peak_tps
    per_server = 64 * 15 * 0.7
    assert next(iter(db.values())) == -(-needed_tps // per_server)


def test_lab_plan_json_shape():
    data = plan(load_topology(LAB_TOPOLOGY)).to_dict()
    assert {"pools", "dcs", "cost_per_account_year", "reference", "peak_tps"} <= set(data)
    assert sum(d["servers"] for d in data["dcs"]) == data["servers"] == 7
