"""The two example topologies: valid, and shaped as the issue describes them."""

from __future__ import annotations

from collections import Counter

import pytest

from hivestack.topology import Role, load_topology
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


def test_cells_spread_over_db_hosts_stably():
    """A cell's member host depends on its name, not on its position among the cells."""
    loaded = load_topology(SAMPLE_TOPOLOGY)
    members = loaded.placement.cell_members
    hosts_used = {m.host for ms in members.values() for m in ms}
    assert len(hosts_used) > 60  # spread, not piled on one host per DC
