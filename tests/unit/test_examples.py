"""The two example topologies: valid, and shaped as the issue describes them."""

from __future__ import annotations

from collections import Counter

import pytest

from hivestack.topology import Role, load_topology
from hivestack.topology.placement import place
from tests.conftest import LAB_TOPOLOGY, SAMPLE_TOPOLOGY

pytestmark = pytest.mark.unit


def test_lab_three_dcs_three_cells_one_homed_in_each():
    loaded = load_topology(LAB_TOPOLOGY)
    t = loaded.topology
    assert [dc.name for dc in t.same_city_dcs] == ["dc-a", "dc-b", "dc-c"]
    assert sorted(c.home for c in t.cells) == ["dc-a", "dc-b", "dc-c"]
    assert len(loaded.placement.hosts) <= 12  # fits this machine
    assert any(h.arch.value == "arm64" for h in loaded.placement.hosts)
    # Addresses come from the DC's subnet, distinct everywhere.
    addresses = [h.address for h in loaded.placement.hosts]
    assert len(set(addresses)) == len(addresses)
    for h in loaded.placement.hosts:
        assert h.address in t.datacenter(h.dc).subnet


def test_sample_is_production_shaped():
    loaded = load_topology(SAMPLE_TOPOLOGY)
    t = loaded.topology
    assert len(t.same_city_dcs) == 5 and [dc.name for dc in t.datacenters if dc.remote] == ["gz-dr"]
    city_hosts = [h for h in loaded.placement.hosts if t.datacenter(h.dc).same_city]
    assert 900 <= len(city_hosts) <= 1100
    assert all(h.arch.value == "arm64" for h in loaded.placement.hosts)
    assert len(t.cells) == 60
    assert Counter(h.dc for h in loaded.placement.by_role(Role.etcd)) == {dc.name: 1 for dc in t.same_city_dcs}


def test_cells_spread_over_the_db_hosts_of_every_dc():
    loaded = load_topology(SAMPLE_TOPOLOGY)
    hosts_used = {(m.dc, m.host) for ms in loaded.placement.cell_members.values() for m in ms}
    per_dc = Counter(dc for dc, _ in hosts_used)
    # Not piled on one host per DC: every DC that holds members spreads them over several of its db hosts.
    assert set(per_dc) == {dc.name for dc in loaded.topology.same_city_dcs}
    assert all(n > 1 for n in per_dc.values()), per_dc


def test_a_cells_member_hosts_do_not_depend_on_the_other_cells():
    """A cell keeps its hosts when other cells are reordered, removed or added: the placement of every cell is
    compared, not a count of hosts."""
    topology = load_topology(SAMPLE_TOPOLOGY).topology
    placed = place(topology).cell_members
    cells = list(topology.cells)
    added = cells[0].model_copy(update={"name": "cell-added"})
    for variant in (cells[::-1], cells[::3], [*cells[7:], *cells[:7]], [added, *cells]):
        moved = place(topology.model_copy(update={"cells": variant})).cell_members
        assert {c.name: moved[c.name] for c in variant if c.name in placed} == {
            c.name: placed[c.name] for c in variant if c.name in placed
        }
